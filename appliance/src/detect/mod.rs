//! Signature detection on one packet (and the stream bytes it completed).
//!
//! Each buffer is scanned once with its Hyperscan prefilter; candidate rules are sorted
//! into Suricata's evaluation order (pass, drop, reject, alert; flowbit setters before
//! readers; priority) and verified: header, flow, packet keywords, flowbits, every buffer
//! program, then thresholds. Per-worker state only: no locks, no allocation per packet.

mod threshold;

pub use threshold::State as ThresholdState;
pub use threshold::{AlertLimit, AlertLimiter, Suppressed};

use std::sync::Arc;

use rules::ast::{
    Action, Buffer, FlowbitCmd, FlowintCmd, FlowintOp, FlowintVal, PacketTest, Proto, Rule,
};
use rules::compile::{InspectVars, Ruleset, Scratch};

use crate::decode::{Event, L4, Packet, events};
use crate::flow::{Dir, Flow};
use threshold::Thresholds;

/// Packet and stream data presented to detection.
pub struct Input<'a, 'p> {
    pub pkt: &'a Packet<'p>,
    pub dir: Dir,
    pub now_us: u64,
    /// Stream window and the index where its new bytes start.
    pub stream: Option<(&'a [u8], usize)>,
    /// The packet's TCP direction is reassembled: payload rules use the stream.
    pub tracked: bool,
    /// Application protocol detection completed on this packet.
    pub app_detected_now: bool,
    /// First packet of its flow in this direction (or a packet without a flow): header-only
    /// rules are evaluated.
    pub first_in_dir: bool,
    /// Application state of the flow; transactions marked dirty are inspected.
    pub app: Option<&'a crate::app::AppState>,
}

/// One matching rule.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    pub rule: u32,
    /// Whether an alert is written (not `noalert`, not held back by a threshold).
    pub alert: bool,
    /// The alert was held back by the default alert budget ([`AlertLimit`]).
    pub suppressed: bool,
}

/// The outcome for one packet.
#[derive(Debug, Default)]
pub struct Verdict {
    pub hits: Vec<Hit>,
    /// (transaction id, rule) pairs that matched on an HTTP transaction.
    pub tx_hits: Vec<(u64, u32)>,
    /// Prefilter results per (transaction, buffer, direction, length) to remember.
    pub tx_cache: Vec<(u64, Buffer, bool, usize, Vec<u32>)>,
    /// Prevent mode: a drop/reject rule matched.
    pub drop: bool,
    pub reject: bool,
    /// A pass rule matched.
    pub pass: bool,
    /// The pass applies to the whole flow (rules on a transport or app protocol).
    pub pass_flow: bool,
}

impl Verdict {
    pub fn clear(&mut self) {
        self.hits.clear();
        self.tx_hits.clear();
        self.tx_cache.clear();
        self.drop = false;
        self.reject = false;
        self.pass = false;
        self.pass_flow = false;
    }
}

/// Counters of detection work.
#[derive(Debug, Default, Clone, Copy)]
pub struct DetectCounters {
    pub candidates: u64,
    pub verified: u64,
    pub matches: u64,
    pub thresholded: u64,
}

/// Per-rule facts computed once.
#[derive(Debug, Clone, Copy)]
struct Meta {
    rank: u32,
    /// Event a rule waits for; `Some(None)` when the name is unknown (never matches).
    event: Option<Option<Event>>,
    /// Payload program on the packet (not the stream).
    packet_payload: bool,
    /// Payload program only on the stream.
    stream_only: bool,
    /// Only `app-layer-protocol` decides: match on the packet that completed detection.
    pd_only: bool,
}

