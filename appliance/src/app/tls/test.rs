//! Real handshakes (client and server streams cut before ChangeCipherSpec from corpus
//! captures; expected certificate values checked with `openssl x509` and against
//! suricata-verify's expectations) and hand-built records.

use super::*;

const PRB_CLIENT: &[u8] = include_bytes!("testdata/prbtest_client.bin");
const PRB_SERVER: &[u8] = include_bytes!("testdata/prbtest_server.bin");
const MTU_CLIENT: &[u8] = include_bytes!("testdata/mtu300_client.bin");
const MTU_SERVER: &[u8] = include_bytes!("testdata/mtu300_server.bin");
const V2_CLIENT: &[u8] = include_bytes!("testdata/sslv2_client.bin");
const V2_SERVER: &[u8] = include_bytes!("testdata/sslv2_server.bin");
const STAMUS_SERVER: &[u8] = include_bytes!("testdata/stamus_server.bin");

fn feed_in(st: &mut TlsState, to_server: bool, data: &[u8], piece: usize) -> TlsChanges {
    let mut all = TlsChanges::NONE;
    for chunk in data.chunks(piece) {
        all.insert(st.feed(to_server, chunk));
    }
    all
}

fn handshake(client: &[u8], server: &[u8], piece: usize) -> TlsState {
    let mut st = TlsState::new();
    let c = feed_in(&mut st, true, client, piece);
    let s = feed_in(&mut st, false, server, piece);
    assert!(c.contains(TlsChanges::CLIENT_HELLO));
    assert!(s.contains(TlsChanges::SERVER_HELLO));
    st
}

