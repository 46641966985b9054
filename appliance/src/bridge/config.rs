//! The appliance's TOML configuration (`run --config`, `ssid render --config`).
//!
//! Every table but `[ports]` is optional; unknown keys are refused so a typo never
//! silently turns a protection off.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ssid::SsidConfig;

/// A configuration that cannot be used, with what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Syntax { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
}

/// Port roles (SPEC §3.1). The number is the port's index in the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Wan,
    Lan,
    Ssid1,
    Ssid2,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Wan => "wan",
            Role::Lan => "lan",
            Role::Ssid1 => "ssid1",
            Role::Ssid2 => "ssid2",
        }
    }
    /// Internal side: hosts here are the office's (isolation applies to them).
    pub fn internal(self) -> bool {
        self != Role::Wan
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// IPS: blocking actions are carried out (default).
    #[default]
    Prevent,
    /// IDS: never blocks, still alerts.
    Detect,
}

/// Interface name per role; at least two ports.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    pub wan: Option<String>,
    pub lan: Option<String>,
    pub ssid1: Option<String>,
    pub ssid2: Option<String>,
}

impl Ports {
    /// (role, interface) of every configured port, in role order.
    pub fn list(&self) -> Vec<(Role, String)> {
        [
            (Role::Wan, &self.wan),
            (Role::Lan, &self.lan),
            (Role::Ssid1, &self.ssid1),
            (Role::Ssid2, &self.ssid2),
        ]
        .into_iter()
        .filter_map(|(r, n)| n.clone().map(|n| (r, n)))
        .collect()
    }
}

/// What is inspected with what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inspection {
    /// Rule files or folders of `*.rules`.
    pub rules: Vec<PathBuf>,
    /// UT1/SquidGuard category folder.
    pub categories: Option<PathBuf>,
    /// TOML with a `[categories]` table (`gambling = "block"`).
    pub category_policy: Option<PathBuf>,
    /// Known-bad file hashes (TSV).
    pub file_hashes: Option<PathBuf>,
    /// More file signatures (`name<TAB>hex`).
    pub file_signatures: Option<PathBuf>,
    /// Hash and scan HTTP bodies as files.
    pub files: bool,
    /// The office's addresses (`$HOME_NET`), Suricata syntax; default Suricata's.
    pub home_net: Option<String>,
    /// Suricata-style settings (`stream.reassembly.depth = "4mb"`).
    pub settings: Vec<String>,
}

impl Default for Inspection {
    fn default() -> Self {
        Inspection {
            rules: Vec::new(),
            categories: None,
            category_policy: None,
            file_hashes: None,
            file_signatures: None,
            files: true,
            home_net: None,
            settings: Vec::new(),
        }
    }
}

/// Where events and the control socket go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Output {
    /// EVE-JSON lines; `-` or absent: standard output.
    pub eve: Option<PathBuf>,
    /// Unix socket for `mimamori-appliance ctl` (isolate, release, stats). Its folder is
    /// created 0700 when missing; an existing one must not be a link, must belong to root
    /// or the appliance's user and must not be writable by others.
    pub control: Option<PathBuf>,
    /// Folder `ssid render` writes `hostapd-ssid1.conf` / `hostapd-ssid2.conf` to when no
    /// `--out-dir` is given (mode 0600: they hold the passphrase); a wipe removes them.
    pub hostapd_dir: Option<PathBuf>,
}

/// Inspection health (fail-open).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Watchdog {
    /// A worker with queued frames and no progress for this long is stalled.
    pub stall_ms: u64,
    /// Frames queued per worker before new frames bypass (or, fail-closed, drop).
    pub queue: usize,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            stall_ms: 500,
            queue: 4096,
        }
    }
}

/// One false-positive exception: exactly one of the keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// Suppress this signature entirely.
    pub sid: Option<u32>,
    /// Never inspect or block this internal host (IP).
    pub host: Option<IpAddr>,
    /// Never block this domain or its subdomains by category.
    pub domain: Option<String>,
    /// Never treat a file with this SHA-256 as bad.
    pub sha256: Option<String>,
}

/// How `run` reaches the cloud.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UplinkMode {
    /// The appliance's own address on the bridged segment (smoltcp): no kernel IP on the
    /// bridged ports.
    #[default]
    Inband,
    /// Kernel sockets (development, a box with a management NIC).
    Host,
}

/// The uplink to the cloud of `run` (SPEC §3.4). Without this section the bridge runs
/// alone (EVE output only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunUplink {
    /// Identity, spool, the cloud's settings (`runtime.json`) and rule bundles.
    pub state_dir: PathBuf,
    /// Cloud `host:port`; default: the address used at activation.
    #[serde(default)]
    pub cloud: Option<String>,
    #[serde(default)]
    pub mode: UplinkMode,
    /// One-time activation code: used at the first start, when `state_dir` holds no
    /// identity yet (then `cloud` and `cloud_ca` are needed).
    #[serde(default)]
    pub activation_code: Option<String>,
    /// PEM of the CA that signed the cloud's server certificate (for activation).
    #[serde(default)]
    pub cloud_ca: Option<PathBuf>,
    /// Ed25519 public key (64 hex digits) rule bundles must be signed with
    /// (`mimamori-cloud admin rules status`). Without it bundles are refused.
    #[serde(default)]
    pub bundle_key: Option<String>,
    /// Seconds between heartbeats.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
}

