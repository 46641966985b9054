//! The audit log (issue 14, finding 6): who changed what, when, from where, with the
//! values before and after. Append-only: entries are written by [`record`] inside the
//! store transaction of the change they describe (a change never lands without its
//! entry), never changed by any API route, and read through [`list`]. The only rewrite is
//! [`anonymise_contract`] at contract end: the entries stay, without personal data.
//!
//! Operators (named admin credentials) live next to it: their tokens are stored as
//! SHA-256 hashes and compared in constant time.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Result, Rx, StoreError, Tx};

/// Who made a change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Who {
    /// The bootstrap token (`[admin] token` or `<data_dir>/admin.token`).
    Bootstrap,
    /// A named operator.
    Operator { name: String },
    /// A portal user (`email` is replaced by a placeholder when the contract ends).
    Portal { user: u64, email: String },
    /// A portal visitor without an account (a login with an unknown address).
    Visitor,
    /// The service itself: `auto-isolation`, `bundle`, ...
    System { what: String },
    /// An appliance.
    Appliance { device: String },
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Bootstrap => write!(f, "bootstrap"),
            Who::Operator { name } => write!(f, "operator:{name}"),
            Who::Portal { email, .. } => write!(f, "portal:{email}"),
            Who::Visitor => write!(f, "portal:visitor"),
            Who::System { what } => write!(f, "system:{what}"),
            Who::Appliance { device } => write!(f, "appliance:{device}"),
        }
    }
}

/// Who is acting in a request, from where, and when (the request's time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub who: Who,
    /// The client's address (the trusted proxy's header, else the socket peer).
    pub addr: Option<IpAddr>,
    /// When the request arrived (Unix ms).
    pub at_ms: i64,
}

impl Actor {
    /// The service itself (`system:<what>`).
    pub fn system(what: &str, at_ms: i64) -> Actor {
        Actor {
            who: Who::System { what: what.into() },
            addr: None,
            at_ms,
        }
    }
    /// A named operator.
    pub fn operator(name: &str, addr: Option<IpAddr>, at_ms: i64) -> Actor {
        Actor {
            who: Who::Operator { name: name.into() },
            addr,
            at_ms,
        }
    }
    /// A portal user.
    pub fn portal(user: u64, email: &str, addr: Option<IpAddr>, at_ms: i64) -> Actor {
        Actor {
            who: Who::Portal {
                user,
                email: email.into(),
            },
            addr,
            at_ms,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.who.fmt(f)
    }
}

/// One entry of the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub id: u64,
    pub time_ms: i64,
    pub actor: Who,
    /// `operator:alice`, `portal:a@example.com`, ... (as [`Who`] shows itself).
    pub actor_text: String,
    #[serde(default)]
    pub addr: Option<String>,
    #[serde(default)]
    pub contract: Option<u64>,
    /// `contract.recipients`, `portal.login`, `device.command`, ...
    pub action: String,
    /// What was changed: `contract 3`, `device dev-000001`, `user 7`, ...
    pub target: String,
    #[serde(default)]
    pub before: Value,
    #[serde(default)]
    pub after: Value,
    /// Personal data replaced by placeholders (contract end).
    #[serde(default)]
    pub anonymised: bool,
}

/// Largest JSON value kept as `before`/`after` (larger ones are cut to a string).
const MAX_VALUE: usize = 2048;

fn bounded(v: Value) -> Value {
    let s = v.to_string();
    if s.len() <= MAX_VALUE {
        return v;
    }
    let mut cut = MAX_VALUE;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    Value::String(format!("{}…", &s[..cut]))
}

/// Appends an entry describing a change, inside the change's own transaction.
pub fn record(
    tx: &mut Tx,
    actor: &Actor,
    contract: Option<u64>,
    action: &str,
    target: &str,
    before: Value,
    after: Value,
) -> Result<u64> {
    let id = tx.next_id("audit")?;
    let e = Entry {
        id,
        time_ms: actor.at_ms,
        actor: actor.who.clone(),
        actor_text: actor.who.to_string(),
        addr: actor.addr.map(|a| a.to_string()),
        contract,
        action: action.into(),
        target: target.chars().take(200).collect(),
        before: bounded(before),
        after: bounded(after),
        anonymised: false,
    };
    tx.append_audit(&e)?;
    tracing::info!(id, actor = %e.actor_text, addr = ?e.addr, contract = ?contract, action, what = %e.target, "audit entry");
    Ok(id)
}

