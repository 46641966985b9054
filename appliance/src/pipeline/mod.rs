//! One inspection worker: the stages of the data path chained for each frame —
//! decode → defrag → flow → TCP reassembly → app detection → detect → verdict → events.
//!
//! Sans-IO: frames and their time in, [`Record`]s out. `replay` feeds it from capture
//! files; the inline bridge will feed it from its ports.

use std::net::IpAddr;
use std::sync::Arc;

use rules::ast::AppProto;
use rules::compile::Ruleset;

use crate::classify::{Lists, TrafficBook};
use crate::decode::{self, Events, IpInfo, L4, Packet, defrag};
use crate::detect::{Detector, Input, Verdict};
use crate::events::meta::EventMeta;
use crate::flow::{Dir, Flow, FlowConfig, FlowTable, tcp};
use crate::reassembly::ReassemblyCounters;

/// Settings of a worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerConfig {
    /// Inline (IPS) mode: drop/reject rules block.
    pub prevent: bool,
    pub tcp: tcp::TcpConfig,
    pub flow: FlowConfig,
    pub defrag: defrag::DefragConfig,
    /// Validate IPv4 header, TCP and UDP checksums: a frame with a bad one is neither
    /// inspected nor (prevent mode) forwarded. The bridge turns it on; capture files
    /// often carry frames whose checksums were left to offload, so replay leaves it off.
    pub checksum_validation: bool,
    /// Default alert budgets against floods (off by default: replay matches Suricata).
    pub alert_limit: crate::detect::AlertLimit,
}

/// What kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Alert,
    /// A packet dropped by a rule (`rule` set) or because its flow was dropped.
    Drop,
    /// A finished application transaction (EVE `http`, `tls`, `dns`).
    Http,
    Tls,
    Dns,
    /// A file seen in a transaction, with its verdict.
    FileInfo,
    /// A traffic-record summary (one internal host, one 10-minute bucket).
    Traffic,
}

/// One output event, with everything EVE needs and nothing borrowed.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: RecordKind,
    pub ts_us: u64,
    pub pcap_cnt: u64,
    pub rule: Option<u32>,
    /// The alert's packet was blocked.
    pub blocked: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub icmp: Option<(u8, u8)>,
    pub flow_id: u64,
    pub dir: Dir,
    pub app_proto: Option<AppProto>,
    pub app_failed: bool,
    pub eth: Option<([u8; 6], [u8; 6])>,
    pub vlan: [u16; 2],
    pub ttl: u8,
    pub ip_len: u16,
    /// Application fields (transaction, category, file, traffic record).
    pub meta: Option<Box<EventMeta>>,
}

/// How the frame just processed was blocked, for the live bridge's actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Block {
    /// Not blocked, or dropped quietly because its flow already was.
    #[default]
    None,
    /// A `drop` rule: the frame is dropped, nothing is sent.
    Drop,
    /// Reset both ends: a `reject` rule, a bad file, a blocked name on TLS or DNS.
    Reset,
    /// A blocked web page (plain HTTP request): the client gets a block page.
    Page { host: String, category: String },
}

/// Packet-level counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerCounters {
    pub packets: u64,
    pub bytes: u64,
    pub non_ip: u64,
    pub alerts: u64,
    pub drops: u64,
    pub flow_dropped_packets: u64,
    pub passed: u64,
    /// Accesses blocked (prevent) or flagged (detect) by the URL-category policy.
    pub category_blocks: u64,
    /// Files with a bad verdict (hash list or signature).
    pub bad_files: u64,
    /// Application layer, summed over ended flows.
    pub http_requests: u64,
    pub http_responses: u64,
    pub http_parse_errors: u64,
    /// HTTP responses read a second way (odd header blocks, see `app::http::evasion`).
    pub http_odd_responses: u64,
    pub tls_handshakes: u64,
    pub tls_parse_errors: u64,
    pub dns_messages: u64,
    pub dns_parse_errors: u64,
    /// Frames with a bad IPv4, TCP or UDP checksum: not inspected, dropped in prevent mode.
    pub bad_checksum: u64,
    /// TCP segments dropped (prevent mode) for overlapping accepted stream data with
    /// different bytes.
    pub overlap_drops: u64,
    /// Alerts held back by the default alert budgets (written as summaries).
    pub alerts_suppressed: u64,
    /// Packets dropped by a rule whose alert was suppressed: no `drop` record either.
    pub drops_unlogged: u64,
}

/// A copy of every byte range detection scans (packet payloads, new stream bytes), for
/// benchmarking the matcher alone on exactly the pipeline's input.
#[derive(Debug, Default)]
pub struct ScanTap {
    pub data: Vec<u8>,
    pub ranges: Vec<(usize, usize)>,
}

impl ScanTap {
    fn add(&mut self, b: &[u8]) {
        if !b.is_empty() {
            let s = self.data.len();
            self.data.extend_from_slice(b);
            self.ranges.push((s, self.data.len()));
        }
    }
}

/// One worker's state. Nothing in it is shared with other workers.
pub struct Worker {
    cfg: WorkerConfig,
    det: Detector,
    flows: FlowTable,
    defrag: defrag::Defrag,
    verdict: Verdict,
    defrag_buf: Vec<u8>,
    ended: Vec<Flow>,
    pub counters: WorkerCounters,
    pub reassembly: ReassemblyCounters,
    /// Benchmarks only: record what detection scans.
    pub tap: Option<ScanTap>,
    /// Some rule inspects an HTTP body: bodies are kept (and decompressed).
    keep_bodies: bool,
    /// URL categories, their policy and the application catalogue.
    lists: Arc<Lists>,
    /// Traffic record being accumulated.
    pub traffic: TrafficBook,
    /// Start of the newest traffic bucket seen (seconds).
    traffic_bucket: u64,
    /// Application fields of the alerts of the packet being handled: (rule, fields).
    tx_meta: Vec<(u32, EventMeta)>,
    /// File verdicts (hash list, signatures) on HTTP bodies; `None`: no file inspection.
    files: Option<crate::file::FileEngine>,
    /// File events of the packet being handled: (bad, fields).
    file_events: Vec<(bool, EventMeta)>,
    /// Why the last frame was blocked (set when `process` returns false).
    pub block: Block,
    /// Time of the newest frame seen (a traffic summary is never dated later).
    newest_us: u64,
    /// Flows blocked by the worker this one replaced (engine swap), until they show up.
    carried_drops: std::collections::HashSet<crate::flow::FlowKey>,
}

