//! The bridge at run time: one receive thread per port, inspection workers fed by
//! per-worker queues, a watchdog, an event writer and the control socket.
//!
//! Frames are copied once, from the receive socket into a pooled buffer that travels to
//! a worker and back (no allocation per frame). A worker owns its pipeline (flow table,
//! Hyperscan scratch, parsers): nothing on the per-frame path is shared between workers
//! but the lock-free MAC table and the isolation flag.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};
use rules::compile::Ruleset;

use super::config::{Config, Role};
use super::inject;
use super::isolate::IsolationSet;
use super::port::{self, RxBatch, RxPort, TxPort, TxQueue};
use super::switch::{Decision, Switch};
use crate::classify::Lists;
use crate::file::FileEngine;
use crate::pipeline::{Block, Record, Worker, WorkerConfig, WorkerCounters};

const LINKTYPE_ETHERNET: u32 = 1;
/// Frames a worker takes from its queue at once.
const BATCH: usize = 64;
/// How long an idle worker polls its queue before it sleeps.
const SPIN: Duration = Duration::from_micros(50);
/// Batches of events queued for the writer.
const EVENT_BATCHES: usize = 16_384;
/// Pool buffers per port (frames in flight from that port).
const POOL: usize = 8192;

/// What inspection runs with (loaded once, shared read-only by the workers).
#[derive(Clone)]
pub struct Engine {
    pub ruleset: Arc<Ruleset>,
    pub worker: WorkerConfig,
    pub lists: Arc<Lists>,
    pub files: Option<FileEngine>,
    pub classes: rules::classification::Classifications,
}

/// Counters of one port's receive thread (written by that thread only).
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_errors: AtomicU64,
    pub to_workers: AtomicU64,
    /// Destination on the port the frame came from: not forwarded.
    pub same_port: AtomicU64,
    pub flooded: AtomicU64,
    pub isolated_drops: AtomicU64,
    /// Forwarded uninspected: the worker was stalled or dead.
    pub bypass_stalled: AtomicU64,
    /// Forwarded uninspected: the worker's queue was full.
    pub bypass_full: AtomicU64,
    /// Dropped because inspection failed and `fail_closed` is set.
    pub fail_closed_drops: AtomicU64,
    /// Forwarded uninspected: an exception host.
    pub exempt: AtomicU64,
    pub runt: AtomicU64,
    /// Frames to the appliance's own MAC, given to the management stack (not bridged).
    pub mgmt: AtomicU64,
    /// Longer than a receive slot (9,216 bytes): dropped.
    pub oversize: AtomicU64,
    pub tx_errors: AtomicU64,
}

/// A worker's shared state: its queue, health and test hooks.
pub struct WorkerSlot {
    queue: Sender<Job>,
    jobs: Receiver<Job>,
    /// Milliseconds since start at the worker's last sign of life.
    heartbeat: AtomicU64,
    pub stalled: AtomicBool,
    /// Test hook: sleep without a heartbeat until this time (ms since start).
    stall_until: AtomicU64,
    /// Test hook: panic at the next frame.
    panic_now: AtomicBool,
    pub restarts: AtomicU64,
    pub stalls: AtomicU64,
    pub tx_errors: AtomicU64,
    pub injected: AtomicU64,
    /// Frames lost inside a worker that panicked.
    pub lost: AtomicU64,
    /// Events not written because the event writer was behind.
    pub events_dropped: AtomicU64,
    /// A copy of the pipeline's counters, refreshed about once a second.
    pub counters: Mutex<WorkerCounters>,
}

struct Job {
    buf: Vec<u8>,
    in_port: u8,
    out_mask: u16,
}

