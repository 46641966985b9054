//! Bytes of one frame → a [`Packet`] view: link (Ethernet, VLAN, Linux SLL, raw IP), IPv4,
//! IPv6 with extension headers, tunnels (IP-in-IP, 6in4, GRE, Teredo, VXLAN), TCP, UDP,
//! ICMP, ICMPv6. Header slices come from etherparse; anomalies become [`Events`] on the
//! packet, never panics. No allocation: the packet borrows the frame.

pub mod checksum;
pub mod defrag;
pub mod events;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    Ethernet2Slice, Ipv4HeaderSlice, Ipv6HeaderSlice, SingleVlanSlice, TcpHeaderSlice,
    UdpHeaderSlice,
};
pub use events::{Event, Events};

/// Link types of pcap files that the decoder understands.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const RAW_ALT: u32 = 12;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
    pub const PPP: u32 = 9;
}

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_ERSPAN2: u16 = 0x88be;
const ETHERTYPE_TEB: u16 = 0x6558;
const ETHERTYPE_NSH: u16 = 0x894f;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ICMPV6: u8 = 58;

/// Tunnels nest at most this deep ("our safeguard against an infinite loop").
const MAX_DEPTH: u8 = 4;

/// The network layer of a packet.
#[derive(Debug, Clone, Copy)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol after extension headers.
    pub proto: u8,
    pub ttl: u8,
    pub id: u32,
    /// IPv4 flag bits in the high 3 bits (0x80 reserved, 0x40 DF, 0x20 MF).
    pub frag_bits: u8,
    pub v6: bool,
}

/// Fragment information, when the packet is an IP fragment.
#[derive(Debug, Clone, Copy)]
pub struct FragInfo {
    /// Byte offset of this fragment's payload.
    pub offset: u32,
    pub more: bool,
    pub id: u32,
    /// Offset in the IP packet where the fragmentable payload starts.
    pub payload_start: usize,
    /// Protocol of the reassembled payload.
    pub next: u8,
    /// For IPv6: offset of the fragment header's "next header" predecessor field is not
    /// needed; we rebuild a plain header on reassembly.
    pub ip_start: usize,
}

/// The transport layer.
#[derive(Debug, Clone, Copy, Default)]
pub enum L4 {
    #[default]
    None,
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        v6: bool,
        itype: u8,
        icode: u8,
        id: u16,
        seq: u16,
    },
    Other,
}

/// TCP flag bits.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// A decoded packet: a view into the frame's bytes.
#[derive(Debug, Clone, Default)]
pub struct Packet<'a> {
    pub eth: Option<([u8; 6], [u8; 6])>,
    pub vlan: [u16; 2],
    pub ip: Option<IpInfo>,
    pub l4: L4,
    pub payload: &'a [u8],
    pub ip_hdr: &'a [u8],
    pub l4_hdr: &'a [u8],
    /// The TCP or UDP segment (header and data, as far as its checksum covers).
    pub l4_seg: &'a [u8],
    pub frag: Option<FragInfo>,
    /// The IP packet (header onwards), for defragmentation.
    pub ip_packet: &'a [u8],
    pub events: Events,
}

impl Packet<'_> {
    pub fn src_port(&self) -> u16 {
        match self.l4 {
            L4::Tcp { sport, .. } | L4::Udp { sport, .. } => sport,
            _ => 0,
        }
    }
    pub fn dst_port(&self) -> u16 {
        match self.l4 {
            L4::Tcp { dport, .. } | L4::Udp { dport, .. } => dport,
            _ => 0,
        }
    }
    pub fn is_tcp(&self) -> bool {
        matches!(self.l4, L4::Tcp { .. })
    }
    /// The IPv4 header with its options (empty for IPv6).
    pub fn ip_hdr_v4(&self) -> &[u8] {
        match self.ip {
            Some(ip) if !ip.v6 => self.ip_hdr,
            _ => &[],
        }
    }
}

/// Decode a frame of the given pcap link type.
pub fn decode(linktype: u32, frame: &[u8]) -> Packet<'_> {
    let mut p = Packet::default();
    match linktype {
        linktype::ETHERNET => ethernet(frame, &mut p, 0),
        linktype::RAW | linktype::RAW_ALT | linktype::IPV4 | linktype::IPV6 => {
            raw_ip(frame, &mut p, 0)
        }
        linktype::NULL | linktype::LOOP => {
            if frame.len() >= 4 {
                raw_ip(&frame[4..], &mut p, 0)
            }
        }
        linktype::LINUX_SLL => {
            if frame.len() >= 16 {
                let et = u16::from_be_bytes([frame[14], frame[15]]);
                ether_payload(et, &frame[16..], &mut p, 0);
            }
        }
        linktype::LINUX_SLL2 => {
            if frame.len() >= 20 {
                let et = u16::from_be_bytes([frame[0], frame[1]]);
                ether_payload(et, &frame[20..], &mut p, 0);
            }
        }
        linktype::PPP => ppp(frame, &mut p, 0),
        _ => {}
    }
    p
}

