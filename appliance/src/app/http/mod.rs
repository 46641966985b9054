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
/// A growing body is inspected again after this many more bytes.
pub const INSPECT_STEP: usize = MAX_BODY_BYTES;

/// Incremental decompression into a bounded output.
pub(crate) enum Decoder {
    /// Collecting a gzip member header (parsed leniently, see [`evasion::gzip_body`]).
    GzipHeader(Vec<u8>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    Deflate(flate2::write::DeflateDecoder<Vec<u8>>),
    /// Undecodable: the raw bytes are kept instead.
    Failed,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoder")
    }
}

/// Feed a decompressor; bytes after the end of the compressed stream (a gzip trailer,
/// padding) are ignored. False on a decoding error.
fn write_until_end(d: &mut impl std::io::Write, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match d.write(data) {
            Ok(0) => break,
            Ok(n) => data = &data[n..],
            Err(_) => return false,
        }
    }
    d.flush().is_ok()
}

impl Tx {
    pub(crate) fn set_encoding(&mut self, enc: &[u8]) {
        let e = enc.to_ascii_lowercase();
        let e = e.split(|c| *c == b',').next_back().map(|s| s.trim_ascii()).unwrap_or(b"");
        self.decoder = match e {
            b"gzip" | b"x-gzip" => Some(Decoder::GzipHeader(Vec::new())),
            b"deflate" => Some(Decoder::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))),
            _ => None,
        };
    }

    /// Append response body bytes to `file.data`, decompressing when the response is
    /// compressed (output bounded by `cap`).
    pub(crate) fn append_body(&mut self, data: &[u8], cap: usize, keep: bool) {
        let Some(dec) = self.decoder.as_mut() else {
            self.file_feed(true, data);
            if keep {
                self.append(Buffer::FileData, data, cap);
            }
            return;
        };
        let mut data = data;
        let hdr;
        if let Decoder::GzipHeader(h) = dec {
            h.extend_from_slice(&data[..data.len().min(1024)]);
            match evasion::gzip_body(h) {
                Some(rest) => {
                    hdr = rest.to_vec();
                    data = &hdr;
                    *dec = Decoder::Deflate(flate2::write::DeflateDecoder::new(Vec::new()));
                }
                // not gzip after all: keep the bytes as they are
                None if h.len() >= 10 && !h.starts_with(b"\x1f\x8b") => {
                    hdr = std::mem::take(h);
                    data = &hdr;
                    *dec = Decoder::Failed;
                }
                None if h.len() > 1024 => {
                    *dec = Decoder::Failed;
                    return;
                }
                None => return,
            }
        }
        // a zlib stream that does not start like one is raw deflate
        if let Decoder::Zlib(z) = dec {
            if z.get_ref().is_empty() && z.total_in() == 0 && data.first().is_some_and(|b| b & 0x0f != 8) {
                *dec = Decoder::Deflate(flate2::write::DeflateDecoder::new(Vec::new()));
            }
        }
        // new output is moved out of the decoder, so nothing is copied twice
        let (ok, out) = match dec {
            Decoder::GzipHeader(_) => (true, Vec::new()),
            Decoder::Zlib(d) => (write_until_end(d, data), std::mem::take(d.get_mut())),
            Decoder::Deflate(d) => (write_until_end(d, data), std::mem::take(d.get_mut())),
            Decoder::Failed => (false, Vec::new()),
        };
        let out: &[u8] = if ok {
            &out
        } else {
            if !matches!(dec, Decoder::Failed) {
                *dec = Decoder::Failed;
            }
            data
        };
        self.file_feed(true, out);
        if keep {
            self.append(Buffer::FileData, out, cap);
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
        HttpState { keep_bodies, ..Default::default() }
    }

    /// A state that also hashes and scans every body as a file.
    pub fn with_files(keep_bodies: bool, files: Option<crate::file::FileEngine>) -> HttpState {
        HttpState { keep_bodies, files, ..Default::default() }
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
        // a body that runs until close is complete now; any other open body is cut short
        let complete = parser::until_close(self, to_server);
        for t in self.txs.iter_mut() {
            t.file_end(!to_server, complete);
        }
        if !to_server {
            parser::response_closing(self);
            if let Some(t) = self.txs.iter_mut().rev().find(|t| t.response_started && !t.response_done) {
                t.response_done = true;
                t.dirty = true;
            }
        }
    }

    /// Drop the transactions that are complete and were inspected.
    pub fn retire_done(&mut self) {
        self.txs.retain(|t| !t.response_done || t.pending_alt || !t.logged);
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
        status: tx.get(Buffer::HttpStatCode).and_then(|s| std::str::from_utf8(s).ok()?.parse().ok()),
        length: tx.get(Buffer::FileData).map_or(0, |b| b.len() as u64),
    }
}
