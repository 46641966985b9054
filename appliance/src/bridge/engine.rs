//! Building the inspection [`Engine`] from the configuration and from what the cloud set
//! at run time: an installed rule bundle, exceptions, the mode. Also the loaders `replay`
//! shares (URL-category lists, file verdicts).
//!
//! ```text
//! config (TOML) ─┐
//! Runtime (state_dir/runtime.json: mode, exceptions, isolated hosts, bundle) ─┤→ build → Engine
//! bundle files (state_dir/bundles/<version>/: rules/, categories/, …) ────────┘
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use protocol::messages::{AllowDest, Exception, HostRef, Mode};
use serde::{Deserialize, Serialize};

use super::config::{Config, Mode as ConfigMode};
use super::run::Engine;
use crate::replay::{self, Settings};

/// Paths inside a bundle (all optional but `rules/`).
pub mod layout {
    /// Folder of `*.rules` files.
    pub const RULES: &str = "rules";
    /// UT1/SquidGuard category folder.
    pub const CATEGORIES: &str = "categories";
    /// TOML with a `[categories]` table.
    pub const CATEGORY_POLICY: &str = "category-policy.toml";
    /// Known-bad file hashes (TSV).
    pub const FILE_HASHES: &str = "file-hashes.tsv";
    /// More file signatures (`name<TAB>hex`).
    pub const FILE_SIGNATURES: &str = "file-signatures.tsv";
}

/// What the cloud changed on this appliance; kept across restarts in the state folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Runtime {
    /// Mode set by a command (else the configuration's).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Exceptions added by commands (besides the configuration's).
    #[serde(default)]
    pub exceptions: Vec<Exception>,
    /// Hosts isolated by commands, with what each may still reach.
    #[serde(default)]
    pub isolated: Vec<(HostRef, Vec<AllowDest>)>,
    /// Installed rule bundle (unpacked in `bundles/<version>/`).
    #[serde(default)]
    pub bundle: Option<String>,
    /// The last reboot command carried out: sent again after the restart, it is only
    /// acknowledged.
    #[serde(default)]
    pub reboot_id: Option<u64>,
}

impl Runtime {
    /// The file in the state folder.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("runtime.json")
    }

    /// Reads the saved state; a missing file is the empty state.
    pub fn load(state_dir: &Path) -> anyhow::Result<Runtime> {
        let p = Runtime::path(state_dir);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("{}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Runtime::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    /// Saves atomically (write, sync, rename).
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let p = Runtime::path(state_dir);
        let tmp = p.with_extension("tmp");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut f = crate::perms::create_private(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &p)
    }

    /// The folder of an unpacked bundle.
    pub fn bundle_dir(state_dir: &Path, version: &str) -> PathBuf {
        Runtime::bundles_dir(state_dir).join(version)
    }

    /// The folder of every unpacked bundle.
    pub fn bundles_dir(state_dir: &Path) -> PathBuf {
        state_dir.join("bundles")
    }
}

/// An engine and what loading it reported.
pub struct Built {
    pub engine: Engine,
    pub loaded: replay::Loaded,
    /// Rules suppressed by exceptions.
    pub suppressed: usize,
    /// The rule-bundle version to report: the bundle's, else a digest of the local rules.
    pub rules_version: String,
}

/// Builds the engine for `cfg` with the cloud's changes `rt`; `bundle` is the unpacked
/// bundle folder to use instead of the configured rules and lists.
pub fn build(
    cfg: &Config,
    rt: &Runtime,
    bundle: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<Built> {
    let prevent = match rt.mode {
        Some(m) => m == Mode::Prevent,
        None => cfg.mode == ConfigMode::Prevent,
    };
    let mut settings = Settings::new(prevent);
    // inline: what the receiver would discard for its checksum is not inspected as data
    // (`stream.checksum-validation=no` in inspection.settings turns it off)
    settings.worker.checksum_validation = true;
    if let Some(h) = &cfg.inspection.home_net {
        settings
            .apply(&format!("vars.address-groups.HOME_NET={h}"))
            .context("inspection.home_net")?;
    }
    for s in &cfg.inspection.settings {
        settings.apply(s).context("inspection.settings")?;
    }
    // a bridge sees connections that were open before it started
    settings.worker.tcp.midstream = true;
    // the live bridge limits alert floods (replay writes every alert, as Suricata)
    settings.worker.alert_limit = cfg.alerts.limit();
    let i = &cfg.inspection;
    let in_bundle = |name: &str| bundle.map(|b| b.join(name)).filter(|p| p.exists());
    let categories = in_bundle(layout::CATEGORIES).or_else(|| i.categories.clone());
    let policy = in_bundle(layout::CATEGORY_POLICY).or_else(|| i.category_policy.clone());
    let mut lists = load_lists(categories.as_deref(), policy.as_deref(), &settings, quiet)?;
    let ex = Exceptions::of(cfg, rt);
    lists.allow_domains = ex.domains;
    let files = if i.files {
        let hashes = in_bundle(layout::FILE_HASHES).or_else(|| i.file_hashes.clone());
        let sigs = in_bundle(layout::FILE_SIGNATURES).or_else(|| i.file_signatures.clone());
        Some(load_files(hashes.as_deref(), sigs.as_deref(), quiet)?.with_allowed(ex.hashes))
    } else {
        None
    };
    let rules: Vec<PathBuf> = match bundle {
        Some(b) => vec![b.join(layout::RULES)],
        None => i.rules.clone(),
    };
    if rules.is_empty() && !quiet {
        tracing::warn!("no rules: only URL categories and files are checked");
    }
    let loaded = replay::load_rules_except(&rules, settings.vars.clone(), &ex.sids)
        .context("loading rules")?;
    let rules_version = match (&rt.bundle, bundle) {
        (Some(v), Some(_)) => v.clone(),
        _ => crate::uplink::offline::local_rules_version(&loaded.ruleset),
    };
    Ok(Built {
        engine: Engine {
            ruleset: Arc::clone(&loaded.ruleset),
            worker: settings.worker,
            lists: Arc::new(lists),
            files,
            classes: loaded.classes.clone(),
        },
        suppressed: ex.sids.len(),
        loaded,
        rules_version,
    })
}

/// Exceptions of the configuration and of the cloud, by effect.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exceptions {
    pub sids: Vec<u32>,
    pub hosts: Vec<std::net::IpAddr>,
    pub domains: Vec<String>,
    pub hashes: Vec<[u8; 32]>,
}

