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
                Err(e) => {
                    stats.failed_attempts.fetch_add(1, Relaxed);
                    let min = app.cfg.timing.mail_retry_min.as_millis() as i64;
                    let max = app.cfg.timing.mail_retry_max.as_millis() as i64;
                    let delay = (min.saturating_mul(1i64 << m.attempts.min(20))).min(max);
                    tracing::warn!(to = %m.to, attempts = m.attempts + 1, retry_in_ms = delay, error = %e, "mail delivery failed; will retry");
                    let mut m = m.clone();
                    m.attempts += 1;
                    m.next_attempt_ms = now + delay;
                    m.last_error = Some(e);
                    app.store.write(|tx| tx.put_mail(&m))
                }
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
