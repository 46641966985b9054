//! `GET /healthz` on the admin listener (no token: for load balancers and monitoring):
//! whether the store can commit, the store writer runs, mails leave (oldest queued mail,
//! SMTP reachable) and the data folder's disk has room. 200 when every part is healthy,
//! 503 naming the failing parts otherwise.
//!
//! Checks that cost something are cached briefly (the store probe is one small fsynced
//! transaction, the SMTP check one TCP connect), so polling the endpoint cannot load the
//! service.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::App;

/// How long a store probe's outcome is reused.
const STORE_TTL: Duration = Duration::from_secs(5);
/// How long an SMTP connect's outcome is reused.
const SMTP_TTL: Duration = Duration::from_secs(10);
/// Timeout of the SMTP connect.
const SMTP_CONNECT: Duration = Duration::from_secs(3);
/// Below this much free space on the data folder's file system, the disk is failing.
pub const DISK_MIN_FREE: u64 = 1024 * 1024;
/// A mail queued longer than this (not delivered): the outbox is failing.
pub const OUTBOX_MAX_AGE: Duration = Duration::from_secs(3600);

type Cached = Mutex<Option<(Instant, Result<(), String>)>>;

/// Cached outcomes of the costly checks (one per service).
#[derive(Default)]
pub struct Health {
    store: Cached,
    smtp: Cached,
}

/// One part of the report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Part {
    pub ok: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Part {
    fn of(r: Result<(), String>) -> Part {
        match r {
            Ok(()) => Part {
                ok: true,
                detail: String::new(),
            },
            Err(detail) => Part { ok: false, detail },
        }
    }
}

/// The outbox part.
#[derive(Debug, Clone, Serialize)]
pub struct Outbox {
    pub ok: bool,
    pub queued: usize,
    /// Age of the oldest queued mail, seconds (0 when empty).
    pub oldest_age_secs: u64,
}

/// The disk part (the file system of `data_dir`).
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub ok: bool,
    pub free_bytes: u64,
    pub total_bytes: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What `/healthz` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub healthy: bool,
    /// Names of the failing parts.
    pub failing: Vec<&'static str>,
    pub store: Part,
    pub writer: Part,
    pub outbox: Outbox,
    pub smtp: Part,
    pub disk: Disk,
}

fn cached(
    c: &Cached,
    ttl: Duration,
    check: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    {
        let g = c.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, r)) = &*g
            && t.elapsed() < ttl
        {
            return r.clone();
        }
    }
    let r = check();
    *c.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), r.clone()));
    r
}

/// Free and total bytes of the file system holding `p`.
pub fn disk_space(p: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `s` a writable statvfs
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = s.f_frsize as u64;
    Ok((
        (s.f_bavail as u64).saturating_mul(frsize),
        (s.f_blocks as u64).saturating_mul(frsize),
    ))
}

/// Check everything (blocking parts run off the async threads).
pub async fn check(app: &std::sync::Arc<App>) -> Report {
    let a = std::sync::Arc::clone(app);
    let (store, outbox, disk) = tokio::task::spawn_blocking(move || {
        let store = match a.store.failure() {
            Some(e) => Err(format!("the database failed: {e}")),
            None => cached(&a.health.store, STORE_TTL, || {
                a.store.probe(a.now()).map_err(|e| e.to_string())
            }),
        };
        let now = a.now();
        let outbox = match a.store.read(|rx| rx.outbox()) {
            Ok(mails) => {
                let oldest = mails.iter().map(|m| m.created_ms).min();
                let age = oldest.map_or(0, |t| ((now - t).max(0) / 1000) as u64);
                Outbox {
                    ok: age <= OUTBOX_MAX_AGE.as_secs(),
                    queued: mails.len(),
                    oldest_age_secs: age,
                }
            }
            Err(_) => Outbox {
                ok: false,
                queued: 0,
                oldest_age_secs: 0,
            },
        };
        let disk = match disk_space(&a.cfg.data_dir) {
            Ok((free, total)) => Disk {
                ok: free >= DISK_MIN_FREE,
                free_bytes: free,
                total_bytes: total,
                detail: if free >= DISK_MIN_FREE {
                    String::new()
                } else {
                    format!("less than {DISK_MIN_FREE} bytes free")
                },
            },
            Err(e) => Disk {
                ok: false,
                free_bytes: 0,
                total_bytes: 0,
                detail: e.to_string(),
            },
        };
        (store, outbox, disk)
    })
    .await
    .unwrap_or_else(|e| {
        (
            Err(format!("health check failed: {e}")),
            Outbox {
                ok: false,
                queued: 0,
                oldest_age_secs: 0,
            },
            Disk {
                ok: false,
                free_bytes: 0,
                total_bytes: 0,
                detail: String::new(),
            },
        )
    });
    let writer = if app.writer.alive() {
        Ok(())
    } else {
        Err("the store writer stopped".to_string())
    };
    let smtp = smtp_reachable(app).await;
    let mut r = Report {
        healthy: false,
        failing: Vec::new(),
        store: Part::of(store),
        writer: Part::of(writer),
        outbox,
        smtp: Part::of(smtp),
        disk,
    };
    for (name, ok) in [
        ("store", r.store.ok),
        ("writer", r.writer.ok),
        ("outbox", r.outbox.ok),
        ("smtp", r.smtp.ok),
        ("disk", r.disk.ok),
    ] {
        if !ok {
            r.failing.push(name);
        }
    }
    r.healthy = r.failing.is_empty();
    r
}

async fn smtp_reachable(app: &App) -> Result<(), String> {
    {
        let g = app.health.smtp.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, r)) = &*g
            && t.elapsed() < SMTP_TTL
        {
            return r.clone();
        }
    }
    let (host, port) = (app.cfg.smtp.host.clone(), app.cfg.smtp.port);
    let r = match tokio::time::timeout(
        SMTP_CONNECT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{host}:{port}: {e}")),
        Err(_) => Err(format!("{host}:{port}: no answer within {SMTP_CONNECT:?}")),
    };
    *app.health.smtp.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), r.clone()));
    r
}

/// The HTTP answer: 200 or 503 with the report as JSON.
pub async fn respond(app: &std::sync::Arc<App>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let r = check(app).await;
    let code = if r.healthy {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(r)).into_response()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn cache_reuses_then_expires() {
        let c: Cached = Mutex::new(None);
        let mut calls = 0;
        assert!(
            cached(&c, Duration::from_secs(60), || {
                calls += 1;
                Err("down".into())
            })
            .is_err()
        );
        assert!(
            cached(&c, Duration::from_secs(60), || {
                calls += 1;
                Ok(())
            })
            .is_err(),
            "cached outcome reused"
        );
        assert_eq!(calls, 1);
        assert!(cached(&c, Duration::ZERO, || Ok(())).is_ok());
    }

    #[test]
    fn disk_space_of_tmp() {
        let (free, total) = disk_space(&std::env::temp_dir()).unwrap();
        assert!(total > 0 && free <= total);
    }
}
