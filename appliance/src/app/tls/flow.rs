//! The TLS handshake of a flow as one transaction for detection: `tls.sni`, the
//! certificate buffers, JA3/JA3S, the randoms (per direction), `tls.certs`, and the
//! integer facts (`tls.cert_chain_len`, validity dates).

use rules::ast::{AppNum, Buffer};

use super::{TlsChanges, TlsInfo, TlsState};
use crate::app::Tx;
use crate::events::meta::{Ja3, TlsMeta, text};

/// A flow's TLS parser and its single transaction.
#[derive(Debug, Default)]
pub struct TlsFlow {
    pub state: TlsState,
    pub txs: Vec<Tx>,
    seen: TlsChanges,
}

impl TlsFlow {
    pub fn feed(&mut self, to_server: bool, data: &[u8]) {
        let ch = self.state.feed(to_server, data);
        if self.txs.is_empty() && (!ch.is_empty() || !data.is_empty()) {
            self.txs.push(Tx::new(1));
        }
        let Some(tx) = self.txs.first_mut() else {
            return;
        };
        let info = &self.state.info;
        if ch.contains(TlsChanges::CLIENT_HELLO) {
            if let Some(s) = &info.sni {
                tx.set(Buffer::TlsSni, s.clone());
            }
            if let (Some(h), Some(s)) = (&info.ja3_hash, &info.ja3_string) {
                tx.set(Buffer::Ja3Hash, h.as_bytes().to_vec());
                tx.set(Buffer::Ja3String, s.as_bytes().to_vec());
            }
            if let Some(r) = &info.client_random {
                set_random(tx, r, false);
            }
            tx.request_done = true;
        }
        if ch.contains(TlsChanges::SERVER_HELLO) {
            if let (Some(h), Some(s)) = (&info.ja3s_hash, &info.ja3s_string) {
                tx.set(Buffer::Ja3sHash, h.as_bytes().to_vec());
                tx.set(Buffer::Ja3sString, s.as_bytes().to_vec());
            }
            if let Some(r) = &info.server_random {
                set_random(tx, r, true);
            }
            tx.response_started = true;
        }
        if ch.contains(TlsChanges::CERTIFICATE) {
            if let Some(c) = info.certs.first() {
                tx.set(Buffer::TlsCertSubject, c.subject.as_bytes().to_vec());
                tx.set(Buffer::TlsCertIssuer, c.issuer.as_bytes().to_vec());
                tx.set(Buffer::TlsCertSerial, c.serial.as_bytes().to_vec());
                tx.set(
                    Buffer::TlsCertFingerprint,
                    c.fingerprint.as_bytes().to_vec(),
                );
                tx.set_num(AppNum::TlsCertNotBefore, c.not_before);
                tx.set_num(AppNum::TlsCertNotAfter, c.not_after);
            }
            for c in &info.certs {
                if !c.der.is_empty() {
                    tx.add(Buffer::TlsCerts, c.der.clone());
                }
            }
            tx.set_num(AppNum::TlsCertChainLen, info.chain_len as i64);
        }
        self.seen.insert(ch);
        // the handshake is over for inspection once the server's part is known or hidden
        let server_done = self.seen.contains(TlsChanges::CERTIFICATE)
            || (self.seen.contains(TlsChanges::SERVER_HELLO)
                && (self.state.encrypted(false) || info.server_version == Some(0x0304)))
            || self.state.gave_up(false);
        if server_done {
            tx.response_done = true;
        }
    }

    pub fn closing(&mut self, _to_server: bool) {
        if let Some(tx) = self.txs.first_mut() {
            tx.response_done = true;
        }
    }

    /// The EVE `tls` object.
    pub fn meta(&self) -> TlsMeta {
        meta(&self.state.info)
    }
}

/// A random as a buffer of its direction: the server's is seen by to_client rules.
fn set_random(tx: &mut Tx, r: &[u8; 32], server: bool) {
    for (b, v) in [
        (Buffer::TlsRandom, &r[..]),
        (Buffer::TlsRandomTime, &r[..4]),
        (Buffer::TlsRandomBytes, &r[4..]),
    ] {
        if server {
            tx.set_response_header(b, v.to_vec());
        } else {
            tx.set(b, v.to_vec());
        }
    }
}

pub fn meta(info: &TlsInfo) -> TlsMeta {
    let leaf = info.certs.first();
    let date =
        |t: i64| crate::events::eve::timestamp(t.max(0) as u64 * 1_000_000)[..19].to_string();
    TlsMeta {
        subject: leaf.map(|c| c.subject.clone()),
        issuerdn: leaf.map(|c| c.issuer.clone()),
        serial: leaf.map(|c| c.serial.clone()),
        fingerprint: leaf.map(|c| c.fingerprint.clone()),
        sni: info.sni.as_deref().map(text),
        version: info.version_string().to_string(),
        notbefore: leaf.map(|c| date(c.not_before)),
        notafter: leaf.map(|c| date(c.not_after)),
        ja3: info
            .ja3_hash
            .as_ref()
            .zip(info.ja3_string.as_ref())
            .map(|(h, s)| Ja3 {
                hash: h.clone(),
                string: s.clone(),
            }),
        ja3s: info
            .ja3s_hash
            .as_ref()
            .zip(info.ja3s_string.as_ref())
            .map(|(h, s)| Ja3 {
                hash: h.clone(),
                string: s.clone(),
            }),
        alpn: info.alpn.iter().map(|a| text(a)).collect(),
    }
}
