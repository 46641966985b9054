//! HTTP/1.x over the reassembled streams of a flow: requests and responses parsed with
//! httparse into transactions whose buffers the detection engine inspects (`http.uri`,
//! `http.host`, `http.user_agent`, `http.header`, `http.stat_code`, `file.data`, …).
//!
//! Bounded everywhere: header blocks, bodies, transactions per flow. Anomalies stop the
//! parser for that direction (counted) rather than abort anything.

pub mod evasion;
mod parser;

use rules::ast::Buffer;

pub use super::tx::Tx;

pub use parser::normalize_uri;

/// Header block larger than this is not HTTP we inspect.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Body bytes kept per transaction and direction.
/// (Suricata's default request/response body limit is 100 KiB.)
pub const MAX_BODY_BYTES: usize = 100 * 1024;
/// Transactions kept per flow (pipelining).
pub const MAX_TXS: usize = 16;
/// A compressed response is decoded for its file hash up to this size; beyond, the file
/// is reported truncated (decompression is the costly part of a body).
pub const MAX_DECODED_FILE: u64 = 8 << 20;
/// A gzip member header longer than this (names, comments, extra fields) is not followed.
const GZIP_HEADER_MAX: usize = 64 * 1024;
/// A growing body is inspected again after this many more bytes.
pub const INSPECT_STEP: usize = MAX_BODY_BYTES;

/// Incremental decompression into a bounded output.
pub(crate) enum Decoder {
    /// Collecting a gzip member header (parsed leniently, see [`evasion::gzip_body`]).
    GzipHeader(Vec<u8>),
    /// zlib-wrapped deflate (`Content-Encoding: deflate` as the RFC means it), with the
    /// reused output buffer.
    Zlib(flate2::Decompress, Vec<u8>),
    /// Raw deflate (gzip's payload, or `deflate` as many servers send it).
    Deflate(flate2::Decompress, Vec<u8>),
    /// Undecodable: the raw bytes are kept instead.
    Failed,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoder")
    }
}

