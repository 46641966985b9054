//! The suffix-matching core shared by URL categories and the application catalogue.
//!
//! Keys are lowercase domain names stored back to back in one byte arena. An
//! open-addressing table (linear probing, load factor at most 1/2) maps a 64-bit hash of
//! each key to its entry; a hit is confirmed by comparing the bytes.
//!
//! The hash runs over a name's bytes from right to left, so walking a host once from its
//! last byte to its first yields the hash of every suffix on the way: at each dot the
//! suffix to its right is probed. A lookup therefore hashes every byte once, probes once
//! per label and never allocates. Upper-case input is folded while hashing and comparing.

/// The longest key: a DNS name of 253 bytes without its trailing dot.
pub(crate) const MAX_KEY_LEN: usize = 253;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Marks an unused slot.
const EMPTY: u32 = u32::MAX;
/// The smallest table: 16 slots.
const MIN_SLOTS: usize = 16;

#[inline]
fn step(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(FNV_PRIME)
}

/// Final avalanche (MurmurHash3 fmix64) so the low bits index well and the high bits tag.
#[inline]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn key_hash(key: &[u8]) -> u64 {
    finish(key.iter().rev().fold(FNV_OFFSET, |h, &b| step(h, b)))
}

#[derive(Clone, Copy)]
struct Slot {
    /// The high 32 bits of the key's hash, to skip most foreign entries without a compare.
    tag: u32,
    /// Index into `entries`, or [`EMPTY`].
    entry: u32,
}

const EMPTY_SLOT: Slot = Slot {
    tag: 0,
    entry: EMPTY,
};

struct Entry<V> {
    off: u32,
    len: u8,
    value: V,
}

/// An immutable map from domain names to values, queried by exact name or by every
/// label-boundary suffix of a host.
pub(crate) struct SuffixTable<V> {
    arena: Box<[u8]>,
    entries: Box<[Entry<V>]>,
    slots: Box<[Slot]>,
}

impl<V> SuffixTable<V> {
    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.arena.len()
            + self.entries.len() * size_of::<Entry<V>>()
            + self.slots.len() * size_of::<Slot>()
    }

    /// The value stored for exactly `key` (ASCII case-insensitive).
    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || self.entries.is_empty() {
            return None;
        }
        self.probe(key_hash(key), key)
    }

    /// Calls `f(suffix_len, value)` for every stored key that is `host` itself or a suffix
    /// of it starting right after a dot, shortest suffix first. `host` must already be
    /// stripped of port and trailing dot ([`host_part`]); case does not matter.
    #[inline]
    pub(crate) fn for_each_suffix(&self, host: &[u8], mut f: impl FnMut(usize, &V)) {
        if self.entries.is_empty() || host.is_empty() {
            return;
        }
        // Only the last MAX_KEY_LEN bytes can hold a key, and the dot before it.
        let start = host.len().saturating_sub(MAX_KEY_LEN + 1);
        let mut h = FNV_OFFSET;
        for i in (start..host.len()).rev() {
            let b = host[i];
            if b == b'.' && i + 1 < host.len() {
                let suffix = &host[i + 1..];
                if suffix.len() <= MAX_KEY_LEN
                    && let Some(v) = self.probe(finish(h), suffix)
                {
                    f(suffix.len(), v);
                }
            }
            h = step(h, b);
        }
        if host.len() <= MAX_KEY_LEN
            && let Some(v) = self.probe(finish(h), host)
        {
            f(host.len(), v);
        }
    }

    #[inline]
    fn probe(&self, hash: u64, key: &[u8]) -> Option<&V> {
        let mask = self.slots.len() - 1;
        let tag = (hash >> 32) as u32;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.entry == EMPTY {
                return None;
            }
            if slot.tag == tag {
                let e = &self.entries[slot.entry as usize];
                let off = e.off as usize;
                let stored = &self.arena[off..off + usize::from(e.len)];
                if stored.eq_ignore_ascii_case(key) {
                    return Some(&e.value);
                }
            }
            i = (i + 1) & mask;
        }
    }
}

/// The arena outgrew its 32-bit offsets (4 GiB of names).
#[derive(Debug)]
pub(crate) struct TableFull;

