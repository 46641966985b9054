//! Many appliances in one process, for tests and load tests of the cloud
//! (`mimamori-appliance simulate`): each device is activated once (its own state folder), then
//! runs a real uplink sending heartbeats and synthetic alerts at a share of the total rate.
//!
//! The alerts look like real ones: outbound flows from internal hosts in 198.18.0.0/16 to
//! external hosts in 198.19.0.0/16 (the benchmarking range 198.18.0.0/15), ET-style rules;
//! one in ten is a C2 beacon with `signature_severity Major` / `confidence High`, the others
//! are `Minor`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use protocol::UrlRef;
use protocol::bounded::{HostName, MetaValue, Name, Text};
use protocol::messages::{
    Action, Alert, Detection, Direction, Event, FlowRef, IpProto, Mac, MetaPair, Signature, UnixMs,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::activate::{ActivateOptions, activate};
use super::client::{Uplink, UplinkHandle, UplinkOptions};
use super::identity::StateDir;
use super::spool::{MemorySpool, RedbSpool, Spool, SpoolError};
use super::tls::CloudAddr;

/// How often each device's generator adds alerts to its spool.
const TICK: Duration = Duration::from_millis(100);
/// Activations run at most this many at a time.
const ACTIVATION_CONCURRENCY: usize = 8;
/// Devices started per ramp step, and the pause between steps (spreads the connection storm).
const RAMP_STEP: usize = 100;
const RAMP_PAUSE: Duration = Duration::from_millis(20);

/// Settings of a simulation.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Number of devices.
    pub devices: usize,
    /// The cloud.
    pub cloud: CloudAddr,
    /// CA of the cloud's server certificate (for activation).
    pub ca_file: PathBuf,
    /// One activation code per line; line i activates device i.
    pub codes_file: PathBuf,
    /// Device i lives in `<state_root>/dev-<i>`.
    pub state_root: PathBuf,
    /// Alerts per second across all devices; 0 sends heartbeats only.
    pub rate: f64,
    /// How long alerts are generated.
    pub duration: Duration,
    /// Heartbeat interval of every device.
    pub heartbeat: Duration,
    /// In-memory spools instead of redb files.
    pub memory_spool: bool,
    /// How long to wait for the acknowledgement of everything after generating.
    pub drain_timeout: Duration,
    /// Events per batch.
    pub batch_max: usize,
    /// Spool bound per device.
    pub max_events: u64,
}

/// The outcome, printed as one line.
#[derive(Debug, Clone, Default)]
pub struct SimulateSummary {
    pub devices: usize,
    /// Devices activated by this run.
    pub activated: usize,
    /// Alerts generated and spooled.
    pub generated: u64,
    /// Alerts the cloud acknowledged.
    pub acked: u64,
    /// From the start of the uplinks to the end of the drain.
    pub elapsed: Duration,
    pub reconnects: u64,
    /// Failed connection attempts and sessions (refusals included).
    pub errors: u64,
    /// Alerts refused because a spool was full.
    pub spool_refused: u64,
    /// Alerts still spooled at the end.
    pub left: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
    /// Devices the cloud refused for good.
    pub stopped: usize,
    /// One example error, for the operator.
    pub last_error: Option<String>,
}

impl SimulateSummary {
    /// Whether every generated alert was acknowledged and no device was refused.
    pub fn ok(&self) -> bool {
        self.left == 0 && self.stopped == 0 && self.spool_refused == 0
    }
}

impl fmt::Display for SimulateSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "simulate: devices={} activated={} generated={} acked={} acked_per_s={:.0} elapsed_s={:.2} heartbeats={} reconnects={} errors={} spool_refused={} left={} stopped={}",
            self.devices,
            self.activated,
            self.generated,
            self.acked,
            self.acked as f64 / secs,
            secs,
            self.heartbeats,
            self.reconnects,
            self.errors,
            self.spool_refused,
            self.left,
            self.stopped
        )?;
        if let Some(e) = &self.last_error {
            write!(f, " last_error=\"{e}\"")?;
        }
        Ok(())
    }
}

