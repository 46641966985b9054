//! The inline bridge in the network lab (SPEC §3.1, §3.3, §7): real namespaces, veth
//! ports, dnsmasq, nginx, curl. Needs root (CI is root); skipped otherwise.

use std::time::{Duration, Instant};

use mimamori_tests::lab::{Lab, Ran};
use serde_json::Value;

const C2_SID: u64 = 9_100_001;

/// Sends (`send`) or waits for (`recv`) an 802.1Q-tagged frame (VLAN 100) on eth0, reading
/// the tag from the frame or from the kernel's auxiliary data; exit 0 when it arrived tagged.
const VLAN_PY: &str = r#"import socket, struct, sys, time
ETH_P_ALL = 3
mode = sys.argv[1]
if mode == "send":
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("eth0", 0))
    src = open("/sys/class/net/eth0/address").read().strip()
    mac = bytes.fromhex(src.replace(":", ""))
    frame = b"\xff" * 6 + mac + struct.pack("!HHH", 0x8100, 100, 0x88B5) + b"mimamori-vlan-test".ljust(46, b"\0")
    for _ in range(5):
        s.send(frame); time.sleep(0.1)
else:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind(("eth0", 0))
    s.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA
    s.settimeout(5)
    end = time.time() + 5
    while time.time() < end:
        data, anc, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(20))
        if b"mimamori-vlan-test" not in data:
            continue
        vid = None
        if data[12:14] == b"\x81\x00":
            vid = struct.unpack("!H", data[14:16])[0] & 0xfff
        for lvl, typ, d in anc:
            if lvl == 263 and typ == 8:
                st, ln, sn, mac, net, tci, tpid = struct.unpack("IIIHHHH", d[:20])
                if st & 0x10:
                    vid = tci & 0xfff
        print("vid", vid); sys.exit(0 if vid == 100 else 1)
    print("not received"); sys.exit(2)
"#;
const CATEGORY_SID: u64 = 9_000_001;
const FILE_SID: u64 = 9_000_002;

fn ok(r: &Ran, what: &str) {
    assert_eq!(r.code, 0, "{what}: curl exit {} {}", r.code, r.stderr);
}

fn alerts<'a>(eve: &'a [Value], sid: u64) -> Vec<&'a Value> {
    eve.iter()
        .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == sid)
        .collect()
}

/// The client got a reset: curl says so (exit 56 "Recv failure: Connection reset by
/// peer", or 35 in the TLS handshake).
fn reset(r: &Ran, what: &str) {
    assert!(
        r.code == 56 || r.code == 35 || r.code == 7,
        "{what}: expected a reset, curl exit {} {}",
        r.code,
        r.stderr
    );
    assert!(
        r.stderr.to_lowercase().contains("reset"),
        "{what}: curl does not report a reset: {}",
        r.stderr
    );
}

