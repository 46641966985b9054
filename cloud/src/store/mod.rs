//! The store: one interface over the embedded redb database (`<data_dir>/mimamori.redb`).
//!
//! Everything goes through [`Store::write`] (one ACID transaction, durable when it returns)
//! and [`Store::read`]. Typed helpers on [`Tx`] / [`Rx`] name each table, so callers never
//! see keys or encodings.

mod audit_log;
pub mod datadir;
pub mod model;
pub mod secrets;

use std::path::Path;
use std::sync::{Arc, Mutex};

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

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
    #[error("data folder: {0}")]
    DataDir(#[from] datadir::DataDirError),
    #[error("secrets key: {0}")]
    Key(#[from] secrets::KeyError),
    /// The store holds encrypted records and the key is missing or another one.
    #[error("{0}")]
    KeyMismatch(String),
}

impl StoreError {
    /// An I/O failure of the database file (disk full, device error) or redb's latched
    /// "previous I/O error": nothing more can be written until the database is re-opened.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            StoreError::Db(
                redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
            )
        )
    }
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
/// When an activation code (by its hash) was issued, Unix ms (codes issued before this
/// table existed count from their device's creation).
const CODE_ISSUED: TableDefinition<&str, i64> = TableDefinition::new("activation_code_issued");
/// The cloud's own copy of rule metadata by (gid, sid, rev): what alerts are scored from.
const RULE_CATALOG: TableDefinition<(u32, u32, u32), &[u8]> = TableDefinition::new("rule_catalog");
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
/// Mails the sender gave up on (`timing.mail_give_up`), by id: [`Mail`] with `given_up_ms`.
const FAILED_MAILS: TableDefinition<u64, &[u8]> = TableDefinition::new("failed_mails");

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
    sealer: Arc<secrets::Sealer>,
    /// The first I/O failure of the database file: the store is unusable until re-opened
    /// (the service exits non-zero for its supervisor, see `serve`).
    failed: Mutex<Option<String>>,
}

/// Meta key naming the secrets key the store's sealed records need.
const KEY_ID: &str = "secrets_key_id";

impl Store {
    /// Open (or create) the store in a data directory, with the secrets key in
    /// `<data_dir>/secrets.key`.
    pub fn open(data_dir: &Path) -> Result<Store> {
        Store::open_with(data_dir, &data_dir.join("secrets.key"))
    }

