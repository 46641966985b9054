//! What the cloud stores. Values are JSON in redb tables (readable with any redb tool, and
//! tolerant of added optional fields).

use serde::{Deserialize, Serialize};

use crate::contract::Date;
use crate::score::Level;

/// A customer company (SPEC §5.5 changeable data).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Customer {
    pub id: u64,
    pub company: String,
    #[serde(default)]
    pub contact_name: String,
    #[serde(default)]
    pub contact_department: String,
    #[serde(default)]
    pub contact_title: String,
    #[serde(default)]
    pub contact_email: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub phone: String,
}

/// A contract: one office's service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Contract {
    pub id: u64,
    pub customer_id: u64,
    pub name: String,
    pub application_date: Date,
    pub start: Date,
    pub paid_start: Date,
    #[serde(default)]
    pub ended: Option<Date>,
    /// Notification addresses, at most 3.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Auto-isolation of hosts with ★★★ alerts (off by default).
    #[serde(default)]
    pub auto_isolation: bool,
    /// What an isolated host may still reach: `IP` or `IP:port` (e.g. the office's DNS).
    #[serde(default)]
    pub isolation_allow: Vec<String>,
    /// Exceptions: suppressed signatures (`gid:sid`), hosts (IP) and domains.
    #[serde(default)]
    pub exceptions: Vec<String>,
}

/// Activation and liveness of one appliance.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Created, code not redeemed yet.
    Pending,
    Active,
    Revoked,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub contract_id: u64,
    pub name: String,
    pub status: DeviceStatus,
    pub created_ms: i64,
    #[serde(default)]
    pub activated_ms: Option<i64>,
    /// Serial number (hex) of the issued certificate.
    #[serde(default)]
    pub cert_serial: Option<String>,
    #[serde(default)]
    pub last_heartbeat_ms: Option<i64>,
    #[serde(default)]
    pub firmware: String,
    #[serde(default)]
    pub rules_version: String,
    /// A stop notice was sent and no recovery seen since.
    #[serde(default)]
    pub stopped_since_ms: Option<i64>,
    /// Highest sequence number stored.
    #[serde(default)]
    pub last_seq: u64,
    /// The appliance's last rule-bundle report.
    #[serde(default)]
    pub bundle: Option<BundleReport>,
    /// Inspection counters of the last heartbeat (`bridge_shed`, `bridge_bypass_stalled`,
    /// ...: frames shed for load or forwarded uninspected since the appliance started).
    #[serde(default)]
    pub counters: std::collections::BTreeMap<String, u64>,
}

impl Device {
    /// A device record with nothing heard from it yet.
    pub fn new(
        id: impl Into<String>,
        contract_id: u64,
        name: impl Into<String>,
        status: DeviceStatus,
        created_ms: i64,
    ) -> Device {
        Device {
            id: id.into(),
            contract_id,
            name: name.into(),
            status,
            created_ms,
            activated_ms: None,
            cert_serial: None,
            last_heartbeat_ms: None,
            firmware: String::new(),
            rules_version: String::new(),
            stopped_since_ms: None,
            last_seq: 0,
            bundle: None,
            counters: Default::default(),
        }
    }

    /// Its name, or its id when it has none.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

/// Lifecycle of an alert in operators' hands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    #[default]
    Open,
    /// An 調査中 alert closed with an investigation result.
    Resolved,
}

/// A stored alert: what the appliance sent, and what the cloud made of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AlertRecord {
    pub id: u64,
    pub contract_id: u64,
    pub device: String,
    pub seq: u64,
    pub received_ms: i64,
    pub event: StoredEvent,
    pub level: Level,
    /// One line saying why it has this level.
    pub reason: String,
    /// Mailed, or only recorded (a duplicate within the dedup window, or not important).
    #[serde(default)]
    pub mailed: bool,
    #[serde(default)]
    pub deduplicated: bool,
    #[serde(default)]
    pub status: AlertStatus,
    #[serde(default)]
    pub history: Vec<String>,
}

/// What the alert lists filter on, kept in the contract index next to each alert's id
/// (postcard): a list never reads records it does not show.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AlertKey {
    pub level: Level,
    /// Appliance time of the detection (ms).
    pub time_ms: i64,
    pub received_ms: i64,
    pub ip: std::net::IpAddr,
    pub mac: [u8; 6],
    pub device: String,
}

