//! Mimamori cloud watch service. The folders follow the data path (SPEC §2):
//!
//! `ingest` (mutual TLS, activation) → `store` (redb) → `score` (★) → `notify` (SMTP
//! batches, durable outbox); `heartbeat` (stop notices); `admin` (HTTP API and CLI);
//! `identity` (device CA); `contract` (dates, insurance). `bin/` stays thin.

pub mod admin;
pub mod clock;
pub mod config;
pub mod contract;
pub mod heartbeat;
pub mod identity;
pub mod ingest;
pub mod notify;
pub mod portal;
pub mod score;
pub mod serve;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clock::{Clock, Ms};
use config::Config;
use identity::Identity;
use score::Scorer;
use store::Store;

/// Liveness reported by connected appliances, kept in memory and flushed to the store by
/// the heartbeat watch.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    pub last_ms: Ms,
    pub firmware: String,
    pub rules_version: String,
    pub dirty: bool,
}

/// Everything the service's tasks share.
pub struct App {
    pub cfg: Config,
    pub store: Arc<Store>,
    pub identity: Identity,
    pub scorer: Scorer,
    pub clock: Arc<dyn Clock>,
    /// When this process started (the grace period counts from here).
    pub started_ms: Ms,
    pub liveness: Mutex<HashMap<String, Liveness>>,
    /// Open connections per device.
    pub connections: Mutex<HashMap<String, usize>>,
    /// Wakes the mail sender (a mail was queued).
    pub mail_queued: tokio::sync::Notify,
    /// The store writer of the ingest path.
    pub writer: ingest::writer::WriterHandle,
    pub admin_token: String,
}

impl App {
    pub fn now(&self) -> Ms {
        self.clock.now_ms()
    }

    /// Record a heartbeat (or any sign of life) of a device.
    pub fn alive(&self, device: &str, firmware: Option<&str>, rules: Option<&str>) {
        let now = self.now();
        let mut m = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(device.to_string()).or_default();
        e.last_ms = now;
        if let Some(f) = firmware {
            e.firmware = f.to_string();
        }
        if let Some(r) = rules {
            e.rules_version = r.to_string();
        }
        e.dirty = true;
    }
}
