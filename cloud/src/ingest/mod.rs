//! Ingest: the appliance-facing listener. TLS 1.3; a client certificate from the device CA
//! identifies the appliance (mutual TLS); a connection without one may only activate.
//! Frames are decoded with the protocol's limits; a malformed or oversized frame closes
//! that connection only, with a logged reason. Batches are acknowledged after the writer
//! committed them.

pub mod admit;
pub mod process;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use protocol::messages::{
    ACTIVATION_DEVICE, Ack, Activated, DeviceId, DownMsg, HelloAck, RefuseReason, Refused, UpMsg,
};
use protocol::{FrameDecoder, encode_frame, handshake};

use crate::store::DeviceStatus;
use crate::{App, command};

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame: {0}")]
    Frame(#[from] protocol::FrameError),
    #[error("handshake: {0}")]
    Handshake(#[from] protocol::HandshakeError),
    #[error("refused: {0}")]
    Refused(String),
    #[error("idle for too long")]
    Idle,
    #[error("no Hello (or activation) within the deadline after connecting")]
    HelloTimeout,
    #[error("{0}")]
    Other(String),
}

/// Counters of the ingest listener, shown by the admin status.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Batches refused in the writer's transaction (device revoked, contract ended).
    pub refused_batches: AtomicU64,
    /// Live sessions closed by a revocation or a contract end.
    pub sessions_stopped: AtomicU64,
    /// Result and bundle reports beyond the rate limit (each closed its session).
    pub results_rate_limited: AtomicU64,
    /// Admission (slots, deadlines, pre-authentication limits).
    pub admit: Arc<admit::AdmitStats>,
}

impl IngestStats {
    /// The counters as JSON (`admin ops status`).
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "refused_batches": self.refused_batches.load(Relaxed),
            "sessions_stopped": self.sessions_stopped.load(Relaxed),
            "results_rate_limited": self.results_rate_limited.load(Relaxed),
            "admission": self.admit.snapshot(),
        })
    }
}

/// Accept connections forever.
pub async fn serve(app: Arc<App>, listener: TcpListener) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&app.identity.server_config));
    let admission = admit::Admission::new(&app.cfg.ingest, Arc::clone(&app.ingest_stats.admit));
    let mut backoff = Duration::from_millis(10);
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                // out of file descriptors and the like: back off instead of spinning
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Some(ticket) = admission.admit(peer.ip()) else {
            let st = admission.stats();
            let n = st.refused_source.load(Relaxed) + st.refused_unauthenticated_full.load(Relaxed);
            // one line per power of two, not one per connection of a flood
            if n.is_power_of_two() {
                tracing::warn!(%peer, refused_so_far = n, "unauthenticated connection limit reached (per source or in total); refusing");
            }
            drop(sock);
            continue;
        };
        let _ = sock.set_nodelay(true);
        let app = Arc::clone(&app);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let mut ticket = ticket;
            let cfg = &app.cfg.ingest;
            // absolute: reads do not extend it
            let deadline = tokio::time::Instant::now() + cfg.hello_timeout;
            let tls_deadline =
                (tokio::time::Instant::now() + cfg.tls_handshake_timeout).min(deadline);
            let tls = match tokio::time::timeout_at(tls_deadline, acceptor.accept(sock)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    ticket.stats().tls_failures.fetch_add(1, Relaxed);
                    tracing::info!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    ticket.stats().tls_timeouts.fetch_add(1, Relaxed);
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let peer_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec());
            match session(&app, tls, peer_cert, &mut ticket, deadline).await {
                Ok(dev) => tracing::debug!(%peer, device = %dev, "connection closed"),
                Err(e) => tracing::info!(%peer, error = %e, "connection closed"),
            }
        });
    }
}

/// One session on an already secured stream, without the listener's budgets: `peer_cert`
/// is the client certificate the TLS layer verified (`None`: activation only). For tests
/// and the `ingest` fuzz target.
pub async fn run_session<S: AsyncRead + AsyncWrite + Unpin>(
    app: &App,
    io: S,
    peer_cert: Option<Vec<u8>>,
) -> Result<String, SessionError> {
    let adm = admit::Admission::unlimited();
    let Some(mut ticket) = adm.admit(std::net::IpAddr::from([127, 0, 0, 1])) else {
        return Err(SessionError::Other("no slot".into()));
    };
    let deadline = tokio::time::Instant::now() + app.cfg.ingest.hello_timeout;
    session(app, io, peer_cert, &mut ticket, deadline).await
}