/// The detection engine of one worker.
pub struct Detector {
    /// The shared ruleset; moved out (not cloned) while a packet is inspected, so no
    /// reference count shared by workers is touched per packet.
    rs: Option<Arc<Ruleset>>,
    scratch: Scratch,
    meta: Vec<Meta>,
    /// Rule id of each rank.
    by_rank: Vec<u32>,
    /// Packet-keyword rules (no buffer) that can match any packet.
    pkt_any: Vec<u32>,
    /// Packet-keyword rules whose destination or source port set is one port, by that
    /// port (sorted): most of ET's scan rules, otherwise evaluated for every packet.
    pkt_by_port: Vec<(u16, Vec<u32>)>,
    cand: Vec<u32>,
    thresholds: Thresholds,
    /// Default alert budgets against floods (rules without a threshold of their own).
    limiter: AlertLimiter,
    prevent: bool,
    pub counters: DetectCounters,
    /// Some rule inspects packet payloads of reassembled TCP too.
    packet_payload_rules: bool,
    hdr_buffers: Vec<Buffer>,
    /// Application buffers some rule inspects.
    app_buffers: Vec<Buffer>,
    /// Rules comparing integer facts of transactions (`tls.cert_chain_len`, …).
    app_num_rules: Vec<u32>,
    /// Transformed bytes of the buffer being inspected (`dotprefix`, `to_lowercase`, ...),
    /// reused across programs and packets.
    xform: std::cell::RefCell<rules::transform::TransformBuf>,
}

fn action_rank(a: Action) -> u32 {
    match a {
        Action::Pass => 0,
        Action::Drop => 1,
        Action::Reject => 2,
        Action::Alert => 3,
    }
}

fn flowbit_rank(r: &Rule) -> u32 {
    let sets = r.flowbits.iter().any(|f| {
        matches!(
            f,
            FlowbitCmd::Set(_) | FlowbitCmd::Unset(_) | FlowbitCmd::Toggle(_)
        )
    });
    let reads = r
        .flowbits
        .iter()
        .any(|f| matches!(f, FlowbitCmd::IsSet { .. } | FlowbitCmd::IsNotSet { .. }));
    match (sets, reads) {
        (true, false) => 0,
        (true, true) => 1,
        (false, true) => 2,
        _ => 3,
    }
}

impl Detector {
    pub fn new(rs: Arc<Ruleset>, prevent: bool) -> Result<Detector, String> {
        let scratch = rs.alloc_scratch()?;
        let mut order: Vec<u32> = (0..rs.rules.len() as u32).collect();
        order.sort_by_key(|&i| {
            let r = &rs.rules[i as usize].rule;
            (
                action_rank(r.action),
                flowbit_rank(r),
                flowint_rank(r),
                r.priority.unwrap_or(3),
                i,
            )
        });
        let mut meta = vec![
            Meta {
                rank: 0,
                event: None,
                packet_payload: false,
                stream_only: false,
                pd_only: false
            };
            rs.rules.len()
        ];
        let mut packet_payload_rules = false;
        for (rank, &i) in order.iter().enumerate() {
            let r = &rs.rules[i as usize].rule;
            let event = r.packet_tests.iter().find_map(|t| match t {
                PacketTest::Event { kind, name } if !tx_event(*kind, name) => {
                    Some(events::lookup(name))
                }
                _ => None,
            });
            // ip rules and `no_stream` / `tcp-pkt` rules look at packets, not the stream
            let packet_payload = r.flow.no_stream || matches!(r.proto, Proto::TcpPkt | Proto::Ip);
            packet_payload_rules |= packet_payload && r.has_payload();
            meta[i as usize] = Meta {
                rank: rank as u32,
                event,
                packet_payload,
                stream_only: r.flow.only_stream || r.proto == Proto::TcpStream,
                pd_only: r.programs.is_empty()
                    && !r.packet_tests.is_empty()
                    && r.packet_tests
                        .iter()
                        .all(|t| matches!(t, PacketTest::AppLayerProtocol { .. })),
            };
        }
        let hdr_buffers = [
            Buffer::Ipv4Hdr,
            Buffer::Ipv6Hdr,
            Buffer::IpSrc,
            Buffer::IpDst,
            Buffer::TcpHdr,
            Buffer::UdpHdr,
            Buffer::IcmpV4Hdr,
            Buffer::IcmpV6Hdr,
        ]
        .into_iter()
        .filter(|b| rs.uses(*b))
        .collect();
        let app_buffers = (0..Buffer::COUNT)
            .filter_map(|i| {
                rs.rules
                    .iter()
                    .filter_map(|r| r.prefilter_buffer)
                    .find(|b| b.index() == i)
            })
            .filter(|b| b.app_proto().is_some() || matches!(b, Buffer::FileData | Buffer::FileName))
            .collect();
        let mut pkt_any = Vec::new();
        let mut by_port: std::collections::BTreeMap<u16, Vec<u32>> =
            std::collections::BTreeMap::new();
        for &id in &rs.packet_only {
            let r = &rs.rules[id as usize].rule;
            let port = if r.bidirectional {
                None
            } else {
                r.dst_ports.single().or_else(|| r.src_ports.single())
            };
            match port {
                Some(p) => by_port.entry(p).or_default().push(id),
                None => pkt_any.push(id),
            }
        }
        let pkt_by_port: Vec<(u16, Vec<u32>)> = by_port.into_iter().collect();
        let app_num_rules = (0..rs.rules.len() as u32)
            .filter(|&i| {
                rs.rules[i as usize]
                    .rule
                    .packet_tests
                    .iter()
                    .any(|t| match t {
                        PacketTest::AppNum { .. } | PacketTest::FileHash { .. } => true,
                        PacketTest::Event { kind, name } => tx_event(*kind, name),
                        _ => false,
                    })
            })
            .collect();
        Ok(Detector {
            app_buffers,
            app_num_rules,
            xform: Default::default(),
            rs: Some(rs),
            scratch,
            meta,
            by_rank: order.clone(),
            pkt_any,
            pkt_by_port,
            cand: Vec::with_capacity(256),
            thresholds: Thresholds::default(),
            limiter: AlertLimiter::new(AlertLimit::default()),
            prevent,
            counters: DetectCounters::default(),
            packet_payload_rules,
            hdr_buffers,
        })
    }

