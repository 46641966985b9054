//! The parsed form of a rule: what the text says, validated, before compilation.
//!
//! Everything here is plain data. `parse` builds it, `compile` turns a set of rules into
//! prefilter databases plus per-rule verification programs.

use crate::addr::{AddrSet, PortSet};

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Alert,
    Drop,
    Reject,
    Pass,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Drop => "drop",
            Action::Reject => "reject",
            Action::Pass => "pass",
        }
    }
    /// Whether the action blocks traffic in prevent mode.
    pub fn blocks(self) -> bool {
        matches!(self, Action::Drop | Action::Reject)
    }
}

/// The protocol named in the rule header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Ip,
    Tcp,
    Udp,
    Icmp,
    /// `icmpv6` header proto: ICMPv6 packets only.
    Icmpv6,
    /// Application protocols: over TCP (http, tls, ...) or UDP/TCP (dns).
    App(AppProto),
    /// `tcp-pkt`: TCP, packet payload only.
    TcpPkt,
    /// `tcp-stream`: TCP, reassembled stream only.
    TcpStream,
    /// `pkthdr`: any packet, header keywords only.
    PktHdr,
}

/// Application-layer protocols the engine knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppProto {
    Http,
    Tls,
    Dns,
    Ssh,
    Smtp,
    Ftp,
    Smb,
    Dcerpc,
    Other,
}

impl AppProto {
    pub fn from_name(s: &str) -> Option<AppProto> {
        Some(match s {
            "http" | "http1" | "http2" => AppProto::Http,
            "tls" | "ssl" => AppProto::Tls,
            "dns" => AppProto::Dns,
            "ssh" => AppProto::Ssh,
            "smtp" => AppProto::Smtp,
            "ftp" | "ftp-data" => AppProto::Ftp,
            "smb" => AppProto::Smb,
            "dcerpc" => AppProto::Dcerpc,
            "imap" | "pop3" | "krb5" | "snmp" | "sip" | "rdp" | "mqtt" | "nfs" | "dhcp" | "ntp"
            | "tftp" | "ike" | "rfb" | "modbus" | "dnp3" | "enip" | "quic" | "telnet" | "irc"
            | "websocket" | "ldap" | "pgsql" | "bittorrent-dht" => AppProto::Other,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AppProto::Http => "http",
            AppProto::Tls => "tls",
            AppProto::Dns => "dns",
            AppProto::Ssh => "ssh",
            AppProto::Smtp => "smtp",
            AppProto::Ftp => "ftp",
            AppProto::Smb => "smb",
            AppProto::Dcerpc => "dcerpc",
            AppProto::Other => "unknown",
        }
    }
}

/// Which bytes a content-like keyword inspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Buffer {
    /// Packet payload and, for TCP, the reassembled stream (Suricata's default).
    Payload,
    HttpUri,
    HttpUriRaw,
    HttpHost,
    HttpHostRaw,
    HttpMethod,
    HttpUserAgent,
    HttpHeader,
    HttpHeaderRaw,
    HttpHeaderNames,
    HttpCookie,
    HttpContentType,
    HttpContentLen,
    HttpReferer,
    HttpAccept,
    HttpAcceptLang,
    HttpAcceptEnc,
    HttpConnection,
    HttpStart,
    HttpProtocol,
    HttpRequestLine,
    HttpResponseLine,
    HttpRequestBody,
    HttpStatCode,
    HttpStatMsg,
    HttpServer,
    HttpLocation,
    FileData,
    FileName,
    /// The bytes decoded by the last `base64_decode` (only inside a payload program).
    Base64Data,
    TlsSni,
    TlsCertSubject,
    TlsCertIssuer,
    TlsCertSerial,
    TlsCertFingerprint,
    Ja3Hash,
    Ja3String,
    Ja3sHash,
    Ja3sString,
    /// Client random in to_server, server random in to_client (32 bytes; `_time` the
    /// first 4, `_bytes` the other 28).
    TlsRandom,
    TlsRandomTime,
    TlsRandomBytes,
    /// Each DER certificate of the server chain (multi-buffer).
    TlsCerts,
    DnsQuery,
    /// Names of the question / answer / authority / additional sections (multi-buffers);
    /// `dns.response.rrname` is all of a response's names.
    DnsQueriesRrname,
    DnsAnswersRrname,
    DnsAuthoritiesRrname,
    DnsAdditionalsRrname,
    DnsResponseRrname,
    SshProto,
    SshSoftware,
    /// IPv4/IPv6/TCP/UDP/ICMP headers as raw bytes (`ipv4.hdr`, `tcp.hdr`, ...).
    Ipv4Hdr,
    Ipv6Hdr,
    /// Source / destination address of the packet: 4 or 16 bytes (`ip.src`, `ip.dst`).
    IpSrc,
    IpDst,
    TcpHdr,
    UdpHdr,
    IcmpV4Hdr,
    IcmpV6Hdr,
}

