//! Logging in: password (lockout), forced change of a temporary password, authenticator
//! enrolment (QR) with recovery codes, the TOTP step, logout, the language switch.

use std::sync::OnceLock;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, Lockout, Totp};
use super::session::{self, Session, Stage};
use super::{Chrome, CsrfForm, Ctx, P, PortalError, blocking, render, stage_home};
use crate::store::PortalUser;

type R = Result<Response, PortalError>;

/// The issuer name authenticator apps show.
const ISSUER: &str = "Mimamori";

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    c: Chrome,
    error: Option<String>,
    email: String,
}

#[derive(Template)]
#[template(path = "portal/totp.html")]
struct TotpPage {
    c: Chrome,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/change.html")]
struct ChangePage {
    c: Chrome,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/enroll.html")]
struct EnrollPage {
    c: Chrome,
    error: Option<String>,
    qr_svg: String,
    key: String,
}

#[derive(Template)]
#[template(path = "portal/recovery.html")]
struct RecoveryPage {
    c: Chrome,
    codes: Vec<String>,
}

/// Visitors at another stage go where they belong.
fn elsewhere(ctx: &Ctx, want: fn(&Stage) -> bool) -> Option<Response> {
    (!want(&ctx.session.stage))
        .then(|| Redirect::to(stage_home(&ctx.session.stage)).into_response())
}

pub async fn login_page(ctx: Ctx) -> Response {
    if ctx.session.stage == Stage::Full {
        return Redirect::to("/").into_response();
    }
    render(&LoginPage {
        c: ctx.chrome("login"),
        error: None,
        email: String::new(),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

fn user_of(ctx: &Ctx) -> Result<Option<PortalUser>, PortalError> {
    let id = ctx.session.user;
    Ok(ctx.p.app.store.read(|rx| rx.user(id))?)
}

fn save_user(ctx: &Ctx, u: &PortalUser) -> Result<(), PortalError> {
    Ok(ctx.p.app.store.write(|tx| tx.put_user(u))?)
}

fn lockout_of(u: &PortalUser) -> Lockout {
    Lockout {
        failures: u.failed_logins,
        locked_until_ms: u.locked_until_ms,
    }
}

fn set_lockout(u: &mut PortalUser, l: Lockout) {
    u.failed_logins = l.failures;
    u.locked_until_ms = l.locked_until_ms;
}

/// Count a failed password or code; true when the account is now locked.
fn count_failure(ctx: &Ctx, id: u64) -> Result<bool, PortalError> {
    let now = ctx.p.app.now();
    Ok(ctx.p.app.store.write(|tx| {
        let Some(mut u) = tx.user(id)? else {
            return Ok(false);
        };
        let mut l = lockout_of(&u);
        l.failed(now);
        set_lockout(&mut u, l);
        tx.put_user(&u)?;
        Ok(l.is_locked(now))
    })?)
}

/// A hash to check passwords of unknown addresses against (same time as a real one).
fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| auth::hash_password("not-a-user-password").unwrap_or_default())
}

pub async fn login(State(p): State<P>, ctx: Ctx, CsrfForm(f): CsrfForm<LoginForm>) -> R {
    let now = p.app.now();
    let email = f.email.trim().to_lowercase();
    let fail = |ctx: &Ctx, text: &'static str, email: String| {
        render(&LoginPage {
            c: ctx.chrome("login"),
            error: Some(text.to_string()),
            email,
        })
    };
    let user = p.app.store.read(|rx| rx.user_by_email(&email))?;
    let Some(user) = user else {
        let pw = f.password;
        blocking(move || Ok(auth::verify_password(&pw, dummy_hash()))).await?;
        return Ok(fail(&ctx, ctx.t.login_failed, email));
    };
    if lockout_of(&user).is_locked(now) {
        return Ok(fail(&ctx, ctx.t.locked, email));
    }
    if user.must_change_password && user.temp_expires_ms != 0 && now > user.temp_expires_ms {
        return Ok(fail(&ctx, ctx.t.temp_expired, email));
    }
    let (pw, hash) = (f.password, user.password_hash.clone());
    if !blocking(move || Ok(auth::verify_password(&pw, &hash))).await? {
        let locked = count_failure(&ctx, user.id)?;
        tracing::info!(
            user = user.id,
            locked,
            "portal login refused: wrong password"
        );
        return Ok(fail(
            &ctx,
            if locked {
                ctx.t.locked
            } else {
                ctx.t.login_failed
            },
            email,
        ));
    }
    let stage = if user.must_change_password {
        Stage::ChangePassword
    } else if user.totp_secret.is_none() {
        Stage::Enroll {
            secret: Totp::generate().secret_base32(),
        }
    } else {
        Stage::Totp
    };
    if stage != Stage::Totp {
        // no second factor yet: the password was the whole login
        let mut u = user.clone();
        set_lockout(&mut u, Lockout::default());
        save_user(&ctx, &u)?;
    }
    let home = stage_home(&stage);
    let sid = p.sessions.rotate(
        &ctx.sid,
        Session {
            stage,
            user: user.id,
            contract: user.contract_id,
            email: user.email.clone(),
            epoch: user.epoch,
            created_ms: now,
            seen_ms: now,
            flash: None,
        },
    );
    tracing::info!(user = user.id, next = home, "portal password accepted");
    let mut resp = Redirect::to(home).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, p.session_cookie(&sid));
    Ok(resp)
}

pub async fn totp_page(ctx: Ctx) -> Response {
    if let Some(r) = elsewhere(&ctx, |s| *s == Stage::Totp) {
        return r;
    }
    render(&TotpPage {
        c: ctx.chrome("login"),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

pub async fn totp(State(p): State<P>, ctx: Ctx, CsrfForm(f): CsrfForm<CodeForm>) -> R {
    if let Some(r) = elsewhere(&ctx, |s| *s == Stage::Totp) {
        return Ok(r);
    }
    let now = p.app.now();
    let Some(mut u) = user_of(&ctx)? else {
        p.sessions.remove(&ctx.sid);
        return Ok(Redirect::to("/login").into_response());
    };
    if lockout_of(&u).is_locked(now) {
        p.sessions.remove(&ctx.sid);
        return Ok(render(&LoginPage {
            c: ctx.chrome("login"),
            error: Some(ctx.t.locked.into()),
            email: u.email,
        }));
    }
    let secs = (now.max(0) / 1000) as u64;
    let totp = u.totp_secret.as_deref().and_then(Totp::from_base32);
    let mut ok = false;
    if let Some(step) = totp.and_then(|t| t.verify(&f.code, secs, u.totp_last_step)) {
        u.totp_last_step = Some(step);
        ok = true;
    } else if auth::use_recovery_code(&f.code, &mut u.recovery_hashes) {
        ok = true;
        ctx.flash(
            true,
            format!("{}: {}", ctx.t.recovery_left, u.recovery_hashes.len()),
        );
    }
    if !ok {
        let locked = count_failure(&ctx, u.id)?;
        if locked {
            p.sessions.remove(&ctx.sid);
        }
        return Ok(render(&TotpPage {
            c: ctx.chrome("login"),
            error: Some(
                if locked {
                    ctx.t.locked
                } else {
                    ctx.t.totp_wrong
                }
                .into(),
            ),
        }));
    }
    set_lockout(&mut u, Lockout::default());
    save_user(&ctx, &u)?;
    p.sessions.update(&ctx.sid, |s| s.stage = Stage::Full);
    tracing::info!(user = u.id, "portal login complete");
    Ok(Redirect::to("/").into_response())
}

pub async fn change_page(ctx: Ctx) -> Response {
    if let Some(r) = elsewhere(&ctx, |s| *s == Stage::ChangePassword) {
        return r;
    }
    render(&ChangePage {
        c: ctx.chrome("login"),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    current: String,
    new: String,
    again: String,
}

/// Check and store a new password; `Err(text)` says why it was refused. With
/// `current`, the current password must be given too (the account page).
pub(super) async fn set_password(
    ctx: &Ctx,
    f: ChangeForm,
    current: bool,
) -> Result<Result<PortalUser, String>, PortalError> {
    let Some(mut u) = user_of(ctx)? else {
        return Err(PortalError::NotFound);
    };
    let t = ctx.t;
    if f.new != f.again {
        return Ok(Err(t.password_mismatch.into()));
    }
    if let Err(problem) = auth::check_new_password(&f.new, &u.email) {
        return Ok(Err(if t.lang == "ja" {
            problem.message()
        } else {
            problem.message_en()
        }
        .into()));
    }
    let (old_hash, cur, new) = (u.password_hash.clone(), f.current, f.new.clone());
    let (cur_ok, same) = blocking(move || {
        Ok((
            !current || auth::verify_password(&cur, &old_hash),
            auth::verify_password(&new, &old_hash),
        ))
    })
    .await?;
    if !cur_ok {
        count_failure(ctx, u.id)?;
        return Ok(Err(t.current_wrong.into()));
    }
    if same {
        return Ok(Err(t.password_same.into()));
    }
    let new = f.new;
    u.password_hash = blocking(move || {
        auth::hash_password(&new).map_err(|e| PortalError::Internal(e.to_string()))
    })
    .await?;
    u.must_change_password = false;
    u.temp_expires_ms = 0;
    // other logins of this user end with the old password; this one goes on
    u.epoch += 1;
    save_user(ctx, &u)?;
    let epoch = u.epoch;
    ctx.p.sessions.update(&ctx.sid, |s| s.epoch = epoch);
    tracing::info!(user = u.id, "portal password changed");
    Ok(Ok(u))
}

pub async fn change(ctx: Ctx, CsrfForm(f): CsrfForm<ChangeForm>) -> R {
    if let Some(r) = elsewhere(&ctx, |s| *s == Stage::ChangePassword) {
        return Ok(r);
    }
    match set_password(&ctx, f, false).await? {
        Err(text) => Ok(render(&ChangePage {
            c: ctx.chrome("login"),
            error: Some(text),
        })),
        Ok(u) => {
            // the second factor still comes after a reset password
            let next = if u.totp_secret.is_none() {
                Stage::Enroll {
                    secret: Totp::generate().secret_base32(),
                }
            } else {
                Stage::Totp
            };
            let home = stage_home(&next);
            ctx.p.sessions.update(&ctx.sid, |s| s.stage = next);
            ctx.flash(true, ctx.t.password_changed);
            Ok(Redirect::to(home).into_response())
        }
    }
}

fn enroll_view(ctx: &Ctx, secret: &str, error: Option<String>) -> Result<Response, PortalError> {
    let totp = Totp::from_base32(secret)
        .ok_or_else(|| PortalError::Internal("bad enrolment secret".into()))?;
    let uri = totp.uri(ISSUER, &ctx.session.email);
    let qr = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    let svg = match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    };
    // shown in groups of four for typing
    let key = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(render(&EnrollPage {
        c: ctx.chrome("login"),
        error,
        qr_svg: svg,
        key,
    }))
}

pub async fn enroll_page(ctx: Ctx) -> R {
    match &ctx.session.stage {
        Stage::Enroll { secret } => enroll_view(&ctx, &secret.clone(), None),
        s => Ok(Redirect::to(stage_home(s)).into_response()),
    }
}

pub async fn enroll(State(p): State<P>, ctx: Ctx, CsrfForm(f): CsrfForm<CodeForm>) -> R {
    let Stage::Enroll { secret } = ctx.session.stage.clone() else {
        return Ok(Redirect::to(stage_home(&ctx.session.stage)).into_response());
    };
    let now = p.app.now();
    let secs = (now.max(0) / 1000) as u64;
    let step = Totp::from_base32(&secret).and_then(|t| t.verify(&f.code, secs, None));
    let Some(step) = step else {
        return enroll_view(&ctx, &secret, Some(ctx.t.totp_wrong.into()));
    };
    let Some(mut u) = user_of(&ctx)? else {
        return Err(PortalError::NotFound);
    };
    let (codes, hashes) = auth::recovery_codes();
    u.totp_secret = Some(secret);
    u.totp_last_step = Some(step);
    u.recovery_hashes = hashes;
    save_user(&ctx, &u)?;
    tracing::info!(user = u.id, "portal authenticator enrolled");
    p.sessions
        .update(&ctx.sid, |s| s.stage = Stage::ShowRecovery { codes });
    Ok(Redirect::to("/mfa/recovery").into_response())
}

pub async fn recovery_page(ctx: Ctx) -> Response {
    match &ctx.session.stage {
        Stage::ShowRecovery { codes } => render(&RecoveryPage {
            codes: codes.clone(),
            c: ctx.chrome("login"),
        }),
        s => Redirect::to(stage_home(s)).into_response(),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn recovery_done(ctx: Ctx, CsrfForm(_): CsrfForm<Empty>) -> Response {
    if let Stage::ShowRecovery { .. } = ctx.session.stage {
        ctx.p.sessions.update(&ctx.sid, |s| s.stage = Stage::Full);
        return Redirect::to("/").into_response();
    }
    Redirect::to(stage_home(&ctx.session.stage)).into_response()
}

pub async fn logout(ctx: Ctx, CsrfForm(_): CsrfForm<Empty>) -> Response {
    ctx.p.sessions.remove(&ctx.sid);
    tracing::info!(user = ctx.session.user, "portal logout");
    let mut resp = Redirect::to("/login").into_response();
    let expire = format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
        session::COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&expire) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub struct Back {
    back: Option<String>,
}

/// `/lang/en?back=/alerts`: remember the language, return to the page.
pub async fn set_lang(Path(code): Path<String>, Query(q): Query<Back>) -> Response {
    let code = if code == "en" { "en" } else { "ja" };
    // only paths of this site (no `//host`, no scheme)
    let back = q
        .back
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or_else(|| "/".into());
    let mut resp = Redirect::to(&back).into_response();
    let v = format!(
        "{}={code}; Path=/; Max-Age=31536000; SameSite=Lax",
        session::LANG_COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