    /// Use these default alert budgets from now on (allocates the fixed table once).
    pub fn set_alert_limit(&mut self, limit: AlertLimit) {
        self.limiter = AlertLimiter::new(limit);
    }

    /// The default alert budgets and what they suppressed.
    pub fn limiter(&mut self) -> &mut AlertLimiter {
        &mut self.limiter
    }

    /// Alerts suppressed by the default budgets since start.
    pub fn alerts_suppressed(&self) -> u64 {
        self.limiter.suppressed
    }

    pub fn ruleset(&self) -> &Arc<Ruleset> {
        self.rs
            .as_ref()
            .expect("the ruleset is only moved out during inspect")
    }

    /// Inspect one packet. `flow` is the packet's flow when it has one.
    pub fn inspect(&mut self, inp: &Input<'_, '_>, flow: Option<&mut Flow>, v: &mut Verdict) {
        v.clear();
        let Some(rs) = self.rs.take() else { return };
        self.inspect_with(&rs, inp, flow, v);
        self.rs = Some(rs);
    }

    fn inspect_with(
        &mut self,
        rs: &Arc<Ruleset>,
        inp: &Input<'_, '_>,
        mut flow: Option<&mut Flow>,
        v: &mut Verdict,
    ) {
        self.cand.clear();
        // packet-keyword rules: those bound to one port only when the packet has that port
        self.cand.extend_from_slice(&self.pkt_any);
        if !self.pkt_by_port.is_empty() {
            for port in [inp.pkt.dst_port(), inp.pkt.src_port()] {
                if let Ok(i) = self.pkt_by_port.binary_search_by_key(&port, |e| e.0) {
                    self.cand.extend_from_slice(&self.pkt_by_port[i].1);
                }
            }
        }
        if inp.first_in_dir {
            if let Some(ip) = inp.pkt.ip {
                rs.ip_only.lookup(ip.src, ip.dst, &mut self.cand);
            }
        }
        let payload = inp.pkt.payload;
        let pkt_payload = !payload.is_empty() && (!inp.tracked || self.packet_payload_rules);
        let stream_new = inp.stream.is_some_and(|(w, n)| w.len() > n);
        if pkt_payload {
            if inp.tracked {
                // the stream is scanned below: here only the rules that look at packets
                rs.packet_prefilter(payload, &mut self.scratch, &mut self.cand);
            } else {
                rs.prefilter(Buffer::Payload, payload, &mut self.scratch, &mut self.cand);
            }
        }
        if let Some((w, n)) = inp.stream.filter(|_| stream_new) {
            // only the new bytes plus the overlap a prefilter literal can straddle
            let from = n.saturating_sub(rules::compile::MAX_PREFILTER_LIT - 1);
            rs.prefilter(
                Buffer::Payload,
                &w[from..],
                &mut self.scratch,
                &mut self.cand,
            );
        }
        if pkt_payload || stream_new {
            self.cand.extend_from_slice(rs.unfiltered(Buffer::Payload));
        }
        for i in 0..self.hdr_buffers.len() {
            let b = self.hdr_buffers[i];
            if let Some(data) = hdr_buffer(inp.pkt, b) {
                rs.prefilter(b, data, &mut self.scratch, &mut self.cand);
                self.cand.extend_from_slice(rs.unfiltered(b));
            }
        }
        if !self.cand.is_empty() {
            self.run_candidates(rs, inp, None, &mut flow, v);
        }
        if v.pass {
            return;
        }
        if let Some(app) = inp.app {
            for ti in app.dirty() {
                let tx = &app.txs()[ti];
                self.cand.clear();
                let to_client = inp.dir == Dir::ToClient;
                for i in 0..self.app_buffers.len() {
                    let b = self.app_buffers[i];
                    if let Some(data) = tx.get_dir(b, to_client) {
                        // a buffer that has not changed since it was last scanned on this
                        // transaction gives the same candidates: reuse them
                        if let Some(c) = tx.cached(b, to_client, data.len()) {
                            self.cand.extend_from_slice(c);
                        } else {
                            let start = self.cand.len();
                            rs.prefilter(b, data, &mut self.scratch, &mut self.cand);
                            v.tx_cache.push((
                                tx.id,
                                b,
                                to_client,
                                data.len(),
                                self.cand[start..].to_vec(),
                            ));
                        }
                        self.cand.extend_from_slice(rs.unfiltered(b));
                    }
                    // more instances of a multi-valued buffer (other DNS names, other
                    // certificates, other readings of an odd HTTP body)
                    let mut extra = false;
                    for data in tx.extras(b) {
                        rs.prefilter(b, data, &mut self.scratch, &mut self.cand);
                        extra = true;
                    }
                    if extra {
                        self.cand.extend_from_slice(rs.unfiltered(b));
                    }
                }
                if !tx.nums.is_empty() || !tx.file_results.is_empty() || !tx.events.is_empty() {
                    self.cand.extend_from_slice(&self.app_num_rules);
                }
                self.cand.extend_from_slice(&rs.tx_always);
                self.cand.retain(|r| !tx.alerted.contains(r));
                if !self.cand.is_empty() {
                    self.run_candidates(rs, inp, Some(tx), &mut flow, v);
                }
                if v.pass {
                    return;
                }
            }
        }
    }

