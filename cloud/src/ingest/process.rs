//! What storing one batch means, inside the writer's transaction: idempotence on
//! (device, seq), ★ scoring with exceptions and escalation, the alert record, and the
//! contract's mail window.

use protocol::messages::{Detection, Event, SeqEvent};

use crate::clock::Ms;
use crate::config::TimingConfig;
use crate::score::{Level, Scorer, Subject};
use crate::store::{AlertRecord, AlertStatus, Contract, StoredEvent, Tx};

/// What storing a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Highest sequence number of the batch.
    pub upto: u64,
    pub new: u64,
    pub duplicates: u64,
    /// Hosts isolated by the contract's auto-isolation.
    pub isolations: u64,
}

/// Store a batch.
pub fn store_batch(
    tx: &mut Tx,
    scorer: &Scorer,
    timing: &TimingConfig,
    now: Ms,
    device: &str,
    contract_id: u64,
    events: &[SeqEvent],
) -> crate::store::Result<Stored> {
    let mut upto = 0;
    let (mut new, mut dups, mut isolations) = (0, 0, 0);
    let contract = tx.contract(contract_id)?;
    for se in events {
        upto = upto.max(se.seq);
        if tx.seen(device, se.seq)?.is_some() {
            dups += 1;
            continue;
        }
        new += 1;
        let stored = match &se.event {
            Event::Alert(a) => StoredEvent::Alert(a.clone()),
            Event::FileVerdict(f) => StoredEvent::File(f.clone()),
            Event::TrafficSummary(t) => {
                let row = crate::store::TrafficRow {
                    device: device.to_string(),
                    bucket_start: t.bucket_start.0,
                    host_ip: t.host.ip.to_string(),
                    host_mac: t.host.mac.to_string(),
                    entries: t
                        .entries
                        .iter()
                        .map(|e| crate::store::TrafficCount {
                            category: e.category.as_str().to_string(),
                            app: e.app.as_str().to_string(),
                            bytes_in: e.bytes_in,
                            bytes_out: e.bytes_out,
                            flows: e.flows,
                        })
                        .collect(),
                };
                tx.add_traffic(contract_id, &row)?;
                tx.mark_seen(device, se.seq)?;
                continue;
            }
        };
        let subject = match &stored {
            StoredEvent::Alert(a) => Subject::Alert(a),
            StoredEvent::File(f) => Subject::File(f),
        };
        let (mut level, mut reason) = scorer.score(&subject);
        if let Some(c) = &contract {
            if let Some(why) = excepted(c, &stored) {
                level = Level::Info;
                reason = format!("例外設定（{why}）により通知対象外");
            }
        }
        let id = tx.next_id("alert")?;
        let host_key = format!("{contract_id}|{}", stored.flow().internal_ip);
        if level == Level::Medium {
            let since = now - timing.escalation_window.as_millis() as i64;
            let me = stored.dedup_subject();
            let mut distinct = false;
            for other in tx.medium_since(&host_key, since)? {
                if let Some(o) = tx.alert(other)? {
                    if o.event.dedup_subject() != me {
                        distinct = true;
                        break;
                    }
                }
            }
            tx.add_medium(&host_key, now, id)?;
            if distinct {
                level = Level::High;
                reason = format!(
                    "24時間以内に同じ端末で ★★☆ の異なるアラートが2件以上発生したため ★★★ に引き上げました（{reason}）"
                );
            }
        }
        let mut rec = AlertRecord {
            id,
            contract_id,
            device: device.to_string(),
            seq: se.seq,
            received_ms: now,
            event: stored,
            level,
            reason,
            mailed: false,
            deduplicated: false,
            status: AlertStatus::Open,
            history: Vec::new(),
        };
        if level.important() {
            crate::notify::enqueue_alert(tx, timing, now, &mut rec)?;
        }
        if let Some(c) = contract
            .as_ref()
            .filter(|c| c.auto_isolation && level == Level::High)
        {
            let host = crate::command::alert_host(rec.event.flow());
            if crate::command::auto_isolate(tx, device, host, &c.isolation_allow, id, now)? {
                isolations += 1;
            }
        }
        tx.insert_alert(&rec)?;
    }
    if let Some(mut d) = tx.device(device)? {
        if upto > d.last_seq {
            d.last_seq = upto;
            tx.put_device(&d)?;
        }
    }
    Ok(Stored {
        upto,
        new,
        duplicates: dups,
        isolations,
    })
}

