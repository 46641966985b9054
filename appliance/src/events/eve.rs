//! EVE-JSON output, one object per line, in the shape of Suricata's `eve.json`.

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;

use rules::classification::Classifications;
use rules::compile::Ruleset;

use super::meta::{
    DnsMeta, EventMeta, FileMeta, HttpMeta, LoadMeta, TlsMeta, TrafficMeta, UtmMeta,
};
use crate::pipeline::{Record, RecordKind};

/// Signature id and generator of alerts raised by the URL-category policy and by file
/// verdicts (no rule behind them).
pub const CATEGORY_SID: u32 = 9_000_001;
pub const FILE_SID: u32 = 9_000_002;
/// Alerts of the bridge itself: it began shedding the heaviest senders' frames for load,
/// or forwarding a stalled worker's frames uninspected.
pub const SHED_SID: u32 = 9_000_003;
pub const BYPASS_SID: u32 = 9_000_004;
pub const MIMAMORI_GID: u32 = 9000;

#[derive(Serialize)]
struct Ether {
    src_mac: String,
    dest_mac: String,
}

#[derive(Serialize)]
struct Alert<'a> {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: &'a str,
    category: &'a str,
    severity: u8,
    /// A summary: alerts of this rule and source held back by the alert budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed: Option<u64>,
}

#[derive(Serialize)]
struct Drop {
    len: u16,
    ttl: u8,
    reason: &'static str,
}

#[derive(Serialize)]
struct Eve<'a> {
    timestamp: String,
    flow_id: u64,
    pcap_cnt: u64,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<Vec<u16>>,
    src_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    dest_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    ip_v: u8,
    proto: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ether: Option<Ether>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_proto: Option<&'static str>,
    direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<Alert<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drop: Option<Drop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<&'a HttpMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'a TlsMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<&'a DnsMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fileinfo: Option<&'a FileMeta>,
    /// URL category and application (this product's own key).
    #[serde(skip_serializing_if = "Option::is_none")]
    mimamori: Option<&'a UtmMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traffic: Option<&'a TrafficMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<&'a LoadMeta>,
}

/// Suricata's protocol names.
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "IPv6-ICMP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        51 => "AH".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

/// Suricata writes IPv6 addresses in full (`2001:0db8:0000:...`).
pub fn ip_str(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => {
            let s = a.segments();
            format!(
                "{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}",
                s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
            )
        }
    }
}

pub fn mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// `2024-01-02T03:04:05.123456+0000`
pub fn timestamp(ts_us: u64) -> String {
    let secs = ts_us / 1_000_000;
    let us = ts_us % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}+0000",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Signature id, message and category of a load alert (EVE and the uplink alike).
pub fn load_signature(l: &LoadMeta) -> (u32, String, &'static str) {
    if l.kind == "bypass" {
        (
            BYPASS_SID,
            format!(
                "Mimamori inspection bypass: a stalled worker's frames from port {} forwarded uninspected",
                l.port
            ),
            "Inspection bypass",
        )
    } else {
        let host = l
            .host_ip
            .as_deref()
            .or(l.host_mac.as_deref())
            .unwrap_or("unknown");
        (
            SHED_SID,
            format!(
                "Mimamori inspection overload: shedding the heaviest sender's frames on port {} (host {host})",
                l.port
            ),
            "Inspection overload",
        )
    }
}

/// Writes records as EVE lines: each line reaches `out` in one `write_all` (an
/// [`EveFile`] rotates between lines, never inside one).
pub struct EveWriter<W: Write> {
    out: W,
    classes: Classifications,
    line: Vec<u8>,
}

impl<W: Write> EveWriter<W> {
    pub fn new(out: W, classes: Classifications) -> Self {
        EveWriter {
            out,
            classes,
            line: Vec::with_capacity(1024),
        }
    }

    /// The output (to rotate or reopen it).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Uses other classtypes from now on (a new rule set was swapped in).
    pub fn set_classes(&mut self, classes: Classifications) {
        self.classes = classes;
    }

