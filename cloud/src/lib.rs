//! Mimamori cloud watch service. The folders follow the data path (SPEC §2):
//!
//! `ingest` (mutual TLS, activation) → `store` (redb) → `score` (★) → `notify` (SMTP
//! batches, durable outbox); `heartbeat` (stop notices); `admin` (HTTP API and CLI);
//! `identity` (device CA); `contract` (dates, insurance); `command` (commands to appliances,
//! signed rule bundles); `portal` (customers' web pages). `bin/` stays thin.

pub mod admin;
pub mod audit;
pub mod clock;
pub mod command;
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
    /// One wake-up per device with an open session: a command was queued for it (or a
    /// bundle published for all).
    pub command_wakers: Mutex<HashMap<String, std::sync::Arc<tokio::sync::Notify>>>,
}

impl App {
    pub fn now(&self) -> Ms {
        self.clock.now_ms()
    }

    /// The wake-up of `device`'s ingest session.
    pub fn command_waker(&self, device: &str) -> std::sync::Arc<tokio::sync::Notify> {
        let mut m = self
            .command_wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::sync::Arc::clone(m.entry(device.to_string()).or_default())
    }

    /// Wakes the session of `device` (or of every device) to look for its commands.
    pub fn commands_changed(&self, device: Option<&str>) {
        let m = self
            .command_wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match device {
            Some(d) => {
                if let Some(n) = m.get(d) {
                    n.notify_one();
                }
            }
            None => m.values().for_each(|n| n.notify_one()),
        }
    }

    /// Devices with what connected appliances reported since the last flush (last contact,
    /// versions), and whether each is online (active and heard from within `stop_after`).
    pub fn with_liveness(&self, devices: Vec<store::Device>) -> Vec<(store::Device, bool)> {
        let now = self.now();
        let stop = self.cfg.timing.stop_after.as_millis() as i64;
        let live = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        devices
            .into_iter()
            .map(|mut d| {
                if let Some(l) = live.get(&d.id) {
                    d.last_heartbeat_ms = Some(l.last_ms.max(d.last_heartbeat_ms.unwrap_or(0)));
                    if !l.firmware.is_empty() {
                        d.firmware = l.firmware.clone();
                    }
                    if !l.rules_version.is_empty() {
                        d.rules_version = l.rules_version.clone();
                    }
                }
                let online = d.status == store::DeviceStatus::Active
                    && d.last_heartbeat_ms.is_some_and(|t| now - t <= stop);
                (d, online)
            })
            .collect()
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
