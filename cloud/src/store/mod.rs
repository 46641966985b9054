//! The store: one interface over the embedded redb database (`<data_dir>/mimamori.redb`).
//!
//! Everything goes through [`Store::write`] (one ACID transaction, durable when it returns)
//! and [`Store::read`]. Typed helpers on [`Tx`] / [`Rx`] name each table, so callers never
//! see keys or encodings.

mod audit_log;
pub mod model;

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use model::*;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt record in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("{0}")]
    Refused(String),
    #[error("not found: {0}")]
    NotFound(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(impl From<$t> for StoreError {
        fn from(e: $t) -> Self { StoreError::Db(e.into()) }
    })*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CUSTOMERS: TableDefinition<u64, &[u8]> = TableDefinition::new("customers");
const CONTRACTS: TableDefinition<u64, &[u8]> = TableDefinition::new("contracts");
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
const CODES: TableDefinition<&str, &str> = TableDefinition::new("activation_codes");
const SEEN: TableDefinition<(&str, u64), u64> = TableDefinition::new("seen_seq");
const ALERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts");
/// The first index of alerts by contract (no summary); replaced by [`ALERT_INDEX`] when a
/// store is opened.
const OLD_BY_CONTRACT: TableDefinition<(u64, u64), ()> = TableDefinition::new("alerts_by_contract");
/// Alerts by (contract, id) with a postcard [`AlertKey`]: lists filter without reading
/// the records.
const ALERT_INDEX: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("alert_index");
/// Devices by (contract, id).
const DEVICES_BY_CONTRACT: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("devices_by_contract");
const MEDIUM_BY_HOST: TableDefinition<(&str, i64), u64> = TableDefinition::new("medium_by_host");
const DEDUP: TableDefinition<&str, i64> = TableDefinition::new("dedup");
const WINDOWS: TableDefinition<u64, &[u8]> = TableDefinition::new("mail_windows");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const NOTICES: TableDefinition<u64, &[u8]> = TableDefinition::new("maintenance");
const DISPATCHES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("dispatches");
const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("portal_users");
const USERS_BY_EMAIL: TableDefinition<&str, u64> = TableDefinition::new("portal_users_by_email");
/// Traffic summaries by (contract, bucket start in Unix seconds, id).
const TRAFFIC: TableDefinition<(u64, u64, u64), &[u8]> = TableDefinition::new("traffic");
/// (device, command id) → [`CommandRecord`].
const COMMANDS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("commands");

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store types serialize")
}

fn dec<T: DeserializeOwned>(table: &'static str, b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
        table,
        reason: e.to_string(),
    })
}

/// The database.
pub struct Store {
    db: Database,
}

