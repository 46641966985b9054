//! MAC learning (the forwarding database): which port a station was last heard on.
//!
//! Lock-free: a fixed table of 4-way buckets of `AtomicU64` entries packing the MAC
//! (48 bits), the port + 1 (4 bits) and the time it was last heard in seconds modulo
//! 4096 (12 bits). Receive threads learn and look up without locks; the worst a race can
//! do is learn the same station twice (the newest entry wins). `sweep` forgets stations
//! not heard for the ageing time, so no entry lives long enough for the clock to wrap.
//!
//! Against a station flood (random source MACs, finding 5 of issue 21): buckets are
//! chosen by SipHash with a random key per process, so nobody can aim MACs at the
//! bucket of a given station; each port may hold at most `limit` stations (beyond it the
//! port learns nothing new, counted in `refused`); and a port's learning only takes a
//! free slot, an expired entry or one of its own, never a live entry of another port.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const WAYS: usize = 4;
const TIME_MASK: u64 = 0xfff;
/// Ports a table tracks (the port number is 4 bits, 15 = none).
pub const MAX_PORTS: usize = 15;

pub struct Fdb {
    slots: Box<[AtomicU64]>,
    buckets: usize,
    ageing: u64,
    /// SipHash-1-3 keyed at random when the table is made.
    key: std::hash::RandomState,
    /// Stations a port may hold.
    limit: u32,
    /// Stations held per port (exact after each sweep, close in between).
    count: [AtomicU32; MAX_PORTS],
    /// New stations not learnt because their port was at its limit or their bucket was
    /// full of other ports' stations (written by the port's own receive thread).
    refused: [AtomicU64; MAX_PORTS],
}

fn mac_bits(mac: &[u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]])
}

#[inline]
fn unpack(e: u64) -> (u64, Option<u8>, u64) {
    let port = ((e >> 12) & 0xf) as u8;
    (e >> 16, port.checked_sub(1), e & TIME_MASK)
}

