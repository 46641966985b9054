//! The Hyperscan multi-literal prefilter of one buffer type.

use hyperscan::prelude::*;
use std::collections::HashMap;

/// Per-worker Hyperscan scratch space, grown to fit every database it serves.
#[derive(Default)]
pub struct Scratch {
    inner: Option<hyperscan::Scratch>,
    /// Pattern ids reported by the last scan (reused, no allocation per scan).
    hits: Vec<u32>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }

    pub(crate) fn grow_for(&mut self, p: &Prefilter) -> Result<(), String> {
        match &mut self.inner {
            Some(s) => {
                p.db.realloc_scratch(s).map_err(|e| e.to_string())?;
            }
            None => self.inner = Some(p.db.alloc_scratch().map_err(|e| e.to_string())?),
        }
        Ok(())
    }
}

/// A block-mode database of literals; each literal maps to the rules it stands for.
pub struct Prefilter {
    db: BlockDatabase,
    /// `rules[starts[p]..starts[p+1]]` are the rules of pattern `p`.
    starts: Vec<u32>,
    rules: Vec<u32>,
    patterns: usize,
}

impl std::fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prefilter({} patterns)", self.patterns)
    }
}

/// Literals are prefiltered by at most their first this many bytes: a prefix is a
/// necessary condition too, the database stays small, and a stream needs to be rescanned
/// only this much minus one byte behind its new data for a literal that straddles two
/// segments.
pub const MAX_PREFILTER_LIT: usize = 32;

fn escape(lit: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(lit.len() * 4);
    for &b in lit {
        if b.is_ascii_alphanumeric() {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

impl Prefilter {
    /// Build from (literal, nocase, rule id) triples. Identical literals share one pattern.
    pub fn build(lits: &[(Vec<u8>, bool, u32)]) -> Result<Prefilter, String> {
        let mut ids: HashMap<(&[u8], bool), usize> = HashMap::new();
        let mut per_pattern: Vec<Vec<u32>> = Vec::new();
        let mut patterns = Vec::new();
        for (lit, nocase, rule) in lits {
            let lit = &lit[..lit.len().min(MAX_PREFILTER_LIT)];
            // a nocase literal and the same literal with case both map onto the nocase one
            let key = (lit, *nocase);
            let pid = *ids.entry(key).or_insert_with(|| {
                let mut flags = CompileFlags::SINGLEMATCH;
                if *nocase {
                    flags |= CompileFlags::CASELESS;
                }
                let mut p =
                    Pattern::with_flags(escape(lit), flags).expect("infallible constructor");
                p.id = Some(per_pattern.len());
                patterns.push(p);
                per_pattern.push(Vec::new());
                per_pattern.len() - 1
            });
            per_pattern[pid].push(*rule);
        }
        let n = patterns.len();
        let db: BlockDatabase = Patterns::from(patterns)
            .build()
            .map_err(|e| e.to_string())?;
        let mut starts = Vec::with_capacity(n + 1);
        let mut rules = Vec::with_capacity(lits.len());
        for r in per_pattern {
            starts.push(rules.len() as u32);
            rules.extend(r);
        }
        starts.push(rules.len() as u32);
        Ok(Prefilter {
            db,
            starts,
            rules,
            patterns: n,
        })
    }

    /// Number of distinct literals.
    pub fn len(&self) -> usize {
        self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns == 0
    }

    /// Scan and append candidate rule ids.
    pub fn scan(&self, data: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        let Some(s) = &scratch.inner else { return };
        scratch.hits.clear();
        let hits = &mut scratch.hits;
        // An error here can only be a scratch/database mismatch; detection then sees no
        // candidates from this buffer, which the caller's counters make visible.
        let _ = self
            .db
            .scan(data, s, |id: u32, _from: u64, _to: u64, _flags: u32| {
                hits.push(id);
                Matching::Continue
            });
        for &p in scratch.hits.iter() {
            let p = p as usize;
            if p + 1 < self.starts.len() {
                out.extend_from_slice(
                    &self.rules[self.starts[p] as usize..self.starts[p + 1] as usize],
                );
            }
        }
    }

    /// Scan and return only the number of literal hits (the matcher's own speed limit).
    pub fn count_hits(&self, data: &[u8], scratch: &mut Scratch) -> usize {
        let Some(s) = &scratch.inner else { return 0 };
        let mut n = 0usize;
        let _ = self.db.scan(data, s, |_: u32, _: u64, _: u64, _: u32| {
            n += 1;
            Matching::Continue
        });
        n
    }
}
