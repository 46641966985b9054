//! Appliance → cloud status messages: heartbeat, rule-bundle status, command results.

use serde::{Deserialize, Serialize};

use super::common::Mode;
use crate::bounded::{Name, Text};
use crate::error::FrameError;
use crate::limits::MAX_COUNTERS;
use crate::validate::{self, Validate};

/// One named counter, e.g. `packets_uninspected` (SPEC §3.3 fail-open is always counted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Counter name, snake case.
    pub name: Name,
    /// Value since the appliance started.
    pub value: u64,
}

/// Sent every 60 s; the cloud declares an appliance stopped when heartbeats stop (SPEC §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Seconds since the appliance started.
    pub uptime_s: u64,
    /// Firmware version string.
    pub firmware: Name,
    /// Version of the rule bundle in use.
    pub rules_version: Name,
    /// Current inspection mode.
    pub mode: Mode,
    /// At most [`MAX_COUNTERS`] counters.
    pub counters: Vec<Counter>,
}

impl Validate for Heartbeat {
    fn validate(&self) -> Result<(), FrameError> {
        self.firmware.check("heartbeat.firmware")?;
        self.rules_version.check("heartbeat.rules_version")?;
        validate::list(&self.counters, MAX_COUNTERS, "heartbeat.counters")?;
        self.counters
            .iter()
            .try_for_each(|c| c.name.check("heartbeat.counters.name"))
    }
}

/// Outcome of installing a rule bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BundleState {
    /// Verified, compiled and swapped in.
    Applied,
    /// Rejected (bad signature, hash mismatch, compile failure); the old bundle stays.
    Refused {
        /// Why, for the operator.
        reason: Text,
    },
}

/// Appliance → cloud: result of a `BundleAvailable` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleStatus {
    /// The bundle version this status is about.
    pub version: Name,
    /// Applied or refused.
    pub state: BundleState,
}

impl Validate for BundleStatus {
    fn validate(&self) -> Result<(), FrameError> {
        self.version.check("bundle_status.version")?;
        match &self.state {
            BundleState::Applied => Ok(()),
            BundleState::Refused { reason } => reason.check("bundle_status.reason"),
        }
    }
}

/// Appliance → cloud: outcome of a [`Command`](super::Command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The `id` of the command.
    pub command_id: u64,
    /// Whether it was carried out.
    pub ok: bool,
    /// Detail for the operator (error text when `ok` is false).
    pub message: Text,
}

impl Validate for CommandResult {
    fn validate(&self) -> Result<(), FrameError> {
        self.message.check("command_result.message")
    }
}

/// Appliance → cloud: asks for part of a rule bundle announced by `BundleAvailable`
/// (protocol version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFetch {
    /// The announced version.
    pub version: Name,
    /// First byte wanted.
    pub offset: u64,
}

impl Validate for BundleFetch {
    fn validate(&self) -> Result<(), FrameError> {
        self.version.check("bundle_fetch.version")?;
        crate::validate::ensure(
            self.offset <= crate::bundle::MAX_BUNDLE as u64,
            "bundle_fetch.offset",
            "beyond the largest bundle",
        )
    }
}

/// Cloud → appliance: one part of a rule bundle file (protocol version 2). The file is
/// checked by its SHA-256 (from `BundleAvailable`) and its Ed25519 signature once complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleChunk {
    /// The bundle version.
    pub version: Name,
    /// Position of `data` in the file.
    pub offset: u64,
    /// Size of the whole file.
    pub total: u64,
    /// At most [`MAX_BUNDLE_CHUNK`](crate::limits::MAX_BUNDLE_CHUNK) bytes.
    pub data: Vec<u8>,
}

impl Validate for BundleChunk {
    fn validate(&self) -> Result<(), FrameError> {
        use crate::validate::{ensure, list};
        self.version.check("bundle_chunk.version")?;
        list(
            &self.data,
            crate::limits::MAX_BUNDLE_CHUNK,
            "bundle_chunk.data",
        )?;
        ensure(
            self.total <= crate::bundle::MAX_BUNDLE as u64,
            "bundle_chunk.total",
            "larger than the largest bundle",
        )?;
        ensure(
            self.offset
                .checked_add(self.data.len() as u64)
                .is_some_and(|end| end <= self.total),
            "bundle_chunk.offset",
            "beyond the end of the file",
        )
    }
}
