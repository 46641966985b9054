//! TCP reassembly of one direction of a flow: in-order delivery of payload bytes, robust
//! to retransmissions, overlaps (first data wins, different data is flagged), out-of-order
//! segments (held, bounded) and gaps (skipped when the peer acknowledges past them or the
//! flow ends). Sans-IO: segments in, contiguous bytes out.
//!
//! Inline ([`StreamConfig::inline`], the bridge in prevent mode): a segment whose bytes
//! overlap data already accepted (delivered, or queued out of order) with different
//! content is rejected whole — the caller drops it — so the receiver can only ever get
//! the bytes that were inspected, whatever its own overlap policy (Suricata's
//! `stream.inline` with the `reassembly_overlap_different_data` event).
//!
//! Detection inspects a window made of the last [`RETAIN`] bytes already inspected plus
//! the newly contiguous bytes, so patterns that straddle segments are found.

use std::collections::BTreeMap;

/// Bytes of already-inspected stream kept in front of new data.
pub const RETAIN: usize = 2048;

/// Limits of one direction.
#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    /// Stop reassembling after this many bytes (0 = unlimited), Suricata's
    /// `stream.reassembly.depth`.
    pub depth: u64,
    /// Out-of-order bytes held per direction before the oldest hole is given up.
    pub max_ooo_bytes: usize,
    /// Out-of-order segments held per direction.
    pub max_ooo_segments: usize,
    /// Inline: reject (for the caller to drop) a segment that overlaps accepted data with
    /// different bytes, instead of keeping the first copy and passing the segment on.
    pub inline: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            depth: 1 << 20,
            max_ooo_bytes: 256 * 1024,
            max_ooo_segments: 512,
            inline: false,
        }
    }
}

/// What happened to a segment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SegmentOutcome {
    /// New in-order bytes were appended (possibly released from the out-of-order queue).
    pub new_bytes: usize,
    /// The segment was entirely old data.
    pub retransmission: bool,
    /// Part of it overlapped old data with different bytes.
    pub overlap_different: bool,
    /// It was queued out of order.
    pub queued: bool,
    /// It was discarded (queue full or beyond depth).
    pub discarded: bool,
    /// Inline only: it overlapped accepted data with different bytes and was not taken;
    /// the caller must not forward it.
    pub rejected: bool,
    /// A hole was skipped to release queued data.
    pub gap: bool,
    /// In-order bytes past the reassembly depth at the end of this segment: not kept for
    /// stream detection, but the application layer still gets them (a large download
    /// is still hashed whole).
    pub past_depth: usize,
}

/// Counters of what reassembly dropped or skipped.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReassemblyCounters {
    pub segments: u64,
    pub retransmissions: u64,
    pub overlaps_different: u64,
    /// Inline: segments rejected for overlapping accepted data with different bytes.
    pub overlaps_rejected: u64,
    pub ooo_queued: u64,
    pub ooo_discarded: u64,
    pub gaps: u64,
    pub depth_reached: u64,
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of stream offset 0 (ISN + 1), once known.
    base: Option<u32>,
    /// Stream offset of the next expected byte.
    next: u64,
    /// Retained window: `buf[0]` is stream offset `buf_off`.
    buf: Vec<u8>,
    buf_off: u64,
    /// Offset in `buf` where not-yet-inspected bytes start.
    inspected: usize,
    ooo: BTreeMap<u64, Vec<u8>>,
    ooo_bytes: usize,
    depth_reached: bool,
    /// In-order bytes seen past the depth (handed to the application layer only).
    past: u64,
    /// Bytes past the depth of the segment being added.
    just_past: usize,
    /// Past-depth delivery stopped (a hole, or queued data released past the depth).
    past_lost: bool,
}

impl Stream {
    /// Set the initial sequence number (from a SYN: ISN; data starts at ISN+1).
    pub fn set_isn(&mut self, isn: u32) {
        self.base = Some(isn.wrapping_add(1));
        self.next = 0;
        self.buf.clear();
        self.buf_off = 0;
        self.inspected = 0;
        self.ooo.clear();
        self.ooo_bytes = 0;
    }

    /// Start at this sequence number (midstream pick-up).
    pub fn pick_up(&mut self, seq: u32) {
        self.set_isn(seq.wrapping_sub(1));
    }

    pub fn is_started(&self) -> bool {
        self.base.is_some()
    }

    /// Bytes delivered in order so far.
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Stream offset of a sequence number, near the current position.
    fn offset_of(&self, seq: u32) -> Option<u64> {
        let base = self.base?;
        let next_seq = base.wrapping_add(self.next as u32);
        let delta = seq.wrapping_sub(next_seq) as i32 as i64;
        let off = self.next as i64 + delta;
        (off >= 0).then_some(off as u64)
    }

