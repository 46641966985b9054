//! File verdicts on HTTP downloads: the EICAR download of the corpus (prevent: blocked and
//! never delivered whole; detect: alert only), and every file of
//! `../shared/corpus/files/hashes.tsv` served over HTTP in a capture made here.

use std::collections::HashMap;
use std::path::Path;

use mimamori_tests::pcapgen::Pcap;
use mimamori_tests::{corpus, replay_without_rules, tempdir};

/// The public SHA-256 of the EICAR test file.
const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

fn replay(name: &str, pcap: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    // no rules: file verdicts only
    replay_without_rules(&tempdir(name), "eve.json", pcap, extra)
}

fn of_type<'a>(ev: &'a [serde_json::Value], t: &str) -> Vec<&'a serde_json::Value> {
    ev.iter().filter(|e| e["event_type"] == t).collect()
}

#[test]
fn eicar_download_is_disarmed_in_prevent_mode_and_alerted_in_detect_mode() {
    let pcap = corpus().join("pcaps/suricata-verify/eicar-http-download.pcap");
    let prevent = replay("files-eicar-prevent", &pcap, &["--mode", "prevent"]);
    let info = of_type(&prevent, "fileinfo");
    assert_eq!(info.len(), 1, "one file in the capture");
    assert_eq!(info[0]["fileinfo"]["sha256"], EICAR_SHA256);
    assert_eq!(info[0]["fileinfo"]["verdict"], "signature");
    assert_eq!(info[0]["fileinfo"]["disarmed"], true);
    let alerts = of_type(&prevent, "alert");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["alert"]["action"], "blocked");
    // the segment carrying the file is dropped: it never reaches the client whole
    let drops = of_type(&prevent, "drop");
    assert!(
        drops.iter().any(|d| d["pcap_cnt"] == alerts[0]["pcap_cnt"]),
        "the packet completing the file is dropped"
    );

    let detect = replay("files-eicar-detect", &pcap, &["--mode", "detect"]);
    let alerts = of_type(&detect, "alert");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["alert"]["action"], "allowed");
    assert!(
        of_type(&detect, "drop").is_empty(),
        "detect mode never blocks"
    );
    assert_eq!(
        of_type(&detect, "fileinfo")[0]["fileinfo"]["sha256"],
        EICAR_SHA256
    );
}

#[test]
fn every_listed_file_served_over_http_is_detected() {
    let files = corpus().join("files");
    let tsv = std::fs::read_to_string(files.join("hashes.tsv")).expect("hashes.tsv");
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split('\t').collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .unwrap_or_else(|| panic!("column {n}"))
    };
    let (cf, cs) = (col("file"), col("sha256"));
    let mut pcap = Pcap::new();
    let mut want: HashMap<String, String> = HashMap::new(); // path → sha256
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let body = std::fs::read(files.join(f[cf])).unwrap_or_else(|e| panic!("{}: {e}", f[cf]));
        let name = f[cf].rsplit('/').next().unwrap_or(f[cf]);
        let port = 40000 + i as u16;
        pcap.http_download(
            ([198, 18, 0, 10], port),
            ([198, 19, 0, 80], 80),
            &format!("/dl/{name}"),
            &body,
        );
        want.insert(name.to_string(), f[cs].to_string());
    }
    // and one clean file nobody lists
    let clean: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    pcap.http_download(
        ([198, 18, 0, 11], 39999),
        ([198, 19, 0, 80], 80),
        "/dl/clean.bin",
        &clean,
    );
    let dir = tempdir("files-listed");
    let path = dir.join("downloads.pcap");
    pcap.write(&path);

    let hashes = files.join("hashes.tsv");
    let ev = replay(
        "files-listed-run",
        &path,
        &["--file-hashes", hashes.to_str().expect("utf-8 path")],
    );
    let info = of_type(&ev, "fileinfo");
    let mut seen = 0;
    for i in &info {
        let name = i["fileinfo"]["filename"].as_str().unwrap_or("");
        if name == "clean.bin" {
            assert_eq!(i["fileinfo"]["verdict"], "clean");
            continue;
        }
        let Some(sha) = want.get(name) else { continue };
        assert_eq!(
            i["fileinfo"]["sha256"].as_str(),
            Some(sha.as_str()),
            "{name}: hash as listed"
        );
        assert_ne!(i["fileinfo"]["verdict"], "clean", "{name} is listed");
        seen += 1;
    }
    assert_eq!(seen, want.len(), "every listed file was seen with its hash");
    let alerts = of_type(&ev, "alert");
    assert_eq!(
        alerts.len(),
        want.len(),
        "one alert per listed file, none for the clean one"
    );
    assert!(
        alerts
            .iter()
            .all(|a| a["fileinfo"]["filename"] != "clean.bin")
    );
}

