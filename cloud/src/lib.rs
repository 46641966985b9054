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
pub mod health;
pub mod heartbeat;
pub mod identity;
pub mod ingest;
pub mod notify;
pub mod portal;
pub mod sanitize;
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
    /// The inspection counters of the last heartbeat (names starting `bridge_`).
    pub counters: std::collections::BTreeMap<String, u64>,
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
    /// Cached outcomes of `/healthz`'s costly checks.
    pub health: health::Health,
    /// Per device with an open session: bumped when the device is revoked or its contract
    /// ends, which closes its live sessions at once (they select on it).
    pub session_stops: Mutex<HashMap<String, tokio::sync::watch::Sender<u64>>>,
    /// Counters of the ingest listener (pre-authentication limits and refusals).
    pub ingest_stats: ingest::IngestStats,
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

    /// What a session of `device` selects on to learn it must end (revocation, contract end).
    pub fn session_stop(&self, device: &str) -> tokio::sync::watch::Receiver<u64> {
        let mut m = self.session_stops.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(device.to_string())
            .or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe()
    }

    /// Closes the live sessions of `device` at once (it was revoked or its contract ended).
    pub fn close_sessions(&self, device: &str) {
        let m = self.session_stops.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.get(device) {
            s.send_modify(|v| *v += 1);
            tracing::info!(device, "closing the device's live sessions");
        }
    }

    /// Closes the live sessions of every device of contract `id` (the contract ended); a
    /// pending wipe is still delivered on them before they close.
    pub fn sessions_closed_for_contract(&self, id: u64) {
        match self.store.read(|rx| rx.devices_of(id)) {
            Ok(devs) => devs.iter().for_each(|d| self.close_sessions(&d.id)),
            Err(e) => {
                // the writer refuses their batches anyway (checked in its transaction)
                tracing::error!(contract = id, error = %e, "listing the contract's devices to close their sessions failed");
            }
        }
    }

    /// Forgets the stop signal of `device` once it has no session left.
    pub(crate) fn session_stop_done(&self, device: &str) {
        let mut m = self.session_stops.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(device).is_some_and(|s| s.receiver_count() == 0) {
            m.remove(device);
        }
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
                    if !l.counters.is_empty() {
                        d.counters = l.counters.clone();
                    }
                }
                let online = d.status == store::DeviceStatus::Active
                    && d.last_heartbeat_ms.is_some_and(|t| now - t <= stop);
                (d, online)
            })
            .collect()
    }

    /// Keeps the inspection counters of a heartbeat (`bridge_*`: frames shed for load or
    /// forwarded uninspected), shown with the device.
    pub fn heartbeat_counters(&self, device: &str, counters: &[protocol::messages::Counter]) {
        let kept: std::collections::BTreeMap<String, u64> = counters
            .iter()
            .filter(|c| c.name.as_str().starts_with("bridge_"))
            .map(|c| (c.name.as_str().to_string(), c.value))
            .collect();
        if kept.is_empty() {
            return;
        }
        let mut m = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(device.to_string()).or_default();
        e.counters = kept;
        e.dirty = true;
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