    fn run_candidates(
        &mut self,
        rs: &Arc<Ruleset>,
        inp: &Input<'_, '_>,
        tx: Option<&crate::app::Tx>,
        flow: &mut Option<&mut Flow>,
        v: &mut Verdict,
    ) {
        // candidates become ranks (evaluation order), sorted directly, then rules again
        for c in self.cand.iter_mut() {
            *c = self.meta[*c as usize].rank;
        }
        self.cand.sort_unstable();
        self.cand.dedup();
        for c in self.cand.iter_mut() {
            *c = self.by_rank[*c as usize];
        }
        self.counters.candidates += self.cand.len() as u64;
        for ci in 0..self.cand.len() {
            let id = self.cand[ci];
            let cr = &rs.rules[id as usize];
            self.counters.verified += 1;
            if !self.matches(cr, self.meta[id as usize], inp, flow.as_deref(), tx) {
                continue;
            }
            if let Some(t) = tx {
                v.tx_hits.push((t.id, id));
            }
            self.counters.matches += 1;
            let r = &cr.rule;
            if let Some(f) = flow.as_deref_mut() {
                apply_flowbits(r, f);
                apply_flowints(r, f);
            }
            let mut alert = !r.noalert;
            for t in [r.threshold, r.detection_filter].into_iter().flatten() {
                if !self
                    .thresholds
                    .allow(id, &t, inp.pkt, flow.as_deref_mut(), inp.now_us)
                {
                    alert = false;
                    self.counters.thresholded += 1;
                }
            }
            // the default budget: only for rules without a threshold of their own; it
            // decides about the alert only, never about the verdict below
            let mut suppressed = false;
            if alert && r.threshold.is_none() && self.limiter.enabled() {
                if let Some(ip) = inp.pkt.ip {
                    if !self.limiter.allow(id, ip.src, ip.dst, ip.proto, inp.now_us) {
                        alert = false;
                        suppressed = true;
                    }
                }
            }
            match r.action {
                Action::Pass => {
                    v.pass = true;
                    v.pass_flow = !matches!(r.proto, Proto::Ip | Proto::PktHdr);
                    v.hits.push(Hit {
                        rule: id,
                        alert: false,
                        suppressed: false,
                    });
                    return;
                }
                Action::Drop | Action::Reject if self.prevent => {
                    v.drop = true;
                    v.reject |= r.action == Action::Reject;
                }
                _ => {}
            }
            v.hits.push(Hit {
                rule: id,
                alert,
                suppressed,
            });
        }
    }

