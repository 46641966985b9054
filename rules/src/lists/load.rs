//! Reading SquidGuard/UT1 folders (the only I/O of `lists`) and parsing their lines.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::ListError;
use super::category::{CategoryDb, CategoryDbBuilder};
use super::suffix::{self, BadDomain, MAX_KEY_LEN};

/// The largest list file read (the UT1 `adult` category's biggest file is ~4 MiB a part).
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// The longest path kept from a `urls` entry.
pub const MAX_URL_PATH: usize = 4096;

/// Why a list line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Bytes outside ASCII (binary data, another encoding, a raw IDN).
    NotAscii,
    /// Longer than a DNS name (253 bytes) or, for a URL path, [`MAX_URL_PATH`].
    TooLong,
    /// Not a host name (empty label, a character outside `a-z 0-9 - _ .`).
    BadHost,
    /// A URL path with control characters.
    BadPath,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::NotAscii => "not ASCII",
            SkipReason::TooLong => "too long",
            SkipReason::BadHost => "not a host name",
            SkipReason::BadPath => "control characters in the path",
        })
    }
}

impl From<BadDomain> for SkipReason {
    fn from(e: BadDomain) -> SkipReason {
        match e {
            BadDomain::NotAscii => SkipReason::NotAscii,
            BadDomain::TooLong => SkipReason::TooLong,
            BadDomain::Invalid => SkipReason::BadHost,
        }
    }
}

/// One parsed line.
pub(crate) enum Line<T> {
    /// Empty, whitespace or a `#` comment.
    Blank,
    Entry(T),
    Bad(SkipReason),
}

/// The first whitespace-separated token of a line, or `None` for blank and comment lines
/// (SquidGuard reads the first token as the key and ignores the rest).
fn token(line: &[u8]) -> Option<&[u8]> {
    let line = line.trim_ascii_start();
    if line.is_empty() || line[0] == b'#' {
        return None;
    }
    let end = line
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(line.len());
    Some(&line[..end])
}

/// A `domains` line: the lowercase domain is written to `key`, its length returned.
pub(crate) fn parse_domain_line(line: &[u8], key: &mut [u8; MAX_KEY_LEN]) -> Line<usize> {
    match token(line) {
        None => Line::Blank,
        Some(t) => match suffix::normalize_domain(t, key) {
            Ok(len) => Line::Entry(len),
            Err(e) => Line::Bad(e.into()),
        },
    }
}

/// A parsed `urls` entry.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct UrlLine {
    /// Lowercase, without a leading `www.` (see [`strip_www`]).
    pub(crate) host: Box<[u8]>,
    /// Lowercase, without leading and trailing slashes.
    pub(crate) path: Box<[u8]>,
}

/// A `urls` line `host[:port]/path`.
pub(crate) fn parse_url_line(line: &[u8]) -> Line<UrlLine> {
    let Some(mut t) = token(line) else {
        return Line::Blank;
    };
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            t = &t[scheme.len()..];
        }
    }
    let slash = memchr::memchr(b'/', t).unwrap_or(t.len());
    let (host, path) = t.split_at(slash);
    let host = match memchr::memchr(b'@', host) {
        Some(at) => &host[at + 1..],
        None => host,
    };
    let host = suffix::host_part(host);
    let mut key = [0u8; MAX_KEY_LEN];
    let len = match suffix::normalize_domain(host, &mut key) {
        Ok(len) => len,
        Err(e) => return Line::Bad(e.into()),
    };
    let host = strip_www(&key[..len]);
    let mut path = path;
    while let [b'/', rest @ ..] = path {
        path = rest;
    }
    while let [rest @ .., b'/'] = path {
        path = rest;
    }
    if path.len() > MAX_URL_PATH {
        return Line::Bad(SkipReason::TooLong);
    }
    if path.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Line::Bad(SkipReason::BadPath);
    }
    Line::Entry(UrlLine {
        host: host.into(),
        path: path.to_ascii_lowercase().into(),
    })
}

/// Drops a leading `www.`, `web.` or `ftp.`, optionally with digits (`www2.`), as
/// SquidGuard does before comparing URL entries. Case-insensitive.
pub(crate) fn strip_www(host: &[u8]) -> &[u8] {
    let Some(prefix) = host.get(..3) else {
        return host;
    };
    if !(prefix.eq_ignore_ascii_case(b"www")
        || prefix.eq_ignore_ascii_case(b"web")
        || prefix.eq_ignore_ascii_case(b"ftp"))
    {
        return host;
    }
    let digits = host[3..].iter().take_while(|b| b.is_ascii_digit()).count();
    match host.get(3 + digits..) {
        Some([b'.', rest @ ..]) if !rest.is_empty() => rest,
        _ => host,
    }
}

