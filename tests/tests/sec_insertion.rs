//! Issue 21, finding 1: TCP insertion against the real inline bridge (`run`, prevent mode,
//! ET Open and Suricata's stream-event rules loaded with the lab's `drop` C2 rule).
//!
//! A real kernel TCP connection; then hand-made segments (tests/tests/sec_insertion.py,
//! sequence numbers from the sniffed handshake):
//! - checksum decoy: harmless bytes with a bad TCP checksum, then the real bytes at the
//!   same sequence numbers (the receiver throws the decoy away);
//! - overlap: a short harmless segment out of order, then a longer one with the real bytes
//!   at the same place (Linux keeps the longer copy), then the byte before them.
//!
//! Upload: a C2 beacon from the LAN to a server on inet that records what it received.
//! Download: EICAR from a server on inet that crafts its answer. First with the appliance's
//! protections switched off (`stream.checksum-validation=no`, `stream.inline=no`: the
//! engine's behaviour before the fix) every attack gets through — the lab is faithful and
//! the checks can fail; then with the defaults none does, while ordinary traffic (pages, a
//! download, retransmitted segments with the same bytes) still flows.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use mimamori_tests::corpus;
use mimamori_tests::lab::Lab;
use mimamori_tests::system::{C2_SID, eve_alerts};

const EICAR_MARK: &str = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE";
/// Suricata's `stream-event:reassembly_overlap_different_data` rule.
const OVERLAP_SID: u64 = 2_210_050;
const RECORD_PORT: &str = "8081";
const SERVE_PORT: &str = "8082";

struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // SIGTERM: `timeout` passes it on to the python process (SIGKILL would not)
            let _ = std::process::Command::new("kill")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}

fn start(lab: &mut Lab, protected: bool) {
    let rules = format!(
        "lab.rules\", \"{}\", \"{}\"]",
        corpus().join("et-open/rules").display(),
        corpus()
            .join("suricata-reference/event-rules/stream-events.rules")
            .display()
    );
    let settings = if protected {
        "home_net = \"".to_string()
    } else {
        "settings = [\"stream.checksum-validation=no\", \"stream.inline=no\"]\nhome_net = \""
            .to_string()
    };
    lab.stop();
    lab.start(
        &[("lab.rules\"]", &rules), ("home_net = \"", &settings)],
        "",
    );
}

/// A request from the LAN node's kernel connection, sent the way `mode` says; what the
/// server recorded for it.
fn upload(lab: &Lab, mode: &str, id: &str, beacon: bool) -> String {
    let path = if beacon { "/c2/beacon" } else { "/c2/images" };
    let real = format!(
        "GET {path}?id={id} HTTP/1.1\\r\\nHost: c2.lab.test\\r\\nUser-Agent: lab\\r\\n\\r\\n"
    );
    let decoy = real.replace("/c2/beacon", "/c2/images");
    let script = lab.dir.join("insert.py");
    let r = lab.exec(
        "lan",
        &[
            "timeout",
            "20",
            "python3",
            &script.to_string_lossy(),
            "client",
            "198.18.0.82",
            RECORD_PORT,
            mode,
            &real,
            &decoy,
        ],
    );
    assert_eq!(r.code, 0, "client {mode}: {} {}", r.stdout, r.stderr);
    // the server gives up on an unfinished request after 4 s
    let t0 = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(lab.dir.join("uploads.txt")).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(&format!("id={id}"))) {
            return line.to_string();
        }
        if t0.elapsed() > Duration::from_secs(8) {
            return String::new();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn download(lab: &Lab, mode: &str) -> String {
    lab.curl(
        "lan",
        6,
        &[&format!("http://198.18.0.80:{SERVE_PORT}/{mode}")],
    )
    .stdout
}

fn worker_sum(lab: &Lab, key: &str) -> u64 {
    let s = lab.ctl("stats");
    s["workers"]
        .as_array()
        .map(|ws| ws.iter().filter_map(|w| w[key].as_u64()).sum())
        .unwrap_or(0)
}

/// The ordinary paths: a page, a 2 MB download, a request and its retransmission.
fn normal_traffic_flows(lab: &Lab, round: &str) {
    let r = lab.curl("lan", 10, &["http://www.lab.test/"]);
    assert!(
        r.code == 0 && !r.stdout.is_empty(),
        "{round}: page: {}",
        r.stderr
    );
    let r = lab.curl(
        "lan",
        20,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "http://www.lab.test/big.bin",
        ],
    );
    assert_eq!(
        r.stdout.trim(),
        "2097152",
        "{round}: download: {}",
        r.stderr
    );
    let got = upload(lab, "plain", &format!("plain-{round}"), false);
    assert!(
        got.contains("/c2/images?id=plain"),
        "{round}: a request sent twice (same bytes) must arrive: {got:?}"
    );
    let body = download(lab, "hello");
    assert!(
        body.starts_with("hello from the lab"),
        "{round}: crafted plain answer: {body:?}"
    );
}

