//! Fuzz one direction of TCP reassembly (`reassembly::Stream`) with an arbitrary sequence of
//! segments, acknowledgements, inspections and flushes, under small limits.
//!
//! Input layout: `[depth: u16 LE][max_ooo_bytes: u16 LE][max_ooo_segments: u8]`, then
//! operations, each a tag byte and its arguments (see [`Op`]). Sequence numbers of `add`
//! and `acked` are mostly relative to the next expected byte, so the fuzzer reaches
//! overlaps, holes and retransmissions without guessing 32-bit numbers.
//!
//! Checks, besides no panic:
//! * the window's new-byte index is below its length and at most `RETAIN`;
//! * the new bytes in the window are exactly those reported since the last `consume`
//!   (at most those, once a hole was skipped);
//! * `delivered()` grows by the reported new bytes, more only when a hole was skipped;
//! * never more than `depth` bytes are delivered;
//! * every byte in the window was sent at that stream offset by some segment;
//! * `memory()` stays within the retained window, the unconsumed bytes and the queue limit;
//! * `flush` empties the queue: a second flush finds nothing.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use mimamori_appliance::reassembly::{
    RETAIN, ReassemblyCounters, SegmentOutcome, Stream, StreamConfig,
};

/// Bytes of the configuration prefix.
const CONFIG_LEN: usize = 5;

/// One step, decoded from the input.
#[derive(Debug)]
enum Op<'a> {
    /// tag 0: `[isn: u32 LE]`.
    SetIsn(u32),
    /// tag 1: `[seq: u32 LE]`.
    PickUp(u32),
    /// tag 2: `[delta: i16 LE][len: u8][data]`, at the next expected sequence + delta.
    Add(i16, &'a [u8]),
    /// tag 3: `[seq: u32 LE][len: u8][data]`, at an absolute sequence number.
    AddAbs(u32, &'a [u8]),
    /// tag 4: `[delta: i16 LE]`, acknowledging the next expected sequence + delta.
    Acked(i16),
    /// tag 5: inspect the window, then consume it.
    Consume,
    /// tag 6: release everything queued.
    Flush,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (a, b) = self.0.split_first_chunk::<N>()?;
        self.0 = b;
        Some(*a)
    }
    fn data(&mut self) -> Option<&'a [u8]> {
        let [len] = self.array::<1>()?;
        self.take(usize::from(len))
    }
    fn op(&mut self) -> Option<Op<'a>> {
        let [tag] = self.array::<1>()?;
        Some(match tag % 7 {
            0 => Op::SetIsn(u32::from_le_bytes(self.array()?)),
            1 => Op::PickUp(u32::from_le_bytes(self.array()?)),
            2 => {
                let delta = i16::from_le_bytes(self.array()?);
                Op::Add(delta, self.data()?)
            }
            3 => {
                let seq = u32::from_le_bytes(self.array()?);
                Op::AddAbs(seq, self.data()?)
            }
            4 => Op::Acked(i16::from_le_bytes(self.array()?)),
            5 => Op::Consume,
            _ => Op::Flush,
        })
    }
}

/// What the harness knows independently of the stream.
#[derive(Default)]
struct Model {
    /// Byte values sent at each stream offset (a 256-bit set per offset).
    sent: HashMap<u64, [u64; 4]>,
    /// New bytes reported since the last `consume`.
    unconsumed: usize,
    /// A hole was skipped since the last `consume`.
    gap_since_consume: bool,
    /// New bytes reported since the stream (re)started.
    total_new: u64,
    /// Largest `unconsumed` seen, for the memory bound.
    max_unconsumed: usize,
}

impl Model {
    fn restart(&mut self) {
        *self = Model {
            max_unconsumed: self.max_unconsumed,
            ..Model::default()
        };
    }

    /// Record a segment sent at sequence `seq`, as seen from the stream's position.
    fn sent(&mut self, st: &Stream, seq: u32, data: &[u8]) {
        let Some(next_seq) = st.next_seq() else {
            return;
        };
        let off = st.delivered() as i64 + i64::from(seq.wrapping_sub(next_seq) as i32);
        for (i, &b) in data.iter().enumerate() {
            let Ok(o) = u64::try_from(off + i as i64) else {
                continue;
            };
            self.sent.entry(o).or_default()[usize::from(b >> 6)] |= 1 << (b & 63);
        }
    }

    fn delivered(&mut self, new_bytes: usize, gap: bool) {
        self.unconsumed += new_bytes;
        self.total_new += new_bytes as u64;
        self.gap_since_consume |= gap;
        self.max_unconsumed = self.max_unconsumed.max(self.unconsumed);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((cfg, ops)) = data.split_first_chunk::<CONFIG_LEN>() else {
        return;
    };
    let cfg = StreamConfig {
        depth: u64::from(u16::from_le_bytes([cfg[0], cfg[1]])),
        max_ooo_bytes: usize::from(u16::from_le_bytes([cfg[2], cfg[3]])),
        max_ooo_segments: usize::from(cfg[4]),
    };
    let mut st = Stream::default();
    let mut c = ReassemblyCounters::default();
    let mut m = Model::default();
    let mut r = Reader(ops);
    while let Some(op) = r.op() {
        step(&mut st, &cfg, &mut c, &mut m, op);
        check(&st, &cfg, &m);
    }
    let (gap, n) = st.flush(&cfg, &mut c);
    m.delivered(n, gap);
    check(&st, &cfg, &m);
});

