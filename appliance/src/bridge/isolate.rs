//! Host isolation ("logical unplug", SPEC §3.3): an isolated internal host's frames are
//! dropped except to an allow-list of destinations (and their answers); ARP and
//! neighbour discovery still pass so the allowed destinations stay reachable.
//!
//! The set is swapped as a whole (arc-swap) by the control path; the receive threads read
//! it only when something is isolated.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use super::steer::FrameKey;

/// An isolated host: by MAC or by IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostId {
    Mac([u8; 6]),
    Ip(IpAddr),
}

impl HostId {
    pub fn parse(s: &str) -> Result<HostId, String> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HostId::Ip(ip));
        }
        s.parse::<protocol::messages::Mac>()
            .map(|m| HostId::Mac(m.0))
            .map_err(|_| format!("`{s}` is neither an IP nor a MAC address"))
    }
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostId::Ip(ip) => write!(f, "{ip}"),
            HostId::Mac(m) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
        }
    }
}

/// A destination an isolated host may still reach: an IP, optionally one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowEntry {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl AllowEntry {
    /// `198.18.0.1`, `198.18.0.1:443`, `2001:db8::1`, `[2001:db8::1]:443`.
    pub fn parse(s: &str) -> Result<AllowEntry, String> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AllowEntry { ip, port: None });
        }
        if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
            return Ok(AllowEntry {
                ip: sa.ip(),
                port: Some(sa.port()),
            });
        }
        Err(format!("`{s}` is not IP or IP:PORT"))
    }

    fn matches(&self, ip: IpAddr, port: u16) -> bool {
        self.ip == ip && self.port.is_none_or(|p| p == port)
    }
}

/// The isolation at start (the configuration): the hosts, and what every isolated host
/// may reach (each host's default allow-list).
#[derive(Debug, Default, Clone)]
pub struct IsolationSet {
    pub hosts: Vec<HostId>,
    pub allow: Vec<AllowEntry>,
}

/// One isolated host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolated {
    /// As the command named it.
    pub id: HostId,
    /// Its Ethernet address: the id's, or the one seen using the id's IP. Every frame
    /// from or to it is the host's, whatever addresses (IPv4, IPv6, aliases) it uses.
    pub mac: Option<[u8; 6]>,
    /// What this host may reach besides the default list (the command's own entries).
    pub allow: Vec<AllowEntry>,
}

impl Isolated {
    fn new(id: HostId, mac: Option<[u8; 6]>, allow: &[AllowEntry]) -> Isolated {
        let mac = match id {
            HostId::Mac(m) => Some(m),
            HostId::Ip(_) => mac,
        };
        Isolated {
            id,
            mac,
            allow: allow.to_vec(),
        }
    }

    #[inline]
    fn is(&self, mac: &[u8; 6], ip: Option<IpAddr>) -> bool {
        self.mac.as_ref() == Some(mac) || matches!(self.id, HostId::Ip(x) if Some(x) == ip)
    }
}

/// The isolated hosts, as one snapshot.
#[derive(Debug, Default, Clone)]
pub struct IsolationState {
    pub hosts: Vec<Isolated>,
    /// What every isolated host may reach (`[isolation] allow`).
    pub default_allow: Vec<AllowEntry>,
}

impl IsolationState {
    fn allowed(&self, h: &Isolated, ip: IpAddr, port: u16) -> bool {
        self.default_allow
            .iter()
            .chain(&h.allow)
            .any(|a| a.matches(ip, port))
    }

    /// Whether a frame may pass (`true`) with respect to isolation.
    pub fn permits(&self, src_mac: &[u8; 6], dst_mac: &[u8; 6], k: &FrameKey) -> bool {
        if k.link_control {
            // ARP, neighbour discovery: keep addresses resolvable
            return true;
        }
        if let Some(h) = self.hosts.iter().find(|h| h.is(src_mac, k.src)) {
            return k.dst.is_some_and(|ip| self.allowed(h, ip, k.dport));
        }
        if let Some(h) = self.hosts.iter().find(|h| h.is(dst_mac, k.dst)) {
            // answers from an allowed destination
            return k.src.is_some_and(|ip| self.allowed(h, ip, k.sport));
        }
        true
    }

