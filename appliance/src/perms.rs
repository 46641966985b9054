//! The appliance's local files (issue 21, findings 7 and 8): who may read them, and a wipe
//! that leaves nothing of the customer behind.
//!
//! * The process runs with umask 077 ([`private_umask`]) and every file it writes is
//!   created 0600 ([`create_private`], [`open_private`]), every folder 0700: EVE lines carry
//!   full URLs, the spool and `runtime.json` the office's hosts, the state folder the
//!   device key.
//! * The state folder is checked at every start ([`prepare_dir`]): a symbolic link or a
//!   file of another user in it is refused (the operator must look); group/other
//!   permissions on our own files are removed with a warning, through a descriptor opened
//!   without following links (fchmod), never by path. The cloud's data folder does the same
//!   (`cloud/src/store/datadir.rs`).
//! * The configuration holds secrets (Wi-Fi passphrases, the RADIUS secret, the activation
//!   code): [`check_config`] refuses a file every user can read (or write), or one owned by
//!   another user, and warns when its group can read it.
//! * The control socket's folder is created 0700; an existing one must be a real folder
//!   (not a link) of root or of the service's user that others cannot write
//!   ([`check_socket_dir`]).
//! * [`Wipe`] overwrites files with zeros (and syncs) before unlinking them, and lists what
//!   it removed.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a local file or folder is refused.
#[derive(Debug, thiserror::Error)]
pub enum PermError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a symbolic link; refusing to start (nothing is changed through a link). Fix: point the setting at the real path, or remove the link"
    )]
    Symlink { path: PathBuf },
    #[error(
        "{path} is owned by uid {owner}, but the appliance runs as uid {me}; refusing to start. Fix: `chown {me} {path}` (and check who else could have written it)"
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error("{path} is not a regular file or folder; refusing to start. Fix: remove it")]
    Special { path: PathBuf },
    #[error(
        "{path} exists and is not a socket (a link or a file); refusing to start (nothing is changed through it). Fix: remove it"
    )]
    NotSocket { path: PathBuf },
    #[error("{path} is mode {mode:04o}: {why}; refusing to start. Fix: {fix}")]
    Mode {
        path: PathBuf,
        mode: u32,
        why: String,
        fix: String,
    },
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail
    unsafe { libc::geteuid() }
}

/// Sets the process umask to 077: whatever a library creates (redb's spool, say) is the
/// owner's only. A backstop: files are also created with explicit modes.
pub fn private_umask() {
    // SAFETY: umask has no preconditions and cannot fail
    unsafe {
        libc::umask(0o077);
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PermError + '_ {
    move |source| PermError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Create (or truncate) a file readable by the owner only (0600), not following a link at
/// `p`; an existing file with a looser mode is set to 0600.
pub fn create_private(p: &Path) -> std::io::Result<std::fs::File> {
    open_private(p, false)
}

/// Open `p` for appending (created 0600 when missing), not following a link; an existing
/// file with a looser mode is set to 0600 (fchmod).
pub fn open_private(p: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    let f = o
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)?;
    tighten(&f, 0o600)?;
    Ok(f)
}

/// Remove group/other permissions of an opened file.
fn tighten(f: &std::fs::File, want: u32) -> std::io::Result<bool> {
    let mode = f.metadata()?.mode() & 0o7777;
    if mode & 0o7077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(want))?;
        return Ok(true);
    }
    Ok(false)
}

/// Create a folder (and its missing parents) with mode 0700.
pub fn create_dir_private(p: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
}

/// Create the state folder (0700) when missing, then check it and everything in it, all
/// the way down (`bundles/<version>/rules/…`): links, special files and other users'
/// files are refused, group/other permissions removed. Returns what was fixed (logged).
pub fn prepare_dir(dir: &Path) -> Result<Vec<String>, PermError> {
    if std::fs::symlink_metadata(dir).is_err() {
        create_dir_private(dir).map_err(io(dir))?;
    }
    let mut fixed = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if check_entry(&d, &mut fixed)? {
            for e in std::fs::read_dir(&d).map_err(io(&d))? {
                let p = e.map_err(io(&d))?.path();
                if check_entry(&p, &mut fixed)? {
                    todo.push(p);
                }
            }
        }
    }
    Ok(fixed)
}

