//! Incremental HTTP/1.x message parsing (httparse for the header block; bodies by
//! Content-Length, chunked encoding or connection close).

use rules::ast::Buffer;

use super::{HttpState, MAX_BODY_BYTES, MAX_HEADER_BYTES};

/// Body framing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Body {
    #[default]
    None,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

/// Parser state of one direction.
#[derive(Debug, Default)]
pub struct Side {
    buf: Vec<u8>,
    body: Body,
    /// Transaction (by id) the current body belongs to.
    tx: u64,
    failed: bool,
    /// Raw copy of an odd response and what follows it (responses only; bounded), for
    /// the second reading of [`super::evasion`].
    raw: Option<Vec<u8>>,
    raw_tx: u64,
    /// The direction was closed (FIN/RST or end of flow).
    closed: bool,
    /// Requests only: transaction opened from a request line whose header block has not
    /// ended yet (its line buffers are inspected early, as libhtp's request-line progress).
    line_tx: Option<u64>,
    /// Requests only: the last request, whose message is over; lines after it that do not
    /// start with a method are more of its body (libhtp: "unexpected request body").
    last_tx: Option<u64>,
}

/// Bytes of an odd response kept raw.
const MAX_RAW: usize = MAX_HEADER_BYTES + MAX_BODY_BYTES;

const MAX_CHUNK_LINE: usize = 1024;

/// End of the header block: the first empty line, lines ending in LF or CRLF.
fn header_end(b: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', b).find_map(|i| match b.get(i + 1..i + 3) {
        Some([b'\n', _]) | Some([b'\n']) => Some(i + 2),
        Some([b'\r', b'\n']) => Some(i + 3),
        None if b.get(i + 1) == Some(&b'\n') => Some(i + 2),
        _ => None,
    })
}

/// The start of a response direction's message does not look like HTTP (an HTTP/0.9
/// reply, garbage, another protocol): needs `n` bytes to tell.
fn not_http_start(buf: &[u8]) -> bool {
    let s = buf
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(buf.len());
    let b = &buf[s..];
    b.len() >= 5 && !b[..5].eq_ignore_ascii_case(b"HTTP/")
}

/// Start keeping the raw bytes of an odd response for transaction `tx`.
fn start_raw(st: &mut HttpState, tx: u64, first: &[u8], rest: &[u8]) {
    if !st.keep_bodies || st.resp.raw.is_some() {
        return;
    }
    let mut raw = Vec::with_capacity((first.len() + rest.len()).min(MAX_RAW));
    raw.extend_from_slice(&first[..first.len().min(MAX_RAW)]);
    raw.extend_from_slice(&rest[..rest.len().min(MAX_RAW - raw.len())]);
    st.resp.raw = Some(raw);
    st.resp.raw_tx = tx;
    st.counters.odd_responses += 1;
    if let Some(t) = st.txs.iter_mut().find(|t| t.id == tx) {
        t.pending_alt = true;
    }
}

/// Append to the raw copy; once full it is read.
fn raw_append(st: &mut HttpState, data: &[u8]) {
    let Some(raw) = st.resp.raw.as_mut() else {
        return;
    };
    let room = MAX_RAW - raw.len().min(MAX_RAW);
    raw.extend_from_slice(&data[..data.len().min(room)]);
    if raw.len() >= MAX_RAW {
        finish_raw(st);
    }
}

/// The response direction closes: a header block that never ended is odd too (clients
/// take lines of blanks or bare CRs as its end); then the raw copy is read.
pub(super) fn response_closing(st: &mut HttpState) {
    if std::mem::replace(&mut st.resp.closed, true) {
        return;
    }
    let in_headers = st.resp.body == Body::None && !st.resp.failed;
    let parsed = if in_headers {
        headers_at_close(st, false)
    } else {
        None
    };
    if in_headers && st.resp.raw.is_none() && !st.resp.buf.is_empty() && st.keep_bodies {
        let first = std::mem::take(&mut st.resp.buf);
        let id = match parsed {
            Some(id) => id,
            None => {
                let i = response_tx(st);
                st.txs[i].response_started = true;
                st.txs[i].id
            }
        };
        start_raw(st, id, &first, &[]);
    }
    st.resp.buf.clear();
    finish_raw(st);
}

