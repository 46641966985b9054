use super::*;
use crate::config::Config;
use crate::contract::Date;
use crate::store::{Device, DeviceStatus, Store};

fn setup(name: &str) -> (Store, Config, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("mimamori-hb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg: Config = toml::from_str(&format!(
        "data_dir = {:?}\n[timing]\nstop_after = \"5m\"\nstartup_grace = \"10m\"\ndaily_check_at = \"09:00\"\n",
        dir
    ))
    .unwrap();
    let store = Store::open(&dir).unwrap();
    store
        .write(|tx| {
            tx.put_contract(&crate::testutil::contract(
                &["a@example.com", "b@example.com"],
                &[],
            ))?;
            for (id, status) in [
                ("dev-1", DeviceStatus::Active),
                ("dev-pending", DeviceStatus::Pending),
            ] {
                tx.put_device(&Device {
                    activated_ms: Some(0),
                    last_heartbeat_ms: Some(0),
                    ..Device::new(id, 1, "", status, 0)
                })?;
            }
            Ok(())
        })
        .unwrap();
    (store, cfg, dir)
}

const MIN: i64 = 60_000;

#[test]
fn stop_daily_recovery_and_grace() {
    let (store, cfg, dir) = setup("flow");
    let mut live = HashMap::new();
    // cloud started at t=0: 6 minutes of silence fall inside the 10-minute grace period
    let p = store
        .write(|tx| pass(tx, &cfg, 0, 6 * MIN, &mut live, false))
        .unwrap();
    assert!(p.stop_notices.is_empty());
    // after the grace period: one stop notice for the active device only, one mail per address
    let p = store
        .write(|tx| pass(tx, &cfg, 0, 11 * MIN, &mut live, false))
        .unwrap();
    assert_eq!(p.stop_notices, vec!["dev-1".to_string()]);
    assert_eq!(
        store
            .read(|rx| rx.outbox())
            .unwrap()
            .iter()
            .filter(|m| m.kind == "stop")
            .count(),
        2
    );
    // not again on the next pass
    let p = store
        .write(|tx| pass(tx, &cfg, 0, 12 * MIN, &mut live, false))
        .unwrap();
    assert!(p.stop_notices.is_empty());
    // the daily check notifies again
    let p = store
        .write(|tx| pass(tx, &cfg, 0, 13 * MIN, &mut live, true))
        .unwrap();
    assert_eq!(p.daily_notices, vec!["dev-1".to_string()]);
    // a heartbeat: recovery mail
    live.insert(
        "dev-1".into(),
        Liveness {
            last_ms: 14 * MIN,
            dirty: true,
            ..Default::default()
        },
    );
    let p = store
        .write(|tx| pass(tx, &cfg, 0, 14 * MIN + 1000, &mut live, false))
        .unwrap();
    assert_eq!(p.recoveries, vec!["dev-1".to_string()]);
    let kinds: Vec<String> = store
        .read(|rx| rx.outbox())
        .unwrap()
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "recovery").count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn daily_check_runs_once_a_day_after_its_time() {
    let (store, cfg, dir) = setup("daily");
    // 2026-11-22 08:59 JST = 23:59 UTC the day before
    let day = crate::contract::Date::parse("2026-11-22").unwrap().days() * 86_400_000;
    let jst = |h: i64, m: i64| day + (h * 3600 + m * 60 - 9 * 3600) * 1000;
    assert!(!store.write(|tx| daily_due(tx, &cfg, jst(8, 59))).unwrap());
    assert!(store.write(|tx| daily_due(tx, &cfg, jst(9, 0))).unwrap());
    assert!(!store.write(|tx| daily_due(tx, &cfg, jst(15, 0))).unwrap());
    assert!(
        store
            .write(|tx| daily_due(tx, &cfg, jst(24 + 9, 1)))
            .unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ended_contracts_get_no_notices() {
    let (store, cfg, dir) = setup("ended");
    store
        .write(|tx| {
            let mut c = tx.contract(1)?.unwrap();
            c.ended = Some(Date::parse("1970-01-01").unwrap());
            tx.put_contract(&c)
        })
        .unwrap();
    let p = store
        .write(|tx| pass(tx, &cfg, 0, 24 * 60 * MIN, &mut HashMap::new(), true))
        .unwrap();
    assert_eq!(p, Pass::default());
    let _ = std::fs::remove_dir_all(&dir);
}
