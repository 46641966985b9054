//! The hand-over's guard: what of the bridged segment may reach the management stack.
//!
//! The stack belongs to the management side (the `wan` port unless `management.side`
//! names another): DHCP, ARP and DNS are believed only from frames that arrived there. A
//! receive thread owns one [`Gate`] for its port:
//!
//! - management side: frames for the stack (its MAC, broadcasts) pass through a token
//!   bucket per source MAC — a small one for broadcasts, a large one for unicast — and
//!   broadcasts may hold only [`BROADCAST_SHARE`] of the stack's input queue, so a
//!   broadcast flood never crowds out the gateway's unicast answers;
//! - any other port (the office: LAN, SSIDs): nothing reaches the stack. ARP requests for
//!   the management address and ICMP echo requests to it are answered by the stack thread
//!   from fixed templates, without touching smoltcp (its neighbour cache, DHCP and DNS
//!   never see office frames), at the small rate per source; everything else is dropped;
//! - an isolated host's frames are dropped before any of this.
//!
//! Each drop is counted ([`super::MgmtCounters`], `ctl stats` → `mgmt`).

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

use super::Mgmt;

/// Slots in a gate's table of sources (per port).
pub(crate) const SOURCES: usize = 256;
/// Slots looked at for one source: the least recently seen of them is replaced.
const PROBE: usize = 4;
/// Unicast frames per second and burst from one source on the management side.
pub(crate) const FAST: Bucket = Bucket::new(5_000, 5_000);
/// Broadcasts (management side) and office frames (answered ARP and ping) per second and
/// burst from one source.
pub(crate) const SLOW: Bucket = Bucket::new(50, 100);
/// Broadcast frames waiting in the stack's input queue at most (of `INPUT_QUEUE`).
pub(crate) const BROADCAST_SHARE: usize = 32;
/// Office frames (to be answered) waiting in the input queue at most.
pub(crate) const OFFICE_SHARE: usize = 16;

const ETH_ARP: u16 = 0x0806;
const ETH_IPV4: u16 = 0x0800;

/// A token bucket's rate and burst (frames).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    per_s: u32,
    burst: u32,
}

impl Bucket {
    pub(crate) const fn new(per_s: u32, burst: u32) -> Bucket {
        Bucket { per_s, burst }
    }
}

/// One source's buckets, in thousandths of a frame.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    mac: [u8; 6],
    used: bool,
    last_ms: u64,
    fast: u64,
    fast_ms: u64,
    slow: u64,
    slow_ms: u64,
}

/// Which bucket a frame draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Fast,
    Slow,
}

/// Token buckets per source MAC in a fixed table (no allocation after creation). Sources
/// beyond its size replace the least recently seen of a few slots, with a full bucket:
/// many sources together are bounded by the queue shares, not here.
pub(crate) struct Limiter {
    slots: Box<[Slot]>,
    key: u64,
}

impl Limiter {
    pub(crate) fn new() -> Limiter {
        Limiter {
            slots: vec![Slot::default(); SOURCES].into_boxed_slice(),
            key: rand::random(),
        }
    }

    fn index(&self, mac: &[u8; 6]) -> usize {
        let mut v = [0u8; 8];
        v[..6].copy_from_slice(mac);
        // keyed multiply-xorshift: a source cannot choose MACs that share slots
        let mut h = u64::from_le_bytes(v) ^ self.key;
        h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 32;
        (h as usize) % SOURCES
    }

    /// Takes one frame from `mac`'s bucket of `class` at `now_ms`; false when empty.
    pub(crate) fn allow(&mut self, mac: &[u8; 6], class: Class, now_ms: u64) -> bool {
        let start = self.index(mac);
        let mut pick = start;
        let mut found = false;
        for i in 0..PROBE {
            let j = (start + i) % SOURCES;
            let s = &self.slots[j];
            if s.used && s.mac == *mac {
                pick = j;
                found = true;
                break;
            }
            let p = &self.slots[pick];
            if !s.used || (p.used && s.last_ms < p.last_ms) {
                pick = j;
            }
        }
        let s = &mut self.slots[pick];
        if !found {
            *s = Slot {
                mac: *mac,
                used: true,
                last_ms: now_ms,
                fast: u64::from(FAST.burst) * 1000,
                fast_ms: now_ms,
                slow: u64::from(SLOW.burst) * 1000,
                slow_ms: now_ms,
            };
        }
        s.last_ms = now_ms;
        let (tokens, at, b) = match class {
            Class::Fast => (&mut s.fast, &mut s.fast_ms, FAST),
            Class::Slow => (&mut s.slow, &mut s.slow_ms, SLOW),
        };
        let elapsed = now_ms.saturating_sub(*at);
        *at = now_ms;
        *tokens = (*tokens + elapsed * u64::from(b.per_s)).min(u64::from(b.burst) * 1000);
        if *tokens >= 1000 {
            *tokens -= 1000;
            true
        } else {
            false
        }
    }
}