    /// Open (or create) the store in a data directory (created 0700; its files are checked,
    /// see [`datadir::prepare`]) with the secrets key at `key_path` (created 0600 with a
    /// new store; a store holding sealed records without its key is refused).
    pub fn open_with(data_dir: &Path, key_path: &Path) -> Result<Store> {
        datadir::prepare(data_dir)?;
        let path = data_dir.join("mimamori.redb");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| StoreError::Refused(format!("opening {}: {e}", path.display())))?;
        let db =
            Database::builder().create_with_backend(redb::backends::FileBackend::new(file)?)?;
        let sealer = Store::key_for(&db, key_path)?;
        let s = Store {
            db,
            sealer: Arc::new(sealer),
            failed: Mutex::new(None),
        };
        // create every table so readers never meet a missing one
        s.write(|tx| {
            let t = &tx.0;
            t.open_table(META)?;
            t.open_table(CUSTOMERS)?;
            t.open_table(CONTRACTS)?;
            t.open_table(DEVICES)?;
            t.open_table(CODES)?;
            t.open_table(CODE_ISSUED)?;
            t.open_table(RULE_CATALOG)?;
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
            t.open_table(FAILED_MAILS)?;
            t.open_table(audit_log::AUDIT)?;
            t.open_table(audit_log::AUDIT_BY_CONTRACT)?;
            t.open_table(audit_log::OPERATORS)?;
            Ok(())
        })?;
        s.migrate()?;
        s.seal_plain_secrets()?;
        Ok(s)
    }

    /// The store's secrets key: the file at `key_path`, which must be the one the store's
    /// sealed records were written with; created when the store has none yet.
    fn key_for(db: &Database, key_path: &Path) -> Result<secrets::Sealer> {
        let want: Option<String> = {
            let rx = db.begin_read()?;
            match rx.open_table(META) {
                Ok(t) => t
                    .get(KEY_ID)?
                    .map(|v| String::from_utf8_lossy(v.value()).into_owned()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        let shown = key_path.display();
        if std::fs::symlink_metadata(key_path).is_ok() {
            datadir::check_file(key_path)?;
        }
        match (secrets::Sealer::load(key_path)?, want) {
            (Some(k), Some(id)) if k.id == id => Ok(k),
            (Some(k), Some(id)) => Err(StoreError::KeyMismatch(format!(
                "{shown} is key {}, but the store's secrets were sealed with key {id}; restore the right secrets key from your backup (or point `secrets_key` at it)",
                k.id
            ))),
            (None, Some(id)) => Err(StoreError::KeyMismatch(format!(
                "{shown} does not exist, but the store holds secrets sealed with key {id}; restore the secrets key from your backup (or point `secrets_key` at it). Starting without it would lose every TOTP enrolment and queued mail"
            ))),
            (Some(k), None) => {
                Store::record_key(db, &k)?;
                Ok(k)
            }
            (None, None) => {
                if let Some(dir) = key_path.parent()
                    && !dir.as_os_str().is_empty()
                    && std::fs::symlink_metadata(dir).is_err()
                {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| {
                            StoreError::Refused(format!("creating {}: {e}", dir.display()))
                        })?;
                }
                let k = secrets::Sealer::create(key_path)?;
                tracing::warn!(path = %shown, key = %k.id, "created the secrets key; back it up (the TOTP enrolments and queued mails cannot be read without it)");
                Store::record_key(db, &k)?;
                Ok(k)
            }
        }
    }

    fn record_key(db: &Database, k: &secrets::Sealer) -> Result<()> {
        let tx = db.begin_write()?;
        tx.open_table(META)?.insert(KEY_ID, k.id.as_bytes())?;
        tx.commit()?;
        Ok(())
    }

    /// Seal the secrets a store written before encryption holds in clear (once).
    fn seal_plain_secrets(&self) -> Result<()> {
        self.write(|tx| {
            fn all<T: DeserializeOwned>(
                tx: &Tx,
                t: TableDefinition<u64, &[u8]>,
                name: &'static str,
            ) -> Result<Vec<T>> {
                let mut v = Vec::new();
                for e in tx.0.open_table(t)?.iter()? {
                    v.push(dec(name, e?.1.value())?);
                }
                Ok(v)
            }
            let users: Vec<PortalUser> = all(tx, USERS, "portal_users")?;
            let mut n = 0;
            for u in users {
                if u.totp_secret
                    .as_deref()
                    .is_some_and(|t| !t.starts_with(secrets::PREFIX))
                {
                    // put_user seals; the record as stored is the plain one
                    tx.put_user(&u)?;
                    n += 1;
                }
            }
            let mails: Vec<Mail> = all(tx, OUTBOX, "outbox")?;
            for m in mails {
                if !m.body.starts_with(secrets::PREFIX) {
                    tx.put_mail(&m)?;
                    n += 1;
                }
            }
            if n > 0 {
                tracing::info!(
                    records = n,
                    "sealed secrets stored in clear by an older version"
                );
            }
            Ok(())
        })
    }

    /// The I/O failure that made the store unusable, if one happened.
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn note<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && e.is_io()
        {
            let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            if f.is_none() {
                tracing::error!(error = %e, "the database file failed (disk full or I/O error); the store is unusable until the service restarts");
                *f = Some(e.to_string());
            }
        }
        r
    }

    /// A tiny write transaction: whether the store can commit right now.
    pub fn probe(&self, now_ms: i64) -> Result<()> {
        self.write(|tx| tx.set_meta("health_probe", &now_ms.to_be_bytes()))
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
    /// An I/O error of the database file is remembered ([`Store::failure`]).
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        self.note((|| {
            let mut tx = Tx(self.db.begin_write()?, Arc::clone(&self.sealer));
            let out = f(&mut tx)?;
            tx.0.commit()?;
            Ok(out)
        })())
    }

    /// Run `f` on a consistent snapshot.
    pub fn read<T>(&self, f: impl FnOnce(&Rx) -> Result<T>) -> Result<T> {
        self.note((|| {
            let rx = Rx(self.db.begin_read()?, Arc::clone(&self.sealer));
            f(&rx)
        })())
    }
}

