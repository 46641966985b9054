//! Frames the bridge injects when it blocks a TCP connection (SPEC §3.3): a TCP RST to each
//! end of the connection, or an HTTP `403 Forbidden` block page to the client.
//!
//! Every function takes the original Ethernet frame of the packet being blocked (Ethernet II,
//! optionally with one or two 802.1Q/802.1ad VLAN tags, IPv4 or IPv6, TCP) and writes complete
//! Ethernet frames into caller-provided buffers, which are reused between calls: apart from a
//! buffer growing the first time, building a frame does not allocate.
//!
//! The injected frames keep the original VLAN tags byte for byte (PCP, DEI and VID). Their IP
//! header is fresh: IPv4 with identification 0, DF set, TTL 64 and no options; IPv6 with hop limit
//! 64 and no extension headers. The TCP header has no options. All checksums are computed.

use std::io::Write as _;

use etherparse::err::packet::SliceError;
use etherparse::{
    Ethernet2Header, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, LinkExtSlice, LinkSlice,
    NetSlice, SlicedPacket, TcpHeader, TransportSlice,
};

/// Why no frame could be built from the original frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// The frame is well formed but does not carry TCP (e.g. UDP, ICMP, ARP or no IP at all).
    #[error("frame does not carry a TCP segment")]
    NotTcp,
    /// The frame could not be decoded far enough (truncated, invalid header, IP fragment...), or
    /// it lacks what the injected frame must be derived from.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The HTTP response (headers and page) would not fit in one segment of at most
    /// [`MAX_BLOCK_PAGE_PAYLOAD`] bytes; the page is never truncated, make it smaller
    /// (see [`block_page_html`]).
    #[error("block page response of {len} bytes exceeds the {max}-byte limit of one segment")]
    PageTooLarge {
        /// Size of the whole HTTP response (status line, headers and body) in bytes.
        len: usize,
        /// The limit, [`MAX_BLOCK_PAGE_PAYLOAD`].
        max: usize,
    },
}

/// Largest TCP payload (HTTP status line, headers and body) [`block_page`] puts in its single
/// segment.
///
/// 1200 bytes fit any path that carries IPv6 (minimum MTU 1280 = 40 IPv6 + 20 TCP + 1220), leave
/// room for tunnels and PPPoE on IPv4, and keep the frame far below 1514 bytes even with two VLAN
/// tags.
pub const MAX_BLOCK_PAGE_PAYLOAD: usize = 1200;

/// TTL (IPv4) / hop limit (IPv6) of injected packets.
const HOP_LIMIT: u8 = 64;

/// TCP window advertised by the block page segment.
const BLOCK_PAGE_WINDOW: u16 = 65535;

/// Length of the two MAC addresses that open an Ethernet II header.
const MACS_LEN: usize = 12;

/// HTTP response head of the block page, split around the `Content-Length` value.
const HTTP_HEAD_BEFORE_LEN: &str =
    "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ";
const HTTP_HEAD_AFTER_LEN: &str = "\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n";

/// Builds a TCP RST to each end of the connection of `frame`, which the bridge drops.
///
/// * `to_sender` goes back to the host that sent `frame`: source and destination MACs, IP
///   addresses and ports swapped; flags RST|ACK with ack = `frame`'s seq + payload length (+1 for
///   SYN, +1 for FIN); seq = `frame`'s ack number (0 if `frame` has no ACK flag, as RFC 9293
///   §3.10.7.1 prescribes, since its ack field is then meaningless).
/// * `to_receiver` goes on to the host `frame` was addressed to, with `frame`'s own addresses and
///   ports; seq = `frame`'s seq (the receiver never sees `frame`, so that is exactly what it
///   expects next); flags RST alone, or RST|ACK with ack = `frame`'s ack when `frame` has ACK.
///
/// Both frames keep `frame`'s VLAN tags and advertise window 0. Both buffers are cleared first
/// (also when an error is returned) and then filled with one complete Ethernet frame each.
pub fn resets(
    frame: &[u8],
    to_sender: &mut Vec<u8>,
    to_receiver: &mut Vec<u8>,
) -> Result<(), InjectError> {
    to_sender.clear();
    to_receiver.clear();
    let conn = parse(frame)?;

    let back = Segment {
        seq: conn.ack.unwrap_or(0),
        ack: Some(conn.seq_end()),
        rst: true,
        psh: false,
        fin: false,
        window: 0,
    };
    emit(to_sender, &conn, Direction::ToSender, &back, |_| {})?;

    let forward = Segment {
        seq: conn.seq,
        ack: conn.ack,
        rst: true,
        psh: false,
        fin: false,
        window: 0,
    };
    emit(to_receiver, &conn, Direction::ToReceiver, &forward, |_| {}).inspect_err(|_| {
        to_sender.clear();
    })
}

