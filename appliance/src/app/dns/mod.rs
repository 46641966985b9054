//! DNS messages (RFC 1035 wire format): a hand-written, bounded, panic-free parser with
//! name decompression, a framing helper for DNS over TCP, and the names Suricata's EVE
//! `dns` records use for record types and response codes.
//!
//! Names are kept as raw bytes: labels joined with '.', no trailing dot, the root as
//! the empty name (as Suricata keeps them); [`name_to_string`] renders them for JSON.

mod parser;
mod tcp;
#[cfg(test)]
mod test;

pub mod flow;

use std::net::IpAddr;

pub use parser::parse_message;
pub use tcp::DnsTcp;

/// Most records parsed per section; the rest are skipped and `capped` is set.
pub const MAX_RECORDS: usize = 256;
/// Most compression pointers followed in one name.
pub const MAX_JUMPS: usize = 128;
/// Most bytes of a name on the wire (RFC 1035 2.3.4).
pub const MAX_NAME_WIRE: usize = 255;
/// Fixed header size.
pub const HEADER_LEN: usize = 12;

/// Why a message could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("message shorter than the 12-byte header")]
    ShortHeader,
    #[error("message ends inside the {0}")]
    Truncated(Section),
    #[error("label type {0:#04x} is not supported")]
    BadLabelType(u8),
    #[error("compression pointer to offset {0} beyond the message")]
    BadPointer(usize),
    #[error("more than {MAX_JUMPS} compression pointers in one name")]
    TooManyJumps,
    #[error("name longer than {MAX_NAME_WIRE} bytes")]
    NameTooLong,
    #[error("record data length does not match its type")]
    BadRdata(Section),
}

/// A part of a message, for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Question,
    Answer,
    Authority,
    Additional,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Section::Question => "question section",
            Section::Answer => "answer section",
            Section::Authority => "authority section",
            Section::Additional => "additional section",
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// Response (true) or query.
    pub qr: bool,
    pub opcode: u8,
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    /// The three bits after RA (Z, AD, CD).
    pub z: u8,
    pub rcode: u8,
    /// The raw flags word, as Suricata logs it (`flags` in hex).
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub name: Vec<u8>,
    pub rrtype: u16,
    pub rrclass: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Vec<u8>,
    pub rrtype: u16,
    pub rrclass: u16,
    pub ttl: u32,
    pub rdata: Rdata,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub mname: Vec<u8>,
    pub rname: Vec<u8>,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: Vec<u8>,
}

/// Decoded record data; types without a decoder keep their raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    /// A or AAAA.
    Addr(IpAddr),
    Cname(Vec<u8>),
    Ns(Vec<u8>),
    Ptr(Vec<u8>),
    Mx {
        preference: u16,
        exchange: Vec<u8>,
    },
    /// The character-strings of a TXT record.
    Txt(Vec<Vec<u8>>),
    Soa(Soa),
    Srv(Srv),
    Other(Vec<u8>),
}

/// A parsed message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsMessage {
    pub header: Header,
    pub queries: Vec<Query>,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// A section held more than [`MAX_RECORDS`] entries; only the first were kept.
    pub capped: bool,
}

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_MX: u16 = 15;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;

/// Record type mnemonic as Suricata's EVE `rrtype` shows it; "" for unknown types
/// (Suricata then logs the number).
pub fn rrtype_name(t: u16) -> &'static str {
    match t {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAPPTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        38 => "A6",
        39 => "DNAME",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        55 => "HIP",
        59 => "CDS",
        60 => "CDNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        249 => "TKEY",
        250 => "TSIG",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        _ => "",
    }
}

/// Response code name as Suricata's EVE `rcode` shows it; "" for codes without one.
pub fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS/BADSIG",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        _ => "",
    }
}

/// A name (or TXT string) as Suricata's JSON writer renders bytes: valid UTF-8 as is,
/// otherwise bytes below 0x80 as characters and the others as `\xNN` (lowercase hex).
pub fn name_to_string(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut out = String::with_capacity(name.len());
            for &b in name {
                if b < 0x80 {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}