    pub fn write(&mut self, rec: &Record, rs: &Ruleset) -> std::io::Result<()> {
        let rule = rec.rule.map(|i| &rs.rules[i as usize].rule);
        let meta: Option<&EventMeta> = rec.meta.as_deref();
        let own_msg;
        let alert = rule.map(|r| {
            let (category, prio) = r
                .classtype
                .as_deref()
                .and_then(|c| self.classes.get(c))
                .unwrap_or(("", 3));
            Alert {
                action: if rec.blocked { "blocked" } else { "allowed" },
                gid: r.gid,
                signature_id: r.sid,
                rev: r.rev,
                signature: &r.msg,
                category,
                severity: r.priority.unwrap_or(prio),
                suppressed: meta.and_then(|m| m.suppressed),
            }
        });
        // alerts without a rule: the category policy or a file verdict decided
        let alert = match (alert, rec.kind, meta) {
            (None, RecordKind::Alert, Some(m)) => {
                let (sid, msg, category) = if let Some(l) = m.load.as_ref() {
                    load_signature(l)
                } else if let Some(f) = m.fileinfo.as_ref() {
                    (
                        FILE_SID,
                        format!(
                            "Mimamori file verdict: {} ({})",
                            f.threat.as_deref().unwrap_or(f.verdict),
                            f.sha256
                        ),
                        "Malware file",
                    )
                } else {
                    let u = m.utm.as_ref();
                    let cats = u.map(|u| u.categories.join(",")).unwrap_or_default();
                    let host = u.and_then(|u| u.host.as_deref()).unwrap_or("");
                    (
                        CATEGORY_SID,
                        format!("Mimamori URL category {cats}: {host}"),
                        "Web category policy",
                    )
                };
                own_msg = msg;
                Some(Alert {
                    action: if rec.blocked { "blocked" } else { "allowed" },
                    gid: MIMAMORI_GID,
                    signature_id: sid,
                    rev: 1,
                    signature: &own_msg,
                    category,
                    severity: 1,
                    suppressed: None,
                })
            }
            (a, _, _) => a,
        };
        let has_ports = matches!(rec.proto, 6 | 17 | 132);
        let vlan: Vec<u16> = rec.vlan.iter().copied().filter(|v| *v != 0).collect();
        let eve = Eve {
            timestamp: timestamp(rec.ts_us),
            flow_id: rec.flow_id,
            pcap_cnt: rec.pcap_cnt,
            event_type: match rec.kind {
                RecordKind::Alert => "alert",
                RecordKind::Drop => "drop",
                RecordKind::Http => "http",
                RecordKind::Tls => "tls",
                RecordKind::Dns => "dns",
                RecordKind::FileInfo => "fileinfo",
                RecordKind::Traffic => "traffic",
            },
            vlan: (!vlan.is_empty()).then_some(vlan),
            src_ip: ip_str(rec.src),
            src_port: has_ports.then_some(rec.sport),
            dest_ip: ip_str(rec.dst),
            ip_v: if rec.src.is_ipv6() { 6 } else { 4 },
            dest_port: has_ports.then_some(rec.dport),
            proto: proto_name(rec.proto),
            icmp_type: rec.icmp.map(|i| i.0),
            icmp_code: rec.icmp.map(|i| i.1),
            ether: rec.eth.map(|(s, d)| Ether {
                src_mac: mac(s),
                dest_mac: mac(d),
            }),
            app_proto: match (rec.app_proto, rec.app_failed) {
                (Some(a), _) => Some(a.as_str()),
                (None, true) => Some("failed"),
                _ => None,
            },
            direction: rec.dir.as_str(),
            alert,
            drop: (rec.kind == RecordKind::Drop).then(|| Drop {
                len: rec.ip_len,
                ttl: rec.ttl,
                reason: if rec.rule.is_some() {
                    "rules"
                } else {
                    "flow drop"
                },
            }),
            http: meta.and_then(|m| m.http.as_ref()),
            tls: meta.and_then(|m| m.tls.as_ref()),
            dns: meta.and_then(|m| m.dns.as_ref()),
            fileinfo: meta.and_then(|m| m.fileinfo.as_ref()),
            mimamori: meta.and_then(|m| m.utm.as_ref()),
            traffic: meta.and_then(|m| m.traffic.as_ref()),
            load: meta.and_then(|m| m.load.as_ref()),
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &eve)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Counters of an [`EveFile`] (shown by `ctl stats`).
#[derive(Debug, Default)]
pub struct EveCounters {
    /// Lines written.
    pub lines: std::sync::atomic::AtomicU64,
    /// Lines not written: free space below the floor.
    pub dropped_low_disk: std::sync::atomic::AtomicU64,
    /// Lines not written: the file could not be written or opened.
    pub dropped_errors: std::sync::atomic::AtomicU64,
    /// Size rotations.
    pub rotations: std::sync::atomic::AtomicU64,
    /// Reopens asked by SIGHUP.
    pub reopens: std::sync::atomic::AtomicU64,
}

/// Bounds of an [`EveFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EveBounds {
    /// Rotate before the file would pass this size.
    pub max_bytes: u64,
    /// Rotated files kept (`.1` … `.keep`).
    pub keep: u32,
    /// Stop writing while the file system has less free space than this.
    pub min_free_bytes: u64,
}

/// The EVE file: size-based rotation (`eve.json` → `eve.json.1` …, `keep` kept, so at most
/// `(keep + 1) × max_bytes` on disk), reopen on request (SIGHUP after `logrotate`) and a
/// free-space floor. Files are created 0600 (they hold URLs). Each `write` is one EVE line.
pub struct EveFile {
    path: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    size: u64,
    bounds: EveBounds,
    counters: std::sync::Arc<EveCounters>,
    /// Time of the last free-space check and its outcome.
    checked: Option<std::time::Instant>,
    low_disk: bool,
    /// Bytes written since the last free-space check.
    since_check: u64,
}

/// Free bytes for unprivileged users on the file system holding `path` (statvfs).
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path, `st` a buffer statvfs fills on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

impl EveFile {
    /// Opens (appends to) `path`, creating it 0600.
    pub fn open(
        path: &std::path::Path,
        bounds: EveBounds,
        counters: std::sync::Arc<EveCounters>,
    ) -> std::io::Result<EveFile> {
        let mut f = EveFile {
            path: path.to_path_buf(),
            file: None,
            size: 0,
            bounds,
            counters,
            checked: None,
            low_disk: false,
            since_check: 0,
        };
        f.open_file()?;
        Ok(f)
    }

