//! Contract end and portal-user access against the real `mimamori-cloud` binary (issue
//! 14, finding 7), as a former customer or an auditor would check it:
//!
//! - a customer logged in to the portal (plain HTTP with the login form's CSRF token,
//!   the temporary password changed, an authenticator enrolled with oathtool codes) keeps
//!   no access after `admin contract end`: the open login is sent to /login on its next
//!   request, re-adding a notification address fails, the right password is refused with
//!   the wrong-password answer;
//! - nothing personal of the ended contract remains in ANY table of `mimamori.redb`
//!   (every row of every table dumped by `mimamori-cloud debug-dump-store` after the cloud
//!   stopped, and `admin export`): e-mail addresses, company and contact names, phone,
//!   postal address, host IPs and alert URLs — while the other contract's data stays;
//! - `admin user disable|enable|remove`, and mails that keep failing are given up after
//!   `timing.mail_give_up` and listed by `admin mail failed`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use mimamori_tests::cloud::*;
use mimamori_tests::{run, tempdir};
use serde_json::Value;

/// One HTTP/1.1 answer.
struct Resp {
    status: u16,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
}

/// A browser reduced to what the portal needs: one session cookie.
struct Client {
    port: u16,
    cookie: Option<String>,
}

impl Client {
    fn new(port: u16) -> Client {
        Client { port, cookie: None }
    }

    fn request(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Resp {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        if let Some(c) = &self.cookie {
            req.push_str(&format!("Cookie: mimamori_session={c}\r\n"));
        }
        if method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("portal connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        s.write_all(req.as_bytes()).expect("portal write");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("portal read");
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (mut location, mut cookie) = (None, None);
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.to_ascii_lowercase().as_str() {
                "location" => location = Some(v.to_string()),
                "set-cookie" if v.starts_with("mimamori_session=") => {
                    let val = v["mimamori_session=".len()..]
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    cookie = Some(val);
                }
                _ => {}
            }
        }
        if let Some(c) = &cookie {
            self.cookie = Some(c.clone());
        }
        Resp {
            status,
            location,
            cookie,
            // chunked bodies are fine for substring checks
            body: body.to_string(),
        }
    }

    fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, &[])
    }

    /// GET `page` for its CSRF token, then POST `form` (with the token) to `action`.
    fn submit(&mut self, page: &str, action: &str, form: &[(&str, &str)]) -> Resp {
        let p = self.get(page);
        let csrf = csrf_of(&p.body)
            .unwrap_or_else(|| panic!("no CSRF token on {page} ({}): {}", p.status, p.body));
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend_from_slice(form);
        self.request("POST", action, &f)
    }
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

fn csrf_of(html: &str) -> Option<String> {
    let i = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[i..].split('"').next()?.to_string())
}

fn secret_of(html: &str) -> Option<String> {
    let i = html.find("id=\"secret\">")? + "id=\"secret\">".len();
    let s: String = html[i..]
        .split('<')
        .next()?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    Some(s)
}