#[test]
fn prevent_mode_on_the_wire() {
    let Some(lab) = Lab::running("prevent", &[], "") else {
        return;
    };
    // DHCP through the bridge: a broadcast from the LAN reaches dnsmasq and back
    let d = lab.exec(
        "lan",
        &[
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-n",
            "-q",
            "-f",
            "-t",
            "5",
            "-s",
            "/bin/true",
        ],
    );
    assert_eq!(
        d.code, 0,
        "DHCP through the appliance failed: {} {}",
        d.stdout, d.stderr
    );
    for node in ["lan", "s1"] {
        for fam in ["-4", "-6"] {
            let w = format!("{node} {fam}");
            let r = lab.curl(node, 5, &[fam, "http://www.lab.test/"]);
            ok(&r, &format!("{w} normal page"));
            assert!(r.stdout.contains("a normal page"), "{w}: {}", r.stdout);
            let r = lab.curl(node, 5, &[fam, "https://www.lab.test/"]);
            ok(&r, &format!("{w} normal page over TLS"));
            // EICAR: never arrives, the client is reset
            let r = lab.curl(node, 5, &[fam, "http://www.lab.test/eicar.com"]);
            reset(&r, &format!("{w} EICAR download"));
            assert!(
                !r.stdout.contains("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"),
                "{w}: EICAR arrived"
            );
            // the phishing site: a block page over HTTP, a reset over HTTPS
            let r = lab.curl(
                node,
                5,
                &[fam, "-w", "\n%{http_code}", "http://phish.lab.test/"],
            );
            ok(&r, &format!("{w} phishing over HTTP"));
            assert!(
                r.stdout.ends_with("403"),
                "{w}: no 403 block page: {}",
                r.stdout
            );
            assert!(
                r.stdout.contains("phishing")
                    && r.stdout.contains("phish.lab.test")
                    && r.stdout.contains("Mimamori lab"),
                "{w}: block page does not name the category, host, appliance: {}",
                r.stdout
            );
            assert!(
                !r.stdout.contains("please enter your password"),
                "{w}: the phishing page arrived"
            );
            let r = lab.curl(node, 5, &[fam, "https://phish.lab.test/"]);
            reset(&r, &format!("{w} phishing over HTTPS"));
            // a C2 beacon: its flow is dropped (no answer at all)
            let r = lab.curl(node, 3, &[fam, "http://c2.lab.test/c2/beacon"]);
            assert_eq!(
                r.code, 28,
                "{w}: C2 beacon not dropped: {} {}",
                r.stdout, r.stderr
            );
        }
    }
    // a VLAN-tagged frame crosses with its tag (the kernel strips it on receive)
    let py = lab.dir.join("vlan.py");
    std::fs::write(&py, VLAN_PY).expect("writing vlan.py");
    let py = py.display().to_string();
    let rx = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{}-inet", lab.prefix),
            "python3",
            &py,
            "recv",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("vlan receiver");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lab.exec("lan", &["python3", &py, "send"]).code, 0);
    let out = rx.wait_with_output().expect("vlan receiver");
    assert!(
        out.status.success(),
        "the VLAN tag did not survive the bridge: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let eve = lab.eve();
    for (sid, what) in [
        (C2_SID, "C2 rule"),
        (CATEGORY_SID, "phishing category"),
        (FILE_SID, "EICAR file"),
    ] {
        let a = alerts(&eve, sid);
        // lan and s1, IPv4 and IPv6 (HTTP and HTTPS for the category)
        assert!(
            a.len() >= 4,
            "{what}: {} alerts, want one per client and family",
            a.len()
        );
        assert!(
            a.iter().all(|e| e["alert"]["action"] == "blocked"),
            "{what}: not blocked"
        );
        for src in ["198.18.0.10", "198.18.0.11"] {
            assert!(
                a.iter().any(|e| e["src_ip"] == src || e["dest_ip"] == src),
                "{what}: no alert for {src}"
            );
        }
    }
    let w = worker(&lab);
    assert!(
        w["injected"].as_u64().unwrap_or(0) >= 8,
        "resets/pages injected: {w}"
    );
}

