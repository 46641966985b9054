//! The pages of a logged-in user. Every read goes through the session's
//! [`Scope`](super::query::Scope): another contract's record is a 404.

use askama::Template;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::chart::{self, human_bytes};
use super::i18n::Tr;
use super::query::{self, AlertFilter, AlertPage, Scope, TrafficTotals};
use super::session::Stage;
use super::{Authed, Chrome, CodeForm, CsrfForm, Empty, PortalError, blocking, render};
use crate::clock::format_local;
use crate::sanitize;
use crate::score::Level;
use crate::store::{AlertRecord, Device, DeviceStatus, MaintenanceNotice, StoreError};

type R = Result<Response, PortalError>;

/// Alerts per page of the list.
pub const PER_PAGE: usize = 50;
const DAY_MS: i64 = 86_400_000;

/// An alert as a list row.
pub struct AlertRow {
    pub id: u64,
    pub time: String,
    pub level: &'static str,
    pub level_class: &'static str,
    pub device: String,
    pub host: String,
    pub what: String,
    pub action: &'static str,
}

fn level_class(l: Level) -> &'static str {
    match l {
        Level::High => "lv-high",
        Level::Medium => "lv-medium",
        Level::Low => "lv-low",
        Level::Investigating => "lv-inv",
        Level::Info => "lv-info",
    }
}

fn device_name(devices: &[Device], id: &str) -> String {
    devices
        .iter()
        .find(|d| d.id == id)
        .map_or(id, Device::label)
        .to_string()
}

fn row(a: &AlertRecord, t: &Tr, devices: &[Device], tz: i64) -> AlertRow {
    let f = a.event.flow();
    AlertRow {
        id: a.id,
        time: format_local(a.event.time_ms(), tz),
        level: t.level(a.level),
        level_class: level_class(a.level),
        device: device_name(devices, &a.device),
        host: f.internal_ip.to_string(),
        what: a.event.what(),
        action: t.action(a.event.action()),
    }
}

/// An appliance as the pages show it.
pub struct DeviceRow {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub last: String,
    pub firmware: String,
    pub rules: String,
    pub activated: String,
}

fn device_rows(ctx: &super::Ctx, devices: Vec<Device>) -> Vec<DeviceRow> {
    let t = ctx.t;
    let tz = ctx.p.tz;
    ctx.p
        .app
        .with_liveness(devices)
        .into_iter()
        .map(|(d, online)| {
            let (state, state_class) = match (d.status, online) {
                (DeviceStatus::Pending, _) => (t.pending, "st-pending"),
                (DeviceStatus::Revoked, _) => (t.revoked, "st-pending"),
                (DeviceStatus::Active, true) => (t.online, "st-online"),
                (DeviceStatus::Active, false) => (t.offline, "st-offline"),
            };
            DeviceRow {
                name: d.label().to_string(),
                state,
                state_class,
                last: d
                    .last_heartbeat_ms
                    .map_or_else(|| t.never.to_string(), |ms| format_local(ms, tz)),
                // reported by the appliance
                firmware: if d.firmware.is_empty() {
                    "-".into()
                } else {
                    sanitize::field(&d.firmware)
                },
                rules: if d.rules_version.is_empty() {
                    "-".into()
                } else {
                    sanitize::field(&d.rules_version)
                },
                activated: d
                    .activated_ms
                    .map_or_else(|| "-".into(), |ms| format_local(ms, tz)),
                id: d.id,
            }
        })
        .collect()
}

fn level_names(t: &Tr) -> [&'static str; 5] {
    [
        t.level(Level::High),
        t.level(Level::Medium),
        t.level(Level::Low),
        t.level(Level::Investigating),
        t.level(Level::Info),
    ]
}

// ---------------------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
struct DashboardPage {
    c: Chrome,
    devices: Vec<DeviceRow>,
    online: usize,
    offline: usize,
    chart: String,
    legend: Vec<(&'static str, &'static str, u64)>,
    categories: String,
    apps: String,
    rows: Vec<AlertRow>,
}

