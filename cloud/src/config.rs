//! `mimamori-cloud serve --config <toml>`: every setting, documented here. The doc comments
//! are the user documentation; `cloud/mimamori-cloud.example.toml` shows them in use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded store (redb), the device CA and the server key live.
    pub data_dir: PathBuf,
    /// Time zone for mails and the daily check: `Asia/Tokyo` (default), `UTC`, or a fixed
    /// offset such as `+09:00`.
    #[serde(default = "default_tz")]
    pub time_zone: String,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub timing: TimingConfig,
    /// Path of a scoring policy TOML replacing the built-in default (SPEC §5.2).
    #[serde(default)]
    pub scoring_policy: Option<PathBuf>,
    /// The portal's address as customers reach it (named in account mails). When it
    /// starts with `https://` the portal's cookies are marked `Secure` (TLS is ended by the
    /// reverse proxy in front of the portal).
    #[serde(default)]
    pub portal_url: Option<String>,
    #[serde(default)]
    pub portal: PortalConfig,
    /// The key that encrypts the secrets in the store (TOTP secrets, queued mails that may
    /// hold temporary passwords); default `<data_dir>/secrets.key`, created (mode 0600) on
    /// first start. Keep it on another volume than `data_dir` (a stolen copy of the data
    /// folder or of its backup then does not reveal them) and back it up separately: a store
    /// with encrypted records does not start without its key.
    #[serde(default)]
    pub secrets_key: Option<PathBuf>,
}

/// The customers' web portal (SPEC §5.6).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// Address to listen on (plain HTTP; put a TLS reverse proxy in front of it).
    #[serde(default = "default_portal_listen")]
    pub listen: SocketAddr,
    /// Minutes without a request after which a login ends.
    #[serde(default = "default_idle_minutes")]
    pub idle_minutes: u64,
    /// Header in which the reverse proxy in front of the portal passes the client's
    /// address (e.g. `X-Forwarded-For`; its last entry is used). Believed only from the
    /// peers in `trusted_proxies`; without it, or from any other peer, the audit log and
    /// the lockouts see the socket's peer address.
    #[serde(default)]
    pub trusted_proxy_header: Option<String>,
    /// Addresses or networks (`IP`, `IP/prefix`) of the reverse proxies whose
    /// `trusted_proxy_header` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

fn default_portal_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid default")
}
fn default_idle_minutes() -> u64 {
    30
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            listen: default_portal_listen(),
            idle_minutes: default_idle_minutes(),
            trusted_proxy_header: None,
            trusted_proxies: Vec::new(),
        }
    }
}

fn default_tz() -> String {
    "Asia/Tokyo".into()
}

/// The appliance-facing TLS listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Address to listen on.
    #[serde(default = "default_ingest_listen")]
    pub listen: SocketAddr,
    /// Host names and IP addresses put in the server certificate (appliances verify the
    /// name they connect to). `localhost` and `127.0.0.1` are always included.
    #[serde(default)]
    pub server_names: Vec<String>,
    /// Simultaneous connections accepted in total.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Simultaneous connections per device (a second one replaces nothing; it is refused).
    #[serde(default = "default_per_device")]
    pub max_connections_per_device: usize,
    /// Events accepted per device per second, averaged; above it the connection waits.
    #[serde(default = "default_rate")]
    pub max_events_per_sec_per_device: u32,
    /// Idle time after which a silent connection is closed.
    #[serde(default = "default_idle", with = "duration")]
    pub idle_timeout: Duration,
    /// Time a client has to complete the TLS handshake after connecting.
    #[serde(default = "default_tls_handshake_timeout", with = "duration")]
    pub tls_handshake_timeout: Duration,
    /// Time a client has, counted from connecting (reads do not extend it), to complete
    /// TLS and send its `Hello` with a device certificate, or to finish its activation.
    #[serde(default = "default_hello_timeout", with = "duration")]
    pub hello_timeout: Duration,
    /// Largest frame (bytes) accepted before the client is authenticated (`Hello` and
    /// `Activate` fit in a few KiB); devices get the protocol's limit afterwards.
    #[serde(default = "default_pre_auth_frame")]
    pub max_pre_auth_frame: usize,
    /// Connections not yet authenticated (TLS handshake, `Hello`, activation) held at once,
    /// in total; authenticated device sessions have the rest of `max_connections`, so
    /// such connections cannot take every slot.
    #[serde(default = "default_max_unauthenticated")]
    pub max_unauthenticated: usize,
    /// Connections not yet authenticated held at once from one source IP address.
    #[serde(default = "default_unauth_per_source")]
    pub max_unauthenticated_per_source: usize,
    /// Authenticated device sessions at once from one source IP address (an office behind
    /// one NAT address with several appliances counts here, not in the limit above).
    #[serde(default = "default_sessions_per_source")]
    pub max_sessions_per_source: usize,
    /// Command results and bundle reports a session may send per second (averaged over a
    /// burst of the same size); more closes the session.
    #[serde(default = "default_results_per_sec")]
    pub max_results_per_sec: u32,
    /// How long an activation code stays valid after it was issued (`device add`,
    /// `device reissue`); an expired code is refused and can be issued again.
    #[serde(default = "default_code_ttl", with = "duration")]
    pub activation_code_ttl: Duration,
}