    fn matches(
        &self,
        cr: &rules::compile::CompiledRule,
        m: Meta,
        inp: &Input<'_, '_>,
        flow: Option<&Flow>,
        tx: Option<&crate::app::Tx>,
    ) -> bool {
        let r = &cr.rule;
        let p = inp.pkt;
        let Some(ip) = p.ip else {
            return r.proto == Proto::PktHdr && m.event.is_some() && self.event_ok(m, p);
        };
        if !proto_ok(r.proto, p) {
            return false;
        }
        // flow options first: cheap and often decisive
        let fo = &r.flow;
        if fo.to_server && inp.dir != Dir::ToServer {
            return false;
        }
        if fo.to_client && inp.dir != Dir::ToClient {
            return false;
        }
        let established = flow.is_some_and(|f| f.established());
        if fo.established && !established {
            return false;
        }
        if fo.not_established && established {
            return false;
        }
        // ports before addresses: fewer memory lookups for the common rejections
        let (sp, dp) = (p.src_port(), p.dst_port());
        let fwd = r.src_ports.contains(sp)
            && r.dst_ports.contains(dp)
            && r.src.contains(ip.src)
            && r.dst.contains(ip.dst);
        if !fwd {
            let rev = r.bidirectional
                && r.src_ports.contains(dp)
                && r.dst_ports.contains(sp)
                && r.src.contains(ip.dst)
                && r.dst.contains(ip.src);
            if !rev {
                return false;
            }
        }
        if m.event.is_some() && !self.event_ok(m, p) {
            return false;
        }
        if m.pd_only && !inp.app_detected_now {
            return false;
        }
        if fo.only_frag && p.frag.is_none() {
            return false;
        }
        if fo.no_frag && p.frag.is_some() {
            return false;
        }
        if let Some(a) = r.app_proto {
            if flow.and_then(|f| f.app_proto) != Some(a) {
                return false;
            }
            // IDS mode: Suricata hands a direction's bytes to the application layer once the
            // other side acknowledged them, so the packet carrying the bytes that detected
            // the protocol does not know it yet. Only packet-level rules are held back here:
            // transactions and the stream are inspected on their own schedule.
            if inp.app_detected_now
                && inp.tracked
                && !self.prevent
                && tx.is_none()
                && !m.pd_only
                && !r.has_payload()
            {
                return false;
            }
        }
        for t in &r.packet_tests {
            if !packet_test(t, p, inp, flow, tx) {
                return false;
            }
        }
        if !r.flowbits.is_empty() && !flowbits_ok(r, flow) {
            return false;
        }
        if !r.flowints.is_empty() && !flowints_ok(r, flow) {
            return false;
        }
        let mut vars: InspectVars = [0; 8];
        let mut tb = self.xform.borrow_mut();
        for prog in &cr.programs {
            let ok = match prog.buffer {
                Buffer::Payload => {
                    let use_stream = inp.tracked && !m.packet_payload;
                    if use_stream {
                        match inp.stream {
                            Some((w, n)) if w.len() > n => prog.run(w, &mut vars, n, &mut tb),
                            _ => false,
                        }
                    } else if m.stream_only {
                        false
                    } else {
                        !p.payload.is_empty() && prog.run(p.payload, &mut vars, 0, &mut tb)
                    }
                }
                b => match hdr_buffer(p, b) {
                    Some(data) => prog.run(data, &mut vars, 0, &mut tb),
                    // any instance of an application buffer; `absent` programs also match
                    // a transaction without one
                    None => tx.is_some_and(|t| {
                        let mut present = false;
                        let hit = t.instances(b, inp.dir == Dir::ToClient).any(|d| {
                            present = true;
                            prog.run(d, &mut vars, 0, &mut tb)
                        });
                        hit || (!present && prog.when_missing())
                    }),
                },
            };
            if !ok {
                return false;
            }
        }
        true
    }

