//! The customer portal (SPEC §5.6): server-rendered pages (axum + askama), Japanese by
//! default with an English switch, no script, charts as inline SVG, every asset served by
//! this binary.
//!
//! Request path: [`session_layer`] (cookie → session, security headers) → handler with
//! [`Ctx`] (any visitor) or [`Authed`] (logged in: carries the contract [`query::Scope`]) →
//! forms through [`CsrfForm`] (refused without the session's token) → a template.

mod activity;
pub mod auth;
pub mod chart;
mod guard;
pub mod i18n;
mod login;
mod pages;
pub mod query;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::App;
use crate::store::StoreError;
use i18n::Tr;
use session::{Flash, Session, Sessions, Stage};

/// The portal's shared state.
pub struct Portal {
    pub app: Arc<App>,
    pub sessions: Sessions,
    /// Key of the CSRF tokens (drawn at start; only for CSRF).
    csrf_key: [u8; 32],
    /// Cookies carry `Secure` (the portal is reached over https).
    secure: bool,
    /// Offset of the service's time zone, seconds.
    pub tz: i64,
    /// Argon2 checks running at once (each takes ~19 MiB and a core for tens of ms), and
    /// the short queue before them.
    argon_slots: guard::ArgonGate,
    /// Lockouts of addresses without an account.
    unknown: guard::UnknownLockouts,
    /// Last test mail per contract (Unix ms).
    pub(crate) test_mail_at: std::sync::Mutex<std::collections::HashMap<u64, i64>>,
    /// `[portal] trusted_proxy_header` and the proxies it is believed from.
    proxy_header: Option<String>,
    trusted_proxies: Vec<crate::audit::Net>,
}

type P = Arc<Portal>;

/// The portal's routes.
pub fn router(app: Arc<App>) -> Router {
    routes(Portal::new(app))
}

impl Portal {
    pub fn new(app: Arc<App>) -> Arc<Portal> {
        let tz = crate::clock::parse_tz(&app.cfg.time_zone).unwrap_or(9 * 3600);
        let secure = app.cfg.portal_url().starts_with("https://");
        let idle = app.cfg.portal.idle_minutes.max(1) as i64 * 60_000;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Portal {
            sessions: Sessions::new(idle),
            csrf_key: rand::random(),
            secure,
            tz,
            argon_slots: guard::ArgonGate::new(2 * cores),
            unknown: Default::default(),
            test_mail_at: Default::default(),
            proxy_header: app.cfg.portal.trusted_proxy_header.clone(),
            trusted_proxies: app
                .cfg
                .portal
                .trusted_proxies
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            app,
        })
    }

    /// A logged-in session of `user` without its credentials, for tests and the fuzz
    /// target (not reachable over HTTP); returns (session id, CSRF token).
    pub fn open_session(&self, user: &crate::store::PortalUser) -> (String, String) {
        let mut s = Session::anonymous(self.app.now());
        s.stage = Stage::Full;
        s.user = user.id;
        s.contract = user.contract_id;
        s.email = user.email.clone();
        s.epoch = user.epoch;
        let id = self.sessions.rotate("", s);
        let csrf = self.csrf(&id);
        (id, csrf)
    }
}

/// The routes over a portal state.
pub fn routes(portal: Arc<Portal>) -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(login::login_page).post(login::login))
        .route("/login/totp", get(login::totp_page).post(login::totp))
        .route("/password", get(login::change_page).post(login::change))
        .route("/mfa/setup", get(login::enroll_page).post(login::enroll))
        .route(
            "/mfa/recovery",
            get(login::recovery_page).post(login::recovery_done),
        )
        .route("/logout", post(login::logout))
        .route("/lang/{code}", get(login::set_lang))
        .route("/alerts", get(pages::alerts))
        .route("/alerts/{id}", get(pages::alert_detail))
        .route("/alerts/{id}/isolate", post(pages::alert_isolate))
        .route("/alerts/{id}/release", post(pages::alert_release))
        .route("/traffic", get(pages::traffic))
        .route("/appliances", get(pages::appliances))
        .route("/appliances/{id}", get(pages::appliance_detail))
        .route("/addresses", get(pages::addresses))
        .route("/addresses/add", post(pages::address_add))
        .route("/addresses/remove", post(pages::address_remove))
        .route("/addresses/test", post(pages::address_test))
        .route("/notices", get(pages::notices))
        .route("/account", get(pages::account))
        .route("/account/password", post(pages::account_password))
        .route("/account/recovery", post(pages::account_recovery))
        .route("/activity", get(activity::activity))
        .route("/static/portal.css", get(stylesheet))
        .fallback(not_found_route)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&portal),
            session_layer,
        ))
        .with_state(portal)
}

