//! Logging in: password (lockout), forced change of a temporary password, authenticator
//! enrolment (QR) with recovery codes, the TOTP step, logout, the language switch.

use askama::Template;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, Totp};
use super::guard::Attempt;
use super::session::{self, Session, Stage};
use super::{
    Chrome, CodeForm, CsrfForm, Ctx, Empty, PortalError, redirect_setting, render, stage_home,
};
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

/// The account behind a login in progress, if it is still the one the login began with
/// (same epoch and contract); otherwise the session ends.
fn current_user(ctx: &Ctx) -> Result<Option<PortalUser>, PortalError> {
    let id = ctx.session.user;
    let u = ctx.p.app.store.read(|rx| rx.user(id))?;
    let u = u.filter(|u| {
        u.epoch == ctx.session.epoch && u.contract_id == ctx.session.contract && !u.disabled
    });
    if u.is_none() {
        ctx.p.sessions.remove(&ctx.sid);
    }
    Ok(u)
}

fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

pub async fn login(ctx: Ctx, CsrfForm(f): CsrfForm<LoginForm>) -> R {
    let p = std::sync::Arc::clone(&ctx.p);
    let now = p.app.now();
    let email = f.email.trim().to_lowercase();
    let fail = |ctx: &Ctx, text: &'static str, email: String| {
        render(&LoginPage {
            c: ctx.chrome("login"),
            error: Some(text.to_string()),
            email,
        })
    };
    let user = match p.password_attempt(&email, f.password, None).await? {
        Attempt::Ok(u) => u,
        Attempt::Locked => {
            ctx.audit_login(&email, "portal.login_failed", "locked");
            return Ok(fail(&ctx, ctx.t.locked, email));
        }
        Attempt::Wrong | Attempt::Gone => {
            ctx.audit_login(&email, "portal.login_failed", "password");
            return Ok(fail(&ctx, ctx.t.login_failed, email));
        }
    };
    // told only to whoever knows the password
    if user.must_change_password && user.temp_expires_ms != 0 && now > user.temp_expires_ms {
        ctx.audit_login(&email, "portal.login_failed", "temporary password expired");
        return Ok(fail(&ctx, ctx.t.temp_expired, email));
    }
    // the second factor's lock holds across logins: a new login cannot reset it
    if super::guard::code_locked(&user, now) {
        tracing::info!(user = user.id, "portal login refused: codes locked");
        ctx.audit_login(&email, "portal.login_failed", "second factor locked");
        return Ok(fail(&ctx, ctx.t.code_locked, email));
    }
    ctx.audit_login(&email, "portal.login_password", "password accepted");
    let stage = if user.must_change_password {
        Stage::ChangePassword
    } else if user.totp_secret.is_none() {
        Stage::Enroll {
            secret: Totp::generate().secret_base32(),
        }
    } else {
        Stage::Totp
    };
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
    Ok(redirect_setting(home, &p.session_cookie(&sid)))
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

