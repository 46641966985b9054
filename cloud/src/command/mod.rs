//! Commands to appliances (SPEC §4, issue 7): isolate/release a host, set the mode,
//! exceptions, reboot, wipe, "a rule bundle is available".
//!
//! ```text
//! admin API / portal / auto-isolation (ingest) ─queue→ store `commands` (Pending)
//!        └─ App::commands (watch) wakes every ingest session
//! ingest session of that device ─Command→ appliance   (Pending → Sent)
//! appliance ─CommandResult / BundleStatus→ ingest     (Sent → Done | Failed)
//! ```
//!
//! Commands are durable: a command queued while the appliance is offline goes out when it
//! connects; one sent but not answered goes out again on the next connection (the appliance
//! applies every command idempotently).

pub mod bundle;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use protocol::messages::{AllowDest, Command, CommandKind, HostRef, Mac};

use crate::App;
use crate::store::{
    BundleReport, CommandRecord, CommandState, Device, DeviceStatus, StoreError, Tx,
};

/// Parses a host: a MAC address (`aa:bb:cc:dd:ee:ff`) or an IP address.
pub fn parse_host(s: &str) -> Result<HostRef, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(HostRef::Ip(ip));
    }
    s.parse::<Mac>()
        .map(HostRef::Mac)
        .map_err(|_| format!("`{s}` is not an IP address or a MAC address (aa:bb:cc:dd:ee:ff)"))
}

/// Parses an allowed destination: `IP`, `IP:port` or `[IPv6]:port`.
pub fn parse_allow(s: &str) -> Result<AllowDest, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(AllowDest { ip, port: None });
    }
    match s.parse::<SocketAddr>() {
        Ok(a) => Ok(AllowDest {
            ip: a.ip(),
            port: Some(a.port()),
        }),
        Err(_) => Err(format!(
            "`{s}` is not an allowed destination (IP, IP:port or [IPv6]:port)"
        )),
    }
}

/// Shows a host as the operator typed it.
pub fn host_text(h: &HostRef) -> String {
    match h {
        HostRef::Ip(ip) => ip.to_string(),
        HostRef::Mac(m) => m.to_string(),
    }
}

/// One line describing a command, for the CLI and the portal.
pub fn describe(k: &CommandKind) -> String {
    match k {
        CommandKind::IsolateHost { host, allow } => {
            let allow: Vec<String> = allow
                .iter()
                .map(|a| match a.port {
                    Some(p) => SocketAddr::new(a.ip, p).to_string(),
                    None => a.ip.to_string(),
                })
                .collect();
            if allow.is_empty() {
                format!("isolate {}", host_text(host))
            } else {
                format!("isolate {} (allow {})", host_text(host), allow.join(", "))
            }
        }
        CommandKind::ReleaseHost { host } => format!("release {}", host_text(host)),
        CommandKind::SetMode(m) => format!("mode {m:?}").to_lowercase(),
        CommandKind::AddException(e) => format!("add exception {e:?}"),
        CommandKind::RemoveException(e) => format!("remove exception {e:?}"),
        CommandKind::Reboot => "reboot".into(),
        CommandKind::Wipe => "wipe".into(),
        CommandKind::BundleAvailable { version, .. } => {
            format!("rule bundle {} available", version.as_str())
        }
    }
}

/// Hosts isolated on a device by its commands (requested or carried out, not refused),
/// with the command that isolated each.
pub fn isolated_hosts(cmds: &[CommandRecord]) -> Vec<(HostRef, &CommandRecord)> {
    let mut out: Vec<(HostRef, &CommandRecord)> = Vec::new();
    for c in cmds.iter().filter(|c| c.state != CommandState::Failed) {
        match &c.kind {
            CommandKind::IsolateHost { host, .. } => {
                out.retain(|(h, _)| h != host);
                out.push((*host, c));
            }
            CommandKind::ReleaseHost { host } => out.retain(|(h, _)| h != host),
            _ => {}
        }
    }
    out
}

/// The isolation command for `host` with the contract's allow-list.
pub fn isolate_kind(host: HostRef, allow: &[String]) -> CommandKind {
    CommandKind::IsolateHost {
        host,
        allow: allow
            .iter()
            .filter_map(|a| parse_allow(a).ok())
            .take(protocol::limits::MAX_ALLOW_RULES)
            .collect(),
    }
}

