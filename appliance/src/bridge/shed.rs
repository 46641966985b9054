//! Fair shedding ahead of the inspection queues: under load an attacker chooses (a flood),
//! the frames of the heaviest hosts are dropped so everyone else keeps being inspected.
//! Nothing is forwarded uninspected for load: bypass is for a stalled or dead worker only
//! (the watchdog decides that).
//!
//! Each receive thread owns one [`Shedder`] (no lock, no allocation per frame). While every
//! queue it feeds is below a quarter of its size nothing is counted (one look at the
//! queues per received batch). Above that, each frame's sender is counted in a fixed table
//! of [`SLOTS`] buckets keyed by a keyed hash (random key per start) of the sender: the
//! source MAC on the office ports (a station), the source IP address on the WAN port
//! (every frame from there carries the router's MAC). Counts halve every [`WINDOW_MS`], so
//! a bucket's count is its recent rate in frames. Each port publishes its heaviest bucket's
//! count; the largest of these is the appliance's heaviest sender.
//!
//! Above the high-water mark (`watchdog.shed_percent` of the queue) a frame is shed when
//! its sender sends at least half as much as the heaviest sender: the flood goes, a
//! download at a fraction of the flood's frame rate is untouched, and hosts sending alike
//! share alike. A frame that finds the queue full anyway is dropped too (`shed_full`),
//! whoever sent it: it is never forwarded uninspected.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets per receive thread.
pub const SLOTS: usize = 1024;
/// Counts halve this often (milliseconds).
pub const WINDOW_MS: u64 = 100;
/// A sender is never shed below this count (about 80 frames a second): a light host is
/// not shed because everyone is light.
const MIN_SHED: u32 = 16;

/// Who sent a frame, as the bridge tells hosts apart: the MAC on office ports, the IP
/// address (when there is one) on the WAN port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sender {
    pub mac: [u8; 6],
    pub ip: Option<IpAddr>,
}

/// Reads the sender of an Ethernet frame (no allocation; VLAN tags skipped).
pub fn sender(frame: &[u8]) -> Sender {
    let mut s = Sender::default();
    if frame.len() < 14 {
        return s;
    }
    s.mac.copy_from_slice(&frame[6..12]);
    let mut off = 12;
    let mut et = u16::from_be_bytes([frame[12], frame[13]]);
    for _ in 0..2 {
        if (et == 0x8100 || et == 0x88a8) && frame.len() >= off + 6 {
            et = u16::from_be_bytes([frame[off + 4], frame[off + 5]]);
            off += 4;
        }
    }
    let ip = &frame[(off + 2).min(frame.len())..];
    s.ip = match et {
        0x0800 if ip.len() >= 20 && ip[0] >> 4 == 4 => {
            Some(IpAddr::from([ip[12], ip[13], ip[14], ip[15]]))
        }
        0x86dd if ip.len() >= 40 && ip[0] >> 4 == 6 => {
            let a: [u8; 16] = ip[8..24].try_into().unwrap_or_default();
            Some(IpAddr::from(a))
        }
        _ => None,
    };
    s
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    /// Frames offered (decayed).
    count: u32,
    /// The window `count` was last brought up to date in.
    window: u32,
    /// Frames of this bucket shed so far (not decayed).
    shed: u64,
    /// The last sender counted here.
    who: Sender,
}

/// Per-port shedding counters and the port's heaviest sender, for `ctl stats` and the
/// load report (written by the port's receive thread only).
#[derive(Debug, Default)]
pub struct ShedCounters {
    /// Frames of the heaviest senders dropped above the high-water mark.
    pub shed: AtomicU64,
    /// Frames dropped because the queue (or the port's buffer pool) was full.
    pub shed_full: AtomicU64,
    /// The port's heaviest bucket's count (frames per window, decayed); 0 while calm.
    pub peak: AtomicU64,
    /// The sender most shed from lately: MAC in the low 48 bits, bit 63 set when known.
    pub top_mac: AtomicU64,
    /// Its IP address (IPv4 mapped into IPv6), 0 when none.
    pub top_ip: [AtomicU64; 2],
    /// Frames shed from that sender's bucket.
    pub top_shed: AtomicU64,
}

