//! The cloud end to end: real TLS between the real binaries, a real SMTP server
//! (python3-aiosmtpd), the real admin CLI. Each test runs its own cloud on loopback ports.
//! The harness lives in `mimamori_tests::cloud`.

use std::time::Duration;

use mimamori_tests::cloud::*;
use mimamori_tests::tempdir;

#[test]
fn activation_once_with_mutual_tls_only() {
    let dir = tempdir("cloud-activation");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    let (_, dev, code) = provision(&c, &["a@example.com"]);
    // the cloud scores from its own copy of the rules the appliance runs
    import_rules_text(&c, "cloud-c2.rules", C2_RULES);
    // a wrong code is refused
    let out = activate(&c, &dir.join("wrong"), "AAAA-BBBB-CCCC-DDDD");
    assert!(!out.status.success());
    // the right code works once
    let out = activate(&c, &dir.join("ok"), &code);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = activate(&c, &dir.join("again"), &code);
    assert!(!out.status.success(), "a used code must be refused");
    // the activated device connects with its certificate and is seen alive
    let up = uplink_toml(&dir, &dir.join("ok"), 20);
    let out = replay_uplink(&dir, &up, C2_RULES);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let devs = c.admin(&["device", "list"]);
    let d = devs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == dev.as_str())
        .unwrap();
    assert_eq!(d["status"], "active");
    assert!(d["last_heartbeat_ms"].as_i64().is_some());
    // a client without a certificate cannot send events: a raw TLS client is refused (the
    // activation-only path accepts nothing but Activate); revoked devices are refused
    c.admin(&["device", "revoke", &dev]);
    let out = replay_uplink(&dir, &uplink_toml(&dir, &dir.join("ok"), 5), C2_RULES);
    assert!(!out.status.success(), "a revoked device must not deliver");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.to_lowercase().contains("refused") || err.contains("UnknownDevice"),
        "{err}"
    );
}

#[test]
fn high_alert_mails_once_per_address_and_dedups() {
    let dir = tempdir("cloud-mail");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(
        &dir,
        smtp.port,
        "mail_window = \"2s\"\nstartup_grace = \"1h\"\nmail_retry_min = \"1s\"",
    );
    let emails = ["it@example.com", "boss@example.com", "vendor@example.net"];
    let (cid, _, code) = provision(&c, &emails);
    // the cloud scores from its own copy of the rules the appliance runs
    import_rules_text(&c, "cloud-c2.rules", C2_RULES);
    assert!(activate(&c, &dir.join("st"), &code).status.success());
    let up = uplink_toml(&dir, &dir.join("st"), 30);
    let out = replay_uplink(&dir, &up, C2_RULES);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = c.alerts();
    assert!(!stored.is_empty());
    wait_for("one mail per address", Duration::from_secs(30), || {
        smtp.mails().len() >= 3
    });
    std::thread::sleep(Duration::from_secs(3));
    let mails = smtp.mails();
    assert_eq!(
        mails.len(),
        3,
        "exactly one mail per address: {:?}",
        mails.iter().map(|m| &m.0).collect::<Vec<_>>()
    );
    let mut to: Vec<&str> = mails.iter().map(|m| m.0.as_str()).collect();
    to.sort();
    let mut want = emails.to_vec();
    want.sort();
    assert_eq!(to, want);
    // one mail carries all important alerts of the window: highest level and the count
    let important = stored
        .iter()
        .filter(|a| a["level"] != "info" && a["mailed"] == true)
        .count();
    let subj = subject(&mails[0].1);
    assert!(subj.contains("★★★"), "{subj}");
    assert!(
        subj.contains(&format!("({important}件)")),
        "{subj} vs {important} important alerts"
    );
    assert!(
        important >= 3,
        "three distinct important signatures in one window ({important})"
    );
    assert!(
        !mails[0].1.contains("x4tk7t4jo6"),
        "no query string in the cloud"
    );
    // the same alerts again within 72 h: stored, not mailed
    let before = stored.len();
    let out = replay_uplink(&dir, &up, C2_RULES);
    assert!(out.status.success());
    let after = c.alerts();
    assert_eq!(after.len(), before * 2);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        smtp.mails().len(),
        3,
        "deduplicated alerts must not be mailed"
    );
    assert!(after.iter().filter(|a| a["deduplicated"] == true).count() >= before / 2);
    // re-rating ★★☆ → ★★★ sends a new mail; resolving a 調査中 alert mails the result
    let medium = after
        .iter()
        .find(|a| a["level"] == "medium")
        .or_else(|| after.iter().find(|a| a["level"] == "high"))
        .unwrap();
    let id = medium["id"].as_u64().unwrap().to_string();
    let target = if medium["level"] == "medium" {
        "high"
    } else {
        "medium"
    };
    c.admin(&[
        "alert",
        "rerate",
        &id,
        "--level",
        target,
        "--note",
        "お客様のスキャンで検出",
    ]);
    wait_for("the re-rating mail", Duration::from_secs(15), || {
        smtp.mails().len() >= 6
    });
    assert!(subject(&smtp.mails()[3].1).contains("重要度変更"));
    if let Some(inv) = after.iter().find(|a| a["level"] == "investigating") {
        let id = inv["id"].as_u64().unwrap().to_string();
        c.admin(&[
            "alert",
            "resolve",
            &id,
            "--result",
            "誤検知でした。対応は不要です。",
        ]);
        wait_for(
            "the investigation result mail",
            Duration::from_secs(15),
            || smtp.mails().len() >= 9,
        );
        assert!(
            smtp.mails()[6..]
                .iter()
                .all(|m| subject(&m.1).contains("調査結果"))
        );
    }
    // a fourth address is refused with a clear message
    let err = c.admin_err(&[
        "contract",
        "emails",
        &cid.to_string(),
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ]);
    assert!(err.contains("at most 3"), "{err}");
}

