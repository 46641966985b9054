//! Fuzz the appliance's whole per-frame pipeline: decode → defrag → flow → TCP reassembly →
//! app detection → detect → verdict, over a short capture of untrusted frames.
//!
//! Input layout:
//! * byte 0: link type — 1 (Ethernet), 101 (raw IP), 113 (Linux SLL), 0 (NULL), 9 (PPP);
//!   any other value picks one of these by `byte % 5`;
//! * byte 1: options — bit 0 midstream pick-up, bit 1 small tables (few flows, few defrag
//!   trackers, short stream depth and out-of-order queue) so eviction paths are reached;
//! * then frames, each `[len: u16 LE][dt: u8][len bytes]` (the last one may be short).
//!   `dt` advances the clock: below 128 by `dt` ms, else by `dt - 128` × 10 s, so flow and
//!   fragment timeouts fire.
//!
//! All frames go through one fresh `Worker`, so flows, reassembly and defragmentation state
//! build up across frames; `finish` then flushes every flow. The rule set is compiled once.
//!
//! Ethernet frames also take the live bridge's path around the pipeline: the switch's
//! decision (MAC learning, flooding, isolation, exceptions, worker choice) before, and the
//! frames a block injects (resets, block page) after.
//!
//! Checks: no panic; a frame that is not forwarded produced a drop record; records never
//! come from the future and name a rule of the set; the switch sends nothing back to the
//! port a frame came from and picks an existing worker.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mimamori_appliance::bridge::isolate::{AllowEntry, HostId, IsolationSet};
use mimamori_appliance::bridge::run::block_frames;
use mimamori_appliance::bridge::switch::{Decision, Switch};
use mimamori_appliance::decode::linktype;
use mimamori_appliance::pipeline::{Record, RecordKind, Worker, WorkerConfig};
use mimamori_appliance::reassembly::StreamConfig;
use mimamori_rules as rules;
use rules::compile::Ruleset;

/// Rules that reach every detection path a frame can take.
const RULES: &str = r#"
alert tcp any any -> any any (msg:"GET"; flow:to_server,established; content:"GET"; sid:1;)
drop ip any any -> any any (msg:"v6 frag overlap"; decode-event:ipv6.frag_overlap; sid:2;)
alert ip any any -> any any (msg:"v4 frag overlap"; decode-event:ipv4.frag_overlap; sid:3;)
alert tcp any any -> any any (msg:"overlap"; stream-event:reassembly_overlap_different_data; sid:4;)
alert http any any -> any any (msg:"uri"; http.uri; content:"/admin"; nocase; sid:5;)
alert tcp any any -> any any (msg:"pcre"; content:"POST"; depth:4; pcre:"/^POST\s+\/[a-z]+\.php/i"; sid:6;)
alert tcp any any -> any any (msg:"byte_test"; content:"|00 01|"; byte_test:2,>,1000,0,relative; sid:7;)
alert tcp any any -> any any (msg:"login"; content:"login"; flowbits:set,login; flowbits:noalert; sid:8;)
drop tcp any any -> any any (msg:"passwd"; flowbits:isset,login; content:"passwd"; sid:9;)
alert udp any any -> any 53 (msg:"dns"; content:"|01 00 00 01|"; offset:2; depth:4; byte_jump:1,12; sid:10;)
alert dns any any -> any any (msg:"dns query"; dns.query; content:"evil"; sid:11;)
alert icmp any any -> any any (msg:"ping"; itype:8; icode:0; dsize:>32; sid:12;)
alert ip any any -> any any (msg:"ttl"; ttl:<2; sid:13;)
alert tls any any -> any any (msg:"sni"; tls.sni; content:"evil"; sid:14;)
reject tcp any any -> any 23 (msg:"telnet"; flags:S; sid:15;)
pass tcp any any -> any 443 (msg:"pass"; content:"|16 03|"; depth:2; sid:16;)
alert tcp any any -> any any (msg:"failed"; app-layer-protocol:failed; sid:17;)
alert tcp any any <> any any (msg:"extract"; content:"LEN"; byte_extract:1,0,n,relative; isdataat:n,relative; sid:18;)
alert ip any any -> any any (msg:"gap"; stream-event:reassembly_seq_gap; sid:19;)
alert ip any any -> any any (msg:"tcp too small"; decode-event:tcp.pkt_too_small; sid:20;)
"#;

const LINKTYPES: [u32; 5] = [
    linktype::ETHERNET,
    linktype::RAW,
    linktype::LINUX_SLL,
    linktype::NULL,
    linktype::PPP,
];

/// Bytes before each frame: length (u16 LE) and clock step.
const FRAME_HEADER: usize = 3;

