//! Attacks on the cloud's ingest (issue 14, findings 2, 5, 9 and part of 10), performed
//! against the real `mimamori-cloud` and `mimamori-appliance` binaries, with a test client
//! that speaks the protocol with a device's own certificate where an appliance would not
//! show what the attacker does.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimamori_tests::cloud::*;
use mimamori_tests::tempdir;
use protocol::bounded::{Name, Text};
use protocol::messages::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn pem_certs(p: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let data = std::fs::read(p).expect("reading a certificate");
    rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

/// A TLS client configuration trusting the cloud's CA, with the device certificate of
/// the activated state folder `state` (or none).
fn tls(c: &Cloud, state: Option<&Path>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(&ca_file(c)) {
        roots.add(cert).expect("cloud CA");
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots);
    let cfg = match state {
        Some(st) => {
            let key_pem = std::fs::read(st.join("device.key")).expect("device key");
            let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
                .expect("key PEM")
                .expect("a key");
            b.with_client_auth_cert(pem_certs(&st.join("device.crt")), key)
                .expect("client certificate")
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// A device's connection speaking the protocol.
struct Client {
    s: TlsStream<TcpStream>,
    dec: protocol::FrameDecoder,
}

impl Client {
    async fn connect(c: &Cloud, cfg: Arc<rustls::ClientConfig>) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(c.addr()).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let s = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await?;
        Ok(Client {
            s,
            dec: protocol::FrameDecoder::new(),
        })
    }
    async fn send(&mut self, m: &UpMsg) -> std::io::Result<()> {
        let f = protocol::encode_frame(m).expect("encodable");
        self.s.write_all(&f).await?;
        self.s.flush().await
    }
    async fn hello(&mut self, dev: &str) -> std::io::Result<()> {
        self.send(&UpMsg::Hello(Hello::new(
            DeviceId::new(dev).expect("id"),
            Name::truncated("test"),
            Name::truncated("test"),
        )))
        .await
    }
    /// The next message; `None` when the cloud closed the connection (or after `wait`).
    async fn recv(&mut self, wait: Duration) -> Option<DownMsg> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Ok(Some(m)) = self.dec.next_frame::<DownMsg>() {
                return Some(m);
            }
            match tokio::time::timeout_at(deadline, self.s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.dec.push(&buf[..n]).ok()?,
            }
        }
    }
    /// Reads until the cloud closes the connection (true) or `wait` passes (false);
    /// the messages seen on the way.
    async fn until_closed(&mut self, wait: Duration) -> (bool, Vec<DownMsg>) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = Vec::new();
        loop {
            while let Ok(Some(m)) = self.dec.next_frame::<DownMsg>() {
                seen.push(m);
            }
            match tokio::time::timeout_at(deadline, self.s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (true, seen),
                Err(_) => return (false, seen),
                Ok(Ok(n)) => {
                    if self.dec.push(&buf[..n]).is_err() {
                        return (true, seen);
                    }
                }
            }
        }
    }
}

/// A batch with one signature alert (sid 9000001 of `C2_RULES`, as the appliance's rules
/// describe it) at `seq`.
fn batch(seq: u64, host: u8) -> UpMsg {
    let alert = Alert {
        time: UnixMs(1_790_000_000_000 + seq),
        flow: FlowRef {
            proto: IpProto::Tcp,
            direction: Direction::Outbound,
            internal_ip: format!("198.18.0.{host}").parse().expect("ip"),
            internal_port: Some(50_000),
            internal_mac: Mac([2, 0, 0, 0, 0, host]),
            external_ip: "198.19.1.10".parse().expect("ip"),
            external_port: Some(80),
        },
        detection: Detection::Signature(Signature {
            gid: 1,
            sid: 9000001,
            rev: 1,
            msg: Text::truncated("ET MALWARE CryptoWall Check-in (test)"),
            classtype: Some(Name::truncated("trojan-activity")),
            severity: 1,
            metadata: vec![
                MetaPair {
                    key: Name::truncated("signature_severity"),
                    value: protocol::bounded::BoundedString::truncated("Major"),
                },
                MetaPair {
                    key: Name::truncated("confidence"),
                    value: protocol::bounded::BoundedString::truncated("High"),
                },
            ],
        }),
        url: None,
        sni: None,
        dns_name: None,
        action: Action::Allowed,
    };
    UpMsg::Events(Events {
        events: vec![SeqEvent {
            seq,
            event: Event::Alert(alert),
        }],
    })
}