/// A write transaction.
pub struct Tx(redb::WriteTransaction, Arc<secrets::Sealer>);
/// A read transaction.
pub struct Rx(redb::ReadTransaction, Arc<secrets::Sealer>);

fn totp_aad(id: u64) -> String {
    format!("portal_users:totp_secret:{id}")
}
fn body_aad(id: u64) -> String {
    format!("outbox:body:{id}")
}

fn unseal(table: &'static str, r: std::result::Result<String, String>) -> Result<String> {
    r.map_err(|reason| StoreError::Corrupt { table, reason })
}

/// A user as stored: the TOTP secret sealed.
fn seal_user(k: &secrets::Sealer, u: &PortalUser) -> PortalUser {
    let mut s = u.clone();
    if let Some(t) = &u.totp_secret
        && !t.starts_with(secrets::PREFIX)
    {
        s.totp_secret = Some(k.seal(&totp_aad(u.id), t));
    }
    s
}
fn open_user(k: &secrets::Sealer, mut u: PortalUser) -> Result<PortalUser> {
    if let Some(t) = &u.totp_secret {
        u.totp_secret = Some(unseal("portal_users", k.open(&totp_aad(u.id), t))?);
    }
    Ok(u)
}
/// A mail as stored: the body sealed (account mails hold temporary passwords).
fn seal_mail(k: &secrets::Sealer, m: &Mail) -> Mail {
    let mut s = m.clone();
    if !m.body.starts_with(secrets::PREFIX) {
        s.body = k.seal(&body_aad(m.id), &m.body);
    }
    s
}
fn open_mail(k: &secrets::Sealer, mut m: Mail) -> Result<Mail> {
    m.body = unseal("outbox", k.open(&body_aad(m.id), &m.body))?;
    Ok(m)
}

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
                let u: Option<PortalUser> = json_get!(self, USERS, "portal_users", id);
                u.map(|u| open_user(&self.1, u)).transpose()
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
                all.into_iter()
                    .filter(|u| u.contract_id == contract)
                    .map(|u| open_user(&self.1, u))
                    .collect()
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
                let all: Vec<Mail> = json_all!(self, OUTBOX, "outbox");
                all.into_iter().map(|m| open_mail(&self.1, m)).collect()
            }
            /// A queued mail.
            pub fn mail(&self, id: u64) -> Result<Option<Mail>> {
                Ok(json_get!(self, OUTBOX, "outbox", id))
            }
            /// Mails the sender gave up on, oldest first.
            pub fn failed_mails(&self) -> Result<Vec<Mail>> {
                Ok(json_all!(self, FAILED_MAILS, "failed_mails"))
            }
            pub fn failed_mail_count(&self) -> Result<u64> {
                Ok(self.0.open_table(FAILED_MAILS)?.len()?)
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
            /// When an activation code (by its hash) was issued, if recorded.
            pub fn code_issued(&self, code_hash: &str) -> Result<Option<i64>> {
                let t = self.0.open_table(CODE_ISSUED)?;
                Ok(t.get(code_hash)?.map(|v| v.value()))
            }
            /// The hashes of the activation codes of `device`.
            pub fn codes_of(&self, device: &str) -> Result<Vec<String>> {
                let t = self.0.open_table(CODES)?;
                let mut v = Vec::new();
                for e in t.iter()? {
                    let (k, d) = e?;
                    if d.value() == device {
                        v.push(k.value().to_string());
                    }
                }
                Ok(v)
            }
            /// The catalogue's entry for (gid, sid, rev).
            pub fn catalog_rule(
                &self,
                gid: u32,
                sid: u32,
                rev: u32,
            ) -> Result<Option<CatalogRule>> {
                let t = self.0.open_table(RULE_CATALOG)?;
                t.get((gid, sid, rev))?
                    .map(|v| dec("rule_catalog", v.value()))
                    .transpose()
            }
            /// The catalogue's newest revision of (gid, sid).
            pub fn catalog_newest(&self, gid: u32, sid: u32) -> Result<Option<CatalogRule>> {
                let t = self.0.open_table(RULE_CATALOG)?;
                let last = t.range((gid, sid, 0)..=(gid, sid, u32::MAX))?.next_back();
                match last {
                    Some(e) => Ok(Some(dec("rule_catalog", e?.1.value())?)),
                    None => Ok(None),
                }
            }
            /// Number of rules in the catalogue.
            pub fn catalog_len(&self) -> Result<u64> {
                Ok(self.0.open_table(RULE_CATALOG)?.len()?)
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
        let sealed = seal_user(&self.1, u);
        self.0
            .open_table(USERS)?
            .insert(u.id, enc(&sealed).as_slice())?;
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
        self.0.open_table(CODE_ISSUED)?.remove(code_hash)?;
        Ok(())
    }
    /// Records when an activation code was issued (its expiry counts from here).
    pub fn put_code_issued(&mut self, code_hash: &str, issued_ms: i64) -> Result<()> {
        self.0
            .open_table(CODE_ISSUED)?
            .insert(code_hash, issued_ms)?;
        Ok(())
    }
    /// Adds (or replaces) the catalogue's entry for the rule's (gid, sid, rev).
    pub fn put_catalog_rule(&mut self, r: &CatalogRule) -> Result<()> {
        self.0
            .open_table(RULE_CATALOG)?
            .insert((r.gid, r.sid, r.rev), enc(r).as_slice())?;
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
        self.put_mail(&m)?;
        Ok(m.id)
    }
    pub fn put_mail(&mut self, m: &Mail) -> Result<()> {
        let sealed = seal_mail(&self.1, m);
        self.0
            .open_table(OUTBOX)?
            .insert(m.id, enc(&sealed).as_slice())?;
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
    /// Remove a contract's alerts and their index (contract end).
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
        Ok(ids.len())
    }
    /// Remove a contract's traffic summaries (contract end).
    pub fn purge_contract_traffic(&mut self, contract: u64) -> Result<usize> {
        let keys: Vec<(u64, u64, u64)> = {
            let t = self.0.open_table(TRAFFIC)?;
            let mut v = Vec::new();
            for e in t.range((contract, 0, 0)..=(contract, u64::MAX, u64::MAX))? {
                v.push(e?.0.value());
            }
            v
        };
        let mut t = self.0.open_table(TRAFFIC)?;
        for k in &keys {
            t.remove(*k)?;
        }
        Ok(keys.len())
    }
    /// Remove a portal user and its e-mail index.
    pub fn remove_user(&mut self, u: &PortalUser) -> Result<()> {
        self.0.open_table(USERS)?.remove(u.id)?;
        let mut by_email = self.0.open_table(USERS_BY_EMAIL)?;
        let points_here = by_email
            .get(u.email.as_str())?
            .is_some_and(|v| v.value() == u.id);
        if points_here {
            by_email.remove(u.email.as_str())?;
        }
        Ok(())
    }
    pub fn remove_customer(&mut self, id: u64) -> Result<()> {
        self.0.open_table(CUSTOMERS)?.remove(id)?;
        Ok(())
    }
    pub fn remove_command(&mut self, device: &str, id: u64) -> Result<()> {
        self.0.open_table(COMMANDS)?.remove((device, id))?;
        Ok(())
    }
    /// Remove every (device, seq) row of a device.
    pub fn purge_seen(&mut self, device: &str) -> Result<usize> {
        let keys: Vec<u64> = {
            let t = self.0.open_table(SEEN)?;
            let mut v = Vec::new();
            for e in t.range((device, 0)..=(device, u64::MAX))? {
                v.push(e?.0.value().1);
            }
            v
        };
        let mut t = self.0.open_table(SEEN)?;
        for seq in &keys {
            t.remove((device, *seq))?;
        }
        Ok(keys.len())
    }
    /// Remove the dedup keys starting with `prefix` (`<device>|`).
    pub fn purge_dedup_prefix(&mut self, prefix: &str) -> Result<usize> {
        let keys: Vec<String> = {
            let t = self.0.open_table(DEDUP)?;
            let mut v = Vec::new();
            for e in t.range(prefix..)? {
                let k = e?.0.value().to_string();
                if !k.starts_with(prefix) {
                    break;
                }
                v.push(k);
            }
            v
        };
        let mut t = self.0.open_table(DEDUP)?;
        for k in &keys {
            t.remove(k.as_str())?;
        }
        Ok(keys.len())
    }
    /// Remove the escalation (★★☆ by host) keys starting with `prefix` (`<contract>|`).
    pub fn purge_medium_prefix(&mut self, prefix: &str) -> Result<usize> {
        let keys: Vec<(String, i64)> = {
            let t = self.0.open_table(MEDIUM_BY_HOST)?;
            let mut v = Vec::new();
            for e in t.range((prefix, i64::MIN)..)? {
                let k = e?.0;
                let (host, ms) = k.value();
                if !host.starts_with(prefix) {
                    break;
                }
                v.push((host.to_string(), ms));
            }
            v
        };
        let mut t = self.0.open_table(MEDIUM_BY_HOST)?;
        for (h, ms) in &keys {
            t.remove((h.as_str(), *ms))?;
        }
        Ok(keys.len())
    }
    /// Remove the activation codes of these devices.
    pub fn purge_codes_of(&mut self, devices: &[String]) -> Result<usize> {
        let keys: Vec<String> = {
            let t = self.0.open_table(CODES)?;
            let mut v = Vec::new();
            for e in t.iter()? {
                let (k, d) = e?;
                if devices.iter().any(|x| x == d.value()) {
                    v.push(k.value().to_string());
                }
            }
            v
        };
        let mut t = self.0.open_table(CODES)?;
        for k in &keys {
            t.remove(k.as_str())?;
        }
        Ok(keys.len())
    }
    /// Move a mail out of the outbox into the failed mails (never retried).
    pub fn give_up_mail(&mut self, m: &Mail) -> Result<()> {
        self.0.open_table(OUTBOX)?.remove(m.id)?;
        self.0
            .open_table(FAILED_MAILS)?
            .insert(m.id, enc(m).as_slice())?;
        Ok(())
    }
    pub fn remove_failed_mail(&mut self, id: u64) -> Result<()> {
        self.0.open_table(FAILED_MAILS)?.remove(id)?;
        Ok(())
    }
}

