//! Two stacks wired back to back through their `tx` callbacks, with static addresses.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use smoltcp::wire::Ipv4Cidr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 10);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 11);

/// Spoils the TCP/UDP checksum of an IPv4 frame, as a sender relying on offload leaves it.
fn spoil_checksum(f: &mut [u8]) {
    if f.len() > 34 && f[12..14] == [0x08, 0x00] {
        let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
        let at = match f[23] {
            6 => l4 + 16,
            17 => l4 + 6,
            _ => return,
        };
        if let Some(c) = f.get_mut(at..at + 2) {
            c.copy_from_slice(&[0x12, 0x34]);
        }
    }
}

/// A and B back to back; what A sends arrives with spoiled checksums, through
/// `deliver_checksum_partial`.
fn pair() -> (Mgmt, Mgmt) {
    let spawn = |mac: u8, ip: Ipv4Addr, peer: Arc<OnceLock<Mgmt>>| {
        let cfg = MgmtConfig {
            mac: [0x02, 0, 0, 0, 0, mac],
            addressing: Addressing::Static {
                cidr: Ipv4Cidr::new(ip, 24),
                gateway: None,
                dns: vec![],
            },
            hostname: None,
        };
        let tx = Box::new(move |f: &[u8], _: Option<u8>| match peer.get() {
            Some(p) if !p.wants(&f[..6].try_into().unwrap_or([0; 6])) => {}
            Some(p) if mac == 1 => {
                let mut f = f.to_vec();
                spoil_checksum(&mut f);
                p.deliver_checksum_partial(&f);
            }
            Some(p) => p.deliver(f),
            None => {}
        });
        Mgmt::spawn(cfg, tx).expect("spawn")
    };
    let (to_a, to_b) = (Arc::new(OnceLock::new()), Arc::new(OnceLock::new()));
    let a = spawn(1, A, to_b.clone());
    let b = spawn(2, B, to_a.clone());
    let _ = (to_a.set(a.clone()), to_b.set(b.clone()));
    (a, b)
}

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn mgmt_back_to_back_transfer_with_slow_reader() {
    let (a, b) = pair();
    let st = a
        .wait_configured(Duration::from_secs(1))
        .await
        .expect("static address");
    assert_eq!(st.ipv4, Some(Ipv4Cidr::new(A, 24)));
    assert_eq!(a.resolve("198.18.9.11").await.unwrap(), vec![IpAddr::V4(B)]);
    assert!(matches!(
        a.resolve("cloud.test").await,
        Err(MgmtError::NoDnsServer)
    ));
    assert!(matches!(
        a.connect("198.19.0.1:80".parse().unwrap()).await,
        Err(MgmtError::NoRoute(_))
    ));
    // nobody listens: B resets the SYN
    let refused =
        tokio::time::timeout(Duration::from_secs(5), a.connect(SocketAddr::from((B, 9)))).await;
    assert!(
        matches!(refused, Ok(Err(MgmtError::Refused(_)))),
        "{refused:?}"
    );

    const LEN: usize = 1 << 20;
    let sent = data(LEN);
    let (written, read) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let server = tokio::spawn({
        let (b, read) = (b.clone(), read.clone());
        async move {
            let mut s = b.accept(7000).await.expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.expect("read");
                if n == 0 {
                    break got; // the writer's FIN
                }
                got.extend_from_slice(&buf[..n]);
                read.store(got.len(), Relaxed);
                if got.len() < LEN / 4 {
                    tokio::time::sleep(Duration::from_millis(1)).await; // a slow reader
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await; // B listens
    let mut s = a
        .connect(SocketAddr::from((B, 7000)))
        .await
        .expect("connect");
    let mut most_ahead = 0;
    for chunk in sent.chunks(4096) {
        s.write_all(chunk).await.expect("write");
        let w = written.fetch_add(chunk.len(), Relaxed) + chunk.len();
        most_ahead = most_ahead.max(w - read.load(Relaxed));
    }
    s.shutdown().await.expect("shutdown");
    let got = tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("transfer")
        .expect("task");
    assert!(
        got == sent,
        "{} bytes arrived, {} sent, or they differ",
        got.len(),
        sent.len()
    );
    // what the writer got ahead of the reader is bounded by the two socket buffers
    assert!(
        most_ahead <= 2 * TCP_BUFFER + 4096,
        "writer ran {most_ahead} bytes ahead"
    );
    assert!(
        most_ahead > TCP_BUFFER,
        "the reader was not slow enough to test backpressure"
    );
    let c = b.status().counters;
    assert!(c.rx_frames > 100 && c.tx_frames > 50, "{c:?}");
    assert_eq!(c.rx_dropped, 0);
    a.shutdown();
    assert!(matches!(
        a.connect(SocketAddr::from((B, 7000))).await,
        Err(MgmtError::Stopped)
    ));
    b.shutdown();
}

#[test]
fn spawn_refuses_a_multicast_mac() {
    let cfg = MgmtConfig {
        mac: [0x01, 0, 0x5e, 0, 0, 1],
        addressing: Addressing::Dhcp,
        hostname: None,
    };
    let e = Mgmt::spawn(cfg, Box::new(|_: &[u8], _: Option<u8>| {})).expect_err("error");
    assert!(e.to_string().contains("not unicast"), "{e}");
}

#[test]
fn status_serializes_the_address_as_text() {
    let cidr = Ipv4Cidr::new(A, 24);
    let cfg = MgmtConfig {
        mac: [0x02, 0, 0, 0, 0, 9],
        addressing: Addressing::Static {
            cidr,
            gateway: Some(Ipv4Addr::new(198, 18, 9, 1)),
            dns: vec![],
        },
        hostname: None,
    };
    let m = Mgmt::spawn(cfg, Box::new(|_: &[u8], _: Option<u8>| {})).expect("spawn");
    let v = serde_json::to_value(m.status()).unwrap();
    assert_eq!(v["ipv4"], "198.18.9.10/24");
    assert_eq!(v["gateway"], "198.18.9.1");
    assert_eq!(v["mac"], "02:00:00:00:00:09");
    assert!(!m.wants(&[0x02, 0, 0, 0, 0, 8]) && m.wants(&[0xff; 6]));
    m.shutdown();
}