fn alerts_of(c: &Cloud, device: &str) -> usize {
    c.alerts().iter().filter(|a| a["device"] == device).count()
}

/// A provisioned and activated device: (contract, device id, state folder).
fn device(c: &Cloud, dir: &Path, name: &str, email: &str) -> (u64, String, std::path::PathBuf) {
    let (cid, dev, code) = provision(c, &[email]);
    let st = dir.join(name);
    let out = activate(c, &st, &code);
    assert!(
        out.status.success(),
        "activation: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cid, dev, st)
}

/// Connects as `dev`, says Hello and expects the HelloAck.
async fn session(c: &Cloud, cfg: Arc<rustls::ClientConfig>, dev: &str) -> Client {
    let mut cl = Client::connect(c, cfg)
        .await
        .expect("TLS with the device certificate");
    cl.hello(dev).await.expect("hello");
    match cl.recv(Duration::from_secs(10)).await {
        Some(DownMsg::HelloAck(_)) => cl,
        other => panic!("expected HelloAck for {dev}, got {other:?}"),
    }
}

/// Sends a batch and waits for its Ack (skipping commands).
async fn deliver(cl: &mut Client, seq: u64) -> bool {
    if cl.send(&batch(seq, 10)).await.is_err() {
        return false;
    }
    loop {
        match cl.recv(Duration::from_secs(10)).await {
            Some(DownMsg::Ack(a)) => return a.upto_seq >= seq,
            Some(DownMsg::Command(_)) | Some(DownMsg::BundleChunk(_)) => continue,
            _ => return false,
        }
    }
}

/// Finding 2: a revoked device's live session is closed at once; what it (or its
/// reconnection) sends later is refused and nothing is written; another contract's
/// device keeps delivering.
#[test]
fn revocation_closes_the_live_session_and_refuses_later_batches() {
    let dir = tempdir("sec-ingest-revoke");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    import_rules_text(&c, "cloud.rules", C2_RULES);
    let (_, a, st_a) = device(&c, &dir, "a", "a@example.com");
    let (_, b, st_b) = device(&c, &dir, "b", "b@example.com");
    let (cfg_a, cfg_b) = (tls(&c, Some(&st_a)), tls(&c, Some(&st_b)));
    rt().block_on(async {
        let mut sa = session(&c, Arc::clone(&cfg_a), &a).await;
        let mut sb = session(&c, Arc::clone(&cfg_b), &b).await;
        assert!(deliver(&mut sa, 1).await, "a delivers before revocation");
        assert!(deliver(&mut sb, 1).await, "b delivers");
        assert_eq!(alerts_of(&c, &a), 1);

        // revoke a while its session is open
        c.admin(&["device", "revoke", &a]);
        let t = Instant::now();
        // the attacker keeps sending at once
        let _ = sa.send(&batch(2, 11)).await;
        let (closed, seen) = sa.until_closed(Duration::from_secs(5)).await;
        let took = t.elapsed();
        eprintln!("revoked session closed after {took:?}; it got {seen:?}");
        assert!(closed, "the revoked device's session must be closed");
        assert!(
            took < Duration::from_secs(1),
            "closed within 1 s of the revocation (took {took:?})"
        );
        assert!(
            !seen
                .iter()
                .any(|m| matches!(m, DownMsg::Ack(a) if a.upto_seq >= 2)),
            "the batch sent after revocation must not be acknowledged: {seen:?}"
        );

        // it reconnects with its still valid certificate and sends right after Hello
        let mut again = Client::connect(&c, Arc::clone(&cfg_a))
            .await
            .expect("TLS still completes");
        again.hello(&a).await.expect("hello");
        let _ = again.send(&batch(3, 12)).await;
        let (closed, seen) = again.until_closed(Duration::from_secs(5)).await;
        assert!(closed);
        assert!(
            seen.iter().any(|m| matches!(m, DownMsg::Refused(_))),
            "reconnection refused: {seen:?}"
        );
        assert!(!seen.iter().any(|m| matches!(m, DownMsg::Ack(_))));

        // the other contract's device keeps delivering on its open session
        assert!(deliver(&mut sb, 2).await, "b still delivers");
    });
    assert_eq!(
        alerts_of(&c, &a),
        1,
        "nothing written for the revoked device"
    );
    assert_eq!(alerts_of(&c, &b), 2);
    let st = c.admin(&["ops", "status"]);
    assert!(
        st["ingest"]["sessions_stopped"].as_u64().unwrap_or(0) >= 1,
        "{st}"
    );
}

/// Finding 2: contract end closes the contract's live sessions at once (after the wipe
/// they are still sent); batches are refused and nothing is written; the device of
/// another contract keeps delivering.
#[test]
fn contract_end_closes_the_live_session_and_refuses_later_batches() {
    let dir = tempdir("sec-ingest-end");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    import_rules_text(&c, "cloud.rules", C2_RULES);
    let (cid, a, st_a) = device(&c, &dir, "a", "a@example.com");
    let (_, b, st_b) = device(&c, &dir, "b", "b@example.com");
    let (cfg_a, cfg_b) = (tls(&c, Some(&st_a)), tls(&c, Some(&st_b)));
    rt().block_on(async {
        let mut sa = session(&c, Arc::clone(&cfg_a), &a).await;
        let mut sb = session(&c, Arc::clone(&cfg_b), &b).await;
        assert!(deliver(&mut sa, 1).await);
        assert!(deliver(&mut sb, 1).await);

        c.admin(&["contract", "end", &cid.to_string()]);
        let t = Instant::now();
        let _ = sa.send(&batch(2, 11)).await;
        // the event stream ends: the one thing still sent is the wipe
        let mut wipe = None;
        let mut acked_after = false;
        while let Some(m) = sa.recv(Duration::from_secs(5)).await {
            match m {
                DownMsg::Command(Command {
                    id,
                    cmd: CommandKind::Wipe,
                }) => {
                    wipe = Some(id);
                    break;
                }
                DownMsg::Ack(a) if a.upto_seq >= 2 => acked_after = true,
                _ => {}
            }
        }
        let took = t.elapsed();
        let id = wipe.expect("the wipe is delivered on the live session");
        eprintln!("contract end: wipe on the live session after {took:?}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(
            !acked_after,
            "no batch is acknowledged after the contract ended"
        );
        // batches sent now are not stored; the answer to the wipe ends the session
        let _ = sa.send(&batch(3, 12)).await;
        let _ = sa
            .send(&UpMsg::CommandResult(CommandResult {
                command_id: id,
                ok: true,
                message: Text::truncated("wiped"),
            }))
            .await;
        let (closed, seen) = sa.until_closed(Duration::from_secs(5)).await;
        assert!(closed, "closed after the wipe's answer");
        assert!(
            !seen.iter().any(|m| matches!(m, DownMsg::Ack(_))),
            "{seen:?}"
        );
        // reconnecting is refused
        let mut again = Client::connect(&c, Arc::clone(&cfg_a)).await.expect("TLS");
        again.hello(&a).await.expect("hello");
        let _ = again.send(&batch(4, 13)).await;
        let (closed, seen) = again.until_closed(Duration::from_secs(5)).await;
        assert!(closed);
        assert!(
            seen.iter().any(|m| matches!(
                m,
                DownMsg::Refused(Refused {
                    reason: RefuseReason::ContractEnded
                })
            )),
            "{seen:?}"
        );
        assert!(
            deliver(&mut sb, 2).await,
            "the other contract's device still delivers"
        );
    });
    assert_eq!(
        alerts_of(&c, &a),
        0,
        "nothing of the ended contract is written (its alerts were purged)"
    );
    assert_eq!(alerts_of(&c, &b), 2);
}

fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur as u64
}

