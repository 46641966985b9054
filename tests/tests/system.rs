//! The whole system in the lab (SPEC §3.4, §7, issue 7): the appliance gets its own address
//! from dnsmasq by DHCP (smoltcp, no kernel IP on the bridged ports), activates with the
//! cloud running in the lab's "internet", and from then on everything goes over that
//! in-band uplink: alerts, file verdicts, heartbeats, commands, rule bundles. Real cloud
//! binary, real SMTP server, real dnsmasq, nginx and curl. Needs root; skipped otherwise.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mimamori_tests::cloud::{Cloud, Place, Smtp, provision, subject, wait_for};
use mimamori_tests::lab::Lab;
use serde_json::Value;

/// The C2 rule: ET Open's shape for a command-and-control check-in (★★★ by the default
/// scoring policy: trojan-activity, Major, confidence High).
const C2_RULE: &str = r#"drop http any any -> any any (msg:"LAB C2 check-in (test)"; flow:to_server,established; http.uri; content:"/c2/beacon"; classtype:trojan-activity; metadata: signature_severity Major, confidence High; sid:9100001; rev:1;)"#;
const C2_SID: u64 = 9_100_001;
/// The rule a published bundle adds.
const NEW_RULE: &str = r#"alert http any any -> any any (msg:"LAB rule from a bundle (test)"; flow:to_server,established; http.uri; content:"/bundle-test"; classtype:policy-violation; sid:9200001; rev:1;)"#;
const NEW_SID: u64 = 9_200_001;
const LAN_IP: &str = "198.18.0.10";

/// A lab with the cloud (and its SMTP server) on the "internet" node and the appliance
/// activated through its in-band address.
struct System {
    lab: Lab,
    cloud: Cloud,
    smtp: Smtp,
    contract: u64,
    device: String,
    dir: PathBuf,
}

fn lan_mac(lab: &Lab) -> String {
    lab.exec("lan", &["cat", "/sys/class/net/eth0/address"])
        .stdout
        .trim()
        .to_string()
}

impl System {
    /// `timing`: the cloud's `[timing]` body. `auto_isolation`: the contract's option.
    fn up(name: &str, timing: &str, auto_isolation: bool) -> Option<System> {
        if !mimamori_tests::lab::available() {
            return None;
        }
        let lab = Lab::up(name);
        let dir = lab.dir.join("system");
        std::fs::create_dir_all(&dir).expect("test folder");
        let inet = format!("{}-inet", lab.prefix);
        let smtp = Smtp::start_in(Some(&inet), &dir.join("mail"), 2525);
        let place = Place {
            netns: Some(inet.clone()),
            ingest_ip: Some("198.18.0.1".into()),
            server_names: vec!["cloud.lab.test".into()],
        };
        std::fs::create_dir_all(dir.join("cloud")).expect("cloud folder");
        let cloud = Cloud::start_in(place, &dir.join("cloud"), 2525, timing);
        let (contract, device, code) = provision(&cloud, &["owner@example.com"]);
        if auto_isolation {
            cloud.admin(&[
                "contract",
                "isolation",
                &contract.to_string(),
                "--auto",
                "on",
                "--allow",
                "198.18.0.1:53",
            ]);
        }
        let ca = mimamori_tests::cloud::ca_file(&cloud);
        let key = cloud.admin(&["rules", "status"])["public_key"]
            .as_str()
            .expect("rules status names the public key")
            .to_string();
        let rules = dir.join("c2.rules");
        std::fs::write(&rules, format!("{C2_RULE}\n")).expect("rules");
        // the cloud scores from its own copy of the rules the appliance runs
        mimamori_tests::cloud::import_rules(&cloud, &rules);
        let state = dir.join("state");
        let extra = format!(
            "[uplink]\nstate_dir = {state:?}\ncloud = \"cloud.lab.test:{}\"\nactivation_code = \"{code}\"\ncloud_ca = {ca:?}\nbundle_key = \"{key}\"\nheartbeat_secs = 2\n",
            cloud.ingest
        );
        let mut lab = lab;
        let tpl_rules = format!("rules = [\"{}/lab.rules\"]", lab.dir.display());
        let ours = format!("rules = [{rules:?}]");
        // the office is the clients' corner of the lab's /24; the sites are the internet
        let home = (
            "home_net = \"[198.18.0.0/24,2001:db8::/64]\"",
            "home_net = \"[198.18.0.8/29,2001:db8::8/125]\"",
        );
        lab.start(&[(tpl_rules.as_str(), ours.as_str()), home], &extra);
        let s = System {
            lab,
            cloud,
            smtp,
            contract,
            device,
            dir,
        };
        s.wait_online(Duration::from_secs(60));
        Some(s)
    }

    fn device(&self) -> Value {
        self.cloud.admin(&["device", "show", &self.device])
    }

    fn wait_online(&self, limit: Duration) {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.device()["online"] == true {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "the appliance did not come online within {limit:?}: {}\n{}",
            self.device(),
            self.lab.log()
        );
    }

    fn alerts(&self) -> Vec<Value> {
        self.cloud.alerts()
    }

    fn mails_with(&self, needle: &str) -> usize {
        self.smtp
            .mails()
            .iter()
            .filter(|(_, m)| subject(m).contains(needle))
            .count()
    }
}

fn wait(what: &str, secs: u64, f: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(secs), f)
}

fn contains_bytes(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for e in walk(dir) {
        if let Ok(b) = std::fs::read(&e) {
            if b.windows(needle.len()).any(|w| w == needle) {
                hits.push(e);
            }
        }
    }
    hits
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

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

fn eve_alerts(lab: &Lab, sid: u64) -> usize {
    lab.eve()
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == sid)
        .count()
}

fn cloud_alerts(s: &System, sid: u64) -> Vec<Value> {
    s.alerts()
        .into_iter()
        .filter(|a| a["event"]["alert"]["detection"]["Signature"]["sid"] == sid)
        .collect()
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