/// Framed reading and writing on one connection.
struct Conn<S> {
    io: S,
    dec: FrameDecoder,
    buf: Vec<u8>,
    idle: Duration,
    /// Until the peer is authenticated: when it must have finished (reads do not extend it).
    deadline: Option<tokio::time::Instant>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn next(&mut self) -> Result<Option<UpMsg>, SessionError> {
        match self.next_body().await? {
            Some(b) => Ok(Some(protocol::decode_body::<UpMsg>(&b)?)),
            None => Ok(None),
        }
    }
    async fn next_body(&mut self) -> Result<Option<Vec<u8>>, SessionError> {
        loop {
            if let Some(b) = self.dec.next_body()? {
                return Ok(Some(b.to_vec()));
            }
            let n = match self.deadline {
                Some(d) => match tokio::time::timeout_at(d, self.io.read(&mut self.buf)).await {
                    Ok(r) => r?,
                    Err(_) => return Err(SessionError::HelloTimeout),
                },
                None => match tokio::time::timeout(self.idle, self.io.read(&mut self.buf)).await {
                    Ok(r) => r?,
                    Err(_) => return Err(SessionError::Idle),
                },
            };
            if n == 0 {
                return Ok(None);
            }
            self.dec.push(&self.buf[..n])?;
        }
    }
    async fn send(&mut self, m: &DownMsg) -> Result<(), SessionError> {
        let f = encode_frame(m)?;
        match self.deadline {
            // a peer that does not read cannot hold the connection past the deadline
            Some(d) => tokio::time::timeout_at(d, async {
                self.io.write_all(&f).await?;
                self.io.flush().await
            })
            .await
            .map_err(|_| SessionError::HelloTimeout)??,
            None => {
                self.io.write_all(&f).await?;
                self.io.flush().await?;
            }
        }
        Ok(())
    }
    /// The peer is authenticated: the protocol's frame limit, no absolute deadline.
    fn authenticated(&mut self) {
        self.deadline = None;
        self.dec.set_max_frame(protocol::limits::MAX_FRAME_LEN);
        self.buf.resize(64 * 1024, 0);
    }
    async fn refuse(&mut self, reason: RefuseReason) -> SessionError {
        let why = format!("{reason:?}");
        let _ = self.send(&DownMsg::Refused(Refused { reason })).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
        SessionError::Refused(why)
    }
}