fn bars(
    items: &[(String, query::Totals)],
    unknown: &str,
    color: &str,
    aria: &str,
    n: usize,
) -> String {
    if items.is_empty() {
        return String::new();
    }
    let v: Vec<(String, u64, String)> = items
        .iter()
        .take(n)
        .map(|(k, t)| {
            (
                if k.is_empty() {
                    unknown.to_string()
                } else {
                    k.clone()
                },
                t.bytes,
                human_bytes(t.bytes),
            )
        })
        .collect();
    chart::hbars(&v, color, aria)
}

pub async fn dashboard(a: Authed) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let p = ctx.p.clone();
    let now = p.app.now();
    let tz = p.tz;
    let (devices, alerts, recent, traffic) = {
        let store = p.app.store.clone();
        blocking(move || {
            Ok(store.read(|rx| {
                let devices = scope.devices(rx)?;
                let alerts = scope.keys_since(rx, now - 31 * DAY_MS)?;
                let important = AlertFilter {
                    important: true,
                    ..Default::default()
                };
                let recent = scope.alert_page(rx, &important, 1, 8)?.items;
                let from = ((now - 7 * DAY_MS).max(0) / 1000) as u64;
                let traffic = scope.traffic(rx, from, u64::MAX, None)?;
                Ok((devices, alerts, recent, traffic))
            })?)
        })
        .await?
    };
    let t = ctx.t;
    let today = query::local_day(now, tz);
    let days = query::alerts_per_day(&alerts, today, 30, tz);
    let mut totals = [0u64; 5];
    for (_, c) in &days {
        for i in 0..5 {
            totals[i] += c[i];
        }
    }
    let names = level_names(t);
    let legend = (0..5)
        .map(|i| {
            (
                names[i],
                ["lv-high", "lv-medium", "lv-low", "lv-inv", "lv-info"][i],
                totals[i],
            )
        })
        .collect();
    let tt = query::traffic_totals(&traffic);
    let rows = recent.iter().map(|a| row(a, t, &devices, tz)).collect();
    let drows = device_rows(&ctx, devices);
    let online = drows
        .iter()
        .filter(|d| d.state_class == "st-online")
        .count();
    let offline = drows
        .iter()
        .filter(|d| d.state_class == "st-offline")
        .count();
    let page = DashboardPage {
        chart: if alerts.is_empty() {
            String::new()
        } else {
            chart::stacked_days(&days, names, t.alerts_30d)
        },
        legend,
        categories: bars(&tt.categories, t.unknown, "#1e6fa8", t.top_categories, 8),
        apps: bars(&tt.apps, t.unknown, "#2e8b57", t.top_apps, 8),
        rows,
        devices: drows,
        online,
        offline,
        c: ctx.chrome("dashboard"),
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct AlertQuery {
    #[serde(default)]
    level: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    page: Option<u32>,
}

#[derive(Template)]
#[template(path = "portal/alerts.html")]
struct AlertsPage {
    c: Chrome,
    q: AlertQuery,
    error: Option<&'static str>,
    levels: Vec<(&'static str, &'static str)>,
    devices: Vec<(String, String)>,
    rows: Vec<AlertRow>,
    total: u64,
    page: u32,
    pages: u32,
    prev_link: Option<String>,
    next_link: Option<String>,
}

fn page_link(q: &AlertQuery, page: u32) -> String {
    let pairs = [
        ("level", q.level.as_str()),
        ("from", q.from.as_str()),
        ("to", q.to.as_str()),
        ("device", q.device.as_str()),
        ("host", q.host.as_str()),
    ];
    let mut s = serde_urlencoded::to_string(
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    if !s.is_empty() {
        s.push('&');
    }
    format!("/alerts?{s}page={page}")
}

pub async fn alerts(a: Authed, Query(q): Query<AlertQuery>) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let t = ctx.t;
    let tz = ctx.p.tz;
    let mut error = None;
    let mut f = AlertFilter {
        level: Level::parse(q.level.trim()),
        ..Default::default()
    };
    for (text, slot, end) in [
        (&q.from, &mut f.from_ms, false),
        (&q.to, &mut f.to_ms, true),
    ] {
        if text.trim().is_empty() {
            continue;
        }
        match query::parse_date(text, tz) {
            // the end date is inclusive: up to its midnight
            Some(ms) => *slot = Some(if end { ms + DAY_MS } else { ms }),
            None => error = Some(t.bad_date),
        }
    }
    f.device = Some(q.device.trim().to_string()).filter(|s| !s.is_empty());
    if !q.host.trim().is_empty() {
        match query::HostMatch::parse(&q.host) {
            Some(h) => f.host = Some(h),
            None => error = Some(t.bad_host),
        }
    }
    let page = q.page.unwrap_or(1).max(1);
    let store = ctx.p.app.store.clone();
    let (list, devices): (AlertPage, Vec<Device>) = blocking(move || {
        Ok(store.read(|rx| {
            Ok((
                scope.alert_page(rx, &f, page, PER_PAGE)?,
                scope.devices(rx)?,
            ))
        })?)
    })
    .await?;
    let rows = list.items.iter().map(|a| row(a, t, &devices, tz)).collect();
    let levels = [
        ("high", Level::High),
        ("medium", Level::Medium),
        ("low", Level::Low),
        ("investigating", Level::Investigating),
        ("info", Level::Info),
    ]
    .iter()
    .map(|(k, l)| (*k, t.level(*l)))
    .collect();
    let page = AlertsPage {
        prev_link: (list.page > 1).then(|| page_link(&q, list.page - 1)),
        next_link: (list.page < list.pages).then(|| page_link(&q, list.page + 1)),
        c: ctx.chrome("alerts"),
        error,
        levels,
        devices: devices
            .iter()
            .map(|d| (d.id.clone(), d.label().to_string()))
            .collect(),
        rows,
        total: list.total,
        page: list.page,
        pages: list.pages,
        q,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "portal/alert.html")]
struct AlertDetailPage {
    c: Chrome,
    a: AlertRow,
    reason: String,
    todo: &'static str,
    internal: String,
    remote: String,
    direction: &'static str,
    site: String,
    signature: Option<String>,
    file: Option<String>,
    status: &'static str,
    history: Vec<String>,
    received: String,
    iso: IsolationView,
}

/// The alert's host and whether it is isolated on the alert's appliance.
struct IsolationView {
    host: String,
    /// The isolation command's state, when the host is isolated (or asked to be).
    state: Option<&'static str>,
    /// Whether the appliance can take commands (active).
    possible: bool,
}

pub async fn alert_detail(a: Authed, Path(id): Path<String>) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let id: u64 = id.parse().map_err(|_| PortalError::NotFound)?;
    let (rec, devices) = ctx
        .p
        .app
        .store
        .read(|rx| Ok((scope.alert(rx, id)?, scope.devices(rx)?)))?;
    let rec = rec.ok_or(PortalError::NotFound)?;
    let t = ctx.t;
    let tz = ctx.p.tz;
    let host = crate::command::alert_host(rec.event.flow());
    let (dev, cmds) = ctx
        .p
        .app
        .store
        .read(|rx| Ok((rx.device(&rec.device)?, rx.commands_of(&rec.device)?)))?;
    let iso = IsolationView {
        host: crate::command::host_text(&host),
        state: crate::command::isolated_hosts(&cmds)
            .iter()
            .find(|(h, _)| *h == host)
            .map(|(_, c)| t.command_state(c.state)),
        possible: dev.is_some_and(|d| d.status == crate::store::DeviceStatus::Active),
    };
    let f = rec.event.flow();
    let port = |p: Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
    let (signature, file) = match &rec.event {
        crate::store::StoredEvent::Alert(al) => (
            match &al.detection {
                protocol::messages::Detection::Signature(s) => Some(format!(
                    "{}:{}:{} — {} ({}: {})",
                    s.gid,
                    s.sid,
                    s.rev,
                    sanitize::field(s.msg.as_str()),
                    sanitize::field(s.classtype.as_ref().map_or("-", |c| c.as_str())),
                    s.severity
                )),
                protocol::messages::Detection::Category { category } => Some(format!(
                    "{}: {}",
                    t.category,
                    sanitize::field(category.as_str())
                )),
            },
            None,
        ),
        crate::store::StoredEvent::File(fv) => (
            None,
            Some(format!(
                "{} — SHA-256 {}",
                sanitize::field(fv.name.as_ref().map_or("-", |n| n.as_str())),
                fv.sha256
            )),
        ),
    };
    let page = AlertDetailPage {
        reason: sanitize::field(&rec.reason),
        todo: t.actions(rec.level),
        internal: format!(
            "{}{}  (MAC {})",
            f.internal_ip,
            port(f.internal_port),
            f.internal_mac
        ),
        remote: format!("{}{}", f.external_ip, port(f.external_port)),
        direction: t.direction(f.direction),
        site: rec.event.site(),
        signature,
        file,
        status: t.status(rec.status),
        history: rec.history.clone(),
        received: format_local(rec.received_ms, tz),
        iso,
        a: row(&rec, t, &devices, tz),
        c: ctx.chrome("alerts"),
    };
    Ok(render(&page))
}