/// Decode an IP packet (header onwards), e.g. a reassembled datagram.
pub fn decode_ip(data: &[u8]) -> Packet<'_> {
    let mut p = Packet::default();
    raw_ip(data, &mut p, 0);
    p
}

fn raw_ip<'a>(d: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    match d.first().map(|b| b >> 4) {
        Some(4) => ipv4(d, p, depth),
        Some(6) => ipv6(d, p, depth),
        _ => p.events.set(Event::IpRawInvalidIpv),
    }
}

fn ethernet<'a>(d: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    let Ok(eth) = Ethernet2Slice::from_slice_without_fcs(d) else {
        p.events.set(Event::EthPktTooSmall);
        return;
    };
    if p.eth.is_none() {
        p.eth = Some((eth.source(), eth.destination()));
    }
    ether_payload(eth.ether_type().0, eth.payload_slice(), p, depth);
}

fn ether_payload<'a>(mut et: u16, mut d: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    let mut vlans = 0;
    while matches!(et, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
        let Ok(v) = SingleVlanSlice::from_slice(d) else {
            p.events.set(Event::VlanHeaderTooSmall);
            return;
        };
        if vlans >= 2 {
            p.events.set(Event::VlanTooMany);
            return;
        }
        p.vlan[vlans] = v.vlan_identifier().value();
        vlans += 1;
        et = v.ether_type().0;
        d = v.payload_slice();
    }
    match et {
        ETHERTYPE_IPV4 => ipv4(d, p, depth),
        ETHERTYPE_IPV6 => ipv6(d, p, depth),
        ETHERTYPE_PPPOE_SESSION if d.len() >= 6 => ppp(&d[6..], p, depth),
        ETHERTYPE_NSH if depth < MAX_DEPTH => nsh(d, p, depth + 1),
        _ => {}
    }
}

fn ppp<'a>(d: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    // PPP in HDLC-like framing (ff 03 proto) or bare protocol field
    let d = if d.len() >= 2 && d[0] == 0xff && d[1] == 0x03 {
        &d[2..]
    } else {
        d
    };
    if d.len() < 2 {
        return;
    }
    match u16::from_be_bytes([d[0], d[1]]) {
        0x0021 => ipv4(&d[2..], p, depth),
        0x0057 => ipv6(&d[2..], p, depth),
        _ => {}
    }
}

fn nsh<'a>(d: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    // Network Service Header: length in 4-byte words in bits 10..16 of the first u16.
    if d.len() < 8 {
        return;
    }
    let len = ((d[1] & 0x3f) as usize) * 4;
    let next = d[3];
    if len < 8 || len > d.len() {
        return;
    }
    let inner = &d[len..];
    match next {
        1 => ipv4(inner, p, depth),
        2 => ipv6(inner, p, depth),
        3 => ethernet(inner, p, depth),
        _ => {}
    }
}

