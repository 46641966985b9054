//! Guarded account checks: every password or code attempt is counted *before* it is
//! checked, in the same write as the lock test, so parallel guesses cannot pass the
//! lockout and a code cannot be used twice; argon2 runs under a small semaphore so a
//! flood of logins cannot exhaust memory or threads.

use std::collections::HashMap;
use std::sync::Mutex;

use super::auth::{self, Lockout, Totp};
use super::{Portal, PortalError};
use crate::store::PortalUser;

/// Unknown addresses remembered for their own lockout (so they answer like real ones).
const MAX_UNKNOWN: usize = 10_000;

fn lockout_of(u: &PortalUser) -> Lockout {
    Lockout {
        failures: u.failed_logins,
        locked_until_ms: u.locked_until_ms,
    }
}

fn set_lockout(u: &mut PortalUser, l: Lockout) {
    u.failed_logins = l.failures;
    u.locked_until_ms = l.locked_until_ms;
}

/// What an attempt came to.
#[derive(Debug)]
pub enum Attempt {
    /// The account is locked (now, or by this very failure).
    Locked,
    Wrong,
    /// Accepted; the account as stored afterwards.
    Ok(PortalUser),
    /// The account is gone, or changed since this login began.
    Gone,
}

/// Lockouts of addresses without an account.
#[derive(Default)]
pub struct UnknownLockouts(Mutex<HashMap<String, Lockout>>);

impl UnknownLockouts {
    /// Count a failure of an unknown address; true when it is (now) locked.
    fn failed(&self, email: &str, now: i64) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_UNKNOWN && !m.contains_key(email) {
            m.retain(|_, l| l.is_locked(now));
            if m.len() >= MAX_UNKNOWN {
                m.clear();
            }
        }
        let l = m.entry(email.to_string()).or_default();
        if l.is_locked(now) {
            return true;
        }
        l.failed(now);
        l.is_locked(now)
    }
}

impl Portal {
    /// Run argon2 work off the async threads, at most a few at a time; `Busy` beyond.
    pub async fn argon<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PortalError> {
        let _permit = self
            .argon_slots
            .try_acquire()
            .map_err(|_| PortalError::Busy)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| PortalError::Internal(e.to_string()))
    }

    /// A password attempt for `email`: the attempt is counted first, then the password
    /// checked (argon2), then the count cleared on success. `epoch`: the login's epoch
    /// when the attempt is made from a logged-in page (the account page).
    pub async fn password_attempt(
        &self,
        email: &str,
        password: String,
        epoch: Option<u64>,
    ) -> Result<Attempt, PortalError> {
        let now = self.app.now();
        let reserved = self.app.store.write(|tx| {
            let Some(mut u) = tx.user_by_email(email)? else {
                return Ok(None);
            };
            if epoch.is_some_and(|e| e != u.epoch) {
                return Ok(Some(Attempt::Gone));
            }
            let mut l = lockout_of(&u);
            if l.is_locked(now) {
                return Ok(Some(Attempt::Locked));
            }
            l.failed(now);
            set_lockout(&mut u, l);
            tx.put_user(&u)?;
            Ok(Some(Attempt::Ok(u)))
        })?;
        let user = match reserved {
            None => {
                // no such account: the same work and the same answers as a real one
                self.argon(move || auth::verify_password(&password, dummy_hash()))
                    .await?;
                return Ok(if self.unknown.failed(email, now) {
                    Attempt::Locked
                } else {
                    Attempt::Wrong
                });
            }
            Some(Attempt::Ok(u)) => u,
            Some(other) => {
                if matches!(other, Attempt::Locked) {
                    // as slow as a check, so a lock does not tell itself by its speed
                    self.argon(move || auth::verify_password(&password, dummy_hash()))
                        .await?;
                }
                return Ok(other);
            }
        };
        let hash = user.password_hash.clone();
        if !self
            .argon(move || auth::verify_password(&password, &hash))
            .await?
        {
            tracing::info!(user = user.id, "portal password refused");
            return Ok(if lockout_of(&user).is_locked(now) {
                Attempt::Locked
            } else {
                Attempt::Wrong
            });
        }
        if user.disabled {
            // a disabled account answers as a wrong password (and keeps its count)
            tracing::info!(user = user.id, "portal login of a disabled account refused");
            return Ok(if lockout_of(&user).is_locked(now) {
                Attempt::Locked
            } else {
                Attempt::Wrong
            });
        }
        let id = user.id;
        let user = self.app.store.write(|tx| {
            let Some(mut u) = tx.user(id)? else {
                return Ok(None);
            };
            set_lockout(&mut u, Lockout::default());
            tx.put_user(&u)?;
            Ok(Some(u))
        })?;
        Ok(user.map_or(Attempt::Gone, Attempt::Ok))
    }

    /// A TOTP code (or, with `recovery`, a recovery code) of user `id` at login epoch
    /// `epoch`: lock test, check, replay protection and counting in one write.
    pub fn code_attempt(
        &self,
        id: u64,
        epoch: u64,
        code: &str,
        recovery: bool,
    ) -> Result<(Attempt, bool), PortalError> {
        let now = self.app.now();
        let secs = (now.max(0) / 1000) as u64;
        Ok(self.app.store.write(|tx| {
            let Some(mut u) = tx.user(id)? else {
                return Ok((Attempt::Gone, false));
            };
            if u.epoch != epoch {
                return Ok((Attempt::Gone, false));
            }
            let mut l = lockout_of(&u);
            if l.is_locked(now) {
                return Ok((Attempt::Locked, false));
            }
            let totp = u.totp_secret.as_deref().and_then(Totp::from_base32);
            let mut used_recovery = false;
            let ok = if let Some(step) = totp.and_then(|t| t.verify(code, secs, u.totp_last_step)) {
                u.totp_last_step = Some(step);
                true
            } else if recovery && auth::use_recovery_code(code, &mut u.recovery_hashes) {
                used_recovery = true;
                true
            } else {
                false
            };
            if ok {
                l.succeeded();
            } else {
                l.failed(now);
            }
            set_lockout(&mut u, l);
            tx.put_user(&u)?;
            Ok(match (ok, l.is_locked(now)) {
                (true, _) => (Attempt::Ok(u), used_recovery),
                (false, true) => (Attempt::Locked, false),
                (false, false) => (Attempt::Wrong, false),
            })
        })?)
    }
}

