//! The customer portal as a browser (or an attacker) sees it: any method, path, query,
//! cookie and form body, anonymous or logged in, with or without the CSRF token. A
//! portal answer may be anything but a server error (500) or a panic; a logged-in user
//! of contract 1 must never see contract 2's alert.

#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use mimamori_cloud::clock::SystemClock;
use mimamori_cloud::portal::{Portal, routes};
use mimamori_cloud::store::*;
use tower::ServiceExt;

const MARKER: &str = "OTHER-TENANT-MARKER";

struct World {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    sid: String,
    csrf: String,
    other_alert: u64,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mimamori-fuzz-portal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg: mimamori_cloud::config::Config = toml::from_str(&format!(
            "data_dir = {dir:?}\n[portal]\nlisten = \"127.0.0.1:0\"\n"
        ))
        .expect("config");
        let app = mimamori_cloud::serve::build(cfg, Arc::new(SystemClock)).expect("app");
        let date = mimamori_cloud::contract::Date::new(2026, 1, 5).expect("date");
        let (user, other_alert) = app
            .store
            .write(|tx| {
                for id in [1u64, 2] {
                    tx.put_contract(&Contract {
                        id,
                        customer_id: id,
                        name: format!("c{id}"),
                        application_date: date,
                        start: date,
                        paid_start: date,
                        ended: None,
                        recipients: vec!["a@example.com".into()],
                        auto_isolation: false,
                        isolation_allow: Vec::new(),
                        exceptions: vec![],
                    })?;
                }
                let u = PortalUser {
                    id: 1,
                    contract_id: 1,
                    email: "u@example.com".into(),
                    totp_secret: Some("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into()),
                    ..Default::default()
                };
                tx.put_user(&u)?;
                // contract 2's alert carries a marker no page of contract 1 may show
                let ev = mimamori_protocol::messages::Alert {
                    time: mimamori_protocol::messages::UnixMs(1_790_000_000_000),
                    flow: mimamori_protocol::messages::FlowRef {
                        proto: mimamori_protocol::messages::IpProto::Tcp,
                        direction: mimamori_protocol::messages::Direction::Outbound,
                        internal_ip: "198.18.0.9".parse().expect("ip"),
                        internal_port: Some(50_000),
                        internal_mac: mimamori_protocol::messages::Mac([2, 0, 0, 0, 0, 9]),
                        external_ip: "198.19.0.9".parse().expect("ip"),
                        external_port: Some(443),
                    },
                    detection: mimamori_protocol::messages::Detection::Signature(mimamori_protocol::messages::Signature {
                        gid: 1,
                        sid: 1,
                        rev: 1,
                        msg: mimamori_protocol::bounded::Text::truncated(MARKER),
                        classtype: None,
                        severity: 1,
                        metadata: vec![],
                    }),
                    url: None,
                    sni: None,
                    dns_name: None,
                    action: mimamori_protocol::messages::Action::Allowed,
                };
                let id = tx.next_id("alert")?;
                tx.insert_alert(&AlertRecord {
                    id,
                    contract_id: 2,
                    device: "dev-2".into(),
                    seq: 1,
                    received_ms: 1_790_000_000_000,
                    event: StoredEvent::Alert(ev),
                    level: mimamori_cloud::score::Level::High,
                    reason: MARKER.into(),
                    mailed: false,
                    deduplicated: false,
                    status: AlertStatus::Open,
                    history: vec![],
                })?;
                Ok((u, id))
            })
            .expect("seed");
        let portal = Portal::new(app);
        let (sid, csrf) = portal.open_session(&user);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        World {
            rt,
            router: routes(portal),
            sid,
            csrf,
            other_alert,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let path = format!("/{}", target.trim_start_matches('/'));
    let method = if flags & 1 == 1 { Method::POST } else { Method::GET };
    let mut req = Request::builder().method(method.clone()).uri(path.as_str());
    if flags & 2 == 2 {
        req = req.header("cookie", format!("mimamori_session={}", w.sid));
    } else if flags & 16 == 16 {
        req = req.header("cookie", String::from_utf8_lossy(body).replace(['\r', '\n'], ""));
    }
    if flags & 8 == 8 {
        req = req.header("cookie", "mimamori_lang=en");
    }
    let mut form = Vec::new();
    if flags & 4 == 4 {
        form.extend_from_slice(format!("csrf={}&", w.csrf).as_bytes());
    }
    form.extend_from_slice(body);
    let req = match req
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
    {
        Ok(r) => r,
        Err(_) => return,
    };
    let resp = w.rt.block_on(w.router.clone().oneshot(req)).expect("infallible");
    let status = resp.status();
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path} answered 500");
    let body = w
        .rt
        .block_on(axum::body::to_bytes(resp.into_body(), 1 << 24))
        .expect("body");
    assert!(
        !String::from_utf8_lossy(&body).contains(MARKER),
        "{method} {path} showed contract 2's alert {} to contract 1",
        w.other_alert
    );
});
