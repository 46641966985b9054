//! The browser harness works here: headless Chromium through chromedriver fills and
//! submits a form on a local page and takes a screenshot; oathtool gives RFC 6238 codes.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use mimamori_tests::browser::{Browser, ensure_tools, qr_decode, totp, totp_at};
use mimamori_tests::tempdir;

const FORM: &str = r#"<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>smoke</title></head>
<body><h1>見守り</h1>
<form method="get" action="/echo"><input name="q" id="q"><button type="submit">検索</button></form>
</body></html>"#;

/// A one-thread HTTP server: `/` is the form, `/echo?q=v` shows `v` in `#out`.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the test server");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = if path == "/" {
                ("200 OK", FORM.to_string())
            } else if let Some(q) = path.strip_prefix("/echo?q=") {
                (
                    "200 OK",
                    format!(
                        "<!doctype html><html><head><meta charset=\"utf-8\"></head>\
                         <body><p id=\"out\">{q}</p></body></html>"
                    ),
                )
            } else {
                ("404 Not Found", String::new())
            };
            let mut s = &stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_fills_a_form_and_takes_a_screenshot() {
    ensure_tools();
    let dir = tempdir("browser-smoke");
    let port = serve();
    let b = Browser::start(&dir).await;
    b.goto(&format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(b.text("h1").await, "見守り");
    assert!(b.exists("input[name=q]").await);
    assert!(!b.exists("#nothing-here").await);
    b.fill("input[name=q]", "first").await;
    b.fill("input[name=q]", "mimamori-42").await;
    let png = dir.join("form.png");
    b.screenshot(&png).await;
    b.submit_form("button").await;
    let path = b.wait_for_path("/echo", Duration::from_secs(10)).await;
    assert_eq!(path, "/echo?q=mimamori-42");
    assert_eq!(b.text("#out").await, "mimamori-42");
    assert!(b.body_text().await.contains("mimamori-42"));
    b.close().await;
    let bytes = std::fs::read(&png).expect("the screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &bytes[..bytes.len().min(8)]
    );
    assert_eq!(qr_decode(&png), None, "there is no QR code on the page");
}

#[test]
fn totp_matches_rfc6238() {
    ensure_tools();
    // RFC 6238 appendix B, SHA-1: the secret is ASCII "12345678901234567890"
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(totp_at(secret, 59), "287082");
    assert_eq!(totp_at(secret, 1_111_111_109), "081804");
    assert_eq!(totp_at(secret, 2_000_000_000), "279037");
    let now = totp(secret);
    assert!(
        now.len() == 6 && now.bytes().all(|b| b.is_ascii_digit()),
        "{now}"
    );
}