impl Buffer {
    /// Sticky-buffer keyword names (Suricata 5+ form and legacy aliases).
    pub fn from_sticky(name: &str) -> Option<Buffer> {
        use Buffer::*;
        Some(match name {
            "http.uri" | "http_uri" => HttpUri,
            "http.uri.raw" | "http_raw_uri" => HttpUriRaw,
            "http.host" | "http_host" => HttpHost,
            "http.host.raw" | "http_raw_host" => HttpHostRaw,
            "http.method" | "http_method" => HttpMethod,
            "http.user_agent" | "http_user_agent" => HttpUserAgent,
            "http.header" | "http_header" => HttpHeader,
            "http.header.raw" | "http_raw_header" => HttpHeaderRaw,
            "http.header_names" => HttpHeaderNames,
            "http.cookie" | "http_cookie" => HttpCookie,
            "http.content_type" => HttpContentType,
            "http.content_len" => HttpContentLen,
            "http.referer" => HttpReferer,
            "http.accept" => HttpAccept,
            "http.accept_lang" => HttpAcceptLang,
            "http.accept_enc" => HttpAcceptEnc,
            "http.connection" => HttpConnection,
            "http.start" => HttpStart,
            "http.protocol" => HttpProtocol,
            "http.request_line" => HttpRequestLine,
            "http.response_line" => HttpResponseLine,
            "http.request_body" | "http_client_body" => HttpRequestBody,
            "http.stat_code" | "http_stat_code" => HttpStatCode,
            "http.stat_msg" | "http_stat_msg" => HttpStatMsg,
            "http.server" => HttpServer,
            "http.location" => HttpLocation,
            "http.response_body" | "http_server_body" | "file_data" | "file.data" => FileData,
            "file.name" | "filename" => FileName,
            "tls.sni" | "tls_sni" => TlsSni,
            "tls.cert_subject" | "tls_cert_subject" => TlsCertSubject,
            "tls.cert_issuer" | "tls_cert_issuer" => TlsCertIssuer,
            "http_header_names" => HttpHeaderNames,
            "http_protocol" => HttpProtocol,
            "http_request_line" => HttpRequestLine,
            "http_response_line" => HttpResponseLine,
            "http_start" => HttpStart,
            "base64_data" => Base64Data,
            "tls.cert_serial" | "tls_cert_serial" => TlsCertSerial,
            "tls.cert_fingerprint" | "tls_cert_fingerprint" => TlsCertFingerprint,
            "ja3.hash" | "ja3_hash" => Ja3Hash,
            "ja3.string" | "ja3_string" => Ja3String,
            "ja3s.hash" => Ja3sHash,
            "ja3s.string" => Ja3sString,
            "tls.random" => TlsRandom,
            "tls.random_time" => TlsRandomTime,
            "tls.random_bytes" => TlsRandomBytes,
            "tls.certs" => TlsCerts,
            "dns.queries.rrname" => DnsQueriesRrname,
            "dns.answers.rrname" => DnsAnswersRrname,
            "dns.authorities.rrname" => DnsAuthoritiesRrname,
            "dns.additionals.rrname" => DnsAdditionalsRrname,
            "dns.response.rrname" => DnsResponseRrname,
            "dns.query" | "dns_query" => DnsQuery,
            "ssh.proto" | "ssh_proto" => SshProto,
            "ssh.software" | "ssh_software" => SshSoftware,
            "ipv4.hdr" => Ipv4Hdr,
            "ip.src" => IpSrc,
            "ip.dst" => IpDst,
            "ipv6.hdr" => Ipv6Hdr,
            "tcp.hdr" => TcpHdr,
            "udp.hdr" => UdpHdr,
            "icmpv4.hdr" => IcmpV4Hdr,
            "icmpv6.hdr" => IcmpV6Hdr,
            _ => return None,
        })
    }

    /// Legacy content modifiers (`content:"x"; http_uri;`) that move the previous content
    /// into a buffer.
    pub fn from_modifier(name: &str) -> Option<Buffer> {
        use Buffer::*;
        Some(match name {
            "http_uri" => HttpUri,
            "http_raw_uri" => HttpUriRaw,
            "http_host" => HttpHost,
            "http_raw_host" => HttpHostRaw,
            "http_method" => HttpMethod,
            "http_user_agent" => HttpUserAgent,
            "http_header" => HttpHeader,
            "http_raw_header" => HttpHeaderRaw,
            "http_cookie" => HttpCookie,
            "http_client_body" => HttpRequestBody,
            "http_server_body" => FileData,
            "http_stat_code" => HttpStatCode,
            "http_stat_msg" => HttpStatMsg,
            _ => return None,
        })
    }

