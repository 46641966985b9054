//! A second reading of responses whose header block is odd.
//!
//! Browsers accept responses an inspector easily misreads: bare CRs as line ends, folded
//! or duplicated `Transfer-Encoding` / `Content-Encoding` headers, broken `Content-Length`
//! values, garbage before the status line, stacked or malformed compression. An attacker
//! uses exactly that disagreement to carry a file past the inspector (the http-evader
//! suite has hundreds of such responses). Instead of betting on one interpretation, a
//! response that looks odd is kept raw (bounded) and, when it ends, every plausible body
//! is derived from it: the bytes as they are, de-chunked from each plausible end of the
//! headers, and decompressed (gzip, zlib, raw deflate, stacked up to [`MAX_LAYERS`]).
//! Detection then sees each of these as an instance of `file.data`; a rule matching any
//! of them matches the transaction once.
//!
//! Canonical responses never take this path, so normal traffic pays nothing for it.

use flate2::{Decompress, FlushDecompress, Status};

/// Decompression layers tried on top of each other.
pub const MAX_LAYERS: usize = 3;
/// Alternate bodies kept per response.
pub const MAX_ALTERNATES: usize = 12;
/// Body-start candidates considered (plausible ends of the header block).
const MAX_STARTS: usize = 8;

/// Whether a complete response header block (status line first) deviates from what
/// well-behaved servers send, so that clients and inspectors may disagree on the body.
pub fn looks_odd(block: &[u8]) -> bool {
    let Some(nl) = memchr::memchr(b'\n', block) else {
        return true;
    };
    let line = block[..nl].strip_suffix(b"\r").unwrap_or(&block[..nl]);
    if !strict_status_line(line) {
        return true;
    }
    for (i, &c) in block.iter().enumerate() {
        let ctl = c < 0x20 && c != b'\r' && c != b'\n' && c != b'\t';
        if ctl || c == 0x7f {
            return true;
        }
        if c == b'\r' && block.get(i + 1) != Some(&b'\n') {
            return true;
        }
        if c == b'\n' && (i == 0 || block[i - 1] != b'\r') {
            return true;
        }
    }
    let (mut te, mut ce, mut cl) = (0u32, 0u32, 0u32);
    for raw in block[nl + 1..].split(|c| *c == b'\n') {
        let l = raw.strip_suffix(b"\r").unwrap_or(raw);
        if l.is_empty() {
            break;
        }
        if l[0] == b' ' || l[0] == b'\t' {
            return true; // folded
        }
        let Some(colon) = memchr::memchr(b':', l) else {
            return true;
        };
        let (name, value) = (&l[..colon], trim(&l[colon + 1..]));
        if name.is_empty() || !name.iter().all(|c| is_tchar(*c)) {
            return true;
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te += 1;
            if !value.eq_ignore_ascii_case(b"chunked") {
                return true;
            }
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            ce += 1;
            if ![&b"gzip"[..], b"x-gzip", b"deflate", b"identity", b"br"]
                .iter()
                .any(|v| value.eq_ignore_ascii_case(v))
            {
                return true;
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            cl += 1;
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return true;
            }
        }
    }
    te > 1 || ce > 1 || cl > 1 || (te > 0 && cl > 0) || (te > 0 && line.starts_with(b"HTTP/1.0"))
}

fn strict_status_line(l: &[u8]) -> bool {
    if l.len() < 12 || !(l.starts_with(b"HTTP/1.1 ") || l.starts_with(b"HTTP/1.0 ")) {
        return false;
    }
    let code = &l[9..12];
    code.iter().all(u8::is_ascii_digit) && (l.len() == 12 || l[12] == b' ')
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &v[s..e.max(s)]
}

/// Every plausible body of the raw response `raw` (status line, headers, body as sent),
/// each at most `cap` bytes, at most [`MAX_ALTERNATES`]; the raw bytes themselves first.
pub fn alternate_bodies(raw: &[u8], cap: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    push(&mut out, &raw[..raw.len().min(cap)]);
    for s in body_starts(raw) {
        let body = &raw[s..];
        if let Some(d) = dechunk(body, cap) {
            decode_layers(&d, cap, &mut out);
            push(&mut out, &d);
        }
        decode_layers(body, cap, &mut out);
        if out.len() >= MAX_ALTERNATES {
            break;
        }
    }
    out
}

