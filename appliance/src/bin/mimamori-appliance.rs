//! `mimamori-appliance`: the appliance firmware's command line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use clap::{Parser, Subcommand, ValueEnum};

use mimamori_appliance::bridge::{Config, control as ctl};
use mimamori_appliance::events::eve::EveWriter;
use mimamori_appliance::replay::{self, Settings};
use mimamori_appliance::ssid::SsidRole;
use mimamori_appliance::uplink::offline::{self, OfflineUplink};
use mimamori_appliance::uplink::simulate::{self, SimulateOptions};
use mimamori_appliance::uplink::{self as up, AlertConverter, CloudAddr};

#[derive(Parser)]
#[command(
    name = "mimamori-appliance",
    version,
    about = "Mimamori UTM appliance: inline inspection, offline replay, rule checks, cloud uplink"
)]
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
        /// Also send the alerts to the cloud through the uplink configured in this TOML file
        /// (see `uplink.example.toml`): they are spooled first, then sent until acknowledged
        /// or `drain_timeout_secs` passed. Exits non-zero if anything is left in the spool.
        #[arg(long, value_name = "TOML")]
        uplink: Option<PathBuf>,
        /// Folder of URL-category lists in UT1/SquidGuard format (`<category>/domains`,
        /// `<category>/urls`): HTTP hosts and paths, TLS SNIs and DNS names are matched.
        #[arg(long, value_name = "DIR")]
        categories: Option<PathBuf>,
        /// TOML with a `[categories]` table, e.g. `gambling = "block"`; default: phishing and
        /// malware block, every other category is recorded.
        #[arg(long, value_name = "TOML", requires = "categories")]
        category_policy: Option<PathBuf>,
        /// Known-bad file hashes (TSV with md5 / sha1 / sha256 columns, like
        /// `../shared/corpus/files/hashes.tsv`): HTTP bodies with a listed hash are bad files.
        #[arg(long, value_name = "TSV")]
        file_hashes: Option<PathBuf>,
        /// More file signatures, one `name<TAB>hex bytes` per line (EICAR is built in).
        #[arg(long, value_name = "FILE")]
        file_signatures: Option<PathBuf>,
        /// Do not hash or scan HTTP bodies as files.
        #[arg(long, conflicts_with_all = ["file_hashes", "file_signatures"])]
        no_files: bool,
        /// pcap or pcapng files, processed in order as one capture.
        #[arg(required = true)]
        pcaps: Vec<PathBuf>,
    },
    /// Redeem a one-time activation code for this appliance's device certificate.
    Activate {
        /// Cloud address, host:port (the host must be named in the cloud's certificate).
        #[arg(long, value_name = "HOST:PORT")]
        cloud: String,
        /// The activation code the operator handed out.
        #[arg(long)]
        code: String,
        /// Folder for the key, the certificate, the identity and the spool.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// PEM file of the CA that signed the cloud's server certificate.
        #[arg(long, value_name = "PEM")]
        ca: PathBuf,
        /// Replace an existing identity in the state folder.
        #[arg(long)]
        force: bool,
    },
    /// Run many simulated appliances (heartbeats and synthetic alerts) against a cloud.
    Simulate {
        /// Number of devices.
        #[arg(long)]
        devices: usize,
        /// Cloud address, host:port.
        #[arg(long, value_name = "HOST:PORT")]
        cloud: String,
        /// PEM file of the CA that signed the cloud's server certificate.
        #[arg(long, value_name = "PEM")]
        ca: PathBuf,
        /// Activation codes, one per line: line i activates device i (devices already
        /// activated need none).
        #[arg(long, value_name = "FILE")]
        codes: PathBuf,
        /// Device i keeps its identity (and spool) in <DIR>/dev-<i>.
        #[arg(long, value_name = "DIR")]
        state_root: PathBuf,
        /// Alerts per second across all devices; 0 sends heartbeats only.
        #[arg(long, default_value_t = 0.0, value_name = "ALERTS_PER_SEC")]
        rate: f64,
        /// Seconds of alert generation (or of heartbeats only, with rate 0).
        #[arg(long, default_value_t = 10, value_name = "SECS")]
        duration: u64,
        /// Seconds between heartbeats of each device.
        #[arg(long, default_value_t = 60, value_name = "S")]
        heartbeat_secs: u64,
        /// Keep spools in memory instead of redb files (cloud load tests).
        #[arg(long)]
        memory_spool: bool,
        /// Seconds to wait for every alert to be acknowledged after generating.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        drain_timeout_secs: u64,
        /// Events per batch (1 to 512).
        #[arg(long, default_value_t = 256)]
        batch_max: usize,
    },
    /// Run the inline bridge on the ports of a configuration file (needs root).
    Run {
        /// Appliance configuration (TOML; see `appliance.example.toml`).
        #[arg(long, value_name = "TOML")]
        config: PathBuf,
        /// Check the configuration and load everything, then exit without opening ports.
        #[arg(long)]
        check: bool,
    },
    /// Send a command to a running appliance over its control socket:
    /// `stats`, `isolated`, `isolate <MAC|IP>`, `release <MAC|IP>`.
    Ctl {
        /// The control socket (`output.control` in the configuration).
        #[arg(long, value_name = "PATH", required_unless_present = "config")]
        socket: Option<PathBuf>,
        /// Take the socket from this configuration file instead.
        #[arg(long, value_name = "TOML")]
        config: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Wi-Fi: hostapd configuration for the SSIDs of the appliance configuration.
    Ssid {
        #[command(subcommand)]
        cmd: SsidCmd,
    },
    /// Parse and compile rules; report every failure and a summary.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
}