/// A hash to check passwords of unknown addresses against (same time as a real one).
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| auth::hash_password("not-a-user-password").unwrap_or_default())
}

#[cfg(test)]
mod test {
    use std::sync::Arc;

    use super::*;

    fn portal(name: &str) -> Arc<Portal> {
        let dir =
            std::env::temp_dir().join(format!("mimamori-guard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg: crate::config::Config = toml::from_str(&format!("data_dir = {dir:?}\n")).unwrap();
        let clock = Arc::new(crate::clock::ManualClock::new(1_790_000_000_000));
        Portal::new(crate::serve::build(cfg, clock).unwrap())
    }

    fn user(p: &Portal, totp: &Totp, recovery: Vec<String>) -> PortalUser {
        let u = PortalUser {
            id: 1,
            contract_id: 1,
            email: "a@example.com".into(),
            password_hash: auth::hash_password("right-password-1").unwrap(),
            totp_secret: Some(totp.secret_base32()),
            recovery_hashes: recovery,
            ..Default::default()
        };
        p.app.store.write(|tx| tx.put_user(&u)).unwrap();
        u
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_guesses_cannot_pass_the_lockout() {
        let p = portal("parallel");
        user(&p, &Totp::generate(), vec![]);
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let p = Arc::clone(&p);
            tasks.push(tokio::spawn(async move {
                p.password_attempt("a@example.com", "wrong-password-9".into(), None)
                    .await
            }));
        }
        let mut wrong = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Attempt::Wrong) => wrong += 1,
                Ok(Attempt::Locked) | Err(PortalError::Busy) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(
            wrong <= 4,
            "at most four plain refusals before the lock, got {wrong}"
        );
        let right = p
            .password_attempt("a@example.com", "right-password-1".into(), None)
            .await
            .unwrap();
        assert!(
            matches!(right, Attempt::Locked),
            "the lock holds: {right:?}"
        );
        // unknown addresses answer the same way, lock included
        for _ in 0..4 {
            let r = p
                .password_attempt("nobody@example.com", "x".into(), None)
                .await
                .unwrap();
            assert!(matches!(r, Attempt::Wrong));
        }
        let r = p
            .password_attempt("nobody@example.com", "x".into(), None)
            .await
            .unwrap();
        assert!(matches!(r, Attempt::Locked));
    }

    #[test]
    fn codes_work_once_and_a_stale_login_is_gone() {
        let p = portal("codes");
        let totp = Totp::generate();
        let (codes, hashes) = auth::recovery_codes();
        let u = user(&p, &totp, hashes);
        let now = (p.app.now() / 1000) as u64;
        let code = totp.code_at(now);
        assert!(matches!(
            p.code_attempt(u.id, 0, &code, true).unwrap().0,
            Attempt::Ok(_)
        ));
        assert!(
            matches!(
                p.code_attempt(u.id, 0, &code, true).unwrap().0,
                Attempt::Wrong
            ),
            "a code is not accepted twice"
        );
        let (ok, used) = p.code_attempt(u.id, 0, &codes[0], true).unwrap();
        assert!(matches!(ok, Attempt::Ok(_)) && used);
        assert!(matches!(
            p.code_attempt(u.id, 0, &codes[0], true).unwrap().0,
            Attempt::Wrong
        ));
        assert!(
            matches!(
                p.code_attempt(u.id, 0, &codes[1], false).unwrap().0,
                Attempt::Wrong
            ),
            "no recovery codes where they are not offered"
        );
        assert!(matches!(
            p.code_attempt(u.id, 1, &codes[1], true).unwrap().0,
            Attempt::Gone
        ));
    }
}
