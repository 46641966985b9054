//! Operators and the audit log (issue 14, finding 6; the admin token's minimum length from
//! finding 10), against the real `mimamori-cloud` binary: the bootstrap token cannot
//! touch customer data, revoked operators are locked out, every change through the admin
//! API and the portal is in `admin audit list` with its actor and client address (the
//! proxy header believed only from a trusted proxy), and the portal's activity page shows
//! only the own contract.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mimamori_tests::cloud::*;
use mimamori_tests::{browser, run, tempdir};
use serde_json::Value;

fn entries(c: &Cloud, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["audit", "list", "--limit", "1000"];
    a.extend_from_slice(args);
    c.admin(&a).as_array().cloned().unwrap_or_default()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn bootstrap_token_only_manages_operators_and_revoked_operators_are_refused() {
    let dir = tempdir("audit-operators");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");

    // the bootstrap token: operators yes, anything else no
    let out = c.admin_as(BOOTSTRAP_TOKEN, &["customer", "list"]);
    assert!(!out.status.success(), "the bootstrap token listed customers");
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    let out = c.admin_as(
        BOOTSTRAP_TOKEN,
        &["contract", "add", "--customer", "1", "--name", "x", "--application-date", "2026-04-03"],
    );
    assert!(!out.status.success(), "the bootstrap token added a contract");
    assert!(stderr(&out).contains("only add, list and revoke operators"), "{}", stderr(&out));
    assert!(c.admin_as(BOOTSTRAP_TOKEN, &["operator", "list"]).status.success());

    // an operator can
    let cust = c.admin(&["customer", "add", "--company", "山田商店"]);
    assert!(cust["id"].as_u64().is_some());
    assert_eq!(c.admin(&["customer", "list"]).as_array().map(Vec::len), Some(1));

    // a second operator, revoked: its token is refused from then on
    let out = c.admin_as(BOOTSTRAP_TOKEN, &["operator", "add", "--name", "eve"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eve: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let eve_token = eve["token"].as_str().expect("a token").to_string();
    assert_eq!(eve_token.len(), 64);
    assert!(c.admin_as(&eve_token, &["customer", "list"]).status.success());
    let ops = c.admin(&["operator", "list"]);
    assert!(
        !ops.to_string().contains(&eve_token),
        "the token is shown once, never listed: {ops}"
    );
    c.admin(&["operator", "revoke", "eve"]);
    let out = c.admin_as(&eve_token, &["customer", "list"]);
    assert!(!out.status.success(), "a revoked operator listed customers");
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    // a name is not reused (old entries stay unambiguous)
    assert!(!c.admin_as(BOOTSTRAP_TOKEN, &["operator", "add", "--name", "eve"]).status.success());
    // a token that never existed
    let out = c.admin_as(&"0".repeat(64), &["customer", "list"]);
    assert!(!out.status.success());

    // who did what
    let log = entries(&c, &[]);
    let find = |action: &str| -> Value {
        log.iter()
            .find(|e| e["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} in {log:#?}"))
    };
    assert_eq!(find("customer.add")["actor_text"], "operator:harness-1");
    assert_eq!(find("customer.add")["addr"], "127.0.0.1");
    assert_eq!(find("operator.revoke")["actor_text"], "operator:harness-1");
    assert!(log.iter().any(|e| e["action"] == "operator.add" && e["actor_text"] == "bootstrap" && e["target"] == "operator eve"));
    assert!(!serde_json::to_string(&log).unwrap().contains(&eve_token));
    let mine = entries(&c, &["--operator", "eve"]);
    assert!(mine.is_empty(), "eve changed nothing: {mine:?}");
    let since_future = entries(&c, &["--since", "2999-01-01"]);
    assert!(since_future.is_empty());
    assert!(!entries(&c, &["--since", "1h"]).is_empty());
    // no route changes or deletes entries
    for (m, path) in [("DELETE", "/v1/audit"), ("PUT", "/v1/audit"), ("POST", "/v1/audit"), ("DELETE", "/v1/audit/1")] {
        let out = run(Command::new("curl").args([
            "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", m,
            "-H", &format!("Authorization: Bearer {}", c.token),
            &format!("http://127.0.0.1:{}{path}", c.admin),
        ]));
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(code == "405" || code == "404", "{m} {path}: {code}");
    }
    assert_eq!(entries(&c, &[]).len(), log.len());

    // a configured bootstrap token shorter than 32 characters is refused at start
    let short = dir.join("short.toml");
    std::fs::write(
        &short,
        format!("data_dir = {:?}\n[admin]\ntoken = \"test-token\"\n", dir.join("short-data")),
    )
    .unwrap();
    for cmd in ["check-config", "serve"] {
        let out = run(Command::new(cloud_bin()).args([cmd, "--config"]).arg(&short));
        assert!(!out.status.success(), "{cmd} accepted a 10-character admin token");
        let e = stderr(&out);
        assert!(e.contains("admin.token") && e.contains("32"), "{cmd}: {e}");
    }
}

/// A portal client: curl with a cookie jar, from `source` (a loopback address), sending
/// `X-Forwarded-For: forwarded` on every request.
struct Client {
    base: String,
    jar: PathBuf,
    source: &'static str,
    forwarded: &'static str,
}

impl Client {
    fn new(base: &str, dir: &Path, name: &str, source: &'static str, forwarded: &'static str) -> Client {
        let jar = dir.join(format!("{name}.cookies"));
        let _ = std::fs::remove_file(&jar);
        Client {
            base: base.to_string(),
            jar,
            source,
            forwarded,
        }
    }
    /// (status, body, Location)
    fn req(&self, path: &str, form: Option<&[(&str, &str)]>) -> (u16, String, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-i", "--interface", self.source, "-c"])
            .arg(&self.jar)
            .arg("-b")
            .arg(&self.jar)
            .args(["-H", &format!("X-Forwarded-For: {}", self.forwarded)]);
        if let Some(f) = form {
            let csrf = self.csrf_of(path);
            for (k, v) in f {
                cmd.args(["--data-urlencode", &format!("{k}={v}")]);
            }
            cmd.args(["--data-urlencode", &format!("csrf={csrf}")]);
        }
        cmd.arg(format!("{}{path}", self.base));
        let out = run(&mut cmd);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let location = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("location:")
                    .then(|| l[9..].trim().to_string())
            })
            .unwrap_or_default();
        (status, body.to_string(), location)
    }
    /// The CSRF token of the form page behind a POST path (same session).
    fn csrf_of(&self, post_path: &str) -> String {
        let page = match post_path {
            "/login" => "/login",
            "/password" => "/password",
            "/mfa/setup" => "/mfa/setup",
            "/mfa/recovery" => "/mfa/recovery",
            "/login/totp" => "/login/totp",
            p if p.starts_with("/addresses") => "/addresses",
            _ => "/account",
        };
        let (_, body, _) = self.req(page, None);
        field(&body, "name=\"csrf\" value=\"")
    }
}

fn field(html: &str, before: &str) -> String {
    let i = html
        .find(before)
        .unwrap_or_else(|| panic!("`{before}` not on the page:\n{html}"))
        + before.len();
    html[i..].split(['"', '<']).next().unwrap_or("").to_string()
}

/// The temporary password mailed to `to`.
fn temporary(smtp: &Smtp, to: &str) -> String {
    let mut found = None;
    wait_for("the account mail", Duration::from_secs(30), || {
        found = smtp
            .mails()
            .into_iter()
            .filter(|(r, _)| r == to)
            .find_map(|(_, m)| {
                body_of(&m)
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("仮パスワード: ").map(str::to_string))
            });
        found.is_some()
    });
    found.unwrap_or_default()
}