fn default_ingest_listen() -> SocketAddr {
    "0.0.0.0:7443".parse().expect("valid default")
}
fn default_max_connections() -> usize {
    20_000
}
fn default_per_device() -> usize {
    2
}
fn default_rate() -> u32 {
    5_000
}
fn default_idle() -> Duration {
    Duration::from_secs(300)
}
fn default_tls_handshake_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_hello_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_pre_auth_frame() -> usize {
    16 * 1024
}
fn default_max_unauthenticated() -> usize {
    2_000
}
fn default_unauth_per_source() -> usize {
    16
}
fn default_sessions_per_source() -> usize {
    1_000
}
fn default_results_per_sec() -> u32 {
    20
}
fn default_code_ttl() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: default_ingest_listen(),
            server_names: Vec::new(),
            max_connections: default_max_connections(),
            max_connections_per_device: default_per_device(),
            max_events_per_sec_per_device: default_rate(),
            idle_timeout: default_idle(),
            tls_handshake_timeout: default_tls_handshake_timeout(),
            hello_timeout: default_hello_timeout(),
            max_pre_auth_frame: default_pre_auth_frame(),
            max_unauthenticated: default_max_unauthenticated(),
            max_unauthenticated_per_source: default_unauth_per_source(),
            max_sessions_per_source: default_sessions_per_source(),
            max_results_per_sec: default_results_per_sec(),
            activation_code_ttl: default_code_ttl(),
        }
    }
}

/// The fewest characters a configured `[admin] token` may have.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The operators' HTTP API (used by `mimamori-cloud admin`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on; loopback by default.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// The bootstrap token: it may only add, list and revoke operators
    /// (`admin operator add --name NAME` prints an operator's own token, shown once);
    /// every other admin call needs an operator token and is recorded in the audit log
    /// under the operator's name. At least 32 characters. Empty: a random token is
    /// generated at first start and written to `<data_dir>/admin.token`.
    #[serde(default)]
    pub token: String,
}

fn default_admin_listen() -> SocketAddr {
    "127.0.0.1:7080".parse().expect("valid default")
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            token: String::new(),
        }
    }
}

/// How mails leave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// SMTP relay host.
    #[serde(default = "default_smtp_host")]
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Upgrade with STARTTLS (required when true).
    #[serde(default)]
    pub starttls: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Sender address.
    #[serde(default = "default_from")]
    pub from: String,
    /// Timeout of one delivery attempt.
    #[serde(default = "default_smtp_timeout", with = "duration")]
    pub timeout: Duration,
}

fn default_smtp_host() -> String {
    "127.0.0.1".into()
}
fn default_smtp_port() -> u16 {
    25
}
fn default_from() -> String {
    "Mimamori <noreply@mimamori.invalid>".into()
}
fn default_smtp_timeout() -> Duration {
    Duration::from_secs(20)
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: default_smtp_host(),
            port: default_smtp_port(),
            starttls: false,
            username: None,
            password: None,
            from: default_from(),
            timeout: default_smtp_timeout(),
        }
    }
}

/// Timing of notifications and the heartbeat watch. Durations are written `90s`, `5m`,
/// `2h`, `3d` or as plain seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingConfig {
    /// Important alerts of one contract are collected this long before one mail goes out.
    #[serde(default = "d60s", with = "duration")]
    pub mail_window: Duration,
    /// The same (appliance, host, signature or file hash) is not mailed again within this.
    #[serde(default = "d72h", with = "duration")]
    pub dedup_window: Duration,
    /// Two distinct ★★☆ alerts of one host within this escalate to ★★★.
    #[serde(default = "d24h", with = "duration")]
    pub escalation_window: Duration,
    /// No heartbeat for this long: the appliance is stopped.
    #[serde(default = "d5m", with = "duration")]
    pub stop_after: Duration,
    /// Local time (`HH:MM`) of the daily check that re-notifies still-stopped appliances.
    #[serde(default = "default_daily")]
    pub daily_check_at: String,
    /// After the cloud starts, no stop notice until this has passed (its own downtime is
    /// not the appliances' fault).
    #[serde(default = "d10m", with = "duration")]
    pub startup_grace: Duration,
    /// First retry delay of a failed mail; doubles up to `mail_retry_max`.
    #[serde(default = "d10s", with = "duration")]
    pub mail_retry_min: Duration,
    #[serde(default = "d10m", with = "duration")]
    pub mail_retry_max: Duration,
    /// A mail still failing this long after it was queued is given up: moved out of the
    /// outbox into the failed mails (`admin mail failed`, counted in `admin ops status`),
    /// logged as a warning and never retried.
    #[serde(default = "d72h", with = "duration")]
    pub mail_give_up: Duration,
}

