//! The flow table: packets of both directions of a conversation meet in one [`Flow`],
//! keyed by the symmetric 5-tuple (plus VLAN). Bounded in flows, expired by packet time,
//! with counters for every eviction.

mod hash;
pub mod tcp;

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::decode::{L4, Packet};
use crate::reassembly::Stream;
pub use hash::FxBuild;
use rules::ast::AppProto;

/// Direction of a packet relative to the flow's initiator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer = 0,
    ToClient = 1,
}

impl Dir {
    pub fn idx(self) -> usize {
        self as usize
    }
    pub fn other(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::ToServer => "to_server",
            Dir::ToClient => "to_client",
        }
    }
}

/// Symmetric key: the lower (address, port) endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
    proto: u8,
    vlan: [u16; 2],
}

impl FlowKey {
    /// The key of a packet, and whether its source is the `lo` endpoint.
    pub fn of(p: &Packet<'_>) -> Option<(FlowKey, bool)> {
        let ip = p.ip?;
        let (sp, dp) = match p.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
            // echo request/reply share a flow by id
            L4::Icmp { id, .. } => (id, id),
            _ => (0, 0),
        };
        let a = (ip.src, sp);
        let b = (ip.dst, dp);
        let src_lo = a <= b;
        let (lo, hi) = if src_lo { (a, b) } else { (b, a) };
        Some((
            FlowKey {
                lo,
                hi,
                proto: ip.proto,
                vlan: p.vlan,
            },
            src_lo,
        ))
    }
}

/// Timeouts and bounds of the table.
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    pub max_flows: usize,
    pub tcp_new_timeout_us: u64,
    pub tcp_established_timeout_us: u64,
    pub tcp_closed_timeout_us: u64,
    pub udp_timeout_us: u64,
    pub other_timeout_us: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 65_536,
            tcp_new_timeout_us: 60_000_000,
            tcp_established_timeout_us: 3_600_000_000,
            tcp_closed_timeout_us: 10_000_000,
            udp_timeout_us: 300_000_000,
            other_timeout_us: 30_000_000,
        }
    }
}

/// What the table evicted or refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlowCounters {
    pub created: u64,
    pub timed_out: u64,
    pub evicted_full: u64,
    pub active: u64,
}

/// One conversation.
#[derive(Debug)]
pub struct Flow {
    pub key: FlowKey,
    pub id: u64,
    /// The initiator's address and port.
    pub client: (IpAddr, u16),
    pub proto: u8,
    pub first_us: u64,
    pub last_us: u64,
    /// Number of the last packet seen (for events raised when the flow ends).
    pub last_pcap_cnt: u64,
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub tcp: tcp::TcpState,
    pub streams: [Stream; 2],
    pub app_proto: Option<AppProto>,
    /// Protocol detection gave up (Suricata's `failed`).
    pub app_failed: bool,
    app_probe: [u8; 2],
    flowbits: Vec<u64>,
    /// `flowint` variables set on the flow, as (variable id, value): a handful at most.
    flowints: Vec<(u32, u32)>,
    /// Prevent mode: a drop rule matched; every later packet is dropped.
    pub dropped: bool,
    /// A pass rule matched on the flow: no more inspection.
    pub passed: bool,
    /// The sid of the rule that dropped the flow.
    pub drop_sid: Option<(u32, u32, u32)>,
    /// Application parser state, once the protocol is known.
    pub app: Option<Box<crate::app::AppState>>,
    /// URL category and application of the flow's first named access.
    pub label: Option<Box<crate::classify::Label>>,
    /// Per-flow threshold state by rule.
    pub thresholds: Vec<(u32, crate::detect::ThresholdState)>,
}

