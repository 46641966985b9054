//! Notifications (SPEC §5.3): important alerts of a contract are batched in a window; one
//! mail per recipient carries all alerts of the window; the same (appliance, host,
//! signature or file hash) within 72 h is recorded but not mailed again. Every mail goes
//! through the durable outbox (`sender`), so none is lost across a restart or an SMTP
//! outage.

pub mod compose;
pub mod sender;

use crate::clock::Ms;
use crate::config::TimingConfig;
use crate::store::{AlertRecord, Mail, Tx, Window};

/// Put an important alert into its contract's window (opening one if needed), unless the
/// same thing was mailed within the dedup window.
pub fn enqueue_alert(
    tx: &mut Tx,
    timing: &TimingConfig,
    now: Ms,
    rec: &mut AlertRecord,
) -> crate::store::Result<()> {
    let key = format!(
        "{}|{}|{}",
        rec.device,
        rec.event.flow().internal_ip,
        rec.event.dedup_subject()
    );
    if let Some(last) = tx.dedup_last(&key)? {
        if now - last < timing.dedup_window.as_millis() as i64 {
            rec.deduplicated = true;
            return Ok(());
        }
    }
    tx.set_dedup(&key, now)?;
    let mut w = tx.window(rec.contract_id)?.unwrap_or(Window {
        closes_ms: now + timing.mail_window.as_millis() as i64,
        alerts: Vec::new(),
    });
    w.alerts.push(rec.id);
    rec.mailed = true;
    tx.put_window(rec.contract_id, &w)
}

/// Close every window whose time is up: compose one mail per recipient into the outbox.
/// Returns how many mails were queued.
pub fn close_due_windows(tx: &mut Tx, now: Ms, tz_offset: i64) -> crate::store::Result<usize> {
    let mut queued = 0;
    for (contract_id, w) in tx.windows()? {
        if w.closes_ms > now {
            continue;
        }
        tx.remove_window(contract_id)?;
        let Some(contract) = tx.contract(contract_id)? else {
            continue;
        };
        let mut alerts: Vec<AlertRecord> = Vec::new();
        for id in &w.alerts {
            if let Some(a) = tx.alert(*id)? {
                alerts.push(a);
            }
        }
        if alerts.is_empty() || contract.recipients.is_empty() {
            if contract.recipients.is_empty() {
                tracing::warn!(
                    contract = contract_id,
                    "important alerts but no notification address"
                );
            }
            continue;
        }
        let devices: Vec<_> = tx.devices()?;
        let (subject, body) = compose::alert_mail(&contract, &alerts, &devices, tz_offset);
        for to in &contract.recipients {
            queue_for(tx, now, Some(contract_id), to, &subject, &body, "alerts")?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// Queue one mail.
pub fn queue(
    tx: &mut Tx,
    now: Ms,
    to: &str,
    subject: &str,
    body: &str,
    kind: &str,
) -> crate::store::Result<u64> {
    queue_for(tx, now, None, to, subject, body, kind)
}

/// Queue one mail about a contract (contract end deletes it with the contract's data).
pub fn queue_for(
    tx: &mut Tx,
    now: Ms,
    contract: Option<u64>,
    to: &str,
    subject: &str,
    body: &str,
    kind: &str,
) -> crate::store::Result<u64> {
    tx.queue_mail(Mail {
        id: 0,
        to: to.to_string(),
        subject: subject.to_string(),
        body: body.to_string(),
        created_ms: now,
        next_attempt_ms: now,
        attempts: 0,
        last_error: None,
        kind: kind.to_string(),
        contract,
        given_up_ms: None,
    })
}

/// Queue a mail to every recipient of a contract.
pub fn queue_to_contract(
    tx: &mut Tx,
    now: Ms,
    contract_id: u64,
    subject: &str,
    body: &str,
    kind: &str,
) -> crate::store::Result<usize> {
    let Some(c) = tx.contract(contract_id)? else {
        return Ok(0);
    };
    for to in &c.recipients {
        queue_for(tx, now, Some(contract_id), to, subject, body, kind)?;
    }
    Ok(c.recipients.len())
}

/// Validate a notification address (a plain `local@domain`, no display name).
pub fn valid_address(a: &str) -> Result<(), String> {
    let a = a.trim();
    if a.len() > 254 {
        return Err(format!("`{a}` is too long"));
    }
    let Some((local, domain)) = a.rsplit_once('@') else {
        return Err(format!("`{a}` has no @"));
    };
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(format!("`{a}` is not a mail address"));
    }
    if a.chars()
        .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',' || c == ';')
    {
        return Err(format!(
            "`{a}` contains characters not allowed in an address"
        ));
    }
    a.parse::<lettre::Address>()
        .map_err(|e| format!("`{a}`: {e}"))?;
    Ok(())
}

/// Up to three valid, distinct addresses.
pub fn valid_recipients(list: &[String]) -> Result<Vec<String>, String> {
    if list.len() > 3 {
        return Err(format!(
            "at most 3 notification addresses per contract ({} given)",
            list.len()
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for a in list {
        valid_address(a)?;
        let a = a.trim().to_string();
        if out.iter().any(|x| x.eq_ignore_ascii_case(&a)) {
            return Err(format!("`{a}` is given twice"));
        }
        out.push(a);
    }
    Ok(out)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn addresses() {
        assert!(valid_address("it@example.co.jp").is_ok());
        assert!(valid_address("no-at-sign").is_err());
        assert!(valid_address("a@b").is_err());
        assert!(valid_address("x y@example.com").is_err());
        let four: Vec<String> = (0..4).map(|i| format!("u{i}@example.com")).collect();
        assert!(valid_recipients(&four).unwrap_err().contains("at most 3"));
        assert!(valid_recipients(&["a@example.com".into(), "A@example.com".into()]).is_err());
        assert_eq!(valid_recipients(&four[..3]).unwrap().len(), 3);
    }
}
