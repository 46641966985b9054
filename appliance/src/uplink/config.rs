//! The uplink's TOML settings. The doc comments of [`UplinkConfig`] are the user
//! documentation; `appliance/uplink.example.toml` shows every key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use protocol::limits::MAX_EVENTS_PER_BATCH;

use super::spool::DEFAULT_MAX_EVENTS;

/// Settings of the uplink to the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Folder made by `mimamori-appliance activate --state-dir`: the device identity
    /// (`identity.toml`, `device.key`, `device.crt`, `cloud-ca.crt`) and the spool
    /// (`spool.redb`). A relative path is taken relative to the folder of this file.
    pub state_dir: PathBuf,
    /// Cloud address `host:port`. By default the address used at activation (stored in
    /// `identity.toml`).
    #[serde(default)]
    pub cloud: Option<String>,
    /// Seconds between heartbeats. The cloud declares the appliance stopped when heartbeats
    /// stop for its `stop_after` (5 minutes by default), so keep this well below that.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// Most events in one batch sent to the cloud (1 to 512, the protocol's limit).
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// Most events the spool holds while the cloud is unreachable. When it is full, new
    /// events are refused and counted (never dropped silently).
    #[serde(default = "default_max_events")]
    pub max_events: u64,
    /// `replay --uplink`: seconds to wait for the cloud to acknowledge every spooled event
    /// before giving up (the events stay in the spool for the next run).
    #[serde(default = "default_drain_timeout_secs")]
    pub drain_timeout_secs: u64,
}

fn default_heartbeat_secs() -> u64 {
    60
}
fn default_batch_max() -> usize {
    256
}
fn default_max_events() -> u64 {
    DEFAULT_MAX_EVENTS
}
fn default_drain_timeout_secs() -> u64 {
    60
}

/// The uplink settings could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {cause}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of its range.
    #[error("{path}: `{key}` {problem}")]
    Value {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl UplinkConfig {
    /// Reads and checks a config file; a relative `state_dir` is resolved against its folder.
    pub fn load(path: &Path) -> Result<UplinkConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.into(),
            cause,
        })?;
        let mut config = Self::parse(&text, path)?;
        if config.state_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            config.state_dir = base.join(&config.state_dir);
        }
        Ok(config)
    }

    /// Parses and checks TOML text; `path` names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<UplinkConfig, ConfigError> {
        let config: UplinkConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key, problem: String| {
            Err(ConfigError::Value {
                path: path.into(),
                key,
                problem,
            })
        };
        if self.heartbeat_secs == 0 {
            return bad("heartbeat_secs", "must be at least 1".into());
        }
        if !(1..=MAX_EVENTS_PER_BATCH).contains(&self.batch_max) {
            return bad(
                "batch_max",
                format!(
                    "must be 1 to {MAX_EVENTS_PER_BATCH}, not {}",
                    self.batch_max
                ),
            );
        }
        if self.max_events == 0 {
            return bad("max_events", "must be at least 1".into());
        }
        if let Some(cloud) = &self.cloud
            && let Err(e) = super::tls::CloudAddr::parse(cloud)
        {
            return bad("cloud", e.to_string());
        }
        Ok(())
    }

    /// [`heartbeat_secs`](Self::heartbeat_secs) as a duration.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// [`drain_timeout_secs`](Self::drain_timeout_secs) as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn parse(text: &str) -> Result<UplinkConfig, ConfigError> {
        UplinkConfig::parse(text, Path::new("uplink.toml"))
    }

    #[test]
    fn defaults_fill_everything_but_the_state_dir() {
        let c = parse("state_dir = \"/var/lib/mimamori\"").unwrap();
        assert_eq!(
            c,
            UplinkConfig {
                state_dir: "/var/lib/mimamori".into(),
                cloud: None,
                heartbeat_secs: 60,
                batch_max: 256,
                max_events: 1_000_000,
                drain_timeout_secs: 60,
            }
        );
        assert!(parse("").is_err(), "state_dir is required");
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../uplink.example.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.cloud.as_deref(), Some("cloud.example.jp:7443"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = parse("state_dir = \"s\"\nheartbeat = 5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `heartbeat`"), "{e}");
        let e = parse("state_dir = \"s\"\nbatch_max = 513")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`batch_max` must be 1 to 512, not 513"), "{e}");
        let e = parse("state_dir = \"s\"\ncloud = \"nohostport\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`cloud`"), "{e}");
    }

    #[test]
    fn relative_state_dir_is_next_to_the_file() {
        let dir = crate::uplink::testutil::TempDir::new("config");
        let path = dir.path().join("uplink.toml");
        std::fs::write(&path, "state_dir = \"state\"\n").unwrap();
        assert_eq!(
            UplinkConfig::load(&path).unwrap().state_dir,
            dir.path().join("state")
        );
    }
}