/// Builds the frame that answers the HTTP request in `frame` (which goes client → server) with a
/// block page, sent to the client as if from the server.
///
/// MACs, IP addresses and ports are those of `frame` swapped; seq = `frame`'s ack number, ack =
/// `frame`'s seq + payload length (+1 for SYN/FIN); flags PSH|ACK|FIN; window 65535; VLAN tags
/// kept. The payload is a complete HTTP/1.1 `403 Forbidden` response with `Content-Type:
/// text/html; charset=utf-8`, `Content-Length`, `Connection: close` and `Cache-Control:
/// no-store`, whose body is `html` (normally from [`block_page_html`]).
///
/// The response must fit in one segment of [`MAX_BLOCK_PAGE_PAYLOAD`] bytes, otherwise
/// [`InjectError::PageTooLarge`] is returned (the page is never truncated). `frame` must have the
/// ACK flag, since the server's sequence number is taken from it. `out` is cleared first (also
/// on error) and then filled with one complete Ethernet frame.
pub fn block_page(frame: &[u8], html: &str, out: &mut Vec<u8>) -> Result<(), InjectError> {
    out.clear();
    let conn = parse(frame)?;
    let Some(server_seq) = conn.ack else {
        return Err(InjectError::Malformed(
            "request has no ACK flag, the server's sequence number is unknown",
        ));
    };

    let len = HTTP_HEAD_BEFORE_LEN.len()
        + decimal_digits(html.len())
        + HTTP_HEAD_AFTER_LEN.len()
        + html.len();
    if len > MAX_BLOCK_PAGE_PAYLOAD {
        return Err(InjectError::PageTooLarge {
            len,
            max: MAX_BLOCK_PAGE_PAYLOAD,
        });
    }

    let segment = Segment {
        seq: server_seq,
        ack: Some(conn.seq_end()),
        rst: false,
        psh: true,
        fin: true,
        window: BLOCK_PAGE_WINDOW,
    };
    emit(out, &conn, Direction::ToSender, &segment, |buf| {
        buf.extend_from_slice(HTTP_HEAD_BEFORE_LEN.as_bytes());
        // Writing into a Vec<u8> cannot fail.
        let _ = write!(buf, "{}", html.len());
        buf.extend_from_slice(HTTP_HEAD_AFTER_LEN.as_bytes());
        buf.extend_from_slice(html.as_bytes());
    })
}

/// Escaped-size budgets of the inputs of [`block_page_html`]; longer inputs are shortened with
/// `…`. With them the page is at most about 1030 bytes, so the response always fits in
/// [`MAX_BLOCK_PAGE_PAYLOAD`].
const HOST_BUDGET: usize = 192;
const CATEGORY_BUDGET: usize = 48;
const APPLIANCE_BUDGET: usize = 48;

/// The block page template, split around the appliance name, the host and the category.
const PAGE_HEAD: &str = concat!(
    "<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width\">",
    "<title>アクセスをブロックしました</title><style>",
    "body{margin:0;padding:1em;font-family:sans-serif;background:#eee}",
    "main{max-width:36em;margin:2em auto;padding:1em 1.5em;background:#fff;",
    "border-top:5px solid #c22}",
    "h1{font-size:1.3em;color:#c22}b{word-break:break-all}",
    "</style></head><body><main><h1>アクセスをブロックしました</h1><p>",
);
const PAGE_AFTER_APPLIANCE: &str =
    " が安全ではないと判断したため、このサイトへの接続を遮断しました。</p><p>ホスト: <b>";
const PAGE_AFTER_HOST: &str = "</b><br>カテゴリ: <b>";
const PAGE_TAIL: &str = concat!(
    "</b></p><p>誤りと思われる場合は、ネットワーク管理者にお問い合わせください。</p>",
    "</main></body></html>",
);
const PAGE_FIXED_LEN: usize =
    PAGE_HEAD.len() + PAGE_AFTER_APPLIANCE.len() + PAGE_AFTER_HOST.len() + PAGE_TAIL.len();

/// The block page shown to the user: a compact, self-contained Japanese HTML page (inline CSS
/// only, no external asset) that names the blocked `host`, its `category` (e.g. `"phishing"`)
/// and the `appliance` that blocked it (e.g. `"Mimamori"`), and tells the user to contact the
/// network administrator if they think this is a mistake.
///
/// Every input is HTML-escaped. The page is about 800 bytes for a 40-byte host and a 12-byte
/// category; inputs whose escaped form exceeds 192 (host) or 48 (category, appliance) bytes are
/// shortened with `…`, so the result always fits in [`block_page`]'s single segment.
pub fn block_page_html(host: &str, category: &str, appliance: &str) -> String {
    let mut page = String::with_capacity(
        PAGE_FIXED_LEN
            + escaped_len(host).min(HOST_BUDGET)
            + escaped_len(category).min(CATEGORY_BUDGET)
            + escaped_len(appliance).min(APPLIANCE_BUDGET),
    );
    page.push_str(PAGE_HEAD);
    push_escaped(&mut page, appliance, APPLIANCE_BUDGET);
    page.push_str(PAGE_AFTER_APPLIANCE);
    push_escaped(&mut page, host, HOST_BUDGET);
    page.push_str(PAGE_AFTER_HOST);
    push_escaped(&mut page, category, CATEGORY_BUDGET);
    page.push_str(PAGE_TAIL);
    page
}

/// The HTML escape of `c`, if it needs one.
fn escape(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&#39;"),
        _ => None,
    }
}

fn escaped_char_len(c: char) -> usize {
    escape(c).map_or(c.len_utf8(), str::len)
}

fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