    /// The application protocol a buffer implies, if any.
    pub fn app_proto(self) -> Option<AppProto> {
        use Buffer::*;
        match self {
            Payload | Ipv4Hdr | Ipv6Hdr | IpSrc | IpDst | TcpHdr | UdpHdr | IcmpV4Hdr
            | IcmpV6Hdr => None,
            TlsSni | TlsCertSubject | TlsCertIssuer | TlsCertSerial | TlsCertFingerprint
            | Ja3Hash | Ja3String | Ja3sHash | Ja3sString | TlsRandom | TlsRandomTime
            | TlsRandomBytes | TlsCerts => Some(AppProto::Tls),
            DnsQuery | DnsQueriesRrname | DnsAnswersRrname | DnsAuthoritiesRrname
            | DnsAdditionalsRrname | DnsResponseRrname => Some(AppProto::Dns),
            SshProto | SshSoftware => Some(AppProto::Ssh),
            FileData | FileName | Base64Data => None,
            _ => Some(AppProto::Http),
        }
    }

    /// Number of distinct buffers (for per-buffer arrays).
    pub const COUNT: usize = Buffer::IcmpV6Hdr as usize + 1;

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A number comparison as used by dsize, bsize, urilen, ttl, itype, ... (`5`, `<5`, `>5`,
/// `<=5`, `>=5`, `!5`, `3<>7`, `3-7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumCmp {
    Eq(u64),
    Ne(u64),
    Lt(u64),
    Le(u64),
    Gt(u64),
    Ge(u64),
    /// Exclusive range, Suricata's `a<>b`: a < x < b.
    Range(u64, u64),
    /// Inclusive range, `a-b` (dsize and friends accept it as an alias of `<>` in Suricata 7+).
    RangeIncl(u64, u64),
}

impl NumCmp {
    pub fn matches(self, v: u64) -> bool {
        match self {
            NumCmp::Eq(n) => v == n,
            NumCmp::Ne(n) => v != n,
            NumCmp::Lt(n) => v < n,
            NumCmp::Le(n) => v <= n,
            NumCmp::Gt(n) => v > n,
            NumCmp::Ge(n) => v >= n,
            NumCmp::Range(a, b) => v > a && v < b,
            NumCmp::RangeIncl(a, b) => v >= a && v <= b,
        }
    }
}

/// A value that is either a literal or a `byte_extract` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    Lit(i64),
    Var(u8),
}

/// One `content` with its modifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub pattern: Vec<u8>,
    pub negated: bool,
    pub nocase: bool,
    pub offset: Option<Val>,
    pub depth: Option<Val>,
    pub distance: Option<Val>,
    pub within: Option<Val>,
    pub startswith: bool,
    pub endswith: bool,
    pub fast_pattern: bool,
    /// `fast_pattern:only` or `fast_pattern:<off>,<len>` chop (we keep the whole literal).
    pub fast_pattern_only: bool,
}

impl Content {
    /// A content without position modifiers.
    pub fn plain(pattern: Vec<u8>, negated: bool, nocase: bool) -> Content {
        Content {
            pattern,
            negated,
            nocase,
            offset: None,
            depth: None,
            distance: None,
            within: None,
            startswith: false,
            endswith: false,
            fast_pattern: false,
            fast_pattern_only: false,
        }
    }
}

impl Content {
    pub fn is_relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }
}

/// PCRE with Suricata's extra flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcreSpec {
    pub pattern: String,
    pub negated: bool,
    pub caseless: bool,
    pub dotall: bool,
    pub multiline: bool,
    pub extended: bool,
    pub anchored: bool,
    pub dollar_endonly: bool,
    pub ungreedy: bool,
    pub relative: bool,
    /// `E`: `$` matches only at the very end.
    pub raw: bool,
}

