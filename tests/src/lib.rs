//! Helpers for the end-to-end tests in `tests/tests/`: where the corpus and the release
//! binaries are, and running them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod browser;
pub mod cloud;
pub mod system;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// `../shared/corpus`, next to the repository.
pub fn corpus() -> PathBuf {
    let c = root().join("../shared/corpus");
    assert!(
        c.is_dir(),
        "the shared corpus is expected at {}",
        c.display()
    );
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
        // MIMAMORI_PREBUILT=1: the release binaries were built by hand just before (a
        // test binary run directly, outside `cargo test`'s own feature set)
        if std::env::var_os("MIMAMORI_PREBUILT").is_some() {
            return;
        }
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

/// `replay --quiet` of `pcap` without rules into `dir/<eve_name>`; panics when it fails.
/// The EVE events.
pub fn replay_without_rules(
    dir: &Path,
    eve_name: &str,
    pcap: &Path,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let rules = dir.join("empty.rules");
    std::fs::write(&rules, "# no rules\n").expect("writing rules");
    let eve = dir.join(eve_name);
    let out = run(Command::new(appliance())
        .args(["replay", "--quiet", "--rules"])
        .arg(&rules)
        .arg("--eve")
        .arg(&eve)
        .args(extra)
        .arg(pcap));
    assert!(
        out.status.success(),
        "replay of {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eve_lines(&std::fs::read_to_string(&eve).expect("reading EVE"))
}

/// The appliance binary.
pub fn appliance() -> PathBuf {
    release_bin("mimamori-appliance", "mimamori-appliance")
}

/// Run a command and return its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
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
    let d = root()
        .join("target/test-tmp")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating a temp dir");
    d
}

/// Writes classic pcap files of TCP conversations built by the test itself (Ethernet,
/// IPv4 from 198.18.0.0/15, real checksums): a client fetches a body over HTTP.
pub mod pcapgen {
    use std::io::Write;

    fn csum(data: &[u8], init: u32) -> u16 {
        let mut s = init;
        for c in data.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// A capture being written.
    pub struct Pcap {
        out: Vec<u8>,
        ts: u64,
    }

    impl Default for Pcap {
        fn default() -> Self {
            Pcap::new()
        }
    }

    impl Pcap {
        pub fn new() -> Pcap {
            let mut out = Vec::new();
            out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
            out.extend_from_slice(&2u16.to_le_bytes());
            out.extend_from_slice(&4u16.to_le_bytes());
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&65535u32.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            Pcap {
                out,
                ts: 1_700_000_000_000_000,
            }
        }

        /// One TCP segment from `src` to `dst`.
        #[allow(clippy::too_many_arguments)]
        pub fn tcp(
            &mut self,
            src: ([u8; 4], u16),
            dst: ([u8; 4], u16),
            seq: u32,
            ack: u32,
            flags: u8,
            payload: &[u8],
        ) {
            let tcp_len = 20 + payload.len();
            let total = 20 + tcp_len;
            let mut f = Vec::with_capacity(14 + total);
            f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[6] = 0x40;
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&src.0);
            ip[16..20].copy_from_slice(&dst.0);
            let c = csum(&ip, 0);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&src.1.to_be_bytes());
            t[2..4].copy_from_slice(&dst.1.to_be_bytes());
            t[4..8].copy_from_slice(&seq.to_be_bytes());
            t[8..12].copy_from_slice(&ack.to_be_bytes());
            t[12] = 5 << 4;
            t[13] = flags;
            t[14..16].copy_from_slice(&65535u16.to_be_bytes());
            t.extend_from_slice(payload);
            let mut pseudo: u32 = 0;
            for w in [&src.0[..], &dst.0[..]] {
                pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]))
                    + u32::from(u16::from_be_bytes([w[2], w[3]]));
            }
            pseudo += 6 + tcp_len as u32;
            let c = csum(&t, pseudo);
            t[16..18].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&t);
            self.ts += 1000;
            let (s, us) = (self.ts / 1_000_000, self.ts % 1_000_000);
            self.out.extend_from_slice(&(s as u32).to_le_bytes());
            self.out.extend_from_slice(&(us as u32).to_le_bytes());
            self.out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            self.out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            self.out.extend_from_slice(&f);
        }

        /// A whole HTTP/1.1 download on its own connection: handshake, GET, a 200 response
        /// with `Content-Length` carrying `body` in 1460-byte segments, FIN both ways.
        /// Returns the number of frames written for it.
        pub fn http_download(
            &mut self,
            client: ([u8; 4], u16),
            server: ([u8; 4], u16),
            path: &str,
            body: &[u8],
        ) -> usize {
            const SYN: u8 = 0x02;
            const ACK: u8 = 0x10;
            const PSH: u8 = 0x08;
            const FIN: u8 = 0x01;
            let (mut c, mut s) = (1000u32, 5000u32);
            self.tcp(client, server, c, 0, SYN, &[]);
            self.tcp(server, client, s, c + 1, SYN | ACK, &[]);
            c += 1;
            s += 1;
            self.tcp(client, server, c, s, ACK, &[]);
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: files.example\r\nUser-Agent: mimamori-test\r\n\r\n"
            );
            self.tcp(client, server, c, s, ACK | PSH, req.as_bytes());
            c += req.len() as u32;
            let mut resp =
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            resp.extend_from_slice(body);
            let mut n = 4;
            for chunk in resp.chunks(1460) {
                self.tcp(server, client, s, c, ACK | PSH, chunk);
                s += chunk.len() as u32;
                self.tcp(client, server, c, s, ACK, &[]);
                n += 2;
            }
            self.tcp(server, client, s, c, FIN | ACK, &[]);
            self.tcp(client, server, c, s + 1, FIN | ACK, &[]);
            self.tcp(server, client, s + 1, c + 1, ACK, &[]);
            n + 3
        }

        pub fn write(&self, path: &std::path::Path) {
            let mut f = std::fs::File::create(path)
                .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
            f.write_all(&self.out).expect("writing the capture");
        }
    }
}