fn ipv4<'a>(d: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    if d.len() < 20 {
        p.events.set(Event::Ipv4PktTooSmall);
        return;
    }
    if d[0] >> 4 != 4 {
        p.events.set(Event::Ipv4WrongIpVersion);
        return;
    }
    let ihl = ((d[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        p.events.set(Event::Ipv4HlenTooSmall);
        return;
    }
    let total = u16::from_be_bytes([d[2], d[3]]) as usize;
    if total < ihl {
        p.events.set(Event::Ipv4IplenSmallerThanHlen);
        return;
    }
    if d.len() < total || d.len() < ihl {
        p.events.set(Event::Ipv4TruncPkt);
        return;
    }
    let Ok(h) = Ipv4HeaderSlice::from_slice(&d[..total]) else {
        p.events.set(Event::Ipv4TruncPkt);
        return;
    };
    ipv4_options(h.options(), p);
    let frag_off = u16::from_be_bytes([d[6], d[7]]);
    let offset = ((frag_off & 0x1fff) as u32) * 8;
    let more = frag_off & 0x2000 != 0;
    let proto = h.protocol().0;
    p.ip = Some(IpInfo {
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        proto,
        ttl: h.ttl(),
        id: h.identification() as u32,
        frag_bits: ((frag_off >> 8) as u8) & 0xe0,
        v6: false,
    });
    p.ip_hdr = &d[..ihl];
    p.ip_packet = &d[..total];
    let payload = &d[ihl..total];
    if offset != 0 || more {
        if offset + payload.len() as u32 > 65535 {
            p.events.set(Event::Ipv4FragPktTooLarge);
        }
        p.frag = Some(FragInfo {
            offset,
            more,
            id: h.identification() as u32,
            payload_start: ihl,
            next: proto,
            ip_start: 0,
        });
        p.payload = payload;
        p.l4 = L4::Other;
        return;
    }
    transport(proto, payload, p, false, depth);
}

fn ipv4_options(opts: &[u8], p: &mut Packet<'_>) {
    let mut i = 0;
    let mut seen = 0u64;
    while i < opts.len() {
        let t = opts[i];
        match t {
            0 => break,
            1 => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let Some(&len) = opts.get(i + 1) else {
            p.events.set(Event::Ipv4OptInvalidLen);
            return;
        };
        let len = len as usize;
        if len < 2 || i + len > opts.len() {
            p.events.set(Event::Ipv4OptInvalidLen);
            return;
        }
        let bit = 1u64 << (t & 63);
        if seen & bit != 0 {
            p.events.set(Event::Ipv4OptDuplicate);
        }
        seen |= bit;
        // known options with fixed/minimum lengths
        let bad = match t {
            0x82 => len != 11,             // security
            0x07 | 0x83 | 0x89 => len < 3, // rr, lsrr, ssrr
            0x44 => len < 4,               // timestamp
            0x88 => len != 4,              // stream id
            0x94 => len != 4,              // router alert
            _ => false,
        };
        if bad {
            p.events.set(Event::Ipv4OptInvalidLen);
            return;
        }
        i += len;
    }
}

const EXT_HOPOPTS: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_ESP: u8 = 50;
const EXT_AH: u8 = 51;
const EXT_NONE: u8 = 59;
const EXT_DSTOPTS: u8 = 60;
const EXT_MH: u8 = 135;
const EXT_HIP: u8 = 139;
const EXT_SHIM6: u8 = 140;

fn ipv6<'a>(d: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    if d.len() < 40 {
        p.events.set(Event::Ipv6PktTooSmall);
        return;
    }
    let Ok(h) = Ipv6HeaderSlice::from_slice(d) else {
        p.events.set(Event::Ipv6WrongIpVersion);
        return;
    };
    let plen = h.payload_length() as usize;
    if d.len() < 40 + plen {
        p.events.set(Event::Ipv6TruncPkt);
        return;
    }
    let d = &d[..40 + plen];
    let mut info = IpInfo {
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        proto: h.next_header().0,
        ttl: h.hop_limit(),
        id: 0,
        frag_bits: 0,
        v6: true,
    };
    p.ip_hdr = &d[..40];
    p.ip_packet = d;
    // walk extension headers
    let mut next = h.next_header().0;
    let mut off = 40usize;
    let (mut fh, mut rh, mut hh, mut dh) = (0, 0, 0, 0);
    let mut frag: Option<FragInfo> = None;
    for _ in 0..16 {
        match next {
            EXT_HOPOPTS | EXT_DSTOPTS | EXT_ROUTING | EXT_MH | EXT_HIP | EXT_SHIM6 | EXT_AH
            | EXT_FRAGMENT => {}
            _ => break,
        }
        let Some(hdr) = d.get(off..off + 2) else {
            p.events.set(Event::Ipv6TruncExthdr);
            info.proto = next;
            p.ip = Some(info);
            return;
        };
        let hlen = match next {
            EXT_FRAGMENT => 8,
            EXT_AH => (hdr[1] as usize + 2) * 4,
            _ => (hdr[1] as usize + 1) * 8,
        };
        let Some(body) = d.get(off..off + hlen) else {
            p.events.set(Event::Ipv6TruncExthdr);
            info.proto = next;
            p.ip = Some(info);
            return;
        };
        match next {
            EXT_HOPOPTS => {
                hh += 1;
                if hh > 1 {
                    p.events.set(Event::Ipv6ExthdrDuplHh);
                }
                ipv6_options(&body[2..], p, true);
            }
            EXT_DSTOPTS => {
                dh += 1;
                if dh > 2 {
                    p.events.set(Event::Ipv6ExthdrDuplDh);
                }
                ipv6_options(&body[2..], p, false);
            }
            EXT_ROUTING => {
                rh += 1;
                if rh > 1 {
                    p.events.set(Event::Ipv6ExthdrDuplRh);
                }
                if body.len() >= 3 && body[2] == 0 {
                    p.events.set(Event::Ipv6RhType0);
                }
            }
            EXT_AH => {
                if body.len() >= 4 && (body[2] != 0 || body[3] != 0) {
                    p.events.set(Event::Ipv6ExthdrAhResNotNull);
                }
            }
            EXT_FRAGMENT => {
                fh += 1;
                if fh > 1 {
                    p.events.set(Event::Ipv6ExthdrDuplFh);
                }
                if body[1] != 0 || body[3] & 0x06 != 0 {
                    p.events.set(Event::Ipv6FhNonZeroReservedField);
                }
                let fo = u16::from_be_bytes([body[2], body[3]]);
                let offset = ((fo >> 3) as u32) * 8;
                let more = fo & 1 != 0;
                let id = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                info.id = id;
                if offset == 0 && !more {
                    p.events.set(Event::Ipv6ExthdrUselessFh);
                } else if frag.is_none() {
                    let start = off + 8;
                    let flen = d.len() - start;
                    if more && flen % 8 != 0 {
                        p.events.set(Event::Ipv6FragInvalidLength);
                    }
                    if offset + flen as u32 > 65535 {
                        p.events.set(Event::Ipv6FragPktTooLarge);
                    }
                    frag = Some(FragInfo {
                        offset,
                        more,
                        id,
                        payload_start: start,
                        next: body[0],
                        ip_start: 0,
                    });
                }
            }
            _ => {}
        }
        next = body[0];
        off += hlen;
    }
    info.proto = next;
    p.ip = Some(info);
    // `ipv6.hdr` covers the extension headers too
    p.ip_hdr = &d[..off.min(d.len())];
    if let Some(f) = frag {
        p.frag = Some(f);
        p.payload = &d[f.payload_start..];
        p.l4 = L4::Other;
        return;
    }
    if next == EXT_NONE {
        if off < d.len() {
            p.events.set(Event::Ipv6DataAfterNoneHeader);
        }
        return;
    }
    if next == EXT_ESP {
        p.l4 = L4::Other;
        p.payload = &d[off..];
        return;
    }
    transport(next, &d[off..], p, true, depth);
}