    fn open_file(&mut self) -> std::io::Result<()> {
        // 0600 (URLs, hosts); an existing file is made 0600 too; a link is refused
        let file = crate::perms::open_private(&self.path, true)?;
        self.size = file.metadata().map_or(0, |m| m.len());
        self.file = Some(std::io::BufWriter::new(file));
        Ok(())
    }

    fn rotated(&self, n: u32) -> std::path::PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    /// Closes the file and opens it again by name (after an outside rotation).
    pub fn reopen(&mut self) -> std::io::Result<()> {
        self.counters.reopens.fetch_add(1, Relaxed);
        if let Some(mut f) = self.file.take() {
            let _ = f.flush();
        }
        self.open_file()
    }

    /// `eve.json.(k)` → `.(k+1)`, the oldest removed, `eve.json` → `.1`, a new `eve.json`.
    pub fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            let _ = f.flush();
        }
        let keep = self.bounds.keep.max(1);
        let _ = std::fs::remove_file(self.rotated(keep));
        for n in (1..keep).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.counters.rotations.fetch_add(1, Relaxed);
        self.open_file()
    }

    /// Whether the file system has room above the floor (checked at most once a second
    /// and after every MiB written).
    fn room(&mut self, now: std::time::Instant) -> bool {
        if self.bounds.min_free_bytes == 0 {
            return true;
        }
        let due = self
            .checked
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1))
            || self.since_check >= 1 << 20;
        if due {
            self.checked = Some(now);
            self.since_check = 0;
            let dir = self
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let low = free_bytes(dir).is_some_and(|f| f < self.bounds.min_free_bytes);
            if low != self.low_disk {
                self.low_disk = low;
                if low {
                    tracing::warn!(file = %self.path.display(), floor = self.bounds.min_free_bytes, "free disk space below the floor: EVE output paused (detection and the uplink go on)");
                } else {
                    tracing::info!(file = %self.path.display(), "free disk space above the floor again: EVE output resumed");
                }
            }
        }
        !self.low_disk
    }
}

