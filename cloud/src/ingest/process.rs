//! What storing one batch means, inside the writer's transaction: idempotence on
//! (device, seq), ★ scoring with exceptions and escalation, the alert record, and the
//! contract's mail window.

use protocol::messages::{Detection, Event, SeqEvent};

use crate::clock::Ms;
use crate::config::TimingConfig;
use crate::score::{Level, Scorer, Subject, catalog};
use crate::store::{AlertRecord, AlertStatus, Contract, DeviceStatus, StoredEvent, Tx};

/// What storing a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Highest sequence number of the batch.
    pub upto: u64,
    pub new: u64,
    pub duplicates: u64,
    /// Hosts isolated by the contract's auto-isolation.
    pub isolations: u64,
    /// Set when nothing was written because the device may not deliver any more; the
    /// batch must not be acknowledged.
    pub refused: Option<Refusal>,
}

/// Why a batch was refused inside the writer's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The device is unknown, not active (revoked, re-issued) or moved to another contract.
    DeviceNotActive,
    /// The device's contract has ended (or no longer exists).
    ContractEnded,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::DeviceNotActive => "the device is not active (revoked)",
            Refusal::ContractEnded => "the device's contract has ended",
        })
    }
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
    // checked in the same transaction that writes: a batch racing a revocation or a
    // contract end writes nothing
    let active = tx
        .device(device)?
        .is_some_and(|d| d.status == DeviceStatus::Active && d.contract_id == contract_id);
    let contract = tx.contract(contract_id)?;
    let refused = if contract.as_ref().is_none_or(|c| c.ended.is_some()) {
        Some(Refusal::ContractEnded)
    } else if !active {
        Some(Refusal::DeviceNotActive)
    } else {
        None
    };
    if refused.is_some() {
        return Ok(Stored {
            refused,
            ..Stored::default()
        });
    }
    for se in events {
        upto = upto.max(se.seq);
        if tx.seen(device, se.seq)?.is_some() {
            dups += 1;
            continue;
        }
        new += 1;
        let mut stored = match &se.event {
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
        // the cloud's own metadata for the rule, never the appliance's
        let known = match &mut stored {
            StoredEvent::Alert(a) => match &mut a.detection {
                Detection::Signature(s) => Some((catalog::apply(tx, s)?, s.gid, s.sid, s.rev)),
                _ => None,
            },
            StoredEvent::File(_) => None,
        };
        let subject = match &stored {
            StoredEvent::Alert(a) => Subject::Alert(a),
            StoredEvent::File(f) => Subject::File(f),
        };
        let (mut level, mut reason) = match known {
            Some((catalog::Known::Unknown, gid, sid, rev)) => (
                Level::Investigating,
                format!(
                    "クラウドの知らないルール（{gid}:{sid}:{rev}）の検知のため調査中です（機器の申告する重要度は使いません）"
                ),
            ),
            Some((catalog::Known::OtherRev(newest), _, _, rev)) => {
                let (l, r) = scorer.score(&subject);
                (
                    l,
                    format!("{r}（rev {rev} はクラウドの台帳になく、rev {newest} の情報で評価）"),
                )
            }
            _ => scorer.score(&subject),
        };
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
        refused: None,
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
                ))?;
                tx.put_device(&crate::store::Device::new(
                    "dev-1",
                    1,
                    "",
                    DeviceStatus::Active,
                    0,
                ))
            })
            .unwrap();
        (store, dir)
    }

    /// Puts the alerts' own rule metadata into the cloud's catalogue (as a published
    /// bundle would).
    fn teach(store: &Store, alerts: &[&protocol::messages::Alert]) {
        store
            .write(|tx| {
                for a in alerts {
                    if let Detection::Signature(s) = &a.detection {
                        tx.put_catalog_rule(&crate::store::CatalogRule {
                            gid: s.gid,
                            sid: s.sid,
                            rev: s.rev,
                            msg: s.msg.to_string(),
                            classtype: s.classtype.as_ref().map(|c| c.to_string()),
                            metadata: s
                                .metadata
                                .iter()
                                .map(|m| (m.key.to_string(), m.value.to_string()))
                                .collect(),
                            source: "test".into(),
                            added_ms: 0,
                        })?;
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    fn ev(seq: u64, a: protocol::messages::Alert) -> SeqEvent {
        SeqEvent {
            seq,
            event: Event::Alert(a),
        }
    }

    #[test]
    fn the_cloud_scores_from_its_own_rule_metadata() {
        let (store, dir) = setup("catalog");
        let sc = Scorer::default_policy();
        let t = TimingConfig::default();
        // the cloud knows sid 1 rev 1 as informational
        let info = sig_alert(
            1,
            Direction::Outbound,
            "misc-activity",
            &[("signature_severity", "Informational")],
            Action::Allowed,
        );
        teach(&store, &[&info]);
        // the appliance claims it is Major/High trojan activity
        let forged = || {
            sig_alert(
                1,
                Direction::Outbound,
                "trojan-activity",
                &[("signature_severity", "Major"), ("confidence", "High")],
                Action::Blocked,
            )
        };
        let mut rev2 = forged();
        if let Detection::Signature(s) = &mut rev2.detection {
            s.rev = 2;
        }
        let unknown = sig_alert(
            4242,
            Direction::Outbound,
            "trojan-activity",
            &[("signature_severity", "Major"), ("confidence", "High")],
            Action::Blocked,
        );
        let r = store
            .write(|tx| {
                store_batch(
                    tx,
                    &sc,
                    &t,
                    1000,
                    "dev-1",
                    1,
                    &[ev(1, forged()), ev(2, rev2), ev(3, unknown)],
                )
            })
            .unwrap();
        assert_eq!((r.new, r.isolations), (3, 0));
        let alerts = store.read(|rx| rx.alerts_of(1, 100)).unwrap();
        let by_seq = |s: u64| alerts.iter().find(|a| a.seq == s).unwrap().clone();
        assert_ne!(by_seq(1).level, Level::High, "{}", by_seq(1).reason);
        assert!(by_seq(1).level < Level::Medium, "{:?}", by_seq(1).level);
        match &by_seq(1).event {
            StoredEvent::Alert(a) => match &a.detection {
                Detection::Signature(s) => {
                    assert_eq!(
                        s.classtype.as_ref().map(|c| c.as_str()),
                        Some("misc-activity")
                    );
                    assert_eq!(s.meta("signature_severity"), Some("Informational"));
                    assert_eq!(s.meta("confidence"), None);
                }
                d => panic!("{d:?}"),
            },
            e => panic!("{e:?}"),
        }
        assert!(by_seq(1).level < Level::Medium);
        assert!(by_seq(2).level < Level::Medium);
        assert!(by_seq(2).reason.contains("rev 1"), "{}", by_seq(2).reason);
        assert_eq!(by_seq(3).level, Level::Investigating);
        assert!(
            by_seq(3).reason.contains("知らないルール"),
            "{}",
            by_seq(3).reason
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_revoked_device_or_an_ended_contract_writes_nothing() {
        let (store, dir) = setup("refuse");
        let sc = Scorer::default_policy();
        let t = TimingConfig::default();
        let a = || {
            sig_alert(
                1,
                Direction::Outbound,
                "trojan-activity",
                &[],
                Action::Allowed,
            )
        };
        store
            .write(|tx| {
                let mut d = tx.device("dev-1")?.unwrap();
                d.status = DeviceStatus::Revoked;
                tx.put_device(&d)
            })
            .unwrap();
        let r = store
            .write(|tx| store_batch(tx, &sc, &t, 1000, "dev-1", 1, &[ev(1, a())]))
            .unwrap();
        assert_eq!(r.refused, Some(Refusal::DeviceNotActive));
        // a device of contract 1 cannot write into another contract
        let r = store
            .write(|tx| store_batch(tx, &sc, &t, 1000, "dev-2", 1, &[ev(1, a())]))
            .unwrap();
        assert_eq!(r.refused, Some(Refusal::DeviceNotActive));
        store
            .write(|tx| {
                let mut d = tx.device("dev-1")?.unwrap();
                d.status = DeviceStatus::Active;
                tx.put_device(&d)?;
                let mut c = tx.contract(1)?.unwrap();
                c.ended = Some(crate::contract::Date::parse("2026-01-01").unwrap());
                tx.put_contract(&c)
            })
            .unwrap();
        let r = store
            .write(|tx| store_batch(tx, &sc, &t, 1000, "dev-1", 1, &[ev(2, a())]))
            .unwrap();
        assert_eq!(r.refused, Some(Refusal::ContractEnded));
        assert!(store.read(|rx| rx.alerts_of(1, 100)).unwrap().is_empty());
        assert!(store.read(|rx| rx.seen("dev-1", 1)).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
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
        teach(&store, &[&low, &high(1), &high(2), &high(3)]);
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
        teach(&store, &[&high, &med_a, &med_b, &excepted]);
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