impl Flow {
    fn new(key: FlowKey, id: u64, p: &Packet<'_>, now_us: u64) -> Flow {
        let ip = p.ip.expect("flows are only created for IP packets");
        let mut client = (ip.src, p.src_port());
        // a SYN/ACK seen first: the initiator is its destination
        if let L4::Tcp { flags, .. } = p.l4 {
            if flags & 0x12 == 0x12 {
                client = (ip.dst, p.dst_port());
            }
        }
        if let L4::Icmp { itype, v6, .. } = p.l4 {
            // an echo reply seen first: the initiator is its destination
            if (!v6 && itype == 0) || (v6 && itype == 129) {
                client = (ip.dst, p.dst_port());
            }
        }
        Flow {
            key,
            id,
            client,
            proto: ip.proto,
            first_us: now_us,
            last_us: now_us,
            last_pcap_cnt: 0,
            pkts: [0; 2],
            bytes: [0; 2],
            tcp: tcp::TcpState::default(),
            streams: [Stream::default(), Stream::default()],
            app_proto: None,
            app_failed: false,
            app_probe: [0; 2],
            flowbits: Vec::new(),
            flowints: Vec::new(),
            dropped: false,
            passed: false,
            drop_sid: None,
            app: None,
            label: None,
            thresholds: Vec::new(),
        }
    }

    /// The two endpoints of the key.
    pub fn key_endpoints(&self) -> ((IpAddr, u16), (IpAddr, u16)) {
        (self.key.lo, self.key.hi)
    }

    /// Direction of a packet within this flow.
    pub fn dir_of(&self, p: &Packet<'_>) -> Dir {
        match p.ip {
            Some(ip) if (ip.src, p.src_port()) == self.client => Dir::ToServer,
            Some(ip)
                if ip.src == self.client.0
                    && self.proto != crate::decode::IPPROTO_TCP
                    && self.proto != crate::decode::IPPROTO_UDP =>
            {
                Dir::ToServer
            }
            _ => Dir::ToClient,
        }
    }

    pub fn flowbit(&self, bit: u32) -> bool {
        let (w, b) = ((bit / 64) as usize, bit % 64);
        self.flowbits.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    pub fn set_flowbit(&mut self, bit: u32, on: bool) {
        let (w, b) = ((bit / 64) as usize, bit % 64);
        if self.flowbits.len() <= w {
            if !on {
                return;
            }
            self.flowbits.resize(w + 1, 0);
        }
        if on {
            self.flowbits[w] |= 1 << b;
        } else {
            self.flowbits[w] &= !(1 << b);
        }
    }

    /// A `flowint` variable; `None` until a rule sets it.
    pub fn flowint(&self, var: u32) -> Option<u32> {
        self.flowints
            .iter()
            .find(|(v, _)| *v == var)
            .map(|(_, x)| *x)
    }

    pub fn set_flowint(&mut self, var: u32, value: u32) {
        match self.flowints.iter_mut().find(|(v, _)| *v == var) {
            Some(e) => e.1 = value,
            None => self.flowints.push((var, value)),
        }
    }

    /// Packets seen in both directions (UDP/ICMP "established"), or the TCP handshake done.
    pub fn established(&self) -> bool {
        if self.proto == crate::decode::IPPROTO_TCP {
            self.tcp.established()
        } else {
            self.pkts[0] > 0 && self.pkts[1] > 0
        }
    }

    /// Content-based application protocol detection on the first bytes of each direction.
    pub fn detect_app(&mut self, dir: Dir, data: &[u8], sport: u16, dport: u16) {
        if self.app_proto.is_some() || self.app_failed || data.is_empty() {
            return;
        }
        if let Some(a) = crate::app::probe(data, dir == Dir::ToServer, self.proto, sport, dport) {
            self.app_proto = Some(a);
            return;
        }
        let n = &mut self.app_probe[dir.idx()];
        *n = n.saturating_add(1);
        if self.app_probe[0] >= 3 || (self.app_probe[0] >= 1 && self.app_probe[1] >= 1) {
            self.app_failed = true;
        }
    }

    fn timeout(&self, cfg: &FlowConfig) -> u64 {
        match self.proto {
            crate::decode::IPPROTO_TCP if self.tcp.closed() => cfg.tcp_closed_timeout_us,
            crate::decode::IPPROTO_TCP if self.tcp.established() => cfg.tcp_established_timeout_us,
            crate::decode::IPPROTO_TCP => cfg.tcp_new_timeout_us,
            crate::decode::IPPROTO_UDP => cfg.udp_timeout_us,
            _ => cfg.other_timeout_us,
        }
    }
}

/// The table. Flows live in a slab; the map holds slab indices.
pub struct FlowTable {
    cfg: FlowConfig,
    map: std::collections::HashMap<FlowKey, usize, FxBuild>,
    slab: Vec<Option<Flow>>,
    free: Vec<usize>,
    /// Creation order, for eviction when full.
    order: VecDeque<(usize, u64)>,
    next_id: u64,
    last_sweep_us: u64,
    pub counters: FlowCounters,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> FlowTable {
        FlowTable {
            cfg,
            map: std::collections::HashMap::with_capacity_and_hasher(1024, FxBuild),
            slab: Vec::new(),
            free: Vec::new(),
            order: VecDeque::new(),
            next_id: 1,
            last_sweep_us: 0,
            counters: FlowCounters::default(),
        }
    }