#[test]
fn a_listed_file_is_cut_short_in_prevent_mode() {
    // a multi-segment file: the last segment is the one held back and dropped
    let files = corpus().join("files");
    let body = std::fs::read(files.join("clamav-testfiles/clam-nsis.exe")).expect("clam-nsis.exe");
    let mut pcap = Pcap::new();
    let frames = pcap.http_download(
        ([198, 18, 0, 12], 41000),
        ([198, 19, 0, 80], 80),
        "/setup.exe",
        &body,
    );
    let dir = tempdir("files-cut");
    let path = dir.join("cut.pcap");
    pcap.write(&path);
    let hashes = files.join("hashes.tsv");
    let ev = replay(
        "files-cut-run",
        &path,
        &[
            "--mode",
            "prevent",
            "--file-hashes",
            hashes.to_str().expect("utf-8 path"),
        ],
    );
    let alerts = of_type(&ev, "alert");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["alert"]["action"], "blocked");
    let first_drop = of_type(&ev, "drop")
        .iter()
        .filter_map(|d| d["pcap_cnt"].as_u64())
        .min()
        .expect("a drop");
    // the segments before the last went through; from the last one on, nothing
    let last_data_frame = (frames - 3 - 1) as u64; // before the ACK that follows it and the FINs
    assert_eq!(
        first_drop, last_data_frame,
        "the segment that completes the file is the first dropped"
    );
}

#[test]
fn traffic_record_sums_an_internal_hosts_flows() {
    // two downloads by one internal host inside one 10-minute bucket, one by another host
    let mut pcap = Pcap::new();
    let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    pcap.http_download(
        ([198, 18, 0, 20], 42000),
        ([198, 19, 0, 80], 80),
        "/a.bin",
        &body,
    );
    pcap.http_download(
        ([198, 18, 0, 20], 42001),
        ([198, 19, 0, 80], 80),
        "/b.bin",
        &body[..5000],
    );
    pcap.http_download(
        ([198, 18, 0, 21], 42002),
        ([198, 19, 0, 80], 80),
        "/c.bin",
        &body[..100],
    );
    let dir = tempdir("files-traffic");
    let path = dir.join("traffic.pcap");
    pcap.write(&path);
    // the IP bytes of each host's flows, read back from the capture (Ethernet frames)
    let raw = std::fs::read(&path).expect("capture");
    let mut per_host: HashMap<[u8; 4], u64> = HashMap::new();
    let mut off = 24;
    while off + 16 <= raw.len() {
        let caplen =
            u32::from_le_bytes(raw[off + 8..off + 12].try_into().expect("4 bytes")) as usize;
        let frame = &raw[off + 16..off + 16 + caplen];
        let (src, dst): ([u8; 4], [u8; 4]) = (
            frame[26..30].try_into().expect("src"),
            frame[30..34].try_into().expect("dst"),
        );
        let client = if src[1] == 18 { src } else { dst };
        *per_host.entry(client).or_default() += (caplen - 14) as u64;
        off += 16 + caplen;
    }
    let ev = replay(
        "files-traffic-run",
        &path,
        &["--set", "vars.address-groups.HOME_NET=[198.18.0.0/16]"],
    );
    let traffic = of_type(&ev, "traffic");
    let host = |h: &str| {
        traffic
            .iter()
            .find(|t| t["traffic"]["host"] == h)
            .unwrap_or_else(|| panic!("a summary for {h}: {traffic:?}"))
    };
    let a = host("198.18.0.20");
    assert_eq!(a["traffic"]["flows"], 2);
    assert_eq!(
        a["traffic"]["bytes"].as_u64(),
        per_host.get(&[198, 18, 0, 20]).copied()
    );
    let b = host("198.18.0.21");
    assert_eq!(b["traffic"]["flows"], 1);
    assert_eq!(
        b["traffic"]["bytes"].as_u64(),
        per_host.get(&[198, 18, 0, 21]).copied()
    );
    // by category and by application, the lines add up to the totals
    for t in [a, b] {
        for key in ["categories", "apps"] {
            let lines = t["traffic"][key].as_array().expect("lines");
            let bytes: u64 = lines.iter().filter_map(|l| l["bytes"].as_u64()).sum();
            let flows: u64 = lines.iter().filter_map(|l| l["flows"].as_u64()).sum();
            assert_eq!(Some(bytes), t["traffic"]["bytes"].as_u64(), "{key}");
            assert_eq!(Some(flows), t["traffic"]["flows"].as_u64(), "{key}");
        }
    }
}
