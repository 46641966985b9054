//! The audit log in the portal: the "操作履歴 / Activity" page (the session's contract
//! only, through its [`Scope`](super::query::Scope)) and the recording of logins.

use askama::Template;
use serde_json::Value;

use super::{Authed, Chrome, Ctx, PortalError, render};
use crate::audit::{self, Actor, Who};
use crate::clock::format_local;

/// Entries shown at most.
const SHOWN: usize = 200;

pub struct ActivityRow {
    pub time: String,
    pub actor: String,
    pub addr: String,
    pub action: String,
    pub target: String,
    pub change: String,
}

#[derive(Template)]
#[template(path = "portal/activity.html")]
struct ActivityPage {
    c: Chrome,
    rows: Vec<ActivityRow>,
}

fn short(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

pub async fn activity(a: Authed) -> Result<axum::response::Response, PortalError> {
    let (ctx, scope) = (a.ctx, a.scope);
    let entries = ctx.p.app.store.read(|rx| scope.activity(rx, SHOWN))?;
    let tz = ctx.p.tz;
    let rows = entries
        .into_iter()
        .map(|e| {
            let (b, af) = (short(&e.before), short(&e.after));
            ActivityRow {
                time: format_local(e.time_ms, tz),
                actor: e.actor_text,
                addr: e.addr.unwrap_or_default(),
                action: e.action,
                target: e.target,
                change: match (b.is_empty(), af.is_empty()) {
                    (true, _) => af,
                    (false, true) => b,
                    (false, false) => format!("{b} → {af}"),
                },
            }
        })
        .collect();
    Ok(render(&ActivityPage {
        rows,
        c: ctx.chrome("account"),
    }))
}

impl Ctx {
    /// The logged-in (or logging-in) user of this request as an audit actor.
    pub fn actor(&self) -> Actor {
        Actor::portal(
            self.session.user,
            &self.session.email,
            self.addr,
            self.p.app.now(),
        )
    }

    /// Records a login event (`portal.login`, `portal.login_failed`, ...) of the account
    /// `email` (any case; a visitor, without the address, when no account has it). Never
    /// fails the request: a store error is logged.
    pub fn audit_login(&self, email: &str, action: &str, why: &str) {
        let now = self.p.app.now();
        let email = email.trim().to_lowercase();
        let r = self.p.app.store.write(|tx| {
            let (who, contract) = match tx.user_by_email(&email)? {
                Some(u) => (
                    Who::Portal {
                        user: u.id,
                        email: u.email,
                    },
                    Some(u.contract_id),
                ),
                None => (Who::Visitor, None),
            };
            // an address without an account is not written down: it may be a person's
            // (a mistyped one, or a user of an ended contract) and no contract end could
            // find it again; the client address says where the attempts come from
            let target = match &who {
                Who::Visitor => "login (an address without an account)".to_string(),
                _ => format!("login {}", email.chars().take(100).collect::<String>()),
            };
            let actor = Actor {
                who,
                addr: self.addr,
                at_ms: now,
            };
            audit::record(
                tx,
                &actor,
                contract,
                action,
                &target,
                Value::Null,
                serde_json::json!({ "result": why }),
            )
        });
        if let Err(e) = r {
            tracing::error!(error = %e, action, "portal: the audit entry of a login was not written");
        }
    }
}