pub async fn totp(ctx: Ctx, CsrfForm(f): CsrfForm<CodeForm>) -> R {
    let p = std::sync::Arc::clone(&ctx.p);
    if let Some(r) = elsewhere(&ctx, |s| *s == Stage::Totp) {
        return Ok(r);
    }
    let (outcome, used_recovery) = p
        .code_attempt(ctx.session.user, ctx.session.epoch, &f.code, true)
        .await?;
    let u = match outcome {
        Attempt::Ok(u) => u,
        Attempt::Gone => {
            p.sessions.remove(&ctx.sid);
            return Ok(to_login());
        }
        Attempt::Locked => {
            ctx.audit_login(
                &ctx.session.email,
                "portal.login_failed",
                "locked (second factor)",
            );
            p.sessions.remove(&ctx.sid);
            return Ok(render(&LoginPage {
                c: ctx.chrome("login"),
                error: Some(ctx.t.code_locked.into()),
                email: ctx.session.email.clone(),
            }));
        }
        Attempt::Wrong => {
            ctx.audit_login(&ctx.session.email, "portal.login_failed", "second factor");
            return Ok(render(&TotpPage {
                c: ctx.chrome("login"),
                error: Some(ctx.t.totp_wrong.into()),
            }));
        }
    };
    ctx.audit_login(
        &ctx.session.email,
        "portal.login",
        if used_recovery {
            "recovery code"
        } else {
            "authenticator code"
        },
    );
    if used_recovery {
        ctx.flash(
            true,
            format!("{}: {}", ctx.t.recovery_left, u.recovery_hashes.len()),
        );
    }
    p.sessions.update(&ctx.sid, |s| s.stage = Stage::Full);
    tracing::info!(user = u.id, used_recovery, "portal login complete");
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
/// `current`, the current password must be given too (the account page; counted
/// against the lockout like a login).
pub(super) async fn set_password(
    ctx: &Ctx,
    f: ChangeForm,
    current: bool,
) -> Result<Result<PortalUser, String>, PortalError> {
    let t = ctx.t;
    let p = &ctx.p;
    let Some(u) = current_user(ctx)? else {
        return Err(PortalError::NotFound);
    };
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
    if current {
        match p
            .password_attempt(&u.email, f.current, Some(u.epoch))
            .await?
        {
            Attempt::Ok(_) => {}
            Attempt::Locked => return Ok(Err(t.locked.into())),
            Attempt::Wrong => return Ok(Err(t.current_wrong.into())),
            Attempt::Gone => return Err(PortalError::NotFound),
        }
    }
    let (old_hash, new) = (u.password_hash.clone(), f.new.clone());
    if p.argon(move || auth::verify_password(&new, &old_hash))
        .await?
    {
        return Ok(Err(t.password_same.into()));
    }
    let new = f.new;
    let hash = p
        .argon(move || auth::hash_password(&new))
        .await?
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    let (id, epoch) = (u.id, u.epoch);
    let now = p.app.now();
    let actor = ctx.actor();
    let saved = p.app.store.write(|tx| {
        // re-read: an operator may have reset the account meanwhile
        let Some(mut u) = tx.user(id)? else {
            return Ok(None);
        };
        if u.epoch != epoch {
            return Ok(None);
        }
        u.password_hash = hash.clone();
        u.must_change_password = false;
        u.temp_expires_ms = 0;
        // other logins of this user end with the old password; this one goes on
        u.epoch += 1;
        tx.put_user(&u)?;
        crate::audit::record(
            tx,
            &actor,
            Some(u.contract_id),
            "user.password",
            &format!("user {id}"),
            serde_json::Value::Null,
            serde_json::Value::Null,
        )?;
        Ok(Some(u))
    })?;
    let Some(u) = saved else {
        p.sessions.remove(&ctx.sid);
        return Err(PortalError::NotFound);
    };
    let epoch = u.epoch;
    p.sessions.update(&ctx.sid, |s| {
        s.epoch = epoch;
        s.seen_ms = now;
    });
    tracing::info!(user = u.id, "portal password changed");
    Ok(Ok(u))
}

pub async fn change(ctx: Ctx, CsrfForm(f): CsrfForm<ChangeForm>) -> R {
    if let Some(r) = elsewhere(&ctx, |s| *s == Stage::ChangePassword) {
        return Ok(r);
    }
    // only while the account still waits for its first password
    if !current_user(&ctx)?.is_some_and(|u| u.must_change_password) {
        ctx.p.sessions.remove(&ctx.sid);
        return Ok(to_login());
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

pub async fn enroll(ctx: Ctx, CsrfForm(f): CsrfForm<CodeForm>) -> R {
    let p = std::sync::Arc::clone(&ctx.p);
    let Stage::Enroll { secret } = ctx.session.stage.clone() else {
        return Ok(Redirect::to(stage_home(&ctx.session.stage)).into_response());
    };
    // only for an account without an authenticator, as it was when this login began
    if current_user(&ctx)?.is_none_or(|u| u.totp_secret.is_some()) {
        p.sessions.remove(&ctx.sid);
        return Ok(to_login());
    }
    let now = p.app.now();
    let secs = (now.max(0) / 1000) as u64;
    let step = Totp::from_base32(&secret).and_then(|t| t.verify(&f.code, secs, None));
    let Some(step) = step else {
        return enroll_view(&ctx, &secret, Some(ctx.t.totp_wrong.into()));
    };
    let (codes, hashes) = p
        .argon(auth::recovery_codes)
        .await?
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    let (id, epoch) = (ctx.session.user, ctx.session.epoch);
    let actor = ctx.actor();
    let saved = p.app.store.write(|tx| {
        let Some(mut u) = tx.user(id)? else {
            return Ok(None);
        };
        if u.epoch != epoch || u.totp_secret.is_some() {
            return Ok(None);
        }
        u.totp_secret = Some(secret.clone());
        u.totp_last_step = Some(step);
        u.recovery_hashes = hashes.clone();
        // a new authenticator: other logins end
        u.epoch += 1;
        tx.put_user(&u)?;
        crate::audit::record(
            tx,
            &actor,
            Some(u.contract_id),
            "user.mfa_enrol",
            &format!("user {id}"),
            serde_json::Value::Null,
            serde_json::Value::Null,
        )?;
        Ok(Some(u))
    })?;
    let Some(u) = saved else {
        p.sessions.remove(&ctx.sid);
        return Ok(to_login());
    };
    tracing::info!(user = u.id, "portal authenticator enrolled");
    let epoch = u.epoch;
    p.sessions.update(&ctx.sid, |s| {
        s.epoch = epoch;
        s.stage = Stage::ShowRecovery { codes };
    });
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
    let expire = format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
        session::COOKIE
    );
    redirect_setting("/login", &expire)
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
        .filter(|b| {
            b.starts_with('/')
                && !b.starts_with("//")
                && b.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"/?=&%._-~+".contains(&c))
        })
        .unwrap_or_else(|| "/".into());
    let v = format!(
        "{}={code}; Path=/; Max-Age=31536000; SameSite=Lax",
        session::LANG_COOKIE
    );
    redirect_setting(&back, &v)
}