#[test]
fn traffic_between_internal_ports_is_inspected() {
    let Some(lab) = Lab::running("inner", &[], "") else {
        return;
    };
    // a small web server on the SSID2 client and on the SSID1 client
    let dir = lab.dir.join("www").display().to_string();
    let mut servers: Vec<_> = ["s2", "s1"]
        .into_iter()
        .map(|node| {
            let args = [
                "python3",
                "-m",
                "http.server",
                "8080",
                "--bind",
                "::",
                "--directory",
                &dir,
            ];
            lab.spawn(node, &args)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    for (from, to, to4, to6) in [
        ("s1", "s2", "198.18.0.12", "[2001:db8::12]"),
        ("lan", "s1", "198.18.0.11", "[2001:db8::11]"),
    ] {
        for host in [to4, to6] {
            let w = format!("{from}->{to} {host}");
            let r = lab.curl(from, 5, &[&format!("http://{host}:8080/index.html")]);
            ok(&r, &w);
            assert!(r.stdout.contains("a normal page"), "{w}: {}", r.stdout);
            let r = lab.curl(from, 3, &[&format!("http://{host}:8080/c2/beacon")]);
            assert_eq!(
                r.code, 28,
                "{w}: C2 beacon between internal ports not dropped ({})",
                r.stderr
            );
            let r = lab.curl(from, 5, &[&format!("http://{host}:8080/eicar.com")]);
            reset(&r, &format!("{w} EICAR"));
        }
    }
    for s in &mut servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    let eve = lab.eve();
    let c2 = alerts(&eve, C2_SID);
    for (src, dst) in [
        ("198.18.0.11", "198.18.0.12"),
        ("198.18.0.10", "198.18.0.11"),
        (
            "2001:0db8:0000:0000:0000:0000:0000:0011",
            "2001:0db8:0000:0000:0000:0000:0000:0012",
        ),
    ] {
        assert!(
            c2.iter().any(|e| e["src_ip"] == src && e["dest_ip"] == dst),
            "no C2 alert {src} -> {dst}"
        );
    }
    // same-port traffic is never forwarded: the ports saw frames, none was reflected
    let st = lab.ctl("stats");
    assert!(
        st["stats"]["ports"]
            .as_array()
            .is_some_and(|p| p.len() == 4),
        "{st}"
    );
}

#[test]
fn detect_mode_lets_everything_through_and_alerts() {
    let Some(lab) = Lab::running(
        "detect",
        &[("mode = \"prevent\"", "mode = \"detect\"")],
        "[bridge]\nworkers = 2\n",
    ) else {
        return;
    };
    for fam in ["-4", "-6"] {
        for node in ["lan", "s1"] {
            let w = format!("{node} {fam}");
            let r = lab.curl(node, 5, &[fam, "http://www.lab.test/eicar.com"]);
            ok(&r, &format!("{w} EICAR in detect mode"));
            assert!(
                r.stdout.contains("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"),
                "{w}"
            );
            let r = lab.curl(node, 5, &[fam, "http://phish.lab.test/"]);
            ok(&r, &format!("{w} phishing over HTTP in detect mode"));
            assert!(r.stdout.contains("please enter your password"), "{w}");
            ok(
                &lab.curl(node, 5, &[fam, "https://phish.lab.test/"]),
                &format!("{w} phishing over HTTPS in detect mode"),
            );
            ok(
                &lab.curl(node, 5, &[fam, "http://c2.lab.test/c2/beacon"]),
                &format!("{w} C2 in detect mode"),
            );
        }
    }
    let eve = lab.eve();
    for (sid, what) in [
        (C2_SID, "C2 rule"),
        (CATEGORY_SID, "phishing category"),
        (FILE_SID, "EICAR file"),
    ] {
        let a = alerts(&eve, sid);
        assert!(a.len() >= 4, "{what}: {} alerts in detect mode", a.len());
        assert!(
            a.iter().all(|e| e["alert"]["action"] == "allowed"),
            "{what}: blocked in detect mode"
        );
    }
    assert!(
        !eve.iter().any(|e| e["event_type"] == "drop"),
        "drops in detect mode"
    );
}

#[test]
fn isolated_host_reaches_only_its_allow_list() {
    let Some(lab) = Lab::running("isolate", &[], "") else {
        return;
    };
    ok(
        &lab.curl("lan", 5, &["http://www.lab.test/"]),
        "before isolation",
    );
    // by IP: allow-listed are DNS on .1 and www over HTTP
    let r = lab.ctl("isolate 198.18.0.10");
    assert_eq!(r["ok"], true, "{r}");
    let r = lab.curl("lan", 5, &["-4", "http://www.lab.test/"]);
    ok(&r, "isolated host to its allow-listed destination");
    let r = lab.curl("lan", 3, &["-4", "https://www.lab.test/"]);
    assert_eq!(r.code, 28, "isolated host reached port 443: {}", r.stderr);
    let r = lab.curl("lan", 3, &["-4", "http://198.18.0.82/"]);
    assert_eq!(
        r.code, 28,
        "isolated host reached another server: {}",
        r.stderr
    );
    // other hosts are not touched
    ok(
        &lab.curl("s1", 5, &["-4", "https://www.lab.test/"]),
        "another host while one is isolated",
    );
    assert!(
        port_sum(&lab, "isolated_drops") > 0,
        "no isolated drops counted"
    );
    assert_eq!(lab.ctl("release 198.18.0.10")["ok"], true);
    ok(
        &lab.curl("lan", 5, &["-4", "https://www.lab.test/"]),
        "after release",
    );
    ok(
        &lab.curl("lan", 5, &["-4", "http://198.18.0.82/"]),
        "after release",
    );
    // by MAC, over IPv6: the LAN client's MAC
    let mac = lab
        .exec("lan", &["cat", "/sys/class/net/eth0/address"])
        .stdout
        .trim()
        .to_string();
    assert_eq!(lab.ctl(&format!("isolate {mac}"))["ok"], true);
    ok(
        &lab.curl("lan", 5, &["-6", "http://www.lab.test/"]),
        "isolated (MAC) to allow-listed [2001:db8::80]:80",
    );
    let r = lab.curl("lan", 3, &["-6", "https://www.lab.test/"]);
    assert_eq!(
        r.code, 28,
        "isolated (MAC) host reached port 443 over IPv6: {}",
        r.stderr
    );
    assert_eq!(lab.ctl(&format!("release {mac}"))["ok"], true);
    ok(
        &lab.curl("lan", 5, &["-6", "https://www.lab.test/"]),
        "after release (MAC)",
    );
}

#[test]
fn exceptions_suppress_sid_domain_and_file_hash() {
    const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    let Some(lab) = Lab::running(
        "except",
        &[],
        &format!(
            "[[exceptions]]\nsid = 9100001\n[[exceptions]]\ndomain = \"lab.test\"\n[[exceptions]]\nsha256 = \"{EICAR_SHA256}\"\n[[exceptions]]\nhost = \"198.18.0.12\"\n"
        ),
    ) else {
        return;
    };
    ok(
        &lab.curl("lan", 5, &["http://c2.lab.test/c2/beacon"]),
        "C2 with a sid exception",
    );
    let r = lab.curl("lan", 5, &["http://phish.lab.test/"]);
    ok(&r, "phishing with a domain exception");
    assert!(r.stdout.contains("please enter your password"));
    // the EICAR file's hash is excepted: it arrives whole, its verdict is clean
    let r = lab.curl("lan", 5, &["http://www.lab.test/eicar.com"]);
    ok(&r, "EICAR with its hash excepted");
    assert!(r.stdout.contains("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"));
    let eve = lab.eve();
    for sid in [C2_SID, CATEGORY_SID, FILE_SID] {
        assert!(
            alerts(&eve, sid).is_empty(),
            "alert {sid} despite its exception"
        );
    }
    assert!(
        eve.iter().any(|e| e["event_type"] == "fileinfo"
            && e["fileinfo"]["sha256"] == EICAR_SHA256
            && e["fileinfo"]["verdict"] == "clean"),
        "no clean fileinfo for the excepted file"
    );
    // an exception host (the SSID2 client) is forwarded uninspected: no event names it
    ok(
        &lab.curl("s2", 5, &["http://www.lab.test/"]),
        "exception host",
    );
    assert!(port_sum(&lab, "exempt") > 0, "no exempt frames counted");
    let eve = lab.eve();
    assert!(
        eve.iter().any(|e| e["src_ip"] == "198.18.0.10"),
        "the LAN client's traffic was not inspected"
    );
    assert!(
        !eve.iter()
            .any(|e| e["src_ip"] == "198.18.0.12" || e["dest_ip"] == "198.18.0.12"),
        "the exception host's traffic was inspected"
    );
}

/// Bytes of a growing download.
fn size(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Starts a rate-limited download of a large file from the LAN client; returns the output
/// file once bytes flow.
fn start_download(lab: &Lab) -> (std::process::Child, std::path::PathBuf) {
    let out = lab.dir.join("download.bin");
    let _ = std::fs::remove_file(&out);
    let o = out.display().to_string();
    let child = lab.spawn(
        "lan",
        &[
            "curl",
            "-s",
            "--limit-rate",
            "20M",
            "-o",
            &o,
            "http://www.lab.test/big.bin",
        ],
    );
    let t0 = Instant::now();
    while size(&out) < 1_000_000 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the download does not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, out)
}

/// A per-port counter summed over the ports.
fn port_sum(lab: &Lab, key: &str) -> u64 {
    let st = lab.ctl("stats");
    st["stats"]["ports"].as_array().map_or(0, |ps| {
        ps.iter().map(|p| p[key].as_u64().unwrap_or(0)).sum()
    })
}

fn worker(lab: &Lab) -> Value {
    lab.ctl("stats")["stats"]["workers"][0].clone()
}

#[test]
fn fail_open_keeps_a_download_flowing() {
    let Some(lab) = Lab::running("failopen", &[], "[debug]\ntest_hooks = true\n") else {
        return;
    };
    let (mut dl, out) = start_download(&lab);
    // the worker stalls for 3 s: after the watchdog notices (0.5 s) frames bypass it
    assert_eq!(lab.ctl("hook stall 0 3000")["ok"], true);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        worker(&lab)["stalled"],
        true,
        "the watchdog did not notice the stall"
    );
    let a = size(&out);
    std::thread::sleep(Duration::from_millis(1500));
    let b = size(&out);
    assert!(
        b > a + 1_000_000,
        "the download stopped while inspection was stalled ({a} -> {b})"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(worker(&lab)["stalled"], false, "the worker did not recover");
    // a panicking worker is restarted; the download goes on
    assert_eq!(lab.ctl("hook panic 0")["ok"], true);
    std::thread::sleep(Duration::from_millis(500));
    let a = size(&out);
    std::thread::sleep(Duration::from_millis(1000));
    let b = size(&out);
    assert!(
        b > a + 1_000_000,
        "the download stopped after the worker panicked ({a} -> {b})"
    );
    let w = worker(&lab);
    assert_eq!(w["restarts"], 1, "{w}");
    assert!(port_sum(&lab, "bypass_stalled") > 0, "no bypass counted");
    // inspection is back: EICAR is stopped again
    reset(
        &lab.curl("s1", 5, &["http://www.lab.test/eicar.com"]),
        "EICAR after recovery",
    );
    let _ = dl.kill();
    let _ = dl.wait();
}

#[test]
fn fail_closed_stops_traffic_while_inspection_is_down() {
    let Some(lab) = Lab::running(
        "failclosed",
        &[(
            "mode = \"prevent\"",
            "mode = \"prevent\"\nfail_closed = true",
        )],
        "[debug]\ntest_hooks = true\n",
    ) else {
        return;
    };
    let (mut dl, out) = start_download(&lab);
    assert_eq!(lab.ctl("hook stall 0 4000")["ok"], true);
    std::thread::sleep(Duration::from_millis(1200));
    let a = size(&out);
    std::thread::sleep(Duration::from_millis(1500));
    let b = size(&out);
    assert!(
        b <= a + 200_000,
        "traffic kept flowing with fail_closed ({a} -> {b})"
    );
    assert!(
        port_sum(&lab, "fail_closed_drops") > 0,
        "no fail-closed drops counted"
    );
    let _ = dl.kill();
    let _ = dl.wait();
}