/// First login of a new account: temporary password, new password, authenticator.
fn first_login(cl: &Client, email: &str, temp: &str) {
    let (s, _, loc) = cl.req("/login", Some(&[("email", email), ("password", temp)]));
    assert_eq!((s, loc.as_str()), (303, "/password"));
    let (s, _, loc) = cl.req(
        "/password",
        Some(&[("new", "Kaisha-Mimamori-2026"), ("again", "Kaisha-Mimamori-2026")]),
    );
    assert_eq!((s, loc.as_str()), (303, "/mfa/setup"));
    let (_, page, _) = cl.req("/mfa/setup", None);
    let key: String = field(&page, "<code id=\"secret\">").split_whitespace().collect();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (s, _, loc) = cl.req("/mfa/setup", Some(&[("code", &browser::totp_at(&key, secs))]));
    assert_eq!((s, loc.as_str()), (303, "/mfa/recovery"));
    let (s, _, loc) = cl.req("/mfa/recovery", Some(&[]));
    assert_eq!((s, loc.as_str()), (303, "/"));
}

#[test]
fn admin_and_portal_changes_are_logged_with_actor_and_client_address() {
    let dir = tempdir("audit-log");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let mut c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    // the portal behind a proxy on 127.0.0.1 passing X-Forwarded-For
    c.kill9();
    let cfg = std::fs::read_to_string(&c.config).unwrap().replacen(
        "[portal]\n",
        "[portal]\ntrusted_proxy_header = \"X-Forwarded-For\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        1,
    );
    std::fs::write(&c.config, cfg).unwrap();
    c.spawn();

    let (a, _, _) = provision(&c, &["a1@example.co.jp"]);
    let (b, _, _) = provision(&c, &["b1@example.co.jp"]);
    c.admin(&["contract", "emails", &b.to_string(), "b2@example.co.jp"]);
    c.admin(&["contract", "isolation", &a.to_string(), "--auto", "on", "--allow", "198.18.0.1:53"]);
    let user = "yamada@example.co.jp";
    c.admin(&["user", "add", "--contract", &a.to_string(), "--email", user]);
    let temp = temporary(&smtp, user);

    // through the trusted proxy: its header is believed
    let base = c.portal_url();
    let proxied = Client::new(&base, &dir, "proxied", "127.0.0.1", "198.51.100.7");
    let (_, _, _) = proxied.req("/login", Some(&[("email", user), ("password", "wrong-password-1")]));
    first_login(&proxied, user, &temp);
    let (s, _, _) = proxied.req("/addresses/add", Some(&[("address", "a2@example.co.jp")]));
    assert_eq!(s, 303);
    // from another peer, the same header is not believed
    let direct = Client::new(&base, &dir, "direct", "127.0.0.2", "203.0.113.66");
    let (s, _, loc) = direct.req(
        "/login",
        Some(&[("email", "nobody@example.co.jp"), ("password", "wrong-password-2")]),
    );
    assert_eq!(s, 200, "{loc}");

    let log = entries(&c, &[]);
    let text = serde_json::to_string_pretty(&log).unwrap();
    let one = |action: &str, actor: &str| -> Value {
        log.iter()
            .find(|e| e["action"] == action && e["actor_text"] == actor)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} by {actor} in {text}"))
    };
    let portal_actor = format!("portal:{user}");
    let add = one("contract.recipients", &portal_actor);
    assert_eq!(add["addr"], "198.51.100.7", "{add}");
    assert_eq!(add["contract"], a);
    assert_eq!(add["before"], serde_json::json!(["a1@example.co.jp"]));
    assert_eq!(add["after"], serde_json::json!(["a1@example.co.jp", "a2@example.co.jp"]));
    for action in ["portal.login_failed", "portal.login_password", "user.password", "user.mfa_enrol"] {
        let e = one(action, &portal_actor);
        assert_eq!(e["addr"], "198.51.100.7", "{e}");
        assert_eq!(e["contract"], a, "{e}");
    }
    let stranger = one("portal.login_failed", "portal:visitor");
    assert_eq!(stranger["addr"], "127.0.0.2", "an untrusted peer's header is ignored: {stranger}");
    assert!(stranger["contract"].is_null());
    assert!(!text.contains("203.0.113.66"), "the forged address was believed");
    let op = "operator:harness-1";
    for action in ["customer.add", "contract.add", "device.add", "contract.isolation", "user.add"] {
        assert_eq!(one(action, op)["addr"], "127.0.0.1");
    }
    let emails = one("contract.recipients", op);
    assert_eq!(emails["contract"], b);
    assert_eq!(emails["before"], serde_json::json!(["b1@example.co.jp"]));
    assert_eq!(emails["after"], serde_json::json!(["b2@example.co.jp"]));
    // passwords and codes never reach the log
    assert!(!text.contains(&temp) && !text.contains("Kaisha-Mimamori-2026") && !text.contains("wrong-password"));

    // --contract filters
    let only_b = entries(&c, &["--contract", &b.to_string()]);
    assert!(!only_b.is_empty());
    assert!(only_b.iter().all(|e| e["contract"] == b), "{only_b:?}");
    let only_a = entries(&c, &["--contract", &a.to_string()]);
    assert!(only_a.iter().all(|e| e["contract"] == a));
    assert!(only_a.iter().any(|e| e["actor_text"] == portal_actor.as_str()));
    let by_harness = entries(&c, &["--operator", "harness-1"]);
    assert!(by_harness.iter().all(|e| e["actor_text"] == op));
    assert!(by_harness.len() >= 8);

    // the customer's activity page: the own contract's entries only
    let (s, page, _) = proxied.req("/activity", None);
    assert_eq!(s, 200);
    assert!(page.contains("contract.recipients") && page.contains("a2@example.co.jp"), "{page}");
    assert!(page.contains("user.mfa_enrol") && page.contains("198.51.100.7"));
    assert!(!page.contains("b1@example.co.jp") && !page.contains("b2@example.co.jp"), "another contract's entries shown:\n{page}");
    assert!(!page.contains("127.0.0.2") && !page.contains("nobody@example.co.jp"));
    let (_, account, _) = proxied.req("/account", None);
    assert!(account.contains("href=\"/activity\""));
    // not logged in: no activity
    let anon = Client::new(&base, &dir, "anon", "127.0.0.1", "198.51.100.8");
    let (s, _, loc) = anon.req("/activity", None);
    assert_eq!((s, loc.as_str()), (303, "/login"));
}