fn default_heartbeat() -> u64 {
    60
}

/// The appliance's own address for the in-band uplink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Management {
    /// `dhcp` or a static `a.b.c.d/len`.
    pub address: String,
    /// Static only: the default gateway.
    pub gateway: Option<String>,
    /// Static only: DNS servers.
    pub dns: Vec<String>,
    /// The appliance's MAC; default: a locally administered address kept in the state
    /// folder.
    pub mac: Option<String>,
}

impl Default for Management {
    fn default() -> Self {
        Management {
            address: "dhcp".into(),
            gateway: None,
            dns: Vec::new(),
            mac: None,
        }
    }
}

/// Host isolation ("logical unplug").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Isolation {
    /// Hosts isolated at start: MAC (`02:00:5e:00:00:01`) or IP.
    pub hosts: Vec<String>,
    /// What an isolated host may still reach: `IP` or `IP:PORT` (`[v6]:port`).
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeOpts {
    /// A MAC address not heard from for this long is forgotten (flooded again).
    pub mac_ageing_secs: u32,
    /// Inspection workers; default: cores − 1, at least 1.
    pub workers: Option<usize>,
}

impl Default for BridgeOpts {
    fn default() -> Self {
        BridgeOpts {
            mac_ageing_secs: 300,
            workers: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Debug {
    /// Accept `ctl hook …` commands that stall or kill a worker (tests only).
    pub test_hooks: bool,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The appliance's name, shown on block pages.
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub mode: Mode,
    /// Drop instead of forwarding uninspected when inspection fails.
    #[serde(default)]
    pub fail_closed: bool,
    #[serde(default)]
    pub ports: Ports,
    #[serde(default)]
    pub bridge: BridgeOpts,
    #[serde(default)]
    pub inspection: Inspection,
    #[serde(default)]
    pub output: Output,
    #[serde(default)]
    pub watchdog: Watchdog,
    #[serde(default)]
    pub exceptions: Vec<Exception>,
    #[serde(default)]
    pub isolation: Isolation,
    pub ssid1: Option<SsidConfig>,
    pub ssid2: Option<SsidConfig>,
    #[serde(default)]
    pub uplink: Option<RunUplink>,
    #[serde(default)]
    pub management: Management,
    #[serde(default)]
    pub debug: Debug,
    /// The file this configuration was read from (`Config::load`); a wipe rewrites it
    /// without its secrets.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// A unicast MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let m = s.parse::<protocol::messages::Mac>()?.0;
    if m[0] & 1 != 0 || m == [0; 6] {
        return Err(format!("`{s}` is not a unicast MAC address"));
    }
    Ok(m)
}

fn default_name() -> String {
    "Mimamori".into()
}

impl Config {
    /// Read and check a configuration file. Relative paths in it are taken from the
    /// file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut cfg = Config::parse(&text).map_err(|e| match e {
            ConfigError::Syntax { msg, .. } => ConfigError::Syntax {
                path: path.into(),
                msg,
            },
            ConfigError::Invalid(m) => ConfigError::Invalid(format!("{}: {m}", path.display())),
            e => e,
        })?;
        if let Some(dir) = path.parent() {
            cfg.resolve_paths(dir);
        }
        cfg.source = Some(path.into());
        Ok(cfg)
    }

