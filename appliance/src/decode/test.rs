use super::*;
use etherparse::PacketBuilder;

fn tcp_frame(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
        .ipv4([192, 168, 1, 2], [8, 8, 8, 8], 64)
        .tcp(40000, 80, 1000, 65535)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

#[test]
fn test_parse_ethernet_ipv4_tcp() {
    let f = tcp_frame(b"hello");
    let p = decode(linktype::ETHERNET, &f);
    let ip = p.ip.unwrap();
    assert_eq!(ip.src, v4([192, 168, 1, 2]));
    assert_eq!(ip.proto, IPPROTO_TCP);
    assert!(
        matches!(p.l4, L4::Tcp { sport: 40000, dport: 80, seq: 1000, flags, .. } if flags & tcp_flags::SYN != 0)
    );
    assert_eq!(p.payload, b"hello");
    assert_eq!(p.eth.unwrap().0, [1, 2, 3, 4, 5, 6]);
    assert!(p.events.is_empty());
    assert_eq!(p.ip_hdr.len(), 20);
    assert_eq!(p.l4_hdr.len(), 20);
}

#[test]
fn test_parse_vlan_ipv6_udp() {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .single_vlan(etherparse::VlanId::try_new(42).unwrap())
        .ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            5,
        )
        .udp(5353, 53);
    let mut f = Vec::new();
    b.write(&mut f, b"q").unwrap();
    let p = decode(linktype::ETHERNET, &f);
    assert_eq!(p.vlan[0], 42);
    assert!(p.ip.unwrap().v6);
    assert!(matches!(
        p.l4,
        L4::Udp {
            sport: 5353,
            dport: 53
        }
    ));
    assert_eq!(p.payload, b"q");
}

#[test]
fn test_impossible_len() {
    let mut f = tcp_frame(b"hello");
    // IPv4 total length larger than the frame
    f[14 + 2] = 0xff;
    let p = decode(linktype::ETHERNET, &f);
    assert!(p.events.has(Event::Ipv4TruncPkt));
    assert!(p.ip.is_none());
    // TCP data offset below 5 words
    let mut f = tcp_frame(b"");
    f[14 + 20 + 12] = 0x40;
    let p = decode(linktype::ETHERNET, &f);
    assert!(p.events.has(Event::TcpHlenTooSmall));
    // every truncation of a valid frame decodes without panic
    let f = tcp_frame(b"0123456789");
    for n in 0..f.len() {
        let _ = decode(linktype::ETHERNET, &f[..n]);
        let _ = decode(linktype::RAW, &f[14..14 + n.min(f.len() - 14)]);
    }
}

#[test]
fn test_ipv4_fragments_reassemble() {
    let payload: Vec<u8> = (0..64u8).collect();
    let ip = etherparse::Ipv4Header::new(
        8 + payload.len() as u16,
        64,
        etherparse::IpNumber::UDP,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
    )
    .unwrap();
    let udp = etherparse::UdpHeader::with_ipv4_checksum(1000, 2000, &ip, &payload).unwrap();
    let mut l4 = Vec::new();
    udp.write(&mut l4).unwrap();
    l4.extend_from_slice(&payload);
    // two fragments: 40 bytes, then the rest, delivered in reverse order
    let frag = |off: usize, data: &[u8], more: bool| {
        let mut h = etherparse::Ipv4Header::new(
            data.len() as u16,
            64,
            etherparse::IpNumber::UDP,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
        )
        .unwrap();
        h.identification = 77;
        h.more_fragments = more;
        h.fragment_offset = etherparse::IpFragOffset::try_new((off / 8) as u16).unwrap();
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(data);
        v
    };
    let f1 = frag(0, &l4[..40], true);
    let f2 = frag(40, &l4[40..], false);
    let mut d = defrag::Defrag::new(defrag::DefragConfig::default());
    let mut out = Vec::new();
    let mut ev = Events::default();
    let p2 = decode(linktype::RAW, &f2);
    assert!(p2.frag.is_some());
    assert!(!d.add(&p2, 1, &mut out, &mut ev));
    let p1 = decode(linktype::RAW, &f1);
    assert!(d.add(&p1, 2, &mut out, &mut ev));
    let whole = decode_ip(&out);
    assert!(whole.frag.is_none());
    assert!(matches!(
        whole.l4,
        L4::Udp {
            sport: 1000,
            dport: 2000
        }
    ));
    assert_eq!(whole.payload, payload.as_slice());
    assert!(ev.is_empty());
    // an overlapping fragment is flagged
    let f3 = frag(0, &l4[..48], true);
    let mut ev = Events::default();
    d.add(&decode(linktype::RAW, &f3), 3, &mut out, &mut ev);
    d.add(&decode(linktype::RAW, &f1), 3, &mut out, &mut ev);
    assert!(ev.has(Event::Ipv4FragOverlap));
}

#[test]
fn test_event_names_round_trip() {
    for e in Event::ALL {
        assert_eq!(Event::from_name(e.name()), Some(*e));
    }
    assert_eq!(
        events::lookup("stream.reassembly_seq_gap"),
        Some(Event::StreamReassemblySeqGap)
    );
    assert_eq!(Event::ALL.len() < 128, true);
}
