//! `mimamori-cloud admin …`: the operators' command line, a client of the admin API.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Where the API is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The service's config: API address and token are taken from it.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// API base URL (default: from --config, else http://127.0.0.1:7080).
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// Bearer token: an operator's (`admin operator add`), or the bootstrap token for
    /// `admin operator …` (default: $MIMAMORI_ADMIN_TOKEN, else the bootstrap token from
    /// --config or `<data_dir>/admin.token`).
    #[arg(long, global = true, env = "MIMAMORI_ADMIN_TOKEN")]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Customers (company and contact data).
    Customer {
        #[command(subcommand)]
        cmd: CustomerCmd,
    },
    /// Contracts: dates, notification addresses, exceptions, end.
    Contract {
        #[command(subcommand)]
        cmd: ContractCmd,
    },
    /// Portal users of a contract: add (a temporary password is mailed), list, reset,
    /// disable, enable, remove.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Appliances: add (→ activation code), list, revoke, reissue a code.
    Device {
        #[command(subcommand)]
        cmd: DeviceCmd,
    },
    /// Alerts: list, show, re-rate, resolve 調査中.
    Alert {
        #[command(subcommand)]
        cmd: AlertCmd,
    },
    /// Maintenance notices shown in the portal.
    Maintenance {
        #[command(subcommand)]
        cmd: MaintenanceCmd,
    },
    /// Signed rule bundles.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Announce a firmware version to every active contract by mail.
    Firmware {
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// Insurance status and dispatch records.
    Insurance {
        #[command(subcommand)]
        cmd: InsuranceCmd,
    },
    /// Anonymized export of all alerts (JSONL on stdout).
    Export,
    /// Operations.
    Ops {
        #[command(subcommand)]
        cmd: OpsCmd,
    },
    /// Mails: those the sender gave up on (`timing.mail_give_up`).
    Mail {
        #[command(subcommand)]
        cmd: MailCmd,
    },
    /// Operators: named admin credentials (the bootstrap token may only manage these).
    Operator {
        #[command(subcommand)]
        cmd: OperatorCmd,
    },
    /// The audit log: every change, who made it, when and from where.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum MailCmd {
    /// Mails given up after failing for `timing.mail_give_up` (never retried).
    Failed,
}