impl Worker {
    pub fn new(rs: Arc<Ruleset>, mut cfg: WorkerConfig) -> Result<Worker, String> {
        // rejecting overlapping segments only makes sense where they can be dropped
        cfg.tcp.stream.inline &= cfg.prevent;
        let mut det = Detector::new(Arc::clone(&rs), cfg.prevent)?;
        if cfg.alert_limit.enabled {
            det.set_alert_limit(cfg.alert_limit);
        }
        Ok(Worker {
            det,
            flows: FlowTable::new(cfg.flow),
            defrag: defrag::Defrag::new(cfg.defrag),
            verdict: Verdict::default(),
            defrag_buf: Vec::with_capacity(65_536),
            ended: Vec::new(),
            counters: WorkerCounters::default(),
            reassembly: ReassemblyCounters::default(),
            tap: None,
            keep_bodies: rs.uses(rules::ast::Buffer::FileData)
                || rs.uses(rules::ast::Buffer::HttpRequestBody),
            lists: Arc::new(Lists::default()),
            traffic: TrafficBook::default(),
            traffic_bucket: 0,
            tx_meta: Vec::new(),
            files: None,
            file_events: Vec::new(),
            block: Block::None,
            newest_us: 0,
            carried_drops: std::collections::HashSet::new(),
            cfg,
        })
    }

    /// The flows this worker blocks, to carry over to the worker that replaces it.
    pub fn dropped_flows(&self) -> Vec<crate::flow::FlowKey> {
        self.flows
            .iter()
            .filter(|f| f.dropped)
            .map(|f| f.key)
            .collect()
    }

    /// Flows a previous worker blocked: they stay blocked when their next packet arrives
    /// here (the new worker picks them up mid-stream otherwise).
    pub fn carry_dropped(&mut self, keys: Vec<crate::flow::FlowKey>) {
        self.carried_drops = keys.into_iter().collect();
    }

    /// Use these URL-category lists and application catalogue from now on (reload: the
    /// new set replaces the old one at once; flows keep the labels they have).
    pub fn set_lists(&mut self, lists: Arc<Lists>) {
        self.lists = lists;
    }

    pub fn lists(&self) -> &Arc<Lists> {
        &self.lists
    }

    /// Hash and scan HTTP bodies as files with this engine (new flows use it).
    pub fn set_files(&mut self, files: Option<crate::file::FileEngine>) {
        self.files = files;
    }

