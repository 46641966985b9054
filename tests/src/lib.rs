//! Helpers for the end-to-end tests in `tests/tests/`: where the corpus and the release
//! binaries are, and running them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

/// `../shared/corpus`, next to the repository.
pub fn corpus() -> PathBuf {
    let c = root().join("../shared/corpus");
    assert!(c.is_dir(), "the shared corpus is expected at {}", c.display());
    c
}

/// `../shared/tools`.
pub fn tools() -> PathBuf {
    root().join("../shared/tools")
}

/// The release build of a workspace binary, built once per test process if missing or
/// older than the sources (`cargo build --release --locked -p <package>`).
pub fn release_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--locked", "--workspace", "--bins"])
            .current_dir(root())
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build --release failed");
    });
    let _ = package;
    let p = root().join("target/release").join(bin);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// The appliance binary.
pub fn appliance() -> PathBuf {
    release_bin("mimamori-appliance", "mimamori-appliance")
}

/// Run a command and return its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Parse EVE-JSON lines.
pub fn eve_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad EVE line {l:?}: {e}")))
        .collect()
}

/// A fresh temporary directory under the target dir.
pub fn tempdir(name: &str) -> PathBuf {
    let d = root().join("target/test-tmp").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating a temp dir");
    d
}