#[test]
fn nothing_lost_across_a_cloud_kill_and_an_smtp_outage() {
    let dir = tempdir("cloud-kill");
    let smtp_port = free_port();
    let mut smtp = Smtp::start(&dir.join("mail"), smtp_port);
    let mut c = Cloud::start(
        &dir,
        smtp_port,
        "mail_window = \"1s\"\nstartup_grace = \"1h\"\nmail_retry_min = \"1s\"\nmail_retry_max = \"2s\"",
    );
    let (_, _, code) = provision(&c, &["ops@example.com"]);
    // the cloud scores from its own copy of the rules the appliance runs
    import_rules_text(&c, "cloud-c2.rules", C2_RULES);
    assert!(activate(&c, &dir.join("st"), &code).status.success());
    // the cloud is down while the appliance produces alerts: they stay in its spool
    c.kill9();
    let up = uplink_toml(&dir, &dir.join("st"), 3);
    let out = replay_uplink(&dir, &up, C2_RULES);
    assert!(
        !out.status.success(),
        "nothing can be acknowledged while the cloud is down"
    );
    let produced = std::fs::read_to_string(dir.join("eve.json"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"alert\""))
        .count();
    assert!(produced > 0);
    // SMTP is down too when the cloud comes back
    smtp.stop();
    c.spawn();
    let up = uplink_toml(&dir, &dir.join("st"), 30);
    let out = replay_uplink(&dir, &up, C2_RULES);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // every alert of both runs is stored exactly once
    wait_for("all alerts stored", Duration::from_secs(20), || {
        c.alerts().len() >= produced * 2
    });
    let alerts = c.alerts();
    assert_eq!(alerts.len(), produced * 2);
    let mut seqs: Vec<u64> = alerts.iter().map(|a| a["seq"].as_u64().unwrap()).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), produced * 2, "no (device, seq) stored twice");
    // a mail queued while SMTP was down, then the cloud killed: delivered after restart
    std::thread::sleep(Duration::from_secs(3));
    c.kill9();
    let mut smtp = Smtp::start(&dir.join("mail"), smtp_port);
    c.spawn();
    wait_for("the queued mail", Duration::from_secs(30), || {
        !smtp.mails().is_empty()
    });
    assert_eq!(smtp.mails()[0].0, "ops@example.com");
    smtp.stop();
}