impl ShedCounters {
    /// The sender most shed from lately, with its shed frames.
    pub fn top(&self) -> Option<(Sender, u64)> {
        let m = self.top_mac.load(Ordering::Relaxed);
        if m & (1 << 63) == 0 {
            return None;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&m.to_be_bytes()[2..]);
        let ip = (u128::from(self.top_ip[0].load(Ordering::Relaxed)) << 64)
            | u128::from(self.top_ip[1].load(Ordering::Relaxed));
        let ip = (ip != 0).then(|| {
            let v6 = std::net::Ipv6Addr::from(ip);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        });
        Some((Sender { mac, ip }, self.top_shed.load(Ordering::Relaxed)))
    }

    /// Frames dropped for load (both kinds).
    pub fn total(&self) -> u64 {
        self.shed.load(Ordering::Relaxed) + self.shed_full.load(Ordering::Relaxed)
    }

    fn publish_top(&self, who: &Sender, shed: u64) {
        let mut m = [0u8; 8];
        m[2..].copy_from_slice(&who.mac);
        let ip = match who.ip {
            Some(IpAddr::V4(a)) => u128::from(a.to_ipv6_mapped()),
            Some(IpAddr::V6(a)) => u128::from(a),
            None => 0,
        };
        self.top_ip[0].store((ip >> 64) as u64, Ordering::Relaxed);
        self.top_ip[1].store(ip as u64, Ordering::Relaxed);
        self.top_shed.store(shed, Ordering::Relaxed);
        self.top_mac
            .store(u64::from_be_bytes(m) | 1 << 63, Ordering::Relaxed);
    }
}

/// What to do with a frame bound for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Queue it for inspection.
    Queue,
    /// Drop it: its sender is among the heaviest and the queue is above the high-water mark.
    Shed,
}

/// One receive thread's shedding state.
pub struct Shedder {
    hasher: std::collections::hash_map::RandomState,
    slots: Box<[Slot]>,
    /// Key the WAN port's senders by IP address (else by MAC).
    by_ip: bool,
    window: u32,
    /// This port's heaviest bucket's count in this window.
    peak: u32,
    /// Queue length from which senders are counted.
    count_from: usize,
    /// Queue length from which the heaviest senders are shed.
    high_water: usize,
    /// Counting this batch (some queue is past `count_from`).
    active: bool,
    /// The heaviest sender across ports, read once per batch.
    global_peak: u32,
    /// The bucket shed from most, published to the counters.
    top: Option<usize>,
}

impl Shedder {
    /// A shedder for queues of `queue` frames, shedding above `percent` of it; `by_ip`
    /// on the WAN port.
    pub fn new(queue: usize, percent: u8, by_ip: bool) -> Shedder {
        let high_water = (queue * usize::from(percent.clamp(1, 100)) / 100).max(1);
        Shedder {
            hasher: std::collections::hash_map::RandomState::new(),
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            by_ip,
            window: 0,
            peak: 0,
            count_from: (queue / 4).min(high_water / 2),
            high_water,
            active: false,
            global_peak: 0,
            top: None,
        }
    }

    /// Once per received batch: the time, whether any queue this port feeds is long
    /// enough to count senders, and the heaviest sender of every port (`peaks`).
    pub fn begin_batch(
        &mut self,
        now_ms: u64,
        longest_queue: usize,
        peaks: impl Iterator<Item = u64>,
        mine: &ShedCounters,
    ) {
        let w = (now_ms / WINDOW_MS) as u32;
        if w != self.window {
            let d = w.wrapping_sub(self.window).min(31);
            self.peak >>= d;
            self.window = w;
        }
        self.active = longest_queue >= self.count_from;
        mine.peak.store(
            if self.active { u64::from(self.peak) } else { 0 },
            Ordering::Relaxed,
        );
        self.global_peak = if self.active {
            peaks.max().unwrap_or(0).min(u64::from(u32::MAX)) as u32
        } else {
            0
        };
        self.global_peak = self.global_peak.max(self.peak);
    }