const OPT_MIDSTREAM: u8 = 0x01;
const OPT_SMALL: u8 = 0x02;

fn ruleset() -> &'static Arc<Ruleset> {
    static RULESET: OnceLock<Arc<Ruleset>> = OnceLock::new();
    RULESET.get_or_init(|| {
        let mut ctx = rules::ParseCtx::default();
        let mut report = rules::LoadReport::default();
        rules::parse::load_text(RULES, "fuzz.rules", &mut ctx, &mut report);
        assert!(
            report.failures.is_empty(),
            "fuzz rules do not parse: {:?}",
            report.failures
        );
        let (rs, failures) = Ruleset::compile(report.rules, ctx.flowbit_count());
        assert!(
            failures.is_empty(),
            "fuzz rules do not compile: {failures:?}"
        );
        Arc::new(rs)
    })
}

fn config(opts: u8) -> WorkerConfig {
    let mut cfg = WorkerConfig {
        prevent: true,
        ..Default::default()
    };
    cfg.tcp.midstream = opts & OPT_MIDSTREAM != 0;
    if opts & OPT_SMALL != 0 {
        cfg.flow.max_flows = 4;
        cfg.defrag.max_trackers = 2;
        cfg.tcp.stream = StreamConfig {
            depth: 4096,
            max_ooo_bytes: 1024,
            max_ooo_segments: 4,
            ..cfg.tcp.stream
        };
    }
    cfg
}

fn linktype_of(b: u8) -> u32 {
    let lt = u32::from(b);
    if LINKTYPES.contains(&lt) {
        lt
    } else {
        LINKTYPES[usize::from(b) % LINKTYPES.len()]
    }
}

fn clock_step_us(dt: u8) -> u64 {
    if dt < 128 {
        u64::from(dt) * 1_000
    } else {
        u64::from(dt - 128) * 10_000_000
    }
}

/// The frames of the input, with their clock steps.
fn frames(mut rest: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        if rest.len() < FRAME_HEADER {
            return None;
        }
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let dt = rest[2];
        let body = &rest[FRAME_HEADER..];
        let len = len.min(body.len());
        rest = &body[len..];
        Some((dt, &body[..len]))
    })
}

fuzz_target!(|data: &[u8]| {
    let [lt, opts, rest @ ..] = data else { return };
    let rs = ruleset();
    let linktype = linktype_of(*lt);
    let mut worker = Worker::new(Arc::clone(rs), config(*opts)).expect("worker");
    let mut records = Vec::new();
    let mut ts_us = 1_600_000_000_000_000u64;
    let isolated = IsolationSet {
        hosts: vec![HostId::Ip("198.18.0.10".parse().unwrap()), HostId::Mac([2, 0, 0, 0, 0, 0x10])],
        allow: vec![AllowEntry::parse("198.18.0.1:53").unwrap()],
    };
    let switch = Switch::new(4, 0b1110, 3, 300, isolated, vec!["198.18.0.11".parse().unwrap()]);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (cnt, (dt, frame)) in frames(rest).enumerate() {
        ts_us += clock_step_us(dt);
        let cnt = cnt as u64 + 1;
        records.clear();
        if linktype == linktype::ETHERNET {
            let in_port = (cnt % 4) as usize;
            match switch.decide(in_port, frame, ts_us / 1_000_000) {
                Decision::Inspect { mask, worker, .. } => {
                    assert!(mask & (1 << in_port) == 0 && mask != 0 && worker < 3, "bad decision");
                }
                Decision::Exempt { mask } => assert!(mask & (1 << in_port) == 0),
                _ => {}
            }
        }
        let forward = worker.process(linktype, frame, ts_us, cnt, &mut records);
        check(rs, &records, ts_us, cnt);
        if !forward && linktype == linktype::ETHERNET && block_frames(&worker.block, frame, "fuzz", &mut a, &mut b) {
            assert!(a.len() >= 54 && b.len() >= 54, "injected frames too short");
        }
        if !forward {
            assert!(
                records
                    .iter()
                    .any(|r| r.kind == RecordKind::Drop && r.pcap_cnt == cnt),
                "frame {cnt} dropped without a drop record: {records:?}"
            );
        }
    }
    records.clear();
    worker.finish(&mut records);
    check(rs, &records, ts_us, u64::MAX);
});

fn check(rs: &Ruleset, records: &[Record], ts_us: u64, cnt: u64) {
    for r in records {
        assert!(
            r.ts_us <= ts_us && r.pcap_cnt <= cnt,
            "record from the future: {r:?}"
        );
        if let Some(rule) = r.rule {
            assert!(
                (rule as usize) < rs.rules.len(),
                "record names no rule of the set: {r:?}"
            );
        }
    }
}
