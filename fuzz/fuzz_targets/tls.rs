//! The TLS parser: arbitrary bytes, split into client/server pieces at arbitrary
//! points, must never panic and must respect its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mimamori_appliance::app::tls::{MAX_ALPN, MAX_CERTS, MAX_PENDING, TlsState};

fuzz_target!(|data: &[u8]| {
    let mut st = TlsState::new();
    // [dir+len byte][piece]...: high bit = server direction, low 7 bits * 16 = length
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let n = ((ctl & 0x7f) as usize * 16).min(tail.len());
        let (piece, next) = tail.split_at(n);
        st.feed(ctl & 0x80 == 0, piece);
        rest = next;
    }
    assert!(st.pending(true) <= MAX_PENDING && st.pending(false) <= MAX_PENDING);
    assert!(st.info.certs.len() <= MAX_CERTS && st.info.alpn.len() <= MAX_ALPN);
});