/// Derive the alternate bodies of the odd response kept raw.
fn finish_raw(st: &mut HttpState) {
    let Some(raw) = st.resp.raw.take() else {
        return;
    };
    let id = st.resp.raw_tx;
    let Some(tx) = st.txs.iter_mut().find(|t| t.id == id) else {
        return;
    };
    let mut alts = super::evasion::alternate_bodies(&raw, MAX_BODY_BYTES);
    let primary = tx.get(Buffer::FileData);
    alts.retain(|a| Some(a.as_slice()) != primary);
    // the other readings are files too: a bad one is reported even if the parsed body
    // is clean
    if let Some(engine) = st.files.as_ref() {
        for a in &alts {
            let mut f = engine.inspector();
            f.feed(a);
            let r = f.finish();
            if !r.verdict.is_clean() {
                tx.file_results.push((true, r, true));
                tx.dirty = true;
                break;
            }
        }
    }
    tx.extra.retain(|(k, _)| *k != Buffer::FileData);
    tx.extra
        .extend(alts.into_iter().map(|a| (Buffer::FileData, a)));
    tx.pending_alt = false;
    tx.response_started = true;
    tx.response_done = true;
    tx.dirty = true;
}

/// Whether the open body of a direction runs until the connection closes.
pub(super) fn until_close(st: &HttpState, to_server: bool) -> bool {
    let side = if to_server { &st.req } else { &st.resp };
    side.body == Body::UntilClose
}

/// A content type of page resources (markup, scripts, styles, images, fonts, data) rather
/// than of a download.
fn is_web_resource(ct: &[u8]) -> bool {
    let ct = trim(ct.split(|c| *c == b';').next().unwrap_or(ct)).to_ascii_lowercase();
    ct.starts_with(b"text/")
        || ct.starts_with(b"image/")
        || ct.starts_with(b"font/")
        || matches!(
            ct.as_slice(),
            b"application/javascript"
                | b"application/x-javascript"
                | b"application/json"
                | b"application/ld+json"
                | b"application/manifest+json"
                | b"application/xml"
                | b"application/xhtml+xml"
                | b"application/rss+xml"
                | b"application/atom+xml"
                | b"application/font-woff"
                | b"application/font-woff2"
        )
}

