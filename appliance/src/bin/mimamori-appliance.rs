//! `mimamori-appliance`: the appliance firmware's command line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use mimamori_appliance::events::eve::EveWriter;
use mimamori_appliance::replay::{self, Settings};

#[derive(Parser)]
#[command(name = "mimamori-appliance", version, about = "Mimamori UTM appliance: inline inspection, offline replay, rule checks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Mode {
    /// Alert only (IDS), like `suricata -r`.
    Detect,
    /// Simulate inline mode: drop/reject rules block and `drop` events are written.
    Prevent,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run captures through the inspection pipeline and write EVE-JSON events.
    Replay {
        /// Rule file or folder of *.rules files (repeatable).
        #[arg(long, required = true)]
        rules: Vec<PathBuf>,
        /// Where EVE-JSON lines go: a file, or `-` for standard output.
        #[arg(long, default_value = "-")]
        eve: PathBuf,
        #[arg(long, value_enum, default_value_t = Mode::Detect)]
        mode: Mode,
        /// Suricata-style setting, e.g. `stream.midstream=true`,
        /// `vars.address-groups.HOME_NET=[10.0.0.0/8]` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Print nothing on standard error but errors.
        #[arg(long, short)]
        quiet: bool,
        /// pcap or pcapng files, processed in order as one capture.
        #[arg(required = true)]
        pcaps: Vec<PathBuf>,
    },
    /// Parse and compile rules; report every failure and a summary.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Check rule files: failures with file:line, grouped by reason, then `loaded N of M rules`.
    Check {
        /// Rule files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write every rule that loaded, verbatim, to this file.
        #[arg(long)]
        write_loaded: Option<PathBuf>,
        /// Suricata-style variable setting (repeatable), as for `replay`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Only print the summary, not each failure.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Replay { rules, eve, mode, sets, quiet, pcaps } => {
            let mut settings = Settings::new(mode == Mode::Prevent);
            for s in &sets {
                settings.apply(s).context("--set")?;
            }
            for k in &settings.ignored {
                tracing::warn!(key = %k, "setting has no effect in this engine; ignored");
            }
            let loaded = replay::load_rules(&rules, settings.vars.clone()).context("loading rules")?;
            if !quiet {
                for (reason, n) in replay::group_failures(&loaded.failures) {
                    eprintln!("rules: {n} not loaded: {reason}");
                }
                eprintln!(
                    "rules: loaded {} of {} in {:.2}s (parse {:.2}s, compile {:.2}s)",
                    loaded.ruleset.rules.len(),
                    loaded.enabled,
                    (loaded.parse_time + loaded.compile_time).as_secs_f64(),
                    loaded.parse_time.as_secs_f64(),
                    loaded.compile_time.as_secs_f64()
                );
            }
            let out: Box<dyn Write> = if replay::is_stdout(&eve) {
                Box::new(BufWriter::new(std::io::stdout().lock()))
            } else {
                Box::new(BufWriter::new(File::create(&eve).with_context(|| format!("creating {}", eve.display()))?))
            };
            let mut writer = EveWriter::new(out, loaded.classes.clone());
            let (s, worker) = replay::replay(&loaded, &settings, &pcaps, &mut writer)?;
            if !quiet {
                let secs = s.elapsed.as_secs_f64().max(1e-9);
                eprintln!(
                    "replay: {} packets, {} bytes, {} flows, {} alerts, {} drops in {:.3}s ({:.3} Gbit/s, {:.0} packets/s)",
                    s.packets,
                    s.bytes,
                    s.flows,
                    s.alerts,
                    s.drops,
                    secs,
                    s.bytes as f64 * 8.0 / secs / 1e9,
                    s.packets as f64 / secs
                );
                let r = worker.reassembly;
                let f = worker.flows().counters;
                let d = worker.defrag_counters();
                eprintln!(
                    "counters: flows timed_out={} evicted_full={}; tcp segments={} retransmissions={} overlaps_different={} ooo_queued={} ooo_discarded={} gaps={} depth_reached={}; defrag fragments={} reassembled={} timeouts={} evicted={} too_large={}; non_ip={}",
                    f.timed_out, f.evicted_full, r.segments, r.retransmissions, r.overlaps_different, r.ooo_queued, r.ooo_discarded, r.gaps, r.depth_reached,
                    d.fragments, d.reassembled, d.timeouts, d.evicted, d.too_large, worker.counters.non_ip
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Rules { cmd: RulesCmd::Check { paths, write_loaded, sets, quiet } } => {
            let mut settings = Settings::new(false);
            for s in &sets {
                settings.apply(s).context("--set")?;
            }
            let loaded = replay::load_rules(&paths, settings.vars.clone()).context("loading rules")?;
            let mut stdout = std::io::stdout().lock();
            if !quiet {
                for e in &loaded.failures {
                    writeln!(stdout, "{e}")?;
                }
            }
            writeln!(stdout, "failures by reason:")?;
            for (reason, n) in replay::group_failures(&loaded.failures) {
                writeln!(stdout, "  {n:6}  {reason}")?;
            }
            writeln!(stdout, "detection layout:")?;
            for (b, lits, unf) in loaded.ruleset.buffer_stats() {
                writeln!(stdout, "  {b:?}: {lits} prefilter literals, {unf} rules without a literal")?;
            }
            writeln!(stdout, "  packet-keyword rules without buffers: {}", loaded.ruleset.packet_only.len())?;
            writeln!(
                stdout,
                "  header-only rules (address index, once per flow direction): {} ({} always candidates)",
                loaded.ruleset.ip_only.rules,
                loaded.ruleset.ip_only.always.len()
            )?;
            writeln!(
                stdout,
                "parse {:.2}s, compile {:.2}s",
                loaded.parse_time.as_secs_f64(),
                loaded.compile_time.as_secs_f64()
            )?;
            if let Some(p) = write_loaded {
                let mut w = BufWriter::new(File::create(&p).with_context(|| format!("creating {}", p.display()))?);
                for r in &loaded.ruleset.rules {
                    writeln!(w, "{}", r.rule.text)?;
                }
                w.flush()?;
            }
            writeln!(stdout, "loaded {} of {} rules", loaded.ruleset.rules.len(), loaded.enabled)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