fn d10s() -> Duration {
    Duration::from_secs(10)
}
fn d60s() -> Duration {
    Duration::from_secs(60)
}
fn d5m() -> Duration {
    Duration::from_secs(300)
}
fn d10m() -> Duration {
    Duration::from_secs(600)
}
fn d24h() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d72h() -> Duration {
    Duration::from_secs(72 * 3600)
}
fn default_daily() -> String {
    "09:00".into()
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            mail_window: d60s(),
            dedup_window: d72h(),
            escalation_window: d24h(),
            stop_after: d5m(),
            daily_check_at: default_daily(),
            startup_grace: d10m(),
            mail_retry_min: d10s(),
            mail_retry_max: d10m(),
            mail_give_up: d72h(),
        }
    }
}

/// `90s`, `5m`, `2h`, `3d`, `250ms` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h, d)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => super::parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Config {
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            source: e,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown,
            source: Box::new(e),
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        crate::clock::parse_tz(&self.time_zone).map_err(|r| ConfigError::Invalid {
            field: "time_zone",
            reason: r,
        })?;
        crate::clock::parse_hhmm(&self.timing.daily_check_at).map_err(|r| {
            ConfigError::Invalid {
                field: "timing.daily_check_at",
                reason: r,
            }
        })?;
        let tok = self.admin.token.chars().count();
        if tok > 0 && tok < MIN_ADMIN_TOKEN_CHARS {
            return Err(ConfigError::Invalid {
                field: "admin.token",
                reason: format!(
                    "the bootstrap token has {tok} characters; at least {MIN_ADMIN_TOKEN_CHARS} are required (e.g. `openssl rand -hex 32`), or leave it empty to have one generated in <data_dir>/admin.token"
                ),
            });
        }
        if self
            .admin
            .token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::Invalid {
                field: "admin.token",
                reason: "must not contain spaces or control characters".into(),
            });
        }
        for n in &self.portal.trusted_proxies {
            n.parse::<crate::audit::Net>()
                .map_err(|r| ConfigError::Invalid {
                    field: "portal.trusted_proxies",
                    reason: r,
                })?;
        }
        if let Some(h) = &self.portal.trusted_proxy_header {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ConfigError::Invalid {
                    field: "portal.trusted_proxy_header",
                    reason: format!("`{h}` is not a header name"),
                });
            }
        }
        if self.timing.mail_window.is_zero() {
            return Err(ConfigError::Invalid {
                field: "timing.mail_window",
                reason: "must be above zero".into(),
            });
        }
        Ok(())
    }

    /// Where the secrets key is (`secrets_key`, default `<data_dir>/secrets.key`).
    pub fn secrets_key_path(&self) -> PathBuf {
        self.secrets_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secrets.key"))
    }

    /// This configuration with its secrets (admin token, SMTP password) replaced by
    /// `<redacted>`: what `check-config` prints.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        let hide = |s: &mut String| {
            if !s.is_empty() {
                *s = "<redacted>".into();
            }
        };
        hide(&mut c.admin.token);
        if let Some(p) = c.smtp.password.as_mut() {
            hide(p);
        }
        c
    }

    /// The portal's address for mails (`portal_url`, default a local one).
    pub fn portal_url(&self) -> String {
        self.portal_url
            .clone()
            .unwrap_or_else(|| "https://localhost:8443/".into())
    }

    /// UTC offset of the configured time zone, in seconds.
    pub fn utc_offset_secs(&self) -> i64 {
        crate::clock::parse_tz(&self.time_zone).unwrap_or(9 * 3600)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = toml::from_str::<Config>("data_dir = \"/tmp/x\"\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"));
        let c: Config =
            toml::from_str("data_dir = \"/tmp/x\"\n[timing]\nstop_after = \"3s\"\n").unwrap();
        assert_eq!(c.timing.stop_after, Duration::from_secs(3));
        assert_eq!(c.timing.mail_window, Duration::from_secs(60));
        assert_eq!(c.time_zone, "Asia/Tokyo");
        assert!(c.check().is_ok());
    }

    #[test]
    fn redacted_hides_secrets() {
        let c: Config = toml::from_str(
            "data_dir = \"/tmp/x\"\n[admin]\ntoken = \"tok-SECRET-1\"\n[smtp]\nusername = \"u\"\npassword = \"pw-SECRET-2\"\n",
        )
        .unwrap();
        let shown = format!("{:#?}", c.redacted());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(c.admin.token, "tok-SECRET-1", "the original is unchanged");
        assert_eq!(c.secrets_key_path(), PathBuf::from("/tmp/x/secrets.key"));
    }

    #[test]
    fn short_admin_tokens_and_bad_proxies_are_refused() {
        let c: Config =
            toml::from_str("data_dir = \"/tmp/x\"\n[admin]\ntoken = \"test-token\"\n").unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("admin.token") && e.contains("32"), "{e}");
        let ok = format!(
            "data_dir = \"/tmp/x\"\n[admin]\ntoken = \"{}\"\n",
            "k".repeat(32)
        );
        assert!(toml::from_str::<Config>(&ok).unwrap().check().is_ok());
        let c: Config = toml::from_str("data_dir = \"/tmp/x\"\n[portal]\ntrusted_proxy_header = \"X-Forwarded-For\"\ntrusted_proxies = [\"10.0.0.0/40\"]\n").unwrap();
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .contains("trusted_proxies")
        );
    }
}