fn push(out: &mut Vec<Vec<u8>>, v: &[u8]) {
    if !v.is_empty() && out.len() < MAX_ALTERNATES && !out.iter().any(|o| o == v) {
        out.push(v.to_vec());
    }
}

/// Offsets just after each line of the header region that a client could take as the
/// empty line ending the headers. Lines end at LF or at a CR not followed by LF; a line
/// of only whitespace / control bytes counts as empty.
fn body_starts(raw: &[u8]) -> Vec<usize> {
    let region = &raw[..raw.len().min(super::MAX_HEADER_BYTES)];
    // the status line: the first line starting with "HTTP/" (garbage before it is skipped)
    let mut pos = 0;
    let mut i = 0;
    while i + 5 <= region.len() && i < 4096 {
        if (i == 0 || matches!(region[i - 1], b'\n' | b'\r' | 0 | b' ' | b'\t'))
            && region[i..i + 5].eq_ignore_ascii_case(b"HTTP/")
        {
            pos = i;
            break;
        }
        i += 1;
    }
    let mut starts = Vec::new();
    let mut line_start = pos;
    let mut first = true;
    let mut j = pos;
    while j < region.len() && starts.len() < MAX_STARTS {
        let c = region[j];
        let end = c == b'\n' || (c == b'\r' && region.get(j + 1) != Some(&b'\n'));
        if end {
            let line = &region[line_start..j];
            if !first
                && line
                    .iter()
                    .all(|b| matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c | 0))
            {
                starts.push(j + 1);
            }
            first = false;
            line_start = j + 1;
        }
        j += 1;
    }
    starts
}

/// Tolerant de-chunking: leading blank lines skipped, LF or CRLF line ends, chunk
/// extensions ignored, a truncated last chunk kept. `None` unless at least one chunk
/// with data was read.
pub fn dechunk(mut b: &[u8], cap: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunks = 0;
    loop {
        let nl = memchr::memchr(b'\n', b)?;
        let line = trim(&b[..nl]);
        b = &b[nl + 1..];
        if line.is_empty() {
            if chunks == 0 {
                continue;
            }
            // an empty line where a size was expected: done
            break;
        }
        let hex_len = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if hex_len == 0
            || hex_len > 16
            || !(hex_len == line.len() || matches!(line[hex_len], b';' | b' ' | b'\t'))
        {
            if chunks == 0 {
                return None;
            }
            break;
        }
        let n = std::str::from_utf8(&line[..hex_len])
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok())?;
        if n == 0 {
            break;
        }
        let k = (n as usize).min(b.len());
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&b[..k.min(room)]);
        chunks += 1;
        b = &b[k..];
        if k < n as usize || out.len() >= cap {
            break;
        }
        // the CRLF after the data
        if b.starts_with(b"\r\n") {
            b = &b[2..];
        } else if b.starts_with(b"\n") {
            b = &b[1..];
        }
    }
    (chunks > 0).then_some(out)
}

/// Decompress `data` layer after layer (gzip / zlib / raw deflate), pushing each result.
fn decode_layers(data: &[u8], cap: usize, out: &mut Vec<Vec<u8>>) {
    let mut cur: Option<Vec<u8>> = None;
    for _ in 0..MAX_LAYERS {
        let src = cur.as_deref().unwrap_or(data);
        let Some(next) = decompress_any(src, cap) else {
            break;
        };
        push(out, &next);
        cur = Some(next);
    }
}

/// One layer: gzip (header parsed leniently), zlib, or raw deflate — whichever yields data.
pub fn decompress_any(data: &[u8], cap: usize) -> Option<Vec<u8>> {
    // a gzip member may be preceded by a few stray bytes
    if let Some(g) = memchr::memmem::find(&data[..data.len().min(16)], b"\x1f\x8b\x08") {
        if let Some(body) = gzip_body(&data[g..]) {
            if let Some(v) = inflate(body, false, cap) {
                return Some(v);
            }
        }
    }
    if data.len() >= 2
        && data[0] & 0x0f == 8
        && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0
    {
        if let Some(v) = inflate(data, true, cap) {
            return Some(v);
        }
    }
    inflate(data, false, cap)
}