/// The network lab of `scripts/lab` (SPEC §7), for tests that need root: namespaces
/// created on `up` and removed on drop, the appliance started with a configuration the
/// test adjusts.
pub mod lab {
    use std::path::PathBuf;
    use std::process::{Child, Command, Output, Stdio};
    use std::sync::{Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    /// One lab at a time: they would only compete for the two cores.
    static ONE: Mutex<()> = Mutex::new(());

    pub struct Lab {
        pub prefix: String,
        pub dir: PathBuf,
        appliance: Option<Child>,
        _one: MutexGuard<'static, ()>,
    }

    /// A command's exit code and output.
    pub struct Ran {
        pub code: i32,
        pub stdout: String,
        pub stderr: String,
    }

    fn script() -> PathBuf {
        super::root().join("scripts/lab")
    }

    /// Whether the lab can run here (root, network namespaces).
    pub fn available() -> bool {
        // SAFETY-free check: `id -u`
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if !uid {
            eprintln!("lab tests need root (network namespaces); skipped");
        }
        uid
    }

    impl Lab {
        /// A lab with the appliance running (`Lab::up` then `Lab::start`), or `None` (with
        /// a message) where the lab cannot run.
        pub fn running(name: &str, replace: &[(&str, &str)], extra: &str) -> Option<Lab> {
            if !available() {
                return None;
            }
            let mut lab = Lab::up(name);
            lab.start(replace, extra);
            Some(lab)
        }

        /// Build the lab (`scripts/lab up`).
        pub fn up(name: &str) -> Lab {
            let one = ONE.lock().unwrap_or_else(|e| e.into_inner());
            let prefix = format!(
                "m{}{}",
                std::process::id() % 100_000,
                name.chars().take(3).collect::<String>()
            );
            let dir = super::tempdir(&format!("lab-{name}"));
            let mut cmd = Command::new(script());
            cmd.args(["up", "-p", &prefix, "-d"]).arg(&dir);
            let out = super::run(&mut cmd);
            assert!(
                out.status.success(),
                "scripts/lab up failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Lab {
                prefix,
                dir,
                appliance: None,
                _one: one,
            }
        }

        /// The lab's appliance configuration with `extra` TOML appended (or keys replaced
        /// with `replace`: (from, to) pairs applied to the template first).
        pub fn start(&mut self, replace: &[(&str, &str)], extra: &str) {
            let tpl = std::fs::read_to_string(self.dir.join("appliance.toml")).expect("lab config");
            let mut text = tpl;
            for (a, b) in replace {
                assert!(text.contains(a), "lab config has no `{a}`");
                text = text.replace(a, b);
            }
            text.push_str(extra);
            let cfg = self.dir.join("test.toml");
            std::fs::write(&cfg, text).expect("writing the config");
            // it may hold secrets (the activation code): the appliance refuses a
            // configuration with secrets every user can read
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600 the config");
            let _ = std::fs::remove_file(self.dir.join("eve.json"));
            let _ = std::fs::remove_file(self.dir.join("appliance.log"));
            self.respawn();
        }

        /// Start the appliance again on the configuration of the last `start` (EVE and
        /// log are appended to), and wait until it answers.
        pub fn respawn(&mut self) {
            let cfg = self.dir.join("test.toml");
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("appliance.log"))
                .expect("log file");
            let child = Command::new("ip")
                .args(["netns", "exec", &format!("{}-app", self.prefix)])
                .arg(super::appliance())
                .args(["run", "--config"])
                .arg(&cfg)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting the appliance");
            self.appliance = Some(child);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(30) {
                if self.ctl("stats")["ok"] == true {
                    return;
                }
                if let Some(Ok(Some(st))) = self.appliance.as_mut().map(|c| c.try_wait()) {
                    panic!("the appliance exited ({st}): {}", self.log());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("the appliance did not come up: {}", self.log());
        }

        /// Kill the appliance with SIGKILL (nothing flushed, nothing said goodbye).
        pub fn kill9(&mut self) {
            if let Some(mut c) = self.appliance.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        /// Whether the appliance process has exited; its exit code.
        pub fn exited(&mut self) -> Option<i32> {
            match self.appliance.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(st))) => Some(st.code().unwrap_or(-1)),
                _ => None,
            }
        }

        /// Stop the appliance (SIGTERM, then wait).
        pub fn stop(&mut self) {
            if let Some(mut c) = self.appliance.take() {
                let _ = Command::new("kill").arg(c.id().to_string()).status();
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(10) {
                    if let Ok(Some(_)) = c.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        pub fn log(&self) -> String {
            std::fs::read_to_string(self.dir.join("appliance.log")).unwrap_or_default()
        }

        /// A control command; `{"ok": false}` when the appliance does not answer.
        pub fn ctl(&self, command: &str) -> serde_json::Value {
            let out = Command::new(super::appliance())
                .args(["ctl", "--socket"])
                .arg(self.dir.join("control.sock"))
                .args(command.split_whitespace())
                .output();
            match out {
                Ok(o) => {
                    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::json!({"ok": false}))
                }
                Err(_) => serde_json::json!({"ok": false}),
            }
        }

        /// Run a command on a node (`inet`, `app`, `lan`, `s1`, `s2`).
        pub fn exec(&self, node: &str, args: &[&str]) -> Ran {
            let o: Output = super::run(
                Command::new("ip")
                    .args(["netns", "exec", &format!("{}-{node}", self.prefix)])
                    .args(args),
            );
            Ran {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into(),
                stderr: String::from_utf8_lossy(&o.stderr).into(),
            }
        }

        /// Start a command on a node in the background.
        pub fn spawn(&self, node: &str, args: &[&str]) -> Child {
            Command::new("ip")
                .args(["netns", "exec", &format!("{}-{node}", self.prefix)])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning a lab command")
        }

        /// curl on a node: `-s -S` with a time limit, then `args`.
        pub fn curl(&self, node: &str, secs: u32, args: &[&str]) -> Ran {
            let t = secs.to_string();
            let mut v = vec!["curl", "-s", "-S", "-k", "--max-time", &t];
            v.extend_from_slice(args);
            self.exec(node, &v)
        }

        /// The EVE events written so far (the appliance flushes within 200 ms).
        pub fn eve(&self) -> Vec<serde_json::Value> {
            std::thread::sleep(Duration::from_millis(400));
            super::eve_lines(
                &std::fs::read_to_string(self.dir.join("eve.json")).unwrap_or_default(),
            )
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            self.stop();
            let _ = Command::new(script())
                .args(["down", "-p", &self.prefix, "-d"])
                .arg(&self.dir)
                .output();
        }
    }
}
