//! Fuzz the rule language: arbitrary text (lossy UTF-8, at most 4 KiB so Hyperscan and PCRE2
//! compile fast) through `parse::load_text`, then `Ruleset::compile` on whatever parsed, then
//! a few fixed frames (a TCP/HTTP exchange, a DNS query, a ping) through a worker running the
//! set, so every rule that compiles is also executed.
//!
//! Checks, besides no panic:
//! * every enabled rule line is either a rule or a failure, and failures point at a line
//!   of the text;
//! * every parsed rule is either compiled or reported, and no Hyperscan database fails
//!   (its literals are escaped, so a failure is a bug that silently disables every rule
//!   prefiltered on that buffer).

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mimamori_appliance::decode::{linktype, tcp_flags};
use mimamori_appliance::pipeline::{Worker, WorkerConfig};
use mimamori_rules as rules;
use rules::ErrorKind;
use rules::compile::Ruleset;

/// Longer inputs are skipped: compile time grows with them, not coverage.
const MAX_INPUT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    let mut ctx = rules::ParseCtx::default();
    let mut report = rules::LoadReport::default();
    rules::parse::load_text(&text, "fuzz.rules", &mut ctx, &mut report);
    assert_eq!(
        report.enabled,
        report.rules.len() + report.failures.len(),
        "enabled rules neither parsed nor failed"
    );
    for e in &report.failures {
        assert!(
            (1..=lines).contains(&e.line),
            "failure points at line {} of {lines}: {e}",
            e.line
        );
    }
    let parsed = report.rules.len();
    let (rs, failures) = Ruleset::compile(report.rules, ctx.flowbit_count());
    let mut rejected = 0;
    for e in &failures {
        match &e.kind {
            ErrorKind::Hyperscan(msg) => panic!("a Hyperscan database failed: {msg} ({e})"),
            _ => rejected += 1,
        }
    }
    assert_eq!(
        rs.rules.len() + rejected,
        parsed,
        "rules lost in compilation"
    );
    if rs.rules.is_empty() {
        return;
    }
    let mut worker = Worker::new(
        Arc::new(rs),
        WorkerConfig {
            prevent: true,
            ..Default::default()
        },
    )
    .expect("a worker for a compiled set");
    let mut records = Vec::new();
    for (i, frame) in traffic().iter().enumerate() {
        let ts = 1_600_000_000_000_000 + i as u64 * 1_000;
        worker.process(linktype::RAW, frame, ts, i as u64 + 1, &mut records);
    }
    worker.finish(&mut records);
});

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];
const CPORT: u16 = 40_000;
const ISN_C: u32 = 1_000;
const ISN_S: u32 = 5_000;
const REQUEST: &[u8] = b"GET /admin/index.php?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\nCookie: a=b\r\n\r\n";
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Type: text/html\r\nContent-Length: 4\r\n\r\nbody";
const DNS_QUERY: &[u8] =
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
const PING: &[u8] = b"\x08\x00\x00\x00\x00\x01\x00\x01abcdefghijklmnopqrstuvwxyz0123456789";

/// The fixed frames (raw IPv4), built once.
fn traffic() -> &'static [Vec<u8>] {
    static FRAMES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        use tcp_flags::{ACK, PSH, SYN};
        let req_end = ISN_C + 1 + REQUEST.len() as u32;
        let resp_end = ISN_S + 1 + RESPONSE.len() as u32;
        vec![
            tcp(CLIENT, SERVER, CPORT, 80, ISN_C, 0, SYN, b""),
            tcp(SERVER, CLIENT, 80, CPORT, ISN_S, ISN_C + 1, SYN | ACK, b""),
            tcp(CLIENT, SERVER, CPORT, 80, ISN_C + 1, ISN_S + 1, ACK, b""),
            tcp(
                CLIENT,
                SERVER,
                CPORT,
                80,
                ISN_C + 1,
                ISN_S + 1,
                PSH | ACK,
                REQUEST,
            ),
            tcp(
                SERVER,
                CLIENT,
                80,
                CPORT,
                ISN_S + 1,
                req_end,
                PSH | ACK,
                RESPONSE,
            ),
            tcp(CLIENT, SERVER, CPORT, 80, req_end, resp_end, ACK, b""),
            ipv4(CLIENT, SERVER, 17, &udp(5353, 53, DNS_QUERY)),
            ipv4(CLIENT, SERVER, 1, PING),
        ]
    })
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let len = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    ipv4(src, dst, 6, &t)
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}
