//! The uplink task: keeps a session with the cloud up (reconnecting forever with backoff) and
//! offers a handle to spool events, read counters and wait until everything is acknowledged.
//!
//! ```no_run
//! # async fn f(identity: mimamori_appliance::uplink::Identity, spool: std::sync::Arc<dyn mimamori_appliance::uplink::Spool>) {
//! use mimamori_appliance::uplink::{Uplink, UplinkOptions};
//! let uplink = Uplink::spawn(UplinkOptions::new(&identity, "1.0.0", "2025-06-01.1").unwrap(), spool);
//! uplink.handle().drain(std::time::Duration::from_secs(60)).await.ok();
//! uplink.shutdown().await;
//! # }
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::bounded::Name;
use protocol::messages::{DeviceId, Event, Mode};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rustls::ClientConfig;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::counters::{CountersSnapshot, UplinkCounters, add};
use super::identity::Identity;
use super::session::{self, SessionError};
use super::spool::{Spool, SpoolError};
use super::tls::CloudAddr;

/// How an uplink behaves. [`UplinkOptions::new`] gives the defaults of the contract.
#[derive(Clone)]
pub struct UplinkOptions {
    /// The device id sent in `Hello`.
    pub device: DeviceId,
    /// The cloud.
    pub cloud: CloudAddr,
    /// TLS 1.3 with the device certificate.
    pub tls: Arc<ClientConfig>,
    /// Firmware version for `Hello` and heartbeats.
    pub firmware: Name,
    /// Rule-bundle version for `Hello` and heartbeats.
    pub rules_version: Name,
    /// Inspection mode reported in heartbeats.
    pub mode: Mode,
    /// Time between heartbeats (one is sent right after each handshake).
    pub heartbeat: Duration,
    /// Most events per batch; at most the protocol's limit.
    pub batch_max: usize,
    /// Most unacknowledged batches on a connection.
    pub max_in_flight: usize,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Limit for connecting, the TLS handshake, the `HelloAck` and each write.
    pub io_timeout: Duration,
    /// A connection with unacknowledged batches and no message from the cloud for this long
    /// is dropped and reopened.
    pub ack_timeout: Duration,
    /// A session that lasted this long counts as successful (resets the backoff) even
    /// without acknowledging events.
    pub stable_after: Duration,
    /// Kernel sockets or the management stack.
    pub transport: super::tls::Transport,
    /// The running appliance: carries out commands and installs rule bundles. `None`
    /// (`replay --uplink`, simulations): commands are answered "not supported".
    pub appliance: Option<Arc<dyn super::Appliance>>,
}

/// Defaults of the uplink contract.
pub mod defaults {
    use std::time::Duration;
    /// Heartbeat interval.
    pub const HEARTBEAT: Duration = Duration::from_secs(60);
    /// Events per batch.
    pub const BATCH_MAX: usize = 256;
    /// Unacknowledged batches per connection.
    pub const MAX_IN_FLIGHT: usize = 8;
    /// First reconnect delay.
    pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
    /// Largest reconnect delay.
    pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
    /// Connect, handshake and write limit.
    pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
    /// Acknowledgement limit.
    pub const ACK_TIMEOUT: Duration = Duration::from_secs(120);
    /// Session length that resets the backoff.
    pub const STABLE_AFTER: Duration = Duration::from_secs(30);
}

impl UplinkOptions {
    /// Options for `identity` with the contract's defaults. Fails if a version string is
    /// longer than the protocol allows.
    pub fn new(
        identity: &Identity,
        firmware: &str,
        rules_version: &str,
    ) -> Result<UplinkOptions, protocol::StringTooLong> {
        Ok(UplinkOptions {
            device: identity.device.clone(),
            cloud: identity.cloud.clone(),
            tls: Arc::clone(&identity.tls),
            firmware: Name::new(firmware)?,
            rules_version: Name::new(rules_version)?,
            mode: Mode::default(),
            heartbeat: defaults::HEARTBEAT,
            batch_max: defaults::BATCH_MAX,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            backoff_initial: defaults::BACKOFF_INITIAL,
            backoff_max: defaults::BACKOFF_MAX,
            io_timeout: defaults::IO_TIMEOUT,
            ack_timeout: defaults::ACK_TIMEOUT,
            stable_after: defaults::STABLE_AFTER,
            transport: super::tls::Transport::Host,
            appliance: None,
        })
    }