/// One row of [`dump`]: table, key (debug form) and the value's bytes.
#[derive(Debug, Clone, Serialize)]
pub struct DumpRow {
    pub table: String,
    pub key: String,
    pub value: String,
    /// The value's bytes in hex (postcard values hold addresses as raw bytes).
    pub value_hex: String,
}

/// Every row of every table of a stopped store's database file, for checks that nothing
/// of an ended contract remains (`mimamori-cloud debug-dump-store`). Refuses a database
/// holding a table this version does not know, so nothing escapes the scan.
pub fn dump(data_dir: &Path) -> Result<Vec<DumpRow>> {
    // read-write open: a database left by a killed process is repaired first
    let db = Database::open(data_dir.join("mimamori.redb"))?;
    let rx = db.begin_read()?;
    let mut out = Vec::new();
    fn push(out: &mut Vec<DumpRow>, table: &str, key: String, v: &[u8]) {
        out.push(DumpRow {
            table: table.to_string(),
            key,
            value: String::from_utf8_lossy(v).into_owned(),
            value_hex: hex::encode(v),
        });
    }
    macro_rules! bytes_table {
        ($def:expr) => {{
            let t = rx.open_table($def)?;
            for e in t.iter()? {
                let (k, v) = e?;
                push(&mut out, $def.name(), format!("{:?}", k.value()), v.value());
            }
        }};
    }
    macro_rules! other_table {
        ($def:expr) => {{
            let t = rx.open_table($def)?;
            for e in t.iter()? {
                let (k, v) = e?;
                let val = format!("{:?}", v.value());
                push(
                    &mut out,
                    $def.name(),
                    format!("{:?}", k.value()),
                    val.as_bytes(),
                );
            }
        }};
    }
    use redb::TableHandle;
    let known = [
        META.name(),
        CUSTOMERS.name(),
        CONTRACTS.name(),
        DEVICES.name(),
        CODES.name(),
        SEEN.name(),
        ALERTS.name(),
        ALERT_INDEX.name(),
        DEVICES_BY_CONTRACT.name(),
        MEDIUM_BY_HOST.name(),
        DEDUP.name(),
        WINDOWS.name(),
        OUTBOX.name(),
        NOTICES.name(),
        DISPATCHES.name(),
        USERS.name(),
        USERS_BY_EMAIL.name(),
        TRAFFIC.name(),
        COMMANDS.name(),
        FAILED_MAILS.name(),
        CODE_ISSUED.name(),
        RULE_CATALOG.name(),
        audit_log::AUDIT.name(),
        audit_log::AUDIT_BY_CONTRACT.name(),
        audit_log::OPERATORS.name(),
    ];
    for h in rx.list_tables()? {
        if !known.contains(&h.name()) {
            return Err(StoreError::Refused(format!(
                "table `{}` is unknown to this version: cannot dump it",
                h.name()
            )));
        }
    }
    if rx.list_multimap_tables()?.next().is_some() {
        return Err(StoreError::Refused(
            "multimap tables cannot be dumped".into(),
        ));
    }
    bytes_table!(META);
    bytes_table!(CUSTOMERS);
    bytes_table!(CONTRACTS);
    bytes_table!(DEVICES);
    other_table!(CODES);
    other_table!(SEEN);
    bytes_table!(ALERTS);
    bytes_table!(ALERT_INDEX);
    other_table!(DEVICES_BY_CONTRACT);
    other_table!(MEDIUM_BY_HOST);
    other_table!(DEDUP);
    bytes_table!(WINDOWS);
    bytes_table!(OUTBOX);
    bytes_table!(NOTICES);
    bytes_table!(DISPATCHES);
    bytes_table!(USERS);
    other_table!(USERS_BY_EMAIL);
    bytes_table!(TRAFFIC);
    bytes_table!(COMMANDS);
    bytes_table!(FAILED_MAILS);
    other_table!(CODE_ISSUED);
    bytes_table!(RULE_CATALOG);
    bytes_table!(audit_log::AUDIT);
    other_table!(audit_log::AUDIT_BY_CONTRACT);
    bytes_table!(audit_log::OPERATORS);
    Ok(out)
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

    fn file_has(path: &Path, needle: &str) -> bool {
        let b = std::fs::read(path).unwrap();
        b.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    fn mail(body: &str) -> Mail {
        Mail {
            id: 0,
            to: "a@example.com".into(),
            subject: "s".into(),
            body: body.into(),
            created_ms: 1,
            next_attempt_ms: 1,
            attempts: 0,
            last_error: None,
            kind: "account".into(),
            contract: None,
            given_up_ms: None,
        }
    }

    #[test]
    fn secrets_sealed_at_rest_migrated_and_key_required() {
        let dir = std::env::temp_dir().join(format!("mimamori-store-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("mimamori.redb");
        const TOTP: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        const BODY: &str = "仮パスワード: Temp-Pass-4821";
        {
            let s = Store::open(&dir).unwrap();
            s.write(|tx| {
                tx.put_user(&PortalUser {
                    id: 1,
                    contract_id: 1,
                    email: "a@example.com".into(),
                    totp_secret: Some(TOTP.into()),
                    ..Default::default()
                })?;
                tx.queue_mail(mail(BODY))
            })
            .unwrap();
            // callers see plain values
            let u = s
                .read(|rx| rx.user_by_email("a@example.com"))
                .unwrap()
                .unwrap();
            assert_eq!(u.totp_secret.as_deref(), Some(TOTP));
            assert_eq!(
                s.read(|rx| rx.users_of(1)).unwrap()[0]
                    .totp_secret
                    .as_deref(),
                Some(TOTP)
            );
            assert_eq!(s.read(|rx| rx.outbox()).unwrap()[0].body, BODY);
            // an old version's records in clear
            s.write(|tx| {
                let mut u = u.clone();
                u.id = 2;
                u.email = "b@example.com".into();
                tx.0.open_table(USERS)?.insert(2, enc(&u).as_slice())?;
                let mut m = mail("plain old body Zx81");
                m.id = 7;
                tx.0.open_table(OUTBOX)?.insert(7, enc(&m).as_slice())?;
                Ok(())
            })
            .unwrap();
        }
        assert!(!file_has(&db, "Temp-Pass-4821"), "sealed on first write");
        {
            // re-opened: the plain records are sealed, values unchanged
            let s = Store::open(&dir).unwrap();
            let raw: Vec<String> = s
                .read(|rx| {
                    let mut v = Vec::new();
                    for e in rx.0.open_table(USERS)?.iter()? {
                        v.push(String::from_utf8_lossy(e?.1.value()).into_owned());
                    }
                    for e in rx.0.open_table(OUTBOX)?.iter()? {
                        v.push(String::from_utf8_lossy(e?.1.value()).into_owned());
                    }
                    Ok(v)
                })
                .unwrap();
            assert_eq!(raw.len(), 4);
            for r in &raw {
                assert!(
                    !r.contains(TOTP) && !r.contains("Temp-Pass") && !r.contains("Zx81"),
                    "{r}"
                );
                assert!(r.contains(secrets::PREFIX), "{r}");
            }
            assert_eq!(
                s.read(|rx| rx.user(2))
                    .unwrap()
                    .unwrap()
                    .totp_secret
                    .as_deref(),
                Some(TOTP)
            );
            let bodies: Vec<String> = s
                .read(|rx| rx.outbox())
                .unwrap()
                .into_iter()
                .map(|m| m.body)
                .collect();
            assert!(bodies.contains(&"plain old body Zx81".to_string()));
        }
        // the key is required: missing or another one refuses the open, and no new key is made
        let key = dir.join("secrets.key");
        let aside = dir.join("key.aside");
        std::fs::rename(&key, &aside).unwrap();
        let e = Store::open(&dir).err().expect("refused without its key");
        assert!(
            e.to_string().contains("does not exist") && e.to_string().contains("restore"),
            "{e}"
        );
        assert!(!key.exists());
        secrets::Sealer::create(&key).unwrap();
        let e = Store::open(&dir).err().expect("refused with another key");
        assert!(matches!(e, StoreError::KeyMismatch(_)), "{e}");
        std::fs::rename(&aside, &key).unwrap();
        assert!(Store::open(&dir).is_ok());
        // the files are the owner's only
        use std::os::unix::fs::PermissionsExt;
        for f in [&db, &key] {
            assert_eq!(
                std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
                0o600,
                "{}",
                f.display()
            );
        }
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn io_errors_are_latched_as_failures() {
        let dir = std::env::temp_dir().join(format!("mimamori-store-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir).unwrap();
        assert!(s.failure().is_none());
        assert!(s.probe(1).is_ok());
        // a logic error is not a storage failure
        let _ = s.write(|_| -> Result<()> { Err(StoreError::Refused("no".into())) });
        assert!(s.failure().is_none());
        let r: Result<()> = s.write(|_| {
            Err(StoreError::Db(redb::Error::Io(
                std::io::Error::from_raw_os_error(28),
            )))
        });
        assert!(r.is_err());
        assert!(
            s.failure().is_some_and(|f| f.contains("No space")),
            "{:?}",
            s.failure()
        );
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
