//! Host isolation ("logical unplug", SPEC §3.3): an isolated internal host's frames are
//! dropped except to an allow-list of destinations (and their answers); ARP and
//! neighbour discovery still pass so the allowed destinations stay reachable.
//!
//! The set is swapped as a whole (arc-swap) by the control path; the receive threads read
//! it only when something is isolated.

use std::net::IpAddr;
use std::sync::Arc;
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

/// The isolated hosts and the allow-list, as one snapshot.
#[derive(Debug, Default, Clone)]
pub struct IsolationSet {
    pub hosts: Vec<HostId>,
    pub allow: Vec<AllowEntry>,
}

impl IsolationSet {
    fn is_isolated(&self, mac: &[u8; 6], ip: Option<IpAddr>) -> bool {
        self.hosts.iter().any(|h| match h {
            HostId::Mac(m) => m == mac,
            HostId::Ip(i) => Some(*i) == ip,
        })
    }

    /// Whether a frame may pass (`true`) with respect to isolation.
    pub fn permits(&self, src_mac: &[u8; 6], dst_mac: &[u8; 6], k: &FrameKey) -> bool {
        if k.link_control {
            // ARP, neighbour discovery: keep addresses resolvable
            return true;
        }
        if self.is_isolated(src_mac, k.src) {
            return k
                .dst
                .is_some_and(|ip| self.allow.iter().any(|a| a.matches(ip, k.dport)));
        }
        if self.is_isolated(dst_mac, k.dst) {
            // answers from an allowed destination
            return k
                .src
                .is_some_and(|ip| self.allow.iter().any(|a| a.matches(ip, k.sport)));
        }
        true
    }
}

/// Shared isolation state: a snapshot swapped on change, and a flag read per frame.
#[derive(Debug, Default)]
pub struct Isolation {
    set: ArcSwap<IsolationSet>,
    any: AtomicBool,
}

impl Isolation {
    pub fn new(set: IsolationSet) -> Isolation {
        let any = !set.hosts.is_empty();
        Isolation {
            set: ArcSwap::from_pointee(set),
            any: AtomicBool::new(any),
        }
    }

    /// Whether any host is isolated (checked per frame before anything else).
    #[inline]
    pub fn active(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Arc<IsolationSet> {
        self.set.load_full()
    }

    /// Whether a frame may pass. Per frame: a flag when nothing is isolated, else a
    /// borrowed look at the current set (no reference count touched).
    #[inline]
    pub fn permits(&self, src_mac: &[u8; 6], dst_mac: &[u8; 6], k: &FrameKey) -> bool {
        !self.active() || self.set.load().permits(src_mac, dst_mac, k)
    }

    /// The isolated hosts, for display.
    pub fn hosts(&self) -> Vec<String> {
        self.set
            .load()
            .hosts
            .iter()
            .map(|h| h.to_string())
            .collect()
    }

    /// Isolate a host (no change if it already is). Returns whether it was new.
    pub fn isolate(&self, h: HostId) -> bool {
        let mut new = false;
        self.set.rcu(|cur| {
            let mut s = (**cur).clone();
            new = !s.hosts.contains(&h);
            if new {
                s.hosts.push(h);
            }
            s
        });
        self.any.store(true, Ordering::Relaxed);
        new
    }

    /// Adds destinations isolated hosts may reach (no duplicates).
    pub fn allow(&self, entries: &[AllowEntry]) {
        self.set.rcu(|cur| {
            let mut s = (**cur).clone();
            for e in entries {
                if !s.allow.contains(e) {
                    s.allow.push(*e);
                }
            }
            s
        });
    }

    /// Release a host. Returns whether it was isolated.
    pub fn release(&self, h: HostId) -> bool {
        let mut was = false;
        self.set.rcu(|cur| {
            let mut s = (**cur).clone();
            let before = s.hosts.len();
            s.hosts.retain(|x| *x != h);
            was = s.hosts.len() != before;
            s
        });
        self.any
            .store(!self.set.load().hosts.is_empty(), Ordering::Relaxed);
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
}
