//! [`CategoryDb`]: hosts and URLs → categories, built once and then only read.

use std::path::{Path, PathBuf};

use super::ListError;
use super::catset::{CatSet, MAX_CATEGORIES};
use super::load::{self, Line, SkipReason, UrlLine};
use super::suffix::{self, SuffixTable, SuffixTableBuilder};

/// At most this many skipped lines are kept as examples in a [`LoadReport`].
pub const MAX_SKIPPED_SAMPLES: usize = 20;

/// What loading found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Per category, in id order.
    pub categories: Vec<CategoryCounts>,
    /// Accepted `domains` lines, over all categories.
    pub domains: usize,
    /// Distinct domains (a domain listed in several categories counts once).
    pub unique_domains: usize,
    /// Accepted `urls` lines.
    pub urls: usize,
    /// Lines refused (not a host, not ASCII, too long), over all files.
    pub skipped_lines: usize,
    /// The first [`MAX_SKIPPED_SAMPLES`] refused lines, to show the user.
    pub skipped_samples: Vec<SkippedLine>,
}

/// Counts for one category.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryCounts {
    pub name: String,
    pub domains: usize,
    pub urls: usize,
    pub skipped: usize,
}

/// A refused list line: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    pub reason: SkipReason,
}

/// One `urls` entry: a path prefix (lowercase, no leading or trailing `/`) and its categories.
struct UrlEntry {
    off: u32,
    len: u32,
    cats: CatSet,
}

/// The URL entries of one host: `url_entries[start..start + len]`.
#[derive(Clone, Copy)]
struct UrlRange {
    start: u32,
    len: u32,
}

/// Categories of hosts and URLs, SquidGuard semantics:
///
/// - a `domains` entry matches the host itself and every subdomain (`example.com` matches
///   `a.b.example.com`, not `badexample.com`); a `www.` in an entry is kept as written;
/// - a `urls` entry `host/path` matches when the request's host, after dropping a leading
///   `www.`/`web.`/`ftp.` (optionally with digits, like `www2.`) on both sides, equals the
///   entry's host and the entry's path is a prefix of the request's path ending at a
///   segment boundary (`/`, `?`, `#` or the end).
///
/// Everything is compared ASCII case-insensitively. Lookups never allocate.
pub struct CategoryDb {
    names: Vec<Box<str>>,
    domains: SuffixTable<CatSet>,
    url_hosts: SuffixTable<UrlRange>,
    url_entries: Box<[UrlEntry]>,
    url_paths: Box<[u8]>,
    report: LoadReport,
}

impl CategoryDb {
    /// A database without categories: every lookup is empty.
    pub fn empty() -> CategoryDb {
        CategoryDbBuilder::new().build()
    }

    /// Loads a SquidGuard/UT1 folder: each subdirectory is a category (ids follow the
    /// names' byte order), with optional `domains` and `urls` files. Other files
    /// (`expressions`, `usage`, ...) and hidden directories are ignored. Bad lines are
    /// counted in [`report`](Self::report) and skipped.
    pub fn load_dir(dir: &Path) -> Result<CategoryDb, ListError> {
        load::load_dir(dir)
    }

    /// What loading found.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of category `id`, or `"unknown"` for an id this database does not have.
    pub fn name(&self, id: u8) -> &str {
        self.names.get(usize::from(id)).map_or("unknown", |n| n)
    }

    /// The id of the category called `name` (case-sensitive, as the directory is named).
    pub fn id(&self, name: &str) -> Option<u8> {
        let i = self.names.iter().position(|n| &**n == name)?;
        u8::try_from(i).ok()
    }

    /// `(id, name)` of every category, in id order.
    pub fn categories(&self) -> impl Iterator<Item = (u8, &str)> {
        self.names.iter().zip(0u8..).map(|(n, id)| (id, &**n))
    }

    /// Categories of a host. `host` may be upper-case and carry a trailing dot or a
    /// `:port` (an IPv6 literal in brackets too); an IP address is just a host.
    #[inline]
    pub fn lookup_host(&self, host: &[u8]) -> CatSet {
        let mut set = CatSet::EMPTY;
        self.domains
            .for_each_suffix(suffix::host_part(host), |_, &cats| set |= cats);
        set
    }

