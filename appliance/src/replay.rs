//! Offline runs of the real pipeline over capture files (`replay`), and loading a rule set
//! the way every command does it (`load_rules`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rules::classification::Classifications;
use rules::compile::Ruleset;
use rules::{ParseCtx, RuleError, Vars};

use crate::capture::pcap;
use crate::events::eve::EveWriter;
use crate::pipeline::{Record, Worker, WorkerConfig};

/// A `--set KEY=VALUE` that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("`{0}` is not KEY=VALUE")]
    Syntax(String),
    #[error("{key}: `{value}` is not a valid {what}")]
    Value {
        key: String,
        value: String,
        what: &'static str,
    },
}

/// Settings of a run, Suricata-style keys.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub vars: Vars,
    pub worker: WorkerConfig,
    /// Keys accepted but without effect here, reported once.
    pub ignored: Vec<String>,
    /// URL categories (with their policy) and the application catalogue.
    pub lists: Option<Arc<crate::classify::Lists>>,
    /// File verdicts on HTTP bodies (hash list, signatures).
    pub files: Option<crate::file::FileEngine>,
}

fn parse_bool(key: &str, v: &str) -> Result<bool, SettingError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(SettingError::Value {
            key: key.into(),
            value: v.into(),
            what: "boolean",
        }),
    }
}

/// `1024`, `64kb`, `1mb`, `2gb`.
pub fn parse_size(key: &str, v: &str) -> Result<u64, SettingError> {
    let l = v.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = l.strip_suffix("gb") {
        (n, 1 << 30)
    } else if let Some(n) = l.strip_suffix("mb") {
        (n, 1 << 20)
    } else if let Some(n) = l.strip_suffix("kb") {
        (n, 1 << 10)
    } else {
        (l.as_str(), 1)
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| SettingError::Value {
            key: key.into(),
            value: v.into(),
            what: "size",
        })
}

impl Settings {
    pub fn new(prevent: bool) -> Settings {
        let mut s = Settings::default();
        s.worker.prevent = prevent;
        s.worker.tcp.stream.inline = prevent;
        s
    }

    /// Apply one `KEY=VALUE`.
    pub fn apply(&mut self, kv: &str) -> Result<(), SettingError> {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| SettingError::Syntax(kv.into()))?;
        let (k, v) = (k.trim(), v.trim());
        if let Some(name) = k.strip_prefix("vars.address-groups.") {
            self.vars
                .addr
                .insert(name.to_string(), v.trim_matches('"').to_string());
            return Ok(());
        }
        if let Some(name) = k.strip_prefix("vars.port-groups.") {
            self.vars
                .port
                .insert(name.to_string(), v.trim_matches('"').to_string());
            return Ok(());
        }
        match k {
            "stream.midstream" => self.worker.tcp.midstream = parse_bool(k, v)?,
            "stream.reassembly.depth" => self.worker.tcp.stream.depth = parse_size(k, v)?,
            "stream.checksum-validation" => self.worker.checksum_validation = parse_bool(k, v)?,
            // `auto` (and anything not a boolean) keeps the default: inline in prevent mode
            "stream.inline" => {
                if let Ok(b) = parse_bool(k, v) {
                    self.worker.tcp.stream.inline = b;
                }
            }
            "flow.memcap-flows" | "flow.max-flows" => {
                self.worker.flow.max_flows = parse_size(k, v)?.max(1) as usize;
            }
            // capture checksums are not validated (`stream.checksum-validation` does);
            // data is always inspected as soon as it is in order
            "checksum-checks" | "runmode" => {}
            _ => self.ignored.push(k.to_string()),
        }
        Ok(())
    }
}

/// A loaded and compiled rule set with its load report.
pub struct Loaded {
    pub ruleset: Arc<Ruleset>,
    pub failures: Vec<RuleError>,
    pub enabled: usize,
    pub classes: Classifications,
    pub parse_time: Duration,
    pub compile_time: Duration,
}

/// Parse and compile rules from files or folders.
pub fn load_rules(paths: &[PathBuf], vars: Vars) -> Result<Loaded, RuleError> {
    load_rules_except(paths, vars, &[])
}

