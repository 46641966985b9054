//! Address and port groups: `any`, CIDRs, ranges, lists, negation and `$VARIABLES`, with
//! Suricata's default variable values.
//!
//! A group is compiled to sorted, disjoint ranges, so a lookup is a binary search.

use std::collections::HashMap;
use std::net::IpAddr;

/// Why an address or port expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("unknown variable ${0}")]
    UnknownVar(String),
    #[error("bad address `{0}`")]
    BadAddr(String),
    #[error("bad port `{0}`")]
    BadPort(String),
    #[error("unbalanced brackets in `{0}`")]
    Brackets(String),
    #[error("variable ${0} refers to itself")]
    Recursive(String),
    #[error("group `{0}` matches nothing")]
    Empty(String),
}

/// A set of IPv4 and IPv6 addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    any: bool,
}

impl AddrSet {
    pub fn any() -> AddrSet {
        AddrSet {
            v4: vec![(0, u32::MAX)],
            v6: vec![(0, u128::MAX)],
            any: true,
        }
    }
    fn empty() -> AddrSet {
        AddrSet {
            v4: Vec::new(),
            v6: Vec::new(),
            any: false,
        }
    }
    pub fn is_any(&self) -> bool {
        self.any
    }
    /// Number of addresses covered, IPv4 and IPv6 counted separately (saturating).
    pub fn size(&self) -> (u64, u128) {
        let v4 = self.v4.iter().map(|(a, b)| (*b - *a) as u64 + 1).sum();
        let v6 = self.v6.iter().fold(0u128, |acc, (a, b)| {
            acc.saturating_add((*b - *a).saturating_add(1))
        });
        (v4, v6)
    }

    /// The IPv4 ranges (inclusive).
    pub fn v4_ranges(&self) -> &[(u32, u32)] {
        &self.v4
    }

    /// The IPv6 ranges (inclusive).
    pub fn v6_ranges(&self) -> &[(u128, u128)] {
        &self.v6
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.any {
            return true;
        }
        match ip {
            IpAddr::V4(a) => contains(&self.v4, u32::from(a)),
            IpAddr::V6(a) => contains(&self.v6, u128::from(a)),
        }
    }
    fn union(mut self, o: &AddrSet) -> AddrSet {
        self.v4.extend_from_slice(&o.v4);
        self.v6.extend_from_slice(&o.v6);
        self.v4 = normalize(self.v4);
        self.v6 = normalize(self.v6);
        self.any = is_full(&self.v4, u32::MAX) && is_full(&self.v6, u128::MAX);
        self
    }
    fn complement(&self) -> AddrSet {
        let v4 = complement(&self.v4, u32::MAX);
        let v6 = complement(&self.v6, u128::MAX);
        AddrSet {
            any: is_full(&v4, u32::MAX) && is_full(&v6, u128::MAX),
            v4,
            v6,
        }
    }
    fn minus(&self, o: &AddrSet) -> AddrSet {
        // a \ b = a ∩ ¬b = ¬(¬a ∪ b)
        self.complement().union(o).complement()
    }
    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// A set of ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet {
    ranges: Vec<(u16, u16)>,
    any: bool,
}

impl PortSet {
    pub fn any() -> PortSet {
        PortSet {
            ranges: vec![(0, u16::MAX)],
            any: true,
        }
    }
    pub fn is_any(&self) -> bool {
        self.any
    }
    pub fn contains(&self, port: u16) -> bool {
        self.any || contains(&self.ranges, port)
    }
    /// The single port when the set is exactly one port.
    pub fn single(&self) -> Option<u16> {
        match self.ranges.as_slice() {
            [(a, b)] if a == b => Some(*a),
            _ => None,
        }
    }
    fn from_ranges(r: Vec<(u16, u16)>) -> PortSet {
        let ranges = normalize(r);
        PortSet {
            any: is_full(&ranges, u16::MAX),
            ranges,
        }
    }
}

