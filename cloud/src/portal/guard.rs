//! Guarded account checks: every password or code attempt is counted *before* it is
//! checked, in the same write as the lock test, so parallel guesses cannot pass the
//! lockout and a code cannot be used twice; argon2 runs under a small semaphore with a
//! short, bounded queue so a flood of logins can neither exhaust memory or threads nor
//! turn every user away at once.
//!
//! Passwords and second-factor codes have separate budgets: a correct password clears
//! the password failures only, never the code failures (see [`Lockout::code_failed`]), so
//! "password again, four more codes" cannot go on for ever.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::auth::{self, Lockout, Totp};
use super::{Portal, PortalError};
use crate::store::PortalUser;

/// Unknown addresses remembered for their own lockout (so they answer like real ones):
/// 16 bytes of keyed hash and a [`Lockout`] each, a few MiB at most. Entries that no
/// longer differ from a fresh one (no lock, no recent series) are dropped first, so the
/// bound is only reached by far more argon2 checks per 15 minutes than the portal can
/// run.
const MAX_UNKNOWN: usize = 200_000;

/// How many logins may wait for an argon2 slot, per slot.
const ARGON_QUEUE_PER_SLOT: usize = 32;
/// How long a login waits for an argon2 slot before it is told to try again later.
const ARGON_MAX_WAIT: Duration = Duration::from_secs(3);

fn lockout_of(u: &PortalUser) -> Lockout {
    Lockout {
        failures: u.failed_logins,
        locked_until_ms: u.locked_until_ms,
        last_failure_ms: u.last_failed_login_ms,
    }
}

fn set_lockout(u: &mut PortalUser, l: Lockout) {
    u.failed_logins = l.failures;
    u.locked_until_ms = l.locked_until_ms;
    u.last_failed_login_ms = l.last_failure_ms;
}

fn code_lockout_of(u: &PortalUser) -> Lockout {
    Lockout {
        failures: u.code_failures,
        locked_until_ms: u.code_locked_until_ms,
        last_failure_ms: u.last_code_failure_ms,
    }
}

fn set_code_lockout(u: &mut PortalUser, l: Lockout) {
    u.code_failures = l.failures;
    u.code_locked_until_ms = l.locked_until_ms;
    u.last_code_failure_ms = l.last_failure_ms;
}