impl AlertKey {
    pub fn of(a: &AlertRecord) -> AlertKey {
        let f = a.event.flow();
        AlertKey {
            level: a.level,
            time_ms: a.event.time_ms(),
            received_ms: a.received_ms,
            ip: f.internal_ip,
            mac: f.internal_mac.0,
            device: a.device.clone(),
        }
    }
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("alert keys serialize")
    }
    pub fn decode(b: &[u8]) -> Result<AlertKey, super::StoreError> {
        postcard::from_bytes(b).map_err(|e| super::StoreError::Corrupt {
            table: "alert_index",
            reason: e.to_string(),
        })
    }
}

/// The detection as the appliance reported it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoredEvent {
    Alert(protocol::messages::Alert),
    File(protocol::messages::FileVerdict),
}

impl StoredEvent {
    pub fn flow(&self) -> &protocol::messages::FlowRef {
        match self {
            StoredEvent::Alert(a) => &a.flow,
            StoredEvent::File(f) => &f.flow,
        }
    }
    /// Appliance time of the detection (ms).
    pub fn time_ms(&self) -> i64 {
        match self {
            StoredEvent::Alert(a) => a.time.0 as i64,
            StoredEvent::File(f) => f.time.0 as i64,
        }
    }
    /// What the 72 h dedup and the escalation compare: signature, category or file hash.
    pub fn dedup_subject(&self) -> String {
        use protocol::messages::Detection;
        match self {
            StoredEvent::Alert(a) => match &a.detection {
                Detection::Signature(s) => format!("sig:{}:{}", s.gid, s.sid),
                Detection::Category { category } => {
                    format!("cat:{}:{}", category.as_str(), self.site_raw())
                }
            },
            StoredEvent::File(f) => format!("hash:{}", f.sha256),
        }
    }
    /// Threat / signature description, to show (sanitised: the parts come from the
    /// appliance and the traffic, see [`crate::sanitize`]).
    pub fn what(&self) -> String {
        use crate::sanitize::field;
        use protocol::messages::Detection;
        match self {
            StoredEvent::Alert(a) => match &a.detection {
                Detection::Signature(s) => format!("{} (sid {})", field(s.msg.as_str()), s.sid),
                Detection::Category { category } => {
                    format!("カテゴリ「{}」のサイト", field(category.as_str()))
                }
            },
            StoredEvent::File(f) => format!(
                "{} ({})",
                field(f.threat.as_str()),
                f.name
                    .as_ref()
                    .map_or_else(|| "ファイル名不明".to_string(), |n| field(n.as_str()))
            ),
        }
    }
    /// URL (host and path), SNI or DNS name, if any, to show (sanitised, see
    /// [`crate::sanitize`]).
    pub fn site(&self) -> String {
        crate::sanitize::field(&self.site_raw())
    }
    /// URL (host and path), SNI or DNS name as the appliance sent it (for comparisons,
    /// never to show).
    fn site_raw(&self) -> String {
        let (url, sni, dns) = match self {
            StoredEvent::Alert(a) => (a.url.as_ref(), a.sni.as_ref(), a.dns_name.as_ref()),
            StoredEvent::File(f) => (f.url.as_ref(), f.sni.as_ref(), None),
        };
        if let Some(u) = url {
            return format!("{}{}", u.host(), u.path());
        }
        sni.or(dns)
            .map(|s| s.as_str().to_string())
            .unwrap_or_default()
    }
    pub fn action(&self) -> protocol::messages::Action {
        match self {
            StoredEvent::Alert(a) => a.action,
            StoredEvent::File(f) => f.action,
        }
    }
}

/// A batching window of important alerts of one contract.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Window {
    pub closes_ms: i64,
    pub alerts: Vec<u64>,
}

/// A mail waiting in the durable outbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mail {
    pub id: u64,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// What it is about, for logs and tests (`alerts`, `stop`, `recovery`, ...).
    pub kind: String,
    /// The contract it is about, when known (contract end deletes its mails).
    #[serde(default)]
    pub contract: Option<u64>,
    /// When the sender gave up on it (`timing.mail_give_up`): it then sits in the failed
    /// mails, never retried.
    #[serde(default)]
    pub given_up_ms: Option<i64>,
}