/// Rewrites the cloud's `[ingest]` section with `extra` lines and restarts it.
fn restart_with_ingest(c: &mut Cloud, extra: &str) {
    c.kill9();
    let text = std::fs::read_to_string(&c.config).expect("cloud.toml");
    let text = text.replacen("[ingest]\n", &format!("[ingest]\n{extra}\n"), 1);
    std::fs::write(&c.config, text).expect("cloud.toml");
    c.spawn();
}

/// One idle connection of the flood from 127.0.0.2; kind 0: TCP only, 1: stalled in the
/// middle of the TLS handshake, 2: TLS without a client certificate, never a Hello.
async fn flood_one(
    addr: SocketAddr,
    kind: usize,
    cfg: Arc<rustls::ClientConfig>,
) -> Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>> {
    let sock = tokio::net::TcpSocket::new_v4().ok()?;
    sock.bind("127.0.0.2:0".parse().expect("addr")).ok()?;
    let mut tcp = tokio::time::timeout(Duration::from_secs(10), sock.connect(addr))
        .await
        .ok()?
        .ok()?;
    match kind {
        0 => Some(Box::new(tcp)),
        1 => {
            // a TLS record header announcing a ClientHello that never arrives
            let _ = tcp
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
                .await;
            Some(Box::new(tcp))
        }
        _ => {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            match tokio::time::timeout(
                Duration::from_secs(5),
                tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
            )
            .await
            {
                Ok(Ok(s)) => Some(Box::new(s)),
                // refused at once (over the per-source limit): closed, nothing to hold
                _ => None,
            }
        }
    }
}

