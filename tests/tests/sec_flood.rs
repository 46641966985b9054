//! Issue 21, finding 2: flooding must not force fail-open. A LAN host floods tiny UDP
//! datagrams (about 50 Mbit/s) through the real appliance (`run`, ET Open loaded, prevent
//! mode, one worker, connected to the real cloud) while it fetches EICAR and the phishing
//! page 20 times each: nothing may be delivered (the old code forwarded frames of a full
//! queue uninspected). The flooding host is shed and reported (`ctl stats`, an EVE alert,
//! the cloud's alert and `admin device show`), and another host's pages still load.
//! Needs root (CI is root); skipped otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mimamori_tests::corpus;
use mimamori_tests::lab::Lab;
use mimamori_tests::system::{LAN_IP, System, cloud_alerts, lan_mac, wait};
use serde_json::Value;

const SHED_SID: u64 = 9_000_003;

/// UDP datagrams of 64 bytes to `dst` port 9 at up to `rate` bit/s (paced; as fast as the
/// machine allows when it cannot keep up) for `secs` seconds; prints the count sent.
const FLOOD_PY: &str = r#"import socket, sys, time
dst, secs, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"\0" * 64
per_s = rate / 8 / len(payload)
t0 = time.time()
end = t0 + secs
sent = 0
while time.time() < end:
    for _ in range(256):
        try:
            s.sendto(payload, (dst, 9))
        except OSError:
            pass
    sent += 256
    ahead = sent / per_s - (time.time() - t0)
    if ahead > 0:
        time.sleep(ahead)
print(sent)
"#;

/// `n` fetches of `url` from `node` (3 s each); the responses, split by a marker line.
fn fetch_loop(lab: &Lab, node: &str, url: &str, n: u32) -> Vec<String> {
    let script = format!(
        "for i in $(seq {n}); do curl -s -k --max-time 3 {url}; echo; echo '=====mimamori====='; done"
    );
    let r = lab.exec(node, &["sh", "-c", &script]);
    r.stdout
        .split("=====mimamori=====")
        .map(str::to_string)
        .filter(|s| !s.trim().is_empty())
        .collect()
}

fn port<'a>(stats: &'a Value, role: &str) -> &'a Value {
    stats["stats"]["ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["role"] == role))
        .unwrap_or(&Value::Null)
}

fn sum(stats: &Value, key: &str) -> u64 {
    stats["stats"]["ports"].as_array().map_or(0, |ps| {
        ps.iter().map(|p| p[key].as_u64().unwrap_or(0)).sum()
    })
}