/// Endianness / encoding of byte_* keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumEncoding {
    Big,
    Little,
    /// ASCII digits in the given base (`string,dec|hex|oct`).
    String(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOp {
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteTest {
    pub nbytes: u8,
    pub op: ByteOp,
    pub negated: bool,
    pub value: Val,
    pub offset: Val,
    pub relative: bool,
    pub enc: NumEncoding,
    pub bitmask: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteJump {
    /// Bytes to read; a `byte_extract` variable is allowed (Suricata 7+).
    pub nbytes: Val,
    pub offset: Val,
    pub relative: bool,
    pub enc: NumEncoding,
    pub multiplier: u64,
    pub align: bool,
    pub from_beginning: bool,
    pub from_end: bool,
    pub post_offset: i64,
    pub bitmask: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteExtract {
    pub nbytes: u8,
    pub offset: i64,
    pub var: u8,
    pub relative: bool,
    pub enc: NumEncoding,
    pub multiplier: u64,
    pub align: u8,
    pub bitmask: Option<u64>,
}

/// One step of a buffer's inspection program, in rule order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Content(Content),
    Pcre(PcreSpec),
    ByteTest(ByteTest),
    ByteJump(ByteJump),
    ByteExtract(ByteExtract),
    IsDataAt {
        n: Val,
        relative: bool,
        negated: bool,
    },
    Bsize(NumCmp),
    /// `base64_decode`: decode (RFC 4648) `bytes` bytes from `offset` (after the previous
    /// match when `relative`); `data` is the `base64_data` program run on the decoded bytes.
    Base64Decode {
        bytes: Option<u32>,
        offset: u32,
        relative: bool,
        data: Vec<Step>,
    },
    /// `dataset`: look the whole (transformed) buffer up in a named set.
    Dataset {
        op: crate::dataset::DatasetOp,
        set: crate::dataset::DatasetRef,
    },
}

/// The inspection program of one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferProgram {
    pub buffer: Buffer,
    /// Transforms applied to the buffer before the steps run (`dotprefix`, `to_lowercase`,
    /// ...): a buffer with transforms is a distinct inspection target.
    pub transforms: Vec<crate::transform::Transform>,
    /// `absent`: the program matches when the buffer does not exist; with `or_else`
    /// (`Some(true)`) it also matches when the buffer exists and the steps match.
    pub absent: Option<bool>,
    pub steps: Vec<Step>,
}

/// `flow:` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowOpts {
    pub established: bool,
    pub not_established: bool,
    pub stateless: bool,
    pub to_server: bool,
    pub to_client: bool,
    pub only_stream: bool,
    pub no_stream: bool,
    pub only_frag: bool,
    pub no_frag: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowbitCmd {
    Set(Vec<u32>),
    Unset(Vec<u32>),
    Toggle(Vec<u32>),
    /// All named bits set (`a&b`) — or any (`a|b`) when `any` is true.
    IsSet {
        bits: Vec<u32>,
        any: bool,
    },
    IsNotSet {
        bits: Vec<u32>,
        any: bool,
    },
    NoAlert,
}

/// `flowint`: an integer variable of the flow. Variable ids come from the rule set's
/// `ParseCtx`, so every rule naming a variable shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowintCmd {
    /// `=`, `+`, `-`: changes the variable when the rule matches.
    Modify {
        var: u32,
        op: FlowintOp,
        value: FlowintVal,
    },
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`: a condition, false while the variable is unset.
    Compare {
        var: u32,
        cmp: FlowintCmp,
        value: FlowintVal,
    },
    /// `isset` (`set: true`) or `notset` / `isnotset`.
    IsSet { var: u32, set: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowintOp {
    Set,
    /// Adds (wrapping, as Suricata's `u32`); an unset variable starts at 0.
    Add,
    /// Subtracts (wrapping); does nothing while the variable is unset, as in Suricata.
    Sub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowintCmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl FlowintCmp {
    pub fn matches(self, a: u32, b: u32) -> bool {
        match self {
            FlowintCmp::Eq => a == b,
            FlowintCmp::Ne => a != b,
            FlowintCmp::Lt => a < b,
            FlowintCmp::Le => a <= b,
            FlowintCmp::Gt => a > b,
            FlowintCmp::Ge => a >= b,
        }
    }
}

/// The right-hand side of a `flowint`: a number or another flowint (0 while unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowintVal {
    Lit(u32),
    Var(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdKind {
    Limit,
    Threshold,
    Both,
    /// `detection_filter`: alert on every hit after the count is exceeded.
    DetectionFilter,
    /// `backoff`: alert on hit `count`, then `count * multiplier`, `count * multiplier²`, ...
    Backoff {
        multiplier: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackBy {
    Src,
    Dst,
    Both,
    Rule,
    Flow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub kind: ThresholdKind,
    pub track: TrackBy,
    pub count: u32,
    pub seconds: u32,
}

/// TCP flag test (`flags:` / `tcp.flags:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFlagsTest {
    /// Flags named in the rule (bit set in TCP's flag byte order, CWR=0x80 ... FIN=0x01).
    pub flags: u8,
    /// `+` (default: at least these and no others... see modifier), `*` any, `!` not.
    pub modifier: FlagsModifier,
    /// Flags to ignore (after the comma).
    pub mask: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagsModifier {
    /// Exactly these flags (after masking).
    Exact,
    /// These flags plus any others.
    Plus,
    /// Any of these flags.
    Any,
    /// None of these flags.
    Not,
}

/// Packet and flow keywords that do not inspect a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketTest {
    Dsize(NumCmp),
    Ttl(NumCmp),
    Itype(NumCmp),
    Icode(NumCmp),
    IcmpId(u16),
    IcmpSeq(u16),
    TcpFlags(TcpFlagsTest),
    TcpSeq(u32),
    TcpAck(u32),
    TcpWindow {
        value: u16,
        negated: bool,
    },
    IpProto {
        proto: u8,
        negated: bool,
    },
    Id(u16),
    FragBits {
        bits: u8,
        modifier: FlagsModifier,
    },
    SameIp,
    FlowPkts {
        dir: FlowDirSel,
        cmp: NumCmp,
    },
    FlowBytes {
        dir: FlowDirSel,
        cmp: NumCmp,
    },
    FlowAge(NumCmp),
    StreamSize {
        dir: FlowDirSel,
        cmp: NumCmp,
    },
    AppLayerProtocol {
        proto: Option<AppProto>,
        negated: bool,
        name: String,
    },
    /// `decode-event` / `stream-event` / `app-layer-event`: name of the event.
    Event {
        kind: EventKind,
        name: String,
    },
    /// An integer fact of an application transaction (`tls.cert_chain_len:>2`,
    /// `dns.opcode:!0`, `tls_cert_notafter:>2015`).
    AppNum {
        num: AppNum,
        cmp: NumCmp,
    },
    /// `filemd5` / `filesha1` / `filesha256`: the digest of a file of the transaction is (or,
    /// `negated`, is not) in the sorted list loaded from the rule's hash file.
    FileHash {
        algo: HashAlgo,
        negated: bool,
        list: std::sync::Arc<Vec<Vec<u8>>>,
    },
}

/// Digest algorithms of file hash lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha256,
}

impl HashAlgo {
    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgo::Md5 => 16,
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha256 => 32,
        }
    }
}