/// Whether a contract's exception list covers an event; returns which entry.
fn excepted(c: &Contract, e: &StoredEvent) -> Option<String> {
    for x in &c.exceptions {
        let (kind, val) = x.split_once(':').unwrap_or(("", x.as_str()));
        let hit = match (kind, e) {
            ("sid", StoredEvent::Alert(a)) => match &a.detection {
                Detection::Signature(s) => val.parse::<u32>().is_ok_and(|v| v == s.sid),
                _ => false,
            },
            ("host", _) => e.flow().internal_ip.to_string() == val,
            ("domain", StoredEvent::Alert(a)) => {
                let host = a
                    .url
                    .as_ref()
                    .map(|u| u.host().to_string())
                    .or(a.sni.as_ref().map(|s| s.to_string()))
                    .or(a.dns_name.as_ref().map(|s| s.to_string()));
                host.is_some_and(|h| h == val || h.ends_with(&format!(".{val}")))
            }
            ("hash", StoredEvent::File(f)) => f.sha256.to_string() == val.to_ascii_lowercase(),
            _ => false,
        };
        if hit {
            return Some(x.clone());
        }
    }
    None
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::store::Store;
    use crate::testutil::*;
    use protocol::messages::{Action, Direction, Event, SeqEvent};

    fn setup(name: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mimamori-proc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store
            .write(|tx| {
                tx.put_contract(&contract(
                    &["a@example.com", "b@example.com", "c@example.com"],
                    &["sid:999"],
                ))
            })
            .unwrap();
        (store, dir)
    }

    fn ev(seq: u64, a: protocol::messages::Alert) -> SeqEvent {
        SeqEvent {
            seq,
            event: Event::Alert(a),
        }
    }

    #[test]
    fn auto_isolation_queues_one_command_per_host() {
        use crate::store::{CommandState, Device, DeviceStatus};
        use protocol::messages::{CommandKind, HostRef};
        let (store, dir) = setup("iso");
        let sc = Scorer::default_policy();
        let t = TimingConfig::default();
        store
            .write(|tx| {
                let mut c = tx.contract(1)?.unwrap();
                c.auto_isolation = true;
                c.isolation_allow = vec!["198.18.0.1:53".into()];
                tx.put_contract(&c)?;
                tx.put_device(&Device::new("dev-1", 1, "", DeviceStatus::Active, 0))
            })
            .unwrap();
        let high = |sid| {
            sig_alert(
                sid,
                Direction::Outbound,
                "trojan-activity",
                &[("confidence", "High")],
                Action::Blocked,
            )
        };
        let low = sig_alert(7, Direction::Inbound, "misc-activity", &[], Action::Allowed);
        let r = store
            .write(|tx| store_batch(tx, &sc, &t, 1000, "dev-1", 1, &[ev(1, low)]))
            .unwrap();
        assert_eq!(r.isolations, 0, "only ★★★ isolates");
        let r = store
            .write(|tx| {
                store_batch(
                    tx,
                    &sc,
                    &t,
                    2000,
                    "dev-1",
                    1,
                    &[ev(2, high(1)), ev(3, high(2))],
                )
            })
            .unwrap();
        assert_eq!(
            r.isolations, 1,
            "one command for the host, not one per alert"
        );
        let cmds = store.read(|rx| rx.commands_of("dev-1")).unwrap();
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].state, CommandState::Pending);
        assert!(cmds[0].origin.starts_with("auto-isolation"));
        match &cmds[0].kind {
            CommandKind::IsolateHost { host, allow } => {
                assert!(matches!(host, HostRef::Mac(_)), "by MAC when known");
                assert_eq!(allow.len(), 1);
                assert_eq!(allow[0].port, Some(53));
            }
            k => panic!("{k:?}"),
        }
        // once released, a new ★★★ isolates again
        store
            .write(|tx| {
                let d = tx.device("dev-1")?.unwrap();
                let host = match &cmds[0].kind {
                    CommandKind::IsolateHost { host, .. } => *host,
                    _ => unreachable!(),
                };
                tx.queue_command(&d, CommandKind::ReleaseHost { host }, "admin", 3000)
                    .map(|_| ())
            })
            .unwrap();
        let r = store
            .write(|tx| store_batch(tx, &sc, &t, 4000, "dev-1", 1, &[ev(4, high(3))]))
            .unwrap();
        assert_eq!(r.isolations, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn idempotent_scored_batched_and_deduplicated() {
        let (store, dir) = setup("all");
        let sc = Scorer::default_policy();
        let t = TimingConfig::default();
        let high = sig_alert(
            1,
            Direction::Outbound,
            "trojan-activity",
            &[("confidence", "High")],
            Action::Blocked,
        );
        let med_a = sig_alert(
            2,
            Direction::Outbound,
            "trojan-activity",
            &[("confidence", "Low")],
            Action::Allowed,
        );
        let med_b = sig_alert(
            3,
            Direction::Outbound,
            "trojan-activity",
            &[("confidence", "Medium")],
            Action::Allowed,
        );
        let excepted = sig_alert(
            999,
            Direction::Outbound,
            "trojan-activity",
            &[("confidence", "High")],
            Action::Allowed,
        );
        let batch = vec![
            ev(1, high.clone()),
            ev(2, med_a),
            ev(3, med_b),
            ev(4, excepted),
        ];
        let r = store
            .write(|tx| store_batch(tx, &sc, &t, 1000, "dev-1", 1, &batch))
            .unwrap();
        assert_eq!((r.upto, r.new, r.duplicates), (4, 4, 0));
        // the same batch again: stored once
        let r = store
            .write(|tx| store_batch(tx, &sc, &t, 2000, "dev-1", 1, &batch))
            .unwrap();
        assert_eq!((r.upto, r.new, r.duplicates), (4, 0, 4));
        let alerts = store.read(|rx| rx.alerts_of(1, 100)).unwrap();
        assert_eq!(alerts.len(), 4);
        let by_seq = |s: u64| alerts.iter().find(|a| a.seq == s).unwrap().clone();
        assert_eq!(by_seq(1).level, Level::High);
        assert_eq!(by_seq(2).level, Level::Medium);
        // a second distinct ★★☆ of the same host within 24 h escalates
        assert_eq!(by_seq(3).level, Level::High);
        assert!(by_seq(3).reason.contains("引き上げ"));
        assert_eq!(by_seq(4).level, Level::Info);
        // the same signature again later (within 72 h): stored, not mailed
        let r = store
            .write(|tx| store_batch(tx, &sc, &t, 3000, "dev-1", 1, &[ev(5, high)]))
            .unwrap();
        assert_eq!(r.new, 1);
        let again = store.read(|rx| rx.alerts_of(1, 1)).unwrap().remove(0);
        assert!(again.deduplicated && !again.mailed);
        // the window closes after 60 s: one mail per address with the highest level and the count
        assert_eq!(
            store
                .write(|tx| crate::notify::close_due_windows(tx, 30_000, 9 * 3600))
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .write(|tx| crate::notify::close_due_windows(tx, 61_001, 9 * 3600))
                .unwrap(),
            3
        );
        let mails = store.read(|rx| rx.outbox()).unwrap();
        assert_eq!(mails.len(), 3);
        assert!(
            mails
                .iter()
                .all(|m| m.subject == "【Mimamori】重要アラート ★★★ (3件) テスト商店"),
            "{:?}",
            mails[0].subject
        );
        assert!(
            mails[0].body.contains("198.18.0.10") && mails[0].body.contains("c2.example/gate.php")
        );
        assert!(
            !mails[0].body.contains("id=1"),
            "the query string never leaves the appliance"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
