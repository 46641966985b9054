//! Pipeline benchmark on a capture (see `scripts/bench`): one worker, capture held in
//! memory so disk I/O is not measured.
//!
//! cargo bench -p mimamori-appliance --bench pipeline -- --pcap F --rules DIR --mode M [--prevent] [--set K=V]...
//!     [--categories UT1_DIR] [--file-hashes TSV]
//!
//! Modes: `decode` (decode + flows + reassembly, no rules), `matcher` (the Hyperscan
//! prefilter databases alone over exactly the bytes the pipeline hands to detection),
//! `full` (everything, with every rule that loads). Prints one line of `key=value`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use mimamori_appliance::capture::pcap;
use mimamori_appliance::pipeline::{ScanTap, Worker};
use mimamori_appliance::replay::{Settings, load_rules};
use rules::ast::Buffer;
use rules::compile::Ruleset;

struct Frame {
    ts: u64,
    link: u32,
    data: Vec<u8>,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut pcap_path = None;
    let mut rules_dir: Vec<PathBuf> = Vec::new();
    let mut mode = "full".to_string();
    let mut categories: Option<PathBuf> = None;
    let mut file_hashes: Option<PathBuf> = None;
    let mut prevent = false;
    let mut sets = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--pcap" => {
                pcap_path = args.get(i + 1).cloned();
                i += 1;
            }
            "--rules" => {
                rules_dir.extend(args.get(i + 1).map(PathBuf::from));
                i += 1;
            }
            "--mode" => {
                mode = args.get(i + 1).cloned().unwrap_or_default();
                i += 1;
            }
            "--set" => {
                sets.extend(args.get(i + 1).cloned());
                i += 1;
            }
            "--prevent" => prevent = true,
            "--categories" => {
                categories = args.get(i + 1).map(PathBuf::from);
                i += 1;
            }
            "--file-hashes" => {
                file_hashes = args.get(i + 1).map(PathBuf::from);
                i += 1;
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
        i += 1;
    }
    let pcap_path = PathBuf::from(pcap_path.ok_or_else(|| anyhow::anyhow!("--pcap is required"))?);
    let mut settings = Settings::new(prevent);
    for s in &sets {
        settings.apply(s)?;
    }
    // the capture, in memory
    let mut frames = Vec::new();
    pcap::for_each_frame(&pcap_path, |f| {
        frames.push(Frame {
            ts: f.ts_us,
            link: f.linktype,
            data: f.data.to_vec(),
        })
    })?;
    let bytes: u64 = frames.iter().map(|f| f.data.len() as u64).sum();
    let packets = frames.len() as u64;
    let run = |worker: &mut Worker| {
        let mut out = Vec::with_capacity(64);
        let mut alerts = 0u64;
        let t = Instant::now();
        for (n, f) in frames.iter().enumerate() {
            worker.process(f.link, &f.data, f.ts, n as u64 + 1, &mut out);
            alerts += out.len() as u64;
            out.clear();
        }
        worker.finish(&mut out);
        alerts += out.len() as u64;
        (t.elapsed().as_secs_f64(), alerts)
    };
    match mode.as_str() {
        "decode" => {
            let (empty, _) = Ruleset::compile(Vec::new(), 0);
            let mut w =
                Worker::new(Arc::new(empty), settings.worker).map_err(anyhow::Error::msg)?;
            let (secs, _) = run(&mut w);
            println!(
                "mode=decode packets={packets} bytes={bytes} secs={secs:.3} gbps={:.3} pps={:.0} flows={} peak_rss_mib={:.0}",
                bytes as f64 * 8.0 / secs / 1e9,
                packets as f64 / secs,
                w.flows().counters.created,
                peak_rss_mib()
            );
        }
        "matcher" => {
            let (empty, _) = Ruleset::compile(Vec::new(), 0);
            let mut w =
                Worker::new(Arc::new(empty), settings.worker).map_err(anyhow::Error::msg)?;
            w.tap = Some(ScanTap::default());
            run(&mut w);
            let tap = w.tap.take().unwrap_or_default();
            let loaded = load_rules(&rules_dir, settings.vars.clone())?;
            let rs = &loaded.ruleset;
            let db = rs
                .prefilter_db(Buffer::Payload)
                .ok_or_else(|| anyhow::anyhow!("no payload prefilter"))?;
            let mut scratch = rs.alloc_scratch().map_err(anyhow::Error::msg)?;
            let t = Instant::now();
            let mut hits = 0usize;
            for &(s, e) in &tap.ranges {
                hits += db.count_hits(&tap.data[s..e], &mut scratch);
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "mode=matcher patterns={} scanned_bytes={} buffers={} hits={hits} secs={secs:.3} scan_gbps={:.3} capture_equiv_gbps={:.3} capture_equiv_pps={:.0}",
                db.len(),
                tap.data.len(),
                tap.ranges.len(),
                tap.data.len() as f64 * 8.0 / secs / 1e9,
                bytes as f64 * 8.0 / secs / 1e9,
                packets as f64 / secs
            );
        }
        "full" => {
            let t = Instant::now();
            let loaded = load_rules(&rules_dir, settings.vars.clone())?;
            // URL categories and file verdicts, when asked for, are part of the start-up
            let mut lists = mimamori_appliance::classify::Lists::load(
                categories.as_deref(),
                &Default::default(),
            )?;
            lists.home_net = settings.vars.parse_addr("$HOME_NET").ok();
            let files = match &file_hashes {
                Some(p) => Some(mimamori_appliance::file::FileEngine::new(
                    Some(mimamori_appliance::file::HashList::load(p)?),
                    &[],
                )?),
                None => None,
            };
            let load = t.elapsed().as_secs_f64();
            let mut w = Worker::new(Arc::clone(&loaded.ruleset), settings.worker)
                .map_err(anyhow::Error::msg)?;
            w.set_lists(Arc::new(lists));
            w.set_files(files);
            let (secs, alerts) = run(&mut w);
            let dc = w.detector().counters;
            eprintln!(
                "detect: candidates={} verified={} matches={}",
                dc.candidates, dc.verified, dc.matches
            );
            println!(
                "mode=full prevent={prevent} categories={} files={} rules={} of {} load_compile_secs={load:.2} packets={packets} bytes={bytes} secs={secs:.3} gbps={:.3} pps={:.0} events={alerts} peak_rss_mib={:.0}",
                categories.is_some(),
                file_hashes.is_some(),
                loaded.ruleset.rules.len(),
                loaded.enabled,
                bytes as f64 * 8.0 / secs / 1e9,
                packets as f64 / secs,
                peak_rss_mib()
            );
        }
        m => anyhow::bail!("unknown mode {m} (decode, matcher, full)"),
    }
    Ok(())
}
