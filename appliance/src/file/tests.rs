use std::path::{Path, PathBuf};

use super::*;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/files");
/// The standard 68-byte EICAR test file, written out here independently of the signature.
const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// The well-known SHA-256 of the EICAR test file.
const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(CORPUS);
    if dir.join("hashes.tsv").is_file() {
        Some(dir.to_path_buf())
    } else {
        eprintln!("skipped: corpus {CORPUS} not present");
        None
    }
}

/// A small deterministic generator (xorshift64*) for chunk sizes and filler bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn feed_random_chunks(engine: &FileEngine, data: &[u8], rng: &mut Rng) -> FileResult {
    let mut insp = engine.inspector();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1 + rng.below(4096)).min(rest.len());
        insp.feed(&rest[..n]);
        rest = &rest[n..];
    }
    insp.finish()
}

fn feed_all(engine: &FileEngine, chunks: &[&[u8]]) -> FileResult {
    let mut insp = engine.inspector();
    for c in chunks {
        insp.feed(c);
    }
    insp.finish()
}

fn builtin() -> FileEngine {
    FileEngine::builtin().expect("built-in signatures compile")
}

#[test]
fn every_listed_corpus_file_is_a_bad_hash() {
    let Some(dir) = corpus() else { return };
    let tsv = std::fs::read_to_string(dir.join("hashes.tsv")).expect("read hashes.tsv");
    let list = HashList::load(&dir.join("hashes.tsv")).expect("load hashes.tsv");
    assert_eq!(list.bad_lines(), 0);
    let engine = FileEngine::new(Some(list), &[])
        .expect("engine")
        .with_all_digests();
    let mut rng = Rng(0x5eed_f11e);
    let mut checked = 0;
    for row in tsv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = row.split('\t').collect();
        let (file, size, md5, sha1, sha256) = (f[0], f[1], f[2], f[3], f[4]);
        let data = std::fs::read(dir.join(file)).expect("listed file present");
        let r = feed_random_chunks(&engine, &data, &mut rng);
        assert_eq!(r.size.to_string(), size, "{file}");
        assert_eq!(r.sha256_hex(), sha256, "{file}");
        assert_eq!(r.md5.map(hex::encode).as_deref(), Some(md5), "{file}");
        assert_eq!(r.sha1.map(hex::encode).as_deref(), Some(sha1), "{file}");
        let basename = file.rsplit('/').next().unwrap_or(file);
        assert_eq!(
            r.verdict,
            Verdict::BadHash {
                name: basename.into()
            },
            "{file}"
        );
        checked += 1;
    }
    assert_eq!(engine.hash_list().map(HashList::len), Some(checked));
    assert!(checked >= 45, "only {checked} files listed");
}

#[test]
fn eicar_sha256_is_the_public_one() {
    assert_eq!(EICAR.len(), 68);
    let r = feed_all(&builtin(), &[EICAR]);
    let mut public = [0u8; 32];
    hex::decode_to_slice(EICAR_SHA256, &mut public).expect("valid hex");
    assert_eq!(r.sha256, public);
    assert_eq!(
        r.verdict,
        Verdict::Signature {
            name: EICAR_NAME.into()
        }
    );
    assert_eq!((r.md5, r.sha1), (None, None));
    assert_eq!(r.kind, FileKind::Text);
    if let Some(dir) = corpus() {
        let file = std::fs::read(dir.join("eicar/eicar.com")).expect("eicar.com");
        assert_eq!(file, EICAR);
    }
}

#[test]
fn eicar_split_at_every_boundary_is_found() {
    let engine = builtin();
    let name = Verdict::Signature {
        name: EICAR_NAME.into(),
    };
    for i in 0..=EICAR.len() {
        let (a, b) = EICAR.split_at(i);
        assert_eq!(
            feed_all(&engine, &[b"junk before ", a, b, b" and after"]).verdict,
            name,
            "at {i}"
        );
        for j in i..=EICAR.len() {
            let r = feed_all(&engine, &[&EICAR[..i], &EICAR[i..j], &EICAR[j..]]);
            assert_eq!(r.verdict, name, "at {i} and {j}");
        }
    }
    let mut insp = engine.inspector();
    for b in EICAR.chunks(1) {
        insp.feed(b);
    }
    assert_eq!(insp.finish().verdict, name, "byte by byte");
}

