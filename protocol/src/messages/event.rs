//! Events the appliance spools and uploads: alerts, file verdicts, traffic summaries.
//!
//! Each event carries a per-device sequence number. The appliance deletes a spooled event only
//! once the cloud has acknowledged its sequence number ([`Ack`](super::Ack)); the cloud stores
//! idempotently by (device, seq), so a re-sent batch is stored once (SPEC §5.1).

use serde::{Deserialize, Serialize};

use super::alert::{Alert, FlowRef};
use super::common::{Action, InternalHost, Sha256, UnixMs, UnixSecs};
use super::url::UrlRef;
use crate::bounded::{FileName, HostName, Name, Text};
use crate::error::FrameError;
use crate::limits::{MAX_EVENTS_PER_BATCH, MAX_TRAFFIC_ENTRIES, TRAFFIC_BUCKET_SECS};
use crate::validate::{self, Validate, ensure};

/// Which way a file travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transfer {
    /// From the external side to the internal host.
    Download,
    /// From the internal host to the external side.
    Upload,
}

/// A harmful file was seen in a transfer (hash list or file signature match).
///
/// Only the file's name, size and hash leave the appliance, never its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileVerdict {
    /// When the verdict was reached.
    pub time: UnixMs,
    /// The flow that carried the file.
    pub flow: FlowRef,
    /// Download or upload.
    pub transfer: Transfer,
    /// HTTP URL (host and path) of the transfer, if any.
    pub url: Option<UrlRef>,
    /// TLS server name, if any.
    pub sni: Option<HostName>,
    /// File name from the URL or `Content-Disposition`, if known.
    pub name: Option<FileName>,
    /// Size in bytes (as far as seen).
    pub size: u64,
    /// SHA-256 of the (decoded) contents.
    pub sha256: Sha256,
    /// Threat name, e.g. `EICAR-Test-File`.
    pub threat: Text,
    /// What the appliance did: `Disarmed` or `Reset` when stopped, `Allowed` in detect mode.
    pub action: Action,
}

/// One row of a traffic summary: traffic of one host to one application in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficEntry {
    /// Web category, e.g. `video` (empty when unknown).
    pub category: Name,
    /// Application name from the catalogue, e.g. `YouTube` (empty when unknown).
    pub app: Name,
    /// Bytes towards the internal host.
    pub bytes_in: u64,
    /// Bytes from the internal host.
    pub bytes_out: u64,
    /// Flows started in the bucket.
    pub flows: u64,
}

/// Traffic of one internal host in one ten-minute bucket, by category and application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficSummary {
    /// The internal host.
    pub host: InternalHost,
    /// Start of the bucket; a multiple of [`TRAFFIC_BUCKET_SECS`].
    pub bucket_start: UnixSecs,
    /// One row per (category, app).
    pub entries: Vec<TrafficEntry>,
}

/// One spooled event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A rule or category matched.
    Alert(Alert),
    /// A harmful file was seen.
    FileVerdict(FileVerdict),
    /// Periodic traffic record.
    TrafficSummary(TrafficSummary),
}

/// An event with its per-device sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqEvent {
    /// Per-device, strictly increasing across the device's lifetime.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// Appliance → cloud: a batch of events, in increasing `seq` order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Events {
    /// At most [`MAX_EVENTS_PER_BATCH`] events, `seq` strictly increasing.
    pub events: Vec<SeqEvent>,
}

impl Events {
    /// Highest sequence number in the batch (the last one).
    pub fn last_seq(&self) -> Option<u64> {
        self.events.last().map(|e| e.seq)
    }
}

impl Validate for FileVerdict {
    fn validate(&self) -> Result<(), FrameError> {
        if let Some(url) = &self.url {
            url.check("file_verdict.url")?;
        }
        validate::opt(&self.sni, "file_verdict.sni")?;
        validate::opt(&self.name, "file_verdict.name")?;
        self.threat.check("file_verdict.threat")
    }
}

impl Validate for TrafficSummary {
    fn validate(&self) -> Result<(), FrameError> {
        ensure(
            self.bucket_start.0.is_multiple_of(TRAFFIC_BUCKET_SECS),
            "traffic.bucket_start",
            "not a multiple of 600 s",
        )?;
        validate::list(&self.entries, MAX_TRAFFIC_ENTRIES, "traffic.entries")?;
        for entry in &self.entries {
            entry.category.check("traffic.entries.category")?;
            entry.app.check("traffic.entries.app")?;
        }
        Ok(())
    }
}

impl Validate for Event {
    fn validate(&self) -> Result<(), FrameError> {
        match self {
            Event::Alert(alert) => alert.validate(),
            Event::FileVerdict(verdict) => verdict.validate(),
            Event::TrafficSummary(summary) => summary.validate(),
        }
    }
}

impl Validate for Events {
    fn validate(&self) -> Result<(), FrameError> {
        let len = self.events.len();
        if len > MAX_EVENTS_PER_BATCH {
            return Err(FrameError::BatchTooLong {
                len,
                max: MAX_EVENTS_PER_BATCH,
            });
        }
        let increasing = self.events.windows(2).all(|w| w[0].seq < w[1].seq);
        ensure(
            increasing,
            "events.seq",
            "sequence numbers do not strictly increase",
        )?;
        self.events.iter().try_for_each(|e| e.event.validate())
    }
}
