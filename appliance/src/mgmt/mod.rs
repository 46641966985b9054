//! Management stack: the appliance's own IPv4 address on the bridged segment (SPEC §3.4).
//!
//! The bridge ports carry no kernel IP, so the appliance speaks for itself through smoltcp,
//! a user-space TCP/IP stack, on frames the bridge hands over and sends for it:
//!
//! ```text
//!  bridge receive threads                       stack thread "mgmt"
//!  wants(dst)? ─► deliver(frame) ─► bounded queue ─► Queue device ─► Interface::poll ─► tx(frame)
//!                                      ▲ kick          ARP · ICMP echo · DHCPv4 · DNS · TCP
//!  async callers                       │                      │ wakers
//!  resolve · connect · TcpStream ──────┴── Mutex<Stack> ◄─────┘ (socket buffers)
//! ```
//!
//! - One thread owns the polling. Between polls it sleeps on its input queue for the time
//!   smoltcp's `poll_delay` gives (its next timer), so an idle stack costs nothing.
//! - `deliver` only copies the frame into a bounded queue: the bridge never waits on the
//!   stack, and a full queue drops and counts (`rx_dropped`).
//! - Async callers reach the sockets under the same mutex and kick the thread when they
//!   queued or consumed bytes; smoltcp wakes their tasks (its `async` feature) when a poll
//!   moved data or changed a connection's state.
//! - ARP and ping replies come from smoltcp itself; DHCPv4 (renew, rebind, loss and
//!   re-acquisition) is smoltcp's client socket, DNS its query socket.
//! - The stack belongs to the management side (the `wan` port unless configured): each
//!   receive thread hands frames over through its [`Gate`] (see `guard`), which keeps
//!   office-side frames, isolated hosts and floods away from smoltcp; the stack's own
//!   frames go out the management side only.

mod config;
mod guard;
mod stack;
mod tcp;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use smoltcp::socket::dns::{self, GetQueryResultError, StartQueryError};
use smoltcp::wire::{DnsQueryType, Ipv4Cidr};

pub use config::{Addressing, ConfigError, MAX_DNS_SERVERS, MgmtConfig};
pub use guard::Gate;
use stack::{Input, Shared, Stack};
pub use tcp::{TCP_BUFFER, TcpStream};

const BROADCAST: [u8; 6] = [0xff; 6];

/// Sends a frame the stack made: called on the stack thread, must not block for long.
/// The port is `None` for the stack's own frames (out the management side) and
/// `Some(port)` for an answer to an office frame received on that port.
pub type FrameSink = Box<dyn FnMut(&[u8], Option<u8>) + Send>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MgmtError {
    #[error("the management stack has stopped")]
    Stopped,
    #[error("no management IPv4 address within {0:?} (no DHCP lease)")]
    NotConfigured(Duration),
    #[error("no management IPv4 address yet (no DHCP lease)")]
    NoAddress,
    #[error("the management stack speaks IPv4 only, not {0}")]
    NotIpv4(IpAddr),
    #[error("no route to {0}: not on the management subnet and no gateway")]
    NoRoute(SocketAddr),
    #[error("connection to {0} refused (reset)")]
    Refused(SocketAddr),
    #[error("{0} unreachable (ICMP error)")]
    Unreachable(SocketAddr),
    #[error("all local TCP ports are in use")]
    NoFreePort,
    #[error("no DNS server: none configured and none from DHCP")]
    NoDnsServer,
    #[error("`{0}` is not a valid DNS name")]
    InvalidName(String),
    #[error("too many DNS lookups at once")]
    DnsBusy,
    #[error("DNS lookup of `{0}` failed (no address, error reply or no answer)")]
    DnsFailed(String),
}