/// [`record`] in a transaction of its own (for events without a store change: a refused
/// login, a trigger).
pub fn record_alone(
    store: &crate::store::Store,
    actor: &Actor,
    contract: Option<u64>,
    action: &str,
    target: &str,
    after: Value,
) -> Result<u64> {
    store.write(|tx| record(tx, actor, contract, action, target, Value::Null, after))
}

/// What `admin audit list` and the portal's activity page ask for.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub contract: Option<u64>,
    /// Operator name (entries made by `operator:<name>`).
    #[serde(default)]
    pub operator: Option<String>,
    /// Entries at or after this time (Unix ms).
    #[serde(default)]
    pub since_ms: Option<i64>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// How far before `since` a listing keeps reading (see [`list`]).
const SINCE_SLACK_MS: i64 = 3_600_000;

/// Entries matching `f`, newest first.
pub fn list(rx: &Rx, f: &Filter) -> Result<Vec<Entry>> {
    let limit = f.limit.unwrap_or(100).clamp(1, 100_000);
    let mut out = Vec::new();
    let mut keep = |e: Entry| {
        if let Some(s) = f.since_ms {
            if e.time_ms < s {
                // ids follow commit order, times the requests' arrival: a request may
                // commit after a later one, never an hour after
                return e.time_ms >= s.saturating_sub(SINCE_SLACK_MS);
            }
        }
        let op_ok = f
            .operator
            .as_ref()
            .is_none_or(|n| matches!(&e.actor, Who::Operator { name } if name == n));
        let c_ok = f.contract.is_none_or(|c| e.contract == Some(c));
        if op_ok && c_ok {
            out.push(e);
        }
        out.len() < limit
    };
    match f.contract {
        Some(c) => rx.scan_audit_of(c, &mut keep)?,
        None => rx.scan_audit(&mut keep)?,
    }
    Ok(out)
}

/// `--since`: `YYYY-MM-DD` (local midnight), `YYYY-MM-DD HH:MM[:SS]` or
/// `YYYY-MM-DDTHH:MM[:SS]` (local time, `tz_secs` east of UTC), or a duration back from
/// `now_ms` (`90m`, `24h`, `7d`). Unix ms.
pub fn parse_since(s: &str, now_ms: i64, tz_secs: i64) -> Option<i64> {
    let s = s.trim();
    if s.ends_with(|c: char| c.is_ascii_alphabetic()) {
        if let Ok(d) = crate::config::parse_duration(s) {
            return Some(now_ms - d.as_millis() as i64);
        }
    }
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let midnight = crate::portal::query::parse_date(date, tz_secs)?;
    let Some(t) = time else {
        return Some(midnight);
    };
    let mut it = t.split(':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let sec: i64 = match it.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if it.next().is_some()
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..60).contains(&sec)
    {
        return None;
    }
    Some(midnight + (h * 3600 + m * 60 + sec) * 1000)
}

/// A JSON value of anything serialisable (`Null` when it cannot be).
pub fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------
// Anonymisation at contract end
// ---------------------------------------------------------------------------------------

/// Placeholders written over personal data.
pub const EMAIL_PLACEHOLDER: &str = "<e-mail removed>";
pub const IP_PLACEHOLDER: &str = "<address removed>";
pub const NAME_PLACEHOLDER: &str = "<removed>";

/// Fields of customers and contracts that name people or places.
const PERSONAL_KEYS: &[&str] = &[
    "company",
    "contact_name",
    "contact_department",
    "contact_title",
    "contact_email",
    "address",
    "phone",
    "name",
    "email",
    "recipients",
    "note",
];

