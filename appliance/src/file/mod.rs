//! File verdicts for files carried by HTTP (SPEC §3.2 "Files").
//!
//! A [`FileEngine`] holds what is known to be bad: a [`HashList`] of known-bad files and
//! the compiled byte-pattern [`Signatures`] (EICAR and ClamAV's test program built in, more
//! from a text list). The HTTP parser opens one [`FileInspector`] per transferred file,
//! feeds it the (de-chunked, decompressed) body as it arrives and gets a [`FileResult`] at
//! the end: size, SHA-256 (MD5 and SHA-1 when asked for), type from the first bytes, and a
//! [`Verdict`]. A signature hit is known as soon as it happens
//! ([`FileInspector::verdict_so_far`]); a listed hash only once the file is complete.
//!
//! Like the parsers, this module does no I/O except loading the lists. (SPEC §2 gives
//! file-hash lists to the `rules` crate; [`HashList`] depends on nothing here and can move
//! to `rules/src/lists` as it is.)

mod hashlist;
mod inspector;
mod magic;
mod signatures;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

pub use hashlist::HashList;
pub use inspector::FileInspector;
pub use magic::{FileKind, SNIFF_LEN};
pub use signatures::{
    CLAMAV_TEST_NAME, EICAR_NAME, EICAR_PREFIX, MAX_SIGNATURE_LEN, MIN_SIGNATURE_LEN, Signature,
    SignatureList, Signatures,
};

/// Loading or compiling what the file engine matches.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A list file is missing or unreadable.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Hyperscan refused the signatures (or cannot run on this CPU).
    #[error("cannot compile file signatures: {0}")]
    Compile(String),
}

/// What a file was found to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verdict {
    #[default]
    Clean,
    /// The file's hash is on the known-bad list, under this name.
    BadHash { name: Arc<str> },
    /// A byte-pattern signature matched.
    Signature { name: Arc<str> },
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        matches!(self, Verdict::Clean)
    }

    /// The list entry or signature name, if not clean.
    pub fn name(&self) -> Option<&str> {
        match self {
            Verdict::Clean => None,
            Verdict::BadHash { name } | Verdict::Signature { name } => Some(name),
        }
    }
}

/// Everything known about one file at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileResult {
    pub size: u64,
    pub sha256: [u8; 32],
    /// Computed when the engine was asked for all digests or its list needs them.
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
    pub kind: FileKind,
    pub verdict: Verdict,
    /// Signature matching stopped early on a Hyperscan failure (hashes are still exact).
    pub scan_failed: bool,
    /// The digests were computed (a large web resource that is no program, archive or
    /// document is not hashed, see [`FileInspector::for_web_resource`]).
    pub hashed: bool,
}

impl FileResult {
    /// The MIME type of [`FileResult::kind`].
    pub fn mime(&self) -> &'static str {
        self.kind.mime()
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Which digests besides SHA-256 an inspector computes.
#[derive(Debug, Clone, Copy, Default)]
struct Digests {
    md5: bool,
    sha1: bool,
}

/// The known-bad hashes and compiled signatures, shared by every inspector (cheap to
/// clone). Build a new engine to change lists; inspectors keep the one they started with.
#[derive(Debug, Clone)]
pub struct FileEngine {
    hashes: Option<Arc<HashList>>,
    sigs: Arc<Signatures>,
    digests: Digests,
    /// Exceptions: files with these SHA-256 digests are never bad (false positives).
    allowed: Arc<std::collections::HashSet<[u8; 32]>>,
}

impl FileEngine {
    /// Built-in signatures only, no hash list.
    pub fn builtin() -> Result<FileEngine, FileError> {
        FileEngine::new(None, &[])
    }

    /// A hash list (optional) and signatures added to the built-in ones. MD5 and SHA-1 are
    /// computed only when some list entry has no SHA-256.
    pub fn new(
        hash_list: Option<HashList>,
        extra_sigs: &[Signature],
    ) -> Result<FileEngine, FileError> {
        let digests = Digests {
            md5: hash_list.as_ref().is_some_and(HashList::needs_md5),
            sha1: hash_list.as_ref().is_some_and(HashList::needs_sha1),
        };
        Ok(FileEngine {
            hashes: hash_list.map(Arc::new),
            sigs: Arc::new(Signatures::build(extra_sigs)?),
            digests,
            allowed: Arc::default(),
        })
    }

    /// Computes MD5 and SHA-1 of every file too (for logs that report them).
    pub fn with_all_digests(mut self) -> FileEngine {
        self.digests = Digests {
            md5: true,
            sha1: true,
        };
        self
    }

    /// The same signatures with another hash list (no recompilation).
    pub fn with_hash_list(&self, hash_list: Option<HashList>) -> FileEngine {
        let needs = |f: fn(&HashList) -> bool| hash_list.as_ref().is_some_and(f);
        let digests = Digests {
            md5: self.digests.md5 || needs(HashList::needs_md5),
            sha1: self.digests.sha1 || needs(HashList::needs_sha1),
        };
        FileEngine {
            hashes: hash_list.map(Arc::new),
            sigs: self.sigs.clone(),
            digests,
            allowed: self.allowed.clone(),
        }
    }

    /// Files with these SHA-256 digests are judged clean whatever a list or signature
    /// says (exceptions for false positives). A signature hit in prevent mode stops a
    /// file before its hash is known, so an exception needs the file to end.
    pub fn with_allowed(mut self, sha256: impl IntoIterator<Item = [u8; 32]>) -> FileEngine {
        self.allowed = Arc::new(sha256.into_iter().collect());
        self
    }

    /// Some file hash is excepted.
    pub fn has_exceptions(&self) -> bool {
        !self.allowed.is_empty()
    }

    pub fn hash_list(&self) -> Option<&HashList> {
        self.hashes.as_deref()
    }

    pub fn signatures(&self) -> &Signatures {
        &self.sigs
    }

    /// A new inspector for one file.
    pub fn inspector(&self) -> FileInspector {
        FileInspector::new(self)
    }
}

/// Counters of file inspection (one set per worker).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FileCounters {
    /// Files finished.
    pub files: u64,
    pub bytes: u64,
    pub bad_hash: u64,
    pub signature_hits: u64,
    /// Files whose signature matching stopped on a Hyperscan failure.
    pub scan_failures: u64,
}

impl FileCounters {
    /// Counts one finished file.
    pub fn record(&mut self, r: &FileResult) {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(r.size);
        match r.verdict {
            Verdict::Clean => {}
            Verdict::BadHash { .. } => self.bad_hash += 1,
            Verdict::Signature { .. } => self.signature_hits += 1,
        }
        self.scan_failures += u64::from(r.scan_failed);
    }
}
