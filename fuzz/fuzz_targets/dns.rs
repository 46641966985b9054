//! The DNS parser and TCP framing: arbitrary bytes must never panic, and what parses
//! respects the caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mimamori_appliance::app::dns::{DnsTcp, MAX_RECORDS, name_to_string, parse_message};

fuzz_target!(|data: &[u8]| {
    let check = |msg: &[u8]| {
        if let Ok(m) = parse_message(msg) {
            for s in [&m.answers, &m.authorities, &m.additionals] {
                assert!(s.len() <= MAX_RECORDS);
                for r in s.iter() {
                    let _ = name_to_string(&r.name);
                }
            }
            assert!(m.queries.len() <= MAX_RECORDS);
        }
    };
    check(data);
    // The same bytes as a TCP stream, cut in two at a data-chosen point.
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut tcp = DnsTcp::new();
    for piece in [&data[..cut], &data[cut..]] {
        tcp.feed(piece, &mut |m| check(m));
    }
    assert!(tcp.pending() <= 65537);
});