/// Rewrites the entries of `contract` (and of its customer) without personal data:
/// e-mail addresses, names, contact data and IP addresses become placeholders; actors
/// that were portal users keep only their user id. The entries, their times, actions
/// and targets' kinds stay. Returns how many entries were rewritten. Call it in the
/// contract end's transaction, before the personal data themselves are deleted (it
/// reads the customer and the contract's users to know their names and addresses).
pub fn anonymise_contract(tx: &mut Tx, contract: u64) -> Result<usize> {
    let mut known: Vec<String> = Vec::new();
    let mut customer_target = None;
    if let Some(c) = tx.contract(contract)? {
        known.push(c.name.clone());
        known.extend(c.recipients.iter().cloned());
        if let Some(cu) = tx.customer(c.customer_id)? {
            known.extend([
                cu.company,
                cu.contact_name,
                cu.contact_department,
                cu.contact_title,
                cu.contact_email,
                cu.address,
                cu.phone,
            ]);
        }
        customer_target = Some(format!("customer {}", c.customer_id));
    }
    for u in tx.users_of(contract)? {
        known.push(u.email);
    }
    known.retain(|s| s.trim().chars().count() >= 3);
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
    known.dedup();
    let mut ids = Vec::new();
    tx.scan_audit(&mut |e: Entry| {
        if e.contract == Some(contract) || customer_target.as_deref() == Some(e.target.as_str()) {
            ids.push(e.id);
        }
        true
    })?;
    let mut n = 0;
    for id in ids {
        let Some(mut e) = tx.audit_entry(id)? else {
            continue;
        };
        if let Who::Portal { email, .. } = &mut e.actor {
            *email = EMAIL_PLACEHOLDER.into();
        }
        e.actor_text = match &e.actor {
            Who::Portal { user, .. } => format!("portal:user-{user}"),
            w => scrub_str(&w.to_string(), &known),
        };
        if e.addr.is_some() {
            e.addr = Some(IP_PLACEHOLDER.into());
        }
        e.target = scrub_str(&e.target, &known);
        scrub_value(&mut e.before, &known);
        scrub_value(&mut e.after, &known);
        e.anonymised = true;
        tx.rewrite_audit(&e)?;
        n += 1;
    }
    Ok(n)
}

/// Rewrites the entries of a removed portal user's contract that name the user: its
/// e-mail address becomes the placeholder and its actor keeps only the user id. The
/// contract's other entries (and the client addresses) stay as they are.
pub fn anonymise_user(tx: &mut Tx, user: &crate::store::PortalUser) -> Result<usize> {
    let email = user.email.to_lowercase();
    if email.trim().is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::new();
    tx.scan_audit(&mut |e: Entry| {
        let names = matches!(&e.actor, Who::Portal { user: u, .. } if *u == user.id)
            || e.target.to_lowercase().contains(&email)
            || e.before.to_string().to_lowercase().contains(&email)
            || e.after.to_string().to_lowercase().contains(&email);
        if e.contract == Some(user.contract_id) && names {
            ids.push(e.id);
        }
        true
    })?;
    let known = [user.email.clone(), email.clone()];
    let mut n = 0;
    for id in ids {
        let Some(mut e) = tx.audit_entry(id)? else {
            continue;
        };
        if let Who::Portal { user: u, email } = &mut e.actor
            && *u == user.id
        {
            *email = EMAIL_PLACEHOLDER.into();
            e.actor_text = format!("portal:user-{u}");
        }
        e.target = e.target.replace(known[0].as_str(), EMAIL_PLACEHOLDER);
        e.target = e.target.replace(known[1].as_str(), EMAIL_PLACEHOLDER);
        replace_value(&mut e.before, &known);
        replace_value(&mut e.after, &known);
        tx.rewrite_audit(&e)?;
        n += 1;
    }
    Ok(n)
}

