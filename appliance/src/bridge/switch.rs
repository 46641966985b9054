//! The bridge's decision for a received frame, sans I/O: learn the source, find the
//! output ports, apply isolation and exceptions, pick the inspection worker. The receive
//! threads call it for every frame; the decode fuzz target calls it too.

use std::net::IpAddr;

use super::fdb::{Fdb, MAX_PORTS};
use super::isolate::{Isolation, IsolationSet};
use super::steer;

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Shorter than an Ethernet header.
    Runt,
    /// Its destination sits on the port it came from: not forwarded.
    SamePort,
    /// No other port to send it to.
    NoPort,
    /// An isolated host's frame outside its allow-list.
    Isolated,
    /// An exception host: forward uninspected.
    Exempt { mask: u16 },
    /// Inspect on `worker`, then forward to the ports in `mask`.
    Inspect {
        mask: u16,
        worker: usize,
        flooded: bool,
    },
}

/// Forwarding state shared by the receive threads (lock-free).
pub struct Switch {
    pub fdb: Fdb,
    pub isolation: Isolation,
    /// Exception hosts (replaced when the cloud changes exceptions).
    exempt_hosts: arc_swap::ArcSwap<Vec<IpAddr>>,
    /// Whether any exception host is set (read per frame before the list).
    any_exempt: std::sync::atomic::AtomicBool,
    /// Ports on the office side (LAN, SSIDs): exceptions name hosts there.
    internal: u16,
    /// Guest ports (SSID2): unicast to a destination not learnt there is not flooded
    /// to them.
    guest: u16,
    /// Unknown-unicast frames from each port not flooded to the guest ports (written by
    /// the port's receive thread).
    guest_pruned: [std::sync::atomic::AtomicU64; MAX_PORTS],
    nports: usize,
    nworkers: usize,
}

/// Stations a port may hold by default (`bridge.mac_limit_per_port`).
pub const DEFAULT_MAC_LIMIT: u32 = 4096;

impl Switch {
    /// `internal`: bit i set when port i is on the office side.
    pub fn new(
        nports: usize,
        internal: u16,
        nworkers: usize,
        ageing_secs: u32,
        isolation: IsolationSet,
        exempt_hosts: Vec<IpAddr>,
    ) -> Switch {
        Switch {
            fdb: Fdb::new(nports, DEFAULT_MAC_LIMIT, ageing_secs),
            isolation: Isolation::new(isolation),
            any_exempt: std::sync::atomic::AtomicBool::new(!exempt_hosts.is_empty()),
            exempt_hosts: arc_swap::ArcSwap::from_pointee(exempt_hosts),
            internal,
            guest: 0,
            guest_pruned: Default::default(),
            nports: nports.clamp(1, 15),
            nworkers: nworkers.max(1),
        }
    }

    /// The same switch with guest ports (`guest`: bit i set when port i is a guest
    /// network): they get broadcast and multicast, and unicast only to the stations
    /// learnt on them.
    pub fn with_guest(mut self, guest: u16) -> Switch {
        self.guest = guest;
        self
    }

    /// The same switch with a new (empty) MAC table where each port may hold `limit`
    /// stations.
    pub fn with_mac_limit(mut self, limit: u32, ageing_secs: u32) -> Switch {
        self.fdb = Fdb::new(self.nports, limit, ageing_secs);
        self
    }

