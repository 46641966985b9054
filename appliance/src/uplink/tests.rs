//! The uplink against a tiny in-test cloud: real TLS 1.3 (rustls), a test PKI made with
//! rcgen, the contract's messages. Each test scripts what the cloud does per connection.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::messages::{
    ACTIVATION_DEVICE, Ack, Activated, Command, CommandKind, DeviceId, Event, HelloAck, Pem,
    RefuseReason, Refused,
};
use protocol::{DownMsg, FrameDecoder, PROTOCOL_VERSION, UpMsg, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::activate::{ActivateError, ActivateOptions, activate};
use super::identity::{
    CERT_FILE, CLOUD_CA_FILE, IdentityError, KEY_FILE, StateDir, StoredIdentity,
};
use super::spool::{MemorySpool, RedbSpool, Spool};
use super::testutil::{TempDir, TestPki, sample_alert};
use super::tls::CloudAddr;
use super::{DrainError, Uplink, UplinkOptions};

/// One accepted connection, seen from the cloud.
struct Conn {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    decoder: FrameDecoder,
}

impl Conn {
    /// The next message, `None` when the appliance closed the connection.
    async fn recv(&mut self) -> Option<UpMsg> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(msg) = self
                .decoder
                .next_frame::<UpMsg>()
                .expect("valid frame from the appliance")
            {
                return Some(msg);
            }
            match self.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.decoder.push(&buf[..n]).expect("push"),
            }
        }
    }

    /// The next message that is not a heartbeat.
    async fn recv_no_heartbeat(&mut self) -> Option<UpMsg> {
        loop {
            match self.recv().await? {
                UpMsg::Heartbeat(_) => continue,
                msg => return Some(msg),
            }
        }
    }

    async fn send(&mut self, msg: DownMsg) {
        let frame = encode_frame(&msg).expect("encode");
        let _ = self.stream.write_all(&frame).await;
        let _ = self.stream.flush().await;
    }

    fn has_client_cert(&self) -> bool {
        self.stream.get_ref().1.peer_certificates().is_some()
    }

    /// Reads the `Hello` and returns its device id.
    async fn hello(&mut self) -> String {
        match self.recv().await {
            Some(UpMsg::Hello(h)) => {
                assert_eq!(
                    (h.version, h.min_version),
                    (PROTOCOL_VERSION, protocol::MIN_COMPATIBLE_VERSION)
                );
                h.device.to_string()
            }
            other => panic!("expected Hello, got {other:?}"),
        }
    }

    async fn hello_ack(&mut self) {
        self.send(DownMsg::HelloAck(HelloAck {
            version: PROTOCOL_VERSION,
        }))
        .await;
    }
}

/// Starts a cloud on 127.0.0.1; `script(n, conn)` runs for the n-th connection (from 0).
async fn cloud<F, Fut>(pki: &TestPki, script: F) -> u16
where
    F: Fn(usize, Conn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let script = Arc::new(script);
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(stream) = acceptor.accept(tcp).await else {
                continue;
            };
            tokio::spawn(script(
                n,
                Conn {
                    stream,
                    decoder: FrameDecoder::new(),
                },
            ));
        }
    });
    port
}

/// A stored and loaded identity for `device`, talking to 127.0.0.1:`port`.
fn identity(pki: &TestPki, dir: &TempDir, device: &str, port: u16) -> super::Identity {
    let state = StateDir::new(dir.path().join("state"));
    let (key_pem, cert_pem) = pki.device_cert(device);
    state
        .store(&StoredIdentity {
            device: &DeviceId::new(device).unwrap(),
            cloud: &CloudAddr::parse(&format!("127.0.0.1:{port}")).unwrap(),
            key_pem: &key_pem,
            cert_pem: &cert_pem,
            cloud_ca_pem: pki.ca_pem().as_bytes(),
            device_ca_pem: &pki.ca_pem(),
        })
        .unwrap();
    state.load(None).unwrap()
}

fn fast_options(identity: &super::Identity) -> UplinkOptions {
    let mut opts = UplinkOptions::new(identity, "0.1.0-test", "test-rules").unwrap();
    opts.backoff_initial = Duration::from_millis(40);
    opts.backoff_max = Duration::from_secs(1);
    opts.io_timeout = Duration::from_secs(3);
    opts.heartbeat = Duration::from_secs(30);
    opts
}

fn alerts(range: std::ops::Range<u32>) -> Vec<Event> {
    range.map(|i| Event::Alert(sample_alert(i))).collect()
}