impl Store {
    /// Open (or create) the store in a data directory.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Refused(format!("creating {}: {e}", data_dir.display())))?;
        let db = Database::create(data_dir.join("mimamori.redb"))?;
        let s = Store { db };
        // create every table so readers never meet a missing one
        s.write(|tx| {
            let t = &tx.0;
            t.open_table(META)?;
            t.open_table(CUSTOMERS)?;
            t.open_table(CONTRACTS)?;
            t.open_table(DEVICES)?;
            t.open_table(CODES)?;
            t.open_table(SEEN)?;
            t.open_table(ALERTS)?;
            t.open_table(ALERT_INDEX)?;
            t.open_table(DEVICES_BY_CONTRACT)?;
            t.open_table(MEDIUM_BY_HOST)?;
            t.open_table(DEDUP)?;
            t.open_table(WINDOWS)?;
            t.open_table(OUTBOX)?;
            t.open_table(NOTICES)?;
            t.open_table(DISPATCHES)?;
            t.open_table(USERS)?;
            t.open_table(USERS_BY_EMAIL)?;
            t.open_table(TRAFFIC)?;
            t.open_table(COMMANDS)?;
            t.open_table(audit_log::AUDIT)?;
            t.open_table(audit_log::AUDIT_BY_CONTRACT)?;
            t.open_table(audit_log::OPERATORS)?;
            Ok(())
        })?;
        s.migrate()?;
        Ok(s)
    }

    /// Build the indexes a store written by an older version lacks (one transaction).
    fn migrate(&self) -> Result<()> {
        self.write(|tx| {
            let t = &tx.0;
            let (alerts, indexed) = (
                t.open_table(ALERTS)?.len()?,
                t.open_table(ALERT_INDEX)?.len()?,
            );
            if alerts != indexed {
                tracing::info!(alerts, indexed, "building the alert index");
                let mut recs = Vec::new();
                for e in t.open_table(ALERTS)?.iter()? {
                    let (_, v) = e?;
                    let a: AlertRecord = dec("alerts", v.value())?;
                    recs.push((a.contract_id, a.id, AlertKey::of(&a).encode()));
                }
                let mut idx = t.open_table(ALERT_INDEX)?;
                for (c, id, k) in recs {
                    idx.insert((c, id), k.as_slice())?;
                }
            }
            t.delete_table(OLD_BY_CONTRACT)?;
            let (devices, indexed) = (
                t.open_table(DEVICES)?.len()?,
                t.open_table(DEVICES_BY_CONTRACT)?.len()?,
            );
            if devices != indexed {
                let mut ds = Vec::new();
                for e in t.open_table(DEVICES)?.iter()? {
                    let (_, v) = e?;
                    let d: Device = dec("devices", v.value())?;
                    ds.push((d.contract_id, d.id));
                }
                let mut idx = t.open_table(DEVICES_BY_CONTRACT)?;
                for (c, id) in ds {
                    idx.insert((c, id.as_str()), ())?;
                }
            }
            Ok(())
        })
    }

    /// Run `f` in one write transaction; committed (durable) when this returns `Ok`.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        let mut tx = Tx(self.db.begin_write()?);
        let out = f(&mut tx)?;
        tx.0.commit()?;
        Ok(out)
    }

    /// Run `f` on a consistent snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&Rx) -> Result<T>) -> Result<T> {
        let rx = Rx(self.db.begin_read()?);
        f(&rx)
    }
}

/// A write transaction.
pub struct Tx(redb::WriteTransaction);
/// A read transaction.
pub struct Rx(redb::ReadTransaction);

macro_rules! json_get {
    ($self:ident, $table:expr, $name:literal, $key:expr) => {{
        let t = $self.0.open_table($table)?;
        let r = t.get($key)?;
        match r {
            Some(v) => Some(dec($name, v.value())?),
            None => None,
        }
    }};
}

macro_rules! json_all {
    ($self:ident, $table:expr, $name:literal) => {{
        let t = $self.0.open_table($table)?;
        let mut v = Vec::new();
        for e in t.iter()? {
            let (_, val) = e?;
            v.push(dec($name, val.value())?);
        }
        v
    }};
}