    /// Categories of a request: those of its host plus those of every `urls` entry for the
    /// host whose path is a prefix of `path` at a segment boundary. `path` is the request
    /// target as sent (`/a/b?q`); it is not percent-decoded here.
    pub fn lookup_url(&self, host: &[u8], path: &[u8]) -> CatSet {
        let mut set = self.lookup_host(host);
        if self.url_entries.is_empty() {
            return set;
        }
        let host = load::strip_www(suffix::host_part(host));
        let Some(range) = self.url_hosts.get(host) else {
            return set;
        };
        let path = trim_slashes(path);
        let start = range.start as usize;
        for e in &self.url_entries[start..start + range.len as usize] {
            let off = e.off as usize;
            let prefix = &self.url_paths[off..off + e.len as usize];
            if segment_prefix(prefix, path) {
                set |= e.cats;
            }
        }
        set
    }

    /// Approximate bytes held on the heap by the lookup structures.
    pub fn heap_bytes(&self) -> usize {
        self.domains.heap_bytes()
            + self.url_hosts.heap_bytes()
            + self.url_entries.len() * size_of::<UrlEntry>()
            + self.url_paths.len()
            + self
                .names
                .iter()
                .map(|n| n.len() + size_of::<Box<str>>())
                .sum::<usize>()
    }
}

impl std::fmt::Debug for CategoryDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CategoryDb")
            .field("categories", &self.names)
            .field("domains", &self.domains.len())
            .field("urls", &self.url_entries.len())
            .finish()
    }
}

fn trim_slashes(mut p: &[u8]) -> &[u8] {
    while let [b'/', rest @ ..] = p {
        p = rest;
    }
    while let [rest @ .., b'/'] = p {
        p = rest;
    }
    p
}

/// `prefix` (lowercase, trimmed) starts `path` and ends at a segment boundary of it.
fn segment_prefix(prefix: &[u8], path: &[u8]) -> bool {
    if prefix.is_empty() {
        return true;
    }
    path.len() >= prefix.len()
        && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        && path
            .get(prefix.len())
            .is_none_or(|b| matches!(b, b'/' | b'?' | b'#'))
}

/// Builds a [`CategoryDb`] from list text; [`CategoryDb::load_dir`] uses it, and so can
/// tests or other list sources.
pub struct CategoryDbBuilder {
    names: Vec<Box<str>>,
    domains: SuffixTableBuilder<CatSet>,
    /// Sorted and merged in `build`.
    urls: Vec<(UrlLine, CatSet)>,
    /// Host and path bytes of `urls`, kept below 4 GiB so 32-bit offsets fit.
    url_bytes: usize,
    report: LoadReport,
}

impl Default for CategoryDbBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CategoryDbBuilder {
    pub fn new() -> CategoryDbBuilder {
        CategoryDbBuilder {
            names: Vec::new(),
            domains: SuffixTableBuilder::default(),
            urls: Vec::new(),
            url_bytes: 0,
            report: LoadReport::default(),
        }
    }

    /// Adds a category and returns its id. Ids are given in call order.
    pub fn add_category(&mut self, name: &str) -> Result<u8, ListError> {
        if self.names.iter().any(|n| &**n == name) {
            return Err(ListError::DuplicateCategory { name: name.into() });
        }
        if self.names.len() >= MAX_CATEGORIES {
            return Err(ListError::TooManyCategories {
                max: MAX_CATEGORIES,
            });
        }
        let id = self.names.len() as u8;
        self.names.push(name.into());
        self.report.categories.push(CategoryCounts {
            name: name.into(),
            ..CategoryCounts::default()
        });
        Ok(id)
    }

