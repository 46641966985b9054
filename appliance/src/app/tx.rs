//! An application-layer transaction: what detection inspects for HTTP request/response
//! pairs, TLS handshakes and DNS messages alike — named buffers (`http.uri`, `tls.sni`,
//! `dns.query`, …), extra instances of multi-valued buffers, and integer facts
//! (`tls.cert_chain_len`, `dns.opcode`, …).

use rules::ast::{AppNum, Buffer};

/// One transaction and its buffers.
#[derive(Debug, Default)]
pub struct Tx {
    pub id: u64,
    pub(crate) bufs: Vec<(Buffer, Vec<u8>)>,
    /// Header buffers of the response (`http.header` and friends are per direction).
    pub(crate) resp_headers: Vec<(Buffer, Vec<u8>)>,
    /// More instances of a buffer: other questions of a DNS message, other
    /// certificates of a chain, other readings of an odd HTTP body.
    pub extra: Vec<(Buffer, Vec<u8>)>,
    /// Integer facts for keywords like `tls.cert_chain_len` or `dns.opcode`.
    pub nums: Vec<(AppNum, i64)>,
    /// The request (client side) is complete.
    pub request_done: bool,
    /// The response (server side) has started.
    pub response_started: bool,
    /// The response (server side) is complete: the transaction can go once inspected.
    pub response_done: bool,
    /// Rules that already alerted on this transaction.
    pub alerted: Vec<u32>,
    /// Something changed since detection last looked.
    pub dirty: bool,
    /// HTTP: decoder of a compressed response body, fed as bytes arrive.
    pub(crate) decoder: Option<super::http::Decoder>,
    /// HTTP: an odd response is still being copied raw; the transaction stays until its
    /// alternate bodies were inspected.
    pub pending_alt: bool,
    /// An event record was written for it.
    pub logged: bool,
    /// Its names were classified (URL category, application).
    pub classified: bool,
    /// The category / application of its name, for its events.
    pub utm: Option<Box<crate::events::meta::UtmMeta>>,
    /// Files being carried: [request body (upload), response body (download)].
    pub(crate) files: [Option<Box<crate::file::FileInspector>>; 2],
    /// Finished files: (download?, result, complete?) — reported once.
    pub file_results: Vec<(bool, crate::file::FileResult, bool)>,
    /// How many of `file_results` were reported.
    pub files_reported: usize,
    /// Prefilter candidates of buffers already scanned: (buffer, direction, length, rules).
    scan_cache: Vec<(Buffer, bool, usize, Vec<u32>)>,
    /// Protocol anomalies of the transaction by Suricata name (`http.request_body_unexpected`,
    /// `dns.z_flag_set`), for `app-layer-event`; each recorded once.
    pub events: Vec<&'static str>,
}

/// Buffers that exist in both directions: a to_client rule sees the response's.
fn per_direction(b: Buffer) -> bool {
    matches!(
        b,
        Buffer::HttpHeader
            | Buffer::HttpHeaderRaw
            | Buffer::HttpHeaderNames
            | Buffer::HttpContentType
            | Buffer::HttpContentLen
            | Buffer::HttpConnection
            | Buffer::HttpCookie
            | Buffer::TlsRandom
            | Buffer::TlsRandomTime
            | Buffer::TlsRandomBytes
    )
}

impl Tx {
    pub fn new(id: u64) -> Tx {
        Tx {
            id,
            ..Default::default()
        }
    }

    /// Bytes of a file carried by this transaction (`download`: the response body).
    pub(crate) fn file_feed(&mut self, download: bool, data: &[u8]) {
        if let Some(f) = self.files[usize::from(download)].as_mut() {
            f.feed(data);
        }
    }

    /// The file of one direction ended (`complete`: its body ended as announced).
    pub(crate) fn file_end(&mut self, download: bool, complete: bool) {
        if let Some(f) = self.files[usize::from(download)].take() {
            self.file_results.push((download, f.finish(), complete));
            self.dirty = true;
        }
    }

    /// End the files in which a signature already matched while their bodies are still
    /// arriving: the verdict is known, nothing is gained by waiting for the rest.
    pub(crate) fn end_files_with_hits(&mut self) {
        for download in [false, true] {
            if self.files[usize::from(download)]
                .as_ref()
                .is_some_and(|f| !f.verdict_so_far().is_clean())
            {
                self.file_end(download, false);
            }
        }
    }

