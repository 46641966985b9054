//! `replay` and `rules check` as a user runs them: real captures and rules from the
//! corpus, bad input, the EVE contract.

use std::process::Command;

use mimamori_tests::{appliance, corpus, eve_lines, run, tempdir};

fn replay(
    rules: &str,
    pcap: &std::path::Path,
    extra: &[&str],
) -> (std::process::Output, Vec<serde_json::Value>) {
    let dir = tempdir("replay");
    let rf = dir.join("t.rules");
    std::fs::write(&rf, rules).unwrap();
    let eve = dir.join("eve.json");
    let out = run(Command::new(appliance())
        .arg("replay")
        .arg("--rules")
        .arg(&rf)
        .arg("--eve")
        .arg(&eve)
        .args(extra)
        .arg(pcap));
    let events = eve_lines(&std::fs::read_to_string(&eve).unwrap_or_default());
    (out, events)
}

#[test]
fn stream_content_split_across_segments_alerts_once() {
    // The EICAR test string arrives in an HTTP response; the rule looks for it in the
    // reassembled stream of a real capture (first suricata-verify http-evader test).
    let pcap = std::fs::read_dir(corpus().join("suricata-verify"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("http-evader-"))
        })
        .filter_map(|d| {
            std::fs::read_dir(&d)
                .ok()?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "pcap"))
        })
        .find(|p| {
            let b = std::fs::read(p).unwrap();
            b.windows(16).any(|w| w == b"EICAR-STANDARD-A")
        })
        .expect("an http-evader capture carrying EICAR in clear");
    let (out, ev) = replay(
        r#"alert tcp any any -> any any (msg:"eicar in stream"; flow:established,to_client; content:"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"; sid:1; rev:2;)"#,
        &pcap,
        &["--set", "checksum-checks=none"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the rule alerts once; the file verdict (EICAR signature) is an alert of its own
    let alerts: Vec<_> = ev
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["gid"] != 9000)
        .collect();
    assert_eq!(alerts.len(), 1, "{ev:?}");
    assert!(
        ev.iter()
            .any(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == 9_000_002)
    );
    let a = alerts[0];
    assert_eq!(a["alert"]["signature_id"], 1);
    assert_eq!(a["alert"]["rev"], 2);
    assert_eq!(a["alert"]["action"], "allowed");
    assert_eq!(a["direction"], "to_client");
    assert_eq!(a["proto"], "TCP");
    assert!(a["pcap_cnt"].as_u64().unwrap() >= 1);
    assert!(a["timestamp"].as_str().unwrap().ends_with("+0000"));
}

#[test]
fn prevent_mode_blocks_and_logs_drops() {
    let pcap = corpus().join("pcaps/chrissanders/tcp_handshake.pcapng");
    let rules = "drop tcp any any -> any any (msg:\"syn\"; flags:S; sid:7;)";
    let (out, ev) = replay(rules, &pcap, &["--mode", "prevent"]);
    assert!(out.status.success());
    let alert = ev
        .iter()
        .find(|e| e["event_type"] == "alert")
        .expect("an alert");
    assert_eq!(alert["alert"]["action"], "blocked");
    assert!(
        ev.iter()
            .any(|e| e["event_type"] == "drop" && e["alert"]["signature_id"] == 7)
    );
    // the same rule in detect mode only alerts
    let (_, ev) = replay(rules, &pcap, &["--mode", "detect"]);
    let alerts: Vec<_> = ev.iter().filter(|e| e["event_type"] == "alert").collect();
    assert!(!alerts.is_empty());
    assert!(alerts.iter().all(|e| e["alert"]["action"] == "allowed"));
    assert!(!ev.iter().any(|e| e["event_type"] == "drop"));
}

#[test]
fn address_variables_can_be_set() {
    let pcap = corpus().join("pcaps/chrissanders/icmp_echo.pcapng");
    let rules = "alert icmp $HOME_NET any -> any any (msg:\"from home\"; itype:8; sid:3;)";
    let alerts = |ev: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        ev.into_iter()
            .filter(|e| e["event_type"] == "alert")
            .collect()
    };
    let default_ev = alerts(replay(rules, &pcap, &[]).1);
    let any_ev = alerts(
        replay(
            rules,
            &pcap,
            &[
                "--set",
                "vars.address-groups.HOME_NET=[0.0.0.0/0]",
                "--set",
                "vars.address-groups.EXTERNAL_NET=any",
            ],
        )
        .1,
    );
    assert!(!any_ev.is_empty());
    // default HOME_NET is RFC 1918: whether the capture's source is inside decides
    let src = any_ev[0]["src_ip"].as_str().unwrap().to_string();
    let private = src.starts_with("10.") || src.starts_with("192.168.") || src.starts_with("172.");
    assert_eq!(!default_ev.is_empty(), private, "src {src}");
}

