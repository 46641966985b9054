//! The inspection of one file as its bytes go by: digests, signature stream, size, type.

use hyperscan::Stream;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::magic::{FileKind, SNIFF_LEN};
use super::signatures::ScanOutcome;
use super::{FileEngine, FileResult, Verdict};

/// Inspects one file being transferred: feed its bytes in order, in chunks of any size,
/// then [`finish`](FileInspector::finish). Memory is bounded (digest states, the first
/// [`SNIFF_LEN`] bytes and one Hyperscan stream state) and feeding does not allocate.
///
/// Dropping an inspector without finishing it releases its stream too.
pub struct FileInspector {
    engine: FileEngine,
    /// Open until the end of the file or the first signature hit.
    stream: Option<Stream>,
    sha256: Sha256,
    md5: Option<Md5>,
    sha1: Option<Sha1>,
    size: u64,
    head: [u8; SNIFF_LEN],
    head_len: usize,
    /// The first signature found.
    hit: Option<u32>,
    /// Signature matching stopped early on a Hyperscan failure.
    scan_failed: bool,
    /// Digests are being computed. A web resource (page, script, image) is only hashed
    /// when its first bytes show a file type worth a verdict (program, archive,
    /// document) or when it is small enough to be hashed from those bytes at the end.
    hashing: bool,
    /// Declared a web resource by its transfer (e.g. `Content-Type: text/html`).
    web_resource: bool,
}

impl std::fmt::Debug for FileInspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileInspector")
            .field("size", &self.size)
            .field("hit", &self.hit)
            .field("scan_failed", &self.scan_failed)
            .finish_non_exhaustive()
    }
}

impl FileInspector {
    /// Starts inspecting a new file (opens its signature stream).
    pub fn new(engine: &FileEngine) -> FileInspector {
        let stream = engine.sigs.open();
        FileInspector {
            scan_failed: stream.is_none(),
            stream,
            sha256: Sha256::new(),
            md5: engine.digests.md5.then(Md5::new),
            sha1: engine.digests.sha1.then(Sha1::new),
            size: 0,
            head: [0; SNIFF_LEN],
            head_len: 0,
            hit: None,
            engine: engine.clone(),
            hashing: true,
            web_resource: false,
        }
    }

    /// Like [`FileInspector::new`] for a body its transfer declares a web resource:
    /// signatures are scanned throughout, digests only if the content turns out to be a
    /// program, archive or document (or is at most [`SNIFF_LEN`] bytes long).
    pub fn for_web_resource(engine: &FileEngine) -> FileInspector {
        let mut f = FileInspector::new(engine);
        f.hashing = false;
        f.web_resource = true;
        f
    }

    /// Whether digests are computed.
    pub fn hashing(&self) -> bool {
        self.hashing
    }

    fn update_digests(&mut self, data: &[u8]) {
        self.sha256.update(data);
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
    }

    /// The next bytes of the file.
    pub fn feed(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.size = self.size.saturating_add(data.len() as u64);
        let mut into_head = 0;
        if self.head_len < SNIFF_LEN {
            let n = data.len().min(SNIFF_LEN - self.head_len);
            self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
            self.head_len += n;
            into_head = n;
        }
        if self.hashing {
            self.update_digests(data);
        } else if self.head_len == SNIFF_LEN && into_head > 0 {
            // the type is known now: a program, archive or document is hashed whole
            if worth_hashing(FileKind::sniff(&self.head), self.web_resource) {
                self.hashing = true;
                let head = self.head;
                self.update_digests(&head);
                self.update_digests(&data[into_head..]);
            }
        }
        if let Some(stream) = &self.stream {
            match self.engine.sigs.scan(stream, data) {
                ScanOutcome::Nothing => {}
                ScanOutcome::Hit(id) => {
                    self.hit = Some(id);
                    self.close_stream();
                }
                ScanOutcome::Failed => {
                    self.scan_failed = true;
                    self.close_stream();
                }
            }
        }
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's type, once [`SNIFF_LEN`] bytes have been fed (`finish` always has one).
    pub fn kind(&self) -> Option<FileKind> {
        (self.head_len == SNIFF_LEN).then(|| FileKind::sniff(&self.head))
    }

    /// A signature verdict as soon as one matched; hashes are only known at the end.
    pub fn verdict_so_far(&self) -> Verdict {
        match self.hit.and_then(|id| self.engine.sigs.name(id)) {
            Some(name) => Verdict::Signature { name: name.clone() },
            None => Verdict::Clean,
        }
    }

    /// Ends the file: digests, type and verdict. A listed hash wins over a signature (it
    /// names the exact file).
    pub fn finish(mut self) -> FileResult {
        self.close_stream();
        if !self.hashing && self.size == self.head_len as u64 {
            // small enough: the whole file is in the head
            self.hashing = true;
            let head = self.head;
            self.update_digests(&head[..self.head_len]);
        }
        let hashed = self.hashing;
        let sha256: [u8; 32] = std::mem::take(&mut self.sha256).finalize().into();
        let md5: Option<[u8; 16]> = self.md5.take().map(|h| h.finalize().into());
        let sha1: Option<[u8; 20]> = self.sha1.take().map(|h| h.finalize().into());
        let listed = self
            .engine
            .hashes
            .as_deref()
            .filter(|_| hashed)
            .and_then(|list| {
                list.lookup_sha256(&sha256)
                    .or_else(|| sha1.as_ref().and_then(|h| list.lookup_sha1(h)))
                    .or_else(|| md5.as_ref().and_then(|h| list.lookup_md5(h)))
            });
        let verdict = match listed {
            _ if hashed && self.engine.allowed.contains(&sha256) => Verdict::Clean,
            Some(name) => Verdict::BadHash { name: name.clone() },
            None => self.verdict_so_far(),
        };
        FileResult {
            size: self.size,
            sha256,
            md5,
            sha1,
            kind: FileKind::sniff(&self.head[..self.head_len]),
            verdict,
            scan_failed: self.scan_failed,
            hashed,
        }
    }

    /// Closes the signature stream, keeping a match reported at end of data.
    fn close_stream(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        match self.engine.sigs.close(stream) {
            ScanOutcome::Hit(id) => self.hit = self.hit.or(Some(id)),
            ScanOutcome::Failed => self.scan_failed = true,
            ScanOutcome::Nothing => {}
        }
    }
}

/// Whether a body of this type gets digests: always, except a declared web resource
/// whose content is markup, text or of no recognised file type.
fn worth_hashing(kind: FileKind, web_resource: bool) -> bool {
    match kind {
        FileKind::Empty | FileKind::Html | FileKind::Text => !web_resource,
        FileKind::Unknown => !web_resource,
        _ => true,
    }
}

impl Drop for FileInspector {
    fn drop(&mut self) {
        // a Hyperscan stream is freed only by closing it
        self.close_stream();
    }
}