    /// The sequence number of the next expected byte.
    pub fn next_seq(&self) -> Option<u32> {
        self.base.map(|b| b.wrapping_add(self.next as u32))
    }

    /// Add a segment's payload.
    pub fn add(
        &mut self,
        seq: u32,
        data: &[u8],
        cfg: &StreamConfig,
        c: &mut ReassemblyCounters,
    ) -> SegmentOutcome {
        let mut out = SegmentOutcome::default();
        if data.is_empty() {
            return out;
        }
        c.segments += 1;
        let Some(mut off) = self.offset_of(seq) else {
            // before the start of the stream: keep what lies after it
            let Some(base) = self.base else { return out };
            let skip = base.wrapping_sub(seq) as usize;
            if skip >= data.len() {
                out.retransmission = true;
                c.retransmissions += 1;
                return out;
            }
            return self.add(base, &data[skip..], cfg, c);
        };
        let mut data = data;
        if off + (data.len() as u64) <= self.next {
            out.retransmission = true;
            c.retransmissions += 1;
            if self.differs(off, data) {
                out.overlap_different = true;
                c.overlaps_different += 1;
                if cfg.inline {
                    out.rejected = true;
                    c.overlaps_rejected += 1;
                }
            }
            return out;
        }
        if off < self.next {
            let skip = (self.next - off) as usize;
            if self.differs(off, &data[..skip]) {
                out.overlap_different = true;
                c.overlaps_different += 1;
                if cfg.inline {
                    out.rejected = true;
                    c.overlaps_rejected += 1;
                    return out;
                }
            }
            data = &data[skip..];
            off = self.next;
        }
        if !self.depth_reached && self.ooo_differs(off, data) {
            // different bytes than a queued out-of-order segment at the same place: which
            // copy the receiver keeps depends on its stack
            out.overlap_different = true;
            c.overlaps_different += 1;
            if cfg.inline {
                out.rejected = true;
                c.overlaps_rejected += 1;
                return out;
            }
        }
        if self.depth_reached {
            // past the depth: bytes exactly in order go on to the application layer
            let at = self.next + self.past;
            let end = off + data.len() as u64;
            if !self.past_lost && off <= at && end > at {
                let n = (end - at) as usize;
                self.past += n as u64;
                out.past_depth = n;
            } else if end > at {
                self.past_lost = true;
            }
            out.discarded = true;
            return out;
        }
        if off > self.next {
            if self.ooo_bytes + data.len() > cfg.max_ooo_bytes
                || self.ooo.len() >= cfg.max_ooo_segments
            {
                // give up the oldest hole rather than grow without bound
                out.gap = true;
                c.gaps += 1;
                self.skip_gap(cfg, c, &mut out);
                if off < self.next {
                    return out;
                }
                if off > self.next {
                    out.discarded = true;
                    c.ooo_discarded += 1;
                    return out;
                }
            } else {
                // first data wins for overlapping queued segments; a longer one at the
                // same place adds its tail (inline, its head was checked above)
                match self.ooo.entry(off) {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        self.ooo_bytes += data.len();
                        v.insert(data.to_vec());
                    }
                    std::collections::btree_map::Entry::Occupied(mut o) => {
                        let have = o.get().len();
                        if have < data.len() {
                            self.ooo_bytes += data.len() - have;
                            o.get_mut().extend_from_slice(&data[have..]);
                        }
                    }
                }
                out.queued = true;
                c.ooo_queued += 1;
                return out;
            }
        }
        out.new_bytes += self.append(data, cfg, c);
        out.past_depth = std::mem::take(&mut self.just_past);
        out.new_bytes += self.drain_ooo(cfg, c);
        if std::mem::take(&mut self.just_past) > 0 {
            // released from the queue past the depth: not in this packet, lost to the app
            self.past_lost = true;
        }
        out
    }

    /// Whether `data` at `off` differs from a queued out-of-order segment it overlaps.
    /// Only segments starting at most 64 KiB before `off` can reach it (a segment is at
    /// most that long), so the scan is bounded by the queue's segment limit.
    fn ooo_differs(&self, off: u64, data: &[u8]) -> bool {
        if self.ooo.is_empty() {
            return false;
        }
        let end = off + data.len() as u64;
        let from = off.saturating_sub(u16::MAX as u64 + 1);
        self.ooo.range(from..end).any(|(&s, seg)| {
            let e = s + seg.len() as u64;
            let (lo, hi) = (s.max(off), e.min(end));
            lo < hi
                && seg[(lo - s) as usize..(hi - s) as usize]
                    != data[(lo - off) as usize..(hi - off) as usize]
        })
    }

    /// Whether `data` at `off` differs from what was already delivered (as far as the
    /// retained window still holds it).
    fn differs(&self, off: u64, data: &[u8]) -> bool {
        if off < self.buf_off {
            return false;
        }
        let s = (off - self.buf_off) as usize;
        let e = (s + data.len()).min(self.buf.len());
        s < e && self.buf[s..e] != data[..e - s]
    }

    fn append(&mut self, data: &[u8], cfg: &StreamConfig, c: &mut ReassemblyCounters) -> usize {
        let mut data = data;
        if cfg.depth > 0 && self.next + data.len() as u64 > cfg.depth {
            let keep = cfg.depth.saturating_sub(self.next) as usize;
            self.just_past += data.len() - keep;
            self.past += (data.len() - keep) as u64;
            data = &data[..keep];
            if !self.depth_reached {
                self.depth_reached = true;
                c.depth_reached += 1;
            }
        }
        self.buf.extend_from_slice(data);
        self.next += data.len() as u64;
        data.len()
    }

    fn drain_ooo(&mut self, cfg: &StreamConfig, c: &mut ReassemblyCounters) -> usize {
        let mut n = 0;
        while let Some((&off, _)) = self.ooo.first_key_value() {
            if off > self.next {
                break;
            }
            let Some((_, seg)) = self.ooo.pop_first() else {
                break;
            };
            self.ooo_bytes -= seg.len();
            let end = off + seg.len() as u64;
            if end <= self.next {
                continue;
            }
            let skip = (self.next - off) as usize;
            n += self.append(&seg[skip..], cfg, c);
        }
        n
    }

    fn skip_gap(
        &mut self,
        cfg: &StreamConfig,
        c: &mut ReassemblyCounters,
        out: &mut SegmentOutcome,
    ) {
        if let Some((&off, _)) = self.ooo.first_key_value() {
            if off > self.next {
                self.jump_to(off);
            }
            out.new_bytes += self.drain_ooo(cfg, c);
        }
    }

    /// Skip a hole: the next expected byte becomes `off`. Retained bytes before the hole
    /// are dropped (they must not be joined with data after it).
    fn jump_to(&mut self, off: u64) {
        self.buf.clear();
        self.inspected = 0;
        self.buf_off = off;
        self.next = off;
    }

    /// The peer acknowledged up to `ack`: a hole below it will never be filled (the data
    /// was lost before capture). Returns whether a gap was skipped.
    pub fn acked(
        &mut self,
        ack: u32,
        cfg: &StreamConfig,
        c: &mut ReassemblyCounters,
    ) -> (bool, usize) {
        let Some(a) = self.offset_of(ack) else {
            return (false, 0);
        };
        if a <= self.next || self.ooo.is_empty() {
            return (false, 0);
        }
        let mut out = SegmentOutcome::default();
        if let Some((&first, _)) = self.ooo.first_key_value() {
            if first <= a {
                c.gaps += 1;
                self.skip_gap(cfg, c, &mut out);
                return (true, out.new_bytes);
            }
        }
        (false, 0)
    }

    /// At the end of the flow: release everything still queued, skipping holes.
    pub fn flush(&mut self, cfg: &StreamConfig, c: &mut ReassemblyCounters) -> (bool, usize) {
        let mut gap = false;
        let mut n = 0;
        while !self.ooo.is_empty() {
            let mut out = SegmentOutcome::default();
            gap = true;
            c.gaps += 1;
            self.skip_gap(cfg, c, &mut out);
            n += out.new_bytes;
        }
        (gap, n)
    }

    /// The inspection window: retained bytes then new bytes; and the index where new
    /// bytes start. `None` when there is nothing new.
    pub fn window(&self) -> Option<(&[u8], usize)> {
        (self.inspected < self.buf.len()).then(|| (self.buf.as_slice(), self.inspected))
    }

    /// Stream offset of the first byte of [`window`](Self::window).
    pub fn window_offset(&self) -> u64 {
        self.buf_off
    }

    /// Mark the window inspected and trim retained bytes to [`RETAIN`].
    pub fn consume(&mut self) {
        if self.buf.len() > RETAIN {
            let cut = self.buf.len() - RETAIN;
            self.buf.drain(..cut);
            self.buf_off += cut as u64;
        }
        self.inspected = self.buf.len();
    }

    /// Bytes held (retained window and out-of-order queue), for memory accounting.
    pub fn memory(&self) -> usize {
        self.buf.capacity() + self.ooo_bytes
    }
}

#[cfg(test)]
mod test;