/// One connection: handshake, then activation or the event stream. Returns the device id.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    app: &App,
    io: S,
    peer_cert: Option<Vec<u8>>,
    ticket: &mut admit::Ticket,
    deadline: tokio::time::Instant,
) -> Result<String, SessionError> {
    let mut c = Conn {
        io,
        dec: FrameDecoder::with_max_frame(app.cfg.ingest.max_pre_auth_frame),
        buf: vec![0u8; 4096],
        idle: app.cfg.ingest.idle_timeout,
        deadline: Some(deadline),
    };
    let first = match c.next_body().await {
        Ok(Some(f)) => f,
        Ok(None) => return Err(SessionError::Other("closed before Hello".into())),
        Err(e) => return Err(pre_auth_error(ticket, e)),
    };
    let (hello, version) = match handshake::read_hello(&first) {
        Ok(x) => x,
        Err(e) => {
            let reason = e.refuse_reason().unwrap_or(RefuseReason::MalformedHello);
            c.refuse(reason).await;
            return Err(e.into());
        }
    };
    let Some(cert) = peer_cert else {
        // no client certificate: activation only
        if hello.device.as_str() != ACTIVATION_DEVICE {
            return Err(c.refuse(RefuseReason::UnknownDevice).await);
        }
        c.send(&DownMsg::HelloAck(HelloAck { version })).await?;
        return activate(app, &mut c)
            .await
            .map_err(|e| pre_auth_error(ticket, e));
    };
    let Some((cert_device, serial)) = crate::identity::peer_identity(&cert) else {
        return Err(c.refuse(RefuseReason::UnknownDevice).await);
    };
    if cert_device != hello.device.as_str() {
        return Err(c.refuse(RefuseReason::DeviceMismatch).await);
    }
    // subscribed before the status is read: a revocation from now on reaches this session
    let mut stop = StopGuard {
        app,
        device: cert_device.clone(),
        rx: Some(app.session_stop(&cert_device)),
    };
    let device = match app.store.read(|rx| rx.device(&cert_device)) {
        Ok(Some(d)) => d,
        Ok(None) => return Err(c.refuse(RefuseReason::UnknownDevice).await),
        Err(e) => return Err(SessionError::Other(e.to_string())),
    };
    let contract = app
        .store
        .read(|rx| rx.contract(device.contract_id))
        .map_err(|e| SessionError::Other(e.to_string()))?;
    let ended = contract.as_ref().is_none_or(|k| k.ended.is_some());
    if device.cert_serial.as_deref() != Some(serial.as_str()) {
        tracing::warn!(device = %cert_device, "refused: replaced certificate");
        return Err(c.refuse(RefuseReason::UnknownDevice).await);
    }
    if device.status != DeviceStatus::Active || ended {
        // the one thing an ended contract's appliance still gets: its wipe
        let wipe = command::pending_wipe(app, &cert_device)
            .map_err(|e| SessionError::Other(e.to_string()))?;
        if let Some(w) = wipe {
            if !ticket.authenticated() {
                return Err(c.refuse(RefuseReason::Busy).await);
            }
            c.authenticated();
            c.send(&DownMsg::HelloAck(HelloAck { version })).await?;
            return deliver_wipe(app, &mut c, &cert_device, w, true).await;
        }
        tracing::warn!(device = %cert_device, ended, "refused: revoked device or ended contract");
        return Err(c
            .refuse(if ended {
                RefuseReason::ContractEnded
            } else {
                RefuseReason::UnknownDevice
            })
            .await);
    }
    // authenticated: a session slot instead of an unauthenticated one
    if !ticket.authenticated() {
        tracing::warn!(device = %cert_device, "refused: session slots (in total or from this address) are full");
        return Err(c.refuse(RefuseReason::Busy).await);
    }
    c.authenticated();
    // connections per device
    let busy = {
        let mut m = app.connections.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(cert_device.clone()).or_insert(0);
        if *n >= app.cfg.ingest.max_connections_per_device {
            true
        } else {
            *n += 1;
            false
        }
    };
    if busy {
        return Err(c.refuse(RefuseReason::Busy).await);
    }
    let _guard = ConnGuard {
        app,
        device: cert_device.clone(),
    };
    c.send(&DownMsg::HelloAck(HelloAck { version })).await?;
    app.alive(
        &cert_device,
        Some(hello.firmware.as_str()),
        Some(hello.rules_version.as_str()),
    );
    tracing::info!(device = %cert_device, firmware = %hello.firmware.as_str(), "appliance connected");
    let rate = app.cfg.ingest.max_events_per_sec_per_device.max(1) as f64;
    let mut bucket = TokenBucket::new(rate);
    // results and bundle reports each write the store: a bounded rate, more ends the session
    let mut results = TokenBucket::new(app.cfg.ingest.max_results_per_sec.max(1) as f64);
    // commands: those waiting now, then whenever one is queued for this device
    let waker = app.command_waker(&cert_device);
    waker.notify_one();
    let mut sent_here = std::collections::HashSet::new();
    let speaks_bundles = version >= 2;
    let mut running_rules = hello.rules_version.as_str().to_string();
    // one deadline for the peer's silence: wake-ups must not extend it
    let idle = app.cfg.ingest.idle_timeout;
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.changed() => {
                return stopped(app, &mut c, &cert_device, &sent_here).await;
            }
            m = c.next() => m?,
            _ = waker.notified() => {
                let cmds = command::outgoing(app, &cert_device, &running_rules, speaks_bundles, &mut sent_here)
                    .map_err(|e| SessionError::Other(e.to_string()))?;
                for cmd in cmds {
                    tracing::info!(device = %cert_device, id = cmd.id, command = %command::describe(&cmd.cmd), "command sent");
                    c.send(&DownMsg::Command(cmd)).await?;
                }
                continue;
            }
            _ = tokio::time::sleep_until(idle_deadline) => return Err(SessionError::Idle),
        };
        idle_deadline = tokio::time::Instant::now() + idle;
        let Some(msg) = msg else {
            return Ok(cert_device);
        };
        match msg {
            UpMsg::Events(ev) => {
                if let Some(wait) = bucket.take(ev.events.len() as f64) {
                    tokio::time::sleep(wait).await;
                }
                if ev.events.is_empty() {
                    continue;
                }
                let stored = app
                    .writer
                    .store(&cert_device, device.contract_id, ev.events)
                    .await
                    .map_err(SessionError::Other)?;
                if let Some(why) = stored.refused {
                    // nothing was written; not acknowledged
                    tracing::warn!(device = %cert_device, reason = %why, "batch refused; closing the session");
                    app.ingest_stats.refused_batches.fetch_add(1, Relaxed);
                    return Err(c
                        .refuse(match why {
                            process::Refusal::ContractEnded => RefuseReason::ContractEnded,
                            process::Refusal::DeviceNotActive => RefuseReason::UnknownDevice,
                        })
                        .await);
                }
                app.mail_queued.notify_one();
                if stored.isolations > 0 {
                    app.commands_changed(Some(&cert_device));
                }
                c.send(&DownMsg::Ack(Ack {
                    upto_seq: stored.upto,
                }))
                .await?;
                app.alive(&cert_device, None, None);
            }
            UpMsg::Heartbeat(h) => {
                app.heartbeat_counters(&cert_device, &h.counters);
                app.alive(
                    &cert_device,
                    Some(h.firmware.as_str()),
                    Some(h.rules_version.as_str()),
                );
                running_rules = h.rules_version.as_str().to_string();
            }
            UpMsg::CommandResult(_) | UpMsg::BundleStatus(_) if results.take(1.0).is_some() => {
                app.ingest_stats.results_rate_limited.fetch_add(1, Relaxed);
                tracing::warn!(device = %cert_device, "command results / bundle reports above the rate limit; closing the session");
                return Err(SessionError::Other(
                    "command results / bundle reports above the rate limit".into(),
                ));
            }
            UpMsg::CommandResult(r) => command::on_result(app, &cert_device, &r)
                .map_err(|e| SessionError::Other(e.to_string()))?,
            UpMsg::BundleStatus(b) => {
                if matches!(b.state, protocol::messages::BundleState::Applied) {
                    running_rules = b.version.as_str().to_string();
                }
                command::on_bundle_status(app, &cert_device, &b)
                    .map_err(|e| SessionError::Other(e.to_string()))?
            }
            UpMsg::BundleFetch(f) => {
                let chunk = command::bundle::chunk(app, &f.version, f.offset)
                    .await
                    .map_err(|e| SessionError::Other(e.to_string()))?;
                match chunk {
                    Some(chunk) => c.send(&DownMsg::BundleChunk(chunk)).await?,
                    None => {
                        return Err(SessionError::Other(format!(
                            "asked for bundle {} at {}, which is not published",
                            f.version.as_str(),
                            f.offset
                        )));
                    }
                }
            }
            UpMsg::Hello(_) | UpMsg::Activate(_) => {
                return Err(SessionError::Other(
                    "unexpected Hello/Activate in an established session".into(),
                ));
            }
        }
    }
}