/// Queues a command for an active device and wakes its session; `actor` (an operator or
/// a portal user) is its origin and is recorded in the audit log with it.
pub fn request(
    app: &App,
    device: &str,
    kind: CommandKind,
    actor: &crate::audit::Actor,
) -> Result<CommandRecord, StoreError> {
    let now = app.now();
    let origin = actor.to_string();
    let origin = origin.as_str();
    let rec = app.store.write(|tx| {
        let d = tx
            .device(device)?
            .ok_or_else(|| StoreError::NotFound(format!("device {device}")))?;
        if d.status != DeviceStatus::Active {
            return Err(StoreError::Refused(format!(
                "device {device} is not active ({:?})",
                d.status
            )));
        }
        let c = tx.queue_command(&d, kind.clone(), origin, now)?;
        crate::audit::record(
            tx,
            actor,
            Some(d.contract_id),
            "device.command",
            &format!("device {device}"),
            serde_json::Value::Null,
            serde_json::json!({"command": c.id, "what": describe(&c.kind)}),
        )?;
        Ok(c)
    })?;
    tracing::info!(device, id = rec.id, command = %describe(&rec.kind), origin, "command queued");
    app.commands_changed(Some(device));
    Ok(rec)
}

/// Inside the ingest transaction: a ★★★ alert on a contract with auto-isolation isolates
/// the host at once, unless it is already isolated.
pub fn auto_isolate(
    tx: &mut Tx,
    device: &str,
    host: HostRef,
    allow: &[String],
    alert_id: u64,
    now: i64,
) -> Result<bool, StoreError> {
    let Some(d) = tx.device(device)? else {
        return Ok(false);
    };
    let cmds = tx.commands_of(device)?;
    if isolated_hosts(&cmds).iter().any(|(h, _)| *h == host) {
        return Ok(false);
    }
    let c = tx.queue_command(
        &d,
        isolate_kind(host, allow),
        &format!("auto-isolation (alert {alert_id})"),
        now,
    )?;
    crate::audit::record(
        tx,
        &crate::audit::Actor::system("auto-isolation", now),
        Some(d.contract_id),
        "device.command",
        &format!("device {device}"),
        serde_json::Value::Null,
        serde_json::json!({"command": c.id, "what": describe(&c.kind), "alert": alert_id}),
    )?;
    Ok(true)
}