/// Check one path (not following links): refuse links, special files and other owners;
/// remove group/other permissions through a descriptor. Whether it is a folder.
fn check_entry(p: &Path, fixed: &mut Vec<String>) -> Result<bool, PermError> {
    let m = std::fs::symlink_metadata(p).map_err(io(p))?;
    let ft = m.file_type();
    if ft.is_symlink() {
        return Err(PermError::Symlink {
            path: p.to_path_buf(),
        });
    }
    if !ft.is_dir() && !ft.is_file() {
        return Err(PermError::Special {
            path: p.to_path_buf(),
        });
    }
    let me = euid();
    if m.uid() != me {
        return Err(PermError::Owner {
            path: p.to_path_buf(),
            owner: m.uid(),
            me,
        });
    }
    let mode = m.mode() & 0o7777;
    let want = if ft.is_dir() { 0o700 } else { 0o600 };
    if mode & 0o7077 != 0 {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | if ft.is_dir() { libc::O_DIRECTORY } else { 0 })
            .open(p)
            .map_err(io(p))?;
        let again = f.metadata().map_err(io(p))?;
        if again.ino() != m.ino() || again.uid() != me {
            return Err(PermError::Owner {
                path: p.to_path_buf(),
                owner: again.uid(),
                me,
            });
        }
        f.set_permissions(std::fs::Permissions::from_mode(want))
            .map_err(io(p))?;
        let msg = format!(
            "{} was mode {mode:04o} (open to group/others); set to {want:04o}",
            p.display()
        );
        tracing::warn!("{msg}");
        fixed.push(msg);
    }
    Ok(ft.is_dir())
}

/// The configuration keys holding secrets that are set in `cfg`.
pub fn config_secrets(cfg: &crate::bridge::config::Config) -> Vec<String> {
    let mut keys = Vec::new();
    if cfg
        .uplink
        .as_ref()
        .is_some_and(|u| u.activation_code.is_some())
    {
        keys.push("uplink.activation_code".to_string());
    }
    for (name, s) in [("ssid1", &cfg.ssid1), ("ssid2", &cfg.ssid2)] {
        let Some(s) = s else { continue };
        if s.passphrase.is_some() {
            keys.push(format!("{name}.passphrase"));
        }
        if s.radius.is_some() {
            keys.push(format!("{name}.radius.secret"));
        }
    }
    keys
}

/// Checks the configuration file's owner and mode. Refused: owned by a user other than
/// root or the appliance's; writable by group or others; readable by every user while it
/// holds `secrets`. Returned (and logged): a warning when its group can read the secrets.
pub fn check_config(path: &Path, secrets: &[String]) -> Result<Vec<String>, PermError> {
    // the file that is read: a link is followed here (nothing is changed)
    let m = std::fs::metadata(path).map_err(io(path))?;
    let me = euid();
    if m.uid() != me && m.uid() != 0 {
        return Err(PermError::Owner {
            path: path.to_path_buf(),
            owner: m.uid(),
            me,
        });
    }
    let mode = m.mode() & 0o7777;
    let fix = format!("`chmod 600 {}`", path.display());
    if mode & 0o022 != 0 {
        return Err(PermError::Mode {
            path: path.to_path_buf(),
            mode,
            why: "other users can change the configuration (what is inspected, where events go)"
                .into(),
            fix,
        });
    }
    if secrets.is_empty() {
        return Ok(Vec::new());
    }
    let keys = secrets.join(", ");
    if mode & 0o004 != 0 {
        return Err(PermError::Mode {
            path: path.to_path_buf(),
            mode,
            why: format!("every user can read it and it holds secrets ({keys})"),
            fix: format!("{fix}, then change those secrets: they may have been read"),
        });
    }
    if mode & 0o040 != 0 {
        let msg = format!(
            "{} is mode {mode:04o}: group {} can read its secrets ({keys}); fix: {fix}",
            path.display(),
            m.gid()
        );
        tracing::warn!("{msg}");
        return Ok(vec![msg]);
    }
    Ok(Vec::new())
}