/// The counters of [`MgmtStatus`], kept as atomics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    rx_frames: AtomicU64,
    tx_frames: AtomicU64,
    rx_dropped: AtomicU64,
    dhcp_leases: AtomicU64,
    dhcp_lost: AtomicU64,
    office_dropped: AtomicU64,
    office_answered: AtomicU64,
    isolated_dropped: AtomicU64,
    rate_limited: AtomicU64,
    broadcast_limited: AtomicU64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MgmtCounters {
    /// Frames handed to the stack (`deliver`).
    pub rx_frames: u64,
    /// Frames the stack sent (`tx`).
    pub tx_frames: u64,
    /// Frames dropped: queue full, stack stopped, or not 14 to 1514 bytes long (a GSO
    /// frame from a veth peer is longer).
    pub rx_dropped: u64,
    /// Leases acquired or changed.
    pub dhcp_leases: u64,
    /// Leases lost (expired without renewal): the address was removed.
    pub dhcp_lost: u64,
    /// Frames for the stack from a port other than the management side (DHCP, DNS, ARP
    /// replies, TCP, broadcasts of the office): never given to it.
    pub office_dropped: u64,
    /// ARP requests for the management address and pings to it from the office side,
    /// answered without the stack.
    pub office_answered: u64,
    /// Frames for the stack from an isolated host: dropped.
    pub isolated_dropped: u64,
    /// Frames over their source's rate (unicast on the management side; ARP requests and
    /// pings from the office side): dropped.
    pub rate_limited: u64,
    /// Broadcasts over their source's rate, or over their share of the input queue:
    /// dropped.
    pub broadcast_limited: u64,
}

/// Where the management address stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MgmtStatus {
    pub mac: String,
    pub dhcp: bool,
    /// `198.18.0.5/24`, or none while DHCP has no lease.
    #[serde(serialize_with = "display_opt")]
    pub ipv4: Option<Ipv4Cidr>,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub counters: MgmtCounters,
}

fn display_opt<S: serde::Serializer>(v: &Option<Ipv4Cidr>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// Handle on the management stack; clones share it. The stack stops on [`Mgmt::shutdown`]
/// or when the last handle is dropped (a handle captured by `tx` keeps it alive).
#[derive(Clone)]
pub struct Mgmt {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    mac: [u8; 6],
    dhcp: bool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        let _ = self.shared.input.try_send(Input::Kick);
    }
}