/// Finding 5: 2,000 idle connections from one source (raw TCP, stalled mid-handshake,
/// TLS without a certificate and no Hello) do not lock a real appliance out, and the cloud
/// closes them after its deadlines.
#[test]
fn an_idle_connection_flood_from_one_source_does_not_lock_appliances_out() {
    let fds = raise_fd_limit();
    assert!(
        fds >= 4_500,
        "this test needs ~4,100 open files (limit {fds})"
    );
    let dir = tempdir("sec-ingest-flood");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let mut c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    // fewer slots than the flood has connections, and short deadlines for the test
    restart_with_ingest(
        &mut c,
        "max_connections = 1500\nmax_unauthenticated = 1000\ntls_handshake_timeout = \"2s\"\nhello_timeout = \"3s\"",
    );
    import_rules_text(&c, "cloud.rules", C2_RULES);
    let (_, dev, code) = provision(&c, &["a@example.com"]);
    let addr: SocketAddr = c.addr().parse().expect("ingest address");
    let no_cert = tls(&c, None);
    let rt = rt();
    let t = Instant::now();
    let flood: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = rt.block_on(async {
        let mut held = Vec::new();
        // bounded: 2,000 connections in batches of 100
        for chunk in 0..20 {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..100 {
                let cfg = Arc::clone(&no_cert);
                set.spawn(flood_one(addr, (chunk * 100 + i) % 3, cfg));
            }
            while let Some(r) = set.join_next().await {
                if let Ok(Some(s)) = r {
                    held.push(s);
                }
            }
        }
        held
    });
    eprintln!(
        "flood: {} connections held open by the client after {:?}",
        flood.len(),
        t.elapsed()
    );
    assert!(
        flood.len() >= 1_000,
        "the flood did connect ({})",
        flood.len()
    );

    // a real appliance from 127.0.0.1 activates and delivers while the flood is held
    let out = activate(&c, &dir.join("st"), &code);
    assert!(
        out.status.success(),
        "activation during the flood: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let up = uplink_toml(&dir, &dir.join("st"), 30);
    let out = replay_uplink(&dir, &up, C2_RULES);
    assert!(
        out.status.success(),
        "delivery during the flood: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = alerts_of(&c, &dev);
    assert!(stored > 0, "the appliance's alerts are stored");

    // every idle connection is closed by the cloud: at once (over the limits) or at its
    // deadline (TLS 2 s, Hello 3 s after connecting)
    let closed = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for mut s in flood {
            set.spawn(async move {
                let mut buf = [0u8; 4096];
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                loop {
                    match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return true,
                        Ok(Ok(_)) => continue,
                        Err(_) => return false,
                    }
                }
            });
        }
        let mut n = (0, 0);
        while let Some(r) = set.join_next().await {
            if r.unwrap_or(false) {
                n.0 += 1;
            } else {
                n.1 += 1;
            }
        }
        n
    });
    eprintln!(
        "flood connections closed by the cloud: {}, still open: {}",
        closed.0, closed.1
    );
    assert_eq!(closed.1, 0, "every idle connection is closed");
    let st = c.admin(&["ops", "status"]);
    eprintln!("ingest counters: {}", st["ingest"]);
    let adm = &st["ingest"]["admission"];
    assert!(adm["refused_source"].as_u64().unwrap_or(0) > 0, "{st}");
    assert!(
        adm["hello_timeouts"].as_u64().unwrap_or(0) + adm["tls_timeouts"].as_u64().unwrap_or(0) > 0,
        "{st}"
    );
    assert_eq!(adm["unauthenticated_open"].as_u64(), Some(0), "{st}");
}