/// What one ingest session still has to send: the device's unanswered commands not yet
/// written on this connection (marked `Sent`). A rule bundle newer than what the appliance
/// runs is offered once per version (`speaks_bundles`: the session negotiated version 2);
/// offers of older versions still open are closed as superseded. Reads only, unless
/// something is to be sent.
pub fn outgoing(
    app: &App,
    device: &str,
    running_rules: &str,
    speaks_bundles: bool,
    sent_here: &mut HashSet<u64>,
) -> Result<Vec<Command>, StoreError> {
    let now = app.now();
    let current = if speaks_bundles {
        bundle::current(&app.store)?
    } else {
        None
    };
    let open = |c: &CommandRecord| matches!(c.state, CommandState::Pending | CommandState::Sent);
    let offer_of = |c: &CommandRecord| match &c.kind {
        CommandKind::BundleAvailable { version, .. } => Some(version.as_str().to_string()),
        _ => None,
    };
    let plan = |cmds: &[CommandRecord], sent_here: &HashSet<u64>| {
        let new_offer = current.as_ref().filter(|cur| {
            cur.version != running_rules
                && !cmds
                    .iter()
                    .any(|c| offer_of(c).as_deref() == Some(cur.version.as_str()))
        });
        let stale: Vec<u64> = cmds
            .iter()
            .filter(|c| open(c))
            .filter(|c| {
                offer_of(c).is_some_and(|v| current.as_ref().is_some_and(|cur| cur.version != v))
            })
            .map(|c| c.id)
            .collect();
        let send = cmds.iter().any(|c| {
            open(c)
                && !sent_here.contains(&c.id)
                && !stale.contains(&c.id)
                && (speaks_bundles || offer_of(c).is_none())
        });
        (new_offer.cloned(), stale, send)
    };
    let cmds = app.store.read(|rx| rx.commands_of(device))?;
    let (offer, stale, send) = plan(&cmds, sent_here);
    if offer.is_none() && stale.is_empty() && !send {
        return Ok(Vec::new());
    }
    app.store.write(|tx| {
        let Some(d) = tx.device(device)? else {
            return Ok(Vec::new());
        };
        let mut cmds = tx.commands_of(device)?;
        let (offer, stale, _) = plan(&cmds, sent_here);
        for c in cmds.iter_mut().filter(|c| stale.contains(&c.id)) {
            c.state = CommandState::Failed;
            c.message = format!(
                "superseded by {}",
                current.as_ref().map_or("", |cur| cur.version.as_str())
            );
            c.done_ms = Some(now);
            tx.put_command(c)?;
        }
        if let Some(cur) = offer {
            let c = tx.queue_command(&d, cur.command()?, "rules publish", now)?;
            crate::audit::record(
                tx,
                &crate::audit::Actor::system("bundle", now),
                Some(d.contract_id),
                "device.command",
                &format!("device {device}"),
                serde_json::Value::Null,
                serde_json::json!({"command": c.id, "what": describe(&c.kind)}),
            )?;
            cmds.push(c);
        }
        let mut out = Vec::new();
        for mut c in cmds {
            if !open(&c) || sent_here.contains(&c.id) {
                continue;
            }
            if !speaks_bundles && offer_of(&c).is_some() {
                continue;
            }
            sent_here.insert(c.id);
            out.push(Command {
                id: c.id,
                cmd: c.kind.clone(),
            });
            if c.state == CommandState::Pending {
                c.state = CommandState::Sent;
                c.sent_ms = Some(now);
                tx.put_command(&c)?;
            }
        }
        Ok(out)
    })
}

/// An open `Wipe` of a device whose contract ended (or that was revoked): the one command
/// such a device is still sent.
pub fn pending_wipe(app: &App, device: &str) -> Result<Option<CommandRecord>, StoreError> {
    Ok(app
        .store
        .read(|rx| rx.commands_of(device))?
        .into_iter()
        .find(|c| {
            matches!(c.kind, CommandKind::Wipe)
                && matches!(c.state, CommandState::Pending | CommandState::Sent)
        }))
}

/// How a command names the host of an alert: by MAC (survives DHCP renumbering) when the
/// appliance saw it, else by IP.
pub fn alert_host(flow: &protocol::messages::FlowRef) -> HostRef {
    if flow.internal_mac.0 != [0; 6] {
        HostRef::Mac(flow.internal_mac)
    } else {
        HostRef::Ip(flow.internal_ip)
    }
}

/// Checks allowed destinations (at most the protocol's limit).
pub fn check_allow(allow: &[String]) -> Result<(), String> {
    if allow.len() > protocol::limits::MAX_ALLOW_RULES {
        return Err(format!(
            "at most {} allowed destinations",
            protocol::limits::MAX_ALLOW_RULES
        ));
    }
    allow.iter().try_for_each(|a| parse_allow(a).map(|_| ()))
}

/// Records an appliance's answer to a command.
pub fn on_result(
    app: &App,
    device: &str,
    r: &protocol::messages::CommandResult,
) -> Result<(), StoreError> {
    let now = app.now();
    // commands are keyed by device: another device's id is unknown here too. Checked
    // with a read first so an unknown id costs no write transaction.
    if app
        .store
        .read(|rx| rx.command(device, r.command_id))?
        .is_none()
    {
        tracing::warn!(
            device,
            id = r.command_id,
            "result for an unknown command; ignored"
        );
        return Ok(());
    }
    app.store.write(|tx| {
        let Some(mut c) = tx.command(device, r.command_id)? else {
            return Ok(());
        };
        c.state = if r.ok {
            CommandState::Done
        } else {
            CommandState::Failed
        };
        c.message = r.message.as_str().to_string();
        c.done_ms = Some(now);
        tx.put_command(&c)
    })?;
    tracing::info!(device, id = r.command_id, ok = r.ok, message = %r.message.as_str(), "command result");
    Ok(())
}

