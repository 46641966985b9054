//! Messages from corpus captures (chrissanders dns_query_response, dns_tcp; nDPI
//! dns_long_domainname, dns-invalid-chars) and hand-built edge cases.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

const WIRESHARK_QUERY: &str = "180f010000010000000000000977697265736861726b036f72670000010001";
const WIRESHARK_RESPONSE: &str = "180f818000010001000000000977697265736861726b036f72670000010001c00c000100010000384000048079327a";
const NXDOMAIN_SOA: &str = "8b548183000100000001000006676d7230326302313601300c66686b666873646b6668736b0674756e\
6e656c076578616d706c6503636f6d0000010001c02c00060001000005c3002c026e73056963616e6e036f726700036e6f6303646e73c04c78\
67fabe00001c2000000e100012750000000e10";
const INVALID_CHARS: &str = "9f6c818000010001000000000377777717616c6c796f757262617365736172650102036f6e67746f02636e\
0000010001c00c000100010000003c000413b98df1";
const RIPE_ANY_RESPONSE: &[u8] = include_bytes!("testdata/ripe_any_response.bin");

#[test]
fn test_parse_query_and_response() {
    let q = parse_message(&unhex(WIRESHARK_QUERY)).unwrap();
    assert_eq!(q.header.id, 0x180f);
    assert!(!q.header.qr && q.header.rd);
    assert_eq!(
        q.queries,
        vec![Query {
            name: b"wireshark.org".to_vec(),
            rrtype: TYPE_A,
            rrclass: 1
        }]
    );

    let r = parse_message(&unhex(WIRESHARK_RESPONSE)).unwrap();
    assert!(r.header.qr && r.header.rd && r.header.ra);
    assert_eq!(rcode_name(r.header.rcode), "NOERROR");
    assert_eq!(r.answers.len(), 1);
    let a = &r.answers[0];
    assert_eq!(a.name, b"wireshark.org"); // through the pointer to offset 12
    assert_eq!((a.ttl, rrtype_name(a.rrtype)), (14400, "A"));
    assert_eq!(
        a.rdata,
        Rdata::Addr(IpAddr::V4(Ipv4Addr::new(128, 121, 50, 122)))
    );
}

#[test]
fn test_parse_nxdomain_with_soa() {
    let m = parse_message(&unhex(NXDOMAIN_SOA)).unwrap();
    assert_eq!(rcode_name(m.header.rcode), "NXDOMAIN");
    assert_eq!(
        m.queries[0].name,
        b"gmr02c.16.0.fhkfhsdkfhsk.tunnel.example.com"
    );
    assert_eq!(m.authorities.len(), 1);
    let soa = &m.authorities[0];
    assert_eq!(soa.name, b"example.com");
    let Rdata::Soa(s) = &soa.rdata else {
        panic!("not SOA: {:?}", soa.rdata)
    };
    assert_eq!(s.mname, b"ns.icann.org");
    assert_eq!(s.rname, b"noc.dns.icann.org");
    assert_eq!(
        (s.serial, s.refresh, s.retry, s.expire, s.minimum),
        (2020080318, 7200, 3600, 1209600, 3600)
    );
}

#[test]
fn test_names_with_control_bytes_render_like_suricata() {
    let m = parse_message(&unhex(INVALID_CHARS)).unwrap();
    assert_eq!(
        m.queries[0].name,
        b"www.allyourbasesare\x01\x02\x03ongto.cn"
    );
    assert_eq!(
        name_to_string(&m.answers[0].name),
        "www.allyourbasesare\u{1}\u{2}\u{3}ongto.cn"
    );
    assert_eq!(name_to_string(b"a\xffb.\xc3\xa9"), "a\\xffb.\\xc3\\xa9");
    assert_eq!(name_to_string("é.jp".as_bytes()), "é.jp");
    assert_eq!(name_to_string(b""), "");
}