/// Isolate (or release) the host of an alert on the alert's appliance.
async fn isolation_command(a: Authed, id: &str, isolate: bool) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let n: u64 = id.parse().map_err(|_| PortalError::NotFound)?;
    let (rec, contract) = ctx
        .p
        .app
        .store
        .read(|rx| Ok((scope.alert(rx, n)?, rx.contract(scope.contract())?)))?;
    let rec = rec.ok_or(PortalError::NotFound)?;
    let host = crate::command::alert_host(rec.event.flow());
    let kind = if isolate {
        let allow = contract.map(|c| c.isolation_allow).unwrap_or_default();
        crate::command::isolate_kind(host, &allow)
    } else {
        protocol::messages::CommandKind::ReleaseHost { host }
    };
    let actor = ctx.actor();
    let app = std::sync::Arc::clone(&ctx.p.app);
    let device = rec.device.clone();
    blocking(move || Ok(crate::command::request(&app, &device, kind, &actor)?)).await?;
    ctx.flash(
        true,
        if isolate {
            ctx.t.isolate_requested
        } else {
            ctx.t.release_requested
        },
    );
    Ok(Redirect::to(&format!("/alerts/{n}")).into_response())
}

pub async fn alert_isolate(a: Authed, Path(id): Path<String>, CsrfForm(_): CsrfForm<Empty>) -> R {
    isolation_command(a, &id, true).await
}

