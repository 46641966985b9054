//! Byte-pattern file signatures, matched by a Hyperscan streaming database as the bytes of
//! a file go by, so a pattern split over two chunks is still found.
//!
//! Built in: the EICAR test string and ClamAV's harmless test program. Extra signatures
//! come from a text file, one per line:
//!
//! ```text
//! # comments and blank lines are ignored
//! Example-Marker⇥4d 49 4d 41 4d 4f 52 49
//! Other-Marker⇥deadbeefcafe
//! ```
//!
//! that is a name, one tab (shown as `⇥`), and the bytes in hex (spaces between digit pairs allowed). A
//! signature is 4 to 1024 bytes long; shorter, longer or malformed lines are counted in
//! [`SignatureList::bad_lines`] and skipped.
//!
//! One Hyperscan stream is opened per file. Scratch space is pooled here and lent for
//! each scan call, so there is one scratch per thread scanning at a time, not per file.

use std::path::Path;
use std::sync::Arc;

use hyperscan::prelude::*;
use hyperscan::{Stream, StreamRef};

use super::FileError;

/// The EICAR test string up to `FILE!`, so variants of its tail (`$H+H*`) still hit.
pub const EICAR_PREFIX: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!";
/// Name of the EICAR signature.
pub const EICAR_NAME: &str = "EICAR-Test-File";
/// The code of ClamAV's harmless test program `clam.exe` (its 64 bytes at offset 0x40):
/// found in the program and wherever it is stored uncompressed (cpio, cab, OLE, PDF, TNEF…).
pub const CLAMAV_TEST_CODE: [u8; 64] = [
    0xbb, 0x71, 0x10, 0x40, 0x00, 0x33, 0xc0, 0x50, 0x50, 0x8b, 0xf3, 0x53, 0x53, 0x50, 0xb0, 0x29,
    0x40, 0x30, 0x04, 0x66, 0xac, 0x79, 0xf9, 0xba, 0x31, 0x00, 0x78, 0x0d, 0xad, 0x50, 0xff, 0x66,
    0x70, 0x0e, 0x1f, 0xbe, 0x31, 0x00, 0xe9, 0xe5, 0xff, 0xb4, 0x09, 0xcd, 0x21, 0xb4, 0x4c, 0xcd,
    0x21, 0x62, 0x0c, 0x0a, 0x01, 0x02, 0x70, 0x76, 0x17, 0x02, 0x1e, 0x4e, 0x0c, 0x04, 0x2f, 0xda,
];
/// Name of the ClamAV test signature.
pub const CLAMAV_TEST_NAME: &str = "ClamAV-Test-File";

/// Shortest signature accepted (shorter ones would hit ordinary files).
pub const MIN_SIGNATURE_LEN: usize = 4;
/// Longest signature accepted.
pub const MAX_SIGNATURE_LEN: usize = 1024;
/// Most signatures one list may add.
pub const MAX_SIGNATURES: usize = 65_536;
/// Longest signature name kept.
const MAX_NAME_LEN: usize = 128;
/// Hyperscan takes a 32-bit length: longer inputs are scanned in parts.
const MAX_SCAN_PART: usize = 1 << 30;

/// One byte-pattern signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Signatures read from a text file.
#[derive(Debug, Default, Clone)]
pub struct SignatureList {
    pub signatures: Vec<Signature>,
    /// Lines skipped: no tab, no name, bad hex, too short or too long, over the cap.
    pub bad_lines: usize,
}

impl SignatureList {
    /// Reads a list from a file; a missing or unreadable file is an error naming the path.
    pub fn load(path: &Path) -> Result<SignatureList, FileError> {
        let bytes = std::fs::read(path).map_err(|source| FileError::Read {
            what: "signature list",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(SignatureList::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Reads a list from text (see the module documentation for the format).
    pub fn parse(text: &str) -> SignatureList {
        let mut list = SignatureList::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Some(sig) if list.signatures.len() < MAX_SIGNATURES => list.signatures.push(sig),
                _ => list.bad_lines += 1,
            }
        }
        list
    }
}

fn parse_line(line: &str) -> Option<Signature> {
    let (name, hex_bytes) = line.split_once('\t')?;
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    let digits: String = hex_bytes.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = hex::decode(digits).ok()?;
    if !(MIN_SIGNATURE_LEN..=MAX_SIGNATURE_LEN).contains(&bytes.len()) {
        return None;
    }
    Some(Signature {
        name: name.to_owned(),
        bytes,
    })
}

/// Every byte as `\xHH`: a Hyperscan pattern matching exactly these bytes.
fn literal_pattern(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        let _ = write!(s, "\\x{b:02x}");
    }
    s
}

/// What one scan call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScanOutcome {
    Nothing,
    /// The first signature found (its index).
    Hit(u32),
    /// Hyperscan failed (no scratch memory, or an internal error).
    Failed,
}