pub(crate) fn load_dir(dir: &Path) -> Result<CategoryDb, ListError> {
    let meta = fs::metadata(dir).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ListError::MissingDir { path: dir.into() }
        } else {
            ListError::ReadDir {
                path: dir.into(),
                source,
            }
        }
    })?;
    if !meta.is_dir() {
        return Err(ListError::NotADirectory { path: dir.into() });
    }
    let read_dir = |source| ListError::ReadDir {
        path: dir.into(),
        source,
    };
    let mut categories: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir)? {
        let entry = entry.map_err(read_dir)?;
        let path = entry.path();
        // Follows symlinks, so a linked category folder counts.
        if !path.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(ListError::BadCategoryName { path });
        };
        if !name.starts_with('.') {
            categories.push((name, path));
        }
    }
    categories.sort();

    let mut builder = CategoryDbBuilder::new();
    for (name, path) in &categories {
        let id = builder.add_category(name).map_err(|e| match e {
            ListError::TooManyCategories { max } => ListError::TooManyCategoriesIn {
                path: dir.into(),
                max,
            },
            e => e,
        })?;
        let domains = path.join("domains");
        if let Some(text) = read_list(&domains)? {
            builder.add_domains(id, &text, &domains)?;
        }
        let urls = path.join("urls");
        if let Some(text) = read_list(&urls)? {
            builder.add_urls(id, &text, &urls)?;
        }
    }
    Ok(builder.build())
}

/// The bytes of a list file, `None` if it does not exist.
fn read_list(path: &Path) -> Result<Option<Vec<u8>>, ListError> {
    let io_err = |source| ListError::ReadFile {
        path: path.into(),
        source,
    };
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let size = file.metadata().map_err(io_err)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ListError::FileTooLarge {
            path: path.into(),
            size,
            max: MAX_FILE_BYTES,
        });
    }
    let mut text = Vec::with_capacity(size as usize);
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut text)
        .map_err(io_err)?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::CatSet;

    /// A scratch directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "mimamori-lists-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("scratch dir");
            Scratch(dir)
        }

        fn file(&self, rel: &str, bytes: &[u8]) {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, bytes).expect("write");
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn strip_www_like_squidguard() {
        assert_eq!(strip_www(b"www.a.com"), b"a.com");
        assert_eq!(strip_www(b"WWW12.a.com"), b"a.com");
        assert_eq!(strip_www(b"ftp.a.com"), b"a.com");
        assert_eq!(strip_www(b"www-a.com"), b"www-a.com");
        assert_eq!(strip_www(b"wwwx.a.com"), b"wwwx.a.com");
        assert_eq!(strip_www(b"www."), b"www.");
        assert_eq!(strip_www(b"ww"), b"ww");
    }

    #[test]
    fn url_lines() {
        let Line::Entry(u) = parse_url_line(b"  http://user@WWW.Ex.com:81/A/b/  # x") else {
            panic!("not an entry");
        };
        assert_eq!((&*u.host, &*u.path), (&b"ex.com"[..], &b"a/b"[..]));
        assert!(matches!(parse_url_line(b"# c"), Line::Blank));
        assert!(matches!(
            parse_url_line(b"ex.com/a\x01b"),
            Line::Bad(SkipReason::BadPath)
        ));
    }

    #[test]
    fn loads_a_folder_and_ignores_other_files() {
        let s = Scratch::new("folder");
        s.file("b_cat/domains", b"b.example\n\xc3\x28bad\n");
        s.file("b_cat/urls", b"u.example/x\n");
        s.file("b_cat/expressions", b"(foo|bar)\n");
        s.file("b_cat/usage", b"black\n");
        s.file("a_cat/domains", b"a.example\nb.example\n");
        s.file(".git/domains", b"hidden.example\n");
        s.file("README", b"not a category\n");
        let db = CategoryDb::load_dir(&s.0).expect("loads");
        assert_eq!(
            db.categories().collect::<Vec<_>>(),
            [(0, "a_cat"), (1, "b_cat")]
        );
        let r = db.report();
        assert_eq!(
            (r.domains, r.unique_domains, r.urls, r.skipped_lines),
            (3, 2, 1, 1)
        );
        assert_eq!(r.skipped_samples[0].path, s.0.join("b_cat/domains"));
        assert_eq!(db.lookup_host(b"x.b.example"), CatSet::from_bits(0b11));
        assert!(db.lookup_host(b"hidden.example").is_empty());
        assert_eq!(db.lookup_url(b"u.example", b"/x/y"), CatSet::single(1));
    }

    #[test]
    fn missing_or_wrong_dir_is_a_clear_error() {
        let s = Scratch::new("missing");
        let missing = s.0.join("nope");
        let err = CategoryDb::load_dir(&missing).expect_err("missing");
        assert!(matches!(&err, ListError::MissingDir { path } if *path == missing));
        assert!(err.to_string().contains(&*missing.to_string_lossy()));
        s.file("plain", b"x");
        let err = CategoryDb::load_dir(&s.0.join("plain")).expect_err("file");
        assert!(matches!(err, ListError::NotADirectory { .. }));
    }
}
