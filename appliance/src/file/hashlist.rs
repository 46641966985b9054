//! Known-bad file hashes from a tab-separated list.
//!
//! The format is the one of `shared/corpus/files/hashes.tsv`: one file per line, fields
//! separated by tabs (shown as `⇥` here), a header line naming the columns:
//!
//! ```text
//! # comments and blank lines are ignored
//! file⇥bytes⇥md5⇥sha1⇥sha256⇥type
//! clamav-testfiles/clam.exe⇥544⇥aa15bcf4…⇥62dd70f5…⇥71e7b604…⇥PE32 executable (GUI) …
//! ```
//!
//! Recognised columns (case-insensitive, in any order, others ignored): `md5`, `sha1`
//! (`sha-1`), `sha256` (`sha-256`), and for the verdict's name `name` (also `malware`,
//! `signature`, `threat`), else the last path component of `file`, else `type`. A list
//! without a header is read field by field: 32, 40 and 64 hex digits are MD5, SHA-1 and
//! SHA-256, and the first other non-numeric field is the name. A line with a malformed
//! hash, or with no hash at all, is counted in [`HashList::bad_lines`] and skipped.
//!
//! Hashes are kept as fixed-size arrays in sorted vectors (binary search, no per-entry
//! allocation); names are shared between entries.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::FileError;

/// Column names that hold the verdict's name, best first.
const NAME_COLUMNS: [&str; 4] = ["name", "malware", "signature", "threat"];
/// The name of entries whose line names nothing.
const UNNAMED: &str = "hash-list";
/// Longest name kept (longer ones are cut at a character boundary).
const MAX_NAME_LEN: usize = 128;

/// Known-bad MD5, SHA-1 and SHA-256 hashes, each with the name a verdict reports.
#[derive(Debug, Default)]
pub struct HashList {
    sha256: Vec<([u8; 32], u32)>,
    sha1: Vec<([u8; 20], u32)>,
    md5: Vec<([u8; 16], u32)>,
    names: Vec<Arc<str>>,
    entries: usize,
    bad_lines: usize,
    /// Entries that can only be found by MD5 (resp. SHA-1): no SHA-256 on their line.
    md5_only: usize,
    sha1_only: usize,
}

/// Where each field of a line is.
#[derive(Debug, Default, Clone, Copy)]
struct Columns {
    md5: Option<usize>,
    sha1: Option<usize>,
    sha256: Option<usize>,
    name: Option<usize>,
    /// The name column holds a path: keep its last component.
    name_is_path: bool,
}

impl Columns {
    /// Reads a header line; `None` when the line names no hash column (it is data).
    fn from_header(line: &str) -> Option<Columns> {
        let mut c = Columns::default();
        let (mut file, mut kind, mut named) = (None, None, None);
        for (i, field) in line.split('\t').enumerate() {
            match field.trim().to_ascii_lowercase().as_str() {
                "md5" => c.md5 = Some(i),
                "sha1" | "sha-1" => c.sha1 = Some(i),
                "sha256" | "sha-256" => c.sha256 = Some(i),
                "file" | "path" | "filename" => file = file.or(Some(i)),
                "type" => kind = kind.or(Some(i)),
                f if NAME_COLUMNS.contains(&f) => named = named.or(Some(i)),
                _ => {}
            }
        }
        if c.md5.is_none() && c.sha1.is_none() && c.sha256.is_none() {
            return None;
        }
        c.name_is_path = named.is_none() && file.is_some();
        c.name = named.or(file).or(kind);
        Some(c)
    }
}

/// The hashes and name of one line.
#[derive(Debug, Default)]
struct Entry<'a> {
    md5: Option<[u8; 16]>,
    sha1: Option<[u8; 20]>,
    sha256: Option<[u8; 32]>,
    name: Option<&'a str>,
}

/// Decodes exactly `N` bytes of hex; `None` for anything else.
fn hex_array<const N: usize>(field: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(field.trim(), &mut out).ok()?;
    Some(out)
}

/// An optional hash field: absent or empty is `Ok(None)`, malformed is `Err`.
fn hash_field<const N: usize>(fields: &[&str], col: Option<usize>) -> Result<Option<[u8; N]>, ()> {
    match col.and_then(|i| fields.get(i)).map(|f| f.trim()) {
        None | Some("") | Some("-") => Ok(None),
        Some(f) => hex_array(f).map(Some).ok_or(()),
    }
}

fn entry_by_columns<'a>(line: &'a str, c: &Columns) -> Option<Entry<'a>> {
    let fields: Vec<&str> = line.split('\t').collect();
    let mut e = Entry {
        md5: hash_field(&fields, c.md5).ok()?,
        sha1: hash_field(&fields, c.sha1).ok()?,
        sha256: hash_field(&fields, c.sha256).ok()?,
        name: c
            .name
            .and_then(|i| fields.get(i))
            .map(|f| f.trim())
            .filter(|f| !f.is_empty()),
    };
    if c.name_is_path {
        e.name = e.name.and_then(|p| p.rsplit(['/', '\\']).next());
    }
    Some(e)
}

