//! Internet checksums (RFC 1071) of the IPv4 header and of TCP and UDP over their IPv4 or
//! IPv6 pseudo-header, for the inline bridge: a segment the receiver would discard for
//! its checksum must not be inspected as data (TCP insertion, Suricata's
//! `stream.checksum-validation`). No allocation; one pass over the bytes.

use std::net::IpAddr;

use super::{IPPROTO_TCP, IPPROTO_UDP, L4, Packet};

/// One's-complement sum of `d` as big-endian 16-bit words (an odd last byte is padded),
/// not yet folded.
fn sum(d: &[u8]) -> u64 {
    let mut s = 0u64;
    let mut c = d.chunks_exact(4);
    for w in &mut c {
        s += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let r = c.remainder();
    let mut i = 0;
    while i + 1 < r.len() {
        s += u16::from_be_bytes([r[i], r[i + 1]]) as u64;
        i += 2;
    }
    if i < r.len() {
        s += (r[i] as u64) << 8;
    }
    s
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Whether an IPv4 header (with options) carries a correct checksum.
pub fn ipv4_header_ok(hdr: &[u8]) -> bool {
    hdr.len() >= 20 && fold(sum(hdr)) == 0xffff
}

/// Sum of the pseudo-header of an upper-layer segment of `len` bytes.
fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u64 {
    let addrs = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum(&s.octets()) + sum(&d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => sum(&s.octets()) + sum(&d.octets()),
        _ => 0,
    };
    addrs + proto as u64 + len as u64
}

/// The verdict on a packet's checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Correct, or nothing to check (no IP, a fragment's transport part, other protocols).
    Ok,
    BadIpv4,
    BadTcp,
    BadUdp,
}

/// Check the IPv4 header of `p` and, unless `l4_partial` (the kernel says the sender
/// left the transport checksum to offload: it is not filled in yet) or the packet is a
/// fragment, its TCP or UDP checksum. A UDP checksum of zero means "none" over IPv4;
/// over IPv6 it is invalid (RFC 8200 8.1), as a receiving host treats it.
pub fn check(p: &Packet<'_>, l4_partial: bool) -> Check {
    let Some(ip) = p.ip else { return Check::Ok };
    if !ip.v6 && !ipv4_header_ok(p.ip_hdr_v4()) {
        return Check::BadIpv4;
    }
    if l4_partial {
        return Check::Ok;
    }
    check_transport(p)
}

/// Check only the TCP or UDP checksum of `p` (a datagram rebuilt from fragments, whose
/// IPv4 header was rewritten).
pub fn check_transport(p: &Packet<'_>) -> Check {
    let Some(ip) = p.ip else { return Check::Ok };
    if p.frag.is_some() || p.l4_seg.is_empty() {
        return Check::Ok;
    }
    let (proto, bad) = match p.l4 {
        L4::Tcp { .. } => (IPPROTO_TCP, Check::BadTcp),
        L4::Udp { .. } => {
            if p.l4_seg.len() >= 8 && p.l4_seg[6] == 0 && p.l4_seg[7] == 0 && !ip.v6 {
                return Check::Ok;
            }
            (IPPROTO_UDP, Check::BadUdp)
        }
        _ => return Check::Ok,
    };
    let s = pseudo(ip.src, ip.dst, proto, p.l4_seg.len()) + sum(p.l4_seg);
    if fold(s) == 0xffff { Check::Ok } else { bad }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::decode::{decode, linktype};

    fn tcp4(payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, 10], [198, 18, 1, 82], 64)
            .tcp(40_000, 80, 7, 64_000)
            .ack(1)
            .psh();
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("frame");
        v
    }

    fn udp6(payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .udp(5353, 53);
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("frame");
        v
    }

    fn tcp6(payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .tcp(40_000, 443, 9, 1000)
            .ack(3);
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("frame");
        v
    }

    fn udp4(payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, 10], [198, 18, 0, 1], 64)
            .udp(5353, 53);
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("frame");
        v
    }

    fn verdict(f: &[u8], partial: bool) -> Check {
        check(&decode(linktype::ETHERNET, f), partial)
    }

    #[test]
    fn good_checksums_pass_odd_and_even_lengths() {
        for body in [&b""[..], b"x", b"GET / HTTP/1.1\r\n\r\n", b"odd!!"] {
            assert_eq!(verdict(&tcp4(body), false), Check::Ok);
            assert_eq!(verdict(&tcp6(body), false), Check::Ok);
            assert_eq!(verdict(&udp4(body), false), Check::Ok);
            assert_eq!(verdict(&udp6(body), false), Check::Ok);
        }
    }

    #[test]
    fn a_flipped_payload_byte_or_header_byte_is_caught() {
        let mut f = tcp4(b"GET /c2/beacon");
        let n = f.len();
        f[n - 1] ^= 0x20;
        assert_eq!(verdict(&f, false), Check::BadTcp);
        // the kernel says the checksum is not filled in yet: not judged
        assert_eq!(verdict(&f, true), Check::Ok);
        let mut f = tcp6(b"data");
        let n = f.len();
        f[n - 2] ^= 1;
        assert_eq!(verdict(&f, false), Check::BadTcp);
        let mut f = udp4(b"query");
        let n = f.len();
        f[n - 1] ^= 1;
        assert_eq!(verdict(&f, false), Check::BadUdp);
        let mut f = udp6(b"query");
        let n = f.len();
        f[n - 1] ^= 1;
        assert_eq!(verdict(&f, false), Check::BadUdp);
        // IPv4 header: TTL changed without fixing the checksum
        let mut f = tcp4(b"x");
        f[14 + 8] = 1;
        assert_eq!(verdict(&f, false), Check::BadIpv4);
        assert_eq!(verdict(&f, true), Check::BadIpv4);
    }

    #[test]
    fn zero_udp_checksum_means_none_over_ipv4_only() {
        let mut f = udp4(b"query");
        f[14 + 20 + 6] = 0;
        f[14 + 20 + 7] = 0;
        assert_eq!(verdict(&f, false), Check::Ok);
        let mut f = udp6(b"query");
        f[14 + 40 + 6] = 0;
        f[14 + 40 + 7] = 0;
        assert_eq!(verdict(&f, false), Check::BadUdp);
    }
}