    /// Clamps values a caller could set out of range.
    fn sanitized(mut self) -> UplinkOptions {
        self.batch_max = self
            .batch_max
            .clamp(1, protocol::limits::MAX_EVENTS_PER_BATCH);
        self.max_in_flight = self.max_in_flight.max(1);
        self.heartbeat = self.heartbeat.max(Duration::from_millis(10));
        self
    }
}

/// State shared by the task and its handles.
pub(crate) struct Shared {
    pub spool: Arc<dyn Spool>,
    pub counters: UplinkCounters,
    /// New events were spooled.
    pub wake: Notify,
    /// Events were acknowledged or the uplink stopped (wakes `drain`).
    pub progress: Notify,
    pub last_error: Mutex<Option<String>>,
    pub stopped: Mutex<Option<String>>,
    pub started: Instant,
    /// Held while events leave the spool and their counter is updated, so that an empty
    /// spool is never seen before the counters say why.
    pub removal: Mutex<()>,
}

impl Shared {
    /// Removes events from the spool with `remove` and adds the count to `counter`.
    pub async fn remove(
        self: &Arc<Self>,
        counter: fn(&UplinkCounters) -> &std::sync::atomic::AtomicU64,
        remove: impl FnOnce(&dyn Spool) -> Result<u64, SpoolError> + Send + 'static,
    ) -> Result<u64, SpoolError> {
        let shared = Arc::clone(self);
        spool_call(&self.spool, move |s| {
            let _held = lock(&shared.removal);
            let n = remove(s)?;
            add(counter(&shared.counters), n);
            Ok(n)
        })
        .await
    }

    /// Events in the spool, consistent with the removal counters.
    pub async fn spool_len(self: &Arc<Self>) -> Result<u64, SpoolError> {
        let shared = Arc::clone(self);
        spool_call(&self.spool, move |s| {
            let _held = lock(&shared.removal);
            s.len()
        })
        .await
    }

    /// Counters with the spool length and error state.
    pub async fn snapshot(self: &Arc<Self>) -> CountersSnapshot {
        let spool_len = self.spool_len().await.unwrap_or(u64::MAX);
        let mut s = self.counters.snapshot();
        s.spool_len = spool_len;
        s.spool_refused = self.spool.refused();
        s.spool_evicted = self.spool.evicted();
        s.last_error = lock(&self.last_error).clone();
        s.stopped = lock(&self.stopped).clone();
        s
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a spool call, off the async runtime if it blocks on disk.
pub(crate) async fn spool_call<T: Send + 'static>(
    spool: &Arc<dyn Spool>,
    f: impl FnOnce(&dyn Spool) -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    if !spool.is_blocking() {
        return f(spool.as_ref());
    }
    let spool = Arc::clone(spool);
    match tokio::task::spawn_blocking(move || f(spool.as_ref())).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(SpoolError::Task(e.to_string())),
    }
}

/// `drain` did not see an empty spool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrainError {
    /// Time ran out; `left` events stay in the spool.
    #[error("{left} events not acknowledged by the cloud within {secs} s; they stay in the spool")]
    Timeout {
        /// Events still spooled.
        left: u64,
        /// The time limit.
        secs: u64,
    },
    /// The uplink stopped for good; `left` events stay in the spool.
    #[error("the uplink stopped: {reason}; {left} events stay in the spool")]
    Stopped {
        /// Why.
        reason: String,
        /// Events still spooled.
        left: u64,
    },
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// A handle to a running uplink; cheap to clone.
#[derive(Clone)]
pub struct UplinkHandle {
    shared: Arc<Shared>,
}

impl UplinkHandle {
    /// Spools events (durably, for a redb spool) and wakes the sender. Returns the
    /// sequence numbers given to them.
    pub async fn send(&self, events: Vec<Event>) -> Result<(u64, u64), SpoolError> {
        let n = events.len() as u64;
        let result = spool_call(&self.shared.spool, move |s| s.append_batch(&events)).await;
        match &result {
            Ok(_) => add(&self.shared.counters.events_spooled, n),
            Err(SpoolError::Full { stored, .. }) => {
                add(&self.shared.counters.events_spooled, *stored as u64)
            }
            Err(_) => {}
        }
        self.shared.wake.notify_one();
        result
    }