/// The file name a response gives in `Content-Disposition` (`filename="x"`).
fn filename(headers: &[httparse::Header<'_>]) -> Option<Vec<u8>> {
    let v = header_value(headers, "content-disposition")?;
    let i = v
        .windows(9)
        .position(|w| w.eq_ignore_ascii_case(b"filename="))?;
    let rest = &v[i + 9..];
    let name = match rest.strip_prefix(b"\"") {
        Some(r) => r.split(|c| *c == b'"').next().unwrap_or(r),
        None => rest.split(|c| *c == b';').next().unwrap_or(rest),
    };
    let name = trim(name);
    (!name.is_empty()).then(|| name.to_vec())
}

/// Transaction for a response: the oldest request still without one, else a new one.
fn response_tx(st: &mut HttpState) -> usize {
    match st
        .txs
        .iter()
        .position(|t| t.request_done && !t.response_started)
    {
        Some(i) => i,
        None => {
            st.new_tx();
            st.txs.len() - 1
        }
    }
}

/// Percent-decode and remove dot segments from the path (libhtp-like normalization).
pub fn normalize_uri(raw: &[u8]) -> Vec<u8> {
    let mut dec = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let h = (raw[i + 1] as char).to_digit(16);
            let l = (raw[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (h, l) {
                dec.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        dec.push(raw[i]);
        i += 1;
    }
    let qpos = dec.iter().position(|c| *c == b'?').unwrap_or(dec.len());
    let (path, query) = dec.split_at(qpos);
    if !path.starts_with(b"/") {
        return dec;
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for seg in path[1..].split(|c| *c == b'/') {
        match seg {
            b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut n = Vec::with_capacity(dec.len());
    for s in &out {
        n.push(b'/');
        n.extend_from_slice(s);
    }
    if n.is_empty() || path.ends_with(b"/.") || path.ends_with(b"/..") {
        n.push(b'/');
    }
    n.extend_from_slice(query);
    n
}

fn lower(v: &[u8]) -> Vec<u8> {
    v.to_ascii_lowercase()
}

fn header_buffers(headers: &[httparse::Header<'_>]) -> Vec<(Buffer, Vec<u8>)> {
    let mut out = Vec::new();
    let mut all = Vec::new();
    let mut names = b"\r\n".to_vec();
    for h in headers {
        all.extend_from_slice(h.name.as_bytes());
        all.extend_from_slice(b": ");
        let v = trim(h.value);
        all.extend_from_slice(v);
        all.extend_from_slice(b"\r\n");
        names.extend_from_slice(h.name.as_bytes());
        names.extend_from_slice(b"\r\n");
        let b = match h.name.to_ascii_lowercase().as_str() {
            "user-agent" => Some(Buffer::HttpUserAgent),
            "cookie" | "set-cookie" => Some(Buffer::HttpCookie),
            "content-type" => Some(Buffer::HttpContentType),
            "content-length" => Some(Buffer::HttpContentLen),
            "referer" => Some(Buffer::HttpReferer),
            "accept" => Some(Buffer::HttpAccept),
            "accept-language" => Some(Buffer::HttpAcceptLang),
            "accept-encoding" => Some(Buffer::HttpAcceptEnc),
            "connection" => Some(Buffer::HttpConnection),
            "server" => Some(Buffer::HttpServer),
            "location" => Some(Buffer::HttpLocation),
            _ => None,
        };
        if let Some(b) = b {
            if !out.iter().any(|(k, _)| *k == b) {
                out.push((b, v.to_vec()));
            }
        }
    }
    names.extend_from_slice(b"\r\n");
    out.push((Buffer::HttpHeader, all));
    out.push((Buffer::HttpHeaderNames, names));
    out
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

fn header_value<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| trim(h.value))
}

fn body_of(headers: &[httparse::Header<'_>]) -> Body {
    if header_value(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().windows(7).any(|w| w == b"chunked"))
    {
        return Body::Chunked(Chunk::Size);
    }
    match header_value(headers, "content-length")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
    {
        Some(0) => Body::None,
        Some(n) => Body::Length(n),
        None => Body::None,
    }
}

/// Rewrite an odd first line (`HTTP/1.01`, `HTTP/1.10`, tabs, …) into one httparse takes:
/// servers and clients tolerate these, so an inspector must too. `request` selects the
/// line's layout; returns the rewritten block.
fn tolerant_first_line(block: &[u8], request: bool) -> Option<Vec<u8>> {
    let nl = block.iter().position(|c| *c == b'\n')?;
    let line = trim(&block[..nl]);
    let parts: Vec<&[u8]> = line
        .split(|c| *c == b' ' || *c == b'\t')
        .filter(|p| !p.is_empty())
        .collect();
    let mut out = Vec::with_capacity(block.len() + 8);
    if request {
        let (m, u) = (parts.first()?, parts.get(1)?);
        out.extend_from_slice(m);
        out.push(b' ');
        out.extend_from_slice(u);
        out.extend_from_slice(b" HTTP/1.1\r\n");
    } else {
        let proto = parts.first()?;
        if !proto.to_ascii_uppercase().starts_with(b"HTTP/") {
            return None;
        }
        let code = parts.get(1)?;
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return None;
        }
        out.extend_from_slice(if proto.starts_with(b"HTTP/1.0") && proto.len() == 8 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        out.extend_from_slice(code);
        out.push(b' ');
        for (i, p) in parts.iter().skip(2).enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(p);
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&block[nl + 1..]);
    Some(out)
}

/// Feed request-direction bytes.
pub fn feed_request(st: &mut HttpState, data: &[u8]) {
    feed(st, true, data)
}

/// Feed response-direction bytes.
pub fn feed_response(st: &mut HttpState, data: &[u8]) {
    feed(st, false, data)
}

/// Header blocks and bodies of one direction, as bytes arrive.
fn feed(st: &mut HttpState, request: bool, mut data: &[u8]) {
    if !request {
        raw_append(st, data);
    }
    loop {
        let side = if request { &mut st.req } else { &mut st.resp };
        if data.is_empty() || side.failed {
            return;
        }
        if side.body != Body::None {
            let used = body_bytes(st, request, data);
            data = &data[used..];
            continue;
        }
        if request && side.buf.is_empty() {
            if let Some(n) = unexpected_body(st, data) {
                data = &data[n..];
                continue;
            }
        }
        let side = if request { &mut st.req } else { &mut st.resp };
        let before = side.buf.len();
        let take = data
            .len()
            .min(MAX_HEADER_BYTES + 4 - before.min(MAX_HEADER_BYTES));
        side.buf.extend_from_slice(&data[..take]);
        if !request && not_http_start(&side.buf) {
            // not an HTTP response: kept raw for the second reading, the parser stops
            let first = std::mem::take(&mut side.buf);
            side.failed = true;
            st.counters.parse_errors += 1;
            let i = response_tx(st);
            st.txs[i].response_started = true;
            let id = st.txs[i].id;
            if st.resp.raw.is_none() {
                start_raw(st, id, &first, &data[take..]);
            }
            return;
        }
        let Some(end) = header_end(&side.buf) else {
            if side.buf.len() >= MAX_HEADER_BYTES {
                side.failed = true;
                st.counters.parse_errors += 1;
            } else if request && side.line_tx.is_none() {
                request_line_early(st);
            }
            return;
        };
        // bytes of `data` after the header block
        let consumed = end - before;
        let block = std::mem::take(&mut side.buf);
        data = &data[consumed.min(data.len())..];
        if request {
            request_headers(st, &block[..end], false);
        } else {
            let fresh = st.resp.raw.is_none();
            if let Some(id) = response_headers(st, &block[..end]) {
                if fresh
                    && (st.resp.failed
                        || super::evasion::looks_odd(trim_start_lines(&block[..end])))
                {
                    start_raw(st, id, &block[..end], data);
                }
            }
        }
    }
}

/// Methods libhtp knows; a line after a finished request starting with anything else is
/// not a new request.
const METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"VERSION-CONTROL",
    b"CHECKOUT",
    b"UNCHECKOUT",
    b"CHECKIN",
    b"UPDATE",
    b"LABEL",
    b"REPORT",
    b"MKWORKSPACE",
    b"MKACTIVITY",
    b"BASELINE-CONTROL",
    b"MERGE",
    b"INVALID",
];

/// Bytes after a finished request that do not start a new one (no known method before the
/// first space): up to the end of their line they are body of that request, with the
/// event `http.request_body_unexpected`. How many bytes of `data` were taken so.
fn unexpected_body(st: &mut HttpState, data: &[u8]) -> Option<usize> {
    let id = st.req.last_tx?;
    if matches!(data.first(), Some(b'\r' | b'\n')) {
        return None;
    }
    let tok_end = data
        .iter()
        .position(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'));
    let tok = &data[..tok_end.unwrap_or(data.len())];
    let known = |m: &&[u8]| match tok_end {
        Some(_) => *m == tok,
        // the method may still be arriving
        None => m.starts_with(tok),
    };
    if METHODS.iter().any(known) {
        st.req.last_tx = None;
        return None;
    }
    let n = data
        .iter()
        .position(|c| *c == b'\n')
        .map_or(data.len(), |i| i + 1);
    let keep = st.keep_bodies;
    let t = st.txs.iter_mut().find(|t| t.id == id)?;
    t.add_event("http.request_body_unexpected");
    if keep {
        t.append(Buffer::HttpRequestBody, &data[..n], MAX_BODY_BYTES);
        t.dirty = true;
    }
    Some(n)
}

/// The request line of a header block still arriving: its transaction opens now, so
/// rules on the line (`http.method`, `http.uri`, `http.request_line`) need not wait for
/// the headers — or for headers that never end.
fn request_line_early(st: &mut HttpState) {
    let buf = &st.req.buf;
    let start = buf
        .iter()
        .position(|c| *c != b'\r' && *c != b'\n')
        .unwrap_or(buf.len());
    let Some(nl) = buf[start..].iter().position(|c| *c == b'\n') else {
        return;
    };
    let mut block = buf[start..start + nl + 1].to_vec();
    block.extend_from_slice(b"\r\n");
    // tried once per header block: a line that does not parse opens nothing
    st.req.line_tx = Some(0);
    request_headers(st, &block, true);
}

/// A header block cut short by the end of its direction, read as if it had ended (as
/// libhtp does with the lines it has); what would follow it never comes.
fn headers_at_close(st: &mut HttpState, request: bool) -> Option<u64> {
    let side = if request { &mut st.req } else { &mut st.resp };
    if side.failed
        || side.body != Body::None
        || !side.buf.contains(&b'\n')
        || trim_start_lines(&side.buf).is_empty()
    {
        return None;
    }
    let mut block = side.buf.clone();
    if !block.ends_with(b"\n") {
        block.extend_from_slice(b"\r\n");
    }
    block.extend_from_slice(b"\r\n");
    let id = if request {
        st.req.buf.clear();
        request_headers(st, &block, false);
        st.req.tx
    } else {
        response_headers(st, &block)?
    };
    let side = if request { &mut st.req } else { &mut st.resp };
    side.body = Body::None;
    if let Some(t) = st.txs.iter_mut().find(|t| t.id == id) {
        t.files[usize::from(!request)] = None;
        t.response_done |= !request;
    }
    Some(id)
}

/// The request direction closes: a header block that never ended is read as it is.
pub(super) fn request_closing(st: &mut HttpState) {
    headers_at_close(st, true);
}

fn request_headers(st: &mut HttpState, block: &[u8], line_only: bool) {
    // tolerate leading empty lines between pipelined requests
    let start = block
        .iter()
        .position(|c| *c != b'\r' && *c != b'\n')
        .unwrap_or(block.len());
    let block = &block[start..];
    if block.is_empty() {
        return;
    }
    // `GET /` with header lines after it: not HTTP/0.9, the protocol is missing
    let missing_protocol = !line_only && {
        let nl = block
            .iter()
            .position(|c| *c == b'\n')
            .unwrap_or(block.len());
        let words = trim(&block[..nl])
            .split(|c| *c == b' ' || *c == b'\t')
            .filter(|w| !w.is_empty())
            .count();
        words == 2 && !trim(&block[nl..]).is_empty()
    };
    let fixed;
    let mut block = block;
    let mut hs = [httparse::EMPTY_HEADER; 96];
    let mut req = httparse::Request::new(&mut hs);
    let cfg = {
        let mut c = httparse::ParserConfig::default();
        c.allow_multiple_spaces_in_request_line_delimiters(true)
            .ignore_invalid_headers_in_requests(true);
        c
    };
    let mut parsed = cfg.parse_request(&mut req, block);
    if parsed.is_err() {
        if let Some(f) = tolerant_first_line(block, true) {
            fixed = f;
            block = &fixed;
            req = httparse::Request::new(&mut hs);
            parsed = cfg.parse_request(&mut req, block);
        }
    }
    let Ok(httparse::Status::Complete(hlen)) = parsed else {
        if !line_only {
            st.req.line_tx = None;
            st.req.failed = true;
            st.counters.parse_errors += 1;
        }
        return;
    };
    if !line_only {
        st.counters.requests += 1;
    }
    let method = req.method.unwrap_or("").as_bytes().to_vec();
    let uri = req.path.unwrap_or("").as_bytes().to_vec();
    let version = format!("HTTP/1.{}", req.version.unwrap_or(1)).into_bytes();
    let line_end = block
        .iter()
        .position(|c| *c == b'\n')
        .unwrap_or(block.len());
    let line = trim(&block[..line_end]).to_vec();
    let host_raw = header_value(req.headers, "host").map(|v| v.to_vec());
    let mut bufs = header_buffers(req.headers);
    let body = body_of(req.headers);
    let raw_headers = block[line_end.saturating_add(1).min(hlen)..hlen].to_vec();
    let upload = if body != Body::None {
        st.files.as_ref().map(|f| Box::new(f.inspector()))
    } else {
        None
    };
    // the transaction opened early from this block's request line, else a new one
    let early = st
        .req
        .line_tx
        .take()
        .and_then(|id| st.txs.iter().position(|t| t.id == id));
    let tx = match early {
        Some(i) => &mut st.txs[i],
        None => st.new_tx(),
    };
    tx.set(Buffer::HttpMethod, method);
    tx.set(Buffer::HttpUri, normalize_uri(&uri));
    tx.set(Buffer::HttpUriRaw, uri);
    tx.set(Buffer::HttpProtocol, version);
    tx.set(Buffer::HttpRequestLine, line.clone());
    if line_only {
        st.req.line_tx = Some(tx.id);
        return;
    }
    let mut start = line;
    start.extend_from_slice(b"\r\n");
    start.extend_from_slice(&raw_headers);
    tx.set(Buffer::HttpStart, start);
    tx.set(Buffer::HttpHeaderRaw, raw_headers);
    if let Some(h) = host_raw {
        let host = h.split(|c| *c == b':').next().unwrap_or(&h);
        tx.set(Buffer::HttpHost, lower(host));
        tx.set(Buffer::HttpHostRaw, h.clone());
    }
    for (b, v) in bufs.drain(..) {
        tx.set(b, v);
    }
    tx.request_done = true;
    tx.files[0] = upload;
    let id = tx.id;
    if missing_protocol {
        tx.add_event("http.request_line_missing_protocol");
    }
    st.req.body = body;
    st.req.tx = id;
    st.req.last_tx = Some(id);
}

fn trim_start_lines(block: &[u8]) -> &[u8] {
    let start = block
        .iter()
        .position(|c| *c != b'\r' && *c != b'\n')
        .unwrap_or(block.len());
    &block[start..]
}

/// Parse a response header block; the transaction it belongs to. A block httparse
/// cannot read still gets its transaction (read the second way, see [`super::evasion`]).
fn response_headers(st: &mut HttpState, block: &[u8]) -> Option<u64> {
    let block = trim_start_lines(block);
    if block.is_empty() {
        return None;
    }
    let fixed;
    let mut block = block;
    let mut hs = [httparse::EMPTY_HEADER; 96];
    let mut resp = httparse::Response::new(&mut hs);
    let cfg = {
        let mut c = httparse::ParserConfig::default();
        c.allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true);
        c
    };
    let mut parsed = cfg.parse_response(&mut resp, block);
    if parsed.is_err() {
        if let Some(f) = tolerant_first_line(block, false) {
            fixed = f;
            block = &fixed;
            resp = httparse::Response::new(&mut hs);
            parsed = cfg.parse_response(&mut resp, block);
        }
    }
    let Ok(httparse::Status::Complete(hlen)) = parsed else {
        st.resp.failed = true;
        st.counters.parse_errors += 1;
        let i = response_tx(st);
        st.txs[i].response_started = true;
        return Some(st.txs[i].id);
    };
    st.counters.responses += 1;
    let code = resp.code.unwrap_or(0);
    let line_end = block
        .iter()
        .position(|c| *c == b'\n')
        .unwrap_or(block.len());
    let line = trim(&block[..line_end]).to_vec();
    let mut body = body_of(resp.headers);
    // like libhtp: chunked transfer coding is not honoured on an HTTP/1.0 response
    if resp.version == Some(0) && matches!(body, Body::Chunked(_)) {
        body = match header_value(resp.headers, "content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
        {
            Some(n) if n > 0 => Body::Length(n),
            _ => Body::UntilClose,
        };
    }
    if body == Body::None
        && header_value(resp.headers, "content-length").is_none()
        && !(code < 200 || code == 204 || code == 304)
    {
        body = Body::UntilClose;
    }
    let bufs = header_buffers(resp.headers);
    let raw_headers = block[line_end.saturating_add(1).min(hlen)..hlen].to_vec();
    // the oldest request without a response; a response without a request gets its own tx
    let idx = response_tx(st);
    let tx = &mut st.txs[idx];
    tx.response_started = true;
    tx.set(Buffer::HttpStatCode, code.to_string().into_bytes());
    tx.set(
        Buffer::HttpStatMsg,
        resp.reason.unwrap_or("").as_bytes().to_vec(),
    );
    tx.set(Buffer::HttpResponseLine, line);
    for (b, v) in bufs {
        tx.set_response_header(b, v);
    }
    tx.set_response_header(Buffer::HttpHeaderRaw, raw_headers);
    if let Some(enc) = header_value(resp.headers, "content-encoding") {
        tx.set_encoding(enc);
    }
    if body == Body::None {
        tx.response_done = true;
    } else {
        let name = filename(resp.headers);
        let web = name.is_none()
            && header_value(resp.headers, "content-type").is_some_and(is_web_resource);
        tx.files[1] = st.files.as_ref().map(|f| {
            Box::new(if web {
                crate::file::FileInspector::for_web_resource(f)
            } else {
                f.inspector()
            })
        });
        if let Some(name) = name {
            tx.set(Buffer::FileName, name);
        }
    }
    let id = tx.id;
    st.resp.body = body;
    st.resp.tx = id;
    Some(id)
}

/// Consume body bytes; returns how many of `data` were used.
fn body_bytes(st: &mut HttpState, request: bool, data: &[u8]) -> usize {
    let (side, target) = if request {
        (&mut st.req, Buffer::HttpRequestBody)
    } else {
        (&mut st.resp, Buffer::FileData)
    };
    let tx_id = side.tx;
    let mut used = 0;
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut done = false;
    while used < data.len() && !done {
        let rest = &data[used..];
        match side.body {
            Body::None => break,
            Body::UntilClose => {
                out.push((used, data.len()));
                used = data.len();
            }
            Body::Length(n) => {
                let k = (n as usize).min(rest.len());
                out.push((used, used + k));
                used += k;
                let left = n - k as u64;
                side.body = if left == 0 {
                    Body::None
                } else {
                    Body::Length(left)
                };
                done = left == 0;
            }
            Body::Chunked(Chunk::Size)
            | Body::Chunked(Chunk::Trailer)
            | Body::Chunked(Chunk::DataEnd) => {
                let Some(nl) = rest.iter().position(|c| *c == b'\n') else {
                    side.buf.extend_from_slice(rest);
                    used = data.len();
                    if side.buf.len() > MAX_CHUNK_LINE {
                        side.failed = true;
                    }
                    break;
                };
                let mut line = std::mem::take(&mut side.buf);
                line.extend_from_slice(&rest[..nl]);
                used += nl + 1;
                let l = trim(&line);
                side.body = match side.body {
                    Body::Chunked(Chunk::DataEnd) => Body::Chunked(Chunk::Size),
                    Body::Chunked(Chunk::Trailer) => {
                        if l.is_empty() {
                            done = true;
                            Body::None
                        } else {
                            Body::Chunked(Chunk::Trailer)
                        }
                    }
                    _ => {
                        let hex: Vec<u8> = l
                            .iter()
                            .take_while(|c| c.is_ascii_hexdigit())
                            .copied()
                            .collect();
                        match std::str::from_utf8(&hex)
                            .ok()
                            .and_then(|h| u64::from_str_radix(h, 16).ok())
                        {
                            Some(0) => Body::Chunked(Chunk::Trailer),
                            Some(n) => Body::Chunked(Chunk::Data(n)),
                            None if l.is_empty() => Body::Chunked(Chunk::Size),
                            None => {
                                // not chunked after all: what follows is the body itself
                                // (the line just read included)
                                out.push((used - nl - 1, used));
                                Body::UntilClose
                            }
                        }
                    }
                };
            }
            Body::Chunked(Chunk::Data(n)) => {
                let k = (n as usize).min(rest.len());
                out.push((used, used + k));
                used += k;
                let left = n - k as u64;
                side.body = if left == 0 {
                    Body::Chunked(Chunk::DataEnd)
                } else {
                    Body::Chunked(Chunk::Data(left))
                };
            }
        }
    }
    let keep = st.keep_bodies;
    if !keep && st.files.is_none() {
        out.clear();
    }
    if let Some(tx) = st.txs.iter_mut().find(|t| t.id == tx_id) {
        let before_all = tx.get(target).map_or(0, |b| b.len());
        for (s, e) in out {
            let before = tx.get(target).map_or(0, |b| b.len());
            if keep && before + (e - s) > MAX_BODY_BYTES {
                st.counters.body_truncated += 1;
            }
            if request {
                tx.file_feed(false, &data[s..e]);
                if keep {
                    tx.append(target, &data[s..e], MAX_BODY_BYTES);
                }
            } else {
                tx.append_body(&data[s..e], MAX_BODY_BYTES, keep);
            }
        }
        if done {
            tx.file_end(!request, true);
        }
        if done && !request {
            tx.response_done = true;
        }
        let after = tx.get(target).map_or(0, |b| b.len());
        let stepped = after / super::INSPECT_STEP != before_all / super::INSPECT_STEP;
        let full = after >= MAX_BODY_BYTES && before_all < MAX_BODY_BYTES;
        if done || stepped || full {
            tx.dirty = true;
        }
    }
    used.max(1).min(data.len())
}
