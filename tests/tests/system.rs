//! The whole system in the lab (SPEC §3.4, §7, issue 7): the appliance gets its own address
//! from dnsmasq by DHCP (smoltcp, no kernel IP on the bridged ports), activates with the
//! cloud running in the lab's "internet", and from then on everything goes over that
//! in-band uplink: alerts, file verdicts, heartbeats, commands, rule bundles. Real cloud
//! binary, real SMTP server, real dnsmasq, nginx and curl. Needs root; skipped otherwise.

use std::time::{Duration, Instant};

use mimamori_tests::system::*;
use serde_json::Value;

#[test]
fn in_band_uplink_alerts_commands_and_bundles() {
    let timing = "mail_window = \"3s\"\nstartup_grace = \"0s\"\nmail_retry_min = \"1s\"";
    let Some(s) = System::up("sys", timing, true) else {
        return;
    };
    // 1. the appliance's own address: a dnsmasq lease for its MAC, ping from the LAN
    let stats = s.lab.ctl("stats")["stats"].clone();
    let mgmt = &stats["mgmt"];
    let ip = mgmt["ipv4"]
        .as_str()
        .map(|c| c.split('/').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no management address in stats: {stats}"));
    let leases = std::fs::read_to_string(s.lab.dir.join("dnsmasq.leases")).unwrap_or_default();
    assert!(
        leases.contains(&ip),
        "dnsmasq gave no lease for {ip}: {leases}"
    );
    let ping = s.lab.exec("lan", &["ping", "-c", "3", "-W", "2", &ip]);
    assert_eq!(ping.code, 0, "ping {ip} from the LAN: {}", ping.stdout);
    let dev = s.device();
    assert_eq!(dev["status"], "active", "{dev}");
    assert!(
        dev["firmware"].as_str().is_some_and(|f| !f.is_empty()),
        "{dev}"
    );

    // 2. EICAR from the LAN: blocked, one ★★☆ mail, the alert with the client's IP and
    // MAC, no payload byte in the cloud
    let mac = lan_mac(&s.lab);
    let r = s
        .lab
        .curl("lan", 5, &["-4", "http://www.lab.test/eicar.com"]);
    assert!(
        !r.stdout.contains("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"),
        "EICAR arrived"
    );
    wait("the EICAR alert in the cloud", 30, || {
        s.alerts().iter().any(|a| a["event"]["file"].is_object())
    });
    let alerts = s.alerts();
    let file = alerts
        .iter()
        .find(|a| a["event"]["file"].is_object())
        .expect("the file alert");
    assert_eq!(file["level"], "medium", "EICAR is ★★☆: {file}");
    assert_eq!(file["event"]["file"]["flow"]["internal_ip"], LAN_IP);
    let mac_bytes: Vec<Value> = mac
        .split(':')
        .map(|h| Value::from(u64::from_str_radix(h, 16).unwrap_or(999)))
        .collect();
    assert_eq!(
        file["event"]["file"]["flow"]["internal_mac"],
        Value::Array(mac_bytes),
        "{file}"
    );
    wait("the ★★☆ mail", 30, || s.mails_with("★★☆") >= 1);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(s.mails_with("★★☆"), 1, "exactly one ★★☆ mail");
    let hits = contains_bytes(&s.dir.join("cloud"), b"EICAR-STANDARD-ANTIVIRUS");
    assert!(
        hits.is_empty(),
        "payload bytes in the cloud's files: {hits:?}"
    );

    // 3. a C2 check-in: ★★★ mail, the host isolated at once (auto-isolation), it reaches
    // only its allow-list (DNS); released from admin, it works again
    let r = s
        .lab
        .curl("lan", 5, &["-4", "http://c2.lab.test/c2/beacon"]);
    assert_ne!(r.stdout.trim(), "ok", "the C2 beacon got through");
    let is_c2 = |a: &Value| a["event"]["alert"]["detection"]["Signature"]["sid"] == C2_SID;
    wait("the C2 alert in the cloud", 30, || {
        s.alerts().iter().any(is_c2)
    });
    let high = s.alerts().into_iter().find(is_c2).expect("the C2 alert");
    assert_eq!(high["level"], "high", "{high}");
    wait("the ★★★ mail", 30, || s.mails_with("★★★") >= 1);
    wait("the host isolated on the appliance", 30, || {
        s.lab.ctl("isolated")["isolated"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    });
    let dev = s.device();
    assert!(
        dev["commands"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["origin"]
                .as_str()
                .is_some_and(|o| o.starts_with("auto-isolation"))
                && c["state"] == "done"),
        "auto-isolation command not acknowledged: {dev}"
    );
    // (the lab's own [isolation] allow-list lets www.lab.test:80 through; c2.lab.test
    // serves the same page and is not on it)
    let web = s.lab.curl("lan", 3, &["-4", "http://c2.lab.test/"]);
    assert_ne!(web.code, 0, "an isolated host reached the web");
    let dns = s.lab.exec("lan", &["getent", "ahostsv4", "www.lab.test"]);
    assert!(
        dns.stdout.contains("198.18.0.80"),
        "the allow-list (DNS) is not reachable: {} {}",
        dns.stdout,
        dns.stderr
    );
    let mac_host = s.lab.ctl("isolated")["isolated"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    s.cloud
        .admin(&["device", "release", &s.device, "--host", &mac_host]);
    wait("the release carried out", 30, || {
        s.lab.ctl("isolated")["isolated"]
            .as_array()
            .is_some_and(|v| v.is_empty())
    });
    let web = s.lab.curl("lan", 5, &["-4", "http://c2.lab.test/"]);
    assert!(
        web.stdout.contains("a normal page"),
        "released host: {}",
        web.stderr
    );

    // 4. a bundle with a new rule goes live while a download keeps flowing; a bundle
    // signed with another key is refused and reported, the running one stays
    let out = s.dir.join("big.bin");
    let mut dl = std::process::Command::new("ip")
        .args(["netns", "exec", &format!("{}-lan", s.lab.prefix)])
        .args(["curl", "-4", "-s", "-S", "--limit-rate", "25M", "-o"])
        .arg(&out)
        .arg("http://www.lab.test/big.bin")
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_secs(2));
    let bundle = s.dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rules")).expect("bundle dir");
    std::fs::write(
        bundle.join("rules/lab.rules"),
        format!("{C2_RULE}\n{NEW_RULE}\n"),
    )
    .expect("bundle rules");
    let published = s.cloud.admin(&[
        "rules",
        "publish",
        bundle.to_str().expect("utf-8 path"),
        "--version",
        "lab-1",
    ]);
    assert_eq!(published["version"], "lab-1", "{published}");
    wait("bundle lab-1 applied", 90, || {
        s.device()["bundle"]["applied"] == true && s.device()["bundle"]["version"] == "lab-1"
    });
    let r = s
        .lab
        .curl("lan", 5, &["-4", "http://www.lab.test/bundle-test"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait("the new rule's alert in the cloud", 30, || {
        s.alerts()
            .iter()
            .any(|a| a["event"]["alert"]["detection"]["Signature"]["sid"] == NEW_SID)
    });
    let st = dl.wait().expect("curl");
    assert!(st.success(), "the download broke during the swap: {st}");
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    assert_eq!(size, 400 << 20, "the download lost bytes");
    let _ = std::fs::remove_file(&out);
    // another signing key: the cloud makes a new one when its key file is gone
    std::fs::remove_file(s.dir.join("cloud/data/bundle-signing.pk8")).expect("key file");
    std::fs::write(bundle.join("rules/lab.rules"), format!("{C2_RULE}\n")).expect("rules");
    s.cloud.admin(&[
        "rules",
        "publish",
        bundle.to_str().expect("utf-8 path"),
        "--version",
        "lab-2",
    ]);
    wait("bundle lab-2 refused", 60, || {
        let b = &s.device()["bundle"];
        b["version"] == "lab-2" && b["applied"] == false
    });
    let dev = s.device();
    assert!(
        dev["bundle"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("signature")),
        "{dev}"
    );
    assert_eq!(
        dev["rules_version"], "lab-1",
        "the running bundle changed: {dev}"
    );
    let before = s
        .alerts()
        .iter()
        .filter(|a| a["event"]["alert"]["detection"]["Signature"]["sid"] == NEW_SID)
        .count();
    s.lab
        .curl("lan", 5, &["-4", "http://www.lab.test/bundle-test?again"]);
    wait("lab-1's rule still fires", 30, || {
        s.alerts()
            .iter()
            .filter(|a| a["event"]["alert"]["detection"]["Signature"]["sid"] == NEW_SID)
            .count()
            > before
    });
    let _ = s.contract;
}

#[test]
fn cloud_outage_and_an_appliance_kill_lose_nothing() {
    // a long grace: the cloud's own downtime gives no stop notice
    let timing = "mail_window = \"3s\"\nstartup_grace = \"5m\"\nmail_retry_min = \"1s\"";
    let Some(mut s) = System::up("out", timing, false) else {
        return;
    };
    let down = Instant::now();
    s.cloud.kill9();
    let beacon = |s: &System, i: usize| {
        s.lab.curl(
            "lan",
            3,
            &["-4", &format!("http://c2.lab.test/c2/beacon?n={i}")],
        );
    };
    for i in 0..5 {
        beacon(&s, i);
    }
    wait("5 alerts on the appliance", 10, || {
        eve_alerts(&s.lab, C2_SID) >= 5
    });
    // SIGKILL while the cloud is away: what was spooled must survive
    s.lab.kill9();
    s.lab.respawn();
    for i in 5..10 {
        beacon(&s, i);
    }
    wait("10 alerts on the appliance", 10, || {
        eve_alerts(&s.lab, C2_SID) >= 10
    });
    let outage = Duration::from_secs(120);
    if let Some(rest) = outage.checked_sub(down.elapsed()) {
        std::thread::sleep(rest);
    }
    s.cloud.spawn();
    s.wait_online(Duration::from_secs(120));
    // at least one per beacon; the restarted appliance also sees the dropped requests'
    // retransmissions of before the kill (new detections, also sent)
    let on_appliance = eve_alerts(&s.lab, C2_SID);
    assert!(on_appliance >= 10, "{on_appliance} alerts for 10 beacons");
    wait("every alert in the cloud", 120, || {
        cloud_alerts(&s, C2_SID).len() >= on_appliance
    });
    std::thread::sleep(Duration::from_secs(5));
    let alerts = cloud_alerts(&s, C2_SID);
    let mut distinct: Vec<(u64, u64)> = alerts
        .iter()
        .filter_map(|a| {
            let al = &a["event"]["alert"];
            Some((al["time"].as_u64()?, al["flow"]["internal_port"].as_u64()?))
        })
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        (alerts.len(), distinct.len()),
        (on_appliance, on_appliance),
        "every alert of the appliance exactly once in the cloud: {alerts:?}"
    );
}

#[test]
fn wan_link_down_gives_a_stop_notice_then_a_recovery_mail() {
    let timing = "mail_window = \"3s\"\nstartup_grace = \"0s\"\nmail_retry_min = \"1s\"\nstop_after = \"15s\"";
    let Some(s) = System::up("wan", timing, false) else {
        return;
    };
    assert_eq!(s.mails_with("機器停止"), 0);
    let r = s.lab.exec("app", &["ip", "link", "set", "wan", "down"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pulled = Instant::now();
    wait("the stop notice", 90, || s.mails_with("機器停止") >= 1);
    assert!(
        pulled.elapsed() >= Duration::from_secs(15),
        "stop notice before stop_after"
    );
    assert_eq!(s.mails_with("機器復旧"), 0);
    let r = s.lab.exec("app", &["ip", "link", "set", "wan", "up"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait("the recovery mail", 150, || s.mails_with("機器復旧") >= 1);
    assert_eq!(s.mails_with("機器停止"), 1, "one stop notice");
    assert_eq!(s.device()["online"], true);

    // contract end: the appliance is sent a wipe (the only thing it still gets), erases
    // its identity and spool, and stops
    let mut s = s;
    s.cloud.admin(&["contract", "end", &s.contract.to_string()]);
    let t = Instant::now();
    while s.lab.exited().is_none() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        s.lab.exited().is_some(),
        "the appliance did not stop after the wipe: {}",
        s.lab.log()
    );
    let state = s.dir.join("state");
    for f in ["identity.toml", "device.key", "spool.redb", "runtime.json"] {
        assert!(!state.join(f).exists(), "{f} survived the wipe");
    }
    let dev = s.device();
    let wipe = dev["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["what"] == "wipe")
        .cloned()
        .unwrap_or_default();
    assert_eq!(wipe["state"], "done", "{dev}");
}
