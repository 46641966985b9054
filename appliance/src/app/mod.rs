//! Application layer. For now: protocol detection by content (Suricata's `app_proto`),
//! so rules written for `http`, `tls`, `ssh`, ... apply to the right flows whatever the
//! port. Parsers for HTTP, TLS and DNS come with the application-layer work.

use rules::ast::AppProto;

pub mod http;

const HTTP_METHODS: &[&[u8]] = &[
    b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"TRACE ", b"PATCH ",
    b"PROPFIND ", b"MKCOL ", b"COPY ", b"MOVE ", b"LOCK ", b"UNLOCK ", b"SEARCH ", b"SUBSCRIBE ",
];

/// Guess the application protocol from the first bytes of a direction.
pub fn probe(data: &[u8], to_server: bool, ipproto: u8, sport: u16, dport: u16) -> Option<AppProto> {
    if ipproto == crate::decode::IPPROTO_UDP {
        return (sport == 53 || dport == 53).then_some(AppProto::Dns).filter(|_| data.len() >= 12);
    }
    if data.starts_with(b"SSH-") {
        return Some(AppProto::Ssh);
    }
    if data.len() >= 3 && (data[0] == 0x16 || data[0] == 0x17 || data[0] == 0x15) && data[1] == 3 && data[2] <= 4 {
        return Some(AppProto::Tls);
    }
    if to_server {
        if HTTP_METHODS.iter().any(|m| data.len() >= m.len() && data[..m.len()].eq_ignore_ascii_case(m)) {
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
        assert_eq!(probe(b"GET / HTTP/1.1\r\n", true, 6, 40000, 8081), Some(AppProto::Http));
        assert_eq!(probe(b"HTTP/1.1 200 OK\r\n", false, 6, 8081, 40000), Some(AppProto::Http));
        assert_eq!(probe(&[0x16, 3, 1, 0, 5], true, 6, 1, 2), Some(AppProto::Tls));
        assert_eq!(probe(b"SSH-2.0-x", true, 6, 1, 22), Some(AppProto::Ssh));
        assert_eq!(probe(b"hello", true, 6, 1, 80), None);
    }
}
