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
    /// Bounds of the EVE file (`[output.eve_limits]`).
    pub eve_limits: EveLimits,
    /// Folder `ssid render` writes `hostapd-ssid1.conf` / `hostapd-ssid2.conf` to when no
    /// `--out-dir` is given (mode 0600: they hold the passphrase); a wipe removes them.
    pub hostapd_dir: Option<PathBuf>,
}

/// How much disk EVE output may take. On disk it is at most `(keep + 1) × max_bytes`:
/// `eve.json` is renamed to `eve.json.1` (`.1` to `.2`, …, the oldest removed) when the next
/// line would take it past `max_bytes`. SIGHUP reopens the file (after an outside
/// `logrotate`). Below `min_free_bytes` of free space on its file system EVE lines are not
/// written (counted in `ctl stats`), while detection, blocking and the uplink's spool go on.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EveLimits {
    /// Size at which `eve.json` is rotated (default 100 MiB; at least 64 KiB).
    pub max_bytes: u64,
    /// Rotated files kept: `eve.json.1` … `eve.json.<keep>` (default 5; 1 to 100).
    pub keep: u32,
    /// Free space kept on the file system of the EVE file (default 128 MiB; 0: no floor).
    pub min_free_bytes: u64,
}

impl Default for EveLimits {
    fn default() -> Self {
        EveLimits {
            max_bytes: 100 << 20,
            keep: 5,
            min_free_bytes: 128 << 20,
        }
    }
}

/// Alert budgets against floods, in the spirit of Suricata's thresholds, for every rule
/// without a `threshold` of its own. An alert is written while its (rule, source) and
/// (rule, destination) budgets (`per_host`) and its rule's budget (`per_rule`) have room in
/// the period; the rest are counted as suppressed (`ctl stats`, heartbeat) and written once
/// per rule and source at the end of the period as an alert with `"suppressed": <count>`.
/// Only the logging is limited: a `drop` rule drops every packet it matches.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// Limit alerts (default true).
    pub limit: bool,
    /// Alerts per rule and source, and per rule and destination, per period (default 20).
    pub per_host: u32,
    /// Alerts per rule per period, all hosts together (default 200).
    pub per_rule: u32,
    /// Period in seconds (default 60; 1 to 3600).
    pub period_secs: u32,
    /// (rule, host) budgets tracked per worker, a fixed table (default 8192; 64 to 1048576).
    pub table: usize,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            limit: true,
            per_host: 20,
            per_rule: 200,
            period_secs: 60,
            table: 8192,
        }
    }
}

impl Alerts {
    /// The budgets the workers apply.
    pub fn limit(&self) -> crate::detect::AlertLimit {
        crate::detect::AlertLimit {
            enabled: self.limit,
            per_host: self.per_host,
            per_rule: self.per_rule,
            period_secs: self.period_secs,
            table: self.table,
        }
    }
}

/// Inspection health (fail-open).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Watchdog {
    /// A worker with queued frames and no progress for this long is stalled.
    pub stall_ms: u64,
    /// Frames queued per worker; a frame that finds the queue full is dropped (counted
    /// `shed_full`), never forwarded uninspected.
    pub queue: usize,
    /// Percent of `queue` above which the frames of the heaviest senders (the MAC on
    /// office ports, the IP address on the WAN port) are dropped (counted `shed`) so that
    /// everyone else keeps being inspected; 1 to 100.
    pub shed_percent: u8,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            stall_ms: 500,
            queue: 4096,
            shed_percent: 50,
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
    /// Most events the spool holds while the cloud is unreachable (default 1,000,000; at
    /// least 10). Near the bound, ordinary alerts are refused first and important events
    /// (file verdicts, ★★★-severity alerts, traffic records) take the place of the oldest
    /// ordinary alerts; what is dropped is counted (heartbeat `spool_evicted`,
    /// `spool_refused`).
    #[serde(default = "default_spool_max")]
    pub spool_max_events: u64,
}

fn default_heartbeat() -> u64 {
    60
}

fn default_spool_max() -> u64 {
    crate::uplink::spool::DEFAULT_MAX_EVENTS
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
    /// The port role the management stack belongs to (`wan`, `lan`, `ssid1`, `ssid2`;
    /// default `wan`, the router's side). DHCP, ARP and DNS are believed only from frames
    /// that arrived on this port, and the stack's frames go out only there; from the
    /// other ports the appliance answers only ARP requests for its address and pings.
    pub side: Option<String>,
}

impl Default for Management {
    fn default() -> Self {
        Management {
            address: "dhcp".into(),
            gateway: None,
            dns: Vec::new(),
            mac: None,
            side: None,
        }
    }
}

