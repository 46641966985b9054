//! TLS handshake parser: per-flow state fed in-order stream bytes of one direction at a
//! time, in arbitrarily split pieces. It frames records (5-byte header), reassembles
//! handshake messages that span records, and extracts what detection and EVE need:
//! SNI, ALPN, versions, randoms, JA3/JA3S and the server certificate chain.
//!
//! Pure and bounded: no I/O, at most [`MAX_PENDING`] bytes buffered per direction, and a
//! direction whose framing cannot be followed is given up (counted), never a panic.
//! Message contents are decoded with `tls-parser` and `x509-parser`.

mod cert;
pub mod flow;
mod hello;
mod record;
#[cfg(test)]
mod test;

pub use cert::CertInfo;

/// Most bytes buffered per direction (partial record plus partial handshake message).
pub const MAX_PENDING: usize = 64 * 1024;
/// Most certificates of a chain that are decoded and kept.
pub const MAX_CERTS: usize = 16;
/// Most ALPN protocols kept from a ClientHello.
pub const MAX_ALPN: usize = 32;

/// Which parts of the handshake became known in one [`TlsState::feed`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsChanges(u8);

impl TlsChanges {
    pub const NONE: TlsChanges = TlsChanges(0);
    pub const CLIENT_HELLO: TlsChanges = TlsChanges(1);
    pub const SERVER_HELLO: TlsChanges = TlsChanges(2);
    pub const CERTIFICATE: TlsChanges = TlsChanges(4);

    pub fn contains(self, other: TlsChanges) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn insert(&mut self, other: TlsChanges) {
        self.0 |= other.0;
    }
}

impl std::ops::BitOr for TlsChanges {
    type Output = TlsChanges;
    fn bitor(self, rhs: TlsChanges) -> TlsChanges {
        TlsChanges(self.0 | rhs.0)
    }
}

/// What the handshake revealed so far. Fields stay `None`/empty until seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// First `host_name` of the ClientHello's server_name extension.
    pub sni: Option<Vec<u8>>,
    /// ALPN protocols offered by the client, in order.
    pub alpn: Vec<Vec<u8>>,
    /// The client's preferred version: first non-GREASE supported_versions entry when
    /// present, else the ClientHello's legacy version.
    pub client_version: Option<u16>,
    /// The negotiated version: ServerHello supported_versions when present, else its
    /// legacy version.
    pub server_version: Option<u16>,
    pub client_random: Option<[u8; 32]>,
    pub server_random: Option<[u8; 32]>,
    /// Salesforce JA3 string and its lowercase hex MD5 (GREASE values removed).
    pub ja3_string: Option<String>,
    pub ja3_hash: Option<String>,
    /// Salesforce JA3S string and its lowercase hex MD5.
    pub ja3s_string: Option<String>,
    pub ja3s_hash: Option<String>,
    /// Server certificate chain, leaf first (decodable certificates only, at most
    /// [`MAX_CERTS`]).
    pub certs: Vec<CertInfo>,
    /// Number of certificates in the server's Certificate message.
    pub chain_len: usize,
    /// The server's chosen cipher suite.
    pub cipher_suite: Option<u16>,
}

impl TlsInfo {
    /// The version as Suricata's EVE `tls.version` renders it: the negotiated version
    /// once the ServerHello is seen, `UNDETERMINED` before.
    pub fn version_string(&self) -> &'static str {
        version_name(self.server_version.unwrap_or(0))
    }
}

/// Suricata's name for a protocol version (`SSLVersionToString`).
pub fn version_name(v: u16) -> &'static str {
    const DRAFTS: [&str; 13] = [
        "TLS 1.3 draft-16",
        "TLS 1.3 draft-17",
        "TLS 1.3 draft-18",
        "TLS 1.3 draft-19",
        "TLS 1.3 draft-20",
        "TLS 1.3 draft-21",
        "TLS 1.3 draft-22",
        "TLS 1.3 draft-23",
        "TLS 1.3 draft-24",
        "TLS 1.3 draft-25",
        "TLS 1.3 draft-26",
        "TLS 1.3 draft-27",
        "TLS 1.3 draft-28",
    ];
    match v {
        0x0002 | 0x0200 => "SSLv2",
        0x0300 => "SSLv3",
        0x0301 => "TLSv1",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        0x7f10..=0x7f1c => DRAFTS[usize::from(v - 0x7f10)],
        0x7f00..=0x7f0f => "TLS 1.3 draft-<16",
        _ => "UNDETERMINED",
    }
}

/// Telemetry of one flow's TLS parsing, for the lead to surface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsCounters {
    /// Complete records seen (TLS and SSLv2-framed).
    pub records: u64,
    /// Complete handshake messages seen (plaintext only).
    pub handshake_msgs: u64,
    /// Messages, extensions or certificates that failed to decode.
    pub parse_errors: u64,
    /// Bytes not parsed because they follow a ChangeCipherSpec.
    pub bytes_after_ccs: u64,
    /// Application-data records seen before a ChangeCipherSpec (TLS 1.3).
    pub app_data_records: u64,
    /// SSLv2-framed records skipped.
    pub sslv2_records: u64,
    /// Directions abandoned: bad framing or more than [`MAX_PENDING`] bytes pending.
    pub gave_up: u64,
}

/// The TLS state of one flow.
#[derive(Debug, Default)]
pub struct TlsState {
    pub info: TlsInfo,
    pub counters: TlsCounters,
    dirs: [record::Direction; 2],
}

impl TlsState {
    pub fn new() -> TlsState {
        TlsState::default()
    }

    /// Feed in-order stream bytes of one direction; returns what became known.
    pub fn feed(&mut self, to_server: bool, data: &[u8]) -> TlsChanges {
        let dir = &mut self.dirs[usize::from(!to_server)];
        let mut sink = record::Sink {
            info: &mut self.info,
            counters: &mut self.counters,
            to_server,
            changes: TlsChanges::NONE,
        };
        dir.feed(data, &mut sink);
        sink.changes
    }

    /// Whether a direction was abandoned.
    pub fn gave_up(&self, to_server: bool) -> bool {
        self.dirs[usize::from(!to_server)].gave_up
    }

    /// Whether a direction saw its ChangeCipherSpec (nothing after it is parsed).
    pub fn encrypted(&self, to_server: bool) -> bool {
        self.dirs[usize::from(!to_server)].after_ccs
    }

    /// Bytes buffered for a direction (bounded by [`MAX_PENDING`]).
    pub fn pending(&self, to_server: bool) -> usize {
        self.dirs[usize::from(!to_server)].pending()
    }
}