/// The session of `device` was told to stop (revoked, or its contract ended): the event
/// stream ends now; a pending wipe is the one thing still delivered on it.
async fn stopped<S: AsyncRead + AsyncWrite + Unpin>(
    app: &App,
    c: &mut Conn<S>,
    device: &str,
    sent_here: &std::collections::HashSet<u64>,
) -> Result<String, SessionError> {
    app.ingest_stats.sessions_stopped.fetch_add(1, Relaxed);
    let wipe =
        command::pending_wipe(app, device).map_err(|e| SessionError::Other(e.to_string()))?;
    if let Some(w) = wipe {
        let resend = !sent_here.contains(&w.id);
        return deliver_wipe(app, c, device, w, resend).await;
    }
    let ended = app
        .store
        .read(|rx| {
            Ok(match rx.device(device)? {
                Some(d) => rx
                    .contract(d.contract_id)?
                    .is_none_or(|k| k.ended.is_some()),
                None => false,
            })
        })
        .unwrap_or(false);
    tracing::warn!(
        device,
        ended,
        "live session closed: device revoked or contract ended"
    );
    Err(c
        .refuse(if ended {
            RefuseReason::ContractEnded
        } else {
            RefuseReason::UnknownDevice
        })
        .await)
}

/// Sends an ended contract's appliance its wipe (unless `send` is false: it went out on
/// this session already) and waits (bounded) for the answer; its events are not stored
/// any more.
async fn deliver_wipe<S: AsyncRead + AsyncWrite + Unpin>(
    app: &App,
    c: &mut Conn<S>,
    device: &str,
    mut w: crate::store::CommandRecord,
    send: bool,
) -> Result<String, SessionError> {
    if send {
        let now = app.now();
        w.state = crate::store::CommandState::Sent;
        w.sent_ms = Some(now);
        let rec = w.clone();
        app.store
            .write(|tx| tx.put_command(&rec))
            .map_err(|e| SessionError::Other(e.to_string()))?;
        c.send(&DownMsg::Command(protocol::messages::Command {
            id: w.id,
            cmd: protocol::messages::CommandKind::Wipe,
        }))
        .await?;
        tracing::warn!(device, id = w.id, "wipe sent (contract ended)");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msg = tokio::time::timeout_at(deadline, c.next())
            .await
            .map_err(|_| SessionError::Idle)??;
        match msg {
            Some(UpMsg::CommandResult(r)) if r.command_id == w.id => {
                command::on_result(app, device, &r)
                    .map_err(|e| SessionError::Other(e.to_string()))?;
                return Ok(device.to_string());
            }
            Some(_) => continue,
            None => return Ok(device.to_string()),
        }
    }
}

