//! Heartbeat watch (SPEC §5.4): an appliance without a heartbeat for `stop_after` is
//! stopped → stop notice; a daily check at `daily_check_at` (local time) mails again for
//! each still-stopped appliance; a recovery mail when heartbeats resume. Nothing for
//! appliances not yet activated or whose contract ended, and nothing during the grace
//! period after the cloud starts. Time is passed in, so tests move a clock instead of
//! waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Ms;
use crate::config::Config;
use crate::contract::Date;
use crate::store::{DeviceStatus, Tx};
use crate::{App, Liveness, notify};

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub stop_notices: Vec<String>,
    pub recoveries: Vec<String>,
    pub daily_notices: Vec<String>,
}

/// One pass over every device. `live` is the in-memory liveness (flushed here);
/// `daily` forces the daily re-notification.
pub fn pass(
    tx: &mut Tx,
    cfg: &Config,
    started_ms: Ms,
    now: Ms,
    live: &mut HashMap<String, Liveness>,
    daily: bool,
) -> crate::store::Result<Pass> {
    let tz = cfg.utc_offset_secs();
    let stop_after = cfg.timing.stop_after.as_millis() as i64;
    let in_grace = now - started_ms < cfg.timing.startup_grace.as_millis() as i64;
    let today = Date::of_ms(now, tz);
    let mut out = Pass::default();
    for mut d in tx.devices()? {
        let mut changed = false;
        if let Some(l) = live.get_mut(&d.id) {
            if l.dirty {
                d.last_heartbeat_ms = Some(l.last_ms.max(d.last_heartbeat_ms.unwrap_or(0)));
                if !l.firmware.is_empty() {
                    d.firmware = l.firmware.clone();
                }
                if !l.rules_version.is_empty() {
                    d.rules_version = l.rules_version.clone();
                }
                if !l.counters.is_empty() {
                    d.counters = l.counters.clone();
                }
                l.dirty = false;
                changed = true;
            }
        }
        if d.status != DeviceStatus::Active {
            if changed {
                tx.put_device(&d)?;
            }
            continue;
        }
        let Some(contract) = tx.contract(d.contract_id)? else {
            continue;
        };
        let ended = contract.ended.is_some_and(|e| e < today);
        let last = d
            .last_heartbeat_ms
            .or(d.activated_ms)
            .unwrap_or(d.created_ms);
        let silent = now - last > stop_after;
        match (d.stopped_since_ms, silent) {
            (Some(since), false) => {
                // heartbeats resumed
                d.stopped_since_ms = None;
                changed = true;
                if !ended {
                    let (s, b) = notify::compose::recovery_mail(&contract, &d, since, now, tz);
                    notify::queue_to_contract(tx, now, contract.id, &s, &b, "recovery")?;
                    out.recoveries.push(d.id.clone());
                }
            }
            (None, true) if !in_grace && !ended => {
                d.stopped_since_ms = Some(now);
                changed = true;
                let (s, b) = notify::compose::stop_mail(&contract, &d, last, now, tz, false);
                notify::queue_to_contract(tx, now, contract.id, &s, &b, "stop")?;
                out.stop_notices.push(d.id.clone());
            }
            (Some(_), true) if daily && !ended => {
                let (s, b) = notify::compose::stop_mail(&contract, &d, last, now, tz, true);
                notify::queue_to_contract(tx, now, contract.id, &s, &b, "stop-daily")?;
                out.daily_notices.push(d.id.clone());
            }
            _ => {}
        }
        if changed {
            tx.put_device(&d)?;
        }
    }
    Ok(out)
}

/// Whether the daily check is due now (local time past `daily_check_at`, not yet run
/// today); records today's run when it is.
pub fn daily_due(tx: &mut Tx, cfg: &Config, now: Ms) -> crate::store::Result<bool> {
    let tz = cfg.utc_offset_secs();
    let (h, m) = crate::clock::parse_hhmm(&cfg.timing.daily_check_at).unwrap_or((9, 0));
    let local_secs = (now.div_euclid(1000) + tz).rem_euclid(86_400);
    if local_secs < (h * 3600 + m * 60) as i64 {
        return Ok(false);
    }
    let today = Date::of_ms(now, tz).to_string();
    if tx
        .meta("daily_check_date")?
        .is_some_and(|v| v == today.as_bytes())
    {
        return Ok(false);
    }
    tx.set_meta("daily_check_date", today.as_bytes())?;
    Ok(true)
}

/// Run the watch forever (one pass per second).
pub async fn run(app: Arc<App>, force_daily: Arc<tokio::sync::Notify>) {
    loop {
        let forced = tokio::select! {
            _ = force_daily.notified() => true,
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
        };
        let now = app.now();
        let mut live = std::mem::take(&mut *app.liveness.lock().unwrap_or_else(|e| e.into_inner()));
        let res = app.store.write(|tx| {
            let daily = forced || daily_due(tx, &app.cfg, now)?;
            pass(tx, &app.cfg, app.started_ms, now, &mut live, daily)
        });
        {
            // merge back: entries updated meanwhile win
            let mut m = app.liveness.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in live {
                m.entry(k).or_insert(v);
            }
        }
        match res {
            Ok(p) => {
                for d in &p.stop_notices {
                    tracing::warn!(device = %d, "appliance stopped: notice queued");
                }
                for d in &p.recoveries {
                    tracing::info!(device = %d, "appliance recovered: mail queued");
                }
                if !p.daily_notices.is_empty() {
                    tracing::info!(
                        devices = p.daily_notices.len(),
                        "daily check: still-stopped appliances notified"
                    );
                }
                if !(p.stop_notices.is_empty()
                    && p.recoveries.is_empty()
                    && p.daily_notices.is_empty())
                {
                    app.mail_queued.notify_one();
                }
            }
            Err(e) => tracing::error!(error = %e, "heartbeat watch pass failed"),
        }
    }
}

#[cfg(test)]
mod test;