fn ipv6_options(opts: &[u8], p: &mut Packet<'_>, hop: bool) {
    let mut i = 0;
    let mut only_pad = true;
    while i < opts.len() {
        let t = opts[i];
        if t == 0 {
            i += 1;
            continue;
        }
        let Some(&l) = opts.get(i + 1) else {
            p.events.set(Event::Ipv6ExthdrInvalidOptlen);
            return;
        };
        let l = l as usize;
        if i + 2 + l > opts.len() {
            p.events.set(Event::Ipv6ExthdrInvalidOptlen);
            return;
        }
        match t {
            1 => {
                if l == 0 {
                    p.events.set(Event::Ipv6ZeroLenPadn);
                }
            }
            // router alert, jumbo, home address, tunnel encap limit, quick-start, CALIPSO, RPL, MPL
            0x05 | 0xc2 | 0xc9 | 0x04 | 0x26 | 0x07 | 0x63 | 0x6d => only_pad = false,
            _ => {
                only_pad = false;
                p.events.set(if hop {
                    Event::Ipv6HopoptsUnknownOpt
                } else {
                    Event::Ipv6DstoptsUnknownOpt
                });
            }
        }
        i += 2 + l;
    }
    if only_pad {
        p.events.set(if hop {
            Event::Ipv6HopoptsOnlyPadding
        } else {
            Event::Ipv6DstoptsOnlyPadding
        });
    }
}

fn transport<'a>(proto: u8, d: &'a [u8], p: &mut Packet<'a>, v6: bool, depth: u8) {
    match proto {
        IPPROTO_TCP => tcp(d, p),
        IPPROTO_UDP => udp(d, p, depth),
        IPPROTO_ICMP => {
            if v6 {
                p.events.set(Event::Ipv6Icmpv4);
            }
            icmp(d, p, false)
        }
        IPPROTO_ICMPV6 => icmp(d, p, true),
        IPPROTO_IPIP | IPPROTO_IPV6 if depth < MAX_DEPTH => {
            let inner_v6 = proto == IPPROTO_IPV6;
            match d.first().map(|b| b >> 4) {
                Some(4) if !inner_v6 => tunnel(d, p, depth),
                Some(6) if inner_v6 => tunnel(d, p, depth),
                _ => p.events.set(match (v6, inner_v6) {
                    (true, false) => Event::Ipv6Ipv4InIpv6WrongVersion,
                    (true, true) => Event::Ipv6InIpv6WrongVersion,
                    _ => Event::IpRawInvalidIpv,
                }),
            }
        }
        IPPROTO_GRE if depth < MAX_DEPTH => gre(d, p, depth),
        _ => {
            p.l4 = L4::Other;
            p.payload = d;
        }
    }
}