/// Everything the threads share.
pub struct Bridge {
    pub name: String,
    pub ports: Vec<(Role, String)>,
    pub switch: Switch,
    pub workers: Vec<WorkerSlot>,
    pub port_counters: Vec<PortCounters>,
    pools: Vec<(Sender<Vec<u8>>, Receiver<Vec<u8>>)>,
    stop: AtomicBool,
    start: Instant,
    fail_closed: bool,
    pub test_hooks: bool,
    stall_ms: u64,
    /// What the workers inspect with; replaced whole by [`Bridge::swap_engine`].
    engine: ArcSwap<Engine>,
    /// Bumped by each swap: a worker compares it once per batch.
    engine_gen: AtomicU64,
    /// The appliance's own address (management stack), when the uplink is in-band.
    pub mgmt: OnceLock<crate::mgmt::Mgmt>,
    /// Stop reason asked by a command: `reboot` or `wipe`.
    pub exit_request: Mutex<Option<&'static str>>,
}

/// Where a run's records go besides EVE, called on the event thread with each batch and
/// the engine that made it (the uplink's spool).
pub type RecordSink = Box<dyn FnMut(&Engine, &[Record]) + Send>;

/// Extra parts of a run: the management stack and where events go besides EVE.
#[derive(Default)]
pub struct RunOptions {
    /// Give the appliance its own address on the bridged segment.
    pub mgmt: Option<crate::mgmt::MgmtConfig>,
    /// Called on the event thread with each batch of records and the engine that made
    /// them (the uplink's spool).
    pub sink: Option<RecordSink>,
}

/// Set by SIGINT / SIGTERM.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
    // a second signal ends the process at once, should shutting down hang
    // SAFETY: signal(2) is async-signal-safe.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