/// Builds a [`SuffixTable`]; keys are inserted once, repeated keys merge their values.
pub(crate) struct SuffixTableBuilder<V> {
    arena: Vec<u8>,
    entries: Vec<Entry<V>>,
    slots: Vec<Slot>,
}

impl<V> Default for SuffixTableBuilder<V> {
    fn default() -> Self {
        Self {
            arena: Vec::new(),
            entries: Vec::new(),
            slots: vec![EMPTY_SLOT; MIN_SLOTS],
        }
    }
}

impl<V> SuffixTableBuilder<V> {
    /// Inserts `key` (lowercase, 1..=[`MAX_KEY_LEN`] bytes) with `value`, or merges
    /// `value` into the existing one. Returns whether the key was new.
    pub(crate) fn insert(
        &mut self,
        key: &[u8],
        value: V,
        merge: impl FnOnce(&mut V, V),
    ) -> Result<bool, TableFull> {
        debug_assert!(!key.is_empty() && key.len() <= MAX_KEY_LEN);
        debug_assert!(!key.iter().any(u8::is_ascii_uppercase));
        let hash = key_hash(key);
        let mask = self.slots.len() - 1;
        let tag = (hash >> 32) as u32;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.entry == EMPTY {
                break;
            }
            if slot.tag == tag {
                let e = &mut self.entries[slot.entry as usize];
                let off = e.off as usize;
                if &self.arena[off..off + usize::from(e.len)] == key {
                    merge(&mut e.value, value);
                    return Ok(false);
                }
            }
            i = (i + 1) & mask;
        }
        let off = u32::try_from(self.arena.len()).map_err(|_| TableFull)?;
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&n| n < EMPTY)
            .ok_or(TableFull)?;
        let len = u8::try_from(key.len()).map_err(|_| TableFull)?;
        self.arena.extend_from_slice(key);
        self.entries.push(Entry { off, len, value });
        self.slots[i] = Slot { tag, entry: index };
        if self.entries.len() * 2 > self.slots.len() {
            self.grow();
        }
        Ok(true)
    }

    fn grow(&mut self) {
        let mut slots = vec![EMPTY_SLOT; self.slots.len() * 2];
        let mask = slots.len() - 1;
        for (index, e) in self.entries.iter().enumerate() {
            let off = e.off as usize;
            let hash = key_hash(&self.arena[off..off + usize::from(e.len)]);
            let mut i = hash as usize & mask;
            while slots[i].entry != EMPTY {
                i = (i + 1) & mask;
            }
            // `insert` keeps the entry count below EMPTY.
            slots[i] = Slot {
                tag: (hash >> 32) as u32,
                entry: index as u32,
            };
        }
        self.slots = slots;
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn build(self) -> SuffixTable<V> {
        SuffixTable {
            arena: self.arena.into_boxed_slice(),
            entries: self.entries.into_boxed_slice(),
            slots: self.slots.into_boxed_slice(),
        }
    }
}

/// The host name inside `host`: surrounding whitespace, a `:port`, the brackets of an IPv6
/// literal and trailing dots removed. Never allocates.
pub(crate) fn host_part(host: &[u8]) -> &[u8] {
    let mut h = host.trim_ascii();
    if let Some(rest) = h.strip_prefix(b"[") {
        return match memchr::memchr(b']', rest) {
            Some(end) => &rest[..end],
            None => rest,
        };
    }
    // One colon is a port; more are a bare IPv6 address.
    if let Some(colon) = memchr::memchr(b':', h)
        && memchr::memchr(b':', &h[colon + 1..]).is_none()
    {
        h = &h[..colon];
    }
    while let [rest @ .., b'.'] = h {
        h = rest;
    }
    h
}