/// Finding 5: frames before authentication are small: a client without a certificate
/// announcing a 1 MiB frame is cut off at the prefix.
#[test]
fn large_frames_before_authentication_are_refused() {
    let dir = tempdir("sec-ingest-frame");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    let cfg = tls(&c, None);
    rt().block_on(async {
        let mut cl = Client::connect(&c, cfg)
            .await
            .expect("TLS without a certificate");
        let t = Instant::now();
        let mut big = (1u32 << 20).to_be_bytes().to_vec();
        big.extend(vec![0u8; 32 * 1024]);
        let _ = cl.s.write_all(&big).await;
        let (closed, _) = cl.until_closed(Duration::from_secs(10)).await;
        assert!(closed, "closed");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "closed at the prefix, not by a timeout"
        );
    });
    let st = c.admin(&["ops", "status"]);
    assert_eq!(
        st["ingest"]["admission"]["pre_auth_oversized"].as_u64(),
        Some(1),
        "{st}"
    );
}

/// The cloud's copy of sid 9000001: informational. The appliance's copy (C2_RULES) says
/// `signature_severity Major, confidence High`, classtype trojan-activity.
const CLOUD_COPY: &str = r#"alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ET INFO CryptoWall-like check-in (cloud copy)"; flow:established,to_server; content:"POST /76N1Lm.php"; classtype:misc-activity; metadata: signature_severity Informational; sid:9000001; rev:1;)
"#;