#[test]
fn signature_is_known_before_the_end() {
    let engine = builtin();
    let mut insp = engine.inspector();
    let cut = EICAR_PREFIX.len() - 1;
    insp.feed(&EICAR[..cut]);
    assert_eq!(insp.verdict_so_far(), Verdict::Clean);
    insp.feed(&EICAR[cut..cut + 1]);
    assert_eq!(
        insp.verdict_so_far(),
        Verdict::Signature {
            name: EICAR_NAME.into()
        }
    );
    insp.feed(&EICAR[cut + 1..]);
    insp.feed(&[b'x'; 1000]);
    let r = insp.finish();
    assert_eq!(r.size, 68 + 1000);
    assert_eq!(r.verdict.name(), Some(EICAR_NAME));
}

#[test]
fn eicar_with_another_tail_still_hits() {
    let mut data = EICAR_PREFIX.to_vec();
    data.extend_from_slice(b"$H+H*   \r\n");
    assert_eq!(
        feed_all(&builtin(), &[&data]).verdict.name(),
        Some(EICAR_NAME)
    );
}

#[test]
fn clean_files_are_clean() {
    let engine = builtin();
    let mut rng = Rng(42);
    let noise: Vec<u8> = (0..200_000).map(|_| rng.next() as u8).collect();
    let r = feed_random_chunks(&engine, &noise, &mut rng);
    assert_eq!(
        (r.verdict, r.size, r.scan_failed),
        (Verdict::Clean, 200_000, false)
    );
    assert_eq!(feed_all(&engine, &[]).kind, FileKind::Empty);
    // EICAR cut short is not EICAR
    let r = feed_all(&engine, &[&EICAR[..EICAR_PREFIX.len() - 1]]);
    assert!(r.verdict.is_clean());

    let Some(dir) = corpus() else { return };
    let list = HashList::load(&dir.join("hashes.tsv")).expect("load");
    let engine = FileEngine::new(Some(list), &[]).expect("engine");
    let text = std::fs::read(dir.join("clamav-testfiles/debian-copyright.txt")).expect("read");
    let r = feed_random_chunks(&engine, &text, &mut rng);
    assert_eq!((r.verdict, r.kind), (Verdict::Clean, FileKind::Text));
}

#[test]
fn clamav_test_program_hits_its_signature_and_the_list_wins() {
    let Some(dir) = corpus() else { return };
    let engine = builtin();
    let mut rng = Rng(7);
    for file in [
        "clam.exe",
        "clam.cab",
        "clam.newc.cpio",
        "clam.ole.doc",
        "clam.pdf",
    ] {
        let data = std::fs::read(dir.join("clamav-testfiles").join(file)).expect("read");
        let r = feed_random_chunks(&engine, &data, &mut rng);
        assert_eq!(r.verdict.name(), Some(CLAMAV_TEST_NAME), "{file}");
    }
    let exe = std::fs::read(dir.join("clamav-testfiles/clam.exe")).expect("read");
    assert_eq!(FileKind::sniff(&exe), FileKind::Pe);
    let list = HashList::load(&dir.join("hashes.tsv")).expect("load");
    let r = feed_all(&engine.with_hash_list(Some(list)), &[&exe]);
    assert_eq!(
        r.verdict,
        Verdict::BadHash {
            name: "clam.exe".into()
        }
    );
}

