//! IPv4 and IPv6 fragment reassembly, bounded in trackers, bytes and time.
//!
//! Overlaps keep the data that arrived first (and raise `frag_overlap`); a datagram over
//! 65535 bytes is dropped (`frag_pkt_too_large`). A completed datagram is rebuilt as a
//! whole IP packet so the normal decoder can read it.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Event, Packet};

/// Bounds of the reassembly table.
#[derive(Debug, Clone, Copy)]
pub struct DefragConfig {
    pub max_trackers: usize,
    pub timeout_us: u64,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_trackers: 4096,
            timeout_us: 60_000_000,
        }
    }
}

/// What the defragmenter dropped or evicted.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefragCounters {
    pub fragments: u64,
    pub reassembled: u64,
    pub timeouts: u64,
    pub evicted: u64,
    pub too_large: u64,
    pub overlaps: u64,
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
    vlan: [u16; 2],
}

struct Tracker {
    header: Vec<u8>,
    parts: Vec<(u32, Vec<u8>)>,
    total: Option<u32>,
    first_seen_us: u64,
    v6: bool,
    next: u8,
}

const MAX_DATAGRAM: u32 = 65535;

/// The fragment reassembly table of one worker.
pub struct Defrag {
    cfg: DefragConfig,
    table: HashMap<Key, Tracker>,
    pub counters: DefragCounters,
}

impl Defrag {
    pub fn new(cfg: DefragConfig) -> Defrag {
        Defrag {
            cfg,
            table: HashMap::new(),
            counters: DefragCounters::default(),
        }
    }

    /// Add a fragment. When it completes a datagram, the rebuilt IP packet is written to
    /// `out` and `true` returned. Events (overlap, too large) are added to `events`.
    pub fn add(
        &mut self,
        p: &Packet<'_>,
        now_us: u64,
        out: &mut Vec<u8>,
        events: &mut super::Events,
    ) -> bool {
        let (Some(ip), Some(f)) = (p.ip, p.frag) else {
            return false;
        };
        self.counters.fragments += 1;
        let key = Key {
            src: ip.src,
            dst: ip.dst,
            id: f.id,
            proto: f.next,
            vlan: p.vlan,
        };
        if !self.table.contains_key(&key) {
            self.expire(now_us);
            if self.table.len() >= self.cfg.max_trackers {
                // evict the oldest tracker
                if let Some(k) = self
                    .table
                    .iter()
                    .min_by_key(|(_, t)| t.first_seen_us)
                    .map(|(k, _)| *k)
                {
                    self.table.remove(&k);
                    self.counters.evicted += 1;
                }
            }
        }
        let t = self.table.entry(key).or_insert_with(|| Tracker {
            header: Vec::new(),
            parts: Vec::new(),
            total: None,
            first_seen_us: now_us,
            v6: ip.v6,
            next: f.next,
        });
        let data = p.payload;
        let end = f.offset + data.len() as u32;
        if end > MAX_DATAGRAM {
            events.set(if ip.v6 {
                Event::Ipv6FragPktTooLarge
            } else {
                Event::Ipv4FragPktTooLarge
            });
            self.counters.too_large += 1;
            self.table.remove(&key);
            return false;
        }
        if f.offset == 0 {
            // keep the unfragmentable header of the first fragment
            t.header.clear();
            if ip.v6 {
                t.header
                    .extend_from_slice(&p.ip_packet[..40.min(p.ip_packet.len())]);
            } else {
                t.header
                    .extend_from_slice(&p.ip_packet[..f.payload_start.min(p.ip_packet.len())]);
            }
        }
        if !f.more {
            t.total = Some(end);
        }
        if t.parts
            .iter()
            .any(|(o, d)| f.offset < o + d.len() as u32 && *o < end)
        {
            events.set(if ip.v6 {
                Event::Ipv6FragOverlap
            } else {
                Event::Ipv4FragOverlap
            });
            self.counters.overlaps += 1;
        }
        if t.parts.len() >= 256 {
            self.table.remove(&key);
            self.counters.evicted += 1;
            return false;
        }
        t.parts.push((f.offset, data.to_vec()));
        // complete?
        let Some(total) = t.total else { return false };
        if t.header.is_empty() {
            return false;
        }
        let mut covered = vec![false; total as usize];
        for (o, d) in &t.parts {
            let s = (*o as usize).min(total as usize);
            let e = (*o as usize + d.len()).min(total as usize);
            covered[s..e].iter_mut().for_each(|c| *c = true);
        }
        if !covered.iter().all(|c| *c) {
            return false;
        }
        let Some(t) = self.table.remove(&key) else {
            return false;
        };
        self.rebuild(&t, total, out);
        self.counters.reassembled += 1;
        true
    }

    fn rebuild(&self, t: &Tracker, total: u32, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&t.header);
        let base = out.len();
        out.resize(base + total as usize, 0);
        let mut filled = vec![false; total as usize];
        // first arrival wins on overlap
        for (o, d) in &t.parts {
            for (i, b) in d.iter().enumerate() {
                let pos = *o as usize + i;
                if pos < total as usize && !filled[pos] {
                    out[base + pos] = *b;
                    filled[pos] = true;
                }
            }
        }
        if t.v6 {
            let plen = total as u16;
            out[4..6].copy_from_slice(&plen.to_be_bytes());
            out[6] = t.next;
        } else {
            let tl = (base as u32 + total).min(u16::MAX as u32) as u16;
            out[2..4].copy_from_slice(&tl.to_be_bytes());
            out[6] = 0;
            out[7] = 0;
        }
    }

    /// Drop trackers older than the timeout.
    pub fn expire(&mut self, now_us: u64) {
        let timeout = self.cfg.timeout_us;
        let before = self.table.len();
        self.table
            .retain(|_, t| now_us.saturating_sub(t.first_seen_us) < timeout);
        self.counters.timeouts += (before - self.table.len()) as u64;
    }
}