#[test]
fn test_tcp_framing_of_real_response() {
    let mut tcp = DnsTcp::new();
    let mut msgs = Vec::new();
    tcp.feed(RIPE_ANY_RESPONSE, &mut |m| msgs.push(m.to_vec()));
    assert_eq!(msgs.len(), 1);
    let m = parse_message(&msgs[0]).unwrap();
    assert_eq!(m.queries[0].name, b"ripe.net");
    assert_eq!(rrtype_name(m.queries[0].rrtype), "ANY");
    assert_eq!(m.answers.len(), 8);
    assert_eq!(rrtype_name(m.answers[0].rrtype), "DNSKEY");
    assert!(m.answers.iter().all(|a| a.name == b"ripe.net"));
}

#[test]
fn test_tcp_split_at_every_offset() {
    let q = unhex(WIRESHARK_QUERY);
    let r = unhex(WIRESHARK_RESPONSE);
    let mut stream = Vec::new();
    for m in [&q, &r, &q] {
        stream.extend((m.len() as u16).to_be_bytes());
        stream.extend_from_slice(m);
    }
    stream.extend([0, 0]); // an empty message is skipped
    for a in 0..=stream.len() {
        for b in a..=stream.len() {
            let mut tcp = DnsTcp::new();
            let mut got = Vec::new();
            for piece in [&stream[..a], &stream[a..b], &stream[b..]] {
                tcp.feed(piece, &mut |m| got.push(m.to_vec()));
            }
            assert_eq!(got, vec![q.clone(), r.clone(), q.clone()], "split {a} {b}");
            assert_eq!((tcp.pending(), tcp.empty), (0, 1));
        }
    }
}

#[test]
fn test_compression_pointers_forward_and_backward() {
    // The question name "a" points forward to "b" at 20, which points back to "c" at 25.
    let mut msg = unhex("000101000001000000000000");
    msg.extend([1, b'a', 0xc0, 20]); // 12
    msg.extend([0, 1, 0, 1]); // 16: type, class
    msg.extend([1, b'b', 0xc0, 25]); // 20
    msg.push(0xee); // 24: filler
    msg.extend([1, b'c', 0]); // 25
    let p = parse_message(&msg).unwrap();
    assert_eq!(p.queries[0].name, b"a.b.c");
}