fn step(
    st: &mut Stream,
    cfg: &StreamConfig,
    c: &mut ReassemblyCounters,
    m: &mut Model,
    op: Op<'_>,
) {
    match op {
        Op::SetIsn(isn) => {
            st.set_isn(isn);
            m.restart();
        }
        Op::PickUp(seq) => {
            st.pick_up(seq);
            m.restart();
            assert_eq!(
                st.next_seq(),
                Some(seq),
                "pick_up starts at its sequence number"
            );
        }
        Op::Add(delta, d) => {
            let seq = st.next_seq().unwrap_or(0).wrapping_add(delta as i32 as u32);
            add(st, cfg, c, m, seq, d);
        }
        Op::AddAbs(seq, d) => add(st, cfg, c, m, seq, d),
        Op::Acked(delta) => {
            let before = st.delivered();
            let ack = st.next_seq().unwrap_or(0).wrapping_add(delta as i32 as u32);
            let (gap, n) = st.acked(ack, cfg, c);
            assert!(
                gap || n == 0,
                "acked released {n} bytes without skipping a hole"
            );
            check_progress(st, before, n, gap);
            m.delivered(n, gap);
        }
        Op::Consume => {
            st.consume();
            assert!(
                st.window().is_none(),
                "window still has new bytes after consume"
            );
            m.unconsumed = 0;
            m.gap_since_consume = false;
        }
        Op::Flush => {
            let before = st.delivered();
            let (gap, n) = st.flush(cfg, c);
            check_progress(st, before, n, gap);
            m.delivered(n, gap);
            let again = st.flush(cfg, c);
            assert_eq!(again, (false, 0), "a second flush found queued data");
        }
    }
}

fn add(
    st: &mut Stream,
    cfg: &StreamConfig,
    c: &mut ReassemblyCounters,
    m: &mut Model,
    seq: u32,
    d: &[u8],
) {
    let started = st.is_started();
    let before = st.delivered();
    m.sent(st, seq, d);
    let o: SegmentOutcome = st.add(seq, d, cfg, c);
    if d.is_empty() || !started {
        assert_eq!(
            o,
            SegmentOutcome::default(),
            "empty or unstarted add did something"
        );
    }
    if o.queued || o.retransmission {
        assert_eq!(
            o.new_bytes, 0,
            "queued or old segment delivered bytes: {o:?}"
        );
    }
    assert!(
        !(o.queued && o.retransmission),
        "segment both queued and old: {o:?}"
    );
    check_progress(st, before, o.new_bytes, o.gap);
    m.delivered(o.new_bytes, o.gap);
}

/// `delivered()` grows by the new bytes; more only when a hole was skipped.
fn check_progress(st: &Stream, before: u64, new_bytes: usize, gap: bool) {
    assert!(
        st.delivered() >= before,
        "delivered went back from {before} to {}",
        st.delivered()
    );
    let grown = st.delivered() - before;
    if gap {
        assert!(
            grown >= new_bytes as u64,
            "delivered grew {grown} < {new_bytes} new bytes"
        );
    } else {
        assert_eq!(
            grown, new_bytes as u64,
            "delivered grew {grown}, reported {new_bytes} new bytes"
        );
    }
}

fn check(st: &Stream, cfg: &StreamConfig, m: &Model) {
    if cfg.depth > 0 {
        assert!(
            m.total_new <= cfg.depth,
            "{} bytes delivered beyond depth {}",
            m.total_new,
            cfg.depth
        );
    }
    let bound = 2 * (RETAIN + m.max_unconsumed) + 64 + cfg.max_ooo_bytes;
    assert!(st.memory() <= bound, "memory {} above {bound}", st.memory());
    let Some((w, new_at)) = st.window() else {
        assert!(
            m.unconsumed == 0 || m.gap_since_consume,
            "{} new bytes reported but no window",
            m.unconsumed
        );
        return;
    };
    assert!(
        new_at < w.len(),
        "new-byte index {new_at} not below window length {}",
        w.len()
    );
    assert!(
        new_at <= RETAIN,
        "{new_at} retained bytes, more than {RETAIN}"
    );
    let fresh = w.len() - new_at;
    if m.gap_since_consume {
        assert!(
            fresh <= m.unconsumed,
            "{fresh} new bytes in window, {} reported",
            m.unconsumed
        );
    } else {
        assert_eq!(
            fresh, m.unconsumed,
            "new bytes in window differ from those reported"
        );
    }
    let base = st.window_offset();
    for (i, &b) in w.iter().enumerate() {
        let off = base + i as u64;
        let ok = m
            .sent
            .get(&off)
            .is_some_and(|s| s[usize::from(b >> 6)] & (1 << (b & 63)) != 0);
        assert!(
            ok,
            "window byte {b:#04x} at stream offset {off} was never sent there"
        );
    }
}