#[test]
fn a_lan_flood_is_shed_never_bypassed() {
    let et = corpus().join("et-open/rules");
    let Some(s) = System::up_with("flood", "", false, &[et], "[bridge]\nworkers = 1\n") else {
        return;
    };
    let lab = &s.lab;
    let mac = lan_mac(lab);
    // the legitimate path before the flood
    let r = lab.curl("s1", 10, &["http://www.lab.test/"]);
    assert!(
        r.stdout.contains("a normal page"),
        "s1 before the flood: {} {}",
        r.stdout,
        r.stderr
    );

    // the flood, bounded in time (stopped as soon as the fetches are done)
    let secs = "120";
    let mut flood = lab.spawn(
        "lan",
        &["python3", "-c", FLOOD_PY, "198.18.0.82", secs, "50000000"],
    );
    let started = Instant::now();
    // let the queue fill up
    std::thread::sleep(Duration::from_secs(3));
    let during = lab.ctl("stats");

    // another host's pages keep loading meanwhile
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let stop = Arc::clone(&stop);
        let prefix = lab.prefix.clone();
        std::thread::spawn(move || {
            let (mut ok, mut tries) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) && ok < 10 {
                tries += 1;
                let o = std::process::Command::new("ip")
                    .args(["netns", "exec", &format!("{prefix}-s1")])
                    .args(["curl", "-s", "--max-time", "10", "http://www.lab.test/"])
                    .output();
                if o.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("a normal page")) {
                    ok += 1;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            (ok, tries)
        })
    };
    let phish = {
        let prefix = lab.prefix.clone();
        std::thread::spawn(move || {
            let script = "for i in $(seq 20); do curl -s --max-time 3 http://phish.lab.test/; echo; echo '=====mimamori====='; done";
            let o = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &format!("{prefix}-lan"),
                    "sh",
                    "-c",
                    script,
                ])
                .output()
                .expect("curl loop");
            String::from_utf8_lossy(&o.stdout).to_string()
        })
    };
    let eicar = fetch_loop(lab, "lan", "http://www.lab.test/eicar.com", 20);
    let phish = phish.join().expect("phishing fetches");
    let flood_still_on = started.elapsed() < Duration::from_secs(118);
    let (ok, tries) = other.join().expect("s1 fetches");
    stop.store(true, Ordering::Relaxed);
    let stats = lab.ctl("stats");
    let _ = flood.kill();
    let _ = flood.wait();

    let eicar_delivered = eicar
        .iter()
        .filter(|b| b.contains("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"))
        .count();
    let phish_delivered = phish
        .split("=====mimamori=====")
        .filter(|b| b.contains("please enter your password"))
        .count();
    eprintln!(
        "flood: eicar {eicar_delivered}/20 delivered, phishing {phish_delivered}/20 delivered, s1 {ok} loads in {tries} tries\nstats during: {}\nstats after: {}",
        port(&during, "lan"),
        port(&stats, "lan")
    );
    assert!(
        flood_still_on,
        "the fetches outlasted the flood: the test proves nothing"
    );
    assert_eq!(
        eicar_delivered,
        0,
        "EICAR got through the appliance during the flood (uninspected frames: bypass_full {}, bypass_stalled {})",
        sum(&stats, "bypass_full"),
        sum(&stats, "bypass_stalled")
    );
    assert_eq!(
        phish_delivered, 0,
        "the phishing page got through during the flood"
    );
    assert_eq!(
        ok, 10,
        "s1's pages did not load during the flood ({ok} of {tries})"
    );

    // the flood was shed, not bypassed, and the flooding host is named
    let lan = port(&stats, "lan");
    assert!(
        lan["shed"].as_u64().unwrap_or(0) > 0,
        "the flooding host was not shed: {lan}"
    );
    assert_eq!(
        sum(&stats, "bypass_full"),
        0,
        "frames of a full queue bypassed: {stats}"
    );
    assert_eq!(
        lan["shed_top"]["ip"], LAN_IP,
        "the most shed host is not the flooding host: {lan}"
    );
    assert_eq!(lan["shed_top"]["mac"], mac.as_str(), "{lan}");
    // the other host was not shed as a heavy sender
    let ssid1 = port(&stats, "ssid1");
    assert_eq!(ssid1["shed"], 0, "s1 was shed as a heavy sender: {ssid1}");

    // reported: an EVE alert naming the host, the cloud's alert and the device's counters
    // read leniently: the writer may be half-way through a line of the flood's events
    std::thread::sleep(Duration::from_millis(500));
    let eve: Vec<Value> = std::fs::read_to_string(lab.dir.join("eve.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let said: Vec<&Value> = eve
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == SHED_SID)
        .collect();
    assert!(!said.is_empty(), "no shedding alert in EVE");
    assert!(
        said.iter()
            .any(|e| e["load"]["host_ip"] == LAN_IP && e["load"]["port"] == "lan"),
        "the EVE alert does not name the flooding host: {said:?}"
    );
    wait("the cloud gets the shedding alert", 60, || {
        cloud_alerts(&s, SHED_SID)
            .iter()
            .any(|a| a["event"]["alert"]["flow"]["internal_ip"] == LAN_IP)
    });
    wait("admin device show reports the shed frames", 60, || {
        s.device()["counters"]["bridge_shed"].as_u64().unwrap_or(0) > 0
    });
    let d = s.device();
    assert_eq!(d["counters"]["bridge_bypass_full"], 0, "{d}");
    // after the flood, everything is inspected and delivered as usual again
    let r = lab.curl("lan", 10, &["http://www.lab.test/"]);
    assert!(
        r.stdout.contains("a normal page"),
        "lan after the flood: {} {}",
        r.stdout,
        r.stderr
    );
    let r = lab.curl("lan", 10, &["http://www.lab.test/eicar.com"]);
    assert!(
        !r.stdout.contains("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"),
        "EICAR after the flood"
    );
}
