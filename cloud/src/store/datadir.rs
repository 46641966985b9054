//! The data folder's permissions: the folder is 0700 and every file in it 0600, owned by
//! the service's user. Checked at every start: a folder or file of another user, or a
//! symbolic link, is refused (the operator must look); group/other permissions on our own
//! files are removed with a warning. Nothing here follows a symbolic link.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the data folder is refused.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a symbolic link; refusing to start. Point data_dir (or secrets_key) at the real path"
    )]
    Symlink { path: PathBuf },
    #[error(
        "{path} is owned by uid {owner}, but the service runs as uid {me}; refusing to start. Fix: `chown -R {me} {path}` (and check who else could have written it)"
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error("{path} is not a regular file or folder; refusing to start. Remove it")]
    Special { path: PathBuf },
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail
    unsafe { libc::geteuid() }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Create the data folder (0700) when missing, then check it and everything in it (one
/// level of sub-folders deep, e.g. `bundles/`). Returns what was fixed (also logged).
pub fn prepare(dir: &Path) -> Result<Vec<String>, DataDirError> {
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let mut fixed = Vec::new();
    check_entry(dir, true, &mut fixed)?;
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        let is_dir = check_entry(&p, false, &mut fixed)?;
        if is_dir {
            for e in std::fs::read_dir(&p).map_err(io(&p))? {
                let q = e.map_err(io(&p))?.path();
                // deeper folders are not walked; their own mode is checked here
                check_entry(&q, false, &mut fixed)?;
            }
        }
    }
    Ok(fixed)
}

/// Check one path (not following links): refuse links, special files and other owners;
/// remove group/other permissions. Whether it is a folder.
fn check_entry(p: &Path, top: bool, fixed: &mut Vec<String>) -> Result<bool, DataDirError> {
    let m = std::fs::symlink_metadata(p).map_err(io(p))?;
    let ft = m.file_type();
    if ft.is_symlink() {
        return Err(DataDirError::Symlink {
            path: p.to_path_buf(),
        });
    }
    if !ft.is_dir() && !ft.is_file() {
        return Err(DataDirError::Special {
            path: p.to_path_buf(),
        });
    }
    let me = euid();
    if m.uid() != me {
        return Err(DataDirError::Owner {
            path: p.to_path_buf(),
            owner: m.uid(),
            me,
        });
    }
    let mode = m.mode() & 0o7777;
    let want = if ft.is_dir() { 0o700 } else { 0o600 };
    if mode & 0o7077 != 0 {
        // fchmod on a descriptor opened without following links
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | if ft.is_dir() { libc::O_DIRECTORY } else { 0 })
            .open(p)
            .map_err(io(p))?;
        let again = f.metadata().map_err(io(p))?;
        if again.ino() != m.ino() || again.uid() != me {
            return Err(DataDirError::Owner {
                path: p.to_path_buf(),
                owner: again.uid(),
                me,
            });
        }
        f.set_permissions(std::fs::Permissions::from_mode(want))
            .map_err(io(p))?;
        let what = if top { "data folder" } else { "file" };
        let msg = format!(
            "{} was mode {mode:04o} ({what} open to group/others); set to {want:04o}",
            p.display()
        );
        tracing::warn!("{msg}");
        fixed.push(msg);
    }
    Ok(ft.is_dir())
}

/// Check one file outside the data folder (the secrets key): not a link, ours, 0600.
pub fn check_file(p: &Path) -> Result<Vec<String>, DataDirError> {
    let mut fixed = Vec::new();
    check_entry(p, false, &mut fixed)?;
    Ok(fixed)
}

/// Create (or truncate) a file readable by the owner only (0600), not following a link
/// at `p`.
pub fn create_private(p: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
}

#[cfg(test)]
mod test {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn creates_0700_and_fixes_loose_modes() {
        let dir = std::env::temp_dir().join(format!("mimamori-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("data");
        assert!(prepare(&data).unwrap().is_empty());
        assert_eq!(mode(&data), 0o700);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(data.join("admin.token"), "x").unwrap();
        std::fs::set_permissions(
            data.join("admin.token"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::create_dir(data.join("bundles")).unwrap();
        std::fs::write(data.join("bundles/a.bundle"), "x").unwrap();
        std::fs::set_permissions(
            data.join("bundles/a.bundle"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let fixed = prepare(&data).unwrap();
        assert!(fixed.len() >= 3, "{fixed:?}");
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("admin.token")), 0o600);
        assert_eq!(mode(&data.join("bundles/a.bundle")), 0o600);
        // a link in the folder is refused, and its target left alone
        let outside = dir.join("outside");
        std::fs::write(&outside, "y").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, data.join("ca.key")).unwrap();
        let e = prepare(&data).unwrap_err();
        assert!(matches!(e, DataDirError::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("ca.key"));
        assert_eq!(mode(&outside), 0o644);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
