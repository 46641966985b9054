//! One connection to the cloud: handshake, then events, heartbeats, acks and commands
//! concurrently until the connection fails or the uplink shuts down.
//!
//! Flow control: at most `max_in_flight` unacknowledged batches. A new connection starts
//! sending from the oldest spooled event, so everything unacknowledged is sent again; the
//! cloud stores by (device, seq), which makes that safe.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use protocol::bounded::Text;
use protocol::messages::{
    BundleChunk, BundleFetch, BundleState, BundleStatus, Command, CommandKind, CommandResult,
    Events, Heartbeat, Hello, RefuseReason, SeqEvent,
};
use protocol::{DownMsg, FrameError, HandshakeError, UpMsg, check_reply, encode_frame};
use sha2::Digest;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::activate::down_name;
use super::client::{Shared, UplinkOptions, spool_call};
use super::conn::{self, ConnError, FrameReader};
use super::counters::add;
use super::spool::SpoolError;

type Stream = TlsStream<super::tls::BoxStream>;

/// Answer to every command until commands are implemented.
const NOT_SUPPORTED: &str = "not supported by this firmware yet";

/// Bytes of a bundle kept in memory before the size is known to be honest.
const BUNDLE_PREALLOC: u64 = 16 << 20;

/// A rule bundle being downloaded on this connection.
struct Download {
    version: protocol::bounded::Name,
    size: u64,
    sha256: [u8; 32],
    buf: Vec<u8>,
}

/// What the appliance carries out, strictly in the order it arrived (an isolation and its
/// release must not swap), one at a time, off the session task.
enum Work {
    Command(Command),
    /// A downloaded bundle: its hash is checked, then it is installed.
    Install {
        version: protocol::bounded::Name,
        sha256: [u8; 32],
        file: Vec<u8>,
    },
}

/// Carries out `Work` in order; each result goes back to the session.
async fn work_loop(
    appliance: Arc<dyn super::Appliance>,
    mut rx: mpsc::Receiver<Work>,
    done: mpsc::Sender<Done>,
) {
    while let Some(w) = rx.recv().await {
        let a = Arc::clone(&appliance);
        let out = match w {
            Work::Command(cmd) => {
                let id = cmd.id;
                let r = tokio::task::spawn_blocking(move || a.apply(id, &cmd.cmd))
                    .await
                    .unwrap_or_else(|e| Err(format!("the command failed: {e}")));
                let (ok, message) = match r {
                    Ok(m) => (true, m),
                    Err(m) => (false, m),
                };
                Done::Command(CommandResult {
                    command_id: id,
                    ok,
                    message: Text::truncated(&message),
                })
            }
            Work::Install {
                version,
                sha256,
                file,
            } => {
                let r = tokio::task::spawn_blocking(move || {
                    if sha2::Sha256::digest(&file).as_slice() != sha256 {
                        return Err(
                            "SHA-256 of the downloaded file does not match the announcement"
                                .to_string(),
                        );
                    }
                    a.install_bundle(&file)
                })
                .await
                .unwrap_or_else(|e| Err(format!("installing failed: {e}")));
                let state = match r {
                    Ok(_) => BundleState::Applied,
                    Err(reason) => BundleState::Refused {
                        reason: Text::truncated(&reason),
                    },
                };
                Done::Bundle(BundleStatus { version, state })
            }
        };
        if done.send(out).await.is_err() {
            return;
        }
    }
}

/// Work done off the session task, reported back to it.
enum Done {
    Command(CommandResult),
    Bundle(BundleStatus),
}

/// Messages buffered between the reader task and the session.
const READ_QUEUE: usize = 256;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The connection failed or closed.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The cloud refused the connection.
    #[error("the cloud at {addr} refused the connection: {reason}")]
    Refused {
        /// The cloud address.
        addr: String,
        /// Its reason.
        reason: RefuseReason,
    },
    /// The cloud ended the TLS connection with an alert before accepting the `Hello`:
    /// usually it refused the device certificate (revoked, unknown CA).
    #[error("the cloud at {addr} refused the device certificate (TLS alert {alert})")]
    CertificateRefused {
        /// The cloud address.
        addr: String,
        /// The alert, e.g. `CertificateRevoked`.
        alert: String,
    },
    /// The version handshake failed.
    #[error("{addr}: {cause}")]
    Handshake {
        /// The cloud address.
        addr: String,
        /// The fault.
        cause: HandshakeError,
    },
    /// The cloud sent a message that has no meaning here.
    #[error("{addr} sent an unexpected {got}")]
    Unexpected {
        /// The cloud address.
        addr: String,
        /// The message kind.
        got: &'static str,
    },
    /// Events were sent but nothing came back.
    #[error("{addr}: no acknowledgement for {secs} s")]
    AckTimeout {
        /// The cloud address.
        addr: String,
        /// The time limit.
        secs: u64,
    },
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl SessionError {
    /// Whether retrying is pointless until an operator acts: the device is unknown or its
    /// contract ended.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SessionError::Refused {
                reason: RefuseReason::UnknownDevice | RefuseReason::ContractEnded,
                ..
            }
        )
    }
}