    fn pending(&self) -> bool {
        self.hosts.iter().any(|h| h.mac.is_none())
    }
}

/// Which Ethernet address uses which IP on the office side, as ARP and neighbour
/// discovery show it (only those frames feed it): isolating by IP binds the MAC at once
/// when the host has been heard. A small direct-mapped table behind a lock taken with
/// `try_lock` (a busy lock costs one observation, never a wait).
#[derive(Debug)]
struct Neighbours {
    slots: Mutex<Vec<Option<(IpAddr, [u8; 6])>>>,
    key: std::hash::RandomState,
}

const NEIGHBOURS: usize = 1024;

impl Default for Neighbours {
    fn default() -> Self {
        Neighbours {
            slots: Mutex::new(vec![None; NEIGHBOURS]),
            key: std::hash::RandomState::new(),
        }
    }
}

impl Neighbours {
    fn slot(&self, ip: &IpAddr) -> usize {
        self.key.hash_one(ip) as usize % NEIGHBOURS
    }

    fn note(&self, ip: IpAddr, mac: [u8; 6]) {
        let i = self.slot(&ip);
        if let Ok(mut s) = self.slots.try_lock() {
            if s[i] != Some((ip, mac)) {
                s[i] = Some((ip, mac));
            }
        }
    }

    fn get(&self, ip: IpAddr) -> Option<[u8; 6]> {
        let s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        s[self.slot(&ip)].filter(|(i, _)| *i == ip).map(|(_, m)| m)
    }
}