    /// Adds the lines of a `domains` file to category `id`; `origin` names the file in
    /// skipped-line reports.
    pub fn add_domains(&mut self, id: u8, text: &[u8], origin: &Path) -> Result<(), ListError> {
        let cat = self.category(id)?;
        let mut key = [0u8; suffix::MAX_KEY_LEN];
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            match load::parse_domain_line(line, &mut key) {
                Line::Blank => {}
                Line::Entry(len) => {
                    self.domains
                        .insert(&key[..len], cat, |v, new| *v |= new)
                        .map_err(|_| ListError::TooLarge)?;
                    self.report.domains += 1;
                    self.report.categories[usize::from(id)].domains += 1;
                }
                Line::Bad(reason) => self.skip(id, origin, n + 1, reason),
            }
        }
        Ok(())
    }

    /// Adds the lines of a `urls` file to category `id`.
    pub fn add_urls(&mut self, id: u8, text: &[u8], origin: &Path) -> Result<(), ListError> {
        let cat = self.category(id)?;
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            match load::parse_url_line(line) {
                Line::Blank => {}
                Line::Entry(url) => {
                    self.url_bytes += url.host.len() + url.path.len();
                    if self.url_bytes >= u32::MAX as usize {
                        return Err(ListError::TooLarge);
                    }
                    self.urls.push((url, cat));
                    self.report.urls += 1;
                    self.report.categories[usize::from(id)].urls += 1;
                }
                Line::Bad(reason) => self.skip(id, origin, n + 1, reason),
            }
        }
        Ok(())
    }

    fn category(&self, id: u8) -> Result<CatSet, ListError> {
        if usize::from(id) < self.names.len() {
            Ok(CatSet::single(id))
        } else {
            Err(ListError::UnknownCategoryId { id })
        }
    }

    fn skip(&mut self, id: u8, path: &Path, line: usize, reason: SkipReason) {
        self.report.skipped_lines += 1;
        self.report.categories[usize::from(id)].skipped += 1;
        if self.report.skipped_samples.len() < MAX_SKIPPED_SAMPLES {
            self.report.skipped_samples.push(SkippedLine {
                path: path.to_path_buf(),
                line,
                reason,
            });
        }
    }

    pub fn build(mut self) -> CategoryDb {
        self.report.unique_domains = self.domains.len();
        let (url_hosts, url_entries, url_paths) = build_urls(std::mem::take(&mut self.urls));
        CategoryDb {
            names: self.names,
            domains: self.domains.build(),
            url_hosts,
            url_entries,
            url_paths,
            report: self.report,
        }
    }
}

type UrlParts = (SuffixTable<UrlRange>, Box<[UrlEntry]>, Box<[u8]>);