/// Finding 9: an appliance whose rules claim High/Major for a rule the cloud knows as
/// informational gets the cloud's rating (no ★★★ mail, no auto-isolation); an alert for a
/// rule the cloud does not know is rated 調査中.
#[test]
fn forged_rule_metadata_gets_the_clouds_rating() {
    let dir = tempdir("sec-ingest-score");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(
        &dir,
        smtp.port,
        "mail_window = \"2s\"\nstartup_grace = \"1h\"\nmail_retry_min = \"1s\"",
    );
    let report = import_rules_text(&c, "cloud.rules", CLOUD_COPY);
    assert_eq!(report["rules"], 1, "{report}");
    // an import with a broken rule: counted, not fatal
    let report = import_rules_text(
        &c,
        "broken.rules",
        "alert tcp any any -> any any (msg:\"x\"; nosuchkeyword; sid:1; rev:1;)\n",
    );
    assert_eq!(
        (report["rules"].as_u64(), report["failed"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    let (cid, dev, code) = provision(&c, &["it@example.com"]);
    c.admin(&["contract", "isolation", &cid.to_string(), "--auto", "on"]);
    assert!(activate(&c, &dir.join("st"), &code).status.success());
    let up = uplink_toml(&dir, &dir.join("st"), 30);
    let out = replay_uplink(&dir, &up, C2_RULES);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = c.alerts();
    let sid = |a: &Value| a["event"]["alert"]["detection"]["Signature"]["sid"].as_u64();
    let forged: Vec<&Value> = alerts.iter().filter(|a| sid(a) == Some(9000001)).collect();
    assert!(
        !forged.is_empty(),
        "the appliance reported sid 9000001: {alerts:?}"
    );
    for a in &forged {
        assert!(
            a["level"] == "info" || a["level"] == "low",
            "the cloud's rating, not the appliance's: {a}"
        );
        let s = &a["event"]["alert"]["detection"]["Signature"];
        assert_eq!(s["classtype"], "misc-activity", "{a}");
    }
    let unknown: Vec<&Value> = alerts
        .iter()
        .filter(|a| matches!(sid(a), Some(9000002) | Some(9000003)))
        .collect();
    assert!(!unknown.is_empty(), "{alerts:?}");
    for a in &unknown {
        assert_eq!(a["level"], "investigating", "{a}");
        assert!(
            a["reason"]
                .as_str()
                .unwrap_or("")
                .contains("知らないルール"),
            "{a}"
        );
    }
    assert!(
        !alerts.iter().any(|a| a["level"] == "high"),
        "no ★★★ from forged metadata"
    );
    // the mail says 調査中, never ★★★
    wait_for("the 調査中 mail", Duration::from_secs(30), || {
        !smtp.mails().is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    for (_, m) in smtp.mails() {
        let subj = subject(&m);
        assert!(!subj.contains("★★★"), "{subj}");
    }
    assert!(
        smtp.mails()
            .iter()
            .any(|(_, m)| subject(m).contains("調査中")),
        "{:?}",
        smtp.mails()
            .iter()
            .map(|(_, m)| subject(m))
            .collect::<Vec<_>>()
    );
    // no auto-isolation
    let show = c.admin(&["device", "show", &dev]);
    assert!(
        !show.to_string().contains("auto-isolation"),
        "no host isolated: {show}"
    );
}

/// Finding 10: command results for unknown ids (or another device's) are ignored, and a
/// flood of results closes the session.
#[test]
fn result_floods_close_the_session() {
    let dir = tempdir("sec-ingest-results");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    let (_, a, st_a) = device(&c, &dir, "a", "a@example.com");
    let cfg = tls(&c, Some(&st_a));
    rt().block_on(async {
        let mut s = session(&c, cfg, &a).await;
        // bounded: 200 results for ids that do not exist
        for id in 0..200u64 {
            if s.send(&UpMsg::CommandResult(CommandResult {
                command_id: 1_000_000 + id,
                ok: true,
                message: Text::truncated("forged"),
            }))
            .await
            .is_err()
            {
                break;
            }
        }
        let (closed, _) = s.until_closed(Duration::from_secs(10)).await;
        assert!(closed, "the flood of results closes the session");
    });
    let st = c.admin(&["ops", "status"]);
    assert!(
        st["ingest"]["results_rate_limited"].as_u64().unwrap_or(0) >= 1,
        "{st}"
    );
    let show = c.admin(&["device", "show", &a]);
    assert!(!show.to_string().contains("forged"), "{show}");
}

/// Finding 10: an activation code older than `activation_code_ttl` is refused with a
/// clear reason; the operator issues a new one, which works.
#[test]
fn expired_activation_codes_are_refused_and_can_be_reissued() {
    let dir = tempdir("sec-ingest-code");
    let smtp = Smtp::start(&dir.join("mail"), free_port());
    let mut c = Cloud::start(&dir, smtp.port, "startup_grace = \"1h\"");
    restart_with_ingest(&mut c, "activation_code_ttl = \"2s\"");
    let (_, dev, code) = provision(&c, &["a@example.com"]);
    std::thread::sleep(Duration::from_secs(3));
    let out = activate(&c, &dir.join("old"), &code);
    assert!(!out.status.success(), "an expired code must be refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expired"), "{err}");
    let v = c.admin(&["device", "reissue", &dev]);
    let fresh = v["activation_code"]
        .as_str()
        .expect("a new code")
        .to_string();
    let out = activate(&c, &dir.join("new"), &fresh);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the old code stays dead
    let out = activate(&c, &dir.join("old2"), &code);
    assert!(!out.status.success());
}