fn seqs(msg: &UpMsg) -> Vec<u64> {
    match msg {
        UpMsg::Events(e) => e.events.iter().map(|e| e.seq).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn activation_sends_a_csr_without_client_cert_and_stores_the_identity() {
    let pki = Arc::new(TestPki::new());
    let seen: Arc<Mutex<Vec<(String, bool, String)>>> = Arc::default();
    let (pki2, seen2) = (Arc::clone(&pki), Arc::clone(&seen));
    let port = cloud(&pki, move |_, mut conn| {
        let (pki, seen) = (Arc::clone(&pki2), Arc::clone(&seen2));
        async move {
            let device = conn.hello().await;
            let has_cert = conn.has_client_cert();
            conn.hello_ack().await;
            let Some(UpMsg::Activate(act)) = conn.recv().await else {
                panic!("expected Activate")
            };
            seen.lock()
                .unwrap()
                .push((device, has_cert, act.code.to_string()));
            let reply = if act.code == "GOOD-CODE" {
                DownMsg::Activated(Activated {
                    device: DeviceId::new("MM-000042").unwrap(),
                    cert_pem: Pem::new(pki.sign_csr(&act.csr_pem, "MM-000042")).unwrap(),
                    ca_pem: Pem::new(pki.ca_pem()).unwrap(),
                })
            } else {
                DownMsg::Refused(Refused {
                    reason: RefuseReason::Other("unknown activation code".try_into().unwrap()),
                })
            };
            conn.send(reply).await;
        }
    })
    .await;

    let dir = TempDir::new("activate");
    let ca_file = dir.path().join("cloud-ca.pem");
    std::fs::write(&ca_file, pki.ca_pem()).unwrap();
    let state_dir = dir.path().join("state");
    let mut opts = ActivateOptions {
        cloud: CloudAddr::parse(&format!("localhost:{port}")).unwrap(),
        code: "GOOD-CODE\n".into(),
        state_dir: state_dir.clone(),
        ca_file,
        force: false,
        firmware: "0.1.0".into(),
        rules_version: "none".into(),
        transport: Default::default(),
    };
    let device = activate(&opts).await.expect("activation");
    assert_eq!(device.as_str(), "MM-000042");
    assert_eq!(
        *seen.lock().unwrap(),
        [(
            ACTIVATION_DEVICE.to_string(),
            false,
            "GOOD-CODE".to_string()
        )]
    );
    let state = StateDir::new(&state_dir);
    for f in [KEY_FILE, CERT_FILE, CLOUD_CA_FILE] {
        assert!(state.file(f).is_file(), "{f}");
    }
    let id = state.read_identity_file().unwrap();
    assert_eq!(
        (id.device.as_str(), id.cloud.as_str()),
        ("MM-000042", format!("localhost:{port}").as_str())
    );
    state.load(None).expect("the stored identity loads");

    // a second activation is refused before anything is sent
    let e = activate(&opts).await.unwrap_err();
    assert!(
        matches!(
            e,
            ActivateError::Identity(IdentityError::AlreadyActivated { .. })
        ),
        "{e}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    // a refused code names the reason and leaves the identity alone
    opts.force = true;
    opts.code = "WRONG".into();
    let e = activate(&opts).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("refused the activation: unknown activation code"),
        "{e}"
    );
    assert_eq!(state.read_identity_file().unwrap().device, "MM-000042");
}

#[tokio::test]
async fn unacked_events_are_resent_after_a_drop_and_acked_events_leave_the_spool() {
    let pki = TestPki::new();
    let log: Arc<Mutex<Vec<(usize, UpMsg)>>> = Arc::default();
    let log2 = Arc::clone(&log);
    let port = cloud(&pki, move |n, mut conn| {
        let log = Arc::clone(&log2);
        async move {
            assert_eq!(conn.hello().await, "MM-1");
            assert!(conn.has_client_cert());
            conn.hello_ack().await;
            if n == 0 {
                // take the first batch, then drop the connection without acking
                while let Some(msg) = conn.recv_no_heartbeat().await {
                    let events = !seqs(&msg).is_empty();
                    log.lock().unwrap().push((n, msg));
                    if events {
                        return;
                    }
                }
                return;
            }
            conn.send(DownMsg::Command(Command {
                id: 7,
                cmd: CommandKind::Reboot,
            }))
            .await;
            while let Some(msg) = conn.recv().await {
                if let Some(last) = seqs(&msg).last().copied() {
                    conn.send(DownMsg::Ack(Ack { upto_seq: last })).await;
                    // the same ack twice is allowed
                    conn.send(DownMsg::Ack(Ack { upto_seq: last })).await;
                }
                log.lock().unwrap().push((n, msg));
            }
        }
    })
    .await;

    let dir = TempDir::new("resend");
    let id = identity(&pki, &dir, "MM-1", port);
    let spool = Arc::new(RedbSpool::open(dir.path(), 1000).unwrap());
    let (s, _) = spool.append_batch(&alerts(0..5)).unwrap();
    let mut opts = fast_options(&id);
    opts.batch_max = 3;
    let uplink = Uplink::spawn(opts, spool.clone());
    let handle = uplink.handle();
    assert_eq!(handle.send(alerts(5..8)).await.unwrap(), (s + 5, s + 7));
    handle.drain(Duration::from_secs(5)).await.expect("drained");
    assert_eq!(spool.len().unwrap(), 0);

    let deadline = Instant::now() + Duration::from_secs(2);
    while !log
        .lock()
        .unwrap()
        .iter()
        .any(|(_, m)| matches!(m, UpMsg::CommandResult(_)))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = log.lock().unwrap().clone();
    let first: Vec<u64> = log
        .iter()
        .filter(|(n, _)| *n == 0)
        .flat_map(|(_, m)| seqs(m))
        .collect();
    let second: Vec<u64> = log
        .iter()
        .filter(|(n, _)| *n == 1)
        .flat_map(|(_, m)| seqs(m))
        .collect();
    assert_eq!(
        first.first(),
        Some(&s),
        "the first connection starts with the oldest event: {first:?}"
    );
    assert!(
        first.len() <= 3,
        "batches hold at most batch_max events: {first:?}"
    );
    assert_eq!(
        second,
        (s..s + 8).collect::<Vec<_>>(),
        "everything unacked is sent again, in order"
    );
    assert!(
        log.iter()
            .any(|(n, m)| *n == 1 && matches!(m, UpMsg::Heartbeat(_))),
        "heartbeat right after the handshake"
    );
    let result = log.iter().find_map(|(_, m)| match m {
        UpMsg::CommandResult(r) => Some(r.clone()),
        _ => None,
    });
    let result = result.expect("command answered");
    assert_eq!((result.command_id, result.ok), (7, false));
    assert_eq!(result.message, "not supported by this firmware yet");

    let c = handle.snapshot().await;
    assert_eq!((c.events_acked, c.events_spooled, c.spool_len), (8, 3, 0));
    assert!(
        c.reconnects >= 1 && c.sessions >= 2 && c.errors >= 1,
        "{c:?}"
    );
    assert!(c.events_sent >= 8 + first.len() as u64, "{c:?}");
    assert_eq!(c.commands_refused, 1);
    uplink.shutdown().await;
}

#[tokio::test]
async fn in_flight_batches_are_bounded() {
    let pki = TestPki::new();
    let got: Arc<Mutex<Vec<u64>>> = Arc::default();
    let got2 = Arc::clone(&got);
    let port = cloud(&pki, move |_, mut conn| {
        let got = Arc::clone(&got2);
        async move {
            conn.hello().await;
            conn.hello_ack().await;
            assert!(
                matches!(conn.recv().await, Some(UpMsg::Heartbeat(_))),
                "a heartbeat comes first"
            );
            let mut last = 0;
            for _ in 0..2 {
                let msg = conn.recv_no_heartbeat().await.unwrap();
                last = *seqs(&msg).last().unwrap();
                got.lock().unwrap().extend(seqs(&msg));
            }
            // with two batches unacked, nothing more may come
            let more =
                tokio::time::timeout(Duration::from_millis(150), conn.recv_no_heartbeat()).await;
            assert!(
                more.is_err(),
                "a third batch arrived before any ack: {more:?}"
            );
            conn.send(DownMsg::Ack(Ack { upto_seq: last })).await;
            while let Some(msg) = conn.recv_no_heartbeat().await {
                if let Some(last) = seqs(&msg).last().copied() {
                    got.lock().unwrap().extend(seqs(&msg));
                    conn.send(DownMsg::Ack(Ack { upto_seq: last })).await;
                }
            }
        }
    })
    .await;
    let dir = TempDir::new("inflight");
    let id = identity(&pki, &dir, "MM-2", port);
    let spool = Arc::new(MemorySpool::new(100));
    let (s, _) = spool.append_batch(&alerts(0..6)).unwrap();
    let mut opts = fast_options(&id);
    opts.batch_max = 1;
    opts.max_in_flight = 2;
    let uplink = Uplink::spawn(opts, spool);
    uplink
        .handle()
        .drain(Duration::from_secs(5))
        .await
        .expect("drained");
    assert_eq!(*got.lock().unwrap(), (s..s + 6).collect::<Vec<_>>());
    uplink.shutdown().await;
}

#[tokio::test]
async fn refusals_back_off_and_unknown_device_stops_retrying() {
    let pki = TestPki::new();
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let times2 = Arc::clone(&times);
    let port = cloud(&pki, move |n, mut conn| {
        let times = Arc::clone(&times2);
        async move {
            conn.hello().await;
            times.lock().unwrap().push(Instant::now());
            let reason = if n < 3 {
                RefuseReason::Busy
            } else {
                RefuseReason::UnknownDevice
            };
            conn.send(DownMsg::Refused(Refused { reason })).await;
        }
    })
    .await;
    let dir = TempDir::new("refuse");
    let id = identity(&pki, &dir, "MM-3", port);
    let spool = Arc::new(MemorySpool::new(100));
    spool.append_batch(&alerts(0..1)).unwrap();
    let uplink = Uplink::spawn(fast_options(&id), spool);
    let handle = uplink.handle();
    let e = handle.drain(Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(&e, DrainError::Stopped { left: 1, .. }), "{e}");
    assert!(e.to_string().contains("unknown or not activated"), "{e}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 4, "no retry after UnknownDevice");
    // delays of 40, 80, 160 ms minus at most 20 % jitter
    for (i, w) in times.windows(2).enumerate() {
        let min = Duration::from_millis(40 << i).mul_f64(0.8);
        assert!(w[1] - w[0] >= min, "gap {i}: {:?} < {min:?}", w[1] - w[0]);
    }
    let c = handle.snapshot().await;
    assert_eq!(
        (c.refusals, c.reconnects, c.errors, c.events_acked),
        (4, 3, 4, 0)
    );
    assert!(c.stopped.is_some());
    uplink.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_cloud_is_not_sent_anything() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let hellos = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hellos2 = Arc::clone(&hellos);
    // the cloud's certificate is signed by a CA the appliance does not trust
    let port = cloud(&other, move |_, mut conn| {
        let hellos = Arc::clone(&hellos2);
        async move {
            if conn.recv().await.is_some() {
                hellos.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    })
    .await;
    let dir = TempDir::new("untrusted");
    let id = identity(&pki, &dir, "MM-4", port);
    let spool = Arc::new(MemorySpool::new(100));
    spool.append_batch(&alerts(0..1)).unwrap();
    let uplink = Uplink::spawn(fast_options(&id), spool);
    let e = uplink
        .handle()
        .drain(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, DrainError::Timeout { left: 1, .. }), "{e}");
    let c = uplink.handle().counters();
    assert!(c.errors >= 1 && c.sessions == 0, "{c:?}");
    assert!(
        c.last_error.as_deref().unwrap_or("").contains("TLS"),
        "{c:?}"
    );
    assert_eq!(hellos.load(std::sync::atomic::Ordering::Relaxed), 0);
    uplink.shutdown().await;
}

#[tokio::test]
async fn a_refused_device_certificate_is_reported_as_refused() {
    let pki = TestPki::new();
    let port = cloud(&pki, |_, mut conn| async move {
        conn.recv().await;
    })
    .await;
    // the device certificate comes from a CA the cloud does not know
    let dir = TempDir::new("badcert");
    let other = TestPki::new();
    let state = StateDir::new(dir.path().join("state"));
    let (key_pem, cert_pem) = other.device_cert("MM-5");
    state
        .store(&StoredIdentity {
            device: &DeviceId::new("MM-5").unwrap(),
            cloud: &CloudAddr::parse(&format!("127.0.0.1:{port}")).unwrap(),
            key_pem: &key_pem,
            cert_pem: &cert_pem,
            cloud_ca_pem: pki.ca_pem().as_bytes(),
            device_ca_pem: &other.ca_pem(),
        })
        .unwrap();
    let id = state.load(None).unwrap();
    let spool = Arc::new(MemorySpool::new(10));
    spool.append_batch(&alerts(0..1)).unwrap();
    let uplink = Uplink::spawn(fast_options(&id), spool);
    let e = uplink
        .handle()
        .drain(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, DrainError::Timeout { left: 1, .. }), "{e}");
    let c = uplink.handle().counters();
    let last = c.last_error.clone().unwrap_or_default();
    assert!(last.contains("refused the device certificate"), "{c:?}");
    assert!(c.refusals >= 1 && c.sessions == 0, "{c:?}");
    uplink.shutdown().await;
}

#[tokio::test]
async fn a_silent_cloud_is_left_after_the_ack_timeout_but_an_idle_session_is_not() {
    let pki = TestPki::new();
    let port = cloud(&pki, |n, mut conn| async move {
        conn.hello().await;
        conn.hello_ack().await;
        while let Some(msg) = conn.recv().await {
            // the first connection takes events and never acknowledges them
            if let (Some(last), true) = (seqs(&msg).last().copied(), n > 0) {
                conn.send(DownMsg::Ack(Ack { upto_seq: last })).await;
            }
        }
    })
    .await;
    let dir = TempDir::new("acktimeout");
    let id = identity(&pki, &dir, "MM-6", port);
    let spool = Arc::new(MemorySpool::new(100));
    spool.append_batch(&alerts(0..1)).unwrap();
    let mut opts = fast_options(&id);
    opts.ack_timeout = Duration::from_millis(200);
    let uplink = Uplink::spawn(opts, spool);
    let handle = uplink.handle();
    handle
        .drain(Duration::from_secs(5))
        .await
        .expect("drained after a reconnect");
    let c = handle.counters();
    assert_eq!((c.errors, c.sessions), (1, 2), "{c:?}");
    assert!(
        c.last_error
            .unwrap_or_default()
            .contains("no acknowledgement")
    );
    // idle for longer than the ack timeout, then send: the clock starts with the send
    tokio::time::sleep(Duration::from_millis(400)).await;
    handle.send(alerts(1..2)).await.unwrap();
    handle.drain(Duration::from_secs(5)).await.expect("drained");
    assert_eq!(handle.counters().errors, 1);
    uplink.shutdown().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_hanging_handshake() {
    // a peer that accepts TCP and never answers the TLS handshake
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let pki = TestPki::new();
    let dir = TempDir::new("hang");
    let id = identity(&pki, &dir, "MM-7", port);
    let mut opts = fast_options(&id);
    opts.io_timeout = Duration::from_secs(30);
    let uplink = Uplink::spawn(opts, Arc::new(MemorySpool::new(10)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    uplink.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

/// An appliance that records what it was asked and installs any bundle whose bytes start
/// with `good`.
#[derive(Default)]
struct FakeAppliance {
    applied: Mutex<Vec<protocol::messages::CommandKind>>,
    installed: Mutex<Vec<Vec<u8>>>,
    version: Mutex<String>,
}

impl super::Appliance for FakeAppliance {
    fn apply(&self, _id: u64, cmd: &protocol::messages::CommandKind) -> Result<String, String> {
        self.applied.lock().unwrap().push(cmd.clone());
        match cmd {
            protocol::messages::CommandKind::Wipe => Err("not here".into()),
            _ => Ok("done".into()),
        }
    }
    fn install_bundle(&self, file: &[u8]) -> Result<String, String> {
        if !file.starts_with(b"good") {
            return Err("signature does not verify".into());
        }
        self.installed.lock().unwrap().push(file.to_vec());
        *self.version.lock().unwrap() = "v2".into();
        Ok("v2".into())
    }
    fn rules_version(&self) -> String {
        self.version.lock().unwrap().clone()
    }
    fn mode(&self) -> protocol::messages::Mode {
        protocol::messages::Mode::Detect
    }
}

#[tokio::test]
async fn commands_are_carried_out_and_bundles_downloaded_in_parts() {
    use protocol::bounded::Name;
    use protocol::messages::{
        BundleChunk, BundleState, Command, CommandKind, HostRef, Mode, Sha256,
    };
    use sha2::Digest;
    let pki = TestPki::new();
    // 1.3 MB: three parts of at most 512 KiB
    let good: Vec<u8> = b"good"
        .iter()
        .copied()
        .chain((0..1_300_000u32).map(|i| (i % 251) as u8))
        .collect();
    let bad = b"evil bundle".to_vec();
    let files = Arc::new((good.clone(), bad.clone()));
    let log: Arc<Mutex<Vec<UpMsg>>> = Arc::default();
    let log2 = Arc::clone(&log);
    let port = cloud(&pki, move |_, mut conn| {
        let log = Arc::clone(&log2);
        let files = Arc::clone(&files);
        async move {
            conn.hello().await;
            conn.hello_ack().await;
            let host = HostRef::Ip("198.18.0.10".parse().unwrap());
            let sha = |b: &[u8]| Sha256(sha2::Sha256::digest(b).into());
            let cmds = [
                CommandKind::IsolateHost {
                    host,
                    allow: vec![],
                },
                CommandKind::SetMode(Mode::Detect),
                CommandKind::Wipe,
                CommandKind::BundleAvailable {
                    version: Name::new("v2").unwrap(),
                    size: files.0.len() as u64,
                    sha256: sha(&files.0),
                },
            ];
            for (i, cmd) in cmds.into_iter().enumerate() {
                conn.send(DownMsg::Command(Command {
                    id: i as u64 + 1,
                    cmd,
                }))
                .await;
            }
            while let Some(msg) = conn.recv_no_heartbeat().await {
                if matches!(&msg, UpMsg::BundleStatus(s) if s.version.as_str() == "v2") {
                    // then one announced with the good file's hash: the download does
                    // not match it
                    let cmd = CommandKind::BundleAvailable {
                        version: Name::new("v3").unwrap(),
                        size: files.1.len() as u64,
                        sha256: sha(&files.0),
                    };
                    conn.send(DownMsg::Command(Command { id: 5, cmd })).await;
                }
                if let UpMsg::BundleFetch(f) = &msg {
                    let file = if f.version.as_str() == "v2" {
                        &files.0
                    } else {
                        &files.1
                    };
                    let start = (f.offset as usize).min(file.len());
                    let end = (start + protocol::limits::MAX_BUNDLE_CHUNK).min(file.len());
                    conn.send(DownMsg::BundleChunk(BundleChunk {
                        version: f.version.clone(),
                        offset: f.offset,
                        total: file.len() as u64,
                        data: file[start..end].to_vec(),
                    }))
                    .await;
                }
                log.lock().unwrap().push(msg);
            }
        }
    })
    .await;
    let dir = TempDir::new("commands");
    let id = identity(&pki, &dir, "MM-7", port);
    let fake = Arc::new(FakeAppliance::default());
    let mut opts = fast_options(&id);
    opts.appliance = Some(fake.clone());
    let uplink = Uplink::spawn(opts, Arc::new(MemorySpool::new(100)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let done = |log: &[UpMsg]| {
        let results = log
            .iter()
            .filter(|m| matches!(m, UpMsg::CommandResult(_)))
            .count();
        let statuses = log
            .iter()
            .filter(|m| matches!(m, UpMsg::BundleStatus(_)))
            .count();
        results == 3 && statuses == 2
    };
    while !done(&log.lock().unwrap()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    uplink.shutdown().await;
    let log = log.lock().unwrap().clone();
    let results: Vec<(u64, bool)> = log
        .iter()
        .filter_map(|m| match m {
            UpMsg::CommandResult(r) => Some((r.command_id, r.ok)),
            _ => None,
        })
        .collect();
    let mut sorted = results.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![(1, true), (2, true), (3, false)], "{log:?}");
    assert_eq!(
        fake.applied.lock().unwrap().len(),
        3,
        "bundles are not `apply`d"
    );
    let fetches: Vec<u64> = log
        .iter()
        .filter_map(|m| match m {
            UpMsg::BundleFetch(f) if f.version.as_str() == "v2" => Some(f.offset),
            _ => None,
        })
        .collect();
    assert_eq!(
        fetches,
        vec![0, 512 * 1024, 1024 * 1024],
        "three parts in order"
    );
    assert_eq!(
        *fake.installed.lock().unwrap(),
        vec![good],
        "installed whole"
    );
    let statuses: Vec<(String, BundleState)> = log
        .iter()
        .filter_map(|m| match m {
            UpMsg::BundleStatus(s) => Some((s.version.to_string(), s.state.clone())),
            _ => None,
        })
        .collect();
    assert!(
        statuses.contains(&("v2".into(), BundleState::Applied)),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|(v, s)| v == "v3"
            && matches!(s, BundleState::Refused { reason } if reason.as_str().contains("SHA-256"))),
        "{statuses:?}"
    );
    // the heartbeat after the install names the new version and the appliance's mode
    let hb = log.iter().rev().find_map(|m| match m {
        UpMsg::Heartbeat(h) => Some(h.clone()),
        _ => None,
    });
    if let Some(hb) = hb {
        assert_eq!(hb.rules_version.as_str(), "v2");
        assert_eq!(hb.mode, Mode::Detect);
    }
}
