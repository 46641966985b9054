//! The application layer against outside ground truth: the hostnames and SNIs the engine
//! extracts from the nDPI captures in `../shared/corpus/pcaps/ndpi` must agree with
//! nDPI's own per-flow results (`X.out`), and names on UT1 category lists must produce
//! category events.

use std::collections::HashMap;
use std::path::Path;

use mimamori_tests::{corpus, replay_without_rules, tempdir};

/// A flow's endpoints, order-independent: "proto a:port|b:port" with the two sorted.
fn flow_key(proto: &str, a: &str, b: &str) -> String {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    format!("{proto} {x}|{y}")
}

/// `1.2.3.4:80` or `[2001:db8::1]:443` (nDPI) → canonical `ip:port` (IPv6 compressed).
fn endpoint(s: &str) -> Option<String> {
    let (ip, port) = s.rsplit_once(':')?;
    let ip: std::net::IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(format!("{ip}:{port}"))
}

/// nDPI's flows with a Hostname/SNI whose protocol is HTTP, TLS or DNS (what the engine
/// parses; QUIC, mDNS and tunnels are not counted): key → (protocol, name).
fn ndpi_names(out: &str) -> HashMap<String, (String, String)> {
    let mut m = HashMap::new();
    for line in out.lines() {
        let Some(host) = line
            .split("[Hostname/SNI: ")
            .nth(1)
            .and_then(|r| r.split(']').next())
        else {
            continue;
        };
        let Some(proto) = line
            .split("[proto: ")
            .nth(1)
            .and_then(|r| r.split(']').next())
        else {
            continue;
        };
        // "91.26/TLS.ntop" → master "TLS"; tunnels look like "VXLAN:91..."
        if proto.contains(':') {
            continue;
        }
        let master = proto
            .split('/')
            .nth(1)
            .unwrap_or("")
            .split('.')
            .next()
            .unwrap_or("")
            .to_string();
        if !matches!(master.as_str(), "HTTP" | "TLS" | "DNS") || host.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        // "<n> TCP a:p <-> b:p [proto: ..."
        let Some(i) = f.iter().position(|w| *w == "<->") else {
            continue;
        };
        if i < 2 || i + 1 >= f.len() {
            continue;
        }
        let (Some(a), Some(b)) = (endpoint(f[i - 1]), endpoint(f[i + 1])) else {
            continue;
        };
        m.insert(flow_key(f[i - 2], &a, &b), (master, host.to_string()));
    }
    m
}

/// The names our EVE records give per flow: HTTP hostname, TLS SNI, DNS query name.
fn our_names(eve: &[serde_json::Value]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for e in eve {
        let name = match e["event_type"].as_str() {
            Some("http") => e["http"]["hostname"].as_str(),
            Some("tls") => e["tls"]["sni"].as_str(),
            Some("dns") => e["dns"]["rrname"].as_str(),
            _ => None,
        };
        let Some(name) = name else { continue };
        let (Some(src), Some(dst), Some(sp), Some(dp), Some(proto)) = (
            e["src_ip"].as_str(),
            e["dest_ip"].as_str(),
            e["src_port"].as_u64(),
            e["dest_port"].as_u64(),
            e["proto"].as_str(),
        ) else {
            continue;
        };
        let a = endpoint(&format!("[{src}]:{sp}")).unwrap_or_default();
        let b = endpoint(&format!("[{dst}]:{dp}")).unwrap_or_default();
        m.entry(flow_key(proto, &a, &b))
            .or_default()
            .push(name.to_string());
    }
    m
}