/// Decompress `data` into `out` (cleared first). Bytes after the end of the compressed
/// stream (a gzip trailer, padding) are ignored. False on a decoding error.
fn inflate_into(d: &mut flate2::Decompress, mut data: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.len().max(16 * 1024));
        }
        let (before_in, before_out) = (d.total_in(), d.total_out());
        match d.decompress_vec(data, out, flate2::FlushDecompress::None) {
            Ok(flate2::Status::StreamEnd) => return true,
            Ok(_) => {
                let used = (d.total_in() - before_in) as usize;
                let produced = d.total_out() - before_out;
                data = &data[used.min(data.len())..];
                // all input taken and room left over (nothing pending): this segment is done
                if data.is_empty() && out.capacity() > out.len() {
                    return true;
                }
                if used == 0 && produced == 0 {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
}

impl Tx {
    pub(crate) fn set_encoding(&mut self, enc: &[u8]) {
        let e = enc.to_ascii_lowercase();
        let e = e
            .split(|c| *c == b',')
            .next_back()
            .map(|s| s.trim_ascii())
            .unwrap_or(b"");
        self.decoder = match e {
            b"gzip" | b"x-gzip" => Some(Decoder::GzipHeader(Vec::new())),
            b"deflate" => Some(Decoder::Zlib(flate2::Decompress::new(true), Vec::new())),
            _ => None,
        };
    }

    /// Append response body bytes to `file.data`, decompressing when the response is
    /// compressed (output bounded by `cap`).
    pub(crate) fn append_body(&mut self, data: &[u8], cap: usize, keep: bool) {
        if self.decoder.is_none() {
            self.file_feed(true, data);
            if keep {
                self.append(Buffer::FileData, data, cap);
            }
            return;
        }
        // decoding costs: stop once neither inspection nor a file needs more output
        let keep = keep && self.get(Buffer::FileData).map_or(0, |b| b.len()) < cap;
        // a page resource that is not being hashed is decoded only as far as inspection reads
        let file = self.files[1]
            .as_ref()
            .filter(|f| f.hashing() || f.size() < cap as u64)
            .map(|f| f.size());
        if let Some(n) = file {
            if n > MAX_DECODED_FILE && !keep {
                // a compressed entity this large is not hashed whole: reported truncated
                self.file_end(true, false);
                return;
            }
        }
        if !keep && file.is_none() {
            return;
        }
        let Some(dec) = self.decoder.as_mut() else {
            return;
        };
        let held;
        let mut data = data;
        if let Decoder::GzipHeader(h) = dec {
            // collect the member header (it may span segments), then inflate what follows
            if h.len() + data.len() > GZIP_HEADER_MAX {
                *dec = Decoder::Failed;
            } else {
                h.extend_from_slice(data);
                match evasion::gzip_body(h).map(|rest| h.len() - rest.len()) {
                    Some(n) => {
                        held = std::mem::take(h).split_off(n);
                        data = &held;
                        *dec = Decoder::Deflate(flate2::Decompress::new(false), Vec::new());
                    }
                    // not gzip after all: the bytes are the body as they are
                    None if h.len() >= 10 && !h.starts_with(b"\x1f\x8b") => {
                        held = std::mem::take(h);
                        data = &held;
                        *dec = Decoder::Failed;
                    }
                    None => return,
                }
            }
        }
        // a zlib stream that does not start like one is raw deflate
        if let Decoder::Zlib(z, _) = dec {
            if z.total_in() == 0 && data.first().is_some_and(|b| b & 0x0f != 8) {
                *dec = Decoder::Deflate(flate2::Decompress::new(false), Vec::new());
            }
        }
        // the output buffer is lent out and given back, so it is allocated once
        let (ok, out) = match dec {
            Decoder::GzipHeader(_) => (true, Vec::new()),
            Decoder::Zlib(d, buf) | Decoder::Deflate(d, buf) => {
                let mut out = std::mem::take(buf);
                (inflate_into(d, data, &mut out), out)
            }
            Decoder::Failed => (false, Vec::new()),
        };
        if !ok && !matches!(dec, Decoder::Failed) {
            *dec = Decoder::Failed;
        }
        let bytes: &[u8] = if ok { &out } else { data };
        self.file_feed(true, bytes);
        if keep {
            self.append(Buffer::FileData, bytes, cap);
        }
        if let Some(Decoder::Zlib(_, buf) | Decoder::Deflate(_, buf)) = self.decoder.as_mut() {
            *buf = out;
        }
    }
}

/// Counters of the HTTP parser.
#[derive(Debug, Default, Clone, Copy)]
pub struct HttpCounters {
    pub requests: u64,
    pub responses: u64,
    pub parse_errors: u64,
    /// Responses read a second way because their header block was odd.
    pub odd_responses: u64,
    pub body_truncated: u64,
}

/// The HTTP state of one flow.
#[derive(Debug, Default)]
pub struct HttpState {
    pub txs: Vec<Tx>,
    next_id: u64,
    req: parser::Side,
    resp: parser::Side,
    pub counters: HttpCounters,
    /// Keep body bytes at all (some rule inspects a body buffer).
    pub keep_bodies: bool,
    /// File verdicts on bodies (hash list, signatures), when configured.
    pub files: Option<crate::file::FileEngine>,
}

impl HttpState {
    /// Feed new in-order bytes of one direction.
    /// A state that keeps bodies only when a rule inspects them.
    pub fn new(keep_bodies: bool) -> HttpState {
        HttpState {
            keep_bodies,
            ..Default::default()
        }
    }

    /// A state that also hashes and scans every body as a file.
    pub fn with_files(keep_bodies: bool, files: Option<crate::file::FileEngine>) -> HttpState {
        HttpState {
            keep_bodies,
            files,
            ..Default::default()
        }
    }

    pub fn feed(&mut self, to_server: bool, data: &[u8]) {
        if to_server {
            parser::feed_request(self, data);
        } else {
            parser::feed_response(self, data);
        }
        while self.txs.len() > MAX_TXS {
            self.txs.remove(0);
        }
    }

    /// The connection is closing in one direction: a body that runs until close is done.
    pub fn closing(&mut self, to_server: bool) {
        if to_server {
            parser::request_closing(self);
        }
        // a body that runs until close is complete now; any other open body is cut short
        let complete = parser::until_close(self, to_server);
        for t in self.txs.iter_mut() {
            t.file_end(!to_server, complete);
        }
        if !to_server {
            parser::response_closing(self);
            if let Some(t) = self
                .txs
                .iter_mut()
                .rev()
                .find(|t| t.response_started && !t.response_done)
            {
                t.response_done = true;
                t.dirty = true;
            }
        }
    }

    /// Drop the transactions that are complete and were inspected.
    pub fn retire_done(&mut self) {
        self.txs
            .retain(|t| !t.response_done || t.pending_alt || !t.logged);
    }

    fn new_tx(&mut self) -> &mut Tx {
        self.next_id += 1;
        self.txs.push(Tx::new(self.next_id));
        let n = self.txs.len() - 1;
        &mut self.txs[n]
    }
}

#[cfg(test)]
mod test;

/// The EVE `http` object of a transaction.
pub fn meta(tx: &Tx) -> crate::events::meta::HttpMeta {
    use crate::events::meta::text;
    let t = |b| tx.get(b).map(text);
    crate::events::meta::HttpMeta {
        hostname: t(Buffer::HttpHost),
        url: t(Buffer::HttpUriRaw),
        http_user_agent: t(Buffer::HttpUserAgent),
        http_content_type: tx.get_dir(Buffer::HttpContentType, true).map(text),
        http_method: t(Buffer::HttpMethod),
        protocol: t(Buffer::HttpProtocol),
        status: tx
            .get(Buffer::HttpStatCode)
            .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok()),
        length: tx.get(Buffer::FileData).map_or(0, |b| b.len() as u64),
    }
}
