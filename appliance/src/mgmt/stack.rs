//! The stack thread: a queue-backed smoltcp device, the `Interface` with its sockets, DHCP
//! events applied to the interface, and the wait on the input queue between polls.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{Socket, dhcpv4, dns, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    DhcpOption, EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpCidr, IpProtocol,
    Ipv4Cidr, Ipv4Packet, TcpPacket, UdpPacket,
};
use tokio::sync::watch;

use super::{Addressing, Counters, FrameSink, MgmtConfig};

/// Frames waiting for the stack; more are counted as `rx_dropped`.
pub(super) const INPUT_QUEUE: usize = 256;
/// Ethernet frame without FCS at an IP MTU of 1500.
pub(super) const MTU: usize = 1514;
/// Longest sleep without timers, and between checks of lingering closed streams.
const IDLE_WAIT: Duration = Duration::from_secs(60);
const LINGER_CHECK: Duration = Duration::from_secs(1);
/// A dropped stream has this long to finish its close before it is reset.
const LINGER: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(5);
/// Concurrent DNS lookups.
const DNS_SLOTS: usize = 8;
const DHCP_OPTION_HOSTNAME: u8 = 12;

pub(super) enum Input {
    Frame(Vec<u8>),
    /// An office frame to answer (ARP request, ping), received on that port.
    Office(Vec<u8>, u8),
    /// A caller queued or consumed bytes, or the stack must stop: poll now.
    Kick,
}

/// The addresses in use, published for `status` and `wait_configured`.
#[derive(Debug, Clone, Default)]
pub(super) struct AddrState {
    pub ipv4: Option<Ipv4Cidr>,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub stopped: bool,
}

/// The smoltcp device: frames in from the input queue, out through the caller's `tx`.
pub(super) struct Queue {
    rx: VecDeque<Vec<u8>>,
    tx: FrameSink,
    buf: Vec<u8>,
    counters: Arc<Counters>,
}

pub(super) struct RxToken(Vec<u8>);
pub(super) struct TxToken<'a>(&'a mut Queue);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let q = self.0;
        q.buf.clear();
        q.buf.resize(len, 0);
        let r = f(&mut q.buf);
        (q.tx)(&q.buf, None);
        q.counters.tx_frames.fetch_add(1, Relaxed);
        r
    }
}

impl Device for Queue {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(self)))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}

/// Computes the TCP or UDP checksum of an IPv4 frame whose sender left it to offload (the
/// field holds only the pseudo-header sum). Anything else is left as it is.
pub(super) fn fill_checksum(frame: &mut [u8]) {
    let Ok(mut eth) = EthernetFrame::new_checked(frame) else {
        return;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
        return;
    };
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    if ip.more_frags() || ip.frag_offset() != 0 {
        return;
    }
    match ip.next_header() {
        IpProtocol::Tcp => {
            if let Ok(mut tcp) = TcpPacket::new_checked(ip.payload_mut()) {
                tcp.fill_checksum(&src, &dst);
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut udp) = UdpPacket::new_checked(ip.payload_mut()) {
                udp.fill_checksum(&src, &dst);
            }
        }
        _ => {}
    }
}

/// Everything smoltcp owns, behind one mutex shared by the thread and the async callers.
pub(super) struct Stack {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub dev: Queue,
    pub dns: SocketHandle,
    dhcp: Option<SocketHandle>,
    /// Dropped streams still closing, reset at their deadline.
    orphans: Vec<(SocketHandle, Instant)>,
    pub next_port: u16,
    pub stopped: bool,
    start: StdInstant,
    mac: [u8; 6],
}

/// What the thread and the handles share.
pub(super) struct Shared {
    pub stack: Mutex<Stack>,
    pub input: Sender<Input>,
    pub kicked: std::sync::atomic::AtomicBool,
    pub stop: std::sync::atomic::AtomicBool,
    pub counters: Arc<Counters>,
    /// The management address (0: none), for the guard on the receive threads.
    pub ipv4: std::sync::atomic::AtomicU32,
    /// Broadcast frames and office frames waiting in the input queue.
    pub broadcasts: std::sync::atomic::AtomicUsize,
    pub office: std::sync::atomic::AtomicUsize,
    pub state: watch::Sender<AddrState>,
}