fn contains<T: Ord + Copy>(ranges: &[(T, T)], v: T) -> bool {
    // ranges are sorted and disjoint: find the last range starting at or before v
    let idx = ranges.partition_point(|r| r.0 <= v);
    idx > 0 && ranges[idx - 1].1 >= v
}

trait Bound: Ord + Copy {
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
    const ZERO: Self;
}
macro_rules! bound {
    ($($t:ty),*) => {$(impl Bound for $t {
        fn succ(self) -> Option<Self> { self.checked_add(1) }
        fn pred(self) -> Option<Self> { self.checked_sub(1) }
        const ZERO: Self = 0;
    })*};
}
bound!(u16, u32, u128);

fn normalize<T: Bound>(mut r: Vec<(T, T)>) -> Vec<(T, T)> {
    r.sort();
    let mut out: Vec<(T, T)> = Vec::with_capacity(r.len());
    for (a, b) in r {
        if let Some(last) = out.last_mut() {
            let adjacent = last.1.succ().is_none_or(|n| n >= a);
            if adjacent {
                if b > last.1 {
                    last.1 = b;
                }
                continue;
            }
        }
        out.push((a, b));
    }
    out
}

fn complement<T: Bound>(r: &[(T, T)], max: T) -> Vec<(T, T)> {
    let mut out = Vec::new();
    let mut next = Some(T::ZERO);
    for &(a, b) in r {
        if let Some(n) = next {
            if a > n {
                if let Some(p) = a.pred() {
                    out.push((n, p));
                }
            }
        }
        next = b.succ();
    }
    if let Some(n) = next {
        out.push((n, max));
    }
    out
}

fn is_full<T: Bound>(r: &[(T, T)], max: T) -> bool {
    r.len() == 1 && r[0] == (T::ZERO, max)
}

/// Address and port variables (`vars.address-groups` / `vars.port-groups`).
#[derive(Debug, Clone)]
pub struct Vars {
    pub addr: HashMap<String, String>,
    pub port: HashMap<String, String>,
}

impl Default for Vars {
    /// Suricata's default `suricata.yaml` groups.
    fn default() -> Vars {
        let mut addr = HashMap::new();
        addr.insert(
            "HOME_NET".into(),
            "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]".into(),
        );
        addr.insert("EXTERNAL_NET".into(), "!$HOME_NET".into());
        for v in [
            "HTTP_SERVERS",
            "SMTP_SERVERS",
            "SQL_SERVERS",
            "DNS_SERVERS",
            "TELNET_SERVERS",
            "AIM_SERVERS",
            "DC_SERVERS",
            "DNP3_SERVER",
            "DNP3_CLIENT",
            "MODBUS_CLIENT",
            "MODBUS_SERVER",
            "ENIP_CLIENT",
            "ENIP_SERVER",
        ] {
            addr.insert(v.into(), "$HOME_NET".into());
        }
        let mut port = HashMap::new();
        for (k, v) in [
            ("HTTP_PORTS", "80"),
            ("SHELLCODE_PORTS", "!80"),
            ("ORACLE_PORTS", "1521"),
            ("SSH_PORTS", "22"),
            ("DNP3_PORTS", "20000"),
            ("MODBUS_PORTS", "502"),
            ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
            ("FTP_PORTS", "21"),
            ("GENEVE_PORTS", "6081"),
            ("VXLAN_PORTS", "4789"),
            ("TEREDO_PORTS", "3544"),
            ("SIP_PORTS", "[5060,5061]"),
        ] {
            port.insert(k.into(), v.into());
        }
        Vars { addr, port }
    }
}

/// Split a bracketed list at top-level commas.
fn split_list(s: &str) -> Result<Vec<&str>, ()> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth < 0 {
                    return Err(());
                }
            }
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(());
    }
    out.push(s[start..].trim());
    Ok(out)
}

const MAX_VAR_DEPTH: usize = 16;

