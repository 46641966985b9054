//! What storing one batch means, inside the writer's transaction: idempotence on
//! (device, seq), ★ scoring with exceptions and escalation, the alert record, and the
//! contract's mail window.

use protocol::messages::{Detection, Event, SeqEvent};

use crate::clock::Ms;
use crate::config::TimingConfig;
use crate::score::{Level, Scorer, Subject};
use crate::store::{AlertRecord, AlertStatus, Contract, StoredEvent, Tx};

/// Store a batch. Returns (highest seq of the batch, new events, duplicates).
pub fn store_batch(
    tx: &mut Tx,
    scorer: &Scorer,
    timing: &TimingConfig,
    now: Ms,
    device: &str,
    contract_id: u64,
    events: &[SeqEvent],
) -> crate::store::Result<(u64, u64, u64)> {
    let mut upto = 0;
    let (mut new, mut dups) = (0, 0);
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
            Event::TrafficSummary(_) => {
                // traffic records are kept by the portal work; here they are acknowledged
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
                reason = format!("24時間以内に同じ端末で ★★☆ の異なるアラートが2件以上発生したため ★★★ に引き上げました（{reason}）");
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
        tx.insert_alert(&rec)?;
    }
    if let Some(mut d) = tx.device(device)? {
        if upto > d.last_seq {
            d.last_seq = upto;
            tx.put_device(&d)?;
        }
    }
    Ok((upto, new, dups))
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
                let host = a.url.as_ref().map(|u| u.host().to_string()).or(a.sni.as_ref().map(|s| s.to_string())).or(a.dns_name.as_ref().map(|s| s.to_string()));
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
