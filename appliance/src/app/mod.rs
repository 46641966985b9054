//! Application layer: protocol detection by content (Suricata's `app_proto`), so rules
//! written for `http`, `tls`, `dns`, ... apply to the right flows whatever the port; and
//! the per-flow parser state whose transactions ([`Tx`]) detection inspects.

use rules::ast::AppProto;

pub mod dns;
pub mod http;
pub mod tls;
pub mod tx;

pub use tx::Tx;

/// The application-layer state of one flow.
#[derive(Debug)]
pub enum AppState {
    Http(http::HttpState),
    Tls(tls::flow::TlsFlow),
    Dns(dns::flow::DnsFlow),
}

impl AppState {
    /// A parser for a detected protocol, if there is one.
    pub fn for_proto(
        p: AppProto,
        keep_bodies: bool,
        tcp: bool,
        files: Option<&crate::file::FileEngine>,
    ) -> Option<AppState> {
        match p {
            AppProto::Http => Some(AppState::Http(http::HttpState::with_files(
                keep_bodies,
                files.cloned(),
            ))),
            AppProto::Tls => Some(AppState::Tls(tls::flow::TlsFlow::default())),
            AppProto::Dns => Some(AppState::Dns(dns::flow::DnsFlow::new(tcp))),
            _ => None,
        }
    }

    /// Feed new in-order bytes (TCP) or a datagram (UDP) of one direction.
    pub fn feed(&mut self, to_server: bool, data: &[u8]) {
        match self {
            AppState::Http(h) => h.feed(to_server, data),
            AppState::Tls(t) => t.feed(to_server, data),
            AppState::Dns(d) => d.feed(to_server, data),
        }
    }

    /// One direction is closing (FIN/RST) or the flow ends.
    pub fn closing(&mut self, to_server: bool) {
        match self {
            AppState::Http(h) => h.closing(to_server),
            AppState::Tls(t) => t.closing(to_server),
            AppState::Dns(_) => {}
        }
    }

    pub fn txs(&self) -> &[Tx] {
        match self {
            AppState::Http(h) => &h.txs,
            AppState::Tls(t) => &t.txs,
            AppState::Dns(d) => &d.txs,
        }
    }

    pub fn txs_mut(&mut self) -> &mut [Tx] {
        match self {
            AppState::Http(h) => &mut h.txs,
            AppState::Tls(t) => &mut t.txs,
            AppState::Dns(d) => &mut d.txs,
        }
    }

    /// Drop the transactions that are complete and were inspected.
    pub fn retire_done(&mut self) {
        match self {
            AppState::Http(h) => h.retire_done(),
            // one transaction per flow: kept (later rules may still look at it)
            AppState::Tls(_) => {}
            AppState::Dns(d) => d.retire_done(),
        }
    }

    /// The transactions detection should look at (changed since last time).
    pub fn dirty(&self) -> impl Iterator<Item = usize> + '_ {
        self.txs()
            .iter()
            .enumerate()
            .filter(|(_, t)| t.dirty)
            .map(|(i, _)| i)
    }

    /// The event for a transaction: its kind and application fields.
    pub fn event(&self, tx: &Tx) -> (crate::pipeline::RecordKind, crate::events::meta::EventMeta) {
        use crate::events::meta::EventMeta;
        use crate::pipeline::RecordKind;
        match self {
            AppState::Http(_) => (
                RecordKind::Http,
                EventMeta {
                    http: Some(http::meta(tx)),
                    ..EventMeta::default()
                },
            ),
            AppState::Tls(t) => (
                RecordKind::Tls,
                EventMeta {
                    tls: Some(t.meta()),
                    ..EventMeta::default()
                },
            ),
            AppState::Dns(d) => (
                RecordKind::Dns,
                EventMeta {
                    dns: Some(d.meta(tx)),
                    ..EventMeta::default()
                },
            ),
        }
    }

    /// The name a transaction accesses (HTTP host, TLS SNI, DNS names) and, for HTTP,
    /// the path: what URL categories and the application catalogue are matched against.
    pub fn names<'a>(&self, tx: &'a Tx) -> (Vec<&'a [u8]>, Option<&'a [u8]>) {
        use rules::ast::Buffer;
        match self {
            AppState::Http(_) => (
                tx.get(Buffer::HttpHost).into_iter().collect(),
                tx.get(Buffer::HttpUriRaw),
            ),
            AppState::Tls(_) => (tx.get(Buffer::TlsSni).into_iter().collect(), None),
            AppState::Dns(_) => (
                tx.instances(Buffer::DnsQueriesRrname, false).collect(),
                None,
            ),
        }
    }
}

const HTTP_METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"TRACE ",
    b"PATCH ",
    b"PROPFIND ",
    b"MKCOL ",
    b"COPY ",
    b"MOVE ",
    b"LOCK ",
    b"UNLOCK ",
    b"SEARCH ",
    b"SUBSCRIBE ",
];

/// Guess the application protocol from the first bytes of a direction.
pub fn probe(
    data: &[u8],
    to_server: bool,
    ipproto: u8,
    sport: u16,
    dport: u16,
) -> Option<AppProto> {
    if ipproto == crate::decode::IPPROTO_UDP {
        return (sport == 53 || dport == 53)
            .then_some(AppProto::Dns)
            .filter(|_| data.len() >= 12);
    }
    if data.starts_with(b"SSH-") {
        return Some(AppProto::Ssh);
    }
    if data.len() >= 3
        && (data[0] == 0x16 || data[0] == 0x17 || data[0] == 0x15)
        && data[1] == 3
        && data[2] <= 4
    {
        return Some(AppProto::Tls);
    }
    if to_server {
        if HTTP_METHODS
            .iter()
            .any(|m| data.len() >= m.len() && data[..m.len()].eq_ignore_ascii_case(m))
        {
            return Some(AppProto::Http);
        }
        if data.len() >= 5 && (data.starts_with(b"EHLO ") || data.starts_with(b"HELO ")) {
            return Some(AppProto::Smtp);
        }
        if (sport == 53 || dport == 53) && data.len() >= 14 {
            return Some(AppProto::Dns);
        }
    } else if data.starts_with(b"HTTP/1.") || data.starts_with(b"HTTP/2") {
        return Some(AppProto::Http);
    }
    None
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn detects_by_content_not_port() {
        assert_eq!(
            probe(b"GET / HTTP/1.1\r\n", true, 6, 40000, 8081),
            Some(AppProto::Http)
        );
        assert_eq!(
            probe(b"HTTP/1.1 200 OK\r\n", false, 6, 8081, 40000),
            Some(AppProto::Http)
        );
        assert_eq!(
            probe(&[0x16, 3, 1, 0, 5], true, 6, 1, 2),
            Some(AppProto::Tls)
        );
        assert_eq!(probe(b"SSH-2.0-x", true, 6, 1, 22), Some(AppProto::Ssh));
        assert_eq!(probe(b"hello", true, 6, 1, 80), None);
    }
}