/// Continue decoding an encapsulated packet: the inner packet replaces the outer one.
fn tunnel<'a>(inner: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    let events = p.events;
    let eth = p.eth;
    let vlan = p.vlan;
    *p = Packet {
        eth,
        vlan,
        events,
        ..Packet::default()
    };
    raw_ip(inner, p, depth + 1);
}

fn gre<'a>(d: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    if d.len() < 4 {
        p.events.set(Event::GrePktTooSmall);
        return;
    }
    let flags = u16::from_be_bytes([d[0], d[1]]);
    let version = flags & 0x7;
    if version > 1 {
        p.events.set(Event::GreWrongVersion);
        return;
    }
    let proto = u16::from_be_bytes([d[2], d[3]]);
    let mut off = 4;
    if flags & 0x8000 != 0 {
        off += 4; // checksum + reserved
    }
    if flags & 0x2000 != 0 {
        off += 4; // key
    }
    if flags & 0x1000 != 0 {
        off += 4; // sequence
    }
    let Some(inner) = d.get(off..) else {
        p.events.set(Event::GrePktTooSmall);
        return;
    };
    match proto {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => tunnel(inner, p, depth),
        ETHERTYPE_TEB => {
            let keep = (p.events, p.vlan);
            *p = Packet {
                events: keep.0,
                vlan: keep.1,
                ..Packet::default()
            };
            ethernet(inner, p, depth + 1)
        }
        ETHERTYPE_ERSPAN2 if inner.len() >= 8 => {
            let keep = (p.events, p.vlan);
            *p = Packet {
                events: keep.0,
                vlan: keep.1,
                ..Packet::default()
            };
            ethernet(&inner[8..], p, depth + 1)
        }
        0x22eb if !inner.is_empty() => {
            // ERSPAN type I: no header
            let keep = (p.events, p.vlan);
            *p = Packet {
                events: keep.0,
                vlan: keep.1,
                ..Packet::default()
            };
            ethernet(inner, p, depth + 1)
        }
        _ => {
            p.l4 = L4::Other;
            p.payload = d;
        }
    }
}

fn tcp<'a>(d: &'a [u8], p: &mut Packet<'a>) {
    if d.len() < 20 {
        p.events.set(Event::TcpPktTooSmall);
        return;
    }
    let hlen = ((d[12] >> 4) as usize) * 4;
    if hlen < 20 {
        p.events.set(Event::TcpHlenTooSmall);
        return;
    }
    if hlen > d.len() {
        p.events.set(Event::TcpPktTooSmall);
        return;
    }
    let Ok(h) = TcpHeaderSlice::from_slice(d) else {
        p.events.set(Event::TcpPktTooSmall);
        return;
    };
    tcp_options(&d[20..hlen], p);
    p.l4 = L4::Tcp {
        sport: h.source_port(),
        dport: h.destination_port(),
        seq: h.sequence_number(),
        ack: h.acknowledgment_number(),
        flags: d[13],
        window: h.window_size(),
    };
    p.l4_hdr = &d[..hlen];
    p.l4_seg = d;
    p.payload = &d[hlen..];
}