/// Host isolation ("logical unplug").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Isolation {
    /// Hosts isolated at start: MAC (`02:00:5e:00:00:01`) or IP.
    pub hosts: Vec<String>,
    /// What every isolated host may still reach: `IP` or `IP:PORT` (`[v6]:port`). Each
    /// isolated host gets this list plus the entries of the command that isolated it
    /// (removed when it is released).
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeOpts {
    /// A MAC address not heard from for this long is forgotten (flooded again).
    pub mac_ageing_secs: u32,
    /// Inspection workers; default: cores − 1, at least 1.
    pub workers: Option<usize>,
    /// Stations (source MAC addresses) each port may hold in the MAC table; beyond it
    /// the port learns no new station until some age out (counted as `learn_refused`).
    /// Stops a flood of random MACs from one port filling the table (16 to 65,536).
    pub mac_limit_per_port: u32,
}

impl Default for BridgeOpts {
    fn default() -> Self {
        BridgeOpts {
            mac_ageing_secs: 300,
            workers: None,
            mac_limit_per_port: crate::bridge::switch::DEFAULT_MAC_LIMIT,
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
    /// Alert budgets against floods.
    #[serde(default)]
    pub alerts: Alerts,
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

    /// The index (in [`Ports::list`]) of the port the management stack belongs to:
    /// `management.side`, default `wan`; `None` when that port is not configured.
    pub fn management_port(&self) -> Option<usize> {
        let side = self.management.side.as_deref().unwrap_or("wan").trim();
        self.ports
            .list()
            .iter()
            .position(|(r, _)| r.as_str().eq_ignore_ascii_case(side))
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
        if !(16..=65_536).contains(&self.bridge.mac_limit_per_port) {
            return bad("bridge.mac_limit_per_port: must be 16 to 65536".into());
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
            if u.spool_max_events < 10 {
                return bad("uplink.spool_max_events: must be at least 10".into());
            }
            if u.mode == UplinkMode::Inband {
                let m = &self.management;
                crate::mgmt::Addressing::parse(&m.address, m.gateway.as_deref(), &m.dns)
                    .map_err(|e| ConfigError::Invalid(format!("management: {e}")))?;
                if let Some(mac) = &m.mac {
                    parse_mac(mac)
                        .map_err(|e| ConfigError::Invalid(format!("management.mac: {e}")))?;
                }
                if self.management_port().is_none() {
                    return bad(format!(
                        "management.side: `{}` is not a configured port (wan, lan, ssid1, ssid2)",
                        m.side.as_deref().unwrap_or("wan")
                    ));
                }
            }
        }
        let a = &self.alerts;
        if a.per_host == 0 || a.per_rule == 0 {
            return bad("alerts.per_host, alerts.per_rule: must be at least 1 (alerts.limit = false turns limiting off)".into());
        }
        if !(1..=3600).contains(&a.period_secs) {
            return bad("alerts.period_secs: must be 1 to 3600".into());
        }
        if !(64..=1 << 20).contains(&a.table) {
            return bad("alerts.table: must be 64 to 1048576".into());
        }
        let e = &self.output.eve_limits;
        if e.max_bytes < 64 << 10 {
            return bad("output.eve_limits.max_bytes: must be at least 65536".into());
        }
        if !(1..=100).contains(&e.keep) {
            return bad("output.eve_limits.keep: must be 1 to 100".into());
        }
        if self.management.side.is_some() && self.management_port().is_none() {
            return bad(format!(
                "management.side: `{}` is not a configured port (wan, lan, ssid1, ssid2)",
                self.management.side.as_deref().unwrap_or_default()
            ));
        }
        if self.watchdog.stall_ms < 10 {
            return bad("watchdog.stall_ms: must be at least 10".into());
        }
        if !(64..=1 << 20).contains(&self.watchdog.queue) {
            return bad("watchdog.queue: must be 64 to 1048576 frames".into());
        }
        if !(1..=100).contains(&self.watchdog.shed_percent) {
            return bad("watchdog.shed_percent: must be 1 to 100".into());
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

    #[test]
    fn flood_bounds_default_on_and_are_checked() {
        let c = Config::parse("[ports]\nwan = \"a\"\nlan = \"b\"\n").unwrap();
        assert!(c.alerts.limit().enabled);
        assert_eq!(c.output.eve_limits.keep, 5);
        assert!(c.output.eve_limits.max_bytes > 0 && c.output.eve_limits.min_free_bytes > 0);
        let c = Config::parse(
            "[ports]\nwan = \"a\"\nlan = \"b\"\n[output]\neve = \"e.json\"\n[alerts]\nper_host = 3\n[output.eve_limits]\nmax_bytes = 100000\n",
        )
        .unwrap();
        assert_eq!((c.alerts.per_host, c.output.eve_limits.max_bytes), (3, 100_000));
        for (bad, key) in [
            ("[alerts]\nper_host = 0\n", "alerts.per_host"),
            ("[alerts]\nperiod_secs = 0\n", "alerts.period_secs"),
            ("[output.eve_limits]\nmax_bytes = 10\n", "output.eve_limits.max_bytes"),
            ("[output.eve_limits]\nkeep = 0\n", "output.eve_limits.keep"),
        ] {
            let e = Config::parse(&format!("[ports]\nwan = \"a\"\nlan = \"b\"\n{bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}