/// Groups URL entries by host; identical host+path entries merge their categories.
fn build_urls(mut urls: Vec<(UrlLine, CatSet)>) -> UrlParts {
    urls.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut hosts = SuffixTableBuilder::default();
    let mut entries: Vec<UrlEntry> = Vec::new();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < urls.len() {
        let host = &urls[i].0.host;
        let start = entries.len();
        while i < urls.len() && urls[i].0.host == *host {
            let (UrlLine { path, .. }, cats) = &urls[i];
            let same_path = entries.len() > start && {
                let last = &entries[entries.len() - 1];
                paths[last.off as usize..(last.off + last.len) as usize] == **path
            };
            if same_path {
                let last = entries.len() - 1;
                entries[last].cats |= *cats;
            } else {
                // `add_urls` keeps all URL bytes, hence offsets and counts, below 4 GiB.
                entries.push(UrlEntry {
                    off: paths.len() as u32,
                    len: path.len() as u32,
                    cats: *cats,
                });
                paths.extend_from_slice(path);
            }
            i += 1;
        }
        let range = UrlRange {
            start: start as u32,
            len: (entries.len() - start) as u32,
        };
        // Hosts were validated to 1..=253 bytes and `add_urls` caps their total size.
        let _ = hosts.insert(host, range, |_, _| {});
    }
    (
        hosts.build(),
        entries.into_boxed_slice(),
        paths.into_boxed_slice(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(lists: &[(&str, &str, &str)]) -> CategoryDb {
        let mut b = CategoryDbBuilder::new();
        for (name, domains, urls) in lists {
            let id = b.add_category(name).expect("category");
            b.add_domains(id, domains.as_bytes(), Path::new("domains"))
                .expect("domains");
            b.add_urls(id, urls.as_bytes(), Path::new("urls"))
                .expect("urls");
        }
        b.build()
    }

    fn names(db: &CategoryDb, set: CatSet) -> Vec<&str> {
        set.iter().map(|id| db.name(id)).collect()
    }

    #[test]
    fn domain_suffix_semantics() {
        let db = db(&[
            (
                "gambling",
                "example.com\n# comment\n\n  casino.jp  \r\n",
                "",
            ),
            ("malware", "bad.example.com\n10.1.2.3\n", ""),
        ]);
        let host = |h: &str| names(&db, db.lookup_host(h.as_bytes()));
        assert_eq!(host("example.com"), ["gambling"]);
        assert_eq!(host("a.b.example.com"), ["gambling"]);
        assert_eq!(host("x.bad.example.com"), ["gambling", "malware"]);
        assert!(host("badexample.com").is_empty());
        assert!(host("example.co").is_empty());
        assert!(host("com").is_empty());
        assert_eq!(host("EXAMPLE.COM."), ["gambling"]);
        assert_eq!(host("www.Casino.JP:8080"), ["gambling"]);
        assert_eq!(host("10.1.2.3:443"), ["malware"]);
        assert!(host("110.1.2.3").is_empty());
        assert!(host("").is_empty());
    }

    #[test]
    fn url_prefix_at_segment_boundaries() {
        let db = db(&[
            (
                "drogue",
                "",
                "www.site.org/drugs/\nsite.org/a/b.html\nother.net\n",
            ),
            ("hacking", "", "site.org/drugs/tools\n"),
        ]);
        let url = |h: &str, p: &str| names(&db, db.lookup_url(h.as_bytes(), p.as_bytes()));
        assert_eq!(url("site.org", "/drugs"), ["drogue"]);
        assert_eq!(url("www.site.org", "/drugs/x/y"), ["drogue"]);
        assert_eq!(url("www2.SITE.org:80", "/DRUGS?id=1"), ["drogue"]);
        assert_eq!(url("site.org", "/drugs/tools/kit"), ["drogue", "hacking"]);
        assert!(url("site.org", "/drugstore").is_empty());
        assert!(url("site.org", "/").is_empty());
        assert!(url("sub.site.org", "/drugs").is_empty());
        assert_eq!(url("site.org", "/a/b.html"), ["drogue"]);
        assert!(url("site.org", "/a/b.htmlx").is_empty());
        assert_eq!(url("other.net", "/anything"), ["drogue"]);
        // URL entries never make the host itself listed.
        assert!(db.lookup_host(b"site.org").is_empty());
    }

    #[test]
    fn bad_lines_are_counted_and_skipped() {
        let mut b = CategoryDbBuilder::new();
        let id = b.add_category("x").expect("category");
        let domains = b"good.jp\n\xff\xfe\x00binary\nnot/a/host\nbad..dots\n\xe6\x97\xa5.jp\n";
        b.add_domains(id, domains, Path::new("domains"))
            .expect("domains");
        b.add_urls(id, b"good.jp/ok\n/no-host\n", Path::new("urls"))
            .expect("urls");
        let db = b.build();
        let r = db.report();
        assert_eq!((r.domains, r.urls, r.skipped_lines), (1, 1, 5));
        assert_eq!(r.skipped_samples[0].line, 2);
        assert_eq!(r.skipped_samples[0].reason, SkipReason::NotAscii);
        assert_eq!(r.categories[0].skipped, 5);
        assert_eq!(names(&db, db.lookup_host(b"a.good.jp")), ["x"]);
    }

    #[test]
    fn names_and_ids() {
        let db = db(&[("a", "", ""), ("b", "", "")]);
        assert_eq!(db.id("b"), Some(1));
        assert_eq!(db.id("c"), None);
        assert_eq!(db.name(0), "a");
        assert_eq!(db.name(9), "unknown");
        assert_eq!(db.categories().collect::<Vec<_>>(), [(0, "a"), (1, "b")]);
        assert!(CategoryDb::empty().lookup_url(b"a", b"/").is_empty());
    }

    #[test]
    fn too_many_categories() {
        let mut b = CategoryDbBuilder::new();
        for i in 0..MAX_CATEGORIES {
            b.add_category(&format!("c{i}")).expect("fits");
        }
        assert!(matches!(
            b.add_category("one-more"),
            Err(ListError::TooManyCategories { .. })
        ));
        assert!(matches!(
            b.add_category("c3"),
            Err(ListError::DuplicateCategory { .. })
        ));
    }
}