use std::sync::atomic::Ordering::Relaxed;

impl Write for EveFile {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if !self.room(std::time::Instant::now()) {
            self.counters.dropped_low_disk.fetch_add(1, Relaxed);
            return Ok(line.len());
        }
        let n = line.len() as u64;
        if self.size > 0 && self.size + n > self.bounds.max_bytes {
            if let Err(e) = self.rotate() {
                tracing::warn!(file = %self.path.display(), error = %e, "rotating the EVE file");
            }
        }
        if self.file.is_none() {
            // a failed rotation or reopen: try again, else the line is lost (counted)
            if self.open_file().is_err() {
                self.counters.dropped_errors.fetch_add(1, Relaxed);
                return Ok(line.len());
            }
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(line.len());
        };
        f.write_all(line)?;
        self.size += n;
        self.since_check += n;
        self.counters.lines.fetch_add(1, Relaxed);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mimamori-eve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn total(dir: &std::path::Path) -> (u64, usize) {
        let mut bytes = 0;
        let mut files = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            bytes += e.metadata().unwrap().len();
            files += 1;
        }
        (bytes, files)
    }

    #[test]
    fn rotation_keeps_eve_under_its_cap() {
        let d = tmp("rotate");
        let path = d.join("eve.json");
        let c = std::sync::Arc::new(EveCounters::default());
        let bounds = EveBounds {
            max_bytes: 1000,
            keep: 3,
            min_free_bytes: 0,
        };
        let mut f = EveFile::open(&path, bounds, c.clone()).unwrap();
        let line = [b'x'; 99];
        let mut line = line.to_vec();
        line.push(b'\n');
        for _ in 0..500 {
            f.write_all(&line).unwrap();
        }
        f.flush().unwrap();
        let (bytes, files) = total(&d);
        assert_eq!(files, 4, "eve.json and three rotated files");
        assert!(bytes <= 4 * 1000, "{bytes}");
        assert!(c.rotations.load(Relaxed) >= 40);
        assert_eq!(c.lines.load(Relaxed), 500);
        // whole lines in every file
        for n in ["eve.json", "eve.json.1", "eve.json.3"] {
            let t = std::fs::read(d.join(n)).unwrap();
            assert!(
                !t.is_empty() && t.len() % 100 == 0 && t.ends_with(b"\n"),
                "{n}"
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn reopen_follows_an_outside_rotation() {
        let d = tmp("reopen");
        let path = d.join("eve.json");
        let c = std::sync::Arc::new(EveCounters::default());
        let bounds = EveBounds {
            max_bytes: 1 << 20,
            keep: 2,
            min_free_bytes: 0,
        };
        let mut f = EveFile::open(&path, bounds, c.clone()).unwrap();
        f.write_all(b"one\n").unwrap();
        f.flush().unwrap();
        std::fs::rename(&path, d.join("eve.json.old")).unwrap();
        f.reopen().unwrap();
        f.write_all(b"two\n").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        assert_eq!(std::fs::read(d.join("eve.json.old")).unwrap(), b"one\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn below_the_disk_floor_nothing_is_written_and_it_is_counted() {
        let d = tmp("floor");
        let path = d.join("eve.json");
        let c = std::sync::Arc::new(EveCounters::default());
        let bounds = EveBounds {
            max_bytes: 1 << 20,
            keep: 2,
            min_free_bytes: u64::MAX,
        };
        let mut f = EveFile::open(&path, bounds, c.clone()).unwrap();
        for _ in 0..10 {
            f.write_all(b"line\n").unwrap();
        }
        f.flush().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(c.dropped_low_disk.load(Relaxed), 10);
        assert!(free_bytes(&d).is_some_and(|b| b > 0));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn timestamps() {
        assert_eq!(super::timestamp(0), "1970-01-01T00:00:00.000000+0000");
        // 2009-11-12 10:23:17.403417 UTC
        assert_eq!(
            super::timestamp(1_258_021_397_403_417),
            "2009-11-12T10:23:17.403417+0000"
        );
        assert_eq!(
            super::timestamp(951_782_400_000_001),
            "2000-02-29T00:00:00.000001+0000"
        );
    }
}