/// How a session ended.
pub(crate) struct SessionEnd {
    /// `Ok` when the uplink was shut down.
    pub result: Result<(), SessionError>,
    /// The cloud accepted the session and it proved healthy (acked events or lasted).
    pub stable: bool,
}

/// Runs one connection until it ends.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    opts: &UplinkOptions,
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let addr = opts.cloud.to_string();
    let handshake = tokio::select! {
        r = handshake(shared, opts, &addr) => r,
        // connecting can take up to `io_timeout`; shutting down need not wait for it
        _ = shutdown.changed() => return SessionEnd { result: Ok(()), stable: false },
    };
    let mut session = match handshake {
        Ok(s) => s,
        Err(e) => {
            return SessionEnd {
                result: Err(e),
                stable: false,
            };
        }
    };
    let started = Instant::now();
    let result = session.serve(shutdown).await;
    if result.is_ok() {
        // close_notify, so the cloud sees an orderly end
        let _ = tokio::time::timeout(Duration::from_secs(1), session.writer.shutdown()).await;
    }
    session.reader.abort();
    if let Some(w) = &session.worker {
        w.abort();
    }
    let stable = session.acked_any || started.elapsed() >= opts.stable_after;
    SessionEnd { result, stable }
}

/// A TLS alert before the `HelloAck` is the cloud refusing the certificate; other
/// connection errors stay as they are.
fn before_ack(e: ConnError) -> SessionError {
    match &e {
        ConnError::Tls { addr, cause } | ConnError::Io { addr, cause } => {
            match conn::tls_alert(cause) {
                Some(alert) => SessionError::CertificateRefused {
                    addr: addr.clone(),
                    alert: format!("{alert:?}"),
                },
                None => e.into(),
            }
        }
        _ => e.into(),
    }
}

/// Connects, sends `Hello`, checks the answer.
async fn handshake<'a>(
    shared: &'a Arc<Shared>,
    opts: &'a UplinkOptions,
    addr: &str,
) -> Result<Session<'a>, SessionError> {
    let stream = super::tls::connect(
        &opts.cloud,
        &opts.transport,
        Arc::clone(&opts.tls),
        opts.io_timeout,
    )
    .await
    .map_err(before_ack)?;
    let (rd, mut writer) = tokio::io::split(stream);
    let hello = Hello::new(
        opts.device.clone(),
        opts.firmware.clone(),
        rules_version(opts),
    );
    write(&mut writer, &UpMsg::Hello(hello), addr, opts.io_timeout)
        .await
        .map_err(before_ack)?;
    let mut reader = FrameReader::new(rd, addr);
    let reply = tokio::time::timeout(opts.io_timeout, reader.next())
        .await
        .map_err(|_| ConnError::Timeout {
            addr: addr.into(),
            what: "waiting for HelloAck",
            secs: opts.io_timeout.as_secs(),
        })?
        .map_err(before_ack)?;
    check_reply(&reply).map_err(|cause| match cause {
        HandshakeError::Refused(reason) => SessionError::Refused {
            addr: addr.into(),
            reason,
        },
        cause => SessionError::Handshake {
            addr: addr.into(),
            cause,
        },
    })?;
    add(&shared.counters.sessions, 1);
    tracing::info!(cloud = %addr, device = %opts.device, "uplink connected");
    let (tx, rx) = mpsc::channel(READ_QUEUE);
    let reader = tokio::spawn(read_loop(reader, tx));
    let (done_tx, done_rx) = mpsc::channel(64);
    let (work_tx, work_rx) = mpsc::channel(256);
    let worker = opts
        .appliance
        .clone()
        .map(|a| tokio::spawn(work_loop(a, work_rx, done_tx)));
    Ok(Session {
        shared,
        opts,
        addr: addr.to_string(),
        writer,
        rx,
        reader,
        sent_upto: 0,
        in_flight: VecDeque::new(),
        ack_clock: Instant::now(),
        acked_any: false,
        download: None,
        work_tx,
        worker,
        done_rx,
    })
}