impl Mgmt {
    /// Starts the stack on its own thread. `tx` is called (on that thread) with every
    /// Ethernet frame the stack sends.
    pub fn spawn(cfg: MgmtConfig, tx: FrameSink) -> std::io::Result<Mgmt> {
        if cfg.mac[0] & 1 != 0 || cfg.mac == [0; 6] {
            let msg = format!("management MAC {} is not unicast", mac_text(&cfg.mac));
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg));
        }
        let counters = Arc::new(Counters::default());
        let (stack, state) = Stack::new(&cfg, tx, counters.clone());
        let (input, rx) = crossbeam_channel::bounded(stack::INPUT_QUEUE);
        let shared = Arc::new(Shared {
            stack: Mutex::new(stack),
            input,
            kicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            counters,
            ipv4: std::sync::atomic::AtomicU32::new(stack::addr_bits(&state)),
            broadcasts: Default::default(),
            office: Default::default(),
            state: tokio::sync::watch::Sender::new(state),
        });
        let thread = std::thread::Builder::new().name("mgmt".into()).spawn({
            let shared = shared.clone();
            move || stack::run(shared, rx)
        })?;
        Ok(Mgmt {
            inner: Arc::new(Inner {
                shared,
                mac: cfg.mac,
                dhcp: cfg.addressing == Addressing::Dhcp,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    pub fn mac(&self) -> [u8; 6] {
        self.inner.mac
    }

    /// The guard for a receive thread of `port`; `side`: the port is the management side.
    pub fn gate(&self, port: u8, side: bool) -> Gate {
        Gate::new(self.clone(), port, side)
    }

    /// Whether a frame to `dst` is for the stack: its own MAC or broadcast.
    pub fn wants(&self, dst: &[u8; 6]) -> bool {
        *dst == self.inner.mac || *dst == BROADCAST
    }

    /// Hands over a received Ethernet frame (the bridge goes through [`Gate::offer`]).
    /// Never blocks: a full queue drops and counts; broadcasts fill at most
    /// `guard::BROADCAST_SHARE` of the queue.
    pub fn deliver(&self, frame: &[u8]) {
        self.enqueue(frame.to_vec());
    }

    /// [`Mgmt::deliver`] for a frame whose TCP/UDP checksum its sender left to offload:
    /// AF_PACKET marks it `TP_STATUS_CSUMNOTREADY` in `PACKET_AUXDATA` (frames from the
    /// kernel of a veth peer, as in the lab). The checksum is computed here; smoltcp would
    /// drop the frame otherwise.
    pub fn deliver_checksum_partial(&self, frame: &[u8]) {
        let mut frame = frame.to_vec();
        stack::fill_checksum(&mut frame);
        self.enqueue(frame);
    }

    fn enqueue(&self, frame: Vec<u8>) {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        if !(14..=stack::MTU).contains(&frame.len()) {
            c.rx_dropped.fetch_add(1, Relaxed);
            return;
        }
        let broadcast = frame[0] & 1 != 0;
        if broadcast && !take_share(&shared.broadcasts, guard::BROADCAST_SHARE) {
            c.broadcast_limited.fetch_add(1, Relaxed);
            return;
        }
        let ok = shared.input.try_send(Input::Frame(frame)).is_ok();
        if !ok && broadcast {
            shared.broadcasts.fetch_sub(1, Relaxed);
        }
        if ok { &c.rx_frames } else { &c.rx_dropped }.fetch_add(1, Relaxed);
    }

    /// Queues an office frame the guard answers (ARP request, ping) from `port`.
    fn enqueue_office(&self, frame: &[u8], port: u8) {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        if frame.len() > stack::MTU || !take_share(&shared.office, guard::OFFICE_SHARE) {
            c.rate_limited.fetch_add(1, Relaxed);
            return;
        }
        if shared
            .input
            .try_send(Input::Office(frame.to_vec(), port))
            .is_err()
        {
            shared.office.fetch_sub(1, Relaxed);
            c.rx_dropped.fetch_add(1, Relaxed);
        }
    }

    pub fn status(&self) -> MgmtStatus {
        let s = self.inner.shared.state.borrow().clone();
        let c = &self.inner.shared.counters;
        MgmtStatus {
            mac: mac_text(&self.inner.mac),
            dhcp: self.inner.dhcp,
            ipv4: s.ipv4,
            gateway: s.gateway,
            dns: s.dns,
            counters: MgmtCounters {
                rx_frames: c.rx_frames.load(Relaxed),
                tx_frames: c.tx_frames.load(Relaxed),
                rx_dropped: c.rx_dropped.load(Relaxed),
                dhcp_leases: c.dhcp_leases.load(Relaxed),
                dhcp_lost: c.dhcp_lost.load(Relaxed),
                office_dropped: c.office_dropped.load(Relaxed),
                office_answered: c.office_answered.load(Relaxed),
                isolated_dropped: c.isolated_dropped.load(Relaxed),
                rate_limited: c.rate_limited.load(Relaxed),
                broadcast_limited: c.broadcast_limited.load(Relaxed),
            },
        }
    }

    /// Waits until an IPv4 address is configured (DHCP lease or static).
    pub async fn wait_configured(&self, timeout: Duration) -> Result<MgmtStatus, MgmtError> {
        let mut rx = self.inner.shared.state.subscribe();
        let wait = rx.wait_for(|s| s.ipv4.is_some() || s.stopped);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) if !s.stopped => {}
            Ok(_) => return Err(MgmtError::Stopped),
            Err(_) => return Err(MgmtError::NotConfigured(timeout)),
        }
        Ok(self.status())
    }

    /// Resolves `name` to its IPv4 addresses (A records) through the DNS servers from DHCP
    /// or config; an IP literal returns at once. smoltcp retries and gives up after 10 s.
    pub async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, MgmtError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let shared = &self.inner.shared;
        if shared.state.borrow().dns.is_empty() {
            return Err(MgmtError::NoDnsServer);
        }
        let mut query = {
            let mut st = shared.lock();
            if st.stopped {
                return Err(MgmtError::Stopped);
            }
            let Stack {
                iface,
                sockets,
                dns,
                ..
            } = &mut *st;
            let handle = sockets
                .get_mut::<dns::Socket>(*dns)
                .start_query(iface.context(), name, DnsQueryType::A)
                .map_err(|e| match e {
                    StartQueryError::NoFreeSlot => MgmtError::DnsBusy,
                    _ => MgmtError::InvalidName(name.into()),
                })?;
            Query {
                shared,
                handle: Some(handle),
            }
        };
        shared.kick();
        let addrs = std::future::poll_fn(|cx| query.poll(cx)).await;
        addrs.map_err(|_| MgmtError::DnsFailed(name.into()))
    }

    /// Opens a TCP connection from the management address. A reset (`Refused`) or an ICMP
    /// error (`Unreachable`) ends it at once; a silent peer waits for the caller's timeout.
    pub async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, MgmtError> {
        let IpAddr::V4(ip) = addr.ip() else {
            return Err(MgmtError::NotIpv4(addr.ip()));
        };
        let s = self.inner.shared.state.borrow().clone();
        let Some(cidr) = s.ipv4 else {
            return Err(MgmtError::NoAddress);
        };
        if !cidr.contains_addr(&ip) && s.gateway.is_none() {
            return Err(MgmtError::NoRoute(addr));
        }
        TcpStream::connect(&self.inner.shared, addr)?.opened().await
    }

    /// Accepts one connection on `port` (tests: two stacks back to back).
    #[cfg(test)]
    pub(crate) async fn accept(&self, port: u16) -> Result<TcpStream, MgmtError> {
        TcpStream::listen(&self.inner.shared, port).opened().await
    }

    /// Stops the stack thread: open connections are reset, pending calls fail.
    pub fn shutdown(&self) {
        self.inner.shared.stop.store(true, Relaxed);
        let _ = self.inner.shared.input.try_send(Input::Kick);
        let thread = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Mgmt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mgmt")
            .field("status", &self.status())
            .finish()
    }
}