/// Runs the simulation.
pub async fn simulate(opts: &SimulateOptions) -> anyhow::Result<SimulateSummary> {
    let activated = activate_missing(opts).await?;
    let mut uplinks = Vec::with_capacity(opts.devices);
    let started = Instant::now();
    for i in 0..opts.devices {
        let state = StateDir::new(device_dir(&opts.state_root, i));
        let identity = state
            .load(Some(&opts.cloud.to_string()))
            .with_context(|| format!("device {i}"))?;
        let spool: Arc<dyn Spool> = if opts.memory_spool {
            Arc::new(MemorySpool::new(opts.max_events))
        } else {
            Arc::new(
                RedbSpool::open(state.path(), opts.max_events)
                    .with_context(|| format!("device {i}"))?,
            )
        };
        let mut uopts = UplinkOptions::new(&identity, super::FIRMWARE_VERSION, "simulate")?;
        uopts.heartbeat = opts.heartbeat;
        uopts.batch_max = opts.batch_max;
        uplinks.push(Uplink::spawn(uopts, spool));
        if (i + 1) % RAMP_STEP == 0 {
            tokio::time::sleep(RAMP_PAUSE).await;
        }
    }
    let generated = Arc::new(AtomicU64::new(0));
    generate(opts, &uplinks, &generated).await;
    let drained = drain_all(&uplinks, opts.drain_timeout).await;
    let elapsed = started.elapsed();
    let mut sum = SimulateSummary {
        devices: opts.devices,
        activated,
        generated: generated.load(Ordering::Relaxed),
        elapsed,
        ..SimulateSummary::default()
    };
    for (uplink, drained) in uplinks.iter().zip(&drained) {
        let c = uplink.handle().snapshot().await;
        sum.acked += c.events_acked;
        sum.reconnects += c.reconnects;
        sum.errors += c.errors;
        sum.spool_refused += c.spool_refused;
        sum.left += c.spool_len;
        sum.heartbeats += c.heartbeats_sent;
        sum.stopped += usize::from(c.stopped.is_some());
        if let Some(e) = c.last_error.or_else(|| drained.clone()) {
            sum.last_error = Some(e);
        }
    }
    for uplink in uplinks {
        uplink.shutdown().await;
    }
    Ok(sum)
}

/// The state folder of device `i`.
pub fn device_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("dev-{i}"))
}

