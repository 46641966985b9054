//! The outbox sender: delivers queued mails over SMTP (lettre), removes each only after
//! the server accepted it, and retries failures with doubling delays. Also closes due
//! mail windows.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::App;
use crate::config::SmtpConfig;
use crate::store::Mail;

/// Counters of the sender.
#[derive(Debug, Default)]
pub struct SenderStats {
    pub sent: std::sync::atomic::AtomicU64,
    pub failed_attempts: std::sync::atomic::AtomicU64,
    /// Mails given up since the start (`timing.mail_give_up`).
    pub given_up: std::sync::atomic::AtomicU64,
}

/// What to do with a mail whose delivery just failed at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at `next_attempt_ms` (delays doubling from `mail_retry_min` up to
    /// `mail_retry_max`).
    Retry(Mail),
    /// Older than `mail_give_up`: moved to the failed mails, never retried.
    GiveUp(Mail),
}

/// Decide the fate of a failed mail (pure: the caller writes it).
pub fn after_failure(
    timing: &crate::config::TimingConfig,
    m: &Mail,
    error: String,
    now: i64,
) -> AfterFailure {
    let mut m = m.clone();
    m.attempts += 1;
    m.last_error = Some(error);
    let give_up = timing.mail_give_up.as_millis().min(i64::MAX as u128) as i64;
    if now.saturating_sub(m.created_ms) >= give_up {
        m.given_up_ms = Some(now);
        return AfterFailure::GiveUp(m);
    }
    let min = timing.mail_retry_min.as_millis() as i64;
    let max = timing.mail_retry_max.as_millis() as i64;
    let delay = (min.saturating_mul(1i64 << (m.attempts - 1).min(20))).min(max);
    m.next_attempt_ms = now + delay;
    AfterFailure::Retry(m)
}

/// Record a failed delivery: retried later, or given up when too old.
fn failed(
    app: &App,
    stats: &SenderStats,
    m: &Mail,
    error: String,
    now: i64,
) -> crate::store::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    stats.failed_attempts.fetch_add(1, Relaxed);
    match after_failure(&app.cfg.timing, m, error, now) {
        AfterFailure::Retry(m) => {
            tracing::warn!(to = %m.to, attempts = m.attempts, retry_in_ms = m.next_attempt_ms - now, error = m.last_error.as_deref().unwrap_or(""), "mail delivery failed; will retry");
            // not when it left the outbox meanwhile (contract end deleted it)
            app.store.write(|tx| match tx.mail(m.id)? {
                Some(_) => tx.put_mail(&m),
                None => Ok(()),
            })
        }
        AfterFailure::GiveUp(m) => {
            stats.given_up.fetch_add(1, Relaxed);
            tracing::warn!(id = m.id, to = %m.to, kind = %m.kind, attempts = m.attempts, queued_ms = m.created_ms, error = m.last_error.as_deref().unwrap_or(""), "mail given up: still failing after timing.mail_give_up; never retried (admin mail failed)");
            app.store.write(|tx| match tx.mail(m.id)? {
                Some(_) => tx.give_up_mail(&m),
                None => Ok(()),
            })
        }
    }
}

fn transport(cfg: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let b = if cfg.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
            .map_err(|e| e.to_string())?
            .port(cfg.port)
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host).port(cfg.port)
    };
    let b = b.timeout(Some(cfg.timeout));
    let b = match (&cfg.username, &cfg.password) {
        (Some(u), Some(p)) => b.credentials(Credentials::new(u.clone(), p.clone())),
        _ => b,
    };
    Ok(b.build())
}

