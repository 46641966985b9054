//! Steering: a light look at a frame's headers (no checksum, no allocation) giving the
//! addresses and ports, and a symmetric hash so both directions of a flow meet the same
//! worker.
//!
//! The hash covers the address pair, protocol and VLAN — not the ports: fragments carry no
//! ports after the first, and a segment sent as fragments (or behind more extension
//! headers than are read here) must meet the same worker as the rest of its flow, or a
//! blocked flow could be continued past inspection on another worker. The price is that
//! all conversations of one host pair share a worker.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// What the bridge needs to know about a frame before inspection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameKey {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub vlan: u16,
    pub fragment: bool,
    /// ARP or ICMPv6 neighbour discovery / router messages.
    pub link_control: bool,
}

/// Read the headers of an Ethernet frame. Anything short or unknown gives what could be
/// read (no addresses for non-IP frames).
pub fn frame_key(frame: &[u8]) -> FrameKey {
    let mut k = FrameKey::default();
    if frame.len() < 14 {
        return k;
    }
    let mut et = u16::from_be_bytes([frame[12], frame[13]]);
    let mut off = 14;
    for _ in 0..2 {
        if (et == ETH_P_8021Q || et == ETH_P_8021AD) && frame.len() >= off + 4 {
            k.vlan = u16::from_be_bytes([frame[off], frame[off + 1]]) & 0x0fff;
            et = u16::from_be_bytes([frame[off + 2], frame[off + 3]]);
            off += 4;
        }
    }
    let ip = &frame[off..];
    match et {
        ETH_P_ARP => k.link_control = true,
        ETH_P_IPV4 if ip.len() >= 20 && ip[0] >> 4 == 4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            k.src = Some(IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])));
            k.dst = Some(IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])));
            k.proto = ip[9];
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            k.fragment = frag & 0x3fff != 0;
            if !k.fragment && ihl >= 20 {
                ports(&mut k, ip.get(ihl..).unwrap_or(&[]));
            }
        }
        ETH_P_IPV6 if ip.len() >= 40 && ip[0] >> 4 == 6 => {
            let a: [u8; 16] = ip[8..24].try_into().unwrap_or_default();
            let b: [u8; 16] = ip[24..40].try_into().unwrap_or_default();
            k.src = Some(IpAddr::V6(Ipv6Addr::from(a)));
            k.dst = Some(IpAddr::V6(Ipv6Addr::from(b)));
            // walk the common extension headers
            let mut nh = ip[6];
            let mut o = 40;
            for _ in 0..8 {
                match nh {
                    0 | 43 | 60 if ip.len() >= o + 8 => {
                        nh = ip[o];
                        o += (usize::from(ip[o + 1]) + 1) * 8;
                    }
                    44 if ip.len() >= o + 8 => {
                        k.fragment = true;
                        nh = ip[o];
                        o += 8;
                    }
                    _ => break,
                }
            }
            k.proto = nh;
            if !k.fragment {
                let l4 = ip.get(o..).unwrap_or(&[]);
                ports(&mut k, l4);
                // ICMPv6 router/neighbour solicitation/advertisement, redirect: only as
                // RFC 4861 sends them (hop limit 255, to a link-local or link-scope
                // multicast address), so they cannot carry traffic elsewhere
                let link_scope = (ip[24] == 0xfe && ip[25] & 0xc0 == 0x80)
                    || (ip[24] == 0xff && ip[25] & 0x0f == 2);
                if nh == 58
                    && ip[7] == 255
                    && link_scope
                    && l4.first().is_some_and(|t| (133..=137).contains(t))
                {
                    k.link_control = true;
                }
            }
        }
        _ => {}
    }
    k
}

fn ports(k: &mut FrameKey, l4: &[u8]) {
    if matches!(k.proto, 6 | 17 | 132) && l4.len() >= 4 {
        k.sport = u16::from_be_bytes([l4[0], l4[1]]);
        k.dport = u16::from_be_bytes([l4[2], l4[3]]);
    }
}

#[inline]
fn mix(mut h: u64, v: u64) -> u64 {
    h ^= v;
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

fn ip_bits(ip: Option<IpAddr>) -> u128 {
    match ip {
        Some(IpAddr::V4(a)) => u128::from(u32::from(a)),
        Some(IpAddr::V6(a)) => u128::from(a),
        None => 0,
    }
}

/// The same value for both directions of a conversation.
pub fn symmetric_hash(k: &FrameKey) -> u64 {
    let (a, b) = (ip_bits(k.src), ip_bits(k.dst));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = mix(0x51_7cc1_b727_220a, lo as u64);
    h = mix(h, (lo >> 64) as u64);
    h = mix(h, hi as u64);
    h = mix(h, (hi >> 64) as u64);
    // not the protocol either: it is what an unread extension header hides
    h = mix(h, u64::from(k.vlan));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1, 1000);
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        v
    }

    #[test]
    fn both_directions_hash_alike() {
        let a = frame_key(&tcp4([198, 18, 0, 10], [198, 18, 0, 80], 40000, 80));
        let b = frame_key(&tcp4([198, 18, 0, 80], [198, 18, 0, 10], 80, 40000));
        assert_eq!(a.sport, 40000);
        assert_eq!(a.dst, Some("198.18.0.80".parse().unwrap()));
        assert_eq!(symmetric_hash(&a), symmetric_hash(&b));
        // another conversation of the same pair meets the same worker; another pair not
        let c = frame_key(&tcp4([198, 18, 0, 10], [198, 18, 0, 80], 40001, 80));
        assert_eq!(symmetric_hash(&a), symmetric_hash(&c));
        let d = frame_key(&tcp4([198, 18, 0, 11], [198, 18, 0, 80], 40000, 80));
        assert_ne!(symmetric_hash(&a), symmetric_hash(&d));
    }

    #[test]
    fn v6_udp_and_short_frames() {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6(
                [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .udp(5353, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"q").unwrap();
        let k = frame_key(&v);
        assert_eq!((k.proto, k.sport, k.dport), (17, 5353, 53));
        for n in 0..v.len() {
            let _ = frame_key(&v[..n]);
        }
        assert_eq!(frame_key(&[0u8; 3]), FrameKey::default());
    }
}