/// A maintenance notice shown in the portal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MaintenanceNotice {
    pub id: u64,
    pub title: String,
    pub body: String,
    pub starts: String,
    pub ends: String,
    pub emergency: bool,
    pub created_ms: i64,
}

/// A portal user of one contract (SPEC §5.6). Passwords are argon2id PHC strings; the
/// TOTP secret is kept as base32; recovery codes only as SHA-256 hashes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortalUser {
    pub id: u64,
    pub contract_id: u64,
    /// Lower case; unique across the service.
    pub email: String,
    pub password_hash: String,
    /// Logged in with a temporary password: must choose a new one first.
    #[serde(default)]
    pub must_change_password: bool,
    /// TOTP secret (base32) once enrolment is confirmed.
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// The last TOTP step accepted (replays of the same code are refused).
    #[serde(default)]
    pub totp_last_step: Option<u64>,
    #[serde(default)]
    pub recovery_hashes: Vec<String>,
    #[serde(default)]
    pub failed_logins: u32,
    #[serde(default)]
    pub locked_until_ms: i64,
    /// Time of the last password failure (Unix ms): a series of failures ends 15 minutes
    /// after its last one.
    #[serde(default)]
    pub last_failed_login_ms: i64,
    /// Wrong second-factor codes (TOTP or recovery) since the last correct one: a budget
    /// of its own that a correct password does not reset (only a correct code or an
    /// operator's reset does).
    #[serde(default)]
    pub code_failures: u32,
    /// The second factor is locked until this time (Unix ms), across logins.
    #[serde(default)]
    pub code_locked_until_ms: i64,
    /// Time of the last wrong code (Unix ms).
    #[serde(default)]
    pub last_code_failure_ms: i64,
    pub created_ms: i64,
    /// Until when the temporary password works (Unix ms; 0: no limit).
    #[serde(default)]
    pub temp_expires_ms: i64,
    /// Raised when the password or the authenticator changes: logins made before end.
    #[serde(default)]
    pub epoch: u64,
    /// Disabled by an operator (or by contract end): every login is refused with the
    /// answer of a wrong password.
    #[serde(default)]
    pub disabled: bool,
}

/// Traffic of one internal host in one ten-minute bucket, as an appliance reported it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrafficRow {
    pub device: String,
    /// Unix seconds.
    pub bucket_start: u64,
    pub host_ip: String,
    pub host_mac: String,
    pub entries: Vec<TrafficCount>,
}

/// Traffic to one (category, application).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrafficCount {
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub app: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub flows: u64,
}

/// A recorded on-site dispatch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dispatch {
    pub id: u64,
    pub contract_id: u64,
    pub date: Date,
    pub amount_yen: u32,
    pub covered: bool,
    pub note: String,
}

/// Where a command to an appliance stands (SPEC §4, issue 7).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Queued; goes out when the appliance is connected.
    Pending,
    /// Written to the appliance's connection; no result yet (sent again on the next
    /// connection: every command is idempotent on the appliance).
    Sent,
    /// The appliance carried it out.
    Done,
    /// The appliance refused it or failed.
    Failed,
}

/// A command for one appliance and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommandRecord {
    pub id: u64,
    pub device: String,
    pub contract_id: u64,
    pub kind: protocol::messages::CommandKind,
    /// Who asked: `operator:<name>`, `portal:<e-mail>`, `auto-isolation (alert N)`, `rules publish`.
    pub origin: String,
    pub created_ms: i64,
    pub state: CommandState,
    #[serde(default)]
    pub sent_ms: Option<i64>,
    #[serde(default)]
    pub done_ms: Option<i64>,
    /// The appliance's answer.
    #[serde(default)]
    pub message: String,
}

/// The last rule-bundle report of an appliance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleReport {
    pub version: String,
    pub applied: bool,
    #[serde(default)]
    pub reason: String,
    pub at_ms: i64,
}

/// The cloud's copy of one rule's metadata (from a published bundle or `rules import`):
/// alerts are scored from this, not from what the appliance sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CatalogRule {
    pub gid: u32,
    pub sid: u32,
    pub rev: u32,
    pub msg: String,
    #[serde(default)]
    pub classtype: Option<String>,
    /// `metadata:` pairs (key, value) in rule order.
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
    /// Where it came from: `bundle <version>` or `import <file>`.
    #[serde(default)]
    pub source: String,
    pub added_ms: i64,
}