    pub fn detector(&self) -> &Detector {
        &self.det
    }
    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }
    pub fn defrag_counters(&self) -> defrag::DefragCounters {
        self.defrag.counters
    }

    /// Process one frame. Records are appended to `out`. Returns whether the frame is
    /// to be forwarded (false: dropped in prevent mode).
    pub fn process(
        &mut self,
        linktype: u32,
        frame: &[u8],
        ts_us: u64,
        pcap_cnt: u64,
        out: &mut Vec<Record>,
    ) -> bool {
        self.process_frame(linktype, frame, ts_us, pcap_cnt, out, false)
    }

    /// [`process`](Self::process) for a frame whose transport checksum the kernel says is
    /// not filled in yet (`csum_partial`: sent with checksum offload by a sender on this
    /// host); such a checksum is not judged.
    pub fn process_frame(
        &mut self,
        linktype: u32,
        frame: &[u8],
        ts_us: u64,
        pcap_cnt: u64,
        out: &mut Vec<Record>,
        csum_partial: bool,
    ) -> bool {
        self.counters.packets += 1;
        self.counters.bytes += frame.len() as u64;
        if self.block != Block::None {
            self.block = Block::None;
        }
        self.newest_us = self.newest_us.max(ts_us);
        let mut p = decode::decode(linktype, frame);
        if self.cfg.checksum_validation
            && decode::checksum::check(&p, csum_partial) != decode::checksum::Check::Ok
        {
            // what the receiver throws away is not inspected as data (TCP insertion)
            self.counters.bad_checksum += 1;
            return !self.cfg.prevent;
        }
        if p.frag.is_none() {
            let forward = self.handle(&p, ts_us, pcap_cnt, out);
            self.suppression_summaries(ts_us, out);
            return forward;
        }
        // a fragment: add it first so its anomalies (overlap, too large) are on the
        // fragment itself; then the fragment and, when complete, the datagram are inspected
        let mut ev = Events::default();
        let mut buf = std::mem::take(&mut self.defrag_buf);
        let complete = self.defrag.add(&p, ts_us, &mut buf, &mut ev);
        for e in ev.iter() {
            p.events.set(e);
        }
        let mut forward = self.handle(&p, ts_us, pcap_cnt, out);
        if complete {
            let mut whole = decode::decode_ip(&buf);
            whole.eth = p.eth;
            whole.vlan = p.vlan;
            if self.cfg.checksum_validation
                && !csum_partial
                && decode::checksum::check_transport(&whole) != decode::checksum::Check::Ok
            {
                // the datagram's transport checksum is bad: its last fragment is dropped
                self.counters.bad_checksum += 1;
                forward &= !self.cfg.prevent;
            } else {
                forward &= self.handle(&whole, ts_us, pcap_cnt, out);
            }
        }
        self.defrag_buf = buf;
        self.suppression_summaries(ts_us, out);
        forward
    }

    /// Summaries of alerts held back by the default budgets whose period ended: one alert
    /// record per (rule, source) with the number suppressed (`alert.suppressed` in EVE).
    fn suppression_summaries(&mut self, ts_us: u64, out: &mut Vec<Record>) {
        let lim = self.det.limiter();
        if !lim.enabled() {
            return;
        }
        lim.sweep(ts_us);
        self.counters.alerts_suppressed = lim.suppressed;
        if lim.summaries().is_empty() {
            return;
        }
        let sums = std::mem::take(lim.summaries());
        for s in &sums {
            let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
            out.push(Record {
                kind: RecordKind::Alert,
                ts_us: s.ts_us.min(ts_us),
                pcap_cnt: 0,
                rule: Some(s.rule),
                blocked: false,
                src: s.src,
                dst: if s.dst.is_ipv4() == s.src.is_ipv4() { s.dst } else { unspecified },
                sport: 0,
                dport: 0,
                proto: s.proto,
                icmp: None,
                flow_id: 0,
                dir: Dir::ToServer,
                app_proto: None,
                app_failed: false,
                eth: None,
                vlan: [0; 2],
                ttl: 0,
                ip_len: 0,
                meta: Some(Box::new(EventMeta {
                    suppressed: Some(s.count),
                    ..EventMeta::default()
                })),
            });
        }
        // the buffer goes back: its capacity is kept, nothing is allocated per packet
        let mut sums = sums;
        sums.clear();
        *self.det.limiter().summaries() = sums;
    }

    fn handle(&mut self, p: &Packet<'_>, ts_us: u64, pcap_cnt: u64, out: &mut Vec<Record>) -> bool {
        if p.ip.is_none() {
            self.counters.non_ip += 1;
            if !p.events.is_empty() {
                let inp = Input {
                    pkt: p,
                    dir: Dir::ToServer,
                    now_us: ts_us,
                    stream: None,
                    tracked: false,
                    app_detected_now: false,
                    first_in_dir: true,
                    app: None,
                };
                let mut v = std::mem::take(&mut self.verdict);
                self.det.inspect(&inp, None, &mut v);
                self.emit(p, &v, None, Dir::ToServer, ts_us, pcap_cnt, out);
                self.verdict = v;
            }
            return true;
        }
        // a new 10-minute bucket: the traffic record of buckets well over is written
        let bucket = ts_us / 1_000_000 / crate::classify::BUCKET_SECS;
        if bucket > self.traffic_bucket {
            if self.traffic_bucket != 0 {
                self.drain_traffic(
                    ts_us.saturating_sub(crate::classify::BUCKET_SECS * 1_000_000),
                    out,
                );
            }
            self.traffic_bucket = bucket;
        }
        // expire idle flows and flows evicted for room: inspect what they still hold
        let ended = &mut self.ended;
        self.flows.expire(ts_us, &mut |f| ended.push(f));
        let fi = self.flows.lookup(p, ts_us, &mut |f| ended.push(f));
        if !self.ended.is_empty() {
            let mut ended = std::mem::take(&mut self.ended);
            for f in ended.drain(..) {
                self.finish_flow(f, out);
            }
            self.ended = ended;
        }
        let Some(fi) = fi else { return true };
        let Some(flow) = self.flows.get_mut(fi) else {
            return true;
        };
        if !self.carried_drops.is_empty() && self.carried_drops.remove(&flow.key) {
            flow.dropped = true;
        }
        let dir = flow.dir_of(p);
        flow.pkts[dir.idx()] += 1;
        flow.bytes[dir.idx()] += p.ip_packet.len() as u64;
        flow.last_us = ts_us;
        flow.last_pcap_cnt = pcap_cnt;
        if flow.dropped && self.cfg.prevent {
            self.counters.flow_dropped_packets += 1;
            let rec = record(
                RecordKind::Drop,
                p,
                flow_ctx(Some(flow)),
                dir,
                ts_us,
                pcap_cnt,
                None,
                true,
            );
            out.push(rec);
            return false;
        }
        if flow.passed {
            self.counters.passed += 1;
            return true;
        }
        // TCP state and reassembly
        let mut events = p.events;
        let mut tracked = false;
        let mut past_depth = 0;
        let mut rejected = false;
        let app_known_before = flow.app_proto.is_some() || flow.app_failed;
        if let L4::Tcp {
            seq,
            ack,
            flags,
            sport,
            dport,
            ..
        } = p.l4
        {
            let u = tcp::update(
                flow,
                dir,
                seq,
                ack,
                flags,
                p.payload,
                &self.cfg.tcp,
                &mut self.reassembly,
                &mut events,
            );
            tracked = u.tracked;
            past_depth = u.past_depth;
            rejected = u.rejected;
            let st = std::mem::take(&mut flow.streams[dir.idx()]);
            if let Some((w, n)) = st.window() {
                if n == 0 && st.window_offset() == 0 {
                    flow.detect_app(dir, w, sport, dport);
                }
            }
            flow.streams[dir.idx()] = st;
            if !tracked && !p.payload.is_empty() {
                flow.detect_app(dir, p.payload, sport, dport);
            }
        } else if let L4::Udp { sport, dport } = p.l4 {
            flow.detect_app(dir, p.payload, sport, dport);
        }
        let pe;
        let pkt: &Packet<'_> = if events != p.events {
            pe = Packet {
                events,
                ..p.clone()
            };
            &pe
        } else {
            p
        };
        // application layer: new in-order bytes of this direction (or the datagram) go
        // to the flow's parser
        app_feed(
            self.keep_bodies,
            self.files.as_ref(),
            flow,
            dir,
            tracked,
            pkt,
        );
        if past_depth > 0 {
            // past the reassembly depth only the application layer follows (files)
            if let Some(app) = flow.app.as_mut() {
                app.feed(
                    dir == Dir::ToServer,
                    &pkt.payload[pkt.payload.len().saturating_sub(past_depth)..],
                );
            }
        }
        // files whose verdict is known: fileinfo; a bad one alerts and, in prevent mode,
        // the packet that would complete it is dropped — the file never arrives whole
        if flow.app.is_some()
            && file_verdicts(
                flow,
                self.cfg.prevent,
                early_file_verdicts(self.cfg.prevent, self.files.as_ref()),
                &mut self.file_events,
            )
        {
            let fc = flow_ctx(Some(flow));
            let blocked = self.cfg.prevent;
            for (bad, meta) in self.file_events.drain(..) {
                if bad {
                    let mut rec = record(
                        RecordKind::Alert,
                        pkt,
                        fc,
                        dir,
                        ts_us,
                        pcap_cnt,
                        None,
                        blocked,
                    );
                    rec.meta = Some(Box::new(meta.clone()));
                    self.counters.alerts += 1;
                    self.counters.bad_files += 1;
                    out.push(rec);
                }
                out.push(flow_record(
                    RecordKind::FileInfo,
                    flow,
                    ts_us,
                    pcap_cnt,
                    meta,
                ));
            }
            if blocked {
                flow.dropped = true;
                self.counters.drops += 1;
                self.block = Block::Reset;
                out.push(record(
                    RecordKind::Drop,
                    pkt,
                    fc,
                    dir,
                    ts_us,
                    pcap_cnt,
                    None,
                    true,
                ));
                return false;
            }
        }
        for (_, meta) in self.file_events.drain(..) {
            out.push(flow_record(
                RecordKind::FileInfo,
                flow,
                ts_us,
                pcap_cnt,
                meta,
            ));
        }
        // names of new transactions: URL category and application; the policy may block
        if flow.app.is_some() && classify_names(&self.lists, flow) {
            let fc = flow_ctx(Some(flow));
            let blocked = self.cfg.prevent;
            let meta = category_alert_meta(flow);
            let mut rec = record(
                RecordKind::Alert,
                pkt,
                fc,
                dir,
                ts_us,
                pcap_cnt,
                None,
                blocked,
            );
            if blocked {
                // a plain-HTTP request gets a block page; anything else a reset
                let utm = meta.as_ref().and_then(|m| m.utm.as_ref());
                let http = matches!(flow.app.as_deref(), Some(crate::app::AppState::Http(_)));
                self.block = match utm {
                    Some(u) if http && dir == Dir::ToServer => Block::Page {
                        host: u.host.clone().unwrap_or_default(),
                        category: u.categories.first().cloned().unwrap_or_default(),
                    },
                    _ => Block::Reset,
                };
            }
            rec.meta = meta.map(Box::new);
            self.counters.alerts += 1;
            self.counters.category_blocks += 1;
            out.push(rec);
            if blocked {
                flow.dropped = true;
                self.counters.drops += 1;
                out.push(record(
                    RecordKind::Drop,
                    pkt,
                    fc,
                    dir,
                    ts_us,
                    pcap_cnt,
                    None,
                    true,
                ));
                return false;
            }
        }
        let mut v = std::mem::take(&mut self.verdict);
        {
            // the stream is moved out while detection borrows the flow mutably
            let mut st = std::mem::take(&mut flow.streams[dir.idx()]);
            let stream = if tracked { st.window() } else { None };
            let app_detected_now =
                !app_known_before && (flow.app_proto.is_some() || flow.app_failed);
            if let Some(tap) = self.tap.as_mut() {
                match stream {
                    Some((w, n)) => tap.add(&w[n..]),
                    None => tap.add(pkt.payload),
                }
            }
            let first_in_dir = flow.pkts[dir.idx()] == 1;
            let app = flow.app.take();
            let inp = Input {
                pkt,
                dir,
                now_us: ts_us,
                stream,
                tracked,
                app_detected_now,
                first_in_dir,
                app: app.as_deref(),
            };
            self.det.inspect(&inp, Some(flow), &mut v);
            flow.app = app;
            tx_metas(flow, &v, &mut self.tx_meta);
            after_app_inspect(flow, &mut v, ts_us, pcap_cnt, out);
            if tracked {
                st.consume();
            }
            flow.streams[dir.idx()] = st;
        }
        if v.pass_flow {
            flow.passed = true;
        }
        let fc = flow_ctx(Some(flow));
        if v.drop {
            flow.dropped = true;
            let rs = self.det.ruleset();
            let reject = v
                .hits
                .iter()
                .any(|h| rs.rules[h.rule as usize].rule.action == rules::ast::Action::Reject);
            self.block = if reject { Block::Reset } else { Block::Drop };
        }
        let forward = !v.drop;
        self.emit(pkt, &v, Some(fc), dir, ts_us, pcap_cnt, out);
        self.verdict = v;
        if rejected && forward {
            // inline: different bytes over accepted stream data are not passed on, so the
            // receiver only ever gets what was inspected
            self.counters.overlap_drops += 1;
            out.push(record(
                RecordKind::Drop,
                pkt,
                fc,
                dir,
                ts_us,
                pcap_cnt,
                None,
                true,
            ));
            return false;
        }
        forward
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        p: &Packet<'_>,
        v: &Verdict,
        fc: Option<FlowCtx>,
        dir: Dir,
        ts_us: u64,
        pcap_cnt: u64,
        out: &mut Vec<Record>,
    ) {
        let fc = fc.unwrap_or_default();
        let blocked = v.drop;
        let mut drop_rule = None;
        // a drop whose every blocking alert was held back by the alert budget is not
        // logged either (the packet is still dropped, and counted)
        let mut drop_logged = false;
        for h in &v.hits {
            let r = &self.det.ruleset().rules[h.rule as usize].rule;
            let is_block = blocked && r.action.blocks();
            if is_block && drop_rule.is_none() {
                drop_rule = Some(h.rule);
            }
            drop_logged |= is_block && !h.suppressed;
            if h.alert {
                self.counters.alerts += 1;
                let mut rec = record(
                    RecordKind::Alert,
                    p,
                    fc,
                    dir,
                    ts_us,
                    pcap_cnt,
                    Some(h.rule),
                    is_block,
                );
                // an alert on a transaction carries its application fields
                if let Some(i) = self.tx_meta.iter().position(|(r, _)| *r == h.rule) {
                    rec.meta = Some(Box::new(self.tx_meta.swap_remove(i).1));
                }
                out.push(rec);
            }
        }
        if blocked && drop_rule.is_some() && !drop_logged {
            self.counters.drops += 1;
            self.counters.drops_unlogged += 1;
        } else if blocked {
            self.counters.drops += 1;
            out.push(record(
                RecordKind::Drop,
                p,
                fc,
                dir,
                ts_us,
                pcap_cnt,
                drop_rule,
                true,
            ));
        }
    }

    /// A flow ended (timeout, eviction, end of input): inspect the stream bytes it still
    /// holds (data released by skipping holes, never acknowledged data).
    fn finish_flow(&mut self, mut f: Flow, out: &mut Vec<Record>) {
        let (ts, cnt) = (f.last_us, f.last_pcap_cnt);
        self.finish_flow_stream(&mut f, out);
        // the transactions still open are logged as they are; the flow joins the record
        if let Some(app) = f.app.as_mut() {
            app.closing(true);
            app.closing(false);
        }
        if f.app.is_some() && !f.dropped {
            file_verdicts(
                &mut f,
                self.cfg.prevent,
                early_file_verdicts(self.cfg.prevent, self.files.as_ref()),
                &mut self.file_events,
            );
            for (bad, meta) in self.file_events.drain(..) {
                if bad {
                    // the flow is over: nothing left to hold back, the alert remains
                    let mut rec = flow_record(RecordKind::Alert, &f, ts, cnt, meta.clone());
                    rec.dir = Dir::ToClient;
                    self.counters.alerts += 1;
                    self.counters.bad_files += 1;
                    out.push(rec);
                }
                out.push(flow_record(RecordKind::FileInfo, &f, ts, cnt, meta));
            }
        }
        log_txs(&mut f, true, ts, cnt, out);
        self.traffic.add_flow(&f, &self.lists);
        let c = &mut self.counters;
        match f.app.as_deref() {
            Some(crate::app::AppState::Http(h)) => {
                c.http_requests += h.counters.requests;
                c.http_responses += h.counters.responses;
                c.http_parse_errors += h.counters.parse_errors;
                c.http_odd_responses += h.counters.odd_responses;
            }
            Some(crate::app::AppState::Tls(t)) => {
                c.tls_handshakes += u64::from(t.state.info.client_random.is_some());
                c.tls_parse_errors += t.state.counters.parse_errors;
            }
            Some(crate::app::AppState::Dns(d)) => {
                c.dns_messages += d.counters.messages;
                c.dns_parse_errors += d.counters.parse_errors;
            }
            None => {}
        }
    }

    fn finish_flow_stream(&mut self, f: &mut Flow, out: &mut Vec<Record>) {
        if f.proto != decode::IPPROTO_TCP || f.dropped || f.passed {
            return;
        }
        for dir in [Dir::ToServer, Dir::ToClient] {
            // holes are skipped silently here: Suricata raises no gap event at flow end
            let _ = f.streams[dir.idx()].flush(&self.cfg.tcp.stream, &mut self.reassembly);
            // the application parser gets the last bytes and the end of the direction
            if let Some(proto) = f.app_proto {
                let st = &f.streams[dir.idx()];
                let data = st.window().map_or(&[][..], |(w, n)| &w[n..]);
                if f.app.is_none() && !data.is_empty() {
                    f.app = crate::app::AppState::for_proto(
                        proto,
                        self.keep_bodies,
                        true,
                        self.files.as_ref(),
                    )
                    .map(Box::new);
                }
                if let Some(app) = f.app.as_mut() {
                    if !data.is_empty() {
                        app.feed(dir == Dir::ToServer, data);
                    }
                    app.closing(dir == Dir::ToServer);
                }
            }
            let app_dirty = f.app.as_ref().is_some_and(|a| a.dirty().next().is_some());
            if f.streams[dir.idx()].window().is_none() && !app_dirty {
                continue;
            }
            let (cli, srv) = (f.client, other_end(f));
            let (src, dst) = if dir == Dir::ToServer {
                (cli, srv)
            } else {
                (srv, cli)
            };
            let p = Packet {
                ip: Some(IpInfo {
                    src: src.0,
                    dst: dst.0,
                    proto: decode::IPPROTO_TCP,
                    ttl: 0,
                    id: 0,
                    frag_bits: 0,
                    v6: src.0.is_ipv6(),
                }),
                l4: L4::Tcp {
                    sport: src.1,
                    dport: dst.1,
                    seq: 0,
                    ack: 0,
                    flags: decode::tcp_flags::ACK,
                    window: 0,
                },
                ..Packet::default()
            };
            let (ts, cnt) = (f.last_us, f.last_pcap_cnt);
            let mut v = std::mem::take(&mut self.verdict);
            {
                let mut st = std::mem::take(&mut f.streams[dir.idx()]);
                let app = f.app.take();
                let inp = Input {
                    pkt: &p,
                    dir,
                    now_us: ts,
                    stream: st.window(),
                    tracked: true,
                    app_detected_now: false,
                    first_in_dir: false,
                    app: app.as_deref(),
                };
                self.det.inspect(&inp, Some(&mut *f), &mut v);
                f.app = app;
                tx_metas(f, &v, &mut self.tx_meta);
                after_app_inspect(f, &mut v, ts, cnt, out);
                st.consume();
                f.streams[dir.idx()] = st;
            }
            let fc = flow_ctx(Some(f));
            self.emit(&p, &v, Some(fc), dir, ts, cnt, out);
            self.verdict = v;
        }
    }

    /// End of input: finish every flow; the traffic record is written out whole.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        let mut all = Vec::new();
        self.flows.drain(&mut |f| all.push(f));
        for f in all {
            self.finish_flow(f, out);
        }
        self.drain_traffic(u64::MAX, out);
    }

    /// Write the traffic summaries of buckets that ended before `before_us`.
    fn drain_traffic(&mut self, before_us: u64, out: &mut Vec<Record>) {
        let mut sums = Vec::new();
        self.traffic.drain(before_us, &mut sums);
        for (host, bucket, meta) in sums {
            // the bucket's end, or the newest frame when the bucket is cut short (end of
            // input): a summary is never dated in the future
            let start = bucket * 1_000_000;
            let ts = ((bucket + crate::classify::BUCKET_SECS) * 1_000_000)
                .min(self.newest_us.max(start));
            out.push(Record {
                kind: RecordKind::Traffic,
                ts_us: ts,
                pcap_cnt: 0,
                rule: None,
                blocked: false,
                src: host,
                dst: host,
                sport: 0,
                dport: 0,
                proto: 0,
                icmp: None,
                flow_id: 0,
                dir: Dir::ToServer,
                app_proto: None,
                app_failed: false,
                eth: None,
                vlan: [0; 2],
                ttl: 0,
                ip_len: 0,
                meta: Some(Box::new(meta)),
            });
        }
    }
}