/// Appends `s` HTML-escaped to `out`, using at most `budget` bytes: if the escaped form is
/// longer, it is cut at a character (never inside an entity) and ends with `…`.
fn push_escaped(out: &mut String, s: &str, budget: usize) {
    let fits = escaped_len(s) <= budget;
    let limit = if fits {
        budget
    } else {
        budget.saturating_sub('…'.len_utf8())
    };
    let mut used = 0;
    for c in s.chars() {
        let len = escaped_char_len(c);
        if used + len > limit {
            break;
        }
        used += len;
        match escape(c) {
            Some(entity) => out.push_str(entity),
            None => out.push(c),
        }
    }
    if !fits {
        out.push('…');
    }
}

/// Number of decimal digits of `n`.
fn decimal_digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// IP addresses of the original packet.
#[derive(Debug, Clone, Copy)]
enum IpAddrs {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

impl IpAddrs {
    /// Length of the IP header of an injected packet (no options, no extension headers).
    fn header_len(self) -> usize {
        match self {
            IpAddrs::V4 { .. } => Ipv4Header::MIN_LEN,
            IpAddrs::V6 { .. } => Ipv6Header::LEN,
        }
    }
}

/// What the injected frames are derived from: the original frame, decoded.
#[derive(Debug)]
struct Conn<'a> {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    /// The bytes between the MAC addresses and the IP header: outer EtherType, VLAN tags and
    /// inner EtherType. Copied verbatim, as the injected frames have the same IP version.
    link_tail: &'a [u8],
    ip: IpAddrs,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    /// The acknowledgment number, if the ACK flag is set.
    ack: Option<u32>,
    /// Sequence space the segment occupies: payload length, +1 for SYN, +1 for FIN.
    seq_len: u32,
}

impl Conn<'_> {
    /// The sequence number following the original segment.
    fn seq_end(&self) -> u32 {
        self.seq.wrapping_add(self.seq_len)
    }
}

/// Which way an injected frame goes, relative to the original frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Back to the original sender: addresses and ports swapped.
    ToSender,
    /// On to the original receiver: same addresses and ports.
    ToReceiver,
}

/// The TCP fields of an injected segment.
#[derive(Debug)]
struct Segment {
    seq: u32,
    ack: Option<u32>,
    rst: bool,
    psh: bool,
    fin: bool,
    window: u16,
}

fn slice_error(err: &SliceError) -> InjectError {
    InjectError::Malformed(match err {
        SliceError::Len(_) => "truncated frame",
        SliceError::LinuxSll(_) => "invalid link header",
        SliceError::Macsec(_) => "invalid MACsec header",
        SliceError::Ip(_) | SliceError::Ipv4(_) | SliceError::Ipv6(_) => "invalid IP header",
        SliceError::Ipv4Exts(_) | SliceError::Ipv6Exts(_) => "invalid IP extension header",
        SliceError::Tcp(_) => "invalid TCP header",
    })
}

/// Maps a length overflow of the injected segment (unreachable for the sizes built here).
fn too_long<E>(_: E) -> InjectError {
    InjectError::Malformed("injected segment too long")
}

/// Decodes the original frame.
fn parse(frame: &[u8]) -> Result<Conn<'_>, InjectError> {
    let packet = SlicedPacket::from_ethernet(frame).map_err(|e| slice_error(&e))?;
    let Some(LinkSlice::Ethernet2(eth)) = &packet.link else {
        return Err(InjectError::Malformed("no Ethernet II header"));
    };

    let mut l2_len = Ethernet2Header::LEN;
    for ext in &packet.link_exts {
        match ext {
            LinkExtSlice::Vlan(vlan) => l2_len += vlan.header_slice().len(),
            LinkExtSlice::Macsec(_) => {
                return Err(InjectError::Malformed(
                    "MACsec-protected frames cannot be injected",
                ));
            }
        }
    }

    let (ip, payload) = match &packet.net {
        Some(NetSlice::Ipv4(v4)) => {
            let header = v4.header();
            let addrs = IpAddrs::V4 {
                src: header.source(),
                dst: header.destination(),
            };
            (addrs, v4.payload())
        }
        Some(NetSlice::Ipv6(v6)) => {
            let header = v6.header();
            let addrs = IpAddrs::V6 {
                src: header.source(),
                dst: header.destination(),
            };
            (addrs, v6.payload())
        }
        Some(NetSlice::Arp(_)) | None => return Err(InjectError::NotTcp),
    };
    if payload.ip_number != IpNumber::TCP {
        return Err(InjectError::NotTcp);
    }
    if payload.fragmented {
        return Err(InjectError::Malformed("fragmented IP packet"));
    }
    let Some(TransportSlice::Tcp(tcp)) = &packet.transport else {
        return Err(InjectError::Malformed("TCP segment not decoded"));
    };

    let link_tail = frame
        .get(MACS_LEN..l2_len)
        .ok_or(InjectError::Malformed("truncated frame"))?;
    let payload_len = u32::try_from(tcp.payload().len())
        .map_err(|_| InjectError::Malformed("TCP payload too long"))?;
    Ok(Conn {
        src_mac: eth.source(),
        dst_mac: eth.destination(),
        link_tail,
        ip,
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.ack().then(|| tcp.acknowledgment_number()),
        seq_len: payload_len + u32::from(tcp.syn()) + u32::from(tcp.fin()),
    })
}