/// Whether the second factor of `u` is locked at `now` (told only to whoever gave the
/// right password).
pub fn code_locked(u: &PortalUser, now: i64) -> bool {
    code_lockout_of(u).is_locked(now)
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

/// Lockouts of addresses without an account, keyed by a keyed hash of the address (the
/// addresses themselves are not kept). Bounded: see [`MAX_UNKNOWN`]; under pressure the
/// entries that no longer matter go first, then those with the fewest failures, oldest
/// first, locked ones last, so a flood of fresh addresses cannot wipe the lock or the
/// count of one being probed (which would tell it apart from a real account).
pub struct UnknownLockouts {
    key: [u8; 32],
    cap: usize,
    map: Mutex<HashMap<[u8; 16], Lockout>>,
}

impl Default for UnknownLockouts {
    fn default() -> Self {
        UnknownLockouts::with_capacity(MAX_UNKNOWN)
    }
}

impl UnknownLockouts {
    fn with_capacity(cap: usize) -> Self {
        UnknownLockouts {
            key: rand::random(),
            cap: cap.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn key_of(&self, email: &str) -> [u8; 16] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(email.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut k = [0u8; 16];
        k.copy_from_slice(&tag[..16]);
        k
    }

    /// Count a failure of an unknown address; true when it is (now) locked.
    fn failed(&self, email: &str, now: i64) -> bool {
        let k = self.key_of(email);
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.cap && !m.contains_key(&k) {
            m.retain(|_, l| l.matters(now));
            if m.len() >= self.cap {
                // everything still matters: give up the least telling tenth (a flood)
                let mut order: Vec<([u8; 16], (bool, u32, i64))> = m
                    .iter()
                    .map(|(k, l)| (*k, (l.is_locked(now), l.failures, l.last_failure_ms)))
                    .collect();
                let n = (self.cap / 10).max(1).min(order.len());
                order.select_nth_unstable_by_key(n - 1, |e| e.1);
                for (k, _) in &order[..n] {
                    m.remove(k);
                }
                tracing::warn!(
                    dropped = n,
                    "portal: lockout table of unknown addresses full, least telling entries dropped"
                );
            }
        }
        let l = m.entry(k).or_default();
        if l.is_locked(now) {
            return true;
        }
        l.failed(now);
        l.is_locked(now)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Argon2 work at most `slots` at a time; beyond, a bounded queue (first come, first
/// served) waits a bounded time for a slot, and only then is a login told `Busy`.
pub struct ArgonGate {
    slots: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

/// Leaves the queue however the wait ends (also when the request is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ArgonGate {
    /// `slots` checks at once, up to [`ARGON_QUEUE_PER_SLOT`] waiting per slot for up to
    /// [`ARGON_MAX_WAIT`].
    pub fn new(slots: usize) -> ArgonGate {
        ArgonGate::with_queue(slots, slots * ARGON_QUEUE_PER_SLOT, ARGON_MAX_WAIT)
    }

    fn with_queue(slots: usize, max_waiting: usize, max_wait: Duration) -> ArgonGate {
        ArgonGate {
            slots: tokio::sync::Semaphore::new(slots.max(1)),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// Run `f` (argon2) off the async threads once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PortalError> {
        let _permit = match self.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                let before = self.waiting.fetch_add(1, Ordering::SeqCst);
                let _queued = Waiting(&self.waiting);
                if before >= self.max_waiting {
                    tracing::warn!("portal: argon2 queue full, login refused as busy");
                    return Err(PortalError::Busy);
                }
                match tokio::time::timeout(self.max_wait, self.slots.acquire()).await {
                    Ok(Ok(p)) => p,
                    _ => {
                        tracing::warn!("portal: no argon2 slot in time, login refused as busy");
                        return Err(PortalError::Busy);
                    }
                }
            }
        };
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| PortalError::Internal(e.to_string()))
    }
}

/// The first step of a code check.
enum CodeStep {
    Done(Attempt),
    /// Not the TOTP code (already counted as a failure); may be one of these recovery
    /// codes. `locked`: the count has reached the lock.
    Recovery {
        hashes: Vec<String>,
        locked: bool,
    },
}

impl Portal {
    /// Run argon2 work off the async threads, at most a few at a time; beyond, a short
    /// bounded wait ([`ArgonGate`]), then `Busy`.
    pub async fn argon<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PortalError> {
        self.argon_slots.run(f).await
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
    /// `epoch`: lock test, TOTP check, replay protection and counting in one write; a
    /// recovery code (salted argon2) is then checked off the async threads and used up in
    /// a second write. Codes have their own budget ([`Lockout::code_failed`]): only a
    /// correct code clears it. Returns the outcome and whether a recovery code was used.
    pub async fn code_attempt(
        &self,
        id: u64,
        epoch: u64,
        code: &str,
        recovery: bool,
    ) -> Result<(Attempt, bool), PortalError> {
        let now = self.app.now();
        let secs = (now.max(0) / 1000) as u64;
        let maybe_recovery = recovery && auth::recovery_candidate(code).is_some();
        let step = self.app.store.write(|tx| {
            let Some(mut u) = tx.user(id)? else {
                return Ok(CodeStep::Done(Attempt::Gone));
            };
            if u.epoch != epoch {
                return Ok(CodeStep::Done(Attempt::Gone));
            }
            let mut l = code_lockout_of(&u);
            if l.is_locked(now) {
                return Ok(CodeStep::Done(Attempt::Locked));
            }
            let totp = u.totp_secret.as_deref().and_then(Totp::from_base32);
            if let Some(step) = totp.and_then(|t| t.verify(code, secs, u.totp_last_step)) {
                u.totp_last_step = Some(step);
                set_code_lockout(&mut u, Lockout::default());
                tx.put_user(&u)?;
                return Ok(CodeStep::Done(Attempt::Ok(u)));
            }
            // counted before any recovery-code check, so parallel guesses cannot pass
            l.code_failed(now);
            set_code_lockout(&mut u, l);
            tx.put_user(&u)?;
            let locked = l.is_locked(now);
            if maybe_recovery && !u.recovery_hashes.is_empty() {
                return Ok(CodeStep::Recovery {
                    hashes: u.recovery_hashes.clone(),
                    locked,
                });
            }
            Ok(CodeStep::Done(if locked {
                Attempt::Locked
            } else {
                Attempt::Wrong
            }))
        })?;
        let (hashes, locked) = match step {
            CodeStep::Done(a) => {
                if matches!(a, Attempt::Ok(_)) {
                    tracing::info!(user = id, "portal code accepted");
                } else {
                    tracing::info!(user = id, outcome = ?a, "portal code refused");
                }
                return Ok((a, false));
            }
            CodeStep::Recovery { hashes, locked } => (hashes, locked),
        };
        let typed = code.to_string();
        let found = self
            .argon(move || auth::find_recovery_code(&typed, &hashes).map(|i| hashes[i].clone()))
            .await?;
        let refused = if locked {
            Attempt::Locked
        } else {
            Attempt::Wrong
        };
        let Some(hash) = found else {
            tracing::info!(user = id, "portal recovery code refused");
            return Ok((refused, false));
        };
        Ok(self.app.store.write(|tx| {
            let Some(mut u) = tx.user(id)? else {
                return Ok((Attempt::Gone, false));
            };
            if u.epoch != epoch {
                return Ok((Attempt::Gone, false));
            }
            // used up meanwhile by a parallel attempt: refused like any wrong code
            let Some(i) = u.recovery_hashes.iter().position(|h| *h == hash) else {
                let locked = code_lockout_of(&u).is_locked(now);
                return Ok((
                    if locked {
                        Attempt::Locked
                    } else {
                        Attempt::Wrong
                    },
                    false,
                ));
            };
            u.recovery_hashes.remove(i);
            set_code_lockout(&mut u, Lockout::default());
            tx.put_user(&u)?;
            Ok((Attempt::Ok(u), true))
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
        portal_clock(name).0
    }

    fn portal_clock(name: &str) -> (Arc<Portal>, Arc<crate::clock::ManualClock>) {
        let dir =
            std::env::temp_dir().join(format!("mimamori-guard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg: crate::config::Config = toml::from_str(&format!("data_dir = {dir:?}\n")).unwrap();
        let clock = Arc::new(crate::clock::ManualClock::new(1_790_000_000_000));
        let c: Arc<dyn crate::clock::Clock> = clock.clone();
        (Portal::new(crate::serve::build(cfg, c).unwrap()), clock)
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

    #[tokio::test]
    async fn codes_work_once_and_a_stale_login_is_gone() {
        let p = portal("codes");
        let totp = Totp::generate();
        let (codes, hashes) = auth::recovery_codes().unwrap();
        let u = user(&p, &totp, hashes);
        let now = (p.app.now() / 1000) as u64;
        let code = totp.code_at(now);
        let attempt = |code: String, recovery: bool, epoch: u64| {
            let p = Arc::clone(&p);
            async move { p.code_attempt(1, epoch, &code, recovery).await.unwrap() }
        };
        assert!(matches!(
            attempt(code.clone(), true, 0).await.0,
            Attempt::Ok(_)
        ));
        assert!(
            matches!(attempt(code.clone(), true, 0).await.0, Attempt::Wrong),
            "a code is not accepted twice"
        );
        let (ok, used) = attempt(codes[0].clone(), true, 0).await;
        assert!(matches!(ok, Attempt::Ok(_)) && used);
        assert!(matches!(
            attempt(codes[0].clone(), true, 0).await.0,
            Attempt::Wrong
        ));
        assert!(
            matches!(attempt(codes[1].clone(), false, 0).await.0, Attempt::Wrong),
            "no recovery codes where they are not offered"
        );
        assert!(matches!(
            attempt(codes[1].clone(), true, 1).await.0,
            Attempt::Gone
        ));
        let _ = u;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_correct_password_does_not_reset_the_code_budget() {
        let (p, clock) = portal_clock("mfa-budget");
        let totp = Totp::generate();
        let (codes, hashes) = auth::recovery_codes().unwrap();
        let u = user(&p, &totp, hashes);
        let mut wrong = 0;
        let mut locked = false;
        // the attack: password, a wrong code, password again, ...
        for _ in 0..8 {
            let a = p
                .password_attempt("a@example.com", "right-password-1".into(), None)
                .await
                .unwrap();
            let Attempt::Ok(after) = a else {
                panic!("the right password is accepted: {a:?}")
            };
            if code_locked(&after, p.app.now()) {
                locked = true;
                break;
            }
            match p.code_attempt(u.id, 0, "000000", true).await.unwrap().0 {
                Attempt::Wrong => wrong += 1,
                Attempt::Locked => {
                    wrong += 1;
                    locked = true;
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            locked && wrong <= 5,
            "locked within 5 wrong codes ({wrong})"
        );
        // the lock holds for the right code and for a recovery code, across logins
        let now = (p.app.now() / 1000) as u64;
        let right = totp.code_at(now);
        assert!(matches!(
            p.code_attempt(u.id, 0, &right, true).await.unwrap().0,
            Attempt::Locked
        ));
        assert!(matches!(
            p.code_attempt(u.id, 0, &codes[0], true).await.unwrap().0,
            Attempt::Locked
        ));
        // after the lock: one more wrong code locks again at once (no fresh budget)
        let later = p.app.now() + Lockout::LOCK_MS + 1;
        clock.set(later);
        assert!(matches!(
            p.code_attempt(u.id, 0, "000000", true).await.unwrap().0,
            Attempt::Locked
        ));
        // a correct code after that lock clears the budget
        clock.set(later + 2 * Lockout::LOCK_MS + 1);
        let now = (p.app.now() / 1000) as u64;
        let (ok, _) = p
            .code_attempt(u.id, 0, &totp.code_at(now), true)
            .await
            .unwrap();
        let Attempt::Ok(after) = ok else {
            panic!("the right code after the lock: {ok:?}")
        };
        assert_eq!((after.code_failures, after.code_locked_until_ms), (0, 0));
    }

    #[test]
    fn unknown_lockouts_survive_a_flood_like_real_ones() {
        let t0 = 1_790_000_000_000i64;
        let u = UnknownLockouts::with_capacity(100);
        // probed: four failures on one address, a lock on another
        for _ in 0..4 {
            assert!(!u.failed("probed@example.com", t0));
        }
        for _ in 0..5 {
            u.failed("locked@example.com", t0);
        }
        // a flood of fresh addresses, ten times the table
        for i in 0..1000 {
            u.failed(&format!("flood{i}@example.com"), t0 + 1);
            assert!(u.len() <= 100, "bounded");
        }
        // as a real account would: the lock holds, the fifth failure locks
        assert!(u.failed("locked@example.com", t0 + 2));
        assert!(u.failed("probed@example.com", t0 + 2));
        // entries that no longer matter make room first
        let later = t0 + 2 + Lockout::LOCK_MS + 1;
        for i in 0..50 {
            u.failed(&format!("late{i}@example.com"), later);
        }
        assert!(u.len() <= 100);
        assert!(!u.failed("flood1@example.com", later), "a fresh series");
        // addresses are not kept in clear
        let m = u.map.lock().unwrap();
        assert!(m.keys().all(|k| k.len() == 16));
    }

    fn blocker() -> (
        Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
        impl Fn() + Clone,
    ) {
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let g = Arc::clone(&gate);
        let wait = move || {
            let (m, c) = &*g;
            let mut open = m.lock().unwrap();
            while !*open {
                open = c.wait(open).unwrap();
            }
        };
        (gate, wait)
    }

    fn open(gate: &(std::sync::Mutex<bool>, std::sync::Condvar)) {
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }

    async fn until(f: impl Fn() -> bool) {
        for _ in 0..1000 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("condition never held");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_login_flood_queues_briefly_instead_of_failing_everyone() {
        let gate = Arc::new(ArgonGate::with_queue(1, 2, Duration::from_secs(30)));
        let (release, wait) = blocker();
        let running = Arc::new(AtomicUsize::new(0));
        let spawn = |gate: &Arc<ArgonGate>| {
            let (g, w, r) = (Arc::clone(gate), wait.clone(), Arc::clone(&running));
            tokio::spawn(async move {
                g.run(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    w();
                })
                .await
            })
        };
        let first = spawn(&gate);
        until(|| running.load(Ordering::SeqCst) == 1).await;
        // two wait in the queue ...
        let queued = [spawn(&gate), spawn(&gate)];
        until(|| gate.waiting.load(Ordering::SeqCst) == 2).await;
        // ... the queue is bounded: more are told at once to come back
        for _ in 0..3 {
            assert!(matches!(
                spawn(&gate).await.unwrap(),
                Err(PortalError::Busy)
            ));
        }
        open(&release);
        assert!(first.await.unwrap().is_ok());
        for q in queued {
            assert!(q.await.unwrap().is_ok(), "a queued login gets its turn");
        }
        assert_eq!(running.load(Ordering::SeqCst), 3);
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);

        // the wait is bounded too
        let gate = Arc::new(ArgonGate::with_queue(1, 8, Duration::from_millis(200)));
        let (release, wait) = blocker();
        let running = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&running);
        let g = Arc::clone(&gate);
        let holder = tokio::spawn(async move {
            g.run(move || {
                r.fetch_add(1, Ordering::SeqCst);
                wait();
            })
            .await
        });
        until(|| running.load(Ordering::SeqCst) == 1).await;
        assert!(matches!(gate.run(|| ()).await, Err(PortalError::Busy)));
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
        open(&release);
        assert!(holder.await.unwrap().is_ok());
        assert!(gate.run(|| ()).await.is_ok(), "free again");
    }
}