/// What the guard makes of an office-side frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Office {
    /// An ARP request for the management address, or a ping to it: answered.
    Answer,
    /// Anything else: dropped.
    Drop,
}

/// Whether an office-side frame is one the guard answers (its address is `ours`).
pub(crate) fn office(frame: &[u8], mac: &[u8; 6], ours: Option<Ipv4Addr>) -> Office {
    let Some(ours) = ours else {
        return Office::Drop;
    };
    match ethertype(frame) {
        Some(ETH_ARP) if is_arp_request_for(frame, ours) => Office::Answer,
        Some(ETH_IPV4) if frame[..6] == *mac && is_echo_request_to(frame, ours) => Office::Answer,
        _ => Office::Drop,
    }
}

fn ethertype(frame: &[u8]) -> Option<u16> {
    frame.get(12..14).map(|e| u16::from_be_bytes([e[0], e[1]]))
}

fn unicast_ip(ip: [u8; 4]) -> bool {
    let a = Ipv4Addr::from(ip);
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast())
}

fn is_arp_request_for(frame: &[u8], ours: Ipv4Addr) -> bool {
    let Some(a) = frame.get(14..42) else {
        return false;
    };
    a[..8] == [0, 1, 8, 0, 6, 4, 0, 1]
        && a[8] & 1 == 0
        && unicast_ip([a[14], a[15], a[16], a[17]])
        && a[24..28] == ours.octets()
}