/// A line of a list without header: hashes recognised by their length.
fn entry_by_shape(line: &str) -> Option<Entry<'_>> {
    let mut e = Entry::default();
    for field in line.split('\t').map(str::trim).filter(|f| !f.is_empty()) {
        let is_hex = field.bytes().all(|b| b.is_ascii_hexdigit());
        match (is_hex, field.len()) {
            (true, 32) => e.md5 = Some(hex_array(field)?),
            (true, 40) => e.sha1 = Some(hex_array(field)?),
            (true, 64) => e.sha256 = Some(hex_array(field)?),
            _ if field.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => e.name = e.name.or(Some(field)),
        }
    }
    Some(e)
}

fn clip(name: &str) -> &str {
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let mut end = MAX_NAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

impl HashList {
    /// Reads a list from a file; a missing or unreadable file is an error naming the path.
    pub fn load(path: &Path) -> Result<HashList, FileError> {
        let bytes = std::fs::read(path).map_err(|source| FileError::Read {
            what: "hash list",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(HashList::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Reads a list from text (see the module documentation for the format).
    pub fn parse(text: &str) -> HashList {
        let mut list = HashList::default();
        let mut interned: HashMap<&str, u32> = HashMap::new();
        let mut columns: Option<Option<Columns>> = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            // the first data-looking line decides: a header, or a list without one
            let cols = match columns {
                Some(c) => c,
                None => {
                    let c = Columns::from_header(line);
                    columns = Some(c);
                    if c.is_some() {
                        continue;
                    }
                    c
                }
            };
            let entry = match &cols {
                Some(c) => entry_by_columns(line, c),
                None => entry_by_shape(line),
            };
            match entry {
                Some(e) if e.md5.is_some() || e.sha1.is_some() || e.sha256.is_some() => {
                    list.add(e, &mut interned)
                }
                _ => list.bad_lines += 1,
            }
        }
        list.finish();
        list
    }

    fn add<'a>(&mut self, e: Entry<'a>, interned: &mut HashMap<&'a str, u32>) {
        self.entries += 1;
        let name = clip(e.name.unwrap_or(UNNAMED));
        let id = *interned.entry(name).or_insert_with(|| {
            self.names.push(Arc::from(name));
            (self.names.len() - 1) as u32
        });
        if let Some(h) = e.sha256 {
            self.sha256.push((h, id));
        } else {
            self.md5_only += usize::from(e.md5.is_some());
            self.sha1_only += usize::from(e.sha1.is_some() && e.md5.is_none());
        }
        if let Some(h) = e.sha1 {
            self.sha1.push((h, id));
        }
        if let Some(h) = e.md5 {
            self.md5.push((h, id));
        }
    }

    /// Sorts for binary search; the first name of a duplicated hash wins.
    fn finish(&mut self) {
        fn sort<const N: usize>(v: &mut Vec<([u8; N], u32)>) {
            v.sort_by_key(|a| a.0);
            v.dedup_by(|later, first| later.0 == first.0);
            v.shrink_to_fit();
        }
        sort(&mut self.sha256);
        sort(&mut self.sha1);
        sort(&mut self.md5);
        self.names.shrink_to_fit();
    }

    fn find<const N: usize>(&self, v: &[([u8; N], u32)], h: &[u8; N]) -> Option<&Arc<str>> {
        let i = v.binary_search_by(|(k, _)| k.cmp(h)).ok()?;
        self.names.get(v[i].1 as usize)
    }

    /// The name listed for this SHA-256.
    pub fn lookup_sha256(&self, h: &[u8; 32]) -> Option<&Arc<str>> {
        self.find(&self.sha256, h)
    }

    /// The name listed for this SHA-1.
    pub fn lookup_sha1(&self, h: &[u8; 20]) -> Option<&Arc<str>> {
        self.find(&self.sha1, h)
    }

    /// The name listed for this MD5.
    pub fn lookup_md5(&self, h: &[u8; 16]) -> Option<&Arc<str>> {
        self.find(&self.md5, h)
    }

    /// Entries read (one per accepted line).
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty() && self.sha1.is_empty() && self.md5.is_empty()
    }

    /// Lines skipped because they held a malformed hash or none.
    pub fn bad_lines(&self) -> usize {
        self.bad_lines
    }

    /// Some entry has an MD5 but no SHA-256, so inspectors must compute MD5 to find it.
    pub fn needs_md5(&self) -> bool {
        self.md5_only > 0
    }

    /// Some entry has a SHA-1 but neither SHA-256 nor MD5.
    pub fn needs_sha1(&self) -> bool {
        self.sha1_only > 0
    }
}