/// Clears `out` and writes one Ethernet frame into it: the MACs, VLAN tags, IP addresses and
/// ports of `conn` oriented by `dir`, the TCP fields of `seg`, and the payload `payload` appends
/// to the buffer it is given. Fills in lengths and checksums.
fn emit(
    out: &mut Vec<u8>,
    conn: &Conn<'_>,
    dir: Direction,
    seg: &Segment,
    payload: impl FnOnce(&mut Vec<u8>),
) -> Result<(), InjectError> {
    let (src_mac, dst_mac, src_port, dst_port, ip) = match dir {
        Direction::ToReceiver => (
            conn.src_mac,
            conn.dst_mac,
            conn.src_port,
            conn.dst_port,
            conn.ip,
        ),
        Direction::ToSender => (
            conn.dst_mac,
            conn.src_mac,
            conn.dst_port,
            conn.src_port,
            match conn.ip {
                IpAddrs::V4 { src, dst } => IpAddrs::V4 { src: dst, dst: src },
                IpAddrs::V6 { src, dst } => IpAddrs::V6 { src: dst, dst: src },
            },
        ),
    };

    let l2_len = MACS_LEN + conn.link_tail.len();
    let headers_len = l2_len + ip.header_len() + TcpHeader::MIN_LEN;

    // Payload first (after room for the headers), as the headers depend on it.
    out.clear();
    out.resize(headers_len, 0);
    payload(out);

    out[..6].copy_from_slice(&dst_mac);
    out[6..MACS_LEN].copy_from_slice(&src_mac);
    out[MACS_LEN..l2_len].copy_from_slice(conn.link_tail);

    let mut tcp = TcpHeader::new(src_port, dst_port, seg.seq, seg.window);
    tcp.acknowledgment_number = seg.ack.unwrap_or(0);
    tcp.ack = seg.ack.is_some();
    tcp.rst = seg.rst;
    tcp.psh = seg.psh;
    tcp.fin = seg.fin;
    let result = write_ip_tcp(&mut out[l2_len..], ip, tcp);
    if result.is_err() {
        out.clear();
    }
    result
}