#[test]
fn stop_notice_daily_reminder_recovery_and_grace() {
    let dir = tempdir("cloud-stop");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let mut c = Cloud::start(
        &dir,
        smtp.port,
        "stop_after = \"3s\"\nstartup_grace = \"0s\"\nmail_retry_min = \"1s\"",
    );
    let (_, dev, code) = provision(&c, &["night@example.com"]);
    // the cloud scores from its own copy of the rules the appliance runs
    import_rules_text(&c, "cloud-c2.rules", C2_RULES);
    assert!(activate(&c, &dir.join("st"), &code).status.success());
    let up = uplink_toml(&dir, &dir.join("st"), 20);
    assert!(replay_uplink(&dir, &up, "").status.success());
    // silence: a stop notice after stop_after
    wait_for("the stop notice", Duration::from_secs(20), || {
        smtp.mails()
            .iter()
            .any(|m| subject(&m.1).contains("機器停止"))
    });
    let n_stop = smtp.mails().len();
    // the daily check mails again
    c.admin(&["ops", "run-daily-check"]);
    wait_for("the daily reminder", Duration::from_secs(15), || {
        smtp.mails()
            .iter()
            .any(|m| subject(&m.1).contains("継続中"))
    });
    // the appliance is back (it connects, heartbeats and delivers): a recovery mail
    assert!(replay_uplink(&dir, &up, C2_RULES).status.success());
    wait_for("the recovery mail", Duration::from_secs(15), || {
        smtp.mails().iter().any(|m| subject(&m.1).contains("復旧"))
    });
    assert!(smtp.mails().len() >= n_stop + 2);
    // a restarted cloud with a grace period does not blame the appliance for its own downtime
    c.kill9();
    std::fs::write(
        &c.config,
        std::fs::read_to_string(&c.config)
            .unwrap()
            .replace("startup_grace = \"0s\"", "startup_grace = \"1h\""),
    )
    .unwrap();
    let before = smtp.mails().len();
    c.spawn();
    std::thread::sleep(Duration::from_secs(6));
    let new: Vec<String> = smtp.mails()[before..]
        .iter()
        .map(|m| subject(&m.1))
        .collect();
    assert!(
        new.iter().all(|s| !s.contains("機器停止")),
        "no stop notice during the grace period: {new:?} (device {dev})"
    );
}

#[test]
fn garbage_on_the_ingest_port_does_not_disturb_other_devices() {
    use std::io::Write;
    let dir = tempdir("cloud-garbage");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    let (_, _, code) = provision(&c, &["a@example.com"]);
    // the cloud scores from its own copy of the rules the appliance runs
    import_rules_text(&c, "cloud-c2.rules", C2_RULES);
    assert!(activate(&c, &dir.join("st"), &code).status.success());
    // several connections send garbage: plain bytes, a huge length prefix, half a frame
    let mut junk = Vec::new();
    for payload in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        vec![0x16, 3, 3, 0, 10, 1, 0],
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", c.ingest)).unwrap();
        let _ = s.write_all(&payload);
        junk.push(s);
    }
    // a real device still delivers everything
    let up = uplink_toml(&dir, &dir.join("st"), 30);
    let out = replay_uplink(&dir, &up, C2_RULES);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let produced = std::fs::read_to_string(dir.join("eve.json"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"alert\""))
        .count();
    assert_eq!(c.alerts().len(), produced);
    drop(junk);
    // and the service is still up
    assert!(c.admin(&["ops", "status"])["alerts"].as_u64().unwrap() as usize == produced);
}

#[test]
fn portal_user_gets_a_temporary_password_by_mail() {
    let dir = tempdir("cloud-user");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(
        &dir,
        smtp.port,
        "startup_grace = \"1h\"\nmail_retry_min = \"1s\"",
    );
    let (cid, _, _) = provision(&c, &["it@example.com"]);
    let cid = cid.to_string();
    let u = c.admin(&[
        "user",
        "add",
        "--contract",
        &cid,
        "--email",
        "Owner@Example.com",
    ]);
    assert_eq!(u["email"], "owner@example.com");
    assert_eq!(u["must_change_password"], true);
    assert_eq!(u["mfa"], false);
    // the same address again, a bad address, an unknown contract: refused with the reason
    for (contract, email, want) in [
        (cid.as_str(), "owner@example.com", "exists already"),
        (cid.as_str(), "not-an-address", "not-an-address"),
        ("999", "x@example.com", "999"),
    ] {
        let e = c.admin_err(&["user", "add", "--contract", contract, "--email", email]);
        assert!(e.contains(want), "{email}: {e}");
    }
    // operators can add more users to a contract
    c.admin(&[
        "user",
        "add",
        "--contract",
        &cid,
        "--email",
        "staff@example.com",
    ]);
    let list = c.admin(&["user", "list", "--contract", &cid]);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    wait_for("the account mails", Duration::from_secs(30), || {
        smtp.mails()
            .iter()
            .filter(|m| body_of(&m.1).contains("仮パスワード"))
            .count()
            >= 2
    });
    let mails = smtp.mails();
    let m = mails
        .iter()
        .find(|m| m.0 == "owner@example.com")
        .expect("mail to the new user");
    let body = body_of(&m.1);
    let temp = body
        .lines()
        .find_map(|l| l.strip_prefix("仮パスワード: "))
        .map(str::trim);
    let temp = temp.unwrap_or_else(|| panic!("no temporary password in the mail: {body}"));
    assert_eq!(temp.len(), 16, "{temp}");
    // the two users got different passwords
    let other = mails
        .iter()
        .find(|m| m.0 == "staff@example.com")
        .expect("mail to the second user");
    assert!(
        !body_of(&other.1).contains(temp),
        "two users share a temporary password"
    );
}
