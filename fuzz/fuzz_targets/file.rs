//! File verdicts: arbitrary bytes as a hash list, a signature list, and a file fed to an
//! inspector in arbitrary chunks must never panic, and the inspector must count every byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mimamori_appliance::file::{FileEngine, FileKind, HashList, SignatureList};
use std::sync::OnceLock;

fn engine() -> &'static FileEngine {
    static ENGINE: OnceLock<FileEngine> = OnceLock::new();
    ENGINE.get_or_init(|| FileEngine::builtin().expect("built-in signatures compile").with_all_digests())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let list = HashList::parse(&text);
    assert!(list.len() + list.bad_lines() <= text.lines().count());
    let sigs = SignatureList::parse(&text);
    assert!(sigs.signatures.len() + sigs.bad_lines <= text.lines().count());
    let _ = FileKind::sniff(data);

    // [len byte][piece]...: the file split at arbitrary points
    let mut insp = engine().inspector();
    let (mut rest, mut fed) = (data, 0u64);
    while let Some((&len, tail)) = rest.split_first() {
        let (piece, next) = tail.split_at(usize::from(len).min(tail.len()));
        insp.feed(piece);
        fed += piece.len() as u64;
        rest = next;
    }
    let r = insp.finish();
    assert_eq!(r.size, fed);
    assert!(r.md5.is_some() && r.sha1.is_some());
});