/// The stop signal of one session; forgotten with the device's last session.
struct StopGuard<'a> {
    app: &'a App,
    device: String,
    rx: Option<tokio::sync::watch::Receiver<u64>>,
}

impl StopGuard<'_> {
    /// Resolves when the session must end.
    async fn changed(&mut self) {
        match self.rx.as_mut() {
            Some(rx) => {
                // an error means the sender is gone, which only a bug could cause: stop too
                let _ = rx.changed().await;
            }
            None => std::future::pending().await,
        }
    }
}

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        self.rx = None;
        self.app.session_stop_done(&self.device);
    }
}

/// Counts why a connection ended before it was authenticated.
fn pre_auth_error(ticket: &admit::Ticket, e: SessionError) -> SessionError {
    match &e {
        SessionError::HelloTimeout => {
            ticket.stats().hello_timeouts.fetch_add(1, Relaxed);
        }
        SessionError::Frame(
            protocol::FrameError::TooLarge { .. } | protocol::FrameError::BufferFull { .. },
        ) => {
            ticket.stats().pre_auth_oversized.fetch_add(1, Relaxed);
        }
        _ => {}
    }
    e
}

struct ConnGuard<'a> {
    app: &'a App,
    device: String,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        let mut m = self
            .app
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.device) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.device);
            }
        }
    }
}

/// Redeem an activation code: issue the device certificate, once.
async fn activate<S: AsyncRead + AsyncWrite + Unpin>(
    app: &App,
    c: &mut Conn<S>,
) -> Result<String, SessionError> {
    let Some(UpMsg::Activate(req)) = c.next().await? else {
        return Err(c.refuse(RefuseReason::MalformedHello).await);
    };
    let hash = crate::identity::code_hash(req.code.as_str());
    let now = app.now();
    let issued = app.store.write(|tx| {
        let Some(dev_id) = tx.code_device(&hash)? else {
            return Ok(Err("unknown or already used activation code".to_string()));
        };
        let Some(mut d) = tx.device(&dev_id)? else {
            return Ok(Err("device no longer exists".to_string()));
        };
        if d.status != DeviceStatus::Pending {
            return Ok(Err("device already activated or revoked".to_string()));
        }
        let issued = tx.code_issued(&hash)?.unwrap_or(d.created_ms);
        let ttl = app.cfg.ingest.activation_code_ttl.as_millis() as i64;
        if now.saturating_sub(issued) > ttl {
            return Ok(Err(
                "activation code expired; ask your provider for a new one".to_string(),
            ));
        }
        let (cert, serial) = match app.identity.issue_device_cert(&d.id, req.csr_pem.as_str()) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e.to_string())),
        };
        d.status = DeviceStatus::Active;
        d.activated_ms = Some(now);
        d.cert_serial = Some(serial);
        tx.put_device(&d)?;
        tx.remove_code(&hash)?;
        Ok(Ok((d.id, cert)))
    });
    match issued {
        Ok(Ok((dev, cert))) => {
            let device = DeviceId::new(&dev).map_err(|e| SessionError::Other(e.to_string()))?;
            let msg = DownMsg::Activated(Activated {
                device,
                cert_pem: protocol::messages::Pem::new(cert)
                    .map_err(|e| SessionError::Other(e.to_string()))?,
                ca_pem: protocol::messages::Pem::new(app.identity.ca_pem.clone())
                    .map_err(|e| SessionError::Other(e.to_string()))?,
            });
            c.send(&msg).await?;
            let _ = c.io.shutdown().await;
            tracing::info!(device = %dev, "appliance activated");
            Ok(dev)
        }
        Ok(Err(why)) => {
            tracing::warn!(reason = %why, "activation refused");
            let reason = RefuseReason::Other(protocol::bounded::Text::truncated(&why));
            Err(c.refuse(reason).await)
        }
        Err(e) => Err(SessionError::Other(e.to_string())),
    }
}