/// The rule-bundle version to announce: the appliance's, else the configured one.
fn rules_version(opts: &UplinkOptions) -> protocol::bounded::Name {
    opts.appliance
        .as_ref()
        .map(|a| protocol::bounded::Name::truncated(&a.rules_version()))
        .unwrap_or_else(|| opts.rules_version.clone())
}

/// Forwards the cloud's messages to the session; ends after the first error.
async fn read_loop(
    mut reader: FrameReader<ReadHalf<Stream>>,
    tx: mpsc::Sender<Result<DownMsg, ConnError>>,
) {
    loop {
        let msg = reader.next().await;
        let failed = msg.is_err();
        if tx.send(msg).await.is_err() || failed {
            return;
        }
    }
}

/// Writes one message within the time limit.
async fn write(
    w: &mut WriteHalf<Stream>,
    msg: &UpMsg,
    addr: &str,
    limit: Duration,
) -> Result<(), ConnError> {
    tokio::time::timeout(limit, conn::send(w, msg, addr))
        .await
        .map_err(|_| ConnError::Timeout {
            addr: addr.into(),
            what: "writing",
            secs: limit.as_secs(),
        })?
}

struct Session<'a> {
    shared: &'a Arc<Shared>,
    opts: &'a UplinkOptions,
    addr: String,
    writer: WriteHalf<Stream>,
    rx: mpsc::Receiver<Result<DownMsg, ConnError>>,
    reader: tokio::task::JoinHandle<()>,
    /// Highest sequence number sent on this connection.
    sent_upto: u64,
    /// Last sequence number of each unacknowledged batch, oldest first.
    in_flight: VecDeque<u64>,
    /// The ack timeout runs from here: the last message from the cloud, or the moment the
    /// in-flight window stopped being empty, whichever is later.
    ack_clock: Instant,
    acked_any: bool,
    download: Option<Download>,
    /// To the task that carries out commands and installs, in order.
    work_tx: mpsc::Sender<Work>,
    worker: Option<tokio::task::JoinHandle<()>>,
    done_rx: mpsc::Receiver<Done>,
}