/// As [`load_rules`], leaving out the rules whose sid is in `suppressed` (exceptions).
pub fn load_rules_except(
    paths: &[PathBuf],
    vars: Vars,
    suppressed: &[u32],
) -> Result<Loaded, RuleError> {
    let t0 = Instant::now();
    let mut ctx = ParseCtx::new(vars);
    let mut report = rules::parse::load_paths(paths, &mut ctx)?;
    if !suppressed.is_empty() {
        report.rules.retain(|r| !suppressed.contains(&r.sid));
    }
    let parse_time = t0.elapsed();
    let t1 = Instant::now();
    let (ruleset, mut compile_failures) = Ruleset::compile(report.rules, ctx.flowbit_count());
    let compile_time = t1.elapsed();
    let mut failures = report.failures;
    failures.append(&mut compile_failures);
    let mut classes = Classifications::default();
    for p in paths {
        classes.load_near(p);
    }
    Ok(Loaded {
        ruleset: Arc::new(ruleset),
        failures,
        enabled: report.enabled,
        classes,
        parse_time,
        compile_time,
    })
}

/// Failures grouped by reason, most frequent first.
pub fn group_failures(f: &[RuleError]) -> Vec<(String, usize)> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    for e in f {
        *m.entry(e.kind.group()).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Totals of a replay.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplaySummary {
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub alerts: u64,
    pub drops: u64,
    pub elapsed: Duration,
    pub truncated_files: u64,
}

/// Run captures through one worker, writing EVE lines to `eve`.
pub fn replay<W: std::io::Write>(
    loaded: &Loaded,
    settings: &Settings,
    pcaps: &[PathBuf],
    eve: &mut EveWriter<W>,
) -> anyhow::Result<(ReplaySummary, Worker)> {
    replay_with(loaded, settings, pcaps, eve, &mut |_| {})
}

/// As [`replay`], and every record is also handed to `sink` once written as EVE (e.g. to
/// spool alerts for the uplink).
pub fn replay_with<W: std::io::Write>(
    loaded: &Loaded,
    settings: &Settings,
    pcaps: &[PathBuf],
    eve: &mut EveWriter<W>,
    sink: &mut dyn FnMut(&Record),
) -> anyhow::Result<(ReplaySummary, Worker)> {
    let mut worker =
        Worker::new(Arc::clone(&loaded.ruleset), settings.worker).map_err(anyhow::Error::msg)?;
    if let Some(l) = &settings.lists {
        worker.set_lists(Arc::clone(l));
    }
    worker.set_files(settings.files.clone());
    let mut records = Vec::with_capacity(64);
    let mut sum = ReplaySummary::default();
    let t0 = Instant::now();
    let mut cnt = 0u64;
    let mut io_err: Option<std::io::Error> = None;
    for path in pcaps {
        let res = pcap::for_each_frame(path, |f| {
            cnt += 1;
            worker.process(f.linktype, f.data, f.ts_us, cnt, &mut records);
            for r in records.drain(..) {
                if let Err(e) = eve.write(&r, &loaded.ruleset) {
                    io_err.get_or_insert(e);
                }
                sink(&r);
            }
        });
        match res {
            Ok(s) if s.truncated => {
                sum.truncated_files += 1;
                tracing::warn!(file = %path.display(), frames = s.frames, "capture ends inside a record; frames before it were processed");
            }
            Ok(s) if s.damaged.is_some() => {
                sum.truncated_files += 1;
                tracing::warn!(file = %path.display(), frames = s.frames, reason = s.damaged.as_deref().unwrap_or(""), "capture is damaged; frames before the damage were processed");
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(e) = io_err.take() {
            return Err(anyhow::Error::new(e).context("writing EVE output"));
        }
    }
    worker.finish(&mut records);
    for r in records.drain(..) {
        eve.write(&r, &loaded.ruleset)?;
        sink(&r);
    }
    eve.flush()?;
    sum.elapsed = t0.elapsed();
    sum.packets = worker.counters.packets;
    sum.bytes = worker.counters.bytes;
    sum.flows = worker.flows().counters.created;
    sum.alerts = worker.counters.alerts;
    sum.drops = worker.counters.drops + worker.counters.flow_dropped_packets;
    Ok((sum, worker))
}

/// Whether a path names standard output.
pub fn is_stdout(p: &Path) -> bool {
    p.as_os_str() == "-"
}