/// Activates every device whose folder has no identity; returns how many were activated.
async fn activate_missing(opts: &SimulateOptions) -> anyhow::Result<usize> {
    let missing: Vec<usize> = (0..opts.devices)
        .filter(|i| !StateDir::new(device_dir(&opts.state_root, *i)).is_activated())
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let text = std::fs::read_to_string(&opts.codes_file)
        .with_context(|| format!("reading activation codes {}", opts.codes_file.display()))?;
    let codes: Vec<&str> = text.lines().map(str::trim).collect();
    let limit = Arc::new(Semaphore::new(ACTIVATION_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for &i in &missing {
        let code = codes
            .get(i)
            .copied()
            .filter(|c| !c.is_empty())
            .with_context(|| {
                format!(
                    "device {i} needs an activation code on line {} of {}",
                    i + 1,
                    opts.codes_file.display()
                )
            })?;
        let aopts = ActivateOptions {
            cloud: opts.cloud.clone(),
            code: code.to_string(),
            state_dir: device_dir(&opts.state_root, i),
            ca_file: opts.ca_file.clone(),
            force: false,
            firmware: super::FIRMWARE_VERSION.to_string(),
            rules_version: "simulate".into(),
            transport: Default::default(),
        };
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            activate(&aopts)
                .await
                .with_context(|| format!("activating device {i} ({})", aopts.state_dir.display()))
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("activation task")??;
    }
    Ok(missing.len())
}

/// Generates alerts on every device at its share of the rate, for the duration.
async fn generate(opts: &SimulateOptions, uplinks: &[Uplink], generated: &Arc<AtomicU64>) {
    if opts.rate <= 0.0 || uplinks.is_empty() {
        tokio::time::sleep(opts.duration).await;
        return;
    }
    let per_device = opts.rate / uplinks.len() as f64;
    let end = Instant::now() + opts.duration;
    let mut tasks = JoinSet::new();
    for (i, uplink) in uplinks.iter().enumerate() {
        let (handle, generated) = (uplink.handle(), Arc::clone(generated));
        tasks.spawn(device_generator(i, handle, per_device, end, generated));
    }
    while tasks.join_next().await.is_some() {}
}

/// One device's generator: a token bucket refilled every tick.
async fn device_generator(
    device: usize,
    handle: UplinkHandle,
    rate: f64,
    end: Instant,
    generated: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    let (mut tokens, mut n, mut ticks) = (0.0f64, 0u64, 0u64);
    while Instant::now() < end {
        tick.tick().await;
        // a traffic record of one host every second
        if ticks.is_multiple_of(10) {
            let t = Event::TrafficSummary(synthetic_traffic(device, ticks / 10));
            if let Err(e) = handle.send(vec![t]).await {
                tracing::error!(device, error = %e, "cannot spool a synthetic traffic record");
            }
        }
        ticks += 1;
        let now = Instant::now().min(end);
        tokens += rate * (now - last).as_secs_f64();
        last = now;
        let count = tokens.floor() as u64;
        if count == 0 {
            continue;
        }
        tokens -= count as f64;
        let mut left = count;
        while left > 0 {
            let take = left.min(protocol::limits::MAX_EVENTS_PER_BATCH as u64);
            let events: Vec<Event> = (0..take)
                .map(|k| Event::Alert(synthetic_alert(device, n + k)))
                .collect();
            n += take;
            left -= take;
            match handle.send(events).await {
                Ok(_) => generated.fetch_add(take, Ordering::Relaxed),
                Err(SpoolError::Full { stored, .. }) => {
                    generated.fetch_add(stored as u64, Ordering::Relaxed)
                }
                Err(e) => {
                    tracing::error!(device, error = %e, "cannot spool synthetic alerts");
                    0
                }
            };
        }
    }
}

/// Drains every uplink concurrently; returns each one's drain error, if any.
async fn drain_all(uplinks: &[Uplink], timeout: Duration) -> Vec<Option<String>> {
    let mut tasks = JoinSet::new();
    for (i, uplink) in uplinks.iter().enumerate() {
        let handle = uplink.handle();
        tasks.spawn(async move { (i, handle.drain(timeout).await.err().map(|e| e.to_string())) });
    }
    let mut out = vec![None; uplinks.len()];
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, e)) = done {
            out[i] = e;
        }
    }
    out
}

/// The internal host of the `n`-th synthetic event of `device`: one of five per device,
/// in 198.18.0.0/16, with a locally administered MAC naming the device; and its number.
fn synthetic_host(device: usize, n: u64) -> (u64, protocol::messages::InternalHost) {
    let h = (device as u64 * 7 + n % 5) % 65_534 + 1;
    let d = device as u64;
    let host = protocol::messages::InternalHost {
        ip: IpAddr::V4(Ipv4Addr::new(198, 18, (h >> 8) as u8, h as u8)),
        mac: Mac([
            0x02,
            0x00,
            (d >> 16) as u8,
            (d >> 8) as u8,
            d as u8,
            (h % 256) as u8,
        ]),
    };
    (h, host)
}

/// Applications of the synthetic traffic records: (category, app, typical bytes).
const SYNTHETIC_APPS: [(&str, &str, u64); 8] = [
    ("webmail", "Gmail", 2_400_000),
    ("video", "YouTube", 48_000_000),
    ("social_networks", "LINE", 3_100_000),
    ("news", "Yahoo! JAPAN", 5_200_000),
    ("filehosting", "Dropbox", 21_000_000),
    ("", "Microsoft 365", 12_500_000),
    ("shopping", "Amazon", 1_800_000),
    ("", "", 900_000),
];

