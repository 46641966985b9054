//! The running bridge as the cloud sees it: commands carried out at once and kept across
//! restarts ([`Runtime`]), rule bundles verified, compiled and swapped in, and the
//! spooling of detections for the uplink.
//!
//! ```text
//! uplink session ─Command→ Manager::apply ─→ isolation set / engine swap / exit request
//!                ─bundle file→ Manager::install_bundle: verify (Ed25519) → unpack
//!                                 → build engine → swap (old one kept on any failure)
//! event thread ─records→ Spooler ─→ redb spool ─→ uplink
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use protocol::messages::{CommandKind, HostRef, Mode};

use super::config::Config;
use super::engine::{self, Exceptions, Runtime};
use super::isolate::{AllowEntry, HostId};
use super::run::{Bridge, Engine};
use crate::pipeline::Record;
use crate::uplink::{AlertConverter, Spool, UplinkHandle};

/// Carries out the cloud's commands on a running bridge.
pub struct Manager {
    bridge: Arc<Bridge>,
    cfg: Config,
    state_dir: PathBuf,
    /// Public key bundles must be signed with; `None`: bundles are refused.
    bundle_key: Option<[u8; 32]>,
    /// Held while a command or an install changes the engine or the saved state (the
    /// uplink runs one at a time anyway).
    state: Mutex<Runtime>,
    /// The running rule-bundle version, read by heartbeats without waiting for a compile.
    rules_version: Mutex<String>,
}

fn host_id(h: &HostRef) -> HostId {
    match h {
        HostRef::Mac(m) => HostId::Mac(m.0),
        HostRef::Ip(ip) => HostId::Ip(*ip),
    }
}

fn allow_entries(allow: &[protocol::messages::AllowDest]) -> Vec<AllowEntry> {
    allow
        .iter()
        .map(|a| AllowEntry {
            ip: a.ip,
            port: a.port,
        })
        .collect()
}

impl Manager {
    /// A manager for `bridge`, started with `runtime` (already applied to the engine) and
    /// `rules_version`.
    pub fn new(
        bridge: Arc<Bridge>,
        cfg: Config,
        state_dir: PathBuf,
        bundle_key: Option<[u8; 32]>,
        runtime: Runtime,
        rules_version: String,
    ) -> Manager {
        let m = Manager {
            bridge,
            cfg,
            state_dir,
            bundle_key,
            state: Mutex::new(runtime),
            rules_version: Mutex::new(rules_version),
        };
        // isolation and exception hosts set by earlier commands
        let rt = m.lock();
        for (h, allow) in &rt.isolated {
            m.bridge
                .switch
                .isolation
                .isolate_with(host_id(h), &allow_entries(allow));
        }
        m.bridge
            .switch
            .set_exempt_hosts(Exceptions::of(&m.cfg, &rt).hosts);
        drop(rt);
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, rt: &Runtime) -> Result<(), String> {
        rt.save(&self.state_dir)
            .map_err(|e| format!("saving {}: {e}", Runtime::path(&self.state_dir).display()))
    }

    /// Rebuilds the engine with `rt` (rules compiled again) and swaps it in.
    fn rebuild(&self, rt: &Runtime) -> Result<(), String> {
        let dir = rt
            .bundle
            .as_ref()
            .map(|v| Runtime::bundle_dir(&self.state_dir, v));
        let built =
            engine::build(&self.cfg, rt, dir.as_deref(), true).map_err(|e| format!("{e:#}"))?;
        self.bridge.swap_engine(built.engine);
        self.bridge
            .switch
            .set_exempt_hosts(Exceptions::of(&self.cfg, rt).hosts);
        Ok(())
    }