/// Hand new application bytes of this packet to the flow's parser (created once the
/// protocol is known); a FIN or RST closes the direction for it.
fn app_feed(
    keep_bodies: bool,
    files: Option<&crate::file::FileEngine>,
    flow: &mut Flow,
    dir: Dir,
    tracked: bool,
    p: &Packet<'_>,
) {
    let Some(proto) = flow.app_proto else { return };
    let to_server = dir == Dir::ToServer;
    let data: &[u8] = match p.l4 {
        L4::Tcp { .. } if tracked => match flow.streams[dir.idx()].window() {
            Some((w, n)) => &w[n..],
            None => &[],
        },
        L4::Udp { .. } => p.payload,
        _ => return,
    };
    if flow.app.is_none() && !data.is_empty() {
        flow.app = crate::app::AppState::for_proto(
            proto,
            keep_bodies,
            flow.proto == decode::IPPROTO_TCP,
            files,
        )
        .map(Box::new);
    }
    let Some(app) = flow.app.as_mut() else { return };
    if !data.is_empty() {
        app.feed(to_server, data);
    }
    if let L4::Tcp { flags, .. } = p.l4 {
        if flags & (decode::tcp_flags::FIN | decode::tcp_flags::RST) != 0 {
            app.closing(to_server);
        }
    }
}