/// Every string of `v` with the `known` texts replaced by the e-mail placeholder.
fn replace_value(v: &mut Value, known: &[String]) {
    match v {
        Value::String(s) => {
            for k in known {
                if s.contains(k.as_str()) {
                    *s = s.replace(k.as_str(), EMAIL_PLACEHOLDER);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| replace_value(x, known)),
        Value::Object(m) => m.values_mut().for_each(|x| replace_value(x, known)),
        _ => {}
    }
}

fn scrub_value(v: &mut Value, known: &[String]) {
    match v {
        Value::String(s) => *s = scrub_str(s, known),
        Value::Array(a) => a.iter_mut().for_each(|x| scrub_value(x, known)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if PERSONAL_KEYS.contains(&k.as_str()) {
                    blank(x);
                } else {
                    scrub_value(x, known);
                }
            }
        }
        _ => {}
    }
}

/// Every string inside `v` becomes the name placeholder (numbers and flags stay).
fn blank(v: &mut Value) {
    match v {
        Value::String(s) if !s.is_empty() => *s = NAME_PLACEHOLDER.into(),
        Value::Array(a) => a.iter_mut().for_each(blank),
        Value::Object(m) => m.values_mut().for_each(blank),
        _ => {}
    }
}

/// Known names and addresses, then anything shaped like an e-mail or IP address.
fn scrub_str(s: &str, known: &[String]) -> String {
    let mut out = s.to_string();
    for k in known {
        if out.contains(k.as_str()) {
            out = out.replace(k.as_str(), NAME_PLACEHOLDER);
        }
    }
    out.split_inclusive(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .map(|w| {
            let core = w.trim_end_matches(|c: char| c.is_whitespace() || c == ',' || c == ';');
            let tail = &w[core.len()..];
            let bare = core.trim_matches(|c: char| "()[]<>\"'".contains(c));
            if bare.contains('@') && bare.len() > 2 {
                format!("{EMAIL_PLACEHOLDER}{tail}")
            } else if looks_like_ip(bare) {
                format!("{IP_PLACEHOLDER}{tail}")
            } else {
                w.to_string()
            }
        })
        .collect()
}

fn looks_like_ip(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() || s.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    // host:IP, IP/prefix
    s.rsplit_once(':')
        .is_some_and(|(_, ip)| ip.parse::<IpAddr>().is_ok())
        || s.split_once('/')
            .is_some_and(|(ip, _)| ip.parse::<IpAddr>().is_ok())
}

// ---------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------

/// A named operator credential. Only the token's SHA-256 is kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    pub created_ms: i64,
    /// Who created it (`bootstrap`, `operator:NAME`).
    pub created_by: String,
    #[serde(default)]
    pub revoked_ms: Option<i64>,
}

/// What the admin API shows of an operator (no hash).
#[derive(Debug, Clone, Serialize)]
pub struct OperatorView {
    pub name: String,
    pub created_ms: i64,
    pub created_by: String,
    pub revoked_ms: Option<i64>,
}

impl From<&Operator> for OperatorView {
    fn from(o: &Operator) -> Self {
        OperatorView {
            name: o.name.clone(),
            created_ms: o.created_ms,
            created_by: o.created_by.clone(),
            revoked_ms: o.revoked_ms,
        }
    }
}

/// Hex SHA-256 of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new operator token: 32 random bytes, hex.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A valid operator name: 1–64 of `A-Z a-z 0-9 . _ - @`.
pub fn valid_operator_name(n: &str) -> std::result::Result<(), String> {
    if n.is_empty()
        || n.len() > 64
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
    {
        return Err(format!(
            "operator name `{n}` must be 1–64 characters of A-Z a-z 0-9 . _ - @"
        ));
    }
    Ok(())
}

/// The active operator whose token this is. Every active operator's hash is compared
/// (constant time each), so the time does not tell which one matched.
pub fn operator_by_token(rx: &Rx, token: &str) -> Result<Option<Operator>> {
    let h = token_hash(token);
    let mut found = None;
    for o in rx.operators()? {
        let eq: bool = o.token_hash.as_bytes().ct_eq(h.as_bytes()).into();
        if eq && o.revoked_ms.is_none() {
            found = Some(o);
        }
    }
    Ok(found)
}

/// Adds an operator; returns it and its token (shown once). Names are never reused.
pub fn add_operator(tx: &mut Tx, actor: &Actor, name: &str) -> Result<(Operator, String)> {
    valid_operator_name(name).map_err(StoreError::Refused)?;
    if tx.operator(name)?.is_some() {
        return Err(StoreError::Refused(format!(
            "an operator `{name}` exists (or existed) already; names are not reused"
        )));
    }
    let token = new_token();
    let o = Operator {
        name: name.into(),
        token_hash: token_hash(&token),
        created_ms: actor.at_ms,
        created_by: actor.to_string(),
        revoked_ms: None,
    };
    tx.put_operator(&o)?;
    record(
        tx,
        actor,
        None,
        "operator.add",
        &format!("operator {name}"),
        Value::Null,
        json(&OperatorView::from(&o)),
    )?;
    Ok((o, token))
}

/// Revokes an operator: its token is refused from now on.
pub fn revoke_operator(tx: &mut Tx, actor: &Actor, name: &str) -> Result<Operator> {
    let mut o = tx
        .operator(name)?
        .ok_or_else(|| StoreError::NotFound(format!("operator {name}")))?;
    if o.revoked_ms.is_some() {
        return Err(StoreError::Refused(format!(
            "operator {name} is revoked already"
        )));
    }
    let before = json(&OperatorView::from(&o));
    o.revoked_ms = Some(actor.at_ms);
    tx.put_operator(&o)?;
    record(
        tx,
        actor,
        None,
        "operator.revoke",
        &format!("operator {name}"),
        before,
        json(&OperatorView::from(&o)),
    )?;
    Ok(o)
}

// ---------------------------------------------------------------------------------------
// Client addresses behind a proxy
// ---------------------------------------------------------------------------------------

/// An address or a network (`IP` or `IP/prefix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    ip: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Net {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Net, String> {
        let s = s.trim();
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix must be 0–{max}"))?,
            None => max,
        };
        Ok(Net { ip, prefix })
    }
}

