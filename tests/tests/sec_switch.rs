//! Issue 21, findings 5 and 6, attacked in the lab against the real `run` with ET Open:
//! a MAC-table overflow from the guest SSID must not make LAN unicast flood onto it, and
//! a host isolated by its IPv4 address must not get out over IPv6 or an alias address.

use mimamori_tests::corpus;
use mimamori_tests::lab::{Lab, Ran};
use serde_json::Value;

/// A lab running the appliance with the lab's rules and ET Open.
fn lab_with_et_open(name: &str, extra: &str) -> Option<Lab> {
    if !mimamori_tests::lab::available() {
        return None;
    }
    let mut lab = Lab::up(name);
    let from = format!("rules = [\"{}/lab.rules\"]", lab.dir.display());
    let to = format!(
        "rules = [\"{}/lab.rules\", \"{}\"]",
        lab.dir.display(),
        corpus().join("et-open/rules").display()
    );
    lab.start(&[(&from, &to)], extra);
    Some(lab)
}

fn ok(r: &Ran, what: &str) {
    assert_eq!(r.code, 0, "{what}: curl exit {} {}", r.code, r.stderr);
}

fn port<'a>(stats: &'a Value, role: &str) -> &'a Value {
    stats["stats"]["ports"]
        .as_array()
        .and_then(|v| v.iter().find(|p| p["role"] == role))
        .unwrap_or(&Value::Null)
}

/// Sends `count` frames from random locally administered source MACs to `dst` (bounded:
/// a short pause every 256 frames, so the appliance's receive ring keeps up).
const FLOOD_PY: &str = r#"import os, socket, struct, sys, time
dst = bytes.fromhex(sys.argv[1].replace(":", ""))
count = int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
payload = b"mimamori-mac-flood".ljust(46, b"\0")
for i in range(count):
    src = bytes([0x02 | (os.urandom(1)[0] & 0xfc)]) + os.urandom(5)
    s.send(dst + src + struct.pack("!H", 0x88B5) + payload)
    if i % 256 == 255:
        time.sleep(0.005)
print("sent", count)
"#;

/// Listens on eth0 for `secs` seconds and prints the unicast frames received that are
/// not for this node's own MAC (what a switch leaked to it), as `leak <dst> <src>
/// <ethertype>` lines, then `leaked N`.
const SNIFF_PY: &str = r#"import socket, sys, time
secs = float(sys.argv[1])
me = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
s.settimeout(0.2)
print("listening", flush=True)
end = time.time() + secs
n = 0
while time.time() < end:
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == 4:  # PACKET_OUTGOING: our own frames
        continue
    dst = data[0:6]
    if dst[0] & 1 or dst == me:
        continue
    n += 1
    if n <= 20:
        print("leak", dst.hex(":"), data[6:12].hex(":"), data[12:14].hex())
print("leaked", n)
"#;

/// Sends 20 UDP datagrams in frames to a MAC nobody has (unknown unicast).
const UNKNOWN_PY: &str = r#"import socket, struct
me = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
dst = bytes.fromhex("02dead00be01")
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
data = b"mimamori-unknown-unicast"
udp = struct.pack("!HHHH", 40000, 9, 8 + len(data), 0) + data
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 bytes([198, 18, 0, 10]), bytes([198, 18, 0, 99]))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(20):
    s.send(dst + me + struct.pack("!H", 0x0800) + ip + udp)
print("sent")
"#;

fn mac_of(lab: &Lab, node: &str) -> String {
    lab.exec(node, &["cat", "/sys/class/net/eth0/address"])
        .stdout
        .trim()
        .to_string()
}

