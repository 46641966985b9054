//! `replay --uplink`: alerts of an offline run are spooled as they are produced (so nothing is
//! lost if the cloud is down), then an uplink runs until the spool is drained or the drain
//! timeout passes. Unacknowledged events stay in the spool for the next run.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use protocol::limits::MAX_EVENTS_PER_BATCH;
use protocol::messages::{Alert, Event, Mode};
use sha2::{Digest, Sha256};

use rules::compile::Ruleset;

use super::client::{Uplink, UplinkOptions};
use super::config::UplinkConfig;
use super::identity::{Identity, StateDir};
use super::spool::{RedbSpool, Spool, SpoolError};

/// The spool and identity of a `replay --uplink` run, opened before the replay so that a
/// missing identity or a locked spool is reported before any work.
pub struct OfflineUplink {
    config: UplinkConfig,
    identity: Identity,
    spool: Arc<RedbSpool>,
    buf: Vec<Event>,
    /// Alerts stored in the spool by this run.
    pub spooled: u64,
    /// Alerts refused because the spool was full.
    pub refused: u64,
    failure: Option<SpoolError>,
}

/// What the uplink achieved.
#[derive(Debug, Clone)]
pub struct OfflineReport {
    /// The cloud address.
    pub cloud: String,
    /// Alerts spooled by this run.
    pub spooled: u64,
    /// Alerts refused because the spool was full.
    pub refused: u64,
    /// Events sent (re-sends included).
    pub sent: u64,
    /// Events acknowledged (earlier runs' leftovers included).
    pub acked: u64,
    /// Events left in the spool.
    pub left: u64,
    /// Why not everything was acknowledged.
    pub problem: Option<String>,
}

impl OfflineUplink {
    /// Reads the config, loads the identity and opens the spool.
    pub fn open(config_path: &Path) -> anyhow::Result<OfflineUplink> {
        let config = UplinkConfig::load(config_path)?;
        let state = StateDir::new(&config.state_dir);
        let identity = state.load(config.cloud.as_deref())?;
        let spool = Arc::new(RedbSpool::open(state.path(), config.max_events)?);
        Ok(OfflineUplink {
            config,
            identity,
            spool,
            buf: Vec::new(),
            spooled: 0,
            refused: 0,
            failure: None,
        })
    }

    /// Queues an alert; batches are written to the spool as they fill.
    pub fn push(&mut self, alert: Alert) {
        self.push_event(Event::Alert(alert));
    }

    /// Queue any event (alert, file verdict, traffic summary).
    pub fn push_event(&mut self, event: Event) {
        self.buf.push(event);
        if self.buf.len() >= MAX_EVENTS_PER_BATCH {
            self.flush();
        }
    }

    /// Writes queued alerts to the spool.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.buf);
        match self.spool.append_batch(&batch) {
            Ok(_) => self.spooled += batch.len() as u64,
            Err(SpoolError::Full {
                stored, refused, ..
            }) => {
                self.spooled += stored as u64;
                self.refused += refused as u64;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot spool alerts");
                self.failure.get_or_insert(e);
            }
        }
    }

    /// Runs the uplink until the spool is empty or the drain timeout passed.
    pub fn run(mut self, rules_version: &str, mode: Mode) -> anyhow::Result<OfflineReport> {
        self.flush();
        if let Some(e) = self.failure.take() {
            return Err(e).context("spooling alerts");
        }
        let mut opts = UplinkOptions::new(&self.identity, super::FIRMWARE_VERSION, rules_version)?;
        opts.heartbeat = self.config.heartbeat();
        opts.batch_max = self.config.batch_max;
        opts.mode = mode;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the uplink runtime")?;
        let cloud = self.identity.cloud.to_string();
        let timeout = self.config.drain_timeout();
        let spool: Arc<dyn Spool> = self.spool.clone();
        let (drained, counters) = runtime.block_on(async move {
            let uplink = Uplink::spawn(opts, spool);
            let handle = uplink.handle();
            let drained = handle.drain(timeout).await;
            let counters = handle.snapshot().await;
            uplink.shutdown().await;
            (drained, counters)
        });
        let problem = drained.err().map(|e| match &counters.last_error {
            Some(last) => format!("{e} (last error: {last})"),
            None => e.to_string(),
        });
        Ok(OfflineReport {
            cloud,
            spooled: self.spooled,
            refused: self.refused,
            sent: counters.events_sent,
            acked: counters.events_acked,
            left: counters.spool_len,
            problem,
        })
    }
}

/// A version string for a rule set loaded from local files: `local-` and the first 8 bytes
/// of a SHA-256 over the rule texts, so the cloud can tell rule sets apart.
pub fn local_rules_version(ruleset: &Ruleset) -> String {
    let mut h = Sha256::new();
    for r in &ruleset.rules {
        h.update(r.rule.text.as_bytes());
        h.update(b"\n");
    }
    format!("local-{}", hex::encode(&h.finalize()[..8]))
}