#[test]
fn malformed_inputs_give_clear_errors() {
    let dir = tempdir("malformed");
    let not_pcap = dir.join("notes.pcap");
    std::fs::write(&not_pcap, b"this is not a capture at all, just text\n").unwrap();
    let rules = dir.join("ok.rules");
    std::fs::write(&rules, "alert ip any any -> any any (sid:1;)\n").unwrap();
    let out = run(Command::new(appliance())
        .args(["replay", "--rules"])
        .arg(&rules)
        .arg(&not_pcap));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a pcap or pcapng capture"), "{err}");

    // a capture cut in the middle of a record: frames before the cut are processed
    let good = std::fs::read(corpus().join("pcaps/chrissanders/http_post.pcapng")).unwrap();
    let cut = dir.join("cut.pcapng");
    std::fs::write(&cut, &good[..good.len() * 2 / 3]).unwrap();
    let eve = dir.join("cut.json");
    let out = run(Command::new(appliance())
        .args(["replay", "--rules"])
        .arg(&rules)
        .arg("--eve")
        .arg(&eve)
        .arg(&cut));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!std::fs::read_to_string(&eve).unwrap().is_empty());

    // a missing file
    let out = run(Command::new(appliance())
        .args(["replay", "--rules"])
        .arg(&rules)
        .arg(dir.join("nope.pcap")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));

    // a bad --set
    let out = run(Command::new(appliance())
        .args(["replay", "--set", "stream.midstream=maybe", "--rules"])
        .arg(&rules)
        .arg(&cut));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stream.midstream"));
}

#[test]
fn rules_check_reports_every_failure_and_writes_loaded_rules() {
    let dir = tempdir("rulescheck");
    let f = dir.join("mixed.rules");
    std::fs::write(
        &f,
        "alert tcp any any -> any any (msg:\"ok\"; content:\"a\"; sid:1;)\n\
         # alert tcp any any -> any any (msg:\"disabled\"; sid:2;)\n\
         alert tcp any any -> any any (msg:\"bad\"; ftpbounce; content:\"b\"; sid:3;)\n\
         alert tcp $NOT_A_VAR any -> any any (msg:\"bad var\"; sid:4;)\n\
         alert tcp any any -> any any (msg:\"bad pcre\"; pcre:\"/(/\"; sid:5;)\n\
         alert tcp any any -> any any (msg:\"ok too\"; content:\"c\"; sid:6;)\n",
    )
    .unwrap();
    let loaded = dir.join("loaded.rules");
    let out = run(Command::new(appliance())
        .args(["rules", "check"])
        .arg(&f)
        .arg("--write-loaded")
        .arg(&loaded));
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("mixed.rules:3: sid 3: unsupported keyword `ftpbounce`"),
        "{s}"
    );
    assert!(s.contains("mixed.rules:4: sid 4:"), "{s}");
    assert!(
        s.contains("mixed.rules:5: sid 5: pcre does not compile"),
        "{s}"
    );
    assert_eq!(s.lines().last().unwrap(), "loaded 2 of 5 rules");
    let written = std::fs::read_to_string(&loaded).unwrap();
    assert_eq!(written.lines().count(), 2);
    assert!(written.lines().all(|l| l.contains("ok")));
}

#[test]
fn et_open_loads_without_panic_and_reports_reasons() {
    let out = run(Command::new(appliance())
        .args(["rules", "check", "-q"])
        .arg(corpus().join("et-open/rules")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    let last = s.lines().last().unwrap();
    let n: usize = last.split_whitespace().nth(1).unwrap().parse().unwrap();
    let m: usize = last.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(m > 14_000, "{last}");
    // every failure is accounted for by a reason line
    let reasons: usize = s
        .lines()
        .skip_while(|l| !l.starts_with("failures by reason"))
        .skip(1)
        .take_while(|l| {
            l.starts_with("  ") && l.trim().chars().next().is_some_and(|c| c.is_ascii_digit())
        })
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(n + reasons, m, "{s}");
    assert!(n * 100 / m >= 90, "only {n} of {m} ET Open rules load");
}