#[derive(Subcommand)]
enum SsidCmd {
    /// Write hostapd.conf for ssid1 and/or ssid2 (2.4 GHz, 802.11b/g/n, WPA/WPA2-PSK or
    /// 802.1X); anything else is refused with the reason.
    Render {
        /// Appliance configuration with `[ssid1]` / `[ssid2]` tables.
        #[arg(long, value_name = "TOML")]
        config: PathBuf,
        /// Folder for `hostapd-ssid1.conf` / `hostapd-ssid2.conf`; default: print them.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
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
    // every file and folder the appliance creates is its owner's only (explicit modes too)
    mimamori_appliance::perms::private_umask();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

use mimamori_appliance::bridge::engine::{load_files, load_lists};

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Replay {
            rules,
            eve,
            mode,
            sets,
            quiet,
            uplink,
            categories,
            category_policy,
            file_hashes,
            file_signatures,
            no_files,
            pcaps,
        } => {
            let mut settings = Settings::new(mode == Mode::Prevent);
            for s in &sets {
                settings.apply(s).context("--set")?;
            }
            settings.lists = Some(Arc::new(load_lists(
                categories.as_deref(),
                category_policy.as_deref(),
                &settings,
                quiet,
            )?));
            if !no_files {
                settings.files = Some(load_files(
                    file_hashes.as_deref(),
                    file_signatures.as_deref(),
                    quiet,
                )?);
            }
            for k in &settings.ignored {
                tracing::warn!(key = %k, "setting has no effect in this engine; ignored");
            }
            let loaded =
                replay::load_rules(&rules, settings.vars.clone()).context("loading rules")?;
            if !quiet {
                report_rules(&loaded, 0);
            }
            let out: Box<dyn Write> = if replay::is_stdout(&eve) {
                Box::new(BufWriter::new(std::io::stdout().lock()))
            } else {
                Box::new(BufWriter::new(
                    File::create(&eve).with_context(|| format!("creating {}", eve.display()))?,
                ))
            };
            // open the uplink before the replay: a missing identity is reported at once
            let mut uplink = match &uplink {
                Some(path) => Some(
                    OfflineUplink::open(path)
                        .with_context(|| format!("uplink {}", path.display()))?,
                ),
                None => None,
            };
            let home_net = settings
                .vars
                .parse_addr("$HOME_NET")
                .map_err(|e| anyhow::anyhow!("HOME_NET: {e}"))?;
            let mut converter = AlertConverter::new(&loaded.ruleset, &loaded.classes, &home_net);
            let mut writer = EveWriter::new(out, loaded.classes.clone());
            let (s, worker) =
                replay::replay_with(&loaded, &settings, &pcaps, &mut writer, &mut |r| {
                    if let Some(up) = uplink.as_mut()
                        && let Some(event) = converter.convert_event(r)
                    {
                        up.push_event(event);
                    }
                })?;
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
                    f.timed_out,
                    f.evicted_full,
                    r.segments,
                    r.retransmissions,
                    r.overlaps_different,
                    r.ooo_queued,
                    r.ooo_discarded,
                    r.gaps,
                    r.depth_reached,
                    d.fragments,
                    d.reassembled,
                    d.timeouts,
                    d.evicted,
                    d.too_large,
                    worker.counters.non_ip
                );
                let c = worker.counters;
                eprintln!(
                    "app: http requests={} responses={} parse_errors={} odd_responses={}; tls handshakes={} parse_errors={}; dns messages={} parse_errors={}; bad_files={} category_blocks={}",
                    c.http_requests,
                    c.http_responses,
                    c.http_parse_errors,
                    c.http_odd_responses,
                    c.tls_handshakes,
                    c.tls_parse_errors,
                    c.dns_messages,
                    c.dns_parse_errors,
                    c.bad_files,
                    c.category_blocks
                );
            }
            match uplink {
                Some(up) => {
                    if converter.counters.outside_home_net > 0 {
                        tracing::warn!(
                            alerts = converter.counters.outside_home_net,
                            "alerts without an endpoint in HOME_NET: the flow's client was taken as the internal host"
                        );
                    }
                    let rules_version = offline::local_rules_version(&loaded.ruleset);
                    let proto_mode = if mode == Mode::Prevent {
                        protocol::messages::Mode::Prevent
                    } else {
                        protocol::messages::Mode::Detect
                    };
                    send_report(up.run(&rules_version, proto_mode)?, quiet)
                }
                None => Ok(ExitCode::SUCCESS),
            }
        }
        Cmd::Activate {
            cloud,
            code,
            state_dir,
            ca,
            force,
        } => {
            let opts = up::ActivateOptions {
                cloud: CloudAddr::parse(&cloud).context("--cloud")?,
                code,
                state_dir,
                ca_file: ca,
                force,
                firmware: up::FIRMWARE_VERSION.to_string(),
                rules_version: "none".to_string(),
                transport: Default::default(),
            };
            let device = runtime()?.block_on(up::activate(&opts))?;
            eprintln!(
                "activated: device {device}, identity stored in {}",
                opts.state_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Simulate {
            devices,
            cloud,
            ca,
            codes,
            state_root,
            rate,
            duration,
            heartbeat_secs,
            memory_spool,
            drain_timeout_secs,
            batch_max,
        } => {
            anyhow::ensure!(
                rate >= 0.0 && rate.is_finite(),
                "--rate must be a number >= 0"
            );
            anyhow::ensure!(heartbeat_secs >= 1, "--heartbeat-secs must be at least 1");
            anyhow::ensure!(
                (1..=512).contains(&batch_max),
                "--batch-max must be 1 to 512"
            );
            let opts = SimulateOptions {
                devices,
                cloud: CloudAddr::parse(&cloud).context("--cloud")?,
                ca_file: ca,
                codes_file: codes,
                state_root,
                rate,
                duration: std::time::Duration::from_secs(duration),
                heartbeat: std::time::Duration::from_secs(heartbeat_secs),
                memory_spool,
                drain_timeout: std::time::Duration::from_secs(drain_timeout_secs),
                batch_max,
                max_events: up::spool::DEFAULT_MAX_EVENTS,
            };
            let summary = runtime()?.block_on(simulate::simulate(&opts))?;
            eprintln!("{summary}");
            Ok(if summary.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Run { config, check } => run_bridge(&config, check),
        Cmd::Ctl {
            socket,
            config,
            command,
        } => {
            let path = match (socket, config) {
                (Some(s), _) => s,
                (None, Some(c)) => Config::load(&c)?.output.control.ok_or_else(|| {
                    anyhow::anyhow!("{}: no output.control socket configured", c.display())
                })?,
                (None, None) => unreachable!("clap requires one"),
            };
            let reply = ctl::send(&path, &command.join(" "))
                .with_context(|| format!("control socket {}", path.display()))?;
            println!("{reply}");
            Ok(if reply["ok"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Ssid {
            cmd: SsidCmd::Render { config, out_dir },
        } => {
            let cfg = Config::load(&config)?;
            mimamori_appliance::perms::check_config(
                &config,
                &mimamori_appliance::perms::config_secrets(&cfg),
            )?;
            let out_dir = out_dir.or_else(|| cfg.output.hostapd_dir.clone());
            let mut any = false;
            for (role, name, s) in [
                (SsidRole::Ssid1, "ssid1", &cfg.ssid1),
                (SsidRole::Ssid2, "ssid2", &cfg.ssid2),
            ] {
                let Some(s) = s else { continue };
                any = true;
                let text = mimamori_appliance::ssid::render(role, s)?;
                match &out_dir {
                    Some(d) => {
                        mimamori_appliance::perms::create_dir_private(d)
                            .with_context(|| format!("creating {}", d.display()))?;
                        let p = d.join(format!("hostapd-{name}.conf"));
                        // the file carries the passphrase or RADIUS secret: owner only, an
                        // existing file too (fchmod; a link at `p` is refused)
                        let mut f = mimamori_appliance::perms::create_private(&p)
                            .with_context(|| format!("writing {}", p.display()))?;
                        f.write_all(text.as_bytes())
                            .with_context(|| format!("writing {}", p.display()))?;
                        eprintln!("wrote {}", p.display());
                    }
                    None => print!("{text}"),
                }
            }
            if !any {
                anyhow::bail!("{}: no [ssid1] or [ssid2] table", config.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Rules {
            cmd:
                RulesCmd::Check {
                    paths,
                    write_loaded,
                    sets,
                    quiet,
                },
        } => {
            let mut settings = Settings::new(false);
            for s in &sets {
                settings.apply(s).context("--set")?;
            }
            let loaded =
                replay::load_rules(&paths, settings.vars.clone()).context("loading rules")?;
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
                writeln!(
                    stdout,
                    "  {b:?}: {lits} prefilter literals, {unf} rules without a literal"
                )?;
            }
            writeln!(
                stdout,
                "  packet-keyword rules without buffers: {}",
                loaded.ruleset.packet_only.len()
            )?;
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
                let mut w = BufWriter::new(
                    File::create(&p).with_context(|| format!("creating {}", p.display()))?,
                );
                for r in &loaded.ruleset.rules {
                    writeln!(w, "{}", r.rule.text)?;
                }
                w.flush()?;
            }
            writeln!(
                stdout,
                "loaded {} of {} rules",
                loaded.ruleset.rules.len(),
                loaded.enabled
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The load report on standard error: failures by reason, then what loaded.
fn report_rules(loaded: &replay::Loaded, suppressed: usize) {
    for (reason, n) in replay::group_failures(&loaded.failures) {
        eprintln!("rules: {n} not loaded: {reason}");
    }
    let excepted = if suppressed > 0 {
        format!(", {suppressed} suppressed by exceptions")
    } else {
        String::new()
    };
    eprintln!(
        "rules: loaded {} of {} in {:.2}s (parse {:.2}s, compile {:.2}s{excepted})",
        loaded.ruleset.rules.len(),
        loaded.enabled,
        (loaded.parse_time + loaded.compile_time).as_secs_f64(),
        loaded.parse_time.as_secs_f64(),
        loaded.compile_time.as_secs_f64()
    );
}

/// `run`: load everything the configuration names (and what the cloud set since), then
/// bridge its ports; with an `[uplink]` section, talk to the cloud (in-band by default).
fn run_bridge(path: &std::path::Path, check_only: bool) -> anyhow::Result<ExitCode> {
    use mimamori_appliance::bridge::engine::{self, Runtime};
    use mimamori_appliance::bridge::manage::{self, CloudLink, UplinkStart};
    use mimamori_appliance::bridge::run::RunOptions;
    let cfg = Config::load(path)?;
    prepare_files(&cfg, path, check_only)?;
    let mut runtime = match &cfg.uplink {
        Some(u) => Runtime::load(&u.state_dir)?,
        None => Runtime::default(),
    };
    let bundle_dir = match (&cfg.uplink, &runtime.bundle) {
        (Some(u), Some(v)) => Some(Runtime::bundle_dir(&u.state_dir, v)),
        _ => None,
    };
    let built = match engine::build(&cfg, &runtime, bundle_dir.as_deref(), false) {
        Ok(b) if bundle_dir.is_none() || !b.loaded.ruleset.rules.is_empty() => b,
        // an installed bundle that no longer loads (or lost its rules) must not leave the
        // office unprotected: the configured rules run, and the cloud offers the bundle
        // again (the version reported is no longer the bundle's)
        result if bundle_dir.is_some() => {
            let why = match result {
                Ok(_) => "it has no rules".to_string(),
                Err(e) => format!("{e:#}"),
            };
            tracing::error!(error = %why, "the installed rule bundle does not load; using the configured rules");
            runtime.bundle = None;
            if let Some(u) = &cfg.uplink {
                runtime.save(&u.state_dir).ok();
            }
            engine::build(&cfg, &runtime, None, false)?
        }
        Err(e) => return Err(e),
        Ok(b) => b,
    };
    report_rules(&built.loaded, built.suppressed);
    if check_only {
        eprintln!(
            "configuration {} is valid: {} ports, {} workers",
            path.display(),
            cfg.ports.list().len(),
            cfg.workers()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut opts = RunOptions::default();
    let link = match &cfg.uplink {
        Some(u) => {
            let link = Arc::new(CloudLink::open(u)?);
            let home = built
                .engine
                .lists
                .home_net
                .clone()
                .context("$HOME_NET is not a valid address group")?;
            opts.sink = Some(link.sink(home));
            if u.mode == mimamori_appliance::bridge::config::UplinkMode::Inband {
                let m = &cfg.management;
                opts.mgmt = Some(mimamori_appliance::mgmt::MgmtConfig {
                    mac: manage::management_mac(&cfg, &u.state_dir)?,
                    addressing: mimamori_appliance::mgmt::Addressing::parse(
                        &m.address,
                        m.gateway.as_deref(),
                        &m.dns,
                    )?,
                    hostname: Some(cfg.name.clone()),
                });
            }
            Some(link)
        }
        None => None,
    };
    let rules_version = built.rules_version.clone();
    let mut uplink_thread = None;
    let bridge = std::sync::Mutex::new(None);
    mimamori_appliance::bridge::run::run(&cfg, built.engine, opts, |b| {
        eprintln!("bridge running on {} ports", cfg.ports.list().len());
        *bridge.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(b));
        if let (Some(u), Some(link)) = (&cfg.uplink, &link) {
            let start = UplinkStart {
                bridge: Arc::clone(b),
                cfg: cfg.clone(),
                uplink: u.clone(),
                runtime: runtime.clone(),
                rules_version: rules_version.clone(),
            };
            let link = Arc::clone(link);
            uplink_thread = std::thread::Builder::new()
                .name("uplink".into())
                .spawn(move || manage::run_uplink(start, &link))
                .ok();
        }
    })?;
    if let Some(t) = uplink_thread {
        let _ = t.join();
    }
    let why = bridge
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .and_then(|b| *b.exit_request.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(match why {
        Some("reboot") => {
            eprintln!("restart requested by the cloud (reboot): exit code 75 for the supervisor");
            ExitCode::from(75)
        }
        Some(w) => {
            eprintln!("stopped by the cloud ({w})");
            ExitCode::SUCCESS
        }
        None => ExitCode::SUCCESS,
    })
}

/// The local files before anything is read or opened (issue 21): the configuration's
/// owner and mode (it holds secrets), the state folder (0700, its files 0600, no links,
/// no other user's files) and the control socket's folder. `--check` only checks the
/// configuration.
fn prepare_files(cfg: &Config, path: &std::path::Path, check_only: bool) -> anyhow::Result<()> {
    use mimamori_appliance::perms;
    perms::check_config(path, &perms::config_secrets(cfg))?;
    if check_only {
        return Ok(());
    }
    if let Some(u) = &cfg.uplink {
        perms::prepare_dir(&u.state_dir).context("state folder (uplink.state_dir)")?;
    }
    if let Some(c) = &cfg.output.control {
        perms::check_socket_dir(c).context("control socket folder (output.control)")?;
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Prints what `replay --uplink` achieved; non-zero if anything stays in the spool.
fn send_report(r: offline::OfflineReport, quiet: bool) -> anyhow::Result<ExitCode> {
    let line = format!(
        "uplink: {} alerts spooled, {} refused (spool full), {} events sent, {} acknowledged, {} left in the spool (cloud {})",
        r.spooled, r.refused, r.sent, r.acked, r.left, r.cloud
    );
    if r.left == 0 && r.refused == 0 && r.problem.is_none() {
        if !quiet {
            eprintln!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{line}");
    match &r.problem {
        Some(p) => eprintln!("error: uplink: {p}; they are sent on the next run"),
        None if r.refused > 0 => eprintln!(
            "error: uplink: {} alerts were refused because the spool is full",
            r.refused
        ),
        None => eprintln!(
            "error: uplink: {} events were not acknowledged; they are sent on the next run",
            r.left
        ),
    }
    Ok(ExitCode::from(1))
}
