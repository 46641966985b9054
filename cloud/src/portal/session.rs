//! Portal sessions: every visitor gets one (so even the login form carries a CSRF token);
//! logging in replaces it with a fresh id. Kept in memory: a restart logs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;

use super::auth;

/// The session cookie's name.
pub const COOKIE: &str = "mimamori_session";
/// The language cookie's name.
pub const LANG_COOKIE: &str = "mimamori_lang";
/// A login lasts at most this long, however active.
pub const MAX_AGE_MS: i64 = 12 * 3600 * 1000;
/// Sessions kept at most (the oldest idle ones go first).
const MAX_SESSIONS: usize = 100_000;

/// Where a visitor stands in the login sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Not logged in.
    Anonymous,
    /// Password accepted; the temporary password must be replaced.
    ChangePassword,
    /// Password accepted; an authenticator must be enrolled (secret shown on the page).
    Enroll { secret: String },
    /// Password accepted; the TOTP code (or a recovery code) is next.
    Totp,
    /// Logged in; the freshly issued recovery codes are shown once.
    ShowRecovery { codes: Vec<String> },
    /// Logged in.
    Full,
}

/// A one-time message shown on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub stage: Stage,
    pub user: u64,
    pub contract: u64,
    pub email: String,
    /// The user's epoch at login: a password reset or change elsewhere ends this login.
    pub epoch: u64,
    pub created_ms: i64,
    pub seen_ms: i64,
    pub flash: Option<Flash>,
}

impl Session {
    pub fn anonymous(now: i64) -> Session {
        Session {
            stage: Stage::Anonymous,
            user: 0,
            contract: 0,
            email: String::new(),
            epoch: 0,
            created_ms: now,
            seen_ms: now,
            flash: None,
        }
    }
}

/// All sessions.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle_ms: i64,
}

impl Sessions {
    pub fn new(idle_ms: i64) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle_ms,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self, s: &Session, now: i64) -> bool {
        now - s.seen_ms <= self.idle_ms && now - s.created_ms <= MAX_AGE_MS
    }

    /// The session of a cookie value, refreshed; `None` when unknown or expired.
    pub fn touch(&self, id: &str, now: i64) -> Option<Session> {
        let mut m = self.lock();
        let live = m.get(id).map(|s| self.live(s, now))?;
        if !live {
            m.remove(id);
            return None;
        }
        let s = m.get_mut(id)?;
        s.seen_ms = now;
        Some(s.clone())
    }

    /// Store `s` under a new id, dropping `old` (login: no session fixation). Only
    /// password-checked sessions are stored.
    pub fn rotate(&self, old: &str, s: Session) -> String {
        let id = auth::new_session_id();
        let now = s.seen_ms;
        let mut m = self.lock();
        m.remove(old);
        if m.len() >= MAX_SESSIONS {
            m.retain(|_, x| self.live(x, now));
            if m.len() >= MAX_SESSIONS {
                // still full: the longest idle goes
                if let Some(k) = m
                    .iter()
                    .min_by_key(|(_, x)| x.seen_ms)
                    .map(|(k, _)| k.clone())
                {
                    m.remove(&k);
                }
            }
        }
        m.insert(id.clone(), s);
        id
    }

    /// Change a session in place (no-op when it ended meanwhile).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Session)) {
        if let Some(s) = self.lock().get_mut(id) {
            f(s);
        }
    }

    /// Take the flash message of a session.
    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        self.lock().get_mut(id).and_then(|s| s.flash.take())
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn idle_and_absolute_expiry_and_rotation() {
        let s = Sessions::new(1000);
        let a = s.rotate("", Session::anonymous(0));
        assert!(s.touch(&a, 900).is_some());
        assert!(
            s.touch(&a, 1800).is_some(),
            "touching extends the idle time"
        );
        assert!(s.touch(&a, 2801).is_none(), "idle too long");
        assert!(s.touch(&a, 2802).is_none(), "and gone");
        let b = s.rotate("", Session::anonymous(0));
        let mut sess = s.touch(&b, 1).unwrap();
        sess.stage = Stage::Full;
        let c = s.rotate(&b, sess);
        assert_ne!(b, c);
        assert!(
            s.touch(&b, 2).is_none(),
            "the old id is dead after rotation"
        );
        assert_eq!(s.touch(&c, 2).unwrap().stage, Stage::Full);
        let long = Sessions::new(i64::MAX / 4);
        let d = long.rotate("", Session::anonymous(0));
        assert!(long.touch(&d, MAX_AGE_MS).is_some());
        assert!(
            long.touch(&d, MAX_AGE_MS + 1).is_none(),
            "absolute lifetime"
        );
    }
}