fn install_signals() {
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Bridge {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The engine now in force.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.load_full()
    }

    /// Replaces the engine: each worker finishes its batch with the old one, then starts
    /// a new pipeline with this one (flows open at that moment continue uninspected by
    /// stream rules until they end; traffic is never held or dropped).
    pub fn swap_engine(&self, engine: Engine) {
        self.engine.store(Arc::new(engine));
        self.engine_gen.fetch_add(1, Ordering::Release);
    }

    /// Stops the bridge for a reboot or a wipe asked by the cloud.
    pub fn request_exit(&self, why: &'static str) {
        *self.exit_request.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        self.stop();
    }

    /// Whether the engine in force blocks (prevent) or only alerts (detect).
    pub fn prevent(&self) -> bool {
        self.engine.load().worker.prevent
    }

    /// Ask every thread to finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || SIGNALLED.load(Ordering::Relaxed)
    }

    /// Test hook: worker `w` stops working (no heartbeat) for `ms`.
    pub fn hook_stall(&self, w: usize, ms: u64) -> bool {
        match self.workers.get(w) {
            Some(s) => {
                s.stall_until
                    .store(self.now_ms() + ms.min(60_000), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Test hook: worker `w` panics at its next frame.
    pub fn hook_panic(&self, w: usize) -> bool {
        match self.workers.get(w) {
            Some(s) => {
                s.panic_now.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Counters as JSON (for `ctl stats`).
    pub fn stats_json(&self) -> serde_json::Value {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ports: Vec<_> = self
            .ports
            .iter()
            .zip(&self.port_counters)
            .map(|((r, n), c)| {
                serde_json::json!({
                    "role": r.as_str(), "interface": n, "rx": ld(&c.rx), "rx_bytes": ld(&c.rx_bytes),
                    "rx_errors": ld(&c.rx_errors), "to_workers": ld(&c.to_workers), "same_port": ld(&c.same_port),
                    "flooded": ld(&c.flooded), "isolated_drops": ld(&c.isolated_drops),
                    "bypass_stalled": ld(&c.bypass_stalled), "bypass_full": ld(&c.bypass_full),
                    "fail_closed_drops": ld(&c.fail_closed_drops), "exempt": ld(&c.exempt), "runt": ld(&c.runt), "mgmt": ld(&c.mgmt), "oversize": ld(&c.oversize),
                    "tx_errors": ld(&c.tx_errors),
                })
            })
            .collect();
        let workers: Vec<_> = self
            .workers
            .iter()
            .map(|w| {
                let c = w.counters.lock().map(|c| *c).unwrap_or_default();
                serde_json::json!({
                    "stalled": w.stalled.load(Ordering::Relaxed), "restarts": ld(&w.restarts), "stalls": ld(&w.stalls),
                    "queued": w.queue.len(), "packets": c.packets, "bytes": c.bytes, "alerts": c.alerts,
                    "drops": c.drops + c.flow_dropped_packets, "injected": ld(&w.injected), "tx_errors": ld(&w.tx_errors),
                    "events_dropped": ld(&w.events_dropped), "lost": ld(&w.lost), "bad_files": c.bad_files, "category_blocks": c.category_blocks,
                })
            })
            .collect();
        serde_json::json!({
            "uptime_ms": self.now_ms(),
            "mode": if self.prevent() { "prevent" } else { "detect" },
            "engine_swaps": self.engine_gen.load(Ordering::Relaxed),
            "mgmt": self.mgmt.get().map(|m| m.status()),
            "fail_closed": self.fail_closed,
            "stations": self.switch.fdb.len(self.now_ms() / 1000),
            "isolated": self.switch.isolation.hosts(),
            "ports": ports,
            "workers": workers,
        })
    }
}

/// Open the ports, start the threads and run until SIGINT/SIGTERM (or `Bridge::stop`).
/// `ready` is called once every port is open and the workers are started.
pub fn run(
    cfg: &Config,
    engine: Engine,
    mut opts: RunOptions,
    ready: impl FnOnce(&Arc<Bridge>),
) -> anyhow::Result<()> {
    use anyhow::Context;
    install_signals();
    let ports = cfg.ports.list();
    let nworkers = cfg.workers();
    let mut slots = Vec::with_capacity(nworkers);
    for _ in 0..nworkers {
        let (queue, jobs) = bounded(cfg.watchdog.queue);
        slots.push(WorkerSlot {
            queue,
            jobs,
            heartbeat: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            stall_until: AtomicU64::new(0),
            panic_now: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            tx_errors: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            counters: Mutex::new(WorkerCounters::default()),
        });
    }
    let mut iso = IsolationSet::default();
    for h in &cfg.isolation.hosts {
        iso.hosts
            .push(super::isolate::HostId::parse(h).map_err(anyhow::Error::msg)?);
    }
    for a in &cfg.isolation.allow {
        iso.allow
            .push(super::isolate::AllowEntry::parse(a).map_err(anyhow::Error::msg)?);
    }
    let bridge = Arc::new(Bridge {
        name: cfg.name.clone(),
        switch: Switch::new(
            ports.len(),
            ports
                .iter()
                .enumerate()
                .filter(|(_, (r, _))| r.internal())
                .fold(0, |m, (i, _)| m | 1 << i),
            nworkers,
            cfg.bridge.mac_ageing_secs,
            iso,
            cfg.exceptions.iter().filter_map(|e| e.host).collect(),
        ),
        workers: slots,
        port_counters: ports.iter().map(|_| PortCounters::default()).collect(),
        pools: ports.iter().map(|_| bounded(POOL)).collect(),
        stop: AtomicBool::new(false),
        start: Instant::now(),
        fail_closed: cfg.fail_closed,
        test_hooks: cfg.debug.test_hooks,
        stall_ms: cfg.watchdog.stall_ms,
        ports,
        engine: ArcSwap::from_pointee(engine),
        engine_gen: AtomicU64::new(0),
        mgmt: OnceLock::new(),
        exit_request: Mutex::new(None),
    });

    // open every socket first: a missing interface is reported before anything runs
    let mut rx_socks = Vec::new();
    for (i, (role, name)) in bridge.ports.iter().enumerate() {
        let rx = port::open_rx(name).with_context(|| format!("port {} ({name})", role.as_str()))?;
        let txs = open_txs(&bridge.ports, Some(i))?;
        rx_socks.push((rx, txs));
    }
    let mut worker_txs = Vec::new();
    for _ in 0..nworkers {
        worker_txs.push(open_txs(&bridge.ports, None)?);
    }

    // the management stack sends on every port, towards where the FDB learnt the
    // destination (flooding broadcasts and unknown destinations)
    if let Some(mcfg) = opts.mgmt.take() {
        let txs = open_txs(&bridge.ports, None)?;
        let b = Arc::clone(&bridge);
        let all = ((1u32 << bridge.ports.len()) - 1) as u16;
        let tx = Box::new(move |frame: &[u8]| {
            let Some(dst) = frame.get(..6).and_then(|d| <[u8; 6]>::try_from(d).ok()) else {
                return;
            };
            let mask = if dst[0] & 1 != 0 {
                all
            } else {
                b.switch
                    .fdb
                    .lookup(&dst, b.now_ms() / 1000 + 1)
                    .map_or(all, |p| 1 << p)
            };
            txs.send_now(mask, frame);
        });
        let m = crate::mgmt::Mgmt::spawn(mcfg, tx).context("management stack")?;
        let _ = bridge.mgmt.set(m);
    }

    // events
    // bounded: a writer that cannot keep up (a slow disk, an alert flood) costs events,
    // counted, never memory without bound or a blocked worker
    let (ev_tx, ev_rx) = bounded::<(Arc<Engine>, Vec<Record>)>(EVENT_BATCHES);
    let eve_path = cfg.output.eve.clone();
    let sink = opts.sink.take();
    let events = std::thread::Builder::new()
        .name("events".into())
        .spawn(move || write_events(eve_path, ev_rx, sink))?;

    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for (w, txs) in worker_txs.into_iter().enumerate() {
        let b = Arc::clone(&bridge);
        let evs = ev_tx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("worker-{w}"))
                .spawn(move || worker_thread(&b, w, txs, evs))?,
        );
    }
    drop(ev_tx);
    let mut rx_threads = Vec::new();
    for (i, (rx, txs)) in rx_socks.into_iter().enumerate() {
        let b = Arc::clone(&bridge);
        rx_threads.push(
            std::thread::Builder::new()
                .name(format!("rx-{}", bridge.ports[i].0.as_str()))
                .spawn(move || rx_thread(&b, i, rx, txs))?,
        );
    }
    let wd = {
        let b = Arc::clone(&bridge);
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || watchdog(&b))?
    };
    let ctl = match &cfg.output.control {
        Some(path) => {
            Some(super::control::serve(path, Arc::clone(&bridge)).context("control socket")?)
        }
        None => None,
    };
    tracing::info!(
        ports = bridge.ports.len(),
        workers = nworkers,
        mode = if bridge.prevent() {
            "prevent"
        } else {
            "detect"
        },
        "bridge running"
    );
    ready(&bridge);

    while !bridge.stopping() {
        std::thread::sleep(Duration::from_millis(100));
    }
    bridge.stop();
    for t in rx_threads {
        let _ = t.join();
    }
    // a worker stuck inside the pipeline (what the watchdog reports) is not waited for
    let deadline = Instant::now() + Duration::from_secs(5);
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            tracing::warn!("an inspection worker did not finish; leaving it");
        }
    }
    let _ = wd.join();
    if let Some(c) = ctl {
        c.shutdown();
    }
    if let Some(m) = bridge.mgmt.get() {
        m.shutdown();
    }
    let _ = events.join();
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&bridge.stats_json()).unwrap_or_default()
    );
    Ok(())
}