/// Reads shared by both transaction kinds.
macro_rules! readers {
    ($ty:ty) => {
        impl $ty {
            pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
                let t = self.0.open_table(META)?;
                Ok(t.get(key)?.map(|v| v.value().to_vec()))
            }
            pub fn customer(&self, id: u64) -> Result<Option<Customer>> {
                Ok(json_get!(self, CUSTOMERS, "customers", id))
            }
            pub fn customers(&self) -> Result<Vec<Customer>> {
                Ok(json_all!(self, CUSTOMERS, "customers"))
            }
            pub fn user(&self, id: u64) -> Result<Option<PortalUser>> {
                Ok(json_get!(self, USERS, "portal_users", id))
            }
            /// The user with this e-mail address (any case).
            pub fn user_by_email(&self, email: &str) -> Result<Option<PortalUser>> {
                let id = {
                    let t = self.0.open_table(USERS_BY_EMAIL)?;
                    let r = t.get(email.to_ascii_lowercase().as_str())?;
                    r.map(|v| v.value())
                };
                match id {
                    Some(id) => self.user(id),
                    None => Ok(None),
                }
            }
            pub fn users_of(&self, contract: u64) -> Result<Vec<PortalUser>> {
                let all: Vec<PortalUser> = json_all!(self, USERS, "portal_users");
                Ok(all
                    .into_iter()
                    .filter(|u| u.contract_id == contract)
                    .collect())
            }
            pub fn contract(&self, id: u64) -> Result<Option<Contract>> {
                Ok(json_get!(self, CONTRACTS, "contracts", id))
            }
            pub fn contracts(&self) -> Result<Vec<Contract>> {
                Ok(json_all!(self, CONTRACTS, "contracts"))
            }
            pub fn device(&self, id: &str) -> Result<Option<Device>> {
                Ok(json_get!(self, DEVICES, "devices", id))
            }
            pub fn devices(&self) -> Result<Vec<Device>> {
                Ok(json_all!(self, DEVICES, "devices"))
            }
            /// The commands of one device, oldest first.
            pub fn commands_of(&self, device: &str) -> Result<Vec<CommandRecord>> {
                let t = self.0.open_table(COMMANDS)?;
                let mut v = Vec::new();
                for e in t.range((device, 0)..=(device, u64::MAX))? {
                    let (_, val) = e?;
                    v.push(dec("commands", val.value())?);
                }
                Ok(v)
            }
            pub fn command(&self, device: &str, id: u64) -> Result<Option<CommandRecord>> {
                Ok(json_get!(self, COMMANDS, "commands", (device, id)))
            }
            pub fn alert(&self, id: u64) -> Result<Option<AlertRecord>> {
                Ok(json_get!(self, ALERTS, "alerts", id))
            }
            /// Devices of one contract.
            pub fn devices_of(&self, contract: u64) -> Result<Vec<Device>> {
                let idx = self.0.open_table(DEVICES_BY_CONTRACT)?;
                let t = self.0.open_table(DEVICES)?;
                let mut out = Vec::new();
                for e in idx.range((contract, "")..(contract.saturating_add(1), ""))? {
                    let (k, _) = e?;
                    if let Some(v) = t.get(k.value().1)? {
                        out.push(dec("devices", v.value())?);
                    }
                }
                Ok(out)
            }
            /// Alerts of a contract, newest first, at most `limit`.
            pub fn alerts_of(&self, contract: u64, limit: usize) -> Result<Vec<AlertRecord>> {
                let mut out = Vec::new();
                self.scan_alerts_of(
                    contract,
                    |_, _| true,
                    |rec| {
                        out.extend(rec);
                        out.len() < limit
                    },
                )?;
                Ok(out)
            }
            /// Visit a contract's alerts newest first: `want` sees each one's id and
            /// summary and says whether to read the record; `visit` gets the record (or
            /// `None` when not wanted) and returns false to stop.
            pub fn scan_alerts_of(
                &self,
                contract: u64,
                mut want: impl FnMut(u64, &AlertKey) -> bool,
                mut visit: impl FnMut(Option<AlertRecord>) -> bool,
            ) -> Result<()> {
                let idx = self.0.open_table(ALERT_INDEX)?;
                let alerts = self.0.open_table(ALERTS)?;
                for e in idx.range((contract, 0)..=(contract, u64::MAX))?.rev() {
                    let (k, v) = e?;
                    let id = k.value().1;
                    let key = AlertKey::decode(v.value())?;
                    let rec = if want(id, &key) {
                        match alerts.get(id)? {
                            Some(v) => Some(dec("alerts", v.value())?),
                            None => continue,
                        }
                    } else {
                        None
                    };
                    if !visit(rec) {
                        break;
                    }
                }
                Ok(())
            }
            /// Traffic summaries of a contract with buckets in `[from_secs, to_secs)`.
            pub fn traffic_of(
                &self,
                contract: u64,
                from_secs: u64,
                to_secs: u64,
            ) -> Result<Vec<TrafficRow>> {
                let t = self.0.open_table(TRAFFIC)?;
                let mut out = Vec::new();
                if to_secs <= from_secs {
                    return Ok(out);
                }
                for e in t.range((contract, from_secs, 0)..(contract, to_secs, 0))? {
                    let (_, v) = e?;
                    out.push(dec("traffic", v.value())?);
                }
                Ok(out)
            }
            pub fn all_alerts(&self) -> Result<Vec<AlertRecord>> {
                Ok(json_all!(self, ALERTS, "alerts"))
            }
            pub fn alert_count(&self) -> Result<u64> {
                Ok(self.0.open_table(ALERTS)?.len()?)
            }
            pub fn windows(&self) -> Result<Vec<(u64, Window)>> {
                let t = self.0.open_table(WINDOWS)?;
                let mut v = Vec::new();
                for e in t.iter()? {
                    let (k, val) = e?;
                    v.push((k.value(), dec("mail_windows", val.value())?));
                }
                Ok(v)
            }
            pub fn outbox(&self) -> Result<Vec<Mail>> {
                Ok(json_all!(self, OUTBOX, "outbox"))
            }
            pub fn notices(&self) -> Result<Vec<MaintenanceNotice>> {
                Ok(json_all!(self, NOTICES, "maintenance"))
            }
            pub fn dispatches_of(&self, contract: u64) -> Result<Vec<Dispatch>> {
                let t = self.0.open_table(DISPATCHES)?;
                let mut v = Vec::new();
                for e in t.range((contract, 0)..=(contract, u64::MAX))? {
                    let (_, val) = e?;
                    v.push(dec("dispatches", val.value())?);
                }
                Ok(v)
            }
            /// The device of an activation code (by its hash).
            pub fn code_device(&self, code_hash: &str) -> Result<Option<String>> {
                let t = self.0.open_table(CODES)?;
                Ok(t.get(code_hash)?.map(|v| v.value().to_string()))
            }
            /// The alert stored for (device, seq), if any: idempotent ingest.
            pub fn seen(&self, device: &str, seq: u64) -> Result<Option<u64>> {
                let t = self.0.open_table(SEEN)?;
                Ok(t.get((device, seq))?.map(|v| v.value()))
            }
            /// ★★☆ alerts of a (contract, host) key since `since_ms`.
            pub fn medium_since(&self, host_key: &str, since_ms: i64) -> Result<Vec<u64>> {
                let t = self.0.open_table(MEDIUM_BY_HOST)?;
                let mut v = Vec::new();
                for e in t.range((host_key, since_ms)..=(host_key, i64::MAX))? {
                    let (_, id) = e?;
                    v.push(id.value());
                }
                Ok(v)
            }
            pub fn dedup_last(&self, key: &str) -> Result<Option<i64>> {
                let t = self.0.open_table(DEDUP)?;
                Ok(t.get(key)?.map(|v| v.value()))
            }
        }
    };
}

