//! The operators' HTTP API (axum, bearer token, loopback by default). `admin::cli` is its
//! client. Every listing answers JSON.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{self, Actor, Who};
use crate::contract::{self, Date};
use crate::notify;
use crate::score::Level;
use crate::store::{
    AlertStatus, Contract, Customer, Device, DeviceStatus, Dispatch, MaintenanceNotice, StoreError,
};
use crate::{App, command};

/// Shared by the handlers.
#[derive(Clone)]
pub struct Api {
    pub app: Arc<App>,
    pub force_daily: Arc<tokio::sync::Notify>,
}

/// An API error: status and a message meant for the operator.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
            StoreError::Refused(m) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, m),
            e => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

type R<T> = Result<Json<T>, ApiError>;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::UNPROCESSABLE_ENTITY, m.into())
}

fn not_found(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, m.into())
}

fn refused(m: impl Into<String>) -> StoreError {
    StoreError::Refused(m.into())
}

/// The router, with token authentication on every route.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/customers", get(list_customers).post(add_customer))
        .route("/v1/customers/{id}", put(update_customer))
        .route("/v1/contracts", get(list_contracts).post(add_contract))
        .route("/v1/contracts/{id}/end", post(end_contract))
        .route("/v1/contracts/{id}/recipients", put(set_recipients))
        .route("/v1/contracts/{id}/exceptions", put(set_exceptions))
        .route("/v1/contracts/{id}/insurance", get(insurance))
        .route("/v1/contracts/{id}/dispatches", post(add_dispatch))
        .route("/v1/devices", get(list_devices).post(add_devices))
        .route("/v1/devices/{id}/revoke", post(revoke_device))
        .route("/v1/devices/{id}/code", post(reissue_code))
        .route("/v1/devices/{id}", get(show_device))
        .route("/v1/devices/{id}/commands", post(device_command))
        .route("/v1/contracts/{id}/isolation", put(set_isolation))
        .route(
            "/v1/rules",
            get(rules_state)
                .post(publish_rules)
                .layer(axum::extract::DefaultBodyLimit::max(
                    protocol::bundle::MAX_BUNDLE,
                )),
        )
        .route(
            "/v1/rules/import",
            post(import_rules).layer(axum::extract::DefaultBodyLimit::max(
                protocol::bundle::MAX_BUNDLE,
            )),
        )
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/{id}", get(get_alert))
        .route("/v1/alerts/{id}/rerate", post(rerate))
        .route("/v1/alerts/{id}/resolve", post(resolve))
        .route("/v1/maintenance", get(list_notices).post(add_notice))
        .route("/v1/users", get(list_users).post(add_user))
        .route("/v1/users/reset", post(reset_user))
        .route("/v1/users/disable", post(disable_user))
        .route("/v1/users/enable", post(enable_user))
        .route("/v1/users/remove", post(remove_user))
        .route("/v1/mail/failed", get(failed_mails))
        .route("/v1/firmware", post(announce_firmware))
        .route("/v1/export", get(export))
        .route("/v1/ops/daily-check", post(daily_check))
        .route("/v1/ops/status", get(status))
        .route("/v1/ca", get(ca))
        .route("/v1/operators", get(list_operators).post(add_operator))
        .route("/v1/operators/{name}/revoke", post(revoke_operator))
        .route("/v1/audit", get(list_audit))
        .layer(axum::middleware::from_fn_with_state(api.clone(), auth))
        // outside the token layer: monitoring needs no credentials (it reveals no data)
        .route("/healthz", get(healthz))
        .with_state(api)
}

/// `GET /healthz` (unauthenticated): see `crate::health`.
async fn healthz(State(api): State<Api>) -> axum::response::Response {
    crate::health::respond(&api.app).await
}

/// Routes the bootstrap token may use: managing operators, nothing else.
fn bootstrap_route(path: &str) -> bool {
    path == "/v1/operators" || path.starts_with("/v1/operators/")
}

/// Who presents which token: the bootstrap token (operator routes only) or an active
/// operator's. The request then carries its [`Actor`] (name, client address, time).
async fn auth(
    State(api): State<Api>,
    headers: HeaderMap,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let path = req.uri().path().to_string();
    let unauthorized = || {
        tracing::warn!(peer = ?peer, path = %path, "admin API: missing, wrong or revoked token");
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing, wrong or revoked bearer token".into(),
        )
        .into_response()
    };
    let Some(token) = token else {
        return unauthorized();
    };
    let who = if constant_eq(token.as_bytes(), api.app.admin_token.as_bytes()) {
        Who::Bootstrap
    } else {
        match api.app.store.read(|rx| audit::operator_by_token(rx, token)) {
            Ok(Some(o)) => Who::Operator { name: o.name },
            Ok(None) => return unauthorized(),
            Err(e) => return ApiError::from(e).into_response(),
        }
    };
    if who == Who::Bootstrap && !bootstrap_route(&path) {
        return ApiError(
            StatusCode::FORBIDDEN,
            "the bootstrap token may only add, list and revoke operators; create one with `admin operator add --name NAME` and use its token".into(),
        )
        .into_response();
    }
    let at_ms = api.app.now();
    req.extensions_mut().insert(Actor {
        who,
        addr: peer,
        at_ms,
    });
    next.run(req).await
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Actor {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Actor, ApiError> {
        parts.extensions.get::<Actor>().cloned().ok_or_else(|| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no authenticated actor".into(),
            )
        })
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn list_customers(State(api): State<Api>) -> R<Vec<Customer>> {
    Ok(Json(api.app.store.read(|rx| rx.customers())?))
}

async fn add_customer(
    State(api): State<Api>,
    actor: Actor,
    Json(mut c): Json<Customer>,
) -> R<Customer> {
    if c.company.trim().is_empty() {
        return Err(bad("company must not be empty"));
    }
    let c = api.app.store.write(|tx| {
        c.id = tx.next_id("customer")?;
        tx.put_customer(&c)?;
        audit::record(
            tx,
            &actor,
            None,
            "customer.add",
            &format!("customer {}", c.id),
            Value::Null,
            audit::json(&c),
        )?;
        Ok(c)
    })?;
    Ok(Json(c))
}

/// Fields to change; absent ones stay.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CustomerUpdate {
    company: Option<String>,
    contact_name: Option<String>,
    contact_department: Option<String>,
    contact_title: Option<String>,
    contact_email: Option<String>,
    address: Option<String>,
    phone: Option<String>,
}