/// Classify the names of the flow's new transactions (URL category, application). The
/// first name labels the flow. True when the policy blocks one of them.
fn classify_names(lists: &Lists, flow: &mut Flow) -> bool {
    let Some(app) = flow.app.as_mut() else {
        return false;
    };
    // a DNS lookup of a blocked name is recorded with its category, not blocked: the
    // connection that follows is (block page over HTTP, reset over TLS)
    let dns = matches!(**app, crate::app::AppState::Dns(_));
    let mut block = false;
    for i in 0..app.txs().len() {
        let tx = &app.txs()[i];
        if tx.classified {
            continue;
        }
        let (names, path) = app.names(tx);
        let Some(host) = names.first() else { continue };
        let mut label = lists.classify(host, path);
        // more names (DNS questions): any listed one counts
        for n in names.iter().skip(1) {
            let l = lists.classify(n, None);
            label.cats |= l.cats;
            label.block = label.block.or(l.block);
        }
        // the event fields are built only for a name that is listed or a known app
        let utm = (!label.cats.is_empty() || label.app.is_some())
            .then(|| Box::new(lists.utm(host, &label)));
        block |= label.block.is_some() && !dns;
        if flow.label.is_none() || label.block.is_some() {
            flow.label = Some(Box::new(label));
        }
        let t = &mut app.txs_mut()[i];
        t.classified = true;
        t.utm = utm;
    }
    block
}