readers!(Tx);
readers!(Rx);

impl Tx {
    pub fn set_meta(&mut self, key: &str, v: &[u8]) -> Result<()> {
        self.0.open_table(META)?.insert(key, v)?;
        Ok(())
    }
    /// Next value of a named counter (starts at 1).
    pub fn next_id(&mut self, name: &str) -> Result<u64> {
        let key = format!("seq:{name}");
        let cur = self
            .meta(&key)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        let n = cur + 1;
        self.set_meta(&key, &n.to_be_bytes())?;
        Ok(n)
    }
    /// Store one traffic summary.
    pub fn add_traffic(&mut self, contract: u64, row: &TrafficRow) -> Result<()> {
        let id = self.next_id("traffic")?;
        self.0
            .open_table(TRAFFIC)?
            .insert((contract, row.bucket_start, id), enc(row).as_slice())?;
        Ok(())
    }
    /// Store a portal user and its e-mail index.
    pub fn put_user(&mut self, u: &PortalUser) -> Result<()> {
        self.0.open_table(USERS)?.insert(u.id, enc(u).as_slice())?;
        self.0
            .open_table(USERS_BY_EMAIL)?
            .insert(u.email.as_str(), u.id)?;
        Ok(())
    }
    pub fn put_customer(&mut self, c: &Customer) -> Result<()> {
        self.0
            .open_table(CUSTOMERS)?
            .insert(c.id, enc(c).as_slice())?;
        Ok(())
    }
    pub fn put_contract(&mut self, c: &Contract) -> Result<()> {
        self.0
            .open_table(CONTRACTS)?
            .insert(c.id, enc(c).as_slice())?;
        Ok(())
    }
    pub fn put_device(&mut self, d: &Device) -> Result<()> {
        self.0
            .open_table(DEVICES)?
            .insert(d.id.as_str(), enc(d).as_slice())?;
        self.0
            .open_table(DEVICES_BY_CONTRACT)?
            .insert((d.contract_id, d.id.as_str()), ())?;
        Ok(())
    }
    /// Queue a command for a device (state `Pending`); returns it with its id.
    pub fn queue_command(
        &mut self,
        device: &Device,
        kind: protocol::messages::CommandKind,
        origin: &str,
        now: i64,
    ) -> Result<CommandRecord> {
        let c = CommandRecord {
            id: self.next_id("command")?,
            device: device.id.clone(),
            contract_id: device.contract_id,
            kind,
            origin: origin.to_string(),
            created_ms: now,
            state: CommandState::Pending,
            sent_ms: None,
            done_ms: None,
            message: String::new(),
        };
        self.put_command(&c)?;
        Ok(c)
    }
    pub fn put_command(&mut self, c: &CommandRecord) -> Result<()> {
        self.0
            .open_table(COMMANDS)?
            .insert((c.device.as_str(), c.id), enc(c).as_slice())?;
        Ok(())
    }
    pub fn put_code(&mut self, code_hash: &str, device: &str) -> Result<()> {
        self.0.open_table(CODES)?.insert(code_hash, device)?;
        Ok(())
    }
    pub fn remove_code(&mut self, code_hash: &str) -> Result<()> {
        self.0.open_table(CODES)?.remove(code_hash)?;
        Ok(())
    }
    /// Store a new alert and its indexes.
    pub fn insert_alert(&mut self, a: &AlertRecord) -> Result<()> {
        self.put_alert(a)?;
        self.0
            .open_table(SEEN)?
            .insert((a.device.as_str(), a.seq), a.id)?;
        Ok(())
    }
    /// Mark (device, seq) as stored without an alert record (non-alert events).
    pub fn mark_seen(&mut self, device: &str, seq: u64) -> Result<()> {
        self.0.open_table(SEEN)?.insert((device, seq), 0)?;
        Ok(())
    }
    /// Store an alert record and its index entry (its level may have changed).
    pub fn put_alert(&mut self, a: &AlertRecord) -> Result<()> {
        self.0.open_table(ALERTS)?.insert(a.id, enc(a).as_slice())?;
        self.0
            .open_table(ALERT_INDEX)?
            .insert((a.contract_id, a.id), AlertKey::of(a).encode().as_slice())?;
        Ok(())
    }
    pub fn add_medium(&mut self, host_key: &str, ms: i64, alert: u64) -> Result<()> {
        self.0
            .open_table(MEDIUM_BY_HOST)?
            .insert((host_key, ms), alert)?;
        Ok(())
    }
    pub fn set_dedup(&mut self, key: &str, ms: i64) -> Result<()> {
        self.0.open_table(DEDUP)?.insert(key, ms)?;
        Ok(())
    }
    pub fn window(&self, contract: u64) -> Result<Option<Window>> {
        Ok(json_get!(self, WINDOWS, "mail_windows", contract))
    }
    pub fn put_window(&mut self, contract: u64, w: &Window) -> Result<()> {
        self.0
            .open_table(WINDOWS)?
            .insert(contract, enc(w).as_slice())?;
        Ok(())
    }
    pub fn remove_window(&mut self, contract: u64) -> Result<()> {
        self.0.open_table(WINDOWS)?.remove(contract)?;
        Ok(())
    }
    /// Queue a mail; its id is assigned here.
    pub fn queue_mail(&mut self, mut m: Mail) -> Result<u64> {
        m.id = self.next_id("mail")?;
        self.0
            .open_table(OUTBOX)?
            .insert(m.id, enc(&m).as_slice())?;
        Ok(m.id)
    }
    pub fn put_mail(&mut self, m: &Mail) -> Result<()> {
        self.0.open_table(OUTBOX)?.insert(m.id, enc(m).as_slice())?;
        Ok(())
    }
    pub fn remove_mail(&mut self, id: u64) -> Result<()> {
        self.0.open_table(OUTBOX)?.remove(id)?;
        Ok(())
    }
    pub fn put_notice(&mut self, n: &MaintenanceNotice) -> Result<()> {
        self.0
            .open_table(NOTICES)?
            .insert(n.id, enc(n).as_slice())?;
        Ok(())
    }
    pub fn put_dispatch(&mut self, d: &Dispatch) -> Result<()> {
        self.0
            .open_table(DISPATCHES)?
            .insert((d.contract_id, d.id), enc(d).as_slice())?;
        Ok(())
    }
    /// Remove a contract's alerts and indexes (contract end: customer data purged).
    pub fn purge_contract_alerts(&mut self, contract: u64) -> Result<usize> {
        let ids: Vec<u64> = {
            let idx = self.0.open_table(ALERT_INDEX)?;
            let mut v = Vec::new();
            for e in idx.range((contract, 0)..=(contract, u64::MAX))? {
                v.push(e?.0.value().1);
            }
            v
        };
        let mut alerts = self.0.open_table(ALERTS)?;
        let mut idx = self.0.open_table(ALERT_INDEX)?;
        for id in &ids {
            alerts.remove(*id)?;
            idx.remove((contract, *id))?;
        }
        // the traffic record goes with them
        let keys: Vec<(u64, u64, u64)> = {
            let t = self.0.open_table(TRAFFIC)?;
            let mut v = Vec::new();
            for e in t.range((contract, 0, 0)..=(contract, u64::MAX, u64::MAX))? {
                v.push(e?.0.value());
            }
            v
        };
        let mut t = self.0.open_table(TRAFFIC)?;
        for k in keys {
            t.remove(k)?;
        }
        Ok(ids.len())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::score::Level;

    #[test]
    fn durable_across_reopen_and_ids() {
        let dir = std::env::temp_dir().join(format!("mimamori-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::open(&dir).unwrap();
            s.write(|tx| {
                let id = tx.next_id("customer")?;
                tx.put_customer(&Customer {
                    id,
                    company: "山田商店".into(),
                    ..Default::default()
                })
            })
            .unwrap();
        }
        let s = Store::open(&dir).unwrap();
        let cs = s.read(|rx| rx.customers()).unwrap();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].company, "山田商店");
        assert_eq!(s.write(|tx| tx.next_id("customer")).unwrap(), 2);
        // a failing transaction changes nothing
        let r: Result<()> = s.write(|tx| {
            tx.put_customer(&Customer {
                id: 9,
                company: "x".into(),
                ..Default::default()
            })?;
            Err(StoreError::Refused("no".into()))
        });
        assert!(r.is_err());
        assert!(s.read(|rx| rx.customer(9)).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn record(id: u64, contract: u64, level: Level) -> AlertRecord {
        AlertRecord {
            id,
            contract_id: contract,
            device: "dev-1".into(),
            seq: id,
            received_ms: id as i64 * 1000,
            event: StoredEvent::Alert(crate::testutil::sig_alert(
                9,
                protocol::messages::Direction::Outbound,
                "trojan-activity",
                &[],
                protocol::messages::Action::Allowed,
            )),
            level,
            reason: String::new(),
            mailed: false,
            deduplicated: false,
            status: AlertStatus::Open,
            history: vec![],
        }
    }

    fn levels_of(s: &Store, contract: u64) -> Vec<(u64, Level)> {
        let mut v = Vec::new();
        s.read(|rx| {
            rx.scan_alerts_of(
                contract,
                |id, k| {
                    v.push((id, k.level));
                    false
                },
                |_| true,
            )
        })
        .unwrap();
        v
    }

    #[test]
    fn alert_index_follows_rerates_and_is_rebuilt_for_old_stores() {
        let dir = std::env::temp_dir().join(format!("mimamori-store-idx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::open(&dir).unwrap();
            s.write(|tx| {
                tx.insert_alert(&record(1, 7, Level::Low))?;
                tx.insert_alert(&record(2, 7, Level::Info))?;
                tx.insert_alert(&record(3, 8, Level::High))?;
                Ok(())
            })
            .unwrap();
            assert_eq!(levels_of(&s, 7), vec![(2, Level::Info), (1, Level::Low)]);
            // an operator re-rates: the index follows
            s.write(|tx| tx.put_alert(&record(2, 7, Level::Medium)))
                .unwrap();
            assert_eq!(levels_of(&s, 7)[0], (2, Level::Medium));
            // a store of the first version: the old index, none of the new one
            s.write(|tx| {
                tx.0.delete_table(ALERT_INDEX)?;
                tx.0.delete_table(DEVICES_BY_CONTRACT)?;
                let mut old = tx.0.open_table(OLD_BY_CONTRACT)?;
                old.insert((7, 1), ())?;
                Ok(())
            })
            .unwrap();
        }
        let s = Store::open(&dir).unwrap();
        assert_eq!(levels_of(&s, 7), vec![(2, Level::Medium), (1, Level::Low)]);
        assert_eq!(levels_of(&s, 8), vec![(3, Level::High)]);
        assert_eq!(s.read(|rx| rx.alerts_of(7, 10)).unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