/// Send sockets for every port (`None` at `skip`, the receive thread's own port) with
/// their batch queues.
struct Txs {
    ports: Vec<Option<TxPort>>,
    queues: Vec<TxQueue>,
}

fn open_txs(ports: &[(Role, String)], skip: Option<usize>) -> anyhow::Result<Txs> {
    let mut v = Vec::new();
    for (i, (_, name)) in ports.iter().enumerate() {
        v.push(if Some(i) == skip {
            None
        } else {
            Some(port::open_tx(name)?)
        });
    }
    Ok(Txs {
        queues: v.iter().map(|_| TxQueue::default()).collect(),
        ports: v,
    })
}

impl Txs {
    /// Queue a frame for every port in `mask`; it must live until `flush`.
    fn queue(&mut self, mask: u16, frame: &[u8]) {
        for (i, q) in self.queues.iter_mut().enumerate() {
            if mask & (1 << i) != 0 && self.ports[i].is_some() {
                q.push(frame);
            }
        }
    }

    /// Send everything queued; returns the frames that could not be sent.
    fn flush(&mut self) -> u64 {
        let mut failed = 0;
        for (p, q) in self.ports.iter().zip(self.queues.iter_mut()) {
            if let Some(p) = p {
                if !q.is_empty() {
                    failed += p.flush(q);
                }
            }
        }
        failed
    }