impl Net {
    pub fn contains(&self, a: IpAddr) -> bool {
        let a = match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
            v4 => v4,
        };
        match (self.ip, a) {
            (IpAddr::V4(n), IpAddr::V4(x)) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & m == u32::from(x) & m
            }
            (IpAddr::V6(n), IpAddr::V6(x)) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & m == u128::from(x) & m
            }
            _ => false,
        }
    }
}

/// The client's address: from `header` (its last entry: the one the trusted proxy added)
/// when the socket peer is one of `trusted`, else the peer itself.
pub fn client_addr(
    peer: Option<IpAddr>,
    headers: &axum::http::HeaderMap,
    header: Option<&str>,
    trusted: &[Net],
) -> Option<IpAddr> {
    let p = peer?;
    let Some(h) = header.filter(|_| trusted.iter().any(|n| n.contains(p))) else {
        return Some(p);
    };
    let forwarded = headers
        .get_all(h)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| {
            let s = s.trim().trim_start_matches("for=").trim_matches('"');
            s.parse::<IpAddr>()
                .ok()
                .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        })
        .last();
    Some(forwarded.unwrap_or(p))
}

#[cfg(test)]
mod test {
    use super::*;

    fn store(name: &str) -> (crate::store::Store, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("mimamori-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (crate::store::Store::open(&dir).unwrap(), dir)
    }

    #[test]
    fn entries_are_listed_newest_first_and_filtered() {
        let (s, dir) = store("list");
        let alice = Actor::operator("alice", Some("127.0.0.1".parse().unwrap()), 1000);
        let bob = Actor::operator("bob", None, 2000);
        s.write(|tx| {
            record(
                tx,
                &alice,
                Some(1),
                "contract.add",
                "contract 1",
                Value::Null,
                json(&1),
            )?;
            record(
                tx,
                &bob,
                Some(2),
                "contract.add",
                "contract 2",
                Value::Null,
                json(&2),
            )?;
            record(
                tx,
                &alice,
                None,
                "customer.add",
                "customer 1",
                Value::Null,
                Value::Null,
            )?;
            Ok(())
        })
        .unwrap();
        let all = s.read(|rx| list(rx, &Filter::default())).unwrap();
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), vec![3, 2, 1]);
        assert_eq!(all[2].addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(all[2].actor_text, "operator:alice");
        let f = Filter {
            contract: Some(2),
            ..Default::default()
        };
        let c2 = s.read(|rx| list(rx, &f)).unwrap();
        assert_eq!(c2.len(), 1);
        assert_eq!(c2[0].actor_text, "operator:bob");
        let f = Filter {
            operator: Some("alice".into()),
            since_ms: Some(1000),
            limit: Some(1),
            ..Default::default()
        };
        let a = s.read(|rx| list(rx, &f)).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].action, "customer.add");
        let f = Filter {
            since_ms: Some(1500),
            ..Default::default()
        };
        let late = s.read(|rx| list(rx, &f)).unwrap();
        assert_eq!(
            late.len(),
            1,
            "only bob's entry is that late, though not the newest"
        );
        assert_eq!(late[0].actor_text, "operator:bob");
        // a failed change leaves no entry
        let r: Result<()> = s.write(|tx| {
            record(tx, &alice, Some(1), "x", "y", Value::Null, Value::Null)?;
            Err(StoreError::Refused("no".into()))
        });
        assert!(r.is_err());
        assert_eq!(s.read(|rx| list(rx, &Filter::default())).unwrap().len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn anonymisation_removes_personal_data_and_keeps_the_record() {
        let (s, dir) = store("anon");
        let op = Actor::operator("alice", Some("10.0.0.9".parse().unwrap()), 1000);
        let user = Actor::portal(
            7,
            "taro@yamada.example",
            Some("203.0.113.5".parse().unwrap()),
            2000,
        );
        s.write(|tx| {
            tx.put_customer(&crate::store::Customer {
                id: 4,
                company: "山田商店".into(),
                contact_name: "山田太郎".into(),
                phone: "03-1234-5678".into(),
                ..Default::default()
            })?;
            tx.put_contract(&crate::store::Contract {
                id: 3,
                customer_id: 4,
                name: "山田商店 本店".into(),
                application_date: crate::contract::Date::parse("2026-04-03").unwrap(),
                start: crate::contract::Date::parse("2026-04-03").unwrap(),
                paid_start: crate::contract::Date::parse("2026-05-01").unwrap(),
                ended: None,
                recipients: vec!["hanako@yamada.example".into()],
                auto_isolation: false,
                isolation_allow: vec![],
                exceptions: vec![],
            })?;
            record(tx, &op, None, "customer.update", "customer 4",
                serde_json::json!({"company": "山田商店", "contact_name": "山田太郎", "phone": "03-1234-5678"}),
                serde_json::json!({"company": "山田商店", "contact_name": "山田花子"}))?;
            record(tx, &user, Some(3), "contract.recipients", "contract 3",
                serde_json::json!(["hanako@yamada.example"]),
                serde_json::json!(["hanako@yamada.example", "jiro@yamada.example"]))?;
            record(tx, &user, Some(3), "device.command", "device dev-1",
                Value::Null, serde_json::json!({"what": "isolate 192.168.1.20 (allow 192.168.1.1:53)"}))?;
            record(tx, &op, Some(3), "user.add", "user hanako@yamada.example", Value::Null,
                serde_json::json!({"email": "hanako@yamada.example", "id": 9}))?;
            record(tx, &op, Some(5), "contract.add", "contract 5", Value::Null,
                serde_json::json!({"name": "他社 (other@else.example)"}))?;
            Ok(())
        })
        .unwrap();
        let n = s.write(|tx| anonymise_contract(tx, 3)).unwrap();
        assert_eq!(n, 4, "the customer's entry and the three of the contract");
        let all = s.read(|rx| list(rx, &Filter::default())).unwrap();
        assert_eq!(all.len(), 5, "entries stay");
        let text = serde_json::to_string(&all[1..]).unwrap();
        for personal in [
            "taro@yamada.example",
            "hanako@yamada.example",
            "jiro@yamada.example",
            "山田",
            "03-1234-5678",
            "203.0.113.5",
            "10.0.0.9",
            "192.168.1.20",
            "192.168.1.1",
        ] {
            assert!(!text.contains(personal), "{personal} remains in {text}");
        }
        let e = &all[4];
        assert_eq!(e.action, "customer.update");
        assert!(e.anonymised);
        let u = all
            .iter()
            .find(|e| e.action == "contract.recipients")
            .unwrap();
        assert_eq!(u.actor_text, "portal:user-7");
        assert_eq!(u.contract, Some(3));
        // another contract's entries are untouched
        assert!(!all[0].anonymised);
        assert!(all[0].after.to_string().contains("other@else.example"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn since_parses_dates_times_and_durations() {
        let jst = 9 * 3600;
        let day = parse_since("2026-12-04", 0, jst).unwrap();
        assert_eq!(crate::clock::format_local(day, jst), "2026-12-04 00:00:00");
        let t = parse_since("2026-12-04 15:30", 0, jst).unwrap();
        assert_eq!(t - day, (15 * 3600 + 30 * 60) * 1000);
        assert_eq!(
            parse_since("2026-12-04T15:30:05", 0, jst).unwrap(),
            t + 5000
        );
        assert_eq!(
            parse_since("24h", 100_000_000, jst),
            Some(100_000_000 - 86_400_000)
        );
        assert!(parse_since("2026-12-04 25:00", 0, jst).is_none());
        assert!(parse_since("yesterday", 0, jst).is_none());
    }

    #[test]
    fn operators_tokens_and_revocation() {
        let (s, dir) = store("ops");
        let boot = Actor {
            who: Who::Bootstrap,
            addr: None,
            at_ms: 5,
        };
        let (o, token) = s.write(|tx| add_operator(tx, &boot, "alice")).unwrap();
        assert_eq!(token.len(), 64);
        assert_ne!(o.token_hash, token);
        assert!(s.write(|tx| add_operator(tx, &boot, "alice")).is_err());
        assert!(s.write(|tx| add_operator(tx, &boot, "bad name")).is_err());
        let found = s.read(|rx| operator_by_token(rx, &token)).unwrap();
        assert_eq!(found.map(|o| o.name), Some("alice".into()));
        assert!(
            s.read(|rx| operator_by_token(rx, "nope"))
                .unwrap()
                .is_none()
        );
        s.write(|tx| revoke_operator(tx, &boot, "alice")).unwrap();
        assert!(
            s.read(|rx| operator_by_token(rx, &token))
                .unwrap()
                .is_none()
        );
        assert!(
            s.write(|tx| add_operator(tx, &boot, "alice")).is_err(),
            "names are not reused"
        );
        let log = s.read(|rx| list(rx, &Filter::default())).unwrap();
        assert_eq!(log[0].action, "operator.revoke");
        assert_eq!(log[1].action, "operator.add");
        assert!(!serde_json::to_string(&log).unwrap().contains(&token));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn proxy_header_only_from_trusted_peers() {
        use axum::http::HeaderMap;
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "198.51.100.7, 203.0.113.9".parse().unwrap(),
        );
        let trusted: Vec<Net> = vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_addr(Some(local), &h, Some("X-Forwarded-For"), &trusted),
            Some("203.0.113.9".parse().unwrap()),
            "the entry the trusted proxy appended"
        );
        assert_eq!(
            client_addr(Some(other), &h, Some("X-Forwarded-For"), &trusted),
            Some(other)
        );
        assert_eq!(client_addr(Some(local), &h, None, &trusted), Some(local));
        assert_eq!(
            client_addr(
                Some(local),
                &HeaderMap::new(),
                Some("X-Forwarded-For"),
                &trusted
            ),
            Some(local)
        );
        assert!("10.0.0.0/33".parse::<Net>().is_err());
        assert!(
            "10.1.2.3/8"
                .parse::<Net>()
                .unwrap()
                .contains("10.200.0.1".parse().unwrap())
        );
        assert!(
            !"10.1.2.3/8"
                .parse::<Net>()
                .unwrap()
                .contains("11.0.0.1".parse().unwrap())
        );
        assert!(
            "0.0.0.0/0"
                .parse::<Net>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