#[test]
fn malformed_tsv_lines_are_skipped() {
    let h = |c: char, n: usize| c.to_string().repeat(n);
    let text = format!(
        "# a comment\n\nfile\tbytes\tmd5\tsha1\tsha256\ttype\n\
         dir/good.exe\t1\t{}\t{}\t{}\tPE32\n\
         short.exe\t1\t\t\t{}\tPE32\n\
         nothex.exe\t1\t\t\t{}\tPE32\n\
         nohash.exe\t1\t\t\t\tPE32\n\
         md5only.bin\t1\t{}\t\t\tdata\r\n",
        h('a', 32),
        h('b', 40),
        h('c', 64),
        h('d', 63),
        h('z', 64),
        h('e', 32),
    );
    let list = HashList::parse(&text);
    assert_eq!((list.len(), list.bad_lines()), (2, 3));
    assert_eq!(
        list.lookup_sha256(&[0xcc; 32]).map(|n| &**n),
        Some("good.exe")
    );
    assert_eq!(
        list.lookup_sha1(&[0xbb; 20]).map(|n| &**n),
        Some("good.exe")
    );
    assert_eq!(
        list.lookup_md5(&[0xee; 16]).map(|n| &**n),
        Some("md5only.bin")
    );
    assert!(list.lookup_sha256(&[0xdd; 32]).is_none());
    assert!(list.needs_md5() && !list.needs_sha1());
}

#[test]
fn md5_only_entry_is_found_by_md5() {
    let data = b"some file body that only an md5 list knows";
    let md5 = hex::encode(<md5::Md5 as sha2::Digest>::digest(data));
    let list = HashList::parse(&format!("{md5}\tTest.Md5.Only\n"));
    assert_eq!((list.len(), list.bad_lines()), (1, 0));
    let engine = FileEngine::new(Some(list), &[]).expect("engine");
    let r = feed_all(&engine, &[&data[..10], &data[10..]]);
    assert_eq!(
        r.verdict,
        Verdict::BadHash {
            name: "Test.Md5.Only".into()
        }
    );
    assert!(r.sha1.is_none());
}

#[test]
fn headerless_list_is_read_by_shape() {
    let sha = "ab".repeat(32);
    let list = HashList::parse(&format!(
        "{sha}\t123\tTrojan.Example\n{sha}x\tBad\nnot a hash\n"
    ));
    assert_eq!((list.len(), list.bad_lines()), (1, 2));
    assert_eq!(
        list.lookup_sha256(&[0xab; 32]).map(|n| &**n),
        Some("Trojan.Example")
    );
}

