//! Admission of connections to ingest before and after authentication.
//!
//! A connection first holds an *unauthenticated* slot (a budget of its own, and a limit
//! per source IP address) while it does TLS and sends its `Hello` (or activates), within
//! absolute deadlines. Once its device certificate is accepted it trades that slot for an
//! *authenticated* one (the rest of `max_connections`, with its own per-source limit), so
//! clients that never authenticate cannot take the slots of real appliances.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::IngestConfig;

/// Counters of admission (also shown by `admin ops status`).
#[derive(Debug, Default)]
pub struct AdmitStats {
    pub accepted: AtomicU64,
    /// Refused at accept: the source address holds its share of unauthenticated slots.
    pub refused_source: AtomicU64,
    /// Refused at accept: every unauthenticated slot is taken.
    pub refused_unauthenticated_full: AtomicU64,
    /// Refused after authentication: every session slot (or the source's) is taken.
    pub refused_sessions_full: AtomicU64,
    pub tls_timeouts: AtomicU64,
    pub tls_failures: AtomicU64,
    /// Closed because no valid `Hello` (or activation) came within the deadline.
    pub hello_timeouts: AtomicU64,
    /// Closed because a frame before authentication was larger than allowed.
    pub pre_auth_oversized: AtomicU64,
    /// Connections holding an unauthenticated slot now.
    pub unauthenticated_open: AtomicU64,
    /// Authenticated sessions now.
    pub sessions_open: AtomicU64,
}

impl AdmitStats {
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "accepted": self.accepted.load(Relaxed),
            "refused_source": self.refused_source.load(Relaxed),
            "refused_unauthenticated_full": self.refused_unauthenticated_full.load(Relaxed),
            "refused_sessions_full": self.refused_sessions_full.load(Relaxed),
            "tls_timeouts": self.tls_timeouts.load(Relaxed),
            "tls_failures": self.tls_failures.load(Relaxed),
            "hello_timeouts": self.hello_timeouts.load(Relaxed),
            "pre_auth_oversized": self.pre_auth_oversized.load(Relaxed),
            "unauthenticated_open": self.unauthenticated_open.load(Relaxed),
            "sessions_open": self.sessions_open.load(Relaxed),
        })
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct PerSource {
    unauthenticated: usize,
    sessions: usize,
}

/// The listener's budgets.
pub struct Admission {
    unauthenticated: Arc<Semaphore>,
    sessions: Arc<Semaphore>,
    per_source: Mutex<HashMap<IpAddr, PerSource>>,
    max_unauth_per_source: usize,
    max_sessions_per_source: usize,
    stats: Arc<AdmitStats>,
}

impl Admission {
    pub fn new(cfg: &IngestConfig, stats: Arc<AdmitStats>) -> Arc<Admission> {
        let unauth = cfg.max_unauthenticated.clamp(1, cfg.max_connections.max(1));
        let sessions = cfg.max_connections.saturating_sub(unauth).max(1);
        Arc::new(Admission {
            unauthenticated: Arc::new(Semaphore::new(unauth)),
            sessions: Arc::new(Semaphore::new(sessions)),
            per_source: Mutex::new(HashMap::new()),
            max_unauth_per_source: cfg.max_unauthenticated_per_source.max(1),
            max_sessions_per_source: cfg.max_sessions_per_source.max(1),
            stats,
        })
    }

    /// No limits (unit tests and the fuzz target).
    pub fn unlimited() -> Arc<Admission> {
        let cfg = IngestConfig {
            max_connections: 1 << 20,
            max_unauthenticated: 1 << 19,
            max_unauthenticated_per_source: usize::MAX,
            max_sessions_per_source: usize::MAX,
            ..IngestConfig::default()
        };
        Admission::new(&cfg, Default::default())
    }