/// The `n`-th synthetic traffic record of `device`: one of five hosts in the current
/// ten-minute bucket, a few applications with volumes that vary by host.
pub fn synthetic_traffic(device: usize, n: u64) -> protocol::messages::TrafficSummary {
    use protocol::messages::{TrafficEntry, TrafficSummary, UnixSecs};
    let (h, host) = synthetic_host(device, n);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_secs());
    let bucket = now - now % protocol::limits::TRAFFIC_BUCKET_SECS;
    let entries = SYNTHETIC_APPS
        .iter()
        .enumerate()
        .filter(|(i, _)| (h + *i as u64 + n) % 3 != 0)
        .map(|(i, (cat, app, bytes))| {
            let scale = 1 + (h * 3 + i as u64) % 4;
            TrafficEntry {
                category: Name::truncated(cat),
                app: Name::truncated(app),
                bytes_in: bytes * scale,
                bytes_out: bytes * scale / 12,
                flows: 3 + (h + i as u64) % 20,
            }
        })
        .collect();
    TrafficSummary {
        host,
        bucket_start: UnixSecs(bucket),
        entries,
    }
}

/// The `n`-th synthetic alert of `device`.
pub fn synthetic_alert(device: usize, n: u64) -> Alert {
    let (_, internal) = synthetic_host(device, n);
    let remote = (n * 37 + device as u64) % 65_534 + 1;
    let external = Ipv4Addr::new(198, 19, (remote >> 8) as u8, remote as u8);
    let (sid, msg, classtype, severity, meta, port): (u32, &str, &str, u8, &[(&str, &str)], u16) =
        if n.is_multiple_of(10) {
            (
                2_999_001,
                "ET MALWARE Simulated Win32/Agent CnC Beacon",
                "trojan-activity",
                1,
                &[
                    ("attack_target", "Client_Endpoint"),
                    ("confidence", "High"),
                    ("malware_family", "Simulated"),
                    ("signature_severity", "Major"),
                ],
                443,
            )
        } else {
            (
                2_999_002,
                "ET INFO Simulated Suspicious User-Agent",
                "bad-unknown",
                2,
                &[("confidence", "Medium"), ("signature_severity", "Minor")],
                80,
            )
        };
    let metadata = meta
        .iter()
        .map(|(k, v)| MetaPair {
            key: Name::truncated(k),
            value: MetaValue::truncated(v),
        })
        .collect();
    let c2 = port == 443;
    Alert {
        time: UnixMs(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| t.as_millis() as u64),
        ),
        flow: FlowRef {
            proto: IpProto::Tcp,
            direction: Direction::Outbound,
            internal_ip: internal.ip,
            internal_port: Some(49_152 + (n % 16_000) as u16),
            internal_mac: internal.mac,
            external_ip: IpAddr::V4(external),
            external_port: Some(port),
        },
        detection: Detection::Signature(Signature {
            gid: 1,
            sid,
            rev: 1,
            msg: Text::truncated(msg),
            classtype: Some(Name::truncated(classtype)),
            severity,
            metadata,
        }),
        url: (!c2).then(|| UrlRef::from_url("http://update.simulated.example/check.php?id=1")),
        sni: c2.then(|| HostName::truncated("cdn.simulated-c2.example")),
        dns_name: None,
        action: Action::Allowed,
    }
}

#[cfg(test)]
mod test {
    use protocol::Validate;

    use super::*;

    #[test]
    fn synthetic_traffic_is_valid_and_bucketed() {
        for n in 0..10 {
            let t = synthetic_traffic(2, n);
            protocol::messages::Event::TrafficSummary(t.clone())
                .validate()
                .expect("valid");
            assert_eq!(t.bucket_start.0 % protocol::limits::TRAFFIC_BUCKET_SECS, 0);
            assert!(!t.entries.is_empty());
        }
    }

    #[test]
    fn synthetic_alerts_are_valid_and_mixed() {
        let alerts: Vec<Alert> = (0..20).map(|n| synthetic_alert(3, n)).collect();
        for a in &alerts {
            a.validate().expect("valid");
            let IpAddr::V4(ip) = a.flow.internal_ip else {
                panic!("v4")
            };
            assert_eq!(ip.octets()[..2], [198, 18]);
        }
        let major = alerts
            .iter()
            .filter(|a| matches!(&a.detection, Detection::Signature(s) if s.meta("signature_severity") == Some("Major")))
            .count();
        assert_eq!(major, 2);
        assert_eq!(alerts[1].url.as_ref().map(|u| u.path()), Some("/check.php"));
    }
}
