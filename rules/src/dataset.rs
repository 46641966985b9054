//! Datasets (`dataset:isset,name,type string,load file`): named sets of values shared by all
//! rules of a ruleset, looked up with the bytes of the current sticky buffer.
//!
//! Files follow Suricata's formats, one value a line: `string` lines are base64, `md5` /
//! `sha256` lines hex, `ipv4` / `ipv6` / `ip` lines addresses. Values are kept as the bytes a
//! buffer holds (decoded string, raw digest, 4- or 16-byte address), so a lookup is one hash
//! probe. `dataset:set` adds at run time; the set is then shared by every worker.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::transform::{Base64Mode, base64_decode};

/// Most values one dataset may hold (files and run-time additions).
pub const MAX_VALUES: usize = 4_000_000;

/// The value type of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetType {
    String,
    Md5,
    Sha256,
    Ipv4,
    Ipv6,
    /// IPv4 or IPv6.
    Ip,
}

impl DatasetType {
    pub fn from_name(s: &str) -> Option<DatasetType> {
        Some(match s {
            "string" => DatasetType::String,
            "md5" => DatasetType::Md5,
            "sha256" => DatasetType::Sha256,
            "ipv4" => DatasetType::Ipv4,
            "ipv6" => DatasetType::Ipv6,
            "ip" => DatasetType::Ip,
            _ => return None,
        })
    }
}

/// What a `dataset` keyword does with the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetOp {
    IsSet,
    IsNotSet,
    /// Add the value; always matches.
    Set,
    /// Remove the value; always matches.
    Unset,
}

/// One named set.
#[derive(Debug)]
pub struct Dataset {
    pub name: String,
    pub kind: DatasetType,
    values: RwLock<HashSet<Vec<u8>>>,
}

impl Dataset {
    pub fn new(name: &str, kind: DatasetType) -> Dataset {
        Dataset {
            name: name.to_string(),
            kind,
            values: RwLock::new(HashSet::new()),
        }
    }

    /// Add every value of a file. Errors name the line.
    pub fn load(&self, path: &Path) -> Result<usize, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut n = 0;
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // `value,extra` lines (reputation data) keep only the value
            let field = line.split(',').next().unwrap_or(line).trim();
            let v = self.parse_value(field).ok_or_else(|| {
                format!(
                    "{}:{}: `{field}` is not a {:?} value",
                    path.display(),
                    i + 1,
                    self.kind
                )
            })?;
            if values.len() >= MAX_VALUES {
                return Err(format!("{}: more than {MAX_VALUES} values", path.display()));
            }
            values.insert(v);
            n += 1;
        }
        Ok(n)
    }

    /// A file line as the bytes buffers hold.
    pub fn parse_value(&self, s: &str) -> Option<Vec<u8>> {
        match self.kind {
            DatasetType::String => {
                let mut out = Vec::new();
                base64_decode(s.as_bytes(), Base64Mode::Strict, &mut out).then_some(out)
            }
            DatasetType::Md5 => hex(s).filter(|v| v.len() == 16),
            DatasetType::Sha256 => hex(s).filter(|v| v.len() == 32),
            DatasetType::Ipv4 => match s.parse::<IpAddr>().ok()? {
                IpAddr::V4(a) => Some(a.octets().to_vec()),
                IpAddr::V6(_) => None,
            },
            DatasetType::Ipv6 | DatasetType::Ip => match s.parse::<IpAddr>().ok()? {
                IpAddr::V4(a) if self.kind == DatasetType::Ip => Some(a.octets().to_vec()),
                IpAddr::V4(a) => Some(a.to_ipv6_mapped().octets().to_vec()),
                IpAddr::V6(a) => Some(
                    a.to_ipv4_mapped()
                        .filter(|_| self.kind == DatasetType::Ip)
                        .map_or(a.octets().to_vec(), |v4| v4.octets().to_vec()),
                ),
            },
        }
    }

    pub fn contains(&self, v: &[u8]) -> bool {
        self.values
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(v)
    }

    pub fn len(&self) -> usize {
        self.values.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Run one operation on a buffer value.
    pub fn apply(&self, op: DatasetOp, v: &[u8]) -> bool {
        match op {
            DatasetOp::IsSet => self.contains(v),
            DatasetOp::IsNotSet => !self.contains(v),
            DatasetOp::Set => {
                if !self.contains(v) {
                    let mut w = self.values.write().unwrap_or_else(|e| e.into_inner());
                    if w.len() < MAX_VALUES {
                        w.insert(v.to_vec());
                    }
                }
                true
            }
            DatasetOp::Unset => {
                if self.contains(v) {
                    self.values
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(v);
                }
                true
            }
        }
    }
}