    fn source<R>(&self, f: impl FnOnce(&mut HashMap<IpAddr, PerSource>) -> R) -> R {
        let mut m = self.per_source.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut m)
    }

    fn release_source(&self, ip: IpAddr, unauth: bool) {
        self.source(|m| {
            if let Some(p) = m.get_mut(&ip) {
                if unauth {
                    p.unauthenticated = p.unauthenticated.saturating_sub(1);
                } else {
                    p.sessions = p.sessions.saturating_sub(1);
                }
                if p.unauthenticated == 0 && p.sessions == 0 {
                    m.remove(&ip);
                }
            }
        })
    }

    /// A new connection from `ip`: an unauthenticated slot, or `None` (close it now).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let over = self.source(|m| {
            let p = m.entry(ip).or_default();
            if p.unauthenticated >= self.max_unauth_per_source {
                true
            } else {
                p.unauthenticated += 1;
                false
            }
        });
        if over {
            self.stats.refused_source.fetch_add(1, Relaxed);
            return None;
        }
        let Ok(permit) = Arc::clone(&self.unauthenticated).try_acquire_owned() else {
            self.release_source(ip, true);
            self.stats
                .refused_unauthenticated_full
                .fetch_add(1, Relaxed);
            return None;
        };
        self.stats.accepted.fetch_add(1, Relaxed);
        self.stats.unauthenticated_open.fetch_add(1, Relaxed);
        Some(Ticket {
            adm: Arc::clone(self),
            ip,
            state: State::Unauthenticated(permit),
        })
    }

    pub fn stats(&self) -> &AdmitStats {
        &self.stats
    }
}

enum State {
    Unauthenticated(OwnedSemaphorePermit),
    Session(OwnedSemaphorePermit),
    None,
}

/// The slot one connection holds; released when dropped.
pub struct Ticket {
    adm: Arc<Admission>,
    ip: IpAddr,
    state: State,
}

impl Ticket {
    /// The device was authenticated: trade the unauthenticated slot for a session slot.
    /// False when the sessions (in total or from this source) are at their limit.
    pub fn authenticated(&mut self) -> bool {
        if matches!(self.state, State::Session(_)) {
            return true;
        }
        let max = self.adm.max_sessions_per_source;
        let ok = self.adm.source(|m| {
            let p = m.entry(self.ip).or_default();
            if p.sessions >= max {
                false
            } else {
                p.sessions += 1;
                true
            }
        });
        if !ok {
            self.adm.stats.refused_sessions_full.fetch_add(1, Relaxed);
            return false;
        }
        let Ok(permit) = Arc::clone(&self.adm.sessions).try_acquire_owned() else {
            self.adm.release_source(self.ip, false);
            self.adm.stats.refused_sessions_full.fetch_add(1, Relaxed);
            return false;
        };
        self.release();
        self.state = State::Session(permit);
        self.adm.stats.sessions_open.fetch_add(1, Relaxed);
        true
    }

    pub fn stats(&self) -> &AdmitStats {
        &self.adm.stats
    }

    fn release(&mut self) {
        match std::mem::replace(&mut self.state, State::None) {
            State::Unauthenticated(p) => {
                drop(p);
                self.adm.release_source(self.ip, true);
                self.adm.stats.unauthenticated_open.fetch_sub(1, Relaxed);
            }
            State::Session(p) => {
                drop(p);
                self.adm.release_source(self.ip, false);
                self.adm.stats.sessions_open.fetch_sub(1, Relaxed);
            }
            State::None => {}
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

/// Raises this process's soft limit of open files to its hard limit (every connection
/// holds one); returns the limit in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur as u64)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn per_source_and_total_budgets() {
        let cfg = IngestConfig {
            max_connections: 10,
            max_unauthenticated: 4,
            max_unauthenticated_per_source: 2,
            max_sessions_per_source: 3,
            ..IngestConfig::default()
        };
        let adm = Admission::new(&cfg, Default::default());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let c: IpAddr = "127.0.0.4".parse().unwrap();
        let a1 = adm.admit(a).unwrap();
        let a2 = adm.admit(a).unwrap();
        assert!(adm.admit(a).is_none(), "per source");
        let b1 = adm.admit(b).unwrap();
        let mut b2 = adm.admit(b).unwrap();
        assert!(adm.admit(c).is_none(), "unauthenticated budget full");
        // authenticating frees the unauthenticated slot
        assert!(b2.authenticated());
        let c1 = adm.admit(c).unwrap();
        drop(a1);
        let a3 = adm.admit(a).unwrap();
        assert_eq!(adm.stats().sessions_open.load(Relaxed), 1);
        assert_eq!(adm.stats().unauthenticated_open.load(Relaxed), 4);
        drop(b2);
        assert_eq!(adm.stats().sessions_open.load(Relaxed), 0);
        drop((a2, b1, c1, a3));
        assert_eq!(adm.stats().unauthenticated_open.load(Relaxed), 0);
        // sessions from one source: at most 3
        let mut s: Vec<Ticket> = Vec::new();
        for _ in 0..3 {
            let mut t = adm.admit(c).unwrap_or_else(|| panic!("slot"));
            assert!(t.authenticated());
            s.push(t);
        }
        let mut t = adm.admit(c).unwrap_or_else(|| panic!("slot"));
        assert!(!t.authenticated(), "per-source session limit");
    }
}