const CSS: &str = include_str!("portal.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

async fn not_found_route() -> Response {
    PortalError::NotFound.into_response()
}

/// The session id of this request (set by [`session_layer`]).
#[derive(Clone)]
struct Sid(String);

/// The client's address of this request (set by [`session_layer`]).
#[derive(Clone, Copy)]
struct ClientAddr(Option<std::net::IpAddr>);

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Portal {
    /// `Set-Cookie` value of a session id.
    fn session_cookie(&self, id: &str) -> String {
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Lax{}",
            session::COOKIE,
            if self.secure { "; Secure" } else { "" }
        )
    }
    fn csrf(&self, sid: &str) -> String {
        auth::csrf_token(&self.csrf_key, sid)
    }
}

/// Every request: the visitor's session; security headers on every answer. Visitors who
/// are not logged in keep only a random cookie (their CSRF tokens hang on it): nothing is
/// stored for them, so a flood of visitors costs no memory and evicts nobody.
async fn session_layer(State(p): State<P>, mut req: Request, next: Next) -> Response {
    let now = p.app.now();
    let cookie_id = cookie(req.headers(), session::COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let (sid, sess, fresh) = match cookie_id {
        Some(id) => {
            let s = p
                .sessions
                .touch(&id, now)
                .unwrap_or_else(|| Session::anonymous(now));
            (id, s, false)
        }
        None => (auth::new_session_id(), Session::anonymous(now), true),
    };
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let addr = crate::audit::client_addr(
        peer,
        req.headers(),
        p.proxy_header.as_deref(),
        &p.trusted_proxies,
    );
    req.extensions_mut().insert(ClientAddr(addr));
    req.extensions_mut().insert(Sid(sid.clone()));
    req.extensions_mut().insert(sess);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let sets_own = h
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.starts_with(session::COOKIE)));
    if fresh && !sets_own {
        if let Ok(v) = HeaderValue::from_str(&p.session_cookie(&sid)) {
            h.append(header::SET_COOKIE, v);
        }
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Any visitor: session, language, the page's own path.
pub struct Ctx {
    pub p: P,
    pub sid: String,
    pub session: Session,
    pub t: &'static Tr,
    pub path: String,
    /// The client's address (the trusted proxy's header, else the peer).
    pub addr: Option<std::net::IpAddr>,
}

impl FromRequestParts<P> for Ctx {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, p: &P) -> Result<Ctx, Response> {
        let sid = parts
            .extensions
            .get::<Sid>()
            .map(|s| s.0.clone())
            .ok_or_else(|| PortalError::Internal("no session layer".into()).into_response())?;
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| PortalError::Internal("no session layer".into()).into_response())?;
        let t = i18n::tr(cookie(&parts.headers, session::LANG_COOKIE));
        let path = parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |pq| pq.as_str().to_string());
        let addr = parts.extensions.get::<ClientAddr>().and_then(|a| a.0);
        Ok(Ctx {
            p: Arc::clone(p),
            sid,
            session,
            t,
            path,
            addr,
        })
    }
}

impl Ctx {
    /// The page frame's data.
    pub fn chrome(&self, active: &'static str) -> Chrome {
        Chrome {
            t: self.t,
            csrf: self.p.csrf(&self.sid),
            email: if self.session.stage == Stage::Full {
                self.session.email.clone()
            } else {
                String::new()
            },
            active,
            flash: self.p.sessions.take_flash(&self.sid),
            path: self.path.clone(),
        }
    }
    /// Leave a message for the next page.
    pub fn flash(&self, ok: bool, text: impl Into<String>) {
        let text = text.into();
        self.p
            .sessions
            .update(&self.sid, |s| s.flash = Some(Flash { ok, text }));
    }
}

/// A redirect that also sets a cookie (`Set-Cookie` value).
fn redirect_setting(to: &str, cookie: &str) -> Response {
    let mut resp = Redirect::to(to).into_response();
    match HeaderValue::from_str(cookie) {
        Ok(v) => {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        Err(_) => tracing::error!("portal cookie is not a header value"),
    }
    resp
}

/// Where a visitor in `stage` belongs.
fn stage_home(stage: &Stage) -> &'static str {
    match stage {
        Stage::Anonymous => "/login",
        Stage::ChangePassword => "/password",
        Stage::Enroll { .. } => "/mfa/setup",
        Stage::Totp => "/login/totp",
        Stage::ShowRecovery { .. } => "/mfa/recovery",
        Stage::Full => "/",
    }
}

