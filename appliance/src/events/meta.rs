//! What an event says about the application layer: the EVE `http`, `tls`, `dns` and
//! `fileinfo` objects, the URL category and application of a flow, and traffic-record
//! summaries. Built once per transaction or alert (never per packet).

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HttpMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub length: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Ja3 {
    pub hash: String,
    pub string: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TlsMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuerdn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notbefore: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notafter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<Ja3>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3s: Option<Ja3>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DnsAnswer {
    pub rrname: String,
    pub rrtype: String,
    pub ttl: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdata: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DnsMeta {
    pub version: u8,
    /// "request" or "answer".
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    pub opcode: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrtype: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<DnsAnswer>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FileMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub magic: Option<&'static str>,
    pub size: u64,
    pub sha256: String,
    /// "CLOSED" (complete) or "TRUNCATED".
    pub state: &'static str,
    pub stored: bool,
    pub tx_id: u64,
    /// "clean", "bad-hash" or "signature".
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threat: Option<String>,
    /// The file was held back and never arrived whole (prevent mode).
    pub disarmed: bool,
}

/// URL category and application of an access (EVE key `mimamori`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UtmMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// "block" or "record" for the category that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_type: Option<&'static str>,
}

/// A traffic-record summary: one internal host, one 10-minute bucket.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TrafficMeta {
    pub host: String,
    pub bucket_start: String,
    pub bucket_secs: u32,
    pub flows: u64,
    pub bytes: u64,
    /// (web category or "uncategorized", flows, bytes)
    pub categories: Vec<TrafficLine>,
    /// (application or app type, flows, bytes)
    pub apps: Vec<TrafficLine>,
    /// (category, application) rows with bytes by direction: what the uplink sends (not
    /// in EVE).
    #[serde(skip)]
    pub pairs: Vec<TrafficPair>,
    /// `bucket_start` in Unix seconds.
    #[serde(skip)]
    pub bucket_unix: u64,
}

/// Traffic of one (category, application) pair of a host's bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficPair {
    /// The flow's first web category, or empty.
    pub category: String,
    /// The catalogue's application, or empty.
    pub app: String,
    pub flows: u64,
    /// Towards the internal host.
    pub bytes_in: u64,
    /// From the internal host.
    pub bytes_out: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TrafficLine {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub kind: Option<&'static str>,
    pub flows: u64,
    pub bytes: u64,
}

/// Everything application-level an event can carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventMeta {
    pub http: Option<HttpMeta>,
    pub tls: Option<TlsMeta>,
    pub dns: Option<DnsMeta>,
    pub fileinfo: Option<FileMeta>,
    pub utm: Option<UtmMeta>,
    pub traffic: Option<TrafficMeta>,
    /// A summary of alerts held back by the default alert budget: how many.
    pub suppressed: Option<u64>,
    /// The bridge shed or bypassed frames for load (an alert of the appliance's own).
    pub load: Option<LoadMeta>,
}

/// Load on the inspection queues (EVE key `load` of a `gid` 9000 alert): the bridge began
/// shedding the heaviest senders' frames, or forwarding a stalled worker's frames
/// uninspected. Written at most once a minute per port and kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LoadMeta {
    /// `shed` (frames dropped, never forwarded uninspected) or `bypass` (forwarded
    /// uninspected: a stalled or dead worker).
    pub kind: &'static str,
    /// The port the frames came in on (`wan`, `lan`, ...).
    pub port: String,
    /// The sender shed from most (MAC), when shedding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_mac: Option<String>,
    /// Its IP address, when its frames carry one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Frames of that sender shed so far.
    pub host_shed: u64,
    /// Totals on the port so far: heaviest senders shed, dropped on a full queue,
    /// forwarded uninspected because the worker was stalled.
    pub shed: u64,
    pub shed_full: u64,
    pub bypass_stalled: u64,
}

/// Bytes from the wire as a JSON string (lossy UTF-8, like Suricata's escaping of
/// non-printable bytes is for humans anyway).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