/// The control socket's folder: created 0700 when missing; an existing one must be a real
/// folder (not a link) owned by root or by the appliance's user, and not writable by
/// others (unless sticky, like /tmp) — else someone else could replace the socket. At the
/// socket's path there may be nothing or a (stale) socket, never a link or a file.
pub fn check_socket_dir(socket: &Path) -> Result<(), PermError> {
    use std::os::unix::fs::FileTypeExt;
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if std::fs::symlink_metadata(dir).is_err() {
        create_dir_private(dir).map_err(io(dir))?;
    }
    let m = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    if m.file_type().is_symlink() {
        return Err(PermError::Symlink {
            path: dir.to_path_buf(),
        });
    }
    if !m.is_dir() {
        return Err(PermError::Special {
            path: dir.to_path_buf(),
        });
    }
    let me = euid();
    if m.uid() != me && m.uid() != 0 {
        return Err(PermError::Owner {
            path: dir.to_path_buf(),
            owner: m.uid(),
            me,
        });
    }
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(PermError::Mode {
            path: dir.to_path_buf(),
            mode,
            why: "other users can replace the control socket in it".into(),
            fix: format!("`chmod 700 {}`", dir.display()),
        });
    }
    if let Ok(m) = std::fs::symlink_metadata(socket) {
        if !m.file_type().is_socket() {
            return Err(PermError::NotSocket {
                path: socket.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// What a wipe removed.
#[derive(Debug, Default)]
pub struct Wipe {
    /// Files overwritten and unlinked (or, for the configuration, rewritten).
    pub files: Vec<PathBuf>,
    /// Folders removed.
    pub dirs: usize,
    /// Bytes overwritten with zeros before unlinking.
    pub bytes: u64,
    /// What could not be removed.
    pub errors: Vec<String>,
    /// One line per part wiped: what, where, how many files.
    pub parts: Vec<String>,
}

impl Wipe {
    /// Runs one step of the wipe and notes it for the summary (`state folder /var/lib/…:
    /// 12 files`).
    pub fn part(&mut self, what: &str, path: &Path, step: impl FnOnce(&mut Wipe)) {
        let before = self.files.len();
        step(self);
        let n = self.files.len() - before;
        self.parts
            .push(format!("{what} {}: {n} file{}", path.display(), if n == 1 { "" } else { "s" }));
    }

    /// Overwrite `p`'s contents with zeros (synced) and unlink it; a link is only unlinked.
    /// Missing: nothing.
    pub fn file(&mut self, p: &Path) {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return;
        };
        if m.is_file() {
            match overwrite(p, m.len()) {
                Ok(n) => self.bytes += n,
                Err(e) => self.errors.push(format!("overwriting {}: {e}", p.display())),
            }
        }
        match std::fs::remove_file(p) {
            Ok(()) => self.files.push(p.to_path_buf()),
            Err(e) => self.errors.push(format!("{}: {e}", p.display())),
        }
    }

    /// Everything in `dir` (the folder itself stays, empty).
    pub fn contents(&mut self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
            if is_dir {
                self.contents(&p);
                match std::fs::remove_dir(&p) {
                    Ok(()) => self.dirs += 1,
                    Err(e) => self.errors.push(format!("{}: {e}", p.display())),
                }
            } else {
                self.file(&p);
            }
        }
    }

    /// `path` and its rotations (`eve.json.1`, `eve.json.2.gz`, …): the files in its folder
    /// whose name is `path`'s name or starts with it followed by a dot.
    pub fn with_rotations(&mut self, path: &Path) {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        let name = name.to_string_lossy().to_string();
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n == name || n.starts_with(&format!("{name}.")) {
                self.file(&dir.join(n));
            }
        }
    }

    /// Rewrites the configuration file without what names the customer or holds a secret
    /// (`name`, `[ssid1]`, `[ssid2]`, `exceptions`, `isolation`, `uplink.activation_code`):
    /// the old contents are overwritten with zeros first. The rest (ports, rules, paths,
    /// the cloud's address) stays, so that the appliance still bridges and inspects after
    /// a restart — as a device that must be provisioned again (a new activation code).
    pub fn config(&mut self, p: &Path) {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                self.errors.push(format!("{}: {e}", p.display()));
                return;
            }
        };
        let factory = match factory_config(&text) {
            Ok(t) => t,
            Err(e) => {
                // not parseable any more: nothing of it can be kept
                self.errors.push(format!("{}: {e}; removed", p.display()));
                self.file(p);
                return;
            }
        };
        let write = || -> std::io::Result<u64> {
            let n = overwrite(p, text.len() as u64)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p)?;
            tighten(&f, 0o600)?;
            f.write_all(factory.as_bytes())?;
            f.sync_all()?;
            Ok(n)
        };
        match write() {
            Ok(n) => {
                self.bytes += n;
                self.files.push(p.to_path_buf());
            }
            Err(e) => self.errors.push(format!("{}: {e}", p.display())),
        }
    }

    /// One line for the cloud (the command's result, at most a few hundred bytes) and the
    /// log: counts, then as many paths as fit.
    pub fn summary(&self, max: usize) -> String {
        let mut s = format!(
            "wiped {} files ({} bytes overwritten) and {} folders{}:",
            self.files.len(),
            self.bytes,
            self.dirs,
            if self.errors.is_empty() {
                String::new()
            } else {
                format!(", {} failed", self.errors.len())
            }
        );
        let tail = "; stopping";
        for (i, p) in self.parts.iter().enumerate() {
            let item = format!("{} {p}", if i == 0 { "" } else { ";" });
            if s.len() + item.len() + tail.len() + 16 > max {
                s.push_str(&format!(" …{} more", self.parts.len() - i));
                break;
            }
            s.push_str(&item);
        }
        s.push_str(tail);
        s
    }
}