#[derive(Subcommand, Debug)]
pub enum OperatorCmd {
    /// Add an operator; its token is printed once (only its hash is stored).
    Add {
        #[arg(long)]
        name: String,
    },
    List,
    /// Revoke an operator: its token is refused from now on (the name is not reused).
    Revoke {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Entries, newest first.
    List {
        #[arg(long)]
        contract: Option<u64>,
        /// Entries made by this operator.
        #[arg(long)]
        operator: Option<String>,
        /// YYYY-MM-DD, "YYYY-MM-DD HH:MM[:SS]" (service time zone) or a duration (24h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum CustomerCmd {
    Add {
        #[arg(long)]
        company: String,
        #[arg(long, default_value = "")]
        contact_name: String,
        #[arg(long, default_value = "")]
        contact_email: String,
        #[arg(long, default_value = "")]
        phone: String,
        #[arg(long, default_value = "")]
        address: String,
    },
    /// Change fields; those not given stay.
    Update {
        id: u64,
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        contact_name: Option<String>,
        #[arg(long)]
        contact_department: Option<String>,
        #[arg(long)]
        contact_title: Option<String>,
        #[arg(long)]
        contact_email: Option<String>,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    List,
}

#[derive(Subcommand, Debug)]
pub enum ContractCmd {
    /// Add a contract; start and paid start follow from the application date (SPEC §5.5).
    Add {
        #[arg(long)]
        customer: u64,
        #[arg(long)]
        name: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        application_date: String,
        /// Start on the 1st of next month even when applying on the 1st–5th.
        #[arg(long)]
        start_next_month: bool,
        /// Notification address (repeat, at most 3).
        #[arg(long = "email")]
        emails: Vec<String>,
    },
    List,
    /// Set the notification addresses (at most 3).
    Emails {
        id: u64,
        #[arg(required = true)]
        emails: Vec<String>,
    },
    /// Set exceptions: sid:N, host:IP, domain:NAME, hash:SHA256.
    Exceptions {
        id: u64,
        exceptions: Vec<String>,
    },
    /// Auto-isolation: a ★★★ alert isolates the host at once (off by default).
    Isolation {
        id: u64,
        #[arg(long, value_parser = ["on", "off"])]
        auto: String,
        /// What isolated hosts may still reach: IP, IP:port (repeat).
        #[arg(long)]
        allow: Vec<String>,
    },
    /// End a contract: its appliances are revoked (and wiped when they next connect), its
    /// portal users disabled and deleted, its personal data deleted; prints what was
    /// removed per kind.
    End {
        id: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a portal user: a temporary password goes to the address by mail; the first
    /// login must change it and enrol an authenticator app.
    Add {
        #[arg(long)]
        contract: u64,
        #[arg(long)]
        email: String,
    },
    /// Disable a portal user: its logins end and new ones are refused.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled portal user again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Remove a portal user: its logins end; the account and its e-mail index are deleted.
    Remove {
        #[arg(long)]
        email: String,
    },
    /// The portal users of a contract (no secrets shown).
    List {
        #[arg(long)]
        contract: u64,
    },
    /// Forgotten password or a lock: mail a new temporary password (the user's logins
    /// end); `--mfa` also removes the authenticator (lost phone).
    Reset {
        #[arg(long)]
        email: String,
        #[arg(long)]
        mfa: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Add appliances to a contract; prints device ids and one-time activation codes.
    Add {
        #[arg(long)]
        contract: u64,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    List,
    Revoke {
        id: String,
    },
    /// A new activation code for a device not yet activated (its old codes stop working;
    /// codes expire after `ingest.activation_code_ttl`).
    Reissue {
        id: String,
    },
    /// A device: liveness, versions, rule-bundle report, isolated hosts, commands and
    /// their state.
    Show {
        id: String,
    },
    /// Isolate a host (IP or MAC): its traffic is dropped except to the allowed
    /// destinations (default: the contract's isolation allow-list).
    Isolate {
        id: String,
        #[arg(long)]
        host: String,
        /// IP, IP:port or [IPv6]:port (repeat).
        #[arg(long)]
        allow: Option<Vec<String>>,
    },
    /// Release an isolated host.
    Release {
        id: String,
        #[arg(long)]
        host: String,
    },
    /// Switch prevent (IPS) / detect (IDS).
    Mode {
        id: String,
        #[arg(value_parser = ["prevent", "detect"])]
        mode: String,
    },
    /// Add a false-positive exception on the appliance: sid:N, sid:N@HOST, host:HOST,
    /// domain:NAME, hash:SHA256.
    ExceptionAdd {
        id: String,
        exception: String,
    },
    /// Remove an exception added with exception-add.
    ExceptionRemove {
        id: String,
        exception: String,
    },
    /// Reboot the appliance (applies a downloaded firmware).
    Reboot {
        id: String,
    },
    /// Erase the appliance's configuration, keys and spool (contract end).
    Wipe {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    /// Pack a folder (rules/*.rules, categories/, hashes, apps.tsv …) into a bundle the
    /// cloud signs and offers to every appliance.
    Publish {
        dir: PathBuf,
        /// Version name (default: the publication time, YYYYMMDD-HHMMSS).
        #[arg(long)]
        version: Option<String>,
    },
    /// The current bundle and the public key appliances must trust (`uplink.bundle_key`).
    Status,
    /// Add rule files (`*.rules` files, or folders of them) to the cloud's rule catalogue,
    /// e.g. the ET Open release appliances ship with: alerts are scored from the cloud's
    /// copy of each rule. Rules published in a bundle are catalogued automatically.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlertCmd {
    List {
        #[arg(long)]
        contract: Option<u64>,
        /// high, medium, low, investigating, info
        #[arg(long)]
        level: Option<String>,
        #[arg(long)]
        device: Option<String>,
        #[arg(long)]
        host: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    Show {
        id: u64,
    },
    /// Change an alert's level; the customer gets a mail.
    Rerate {
        id: u64,
        #[arg(long)]
        level: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Close a 調査中 alert with the investigation result; the customer gets a mail.
    Resolve {
        id: u64,
        #[arg(long)]
        result: String,
        #[arg(long)]
        level: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum MaintenanceCmd {
    Add {
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        body: String,
        #[arg(long)]
        starts: String,
        #[arg(long)]
        ends: String,
        #[arg(long)]
        emergency: bool,
    },
    List,
}

#[derive(Subcommand, Debug)]
pub enum InsuranceCmd {
    Status {
        contract: u64,
    },
    /// Record an on-site dispatch; refused (with the reason) when not covered.
    Dispatch {
        contract: u64,
        #[arg(long)]
        date: String,
        #[arg(long)]
        amount: u32,
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum OpsCmd {
    /// Run the daily stop check now.
    RunDailyCheck,
    /// Service status.
    Status,
    /// Print the device CA certificate (appliances need it for `activate --ca`).
    Ca,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the admin API at {}: {e}", self.base))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(String::from))
                .unwrap_or(text);
            anyhow::bail!("{status}: {msg}");
        }
        Ok(resp)
    }
    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        Ok(self.call(method, path, body).await?.json().await?)
    }
}

fn resolve_target(t: &Target) -> anyhow::Result<(String, String)> {
    let cfg = match &t.config {
        Some(p) => Some(crate::config::Config::load(p)?),
        None => None,
    };
    let base = t.api.clone().unwrap_or_else(|| match &cfg {
        Some(c) => format!("http://{}", c.admin.listen),
        None => "http://127.0.0.1:7080".into(),
    });
    // the bootstrap token of --config only manages operators: $MIMAMORI_ADMIN_TOKEN or
    // --token (an operator's) come first
    let token = match (&t.token, &cfg) {
        (Some(t), _) => t.clone(),
        (None, Some(c)) if !c.admin.token.is_empty() => c.admin.token.clone(),
        (None, Some(c)) => std::fs::read_to_string(c.data_dir.join("admin.token"))
            .map(|s| s.trim().to_string())
            .map_err(|e| {
                anyhow::anyhow!(
                    "no --token and cannot read {}: {e}",
                    c.data_dir.join("admin.token").display()
                )
            })?,
        (None, None) => anyhow::bail!("give --config, --token or MIMAMORI_ADMIN_TOKEN"),
    };
    Ok((base.trim_end_matches('/').to_string(), token))
}

fn print(v: &Value, json: bool, cols: &[&str]) {
    if json || !v.is_array() {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    println!("{}", cols.join("\t"));
    for row in v.as_array().into_iter().flatten() {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| {
                let x = c.split('.').fold(row, |acc, k| &acc[k]);
                match x {
                    Value::String(s) => s.clone(),
                    Value::Null => "-".into(),
                    other => other.to_string(),
                }
            })
            .collect();
        println!("{}", cells.join("\t"));
    }
}

/// Every regular file under `dir` (hidden files and folders skipped), paths relative with `/`.
fn pack_dir(
    dir: &std::path::Path,
    version: String,
) -> anyhow::Result<protocol::bundle::BundleBody> {
    use anyhow::Context;
    fn walk(
        root: &std::path::Path,
        d: &std::path::Path,
        out: &mut Vec<protocol::bundle::BundleFile>,
    ) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .with_context(|| format!("reading {}", d.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out)?;
            } else if p.is_file() {
                let rel = p
                    .strip_prefix(root)?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let data = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                out.push(protocol::bundle::BundleFile { path: rel, data });
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    if files.is_empty() {
        anyhow::bail!("{} holds no files to publish", dir.display());
    }
    let body = protocol::bundle::BundleBody {
        version,
        created: 0,
        files,
    };
    body.check_files()
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    if !body.version.is_empty() {
        protocol::bundle::valid_version(&body.version)?;
    }
    Ok(body)
}

/// `device show` as text: the device, then its isolated hosts and commands.
fn show_device(v: &Value, json: bool) {
    if json {
        return print(v, true, &[]);
    }
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        x => x.to_string(),
    };
    for k in [
        "id",
        "name",
        "contract_id",
        "status",
        "online",
        "firmware",
        "rules_version",
        "last_heartbeat_ms",
    ] {
        println!("{k:18}{}", s(k));
    }
    // the inspection counters of the last heartbeat: frames shed for load or uninspected
    if let Some(m) = v["counters"].as_object().filter(|m| !m.is_empty()) {
        let line: Vec<String> = m
            .iter()
            .map(|(k, n)| format!("{}={n}", k.trim_start_matches("bridge_")))
            .collect();
        println!("{:18}{}", "inspection", line.join(" "));
    }
    match &v["bundle"] {
        Value::Null => println!("{:18}-", "bundle"),
        b => println!(
            "{:18}{} {} {}",
            "bundle",
            b["version"].as_str().unwrap_or(""),
            if b["applied"] == true {
                "applied"
            } else {
                "refused:"
            },
            b["reason"].as_str().unwrap_or("")
        ),
    }
    let iso: Vec<&str> = v["isolated"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
        .collect();
    println!(
        "{:18}{}",
        "isolated",
        if iso.is_empty() {
            "-".to_string()
        } else {
            iso.join(", ")
        }
    );
    println!();
    print(
        &v["commands"],
        false,
        &["id", "what", "origin", "state", "message"],
    );
}

/// Percent-encodes a query or path value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Run one admin command.
pub async fn run(t: Target, cmd: Cmd) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (base, token) = resolve_target(&t)?;
    let c = Client {
        http: reqwest::Client::builder().build()?,
        base,
        token,
    };
    use reqwest::Method as M;
    let j = t.json;
    match cmd {
        Cmd::Customer { cmd } => match cmd {
            CustomerCmd::Add { company, contact_name, contact_email, phone, address } => {
                let v = c.json(M::POST, "/v1/customers", Some(json!({"id": 0, "company": company, "contact_name": contact_name, "contact_email": contact_email, "phone": phone, "address": address}))).await?;
                print(&v, j, &[]);
            }
            CustomerCmd::Update { id, company, contact_name, contact_department, contact_title, contact_email, address, phone } => {
                let mut body = serde_json::Map::new();
                for (k, v) in [("company", company), ("contact_name", contact_name), ("contact_department", contact_department), ("contact_title", contact_title), ("contact_email", contact_email), ("address", address), ("phone", phone)] {
                    if let Some(v) = v {
                        body.insert(k.into(), Value::String(v));
                    }
                }
                print(&c.json(M::PUT, &format!("/v1/customers/{id}"), Some(Value::Object(body))).await?, j, &[]);
            }
            CustomerCmd::List => print(&c.json(M::GET, "/v1/customers", None).await?, j, &["id", "company", "contact_name", "contact_email"]),
        },
        Cmd::Contract { cmd } => match cmd {
            ContractCmd::Add { customer, name, application_date, start_next_month, emails } => {
                let v = c.json(M::POST, "/v1/contracts", Some(json!({"customer_id": customer, "name": name, "application_date": application_date, "start_next_month": start_next_month, "recipients": emails}))).await?;
                print(&v, j, &[]);
            }
            ContractCmd::List => print(&c.json(M::GET, "/v1/contracts", None).await?, j, &["id", "customer_id", "name", "start", "paid_start", "ended", "recipients"]),
            ContractCmd::Emails { id, emails } => print(&c.json(M::PUT, &format!("/v1/contracts/{id}/recipients"), Some(json!({"recipients": emails}))).await?, j, &[]),
            ContractCmd::Exceptions { id, exceptions } => print(&c.json(M::PUT, &format!("/v1/contracts/{id}/exceptions"), Some(json!({"exceptions": exceptions}))).await?, j, &[]),
            ContractCmd::Isolation { id, auto, allow } => print(&c.json(M::PUT, &format!("/v1/contracts/{id}/isolation"), Some(json!({"auto": auto == "on", "allow": allow}))).await?, j, &[]),
            ContractCmd::End { id } => {
                let v = c.json(M::POST, &format!("/v1/contracts/{id}/end"), None).await?;
                match v.as_object() {
                    Some(o) if !j => {
                        for (k, x) in o {
                            let x = match x {
                                Value::String(s) => s.clone(),
                                Value::Array(a) => a.iter().map(|e| e.as_str().map_or(e.to_string(), String::from)).collect::<Vec<_>>().join(", "),
                                x => x.to_string(),
                            };
                            println!("{k:26}{x}");
                        }
                    }
                    _ => print(&v, true, &[]),
                }
            }
        },
        Cmd::User { cmd } => match cmd {
            UserCmd::Add { contract, email } => {
                let v = c.json(M::POST, "/v1/users", Some(json!({"contract_id": contract, "email": email}))).await?;
                print(&v, j, &[]);
            }
            UserCmd::Reset { email, mfa } => {
                let v = c.json(M::POST, "/v1/users/reset", Some(json!({"email": email, "mfa": mfa}))).await?;
                print(&v, j, &[]);
            }
            UserCmd::Disable { email } => print(&c.json(M::POST, "/v1/users/disable", Some(json!({"email": email}))).await?, j, &[]),
            UserCmd::Enable { email } => print(&c.json(M::POST, "/v1/users/enable", Some(json!({"email": email}))).await?, j, &[]),
            UserCmd::Remove { email } => print(&c.json(M::POST, "/v1/users/remove", Some(json!({"email": email}))).await?, j, &[]),
            UserCmd::List { contract } => print(
                &c.json(M::GET, &format!("/v1/users?contract={contract}"), None).await?,
                j,
                &["id", "contract_id", "email", "must_change_password", "mfa", "locked", "disabled"],
            ),
        },
        Cmd::Device { cmd } => match cmd {
            DeviceCmd::Add { contract, name, count } => {
                let v = c.json(M::POST, "/v1/devices", Some(json!({"contract_id": contract, "name": name, "count": count}))).await?;
                print(&v, j, &["device_id", "activation_code"]);
            }
            DeviceCmd::List => print(&c.json(M::GET, "/v1/devices", None).await?, j, &["id", "contract_id", "status", "online", "last_heartbeat_ms", "firmware", "rules_version"]),
            DeviceCmd::Revoke { id } => print(&c.json(M::POST, &format!("/v1/devices/{id}/revoke"), None).await?, j, &[]),
            DeviceCmd::Reissue { id } => print(&c.json(M::POST, &format!("/v1/devices/{id}/code"), None).await?, j, &["device_id", "activation_code"]),
            DeviceCmd::Show { id } => show_device(&c.json(M::GET, &format!("/v1/devices/{id}"), None).await?, j),
            cmd => {
                let (id, body) = match cmd {
                    DeviceCmd::Isolate { id, host, allow } => (id, json!({"command": "isolate", "host": host, "allow": allow})),
                    DeviceCmd::Release { id, host } => (id, json!({"command": "release", "host": host})),
                    DeviceCmd::Mode { id, mode } => (id, json!({"command": "mode", "mode": mode})),
                    DeviceCmd::ExceptionAdd { id, exception } => (id, json!({"command": "exception-add", "exception": exception})),
                    DeviceCmd::ExceptionRemove { id, exception } => (id, json!({"command": "exception-remove", "exception": exception})),
                    DeviceCmd::Reboot { id } => (id, json!({"command": "reboot"})),
                    DeviceCmd::Wipe { id } => (id, json!({"command": "wipe"})),
                    DeviceCmd::Add { .. } | DeviceCmd::List | DeviceCmd::Revoke { .. } | DeviceCmd::Reissue { .. } | DeviceCmd::Show { .. } => unreachable!("handled above"),
                };
                print(&c.json(M::POST, &format!("/v1/devices/{id}/commands"), Some(body)).await?, j, &["id", "what", "state"]);
            }
        },
        Cmd::Rules { cmd } => match cmd {
            RulesCmd::Publish { dir, version } => {
                let body = pack_dir(&dir, version.unwrap_or_default())?;
                eprintln!("packing {} files from {}", body.files.len(), dir.display());
                let bytes = postcard::to_allocvec(&body)?;
                let resp = c.http.post(format!("{}/v1/rules", c.base)).bearer_auth(&c.token).body(bytes).send().await
                    .map_err(|e| anyhow::anyhow!("cannot reach the admin API at {}: {e}", c.base))?;
                let status = resp.status();
                let v: Value = resp.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    anyhow::bail!("{status}: {}", v["error"].as_str().unwrap_or("publishing failed"));
                }
                print(&v, j, &[]);
            }
            RulesCmd::Status => print(&c.json(M::GET, "/v1/rules", None).await?, true, &[]),
            RulesCmd::Import { paths } => {
                let mut total = json!({"files": 0, "rules": 0, "failed": 0, "errors": []});
                for path in &paths {
                    let files = rules::parse::rule_files(path).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let mut batch = Vec::new();
                    for f in files {
                        let data = std::fs::read(&f).map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?;
                        batch.push(protocol::bundle::BundleFile { path: f.display().to_string(), data });
                    }
                    let body = protocol::bundle::BundleBody { version: path.display().to_string(), created: 0, files: batch };
                    let bytes = postcard::to_allocvec(&body)?;
                    let resp = c.http.post(format!("{}/v1/rules/import", c.base)).bearer_auth(&c.token).body(bytes).send().await
                        .map_err(|e| anyhow::anyhow!("cannot reach the admin API at {}: {e}", c.base))?;
                    let status = resp.status();
                    let v: Value = resp.json().await.unwrap_or(Value::Null);
                    if !status.is_success() {
                        anyhow::bail!("{status}: {}", v["error"].as_str().unwrap_or("importing failed"));
                    }
                    for k in ["files", "rules", "failed"] {
                        total[k] = json!(total[k].as_u64().unwrap_or(0) + v[k].as_u64().unwrap_or(0));
                    }
                    if let (Some(all), Some(more)) = (total["errors"].as_array_mut(), v["errors"].as_array()) {
                        all.extend(more.iter().cloned());
                    }
                }
                if !j {
                    for e in total["errors"].as_array().into_iter().flatten() {
                        eprintln!("not catalogued: {}", e.as_str().unwrap_or_default());
                    }
                }
                print(&total, j, &["files", "rules", "failed"]);
            }
        },
        Cmd::Alert { cmd } => match cmd {
            AlertCmd::List { contract, level, device, host, limit } => {
                let mut q = vec![format!("limit={limit}")];
                if let Some(x) = contract {
                    q.push(format!("contract={x}"));
                }
                if let Some(x) = level {
                    q.push(format!("level={x}"));
                }
                if let Some(x) = device {
                    q.push(format!("device={x}"));
                }
                if let Some(x) = host {
                    q.push(format!("host={x}"));
                }
                let v = c.json(M::GET, &format!("/v1/alerts?{}", q.join("&")), None).await?;
                print(&v, j, &["id", "contract_id", "device", "level", "reason", "mailed", "deduplicated", "status"]);
            }
            AlertCmd::Show { id } => print(&c.json(M::GET, &format!("/v1/alerts/{id}"), None).await?, true, &[]),
            AlertCmd::Rerate { id, level, note } => print(&c.json(M::POST, &format!("/v1/alerts/{id}/rerate"), Some(json!({"level": level, "note": note}))).await?, j, &[]),
            AlertCmd::Resolve { id, result, level } => print(&c.json(M::POST, &format!("/v1/alerts/{id}/resolve"), Some(json!({"result": result, "level": level}))).await?, j, &[]),
        },
        Cmd::Maintenance { cmd } => match cmd {
            MaintenanceCmd::Add { title, body, starts, ends, emergency } => {
                print(&c.json(M::POST, "/v1/maintenance", Some(json!({"title": title, "body": body, "starts": starts, "ends": ends, "emergency": emergency}))).await?, j, &[])
            }
            MaintenanceCmd::List => print(&c.json(M::GET, "/v1/maintenance", None).await?, j, &["id", "title", "starts", "ends", "emergency"]),
        },
        Cmd::Firmware { version, notes } => print(&c.json(M::POST, "/v1/firmware", Some(json!({"version": version, "notes": notes}))).await?, j, &[]),
        Cmd::Insurance { cmd } => match cmd {
            InsuranceCmd::Status { contract } => print(&c.json(M::GET, &format!("/v1/contracts/{contract}/insurance"), None).await?, true, &[]),
            InsuranceCmd::Dispatch { contract, date, amount, note } => {
                print(&c.json(M::POST, &format!("/v1/contracts/{contract}/dispatches"), Some(json!({"date": date, "amount_yen": amount, "note": note}))).await?, j, &[])
            }
        },
        Cmd::Export => {
            let text = c.call(M::GET, "/v1/export", None).await?.text().await?;
            print!("{text}");
        }
        Cmd::Operator { cmd } => match cmd {
            OperatorCmd::Add { name } => {
                let v = c.json(M::POST, "/v1/operators", Some(json!({"name": name}))).await?;
                if !j {
                    eprintln!("operator {} added; its token (shown only now):", v["name"].as_str().unwrap_or(""));
                    println!("{}", v["token"].as_str().unwrap_or(""));
                } else {
                    print(&v, true, &[]);
                }
            }
            OperatorCmd::List => print(&c.json(M::GET, "/v1/operators", None).await?, j, &["name", "created_ms", "created_by", "revoked_ms"]),
            OperatorCmd::Revoke { name } => print(&c.json(M::POST, &format!("/v1/operators/{}/revoke", urlencode(&name)), None).await?, j, &[]),
        },
        Cmd::Audit { cmd } => match cmd {
            AuditCmd::List { contract, operator, since, limit } => {
                let mut q = vec![format!("limit={limit}")];
                if let Some(x) = contract {
                    q.push(format!("contract={x}"));
                }
                if let Some(x) = operator {
                    q.push(format!("operator={}", urlencode(&x)));
                }
                if let Some(x) = since {
                    q.push(format!("since={}", urlencode(&x)));
                }
                let v = c.json(M::GET, &format!("/v1/audit?{}", q.join("&")), None).await?;
                print(&v, j, &["id", "time_ms", "actor_text", "addr", "contract", "action", "target"]);
            }
        },
        Cmd::Ops { cmd } => match cmd {
            OpsCmd::RunDailyCheck => print(&c.json(M::POST, "/v1/ops/daily-check", None).await?, j, &[]),
            OpsCmd::Status => print(&c.json(M::GET, "/v1/ops/status", None).await?, true, &[]),
            OpsCmd::Ca => print!("{}", c.call(M::GET, "/v1/ca", None).await?.text().await?),
        },
        Cmd::Mail { cmd } => match cmd {
            MailCmd::Failed => print(&c.json(M::GET, "/v1/mail/failed", None).await?, j, &["id", "to", "kind", "contract", "created_ms", "given_up_ms", "attempts", "last_error"]),
        },
    }
    Ok(())
}
