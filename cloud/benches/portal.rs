//! Portal latency with a big store: `cargo bench -p mimamori-cloud --bench portal`.
//!
//! Fills a fresh store with 1,000,000 alerts across 1,000 contracts (received over the
//! last 60 days, a realistic mix of levels, hosts and appliances), starts the real portal
//! on loopback, logs users of 100 random contracts in (password + TOTP) and times, over
//! HTTP: the alert list (page 1, a deep page, filtered by level, by host), an alert
//! detail and the dashboard; the login page (no store reads) is the baseline of the same
//! run. Prints p50/p99 per kind.
//!
//! `BENCH_ALERTS` / `BENCH_CONTRACTS` change the size; `BENCH_DIR` the store's folder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mimamori_cloud::clock::{Clock, SystemClock};
use mimamori_cloud::contract::Date;
use mimamori_cloud::portal::auth::{self, Totp};
use mimamori_cloud::score::Level;
use mimamori_cloud::store::{
    AlertRecord, AlertStatus, Contract, Device, DeviceStatus, PortalUser, Store, StoredEvent,
};
use protocol::UrlRef;
use protocol::bounded::{HostName, MetaValue, Name, Text};
use protocol::messages::*;
use rand::{Rng, SeedableRng};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SIGS: [(&str, &str, Level); 6] = [
    (
        "ET MALWARE Win32/Emotet CnC Beacon",
        "trojan-activity",
        Level::High,
    ),
    (
        "ET POLICY Suspicious User-Agent (curl)",
        "policy-violation",
        Level::Info,
    ),
    (
        "ET INFO Observed DNS Query to .top TLD",
        "bad-unknown",
        Level::Info,
    ),
    (
        "ET PHISHING Credential Phish Landing Page",
        "social-engineering",
        Level::Medium,
    ),
    (
        "ET SCAN Possible Nmap User-Agent Observed",
        "attempted-recon",
        Level::Low,
    ),
    (
        "ET EXPLOIT Apache log4j RCE Attempt",
        "attempted-admin",
        Level::Investigating,
    ),
];

/// Alert `id` of `total`: they arrive evenly over the last 60 days (ids grow with time).
fn alert(rng: &mut impl Rng, id: u64, total: u64, contract: u64, now_ms: i64) -> AlertRecord {
    let (msg, class, level) = SIGS[rng.random_range(0..SIGS.len())];
    let span = 60 * 86_400_000i64;
    let received = now_ms - span + (span as i128 * id as i128 / total as i128) as i64;
    let host = rng.random_range(2..60u8);
    let a = Alert {
        time: UnixMs(received as u64 - 300),
        flow: FlowRef {
            proto: IpProto::Tcp,
            direction: Direction::Outbound,
            internal_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, host)),
            internal_port: Some(rng.random_range(49_152..65_535)),
            internal_mac: Mac([2, 0, 0, (contract >> 8) as u8, contract as u8, host]),
            external_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                198,
                19,
                rng.random(),
                rng.random(),
            )),
            external_port: Some(443),
        },
        detection: Detection::Signature(Signature {
            gid: 1,
            sid: 2_000_000 + id as u32 % 50_000,
            rev: 3,
            msg: Text::truncated(msg),
            classtype: Some(Name::truncated(class)),
            severity: 1,
            metadata: vec![MetaPair {
                key: Name::truncated("signature_severity"),
                value: MetaValue::truncated("Major"),
            }],
        }),
        url: Some(UrlRef::from_url(
            "http://update.example-cdn.test/check.php?id=1",
        )),
        sni: Some(HostName::truncated("update.example-cdn.test")),
        dns_name: None,
        action: Action::Allowed,
    };
    AlertRecord {
        id,
        contract_id: contract,
        device: format!("dev-{contract}-{}", id % 2),
        seq: id,
        received_ms: received,
        event: StoredEvent::Alert(a),
        level,
        reason: "ポリシー「C2通信」に一致（確度: 高）".into(),
        mailed: level.important(),
        deduplicated: false,
        status: AlertStatus::Open,
        history: Vec::new(),
    }
}

