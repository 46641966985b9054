//! The ingest session as an appliance (or an attacker) speaks to it after TLS: any bytes,
//! without a client certificate, as an active device, or as a revoked one. The session
//! must never panic, and nothing may be stored for a device that is not active.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mimamori_cloud::App;
use mimamori_cloud::clock::SystemClock;
use mimamori_cloud::store::*;
use mimamori_protocol::bounded::Name;
use mimamori_protocol::messages::{DeviceId, Hello, UpMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    rt: tokio::runtime::Runtime,
    app: Arc<App>,
    /// Client certificates (DER) of dev-1 (active, contract 1) and dev-2 (revoked, contract 2).
    active: Vec<u8>,
    revoked: Vec<u8>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mimamori-fuzz-ingest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // short deadlines: a silent input must not hold an iteration
        let cfg: mimamori_cloud::config::Config = toml::from_str(&format!(
            "data_dir = {dir:?}\n[ingest]\nidle_timeout = \"1s\"\nhello_timeout = \"1s\"\n"
        ))
        .expect("config");
        let app = mimamori_cloud::serve::build(cfg, Arc::new(SystemClock)).expect("app");
        let (active, s1) = app.identity.device_cert_der("dev-1").expect("cert");
        let (revoked, s2) = app.identity.device_cert_der("dev-2").expect("cert");
        let date = mimamori_cloud::contract::Date::new(2026, 1, 5).expect("date");
        app.store
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
                        auto_isolation: true,
                        isolation_allow: Vec::new(),
                        exceptions: vec![],
                    })?;
                }
                for (id, c, st, serial) in [
                    ("dev-1", 1, DeviceStatus::Active, s1),
                    ("dev-2", 2, DeviceStatus::Revoked, s2),
                ] {
                    let mut d = Device::new(id, c, "", st, 0);
                    d.cert_serial = Some(serial);
                    tx.put_device(&d)?;
                }
                Ok(())
            })
            .expect("seed");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        World {
            rt,
            app,
            active,
            revoked,
        }
    })
}

fn hello(dev: &str) -> Vec<u8> {
    let h = Hello::new(
        DeviceId::new(dev).expect("id"),
        Name::truncated("1.0"),
        Name::truncated("r1"),
    );
    mimamori_protocol::encode_frame(&UpMsg::Hello(h)).expect("hello")
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    // bits 0-1: no certificate, the active device, the revoked device;
    // bit 2: a valid Hello first, so the input reaches the established session
    let (cert, dev) = match flags & 3 {
        1 => (Some(w.active.clone()), "dev-1"),
        2 => (Some(w.revoked.clone()), "dev-2"),
        _ => (None, "activation"),
    };
    let mut input = Vec::new();
    if flags & 4 == 4 {
        input.extend(hello(dev));
    }
    input.extend_from_slice(rest);
    let app = Arc::clone(&w.app);
    w.rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let session = tokio::spawn(async move {
            let _ = mimamori_cloud::ingest::run_session(&app, server, cert).await;
        });
        let _ = client.write_all(&input).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
        session.await.expect("the session panicked");
    });
    let (revoked_alerts, revoked_seen, dev2) = w
        .app
        .store
        .read(|rx| {
            Ok((
                rx.alerts_of(2, 10)?.len(),
                rx.seen("dev-2", 0)?.is_some(),
                rx.device("dev-2")?,
            ))
        })
        .expect("read");
    assert_eq!(
        revoked_alerts, 0,
        "an alert was stored for the revoked device"
    );
    assert!(!revoked_seen);
    let dev2 = dev2.expect("dev-2 exists");
    assert_eq!(dev2.status, DeviceStatus::Revoked);
    assert_eq!(
        dev2.last_seq, 0,
        "a batch of the revoked device was recorded"
    );
    assert_eq!(
        w.app
            .store
            .read(|rx| rx.commands_of("dev-2"))
            .expect("read")
            .len(),
        0,
        "a command was queued for the revoked device"
    );
});