    /// Stops the bridge a moment later, so that the command's result reaches the cloud.
    fn exit_soon(&self, why: &'static str) {
        let b = Arc::clone(&self.bridge);
        let _ = std::thread::Builder::new()
            .name("exit".into())
            .spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(2));
                b.request_exit(why);
            });
    }

    /// Back to factory state: everything that names the customer or holds a secret is
    /// overwritten with zeros and unlinked — the whole state folder (identity and key,
    /// spool, `runtime.json`, bundles, `mgmt.mac`, temporary files), the EVE file and its
    /// rotations, the rendered hostapd files — and the configuration is rewritten without
    /// its secrets, SSIDs, name, exceptions and isolated hosts. Then the appliance stops.
    /// The result (sent to the cloud, logged) says what was removed.
    fn wipe(&self) -> Result<String, String> {
        let mut w = crate::perms::Wipe::default();
        w.part("state folder", &self.state_dir, |w| w.contents(&self.state_dir));
        if let Some(eve) = self.cfg.output.eve.as_ref().filter(|p| p.as_os_str() != "-") {
            w.part("EVE", eve, |w| w.with_rotations(eve));
        }
        if let Some(d) = &self.cfg.output.hostapd_dir {
            w.part("hostapd", d, |w| {
                for n in ["hostapd-ssid1.conf", "hostapd-ssid2.conf"] {
                    w.file(&d.join(n));
                }
            });
        }
        if let Some(c) = &self.cfg.source {
            w.part("configuration (rewritten without secrets)", c, |w| w.config(c));
        }
        for f in &w.files {
            tracing::warn!(file = %f.display(), "wiped");
        }
        for e in &w.errors {
            tracing::error!(error = %e, "wipe");
        }
        let summary = w.summary(protocol::limits::MAX_TEXT_LEN);
        tracing::warn!(dir = %self.state_dir.display(), "{summary}");
        self.exit_soon("wipe");
        if w.errors.is_empty() {
            Ok(summary)
        } else {
            Err(format!("{}; {}", w.errors.join("; "), summary))
        }
    }
}

impl crate::uplink::Appliance for Manager {
    fn apply(&self, id: u64, cmd: &CommandKind) -> Result<String, String> {
        let mut st = self.lock();
        let iso = &self.bridge.switch.isolation;
        match cmd {
            CommandKind::IsolateHost { host, allow } => {
                let new = iso.isolate_with(host_id(host), &allow_entries(allow));
                st.isolated.retain(|(h, _)| h != host);
                st.isolated.push((*host, allow.clone()));
                self.save(&st)?;
                tracing::warn!(host = %host_id(host), "host isolated by the cloud");
                Ok(if new {
                    format!("{} isolated", host_id(host))
                } else {
                    format!("{} was already isolated", host_id(host))
                })
            }
            CommandKind::ReleaseHost { host } => {
                let was = iso.release(host_id(host));
                // a release by MAC also ends an isolation by the IP that MAC was using
                let left = iso.hosts();
                st.isolated
                    .retain(|(h, _)| h != host && left.contains(&host_id(h).to_string()));
                self.save(&st)?;
                tracing::warn!(host = %host_id(host), "host released by the cloud");
                Ok(if was {
                    format!("{} released", host_id(host))
                } else {
                    format!("{} was not isolated", host_id(host))
                })
            }
            CommandKind::SetMode(m) => {
                let mut e: Engine = (*self.bridge.engine()).clone();
                e.worker.prevent = *m == Mode::Prevent;
                self.bridge.swap_engine(e);
                st.mode = Some(*m);
                self.save(&st)?;
                Ok(format!(
                    "mode {}",
                    if *m == Mode::Prevent {
                        "prevent"
                    } else {
                        "detect"
                    }
                ))
            }
            CommandKind::AddException(e) | CommandKind::RemoveException(e) => {
                Exceptions::supported(e)?;
                let mut rt = st.clone();
                let add = matches!(cmd, CommandKind::AddException(_));
                rt.exceptions.retain(|x| x != e);
                if add {
                    rt.exceptions.push(e.clone());
                }
                if rt == *st {
                    return Ok("no change".into());
                }
                self.rebuild(&rt)?;
                self.save(&rt)?;
                *st = rt;
                Ok(format!(
                    "exception {} ({} in force)",
                    if add { "added" } else { "removed" },
                    st.exceptions.len()
                ))
            }
            CommandKind::Reboot => {
                if st.reboot_id == Some(id) {
                    return Ok("restarted".into());
                }
                st.reboot_id = Some(id);
                self.save(&st)?;
                tracing::warn!("reboot asked by the cloud");
                self.exit_soon("reboot");
                Ok("restarting".into())
            }
            CommandKind::Wipe => self.wipe(),
            CommandKind::BundleAvailable { .. } => {
                Err("bundle announcements are handled by the uplink".into())
            }
        }
    }

