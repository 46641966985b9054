//! The HTTP/1.x parser: arbitrary bytes, split into request/response pieces at arbitrary
//! points, must never panic and must respect its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mimamori_appliance::app::http::{HttpState, MAX_BODY_BYTES, MAX_TXS};
use mimamori_rules::ast::Buffer;

fuzz_target!(|data: &[u8]| {
    let mut st = HttpState::new(true);
    // [dir+len byte][piece]...: high bit = response direction, low 7 bits * 8 = length
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let n = ((ctl & 0x7f) as usize * 8).min(tail.len());
        let (piece, next) = tail.split_at(n);
        st.feed(ctl & 0x80 == 0, piece);
        if ctl == 0xff {
            st.closing(false);
        }
        rest = next;
    }
    assert!(st.txs.len() <= MAX_TXS);
    for t in &st.txs {
        for b in [Buffer::FileData, Buffer::HttpRequestBody] {
            assert!(t.get(b).map_or(0, |v| v.len()) <= MAX_BODY_BYTES);
        }
    }
});