    fn event_ok(&self, m: Meta, p: &Packet<'_>) -> bool {
        match m.event {
            Some(Some(e)) => p.events.has(e),
            Some(None) => false,
            None => true,
        }
    }
}

/// An `app-layer-event` that the application parsers record on transactions rather than
/// one of the packet's decoder/stream events.
fn tx_event(kind: rules::ast::EventKind, name: &str) -> bool {
    kind == rules::ast::EventKind::AppLayer && events::lookup(name).is_none()
}

fn proto_ok(proto: Proto, p: &Packet<'_>) -> bool {
    match proto {
        Proto::Ip | Proto::PktHdr => true,
        Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => matches!(p.l4, L4::Tcp { .. }),
        Proto::Udp => matches!(p.l4, L4::Udp { .. }),
        Proto::Icmp => matches!(p.l4, L4::Icmp { .. }),
        Proto::Icmpv6 => matches!(p.l4, L4::Icmp { v6: true, .. }),
        Proto::App(a) => match a {
            rules::ast::AppProto::Dns => matches!(p.l4, L4::Tcp { .. } | L4::Udp { .. }),
            _ => matches!(p.l4, L4::Tcp { .. } | L4::Udp { .. }),
        },
    }
}

fn hdr_buffer<'p>(p: &Packet<'p>, b: Buffer) -> Option<&'p [u8]> {
    let ip = p.ip?;
    let data = match b {
        Buffer::Ipv4Hdr if !ip.v6 => p.ip_hdr,
        Buffer::Ipv6Hdr if ip.v6 => p.ip_hdr,
        // addresses as their raw header bytes
        Buffer::IpSrc => p
            .ip_hdr
            .get(if ip.v6 { 8..24 } else { 12..16 })
            .unwrap_or_default(),
        Buffer::IpDst => p
            .ip_hdr
            .get(if ip.v6 { 24..40 } else { 16..20 })
            .unwrap_or_default(),
        Buffer::TcpHdr if matches!(p.l4, L4::Tcp { .. }) => p.l4_hdr,
        Buffer::UdpHdr if matches!(p.l4, L4::Udp { .. }) => p.l4_hdr,
        Buffer::IcmpV4Hdr if matches!(p.l4, L4::Icmp { v6: false, .. }) => p.l4_hdr,
        Buffer::IcmpV6Hdr if matches!(p.l4, L4::Icmp { v6: true, .. }) => p.l4_hdr,
        _ => return None,
    };
    (!data.is_empty()).then_some(data)
}