    fn install_bundle(&self, file: &[u8]) -> Result<String, String> {
        let key = self
            .bundle_key
            .ok_or("no uplink.bundle_key configured: bundles cannot be verified")?;
        let body = protocol::bundle::open(file, &key).map_err(|e| e.to_string())?;
        // `open` checked the paths and that the version is a safe folder name
        let v = body.version.clone();
        if body.file(engine::layout::RULES).is_some()
            || !body
                .files
                .iter()
                .any(|f| f.path.starts_with(&format!("{}/", engine::layout::RULES)))
        {
            return Err("the bundle has no rules/ folder".into());
        }
        let dir = Runtime::bundle_dir(&self.state_dir, &v);
        let tmp = Runtime::bundles_dir(&self.state_dir).join(format!(".{v}.tmp"));
        unpack(&body, &tmp)?;
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        sync_dir(&Runtime::bundles_dir(&self.state_dir))?;
        let mut st = self.lock();
        let mut rt = st.clone();
        rt.bundle = Some(v.clone());
        let built = match engine::build(&self.cfg, &rt, Some(&dir), true) {
            Ok(b) if b.loaded.failures.is_empty() && !b.loaded.ruleset.rules.is_empty() => b,
            Ok(b) => {
                let _ = std::fs::remove_dir_all(&dir);
                let first = b
                    .loaded
                    .failures
                    .first()
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "no rule loaded".into());
                return Err(format!(
                    "{} of {} rules do not compile; first: {first}",
                    b.loaded.failures.len(),
                    b.loaded.enabled
                ));
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("{e:#}"));
            }
        };
        let rules = built.loaded.ruleset.rules.len();
        self.bridge.swap_engine(built.engine);
        self.save(&rt)?;
        let old = std::mem::replace(&mut *st, rt);
        *self.rules_version.lock().unwrap_or_else(|e| e.into_inner()) = v.clone();
        if let Some(o) = old.bundle.filter(|o| *o != v) {
            let _ = std::fs::remove_dir_all(Runtime::bundle_dir(&self.state_dir, &o));
        }
        tracing::info!(version = %v, rules, "rule bundle installed");
        Ok(v)
    }

    fn rules_version(&self) -> String {
        self.rules_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn mode(&self) -> Mode {
        if self.bridge.engine().worker.prevent {
            Mode::Prevent
        } else {
            Mode::Detect
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut c = self.bridge.load_counters();
        c.extend(self.bridge.flood_counters());
        c
    }
}

/// Writes a verified bundle's files under `dir` (paths were checked by `bundle::open`).
fn unpack(body: &protocol::bundle::BundleBody, dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut dirs = std::collections::BTreeSet::new();
    for f in &body.files {
        let p = dir.join(&f.path);
        if let Some(parent) = p.parent() {
            crate::perms::create_dir_private(parent)
                .map_err(|e| format!("{}: {e}", parent.display()))?;
            dirs.insert(parent.to_path_buf());
        }
        // on disk before runtime.json names the bundle: a power cut cannot leave a
        // half-written rule set behind a saved state
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = crate::perms::create_private(&p)?;
            file.write_all(&f.data)?;
            file.sync_all()
        };
        write().map_err(|e| format!("{}: {e}", p.display()))?;
    }
    for d in dirs.iter().chain(std::iter::once(&dir.to_path_buf())) {
        sync_dir(d)?;
    }
    Ok(())
}