/// Events per second per device, averaged over a second's burst.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        TokenBucket {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }
    /// Take `n`; returns how long to wait when the bucket is short.
    fn take(&mut self, n: f64) -> Option<Duration> {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        self.tokens -= n;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use protocol::messages::{DeviceId, Hello};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn app(name: &str) -> Arc<App> {
        let dir =
            std::env::temp_dir().join(format!("mimamori-ingest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg: crate::config::Config =
            toml::from_str(&format!("data_dir = {dir:?}\n[admin]\ntoken = \"t\"\n")).unwrap();
        crate::serve::build(cfg, Arc::new(crate::clock::ManualClock::new(1_000))).unwrap()
    }

    async fn exchange(
        app: &Arc<App>,
        frames: Vec<Vec<u8>>,
    ) -> (Result<String, SessionError>, Vec<DownMsg>) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let app2 = Arc::clone(app);
        let task = tokio::spawn(async move { run_session(&app2, server, None).await });
        for f in frames {
            client.write_all(&f).await.unwrap();
        }
        client.shutdown().await.unwrap();
        let mut buf = Vec::new();
        let _ = client.read_to_end(&mut buf).await;
        let mut dec = FrameDecoder::new();
        dec.push(&buf).unwrap();
        let mut msgs = Vec::new();
        while let Ok(Some(m)) = dec.next_frame::<DownMsg>() {
            msgs.push(m);
        }
        (task.await.unwrap(), msgs)
    }

    fn hello(dev: &str) -> Vec<u8> {
        let h = Hello::new(
            DeviceId::new(dev).unwrap(),
            protocol::bounded::Name::truncated("1.0"),
            protocol::bounded::Name::truncated("r1"),
        );
        encode_frame(&UpMsg::Hello(h)).unwrap()
    }

    #[tokio::test]
    async fn a_client_without_a_certificate_cannot_speak_for_a_device() {
        let app = app("nocert");
        let (res, msgs) = exchange(&app, vec![hello("dev-000001")]).await;
        assert!(matches!(res, Err(SessionError::Refused(_))));
        assert!(
            matches!(
                msgs.as_slice(),
                [DownMsg::Refused(Refused {
                    reason: RefuseReason::UnknownDevice
                })]
            ),
            "{msgs:?}"
        );
    }

    #[tokio::test]
    async fn garbage_and_oversized_frames_close_only_that_connection() {
        let app = app("garbage");
        let (res, _) = exchange(&app, vec![vec![0xff, 0xff, 0xff, 0xff, 0, 0]]).await;
        assert!(matches!(res, Err(SessionError::Frame(_))), "{res:?}");
        let (res, msgs) = exchange(&app, vec![vec![0, 0, 0, 3, 0xde, 0xad, 0xbe]]).await;
        assert!(res.is_err());
        assert!(msgs.iter().all(|m| matches!(m, DownMsg::Refused(_))));
        // the service still answers the next client
        let (res, msgs) = exchange(&app, vec![hello(ACTIVATION_DEVICE)]).await;
        assert!(
            matches!(msgs.first(), Some(DownMsg::HelloAck(_))),
            "{msgs:?} {res:?}"
        );
    }

    #[tokio::test]
    async fn a_wrong_activation_code_is_refused() {
        let app = app("code");
        let act = UpMsg::Activate(protocol::messages::Activate {
            code: protocol::bounded::Text::truncated("AAAA-BBBB-CCCC-DDDD"),
            csr_pem: protocol::messages::Pem::truncated("-----BEGIN CERTIFICATE REQUEST-----"),
        });
        let (res, msgs) = exchange(
            &app,
            vec![hello(ACTIVATION_DEVICE), encode_frame(&act).unwrap()],
        )
        .await;
        assert!(res.is_err());
        assert!(matches!(msgs.last(), Some(DownMsg::Refused(_))), "{msgs:?}");
    }
}