pub async fn alert_release(a: Authed, Path(id): Path<String>, CsrfForm(_): CsrfForm<Empty>) -> R {
    isolation_command(a, &id, false).await
}

// ---------------------------------------------------------------------------------------
// Traffic record
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct TrafficQuery {
    #[serde(default)]
    days: Option<u32>,
    #[serde(default)]
    host: String,
}

pub struct HostRow {
    pub ip: String,
    pub mac: String,
    pub bytes: String,
    pub flows: u64,
    pub top: String,
}

#[derive(Template)]
#[template(path = "portal/traffic.html")]
struct TrafficPage {
    c: Chrome,
    days: u32,
    host: String,
    categories: String,
    apps: String,
    hosts: Vec<HostRow>,
    table_categories: Vec<(String, String, u64)>,
    table_apps: Vec<(String, String, u64)>,
}

pub async fn traffic(a: Authed, Query(q): Query<TrafficQuery>) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let t = ctx.t;
    let days = match q.days.unwrap_or(7) {
        1 => 1,
        30 => 30,
        _ => 7,
    };
    let now = ctx.p.app.now();
    let from = ((now - days as i64 * DAY_MS).max(0) / 1000) as u64;
    let host = q.host.trim().to_string();
    let store = ctx.p.app.store.clone();
    let h = host.clone();
    let rows = blocking(move || {
        Ok(store.read(|rx| {
            scope.traffic(
                rx,
                from,
                u64::MAX,
                Some(h.as_str()).filter(|s| !s.is_empty()),
            )
        })?)
    })
    .await?;
    let TrafficTotals {
        categories,
        apps,
        hosts,
    } = query::traffic_totals(&rows);
    let name = |k: &String| {
        if k.is_empty() {
            t.unknown.to_string()
        } else {
            k.clone()
        }
    };
    let page = TrafficPage {
        categories: bars(&categories, t.unknown, "#1e6fa8", t.by_category, 12),
        apps: bars(&apps, t.unknown, "#2e8b57", t.by_app, 12),
        table_categories: categories
            .iter()
            .map(|(k, v)| (name(k), human_bytes(v.bytes), v.flows))
            .collect(),
        table_apps: apps
            .iter()
            .map(|(k, v)| (name(k), human_bytes(v.bytes), v.flows))
            .collect(),
        hosts: hosts
            .into_iter()
            .map(|(ip, mac, tot, top)| HostRow {
                ip,
                mac,
                bytes: human_bytes(tot.bytes),
                flows: tot.flows,
                top: if top.is_empty() {
                    t.unknown.to_string()
                } else {
                    top
                },
            })
            .collect(),
        days,
        host,
        c: ctx.chrome("traffic"),
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------
// Appliances
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/appliances.html")]
struct AppliancesPage {
    c: Chrome,
    devices: Vec<DeviceRow>,
}

pub async fn appliances(a: Authed) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let devices = ctx.p.app.store.read(|rx| scope.devices(rx))?;
    let page = AppliancesPage {
        devices: device_rows(&ctx, devices),
        c: ctx.chrome("appliances"),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "portal/appliance.html")]