fn replay(pcap: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = tempdir(&format!(
        "app-layer-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    // no rules: only the application layer
    let eve = format!(
        "{}.json",
        pcap.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    );
    replay_without_rules(&dir, &eve, pcap, extra)
}

#[test]
fn hostnames_and_snis_agree_with_ndpi() {
    let dir = corpus().join("pcaps/ndpi");
    let mut total = 0usize;
    let mut agree = 0usize;
    let mut by_proto: HashMap<String, (usize, usize)> = HashMap::new();
    let mut misses = Vec::new();
    let mut outs: Vec<_> = std::fs::read_dir(&dir)
        .expect("ndpi captures")
        .flatten()
        .map(|e| e.path())
        .collect();
    outs.sort();
    for out in outs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "out"))
    {
        let pcap = out.with_extension("");
        if !pcap.is_file() {
            continue;
        }
        let want = ndpi_names(&std::fs::read_to_string(out).expect("reading .out"));
        if want.is_empty() {
            continue;
        }
        let got = our_names(&replay(&pcap, &[]));
        for (key, (proto, host)) in &want {
            total += 1;
            let e = by_proto.entry(proto.clone()).or_default();
            e.0 += 1;
            if got
                .get(key)
                .is_some_and(|v| v.iter().any(|n| n.eq_ignore_ascii_case(host)))
            {
                agree += 1;
                e.1 += 1;
            } else {
                let ours: Vec<String> = got
                    .get(key)
                    .map(|v| v.iter().take(3).cloned().collect())
                    .unwrap_or_default();
                misses.push(format!(
                    "{}: {key}: nDPI {host:?}, ours {ours:?}",
                    pcap.file_name().and_then(|n| n.to_str()).unwrap_or("")
                ));
            }
        }
    }
    let rate = agree as f64 / total.max(1) as f64;
    eprintln!(
        "hostname/SNI agreement with nDPI: {agree}/{total} flows ({:.1}%), by protocol {by_proto:?}",
        rate * 100.0
    );
    for m in misses.iter().take(40) {
        eprintln!("  {m}");
    }
    assert!(
        total > 500,
        "expected the nDPI captures to name many flows, got {total}"
    );
    assert!(
        rate >= 0.95,
        "hostname/SNI agreement {:.1}% is below 95%",
        rate * 100.0
    );
}

#[test]
fn listed_snis_and_dns_names_produce_category_events() {
    // the categories are UT1's own lists; the capture's names are looked up in them
    let ut1 = corpus().join("ut1");
    let pcap = corpus().join("pcaps/ndpi/dns.pcap");
    let plain = replay(&pcap, &[]);
    let names: Vec<String> = plain
        .iter()
        .filter_map(|e| e["dns"]["rrname"].as_str().map(String::from))
        .collect();
    assert!(!names.is_empty(), "dns.pcap gives DNS names");
    // a category folder made for this test from a name the capture really carries
    let cats = tempdir("app-layer-cats");
    let name = &names[0];
    std::fs::create_dir_all(cats.join("testcat")).expect("mkdir");
    std::fs::write(cats.join("testcat/domains"), format!("{name}\n")).expect("write list");
    let with = replay(&pcap, &["--categories", cats.to_str().expect("utf-8 path")]);
    let tagged = with
        .iter()
        .filter(|e| {
            e["mimamori"]["categories"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == "testcat"))
        })
        .count();
    assert!(
        tagged > 0,
        "a DNS name on a category list is tagged with the category"
    );
    // all of UT1 loads and a real capture runs through it
    let tls = corpus().join("pcaps/ndpi/443-curl.pcap");
    let ev = replay(&tls, &["--categories", ut1.to_str().expect("utf-8 path")]);
    assert!(
        ev.iter()
            .any(|e| e["event_type"] == "tls" && e["tls"]["sni"] == "www.ntop.org")
    );
}

#[test]
fn phishing_name_is_blocked_in_prevent_mode_and_flagged_in_detect_mode() {
    let pcap = corpus().join("pcaps/ndpi/443-curl.pcap");
    let cats = tempdir("app-layer-phish");
    std::fs::create_dir_all(cats.join("phishing")).expect("mkdir");
    std::fs::write(cats.join("phishing/domains"), "ntop.org\n").expect("write list");
    let c = cats.to_str().expect("utf-8 path");
    let prevent = replay(&pcap, &["--categories", c, "--mode", "prevent"]);
    let alert = prevent
        .iter()
        .find(|e| e["event_type"] == "alert")
        .expect("an alert for the phishing SNI");
    assert_eq!(alert["alert"]["action"], "blocked");
    assert!(
        alert["alert"]["signature"]
            .as_str()
            .is_some_and(|s| s.contains("phishing")),
        "{alert}"
    );
    assert!(prevent.iter().any(|e| e["event_type"] == "drop"));
    let detect = replay(&pcap, &["--categories", c, "--mode", "detect"]);
    let alert = detect
        .iter()
        .find(|e| e["event_type"] == "alert")
        .expect("an alert in detect mode too");
    assert_eq!(alert["alert"]["action"], "allowed");
    assert!(!detect.iter().any(|e| e["event_type"] == "drop"));
    // not on the list: no alert
    let none = replay(&pcap, &[]);
    assert!(!none.iter().any(|e| e["event_type"] == "alert"));
}