/// The address of `s` as the bits of [`Shared::ipv4`].
pub(super) fn addr_bits(s: &AddrState) -> u32 {
    s.ipv4.map_or(0, |c| u32::from(c.address()))
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Stack> {
        self.stack.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The management address now.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        match self.ipv4.load(Relaxed) {
            0 => None,
            a => Some(Ipv4Addr::from(a)),
        }
    }

    /// Publishes a new address state.
    fn publish(&self, state: AddrState) {
        self.ipv4.store(addr_bits(&state), Relaxed);
        self.state.send_replace(state);
    }

    /// Makes the thread poll soon; at most one kick waits in the queue.
    pub fn kick(&self) {
        if !self.kicked.swap(true, Relaxed) {
            let _ = self.input.try_send(Input::Kick);
        }
    }
}

impl Stack {
    pub fn new(cfg: &MgmtConfig, tx: FrameSink, counters: Arc<Counters>) -> (Stack, AddrState) {
        let start = StdInstant::now();
        let mut dev = Queue {
            rx: VecDeque::new(),
            tx,
            buf: Vec::with_capacity(MTU),
            counters,
        };
        let mut config = Config::new(EthernetAddress(cfg.mac).into());
        config.random_seed = rand::random();
        let iface = Interface::new(config, &mut dev, Instant::ZERO);
        let mut sockets = SocketSet::new(vec![]);
        let dns = sockets.add(dns::Socket::new(
            &[],
            (0..DNS_SLOTS).map(|_| None).collect::<Vec<_>>(),
        ));
        let dhcp = (cfg.addressing == Addressing::Dhcp).then(|| {
            let mut socket = dhcpv4::Socket::new();
            if let Some(name) = &cfg.hostname {
                // smoltcp borrows outgoing options for the socket's lifetime ('static here):
                // leaked once per stack, a few bytes
                let data: &'static [u8] = Box::leak(name.as_bytes().into());
                let options = Box::leak(Box::new([DhcpOption {
                    kind: DHCP_OPTION_HOSTNAME,
                    data,
                }]));
                socket.set_outgoing_options(options.as_slice());
            }
            sockets.add(socket)
        });
        let mut stack = Stack {
            iface,
            sockets,
            dev,
            dns,
            dhcp,
            orphans: Vec::new(),
            next_port: rand::random_range(super::tcp::EPHEMERAL),
            stopped: false,
            start,
            mac: cfg.mac,
        };
        let mut state = AddrState::default();
        if let Addressing::Static { cidr, gateway, dns } = cfg.addressing.clone() {
            tracing::info!(address = %cidr, ?gateway, ?dns, "mgmt: static address");
            state = AddrState {
                ipv4: Some(cidr),
                gateway,
                dns,
                stopped: false,
            };
            stack.apply(&state);
        }
        (stack, state)
    }