    /// Forget every queued send.
    fn clear(&mut self) {
        self.queues.iter_mut().for_each(TxQueue::clear);
    }

    /// Send one frame now on every port in `mask`.
    fn send_now(&self, mask: u16, frame: &[u8]) -> u64 {
        let mut failed = 0;
        for (i, p) in self.ports.iter().enumerate() {
            if let Some(p) = p.as_ref().filter(|_| mask & (1 << i) != 0) {
                failed += u64::from(!p.send(frame));
            }
        }
        failed
    }
}

/// Add to a counter only its own thread writes: a plain load and store, no locked
/// read-modify-write per frame (readers see a value at most one update old).
#[inline]
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

fn rx_thread(b: &Bridge, me: usize, rx: RxPort, mut txs: Txs) {
    let c = &b.port_counters[me];
    let (pool_tx, pool_rx) = &b.pools[me];
    let mut allocated = 0usize;
    let mut batch = RxBatch::default();
    while !b.stopping() {
        let n = match rx.recv(&mut batch, 50) {
            Ok(n) => n,
            Err(e) => {
                bump(&c.rx_errors, 1);
                tracing::debug!(error = %e, "receive");
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        if n == 0 {
            continue;
        }
        // ageing is in seconds: the clock is read once per batch
        let now_s = b.now_ms() / 1000 + 1;
        bump(&c.rx, n as u64);
        for i in 0..n {
            let Some(frame) = batch.frame(i) else {
                bump(&c.oversize, 1);
                continue;
            };
            bump(&c.rx_bytes, frame.len() as u64);
            if let Some(m) = b.mgmt.get()
                && let Some(dst) = frame.get(..6).and_then(|d| <[u8; 6]>::try_from(d).ok())
                && m.wants(&dst)
            {
                if batch.checksum_partial(i) {
                    m.deliver_checksum_partial(frame);
                } else {
                    m.deliver(frame);
                }
                if dst == m.mac() {
                    // the appliance's own traffic: not bridged
                    bump(&c.mgmt, 1);
                    continue;
                }
            }
            let (mask, w) = match b.switch.decide(me, frame, now_s) {
                Decision::Inspect {
                    mask,
                    worker,
                    flooded,
                } => {
                    if flooded {
                        bump(&c.flooded, 1);
                    }
                    (mask, worker)
                }
                Decision::Exempt { mask } => {
                    bump(&c.exempt, 1);
                    txs.queue(mask, frame);
                    continue;
                }
                Decision::Runt => {
                    bump(&c.runt, 1);
                    continue;
                }
                Decision::SamePort => {
                    bump(&c.same_port, 1);
                    continue;
                }
                Decision::Isolated => {
                    bump(&c.isolated_drops, 1);
                    continue;
                }
                Decision::NoPort => continue,
            };
            let slot = &b.workers[w];
            let failed = if slot.stalled.load(Ordering::Relaxed) {
                Some(&c.bypass_stalled)
            } else {
                let buf = match pool_rx.try_recv() {
                    Ok(buf) => Some(buf),
                    Err(_) if allocated < POOL => {
                        allocated += 1;
                        Some(Vec::with_capacity(2048))
                    }
                    Err(_) => None,
                };
                match buf {
                    None => Some(&c.bypass_full),
                    Some(mut buf) => {
                        buf.clear();
                        buf.extend_from_slice(frame);
                        match slot.queue.try_send(Job {
                            buf,
                            in_port: me as u8,
                            out_mask: mask,
                        }) {
                            Ok(()) => {
                                bump(&c.to_workers, 1);
                                None
                            }
                            Err(TrySendError::Full(j)) | Err(TrySendError::Disconnected(j)) => {
                                let _ = pool_tx.try_send(j.buf);
                                Some(&c.bypass_full)
                            }
                        }
                    }
                }
            };
            if let Some(counter) = failed {
                if b.fail_closed {
                    bump(&c.fail_closed_drops, 1);
                } else {
                    bump(&counter, 1);
                    txs.queue(mask, frame);
                }
            }
        }
        // frames forwarded here point into `batch`: sent before the next read
        let e = txs.flush();
        if e > 0 {
            bump(&c.tx_errors, e);
        }
    }
}

/// The frames injected for a block: (to the sender's port, to the receiver's ports).
struct Injector {
    a: Vec<u8>,
    b: Vec<u8>,
}

/// How a worker's loop ended.
enum Exit {
    /// The bridge stops.
    Stop,
    /// A new engine was swapped in.
    Swap,
}

fn worker_thread(b: &Bridge, w: usize, mut txs: Txs, events: Sender<(Arc<Engine>, Vec<Record>)>) {
    let slot = &b.workers[w];
    let mut inj = Injector {
        a: Vec::with_capacity(2048),
        b: Vec::with_capacity(2048),
    };
    // owned here, not by the loop: a panic must not free buffers that sends point into
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    // flows the replaced worker blocked: they stay blocked under the new engine
    let mut carried = Vec::new();
    loop {
        let generation = b.engine_gen.load(Ordering::Acquire);
        let engine = b.engine();
        let mut worker = match new_worker(&engine) {
            Ok(wk) => wk,
            Err(e) => {
                tracing::error!(worker = w, error = %e, "cannot start an inspection worker; its traffic goes uninspected");
                slot.stalled.store(true, Ordering::Relaxed);
                return;
            }
        };
        worker.carry_dropped(std::mem::take(&mut carried));
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            worker_loop(
                b,
                slot,
                &mut worker,
                (&engine, generation),
                &mut txs,
                &events,
                &mut inj,
                &mut batch,
            )
        }));
        match r {
            Ok(exit) => {
                if matches!(exit, Exit::Swap) {
                    carried = worker.dropped_flows();
                }
                let mut out = Vec::new();
                worker.finish(&mut out);
                if !out.is_empty() {
                    let _ = events.send((Arc::clone(&engine), out));
                }
                if let Ok(mut c) = slot.counters.lock() {
                    *c = worker.counters;
                }
                match exit {
                    Exit::Stop => return,
                    Exit::Swap => {
                        tracing::info!(worker = w, "inspection worker now runs the new engine");
                        continue;
                    }
                }
            }
            Err(_) => {
                // queued sends point into the batch's buffers: forget them, then give the
                // buffers back (the frames of the batch are lost)
                txs.clear();
                slot.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                for job in batch.drain(..) {
                    let _ = b.pools[usize::from(job.in_port)].0.try_send(job.buf);
                }
                slot.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    worker = w,
                    "inspection worker panicked; restarted with an empty flow table"
                );
            }
        }
    }
}