fn sync_dir(d: &Path) -> Result<(), String> {
    std::fs::File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("{}: {e}", d.display()))
}

/// The spool and the uplink's handle, shared by the event thread and the uplink thread.
pub struct CloudLink {
    pub spool: Arc<crate::uplink::RedbSpool>,
    handle: Arc<std::sync::OnceLock<UplinkHandle>>,
}

impl CloudLink {
    /// Opens the spool before the bridge starts: detections are kept from the first frame,
    /// whether the cloud is reachable or not.
    pub fn open(u: &super::config::RunUplink) -> anyhow::Result<CloudLink> {
        use anyhow::Context;
        crate::perms::create_dir_private(&u.state_dir)
            .with_context(|| format!("creating {}", u.state_dir.display()))?;
        let spool =
            crate::uplink::RedbSpool::open(&u.state_dir, u.spool_max_events)
                .with_context(|| format!("spool in {}", u.state_dir.display()))?;
        Ok(CloudLink {
            spool: Arc::new(spool),
            handle: Arc::new(std::sync::OnceLock::new()),
        })
    }

    /// The event thread's sink: records → protocol events → spool.
    pub fn sink(&self, home_net: rules::addr::AddrSet) -> super::run::RecordSink {
        let spool: Arc<dyn Spool> = self.spool.clone();
        let cell = Arc::clone(&self.handle);
        // a flood makes every batch fail: one line per ten seconds at most
        let mut last_error: Option<std::time::Instant> = None;
        Box::new(move |engine: &Engine, records: &[Record]| {
            let mut conv = AlertConverter::new(&engine.ruleset, &engine.classes, &home_net);
            // one event the protocol would refuse must not cost the batch
            let events: Vec<_> = records
                .iter()
                .filter_map(|r| conv.convert_event(r))
                .filter(|e| match protocol::Validate::validate(e) {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::error!(error = %err, "an event breaks a protocol limit; not spooled");
                        false
                    }
                })
                .collect();
            if events.is_empty() {
                return;
            }
            if let Err(e) = spool.append_batch(&events) {
                if last_error.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10)) {
                    last_error = Some(std::time::Instant::now());
                    tracing::error!(error = %e, events = events.len(), refused_total = spool.refused(), "events not spooled");
                }
            }
            if let Some(h) = cell.get() {
                h.notify_spooled();
            }
        })
    }
}

/// What the uplink thread needs.
pub struct UplinkStart {
    pub bridge: Arc<Bridge>,
    pub cfg: Config,
    pub uplink: super::config::RunUplink,
    pub runtime: Runtime,
    pub rules_version: String,
}

/// The management MAC: configured, else a locally administered address made once and kept
/// in the state folder.
pub fn management_mac(cfg: &Config, state_dir: &Path) -> anyhow::Result<[u8; 6]> {
    use anyhow::Context;
    if let Some(m) = &cfg.management.mac {
        return super::config::parse_mac(m).map_err(anyhow::Error::msg);
    }
    let p = state_dir.join("mgmt.mac");
    if let Some(m) = std::fs::read_to_string(&p)
        .ok()
        .and_then(|text| super::config::parse_mac(&text).ok())
    {
        return Ok(m);
    }
    let mut m: [u8; 6] = rand::random();
    m[0] = (m[0] & 0xfc) | 0x02;
    let text = protocol::messages::Mac(m).to_string();
    crate::perms::create_dir_private(state_dir).ok();
    crate::perms::create_private(&p)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .with_context(|| format!("writing {}", p.display()))?;
    Ok(m)
}