fn fill(dir: &std::path::Path, alerts: u64, contracts: u64) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let now = SystemClock.now_ms();
    store.write(|tx| {
        for c in 1..=contracts {
            tx.put_contract(&Contract {
                id: c,
                customer_id: c,
                name: format!("契約 {c}"),
                application_date: Date::new(2026, 1, 5).expect("date"),
                start: Date::new(2026, 2, 1).expect("date"),
                paid_start: Date::new(2026, 2, 1).expect("date"),
                ended: None,
                recipients: vec![],
                auto_isolation: false,
                isolation_allow: Vec::new(),
                exceptions: vec![],
            })?;
            for d in 0..2 {
                tx.put_device(&Device {
                    activated_ms: Some(now),
                    last_heartbeat_ms: Some(now),
                    firmware: "1.0.0".into(),
                    rules_version: "2026.11.30".into(),
                    ..Device::new(
                        format!("dev-{c}-{d}"),
                        c,
                        format!("UTM {d}"),
                        DeviceStatus::Active,
                        now,
                    )
                })?;
            }
        }
        Ok(())
    })?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let t = Instant::now();
    let batch = 20_000;
    let mut id = 0;
    while id < alerts {
        store.write(|tx| {
            for _ in 0..batch.min(alerts - id) {
                id += 1;
                // ids increase with arrival; contracts interleave as in real ingest; one
                // big tenant (contract 1) has a tenth of all alerts
                let contract = if contracts == 1 || rng.random_bool(0.1) {
                    1
                } else {
                    rng.random_range(2..=contracts)
                };
                tx.insert_alert(&alert(&mut rng, id, alerts, contract, now))?;
            }
            Ok(())
        })?;
        if id % 200_000 == 0 {
            eprintln!("  {id} alerts stored ({:.0?})", t.elapsed());
        }
    }
    eprintln!("filled {alerts} alerts in {:.1?}", t.elapsed());
    Ok(())
}

/// A logged-in HTTP client of one user (cookie kept by hand).
struct Client {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string()
}