    pub fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }

    /// Puts address, default route and DNS servers on the interface; TCP connections from
    /// an address no longer ours are reset.
    fn apply(&mut self, s: &AddrState) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(cidr) = s.ipv4 {
                let _ = addrs.push(IpCidr::Ipv4(cidr));
            }
        });
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        if let Some(gw) = s.gateway {
            // the table holds two routes and this is the only one
            let _ = routes.add_default_ipv4_route(gw);
        }
        let servers: Vec<IpAddress> = s.dns.iter().map(|&a| a.into()).collect();
        self.sockets
            .get_mut::<dns::Socket>(self.dns)
            .update_servers(&servers);
        let ours = s.ipv4.map(|c| IpAddress::Ipv4(c.address()));
        for (_, socket) in self.sockets.iter_mut() {
            if let Socket::Tcp(t) = socket
                && t.local_endpoint().is_some_and(|e| Some(e.addr) != ours)
            {
                t.abort();
            }
        }
    }

    /// Applies a DHCP event, if any; returns the new state to publish.
    fn dhcp_event(&mut self, counters: &Counters) -> Option<AddrState> {
        let event = self.sockets.get_mut::<dhcpv4::Socket>(self.dhcp?).poll()?;
        let state = match event {
            // smoltcp takes only unicast addresses (and drops non-unicast DNS servers)
            dhcpv4::Event::Configured(c) => {
                counters.dhcp_leases.fetch_add(1, Relaxed);
                let dns = c
                    .dns_servers
                    .iter()
                    .take(super::MAX_DNS_SERVERS)
                    .copied()
                    .collect();
                let (ipv4, gateway) = (Some(c.address), c.router);
                tracing::info!(address = %c.address, ?gateway, ?dns, "mgmt: DHCP lease");
                AddrState {
                    ipv4,
                    gateway,
                    dns,
                    stopped: false,
                }
            }
            // also the socket's first event, before any lease
            dhcpv4::Event::Deconfigured if self.iface.ipv4_addr().is_none() => return None,
            dhcpv4::Event::Deconfigured => {
                counters.dhcp_lost.fetch_add(1, Relaxed);
                tracing::warn!("mgmt: DHCP lease lost, address removed");
                AddrState::default()
            }
        };
        self.apply(&state);
        Some(state)
    }

    /// Hands a dropped stream's socket to the thread, which removes it once closed.
    pub fn orphan(&mut self, handle: SocketHandle) {
        let deadline = self.now() + LINGER;
        self.orphans.push((handle, deadline));
    }

    fn reap(&mut self, now: Instant) {
        let Stack {
            sockets, orphans, ..
        } = self;
        orphans.retain(|&(h, deadline)| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
                sockets.remove(h);
                return false;
            }
            if now >= deadline {
                s.abort(); // the reset goes out with the next poll, the socket after it
            }
            true
        });
    }

    fn poll_iface(&mut self, now: Instant) {
        let Stack {
            iface,
            dev,
            sockets,
            ..
        } = self;
        iface.poll(now, dev, sockets);
    }

    /// One round: reap, poll, DHCP; returns how long the thread may sleep.
    fn poll(&mut self, shared: &Shared) -> Duration {
        let now = self.now();
        self.reap(now);
        self.poll_iface(now);
        if let Some(state) = self.dhcp_event(&shared.counters) {
            shared.publish(state);
        }
        let cap = if self.orphans.is_empty() {
            IDLE_WAIT
        } else {
            LINGER_CHECK
        };
        match self.iface.poll_delay(now, &self.sockets) {
            Some(d) => Duration::from(d).min(cap),
            None => cap,
        }
    }

    fn stop(&mut self) {
        for (_, socket) in self.sockets.iter_mut() {
            if let Socket::Tcp(t) = socket {
                t.abort(); // wakes the streams' tasks, which then see `stopped`
            }
        }
        self.poll_iface(self.now()); // sends the resets
        self.stopped = true;
    }

    /// Takes one input from the queue: a frame for smoltcp, or an office frame answered
    /// at once (never given to smoltcp).
    fn take(&mut self, input: Input, shared: &Shared) {
        match input {
            Input::Frame(f) => {
                if f[0] & 1 != 0 {
                    shared.broadcasts.fetch_sub(1, Relaxed);
                }
                self.dev.rx.push_back(f);
            }
            Input::Office(f, port) => {
                shared.office.fetch_sub(1, Relaxed);
                let mac = self.mac;
                let q = &mut self.dev;
                if let Some(ours) = self.iface.ipv4_addr()
                    && super::guard::answer(&f, &mac, ours, &mut q.buf)
                {
                    (q.tx)(&q.buf, Some(port));
                    q.counters.tx_frames.fetch_add(1, Relaxed);
                    q.counters.office_answered.fetch_add(1, Relaxed);
                } else {
                    q.counters.office_dropped.fetch_add(1, Relaxed);
                }
            }
            Input::Kick => {}
        }
    }
}

/// The thread's body: poll, then wait on the input queue for as long as smoltcp allows.
pub(super) fn run(shared: Arc<Shared>, input: Receiver<Input>) {
    let mut carry = None;
    while !shared.stop.load(Relaxed) {
        let wait = {
            let mut st = shared.lock();
            shared.kicked.store(false, Relaxed);
            if let Some(i) = carry.take() {
                st.take(i, &shared);
            }
            while st.dev.rx.len() < INPUT_QUEUE {
                match input.try_recv() {
                    Ok(i) => st.take(i, &shared),
                    Err(_) => break,
                }
            }
            st.poll(&shared)
        };
        match input.recv_timeout(wait) {
            Ok(i) => carry = Some(i),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    shared.lock().stop();
    shared.state.send_modify(|s| s.stopped = true);
    tracing::info!("mgmt: stack stopped");
}
