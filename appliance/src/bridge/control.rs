//! The control socket: one command per connection, one line in, one JSON line out.
//!
//! `isolate <MAC|IP>`, `release <MAC|IP>`, `isolated`, `stats`, and — only with
//! `[debug] test_hooks = true` — `hook stall <worker> <ms>`, `hook panic <worker>`.
//! The cloud's commands (issue 7) arrive through the same functions.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::isolate::HostId;
use super::run::Bridge;

/// The listening control socket; removed on shutdown.
pub struct Control {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Control {
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the accept loop; if it cannot be reached (the file was removed) it is left
        // blocked: the process is ending
        if UnixStream::connect(&self.path).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listen on `path` (a stale socket file is replaced; only root may connect: mode 0600).
/// The folder is created 0700 and checked ([`crate::perms::check_socket_dir`]); anything
/// but a socket at `path` (a link, a file) is refused, never followed.
pub fn serve(path: &Path, bridge: Arc<Bridge>) -> std::io::Result<Control> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    crate::perms::check_socket_dir(path).map_err(std::io::Error::other)?;
    // (checked: nothing, or a socket, is at `path`)
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running appliance", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    // the umask (077) already made it owner-only; chmod only what was just checked to be
    // the socket (not a link) in a folder no one else can write
    let m = std::fs::symlink_metadata(path)?;
    if !m.file_type().is_socket() {
        return Err(std::io::Error::other(format!(
            "{} was replaced while binding",
            path.display()
        )));
    }
    if m.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let st = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                let reply = match BufReader::new(&conn).read_line(&mut line) {
                    Ok(_) => handle(&bridge, line.trim()),
                    Err(e) => json!({"ok": false, "error": format!("reading the command: {e}")}),
                };
                let _ = writeln!(conn, "{reply}");
            }
        })?;
    Ok(Control {
        path: path.into(),
        stop,
        thread: Some(thread),
    })
}

/// Carry out one command.
pub fn handle(b: &Bridge, line: &str) -> Value {
    let words: Vec<&str> = line.split_whitespace().collect();
    let err = |m: String| json!({"ok": false, "error": m});
    match words.as_slice() {
        ["stats"] => json!({"ok": true, "stats": b.stats_json()}),
        ["isolated"] => {
            json!({"ok": true, "isolated": b.switch.isolation.hosts(), "isolation": b.switch.isolation.details()})
        }
        ["isolate", h] => match HostId::parse(h) {
            Ok(id) => {
                let new = b.switch.isolation.isolate(id);
                tracing::warn!(host = %id, "host isolated");
                json!({"ok": true, "host": id.to_string(), "changed": new})
            }
            Err(m) => err(m),
        },
        ["release", h] => match HostId::parse(h) {
            Ok(id) => {
                let was = b.switch.isolation.release(id);
                tracing::warn!(host = %id, "host released");
                json!({"ok": true, "host": id.to_string(), "changed": was})
            }
            Err(m) => err(m),
        },
        ["hook", ..] if !b.test_hooks => {
            err("test hooks are off ([debug] test_hooks = true)".into())
        }
        ["hook", "stall", w, ms] => match (w.parse::<usize>(), ms.parse::<u64>()) {
            (Ok(w), Ok(ms)) if b.hook_stall(w, ms) => json!({"ok": true}),
            _ => err(format!("no worker `{w}` or bad duration `{ms}`")),
        },
        ["hook", "panic", w] => match w.parse::<usize>() {
            Ok(w) if b.hook_panic(w) => json!({"ok": true}),
            _ => err(format!("no worker `{w}`")),
        },
        [] => err("empty command".into()),
        _ => err(format!(
            "unknown command `{line}`; commands: stats, isolated, isolate <MAC|IP>, release <MAC|IP>"
        )),
    }
}

/// Send one command to a running appliance and return its answer.
pub fn send(path: &Path, command: &str) -> std::io::Result<Value> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(s, "{command}")?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