/// Collect the file verdicts that became known on the flow's transactions as events
/// (bad?, fields); true when one of them is bad.
/// Whether a signature hit ends a file at once (prevent mode without hash exceptions).
fn early_file_verdicts(prevent: bool, files: Option<&crate::file::FileEngine>) -> bool {
    prevent && files.is_none_or(|f| !f.has_exceptions())
}

fn file_verdicts(
    flow: &mut Flow,
    prevent: bool,
    early: bool,
    events: &mut Vec<(bool, EventMeta)>,
) -> bool {
    let Some(mut app) = flow.app.take() else {
        return false;
    };
    let mut any_bad = false;
    for i in 0..app.txs().len() {
        // prevent mode acts on a signature at once (the rest is never delivered); detect
        // mode — and prevent mode with hash exceptions, which need the whole file's hash —
        // waits for the end of the file (whose last segment is then held back)
        if early {
            app.txs_mut()[i].end_files_with_hits();
        }
        let tx = &app.txs()[i];
        if tx.files_reported >= tx.file_results.len() {
            continue;
        }
        let (_, base) = app.event(tx);
        for (download, r, complete) in &tx.file_results[tx.files_reported..] {
            let bad = !r.verdict.is_clean();
            if !bad && !r.hashed {
                // a page resource that is no file: nothing to report
                continue;
            }
            any_bad |= bad;
            let filename = tx.get(rules::ast::Buffer::FileName).or_else(|| {
                tx.get(rules::ast::Buffer::HttpUriRaw).map(|u| {
                    let path = u.split(|c| *c == b'?').next().unwrap_or(u);
                    path.rsplit(|c| *c == b'/').next().unwrap_or(path)
                })
            });
            let fileinfo = crate::events::meta::FileMeta {
                filename: filename
                    .filter(|f| !f.is_empty())
                    .map(crate::events::meta::text),
                magic: Some(r.mime()),
                size: r.size,
                sha256: r.sha256_hex(),
                state: if *complete { "CLOSED" } else { "TRUNCATED" },
                stored: false,
                tx_id: tx.id,
                verdict: match r.verdict {
                    crate::file::Verdict::Clean => "clean",
                    crate::file::Verdict::BadHash { .. } => "bad-hash",
                    crate::file::Verdict::Signature { .. } => "signature",
                },
                threat: r.verdict.name().map(String::from),
                disarmed: bad && prevent,
            };
            let _ = download;
            let mut m = base.clone();
            m.fileinfo = Some(fileinfo);
            m.utm = tx.utm.as_deref().cloned();
            events.push((bad, m));
        }
        let n = tx.file_results.len();
        app.txs_mut()[i].files_reported = n;
    }
    flow.app = Some(app);
    any_bad
}

/// The fields of a category alert: the blocking transaction's name and category.
fn category_alert_meta(flow: &Flow) -> Option<EventMeta> {
    let app = flow.app.as_deref()?;
    let tx = app
        .txs()
        .iter()
        .rev()
        .find(|t| t.utm.as_ref().is_some_and(|u| u.policy == Some("block")))?;
    let (_, mut m) = app.event(tx);
    m.utm = tx.utm.as_deref().cloned();
    Some(m)
}

/// Application fields for the alerts detection raised on transactions.
fn tx_metas(flow: &Flow, v: &Verdict, out: &mut Vec<(u32, EventMeta)>) {
    out.clear();
    let Some(app) = flow.app.as_deref() else {
        return;
    };
    for (txid, rule) in &v.tx_hits {
        if let Some(tx) = app.txs().iter().find(|t| t.id == *txid) {
            let (_, mut m) = app.event(tx);
            m.utm = tx.utm.as_deref().cloned();
            out.push((*rule, m));
        }
    }
}

/// Write the event of each finished transaction once (`all`: every one, the flow ends).
fn log_txs(flow: &mut Flow, all: bool, ts_us: u64, pcap_cnt: u64, out: &mut Vec<Record>) {
    let Some(mut app) = flow.app.take() else {
        return;
    };
    for i in 0..app.txs().len() {
        let tx = &app.txs()[i];
        if tx.logged || !(all || (tx.response_done && !tx.pending_alt)) {
            continue;
        }
        let (kind, mut m) = app.event(tx);
        m.utm = tx.utm.as_deref().cloned();
        out.push(flow_record(kind, flow, ts_us, pcap_cnt, m));
        app.txs_mut()[i].logged = true;
    }
    flow.app = Some(app);
}