    /// Find or create the flow of a packet. Flows that had to make room are passed to
    /// `on_evict` first, so their buffered data can still be inspected.
    pub fn lookup(
        &mut self,
        p: &Packet<'_>,
        now_us: u64,
        on_evict: &mut dyn FnMut(Flow),
    ) -> Option<usize> {
        let (key, _) = FlowKey::of(p)?;
        if let Some(&i) = self.map.get(&key) {
            return Some(i);
        }
        if self.map.len() >= self.cfg.max_flows {
            self.evict_oldest(on_evict);
        }
        let id = self.next_id;
        self.next_id += 1;
        let flow = Flow::new(key, flow_id_hash(id), p, now_us);
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i] = Some(flow);
                i
            }
            None => {
                self.slab.push(Some(flow));
                self.slab.len() - 1
            }
        };
        self.map.insert(key, i);
        self.order.push_back((i, id));
        self.counters.created += 1;
        self.counters.active = self.map.len() as u64;
        Some(i)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Flow> {
        self.slab.get_mut(i).and_then(|f| f.as_mut())
    }

    fn remove(&mut self, i: usize) -> Option<Flow> {
        let f = self.slab.get_mut(i)?.take()?;
        self.map.remove(&f.key);
        self.free.push(i);
        self.counters.active = self.map.len() as u64;
        Some(f)
    }

    fn evict_oldest(&mut self, on_evict: &mut dyn FnMut(Flow)) {
        while let Some((i, id)) = self.order.pop_front() {
            let live = self
                .slab
                .get(i)
                .and_then(|f| f.as_ref())
                .is_some_and(|f| f.id == flow_id_hash(id));
            if live {
                if let Some(f) = self.remove(i) {
                    self.counters.evicted_full += 1;
                    on_evict(f);
                }
                return;
            }
        }
    }

    /// Expire idle flows; cheap to call per packet (sweeps at most once per second of
    /// packet time).
    pub fn expire(&mut self, now_us: u64, on_expire: &mut dyn FnMut(Flow)) {
        if now_us < self.last_sweep_us + 1_000_000 {
            return;
        }
        self.last_sweep_us = now_us;
        let cfg = self.cfg;
        let idle: Vec<usize> = self
            .slab
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.as_ref()
                    .filter(|f| now_us.saturating_sub(f.last_us) > f.timeout(&cfg))
                    .map(|_| i)
            })
            .collect();
        for i in idle {
            if let Some(f) = self.remove(i) {
                self.counters.timed_out += 1;
                on_expire(f);
            }
        }
        // drop stale entries of the eviction queue
        let slab = &self.slab;
        self.order.retain(|(i, id)| {
            slab.get(*i)
                .and_then(|f| f.as_ref())
                .is_some_and(|f| f.id == flow_id_hash(*id))
        });
    }

    /// Every flow in the table.
    pub fn iter(&self) -> impl Iterator<Item = &Flow> {
        self.slab.iter().flatten()
    }

    /// Remove every flow (end of input).
    pub fn drain(&mut self, on_flow: &mut dyn FnMut(Flow)) {
        let mut order: Vec<usize> = self.order.iter().map(|(i, _)| *i).collect();
        order.dedup();
        for i in order {
            if let Some(f) = self.remove(i) {
                on_flow(f);
            }
        }
        for i in 0..self.slab.len() {
            if let Some(f) = self.remove(i) {
                on_flow(f);
            }
        }
        self.order.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Spread flow numbers over 64 bits like Suricata's flow_id (splitmix64).
fn flow_id_hash(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & 0x7fff_ffff_ffff_ffff
}
