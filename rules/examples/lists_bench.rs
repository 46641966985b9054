//! Loads every UT1 category and measures single-thread host and URL lookups.
//!
//! `cargo run --release -p mimamori-rules --example lists_bench [-- <ut1 folder>]`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mimamori_rules::lists::{AppCatalog, CatSet, CategoryDb};

const DEFAULT_UT1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/ut1");
/// Timed passes over each query set; the best is reported.
const PASSES: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(DEFAULT_UT1), PathBuf::from);

    let rss_before = rss_bytes();
    let t = Instant::now();
    let db = CategoryDb::load_dir(&dir)?;
    let load = t.elapsed();
    let rss_after = rss_bytes();
    let r = db.report();
    println!(
        "loaded {} in {:.0} ms",
        dir.display(),
        load.as_secs_f64() * 1e3
    );
    println!(
        "  {} categories, {} domain lines ({} unique), {} url lines, {} skipped",
        db.len(),
        r.domains,
        r.unique_domains,
        r.urls,
        r.skipped_lines
    );
    println!(
        "  heap {:.1} MiB (lookup structures); RSS grew {:.1} MiB while loading",
        mib(db.heap_bytes()),
        mib(rss_after.saturating_sub(rss_before)),
    );

    let listed = listed_domains(&dir)?;
    let www: Vec<Vec<u8>> = listed.iter().map(|d| [b"www.", &d[..]].concat()).collect();
    let unlisted: Vec<Vec<u8>> = (0..listed.len())
        .map(|i| match i % 3 {
            0 => format!("host{i}.example-nonlisted.jp"),
            1 => format!("a{}.cdn.host{i}.example-nonlisted.jp", i % 97),
            _ => format!("img.s{}.host{i}.Example-NonListed.co.jp:443", i % 13),
        })
        .map(String::into_bytes)
        .collect();

    let hits = bench("listed domains", &listed, |h| db.lookup_host(h));
    assert_eq!(hits, listed.len(), "every listed domain resolves");
    bench("www. + listed domains", &www, |h| db.lookup_host(h));
    let misses = bench("non-listed hosts", &unlisted, |h| db.lookup_host(h));
    println!("  ({misses} of the non-listed hosts matched a category)");
    bench("lookup_url, non-listed", &unlisted, |h| {
        db.lookup_url(h, b"/index.html?q=1")
    });

    let apps = AppCatalog::builtin();
    let app_hosts: Vec<Vec<u8>> = [
        "rr1---sn-a.googlevideo.com",
        "www.amazon.co.jp",
        "x.example.jp",
    ]
    .iter()
    .cycle()
    .take(300_000)
    .map(|h| h.as_bytes().to_vec())
    .collect();
    bench("app catalogue", &app_hosts, |h| {
        CatSet::from_bits(u64::from(apps.lookup(h).is_some()))
    });
    Ok(())
}

/// Runs `f` over `hosts` [`PASSES`] times, prints the best rate, returns how many matched.
fn bench(label: &str, hosts: &[Vec<u8>], f: impl Fn(&[u8]) -> CatSet) -> usize {
    let mut best = f64::INFINITY;
    let mut matched = 0;
    for _ in 0..PASSES {
        let t = Instant::now();
        matched = 0;
        for h in hosts {
            matched += usize::from(!black_box(f(black_box(h))).is_empty());
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{label:>24}: {:>8} lookups, {:>6.1} M lookups/s, {:>5.0} ns each",
        hosts.len(),
        hosts.len() as f64 / best / 1e6,
        best / hosts.len() as f64 * 1e9,
    );
    matched
}

/// Every valid-looking line of every `domains` file.
fn listed_domains(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path().join("domains");
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        for line in text.split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            if !line.is_empty() && line[0] != b'#' && line.is_ascii() && !line.contains(&b' ') {
                out.push(line.to_vec());
            }
        }
    }
    Ok(out)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Resident set size from /proc (0 elsewhere).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}