/// Records an appliance's rule-bundle report (and the state of the command that offered it).
pub fn on_bundle_status(
    app: &App,
    device: &str,
    s: &protocol::messages::BundleStatus,
) -> Result<(), StoreError> {
    use protocol::messages::BundleState;
    let now = app.now();
    let (applied, reason) = match &s.state {
        BundleState::Applied => (true, String::new()),
        BundleState::Refused { reason } => (false, reason.as_str().to_string()),
    };
    app.store.write(|tx| {
        if let Some(mut d) = tx.device(device)? {
            d.bundle = Some(BundleReport {
                version: s.version.as_str().to_string(),
                applied,
                reason: reason.clone(),
                at_ms: now,
            });
            tx.put_device(&d)?;
        }
        for mut c in tx.commands_of(device)? {
            if matches!(&c.kind, CommandKind::BundleAvailable { version, .. } if version.as_str() == s.version.as_str())
            {
                c.state = if applied {
                    CommandState::Done
                } else {
                    CommandState::Failed
                };
                c.message = if applied {
                    "applied".into()
                } else {
                    reason.clone()
                };
                c.done_ms = Some(now);
                tx.put_command(&c)?;
            }
        }
        Ok(())
    })?;
    if applied {
        tracing::info!(device, version = %s.version.as_str(), "rule bundle applied");
    } else {
        tracing::warn!(device, version = %s.version.as_str(), %reason, "rule bundle refused by the appliance");
    }
    Ok(())
}

/// Commands of a device, for `admin device show` and the portal.
pub fn of_device(app: &App, device: &str) -> Result<(Device, Vec<CommandRecord>), StoreError> {
    app.store.read(|rx| {
        let d = rx
            .device(device)?
            .ok_or_else(|| StoreError::NotFound(format!("device {device}")))?;
        Ok((d, rx.commands_of(device)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_destinations() {
        assert_eq!(
            parse_host("198.18.0.10"),
            Ok(HostRef::Ip("198.18.0.10".parse().unwrap()))
        );
        assert_eq!(
            parse_host("02:00:5E:10:00:01"),
            Ok(HostRef::Mac(Mac([2, 0, 0x5e, 0x10, 0, 1])))
        );
        assert!(parse_host("02:00:5e:10:00").is_err());
        assert!(parse_host("02:00:5e:10:00:0g").is_err());
        assert!(parse_host("host.example").is_err());
        assert_eq!(parse_allow("198.18.0.1:53").unwrap().port, Some(53));
        assert_eq!(parse_allow("2001:db8::1").unwrap().port, None);
        assert_eq!(parse_allow("[2001:db8::1]:443").unwrap().port, Some(443));
        assert!(parse_allow("198.18.0.1:x").is_err());
    }

    #[test]
    fn isolation_follows_commands_in_order() {
        let host = HostRef::Ip("198.18.0.10".parse().unwrap());
        let other = HostRef::Ip("198.18.0.11".parse().unwrap());
        let rec = |id, kind, state| CommandRecord {
            id,
            device: "d".into(),
            contract_id: 1,
            kind,
            origin: "t".into(),
            created_ms: 0,
            state,
            sent_ms: None,
            done_ms: None,
            message: String::new(),
        };
        let iso = |h| isolate_kind(h, &["198.18.0.1:53".into(), "bad".into()]);
        let cmds = vec![
            rec(1, iso(host), CommandState::Done),
            rec(2, iso(other), CommandState::Failed),
            rec(3, CommandKind::ReleaseHost { host }, CommandState::Sent),
            rec(4, iso(other), CommandState::Pending),
        ];
        let hosts: Vec<HostRef> = isolated_hosts(&cmds).iter().map(|(h, _)| *h).collect();
        assert_eq!(hosts, vec![other]);
        assert_eq!(
            isolated_hosts(&cmds[..1])[0].1.kind,
            CommandKind::IsolateHost {
                host,
                allow: vec![AllowDest {
                    ip: "198.18.0.1".parse().unwrap(),
                    port: Some(53)
                }]
            }
        );
    }
}