/// Runs the uplink until the bridge stops: waits for the management address (in-band),
/// activates with the configured code on the first start, then keeps the session to the
/// cloud. Blocks; run it on its own thread.
pub fn run_uplink(start: UplinkStart, link: &CloudLink) {
    use super::config::UplinkMode;
    use crate::uplink::{self as up, Identity, StateDir, Transport, Uplink, UplinkOptions};
    let UplinkStart {
        bridge,
        cfg,
        uplink: u,
        runtime,
        rules_version,
    } = start;
    let bundle_key = u.bundle_key.as_ref().and_then(|k| {
        let mut b = [0u8; 32];
        hex::decode_to_slice(k, &mut b).ok().map(|_| b)
    });
    let manager = Arc::new(Manager::new(
        Arc::clone(&bridge),
        cfg.clone(),
        u.state_dir.clone(),
        bundle_key,
        runtime,
        rules_version,
    ));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("uplink")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the uplink runtime; running without the cloud");
            return;
        }
    };
    up::tls::install_provider();
    rt.block_on(async move {
        let stopped = || bridge.stopping();
        let transport = match (u.mode, bridge.mgmt.get()) {
            (UplinkMode::Inband, Some(m)) => {
                let mut waited = 0u64;
                loop {
                    if stopped() {
                        return;
                    }
                    match m.wait_configured(std::time::Duration::from_secs(5)).await {
                        Ok(s) => {
                            tracing::info!(status = ?s, "management address configured");
                            break;
                        }
                        Err(_) => {
                            waited += 5;
                            if waited.is_multiple_of(30) {
                                tracing::warn!(seconds = waited, "no management address yet (DHCP)");
                            }
                        }
                    }
                }
                Transport::InBand(m.clone())
            }
            _ => Transport::Host,
        };
        let state = StateDir::new(&u.state_dir);
        let mut delay = std::time::Duration::from_secs(1);
        while !state.is_activated() {
            let (Some(code), Some(cloud), Some(ca)) = (&u.activation_code, &u.cloud, &u.cloud_ca) else {
                tracing::error!(dir = %u.state_dir.display(), "not activated: set uplink.activation_code, uplink.cloud and uplink.cloud_ca (or run `mimamori-appliance activate`); running without the cloud");
                return;
            };
            let cloud = match up::CloudAddr::parse(cloud) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "uplink.cloud");
                    return;
                }
            };
            let opts = up::ActivateOptions {
                cloud,
                code: code.clone(),
                state_dir: u.state_dir.clone(),
                ca_file: ca.clone(),
                force: false,
                firmware: up::FIRMWARE_VERSION.into(),
                rules_version: crate::uplink::Appliance::rules_version(&*manager),
                transport: transport.clone(),
            };
            match up::activate(&opts).await {
                Ok(dev) => tracing::info!(device = %dev, "activated"),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "activation failed");
                    for _ in 0..delay.as_millis() / 200 {
                        if stopped() {
                            return;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    delay = (delay * 2).min(std::time::Duration::from_secs(60));
                }
            }
        }
        let identity: Identity = match state.load(u.cloud.as_deref()) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "cannot load the device identity; running without the cloud");
                return;
            }
        };
        let mut opts = match UplinkOptions::new(&identity, up::FIRMWARE_VERSION, &crate::uplink::Appliance::rules_version(&*manager)) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "uplink options");
                return;
            }
        };
        opts.transport = transport;
        opts.heartbeat = std::time::Duration::from_secs(u.heartbeat_secs);
        opts.appliance = Some(manager.clone() as Arc<dyn crate::uplink::Appliance>);
        let uplink = Uplink::spawn(opts, link.spool.clone());
        let _ = link.handle.set(uplink.handle());
        uplink.handle().notify_spooled();
        tracing::info!(device = %identity.device, cloud = %identity.cloud, "uplink started");
        while !stopped() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        uplink.shutdown().await;
    });
}