/// The deflate data of a gzip member, its header skipped without judging it: reserved
/// flag bits and a wrong header CRC do not stop a browser, so they do not stop us.
pub fn gzip_body(d: &[u8]) -> Option<&[u8]> {
    if d.len() < 10 || d[0] != 0x1f || d[1] != 0x8b {
        return None;
    }
    let flags = d[3];
    let mut i = 10;
    if flags & 0x04 != 0 {
        let xlen = usize::from(u16::from_le_bytes([*d.get(i)?, *d.get(i + 1)?]));
        i += 2 + xlen;
    }
    for bit in [0x08u8, 0x10] {
        if flags & bit != 0 {
            let z = memchr::memchr(0, d.get(i..)?)?;
            i += z + 1;
        }
    }
    if flags & 0x02 != 0 {
        i += 2;
    }
    d.get(i..)
}

/// Inflate as much as decodes (a truncated or damaged stream keeps its good prefix).
/// `None` when nothing at all decodes.
pub fn inflate(data: &[u8], zlib: bool, cap: usize) -> Option<Vec<u8>> {
    let mut z = Decompress::new(zlib);
    let mut out = Vec::with_capacity(data.len().saturating_mul(3).min(cap).max(64));
    loop {
        let before_in = z.total_in();
        let before_out = z.total_out();
        if out.len() == out.capacity() {
            if out.len() >= cap {
                break;
            }
            out.reserve((out.len()).min(cap - out.len()).max(64));
        }
        let input = &data[(z.total_in() as usize).min(data.len())..];
        match z.decompress_vec(input, &mut out, FlushDecompress::None) {
            Ok(Status::StreamEnd) => break,
            Ok(_) => {
                if z.total_in() == before_in && z.total_out() == before_out {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    out.truncate(cap);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod test {
    use super::*;
    use std::io::Write;

    fn gz(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }
    fn raw_deflate(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }
    const SECRET: &[u8] = b"the-secret-file-content-0123456789";

    fn found(alts: &[Vec<u8>]) -> bool {
        alts.iter()
            .any(|a| memchr::memmem::find(a, SECRET).is_some())
    }

    #[test]
    fn canonical_headers_are_not_odd() {
        assert!(!looks_odd(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Encoding: gzip\r\n\r\n"
        ));
        assert!(!looks_odd(
            b"HTTP/1.1 404\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        for odd in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\rTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 68 A\r\n\r\n",
            b"HTTP/1.01 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        ] {
            assert!(looks_odd(odd), "{}", String::from_utf8_lossy(odd));
        }
    }

    #[test]
    fn chunked_body_behind_a_bare_cr_header() {
        let mut chunked = Vec::new();
        for c in SECRET.chunks(4) {
            chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            chunked.extend_from_slice(c);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let mut raw =
            b"junk\r\nHTTP/1.1 200 ok\r\n\r\rTransfer-Encoding: chunked\r\nX: y\r\n\r\n".to_vec();
        raw.extend_from_slice(&chunked);
        let alts = alternate_bodies(&raw, 1 << 20);
        assert!(found(&alts));
        // without the de-chunking the secret is split
        assert!(memchr::memmem::find(&raw, SECRET).is_none());
    }

    #[test]
    fn stacked_and_damaged_compression() {
        // deflate(gzip(secret)) behind folded Content-Encoding headers
        let body = raw_deflate(&gz(SECRET));
        let mut raw = b"HTTP/1.1 200 ok\r\nContent-Encoding: deflate\r\n ,gzip\r\n\r\n".to_vec();
        raw.extend_from_slice(&body);
        assert!(found(&alternate_bodies(&raw, 1 << 20)));
        // a gzip header with reserved flag bits and a truncated trailer
        let mut g = gz(SECRET);
        g[3] |= 0xe0;
        g.truncate(g.len() - 6);
        let mut raw = b"HTTP/1.1 200 ok\r\nContent-Encoding:\r gzip\r\n\r\n".to_vec();
        raw.extend_from_slice(&g);
        assert!(found(&alternate_bodies(&raw, 1 << 20)));
    }

    #[test]
    fn garbage_never_panics_and_is_bounded() {
        let mut x: u32 = 7;
        for n in 0..400 {
            let raw: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    b"HTTP/1.1 200\r\n\x1f\x8b\x08:0aZ"[(x >> 16) as usize % 20]
                })
                .collect();
            let alts = alternate_bodies(&raw, 64);
            assert!(alts.len() <= MAX_ALTERNATES && alts.iter().all(|a| a.len() <= 64));
            let _ = looks_odd(&raw);
        }
    }
}