/// Add to a counter only one thread writes (no locked read-modify-write).
#[inline]
fn bump(a: &AtomicU64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

impl Fdb {
    /// A table where each port may hold `per_port` stations (`ports` ports); forget after
    /// `ageing_secs` (< 4096). Sized at twice what all ports may hold (at least 16,384).
    pub fn new(ports: usize, per_port: u32, ageing_secs: u32) -> Fdb {
        let per_port = per_port.max(1);
        let capacity = (ports.clamp(1, MAX_PORTS) * per_port as usize * 2).max(16_384);
        let buckets = (capacity / WAYS).next_power_of_two().max(16);
        Fdb {
            slots: (0..buckets * WAYS).map(|_| AtomicU64::new(0)).collect(),
            buckets,
            ageing: u64::from(ageing_secs.min(4000)),
            key: std::hash::RandomState::new(),
            limit: per_port,
            count: Default::default(),
            refused: Default::default(),
        }
    }

    #[inline]
    fn bucket(&self, m: u64) -> usize {
        (self.key.hash_one(m) as usize & (self.buckets - 1)) * WAYS
    }

    fn age(&self, now: u64, t: u64) -> u64 {
        // another thread may have stored a second later than this thread's clock: an
        // age just below the wrap is such a fresh entry, not an old one
        let a = (now.wrapping_sub(t)) & TIME_MASK;
        if a > 4000 { 0 } else { a }
    }

    fn add(&self, port: Option<u8>, up: bool) {
        if let Some(c) = port.and_then(|p| self.count.get(usize::from(p))) {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(if up { v.saturating_add(1) } else { v.saturating_sub(1) })
            });
        }
    }

    /// `mac` was heard on `port` (0..15) at `now_secs`. Multicast sources are ignored.
    /// Per frame for a known station: one hash and a look at one bucket, no store
    /// (but once a second).
    #[inline]
    pub fn learn(&self, mac: &[u8; 6], port: u8, now_secs: u64) {
        if mac[0] & 1 != 0 || usize::from(port) >= MAX_PORTS {
            return;
        }
        let m = mac_bits(mac);
        let now = now_secs & TIME_MASK;
        let want = m << 16 | u64::from(port + 1) << 12 | now;
        let b = self.bucket(m);
        let at_limit = self.count[usize::from(port)].load(Ordering::Relaxed) >= self.limit;
        // (slot, its entry, rank): a free slot beats an expired entry beats the oldest
        // of this port's own stations; another port's live station is never taken
        let mut victim: Option<(usize, u64, u64)> = None;
        for i in b..b + WAYS {
            let e = self.slots[i].load(Ordering::Relaxed);
            let (em, ep, et) = unpack(e);
            if e != 0 && em == m {
                if ep == Some(port) {
                    // refresh only when something changed: no store per frame
                    if et != now {
                        let _ = self.slots[i].compare_exchange(
                            e,
                            want,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                } else if at_limit {
                    // the station moved here, but this port holds all it may
                    bump(&self.refused[usize::from(port)]);
                } else if self.slots[i]
                    .compare_exchange(e, want, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    self.add(ep, false);
                    self.add(Some(port), true);
                }
                return;
            }
            let age = if e == 0 { 0 } else { self.age(now, et) };
            let rank = if e == 0 {
                u64::MAX
            } else if age >= self.ageing {
                u64::MAX - 1
            } else if ep == Some(port) {
                age
            } else {
                continue;
            };
            if victim.is_none_or(|(_, _, r)| rank > r) {
                victim = Some((i, e, rank));
            }
        }
        let Some((i, e, _)) = victim.filter(|_| !at_limit) else {
            bump(&self.refused[usize::from(port)]);
            return;
        };
        if self.slots[i]
            .compare_exchange(e, want, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let (_, ep, _) = unpack(e);
            if e == 0 || ep != Some(port) {
                if e != 0 {
                    self.add(ep, false);
                }
                self.add(Some(port), true);
            }
        }
    }

    /// The port `mac` was last heard on, if within the ageing time.
    #[inline]
    pub fn lookup(&self, mac: &[u8; 6], now_secs: u64) -> Option<u8> {
        let m = mac_bits(mac);
        let now = now_secs & TIME_MASK;
        let b = self.bucket(m);
        let mut best: Option<(u64, u8)> = None;
        for i in b..b + WAYS {
            let e = self.slots[i].load(Ordering::Relaxed);
            let (em, ep, et) = unpack(e);
            if e != 0 && em == m {
                let age = self.age(now, et);
                if let Some(p) = ep {
                    if age < self.ageing && best.is_none_or(|(a, _)| age < a) {
                        best = Some((age, p));
                    }
                }
            }
        }
        best.map(|(_, p)| p)
    }

    /// Forget stations older than the ageing time (run every few seconds) and count
    /// again what each port holds.
    pub fn sweep(&self, now_secs: u64) -> usize {
        let now = now_secs & TIME_MASK;
        let mut n = 0;
        let mut held = [0u32; MAX_PORTS];
        for s in self.slots.iter() {
            let e = s.load(Ordering::Relaxed);
            if e == 0 {
                continue;
            }
            if self.age(now, e & TIME_MASK) >= self.ageing {
                if s
                    .compare_exchange(e, 0, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    n += 1;
                }
            } else if let Some(p) = unpack(e).1 {
                held[usize::from(p)] += 1;
            }
        }
        for (c, h) in self.count.iter().zip(held) {
            c.store(h, Ordering::Relaxed);
        }
        n
    }

    /// Stations known now.
    pub fn len(&self, now_secs: u64) -> usize {
        let now = now_secs & TIME_MASK;
        self.slots
            .iter()
            .filter(|s| {
                let e = s.load(Ordering::Relaxed);
                e != 0 && self.age(now, e & TIME_MASK) < self.ageing
            })
            .count()
    }

    /// Stations a port may hold.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Stations `port` holds (as of the last sweep and the learning since).
    pub fn held(&self, port: usize) -> u32 {
        self.count.get(port).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// New stations `port` did not learn (its limit, or a bucket full of others').
    pub fn refused(&self, port: usize) -> u64 {
        self.refused
            .get(port)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_move_age() {
        let f = Fdb::new(4, 64, 300);
        let a = [2, 0, 0, 0, 0, 1];
        assert_eq!(f.lookup(&a, 10), None);
        f.learn(&a, 1, 10);
        assert_eq!(f.lookup(&a, 11), Some(1));
        // the station moved
        f.learn(&a, 3, 20);
        assert_eq!(f.lookup(&a, 21), Some(3));
        assert_eq!(f.len(21), 1);
        // aged out
        assert_eq!(f.lookup(&a, 20 + 300), None);
        assert_eq!(f.sweep(20 + 301), 1);
        assert_eq!(f.len(20 + 301), 0);
        // multicast sources are never learned
        f.learn(&[1, 0, 0x5e, 0, 0, 1], 0, 5);
        assert_eq!(f.lookup(&[1, 0, 0x5e, 0, 0, 1], 5), None);
    }

    #[test]
    fn full_bucket_evicts_oldest_and_wraps() {
        let f = Fdb::new(4, 1000, 300);
        for i in 0..200u8 {
            f.learn(&[2, 0, 0, 0, 1, i], i % 4, 4090 + u64::from(i));
        }
        // the newest ones are found across the 4096-second wrap
        assert_eq!(f.lookup(&[2, 0, 0, 0, 1, 199], 4090 + 199), Some(199 % 4));
    }

    fn mac(i: u32) -> [u8; 6] {
        let b = i.to_be_bytes();
        [2, 0x11, b[0], b[1], b[2], b[3]]
    }

    #[test]
    fn port_limit_counts_refusals() {
        let f = Fdb::new(4, 100, 300);
        for i in 0..1000 {
            f.learn(&mac(i), 3, 10);
        }
        assert_eq!(f.held(3), 100);
        assert_eq!(f.refused(3), 900);
        assert_eq!(f.len(10), 100);
        assert_eq!(f.lookup(&mac(0), 10), Some(3));
        assert_eq!(f.lookup(&mac(500), 10), None);
        // a known station is still refreshed at the limit, other ports still learn
        f.learn(&mac(0), 3, 11);
        f.learn(&[2, 0, 0, 0, 0, 1], 1, 11);
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 1], 11), Some(1));
        // and a station of a full port cannot be moved onto it
        f.learn(&[2, 0, 0, 0, 0, 1], 3, 12);
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 1], 12), Some(1));
        // once its stations age out (swept), the port learns again (the 100 of port 3
        // and port 1's station learnt at the same time)
        assert_eq!(f.sweep(11 + 300), 101);
        assert_eq!(f.held(3), 0);
        f.learn(&mac(500), 3, 400);
        assert_eq!(f.lookup(&mac(500), 400), Some(3));
    }

    #[test]
    fn a_flood_never_evicts_another_ports_stations() {
        // 16,384 slots; port 0 holds 3,000 stations, then port 1 floods 200,000 (each
        // port may hold 8,192): full buckets refuse port 1 rather than evict port 0
        let f = Fdb::new(1, 8192, 300);
        for i in 0..3000 {
            f.learn(&mac(i), 0, 10);
        }
        // a port may replace its own oldest station in a full bucket: what port 0 holds
        // once it has learnt is what must survive port 1's flood
        let held: Vec<u32> = (0..3000)
            .filter(|&i| f.lookup(&mac(i), 11) == Some(0))
            .collect();
        assert!(held.len() > 2900, "{}", held.len());
        for i in 0..200_000 {
            f.learn(&mac(1_000_000 + i), 1, 20);
        }
        for &i in &held {
            assert_eq!(f.lookup(&mac(i), 21), Some(0), "station {i} lost");
        }
        assert!(f.held(1) <= 8192, "{}", f.held(1));
        // full buckets refuse (a port may still replace its own oldest station)
        assert!(f.refused(1) > 0);
    }

    #[test]
    fn buckets_are_keyed_per_table() {
        let (a, b) = (Fdb::new(4, 4096, 300), Fdb::new(4, 4096, 300));
        let ba: Vec<_> = (0..16).map(|i| a.bucket(mac_bits(&mac(i)))).collect();
        let bb: Vec<_> = (0..16).map(|i| b.bucket(mac_bits(&mac(i)))).collect();
        assert_ne!(ba, bb, "the same buckets under two keys");
    }
}