fn flowbits_ok(r: &Rule, flow: Option<&Flow>) -> bool {
    for fb in &r.flowbits {
        match fb {
            FlowbitCmd::IsSet { bits, any } => {
                let Some(f) = flow else { return false };
                let ok = if *any {
                    bits.iter().any(|b| f.flowbit(*b))
                } else {
                    bits.iter().all(|b| f.flowbit(*b))
                };
                if !ok {
                    return false;
                }
            }
            FlowbitCmd::IsNotSet { bits, any } => {
                let Some(f) = flow else { return true };
                let ok = if *any {
                    bits.iter().any(|b| !f.flowbit(*b))
                } else {
                    bits.iter().all(|b| !f.flowbit(*b))
                };
                if !ok {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

fn apply_flowbits(r: &Rule, f: &mut Flow) {
    for fb in &r.flowbits {
        match fb {
            FlowbitCmd::Set(b) => b.iter().for_each(|b| f.set_flowbit(*b, true)),
            FlowbitCmd::Unset(b) => b.iter().for_each(|b| f.set_flowbit(*b, false)),
            FlowbitCmd::Toggle(b) => b.iter().for_each(|b| {
                let on = f.flowbit(*b);
                f.set_flowbit(*b, !on)
            }),
            _ => {}
        }
    }
}

/// Setters of `flowint` variables run before the rules that read them, as flowbits do.
fn flowint_rank(r: &Rule) -> u32 {
    let sets = r
        .flowints
        .iter()
        .any(|f| matches!(f, FlowintCmd::Modify { .. }));
    let reads = r
        .flowints
        .iter()
        .any(|f| !matches!(f, FlowintCmd::Modify { .. }));
    match (sets, reads) {
        (true, false) => 0,
        (true, true) => 1,
        (false, true) => 2,
        _ => 3,
    }
}

/// The value of a `flowint` operand; another variable counts as 0 while unset.
fn flowint_value(f: &Flow, v: FlowintVal) -> u32 {
    match v {
        FlowintVal::Lit(n) => n,
        FlowintVal::Var(id) => f.flowint(id).unwrap_or(0),
    }
}

/// The `flowint` conditions of a rule (no flow: none holds, as in Suricata).
fn flowints_ok(r: &Rule, flow: Option<&Flow>) -> bool {
    let Some(f) = flow else { return false };
    r.flowints.iter().all(|fi| match *fi {
        FlowintCmd::Modify { .. } => true,
        FlowintCmd::IsSet { var, set } => f.flowint(var).is_some() == set,
        FlowintCmd::Compare { var, cmp, value } => f
            .flowint(var)
            .is_some_and(|x| cmp.matches(x, flowint_value(f, value))),
    })
}

/// `flowint` changes of a rule that matched; arithmetic wraps like Suricata's `u32`.
fn apply_flowints(r: &Rule, f: &mut Flow) {
    for fi in &r.flowints {
        let FlowintCmd::Modify { var, op, value } = *fi else {
            continue;
        };
        let value = flowint_value(f, value);
        let new = match (op, f.flowint(var)) {
            (FlowintOp::Set, _) => value,
            (FlowintOp::Add, cur) => cur.unwrap_or(0).wrapping_add(value),
            (FlowintOp::Sub, Some(cur)) => cur.wrapping_sub(value),
            (FlowintOp::Sub, None) => continue,
        };
        f.set_flowint(var, new);
    }
}

fn flags_ok(t: &rules::ast::TcpFlagsTest, flags: u8) -> bool {
    use rules::ast::FlagsModifier::*;
    let f = flags & !t.mask;
    match t.modifier {
        Exact => f == t.flags,
        Plus => f & t.flags == t.flags,
        Any => t.flags == 0 || f & t.flags != 0,
        Not => f & t.flags == 0,
    }
}

fn dir_sel(
    sel: rules::ast::FlowDirSel,
    inp: &Input<'_, '_>,
    vals: [u64; 2],
    cmp: rules::ast::NumCmp,
) -> bool {
    use rules::ast::FlowDirSel::*;
    match sel {
        ToServer => cmp.matches(vals[0]),
        ToClient => cmp.matches(vals[1]),
        Either => cmp.matches(vals[0]) || cmp.matches(vals[1]),
        Both => cmp.matches(vals[0]) && cmp.matches(vals[1]),
        Sum => {
            let _ = inp;
            cmp.matches(vals[0] + vals[1])
        }
    }
}

fn packet_test(
    t: &PacketTest,
    p: &Packet<'_>,
    inp: &Input<'_, '_>,
    flow: Option<&Flow>,
    tx: Option<&crate::app::Tx>,
) -> bool {
    let Some(ip) = p.ip else { return false };
    match t {
        PacketTest::Dsize(c) => c.matches(p.payload.len() as u64),
        PacketTest::Ttl(c) => c.matches(ip.ttl as u64),
        PacketTest::Itype(c) => matches!(p.l4, L4::Icmp { itype, .. } if c.matches(itype as u64)),
        PacketTest::Icode(c) => matches!(p.l4, L4::Icmp { icode, .. } if c.matches(icode as u64)),
        PacketTest::IcmpId(v) => matches!(p.l4, L4::Icmp { id, .. } if id == *v),
        PacketTest::IcmpSeq(v) => matches!(p.l4, L4::Icmp { seq, .. } if seq == *v),
        PacketTest::TcpFlags(f) => matches!(p.l4, L4::Tcp { flags, .. } if flags_ok(f, flags)),
        PacketTest::TcpSeq(v) => matches!(p.l4, L4::Tcp { seq, .. } if seq == *v),
        PacketTest::TcpAck(v) => matches!(p.l4, L4::Tcp { ack, .. } if ack == *v),
        PacketTest::TcpWindow { value, negated } => {
            matches!(p.l4, L4::Tcp { window, .. } if (window == *value) != *negated)
        }
        PacketTest::IpProto { proto, negated } => (ip.proto == *proto) != *negated,
        PacketTest::Id(v) => !ip.v6 && ip.id == *v as u32,
        PacketTest::FragBits { bits, modifier } => {
            let t = rules::ast::TcpFlagsTest {
                flags: *bits,
                modifier: *modifier,
                mask: 0,
            };
            flags_ok(&t, ip.frag_bits)
        }
        PacketTest::SameIp => ip.src == ip.dst,
        PacketTest::FlowPkts { dir, cmp } => flow.is_some_and(|f| dir_sel(*dir, inp, f.pkts, *cmp)),
        PacketTest::FlowBytes { dir, cmp } => {
            flow.is_some_and(|f| dir_sel(*dir, inp, f.bytes, *cmp))
        }
        PacketTest::FlowAge(c) => {
            flow.is_some_and(|f| c.matches(inp.now_us.saturating_sub(f.first_us) / 1_000_000))
        }
        PacketTest::StreamSize { dir, cmp } => flow.is_some_and(|f| {
            let v = [f.streams[0].delivered(), f.streams[1].delivered()];
            dir_sel(*dir, inp, v, *cmp)
        }),
        PacketTest::AppLayerProtocol {
            proto,
            negated,
            name,
        } => {
            let Some(f) = flow else { return false };
            // nothing is known until detection is done (found or failed)
            if f.app_proto.is_none() && !f.app_failed {
                return false;
            }
            let ok = match proto {
                Some(a) => f.app_proto == Some(*a),
                None if name == "failed" => f.app_failed,
                None => f.app_proto.is_none(),
            };
            ok != *negated
        }
        // handled before (needs the event table)
        // an anomaly of the transaction (`app-layer-event:http.request_body_unexpected`)
        PacketTest::Event { kind, name } if tx_event(*kind, name) => {
            tx.is_some_and(|t| t.has_event(name))
        }
        PacketTest::Event { .. } => true,
        PacketTest::AppNum { num, cmp } => tx
            .and_then(|t| t.num(*num))
            .is_some_and(|v| cmp.matches(v.max(0) as u64)),
        // needs digests of the transaction's files, which are not computed yet
        PacketTest::FileHash {
            algo,
            negated,
            list,
        } => {
            // a file of the transaction whose digest is (not) on the rule's list
            let Some(t) = tx else { return false };
            t.file_results.iter().any(|(_, r, _)| {
                let h: Option<&[u8]> = match algo {
                    rules::ast::HashAlgo::Sha256 => Some(&r.sha256[..]),
                    rules::ast::HashAlgo::Sha1 => r.sha1.as_ref().map(|h| &h[..]),
                    rules::ast::HashAlgo::Md5 => r.md5.as_ref().map(|h| &h[..]),
                };
                h.is_some_and(|h| {
                    list.binary_search_by(|e| e.as_slice().cmp(h)).is_ok() != *negated
                })
            })
        }
    }
}