/// The compiled signatures: a streaming database and names by pattern id. Scans use a
/// scratch space per thread (each inspection worker has its own; no lock is shared).
pub struct Signatures {
    db: StreamingDatabase,
    names: Vec<Arc<str>>,
    /// Identifies this database for the per-thread scratch spaces.
    id: u64,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// This thread's scratch space and the database it was made for.
    static SCRATCH: std::cell::RefCell<Option<(u64, Scratch)>> = const { std::cell::RefCell::new(None) };
}

impl std::fmt::Debug for Signatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signatures({} patterns)", self.names.len())
    }
}

impl Signatures {
    /// The built-in signatures only.
    pub fn builtin() -> Result<Signatures, FileError> {
        Signatures::build(&[])
    }

    /// The built-in signatures plus `extra`.
    pub fn build(extra: &[Signature]) -> Result<Signatures, FileError> {
        let builtin = [
            (EICAR_NAME, EICAR_PREFIX),
            (CLAMAV_TEST_NAME, &CLAMAV_TEST_CODE[..]),
        ];
        let all = builtin
            .into_iter()
            .chain(extra.iter().map(|s| (s.name.as_str(), s.bytes.as_slice())));
        let mut patterns = Vec::new();
        let mut names = Vec::new();
        for (id, (name, bytes)) in all.enumerate() {
            let mut p = Pattern::with_flags(literal_pattern(bytes), CompileFlags::SINGLEMATCH)
                .map_err(|e| FileError::Compile(format!("{name}: {e}")))?;
            p.id = Some(id);
            patterns.push(p);
            names.push(Arc::from(name));
        }
        let db: StreamingDatabase = Patterns::from(patterns)
            .build()
            .map_err(|e| FileError::Compile(e.to_string()))?;
        // one scratch up front proves the database usable
        db.alloc_scratch()
            .map_err(|e| FileError::Compile(e.to_string()))?;
        Ok(Signatures {
            db,
            names,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Number of signatures (built-in included).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of signature `id`.
    pub fn name(&self, id: u32) -> Option<&Arc<str>> {
        self.names.get(id as usize)
    }

    /// A new stream for one file.
    pub(super) fn open(&self) -> Option<Stream> {
        self.db.open_stream().ok()
    }

    /// Runs `f` with this thread's scratch space for the database (allocated on first use).
    fn with_scratch<R>(&self, f: impl FnOnce(&Scratch) -> R) -> Option<R> {
        SCRATCH.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(id, _)| *id != self.id) {
                *slot = Some((self.id, self.db.alloc_scratch().ok()?));
            }
            slot.as_ref().map(|(_, s)| f(s))
        })
    }

    /// Feeds the next bytes of a file to its stream; stops at the first signature found.
    pub(super) fn scan(&self, stream: &StreamRef, data: &[u8]) -> ScanOutcome {
        let outcome = self.with_scratch(|scratch| {
            for part in data.chunks(MAX_SCAN_PART) {
                let mut hit = None;
                let r = stream.scan(part, scratch, |id: u32, _: u64, _: u64, _: u32| {
                    hit = Some(id);
                    Matching::Terminate
                });
                match (hit, r) {
                    (Some(id), _) => return ScanOutcome::Hit(id),
                    (None, Err(_)) => return ScanOutcome::Failed,
                    (None, Ok(())) => {}
                }
            }
            ScanOutcome::Nothing
        });
        outcome.unwrap_or(ScanOutcome::Failed)
    }

    /// Closes a stream (freeing its state) and reports a match made at end of data.
    pub(super) fn close(&self, stream: Stream) -> ScanOutcome {
        let outcome = self.with_scratch(|scratch| {
            let mut hit = None;
            let r = stream.close(scratch, |id: u32, _: u64, _: u64, _: u32| {
                hit = hit.or(Some(id));
                Matching::Continue
            });
            match (hit, r) {
                (Some(id), _) => ScanOutcome::Hit(id),
                (None, Err(_)) => ScanOutcome::Failed,
                (None, Ok(())) => ScanOutcome::Nothing,
            }
        });
        // Without scratch memory the stream cannot be closed and its state (bytes, not a
        // handle) is lost; the caller counts the failure.
        outcome.unwrap_or(ScanOutcome::Failed)
    }
}