/// Fills in the IP header (addresses `ip`) and the TCP header `tcp` at the start of `packet`,
/// whose TCP payload follows the room left for them; computes lengths and checksums.
fn write_ip_tcp(packet: &mut [u8], ip: IpAddrs, mut tcp: TcpHeader) -> Result<(), InjectError> {
    let ip_len = ip.header_len();
    let tcp_len = u16::try_from(packet.len() - ip_len).map_err(too_long)?;
    let (headers, payload) = packet.split_at_mut(ip_len + TcpHeader::MIN_LEN);
    let (ip_header, tcp_header) = headers.split_at_mut(ip_len);
    match ip {
        IpAddrs::V4 { src, dst } => {
            let mut header =
                Ipv4Header::new(tcp_len, HOP_LIMIT, IpNumber::TCP, src, dst).map_err(too_long)?;
            header.identification = 0;
            header.dont_fragment = true;
            header.header_checksum = header.calc_header_checksum();
            ip_header.copy_from_slice(&header.to_bytes());
            tcp.checksum = tcp
                .calc_checksum_ipv4_raw(src, dst, payload)
                .map_err(too_long)?;
        }
        IpAddrs::V6 { src, dst } => {
            let header = Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: tcp_len,
                next_header: IpNumber::TCP,
                hop_limit: HOP_LIMIT,
                source: src,
                destination: dst,
            };
            ip_header.copy_from_slice(&header.to_bytes());
            tcp.checksum = tcp
                .calc_checksum_ipv6_raw(src, dst, payload)
                .map_err(too_long)?;
        }
    }
    tcp_header.copy_from_slice(&tcp.to_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, TcpSlice, VlanId};

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const CLIENT_V4: [u8; 4] = [198, 18, 0, 10];
    const SERVER_V4: [u8; 4] = [198, 19, 200, 1];
    const CLIENT_V6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    const SERVER_V6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    ];
    const CLIENT_PORT: u16 = 49152;
    const SERVER_PORT: u16 = 80;

    #[derive(Debug, Clone, Copy)]
    enum Vlan {
        None,
        Single(u16),
        Double(u16, u16),
    }

    #[derive(Debug, Clone, Copy, Default)]
    struct Flags {
        syn: bool,
        fin: bool,
        psh: bool,
        ack: Option<u32>,
    }

    const ALL_VLANS: [Vlan; 3] = [Vlan::None, Vlan::Single(100), Vlan::Double(200, 300)];

    /// A client → server TCP frame.
    fn tcp_frame(vlan: Vlan, v6: bool, seq: u32, flags: Flags, payload: &[u8]) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC);
        let vid = |v: u16| VlanId::try_new(v).unwrap();
        let ip = match (vlan, v6) {
            (Vlan::None, false) => eth.ipv4(CLIENT_V4, SERVER_V4, 57),
            (Vlan::None, true) => eth.ipv6(CLIENT_V6, SERVER_V6, 57),
            (Vlan::Single(a), false) => eth.single_vlan(vid(a)).ipv4(CLIENT_V4, SERVER_V4, 57),
            (Vlan::Single(a), true) => eth.single_vlan(vid(a)).ipv6(CLIENT_V6, SERVER_V6, 57),
            (Vlan::Double(a, b), false) => eth
                .double_vlan(vid(a), vid(b))
                .ipv4(CLIENT_V4, SERVER_V4, 57),
            (Vlan::Double(a, b), true) => eth
                .double_vlan(vid(a), vid(b))
                .ipv6(CLIENT_V6, SERVER_V6, 57),
        };
        let mut tcp = ip.tcp(CLIENT_PORT, SERVER_PORT, seq, 29200);
        if flags.syn {
            tcp = tcp.syn();
        }
        if flags.fin {
            tcp = tcp.fin();
        }
        if flags.psh {
            tcp = tcp.psh();
        }
        if let Some(ack) = flags.ack {
            tcp = tcp.ack(ack);
        }
        let mut frame = Vec::new();
        tcp.write(&mut frame, payload).unwrap();
        frame
    }

    fn vlan_ids(packet: &SlicedPacket<'_>) -> Vec<u16> {
        packet
            .link_exts
            .iter()
            .map(|ext| match ext {
                LinkExtSlice::Vlan(v) => v.vlan_identifier().value(),
                LinkExtSlice::Macsec(_) => panic!("unexpected MACsec"),
            })
            .collect()
    }

    fn expected_vlan_ids(vlan: Vlan) -> Vec<u16> {
        match vlan {
            Vlan::None => vec![],
            Vlan::Single(a) => vec![a],
            Vlan::Double(a, b) => vec![a, b],
        }
    }

    /// Decoded injected frame, with all checksums verified.
    struct Out<'a> {
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        vlans: Vec<u16>,
        src_ip: Vec<u8>,
        dst_ip: Vec<u8>,
        tcp: TcpSlice<'a>,
    }

    fn decode(frame: &[u8]) -> Out<'_> {
        let packet = SlicedPacket::from_ethernet(frame).expect("injected frame parses");
        let Some(LinkSlice::Ethernet2(eth)) = &packet.link else {
            panic!("no Ethernet II header")
        };
        let Some(TransportSlice::Tcp(tcp)) = packet.transport.clone() else {
            panic!("no TCP")
        };
        let tcp_header = tcp.to_header();
        let (src_ip, dst_ip) = match &packet.net {
            Some(NetSlice::Ipv4(v4)) => {
                let ip = v4.header().to_header();
                assert_eq!(ip.identification, 0);
                assert!(ip.dont_fragment);
                assert!(!ip.more_fragments);
                assert_eq!(ip.time_to_live, 64);
                assert_eq!(ip.protocol, IpNumber::TCP);
                assert_eq!(
                    ip.header_checksum,
                    ip.calc_header_checksum(),
                    "IPv4 checksum"
                );
                assert_eq!(
                    tcp.checksum(),
                    tcp_header.calc_checksum_ipv4(&ip, tcp.payload()).unwrap(),
                    "TCP checksum (IPv4)"
                );
                (ip.source.to_vec(), ip.destination.to_vec())
            }
            Some(NetSlice::Ipv6(v6)) => {
                let ip = v6.header().to_header();
                assert_eq!(ip.hop_limit, 64);
                assert_eq!(ip.next_header, IpNumber::TCP);
                assert_eq!(
                    usize::from(ip.payload_length),
                    tcp.slice().len(),
                    "IPv6 payload length"
                );
                assert_eq!(
                    tcp.checksum(),
                    tcp_header.calc_checksum_ipv6(&ip, tcp.payload()).unwrap(),
                    "TCP checksum (IPv6)"
                );
                (ip.source.to_vec(), ip.destination.to_vec())
            }
            _ => panic!("no IP"),
        };
        assert_eq!(tcp.options(), &[] as &[u8]);
        Out {
            src_mac: eth.source(),
            dst_mac: eth.destination(),
            vlans: vlan_ids(&packet),
            src_ip,
            dst_ip,
            tcp,
        }
    }

    fn ips(v6: bool) -> (Vec<u8>, Vec<u8>) {
        if v6 {
            (CLIENT_V6.to_vec(), SERVER_V6.to_vec())
        } else {
            (CLIENT_V4.to_vec(), SERVER_V4.to_vec())
        }
    }

    #[test]
    fn resets_for_data_segment_all_encapsulations() {
        let payload = b"GET /login HTTP/1.1\r\nHost: bad.example\r\n\r\n";
        let flags = Flags {
            psh: true,
            ack: Some(0x8000_0001),
            ..Flags::default()
        };
        let (mut to_sender, mut to_receiver) = (Vec::new(), Vec::new());
        for vlan in ALL_VLANS {
            for v6 in [false, true] {
                let frame = tcp_frame(vlan, v6, 1_000_000, flags, payload);
                resets(&frame, &mut to_sender, &mut to_receiver).unwrap();
                let (client_ip, server_ip) = ips(v6);

                // Back to the client: everything swapped.
                let back = decode(&to_sender);
                assert_eq!(back.src_mac, SERVER_MAC);
                assert_eq!(back.dst_mac, CLIENT_MAC);
                assert_eq!(back.vlans, expected_vlan_ids(vlan));
                assert_eq!(back.src_ip, server_ip);
                assert_eq!(back.dst_ip, client_ip);
                assert_eq!(back.tcp.source_port(), SERVER_PORT);
                assert_eq!(back.tcp.destination_port(), CLIENT_PORT);
                assert_eq!(back.tcp.sequence_number(), 0x8000_0001);
                assert_eq!(
                    back.tcp.acknowledgment_number(),
                    1_000_000 + payload.len() as u32
                );
                assert!(back.tcp.rst() && back.tcp.ack());
                assert!(!back.tcp.syn() && !back.tcp.fin() && !back.tcp.psh());
                assert_eq!(back.tcp.window_size(), 0);
                assert!(back.tcp.payload().is_empty());

                // On to the server: same addresses.
                let fwd = decode(&to_receiver);
                assert_eq!(fwd.src_mac, CLIENT_MAC);
                assert_eq!(fwd.dst_mac, SERVER_MAC);
                assert_eq!(fwd.vlans, expected_vlan_ids(vlan));
                assert_eq!(fwd.src_ip, client_ip);
                assert_eq!(fwd.dst_ip, server_ip);
                assert_eq!(fwd.tcp.source_port(), CLIENT_PORT);
                assert_eq!(fwd.tcp.destination_port(), SERVER_PORT);
                assert_eq!(fwd.tcp.sequence_number(), 1_000_000);
                assert!(fwd.tcp.rst() && fwd.tcp.ack());
                assert_eq!(fwd.tcp.acknowledgment_number(), 0x8000_0001);
                assert!(!fwd.tcp.syn() && !fwd.tcp.fin() && !fwd.tcp.psh());
                assert_eq!(fwd.tcp.window_size(), 0);
                assert!(fwd.tcp.payload().is_empty());

                // The VLAN tags are kept byte for byte, and the frames have the minimal size.
                let l2 = 14 + 4 * expected_vlan_ids(vlan).len();
                assert_eq!(to_sender[12..l2], frame[12..l2]);
                assert_eq!(to_receiver[12..l2], frame[12..l2]);
                let ip_len = if v6 { 40 } else { 20 };
                assert_eq!(to_sender.len(), l2 + ip_len + 20);
                assert_eq!(to_receiver.len(), l2 + ip_len + 20);
            }
        }
    }

    #[test]
    fn resets_for_syn_without_ack() {
        let (mut to_sender, mut to_receiver) = (Vec::new(), Vec::new());
        for v6 in [false, true] {
            let syn = Flags {
                syn: true,
                ..Flags::default()
            };
            let frame = tcp_frame(Vlan::Single(42), v6, u32::MAX, syn, &[]);
            resets(&frame, &mut to_sender, &mut to_receiver).unwrap();

            let back = decode(&to_sender);
            assert_eq!(back.tcp.sequence_number(), 0);
            assert!(back.tcp.rst() && back.tcp.ack());
            // SYN takes one sequence number; wraps around.
            assert_eq!(back.tcp.acknowledgment_number(), 0);

            let fwd = decode(&to_receiver);
            assert_eq!(fwd.tcp.sequence_number(), u32::MAX);
            assert!(fwd.tcp.rst());
            assert!(!fwd.tcp.ack());
            assert_eq!(fwd.tcp.acknowledgment_number(), 0);
            assert_eq!(fwd.vlans, vec![42]);
        }
    }

    #[test]
    fn resets_count_fin_and_ignore_ethernet_padding() {
        let flags = Flags {
            fin: true,
            ack: Some(77),
            ..Flags::default()
        };
        let mut frame = tcp_frame(Vlan::None, false, 500, flags, b"x");
        assert!(frame.len() < 60);
        frame.resize(60, 0); // Ethernet minimum size padding, not TCP payload.
        let (mut to_sender, mut to_receiver) = (Vec::new(), Vec::new());
        resets(&frame, &mut to_sender, &mut to_receiver).unwrap();
        let back = decode(&to_sender);
        assert_eq!(back.tcp.sequence_number(), 77);
        assert_eq!(back.tcp.acknowledgment_number(), 500 + 1 + 1);
        let fwd = decode(&to_receiver);
        assert_eq!(fwd.tcp.sequence_number(), 500);
        assert_eq!(fwd.tcp.acknowledgment_number(), 77);
    }

    #[test]
    fn buffers_are_reused_and_replaced() {
        let flags = Flags {
            ack: Some(1),
            ..Flags::default()
        };
        let (mut to_sender, mut to_receiver) = (vec![0xAA; 3000], vec![0xBB; 3000]);
        let frame = tcp_frame(Vlan::Double(1, 2), true, 9, flags, b"payload");
        resets(&frame, &mut to_sender, &mut to_receiver).unwrap();
        assert_eq!(to_sender.len(), 14 + 8 + 40 + 20);
        assert!(to_sender.capacity() >= 3000);
        decode(&to_sender);
        decode(&to_receiver);

        // On error the buffers hold no stale frame.
        assert!(resets(&frame[..30], &mut to_sender, &mut to_receiver).is_err());
        assert!(to_sender.is_empty() && to_receiver.is_empty());
        let mut out = vec![1; 10];
        assert!(block_page(&frame[..30], "x", &mut out).is_err());
        assert!(out.is_empty());
    }

    fn http_response(payload: &[u8]) -> (u16, Vec<(String, String)>, &[u8]) {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head_len) = response.parse(payload).unwrap() else {
            panic!("incomplete HTTP response head")
        };
        assert_eq!(response.version, Some(1));
        let headers = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        (response.code.unwrap(), headers, &payload[head_len..])
    }

    fn header<'h>(headers: &'h [(String, String)], name: &str) -> &'h str {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("missing header {name}"))
    }

    #[test]
    fn block_page_all_encapsulations() {
        let host = "login-secure-account-verify.example.test";
        assert_eq!(host.len(), 40);
        let html = block_page_html(host, "phishing", "Mimamori");
        let request = b"GET / HTTP/1.1\r\nHost: login-secure-account-verify.example.test\r\n\r\n";
        let flags = Flags {
            psh: true,
            ack: Some(0xFFFF_FFF0),
            ..Flags::default()
        };
        let mut out = Vec::new();
        for vlan in ALL_VLANS {
            for v6 in [false, true] {
                let seq = 0xFFFF_FFFF - 10; // ack wraps around
                let frame = tcp_frame(vlan, v6, seq, flags, request);
                block_page(&frame, &html, &mut out).unwrap();
                assert!(out.len() <= 1514, "frame of {} bytes", out.len());
                let (client_ip, server_ip) = ips(v6);

                let page = decode(&out);
                assert_eq!(page.src_mac, SERVER_MAC);
                assert_eq!(page.dst_mac, CLIENT_MAC);
                assert_eq!(page.vlans, expected_vlan_ids(vlan));
                assert_eq!(page.src_ip, server_ip);
                assert_eq!(page.dst_ip, client_ip);
                assert_eq!(page.tcp.source_port(), SERVER_PORT);
                assert_eq!(page.tcp.destination_port(), CLIENT_PORT);
                assert_eq!(page.tcp.sequence_number(), 0xFFFF_FFF0);
                assert_eq!(
                    page.tcp.acknowledgment_number(),
                    seq.wrapping_add(request.len() as u32)
                );
                assert!(page.tcp.psh() && page.tcp.ack() && page.tcp.fin());
                assert!(!page.tcp.rst() && !page.tcp.syn());
                assert_eq!(page.tcp.window_size(), 65535);

                let payload = page.tcp.payload();
                assert!(payload.len() <= MAX_BLOCK_PAGE_PAYLOAD);
                let (status, headers, body) = http_response(payload);
                assert_eq!(status, 403);
                assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
                assert_eq!(
                    header(&headers, "content-length").parse::<usize>().unwrap(),
                    body.len()
                );
                assert_eq!(header(&headers, "connection"), "close");
                assert_eq!(header(&headers, "cache-control"), "no-store");
                assert_eq!(body, html.as_bytes());
                let body = std::str::from_utf8(body).unwrap();
                assert!(body.contains(host));
                assert!(body.contains("phishing"));
                assert!(body.contains("Mimamori"));
            }
        }
    }

    #[test]
    fn block_page_escapes_inputs() {
        let html = block_page_html(
            "<script>alert(1)</script>.example",
            "a&b \"c\" 'd'",
            "<Mimamori>",
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;.example"));
        assert!(html.contains("a&amp;b &quot;c&quot; &#39;d&#39;"));
        assert!(html.contains("&lt;Mimamori&gt;"));
        assert!(!html.contains("<Mimamori>"));

        // The escaped page goes out unchanged.
        let flags = Flags {
            ack: Some(5),
            ..Flags::default()
        };
        let frame = tcp_frame(Vlan::None, false, 1, flags, b"GET / HTTP/1.1\r\n\r\n");
        let mut out = Vec::new();
        block_page(&frame, &html, &mut out).unwrap();
        let (status, headers, body) = http_response(decode(&out).tcp.payload());
        assert_eq!(status, 403);
        assert_eq!(
            header(&headers, "content-length").parse::<usize>().unwrap(),
            body.len()
        );
        let body = std::str::from_utf8(body).unwrap();
        assert!(body.contains("&lt;script&gt;"));
        assert!(body.contains("a&amp;b"));
    }

    #[test]
    fn block_page_html_is_compact_japanese_and_self_contained() {
        let host = "x".repeat(40);
        let html = block_page_html(&host, "malware-site", "Mimamori");
        assert!(html.len() < 900, "page is {} bytes", html.len());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("lang=\"ja\""));
        assert!(html.contains("ブロック"));
        assert!(html.contains("管理者"));
        assert!(html.contains(&host));
        assert!(html.contains("malware-site"));
        assert!(html.contains("Mimamori"));
        for external in ["src=", "href=", "<link", "url(", "@import", "<script"] {
            assert!(!html.contains(external), "page references {external}");
        }
    }

    #[test]
    fn block_page_html_always_fits_one_segment() {
        // Worst case: long inputs made only of characters with the longest escape.
        let long = "\"".repeat(1000);
        let html = block_page_html(&long, &long, &long);
        assert!(html.contains('…'));
        assert!(!html.contains("&quot…") && !html.contains("&quo…"));
        let flags = Flags {
            ack: Some(5),
            ..Flags::default()
        };
        let frame = tcp_frame(
            Vlan::Double(1, 2),
            true,
            1,
            flags,
            b"GET / HTTP/1.1\r\n\r\n",
        );
        let mut out = Vec::new();
        block_page(&frame, &html, &mut out).unwrap();
        assert!(out.len() <= 1514);

        // Long multi-byte hosts are cut at a character boundary.
        let html = block_page_html(&"日本".repeat(200), "c", "a");
        assert!(html.contains('…'));
        block_page(&frame, &html, &mut out).unwrap();

        // Inputs within budget are kept whole.
        let host = "h".repeat(HOST_BUDGET);
        assert!(!block_page_html(&host, "c", "a").contains('…'));
        assert!(block_page_html(&format!("{host}h"), "c", "a").contains('…'));
    }

    #[test]
    fn block_page_rejects_oversized_html_and_missing_ack() {
        let flags = Flags {
            ack: Some(5),
            ..Flags::default()
        };
        let frame = tcp_frame(Vlan::None, false, 1, flags, b"GET / HTTP/1.1\r\n\r\n");
        let mut out = Vec::new();
        let err = block_page(&frame, &"a".repeat(1100), &mut out).unwrap_err();
        assert!(matches!(
            err,
            InjectError::PageTooLarge {
                max: MAX_BLOCK_PAGE_PAYLOAD,
                ..
            }
        ));
        assert!(out.is_empty());

        let no_ack = tcp_frame(Vlan::None, false, 1, Flags::default(), b"GET /");
        assert!(matches!(
            block_page(&no_ack, "x", &mut out),
            Err(InjectError::Malformed(_))
        ));
    }

    #[test]
    fn original_tcp_options_are_not_payload() {
        use etherparse::TcpOptionElement;
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
            .ipv6(CLIENT_V6, SERVER_V6, 64)
            .tcp(CLIENT_PORT, SERVER_PORT, 1000, 512)
            .ack(2000)
            .options(&[
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(1, 2),
            ])
            .unwrap()
            .write(&mut frame, b"hello")
            .unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        resets(&frame, &mut a, &mut b).unwrap();
        let back = decode(&a);
        assert_eq!(back.tcp.sequence_number(), 2000);
        assert_eq!(back.tcp.acknowledgment_number(), 1005);
        assert_eq!(decode(&b).tcp.sequence_number(), 1000);
    }

    #[test]
    fn worst_case_page_budget() {
        let worst_html = PAGE_FIXED_LEN + HOST_BUDGET + CATEGORY_BUDGET + APPLIANCE_BUDGET;
        let worst_response = HTTP_HEAD_BEFORE_LEN.len()
            + decimal_digits(worst_html)
            + HTTP_HEAD_AFTER_LEN.len()
            + worst_html;
        assert!(worst_response <= MAX_BLOCK_PAGE_PAYLOAD, "{worst_response}");
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(9), 1);
        assert_eq!(decimal_digits(10), 2);
        assert_eq!(decimal_digits(1200), 4);
    }

    #[test]
    fn udp_is_not_tcp() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
            .ipv4(CLIENT_V4, SERVER_V4, 64)
            .udp(5353, 53)
            .write(&mut frame, b"query")
            .unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert_eq!(resets(&frame, &mut a, &mut b), Err(InjectError::NotTcp));
        assert_eq!(block_page(&frame, "x", &mut a), Err(InjectError::NotTcp));

        let mut frame = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
            .single_vlan(VlanId::try_new(7).unwrap())
            .ipv6(CLIENT_V6, SERVER_V6, 64)
            .udp(5353, 53)
            .write(&mut frame, b"query")
            .unwrap();
        assert_eq!(resets(&frame, &mut a, &mut b), Err(InjectError::NotTcp));
        assert!(InjectError::NotTcp.to_string().contains("TCP"));
    }

    #[test]
    fn truncated_frames_are_errors() {
        let flags = Flags {
            psh: true,
            ack: Some(3),
            ..Flags::default()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for vlan in ALL_VLANS {
            for v6 in [false, true] {
                let frame = tcp_frame(vlan, v6, 1, flags, b"GET / HTTP/1.1\r\n\r\n");
                for len in 0..frame.len() {
                    assert!(
                        matches!(
                            resets(&frame[..len], &mut a, &mut b),
                            Err(InjectError::Malformed(_))
                        ),
                        "prefix of {len} bytes accepted"
                    );
                    assert!(block_page(&frame[..len], "x", &mut a).is_err());
                }
            }
        }
        assert_eq!(
            resets(&[], &mut a, &mut b),
            Err(InjectError::Malformed("truncated frame"))
        );
    }

    #[test]
    fn garbage_never_panics() {
        let flags = Flags {
            ack: Some(3),
            ..Flags::default()
        };
        let base = tcp_frame(Vlan::Single(9), false, 1, flags, b"GET / HTTP/1.1\r\n\r\n");
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..5000 {
            let mut frame = base.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % frame.len();
                frame[i] = next() as u8;
            }
            frame.truncate((next() as usize) % (base.len() + 1));
            let _ = resets(&frame, &mut a, &mut b);
            let _ = block_page(&frame, "x", &mut a);
        }
    }
}