/// An IPv4 header without fragmentation, its length and the ICMP echo request after it.
fn is_echo_request_to(frame: &[u8], ours: Ipv4Addr) -> bool {
    let Some(ip) = frame.get(14..) else {
        return false;
    };
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    ihl >= 20
        && total >= ihl + 8
        && total <= ip.len()
        && frag == 0
        && ip[9] == 1
        && ip[16..20] == ours.octets()
        && unicast_ip([ip[12], ip[13], ip[14], ip[15]])
        && ip[ihl] == 8
        && ip[ihl + 1] == 0
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes into `out` the answer to an office frame [`office`] accepted: an ARP reply or
/// an ICMP echo reply from `mac`/`ours`. False when the frame is not one of those (the
/// address changed since).
pub(crate) fn answer(frame: &[u8], mac: &[u8; 6], ours: Ipv4Addr, out: &mut Vec<u8>) -> bool {
    out.clear();
    if office(frame, mac, Some(ours)) != Office::Answer {
        return false;
    }
    let src = &frame[6..12];
    match ethertype(frame) {
        Some(ETH_ARP) => {
            let a = &frame[14..42];
            out.extend_from_slice(src);
            out.extend_from_slice(mac);
            out.extend_from_slice(&ETH_ARP.to_be_bytes());
            out.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
            out.extend_from_slice(mac);
            out.extend_from_slice(&ours.octets());
            out.extend_from_slice(&a[8..14]); // the asker's MAC
            out.extend_from_slice(&a[14..18]); // and IP
            out.resize(60, 0);
            true
        }
        Some(ETH_IPV4) => {
            let ip = &frame[14..];
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let icmp = &ip[ihl..total];
            out.extend_from_slice(src);
            out.extend_from_slice(mac);
            out.extend_from_slice(&ETH_IPV4.to_be_bytes());
            let len = (20 + icmp.len()) as u16;
            let [l0, l1] = len.to_be_bytes();
            // a fresh header without options: no id, don't fragment, TTL 64
            out.extend_from_slice(&[0x45, 0, l0, l1, 0, 0, 0x40, 0, 64, 1, 0, 0]);
            out.extend_from_slice(&ours.octets());
            out.extend_from_slice(&ip[12..16]);
            let c = checksum(&out[14..34]).to_be_bytes();
            out[24..26].copy_from_slice(&c);
            let at = out.len();
            out.extend_from_slice(icmp);
            out[at] = 0; // echo reply
            out[at + 2..at + 4].copy_from_slice(&[0, 0]);
            let c = checksum(&out[at..]).to_be_bytes();
            out[at + 2..at + 4].copy_from_slice(&c);
            if out.len() < 60 {
                out.resize(60, 0);
            }
            true
        }
        _ => false,
    }
}

/// A receive thread's guard for its port: the source table and whether the port is the
/// management side.
pub struct Gate {
    mgmt: Mgmt,
    port: u8,
    side: bool,
    limiter: Limiter,
}

impl Gate {
    pub(super) fn new(mgmt: Mgmt, port: u8, side: bool) -> Gate {
        Gate {
            mgmt,
            port,
            side,
            limiter: Limiter::new(),
        }
    }

    /// Whether a frame to `dst` is for the stack (its MAC or broadcast).
    #[inline]
    pub fn wants(&self, dst: &[u8; 6]) -> bool {
        self.mgmt.wants(dst)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mgmt.mac()
    }

    /// Hands a frame `wants` accepted to the stack, or answers or drops it (counted).
    /// `isolated`: its sender is isolated. `partial`: its TCP/UDP checksum is left to
    /// offload. `now_ms`: a monotonic clock for the buckets.
    pub fn offer(&mut self, frame: &[u8], partial: bool, isolated: bool, now_ms: u64) {
        let c = &self.mgmt.inner.shared.counters;
        if frame.len() < 14 {
            c.rx_dropped.fetch_add(1, Relaxed);
            return;
        }
        if isolated {
            c.isolated_dropped.fetch_add(1, Relaxed);
            return;
        }
        let src: [u8; 6] = frame[6..12].try_into().unwrap_or_default();
        if !self.side {
            let ours = self.mgmt.inner.shared.ipv4();
            if office(frame, &self.mgmt.inner.mac, ours) == Office::Drop {
                c.office_dropped.fetch_add(1, Relaxed);
            } else if !self.limiter.allow(&src, Class::Slow, now_ms) {
                c.rate_limited.fetch_add(1, Relaxed);
            } else {
                self.mgmt.enqueue_office(frame, self.port);
            }
            return;
        }
        let broadcast = frame[0] & 1 != 0;
        let class = if broadcast { Class::Slow } else { Class::Fast };
        if !self.limiter.allow(&src, class, now_ms) {
            let n = if broadcast {
                &c.broadcast_limited
            } else {
                &c.rate_limited
            };
            n.fetch_add(1, Relaxed);
            return;
        }
        if partial {
            self.mgmt.deliver_checksum_partial(frame);
        } else {
            self.mgmt.deliver(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0x5e, 0, 0, 1];
    const OURS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 120);

    fn arp(op: u16, src: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src);
        f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&src);
        f.extend_from_slice(&sender);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f.resize(60, 0);
        f
    }

    fn ping(dst_mac: [u8; 6], src_ip: [u8; 4], dst_ip: [u8; 4]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x10], dst_mac)
            .ipv4(src_ip, dst_ip, 64)
            .icmpv4_echo_request(7, 1);
        let mut v = Vec::new();
        b.write(&mut v, b"abcdefgh").unwrap();
        v
    }

    #[test]
    fn office_frames_answered_are_arp_requests_and_pings_for_us_only() {
        let pc = [2, 0, 0, 0, 0, 0x10];
        let req = arp(1, pc, [198, 18, 0, 10], OURS.octets());
        assert_eq!(office(&req, &MAC, Some(OURS)), Office::Answer);
        assert_eq!(office(&req, &MAC, None), Office::Drop, "no address yet");
        // a spoofed reply claiming the gateway, a gratuitous ARP, a request for another host
        let spoof = arp(2, pc, [198, 18, 0, 1], OURS.octets());
        assert_eq!(office(&spoof, &MAC, Some(OURS)), Office::Drop);
        let grat = arp(1, pc, [198, 18, 0, 1], [198, 18, 0, 1]);
        assert_eq!(office(&grat, &MAC, Some(OURS)), Office::Drop);
        let other = arp(1, pc, [198, 18, 0, 10], [198, 18, 0, 1]);
        assert_eq!(office(&other, &MAC, Some(OURS)), Office::Drop);
        // ping: to our MAC and address only
        let p = ping(MAC, [198, 18, 0, 10], OURS.octets());
        assert_eq!(office(&p, &MAC, Some(OURS)), Office::Answer);
        assert_eq!(
            office(
                &ping([0xff; 6], [198, 18, 0, 10], OURS.octets()),
                &MAC,
                Some(OURS)
            ),
            Office::Drop
        );
        assert_eq!(
            office(
                &ping(MAC, [198, 18, 0, 10], [198, 18, 0, 1]),
                &MAC,
                Some(OURS)
            ),
            Office::Drop
        );
        // DHCP offers, DNS answers, TCP: dropped
        let b = etherparse::PacketBuilder::ethernet2(pc, MAC)
            .ipv4([198, 18, 0, 10], OURS.octets(), 64)
            .udp(67, 68);
        let mut dhcp = Vec::new();
        b.write(&mut dhcp, &[0u8; 300]).unwrap();
        assert_eq!(office(&dhcp, &MAC, Some(OURS)), Office::Drop);
        assert_eq!(office(&dhcp[..10], &MAC, Some(OURS)), Office::Drop);
    }

    #[test]
    fn answers_are_well_formed() {
        let pc = [2, 0, 0, 0, 0, 0x10];
        let mut out = Vec::new();
        assert!(answer(
            &arp(1, pc, [198, 18, 0, 10], OURS.octets()),
            &MAC,
            OURS,
            &mut out
        ));
        assert_eq!(&out[..6], &pc);
        assert_eq!(&out[6..12], &MAC);
        assert_eq!(&out[20..22], &[0, 2], "a reply");
        assert_eq!(&out[22..28], &MAC);
        assert_eq!(&out[28..32], &OURS.octets());
        assert_eq!(&out[38..42], &[198, 18, 0, 10]);

        let p = ping(MAC, [198, 18, 0, 10], OURS.octets());
        assert!(answer(&p, &MAC, OURS, &mut out));
        {
            let s = etherparse::SlicedPacket::from_ethernet(&out).expect("parses");
            let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else {
                panic!("no IPv4")
            };
            assert_eq!(ip.header().source(), OURS.octets());
            assert_eq!(ip.header().destination(), [198, 18, 0, 10]);
        }
        assert_eq!(checksum(&out[14..34]), 0, "IP checksum");
        assert_eq!(checksum(&out[34..]), 0, "ICMP checksum");
        assert_eq!(out[34], 0, "echo reply");
        assert_eq!(&out[42..50], b"abcdefgh");
        // no answer for what is not ours
        assert!(!answer(
            &arp(2, pc, [198, 18, 0, 1], OURS.octets()),
            &MAC,
            OURS,
            &mut out
        ));
    }

    #[test]
    fn a_source_gets_its_rate_and_others_are_unaffected() {
        let mut l = Limiter::new();
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let passed = (0..1_000)
            .filter(|_| l.allow(&a, Class::Slow, 1_000))
            .count();
        assert_eq!(passed, SLOW.burst as usize, "the burst, then nothing");
        // another source, and the same source's unicast bucket, are untouched
        assert!(l.allow(&b, Class::Slow, 1_000));
        assert!(l.allow(&a, Class::Fast, 1_000));
        // refilled at the rate: 100 ms → 5 frames
        let passed = (0..100).filter(|_| l.allow(&a, Class::Slow, 1_100)).count();
        assert_eq!(passed, (SLOW.per_s / 10) as usize);
        // a later burst is capped at the burst size
        let passed = (0..1_000)
            .filter(|_| l.allow(&a, Class::Slow, 1_000_000))
            .count();
        assert_eq!(passed, SLOW.burst as usize);
    }

    #[test]
    fn a_flood_of_sources_never_starves_the_gateway() {
        let mut l = Limiter::new();
        let gw = [2, 0, 0, 0, 0, 0xaa];
        // a flood of random sources, each over its budget; the gateway's unicast in between
        for i in 0..20_000u32 {
            let [x, y, z, w] = (i % 5_000).to_be_bytes();
            let now = u64::from(i / 10); // 10 frames per ms
            let _ = l.allow(&[2, 1, x, y, z, w], Class::Slow, now);
            if i % 16 == 0 {
                assert!(l.allow(&gw, Class::Fast, now), "gateway refused at {i}");
            }
        }
        assert_eq!(l.slots.len(), SOURCES, "the table does not grow");
    }
}