impl Exceptions {
    /// Collects both sources.
    pub fn of(cfg: &Config, rt: &Runtime) -> Exceptions {
        let mut x = Exceptions::default();
        for e in &cfg.exceptions {
            x.sids.extend(e.sid);
            x.hosts.extend(e.host);
            x.domains.extend(
                e.domain
                    .as_ref()
                    .map(|d| d.trim_matches('.').to_ascii_lowercase()),
            );
            x.hashes.extend(
                e.sha256
                    .as_ref()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|v| <[u8; 32]>::try_from(v).ok()),
            );
        }
        for e in &rt.exceptions {
            match e {
                Exception::Signature { sid, .. } => x.sids.push(*sid),
                Exception::Host(HostRef::Ip(ip)) => x.hosts.push(*ip),
                Exception::Domain(d) => x
                    .domains
                    .push(d.as_str().trim_matches('.').to_ascii_lowercase()),
                Exception::FileHash(h) => x.hashes.push(h.0),
                // refused by `supported` before they are stored
                Exception::Host(HostRef::Mac(_)) | Exception::SignatureForHost { .. } => {}
            }
        }
        x
    }

    /// Whether the appliance can carry out an exception (the cloud applies every kind to
    /// its ★ rating anyway).
    pub fn supported(e: &Exception) -> Result<(), String> {
        match e {
            Exception::Host(HostRef::Mac(_)) => {
                Err("a host exception needs the host's IP address on the appliance".into())
            }
            Exception::SignatureForHost { .. } => Err(
                "a signature exception for one host is applied by the cloud's rating only".into(),
            ),
            _ => Ok(()),
        }
    }
}

/// URL-category lists, their policy and the application catalogue.
pub fn load_lists(
    dir: Option<&Path>,
    policy: Option<&Path>,
    settings: &Settings,
    quiet: bool,
) -> anyhow::Result<crate::classify::Lists> {
    let cfg: rules::lists::PolicyConfig = match policy {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("category policy {}", p.display()))?
        }
        None => rules::lists::PolicyConfig::default(),
    };
    let t0 = std::time::Instant::now();
    let mut lists = crate::classify::Lists::load(dir, &cfg).context("loading URL categories")?;
    if let (Some((db, _)), false) = (&lists.categories, quiet) {
        let r = db.report();
        eprintln!(
            "categories: {} lists, {} domains, {} urls loaded in {:.2}s ({} lines skipped)",
            db.categories().count(),
            r.domains,
            r.urls,
            t0.elapsed().as_secs_f64(),
            r.skipped_lines
        );
    }
    lists.home_net = settings.vars.parse_addr("$HOME_NET").ok();
    Ok(lists)
}

/// The file verdict engine: built-in signatures, optional hash list and extra signatures.
pub fn load_files(
    hashes: Option<&Path>,
    sigs: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<crate::file::FileEngine> {
    use crate::file::{FileEngine, HashList, SignatureList};
    let list = match hashes {
        Some(p) => {
            let l = HashList::load(p)?;
            if !quiet {
                eprintln!(
                    "files: {} known-bad hashes from {} ({} lines skipped)",
                    l.len(),
                    p.display(),
                    l.bad_lines()
                );
            }
            Some(l)
        }
        None => None,
    };
    let extra = match sigs {
        Some(p) => SignatureList::load(p)?.signatures,
        None => Vec::new(),
    };
    Ok(FileEngine::new(list, &extra)?)
}
