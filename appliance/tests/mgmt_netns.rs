//! The management stack against real servers (SPEC §3.4, §7). A veth pair joins namespace
//! `mmmg-app` (end `wan`: no IP, an AF_PACKET socket whose frames are shuttled to and from
//! `Mgmt`) and namespace `mmmg-srv` (198.18.9.1/24: dnsmasq for DHCP and DNS, a Python TCP
//! echo server, ping). Needs root, ip, ethtool, dnsmasq, python3 and ping; skipped otherwise.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use mimamori_appliance::mgmt::{Addressing, Mgmt, MgmtConfig, MgmtError, TcpStream};
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = "mmmg-app";
const SRV: &str = "mmmg-srv";
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 1);
const MAC: [u8; 6] = [0x02, 0x6d, 0x6d, 0x67, 0x09, 0x01];
const HOSTNAME: &str = "mmmg-appliance";

/// Echo on 7007 until the client's FIN; on 7008 a greeting, then the server closes.
const SERVERS_PY: &str = r#"import socket, threading
def serve(port, handle):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("198.18.9.1", port)); s.listen(8)
    while True:
        c, _ = s.accept(); threading.Thread(target=handle, args=(c,), daemon=True).start()
def echo(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
def greet(c):
    with c: c.sendall(b"hello from mmmg\n")
threading.Thread(target=serve, args=(7008, greet), daemon=True).start()
serve(7007, echo)
"#;

/// The namespaces and their servers; removed on drop, also when a test step panics.
struct Lab {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        remove_namespaces();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn remove_namespaces() {
    for ns in [APP, SRV] {
        let mut del = Command::new("ip");
        let _ = del
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs a command line (words split on spaces), which must succeed.
fn run(cmd: &str) {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command line to run in the server namespace.
fn in_srv(cmd: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", SRV]).args(cmd.split_whitespace());
    c
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    ["ip", "dnsmasq", "python3", "ping", "ethtool"]
        .into_iter()
        .find_map(|tool| {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output();
            (!found.is_ok_and(|o| o.status.success())).then(|| format!("{tool} is not installed"))
        })
}

fn lab() -> Lab {
    remove_namespaces(); // left by a run that was killed
    let dir = std::env::temp_dir().join(format!("mmmg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut lab = Lab {
        dir,
        children: vec![],
    };
    for cmd in [
        "ip netns add mmmg-app",
        "ip netns add mmmg-srv",
        "ip -n mmmg-app link add wan type veth peer name eth0 netns mmmg-srv",
        "ip netns exec mmmg-app sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
        "ip -n mmmg-app link set wan up",
        "ip -n mmmg-srv addr add 198.18.9.1/24 dev eth0",
        "ip -n mmmg-srv link set eth0 up",
        "ip -n mmmg-srv link set lo up",
        // segments of at most one MTU, as on a wire (on veth the kernel would hand over
        // 64 KiB GSO frames); checksums stay left to offload
        "ip netns exec mmmg-srv ethtool -K eth0 tso off gso off",
        // forwarding without a route beyond the subnet: ICMP net unreachable
        "ip netns exec mmmg-srv sysctl -qw net.ipv4.ip_forward=1",
    ] {
        run(cmd);
    }
    let dir = lab.dir.display();
    let dnsmasq = in_srv(&format!(
        "dnsmasq --keep-in-foreground --conf-file=/dev/null --user=root --interface=eth0 \
         --bind-interfaces --no-resolv --no-hosts --no-ping --dhcp-authoritative \
         --dhcp-range=198.18.9.100,198.18.9.150,255.255.255.0,2m \
         --address=/cloud.test/198.18.9.1 --address=/invalid/ --dhcp-leasefile={dir}/leases \
         --pid-file={dir}/dnsmasq.pid --log-facility={dir}/dnsmasq.log"
    ))
    .spawn()
    .expect("dnsmasq");
    lab.children.push(dnsmasq);
    // the first DHCPDISCOVER must not go out before dnsmasq listens (the next is 10 s later)
    let end = Instant::now() + Duration::from_secs(5);
    while !lab.log().contains("DHCP, sockets bound") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut py = Command::new("ip");
    let py = py
        .args(["netns", "exec", SRV, "python3", "-c", SERVERS_PY])
        .spawn()
        .expect("python3");
    lab.children.push(py);
    lab
}

/// The AF_PACKET socket on `wan`, opened from a thread that entered `mmmg-app`.
fn open_wan() -> (Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>) {
    std::thread::spawn(|| {
        let ns = File::open(format!("/var/run/netns/{APP}")).expect("netns file");
        // SAFETY: a valid namespace descriptor; only this short-lived thread moves.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == "wan")
            .expect("wan");
        let cfg = pnet_datalink::Config {
            read_timeout: Some(Duration::from_millis(100)),
            ..Default::default()
        };
        match pnet_datalink::channel(&iface, cfg) {
            Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
            _ => panic!("no AF_PACKET channel on wan"),
        }
    })
    .join()
    .expect("open wan")
}

/// Connects, retrying while the server is still starting.
async fn connect(m: &Mgmt, port: u16) -> TcpStream {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match m.connect(SocketAddr::from((SERVER, port))).await {
            Ok(s) => return s,
            Err(MgmtError::Refused(_)) if Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("connect to port {port}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mgmt_dhcp_dns_ping_tcp_against_real_servers() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = lab();
    let (mut tx, mut rx) = open_wan();
    let cfg = MgmtConfig {
        mac: MAC,
        addressing: Addressing::Dhcp,
        hostname: Some(HOSTNAME.into()),
    };
    let m = Mgmt::spawn(
        cfg,
        Box::new(move |f: &[u8], _: Option<u8>| drop(tx.send_to(f, None))),
    )
    .expect("spawn");
    let stop = Arc::new(AtomicBool::new(false));
    let shuttle = std::thread::spawn({
        let (m, stop) = (m.clone(), stop.clone());
        move || {
            while !stop.load(Relaxed) {
                if let Ok(f) = rx.next()
                    && f.len() >= 14
                    && m.wants(&f[..6].try_into().unwrap_or([0; 6]))
                {
                    // the server's kernel leaves TCP/UDP checksums to veth offload
                    // (TP_STATUS_CSUMNOTREADY); filling complete ones again is harmless
                    m.deliver_checksum_partial(f);
                }
            }
        }
    });

    // a lease from dnsmasq, within its range, with its router and DNS server
    let st = m
        .wait_configured(Duration::from_secs(30))
        .await
        .expect("DHCP lease");
    let cidr = st.ipv4.expect("address");
    let ip = cidr.address();
    assert!(
        cidr.prefix_len() == 24 && (100..=150).contains(&ip.octets()[3]),
        "{st:?}"
    );
    assert_eq!(ip.octets()[..3], [198, 18, 9]);
    assert_eq!(
        (st.gateway, st.dns.clone()),
        (Some(SERVER), vec![SERVER]),
        "{st:?}"
    );
    assert!(st.counters.dhcp_leases >= 1, "{st:?}");
    let leases = std::fs::read_to_string(lab.dir.join("leases")).unwrap_or_default();
    let line = leases
        .lines()
        .find(|l| l.contains("02:6d:6d:67:09:01"))
        .unwrap_or_default();
    assert!(
        line.contains(&ip.to_string()) && line.contains(HOSTNAME),
        "lease file: {leases}"
    );

    // the server pings the leased address (ARP and echo answered by the stack). The first
    // reply may be lost: dnsmasq put our MAC in the server's ARP cache, so nobody asked us,
    // and smoltcp drops a reply (it queues nothing) while it asks for the server's MAC.
    let ping = || {
        let out = in_srv(&format!("ping -c 3 -i 0.2 -W 2 {ip}"))
            .output()
            .expect("ping");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = ping();
    assert!(ok && !out.contains(" 1 received"), "{out}");
    let (ok, out) = ping();
    assert!(ok && out.contains(" 0% packet loss"), "{out}");

    // DNS through dnsmasq
    assert_eq!(
        m.resolve("cloud.test").await.expect("resolve"),
        vec![IpAddr::V4(SERVER)]
    );
    let nx = tokio::time::timeout(Duration::from_secs(15), m.resolve("nothing.invalid")).await;
    assert!(matches!(nx, Ok(Err(MgmtError::DnsFailed(_)))), "{nx:?}");

    // 1 MiB each way through the echo server, then its FIN after ours
    let sent: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (mut r, mut w) = tokio::io::split(connect(&m, 7007).await);
    let writer = tokio::spawn({
        let sent = sent.clone();
        async move {
            w.write_all(&sent).await.expect("write");
            w.shutdown().await.expect("shutdown");
        }
    });
    let mut got = Vec::new();
    let echoed = tokio::time::timeout(Duration::from_secs(60), r.read_to_end(&mut got)).await;
    assert!(
        matches!(echoed, Ok(Ok(_))),
        "{echoed:?}: {} bytes back, {:?}",
        got.len(),
        m.status()
    );
    writer.await.expect("writer");
    assert!(
        got == sent,
        "echo: {} bytes back of {}, or different",
        got.len(),
        sent.len()
    );

    // the server closes first: its bytes, then EOF
    let mut s = connect(&m, 7008).await;
    let mut greeting = String::new();
    s.read_to_string(&mut greeting).await.expect("greeting");
    assert_eq!(greeting, "hello from mmmg\n");

    // a closed port resets, a network the server cannot route to answers ICMP: both quickly
    let t = Duration::from_secs(3);
    let refused = tokio::time::timeout(t, m.connect(SocketAddr::from((SERVER, 9)))).await;
    assert!(
        matches!(refused, Ok(Err(MgmtError::Refused(_)))),
        "{refused:?}"
    );
    let far = SocketAddr::from(([198, 18, 10, 1], 80));
    let unreachable = tokio::time::timeout(t, m.connect(far)).await;
    assert!(
        matches!(unreachable, Ok(Err(MgmtError::Unreachable(_)))),
        "{unreachable:?}"
    );

    let c = m.status().counters;
    assert!(
        c.rx_frames > 700 && c.tx_frames > 700 && c.rx_dropped == 0,
        "{c:?}"
    );
    stop.store(true, Relaxed);
    m.shutdown();
    shuttle.join().expect("shuttle");
    drop(lab);
}