#[cfg(test)]
mod gate_tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use smoltcp::wire::Ipv4Cidr;

    use super::*;
    use crate::mgmt::{Addressing, MgmtConfig};

    const MAC: [u8; 6] = [2, 0, 0x5e, 0, 0, 1];
    const OURS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 120);

    fn stack() -> (Mgmt, mpsc::Receiver<(Vec<u8>, Option<u8>)>) {
        let (tx, rx) = mpsc::channel();
        let cfg = MgmtConfig {
            mac: MAC,
            addressing: Addressing::Static {
                cidr: Ipv4Cidr::new(OURS, 24),
                gateway: Some(Ipv4Addr::new(198, 18, 0, 1)),
                dns: vec![],
            },
            hostname: None,
        };
        let sink = Box::new(move |f: &[u8], p: Option<u8>| {
            let _ = tx.send((f.to_vec(), p));
        });
        (Mgmt::spawn(cfg, sink).expect("spawn"), rx)
    }

    fn arp(op: u16, dst: [u8; 6], src: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&src);
        f.extend_from_slice(&sender);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f.resize(60, 0);
        f
    }

    fn wait_for(m: &Mgmt, f: impl Fn(&super::super::MgmtCounters) -> bool) {
        for _ in 0..200 {
            if f(&m.status().counters) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("counters: {:?}", m.status().counters);
    }

    #[test]
    fn the_office_side_never_reaches_the_stack() {
        let (m, rx) = stack();
        let pc = [2, 0, 0, 0, 0, 0x10];
        let mut lan = m.gate(1, false);
        // a spoofed ARP reply claiming the gateway: dropped, never answered
        lan.offer(
            &arp(2, MAC, pc, [198, 18, 0, 1], OURS.octets()),
            false,
            false,
            1,
        );
        assert_eq!(m.status().counters.office_dropped, 1);
        assert_eq!(m.status().counters.rx_frames, 0);
        // an ARP request for our address: answered out port 1, by the guard
        lan.offer(
            &arp(1, [0xff; 6], pc, [198, 18, 0, 10], OURS.octets()),
            false,
            false,
            1,
        );
        let (f, port) = rx.recv_timeout(Duration::from_secs(5)).expect("an answer");
        assert_eq!(port, Some(1));
        assert_eq!(&f[..6], &pc);
        assert_eq!(&f[20..22], &[0, 2]);
        wait_for(&m, |c| c.office_answered == 1);
        assert_eq!(m.status().counters.rx_frames, 0, "smoltcp saw nothing");
        // an isolated host gets nothing
        lan.offer(
            &arp(1, [0xff; 6], pc, [198, 18, 0, 10], OURS.octets()),
            false,
            true,
            1,
        );
        assert_eq!(m.status().counters.isolated_dropped, 1);
        // the management side: the same request goes to smoltcp, which answers out WAN
        let mut wan = m.gate(0, true);
        let gw = [2, 0, 0, 0, 0, 1];
        wan.offer(
            &arp(1, [0xff; 6], gw, [198, 18, 0, 1], OURS.octets()),
            false,
            false,
            1,
        );
        let (f, port) = rx.recv_timeout(Duration::from_secs(5)).expect("an answer");
        assert_eq!(port, None, "the stack's own frame");
        assert_eq!(&f[..6], &gw);
        assert_eq!(m.status().counters.rx_frames, 1);
        m.shutdown();
    }

    #[test]
    fn broadcasts_are_limited_per_source_and_unicast_still_passes() {
        let (m, _rx) = stack();
        let mut wan = m.gate(0, true);
        let flooder = [2, 0, 0, 0, 0, 0x66];
        let bcast = arp(1, [0xff; 6], flooder, [198, 18, 0, 66], [198, 18, 0, 1]);
        for _ in 0..1_000 {
            wan.offer(&bcast, false, false, 7);
        }
        let c = m.status().counters;
        assert!(
            c.broadcast_limited >= 1_000 - u64::from(SLOW.burst),
            "{c:?}"
        );
        // the gateway's unicast to us still goes through
        let gw = [2, 0, 0, 0, 0, 1];
        let before = m.status().counters.rx_frames;
        for _ in 0..100 {
            wan.offer(
                &arp(2, MAC, gw, [198, 18, 0, 1], OURS.octets()),
                false,
                false,
                7,
            );
        }
        wait_for(&m, |c| c.rx_frames + c.rx_dropped >= before + 100);
        let c = m.status().counters;
        assert_eq!(c.rx_frames, before + 100, "{c:?}");
        m.shutdown();
    }
}