    /// Parse and check configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            msg: e.to_string(),
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && p.as_os_str() != "-" {
                *p = dir.join(&*p);
            }
        };
        let i = &mut self.inspection;
        i.rules.iter_mut().for_each(fix);
        for p in [
            &mut i.categories,
            &mut i.category_policy,
            &mut i.file_hashes,
            &mut i.file_signatures,
            &mut self.output.eve,
            &mut self.output.control,
            &mut self.output.hostapd_dir,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if let Some(u) = self.uplink.as_mut() {
            fix(&mut u.state_dir);
            if let Some(p) = u.cloud_ca.as_mut() {
                fix(p);
            }
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let ports = self.ports.list();
        if ports.len() < 2 {
            return bad(
                "[ports]: at least two ports are needed (wan and lan, ssid1, ssid2)".into(),
            );
        }
        for (i, (r, n)) in ports.iter().enumerate() {
            if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', ':']) {
                return bad(format!(
                    "ports.{}: `{n}` is not a network interface name",
                    r.as_str()
                ));
            }
            if let Some((r2, _)) = ports[..i].iter().find(|(_, m)| m == n) {
                return bad(format!(
                    "ports.{} and ports.{} are both `{n}`: each role needs its own interface",
                    r2.as_str(),
                    r.as_str()
                ));
            }
        }
        if self.bridge.workers == Some(0) || self.bridge.workers.is_some_and(|w| w > 64) {
            return bad("bridge.workers: must be 1 to 64".into());
        }
        if self.bridge.mac_ageing_secs == 0 || self.bridge.mac_ageing_secs > 3600 {
            return bad("bridge.mac_ageing_secs: must be 1 to 3600".into());
        }
        if let Some(u) = &self.uplink {
            if let Some(k) = &u.bundle_key {
                if k.len() != 64 || !k.chars().all(|c| c.is_ascii_hexdigit()) {
                    return bad(
                        "uplink.bundle_key: 64 hex digits (mimamori-cloud admin rules status)"
                            .into(),
                    );
                }
            }
            if u.heartbeat_secs == 0 || u.heartbeat_secs > 3600 {
                return bad("uplink.heartbeat_secs: must be 1 to 3600".into());
            }
            if u.mode == UplinkMode::Inband {
                let m = &self.management;
                crate::mgmt::Addressing::parse(&m.address, m.gateway.as_deref(), &m.dns)
                    .map_err(|e| ConfigError::Invalid(format!("management: {e}")))?;
                if let Some(mac) = &m.mac {
                    parse_mac(mac)
                        .map_err(|e| ConfigError::Invalid(format!("management.mac: {e}")))?;
                }
            }
        }
        if self.watchdog.stall_ms < 10 {
            return bad("watchdog.stall_ms: must be at least 10".into());
        }
        if !(64..=1 << 20).contains(&self.watchdog.queue) {
            return bad("watchdog.queue: must be 64 to 1048576 frames".into());
        }
        for (i, e) in self.exceptions.iter().enumerate() {
            let n = [
                e.sid.is_some(),
                e.host.is_some(),
                e.domain.is_some(),
                e.sha256.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                return bad(format!(
                    "exceptions[{i}]: give exactly one of sid, host, domain, sha256"
                ));
            }
            if let Some(h) = &e.sha256 {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return bad(format!(
                        "exceptions[{i}].sha256: `{h}` is not 64 hex digits"
                    ));
                }
            }
            if let Some(d) = &e.domain {
                if d.is_empty() || d.contains(['/', ' ', ':']) {
                    return bad(format!(
                        "exceptions[{i}].domain: `{d}` is not a domain name"
                    ));
                }
            }
        }
        for h in &self.isolation.hosts {
            crate::bridge::isolate::HostId::parse(h)
                .map_err(|m| ConfigError::Invalid(format!("isolation.hosts: {m}")))?;
        }
        for a in &self.isolation.allow {
            crate::bridge::isolate::AllowEntry::parse(a)
                .map_err(|m| ConfigError::Invalid(format!("isolation.allow: {m}")))?;
        }
        for (role, s) in [
            (crate::ssid::SsidRole::Ssid1, &self.ssid1),
            (crate::ssid::SsidRole::Ssid2, &self.ssid2),
        ] {
            if let Some(s) = s {
                crate::ssid::render(role, s).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Inspection workers to start.
    pub fn workers(&self) -> usize {
        self.bridge.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_valid() {
        let c = Config::parse(include_str!("../../appliance.example.toml")).unwrap();
        assert_eq!(c.ports.list().len(), 2);
        assert!(c.ssid1.is_some());
        assert_eq!(c.watchdog.stall_ms, 500);
    }

    #[test]
    fn minimal_and_defaults() {
        let c = Config::parse("[ports]\nwan = \"eth0\"\nlan = \"eth1\"\n").unwrap();
        assert_eq!(c.mode, Mode::Prevent);
        assert!(!c.fail_closed);
        assert!(c.workers() >= 1);
        assert_eq!(
            c.ports.list(),
            vec![(Role::Wan, "eth0".into()), (Role::Lan, "eth1".into())]
        );
        assert!(c.inspection.files);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse("[ports]\nwan = \"eth0\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least two ports"), "{e}");
        let e = Config::parse("[ports]\nwan = \"eth0\"\nlan = \"eth0\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ports.wan and ports.lan"), "{e}");
        let e = Config::parse("mode = \"block\"\n[ports]\nwan = \"a\"\nlan = \"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode") || e.contains("prevent"), "{e}");
        let e = Config::parse("[ports]\nwan = \"a\"\nlan = \"b\"\nwlan = \"c\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("wlan"), "{e}");
        let e = Config::parse(
            "[ports]\nwan = \"a\"\nlan = \"b\"\n[[exceptions]]\nsid = 1\nhost = \"198.18.0.1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("exactly one"), "{e}");
        let e = Config::parse(
            "[ports]\nwan = \"a\"\nlan = \"b\"\n[isolation]\nhosts = [\"nonsense\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("isolation.hosts"), "{e}");
    }
}