/// A shared dataset as rules hold it (equal when it is the same set).
#[derive(Debug, Clone)]
pub struct DatasetRef(pub Arc<Dataset>);

impl PartialEq for DatasetRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DatasetRef {}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Parse a hash list (`filemd5` / `filesha1` / `filesha256`): one hex digest a line, maybe
/// followed by a comment; `#` lines and blank lines are skipped.
pub fn load_hash_list(path: &Path, len: usize) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(tok) = line
            .split_whitespace()
            .next()
            .filter(|t| !t.starts_with('#'))
        else {
            continue;
        };
        let v = hex(tok).filter(|v| v.len() == len).ok_or_else(|| {
            format!(
                "{}:{}: `{tok}` is not a {}-byte hex digest",
                path.display(),
                i + 1,
                len
            )
        })?;
        out.push(v);
        if out.len() > MAX_VALUES {
            return Err(format!("{}: more than {MAX_VALUES} hashes", path.display()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_buffer_form() {
        let s = Dataset::new("ua", DatasetType::String);
        assert_eq!(s.parse_value("Y3VybC83LjU4LjA=").unwrap(), b"curl/7.58.0");
        assert!(s.parse_value("not base64!").is_none());
        let ip = Dataset::new("ips", DatasetType::Ip);
        assert_eq!(ip.parse_value("10.0.0.1").unwrap(), vec![10, 0, 0, 1]);
        assert_eq!(
            ip.parse_value("::ffff:10.0.0.1").unwrap(),
            vec![10, 0, 0, 1]
        );
        assert_eq!(ip.parse_value("2001:db8::1").unwrap().len(), 16);
        let v4 = Dataset::new("v4", DatasetType::Ipv4);
        assert!(v4.parse_value("2001:db8::1").is_none());
        let h = Dataset::new("h", DatasetType::Md5);
        assert_eq!(
            h.parse_value("d41d8cd98f00b204e9800998ecf8427e")
                .unwrap()
                .len(),
            16
        );
    }

    #[test]
    fn operations() {
        let s = Dataset::new("x", DatasetType::String);
        assert!(s.apply(DatasetOp::IsNotSet, b"a"));
        assert!(s.apply(DatasetOp::Set, b"a"));
        assert!(s.apply(DatasetOp::IsSet, b"a"));
        assert!(s.apply(DatasetOp::Unset, b"a"));
        assert!(!s.apply(DatasetOp::IsSet, b"a"));
    }

    #[test]
    fn loads_files() {
        let dir = std::env::temp_dir().join(format!("mimamori-ds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("ua.csv");
        std::fs::write(&f, "Y3VybC83LjU4LjA=\n\nZm9v\n").unwrap();
        let s = Dataset::new("ua", DatasetType::String);
        assert_eq!(s.load(&f).unwrap(), 2);
        assert!(s.contains(b"foo"));
        std::fs::write(&f, "Zm9v\n!!\n").unwrap();
        assert!(s.load(&f).unwrap_err().contains(":2:"));
        let h = dir.join("h.txt");
        std::fs::write(&h, "# list\nd41d8cd98f00b204e9800998ecf8427e  empty\n").unwrap();
        assert_eq!(load_hash_list(&h, 16).unwrap().len(), 1);
        assert!(load_hash_list(&h, 32).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