fn totp(secret: &str) -> String {
    let out = run(Command::new("oathtool").args(["--totp", "-b", secret]));
    assert!(out.status.success(), "oathtool failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const NEW_PASSWORD: &str = "Kaisha-Mimamori-2026-Shuuryou";
const WRONG: &str = "メールアドレスまたはパスワードが正しくありません";

/// The temporary password of the newest account mail to `to`.
fn temporary_password(smtp: &Smtp, to: &str) -> String {
    temporary_passwords(smtp, to, 1).pop().expect("a temporary password")
}

/// Log in with the password only: the answer of the login form.
fn password_login(port: u16, email: &str, password: &str) -> (Client, Resp) {
    let mut c = Client::new(port);
    let r = c.submit(
        "/login",
        "/login",
        &[("email", email), ("password", password)],
    );
    (c, r)
}

/// A full portal login of a new user: temporary password, new password, authenticator.
fn full_login(port: u16, email: &str, temp: &str) -> Client {
    let (mut c, r) = password_login(port, email, temp);
    assert_eq!(r.status, 303, "temporary password accepted: {}", r.body);
    assert_eq!(r.location.as_deref(), Some("/password"));
    let r = c.submit(
        "/password",
        "/password",
        &[("new", NEW_PASSWORD), ("again", NEW_PASSWORD)],
    );
    assert_eq!(r.location.as_deref(), Some("/mfa/setup"), "{}", r.body);
    let page = c.get("/mfa/setup");
    let secret = secret_of(&page.body).expect("the enrolment page shows the secret");
    let csrf = csrf_of(&page.body).expect("csrf");
    let code = totp(&secret);
    let r = c.request("POST", "/mfa/setup", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(r.location.as_deref(), Some("/mfa/recovery"), "{}", r.body);
    let r = c.submit("/mfa/recovery", "/mfa/recovery", &[]);
    assert_eq!(r.location.as_deref(), Some("/"));
    let r = c.get("/");
    assert_eq!(r.status, 200, "logged in: {}", r.body);
    c
}

/// `mimamori-cloud debug-dump-store` of a stopped cloud: every row of every table.
fn dump(data: &std::path::Path) -> Vec<Value> {
    let out = run(Command::new(cloud_bin())
        .args(["debug-dump-store", "--data-dir"])
        .arg(data));
    assert!(
        out.status.success(),
        "debug-dump-store: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("dump rows are JSON"))
        .collect()
}

/// The bytes of an IPv4 address as hex (postcard keeps addresses as raw bytes).
fn ipv4_hex(ip: &str) -> Option<String> {
    let a: std::net::Ipv4Addr = ip.parse().ok()?;
    Some(a.octets().iter().map(|b| format!("{b:02x}")).collect())
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

// Personal data of the contract that ends (A) and of the one that stays (B).
const A_COMPANY: &str = "終了予定商事株式会社";
const A_CONTACT: &str = "佐藤花子";
const A_PHONE: &str = "03-5555-0123";
const A_POSTAL: &str = "東京都千代田区試験町1-2-3";
const A_CONTACT_EMAIL: &str = "sato.hanako@a-corp.example";
const A_CONTRACT_NAME: &str = "終了予定商事 本社";
const A_RECIPIENT: &str = "alerts-a@a-corp.example";
const A_ADDED: &str = "added-a@a-corp.example";
const A_USER: &str = "user-a@a-corp.example";
const A_STAFF: &str = "staff-a@a-corp.example";
const B_COMPANY: &str = "継続中工業株式会社";
const B_CONTACT: &str = "鈴木一郎";
const B_PHONE: &str = "06-7777-0456";
const B_POSTAL: &str = "大阪府大阪市継続町4-5-6";
const B_CONTACT_EMAIL: &str = "suzuki@b-corp.example";
const B_RECIPIENT: &str = "alerts-b@b-corp.example";
const B_USER: &str = "user-b@b-corp.example";
const B_GONE: &str = "gone-b@b-corp.example";
const B_LATE: &str = "late-b@b-corp.example";

fn customer(c: &Cloud, company: &str, contact: &str, email: &str, phone: &str, postal: &str) -> String {
    let v = c.admin(&[
        "customer",
        "add",
        "--company",
        company,
        "--contact-name",
        contact,
        "--contact-email",
        email,
        "--phone",
        phone,
        "--address",
        postal,
    ]);
    v["id"].as_u64().expect("customer id").to_string()
}

fn contract(c: &Cloud, cust: &str, name: &str, email: &str) -> String {
    let v = c.admin(&[
        "contract",
        "add",
        "--customer",
        cust,
        "--name",
        name,
        "--application-date",
        "2026-04-03",
        "--email",
        email,
    ]);
    v["id"].as_u64().expect("contract id").to_string()
}

#[test]
fn contract_end_ends_access_and_leaves_no_personal_data() {
    let dir = tempdir("contract-end");
    let mut smtp = Smtp::start(&dir.join("mail"), free_port());
    let mut c = Cloud::start(
        &dir,
        smtp.port,
        "mail_window = \"1s\"\nstartup_grace = \"1h\"\nmail_retry_min = \"1s\"\nmail_retry_max = \"2s\"\nmail_give_up = \"8s\"",
    );
    let port = c.portal;

    // contract A (ends) and contract B (stays), each with personal data
    let cust_a = customer(&c, A_COMPANY, A_CONTACT, A_CONTACT_EMAIL, A_PHONE, A_POSTAL);
    let a = contract(&c, &cust_a, A_CONTRACT_NAME, A_RECIPIENT);
    let cust_b = customer(&c, B_COMPANY, B_CONTACT, B_CONTACT_EMAIL, B_PHONE, B_POSTAL);
    let b = contract(&c, &cust_b, "継続中工業 工場", B_RECIPIENT);
    let devs = c.admin(&["device", "add", "--contract", &a, "--name", "本社UTM"]);
    let a_dev = devs[0]["device_id"].as_str().expect("device").to_string();
    let a_code = devs[0]["activation_code"].as_str().expect("code").to_string();
    for (k, e) in [(&a, A_USER), (&b, B_USER), (&b, B_GONE)] {
        c.admin(&["user", "add", "--contract", k, "--email", e]);
    }

    // A's user logs in (password change, authenticator) and adds an address
    let temp_a = temporary_password(&smtp, A_USER);
    let mut browser = full_login(port, A_USER, &temp_a);
    let r = browser.submit("/addresses", "/addresses/add", &[("address", A_ADDED)]);
    assert_eq!(r.status, 303, "{}", r.body);
    let contracts = c.admin(&["contract", "list"]);
    let ca = contracts
        .as_array()
        .and_then(|v| v.iter().find(|x| x["id"].to_string() == a))
        .cloned()
        .expect("contract A listed");
    assert_eq!(ca["recipients"].as_array().map(Vec::len), Some(2), "{ca}");

    // user administration on B: disable ends the login and refuses the right password,
    // enable restores it, remove deletes the account
    let temp_b = temporary_password(&smtp, B_USER);
    let (mut b_browser, r) = password_login(port, B_USER, &temp_b);
    assert_eq!(r.location.as_deref(), Some("/password"));
    let v = c.admin(&["user", "disable", "--email", B_USER]);
    assert_eq!(v["disabled"], true, "{v}");
    let r = b_browser.submit(
        "/password",
        "/password",
        &[("new", NEW_PASSWORD), ("again", NEW_PASSWORD)],
    );
    assert_eq!(
        r.location.as_deref(),
        Some("/login"),
        "a disabled user's login ends at its next step"
    );
    let (_, r) = password_login(port, B_USER, &temp_b);
    assert_eq!(r.status, 200, "the right password of a disabled user is refused");
    assert!(r.body.contains(WRONG), "same answer as a wrong password");
    assert!(r.cookie.is_none(), "no login session for a disabled user");
    let (_, wrong) = password_login(port, B_USER, "not-the-password-x");
    assert_eq!(wrong.status, r.status);
    assert!(wrong.body.contains(WRONG));
    let e = c.admin_err(&["user", "reset", "--email", B_USER]);
    assert!(e.contains("disabled"), "{e}");
    c.admin(&["user", "enable", "--email", B_USER]);
    let (_, r) = password_login(port, B_USER, &temp_b);
    assert_eq!(r.location.as_deref(), Some("/password"), "enabled again");
    let temp_gone = temporary_password(&smtp, B_GONE);
    let (mut gone_browser, r) = password_login(port, B_GONE, &temp_gone);
    assert_eq!(r.location.as_deref(), Some("/password"));
    c.admin(&["user", "remove", "--email", B_GONE]);
    let r = gone_browser.submit(
        "/password",
        "/password",
        &[("new", NEW_PASSWORD), ("again", NEW_PASSWORD)],
    );
    assert_eq!(r.location.as_deref(), Some("/login"));
    let (_, r) = password_login(port, B_GONE, &temp_gone);
    assert!(r.body.contains(WRONG) && r.cookie.is_none());
    let users_b = c.admin(&["user", "list", "--contract", &b]);
    assert_eq!(users_b.as_array().map(Vec::len), Some(1), "{users_b}");

    // the SMTP server goes away: mails stay queued, and the old ones are given up
    smtp.stop();
    c.admin(&["user", "add", "--contract", &a, "--email", A_STAFF]);
    c.admin(&["user", "add", "--contract", &b, "--email", B_LATE]);
    wait_for("mails given up after 8 s", Duration::from_secs(40), || {
        c.admin(&["ops", "status"])["failed_mails"].as_u64() == Some(2)
    });
    let failed = c.admin(&["mail", "failed"]);
    let failed_to: Vec<&str> = failed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["to"].as_str())
        .collect();
    assert!(failed_to.contains(&A_STAFF) && failed_to.contains(&B_LATE), "{failed}");
    assert!(
        failed.as_array().into_iter().flatten().all(|m| m["body"].is_null()),
        "the list shows no bodies (temporary passwords)"
    );
    // ... and never retried: still given up, the outbox does not hold them
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.admin(&["ops", "status"])["failed_mails"], 2);

    // A's appliance reports alerts (their mails stay queued: no SMTP server)
    let state = dir.join("st");
    let out = activate(&c, &state, &a_code);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = replay_uplink(&dir, &uplink_toml(&dir, &state, 30), C2_RULES);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let alerts = c.alerts();
    assert!(!alerts.is_empty());
    let mut hosts: Vec<String> = Vec::new();
    let mut urls: Vec<String> = Vec::new();
    for al in &alerts {
        let id = al["id"].to_string();
        let full = c.admin(&["alert", "show", &id]);
        let ev = full["event"]["alert"].clone();
        let ev = if ev.is_null() { full["event"]["file"].clone() } else { ev };
        for k in ["internal_ip", "external_ip"] {
            if let Some(ip) = ev["flow"][k].as_str() {
                hosts.push(ip.to_string());
            }
        }
        for k in ["sni", "dns_name"] {
            if let Some(x) = ev[k].as_str() {
                urls.push(x.to_string());
            }
        }
        if let Some(u) = ev["url"].as_object() {
            let host = u.get("host").and_then(Value::as_str).unwrap_or("");
            let path = u.get("path").and_then(Value::as_str).unwrap_or("");
            if !path.is_empty() && path != "/" {
                urls.push(path.to_string());
            }
            if !host.is_empty() {
                urls.push(host.to_string());
            }
        }
    }
    hosts.sort();
    hosts.dedup();
    urls.sort();
    urls.dedup();
    // (this capture's alerts carry no URL; SNI, DNS names and URLs are scanned when present)
    assert!(hosts.len() >= 2, "{alerts:?}");
    eprintln!("A's hosts {hosts:?}, URLs {urls:?}");
    // command history with the host
    let internal = alerts[0]["event"]["alert"]["flow"]["internal_ip"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| hosts[0].clone());
    c.admin(&["device", "isolate", &a_dev, "--host", &internal]);
    wait_for("alert mails queued", Duration::from_secs(20), || {
        c.admin(&["ops", "status"])["outbox"].as_u64().unwrap_or(0) >= 1
    });

    // the end
    let report = c.admin(&["contract", "end", &a]);
    eprintln!("contract end: {report:#}");
    let n = |k: &str| report[k].as_u64().unwrap_or_else(|| panic!("{k} in {report}"));
    assert_eq!(n("users_removed"), 2);
    assert_eq!(report["customer_removed"], true);
    assert_eq!(n("addresses_removed"), 2);
    assert_eq!(n("alerts_removed") as usize, alerts.len());
    assert!(n("commands_removed") >= 1, "the isolate command");
    assert_eq!(n("wipes_queued"), 1);
    assert!(n("seen_rows_removed") >= alerts.len() as u64);
    assert!(n("dedup_keys_removed") >= 1);
    assert!(n("queued_mails_removed") >= 1, "the alert mails");
    assert_eq!(n("failed_mails_removed"), 1, "staff-a's given-up mail");
    assert_eq!(report["revoked_devices"][0], a_dev.as_str());

    // the open login is over; addresses cannot be re-added; the password is refused
    let r = browser.get("/");
    assert_eq!(r.location.as_deref(), Some("/login"), "{}", r.status);
    let r = browser.get("/addresses");
    assert_eq!(r.location.as_deref(), Some("/login"));
    let r = browser.request(
        "POST",
        "/addresses/add",
        &[("csrf", "whatever"), ("address", "again-a@a-corp.example")],
    );
    assert_ne!(r.status, 200);
    let (_, r) = password_login(port, A_USER, NEW_PASSWORD);
    assert!(r.body.contains(WRONG) && r.cookie.is_none(), "{}", r.status);
    let e = c.admin_err(&["contract", "emails", &a, "again-a@a-corp.example"]);
    assert!(e.contains("ended"), "{e}");
    let e = c.admin_err(&["user", "add", "--contract", &a, "--email", "new-a@a-corp.example"]);
    assert!(e.contains("ended"), "{e}");
    let e = c.admin_err(&["contract", "end", &a]);
    assert!(e.contains("already ended"), "{e}");
    // the wipe of the appliance waits for it (not personal data)
    let dev = c.admin(&["device", "show", &a_dev]);
    assert!(
        dev["commands"].as_array().into_iter().flatten().any(|x| x["what"].as_str().is_some_and(|w| w.contains("wipe"))),
        "{dev}"
    );
    // B's things are intact
    let users_b = c.admin(&["user", "list", "--contract", &b]);
    assert_eq!(users_b[0]["email"], B_USER);
    let failed = c.admin(&["mail", "failed"]);
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{failed}");
    assert_eq!(failed[0]["to"], B_LATE);
    let export = c.admin(&["export"]);
    let export = export.as_str().map(String::from).unwrap_or_else(|| export.to_string());

    // the store, table by table, after the cloud stopped
    c.kill9();
    let rows = dump(&dir.join("data"));
    let tables: std::collections::BTreeSet<&str> =
        rows.iter().filter_map(|r| r["table"].as_str()).collect();
    eprintln!("{} rows in tables {tables:?}", rows.len());
    let text: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {} {}", r["table"], r["key"], r["value"]))
        .collect();
    let hexes: Vec<&str> = rows.iter().filter_map(|r| r["value_hex"].as_str()).collect();
    let mut needles: Vec<String> = [
        A_COMPANY,
        A_CONTACT,
        A_PHONE,
        A_POSTAL,
        A_CONTACT_EMAIL,
        A_CONTRACT_NAME,
        A_RECIPIENT,
        A_ADDED,
        A_USER,
        A_STAFF,
        "a-corp.example",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    needles.extend(hosts.iter().cloned());
    needles.extend(urls.iter().cloned());
    let mut found = Vec::new();
    for n in &needles {
        // JSON escapes nothing of these but may escape non-ASCII: check both forms
        let escaped: String = serde_json::to_string(n).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        for t in &text {
            if t.contains(n.as_str()) || t.contains(escaped) {
                found.push(format!("`{n}` in {}", &t[..t.len().min(300)]));
            }
        }
        if export.contains(n.as_str()) {
            found.push(format!("`{n}` in the export"));
        }
    }
    for h in &hosts {
        if let Some(hx) = ipv4_hex(h) {
            for (i, v) in hexes.iter().enumerate() {
                // the bytes of the address at a byte boundary
                if v.len() >= hx.len()
                    && (0..=v.len() - hx.len())
                        .step_by(2)
                        .any(|j| &v[j..j + hx.len()] == hx.as_str())
                {
                    found.push(format!("{h} as bytes in {}", &text[i][..text[i].len().min(300)]));
                }
            }
        }
    }
    assert!(found.is_empty(), "personal data of the ended contract remains:\n{}", found.join("\n"));
    // ... while B's remains, and the records billing and the wipe need
    for keep in [B_COMPANY, B_CONTACT, B_PHONE, B_POSTAL, B_CONTACT_EMAIL, B_RECIPIENT, B_USER, B_LATE] {
        let escaped = serde_json::to_string(keep).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        assert!(
            text.iter().any(|t| t.contains(keep) || t.contains(escaped)),
            "B's `{keep}` is gone"
        );
    }
    assert!(!text.iter().any(|t| t.contains(B_GONE)), "a removed user is gone");
    assert!(text.iter().any(|t| t.starts_with("\"devices\"") && t.contains(&a_dev)));
    assert!(text.iter().any(|t| t.starts_with("\"contracts\"") && t.contains("ended")));

    // the raw file, for the record: redb keeps freed pages until they are reused
    let raw = std::fs::read(dir.join("data/mimamori.redb")).expect("reading the database file");
    let stale: Vec<&String> = needles.iter().filter(|n| find_bytes(&raw, n.as_bytes())).collect();
    eprintln!(
        "raw file: {} bytes; old bytes of the ended contract still in freed pages: {stale:?}",
        raw.len()
    );
    drop(smtp);
}
