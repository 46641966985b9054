use super::*;

#[test]
fn request_and_response_buffers() {
    let mut st = HttpState::new(true);
    st.feed(true, b"GET /a/./b/../c%2ephp?x=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nUser-Agent: evil/1.0\r\nCookie: s=1\r\n\r\n");
    let tx = &st.txs[0];
    assert!(tx.request_done);
    assert_eq!(tx.get(Buffer::HttpMethod), Some(&b"GET"[..]));
    assert_eq!(tx.get(Buffer::HttpUri), Some(&b"/a/c.php?x=1"[..]));
    assert_eq!(
        tx.get(Buffer::HttpUriRaw),
        Some(&b"/a/./b/../c%2ephp?x=1"[..])
    );
    assert_eq!(tx.get(Buffer::HttpHost), Some(&b"example.com"[..]));
    assert_eq!(tx.get(Buffer::HttpUserAgent), Some(&b"evil/1.0"[..]));
    assert_eq!(
        tx.get(Buffer::HttpHeaderNames),
        Some(&b"\r\nHost\r\nUser-Agent\r\nCookie\r\n\r\n"[..])
    );
    // a chunked response split at awkward places
    for part in [&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n5\r\nhel"[..], b"lo\r\n6\r\n world\r\n0\r\n\r\n"] {
        st.feed(false, part);
    }
    let tx = &st.txs[0];
    assert_eq!(tx.get(Buffer::HttpStatCode), Some(&b"200"[..]));
    assert_eq!(tx.get(Buffer::FileData), Some(&b"hello world"[..]));
    assert!(tx.response_done);
    assert_eq!(
        tx.get_dir(Buffer::HttpContentType, true),
        Some(&b"text/plain"[..])
    );
    assert_eq!(tx.get_dir(Buffer::HttpContentType, false), None);
}

#[test]
fn pipelining_and_bodies() {
    let mut st = HttpState::new(true);
    st.feed(
        true,
        b"POST /up HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /next HTTP/1.1\r\n\r\n",
    );
    assert_eq!(st.txs.len(), 2);
    assert_eq!(st.txs[0].get(Buffer::HttpRequestBody), Some(&b"abcd"[..]));
    assert_eq!(st.txs[1].get(Buffer::HttpUri), Some(&b"/next"[..]));
    st.feed(
        false,
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(st.txs[0].get(Buffer::HttpStatCode), Some(&b"204"[..]));
    assert_eq!(st.txs[1].get(Buffer::FileData), Some(&b"ok"[..]));
}

#[test]
fn garbage_and_bounds() {
    let mut st = HttpState::new(true);
    st.feed(true, &vec![b'A'; MAX_HEADER_BYTES * 2]);
    assert!(st.txs.is_empty());
    let mut st = HttpState::new(true);
    st.feed(true, b"GET / HTTP/1.1\r\n\r\n");
    st.feed(false, b"HTTP/1.1 200 OK\r\n\r\n");
    st.feed(false, &vec![b'x'; MAX_BODY_BYTES * 2]);
    assert_eq!(
        st.txs[0].get(Buffer::FileData).map(|b| b.len()),
        Some(MAX_BODY_BYTES)
    );
    for n in 0..40 {
        let mut st = HttpState::new(true);
        st.feed(
            true,
            &b"GET /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"[..n.min(55)],
        );
    }
}

#[test]
fn gzip_and_deflate_bodies_are_decoded() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR").unwrap();
    let body = gz.finish().unwrap();
    let mut st = HttpState::new(true);
    st.feed(true, b"GET /e HTTP/1.1\r\n\r\n");
    st.feed(
        false,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    for c in body.chunks(7) {
        st.feed(false, c);
    }
    assert!(
        st.txs[0]
            .get(Buffer::FileData)
            .unwrap()
            .ends_with(b"$EICAR")
    );
    let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    d.write_all(b"raw deflate body").unwrap();
    let body = d.finish().unwrap();
    let mut st = HttpState::new(true);
    st.feed(true, b"GET /d HTTP/1.1\r\n\r\n");
    st.feed(
        false,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    st.feed(false, &body);
    assert_eq!(
        st.txs[0].get(Buffer::FileData),
        Some(&b"raw deflate body"[..])
    );
}

#[test]
fn request_line_before_headers_end() {
    let mut st = HttpState::new(true);
    st.feed(true, b"GET /early HTTP/1.1\r\nHost: a");
    assert_eq!(st.txs.len(), 1);
    assert_eq!(st.txs[0].get(Buffer::HttpUri), Some(&b"/early"[..]));
    assert_eq!(st.txs[0].get(Buffer::HttpHeader), None);
    assert!(!st.txs[0].request_done);
    st.feed(true, b"\r\nUser-Agent: x\r\n\r\n");
    // the same transaction, completed
    assert_eq!(st.txs.len(), 1);
    assert!(st.txs[0].request_done);
    assert_eq!(st.txs[0].get(Buffer::HttpHost), Some(&b"a"[..]));
}

#[test]
fn headers_cut_short_by_close() {
    let mut st = HttpState::new(true);
    st.feed(true, b"GET / HTTP/1.1\r\n\r\n");
    st.feed(false, b"HTTP/1.0 200 OK\r\nServer: ng1nx\r\n");
    st.closing(false);
    assert_eq!(st.txs[0].get(Buffer::HttpStatCode), Some(&b"200"[..]));
    assert_eq!(
        st.txs[0].get_dir(Buffer::HttpHeader, true),
        Some(&b"Server: ng1nx\r\n"[..])
    );
}

#[test]
fn unexpected_request_body_and_missing_protocol() {
    let mut st = HttpState::new(true);
    st.feed(
        true,
        b"POST / HTTP/1.1\r\nHost: a\r\n\r\nlogin=foo\r\nGET /\nHost: b\n\n",
    );
    assert_eq!(st.txs.len(), 2);
    assert!(st.txs[0].has_event("http.request_body_unexpected"));
    assert_eq!(
        st.txs[0].get(Buffer::HttpRequestBody),
        Some(&b"login=foo\r\n"[..])
    );
    assert!(st.txs[1].has_event("http.request_line_missing_protocol"));
    assert!(!st.txs[1].has_event("http.request_body_unexpected"));
}