fn new_worker(engine: &Engine) -> Result<Worker, String> {
    let mut wk = Worker::new(Arc::clone(&engine.ruleset), engine.worker)?;
    wk.set_lists(Arc::clone(&engine.lists));
    wk.set_files(engine.files.clone());
    Ok(wk)
}

#[allow(clippy::too_many_arguments)]
fn worker_loop(
    b: &Bridge,
    slot: &WorkerSlot,
    worker: &mut Worker,
    (engine, generation): (&Arc<Engine>, u64),
    txs: &mut Txs,
    events: &Sender<(Arc<Engine>, Vec<Record>)>,
    inj: &mut Injector,
    batch: &mut Vec<Job>,
) -> Exit {
    let mut records: Vec<Record> = Vec::new();
    let mut cnt = 0u64;
    let mut last_counters = Instant::now();
    loop {
        let now = b.now_ms();
        slot.heartbeat.store(now, Ordering::Relaxed);
        if b.test_hooks {
            let until = slot.stall_until.load(Ordering::Relaxed);
            if until > now {
                std::thread::sleep(Duration::from_millis(until - now));
                slot.stall_until.store(0, Ordering::Relaxed);
                continue;
            }
        }
        // a short spin before sleeping: waking a parked thread costs tens of
        // microseconds of latency per frame at low rates
        let spin_until = Instant::now() + SPIN;
        let first = loop {
            match slot.jobs.try_recv() {
                Ok(j) => break Ok(j),
                Err(_) if Instant::now() < spin_until => std::hint::spin_loop(),
                Err(_) => break slot.jobs.recv_timeout(Duration::from_millis(20)),
            }
        };
        match first {
            Ok(j) => batch.push(j),
            Err(_) => {
                if b.stopping() && slot.jobs.is_empty() {
                    return Exit::Stop;
                }
                if b.engine_gen.load(Ordering::Relaxed) != generation {
                    return Exit::Swap;
                }
                continue;
            }
        }
        while batch.len() < BATCH {
            match slot.jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        let ts = wall_us();
        for job in batch.iter() {
            if b.test_hooks && slot.panic_now.swap(false, Ordering::Relaxed) {
                panic!("test hook: worker panic");
            }
            cnt += 1;
            let frame = &job.buf[..];
            let forward = worker.process(LINKTYPE_ETHERNET, frame, ts, cnt, &mut records);
            if forward {
                txs.queue(job.out_mask, frame);
            } else if worker.block != Block::None && worker.block != Block::Drop {
                // what was forwarded before goes first: a reset must not overtake the
                // data it follows
                let e = txs.flush();
                slot.tx_errors.fetch_add(e, Ordering::Relaxed);
                act(b, slot, &worker.block, job, txs, inj);
            }
        }
        let e = txs.flush();
        if e > 0 {
            slot.tx_errors.fetch_add(e, Ordering::Relaxed);
        }
        for job in batch.drain(..) {
            let _ = b.pools[usize::from(job.in_port)].0.try_send(job.buf);
        }
        if !records.is_empty() {
            if let Err(TrySendError::Full((_, lost)) | TrySendError::Disconnected((_, lost))) =
                events.try_send((Arc::clone(engine), std::mem::take(&mut records)))
            {
                slot.events_dropped
                    .fetch_add(lost.len() as u64, Ordering::Relaxed);
            }
        }
        if b.engine_gen.load(Ordering::Relaxed) != generation {
            return Exit::Swap;
        }
        if last_counters.elapsed() >= Duration::from_secs(1) {
            last_counters = Instant::now();
            if let Ok(mut c) = slot.counters.lock() {
                *c = worker.counters;
            }
        }
    }
}

/// Carry out a block on the wire: resets to both ends, or a block page to the client and
/// a reset to the server. A plain drop sends nothing.
fn act(b: &Bridge, slot: &WorkerSlot, block: &Block, job: &Job, txs: &Txs, inj: &mut Injector) {
    let back = 1u16 << job.in_port;
    if !block_frames(block, &job.buf, &b.name, &mut inj.a, &mut inj.b) {
        return;
    }
    let mut e = 0;
    for (mask, f) in [(back, &inj.a), (job.out_mask, &inj.b)] {
        if !f.is_empty() {
            let failed = txs.send_now(mask, f);
            e += failed;
            slot.injected
                .fetch_add(u64::from(failed == 0), Ordering::Relaxed);
        }
    }
    if e > 0 {
        slot.tx_errors.fetch_add(e, Ordering::Relaxed);
    }
}

/// The frames that carry out `block` for the blocked `frame`: `a` goes back to its
/// sender, `b` on to its receiver. False when nothing is to be sent (a plain drop, or a
/// frame that is no TCP segment).
pub fn block_frames(
    block: &Block,
    frame: &[u8],
    appliance: &str,
    a: &mut Vec<u8>,
    b: &mut Vec<u8>,
) -> bool {
    a.clear();
    b.clear();
    // a reset is never answered with a reset (RFC 9293); dropping it is enough
    if is_rst(frame) {
        return false;
    }
    match block {
        Block::None | Block::Drop => false,
        Block::Reset => inject::resets(frame, a, b).is_ok(),
        Block::Page { host, category } => {
            if inject::resets(frame, a, b).is_err() {
                return false;
            }
            // the client gets the page instead of its reset; without a page it keeps the reset
            let html = inject::block_page_html(host, category, appliance);
            let mut page = Vec::new();
            if inject::block_page(frame, &html, &mut page).is_ok() {
                *a = page;
            }
            true
        }
    }
}

/// The frame is a TCP segment with RST set.
fn is_rst(frame: &[u8]) -> bool {
    matches!(
        etherparse::SlicedPacket::from_ethernet(frame).map(|p| p.transport),
        Ok(Some(etherparse::TransportSlice::Tcp(t))) if t.rst()
    )
}

fn watchdog(b: &Bridge) {
    let mut last_sweep = Instant::now();
    while !b.stopping() {
        std::thread::sleep(Duration::from_millis(10));
        let now = b.now_ms();
        for (i, s) in b.workers.iter().enumerate() {
            let hb = s.heartbeat.load(Ordering::Relaxed);
            let stalled = now.saturating_sub(hb) > b.stall_ms;
            if stalled != s.stalled.load(Ordering::Relaxed) {
                s.stalled.store(stalled, Ordering::Relaxed);
                if stalled {
                    s.stalls.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        worker = i,
                        since_ms = now - hb,
                        fail_closed = b.fail_closed,
                        "inspection worker stalled; its traffic bypasses inspection until it recovers"
                    );
                } else {
                    tracing::info!(worker = i, "inspection worker recovered");
                }
            }
        }
        if last_sweep.elapsed() >= Duration::from_secs(10) {
            last_sweep = Instant::now();
            b.switch.fdb.sweep(now / 1000 + 1);
        }
    }
}