    /// Wakes the sender after events were appended to the spool directly.
    pub fn notify_spooled(&self) {
        self.shared.wake.notify_one();
    }

    /// The spool this uplink sends from.
    pub fn spool(&self) -> &Arc<dyn Spool> {
        &self.shared.spool
    }

    /// Counters, without the spool fields (no spool access).
    pub fn counters(&self) -> CountersSnapshot {
        let mut s = self.shared.counters.snapshot();
        s.spool_refused = self.shared.spool.refused();
        s.last_error = lock(&self.shared.last_error).clone();
        s.stopped = lock(&self.shared.stopped).clone();
        s
    }

    /// Counters with the spool length.
    pub async fn snapshot(&self) -> CountersSnapshot {
        self.shared.snapshot().await
    }

    /// Waits until the spool is empty (everything acknowledged), the uplink stopped for good,
    /// or `timeout` passed.
    pub async fn drain(&self, timeout: Duration) -> Result<(), DrainError> {
        let deadline = Instant::now() + timeout;
        loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            let left = self.shared.spool_len().await?;
            if left == 0 {
                return Ok(());
            }
            if let Some(reason) = lock(&self.shared.stopped).clone() {
                return Err(DrainError::Stopped { reason, left });
            }
            tokio::select! {
                _ = progress => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let left = self.shared.spool_len().await?;
                    return if left == 0 { Ok(()) } else { Err(DrainError::Timeout { left, secs: timeout.as_secs() }) };
                }
                // a safety net against a missed wake-up
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}

/// A running uplink task. Dropping it stops the task (unacknowledged events stay spooled).
pub struct Uplink {
    handle: UplinkHandle,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Uplink {
    /// Starts the task on the current tokio runtime.
    pub fn spawn(opts: UplinkOptions, spool: Arc<dyn Spool>) -> Uplink {
        let shared = Arc::new(Shared {
            spool,
            counters: UplinkCounters::default(),
            wake: Notify::new(),
            progress: Notify::new(),
            last_error: Mutex::new(None),
            stopped: Mutex::new(None),
            started: Instant::now(),
            removal: Mutex::new(()),
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(run(Arc::clone(&shared), opts.sanitized(), rx));
        Uplink {
            handle: UplinkHandle { shared },
            shutdown,
            task,
        }
    }

    /// A handle to feed and observe the uplink.
    pub fn handle(&self) -> UplinkHandle {
        self.handle.clone()
    }

    /// Stops the task and waits for it: the connection is closed, the spool kept.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// The reconnect loop.
async fn run(shared: Arc<Shared>, opts: UplinkOptions, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(opts.backoff_initial, opts.backoff_max);
    let mut rng = StdRng::from_os_rng();
    let counters = &shared.counters;
    for attempt in 0u64.. {
        if *shutdown.borrow() {
            return;
        }
        if attempt > 0 {
            add(&counters.reconnects, 1);
        }
        add(&counters.connect_attempts, 1);
        let end = session::run(&shared, &opts, &mut shutdown).await;
        if end.stable {
            backoff.reset();
        }
        let Err(e) = end.result else { return };
        record_error(&shared, &e);
        if e.is_fatal() {
            tracing::error!(device = %opts.device, error = %e, "uplink stopped: the cloud will not accept this device; no more retries");
            *lock(&shared.stopped) = Some(e.to_string());
            shared.progress.notify_waiters();
            // stay until shut down, so handles keep working
            let _ = shutdown.wait_for(|stop| *stop).await;
            return;
        }
        let delay = backoff.next_delay(&mut rng);
        tracing::warn!(device = %opts.device, error = %e, retry_in_ms = delay.as_millis() as u64, "uplink session ended");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn record_error(shared: &Shared, e: &SessionError) {
    add(&shared.counters.errors, 1);
    if matches!(
        e,
        SessionError::Refused { .. } | SessionError::CertificateRefused { .. }
    ) {
        add(&shared.counters.refusals, 1);
    }
    *lock(&shared.last_error) = Some(e.to_string());
}
