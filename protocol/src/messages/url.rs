//! URLs reduced to what may leave the appliance: host, explicit port and path.
//!
//! Query strings, fragments and userinfo (`user:password@`) often carry personal data or
//! credentials; SPEC §3.4 drops them. [`UrlRef`] cannot hold them: its constructors strip them
//! and validation refuses a path containing `?` or `#`.

use serde::{Deserialize, Serialize};

use crate::bounded::{HostName, UrlPath};
use crate::error::FrameError;
use crate::validate::ensure;

/// An HTTP URL without query string, fragment or userinfo.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UrlRef {
    host: HostName,
    port: Option<u16>,
    path: UrlPath,
}

impl UrlRef {
    /// Reduces a URL (`http://user@host:8080/a/b?q=1#f`, `host/a`, …) to host, port and path.
    ///
    /// Never fails: parts are lower-cased (host) and truncated to their bounds; a URL without a
    /// path gets `/`.
    pub fn from_url(url: &str) -> Self {
        let url = strip_query(url);
        let rest = match url.find("://") {
            Some(i) if !url[..i].contains('/') => &url[i + 3..],
            _ => url,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        Self::build(authority, path)
    }

    /// Builds a URL from an HTTP request: the `Host` header and the request target.
    ///
    /// An absolute-form target (`http://…`, as sent to proxies) wins over the header.
    pub fn from_parts(host_header: &str, target: &str) -> Self {
        if target.starts_with('/') || target.is_empty() {
            Self::build(host_header, strip_query(target))
        } else {
            Self::from_url(target)
        }
    }

    /// Host name or IP literal (IPv6 without brackets), lower case.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port, if the URL named one explicitly.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn build(authority: &str, path: &str) -> Self {
        let authority = authority
            .rsplit_once('@')
            .map_or(authority, |(_, after)| after);
        let (host, port) = split_port(authority.trim());
        let path = if path.is_empty() { "/" } else { path };
        UrlRef {
            host: HostName::truncated(&host.to_ascii_lowercase()),
            port,
            path: UrlPath::truncated(path),
        }
    }

    /// Checks bounds and the no-query invariant after decoding.
    pub(crate) fn check(&self, field: &'static str) -> Result<(), FrameError> {
        self.host.check(field)?;
        self.path.check(field)?;
        ensure(!self.host.contains('@'), field, "URL host holds userinfo")?;
        ensure(
            !self.path.contains(['?', '#']),
            field,
            "URL path holds a query string or fragment",
        )
    }
}

/// Cuts `s` at the first `?` or `#`.
fn strip_query(s: &str) -> &str {
    s.find(['?', '#']).map_or(s, |i| &s[..i])
}

/// Splits `host[:port]` and `[v6]:port`; a suffix that is not a port stays in the host.
fn split_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(v6) = authority.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (v6, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn parts(u: &UrlRef) -> (&str, Option<u16>, &str) {
        (u.host(), u.port(), u.path())
    }

    #[test]
    fn strips_query_fragment_and_userinfo() {
        let u = UrlRef::from_url("http://alice:secret@Example.COM:8080/a/b.php?user=x&pw=y#top");
        assert_eq!(parts(&u), ("example.com", Some(8080), "/a/b.php"));
        let u = UrlRef::from_url("https://example.com#frag?x");
        assert_eq!(parts(&u), ("example.com", None, "/"));
    }

    #[test]
    fn accepts_scheme_less_and_ipv6() {
        assert_eq!(
            parts(&UrlRef::from_url("example.org/x?y")),
            ("example.org", None, "/x")
        );
        let u = UrlRef::from_url("http://[2001:db8::1]:81/p");
        assert_eq!(parts(&u), ("2001:db8::1", Some(81), "/p"));
        // A path containing "://" is not a scheme.
        let u = UrlRef::from_url("h/redirect?to=http://x");
        assert_eq!(parts(&u), ("h", None, "/redirect"));
    }

    #[test]
    fn from_parts_prefers_absolute_target() {
        let u = UrlRef::from_parts("www.example.jp", "/login?next=/home");
        assert_eq!(parts(&u), ("www.example.jp", None, "/login"));
        let u = UrlRef::from_parts("ignored", "http://proxy.example/x?y");
        assert_eq!(parts(&u), ("proxy.example", None, "/x"));
    }

    #[test]
    fn check_refuses_query_in_decoded_path() {
        let u = UrlRef {
            host: HostName::truncated("h"),
            port: None,
            path: UrlPath::truncated("/a?b"),
        };
        assert!(matches!(
            u.check("alert.url"),
            Err(FrameError::InvalidField { .. })
        ));
    }

    #[test]
    fn long_parts_are_truncated() {
        let long = format!("http://h/{}", "a".repeat(5000));
        assert_eq!(UrlRef::from_url(&long).path().len(), UrlPath::MAX);
    }
}