struct AppliancePage {
    c: Chrome,
    d: DeviceRow,
    rows: Vec<AlertRow>,
    /// (host, state of the isolation)
    isolated: Vec<(String, &'static str)>,
    /// (time, what, who, state, answer), newest first
    commands: Vec<(String, String, String, &'static str, String)>,
    /// Inspection counters of the last heartbeat (shed, uninspected frames).
    counters: Vec<(String, u64)>,
}

pub async fn appliance_detail(a: Authed, Path(id): Path<String>) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let (dev, devices) = ctx
        .p
        .app
        .store
        .read(|rx| Ok((scope.device(rx, &id)?, scope.devices(rx)?)))?;
    let dev = dev.ok_or(PortalError::NotFound)?;
    let f = AlertFilter {
        device: Some(dev.id.clone()),
        ..Default::default()
    };
    let store = ctx.p.app.store.clone();
    let list = blocking(move || Ok(store.read(|rx| scope.alert_page(rx, &f, 1, 10))?)).await?;
    let t = ctx.t;
    let rows = list
        .items
        .iter()
        .map(|a| row(a, t, &devices, ctx.p.tz))
        .collect();
    let cmds = ctx.p.app.store.read(|rx| rx.commands_of(&dev.id))?;
    let isolated = crate::command::isolated_hosts(&cmds)
        .iter()
        .map(|(h, c)| (crate::command::host_text(h), t.command_state(c.state)))
        .collect();
    let commands = cmds
        .iter()
        .rev()
        .take(20)
        .map(|c| {
            (
                format_local(c.created_ms, ctx.p.tz),
                crate::command::describe(&c.kind),
                c.origin.clone(),
                t.command_state(c.state),
                c.message.clone(),
            )
        })
        .collect();
    let (dev, _) = ctx
        .p
        .app
        .with_liveness(vec![dev])
        .pop()
        .ok_or(PortalError::NotFound)?;
    // reported by the appliance: names cleaned like every field it sends
    let counters = dev
        .counters
        .iter()
        .map(|(k, v)| (sanitize::field(k.trim_start_matches("bridge_")), *v))
        .collect();
    let d = device_rows(&ctx, vec![dev])
        .pop()
        .ok_or(PortalError::NotFound)?;
    let page = AppliancePage {
        d,
        rows,
        isolated,
        commands,
        counters,
        c: ctx.chrome("appliances"),
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------
// Notification addresses
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/addresses.html")]
struct AddressesPage {
    c: Chrome,
    addresses: Vec<String>,
    full: bool,
}

pub async fn addresses(a: Authed) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let c = ctx
        .p
        .app
        .store
        .read(|rx| rx.contract(scope.contract()))?
        .ok_or(PortalError::NotFound)?;
    let page = AddressesPage {
        full: c.recipients.len() >= 3,
        addresses: c.recipients,
        c: ctx.chrome("addresses"),
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct AddressForm {
    address: String,
}

/// Why an address change was refused (shown to the user).
enum Refusal {
    Full,
    Invalid,
    Duplicate,
}

pub async fn address_add(a: Authed, CsrfForm(f): CsrfForm<AddressForm>) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let t = ctx.t;
    let addr = f.address.trim().to_string();
    let actor = ctx.actor();
    let res = ctx.p.app.store.write(|tx| {
        let mut c = tx
            .contract(scope.contract())?
            .ok_or_else(|| StoreError::NotFound("contract".into()))?;
        if c.recipients.len() >= 3 {
            return Ok(Err(Refusal::Full));
        }
        if crate::notify::valid_address(&addr).is_err() {
            return Ok(Err(Refusal::Invalid));
        }
        if c.recipients.iter().any(|x| x.eq_ignore_ascii_case(&addr)) {
            return Ok(Err(Refusal::Duplicate));
        }
        let before = crate::audit::json(&c.recipients);
        c.recipients.push(addr.clone());
        tx.put_contract(&c)?;
        crate::audit::record(
            tx,
            &actor,
            Some(c.id),
            "contract.recipients",
            &format!("contract {}", c.id),
            before,
            crate::audit::json(&c.recipients),
        )?;
        Ok(Ok(()))
    })?;
    match res {
        Ok(()) => {
            tracing::info!(
                contract = scope.contract(),
                "portal: notification address added"
            );
            ctx.flash(true, t.address_added);
        }
        Err(Refusal::Full) => ctx.flash(false, t.address_max),
        Err(Refusal::Invalid) => ctx.flash(false, format!("{}: {addr}", t.address_invalid)),
        Err(Refusal::Duplicate) => ctx.flash(false, format!("{}: {addr}", t.address_dup)),
    }
    Ok(Redirect::to("/addresses").into_response())
}

pub async fn address_remove(a: Authed, CsrfForm(f): CsrfForm<AddressForm>) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let actor = ctx.actor();
    let removed = ctx.p.app.store.write(|tx| {
        let mut c = tx
            .contract(scope.contract())?
            .ok_or_else(|| StoreError::NotFound("contract".into()))?;
        let old = crate::audit::json(&c.recipients);
        let before = c.recipients.len();
        c.recipients
            .retain(|x| !x.eq_ignore_ascii_case(f.address.trim()));
        let removed = c.recipients.len() != before;
        if removed {
            tx.put_contract(&c)?;
            crate::audit::record(
                tx,
                &actor,
                Some(c.id),
                "contract.recipients",
                &format!("contract {}", c.id),
                old,
                crate::audit::json(&c.recipients),
            )?;
        }
        Ok(removed)
    })?;
    if removed {
        ctx.flash(true, ctx.t.address_removed);
    }
    Ok(Redirect::to("/addresses").into_response())
}

pub async fn address_test(a: Authed, CsrfForm(_): CsrfForm<Empty>) -> R {
    let (ctx, scope) = (a.ctx, a.scope);
    let now = ctx.p.app.now();
    let tz = ctx.p.tz;
    {
        // at most one test mail per contract every 5 minutes (they go to any address)
        let mut last = ctx.p.test_mail_at.lock().unwrap_or_else(|e| e.into_inner());
        if last
            .get(&scope.contract())
            .is_some_and(|&t| now - t < 5 * 60_000)
        {
            drop(last);
            ctx.flash(false, ctx.t.test_wait);
            return Ok(Redirect::to("/addresses").into_response());
        }
        last.insert(scope.contract(), now);
    }
    let actor = ctx.actor();
    let sent = ctx.p.app.store.write(|tx| {
        let c = tx
            .contract(scope.contract())?
            .ok_or_else(|| StoreError::NotFound("contract".into()))?;
        let body = format!(
            "{} 様\n\nMimamori ポータルからのテストメールです（{}）。\nこのメールが届いていれば、重要アラートと機器停止のお知らせはこのアドレスに届きます。\n\n--\nMimamori 見守りサービス\n",
            c.name,
            format_local(now, tz)
        );
        for to in &c.recipients {
            crate::notify::queue(tx, now, to, "【Mimamori】テストメール", &body, "test")?;
        }
        crate::audit::record(tx, &actor, Some(c.id), "contract.test_mail", &format!("contract {}", c.id), serde_json::Value::Null, crate::audit::json(&c.recipients))?;
        Ok(c.recipients.len())
    })?;
    ctx.p.app.mail_queued.notify_one();
    if sent == 0 {
        ctx.flash(false, ctx.t.address_none);
    } else {
        ctx.flash(true, ctx.t.test_sent);
    }
    Ok(Redirect::to("/addresses").into_response())
}

// ---------------------------------------------------------------------------------------
// Maintenance notices, account
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/notices.html")]
struct NoticesPage {
    c: Chrome,
    notices: Vec<MaintenanceNotice>,
}

pub async fn notices(a: Authed) -> R {
    let ctx = a.ctx;
    let mut notices = ctx.p.app.store.read(|rx| rx.notices())?;
    notices.reverse();
    let page = NoticesPage {
        notices,
        c: ctx.chrome("notices"),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    c: Chrome,
    error: Option<String>,
    contract: String,
    users: Vec<String>,
    recovery_left: usize,
}

fn account_view(ctx: &super::Ctx, scope: Scope, error: Option<String>) -> R {
    let (contract, users, me) = ctx.p.app.store.read(|rx| {
        Ok((
            rx.contract(scope.contract())?,
            rx.users_of(scope.contract())?,
            rx.user(ctx.session.user)?,
        ))
    })?;
    Ok(render(&AccountPage {
        c: ctx.chrome("account"),
        error,
        contract: contract.map(|c| c.name).unwrap_or_default(),
        users: users.into_iter().map(|u| u.email).collect(),
        recovery_left: me.map_or(0, |u| u.recovery_hashes.len()),
    }))
}

pub async fn account(a: Authed) -> R {
    account_view(&a.ctx, a.scope, None)
}

pub async fn account_password(a: Authed, CsrfForm(f): CsrfForm<super::login::ChangeForm>) -> R {
    match super::login::set_password(&a.ctx, f, true).await? {
        Err(text) => account_view(&a.ctx, a.scope, Some(text)),
        Ok(_) => {
            a.ctx.flash(true, a.ctx.t.password_changed);
            Ok(Redirect::to("/account").into_response())
        }
    }
}

/// New recovery codes, after a current TOTP code.
pub async fn account_recovery(a: Authed, CsrfForm(f): CsrfForm<CodeForm>) -> R {
    let ctx = &a.ctx;
    // counted against the lockout like a login; recovery codes do not make new ones
    let (outcome, _) = ctx
        .p
        .code_attempt(ctx.session.user, ctx.session.epoch, &f.code, false)
        .await?;
    match outcome {
        super::guard::Attempt::Ok(_) => {}
        super::guard::Attempt::Locked => {
            return account_view(ctx, a.scope, Some(ctx.t.code_locked.into()));
        }
        super::guard::Attempt::Wrong => {
            return account_view(ctx, a.scope, Some(ctx.t.totp_wrong.into()));
        }
        super::guard::Attempt::Gone => return Err(PortalError::NotFound),
    }
    let (codes, hashes) = ctx
        .p
        .argon(super::auth::recovery_codes)
        .await?
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    let (id, epoch) = (ctx.session.user, ctx.session.epoch);
    let actor = ctx.actor();
    ctx.p.app.store.write(|tx| {
        if let Some(mut u) = tx.user(id)?.filter(|u| u.epoch == epoch) {
            u.recovery_hashes = hashes.clone();
            tx.put_user(&u)?;
            crate::audit::record(
                tx,
                &actor,
                Some(u.contract_id),
                "user.recovery_codes",
                &format!("user {id}"),
                serde_json::Value::Null,
                serde_json::Value::Null,
            )?;
        }
        Ok(())
    })?;
    ctx.p
        .sessions
        .update(&ctx.sid, |s| s.stage = Stage::ShowRecovery { codes });
    Ok(Redirect::to("/mfa/recovery").into_response())
}