#[test]
fn missing_hash_list_is_an_error_naming_the_path() {
    let path = Path::new("/nonexistent/mimamori/hashes.tsv");
    let err = HashList::load(path).expect_err("missing file");
    assert!(matches!(err, FileError::Read { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("hash list") && msg.contains("/nonexistent/mimamori/hashes.tsv"),
        "{msg}"
    );
    assert!(SignatureList::load(path).is_err());
}

#[test]
fn extra_signatures_are_loaded_and_matched_across_chunks() {
    let text = "# extra\nMimamori-Marker\t4d 49 4d 41 4d 4f 52 49\n\
                TooShort\t414243\nNoTab 41424344\n\tdeadbeef\nBadHex\t4g414243\nOther\tdeadbeefcafe\n";
    let list = SignatureList::parse(text);
    assert_eq!((list.signatures.len(), list.bad_lines), (2, 4));
    assert_eq!(list.signatures[0].bytes, b"MIMAMORI");
    let engine = FileEngine::new(None, &list.signatures).expect("engine");
    assert_eq!(engine.signatures().len(), 4);
    let r = feed_all(&engine, &[b"xxMIMA", b"M", b"ORIyy"]);
    assert_eq!(
        r.verdict,
        Verdict::Signature {
            name: "Mimamori-Marker".into()
        }
    );
    let r = feed_all(&engine, &[b"\xde\xad\xbe", b"\xef\xca\xfe"]);
    assert_eq!(r.verdict.name(), Some("Other"));
    // built-ins are still there
    assert_eq!(feed_all(&engine, &[EICAR]).verdict.name(), Some(EICAR_NAME));
}

#[test]
fn kinds_are_sniffed_from_the_first_bytes() {
    let mut zip = b"PK\x03\x04".to_vec();
    zip.resize(26, 0);
    zip.extend_from_slice(&19u16.to_le_bytes());
    zip.extend_from_slice(&[0, 0]);
    let mut ooxml = zip.clone();
    ooxml.extend_from_slice(b"[Content_Types].xml");
    zip.extend_from_slice(b"readme.txt\0\0\0\0\0\0\0\0\0");
    let cases: [(&[u8], FileKind); 16] = [
        (b"", FileKind::Empty),
        (b"MZ\x90\x00", FileKind::Pe),
        (b"\x7fELF\x02\x01\x01", FileKind::Elf),
        (b"%PDF-1.7\n", FileKind::Pdf),
        (b"\r\n%PDF-1.4", FileKind::Pdf),
        (&zip, FileKind::Zip),
        (&ooxml, FileKind::Ooxml),
        (b"\x1f\x8b\x08\x00", FileKind::Gzip),
        (b"Rar!\x1a\x07\x01\x00", FileKind::Rar),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", FileKind::SevenZip),
        (b"#!/bin/sh\necho hi\n", FileKind::Script),
        (b"\xef\xbb\xbf\n  <!DOCTYPE html><html>", FileKind::Html),
        (b"<HTML><body>hi", FileKind::Html),
        ("plain text, \u{65e5}\u{672c}\n".as_bytes(), FileKind::Text),
        (b"\x00\x01\x02\x03binary", FileKind::Unknown),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", FileKind::Ole),
    ];
    for (head, kind) in cases {
        assert_eq!(FileKind::sniff(head), kind, "{head:?}");
    }
    // a UTF-8 character cut by the sniff window is still text
    let mut long = vec![b'a'; SNIFF_LEN - 1];
    long.extend_from_slice("\u{65e5}".as_bytes());
    assert_eq!(FileKind::sniff(&long), FileKind::Text);
    assert!(FileKind::Pe.is_executable() && !FileKind::Zip.is_executable());

    let engine = builtin();
    let mut insp = engine.inspector();
    insp.feed(b"MZ");
    assert_eq!(insp.kind(), None);
    insp.feed(&[0u8; SNIFF_LEN]);
    assert_eq!(insp.kind(), Some(FileKind::Pe));
    assert_eq!(
        insp.finish().mime(),
        "application/vnd.microsoft.portable-executable"
    );
}

#[test]
fn counters_count_files_bytes_and_verdicts() {
    let engine = builtin();
    let mut c = FileCounters::default();
    c.record(&feed_all(&engine, &[EICAR]));
    c.record(&feed_all(&engine, &[b"hello"]));
    let bad = FileResult {
        verdict: Verdict::BadHash { name: "x".into() },
        ..feed_all(&engine, &[b"x"])
    };
    c.record(&bad);
    let want = FileCounters {
        files: 3,
        bytes: 68 + 5 + 1,
        bad_hash: 1,
        signature_hits: 1,
        scan_failures: 0,
    };
    assert_eq!(c, want);
}

#[test]
fn inspectors_dropped_unfinished_release_their_streams() {
    let engine = builtin();
    for i in 0..10_000usize {
        let mut insp = engine.inspector();
        insp.feed(&EICAR[..i % EICAR.len()]);
    }
    // the engine and its scratch pool are still usable
    assert_eq!(feed_all(&engine, &[EICAR]).verdict.name(), Some(EICAR_NAME));
}

#[test]
fn engine_is_shared_and_inspectors_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<FileEngine>();
    send::<FileInspector>();
    let engine = builtin();
    let mut insp = engine.inspector();
    insp.feed(&EICAR[..30]);
    let other = engine.clone();
    let r = std::thread::spawn(move || {
        insp.feed(&EICAR[30..]);
        // a second inspector on another thread takes its own scratch from the pool
        let clean = feed_all(&other, &[b"nothing here"]);
        (insp.finish(), clean)
    })
    .join()
    .expect("thread");
    assert_eq!(
        (r.0.verdict.name(), r.1.verdict),
        (Some(EICAR_NAME), Verdict::Clean)
    );
}