/// nDPI's ground truth for tls_malicious_sha1.pcapng: JA3C, JA3S, SNI, ALPN, issuer,
/// subject and SHA-1; serial and validity from `openssl x509`.
#[test]
fn test_parse_prbtest_handshake() {
    let st = handshake(PRB_CLIENT, PRB_SERVER, usize::MAX);
    let i = &st.info;
    assert_eq!(i.sni.as_deref(), Some(&b"www.prbtest.dev"[..]));
    assert_eq!(i.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(
        i.ja3_hash.as_deref(),
        Some("00bcd759cb8ad485fdbf1e7a0c5b94b4")
    );
    assert_eq!(
        i.ja3s_hash.as_deref(),
        Some("e2bc06b738d7e5d2b0cec5d2196b1d80")
    );
    assert_eq!(i.version_string(), "TLS 1.2");
    assert_eq!(i.chain_len, 3);
    assert_eq!(i.certs.len(), 3);
    let leaf = &i.certs[0];
    assert_eq!(leaf.subject, "CN=www.prbtest.dev");
    assert_eq!(
        leaf.issuer,
        "C=US, O=Google Trust Services LLC, CN=GTS CA 1D4"
    );
    assert_eq!(
        leaf.serial,
        "2A:67:00:75:8D:85:12:3E:10:42:20:24:44:63:E1:C0"
    );
    assert_eq!(
        leaf.fingerprint,
        "0d:db:34:f8:75:63:2c:7e:1e:c0:9d:75:82:7f:82:d2:33:6d:fe:b6"
    );
    assert_eq!((leaf.not_before, leaf.not_after), (1701175811, 1708954762));
    assert_eq!(
        i.certs[2].issuer,
        "C=BE, O=GlobalSign nv-sa, OU=Root CA, CN=GlobalSign Root CA"
    );
    assert_eq!(st.counters.parse_errors, 0);
    assert_eq!(st.counters.gave_up, 0);
    assert!(i.client_random.is_some() && i.server_random.is_some());
}

#[test]
fn test_byte_at_a_time_matches_bulk() {
    for (c, s) in [
        (PRB_CLIENT, PRB_SERVER),
        (MTU_CLIENT, MTU_SERVER),
        (V2_CLIENT, V2_SERVER),
    ] {
        let bulk = handshake(c, s, usize::MAX);
        for piece in [1, 2, 3, 7, 300] {
            let st = handshake(c, s, piece);
            assert_eq!(st.info, bulk.info, "piece {piece}");
            assert_eq!(st.counters, bulk.counters, "piece {piece}");
        }
    }
}

/// suricata-verify tls-client-hello-frag-01 (ClientHello over 300-byte segments):
/// the SNI must be found. Its serial keeps the DER's leading zero, as Suricata logs it.
#[test]
fn test_parse_mtu300() {
    let st = handshake(MTU_CLIENT, MTU_SERVER, 300);
    assert_eq!(st.info.sni.as_deref(), Some(&b"www.google.com"[..]));
    let leaf = &st.info.certs[0];
    assert_eq!(leaf.subject, "CN=www.google.com");
    assert_eq!(
        leaf.serial,
        "00:BB:2A:80:CC:14:FC:DD:BC:12:02:B2:A0:86:BD:1D:17"
    );
    assert_eq!(
        leaf.fingerprint,
        "27:2e:56:1b:56:00:b7:8d:84:07:c7:62:41:02:94:f3:9a:a0:c3:5e"
    );
}

/// suricata-verify sslv2-tls-upgrade-01: an SSLv2-framed ClientHello, then TLS 1.0.
/// Expected values are that test's EVE checks.
#[test]
fn test_parse_sslv2_upgrade() {
    let st = handshake(V2_CLIENT, V2_SERVER, usize::MAX);
    let i = &st.info;
    assert_eq!(st.counters.sslv2_records, 1);
    assert_eq!(i.client_version, Some(0x0301));
    assert_eq!(i.version_string(), "TLSv1");
    let leaf = &i.certs[0];
    assert_eq!(
        leaf.subject,
        "C=US, ST=California, L=Sunnyvale, O=NetScreen Technologies, Inc., OU=Security Team, \
         CN=sigdb.secteam.netscreen.com, Email=aturner@netscreen.com"
    );
    assert_eq!(
        leaf.issuer,
        "C=US, ST=California, L=Sunnyvale, O=OneSecure, Inc., OU=Fulfillment, \
         CN=jumper.sv-staging.onesecure.com, Email=fulfillment@onesecure.com"
    );
    assert_eq!(leaf.serial, "55");
    assert_eq!(
        leaf.fingerprint,
        "8c:90:bd:2a:b3:ae:e6:0b:d0:ea:b7:86:b0:1a:e4:b1:cc:57:ef:22"
    );
    assert_eq!((leaf.not_before, leaf.not_after), (1048899464, 1206579464));
}

/// suricata-verify tls-cert-issuer / tls-subject / tls-cert-validity.
#[test]
fn test_parse_stamus_cert() {
    let mut st = TlsState::new();
    assert!(
        st.feed(false, STAMUS_SERVER)
            .contains(TlsChanges::CERTIFICATE)
    );
    let leaf = &st.info.certs[0];
    assert_eq!(leaf.subject, "C=FR, ST=IDF, L=Paris, O=Stamus, CN=SELKS");
    assert_eq!(leaf.issuer, "C=FR, ST=IDF, L=Paris, O=Stamus, CN=SELKS");
    assert_eq!(leaf.serial, "00:97:E6:47:09:8E:EA:C9:B4");
    assert_eq!(
        leaf.fingerprint,
        "3a:0b:3b:23:15:2c:44:5c:27:ac:6a:0c:41:d6:fa:74:af:b4:09:5b"
    );
    assert_eq!((leaf.not_before, leaf.not_after), (1423764447, 1739124447));
    assert_eq!(st.info.chain_len, 1);
}

fn ext(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut v = typ.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn vec16(items: &[u16]) -> Vec<u8> {
    let mut v = ((items.len() * 2) as u16).to_be_bytes().to_vec();
    items
        .iter()
        .for_each(|i| v.extend_from_slice(&i.to_be_bytes()));
    v
}

/// A ClientHello handshake message (header included) with GREASE everywhere it may be.
fn client_hello() -> Vec<u8> {
    let mut exts = Vec::new();
    exts.extend(ext(0x1a1a, b""));
    exts.extend(ext(0, b"\x00\x0e\x00\x00\x0bexample.com"));
    exts.extend(ext(10, &vec16(&[0x2a2a, 0x001d, 0x0017])));
    exts.extend(ext(11, b"\x01\x00"));
    exts.extend(ext(16, b"\x00\x0c\x02h2\x08http/1.1"));
    exts.extend(ext(43, b"\x06\x3a\x3a\x03\x04\x03\x03"));
    let mut body = vec![0x03, 0x03];
    body.extend([7u8; 32]);
    body.push(0); // session id
    body.extend(vec16(&[0x0a0a, 0x1301, 0xc02f]));
    body.extend([1, 0]); // compression: null
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut msg = vec![1, 0, 0, 0];
    msg[1..4].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend(body);
    msg
}

fn record(ct: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ct, 3, 1];
    v.extend((body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn test_ja3_of_known_client_hello() {
    let mut st = TlsState::new();
    st.feed(true, &record(22, &client_hello()));
    let i = &st.info;
    assert_eq!(
        i.ja3_string.as_deref(),
        Some("771,4865-49199,0-10-11-16-43,29-23,0")
    );
    assert_eq!(
        i.ja3_hash.as_deref(),
        Some(hello::md5_hex("771,4865-49199,0-10-11-16-43,29-23,0").as_str())
    );
    assert_eq!(i.sni.as_deref(), Some(&b"example.com"[..]));
    assert_eq!(i.client_version, Some(0x0304));
    assert_eq!(i.client_random, Some([7; 32]));
    assert_eq!(hello::md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
}

/// A ClientHello fragmented over three records, fed one byte at a time.
#[test]
fn test_client_hello_over_three_records() {
    let msg = client_hello();
    let third = msg.len() / 3;
    let mut stream = Vec::new();
    for part in [&msg[..third], &msg[third..2 * third], &msg[2 * third..]] {
        stream.extend(record(22, part));
    }
    let mut st = TlsState::new();
    let mut changes = Vec::new();
    for b in &stream {
        let c = st.feed(true, std::slice::from_ref(b));
        if !c.is_empty() {
            changes.push(c);
        }
    }
    assert_eq!(changes, vec![TlsChanges::CLIENT_HELLO]);
    assert_eq!(st.info.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(st.counters.records, 3);
    assert_eq!(st.counters.handshake_msgs, 1);
    assert_eq!(st.pending(true), 0);
}

#[test]
fn test_two_messages_in_one_record_and_ccs() {
    let mut hs = client_hello();
    hs.extend([14, 0, 0, 0]); // an empty ServerHelloDone-like message
    let mut stream = record(22, &hs);
    stream.extend(record(20, &[1]));
    stream.extend(record(23, &[0xaa; 100]));
    let mut st = TlsState::new();
    assert!(st.feed(true, &stream).contains(TlsChanges::CLIENT_HELLO));
    assert_eq!(st.counters.handshake_msgs, 2);
    assert_eq!(st.counters.bytes_after_ccs, 105);
    assert!(st.encrypted(true));
}

#[test]
fn test_gives_up_on_garbage_and_oversize() {
    let mut st = TlsState::new();
    st.feed(true, b"GET / HTTP/1.1\r\n");
    assert!(st.gave_up(true));
    assert_eq!(st.counters.gave_up, 1);
    st.feed(true, &[0x16; 1000]);
    assert_eq!(st.counters.gave_up, 1);

    // A handshake message announcing 16 MiB.
    let mut st = TlsState::new();
    st.feed(false, &record(22, &[11, 0xff, 0xff, 0xff, 0, 0]));
    assert!(st.gave_up(false));

    // Handshake fragments that never complete a message stay bounded.
    let mut st = TlsState::new();
    st.feed(false, &record(22, &[11, 0x00, 0xff, 0x00]));
    for _ in 0..10 {
        st.feed(false, &record(22, &[0u8; 16384]));
        assert!(st.pending(false) <= MAX_PENDING);
    }
    assert!(st.gave_up(false));
    assert_eq!(st.pending(false), 0);
}

#[test]
fn test_truncated_and_malformed_hellos_do_not_panic() {
    let msg = client_hello();
    for cut in 0..msg.len() {
        let mut m = msg[..cut].to_vec();
        if m.len() >= 4 {
            let n = (m.len() - 4) as u32;
            m[1..4].copy_from_slice(&n.to_be_bytes()[1..]);
        }
        let mut st = TlsState::new();
        st.feed(true, &record(22, &m));
        let mut bad = msg.clone();
        bad[cut] ^= 0xff;
        st.feed(false, &record(22, &bad));
    }
}

#[test]
fn test_version_names() {
    assert_eq!(version_name(0x0300), "SSLv3");
    assert_eq!(version_name(0x0304), "TLS 1.3");
    assert_eq!(version_name(0x7f1c), "TLS 1.3 draft-28");
    assert_eq!(version_name(0x7f05), "TLS 1.3 draft-<16");
    assert_eq!(TlsInfo::default().version_string(), "UNDETERMINED");
    assert!(hello::is_grease(0xfafa) && !hello::is_grease(0x0a1a));
}