    /// For a frame bound for a worker whose queue holds `queued` frames.
    #[inline]
    pub fn judge(&mut self, frame: &[u8], queued: usize, c: &ShedCounters) -> Verdict {
        if !self.active {
            return Verdict::Queue;
        }
        let who = sender(frame);
        let h = match (self.by_ip, who.ip) {
            (true, Some(ip)) => self.hasher.hash_one(ip),
            _ => self.hasher.hash_one(who.mac),
        };
        let i = (h as usize) % SLOTS;
        let s = &mut self.slots[i];
        if s.window != self.window {
            s.count >>= self.window.wrapping_sub(s.window).min(31);
            s.window = self.window;
        }
        s.count = s.count.saturating_add(1);
        s.who = who;
        self.peak = self.peak.max(s.count);
        // the heaviest senders go first: at least half the heaviest sender's rate
        if queued >= self.high_water
            && s.count >= MIN_SHED
            && u64::from(s.count) * 2 >= u64::from(self.global_peak)
        {
            s.shed += 1;
            let shed = s.shed;
            let replace = match self.top {
                Some(t) if t == i => true,
                Some(t) => self.slots[t].shed < shed,
                None => true,
            };
            if replace {
                // published when it changes, then now and then
                if self.top != Some(i) || shed & 0xff == 0 {
                    c.publish_top(&who, shed);
                }
                self.top = Some(i);
            }
            return Verdict::Shed;
        }
        Verdict::Queue
    }
}

/// Reports load on the watchdog thread: when a port starts shedding (or a stalled
/// worker's frames start bypassing inspection) a warning is logged and an alert record
/// (EVE, and the uplink's spool) is made, at most once per [`REPORT_EVERY`] per port and
/// kind.
pub struct LoadReporter {
    /// Per port: (shed total, bypass total) at the last look.
    last: Vec<(u64, u64)>,
    /// Per port: when each kind was last reported.
    said: Vec<[Option<std::time::Instant>; 2]>,
}

/// Least time between two load alerts of one port and kind.
pub const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl LoadReporter {
    pub fn new(ports: usize) -> LoadReporter {
        LoadReporter {
            last: vec![(0, 0); ports],
            said: vec![[None, None]; ports],
        }
    }

    /// Looks at the counters (about once a second); returns the records to write.
    pub fn look(
        &mut self,
        ports: &[(super::Role, String)],
        counters: &[super::run::PortCounters],
        ts_us: u64,
    ) -> Vec<crate::pipeline::Record> {
        let mut out = Vec::new();
        for (i, ((role, _), c)) in ports.iter().zip(counters).enumerate() {
            let shed = c.shed.total();
            let bypass = c.bypass_stalled.load(Ordering::Relaxed);
            let (ls, lb) = self.last[i];
            self.last[i] = (shed, bypass);
            for (k, grew) in [(0, shed > ls), (1, bypass > lb)] {
                if !grew || self.said[i][k].is_some_and(|t| t.elapsed() < REPORT_EVERY) {
                    continue;
                }
                self.said[i][k] = Some(std::time::Instant::now());
                let top = if k == 0 { c.shed.top() } else { None };
                let meta = crate::events::meta::LoadMeta {
                    kind: if k == 0 { "shed" } else { "bypass" },
                    port: role.as_str().to_string(),
                    host_mac: top.map(|(w, _)| crate::events::eve::mac(w.mac)),
                    host_ip: top.and_then(|(w, _)| w.ip).map(|ip| ip.to_string()),
                    host_shed: top.map_or(0, |t| t.1),
                    shed: c.shed.shed.load(Ordering::Relaxed),
                    shed_full: c.shed.shed_full.load(Ordering::Relaxed),
                    bypass_stalled: bypass,
                };
                if k == 0 {
                    tracing::warn!(
                        port = role.as_str(),
                        host_mac = meta.host_mac.as_deref().unwrap_or(""),
                        host_ip = meta.host_ip.as_deref().unwrap_or(""),
                        shed = meta.shed,
                        shed_full = meta.shed_full,
                        "inspection overloaded: shedding the heaviest senders' frames (nothing bypasses inspection)"
                    );
                } else {
                    tracing::warn!(
                        port = role.as_str(),
                        bypass_stalled = bypass,
                        "a stalled worker's frames are forwarded uninspected"
                    );
                }
                out.push(load_record(meta, top.map(|t| t.0), ts_us));
            }
        }
        out
    }
}