    /// Unknown-unicast frames from `port` not flooded to the guest ports.
    pub fn guest_pruned(&self, port: usize) -> u64 {
        self.guest_pruned
            .get(port)
            .map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Replaces the exception hosts.
    pub fn set_exempt_hosts(&self, hosts: Vec<IpAddr>) {
        self.any_exempt
            .store(!hosts.is_empty(), std::sync::atomic::Ordering::Relaxed);
        self.exempt_hosts.store(std::sync::Arc::new(hosts));
    }

    /// Decide for a frame received on `in_port` at `now_s` (seconds, for MAC ageing).
    #[inline]
    pub fn decide(&self, in_port: usize, frame: &[u8], now_s: u64) -> Decision {
        if frame.len() < 14 || in_port >= self.nports {
            return Decision::Runt;
        }
        let dst: [u8; 6] = frame[0..6].try_into().unwrap_or_default();
        let src: [u8; 6] = frame[6..12].try_into().unwrap_or_default();
        self.fdb.learn(&src, in_port as u8, now_s);
        let all = ((1u32 << self.nports) - 1) as u16;
        let others = all & !(1 << in_port);
        let (mask, flooded) = if dst[0] & 1 != 0 {
            (others, true)
        } else {
            match self.fdb.lookup(&dst, now_s) {
                Some(p) if usize::from(p) == in_port => return Decision::SamePort,
                Some(p) if usize::from(p) < self.nports => (1 << p, false),
                // unknown: flooded, but never to a guest network, where it could
                // only be a station not learnt (a table full of a flood's MACs)
                _ if others & self.guest != 0 => {
                    let c = &self.guest_pruned[in_port];
                    c.store(
                        c.load(std::sync::atomic::Ordering::Relaxed).wrapping_add(1),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    (others & !self.guest, true)
                }
                _ => (others, true),
            }
        };
        if mask == 0 {
            return Decision::NoPort;
        }
        let key = steer::frame_key(frame);
        if self.internal & (1 << in_port) != 0 {
            self.isolation.observe(&src, &key, frame);
        }
        if !self.isolation.permits(&src, &dst, &key) {
            return Decision::Isolated;
        }
        // an exception host counts only where it lives: a frame claiming its address
        // from the WAN side is inspected like any other
        if self.any_exempt.load(std::sync::atomic::Ordering::Relaxed) {
            let hosts = self.exempt_hosts.load();
            let exempt = |ip: Option<IpAddr>| ip.is_some_and(|ip| hosts.contains(&ip));
            let from_inside = self.internal & (1 << in_port) != 0;
            let to_inside = mask & !self.internal == 0;
            if (from_inside && exempt(key.src)) || (to_inside && exempt(key.dst)) {
                return Decision::Exempt { mask };
            }
        }
        let worker = (steer::symmetric_hash(&key) % self.nworkers as u64) as usize;
        Decision::Inspect {
            mask,
            worker,
            flooded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::isolate::HostId;

    fn frame(src: [u8; 6], dst: [u8; 6], sip: [u8; 4], dip: [u8; 4]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2(src, dst)
            .ipv4(sip, dip, 64)
            .tcp(40000, 80, 1, 1000);
        let mut v = Vec::new();
        b.write(&mut v, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        v
    }

    #[test]
    fn learns_floods_and_forwards() {
        let sw = Switch::new(4, 0b1110, 3, 300, IsolationSet::default(), vec![]);
        let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
        // unknown destination: flooded to every other port
        let d = sw.decide(1, &frame(a, b, [198, 18, 0, 10], [198, 18, 0, 80]), 1);
        let Decision::Inspect {
            mask,
            worker,
            flooded,
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!((mask, flooded), (0b1101, true));
        // the answer goes back to port 1 only, on the same worker
        let d = sw.decide(0, &frame(b, a, [198, 18, 0, 80], [198, 18, 0, 10]), 1);
        assert_eq!(
            d,
            Decision::Inspect {
                mask: 0b0010,
                worker,
                flooded: false
            }
        );
        // now both are known: a frame to a station on its own port is not forwarded
        assert_eq!(
            sw.decide(
                0,
                &frame([2, 0, 0, 0, 0, 0xc], b, [198, 18, 0, 81], [198, 18, 0, 80]),
                1
            ),
            Decision::SamePort
        );
        assert_eq!(sw.decide(0, &[0u8; 10], 1), Decision::Runt);
    }

    #[test]
    fn isolation_and_exemption() {
        let iso = IsolationSet {
            hosts: vec![HostId::Ip("198.18.0.10".parse().unwrap())],
            allow: vec![],
        };
        let sw = Switch::new(2, 0b10, 1, 300, iso, vec!["198.18.0.11".parse().unwrap()]);
        assert_eq!(
            sw.decide(
                1,
                &frame([2; 6], [4; 6], [198, 18, 0, 10], [198, 18, 0, 80]),
                1
            ),
            Decision::Isolated
        );
        assert_eq!(
            sw.decide(
                1,
                &frame([6; 6], [4; 6], [198, 18, 0, 11], [198, 18, 0, 80]),
                1
            ),
            Decision::Exempt { mask: 1 }
        );
        // the exempt address claimed from the WAN port toward the WAN side is inspected
        assert!(matches!(
            sw.decide(
                0,
                &frame([8; 6], [10; 6], [198, 18, 0, 11], [198, 18, 0, 80]),
                1
            ),
            Decision::Inspect { .. }
        ));
    }

    #[test]
    fn unknown_unicast_is_not_flooded_to_the_guest_port() {
        // wan 0, lan 1, ssid1 2, ssid2 3 (guest)
        let sw = Switch::new(4, 0b1110, 1, 300, IsolationSet::default(), vec![])
            .with_mac_limit(16, 300)
            .with_guest(0b1000);
        let (lan, guest) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0x5]);
        let f = frame(lan, [2, 0, 0, 0, 0, 0x77], [198, 18, 0, 10], [198, 18, 0, 77]);
        assert!(matches!(
            sw.decide(1, &f, 1),
            Decision::Inspect { mask: 0b0101, flooded: true, .. }
        ));
        assert_eq!(sw.guest_pruned(1), 1);
        // broadcast still reaches the guests
        let b = frame(lan, [0xff; 6], [198, 18, 0, 10], [255, 255, 255, 255]);
        assert!(matches!(sw.decide(1, &b, 1), Decision::Inspect { mask: 0b1101, .. }));
        // a guest heard on ssid2 gets its unicast
        sw.decide(3, &frame(guest, [0xff; 6], [198, 18, 0, 12], [255, 255, 255, 255]), 1);
        let f = frame(lan, guest, [198, 18, 0, 10], [198, 18, 0, 12]);
        assert!(matches!(sw.decide(1, &f, 1), Decision::Inspect { mask: 0b1000, flooded: false, .. }));
        // a flood of MACs from ssid2 stops at its limit; LAN stations stay known
        for i in 0..1000u16 {
            let [x, y] = i.to_be_bytes();
            sw.decide(3, &frame([2, 9, 9, 9, x, y], [0xff; 6], [198, 18, 0, 12], [198, 18, 0, 1]), 2);
        }
        assert_eq!(sw.fdb.held(3), 16);
        assert!(sw.fdb.refused(3) >= 1000 - 16);
        let to_lan = frame([2, 0, 0, 0, 0, 1], lan, [198, 18, 0, 80], [198, 18, 0, 10]);
        assert!(matches!(sw.decide(0, &to_lan, 2), Decision::Inspect { mask: 0b0010, .. }));
        // unknown unicast from the guest port itself floods to the others as before
        let f = frame(guest, [2, 0, 0, 0, 0, 0x78], [198, 18, 0, 12], [198, 18, 0, 78]);
        assert!(matches!(sw.decide(3, &f, 2), Decision::Inspect { mask: 0b0111, .. }));
    }
}
