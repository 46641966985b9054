//! The TCP connection state a flow needs: handshake progress, closing, and feeding each
//! direction's reassembly.

use super::{Dir, Flow};
use crate::decode::{Event, Events, tcp_flags::*};
use crate::reassembly::{ReassemblyCounters, StreamConfig};

/// Handshake and teardown progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpState {
    syn: bool,
    synack: bool,
    est: bool,
    fin: [bool; 2],
    rst: bool,
    pub midstream: bool,
}

impl TcpState {
    pub fn established(&self) -> bool {
        self.est
    }
    pub fn closed(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }
}

/// Settings of the TCP engine (Suricata's `stream.*`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConfig {
    pub midstream: bool,
    pub stream: StreamConfig,
}

/// What a segment did to the flow.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpUpdate {
    /// New in-order bytes in the packet's own direction.
    pub new_bytes: usize,
    /// New in-order bytes released in the other direction (a gap skipped on ACK).
    pub other_new_bytes: usize,
    /// The direction's stream is reassembled (session tracked).
    pub tracked: bool,
    pub retransmission: bool,
    /// In-order bytes past the reassembly depth at the end of the payload (for the
    /// application layer only).
    pub past_depth: usize,
    /// Inline: the segment overlapped accepted data with different bytes and was not
    /// taken into the stream; it must not be forwarded.
    pub rejected: bool,
}

/// Update a flow with one TCP segment.
#[allow(clippy::too_many_arguments)]
pub fn update(
    f: &mut Flow,
    dir: Dir,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
    cfg: &TcpConfig,
    c: &mut ReassemblyCounters,
    events: &mut Events,
) -> TcpUpdate {
    let mut u = TcpUpdate::default();
    let d = dir.idx();
    let o = dir.other().idx();
    let syn = flags & SYN != 0;
    let ackf = flags & ACK != 0;
    if syn && !ackf {
        if !f.tcp.syn || !f.streams[d].is_started() {
            f.tcp.syn = true;
            f.streams[d].set_isn(seq);
        }
    } else if syn && ackf {
        f.tcp.synack = true;
        if !f.streams[d].is_started() || f.streams[d].delivered() == 0 {
            f.streams[d].set_isn(seq);
        }
        if !f.streams[o].is_started() {
            f.streams[o].set_isn(ack.wrapping_sub(1));
        }
    } else if !f.tcp.est {
        if f.tcp.syn && f.tcp.synack && ackf {
            f.tcp.est = true;
        } else if cfg.midstream && !f.tcp.syn {
            f.tcp.est = true;
            f.tcp.midstream = true;
        }
    }
    if flags & RST != 0 {
        f.tcp.rst = true;
    }
    if flags & FIN != 0 {
        f.tcp.fin[d] = true;
    }
    if !f.streams[d].is_started() && f.tcp.est && !syn {
        f.streams[d].pick_up(seq);
    }
    u.tracked = f.streams[d].is_started();
    if u.tracked && !payload.is_empty() {
        // data on a SYN (TCP Fast Open) starts at ISN + 1
        let dseq = if syn { seq.wrapping_add(1) } else { seq };
        let out = f.streams[d].add(dseq, payload, &cfg.stream, c);
        u.new_bytes = out.new_bytes;
        u.retransmission = out.retransmission;
        u.past_depth = out.past_depth;
        u.rejected = out.rejected;
        if out.overlap_different {
            events.set(Event::StreamReassemblyOverlapDifferentData);
        }
        if out.retransmission {
            events.set(Event::StreamPktRetransmission);
        }
        if out.gap {
            events.set(Event::StreamReassemblySeqGap);
        }
    }
    if ackf && f.streams[o].is_started() {
        let (gap, n) = f.streams[o].acked(ack, &cfg.stream, c);
        if gap {
            events.set(Event::StreamReassemblySeqGap);
        }
        u.other_new_bytes = n;
    }
    u
}
