//! The uplink to the cloud (SPEC §3.4, §4): the last stage of the data path.
//!
//! ```text
//! Record ─convert→ Alert ─→ spool (redb, seq) ─→ session (TLS 1.3, mutual) ─→ cloud
//!                                ↑                        │
//!                                └──── ack(upto_seq) ─────┘
//! ```
//!
//! * [`activate`]: one-time code → key pair, CSR, device certificate, stored in the state
//!   folder ([`identity`]).
//! * [`spool`]: events are stored first and deleted only when acknowledged; per-device
//!   sequence numbers are never reused.
//! * [`client`]: the [`Uplink`] task reconnects forever with backoff ([`backoff`]) and runs
//!   one [`session`] at a time: batches (bounded in size and in flight), heartbeats, acks,
//!   commands. [`counters`] counts every retry, refusal and discarded event.
//! * [`convert`]: pipeline records to protocol alerts; [`simulate`]: many synthetic devices.
//! * [`config`]: the TOML settings of `replay --uplink`; [`offline`]: that run.

pub mod activate;
pub mod backoff;
pub mod client;
pub mod config;
pub mod conn;
pub mod convert;
pub mod counters;
pub mod identity;
pub mod offline;
pub mod session;
pub mod simulate;
pub mod spool;
pub mod tls;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use activate::{ActivateError, ActivateOptions, activate};
pub use client::{DrainError, Uplink, UplinkHandle, UplinkOptions};
pub use config::UplinkConfig;
pub use convert::AlertConverter;
pub use counters::CountersSnapshot;
pub use identity::{Identity, StateDir};
pub use spool::{MemorySpool, RedbSpool, Spool, SpoolError};
pub use tls::{CloudAddr, Transport};

/// What the uplink asks of the running appliance; the bridge implements it
/// ([`crate::bridge::manage`]).
pub trait Appliance: Send + Sync + 'static {
    /// Carries out a command (isolate, release, mode, exceptions, reboot, wipe) and says
    /// what was done, or why not. Runs on a blocking thread: it may rebuild the engine.
    /// `BundleAvailable` is handled by the uplink itself (download, then
    /// [`Appliance::install_bundle`]).
    /// `id` is the cloud's command id: a command sent again after a reconnect has the same
    /// one (a reboot is not repeated).
    fn apply(&self, id: u64, cmd: &protocol::messages::CommandKind) -> Result<String, String>;
    /// Verifies (signature), unpacks, compiles and swaps in a downloaded bundle file;
    /// returns its version. On any failure the running rules stay. Blocking.
    fn install_bundle(&self, file: &[u8]) -> Result<String, String>;
    /// The rule-bundle version now running.
    fn rules_version(&self) -> String;
    /// The inspection mode now in force.
    fn mode(&self) -> protocol::messages::Mode;
    /// The appliance's own counters sent with each heartbeat (shed and bypassed frames,
    /// alerts suppressed, EVE lines not written, …), as (name, value).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Firmware version announced in `Hello` and heartbeats.
pub const FIRMWARE_VERSION: &str = env!("CARGO_PKG_VERSION");