#[test]
#[ignore = "WIP (issue 21 open): the python injector does not see the handshake it sniffs for in the lab (first round, protections off); the unit tests of checksums and overlaps pass"]
fn tcp_insertion_of_a_c2_beacon_and_eicar_is_blocked_both_directions() {
    if !mimamori_tests::lab::available() {
        return;
    }
    let mut lab = Lab::up("ins");
    std::fs::write(lab.dir.join("insert.py"), include_str!("sec_insertion.py")).expect("script");
    let eicar = std::fs::read(corpus().join("files/eicar/eicar.com")).expect("EICAR");
    let mut decoy = b"hello from the lab, nothing to see here ".to_vec();
    decoy.resize(eicar.len(), b'.');
    std::fs::write(lab.dir.join("eicar.bin"), &eicar).expect("body");
    std::fs::write(lab.dir.join("decoy.bin"), &decoy).expect("decoy");
    let big: Vec<u8> = (0..2_097_152u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(lab.dir.join("www/big.bin"), &big).expect("big file");
    let script = lab.dir.join("insert.py").to_string_lossy().into_owned();
    let up = lab.dir.join("uploads.txt").to_string_lossy().into_owned();
    let eb = lab.dir.join("eicar.bin").to_string_lossy().into_owned();
    let db = lab.dir.join("decoy.bin").to_string_lossy().into_owned();
    let _kids = Kids(vec![
        lab.spawn(
            "inet",
            &[
                "timeout",
                "600",
                "python3",
                &script,
                "record",
                "198.18.0.82",
                RECORD_PORT,
                &up,
            ],
        ),
        lab.spawn(
            "inet",
            &[
                "timeout",
                "600",
                "python3",
                &script,
                "serve",
                "198.18.0.80",
                SERVE_PORT,
                &eb,
                &db,
            ],
        ),
    ]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(Path::new(&lab.dir.join("www")).is_dir());

    // 1. protections off: the engine as it was — every insertion gets through
    start(&mut lab, false);
    normal_traffic_flows(&lab, "off");
    for mode in ["csum", "overlap"] {
        let got = upload(&lab, mode, &format!("{mode}-off"), true);
        assert!(
            got.contains("/c2/beacon"),
            "without the protections the {mode} insertion should pass (is the lab faithful?): {got:?}"
        );
        let body = download(&lab, mode);
        assert!(
            body.contains(EICAR_MARK),
            "without the protections EICAR by {mode} insertion should arrive: {body:?}"
        );
    }
    assert_eq!(eve_alerts(&lab, C2_SID), 0, "the decoy hid the beacon");

    // 2. the defaults: inline checksum validation and overlap rejection
    start(&mut lab, true);
    normal_traffic_flows(&lab, "on");
    let got = upload(&lab, "csum", "csum-on", true);
    assert!(
        !got.contains("/c2/beacon"),
        "checksum decoy: the beacon reached the server: {got:?}"
    );
    assert!(
        eve_alerts(&lab, C2_SID) >= 1,
        "the real beacon was inspected and dropped"
    );
    assert!(
        worker_sum(&lab, "bad_checksum") >= 1,
        "bad checksums counted: {}",
        lab.ctl("stats")
    );
    let got = upload(&lab, "overlap", "overlap-on", true);
    assert!(
        !got.contains("/c2/beacon"),
        "overlap: the beacon reached the server: {got:?}"
    );
    assert!(
        worker_sum(&lab, "overlap_drops") >= 1,
        "overlap drops counted: {}",
        lab.ctl("stats")
    );
    assert!(
        eve_alerts(&lab, OVERLAP_SID) >= 1,
        "stream event reassembly_overlap_different_data"
    );
    let before = worker_sum(&lab, "overlap_drops");
    for mode in ["csum", "overlap"] {
        let body = download(&lab, mode);
        assert!(
            !body.contains(EICAR_MARK),
            "EICAR arrived by {mode} insertion: {body:?}"
        );
    }
    assert!(
        worker_sum(&lab, "overlap_drops") > before,
        "server-side overlap dropped"
    );
    // the plain EICAR answer is caught as always
    assert!(!download(&lab, "plain").contains(EICAR_MARK));
    // and ordinary traffic still flows after the attacks
    normal_traffic_flows(&lab, "after");
    let eve = lab.eve();
    assert!(
        eve.iter().any(|e| e["event_type"] == "drop"),
        "dropped segments are in EVE"
    );
}