/// The sender of an ARP packet (IPv4 over Ethernet; untagged or one VLAN tag).
fn arp_sender(frame: &[u8]) -> Option<([u8; 6], IpAddr)> {
    let off = match frame.get(12..14)? {
        [0x08, 0x06] => 14,
        [0x81, 0x00] if frame.get(16..18)? == [0x08, 0x06] => 18,
        _ => return None,
    };
    let a = frame.get(off..off + 28)?;
    if a[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let mac: [u8; 6] = a[8..14].try_into().ok()?;
    let ip = std::net::Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    (!ip.is_unspecified()).then_some((mac, IpAddr::V4(ip)))
}

/// Shared isolation state: a snapshot swapped on change, and flags read per frame.
#[derive(Debug, Default)]
pub struct Isolation {
    set: ArcSwap<IsolationState>,
    any: AtomicBool,
    /// A host isolated by IP whose MAC is not known yet.
    pending: AtomicBool,
    neighbours: Neighbours,
}

impl Isolation {
    pub fn new(set: IsolationSet) -> Isolation {
        let state = IsolationState {
            hosts: set
                .hosts
                .iter()
                .map(|h| Isolated::new(*h, None, &[]))
                .collect(),
            default_allow: set.allow,
        };
        Isolation {
            any: AtomicBool::new(!state.hosts.is_empty()),
            pending: AtomicBool::new(state.pending()),
            set: ArcSwap::from_pointee(state),
            neighbours: Neighbours::default(),
        }
    }

    /// Whether any host is isolated (checked per frame before anything else).
    #[inline]
    pub fn active(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Arc<IsolationState> {
        self.set.load_full()
    }

    /// Whether a frame may pass. Per frame: a flag when nothing is isolated, else a
    /// borrowed look at the current set (no reference count touched).
    #[inline]
    pub fn permits(&self, src_mac: &[u8; 6], dst_mac: &[u8; 6], k: &FrameKey) -> bool {
        !self.active() || self.set.load().permits(src_mac, dst_mac, k)
    }

    /// A frame received from the office side: ARP and neighbour discovery teach which
    /// MAC uses which IP, and a host isolated by IP gets its MAC bound the first time
    /// it is seen using that IP. Per frame only a flag, unless a host waits for its MAC
    /// or the frame is ARP/ND.
    #[inline]
    pub fn observe(&self, src_mac: &[u8; 6], k: &FrameKey, frame: &[u8]) {
        if src_mac[0] & 1 != 0 {
            return;
        }
        let mut seen = k.src;
        if k.link_control {
            if let Some((mac, ip)) = arp_sender(frame) {
                if mac != *src_mac {
                    // an ARP whose sender is not the frame's: believe neither
                    return;
                }
                seen = Some(ip);
            }
            if let Some(ip) = seen.filter(|ip| !ip.is_unspecified()) {
                self.neighbours.note(ip, *src_mac);
            }
        }
        if self.pending.load(Ordering::Relaxed) {
            if let Some(ip) = seen {
                self.bind(ip, *src_mac);
            }
        }
    }

    /// Binds `mac` to the hosts isolated by `ip` that have none yet.
    fn bind(&self, ip: IpAddr, mac: [u8; 6]) {
        let cur = self.set.load();
        if !cur
            .hosts
            .iter()
            .any(|h| h.mac.is_none() && h.id == HostId::Ip(ip))
        {
            return;
        }
        drop(cur);
        self.set.rcu(|cur| {
            let mut s = (**cur).clone();
            for h in s.hosts.iter_mut() {
                if h.mac.is_none() && h.id == HostId::Ip(ip) {
                    h.mac = Some(mac);
                }
            }
            s
        });
        let pending = self.set.load().pending();
        self.pending.store(pending, Ordering::Relaxed);
        tracing::warn!(host = %ip, mac = %HostId::Mac(mac), "isolated host's MAC address seen: isolated on every address it uses");
    }

    /// The isolated hosts, for display.
    pub fn hosts(&self) -> Vec<String> {
        self.set
            .load()
            .hosts
            .iter()
            .map(|h| h.id.to_string())
            .collect()
    }

    /// The isolated hosts with their MAC and allow-lists, for display.
    pub fn details(&self) -> serde_json::Value {
        let s = self.set.load();
        let entry = |a: &AllowEntry| match a.port {
            Some(p) => std::net::SocketAddr::new(a.ip, p).to_string(),
            None => a.ip.to_string(),
        };
        serde_json::json!({
            "default_allow": s.default_allow.iter().map(entry).collect::<Vec<_>>(),
            "hosts": s.hosts.iter().map(|h| serde_json::json!({
                "host": h.id.to_string(),
                "mac": h.mac.map(|m| HostId::Mac(m).to_string()),
                "allow": h.allow.iter().map(entry).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// Isolate a host with only the default allow-list (no change if it already is).
    /// Returns whether it was new.
    pub fn isolate(&self, h: HostId) -> bool {
        self.isolate_with(h, &[])
    }

    /// Isolate a host; besides the default allow-list it may reach `allow` (replacing
    /// what an earlier command for the same host allowed). Returns whether it was new.
    /// By IP, its MAC is bound at once when ARP/ND showed it, else when it is first seen.
    pub fn isolate_with(&self, h: HostId, allow: &[AllowEntry]) -> bool {
        let known = match h {
            HostId::Ip(ip) => self.neighbours.get(ip),
            HostId::Mac(_) => None,
        };
        let mut new = false;
        self.set.rcu(|cur| {
            let mut s = (**cur).clone();
            match s.hosts.iter_mut().find(|x| x.id == h) {
                Some(x) => {
                    new = false;
                    x.allow = allow.to_vec();
                }
                None => {
                    new = true;
                    s.hosts.push(Isolated::new(h, known, allow));
                }
            }
            s
        });
        self.pending
            .store(self.set.load().pending(), Ordering::Relaxed);
        self.any.store(true, Ordering::Relaxed);
        new
    }

    /// Release a host (by the id it was isolated with, or by the MAC bound to it); its
    /// own allow-list goes with it. Returns whether it was isolated.
    pub fn release(&self, h: HostId) -> bool {
        let mut was = false;
        self.set.rcu(|cur| {
            let mut s = (**cur).clone();
            let before = s.hosts.len();
            s.hosts.retain(|x| match h {
                HostId::Mac(m) => x.id != h && x.mac != Some(m),
                HostId::Ip(_) => x.id != h,
            });
            was = s.hosts.len() != before;
            s
        });
        let s = self.set.load();
        self.pending.store(s.pending(), Ordering::Relaxed);
        self.any.store(!s.hosts.is_empty(), Ordering::Relaxed);
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(src: &str, sport: u16, dst: &str, dport: u16) -> FrameKey {
        FrameKey {
            src: Some(src.parse().unwrap()),
            dst: Some(dst.parse().unwrap()),
            sport,
            dport,
            proto: 6,
            ..FrameKey::default()
        }
    }

    #[test]
    fn parse_ids() {
        assert_eq!(
            HostId::parse("02:00:5E:00:00:01").unwrap(),
            HostId::Mac([2, 0, 0x5e, 0, 0, 1])
        );
        assert_eq!(
            HostId::parse("198.18.1.10").unwrap(),
            HostId::Ip("198.18.1.10".parse().unwrap())
        );
        assert!(HostId::parse("02:00:5e:00:00").is_err());
        assert_eq!(
            AllowEntry::parse("[2001:db8::1]:53").unwrap().port,
            Some(53)
        );
        assert_eq!(AllowEntry::parse("198.18.0.1").unwrap().port, None);
        assert!(AllowEntry::parse("198.18.0.1:x").is_err());
    }

    #[test]
    fn isolated_host_reaches_only_allow_list() {
        let iso = Isolation::new(IsolationSet {
            hosts: vec![],
            allow: vec![AllowEntry::parse("198.18.0.1:53").unwrap()],
        });
        let m_host = [2, 0, 0, 0, 0, 0x10];
        let m_gw = [2, 0, 0, 0, 0, 1];
        assert!(!iso.active());
        assert!(iso.isolate(HostId::parse("198.18.0.10").unwrap()));
        assert!(iso.active());
        let s = iso.snapshot();
        assert!(!s.permits(
            &m_host,
            &m_gw,
            &key("198.18.0.10", 40000, "198.18.0.80", 80)
        ));
        assert!(s.permits(&m_host, &m_gw, &key("198.18.0.10", 40000, "198.18.0.1", 53)));
        assert!(s.permits(&m_gw, &m_host, &key("198.18.0.1", 53, "198.18.0.10", 40000)));
        assert!(!s.permits(
            &m_gw,
            &m_host,
            &key("198.18.0.80", 80, "198.18.0.10", 40000)
        ));
        // other hosts are not touched
        assert!(s.permits(&m_gw, &m_gw, &key("198.18.0.11", 40000, "198.18.0.80", 80)));
        let arp = FrameKey {
            link_control: true,
            ..FrameKey::default()
        };
        assert!(s.permits(&m_host, &[0xff; 6], &arp));
        assert!(iso.release(HostId::parse("198.18.0.10").unwrap()));
        assert!(!iso.active());
        assert!(iso.snapshot().permits(
            &m_host,
            &m_gw,
            &key("198.18.0.10", 40000, "198.18.0.80", 80)
        ));
        // by MAC
        iso.isolate(HostId::Mac(m_host));
        assert!(!iso.snapshot().permits(
            &m_host,
            &m_gw,
            &key("198.18.0.10", 40000, "198.18.0.80", 80)
        ));
    }

    /// An IPv4 ARP request from `mac`/`ip` (to 198.18.0.1).
    fn arp(mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[198, 18, 0, 1]);
        f
    }

    #[test]
    fn isolation_by_ip_binds_the_mac_for_every_address() {
        let iso = Isolation::new(IsolationSet {
            hosts: vec![],
            allow: vec![AllowEntry::parse("198.18.0.1:53").unwrap()],
        });
        let m_host = [2, 0, 0, 0, 0, 0x10];
        let m_gw = [2, 0, 0, 0, 0, 1];
        assert!(iso.isolate(HostId::parse("198.18.0.10").unwrap()));
        // the MAC is not known yet: only the IP is isolated
        assert!(iso.permits(&m_host, &m_gw, &key("2001:db8::10", 4000, "2001:db8::82", 80)));
        // an ARP from the host binds its MAC
        let f = arp(m_host, [198, 18, 0, 10]);
        let k = crate::bridge::steer::frame_key(&f);
        iso.observe(&m_host, &k, &f);
        assert_eq!(iso.snapshot().hosts[0].mac, Some(m_host));
        // now IPv6 and an alias address are the same host, both ways
        for (src, dst) in [
            ("2001:db8::10", "2001:db8::82"),
            ("198.18.0.20", "198.18.0.82"),
        ] {
            assert!(!iso.permits(&m_host, &m_gw, &key(src, 40000, dst, 80)), "{src}");
            assert!(!iso.permits(&m_gw, &m_host, &key(dst, 80, src, 40000)), "{src}");
        }
        // the allow-list still holds from any of its addresses
        assert!(iso.permits(&m_host, &m_gw, &key("198.18.0.20", 4000, "198.18.0.1", 53)));
        // release by the bound MAC ends it
        assert!(iso.release(HostId::Mac(m_host)));
        assert!(!iso.active());
        assert!(iso.permits(&m_host, &m_gw, &key("2001:db8::10", 4000, "2001:db8::82", 80)));
    }

    #[test]
    fn a_known_neighbour_is_bound_at_once_and_spoofed_arp_ignored() {
        let iso = Isolation::new(IsolationSet::default());
        let (m_host, m_other, m_gw) = ([2, 0, 0, 0, 0, 0x10], [2, 0, 0, 0, 0, 0x11], [2; 6]);
        // an ARP whose sender MAC is not the frame's teaches nothing
        let mut f = arp(m_host, [198, 18, 0, 10]);
        f[6..12].copy_from_slice(&m_other);
        iso.observe(&m_other, &crate::bridge::steer::frame_key(&f), &f);
        let f = arp(m_host, [198, 18, 0, 10]);
        iso.observe(&m_host, &crate::bridge::steer::frame_key(&f), &f);
        iso.isolate(HostId::parse("198.18.0.10").unwrap());
        assert_eq!(iso.snapshot().hosts[0].mac, Some(m_host));
        assert!(!iso.permits(&m_host, &m_gw, &key("2001:db8::10", 4000, "2001:db8::82", 80)));
        assert!(iso.permits(&m_other, &m_gw, &key("198.18.0.11", 4000, "198.18.0.82", 80)));
    }

    #[test]
    fn allow_lists_are_per_host_and_go_with_the_release() {
        let iso = Isolation::new(IsolationSet {
            hosts: vec![],
            allow: vec![AllowEntry::parse("198.18.0.1:53").unwrap()],
        });
        let (a, b, gw) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb], [2; 6]);
        iso.isolate_with(HostId::Mac(a), &[AllowEntry::parse("198.18.0.80:80").unwrap()]);
        iso.isolate(HostId::Mac(b));
        let www = key("198.18.0.10", 4000, "198.18.0.80", 80);
        let dns = key("198.18.0.10", 4000, "198.18.0.1", 53);
        assert!(iso.permits(&a, &gw, &www));
        assert!(!iso.permits(&b, &gw, &www), "b got a's allow-list");
        assert!(iso.permits(&b, &gw, &dns), "the default list");
        // released and isolated again: a's own entry is gone
        assert!(iso.release(HostId::Mac(a)));
        iso.isolate(HostId::Mac(a));
        assert!(!iso.permits(&a, &gw, &www));
        assert!(iso.snapshot().hosts.iter().all(|h| h.allow.is_empty()));
        // isolating again replaces the host's list
        iso.isolate_with(HostId::Mac(a), &[AllowEntry::parse("198.18.0.81").unwrap()]);
        assert!(iso.permits(&a, &gw, &key("198.18.0.10", 4000, "198.18.0.81", 443)));
        assert_eq!(iso.snapshot().hosts.len(), 2);
    }
}