    /// Candidates remembered for a buffer of this length.
    pub fn cached(&self, b: Buffer, to_client: bool, len: usize) -> Option<&[u32]> {
        self.scan_cache
            .iter()
            .find(|(k, d, l, _)| *k == b && *d == to_client && *l == len)
            .map(|(_, _, _, c)| c.as_slice())
    }

    /// Remember the candidates of a scanned buffer.
    pub fn remember(&mut self, b: Buffer, to_client: bool, len: usize, cands: Vec<u32>) {
        self.scan_cache
            .retain(|(k, d, _, _)| !(*k == b && *d == to_client));
        self.scan_cache.push((b, to_client, len, cands));
    }

    /// A buffer as seen from one direction.
    pub fn get_dir(&self, b: Buffer, to_client: bool) -> Option<&[u8]> {
        if to_client && per_direction(b) {
            return self
                .resp_headers
                .iter()
                .find(|(k, _)| *k == b)
                .map(|(_, v)| v.as_slice());
        }
        self.get(b)
    }

    /// Every instance of a buffer: the main one, then the extra ones.
    pub fn instances(&self, b: Buffer, to_client: bool) -> impl Iterator<Item = &[u8]> {
        self.get_dir(b, to_client).into_iter().chain(
            self.extra
                .iter()
                .filter(move |(k, _)| *k == b)
                .map(|(_, v)| v.as_slice()),
        )
    }

    /// Extra instances of a buffer only.
    pub fn extras(&self, b: Buffer) -> impl Iterator<Item = &[u8]> {
        self.extra
            .iter()
            .filter(move |(k, _)| *k == b)
            .map(|(_, v)| v.as_slice())
    }

    pub fn get(&self, b: Buffer) -> Option<&[u8]> {
        self.bufs
            .iter()
            .find(|(k, _)| *k == b)
            .map(|(_, v)| v.as_slice())
    }

    /// Record a protocol anomaly (once).
    pub fn add_event(&mut self, name: &'static str) {
        if !self.events.contains(&name) {
            self.events.push(name);
            self.dirty = true;
        }
    }

    pub fn has_event(&self, name: &str) -> bool {
        self.events.iter().any(|e| *e == name)
    }

    pub fn num(&self, n: AppNum) -> Option<i64> {
        self.nums.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    pub fn set_num(&mut self, n: AppNum, v: i64) {
        match self.nums.iter_mut().find(|(k, _)| *k == n) {
            Some(e) => e.1 = v,
            None => self.nums.push((n, v)),
        }
        self.dirty = true;
    }

    pub(crate) fn set_response_header(&mut self, b: Buffer, v: Vec<u8>) {
        if per_direction(b) {
            self.resp_headers.retain(|(k, _)| *k != b);
            self.resp_headers.push((b, v));
            self.dirty = true;
        } else {
            self.set(b, v);
        }
    }

    /// Set a buffer (its main instance).
    pub fn set(&mut self, b: Buffer, v: Vec<u8>) {
        match self.bufs.iter_mut().find(|(k, _)| *k == b) {
            Some(e) => e.1 = v,
            None => self.bufs.push((b, v)),
        }
        self.dirty = true;
    }

    /// Add an instance of a buffer: the main one if there is none yet, else an extra one.
    pub fn add(&mut self, b: Buffer, v: Vec<u8>) {
        if self.get(b).is_none() {
            self.set(b, v);
        } else {
            self.extra.push((b, v));
            self.dirty = true;
        }
    }

    /// Append to a buffer, keeping at most `cap` bytes.
    pub(crate) fn append(&mut self, b: Buffer, data: &[u8], cap: usize) {
        let i = match self.bufs.iter().position(|(k, _)| *k == b) {
            Some(i) => i,
            None => {
                self.bufs.push((b, Vec::new()));
                self.bufs.len() - 1
            }
        };
        let v = &mut self.bufs[i].1;
        let room = cap.saturating_sub(v.len());
        v.extend_from_slice(&data[..data.len().min(room)]);
        // bodies are inspected when complete, full, or every INSPECT_STEP bytes — not
        // on every segment (the caller marks completion)
    }
}
