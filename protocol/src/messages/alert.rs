//! Alerts: a rule or a category list matched a flow.
//!
//! Privacy (SPEC §3.4): an alert carries only what it is judged on: times, the flow's addresses,
//! the internal MAC, URL host and path, SNI, DNS name, the rule and its scoring metadata, and
//! the action taken. There is no field that could hold payload bytes.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::common::{Action, IpProto, Mac, UnixMs};
use super::url::UrlRef;
use crate::bounded::{HostName, MetaValue, Name, Text};
use crate::error::FrameError;
use crate::limits::MAX_METADATA;
use crate::validate::{self, Validate};

/// Rule-metadata keys the cloud's ★ scoring reads (SPEC §5.2). The appliance sends only these.
pub const SCORING_METADATA_KEYS: &[&str] = &[
    "signature_severity",
    "confidence",
    "attack_target",
    "direction",
    "former_category",
    "malware_family",
];

/// Who opened the flow, relative to the office network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// An internal host opened it towards the WAN side.
    Outbound,
    /// A WAN-side host opened it towards an internal host.
    Inbound,
    /// Between two internal ports (e.g. LAN ↔ SSID); `external` is then the other internal host.
    Internal,
}

/// The flow an event is about: addresses only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowRef {
    /// IP protocol.
    pub proto: IpProto,
    /// Who opened the flow.
    pub direction: Direction,
    /// Internal host IP address.
    pub internal_ip: IpAddr,
    /// Internal host port; `None` for protocols without ports (ICMP).
    pub internal_port: Option<u16>,
    /// Internal host Ethernet address.
    pub internal_mac: Mac,
    /// External (remote) IP address.
    pub external_ip: IpAddr,
    /// External port; `None` for protocols without ports.
    pub external_port: Option<u16>,
}

/// One `metadata` key/value pair of a rule, e.g. `signature_severity Major`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetaPair {
    /// The key, e.g. `confidence`.
    pub key: Name,
    /// The value, e.g. `High`.
    pub value: MetaValue,
}

/// The signature that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Generator id (1 for text rules).
    pub gid: u32,
    /// Signature id.
    pub sid: u32,
    /// Revision.
    pub rev: u32,
    /// The rule's `msg`.
    pub msg: Text,
    /// The rule's `classtype`, e.g. `trojan-activity`.
    pub classtype: Option<Name>,
    /// Suricata severity (the rule's priority; 1 is the most severe).
    pub severity: u8,
    /// Metadata pairs needed for scoring, see [`SCORING_METADATA_KEYS`].
    pub metadata: Vec<MetaPair>,
}

impl Signature {
    /// The value of the first metadata pair named `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value.as_str())
    }
}

/// What raised the alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Detection {
    /// A signature (Suricata-compatible rule) matched.
    Signature(Signature),
    /// The URL, SNI or DNS name is listed in a blocking category (e.g. `phishing`, `malware`).
    Category {
        /// The category name as in the list import, e.g. `phishing`.
        category: Name,
    },
}

/// An alert about one flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// When the triggering packet was seen.
    pub time: UnixMs,
    /// The flow.
    pub flow: FlowRef,
    /// What matched.
    pub detection: Detection,
    /// HTTP URL (host and path only), if the flow is HTTP.
    pub url: Option<UrlRef>,
    /// TLS server name, if the flow is TLS.
    pub sni: Option<HostName>,
    /// Queried DNS name, if the flow is DNS.
    pub dns_name: Option<HostName>,
    /// What the appliance did.
    pub action: Action,
}

impl Validate for Signature {
    fn validate(&self) -> Result<(), FrameError> {
        self.msg.check("alert.signature.msg")?;
        validate::opt(&self.classtype, "alert.signature.classtype")?;
        validate::list(&self.metadata, MAX_METADATA, "alert.signature.metadata")?;
        for pair in &self.metadata {
            pair.key.check("alert.signature.metadata.key")?;
            pair.value.check("alert.signature.metadata.value")?;
        }
        Ok(())
    }
}

impl Validate for Alert {
    fn validate(&self) -> Result<(), FrameError> {
        match &self.detection {
            Detection::Signature(sig) => sig.validate()?,
            Detection::Category { category } => category.check("alert.category")?,
        }
        if let Some(url) = &self.url {
            url.check("alert.url")?;
        }
        validate::opt(&self.sni, "alert.sni")?;
        validate::opt(&self.dns_name, "alert.dns_name")
    }
}