#[test]
fn test_pointer_loop_and_bad_names_are_errors() {
    let hdr = unhex("000101000001000000000000");
    let mut self_loop = hdr.clone();
    self_loop.extend([0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(parse_message(&self_loop), Err(DnsError::TooManyJumps));

    let mut two_loop = hdr.clone();
    two_loop.extend([0xc0, 14, 0xc0, 12]);
    assert_eq!(parse_message(&two_loop), Err(DnsError::TooManyJumps));

    // A loop through labels grows the name until it is too long.
    let mut label_loop = hdr.clone();
    label_loop.extend([1, b'x', 0xc0, 16, 1, b'y', 0xc0, 12]);
    assert_eq!(parse_message(&label_loop), Err(DnsError::NameTooLong));

    let mut beyond = hdr.clone();
    beyond.extend([0xc3, 0xff, 0, 1, 0, 1]);
    assert_eq!(parse_message(&beyond), Err(DnsError::BadPointer(0x3ff)));

    let mut ext_label = hdr.clone();
    ext_label.extend([0x41, 0, 0, 1, 0, 1]);
    assert_eq!(parse_message(&ext_label), Err(DnsError::BadLabelType(0x41)));

    let mut long = hdr.clone();
    for _ in 0..5 {
        long.push(63);
        long.extend([b'a'; 63]);
    }
    long.extend([0, 0, 1, 0, 1]);
    assert_eq!(parse_message(&long), Err(DnsError::NameTooLong));

    // 253 characters (the longest legal name) is fine.
    let mut max = hdr.clone();
    for _ in 0..3 {
        max.push(63);
        max.extend([b'a'; 63]);
    }
    max.push(61);
    max.extend([b'a'; 61]);
    max.extend([0, 0, 1, 0, 1]);
    assert_eq!(parse_message(&max).unwrap().queries[0].name.len(), 253);
}

#[test]
fn test_truncated_messages_are_errors_not_panics() {
    let r = unhex(WIRESHARK_RESPONSE);
    assert_eq!(parse_message(&r[..11]), Err(DnsError::ShortHeader));
    assert_eq!(
        parse_message(&r[..20]),
        Err(DnsError::Truncated(Section::Question))
    );
    assert_eq!(
        parse_message(&r[..r.len() - 1]),
        Err(DnsError::Truncated(Section::Answer))
    );
    for cut in 0..r.len() {
        let _ = parse_message(&r[..cut]);
    }
    let soa = unhex(NXDOMAIN_SOA);
    for cut in 0..soa.len() {
        assert!(parse_message(&soa[..cut]).is_err());
    }
}

#[test]
fn test_rdata_kinds_and_caps() {
    let rr = |m: &mut Vec<u8>, t: u16, data: &[u8]| {
        m.extend([0]); // root name
        m.extend(t.to_be_bytes());
        m.extend([0, 1, 0, 0, 0, 60]);
        m.extend((data.len() as u16).to_be_bytes());
        m.extend_from_slice(data);
    };
    let mut m = unhex("000181800000000600000000");
    rr(&mut m, TYPE_MX, &[0, 10, 2, b'm', b'x', 0]);
    rr(&mut m, TYPE_TXT, b"\x03abc\x00\x02de");
    rr(&mut m, TYPE_SRV, &[0, 1, 0, 2, 0x01, 0xbb, 0]);
    rr(
        &mut m,
        TYPE_AAAA,
        &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    rr(&mut m, 99, b"v=spf1");
    rr(&mut m, TYPE_CNAME, &[0xc0, 12]); // points at the root name of the first record
    let p = parse_message(&m).unwrap();
    let rd: Vec<_> = p.answers.iter().map(|a| a.rdata.clone()).collect();
    assert_eq!(
        rd[0],
        Rdata::Mx {
            preference: 10,
            exchange: b"mx".to_vec()
        }
    );
    assert_eq!(
        rd[1],
        Rdata::Txt(vec![b"abc".to_vec(), vec![], b"de".to_vec()])
    );
    assert_eq!(
        rd[2],
        Rdata::Srv(Srv {
            priority: 1,
            weight: 2,
            port: 443,
            target: vec![]
        })
    );
    assert_eq!(rd[3], Rdata::Addr("2001:db8::1".parse().unwrap()));
    assert_eq!(rd[4], Rdata::Other(b"v=spf1".to_vec()));
    assert_eq!(rd[5], Rdata::Cname(vec![]));
    assert_eq!(p.answers[0].name, b"");

    // A with a wrong length; a name in rdata may not run past the record.
    let mut bad = m[..12].to_vec();
    bad[7] = 1;
    let mut short_a = bad.clone();
    rr(&mut short_a, TYPE_A, &[1, 2, 3]);
    assert_eq!(
        parse_message(&short_a),
        Err(DnsError::BadRdata(Section::Answer))
    );
    let mut overrun = bad.clone();
    rr(&mut overrun, TYPE_NS, &[3, b'a', b'b']);
    overrun.extend([b'c', 0]);
    assert_eq!(
        parse_message(&overrun),
        Err(DnsError::Truncated(Section::Answer))
    );

    // Counts are capped at MAX_RECORDS per section.
    let mut many = unhex("000181800000ffff00000000");
    for _ in 0..0xffff {
        rr(&mut many, TYPE_A, &[1, 2, 3, 4]);
    }
    let p = parse_message(&many).unwrap();
    assert_eq!(p.answers.len(), MAX_RECORDS);
    assert!(p.capped);
}

#[test]
fn test_type_and_rcode_names() {
    assert_eq!(rrtype_name(65), "HTTPS");
    assert_eq!(rrtype_name(255), "ANY");
    assert_eq!(rrtype_name(12), "PTR");
    assert_eq!(rrtype_name(4242), "");
    assert_eq!(rcode_name(2), "SERVFAIL");
    assert_eq!(rcode_name(15), "");
}