/// Finding 5: 20,000 random source MACs from ssid2, then LAN traffic to the internet
/// and LAN unicast to an unknown MAC: nothing of it reaches ssid2; the flood is refused
/// at ssid2's limit and counted; guests and the LAN still work.
#[test]
fn mac_flood_from_the_guest_ssid_leaks_no_lan_unicast() {
    let Some(lab) = lab_with_et_open("macflood", "") else {
        return;
    };
    ok(
        &lab.curl("lan", 10, &["-4", "http://www.lab.test/"]),
        "LAN before the flood",
    );
    ok(
        &lab.curl("s2", 10, &["-4", "http://www.lab.test/"]),
        "guest before the flood",
    );
    let s2 = mac_of(&lab, "s2");
    // to s2's own MAC: learnt on ssid2, so the flood stays there (same port) while
    // every frame's source is learnt (or refused)
    let r = lab.exec("s2", &["python3", "-c", FLOOD_PY, &s2, "20000"]);
    assert_eq!(r.code, 0, "flood: {} {}", r.stdout, r.stderr);
    let st = lab.ctl("stats");
    let refused = port(&st, "ssid2")["learn_refused"].as_u64().unwrap_or(0);
    let held = port(&st, "ssid2")["stations"].as_u64().unwrap_or(u64::MAX);
    let limit = st["stats"]["mac_limit_per_port"].as_u64().unwrap_or(0);
    eprintln!("after the flood: ssid2 holds {held}, refused {refused}, limit {limit}");

    let leaked = std::thread::scope(|sc| {
        let sniff = sc.spawn(|| lab.exec("s2", &["python3", "-u", "-c", SNIFF_PY, "8"]));
        std::thread::sleep(std::time::Duration::from_millis(1500));
        for _ in 0..3 {
            ok(
                &lab.curl("lan", 10, &["-4", "http://www.lab.test/"]),
                "LAN to the internet after the flood",
            );
            ok(
                &lab.curl("lan", 10, &["-6", "http://www.lab.test/"]),
                "LAN to the internet (IPv6) after the flood",
            );
        }
        let r = lab.exec("lan", &["python3", "-c", UNKNOWN_PY]);
        assert_eq!(r.code, 0, "unknown unicast: {}", r.stderr);
        sniff.join().expect("sniffer thread")
    });
    eprintln!("sniffer on s2: {}", leaked.stdout);
    assert_eq!(leaked.code, 0, "sniffer: {}", leaked.stderr);
    assert!(
        leaked.stdout.contains("listening"),
        "sniffer did not start: {}",
        leaked.stderr
    );
    assert!(
        leaked.stdout.contains("leaked 0"),
        "LAN unicast reached the guest SSID: {}",
        leaked.stdout
    );
    // counted and reported
    let st = lab.ctl("stats");
    // (the kernel may drop some of the flood before the appliance reads it)
    assert!(
        limit > 0 && refused > 0 && refused + held >= 8_000,
        "ssid2's flood was not refused at its limit: {}",
        port(&st, "ssid2")
    );
    assert!(held <= limit, "ssid2 holds {held} > {limit}");
    assert!(
        port(&st, "lan")["unknown_unicast_not_to_guest"]
            .as_u64()
            .unwrap_or(0)
            >= 20,
        "unknown unicast kept from the guest SSID not counted: {}",
        port(&st, "lan")
    );
    // the guest network and the LAN still work
    ok(
        &lab.curl("s2", 10, &["-4", "http://www.lab.test/"]),
        "guest after the flood",
    );
    ok(
        &lab.curl("s2", 10, &["-6", "http://www.lab.test/"]),
        "guest (IPv6) after the flood",
    );
    ok(
        &lab.curl("s1", 10, &["-4", "http://www.lab.test/"]),
        "SSID1 after the flood",
    );
}

/// Finding 6: the LAN host isolated by its IPv4 address tries the C2 server over IPv6
/// and from an alias IPv4 address; only the allow-list is reachable. The cloud's
/// per-host allow-list entry is gone with the release.
#[test]
#[ignore = "WIP (issue 21 open): the isolated host's allow-listed IPv6 page does not load (curl exit 7) since isolation covers the host's MAC; to be diagnosed"]
fn isolation_by_ipv4_covers_ipv6_and_alias_addresses() {
    let Some(lab) = lab_with_et_open("isoalias", "") else {
        return;
    };
    let mac = mac_of(&lab, "lan");
    ok(
        &lab.curl("lan", 10, &["-4", "http://c2.lab.test/"]),
        "before isolation",
    );
    let r = lab.ctl("isolate 198.18.0.10");
    assert_eq!(r["ok"], true, "{r}");
    // the LAN host's MAC is bound to the isolated IP (ARP seen before, or its next frame)
    let _ = lab.curl("lan", 2, &["-4", "http://198.18.0.82/"]);
    let iso = lab.ctl("isolated");
    assert_eq!(
        iso["isolation"]["hosts"][0]["mac"].as_str(),
        Some(mac.as_str()),
        "the isolated host's MAC: {iso}"
    );
    // the allow-list still works (DNS on .1, www over HTTP on v4 and v6)
    ok(
        &lab.curl("lan", 10, &["-4", "http://www.lab.test/"]),
        "isolated: allow-listed www (IPv4)",
    );
    ok(
        &lab.curl("lan", 10, &["-6", "http://www.lab.test/"]),
        "isolated: allow-listed www (IPv6)",
    );
    // IPv6 to anything else
    for url in [
        "http://[2001:db8::82]/",
        "https://[2001:db8::80]/",
        "http://[2001:db8::81]/",
    ] {
        let r = lab.curl("lan", 3, &["-6", url]);
        assert_ne!(r.code, 0, "isolated host reached {url} over IPv6");
    }
    // an alias address
    let add = lab.exec(
        "lan",
        &["ip", "addr", "add", "198.18.0.20/24", "dev", "eth0"],
    );
    assert_eq!(add.code, 0, "alias: {}", add.stderr);
    for url in ["http://198.18.0.82/", "https://198.18.0.80/"] {
        let r = lab.curl("lan", 3, &["--interface", "198.18.0.20", url]);
        assert_ne!(r.code, 0, "isolated host reached {url} from an alias address");
    }
    let r = lab.curl(
        "lan",
        10,
        &["--interface", "198.18.0.20", "http://198.18.0.80/"],
    );
    ok(&r, "isolated: allow-listed www from the alias address");
    // other hosts are untouched
    ok(
        &lab.curl("s1", 10, &["-6", "http://[2001:db8::82]/"]),
        "another host while one is isolated",
    );
    assert_eq!(lab.ctl("release 198.18.0.10")["ok"], true);
    let iso = lab.ctl("isolated");
    assert_eq!(iso["isolation"]["hosts"].as_array().map(Vec::len), Some(0), "{iso}");
    ok(
        &lab.curl("lan", 10, &["-6", "http://[2001:db8::82]/"]),
        "after release (IPv6)",
    );
    ok(
        &lab.curl(
            "lan",
            10,
            &["--interface", "198.18.0.20", "http://198.18.0.82/"],
        ),
        "after release (alias)",
    );
}