fn write_events(
    path: Option<std::path::PathBuf>,
    rx: Receiver<(Arc<Engine>, Vec<Record>)>,
    mut sink: Option<RecordSink>,
) {
    use std::io::Write;
    let out: Box<dyn Write + Send> = match &path {
        // 0600 (URLs, hosts); an existing file is made 0600 too; a link is refused
        Some(p) if p.as_os_str() != "-" => match crate::perms::open_private(p, true) {
            Ok(f) => Box::new(io::BufWriter::new(f)),
            Err(e) => {
                tracing::error!(file = %p.display(), error = %e, "cannot open the EVE file; events go to standard output");
                Box::new(io::BufWriter::new(io::stdout()))
            }
        },
        _ => Box::new(io::BufWriter::new(io::stdout())),
    };
    let mut eve = crate::events::eve::EveWriter::new(out, Default::default());
    let mut current: Option<Arc<Engine>> = None;
    let mut failed = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((engine, batch)) => {
                if let Some(s) = sink.as_mut() {
                    s(&engine, &batch);
                }
                if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &engine)) {
                    eve.set_classes(engine.classes.clone());
                    current = Some(Arc::clone(&engine));
                }
                for r in &batch {
                    if let Err(e) = eve.write(r, &engine.ruleset) {
                        if !failed {
                            tracing::error!(error = %e, "writing EVE events");
                            failed = true;
                        }
                    }
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                let _ = eve.flush();
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = eve.flush();
}
