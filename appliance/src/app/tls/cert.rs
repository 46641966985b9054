//! The server's Certificate message: the chain, each certificate rendered the way
//! Suricata's EVE `tls` record shows it.

use sha1::{Digest, Sha1};
use tls_parser::{TlsMessageHandshake, parse_tls_handshake_msg_certificate};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::record::Sink;
use super::{MAX_CERTS, TlsChanges};

/// One certificate of the server's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// RDNs in certificate order joined with ", " (`C=US, O=Example, CN=example.com`),
    /// as x509-parser and Suricata render them.
    pub subject: String,
    pub issuer: String,
    /// Serial number as its DER bytes in uppercase hex separated by ':' (`0C:8E:...`).
    pub serial: String,
    /// SHA-1 of the DER, lowercase hex separated by ':'.
    pub fingerprint: String,
    /// Validity bounds as unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The certificate itself (`tls.certs` inspects it).
    pub der: Vec<u8>,
}

impl CertInfo {
    /// Decode one DER certificate.
    pub fn from_der(der: &[u8]) -> Option<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let tbs = &cert.tbs_certificate;
        Some(CertInfo {
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            serial: hex_colon(tbs.raw_serial(), true),
            fingerprint: hex_colon(&Sha1::digest(der), false),
            not_before: tbs.validity.not_before.timestamp(),
            not_after: tbs.validity.not_after.timestamp(),
            der: der.to_vec(),
        })
    }
}

/// Bytes as two-digit hex separated by ':'.
pub fn hex_colon(bytes: &[u8], upper: bool) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let h = if upper {
            format!("{b:02X}")
        } else {
            format!("{b:02x}")
        };
        s.push_str(&h);
    }
    s
}

pub(super) fn certificate(body: &[u8], sink: &mut Sink) {
    let Ok((_, TlsMessageHandshake::Certificate(c))) = parse_tls_handshake_msg_certificate(body)
    else {
        sink.counters.parse_errors += 1;
        return;
    };
    let info = &mut *sink.info;
    info.chain_len = c.cert_chain.len();
    for raw in c.cert_chain.iter().take(MAX_CERTS) {
        match CertInfo::from_der(raw.data) {
            Some(ci) => info.certs.push(ci),
            None => sink.counters.parse_errors += 1,
        }
    }
    sink.changes.insert(TlsChanges::CERTIFICATE);
}