/// The alert record of a load report.
fn load_record(
    meta: crate::events::meta::LoadMeta,
    who: Option<Sender>,
    ts_us: u64,
) -> crate::pipeline::Record {
    let unspecified = IpAddr::from([0u8, 0, 0, 0]);
    let src = who.and_then(|w| w.ip).unwrap_or(unspecified);
    let dst = if src.is_ipv6() {
        IpAddr::from([0u8; 16])
    } else {
        unspecified
    };
    crate::pipeline::Record {
        kind: crate::pipeline::RecordKind::Alert,
        ts_us,
        pcap_cnt: 0,
        rule: None,
        blocked: meta.kind == "shed",
        src,
        dst,
        sport: 0,
        dport: 0,
        proto: 0,
        icmp: None,
        flow_id: 0,
        dir: crate::flow::Dir::ToServer,
        app_proto: None,
        app_failed: false,
        eth: who.map(|w| (w.mac, [0; 6])),
        vlan: [0; 2],
        ttl: 0,
        ip_len: 0,
        meta: Some(Box::new(crate::events::meta::EventMeta {
            load: Some(meta),
            ..Default::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(mac: u8, ip: [u8; 4]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, mac], [2, 0, 0, 0, 0, 0xff])
            .ipv4(ip, [198, 18, 0, 80], 64)
            .udp(4000, 5201);
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        v
    }

    #[test]
    fn reads_the_sender() {
        let f = udp(7, [198, 18, 0, 10]);
        let s = sender(&f);
        assert_eq!(s.mac, [2, 0, 0, 0, 0, 7]);
        assert_eq!(s.ip, Some("198.18.0.10".parse().unwrap()));
        for n in 0..f.len() {
            let _ = sender(&f[..n]);
        }
    }

    #[test]
    fn sheds_the_heaviest_and_keeps_the_light() {
        let c = ShedCounters::default();
        let mut sh = Shedder::new(1000, 50, false);
        let flood = udp(1, [198, 18, 0, 10]);
        let light = udp(2, [198, 18, 0, 11]);
        let (mut shed_flood, mut shed_light, mut light_n) = (0, 0, 0);
        for t in 0..2000u64 {
            // queue above the high-water mark all along
            sh.begin_batch(t, 600, std::iter::once(c.peak.load(Ordering::Relaxed)), &c);
            for k in 0..32 {
                let f = if k == 0 { &light } else { &flood };
                let v = sh.judge(f, 600, &c);
                if k == 0 {
                    light_n += 1;
                    shed_light += u32::from(v == Verdict::Shed);
                } else {
                    shed_flood += u32::from(v == Verdict::Shed);
                }
            }
        }
        assert_eq!(shed_light, 0, "the light host was shed ({light_n} frames)");
        assert!(shed_flood > 60_000 - 1000, "{shed_flood}");
        let (who, n) = c.top().expect("a top sender");
        assert_eq!(who.mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(who.ip, Some("198.18.0.10".parse().unwrap()));
        assert!(n > 0);
        // below the high-water mark nothing is shed; calm queues count nothing
        assert_eq!(sh.judge(&flood, 100, &c), Verdict::Queue);
        sh.begin_batch(5000, 0, std::iter::empty(), &c);
        assert_eq!(sh.judge(&flood, 600, &c), Verdict::Queue);
        assert_eq!(c.peak.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn by_ip_on_the_wan_side() {
        let c = ShedCounters::default();
        let mut sh = Shedder::new(1000, 50, true);
        // one router MAC, two senders behind it
        let flood = udp(9, [198, 18, 0, 80]);
        let light = udp(9, [198, 18, 0, 81]);
        let mut shed_light = 0;
        for t in 0..500u64 {
            sh.begin_batch(t, 900, std::iter::empty(), &c);
            for k in 0..16 {
                let f = if k == 0 { &light } else { &flood };
                let v = sh.judge(f, 900, &c);
                if k == 0 {
                    shed_light += u32::from(v == Verdict::Shed);
                }
            }
        }
        assert_eq!(shed_light, 0);
        assert!(c.shed.load(Ordering::Relaxed) == 0, "the caller counts");
        assert_eq!(
            c.top().map(|t| t.0.ip),
            Some(Some("198.18.0.80".parse().unwrap()))
        );
    }
}