/// Integer facts of application transactions that rules compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppNum {
    TlsCertChainLen,
    /// Unix seconds.
    TlsCertNotBefore,
    TlsCertNotAfter,
    DnsOpcode,
    DnsRcode,
}

impl AppNum {
    pub fn app_proto(self) -> AppProto {
        match self {
            AppNum::TlsCertChainLen | AppNum::TlsCertNotBefore | AppNum::TlsCertNotAfter => {
                AppProto::Tls
            }
            AppNum::DnsOpcode | AppNum::DnsRcode => AppProto::Dns,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowDirSel {
    ToServer,
    ToClient,
    Either,
    Both,
    /// Both directions summed (`flow.pkts` without a direction).
    Sum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Decode,
    Stream,
    AppLayer,
}

/// A parsed rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub action: Action,
    pub proto: Proto,
    pub src: AddrSet,
    pub src_ports: PortSet,
    pub bidirectional: bool,
    pub dst: AddrSet,
    pub dst_ports: PortSet,
    pub msg: String,
    pub sid: u32,
    pub rev: u32,
    pub gid: u32,
    pub classtype: Option<String>,
    pub priority: Option<u8>,
    pub metadata: Vec<(String, String)>,
    pub references: Vec<String>,
    pub target: Option<String>,
    pub flow: FlowOpts,
    pub flowbits: Vec<FlowbitCmd>,
    pub flowints: Vec<FlowintCmd>,
    pub noalert: bool,
    pub programs: Vec<BufferProgram>,
    pub packet_tests: Vec<PacketTest>,
    pub threshold: Option<Threshold>,
    pub detection_filter: Option<Threshold>,
    /// Whether the rule's ports/proto imply an app protocol (`alert http ...`).
    pub app_proto: Option<AppProto>,
    /// Number of `byte_extract` variables the rule uses.
    pub nvars: u8,
    /// Where it came from, for messages.
    pub file: String,
    pub line: usize,
    /// The rule text, verbatim.
    pub text: String,
}

impl Rule {
    /// True when any buffer program inspects payload-like data (as opposed to header-only
    /// rules, which Suricata calls "IP-only" / packet rules).
    pub fn has_payload(&self) -> bool {
        self.programs.iter().any(|p| p.buffer == Buffer::Payload)
    }
}