/// Remember what detection did with the flow's transactions; retire finished ones.
fn after_app_inspect(
    flow: &mut Flow,
    v: &mut Verdict,
    ts_us: u64,
    pcap_cnt: u64,
    out: &mut Vec<Record>,
) {
    log_txs(flow, false, ts_us, pcap_cnt, out);
    let Some(app) = flow.app.as_mut() else { return };
    let txs = app.txs_mut();
    for (txid, rule) in &v.tx_hits {
        if let Some(t) = txs.iter_mut().find(|t| t.id == *txid) {
            t.alerted.push(*rule);
        }
    }
    for (txid, b, dir, len, cands) in v.tx_cache.drain(..) {
        if let Some(t) = txs.iter_mut().find(|t| t.id == txid) {
            t.remember(b, dir, len, cands);
        }
    }
    for t in txs.iter_mut() {
        t.dirty = false;
    }
    // a transaction that is complete and inspected is finished
    app.retire_done();
}

fn other_end(f: &Flow) -> (IpAddr, u16) {
    let k = f.key_endpoints();
    if k.0 == f.client { k.1 } else { k.0 }
}

/// Flow facts copied into records.
#[derive(Debug, Default, Clone, Copy)]
struct FlowCtx {
    id: u64,
    app: Option<AppProto>,
    failed: bool,
}

fn flow_ctx(f: Option<&Flow>) -> FlowCtx {
    f.map_or_else(FlowCtx::default, |f| FlowCtx {
        id: f.id,
        app: f.app_proto,
        failed: f.app_failed,
    })
}

#[allow(clippy::too_many_arguments)]
fn record(
    kind: RecordKind,
    p: &Packet<'_>,
    fc: FlowCtx,
    dir: Dir,
    ts_us: u64,
    pcap_cnt: u64,
    rule: Option<u32>,
    blocked: bool,
) -> Record {
    let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    let ip = p.ip;
    Record {
        kind,
        ts_us,
        pcap_cnt,
        rule,
        blocked,
        src: ip.map_or(unspecified, |i| i.src),
        dst: ip.map_or(unspecified, |i| i.dst),
        sport: p.src_port(),
        dport: p.dst_port(),
        proto: ip.map_or(0, |i| i.proto),
        icmp: match p.l4 {
            L4::Icmp { itype, icode, .. } => Some((itype, icode)),
            _ => None,
        },
        flow_id: fc.id,
        dir,
        app_proto: fc.app,
        app_failed: fc.failed,
        eth: p.eth,
        vlan: p.vlan,
        ttl: ip.map_or(0, |i| i.ttl),
        ip_len: p.ip_packet.len() as u16,
        meta: None,
    }
}

/// A record about a flow rather than a packet: client → server, at the flow's last packet.
fn flow_record(kind: RecordKind, f: &Flow, ts_us: u64, pcap_cnt: u64, meta: EventMeta) -> Record {
    let server = other_end(f);
    Record {
        kind,
        ts_us,
        pcap_cnt,
        rule: None,
        blocked: false,
        src: f.client.0,
        dst: server.0,
        sport: f.client.1,
        dport: server.1,
        proto: f.proto,
        icmp: None,
        flow_id: f.id,
        dir: Dir::ToServer,
        app_proto: f.app_proto,
        app_failed: f.app_failed,
        eth: None,
        vlan: [0; 2],
        ttl: 0,
        ip_len: 0,
        meta: Some(Box::new(meta)),
    }
}

#[cfg(test)]
mod swap_test {
    use super::*;