/// Overwrite a regular file's first `len` bytes with zeros and sync; not following links.
fn overwrite(p: &Path, len: u64) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)?;
    let zeros = [0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(len)
}

/// The configuration without the customer's name, SSIDs, exceptions, isolated hosts and
/// activation code.
pub fn factory_config(text: &str) -> Result<String, String> {
    let mut t: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    for k in ["name", "ssid1", "ssid2", "exceptions", "isolation"] {
        t.remove(k);
    }
    if let Some(toml::Value::Table(u)) = t.get_mut("uplink") {
        u.remove("activation_code");
    }
    let body = toml::to_string(&t).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Wiped by the cloud: back to factory state. Provision again (a new\n# uplink.activation_code, the SSIDs) to use this appliance.\n{body}"
    ))
}

#[cfg(test)]
mod test {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o777
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mimamori-perms-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn prepare_fixes_modes_deep_and_refuses_links() {
        let dir = tmp("prep");
        let state = dir.join("state");
        assert!(prepare_dir(&state).unwrap().is_empty());
        assert_eq!(mode(&state), 0o700);
        std::fs::create_dir_all(state.join("bundles/v1/rules")).unwrap();
        std::fs::write(state.join("bundles/v1/rules/a.rules"), "x").unwrap();
        for (p, m) in [
            ("bundles", 0o755),
            ("bundles/v1", 0o755),
            ("bundles/v1/rules", 0o755),
            ("bundles/v1/rules/a.rules", 0o644),
        ] {
            std::fs::set_permissions(state.join(p), std::fs::Permissions::from_mode(m)).unwrap();
        }
        let fixed = prepare_dir(&state).unwrap();
        assert_eq!(fixed.len(), 4, "{fixed:?}");
        assert_eq!(mode(&state.join("bundles/v1/rules")), 0o700);
        assert_eq!(mode(&state.join("bundles/v1/rules/a.rules")), 0o600);
        let outside = dir.join("outside");
        std::fs::write(&outside, "y").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, state.join("runtime.json")).unwrap();
        let e = prepare_dir(&state).unwrap_err();
        assert!(matches!(e, PermError::Symlink { .. }), "{e}");
        assert_eq!(mode(&outside), 0o644);
        // create_private does not write through the link either
        assert!(create_private(&state.join("runtime.json")).is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "y");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn create_private_tightens_existing_files() {
        let dir = tmp("create");
        let p = dir.join("f");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_private(&p).unwrap().write_all(b"new").unwrap();
        assert_eq!(mode(&p), 0o600);
        open_private(&dir.join("g"), true).unwrap();
        assert_eq!(mode(&dir.join("g")), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_modes() {
        let dir = tmp("cfg");
        let p = dir.join("a.toml");
        std::fs::write(&p, "x").unwrap();
        let secrets = vec!["ssid1.passphrase".to_string()];
        for (m, ok, warn) in [
            (0o600, true, false),
            (0o640, true, true),
            (0o644, false, false),
            (0o620, false, false),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
            match check_config(&p, &secrets) {
                Ok(w) => {
                    assert!(ok, "{m:o} accepted");
                    assert_eq!(w.is_empty(), !warn, "{m:o}: {w:?}");
                }
                Err(e) => {
                    assert!(!ok, "{m:o}: {e}");
                    let s = e.to_string();
                    assert!(s.contains("chmod 600") && s.contains("a.toml"), "{s}");
                }
            }
        }
        // without secrets a readable file is fine
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_config(&p, &[]).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wipe_overwrites_and_lists() {
        let dir = tmp("wipe");
        let state = dir.join("state");
        std::fs::create_dir_all(state.join("bundles/v1")).unwrap();
        std::fs::write(state.join("mgmt.mac"), "02:00:00:00:00:01").unwrap();
        std::fs::write(state.join("bundles/v1/a"), "x").unwrap();
        std::fs::write(dir.join("eve.json"), "secret-url").unwrap();
        std::fs::write(dir.join("eve.json.1"), "older").unwrap();
        std::fs::write(dir.join("eve.jsonx"), "not ours").unwrap();
        // a file still open (the EVE writer) keeps what it reads: zeros
        let held = std::fs::File::open(dir.join("eve.json")).unwrap();
        let cfg = dir.join("a.toml");
        std::fs::write(
            &cfg,
            "name = \"ACME Dental\"\n[ports]\nwan = \"a\"\nlan = \"b\"\n[uplink]\nstate_dir = \"s\"\nactivation_code = \"CODE-123\"\n[ssid1]\nssid = \"ACME\"\nsecurity = \"wpa2-psk\"\npassphrase = \"hunter2hunter2\"\n",
        )
        .unwrap();
        let mut w = Wipe::default();
        w.part("state folder", &state, |w| w.contents(&state));
        w.part("EVE", &dir.join("eve.json"), |w| {
            w.with_rotations(&dir.join("eve.json"))
        });
        w.part("configuration", &cfg, |w| w.config(&cfg));
        assert!(w.errors.is_empty(), "{:?}", w.errors);
        assert_eq!(w.files.len(), 5, "{w:?}");
        assert_eq!(w.dirs, 2);
        assert!(std::fs::read_dir(&state).unwrap().next().is_none());
        assert!(dir.join("eve.jsonx").exists());
        let mut left = Vec::new();
        use std::io::Read;
        (&held).read_to_end(&mut left).unwrap();
        assert_eq!(left, vec![0u8; 10]);
        let text = std::fs::read_to_string(&cfg).unwrap();
        for gone in ["ACME", "CODE-123", "hunter2"] {
            assert!(!text.contains(gone), "{text}");
        }
        assert!(text.contains("state_dir") && text.contains("[ports]"), "{text}");
        let s = w.summary(200);
        assert!(s.len() <= 200 && s.starts_with("wiped 5 files"), "{s}");
        assert!(s.contains("EVE ") && s.contains("eve.json: 2 files"), "{s}");
        assert!(s.contains("…1 more"), "{s}");
        let s = w.summary(512);
        assert!(s.contains("a.toml: 1 file"), "{s}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