/// Validates a list entry's host and writes it lowercased into `out`, returning its length.
/// Leading `*.` and dots and trailing dots are dropped; the rest must be 1..=253 bytes of
/// letters, digits, `-`, `_` and dots, without empty labels.
pub(crate) fn normalize_domain(
    raw: &[u8],
    out: &mut [u8; MAX_KEY_LEN],
) -> Result<usize, BadDomain> {
    let mut d = raw.strip_prefix(b"*.").unwrap_or(raw);
    while let [b'.', rest @ ..] = d {
        d = rest;
    }
    while let [rest @ .., b'.'] = d {
        d = rest;
    }
    if d.is_empty() {
        return Err(BadDomain::Invalid);
    }
    if !d.is_ascii() {
        return Err(BadDomain::NotAscii);
    }
    if d.len() > MAX_KEY_LEN {
        return Err(BadDomain::TooLong);
    }
    let valid = d
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid || memchr::memmem::find(d, b"..").is_some() {
        return Err(BadDomain::Invalid);
    }
    for (o, b) in out.iter_mut().zip(d) {
        *o = b.to_ascii_lowercase();
    }
    Ok(d.len())
}

/// Why a list entry's host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadDomain {
    NotAscii,
    TooLong,
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(keys: &[&str]) -> SuffixTable<u32> {
        let mut b = SuffixTableBuilder::default();
        for (i, k) in keys.iter().enumerate() {
            b.insert(k.as_bytes(), i as u32, |_, _| {}).expect("insert");
        }
        b.build()
    }

    fn suffixes(t: &SuffixTable<u32>, host: &str) -> Vec<(usize, u32)> {
        let mut v = Vec::new();
        t.for_each_suffix(host_part(host.as_bytes()), |len, &x| v.push((len, x)));
        v
    }

    #[test]
    fn suffixes_at_label_boundaries_only() {
        let t = table(&["example.com", "b.example.com", "com"]);
        assert_eq!(suffixes(&t, "a.b.example.com"), [(3, 2), (11, 0), (13, 1)]);
        assert_eq!(suffixes(&t, "badexample.com"), [(3, 2)]);
        assert_eq!(suffixes(&t, "EXAMPLE.Com.:443"), [(3, 2), (11, 0)]);
        assert!(suffixes(&t, "").is_empty());
        assert!(suffixes(&t, ".").is_empty());
    }

    #[test]
    fn grows_and_merges() {
        let mut b = SuffixTableBuilder::default();
        for i in 0..10_000u32 {
            let k = format!("h{i}.example.jp");
            assert!(
                b.insert(k.as_bytes(), 1u64 << (i % 64), |_, _| {})
                    .expect("i")
            );
        }
        assert!(!b.insert(b"h7.example.jp", 1, |v, n| *v |= n).expect("i"));
        let t = b.build();
        assert_eq!(t.len(), 10_000);
        assert_eq!(t.get(b"h7.example.jp"), Some(&(1 << 7 | 1)));
        assert_eq!(t.get(b"H9999.EXAMPLE.JP"), Some(&(1 << (9999 % 64))));
        assert_eq!(t.get(b"h10000.example.jp"), None);
    }

    #[test]
    fn host_part_strips_port_brackets_and_dots() {
        assert_eq!(host_part(b"Example.com:8080"), b"Example.com");
        assert_eq!(host_part(b" example.com.. "), b"example.com");
        assert_eq!(host_part(b"[2001:db8::1]:443"), b"2001:db8::1");
        assert_eq!(host_part(b"2001:db8::1"), b"2001:db8::1");
    }

    #[test]
    fn long_hosts_only_match_their_tail() {
        let t = table(&["example.com"]);
        let long = format!("{}.example.com", "a.".repeat(400));
        assert_eq!(suffixes(&t, &long), [(11, 0)]);
    }

    #[test]
    fn domain_validation() {
        let mut buf = [0; MAX_KEY_LEN];
        let n = normalize_domain(b"*.WWW.Example.COM.", &mut buf).expect("valid");
        assert_eq!(&buf[..n], b"www.example.com");
        let n = normalize_domain(b"192.168.0.1", &mut buf).expect("ip");
        assert_eq!(&buf[..n], b"192.168.0.1");
        assert_eq!(normalize_domain(b"a..b", &mut buf), Err(BadDomain::Invalid));
        assert_eq!(normalize_domain(b"a/b", &mut buf), Err(BadDomain::Invalid));
        assert_eq!(
            normalize_domain(b"\xff\xfe.jp", &mut buf),
            Err(BadDomain::NotAscii)
        );
        let long = "a".repeat(254);
        assert_eq!(
            normalize_domain(long.as_bytes(), &mut buf),
            Err(BadDomain::TooLong)
        );
    }
}