async fn update_customer(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<u64>,
    Json(u): Json<CustomerUpdate>,
) -> R<Customer> {
    if let Some(e) = &u.contact_email {
        if !e.is_empty() {
            notify::valid_address(e).map_err(bad)?;
        }
    }
    let c = api.app.store.write(|tx| {
        let mut c = tx
            .customer(id)?
            .ok_or_else(|| StoreError::NotFound(format!("customer {id}")))?;
        let before = audit::json(&c);
        macro_rules! set {
            ($($f:ident),*) => {$(if let Some(v) = u.$f.clone() { c.$f = v; })*};
        }
        set!(
            company,
            contact_name,
            contact_department,
            contact_title,
            contact_email,
            address,
            phone
        );
        tx.put_customer(&c)?;
        audit::record(
            tx,
            &actor,
            None,
            "customer.update",
            &format!("customer {id}"),
            before,
            audit::json(&c),
        )?;
        Ok(c)
    })?;
    Ok(Json(c))
}

async fn list_contracts(State(api): State<Api>) -> R<Vec<Contract>> {
    Ok(Json(api.app.store.read(|rx| rx.contracts())?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContract {
    customer_id: u64,
    name: String,
    application_date: Date,
    #[serde(default)]
    start_next_month: bool,
    #[serde(default)]
    recipients: Vec<String>,
}

async fn add_contract(
    State(api): State<Api>,
    actor: Actor,
    Json(n): Json<NewContract>,
) -> R<Contract> {
    let recipients = notify::valid_recipients(&n.recipients).map_err(bad)?;
    let (start, paid_start) = contract::contract_dates(n.application_date, n.start_next_month);
    let c = api.app.store.write(|tx| {
        tx.customer(n.customer_id)?
            .ok_or_else(|| StoreError::NotFound(format!("customer {}", n.customer_id)))?;
        let c = Contract {
            id: tx.next_id("contract")?,
            customer_id: n.customer_id,
            name: n.name.clone(),
            application_date: n.application_date,
            start,
            paid_start,
            ended: None,
            recipients: recipients.clone(),
            auto_isolation: false,
            isolation_allow: Vec::new(),
            exceptions: Vec::new(),
        };
        tx.put_contract(&c)?;
        audit::record(
            tx,
            &actor,
            Some(c.id),
            "contract.add",
            &format!("contract {}", c.id),
            Value::Null,
            audit::json(&c),
        )?;
        Ok(c)
    })?;
    Ok(Json(c))
}

/// End a contract: access ends and personal data is deleted (see [`contract::end`]).
async fn end_contract(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<u64>,
) -> R<contract::EndReport> {
    let report = contract::end(&api.app, id, api.app.now(), &actor)?;
    // connected appliances get their wipe now
    api.app.sessions_closed_for_contract(id);
    for d in &report.revoked_devices {
        api.app.commands_changed(Some(d));
    }
    Ok(Json(report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    recipients: Vec<String>,
}

async fn set_recipients(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<u64>,
    Json(r): Json<Recipients>,
) -> R<Contract> {
    let list = notify::valid_recipients(&r.recipients).map_err(bad)?;
    let c = api.app.store.write(|tx| {
        let mut c = tx
            .contract(id)?
            .ok_or_else(|| StoreError::NotFound(format!("contract {id}")))?;
        if let Some(e) = c.ended {
            return Err(refused(format!("contract {id} ended on {e}")));
        }
        let before = audit::json(&c.recipients);
        c.recipients = list.clone();
        tx.put_contract(&c)?;
        audit::record(
            tx,
            &actor,
            Some(id),
            "contract.recipients",
            &format!("contract {id}"),
            before,
            audit::json(&c.recipients),
        )?;
        Ok(c)
    })?;
    Ok(Json(c))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exceptions {
    exceptions: Vec<String>,
}

async fn set_exceptions(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<u64>,
    Json(e): Json<Exceptions>,
) -> R<Contract> {
    for x in &e.exceptions {
        let ok = matches!(x.split_once(':'), Some(("sid" | "host" | "domain" | "hash", v)) if !v.is_empty());
        if !ok {
            return Err(bad(format!(
                "exception `{x}` must be sid:N, host:IP, domain:NAME or hash:SHA256"
            )));
        }
    }
    let c = api.app.store.write(|tx| {
        let mut c = tx
            .contract(id)?
            .ok_or_else(|| StoreError::NotFound(format!("contract {id}")))?;
        let before = audit::json(&c.exceptions);
        c.exceptions = e.exceptions.clone();
        tx.put_contract(&c)?;
        audit::record(
            tx,
            &actor,
            Some(id),
            "contract.exceptions",
            &format!("contract {id}"),
            before,
            audit::json(&c.exceptions),
        )?;
        Ok(c)
    })?;
    Ok(Json(c))
}

/// Auto-isolation of a contract.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Isolation {
    auto: bool,
    #[serde(default)]
    allow: Vec<String>,
}

async fn set_isolation(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<u64>,
    Json(i): Json<Isolation>,
) -> R<Contract> {
    command::check_allow(&i.allow).map_err(bad)?;
    let c = api.app.store.write(|tx| {
        let mut c = tx
            .contract(id)?
            .ok_or_else(|| StoreError::NotFound(format!("contract {id}")))?;
        let before = serde_json::json!({"auto": c.auto_isolation, "allow": c.isolation_allow});
        c.auto_isolation = i.auto;
        c.isolation_allow = i.allow.clone();
        tx.put_contract(&c)?;
        audit::record(
            tx,
            &actor,
            Some(id),
            "contract.isolation",
            &format!("contract {id}"),
            before,
            serde_json::json!({"auto": c.auto_isolation, "allow": c.isolation_allow}),
        )?;
        Ok(c)
    })?;
    Ok(Json(c))
}

/// One command as the operator sees it.
#[derive(Serialize)]
pub struct CommandView {
    #[serde(flatten)]
    record: crate::store::CommandRecord,
    what: String,
}

impl From<crate::store::CommandRecord> for CommandView {
    fn from(record: crate::store::CommandRecord) -> Self {
        CommandView {
            what: command::describe(&record.kind),
            record,
        }
    }
}

/// `admin device show`: the device, its commands and isolated hosts.
#[derive(Serialize)]
pub struct DeviceDetail {
    #[serde(flatten)]
    device: Device,
    online: bool,
    isolated: Vec<String>,
    commands: Vec<CommandView>,
}

async fn show_device(State(api): State<Api>, Path(id): Path<String>) -> R<DeviceDetail> {
    let (d, cmds) = command::of_device(&api.app, &id)?;
    let isolated = command::isolated_hosts(&cmds)
        .iter()
        .map(|(h, c)| format!("{} ({:?})", command::host_text(h), c.state).to_lowercase())
        .collect();
    let (device, online) = api
        .app
        .with_liveness(vec![d])
        .pop()
        .ok_or_else(|| not_found(format!("device {id}")))?;
    Ok(Json(DeviceDetail {
        device,
        online,
        isolated,
        commands: cmds.into_iter().map(CommandView::from).collect(),
    }))
}

/// A command from an operator.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    /// isolate, release, mode, exception-add, exception-remove, reboot, wipe
    command: String,
    #[serde(default)]
    host: Option<String>,
    /// For `isolate`: allowed destinations; absent → the contract's allow-list.
    #[serde(default)]
    allow: Option<Vec<String>>,
    /// For `mode`: prevent or detect.
    #[serde(default)]
    mode: Option<String>,
    /// For exceptions: sid:N, sid:N@HOST, host:HOST, domain:NAME, hash:SHA256.
    #[serde(default)]
    exception: Option<String>,
}

fn parse_exception(s: &str) -> Result<protocol::messages::Exception, String> {
    use protocol::messages::{Exception, Sha256};
    let err = || {
        format!("exception `{s}` must be sid:N, sid:N@HOST, host:HOST, domain:NAME or hash:SHA256")
    };
    let (k, v) = s.split_once(':').ok_or_else(err)?;
    Ok(match k {
        "sid" => match v.split_once('@') {
            Some((sid, host)) => Exception::SignatureForHost {
                gid: 1,
                sid: sid.parse().map_err(|_| err())?,
                host: command::parse_host(host)?,
            },
            None => Exception::Signature {
                gid: 1,
                sid: v.parse().map_err(|_| err())?,
            },
        },
        "host" => Exception::Host(command::parse_host(v)?),
        "domain" => Exception::Domain(
            protocol::bounded::HostName::new(v.trim_end_matches('.')).map_err(|e| e.to_string())?,
        ),
        "hash" => {
            let mut h = [0u8; 32];
            hex::decode_to_slice(v, &mut h).map_err(|_| err())?;
            Exception::FileHash(Sha256(h))
        }
        _ => return Err(err()),
    })
}

async fn device_command(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<String>,
    Json(n): Json<NewCommand>,
) -> R<CommandView> {
    use protocol::messages::{CommandKind, Mode};
    let host = || -> Result<_, ApiError> {
        command::parse_host(
            n.host
                .as_deref()
                .ok_or_else(|| bad("give the host (IP or MAC)"))?,
        )
        .map_err(bad)
    };
    let kind = match n.command.as_str() {
        "isolate" => {
            let host = host()?;
            let allow = match &n.allow {
                Some(a) => {
                    command::check_allow(a).map_err(bad)?;
                    a.clone()
                }
                None => {
                    let d = api
                        .app
                        .store
                        .read(|rx| rx.device(&id))?
                        .ok_or_else(|| not_found(format!("device {id}")))?;
                    api.app
                        .store
                        .read(|rx| rx.contract(d.contract_id))?
                        .map(|c| c.isolation_allow)
                        .unwrap_or_default()
                }
            };
            command::isolate_kind(host, &allow)
        }
        "release" => {
            // only what is isolated can be released: a release by IP of a host isolated by
            // MAC would do nothing and look done
            let host = host()?;
            let (_, cmds) = command::of_device(&api.app, &id)?;
            let isolated = command::isolated_hosts(&cmds);
            if !isolated.iter().any(|(h, _)| *h == host) {
                let list: Vec<String> = isolated
                    .iter()
                    .map(|(h, _)| command::host_text(h))
                    .collect();
                return Err(bad(format!(
                    "{} is not isolated on {id}; isolated: {}",
                    command::host_text(&host),
                    if list.is_empty() {
                        "none".to_string()
                    } else {
                        list.join(", ")
                    }
                )));
            }
            CommandKind::ReleaseHost { host }
        }
        "mode" => CommandKind::SetMode(match n.mode.as_deref() {
            Some("prevent") => Mode::Prevent,
            Some("detect") => Mode::Detect,
            _ => return Err(bad("mode must be prevent or detect")),
        }),
        "exception-add" | "exception-remove" => {
            let e = parse_exception(n.exception.as_deref().unwrap_or_default()).map_err(bad)?;
            if n.command == "exception-add" {
                CommandKind::AddException(e)
            } else {
                CommandKind::RemoveException(e)
            }
        }
        "reboot" => CommandKind::Reboot,
        "wipe" => CommandKind::Wipe,
        other => {
            return Err(bad(format!(
                "unknown command `{other}` (isolate, release, mode, exception-add, exception-remove, reboot, wipe)"
            )));
        }
    };
    Ok(Json(command::request(&api.app, &id, kind, &actor)?.into()))
}

/// The current bundle and the key appliances must trust.
async fn rules_state(State(api): State<Api>) -> R<serde_json::Value> {
    let current = command::bundle::current(&api.app.store)?;
    let key = command::bundle::public_key_hex(&api.app.cfg.data_dir)?;
    Ok(Json(
        serde_json::json!({ "current": current, "public_key": key }),
    ))
}

/// Publishes a bundle: the body is a postcard `BundleBody` (unsigned; the cloud signs it).
async fn publish_rules(
    State(api): State<Api>,
    actor: Actor,
    body: axum::body::Bytes,
) -> R<command::bundle::Published> {
    let b: protocol::bundle::BundleBody =
        postcard::from_bytes(&body).map_err(|e| bad(format!("not a bundle body: {e}")))?;
    b.check_files().map_err(|e| bad(e.to_string()))?;
    let app = Arc::clone(&api.app);
    let p = tokio::task::spawn_blocking(move || command::bundle::publish(&app, b, &actor))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(p))
}

/// Adds the rules of the posted files (a postcard `BundleBody`: `version` names the
/// source) to the cloud's rule catalogue; parse errors are counted and listed.
async fn import_rules(
    State(api): State<Api>,
    actor: Actor,
    body: axum::body::Bytes,
) -> R<crate::score::catalog::ImportReport> {
    let b: protocol::bundle::BundleBody =
        postcard::from_bytes(&body).map_err(|e| bad(format!("not a rule file set: {e}")))?;
    let app = Arc::clone(&api.app);
    let report = tokio::task::spawn_blocking(move || {
        let now = app.now();
        let source = format!("import {}", b.version);
        let (entries, report) = crate::score::catalog::parse_files(&b.files, &source, now);
        app.store.write(|tx| {
            for e in &entries {
                tx.put_catalog_rule(e)?;
            }
            audit::record(tx, &actor, None, "rules.import", &source, Value::Null, audit::json(&report))?;
            Ok(())
        })?;
        tracing::info!(source = %source, rules = report.rules, failed = report.failed, "rules imported into the catalogue");
        Ok::<_, StoreError>(report)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(report))
}

#[derive(Serialize)]
pub struct DeviceView {
    #[serde(flatten)]
    device: Device,
    online: bool,
}

async fn list_devices(State(api): State<Api>) -> R<Vec<DeviceView>> {
    let devices = api.app.store.read(|rx| rx.devices())?;
    let mut v: Vec<DeviceView> = api
        .app
        .with_liveness(devices)
        .into_iter()
        .map(|(device, online)| DeviceView { device, online })
        .collect();
    v.sort_by(|a, b| a.device.id.cmp(&b.device.id));
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevices {
    contract_id: u64,
    #[serde(default)]
    name: String,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

#[derive(Serialize)]
pub struct NewDevice {
    device_id: String,
    activation_code: String,
}

async fn add_devices(
    State(api): State<Api>,
    actor: Actor,
    Json(n): Json<NewDevices>,
) -> R<Vec<NewDevice>> {
    if n.count == 0 || n.count > 100_000 {
        return Err(bad("count must be between 1 and 100000"));
    }
    let now = api.app.now();
    let out = api.app.store.write(|tx| {
        let c = tx
            .contract(n.contract_id)?
            .ok_or_else(|| StoreError::NotFound(format!("contract {}", n.contract_id)))?;
        if c.ended.is_some() {
            return Err(refused(format!("contract {} has ended", c.id)));
        }
        let mut out = Vec::with_capacity(n.count);
        for _ in 0..n.count {
            let num = tx.next_id("device")?;
            let id = format!("dev-{num:06}");
            let code = crate::identity::new_activation_code();
            tx.put_device(&Device::new(
                id.clone(),
                n.contract_id,
                n.name.clone(),
                DeviceStatus::Pending,
                now,
            ))?;
            tx.put_code(&crate::identity::code_hash(&code), &id)?;
            tx.put_code_issued(&crate::identity::code_hash(&code), now)?;
            out.push(NewDevice {
                device_id: id,
                activation_code: code,
            });
        }
        let ids: Vec<&str> = out.iter().map(|d| d.device_id.as_str()).collect();
        audit::record(
            tx,
            &actor,
            Some(c.id),
            "device.add",
            &format!("contract {}", c.id),
            Value::Null,
            serde_json::json!({"devices": ids, "name": n.name}),
        )?;
        Ok(out)
    })?;
    Ok(Json(out))
}

/// A new activation code for a device not yet activated (the old ones stop working),
/// e.g. after its code expired.
async fn reissue_code(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<String>,
) -> R<NewDevice> {
    let now = api.app.now();
    let out = api.app.store.write(|tx| {
        let d = tx
            .device(&id)?
            .ok_or_else(|| StoreError::NotFound(format!("device {id}")))?;
        if d.status != DeviceStatus::Pending {
            return Err(refused(format!(
                "device {id} is {:?}; only a device not yet activated gets a new code",
                d.status
            )));
        }
        for old in tx.codes_of(&id)? {
            tx.remove_code(&old)?;
        }
        let code = crate::identity::new_activation_code();
        let hash = crate::identity::code_hash(&code);
        tx.put_code(&hash, &id)?;
        tx.put_code_issued(&hash, now)?;
        audit::record(
            tx,
            &actor,
            Some(d.contract_id),
            "device.reissue_code",
            &format!("device {id}"),
            Value::Null,
            Value::Null,
        )?;
        Ok(NewDevice {
            device_id: id.clone(),
            activation_code: code,
        })
    })?;
    Ok(Json(out))
}

async fn revoke_device(State(api): State<Api>, actor: Actor, Path(id): Path<String>) -> R<Device> {
    let d = api.app.store.write(|tx| {
        let mut d = tx
            .device(&id)?
            .ok_or_else(|| StoreError::NotFound(format!("device {id}")))?;
        let before = audit::json(&d.status);
        d.status = DeviceStatus::Revoked;
        tx.put_device(&d)?;
        audit::record(
            tx,
            &actor,
            Some(d.contract_id),
            "device.revoke",
            &format!("device {id}"),
            before,
            audit::json(&d.status),
        )?;
        Ok(d)
    })?;
    // its live sessions end now (the writer refuses their batches in any case)
    api.app.close_sessions(&id);
    Ok(Json(d))
}

#[derive(Deserialize, Default)]
pub struct AlertFilter {
    contract: Option<u64>,
    level: Option<String>,
    device: Option<String>,
    host: Option<String>,
    limit: Option<usize>,
}

async fn list_alerts(
    State(api): State<Api>,
    Query(f): Query<AlertFilter>,
) -> R<Vec<crate::store::AlertRecord>> {
    let level = match &f.level {
        Some(l) => Some(Level::parse(l).ok_or_else(|| {
            bad(format!(
                "unknown level `{l}` (high, medium, low, investigating, info)"
            ))
        })?),
        None => None,
    };
    let limit = f.limit.unwrap_or(1000).min(100_000);
    let all = api.app.store.read(|rx| match f.contract {
        Some(c) => rx.alerts_of(c, usize::MAX),
        None => rx.all_alerts(),
    })?;
    let mut v: Vec<_> = all
        .into_iter()
        .filter(|a| level.is_none_or(|l| a.level == l))
        .filter(|a| f.device.as_ref().is_none_or(|d| &a.device == d))
        .filter(|a| {
            f.host
                .as_ref()
                .is_none_or(|h| a.event.flow().internal_ip.to_string() == *h)
        })
        .collect();
    v.sort_by(|a, b| b.id.cmp(&a.id));
    v.truncate(limit);
    Ok(Json(v))
}

async fn get_alert(State(api): State<Api>, Path(id): Path<u64>) -> R<crate::store::AlertRecord> {
    api.app
        .store
        .read(|rx| rx.alert(id))?
        .map(Json)
        .ok_or_else(|| not_found(format!("alert {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rerate {
    level: String,
    #[serde(default)]
    note: String,
}

async fn rerate(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<u64>,
    Json(r): Json<Rerate>,
) -> R<crate::store::AlertRecord> {
    let level =
        Level::parse(&r.level).ok_or_else(|| bad(format!("unknown level `{}`", r.level)))?;
    let now = api.app.now();
    let tz = api.app.cfg.utc_offset_secs();
    let a = api.app.store.write(|tx| {
        let mut a = tx
            .alert(id)?
            .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))?;
        let old = a.level;
        if old == level {
            return Err(refused(format!(
                "alert {id} is already {}",
                level.label_ja()
            )));
        }
        a.level = level;
        a.history.push(format!(
            "{}: {} → {} {}",
            crate::clock::format_local(now, tz),
            old.stars(),
            level.stars(),
            r.note
        ));
        tx.put_alert(&a)?;
        audit::record(
            tx,
            &actor,
            Some(a.contract_id),
            "alert.rerate",
            &format!("alert {id}"),
            audit::json(&old),
            serde_json::json!({"level": level, "note": r.note}),
        )?;
        if let Some(c) = tx.contract(a.contract_id)? {
            if level.important() {
                let (s, b) = notify::compose::rerate_mail(&c, &a, old, &r.note, tz);
                notify::queue_to_contract(tx, now, c.id, &s, &b, "rerate")?;
            }
        }
        Ok(a)
    })?;
    api.app.mail_queued.notify_one();
    Ok(Json(a))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    result: String,
    /// Final level after the investigation (default: info).
    #[serde(default)]
    level: Option<String>,
}

async fn resolve(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<u64>,
    Json(r): Json<Resolve>,
) -> R<crate::store::AlertRecord> {
    if r.result.trim().is_empty() {
        return Err(bad("the investigation result must not be empty"));
    }
    let level = match &r.level {
        Some(l) => Level::parse(l).ok_or_else(|| bad(format!("unknown level `{l}`")))?,
        None => Level::Info,
    };
    let now = api.app.now();
    let tz = api.app.cfg.utc_offset_secs();
    let a = api.app.store.write(|tx| {
        let mut a = tx
            .alert(id)?
            .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))?;
        if a.level != Level::Investigating || a.status == AlertStatus::Resolved {
            return Err(refused(format!("alert {id} is not an open 調査中 alert")));
        }
        audit::record(
            tx,
            &actor,
            Some(a.contract_id),
            "alert.resolve",
            &format!("alert {id}"),
            audit::json(&a.level),
            serde_json::json!({"level": level, "result": r.result}),
        )?;
        a.level = level;
        a.status = AlertStatus::Resolved;
        a.history.push(format!(
            "{}: 調査完了 → {} {}",
            crate::clock::format_local(now, tz),
            level.stars(),
            r.result
        ));
        tx.put_alert(&a)?;
        if let Some(c) = tx.contract(a.contract_id)? {
            let (s, b) = notify::compose::result_mail(&c, &a, &r.result, tz);
            notify::queue_to_contract(tx, now, c.id, &s, &b, "investigation-result")?;
        }
        Ok(a)
    })?;
    api.app.mail_queued.notify_one();
    Ok(Json(a))
}

async fn list_notices(State(api): State<Api>) -> R<Vec<MaintenanceNotice>> {
    Ok(Json(api.app.store.read(|rx| rx.notices())?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNotice {
    title: String,
    #[serde(default)]
    body: String,
    starts: String,
    ends: String,
    #[serde(default)]
    emergency: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    contract_id: u64,
    email: String,
}

/// A portal user as the admin API shows it (no secrets).
#[derive(Serialize)]
pub struct UserView {
    id: u64,
    contract_id: u64,
    email: String,
    must_change_password: bool,
    mfa: bool,
    locked: bool,
    disabled: bool,
}

impl UserView {
    fn of(u: &crate::store::PortalUser, now: i64) -> UserView {
        UserView {
            id: u.id,
            contract_id: u.contract_id,
            email: u.email.clone(),
            must_change_password: u.must_change_password,
            mfa: u.totp_secret.is_some(),
            locked: u.locked_until_ms > now || u.code_locked_until_ms > now,
            disabled: u.disabled,
        }
    }
}

#[derive(Deserialize)]
pub struct UserQuery {
    contract: u64,
}

async fn list_users(State(api): State<Api>, Query(q): Query<UserQuery>) -> R<Vec<UserView>> {
    let now = api.app.now();
    let users = api.app.store.read(|rx| rx.users_of(q.contract))?;
    Ok(Json(users.iter().map(|u| UserView::of(u, now)).collect()))
}

/// How long a mailed temporary password works.
const TEMP_PASSWORD_MS: i64 = 72 * 3600 * 1000;

/// A temporary password and its argon2id hash (hashed off the async threads: slow on
/// purpose).
async fn temporary() -> Result<(String, String), ApiError> {
    let temp = crate::portal::auth::temporary_password();
    let t = temp.clone();
    let hash = tokio::task::spawn_blocking(move || crate::portal::auth::hash_password(&t))
        .await
        .map_err(|e| bad(e.to_string()))?
        .map_err(|e| bad(e.to_string()))?;
    Ok((temp, hash))
}

/// Queue the account mail with a temporary password (new account or reset).
#[allow(clippy::too_many_arguments)]
fn queue_account_mail(
    tx: &mut crate::store::Tx,
    now: i64,
    portal: &str,
    contract_id: u64,
    contract: &str,
    email: &str,
    temp: &str,
    reset: bool,
) -> Result<(), StoreError> {
    let subject = if reset {
        "【Mimamori】ポータルのパスワード再発行"
    } else {
        "【Mimamori】ポータルアカウントのご案内"
    };
    let body = format!(
        "{contract} 様\n\n{what}\n\nログイン URL: {portal}\nメールアドレス: {email}\n仮パスワード: {temp}\n\n{next}\n仮パスワードの有効期限は72時間です。新しいパスワードを設定すると使えなくなります。\n\n---\nMimamori 見守りサービス",
        what = if reset {
            "Mimamori ポータルのパスワードを再発行しました。"
        } else {
            "Mimamori ポータルのアカウントを作成しました。"
        },
        next = "ログイン時に新しいパスワードの設定をお願いします（認証アプリ未登録の場合は登録もお願いします）。"
    );
    notify::queue_for(
        tx,
        now,
        Some(contract_id),
        email,
        subject,
        &body,
        "portal-user",
    )?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetUser {
    email: String,
    /// Also remove the authenticator (a lost phone): enrolled again at the next login.
    #[serde(default)]
    mfa: bool,
}

/// A forgotten password, a lock or a lost phone: a new temporary password by mail; the
/// user's logins end.
async fn reset_user(State(api): State<Api>, actor: Actor, Json(r): Json<ResetUser>) -> R<UserView> {
    let email = r.email.trim().to_ascii_lowercase();
    let now = api.app.now();
    let (temp, hash) = temporary().await?;
    let portal = api.app.cfg.portal_url();
    let user = api.app.store.write(|tx| {
        let mut u = portal_user(tx, &email)?;
        if u.disabled {
            return Err(refused(format!(
                "portal user {email} is disabled; enable it first"
            )));
        }
        let c = tx
            .contract(u.contract_id)?
            .ok_or_else(|| StoreError::NotFound(format!("contract {}", u.contract_id)))?;
        u.password_hash = hash.clone();
        u.must_change_password = true;
        u.temp_expires_ms = now + TEMP_PASSWORD_MS;
        u.failed_logins = 0;
        u.locked_until_ms = 0;
        // the second factor's own lock too (it survives logins, not an operator's reset)
        u.code_failures = 0;
        u.code_locked_until_ms = 0;
        u.epoch += 1;
        if r.mfa {
            u.totp_secret = None;
            u.totp_last_step = None;
            u.recovery_hashes.clear();
        }
        tx.put_user(&u)?;
        audit::record(
            tx,
            &actor,
            Some(c.id),
            "user.reset",
            &format!("user {}", u.id),
            Value::Null,
            serde_json::json!({"email": u.email, "mfa_removed": r.mfa}),
        )?;
        queue_account_mail(tx, now, &portal, c.id, &c.name, &email, &temp, true)?;
        Ok(u)
    })?;
    api.app.mail_queued.notify_one();
    Ok(Json(UserView::of(&user, now)))
}

/// A portal user for a contract: a temporary password is mailed to the address; the
/// first login must change it.
async fn add_user(State(api): State<Api>, actor: Actor, Json(n): Json<NewUser>) -> R<UserView> {
    let email = n.email.trim().to_ascii_lowercase();
    notify::valid_address(&email).map_err(bad)?;
    let now = api.app.now();
    let (temp, hash) = temporary().await?;
    let portal = api.app.cfg.portal_url();
    let user = api.app.store.write(|tx| {
        let c = tx
            .contract(n.contract_id)?
            .ok_or_else(|| StoreError::NotFound(format!("contract {}", n.contract_id)))?;
        if let Some(e) = c.ended {
            return Err(refused(format!("contract {} ended on {e}", c.id)));
        }
        if tx.user_by_email(&email)?.is_some() {
            return Err(StoreError::Refused(format!(
                "a portal user `{email}` exists already"
            )));
        }
        let u = crate::store::PortalUser {
            id: tx.next_id("user")?,
            contract_id: c.id,
            email: email.clone(),
            password_hash: hash.clone(),
            must_change_password: true,
            created_ms: now,
            temp_expires_ms: now + TEMP_PASSWORD_MS,
            ..Default::default()
        };
        tx.put_user(&u)?;
        audit::record(
            tx,
            &actor,
            Some(c.id),
            "user.add",
            &format!("user {}", u.id),
            Value::Null,
            serde_json::json!({"id": u.id, "email": u.email}),
        )?;
        queue_account_mail(tx, now, &portal, c.id, &c.name, &email, &temp, false)?;
        Ok(u)
    })?;
    api.app.mail_queued.notify_one();
    Ok(Json(UserView::of(&user, now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    email: String,
}

/// The portal user with this e-mail address (any case).
fn portal_user(tx: &crate::store::Tx, email: &str) -> Result<crate::store::PortalUser, StoreError> {
    tx.user_by_email(email)?
        .ok_or_else(|| StoreError::NotFound(format!("portal user {email}")))
}

/// One change of the portal user `email` and its audit entry `action`, in one write;
/// `change` returns the entry's value after the change.
fn change_user(
    api: &Api,
    actor: &Actor,
    email: &str,
    action: &str,
    change: impl FnOnce(
        &mut crate::store::Tx,
        &mut crate::store::PortalUser,
    ) -> Result<Value, StoreError>,
) -> Result<crate::store::PortalUser, StoreError> {
    api.app.store.write(|tx| {
        let mut u = portal_user(tx, email)?;
        let after = change(tx, &mut u)?;
        let target = format!("user {}", u.id);
        audit::record(
            tx,
            actor,
            Some(u.contract_id),
            action,
            &target,
            Value::Null,
            after,
        )?;
        Ok(u)
    })
}

/// Disable a portal user: its logins end at their next request and every new login is
/// refused (with the answer of a wrong password).
async fn disable_user(State(api): State<Api>, actor: Actor, Json(r): Json<UserRef>) -> R<UserView> {
    let email = r.email.trim().to_ascii_lowercase();
    let u = change_user(&api, &actor, &email, "user.disable", |tx, u| {
        contract::disable_user(tx, u)?;
        Ok(serde_json::json!({"email": u.email}))
    })?;
    tracing::info!(user = u.id, "portal user disabled");
    Ok(Json(UserView::of(&u, api.app.now())))
}

/// Enable a disabled portal user again (not for users of an ended contract: they are gone).
async fn enable_user(State(api): State<Api>, actor: Actor, Json(r): Json<UserRef>) -> R<UserView> {
    let email = r.email.trim().to_ascii_lowercase();
    let u = change_user(&api, &actor, &email, "user.enable", |tx, u| {
        u.disabled = false;
        tx.put_user(u)?;
        Ok(serde_json::json!({"email": u.email}))
    })?;
    tracing::info!(user = u.id, "portal user enabled");
    Ok(Json(UserView::of(&u, api.app.now())))
}

#[derive(Serialize)]
pub struct Removed {
    removed: String,
    contract_id: u64,
}

/// Remove a portal user: its logins end and the account and its e-mail index are deleted.
async fn remove_user(State(api): State<Api>, actor: Actor, Json(r): Json<UserRef>) -> R<Removed> {
    let email = r.email.trim().to_ascii_lowercase();
    let u = change_user(&api, &actor, &email, "user.remove", |tx, u| {
        contract::disable_user(tx, u)?;
        tx.remove_user(u)?;
        // the log keeps that the user was removed, not its address
        audit::anonymise_user(tx, u)?;
        Ok(Value::Null)
    })?;
    tracing::info!(user = u.id, "portal user removed");
    Ok(Json(Removed {
        removed: email,
        contract_id: u.contract_id,
    }))
}

/// A mail the sender gave up on, as operators see it (no body: it may hold a temporary
/// password).
#[derive(Serialize)]
pub struct FailedMail {
    id: u64,
    to: String,
    subject: String,
    kind: String,
    contract: Option<u64>,
    created_ms: i64,
    given_up_ms: Option<i64>,
    attempts: u32,
    last_error: Option<String>,
}

async fn failed_mails(State(api): State<Api>) -> R<Vec<FailedMail>> {
    let v = api.app.store.read(|rx| rx.failed_mails())?;
    Ok(Json(
        v.into_iter()
            .map(|m| FailedMail {
                id: m.id,
                to: m.to,
                subject: m.subject,
                kind: m.kind,
                contract: m.contract,
                created_ms: m.created_ms,
                given_up_ms: m.given_up_ms,
                attempts: m.attempts,
                last_error: m.last_error,
            })
            .collect(),
    ))
}

async fn add_notice(
    State(api): State<Api>,
    actor: Actor,
    Json(n): Json<NewNotice>,
) -> R<MaintenanceNotice> {
    let tz = api.app.cfg.utc_offset_secs();
    let now = api.app.now();
    let starts = Date::parse(n.starts.split(' ').next().unwrap_or("")).map_err(bad)?;
    Date::parse(n.ends.split(' ').next().unwrap_or("")).map_err(bad)?;
    if !n.emergency {
        // planned work is announced at least a month ahead
        let today = Date::of_ms(now, tz);
        if starts.days() - today.days() < 28 {
            return Err(bad(format!(
                "planned maintenance must be announced at least a month ahead (starts {starts}); use emergency for urgent work"
            )));
        }
    }
    let notice = api.app.store.write(|tx| {
        let n = MaintenanceNotice {
            id: tx.next_id("notice")?,
            title: n.title.clone(),
            body: n.body.clone(),
            starts: n.starts.clone(),
            ends: n.ends.clone(),
            emergency: n.emergency,
            created_ms: now,
        };
        tx.put_notice(&n)?;
        audit::record(
            tx,
            &actor,
            None,
            "maintenance.add",
            &format!("notice {}", n.id),
            Value::Null,
            audit::json(&n),
        )?;
        Ok(n)
    })?;
    Ok(Json(notice))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firmware {
    version: String,
    #[serde(default)]
    notes: String,
    #[serde(default = "default_apply")]
    apply: String,
}

fn default_apply() -> String {
    "次回の再起動時に自動で適用されます".into()
}

async fn announce_firmware(
    State(api): State<Api>,
    actor: Actor,
    Json(f): Json<Firmware>,
) -> R<serde_json::Value> {
    let now = api.app.now();
    let n = api.app.store.write(|tx| {
        let mut n = 0;
        for c in tx.contracts()? {
            if c.ended.is_none() {
                let (s, b) = notify::compose::firmware_mail(&c, &f.version, &f.notes, &f.apply);
                n += notify::queue_to_contract(tx, now, c.id, &s, &b, "firmware")?;
            }
        }
        audit::record(
            tx,
            &actor,
            None,
            "firmware.announce",
            &format!("firmware {}", f.version),
            Value::Null,
            serde_json::json!({"version": f.version, "notes": f.notes, "mails_queued": n}),
        )?;
        Ok(n)
    })?;
    api.app.mail_queued.notify_one();
    Ok(Json(serde_json::json!({ "mails_queued": n })))
}

#[derive(Serialize)]
pub struct Insurance {
    contract_id: u64,
    paid_start: Date,
    insurance_year: Option<(Date, Date)>,
    high_alert_dates: Vec<Date>,
    dispatches: Vec<Dispatch>,
    eligible_today: Result<(), String>,
}

fn high_dates(app: &App, contract: u64) -> Result<Vec<Date>, StoreError> {
    let tz = app.cfg.utc_offset_secs();
    Ok(app
        .store
        .read(|rx| rx.alerts_of(contract, usize::MAX))?
        .into_iter()
        .filter(|a| a.level == Level::High)
        .map(|a| Date::of_ms(a.event.time_ms(), tz))
        .collect())
}

async fn insurance(State(api): State<Api>, Path(id): Path<u64>) -> R<Insurance> {
    let c = api
        .app
        .store
        .read(|rx| rx.contract(id))?
        .ok_or_else(|| not_found(format!("contract {id}")))?;
    let today = Date::of_ms(api.app.now(), api.app.cfg.utc_offset_secs());
    let highs = high_dates(&api.app, id)?;
    let dispatches = api.app.store.read(|rx| rx.dispatches_of(id))?;
    let covered: Vec<Date> = dispatches
        .iter()
        .filter(|d| d.covered)
        .map(|d| d.date)
        .collect();
    let eligible = contract::check_dispatch(c.paid_start, c.ended, today, 0, &highs, &covered)
        .map_err(|e| e.to_string());
    Ok(Json(Insurance {
        contract_id: id,
        paid_start: c.paid_start,
        insurance_year: contract::insurance_year(c.paid_start, today),
        high_alert_dates: highs,
        dispatches,
        eligible_today: eligible,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDispatch {
    date: Date,
    amount_yen: u32,
    #[serde(default)]
    note: String,
}

async fn add_dispatch(
    State(api): State<Api>,
    actor: Actor,
    Path(id): Path<u64>,
    Json(n): Json<NewDispatch>,
) -> R<Dispatch> {
    let c = api
        .app
        .store
        .read(|rx| rx.contract(id))?
        .ok_or_else(|| not_found(format!("contract {id}")))?;
    let highs = high_dates(&api.app, id)?;
    let d = api.app.store.write(|tx| {
        let covered: Vec<Date> = tx
            .dispatches_of(id)?
            .iter()
            .filter(|d| d.covered)
            .map(|d| d.date)
            .collect();
        contract::check_dispatch(
            c.paid_start,
            c.ended,
            n.date,
            n.amount_yen,
            &highs,
            &covered,
        )
        .map_err(|e| refused(format!("not covered: {e}")))?;
        let d = Dispatch {
            id: tx.next_id("dispatch")?,
            contract_id: id,
            date: n.date,
            amount_yen: n.amount_yen,
            covered: true,
            note: n.note.clone(),
        };
        tx.put_dispatch(&d)?;
        audit::record(
            tx,
            &actor,
            Some(id),
            "insurance.dispatch",
            &format!("dispatch {}", d.id),
            Value::Null,
            audit::json(&d),
        )?;
        Ok(d)
    })?;
    Ok(Json(d))
}

/// Anonymized export (SPEC §5.5): no customer identifiers, IPs pseudonymized, URLs reduced
/// to the domain. One JSON object per line.
async fn export(State(api): State<Api>, actor: Actor) -> Result<Response, ApiError> {
    use sha2::{Digest, Sha256};
    let salt = api.app.store.write(|tx| {
        if let Some(s) = tx.meta("export_salt")? {
            return Ok(s);
        }
        let mut s = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut s);
        tx.set_meta("export_salt", &s)?;
        Ok(s.to_vec())
    })?;
    let pseudo = |ip: &std::net::IpAddr| {
        let mut h = Sha256::new();
        h.update(&salt);
        h.update(ip.to_string().as_bytes());
        format!("ip-{}", &hex::encode(h.finalize())[..12])
    };
    use crate::sanitize::field;
    let mut out = String::new();
    for a in api.app.store.read(|rx| rx.all_alerts())? {
        let f = a.event.flow();
        let site = a.event.site();
        let domain = site.split('/').next().unwrap_or("").to_string();
        let what = match &a.event {
            crate::store::StoredEvent::Alert(x) => match &x.detection {
                // fields from the appliance and the traffic: sanitised (crate::sanitize)
                protocol::messages::Detection::Signature(s) => {
                    serde_json::json!({"sid": s.sid, "msg": field(s.msg.as_str()), "classtype": s.classtype.as_ref().map(|c| field(c.as_str()))})
                }
                protocol::messages::Detection::Category { category } => {
                    serde_json::json!({"category": field(category.as_str())})
                }
            },
            crate::store::StoredEvent::File(x) => {
                serde_json::json!({"sha256": x.sha256.to_string(), "threat": field(x.threat.as_str())})
            }
        };
        let line = serde_json::json!({
            "time_ms": a.event.time_ms(),
            "level": a.level,
            "direction": format!("{:?}", f.direction).to_lowercase(),
            "internal": pseudo(&f.internal_ip),
            "external": pseudo(&f.external_ip),
            "external_port": f.external_port,
            "domain": if domain.is_empty() { None } else { Some(domain) },
            "detection": what,
            "action": format!("{:?}", a.event.action()).to_lowercase(),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    let lines = out.lines().count();
    audit::record_alone(
        &api.app.store,
        &actor,
        None,
        "export",
        "alerts",
        serde_json::json!({"lines": lines}),
    )?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        out,
    )
        .into_response())
}

async fn daily_check(State(api): State<Api>, actor: Actor) -> R<serde_json::Value> {
    audit::record_alone(
        &api.app.store,
        &actor,
        None,
        "ops.daily_check",
        "daily check",
        Value::Null,
    )?;
    api.force_daily.notify_one();
    Ok(Json(serde_json::json!({ "daily_check": "triggered" })))
}

async fn status(State(api): State<Api>) -> R<serde_json::Value> {
    let (alerts, outbox, devices, failed_mails) = api.app.store.read(|rx| {
        Ok((
            rx.alert_count()?,
            rx.outbox()?.len(),
            rx.devices()?.len(),
            rx.failed_mail_count()?,
        ))
    })?;
    let connected: usize = api
        .app
        .connections
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .sum();
    Ok(Json(
        serde_json::json!({ "alerts": alerts, "outbox": outbox, "failed_mails": failed_mails, "devices": devices, "connections": connected, "started_ms": api.app.started_ms, "ingest": api.app.ingest_stats.snapshot() }),
    ))
}

async fn ca(State(api): State<Api>) -> Result<Response, ApiError> {
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        api.app.identity.ca_pem.clone(),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Operators and the audit log
// ---------------------------------------------------------------------------------------

async fn list_operators(State(api): State<Api>) -> R<Vec<audit::OperatorView>> {
    let ops = api.app.store.read(|rx| rx.operators())?;
    Ok(Json(ops.iter().map(audit::OperatorView::from).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    name: String,
}

/// An operator and its token (shown this once; only its hash is kept).
#[derive(Serialize)]
pub struct OperatorCreated {
    #[serde(flatten)]
    operator: audit::OperatorView,
    token: String,
}

async fn add_operator(
    State(api): State<Api>,
    actor: Actor,
    Json(n): Json<NewOperator>,
) -> R<OperatorCreated> {
    let (o, token) = api
        .app
        .store
        .write(|tx| audit::add_operator(tx, &actor, n.name.trim()))?;
    Ok(Json(OperatorCreated {
        operator: audit::OperatorView::from(&o),
        token,
    }))
}

async fn revoke_operator(
    State(api): State<Api>,
    actor: Actor,
    Path(name): Path<String>,
) -> R<audit::OperatorView> {
    let o = api
        .app
        .store
        .write(|tx| audit::revoke_operator(tx, &actor, &name))?;
    Ok(Json(audit::OperatorView::from(&o)))
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    contract: Option<u64>,
    operator: Option<String>,
    /// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` (service time zone), or a duration back
    /// from now (`24h`, `7d`).
    since: Option<String>,
    limit: Option<usize>,
}

/// `admin audit list`: entries newest first (read only: no route changes or deletes one).
async fn list_audit(State(api): State<Api>, Query(q): Query<AuditQuery>) -> R<Vec<audit::Entry>> {
    let since_ms = match q.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(
            audit::parse_since(s, api.app.now(), api.app.cfg.utc_offset_secs()).ok_or_else(|| {
                bad(format!(
                    "since `{s}` must be YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] or a duration such as 24h"
                ))
            })?,
        ),
        None => None,
    };
    let f = audit::Filter {
        contract: q.contract,
        operator: q.operator,
        since_ms,
        limit: q.limit,
    };
    Ok(Json(api.app.store.read(|rx| audit::list(rx, &f))?))
}
