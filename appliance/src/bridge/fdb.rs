//! MAC learning (the forwarding database): which port a station was last heard on.
//!
//! Lock-free: a fixed table of 4-way buckets of `AtomicU64` entries packing the MAC
//! (48 bits), the port + 1 (4 bits) and the time it was last heard in seconds modulo
//! 4096 (12 bits). Receive threads learn and look up without locks; the worst a race can
//! do is learn the same station twice (the newest entry wins). `sweep` forgets stations
//! not heard for the ageing time, so no entry lives long enough for the clock to wrap.

use std::sync::atomic::{AtomicU64, Ordering};

const WAYS: usize = 4;
const TIME_MASK: u64 = 0xfff;

pub struct Fdb {
    slots: Box<[AtomicU64]>,
    buckets: usize,
    ageing: u64,
}

fn mac_bits(mac: &[u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]])
}

#[inline]
fn unpack(e: u64) -> (u64, Option<u8>, u64) {
    let port = ((e >> 12) & 0xf) as u8;
    (e >> 16, port.checked_sub(1), e & TIME_MASK)
}

impl Fdb {
    /// A table for about `capacity` stations; forget after `ageing_secs` (< 4096).
    pub fn new(capacity: usize, ageing_secs: u32) -> Fdb {
        let buckets = (capacity / WAYS).next_power_of_two().max(16);
        Fdb {
            slots: (0..buckets * WAYS).map(|_| AtomicU64::new(0)).collect(),
            buckets,
            ageing: u64::from(ageing_secs.min(4000)),
        }
    }

    fn bucket(&self, m: u64) -> usize {
        let h = m.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((h >> 32) as usize & (self.buckets - 1)) * WAYS
    }

    fn age(&self, now: u64, t: u64) -> u64 {
        // another thread may have stored a second later than this thread's clock: an
        // age just below the wrap is such a fresh entry, not an old one
        let a = (now.wrapping_sub(t)) & TIME_MASK;
        if a > 4000 { 0 } else { a }
    }

    /// `mac` was heard on `port` (0..15) at `now_secs`. Multicast sources are ignored.
    #[inline]
    pub fn learn(&self, mac: &[u8; 6], port: u8, now_secs: u64) {
        if mac[0] & 1 != 0 || port > 14 {
            return;
        }
        let m = mac_bits(mac);
        let now = now_secs & TIME_MASK;
        let want = m << 16 | u64::from(port + 1) << 12 | now;
        let b = self.bucket(m);
        let mut victim = b;
        let mut victim_age = 0;
        for i in b..b + WAYS {
            let e = self.slots[i].load(Ordering::Relaxed);
            let (em, ep, et) = unpack(e);
            if e != 0 && em == m {
                // refresh only when something changed: no store per frame
                if ep != Some(port) || et != now {
                    self.slots[i].store(want, Ordering::Relaxed);
                }
                return;
            }
            let age = if e == 0 { u64::MAX } else { self.age(now, et) };
            if age > victim_age {
                victim = i;
                victim_age = age;
            }
        }
        self.slots[victim].store(want, Ordering::Relaxed);
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

    /// Forget stations older than the ageing time (run every few seconds).
    pub fn sweep(&self, now_secs: u64) -> usize {
        let now = now_secs & TIME_MASK;
        let mut n = 0;
        for s in self.slots.iter() {
            let e = s.load(Ordering::Relaxed);
            if e != 0 && self.age(now, e & TIME_MASK) >= self.ageing {
                let _ = s.compare_exchange(e, 0, Ordering::Relaxed, Ordering::Relaxed);
                n += 1;
            }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_move_age() {
        let f = Fdb::new(64, 300);
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
        let f = Fdb::new(16, 300);
        for i in 0..200u8 {
            f.learn(&[2, 0, 0, 0, 1, i], i % 4, 4090 + u64::from(i));
        }
        // the newest ones are found across the 4096-second wrap
        assert_eq!(f.lookup(&[2, 0, 0, 0, 1, 199], 4090 + 199), Some(199 % 4));
    }
}
