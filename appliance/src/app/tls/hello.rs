//! ClientHello and ServerHello: versions, randoms, SNI, ALPN, JA3 and JA3S.

use md5::{Digest, Md5};
use tls_parser::{
    SNIType, TlsExtension, parse_tls_client_hello_extension, parse_tls_handshake_client_hello,
    parse_tls_handshake_server_hello, parse_tls_server_hello_extension,
};

use super::record::Sink;
use super::{MAX_ALPN, TlsChanges};

const EXT_SUPPORTED_GROUPS: u16 = 10;
const EXT_EC_POINT_FORMATS: u16 = 11;
/// Extension header: type (2), length (2).
const EXT_HEADER: usize = 4;
/// Most extensions walked in one hello.
const MAX_EXTENSIONS: usize = 256;
/// Most SNI bytes kept.
const MAX_SNI: usize = 1024;

/// The random of a ServerHello that is really a HelloRetryRequest (RFC 8446 4.1.3).
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Lowercase hex MD5 of a string.
pub fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// The extensions of a hello, in order, each as (type, content). Stops quietly at a
/// malformed tail, which the caller counts.
fn walk_extensions(mut ext: &[u8]) -> (Vec<(u16, &[u8])>, bool) {
    let mut out = Vec::new();
    while !ext.is_empty() && out.len() < MAX_EXTENSIONS {
        let Some(head) = ext.get(..EXT_HEADER) else {
            return (out, false);
        };
        let typ = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let Some(data) = ext.get(EXT_HEADER..EXT_HEADER + len) else {
            return (out, false);
        };
        out.push((typ, data));
        ext = &ext[EXT_HEADER + len..];
    }
    (out, true)
}

fn join<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|v| v.to_string()).collect::<Vec<_>>().join("-")
}

fn random(r: &[u8]) -> Option<[u8; 32]> {
    r.try_into().ok()
}

/// Re-encode one extension so tls-parser can decode its content.
fn with_header(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(EXT_HEADER + data.len());
    v.extend_from_slice(&typ.to_be_bytes());
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

pub(super) fn client_hello(body: &[u8], sink: &mut Sink) {
    let Ok((_, ch)) = parse_tls_handshake_client_hello(body) else {
        sink.counters.parse_errors += 1;
        return;
    };
    let (exts, ok) = walk_extensions(ch.ext.unwrap_or_default());
    if !ok {
        sink.counters.parse_errors += 1;
    }
    let info = &mut *sink.info;
    info.client_random = random(ch.random);
    info.client_version = Some(ch.version.0);
    let (mut curves, mut formats) = (Vec::new(), Vec::new());
    for &(typ, data) in &exts {
        match typ {
            EXT_SUPPORTED_GROUPS if data.len() >= 2 => {
                curves = data[2..]
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
            }
            EXT_EC_POINT_FORMATS if !data.is_empty() => formats = data[1..].to_vec(),
            _ => {}
        }
        match parse_tls_client_hello_extension(&with_header(typ, data)) {
            Ok((_, TlsExtension::SNI(names))) => {
                if let Some((_, name)) = names.iter().find(|(t, _)| *t == SNIType::HostName) {
                    info.sni = Some(name[..name.len().min(MAX_SNI)].to_vec());
                }
            }
            Ok((_, TlsExtension::ALPN(protos))) => {
                info.alpn = protos.iter().take(MAX_ALPN).map(|p| p.to_vec()).collect();
            }
            Ok((_, TlsExtension::SupportedVersions(versions))) => {
                if let Some(v) = versions.iter().map(|v| v.0).find(|&v| !is_grease(v)) {
                    info.client_version = Some(v);
                }
            }
            Ok(_) => {}
            Err(_) => sink.counters.parse_errors += 1,
        }
    }
    // JA3: SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats
    let ja3 = format!(
        "{},{},{},{},{}",
        ch.version.0,
        join(ch.ciphers.iter().map(|c| c.0).filter(|&c| !is_grease(c))),
        join(exts.iter().map(|&(t, _)| t).filter(|&t| !is_grease(t))),
        join(curves.into_iter().filter(|&c| !is_grease(c))),
        join(formats.into_iter()),
    );
    info.ja3_hash = Some(md5_hex(&ja3));
    info.ja3_string = Some(ja3);
    sink.changes.insert(TlsChanges::CLIENT_HELLO);
}

pub(super) fn server_hello(body: &[u8], sink: &mut Sink) {
    let Ok((_, sh)) = parse_tls_handshake_server_hello(body) else {
        sink.counters.parse_errors += 1;
        return;
    };
    if sh.random == HELLO_RETRY_RANDOM {
        return; // the real ServerHello follows
    }
    let (exts, ok) = walk_extensions(sh.ext.unwrap_or_default());
    if !ok {
        sink.counters.parse_errors += 1;
    }
    let info = &mut *sink.info;
    info.server_random = random(sh.random);
    info.server_version = Some(sh.version.0);
    info.cipher_suite = Some(sh.cipher.0);
    for &(typ, data) in &exts {
        match parse_tls_server_hello_extension(&with_header(typ, data)) {
            Ok((_, TlsExtension::SupportedVersions(versions))) => {
                if let Some(v) = versions.first() {
                    info.server_version = Some(v.0);
                }
            }
            Ok(_) => {}
            Err(_) => sink.counters.parse_errors += 1,
        }
    }
    // JA3S: SSLVersion,Cipher,SSLExtension
    let ja3s = format!(
        "{},{},{}",
        sh.version.0,
        sh.cipher.0,
        join(exts.iter().map(|&(t, _)| t).filter(|&t| !is_grease(t)))
    );
    info.ja3s_hash = Some(md5_hex(&ja3s));
    info.ja3s_string = Some(ja3s);
    sink.changes.insert(TlsChanges::SERVER_HELLO);
}

/// An SSLv2-framed record at the start of a direction: a CLIENT-HELLO (type 1) gives
/// the client's version (and counts as the ClientHello: no SNI or JA3 in SSLv2);
/// anything else is skipped.
pub(super) fn sslv2_client_hello(body: &[u8], sink: &mut Sink) {
    const SSLV2_CLIENT_HELLO: u8 = 1;
    if sink.to_server
        && let [SSLV2_CLIENT_HELLO, hi, lo, ..] = *body
        && sink.info.client_version.is_none()
    {
        sink.info.client_version = Some(u16::from_be_bytes([hi, lo]));
        sink.changes.insert(TlsChanges::CLIENT_HELLO);
    }
}