fn session_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("mimamori_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

impl Client {
    async fn login(
        http: &reqwest::Client,
        base: &str,
        email: &str,
        secret: &str,
    ) -> anyhow::Result<Client> {
        let r = http.get(format!("{base}/login")).send().await?;
        let mut cookie = session_of(&r).unwrap_or_default();
        let csrf = csrf_of(&r.text().await?);
        let r = http
            .post(format!("{base}/login"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([
                ("csrf", csrf.as_str()),
                ("email", email),
                ("password", "bench-password-123"),
            ])?)
            .send()
            .await?;
        cookie = session_of(&r).ok_or_else(|| anyhow::anyhow!("login refused for {email}"))?;
        let page = http
            .get(format!("{base}/login/totp"))
            .header("cookie", &cookie)
            .send()
            .await?;
        let csrf = csrf_of(&page.text().await?);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let code = Totp::from_base32(secret).expect("secret").code_at(secs);
        let r = http
            .post(format!("{base}/login/totp"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([
                ("csrf", csrf.as_str()),
                ("code", code.as_str()),
            ])?)
            .send()
            .await?;
        anyhow::ensure!(
            r.headers().get("location").is_some_and(|l| l == "/"),
            "TOTP refused for {email}"
        );
        Ok(Client {
            http: http.clone(),
            base: base.to_string(),
            cookie,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<(Duration, usize)> {
        let t = Instant::now();
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
        let body = r.text().await?;
        Ok((t.elapsed(), body.len()))
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let alerts = env("BENCH_ALERTS", 1_000_000);
    let contracts = env("BENCH_CONTRACTS", 1_000).max(1);
    let dir = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("mimamori-portal-bench"));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "portal bench: {alerts} alerts across {contracts} contracts in {}",
        dir.display()
    );
    fill(&dir, alerts, contracts)?;
    let db = std::fs::metadata(dir.join("mimamori.redb"))?.len();
    eprintln!("store file {:.0} MB", db as f64 / 1e6);

    // users of 100 contracts, with password and TOTP set up
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let hash = auth::hash_password("bench-password-123")?;
    let mut users = Vec::new();
    {
        let store = Store::open(&dir)?;
        store.write(|tx| {
            for i in 0..=100.min(contracts) {
                // user 0 is the big tenant's
                let contract = if i == 0 {
                    1
                } else {
                    rng.random_range(1..=contracts)
                };
                let totp = Totp::generate();
                let u = PortalUser {
                    id: tx.next_id("user")?,
                    contract_id: contract,
                    email: format!("user{i}@bench.example"),
                    password_hash: hash.clone(),
                    totp_secret: Some(totp.secret_base32()),
                    created_ms: 0,
                    ..Default::default()
                };
                tx.put_user(&u)?;
                users.push((u.email.clone(), totp.secret_base32(), contract));
            }
            Ok(())
        })?;
    }
    let cfg: mimamori_cloud::config::Config = toml::from_str(&format!(
        "data_dir = {:?}\n[portal]\nlisten = \"127.0.0.1:0\"\n",
        dir
    ))?;
    let app = mimamori_cloud::serve::build(cfg, Arc::new(SystemClock))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = mimamori_cloud::portal::router(Arc::clone(&app));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut clients = Vec::new();
    for (email, secret, contract) in &users {
        clients.push((Client::login(&http, &base, email, secret).await?, *contract));
    }
    let big = clients.remove(0);
    let big_n = app.store.read(|rx| {
        let mut n = 0u64;
        rx.scan_alerts_of(
            1,
            |_, _| {
                n += 1;
                false
            },
            |_| true,
        )?;
        Ok(n)
    })?;
    eprintln!(
        "{} users logged in; the big tenant has {big_n} alerts",
        clients.len() + 1
    );

    // one alert id per contract for the detail page
    let ids: std::collections::HashMap<u64, u64> = app.store.read(|rx| {
        let mut m = std::collections::HashMap::new();
        for (_, c) in clients.iter().chain([&big]) {
            if let Some(a) = rx.alerts_of(*c, 1)?.first() {
                m.insert(*c, a.id);
            }
        }
        Ok(m)
    })?;

    type Path = fn(u64, u64) -> String;
    let kinds: [(&str, Path); 7] = [
        ("login page (baseline, no store)", |_, _| "/login".into()),
        ("alert list, page 1", |_, _| "/alerts".into()),
        ("alert list, page 10", |_, _| "/alerts?page=10".into()),
        ("alert list, level ★★★", |_, _| {
            "/alerts?level=high".into()
        }),
        ("alert list, one host", |_, _| {
            "/alerts?host=198.18.0.7".into()
        }),
        ("alert detail", |_, id| format!("/alerts/{id}")),
        ("dashboard (30 days)", |_, _| "/".into()),
    ];
    println!("| request | p50 | p99 | page size | big tenant p50 | big tenant p99 |");
    println!("|---|---|---|---|---|---|");
    for (name, path) in kinds {
        let mut lat = Vec::new();
        let mut big_lat = Vec::new();
        let mut size = 0;
        // warm-up round, then 5 rounds over the 100 users
        for round in 0..6 {
            for (c, contract) in &clients {
                let p = path(*contract, ids.get(contract).copied().unwrap_or(1));
                let p = if p == "/login" {
                    // the login page of a logged-in user redirects; ask anonymously
                    let t = Instant::now();
                    let r = http.get(format!("{base}/login")).send().await?;
                    size = r.text().await?.len();
                    if round > 0 {
                        lat.push(t.elapsed());
                    }
                    continue;
                } else {
                    p
                };
                let (d, n) = c.get(&p).await?;
                size = n;
                if round > 0 {
                    lat.push(d);
                }
            }
        }
        // the big tenant, 100 requests
        for _ in 0..100 {
            let p = path(big.1, ids.get(&big.1).copied().unwrap_or(1));
            if p == "/login" {
                break;
            }
            big_lat.push(big.0.get(&p).await?.0);
        }
        let ms = |v: &mut Vec<Duration>, p: f64| {
            if v.is_empty() {
                "–".to_string()
            } else {
                format!("{:.1} ms", pct(v, p).as_secs_f64() * 1e3)
            }
        };
        println!(
            "| {name} | {} | {} | {} KB | {} | {} |",
            ms(&mut lat, 0.5),
            ms(&mut lat, 0.99),
            size / 1024,
            ms(&mut big_lat, 0.5),
            ms(&mut big_lat, 0.99),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