/// A DNS query in flight; cancelled if the caller stops waiting.
struct Query<'a> {
    shared: &'a Shared,
    handle: Option<dns::QueryHandle>,
}

impl Query<'_> {
    fn poll(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Vec<IpAddr>, ()>> {
        let Some(handle) = self.handle else {
            return std::task::Poll::Ready(Err(()));
        };
        let mut st = self.shared.lock();
        let dns_handle = st.dns;
        let socket = st.sockets.get_mut::<dns::Socket>(dns_handle);
        let result = match socket.get_query_result(handle) {
            Err(GetQueryResultError::Pending) => {
                socket.register_query_waker(handle, cx.waker());
                return std::task::Poll::Pending;
            }
            Err(GetQueryResultError::Failed) => Err(()),
            Ok(addrs) => Ok(addrs.iter().map(|a| IpAddr::from(*a)).collect()),
        };
        self.handle = None; // the slot is free again
        std::task::Poll::Ready(result)
    }
}

impl Drop for Query<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let mut st = self.shared.lock();
            let dns_handle = st.dns;
            st.sockets
                .get_mut::<dns::Socket>(dns_handle)
                .cancel_query(h);
        }
    }
}

/// Takes one of `max` places counted by `n`; false when all are taken.
fn take_share(n: &std::sync::atomic::AtomicUsize, max: usize) -> bool {
    n.fetch_update(Relaxed, Relaxed, |v| (v < max).then_some(v + 1))
        .is_ok()
}

fn mac_text(m: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = m;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}