fn message(cfg: &SmtpConfig, m: &Mail) -> Result<Message, String> {
    Message::builder()
        .from(
            cfg.from
                .parse()
                .map_err(|e| format!("sender `{}`: {e}", cfg.from))?,
        )
        .to(m
            .to
            .parse()
            .map_err(|e| format!("recipient `{}`: {e}", m.to))?)
        .subject(m.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(m.body.clone())
        .map_err(|e| e.to_string())
}

/// Run forever: close due windows, send due mails.
pub async fn run(app: Arc<App>, stats: Arc<SenderStats>) {
    let smtp = match transport(&app.cfg.smtp) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "SMTP settings are unusable; mails stay queued");
            return;
        }
    };
    let tz = app.cfg.utc_offset_secs();
    loop {
        let now = app.now();
        // windows whose time is up become mails
        match app
            .store
            .write(|tx| crate::notify::close_due_windows(tx, now, tz))
        {
            Ok(n) if n > 0 => tracing::info!(mails = n, "alert mails queued"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "closing mail windows failed"),
        }
        let due: Vec<Mail> = match app.store.read(|rx| rx.outbox()) {
            Ok(v) => v.into_iter().filter(|m| m.next_attempt_ms <= now).collect(),
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                Vec::new()
            }
        };
        for m in due {
            let res = match message(&app.cfg.smtp, &m) {
                Ok(msg) => smtp.send(msg).await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            use std::sync::atomic::Ordering::Relaxed;
            let now = app.now();
            let r = match res {
                Ok(()) => {
                    stats.sent.fetch_add(1, Relaxed);
                    tracing::info!(to = %m.to, kind = %m.kind, subject = %m.subject, "mail delivered");
                    app.store.write(|tx| tx.remove_mail(m.id))
                }
                Err(e) => failed(&app, &stats, &m, e, now),
            };
            if let Err(e) = r {
                tracing::error!(error = %e, "updating the outbox failed");
            }
        }
        tokio::select! {
            _ = app.mail_queued.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::clock::ManualClock;

    fn app(name: &str, clock: &ManualClock) -> Arc<App> {
        let dir =
            std::env::temp_dir().join(format!("mimamori-sender-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg: crate::config::Config = toml::from_str(&format!(
            "data_dir = {dir:?}\n[admin]\ntoken = \"t\"\n[timing]\nmail_give_up = \"72h\"\n"
        ))
        .unwrap();
        crate::serve::build(cfg, Arc::new(clock.clone())).unwrap()
    }

    #[test]
    fn failing_mails_are_retried_then_given_up_after_mail_give_up() {
        const H: i64 = 3600 * 1000;
        let clock = ManualClock::new(1_790_000_000_000);
        let app = app("giveup", &clock);
        let stats = SenderStats::default();
        let t0 = app.now();
        let id = app
            .store
            .write(|tx| crate::notify::queue(tx, t0, "it@example.com", "s", "b", "alerts"))
            .unwrap();
        let outbox = |app: &App| app.store.read(|rx| rx.outbox()).unwrap();
        // failures within 72 h: retried with doubling, bounded delays
        let mut last_delay = 0;
        for _ in 0..30 {
            clock.advance(2 * H);
            if app.now() - t0 >= 72 * H {
                break;
            }
            let m = outbox(&app).into_iter().find(|m| m.id == id).unwrap();
            failed(&app, &stats, &m, "connection refused".into(), app.now()).unwrap();
            let m = outbox(&app).into_iter().find(|m| m.id == id).unwrap();
            let delay = m.next_attempt_ms - app.now();
            assert!(delay >= last_delay && delay <= 600_000, "{delay}");
            last_delay = delay;
            assert!(m.given_up_ms.is_none());
        }
        assert_eq!(app.store.read(|rx| rx.failed_mail_count()).unwrap(), 0);
        // 72 h after it was queued: given up, out of the outbox, never retried
        clock.set(t0 + 72 * H);
        let m = outbox(&app).into_iter().find(|m| m.id == id).unwrap();
        failed(&app, &stats, &m, "connection refused".into(), app.now()).unwrap();
        assert!(outbox(&app).is_empty(), "given-up mails leave the outbox");
        let f = app.store.read(|rx| rx.failed_mails()).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].given_up_ms, Some(t0 + 72 * H));
        assert_eq!(f[0].last_error.as_deref(), Some("connection refused"));
        assert_eq!(stats.given_up.load(std::sync::atomic::Ordering::Relaxed), 1);
        // a mail deleted while it was being sent (contract end) does not come back
        let id2 = app
            .store
            .write(|tx| crate::notify::queue(tx, app.now(), "x@example.com", "s", "b", "alerts"))
            .unwrap();
        let m2 = outbox(&app).into_iter().find(|m| m.id == id2).unwrap();
        app.store.write(|tx| tx.remove_mail(id2)).unwrap();
        failed(&app, &stats, &m2, "refused".into(), app.now()).unwrap();
        clock.advance(100 * H);
        failed(&app, &stats, &m2, "refused".into(), app.now()).unwrap();
        assert!(outbox(&app).is_empty());
        assert_eq!(app.store.read(|rx| rx.failed_mail_count()).unwrap(), 1);
    }

    #[test]
    fn give_up_is_configurable() {
        let mut t = crate::config::TimingConfig::default();
        assert_eq!(t.mail_give_up, Duration::from_secs(72 * 3600));
        t.mail_give_up = Duration::from_secs(60);
        let m = Mail {
            id: 1,
            to: "a@example.com".into(),
            subject: String::new(),
            body: String::new(),
            created_ms: 0,
            next_attempt_ms: 0,
            attempts: 0,
            last_error: None,
            kind: "test".into(),
            contract: None,
            given_up_ms: None,
        };
        assert!(
            matches!(after_failure(&t, &m, "e".into(), 59_999), AfterFailure::Retry(r) if r.next_attempt_ms == 59_999 + 10_000)
        );
        assert!(
            matches!(after_failure(&t, &m, "e".into(), 60_000), AfterFailure::GiveUp(g) if g.given_up_ms == Some(60_000))
        );
    }
}