    fn frame(payload: &[u8], seq: u32) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, 10], [198, 18, 1, 82], 64)
            .tcp(40_000, 80, seq, 64_000)
            .ack(1)
            .psh();
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("frame");
        v
    }

    #[test]
    fn a_blocked_flow_stays_blocked_in_the_worker_that_replaces_its_worker() {
        let dir = std::env::temp_dir().join(format!("mimamori-swap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = dir.join("t.rules");
        std::fs::write(
            &rules,
            "drop tcp any any -> any 80 (msg:\"beacon\"; content:\"beacon\"; sid:1; rev:1;)\n",
        )
        .unwrap();
        let settings = crate::replay::Settings::new(true);
        let mut cfg = settings.worker;
        cfg.tcp.midstream = true;
        let loaded = crate::replay::load_rules(&[rules], settings.vars.clone()).unwrap();
        let mut out = Vec::new();
        let mut old = Worker::new(Arc::clone(&loaded.ruleset), cfg).unwrap();
        let t = 1_700_000_000_000_000;
        assert!(
            !old.process(1, &frame(b"GET /beacon", 1), t, 1, &mut out),
            "dropped"
        );
        assert!(
            !old.process(1, &frame(b"more", 12), t + 10, 2, &mut out),
            "flow dropped"
        );
        let carried = old.dropped_flows();
        assert_eq!(carried.len(), 1);
        // without the carried state a new worker would let the flow's next bytes through
        let mut fresh = Worker::new(Arc::clone(&loaded.ruleset), cfg).unwrap();
        assert!(fresh.process(1, &frame(b"more", 16), t + 20, 3, &mut out));
        let mut new = Worker::new(Arc::clone(&loaded.ruleset), cfg).unwrap();
        new.carry_dropped(carried);
        assert!(!new.process(1, &frame(b"more", 16), t + 20, 3, &mut out));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod insertion_test {
    use super::*;

    const C2: &str = "drop http any any -> any any (msg:\"beacon\"; flow:to_server,established; http.uri; content:\"/c2/beacon\"; sid:1; rev:1;)\nalert tcp any any -> any any (msg:\"overlap\"; stream-event:reassembly_overlap_different_data; sid:2; rev:1;)\n";

    fn worker(prevent: bool) -> Worker {
        let dir = std::env::temp_dir().join(format!(
            "mimamori-ins-{}-{prevent}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = dir.join("t.rules");
        std::fs::write(&rules, C2).unwrap();
        let mut settings = crate::replay::Settings::new(prevent);
        settings.worker.checksum_validation = true;
        let loaded = crate::replay::load_rules(&[rules], settings.vars.clone()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        Worker::new(Arc::clone(&loaded.ruleset), settings.worker).unwrap()
    }

    fn seg(payload: &[u8], seq: u32, flags: u8, to_server: bool) -> Vec<u8> {
        let (a, b) = ([198, 18, 0, 10], [198, 18, 0, 82]);
        let (src, dst, sp, dp) = if to_server {
            (a, b, 40_000, 80)
        } else {
            (b, a, 80, 40_000)
        };
        let mut t = etherparse::TcpHeader::new(sp, dp, seq, 64_000);
        t.syn = flags & decode::tcp_flags::SYN != 0;
        t.ack = flags & decode::tcp_flags::ACK != 0;
        t.psh = !payload.is_empty();
        t.acknowledgment_number = if t.ack { if to_server { 5001 } else { 1001 } } else { 0 };
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .tcp_header(t);
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("frame");
        v
    }

    /// A worker with a handshake done (client ISN 1000, server ISN 5000).
    fn connected(w: &mut Worker, out: &mut Vec<Record>) {
        use decode::tcp_flags::{ACK, SYN};
        let t = 1_700_000_000_000_000;
        assert!(w.process(1, &seg(b"", 1000, SYN, true), t, 1, out));
        assert!(w.process(1, &seg(b"", 5000, SYN | ACK, false), t + 1, 2, out));
        assert!(w.process(1, &seg(b"", 1001, ACK, true), t + 2, 3, out));
    }

    const REAL: &[u8] = b"GET /c2/beacon HTTP/1.1\r\nHost: c2.lab.test\r\n\r\n";
    const DECOY: &[u8] = b"GET /c2/images HTTP/1.1\r\nHost: c2.lab.test\r\n\r\n";

    #[test]
    fn a_bad_checksum_decoy_is_not_inspected_nor_forwarded_and_the_real_bytes_are() {
        let mut w = worker(true);
        let mut out = Vec::new();
        connected(&mut w, &mut out);
        let mut decoy = seg(DECOY, 1001, decode::tcp_flags::ACK, true);
        let n = decoy.len();
        decoy[n - 30] ^= 0x01; // payload changed, checksum not fixed
        assert!(!w.process(1, &decoy, 1_700_000_000_100_000, 4, &mut out));
        assert_eq!(w.counters.bad_checksum, 1);
        let real = seg(REAL, 1001, decode::tcp_flags::ACK, true);
        assert!(!w.process(1, &real, 1_700_000_000_200_000, 5, &mut out), "beacon dropped");
        assert!(out.iter().any(|r| r.kind == RecordKind::Alert && r.rule.is_some()));
        // detect mode: forwarded, still not inspected
        let mut w = worker(false);
        connected(&mut w, &mut out);
        assert!(w.process(1, &decoy, 1_700_000_000_100_000, 4, &mut out));
        assert_eq!(w.counters.bad_checksum, 1);
        assert_eq!(w.flows().iter().next().map(|f| f.streams[0].delivered()), Some(0));
    }

    #[test]
    fn different_bytes_over_inspected_data_are_dropped_in_prevent_mode_both_ways() {
        use decode::tcp_flags::ACK;
        let mut w = worker(true);
        let mut out = Vec::new();
        connected(&mut w, &mut out);
        let t = 1_700_000_000_100_000;
        assert!(w.process(1, &seg(DECOY, 1001, ACK, true), t, 4, &mut out));
        // the same bytes again: an ordinary retransmission passes
        assert!(w.process(1, &seg(DECOY, 1001, ACK, true), t + 1, 5, &mut out));
        out.clear();
        assert!(!w.process(1, &seg(REAL, 1001, ACK, true), t + 2, 6, &mut out));
        assert_eq!(w.counters.overlap_drops, 1);
        assert!(out.iter().any(|r| r.kind == RecordKind::Drop));
        assert!(out.iter().any(|r| r.kind == RecordKind::Alert && r.rule.is_some()));
        // server to client: a queued segment, then other bytes at the same place
        let body = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nokok";
        let mut evil = body.to_vec();
        evil[9..12].copy_from_slice(b"666");
        assert!(w.process(1, &seg(&body[1..20], 5002, ACK, false), t + 3, 7, &mut out));
        assert!(!w.process(1, &seg(&evil[1..], 5002, ACK, false), t + 4, 8, &mut out));
        // part of the queued bytes again, unchanged: passes
        assert!(w.process(1, &seg(&body[1..15], 5002, ACK, false), t + 5, 9, &mut out));
        assert_eq!(w.counters.overlap_drops, 2);
        // detect mode keeps the first copy and forwards
        let mut w = worker(false);
        connected(&mut w, &mut out);
        assert!(w.process(1, &seg(DECOY, 1001, ACK, true), t, 4, &mut out));
        assert!(w.process(1, &seg(REAL, 1001, ACK, true), t + 2, 6, &mut out));
        assert_eq!(w.counters.overlap_drops, 0);
    }

    #[test]
    fn fragmented_datagrams_with_good_checksums_pass() {
        let payload: Vec<u8> = (0..64u8).collect();
        let ip = etherparse::Ipv4Header::new(
            8 + payload.len() as u16,
            64,
            etherparse::IpNumber::UDP,
            [198, 18, 0, 10],
            [198, 18, 0, 1],
        )
        .unwrap();
        let udp = etherparse::UdpHeader::with_ipv4_checksum(1000, 2000, &ip, &payload).unwrap();
        let mut l4 = Vec::new();
        udp.write(&mut l4).unwrap();
        l4.extend_from_slice(&payload);
        let frag = |off: usize, data: &[u8], more: bool| {
            let mut h = etherparse::Ipv4Header::new(
                data.len() as u16,
                64,
                etherparse::IpNumber::UDP,
                [198, 18, 0, 10],
                [198, 18, 0, 1],
            )
            .unwrap();
            h.identification = 77;
            h.more_fragments = more;
            h.fragment_offset = etherparse::IpFragOffset::try_new((off / 8) as u16).unwrap();
            let mut v = Vec::new();
            h.write(&mut v).unwrap();
            v.extend_from_slice(data);
            v
        };
        let mut w = worker(true);
        let mut out = Vec::new();
        let t = 1_700_000_000_000_000;
        assert!(w.process(decode::linktype::RAW, &frag(0, &l4[..40], true), t, 1, &mut out));
        assert!(w.process(decode::linktype::RAW, &frag(40, &l4[40..], false), t, 2, &mut out));
        assert_eq!(w.counters.bad_checksum, 0);
        // the same datagram with a wrong UDP checksum: its last fragment is dropped
        let mut bad = l4.clone();
        bad[8] ^= 0xff;
        let mut w = worker(true);
        assert!(w.process(decode::linktype::RAW, &frag(0, &bad[..40], true), t, 1, &mut out));
        assert!(!w.process(decode::linktype::RAW, &frag(40, &bad[40..], false), t, 2, &mut out));
        assert_eq!(w.counters.bad_checksum, 1);
    }
}