/// A logged-in user; anyone else is sent to where their login stands.
pub struct Authed {
    pub ctx: Ctx,
    pub scope: query::Scope,
}

impl FromRequestParts<P> for Authed {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, p: &P) -> Result<Authed, Response> {
        let ctx = Ctx::from_request_parts(parts, p).await?;
        if ctx.session.stage != Stage::Full {
            return Err(Redirect::to(stage_home(&ctx.session.stage)).into_response());
        }
        // the account as it is now: removed, disabled, moved, reset or changed elsewhere ends
        // this login
        let id = ctx.session.user;
        let user = p
            .app
            .store
            .read(|rx| rx.user(id))
            .map_err(|e| PortalError::from(e).into_response())?;
        let current = user.is_some_and(|u| {
            u.epoch == ctx.session.epoch && u.contract_id == ctx.session.contract && !u.disabled
        });
        if !current {
            p.sessions.remove(&ctx.sid);
            return Err(Redirect::to("/login").into_response());
        }
        let scope = query::Scope {
            contract: ctx.session.contract,
        };
        Ok(Authed { ctx, scope })
    }
}

/// A form with only its CSRF token (a button).
#[derive(serde::Deserialize)]
pub struct Empty {}

/// A form with a TOTP or recovery code.
#[derive(serde::Deserialize)]
pub struct CodeForm {
    pub code: String,
}

/// A submitted form, accepted only with the session's CSRF token in its `csrf` field.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<P> for CsrfForm<T> {
    type Rejection = Response;
    async fn from_request(req: Request, p: &P) -> Result<Self, Response> {
        let sid = req.extensions().get::<Sid>().map(|s| s.0.clone());
        let bytes = axum::body::Bytes::from_request(req, p)
            .await
            .map_err(IntoResponse::into_response)?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| PortalError::BadForm.into_response())?;
        let token = pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        let ok = match (sid, token) {
            (Some(s), Some(t)) => auth::csrf_ok(&p.csrf_key, &s, t),
            _ => false,
        };
        if !ok {
            tracing::warn!("portal form refused: missing or wrong CSRF token");
            return Err(PortalError::Csrf.into_response());
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(CsrfForm)
            .map_err(|_| PortalError::BadForm.into_response())
    }
}

/// What a portal request can fail with. The pages are bilingual: they may be shown
/// before the language is known.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("not found")]
    NotFound,
    #[error("CSRF token missing or wrong")]
    Csrf,
    #[error("malformed form")]
    BadForm,
    #[error("too many logins at once")]
    Busy,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

#[derive(askama::Template)]
#[template(path = "portal/error.html")]
struct ErrorPage {
    ja: &'static Tr,
    en: &'static Tr,
    title_ja: &'static str,
    title_en: &'static str,
    text_ja: &'static str,
    text_en: &'static str,
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let (ja, en) = (&i18n::JA, &i18n::EN);
        let (code, title_ja, title_en, text_ja, text_en) = match &self {
            PortalError::NotFound => (
                StatusCode::NOT_FOUND,
                ja.not_found,
                en.not_found,
                ja.not_found_text,
                en.not_found_text,
            ),
            PortalError::Csrf | PortalError::BadForm => (
                StatusCode::FORBIDDEN,
                ja.error_title,
                en.error_title,
                ja.csrf_refused,
                en.csrf_refused,
            ),
            PortalError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                ja.error_title,
                en.error_title,
                ja.busy,
                en.busy,
            ),
            PortalError::Store(_) | PortalError::Internal(_) => {
                tracing::error!(error = %self, "portal request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ja.error_title,
                    en.error_title,
                    ja.error_text,
                    en.error_text,
                )
            }
        };
        let page = ErrorPage {
            ja,
            en,
            title_ja,
            title_en,
            text_ja,
            text_en,
        };
        (code, render(&page)).into_response()
    }
}

/// A rendered template (a template error is a 500, logged).
pub fn render(t: &impl askama::Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "portal template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// The frame every page shares.
pub struct Chrome {
    pub t: &'static Tr,
    pub csrf: String,
    /// The logged-in user (empty on login pages).
    pub email: String,
    /// Which navigation entry is lit.
    pub active: &'static str,
    pub flash: Option<Flash>,
    /// This page (the language switch comes back here).
    pub path: String,
}

/// Run blocking work (argon2, big reads) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PortalError> + Send + 'static,
) -> Result<T, PortalError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))?
}