impl Session<'_> {
    async fn serve(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), SessionError> {
        // the cloud sees the appliance alive at once, before any events
        self.heartbeat().await?;
        let period = self.opts.heartbeat;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.fill().await?;
            let can_send = self.in_flight.len() < self.opts.max_in_flight;
            let waiting_ack = !self.in_flight.is_empty();
            let ack_deadline = self.ack_clock + self.opts.ack_timeout;
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(()),
                // before messages, so that a busy connection still sends heartbeats
                _ = heartbeat.tick() => self.heartbeat().await?,
                msg = self.rx.recv() => match msg {
                    Some(Ok(msg)) => self.on_message(msg).await?,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(ConnError::Closed { addr: self.addr.clone() }.into()),
                },
                Some(done) = self.done_rx.recv() => self.on_done(done).await?,
                _ = self.shared.wake.notified(), if can_send => {}
                _ = tokio::time::sleep_until(ack_deadline), if waiting_ack => {
                    return Err(SessionError::AckTimeout { addr: self.addr.clone(), secs: self.opts.ack_timeout.as_secs() });
                }
            }
        }
    }

    /// Sends spooled events while the in-flight window has room.
    async fn fill(&mut self) -> Result<(), SessionError> {
        while self.in_flight.len() < self.opts.max_in_flight {
            let (after, max) = (self.sent_upto, self.opts.batch_max);
            let batch = match spool_call(&self.shared.spool, move |s| s.pending(after, max)).await {
                Ok(batch) => batch,
                Err(SpoolError::Corrupt { seq, reason }) => {
                    tracing::error!(seq, %reason, "spooled event cannot be decoded; removed from the spool");
                    self.discard(seq).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if batch.is_empty() {
                return Ok(());
            }
            self.send_batch(batch).await?;
        }
        Ok(())
    }

    /// Sends a batch, split until each part fits in a frame.
    async fn send_batch(&mut self, mut batch: Vec<SeqEvent>) -> Result<(), SessionError> {
        while !batch.is_empty() {
            let mut take = batch.len();
            let frame = loop {
                let part = Events {
                    events: batch[..take].to_vec(),
                };
                match encode_frame(&UpMsg::Events(part)) {
                    Ok(frame) => break Some(frame),
                    Err(FrameError::TooLarge { .. }) if take > 1 => take /= 2,
                    // one event breaks a limit: go one at a time to find it
                    Err(_) if take > 1 => take = 1,
                    Err(e) => {
                        tracing::error!(seq = batch[0].seq, error = %e, "spooled event cannot be sent; removed from the spool");
                        break None;
                    }
                }
            };
            let last = batch[take - 1].seq;
            match frame {
                Some(frame) => {
                    tokio::time::timeout(
                        self.opts.io_timeout,
                        conn::send_frame(&mut self.writer, &frame, &self.addr),
                    )
                    .await
                    .map_err(|_| ConnError::Timeout {
                        addr: self.addr.clone(),
                        what: "writing",
                        secs: self.opts.io_timeout.as_secs(),
                    })??;
                    if self.in_flight.is_empty() {
                        self.ack_clock = Instant::now();
                    }
                    self.in_flight.push_back(last);
                    add(&self.shared.counters.events_sent, take as u64);
                    add(&self.shared.counters.batches_sent, 1);
                }
                None => self.discard(last).await?,
            }
            self.sent_upto = last;
            batch.drain(..take);
        }
        Ok(())
    }

    async fn discard(&mut self, seq: u64) -> Result<(), SessionError> {
        self.shared
            .remove(|c| &c.events_discarded, move |s| s.discard(&[seq]))
            .await?;
        self.sent_upto = self.sent_upto.max(seq);
        Ok(())
    }

    async fn on_message(&mut self, msg: DownMsg) -> Result<(), SessionError> {
        self.ack_clock = Instant::now();
        match msg {
            DownMsg::Ack(ack) => self.on_ack(ack.upto_seq).await,
            DownMsg::Command(cmd) => self.on_command(cmd).await,
            DownMsg::BundleChunk(chunk) => self.on_chunk(chunk).await,
            DownMsg::Refused(r) => Err(SessionError::Refused {
                addr: self.addr.clone(),
                reason: r.reason,
            }),
            other => Err(SessionError::Unexpected {
                addr: self.addr.clone(),
                got: down_name(&other),
            }),
        }
    }

    async fn on_ack(&mut self, upto: u64) -> Result<(), SessionError> {
        let counters = &self.shared.counters;
        if upto > self.sent_upto {
            // never trust an ack for data this connection did not carry
            add(&counters.acks_beyond_sent, 1);
            tracing::warn!(
                upto,
                sent = self.sent_upto,
                "ack beyond what was sent; applied up to what was sent"
            );
        }
        let upto = upto.min(self.sent_upto);
        let removed = self
            .shared
            .remove(|c| &c.events_acked, move |s| s.ack(upto))
            .await?;
        while self.in_flight.front().is_some_and(|last| *last <= upto) {
            self.in_flight.pop_front();
        }
        self.acked_any |= removed > 0;
        self.shared.progress.notify_waiters();
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), SessionError> {
        let Some(appliance) = self.opts.appliance.clone() else {
            tracing::info!(id = cmd.id, command = ?cmd.cmd, "command from the cloud; not supported here");
            add(&self.shared.counters.commands_refused, 1);
            return self
                .send(UpMsg::CommandResult(CommandResult {
                    command_id: cmd.id,
                    ok: false,
                    message: Text::truncated(NOT_SUPPORTED),
                }))
                .await;
        };
        tracing::info!(id = cmd.id, command = ?cmd.cmd, "command from the cloud");
        if let CommandKind::BundleAvailable {
            version,
            size,
            sha256,
        } = cmd.cmd
        {
            return self
                .start_download(&*appliance, version, size, sha256.0)
                .await;
        }
        // carried out off this task (rebuilding the engine can take seconds), in order
        self.queue_work(Work::Command(cmd)).await
    }

    async fn queue_work(&mut self, w: Work) -> Result<(), SessionError> {
        if self.work_tx.send(w).await.is_err() {
            return Err(ConnError::Closed {
                addr: self.addr.clone(),
            }
            .into());
        }
        Ok(())
    }

    async fn start_download(
        &mut self,
        appliance: &dyn super::Appliance,
        version: protocol::bounded::Name,
        size: u64,
        sha256: [u8; 32],
    ) -> Result<(), SessionError> {
        if appliance.rules_version() == version.as_str() {
            return self
                .send(UpMsg::BundleStatus(BundleStatus {
                    version,
                    state: BundleState::Applied,
                }))
                .await;
        }
        if size > protocol::bundle::MAX_BUNDLE as u64 || size == 0 {
            return self
                .refuse_bundle(version, format!("announced size {size} is out of range"))
                .await;
        }
        if let Some(old) = self.download.take() {
            if old.version == version {
                // announced again (a resent command): the running download continues
                self.download = Some(old);
                return Ok(());
            }
            // a newer announcement wins; the cloud learns the old one was dropped
            self.refuse_bundle(
                old.version,
                format!("superseded by {} before it was complete", version.as_str()),
            )
            .await?;
        }
        tracing::info!(version = %version.as_str(), size, "downloading a rule bundle");
        self.download = Some(Download {
            version: version.clone(),
            size,
            sha256,
            buf: Vec::with_capacity(size.min(BUNDLE_PREALLOC) as usize),
        });
        self.send(UpMsg::BundleFetch(BundleFetch { version, offset: 0 }))
            .await
    }

    async fn on_chunk(&mut self, c: BundleChunk) -> Result<(), SessionError> {
        let Some(d) = self.download.as_mut().filter(|d| d.version == c.version) else {
            // the answer to a download given up (superseded): nothing to do
            tracing::debug!(version = %c.version.as_str(), "bundle part of no running download; ignored");
            return Ok(());
        };
        if c.offset != d.buf.len() as u64 || c.total != d.size {
            let d = self.download.take().expect("checked above");
            let why = format!(
                "the cloud sent {} bytes of {} at {} of {} (expected {} at {} of {})",
                c.data.len(),
                c.version.as_str(),
                c.offset,
                c.total,
                d.version.as_str(),
                d.buf.len(),
                d.size
            );
            return self.refuse_bundle(d.version, why).await;
        }
        if c.data.is_empty() && d.buf.len() as u64 != d.size {
            let d = self.download.take().expect("checked above");
            return self
                .refuse_bundle(d.version, "the cloud sent an empty part".into())
                .await;
        }
        d.buf.extend_from_slice(&c.data);
        if (d.buf.len() as u64) < d.size {
            let next = BundleFetch {
                version: d.version.clone(),
                offset: d.buf.len() as u64,
            };
            return self.send(UpMsg::BundleFetch(next)).await;
        }
        let d = self.download.take().expect("checked above");
        self.queue_work(Work::Install {
            version: d.version,
            sha256: d.sha256,
            file: d.buf,
        })
        .await
    }

    async fn refuse_bundle(
        &mut self,
        version: protocol::bounded::Name,
        reason: String,
    ) -> Result<(), SessionError> {
        tracing::warn!(version = %version.as_str(), %reason, "rule bundle refused");
        self.send(UpMsg::BundleStatus(BundleStatus {
            version,
            state: BundleState::Refused {
                reason: Text::truncated(&reason),
            },
        }))
        .await
    }

    async fn on_done(&mut self, done: Done) -> Result<(), SessionError> {
        match done {
            Done::Command(r) => {
                if !r.ok {
                    add(&self.shared.counters.commands_refused, 1);
                }
                tracing::info!(id = r.command_id, ok = r.ok, message = %r.message.as_str(), "command carried out");
                self.send(UpMsg::CommandResult(r)).await
            }
            Done::Bundle(s) => {
                match &s.state {
                    BundleState::Applied => {
                        tracing::info!(version = %s.version.as_str(), "rule bundle installed")
                    }
                    BundleState::Refused { reason } => {
                        tracing::warn!(version = %s.version.as_str(), reason = %reason.as_str(), "rule bundle refused; the running rules stay")
                    }
                }
                self.send(UpMsg::BundleStatus(s)).await?;
                // the cloud learns the running version at once
                self.heartbeat().await
            }
        }
    }

    async fn send(&mut self, msg: UpMsg) -> Result<(), SessionError> {
        Ok(write(&mut self.writer, &msg, &self.addr, self.opts.io_timeout).await?)
    }

    async fn heartbeat(&mut self) -> Result<(), SessionError> {
        let snapshot = self.shared.snapshot().await;
        let hb = Heartbeat {
            uptime_s: self.shared.started.elapsed().as_secs(),
            firmware: self.opts.firmware.clone(),
            rules_version: rules_version(self.opts),
            mode: self
                .opts
                .appliance
                .as_ref()
                .map(|a| a.mode())
                .unwrap_or(self.opts.mode),
            counters: {
                let mut c = snapshot.heartbeat_counters();
                if let Some(a) = self.opts.appliance.as_ref() {
                    for (name, value) in a.counters() {
                        if c.len() < protocol::limits::MAX_COUNTERS {
                            c.push(protocol::messages::Counter {
                                name: protocol::bounded::Name::truncated(name),
                                value,
                            });
                        }
                    }
                }
                c
            },
        };
        self.send(UpMsg::Heartbeat(hb)).await?;
        add(&self.shared.counters.heartbeats_sent, 1);
        Ok(())
    }
}