fn tcp_options(opts: &[u8], p: &mut Packet<'_>) {
    let mut i = 0;
    let mut seen = 0u32;
    while i < opts.len() {
        let k = opts[i];
        match k {
            0 => break,
            1 => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let Some(&l) = opts.get(i + 1) else {
            p.events.set(Event::TcpOptInvalidLen);
            return;
        };
        let l = l as usize;
        if l < 2 || i + l > opts.len() {
            p.events.set(Event::TcpOptInvalidLen);
            return;
        }
        let bad = match k {
            2 => l != 4,           // mss
            3 => l != 3,           // window scale
            4 => l != 2,           // sack permitted
            5 => (l - 2) % 8 != 0, // sack (an empty one is allowed)
            8 => l != 10,          // timestamp
            _ => false,
        };
        if bad {
            p.events.set(Event::TcpOptInvalidLen);
        }
        if k < 32 {
            if seen & (1 << k) != 0 {
                p.events.set(Event::TcpOptDuplicate);
            }
            seen |= 1 << k;
        }
        i += l;
    }
}

const TEREDO_PORT: u16 = 3544;
const VXLAN_PORT: u16 = 4789;

fn udp<'a>(d: &'a [u8], p: &mut Packet<'a>, depth: u8) {
    if d.len() < 8 {
        p.events.set(Event::UdpPktTooSmall);
        return;
    }
    let Ok(h) = UdpHeaderSlice::from_slice(d) else {
        p.events.set(Event::UdpPktTooSmall);
        return;
    };
    let len = h.length() as usize;
    if len < 8 {
        p.events.set(Event::UdpHlenTooSmall);
        return;
    }
    if len > d.len() {
        p.events.set(Event::UdpHlenInvalid);
        return;
    }
    let (sport, dport) = (h.source_port(), h.destination_port());
    p.l4 = L4::Udp { sport, dport };
    p.l4_hdr = &d[..8];
    p.l4_seg = &d[..len];
    p.payload = &d[8..len];
    if depth < MAX_DEPTH {
        let pl = p.payload;
        if (sport == TEREDO_PORT || dport == TEREDO_PORT) && teredo_inner(pl).is_some() {
            if let Some(inner) = teredo_inner(pl) {
                tunnel(inner, p, depth);
            }
        } else if dport == VXLAN_PORT && pl.len() >= 8 + 14 && pl[0] & 0x08 != 0 {
            let keep = (p.events, p.vlan);
            *p = Packet {
                events: keep.0,
                vlan: keep.1,
                ..Packet::default()
            };
            ethernet(&pl[8..], p, depth + 1);
        }
    }
}

/// Teredo: optional authentication / origin indication, then a plausible IPv6 packet.
fn teredo_inner(d: &[u8]) -> Option<&[u8]> {
    let mut d = d;
    if d.len() >= 2 && d[0] == 0 && d[1] == 1 {
        // authentication header
        let id_len = *d.get(2)? as usize;
        let au_len = *d.get(3)? as usize;
        d = d.get(4 + id_len + au_len + 9..)?;
    }
    if d.len() >= 2 && d[0] == 0 && d[1] == 0 {
        d = d.get(8..)?;
    }
    if d.len() < 40 || d[0] >> 4 != 6 {
        return None;
    }
    let plen = u16::from_be_bytes([d[4], d[5]]) as usize;
    if 40 + plen != d.len() {
        return None;
    }
    // next header must be something a real IPv6 packet carries
    matches!(d[6], 0 | 6 | 17 | 43 | 44 | 58 | 59 | 60).then_some(d)
}

fn icmp<'a>(d: &'a [u8], p: &mut Packet<'a>, v6: bool) {
    if d.len() < 4 {
        p.events.set(if v6 {
            Event::Icmpv6PktTooSmall
        } else {
            Event::Icmpv4PktTooSmall
        });
        return;
    }
    let (itype, icode) = (d[0], d[1]);
    let (id, seq) = if d.len() >= 8 && is_echo(itype, v6) {
        (
            u16::from_be_bytes([d[4], d[5]]),
            u16::from_be_bytes([d[6], d[7]]),
        )
    } else {
        (0, 0)
    };
    if v6 {
        if matches!(itype, 130..=132 | 143) && p.ip.is_some_and(|ip| ip.ttl != 1) {
            p.events.set(Event::Icmpv6MldMessageWithInvalidHl);
        }
        if matches!(itype, 100 | 101 | 200 | 201) {
            p.events.set(Event::Icmpv6ExperimentationType);
        } else if !(1..=4).contains(&itype) && !(128..=161).contains(&itype) {
            p.events.set(Event::Icmpv6UnknownType);
        }
    } else if itype > 40 {
        p.events.set(Event::Icmpv4UnknownType);
    }
    p.l4 = L4::Icmp {
        v6,
        itype,
        icode,
        id,
        seq,
    };
    let hl = 8.min(d.len());
    p.l4_hdr = &d[..hl];
    p.payload = &d[hl..];
}

fn is_echo(t: u8, v6: bool) -> bool {
    if v6 {
        t == 128 || t == 129
    } else {
        matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
    }
}

/// Convenience for tests and tools.
pub fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

/// Convenience for tests and tools.
pub fn v6(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

#[cfg(test)]
mod test;