impl Vars {
    /// Parse an address expression.
    pub fn parse_addr(&self, s: &str) -> Result<AddrSet, AddrError> {
        let set = self.addr_expr(s.trim(), 0)?;
        if set.is_empty() {
            return Err(AddrError::Empty(s.to_string()));
        }
        Ok(set)
    }

    fn addr_expr(&self, s: &str, depth: usize) -> Result<AddrSet, AddrError> {
        if depth > MAX_VAR_DEPTH {
            return Err(AddrError::Recursive(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix('!') {
            return Ok(self.addr_expr(rest.trim(), depth + 1)?.complement());
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| AddrError::Brackets(s.into()))?;
            let items = split_list(inner).map_err(|_| AddrError::Brackets(s.into()))?;
            let mut pos = AddrSet::empty();
            let mut neg = AddrSet::empty();
            let mut any_pos = false;
            for it in items {
                if it.is_empty() {
                    continue;
                }
                if let Some(n) = it.strip_prefix('!') {
                    neg = neg.union(&self.addr_expr(n.trim(), depth + 1)?);
                } else {
                    any_pos = true;
                    pos = pos.union(&self.addr_expr(it, depth + 1)?);
                }
            }
            if !any_pos {
                pos = AddrSet::any();
            }
            return Ok(pos.minus(&neg));
        }
        if let Some(name) = s.strip_prefix('$') {
            let v = self
                .addr
                .get(name)
                .ok_or_else(|| AddrError::UnknownVar(name.into()))?;
            return self.addr_expr(v.trim(), depth + 1);
        }
        if s.eq_ignore_ascii_case("any") {
            return Ok(AddrSet::any());
        }
        parse_cidr(s)
    }

    /// Parse a port expression.
    pub fn parse_ports(&self, s: &str) -> Result<PortSet, AddrError> {
        let r = self.port_expr(s.trim(), 0)?;
        if r.is_empty() {
            return Err(AddrError::Empty(s.to_string()));
        }
        Ok(PortSet::from_ranges(r))
    }

    fn port_expr(&self, s: &str, depth: usize) -> Result<Vec<(u16, u16)>, AddrError> {
        if depth > MAX_VAR_DEPTH {
            return Err(AddrError::Recursive(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix('!') {
            return Ok(complement(
                &normalize(self.port_expr(rest.trim(), depth + 1)?),
                u16::MAX,
            ));
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| AddrError::Brackets(s.into()))?;
            let items = split_list(inner).map_err(|_| AddrError::Brackets(s.into()))?;
            let mut pos = Vec::new();
            let mut neg = Vec::new();
            let mut any_pos = false;
            for it in items {
                if it.is_empty() {
                    continue;
                }
                if let Some(n) = it.strip_prefix('!') {
                    neg.extend(self.port_expr(n.trim(), depth + 1)?);
                } else {
                    any_pos = true;
                    pos.extend(self.port_expr(it, depth + 1)?);
                }
            }
            if !any_pos {
                pos.push((0, u16::MAX));
            }
            // pos \ neg
            let notpos = complement(&normalize(pos), u16::MAX);
            let mut u = notpos;
            u.extend(neg);
            return Ok(complement(&normalize(u), u16::MAX));
        }
        if let Some(name) = s.strip_prefix('$') {
            let v = self
                .port
                .get(name)
                .ok_or_else(|| AddrError::UnknownVar(name.into()))?;
            return self.port_expr(v.trim(), depth + 1);
        }
        if s.eq_ignore_ascii_case("any") {
            return Ok(vec![(0, u16::MAX)]);
        }
        let bad = || AddrError::BadPort(s.to_string());
        if let Some((a, b)) = s.split_once(':') {
            let a = if a.trim().is_empty() {
                0
            } else {
                a.trim().parse().map_err(|_| bad())?
            };
            let b = if b.trim().is_empty() {
                u16::MAX
            } else {
                b.trim().parse().map_err(|_| bad())?
            };
            if a > b {
                return Err(bad());
            }
            return Ok(vec![(a, b)]);
        }
        let p: u16 = s.parse().map_err(|_| bad())?;
        Ok(vec![(p, p)])
    }
}

fn parse_cidr(s: &str) -> Result<AddrSet, AddrError> {
    let bad = || AddrError::BadAddr(s.to_string());
    let (ip, prefix) = match s.split_once('/') {
        Some((a, p)) => (a.trim(), Some(p.trim())),
        None => (s, None),
    };
    // `a.b.c.d-e.f.g.h` ranges
    if prefix.is_none() {
        if let Some((a, b)) = ip.split_once('-') {
            let a: IpAddr = a.trim().parse().map_err(|_| bad())?;
            let b: IpAddr = b.trim().parse().map_err(|_| bad())?;
            let mut set = AddrSet::empty();
            match (a, b) {
                (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => set.v4.push((a.into(), b.into())),
                (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => set.v6.push((a.into(), b.into())),
                _ => return Err(bad()),
            }
            return Ok(set);
        }
    }
    let addr: IpAddr = ip.parse().map_err(|_| bad())?;
    let mut set = AddrSet::empty();
    match addr {
        IpAddr::V4(a) => {
            let bits: u32 = match prefix {
                None => 32,
                Some(p) if p.contains('.') => {
                    let m: std::net::Ipv4Addr = p.parse().map_err(|_| bad())?;
                    u32::from(m).count_ones()
                }
                Some(p) => p.parse().map_err(|_| bad())?,
            };
            if bits > 32 {
                return Err(bad());
            }
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let lo = u32::from(a) & mask;
            set.v4.push((lo, lo | !mask));
        }
        IpAddr::V6(a) => {
            let bits: u32 = match prefix {
                None => 128,
                Some(p) => p.parse().map_err(|_| bad())?,
            };
            if bits > 128 {
                return Err(bad());
            }
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            let lo = u128::from(a) & mask;
            set.v6.push((lo, lo | !mask));
        }
    }
    Ok(set)
}

#[cfg(test)]
mod test {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_home_and_external() {
        let v = Vars::default();
        let home = v.parse_addr("$HOME_NET").unwrap();
        let ext = v.parse_addr("$EXTERNAL_NET").unwrap();
        assert!(home.contains(ip("10.1.2.3")) && home.contains(ip("192.168.1.1")));
        assert!(!home.contains(ip("8.8.8.8")) && ext.contains(ip("8.8.8.8")));
        assert!(!ext.contains(ip("172.16.5.5")) && ext.contains(ip("172.32.0.1")));
        assert!(ext.contains(ip("2001:db8::1")));
    }

    #[test]
    fn lists_with_negation() {
        let v = Vars::default();
        let s = v.parse_addr("[10.0.0.0/8,!10.1.0.0/16,192.0.2.1]").unwrap();
        assert!(s.contains(ip("10.2.0.1")) && !s.contains(ip("10.1.0.1")));
        assert!(s.contains(ip("192.0.2.1")) && !s.contains(ip("192.0.2.2")));
        let only_neg = v.parse_addr("[!1.2.3.4]").unwrap();
        assert!(only_neg.contains(ip("1.2.3.5")) && !only_neg.contains(ip("1.2.3.4")));
        assert!(v.parse_addr("$NOPE").is_err());
        assert!(v.parse_addr("[1.2.3.4").is_err());
        assert!(v.parse_addr("1.2.3.4/33").is_err());
        assert!(v.parse_addr("!any").is_err());
    }

    #[test]
    fn ports() {
        let v = Vars::default();
        let p = v.parse_ports("[80,1024:,!8080]").unwrap();
        assert!(p.contains(80) && p.contains(1024) && !p.contains(8080) && !p.contains(81));
        let s = v.parse_ports("$SHELLCODE_PORTS").unwrap();
        assert!(!s.contains(80) && s.contains(81));
        assert!(v.parse_ports("$FILE_DATA_PORTS").unwrap().contains(143));
        assert!(v.parse_ports("70000").is_err());
        assert!(v.parse_ports(":100").unwrap().contains(0));
    }
}
