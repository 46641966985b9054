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
            Pcap { out, ts: 1_700_000_000_000_000 }
        }

        /// One TCP segment from `src` to `dst`.
        #[allow(clippy::too_many_arguments)]
        pub fn tcp(&mut self, src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, ack: u32, flags: u8, payload: &[u8]) {
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
                pseudo += u32::from(u16::from_be_bytes([w[0], w[1]])) + u32::from(u16::from_be_bytes([w[2], w[3]]));
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
        pub fn http_download(&mut self, client: ([u8; 4], u16), server: ([u8; 4], u16), path: &str, body: &[u8]) -> usize {
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
            let req = format!("GET {path} HTTP/1.1\r\nHost: files.example\r\nUser-Agent: mimamori-test\r\n\r\n");
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
            let mut f = std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
            f.write_all(&self.out).expect("writing the capture");
        }
    }
}
