//! The customer portal in a real browser (Debian's chromium, headless, through
//! chromedriver): the real cloud binary, a real SMTP server, alerts and traffic records
//! sent by real uplinks (a capture replayed with rules, and simulated appliances).
//! The TOTP codes come from oathtool and the QR code is read by zbarimg from a screenshot,
//! as an authenticator app would read it.
//!
//! `MIMAMORI_SCREENSHOTS=<dir>` also writes the README's screenshots there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mimamori_tests::browser::{self, Browser};
use mimamori_tests::cloud::*;
use mimamori_tests::{appliance, run, tempdir};
use serde_json::Value;

const USER: &str = "yamada@example.co.jp";
const NEW_PASSWORD: &str = "Kaisha-Mimamori-2026";

async fn wait_text(b: &Browser, needle: &str) -> String {
    let t = Instant::now();
    loop {
        let body = b.body_text().await;
        if body.contains(needle) {
            return body;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "`{needle}` never appeared on {}; the page says:\n{body}",
            b.current_path().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn shot_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v = vec![dir.to_path_buf()];
    if let Some(d) = std::env::var_os("MIMAMORI_SCREENSHOTS") {
        let d = PathBuf::from(d);
        std::fs::create_dir_all(&d).expect("screenshot folder");
        v.push(d);
    }
    v
}

async fn shot(b: &Browser, dir: &Path, name: &str) -> PathBuf {
    let dirs = shot_dirs(dir);
    let first = dirs[0].join(name);
    b.screenshot(&first).await;
    for d in &dirs[1..] {
        std::fs::copy(&first, d.join(name)).expect("copying a screenshot");
    }
    first
}

/// The temporary password of the `nth` (from 1) account mail to `to`.
fn temporary_password(smtp: &Smtp, to: &str, nth: usize) -> String {
    temporary_passwords(smtp, to, nth)[nth - 1].clone()
}

/// Alerts and traffic for two contracts through real uplinks; returns (A's alerts, B's
/// alerts, B's device).
fn seed(c: &Cloud, dir: &Path) -> (u64, u64, Vec<Value>, Vec<Value>, String) {
    let (a, a_dev, a_code) = provision(c, &[]);
    let (b, b_dev, b_code) = provision(c, &[]);
    // the cloud scores from its own copy of the rules: the capture's and the simulator's
    import_rules_text(c, "cloud-c2.rules", C2_RULES);
    import_rules_text(c, "cloud-simulated.rules", SIMULATED_RULES);
    // the capture with real rules: the office's main appliance
    let state = dir.join("state-a");
    let out = activate(c, &state, &a_code);
    assert!(
        out.status.success(),
        "activation: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = replay_uplink(dir, &uplink_toml(dir, &state, 60), C2_RULES);
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a second appliance of A and B's appliance: simulated alerts and traffic records
    let more = c.admin(&[
        "device",
        "add",
        "--contract",
        &a.to_string(),
        "--name",
        "支店UTM",
    ]);
    let a2_code = more[0]["activation_code"]
        .as_str()
        .expect("code")
        .to_string();
    let codes = dir.join("codes.txt");
    std::fs::write(&codes, format!("{a2_code}\n{b_code}\n")).expect("codes file");
    let out = run(Command::new(appliance())
        .args(["simulate", "--devices", "2", "--cloud", &c.addr(), "--ca"])
        .arg(ca_file(c))
        .arg("--codes")
        .arg(&codes)
        .arg("--state-root")
        .arg(dir.join("sim"))
        .args([
            "--rate",
            "20",
            "--duration",
            "4",
            "--heartbeat-secs",
            "1",
            "--memory-spool",
        ]));
    assert!(
        out.status.success(),
        "simulate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = c.alerts();
    let of = |k: u64| -> Vec<Value> {
        all.iter()
            .filter(|x| x["contract_id"].as_u64() == Some(k))
            .cloned()
            .collect()
    };
    let (aa, bb) = (of(a), of(b));
    assert!(
        aa.len() >= 20 && bb.len() >= 10,
        "seeded alerts: A {} B {}",
        aa.len(),
        bb.len()
    );
    let _ = a_dev;
    (a, b, aa, bb, b_dev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_in_a_real_browser() {
    browser::ensure_tools();
    let dir = tempdir("portal-browser");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    let t0 = Instant::now();
    let (a, _b, a_alerts, b_alerts, b_dev) = seed(&c, &dir);
    eprintln!("seeded in {:?}", t0.elapsed());
    let base = c.portal_url();

    // an operator creates the user; the temporary password comes by mail
    c.admin(&["user", "add", "--contract", &a.to_string(), "--email", USER]);
    let temp = temporary_password(&smtp, USER, 1);

    let b = Browser::start(&dir.join("browser")).await;
    eprintln!("browser up at {:?}", t0.elapsed());

    // not logged in: every page leads to the login
    b.goto(&format!("{base}/alerts")).await;
    b.wait_for_path("/login", Duration::from_secs(5)).await;
    wait_text(&b, "ログイン").await;

    // login with the temporary password → forced change
    b.fill("input[name=email]", USER).await;
    b.fill("input[name=password]", &temp).await;
    b.click("#submit").await;
    b.wait_for_path("/password", Duration::from_secs(10)).await;
    // a weak password is refused with the reason
    b.fill("input[name=new]", "password1").await;
    b.fill("input[name=again]", "password1").await;
    b.click("#submit").await;
    let refused = b.text("#error").await;
    assert!(
        !refused.is_empty(),
        "a weak password must be refused with a reason"
    );
    b.fill("input[name=new]", NEW_PASSWORD).await;
    b.fill("input[name=again]", NEW_PASSWORD).await;
    b.click("#submit").await;

    // → authenticator enrolment: the QR code as an app reads it
    b.wait_for_path("/mfa/setup", Duration::from_secs(10)).await;
    let png = shot(&b, &dir, "enroll.png").await;
    let uri = browser::qr_decode(&png).expect("the enrolment page shows a readable QR code");
    assert!(uri.starts_with("otpauth://totp/"), "QR code holds {uri}");
    let secret = uri
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .expect("secret in the otpauth URI")
        .to_string();
    let shown = b.text("#secret").await.replace(' ', "");
    assert_eq!(shown, secret, "the key for typing is the QR code's key");
    // a wrong code is refused, the right one accepted
    b.fill("input[name=code]", "000000").await;
    b.click("#submit").await;
    wait_text(&b, "コードが正しくありません").await;
    b.fill("input[name=code]", &browser::totp(&secret)).await;
    b.click("#submit").await;
    b.wait_for_path("/mfa/recovery", Duration::from_secs(10))
        .await;
    let codes = b.text("#codes").await;
    assert_eq!(
        codes.lines().filter(|l| !l.trim().is_empty()).count(),
        10,
        "ten recovery codes: {codes}"
    );
    b.click("#submit").await;

    // → the dashboard: appliances and the seeded alerts
    b.wait_for_path("/", Duration::from_secs(10)).await;
    let body = wait_text(&b, "本店UTM").await;
    assert!(
        body.contains("支店UTM"),
        "both appliances of the contract: {body}"
    );
    assert!(body.contains("稼働中"), "an online appliance: {body}");
    assert!(
        b.exists("#alert-chart svg").await,
        "the alert chart is drawn"
    );
    assert!(
        b.exists("#top-apps svg").await,
        "the top apps chart is drawn"
    );
    let high = a_alerts.iter().filter(|x| x["level"] == "high").count();
    assert!(high > 0, "the seed has ★★★ alerts");
    assert!(body.contains("★★★"), "important alerts are listed: {body}");
    b.client
        .set_window_size(1280, 1500)
        .await
        .expect("window size");
    shot(&b, &dir, "dashboard.png").await;
    b.client
        .set_window_size(1280, 900)
        .await
        .expect("window size");

    // alerts: filter by level, then the detail
    b.goto(&format!("{base}/alerts?level=high")).await;
    let count = b.text("#count").await;
    assert!(
        count.starts_with(&format!("{high} ")),
        "{high} ★★★ alerts expected, page says {count}"
    );
    let rows = b
        .client
        .find_all(fantoccini::Locator::Css("table.alerts tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), high.min(50));
    for r in &rows {
        let text = r.text().await.expect("row text");
        assert!(
            text.contains("★★★"),
            "filtered row of another level: {text}"
        );
    }
    // filter by host: every row is that host
    let host = a_alerts[0]["event"]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|e| e["flow"]["internal_ip"].as_str())
        .expect("host of an alert")
        .to_string();
    let host_n = a_alerts
        .iter()
        .filter(|x| {
            x["event"]
                .as_object()
                .and_then(|o| o.values().next())
                .is_some_and(|e| e["flow"]["internal_ip"] == host.as_str())
        })
        .count();
    b.goto(&format!("{base}/alerts?host={host}")).await;
    assert!(b.text("#count").await.starts_with(&format!("{host_n} ")));
    b.goto(&format!("{base}/alerts?level=high")).await;
    b.click("table.alerts tbody tr:first-child td a").await;
    b.wait_for_path("/alerts/", Duration::from_secs(10)).await;
    let detail = wait_text(&b, "この重要度の理由").await;
    assert!(detail.contains("お客様に実施いただく対応"), "{detail}");
    assert!(
        detail.contains("ネットワークから切り離し"),
        "★★★ tells to disconnect the host: {detail}"
    );
    assert!(!b.text("#reason").await.is_empty());
    shot(&b, &dir, "alert.png").await;

    // isolate the alert's host from the portal: a command queued for its appliance, its
    // state on the page and in `admin device show`; then released the same way
    assert!(b.text("#iso-state").await.contains("隔離されていません"));
    b.click("#isolate").await;
    let page = wait_text(&b, "隔離を機器に指示しました").await;
    assert!(page.contains("送信待ち"), "{page}");
    let alert_id: u64 = b
        .current_path()
        .await
        .trim_start_matches("/alerts/")
        .parse()
        .expect("alert id in the path");
    let rec = c.admin(&["alert", "show", &alert_id.to_string()]);
    let dev_id = rec["device"].as_str().expect("alert device").to_string();
    let shown = c.admin(&["device", "show", &dev_id]);
    let cmd = shown["commands"]
        .as_array()
        .and_then(|v| v.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(cmd["origin"], format!("portal:{USER}"), "{shown}");
    assert_eq!(cmd["state"], "pending", "{shown}");
    assert!(
        cmd["what"]
            .as_str()
            .is_some_and(|w| w.starts_with("isolate ")),
        "{shown}"
    );
    assert_eq!(
        shown["isolated"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    b.click("#release").await;
    wait_text(&b, "隔離の解除を機器に指示しました").await;
    assert!(b.text("#iso-state").await.contains("隔離されていません"));
    let shown = c.admin(&["device", "show", &dev_id]);
    assert_eq!(
        shown["isolated"].as_array().map(Vec::len),
        Some(0),
        "{shown}"
    );

    // a bad date is a clear message, not an error page
    b.goto(&format!("{base}/alerts?from=2026-02-31")).await;
    assert!(b.text("#error").await.contains("YYYY-MM-DD"));

    // traffic record: categories, apps and hosts from the simulated appliance
    b.goto(&format!("{base}/traffic?days=1")).await;
    let t = wait_text(&b, "YouTube").await;
    assert!(t.contains("198.18."), "hosts are listed: {t}");

    // another tenant's alert and appliance are not found
    let other = b_alerts[0]["id"].as_u64().expect("B alert id");
    b.goto(&format!("{base}/alerts/{other}")).await;
    wait_text(&b, "ページが見つかりません").await;
    b.goto(&format!("{base}/appliances/{b_dev}")).await;
    wait_text(&b, "ページが見つかりません").await;
    let mine = a_alerts[0]["id"].as_u64().expect("A alert id");
    b.goto(&format!("{base}/alerts/{mine}")).await;
    wait_text(&b, "この重要度の理由").await;

    eprintln!("tenant checks done at {:?}", t0.elapsed());
    // notification addresses: three accepted, a fourth refused with a clear message
    for addr in [
        "it@example.co.jp",
        "shacho@example.co.jp",
        "keiri@example.co.jp",
    ] {
        b.goto(&format!("{base}/addresses")).await;
        b.fill("#add-form input[name=address]", addr).await;
        b.click("#add").await;
        wait_text(&b, "通知先を追加しました").await;
    }
    b.fill("#add-form input[name=address]", "fourth@example.co.jp")
        .await;
    b.click("#add").await;
    wait_text(&b, "通知先は3件までです").await;
    assert_eq!(recipients(&c, a), 3);
    // the test mail reaches the three
    b.click("#test-mail").await;
    wait_text(&b, "テストメールを送信しました").await;
    wait_for("three test mails", Duration::from_secs(30), || {
        smtp.mails()
            .iter()
            .filter(|(_, m)| subject(m).contains("テストメール"))
            .count()
            == 3
    });

    // a form without its CSRF token is refused, and changes nothing
    b.goto(&format!("{base}/addresses")).await;
    b.client
        .execute(
            "document.querySelector('#add-form input[name=csrf]').remove(); \
             document.querySelector('#add-form input[name=address]').value = 'forged@example.co.jp'; \
             document.querySelector('#add-form').submit();",
            vec![],
        )
        .await
        .expect("script");
    wait_text(&b, "不正な送信").await;
    // without a session the pages' forms lead to the login; the login form itself needs
    // its token too
    let status = post_status(
        &format!("{base}/addresses/remove"),
        "address=it%40example.co.jp",
    );
    assert_eq!(status, 303, "a POST without a session is sent to the login");
    let status = post_status(
        &format!("{base}/login"),
        "email=yamada%40example.co.jp&password=x",
    );
    assert_eq!(status, 403, "a login POST without its token is refused");
    assert_eq!(recipients(&c, a), 3);

    // English
    b.goto(&format!("{base}/")).await;
    b.click("a.lang").await;
    wait_text(&b, "Notification addresses").await;
    b.click("a.lang").await;
    wait_text(&b, "通知先").await;

    eprintln!("forms done at {:?}", t0.elapsed());
    // logout, then lockout after repeated bad passwords
    b.click("#logout").await;
    b.wait_for_path("/login", Duration::from_secs(10)).await;
    for _ in 0..5 {
        b.fill("input[name=email]", USER).await;
        b.fill("input[name=password]", "wrong-password-123").await;
        b.click("#submit").await;
        wait_text(&b, "ログイン").await;
    }
    wait_text(&b, "ロック").await;
    b.fill("input[name=email]", USER).await;
    b.fill("input[name=password]", NEW_PASSWORD).await;
    b.click("#submit").await;
    let locked = wait_text(&b, "ロック").await;
    assert_eq!(
        b.current_path().await,
        "/login",
        "the right password does not pass a lock: {locked}"
    );
    let users = c.admin(&["user", "list", "--contract", &a.to_string()]);
    assert_eq!(users[0]["locked"], true, "{users}");

    // the operator resets the account: a new temporary password, the lock lifted; the
    // authenticator still guards the login after the forced change
    c.admin(&["user", "reset", "--email", USER]);
    let temp2 = temporary_password(&smtp, USER, 2);
    assert_ne!(temp2, temp);
    b.fill("input[name=email]", USER).await;
    b.fill("input[name=password]", &temp2).await;
    b.click("#submit").await;
    b.wait_for_path("/password", Duration::from_secs(10)).await;
    b.fill("input[name=new]", "Atarashii-Pass-2027").await;
    b.fill("input[name=again]", "Atarashii-Pass-2027").await;
    b.click("#submit").await;
    b.wait_for_path("/login/totp", Duration::from_secs(10))
        .await;
    // the enrolment's code is spent: the next step's code (within the ±1 step window)
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    b.fill("input[name=code]", &browser::totp_at(&secret, secs + 30))
        .await;
    b.click("#submit").await;
    b.wait_for_path("/", Duration::from_secs(10)).await;
    wait_text(&b, "本店UTM").await;

    // every change above is in the audit log with its actor, and on the activity page
    let log = c.admin(&["audit", "list", "--contract", &a.to_string(), "--limit", "1000"]);
    let me = format!("portal:{USER}");
    let by = |action: &str, actor: &str| {
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["action"] == action && e["actor_text"] == actor)
            .count()
    };
    for (action, actor, at_least) in [
        ("contract.recipients", me.as_str(), 3),
        ("device.command", me.as_str(), 2),
        ("contract.test_mail", me.as_str(), 1),
        ("user.password", me.as_str(), 2),
        ("user.mfa_enrol", me.as_str(), 1),
        ("portal.login", me.as_str(), 1),
        ("portal.login_failed", me.as_str(), 5),
        ("user.add", "operator:harness-1", 1),
        ("user.reset", "operator:harness-1", 1),
    ] {
        assert!(by(action, actor) >= at_least, "{action} by {actor}: {log:#}");
    }
    b.goto(&format!("{base}/activity")).await;
    wait_text(&b, "user.reset").await;

    b.close().await;
}

/// How many notification addresses contract `id` has (operators' view).
fn recipients(c: &Cloud, id: u64) -> usize {
    let contract = c
        .admin(&["contract", "list"])
        .as_array()
        .and_then(|v| v.iter().find(|x| x["id"].as_u64() == Some(id)).cloned())
        .expect("the contract");
    contract["recipients"].as_array().map_or(0, Vec::len)
}

/// Status of a form POST made without any cookie (curl).
fn post_status(url: &str, body: &str) -> u16 {
    let out = run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "--data",
        body,
        url,
    ]));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}
