//! Contract dates and insurance rules (SPEC §5.5), as pure functions.
//!
//! - Application date D → contract start = D when D is the 1st–5th of a month (or, by
//!   choice, the 1st of next month), otherwise the 1st of next month.
//! - Paid period starts the 1st of the month after the contract start.
//! - Insurance year: from the paid start, renewed yearly. A ★★★ alert inside an insurance
//!   year makes the contract eligible for one covered on-site dispatch in that insurance
//!   year, requested within 30 days of that alert, up to ¥50,000.

use serde::{Deserialize, Serialize};

use crate::App;
use crate::clock::{civil, days_from_civil};
use crate::store::{CommandState, DeviceStatus, PortalUser, StoreError, Tx};

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    pub y: i32,
    pub m: u32,
    pub d: u32,
}

impl Date {
    pub fn new(y: i32, m: u32, d: u32) -> Result<Date, String> {
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return Err(format!("{y:04}-{m:02}-{d:02} is not a date"));
        }
        Ok(Date { y, m, d })
    }
    pub fn parse(s: &str) -> Result<Date, String> {
        let mut it = s.trim().splitn(3, '-');
        let bad = || format!("`{s}` is not a date (YYYY-MM-DD)");
        let y = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let m = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let d = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        Date::new(y, m, d)
    }
    pub fn days(self) -> i64 {
        days_from_civil(self.y as i64, self.m, self.d)
    }
    pub fn from_days(n: i64) -> Date {
        let (y, m, d) = civil(n);
        Date { y: y as i32, m, d }
    }
    /// The date of a time, in the given UTC offset.
    pub fn of_ms(ms: i64, offset_secs: i64) -> Date {
        Date::from_days((ms.div_euclid(1000) + offset_secs).div_euclid(86_400))
    }
    pub fn first_of_next_month(self) -> Date {
        if self.m == 12 {
            Date {
                y: self.y + 1,
                m: 1,
                d: 1,
            }
        } else {
            Date {
                y: self.y,
                m: self.m + 1,
                d: 1,
            }
        }
    }
    /// Same day `n` years later (29 February becomes 28 February).
    pub fn plus_years(self, n: i32) -> Date {
        let y = self.y + n;
        Date {
            y,
            m: self.m,
            d: self.d.min(days_in_month(y, self.m)),
        }
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.y, self.m, self.d)
    }
}

impl TryFrom<String> for Date {
    type Error = String;
    fn try_from(s: String) -> Result<Date, String> {
        Date::parse(&s)
    }
}

impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Contract start and paid start for an application date.
pub fn contract_dates(application: Date, start_next_month: bool) -> (Date, Date) {
    let start = if application.d <= 5 && !start_next_month {
        application
    } else {
        application.first_of_next_month()
    };
    (start, start.first_of_next_month())
}

/// Most a covered dispatch may cost, in yen.
pub const DISPATCH_LIMIT_YEN: u32 = 50_000;
/// Days after the ★★★ alert within which a dispatch must be requested.
pub const DISPATCH_REQUEST_DAYS: i64 = 30;

/// Why a dispatch is not covered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchRefusal {
    #[error("the paid period starts on {paid_start}; insurance does not cover earlier dispatches")]
    BeforePaidStart { paid_start: Date },
    #[error("no ★★★ alert in the insurance year {year_start} – {year_end}")]
    NoHighAlert { year_start: Date, year_end: Date },
    #[error(
        "requested {days} days after the ★★★ alert of {alert}; it must be within {DISPATCH_REQUEST_DAYS} days"
    )]
    TooLate { alert: Date, days: i64 },
    #[error(
        "a covered dispatch was already made on {previous} in the insurance year {year_start} – {year_end}"
    )]
    AlreadyUsed {
        previous: Date,
        year_start: Date,
        year_end: Date,
    },
    #[error("¥{amount} is above the ¥{DISPATCH_LIMIT_YEN} limit")]
    OverLimit { amount: u32 },
    #[error("the contract ended on {0}")]
    Ended(Date),
}

/// The insurance year containing `day`: [start, next start).
pub fn insurance_year(paid_start: Date, day: Date) -> Option<(Date, Date)> {
    if day < paid_start {
        return None;
    }
    let mut n = day.y - paid_start.y;
    if paid_start.plus_years(n) > day {
        n -= 1;
    }
    Some((paid_start.plus_years(n), paid_start.plus_years(n + 1)))
}

/// Decide whether a dispatch requested on `day` is covered. `high_alerts` are the dates of
/// the contract's ★★★ alerts, `dispatches` the dates of earlier covered dispatches.
pub fn check_dispatch(
    paid_start: Date,
    ended: Option<Date>,
    day: Date,
    amount: u32,
    high_alerts: &[Date],
    dispatches: &[Date],
) -> Result<(), DispatchRefusal> {
    if let Some(e) = ended {
        if day > e {
            return Err(DispatchRefusal::Ended(e));
        }
    }
    let Some((ys, ye)) = insurance_year(paid_start, day) else {
        return Err(DispatchRefusal::BeforePaidStart { paid_start });
    };
    if amount > DISPATCH_LIMIT_YEN {
        return Err(DispatchRefusal::OverLimit { amount });
    }
    if let Some(prev) = dispatches.iter().copied().find(|d| *d >= ys && *d < ye) {
        return Err(DispatchRefusal::AlreadyUsed {
            previous: prev,
            year_start: ys,
            year_end: ye,
        });
    }
    let in_year: Vec<Date> = high_alerts
        .iter()
        .copied()
        .filter(|a| *a >= ys && *a < ye && *a <= day)
        .collect();
    let Some(latest) = in_year.iter().copied().max() else {
        return Err(DispatchRefusal::NoHighAlert {
            year_start: ys,
            year_end: ye,
        });
    };
    let days = day.days() - latest.days();
    if days > DISPATCH_REQUEST_DAYS {
        return Err(DispatchRefusal::TooLate {
            alert: latest,
            days,
        });
    }
    Ok(())
}

/// What a contract end did and removed, per kind (`admin contract end`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndReport {
    pub contract: u64,
    pub ended: Option<Date>,
    /// Appliances revoked (their wipe stays queued until delivered).
    pub revoked_devices: Vec<String>,
    /// Wipe commands queued for the appliances that were active.
    pub wipes_queued: usize,
    /// Portal users disabled (their logins end) and then deleted with their e-mail index.
    pub users_removed: usize,
    /// The customer record (contact data) deleted: no other open contract of the customer.
    pub customer_removed: bool,
    pub addresses_removed: usize,
    pub alerts_removed: usize,
    pub traffic_removed: usize,
    /// Command history (every command but the pending wipes).
    pub commands_removed: usize,
    pub dedup_keys_removed: usize,
    pub escalation_keys_removed: usize,
    pub seen_rows_removed: usize,
    pub mail_windows_removed: usize,
    pub queued_mails_removed: usize,
    pub failed_mails_removed: usize,
    pub activation_codes_removed: usize,
    /// Insurance dispatch records kept for billing, their free-text note cleared.
    pub dispatch_notes_cleared: usize,
    /// Audit entries of the contract rewritten without personal data (kept as a record).
    pub audit_entries_anonymised: usize,
}

/// Disable a portal user: every login of it ends (epoch raised) and new ones are refused.
pub fn disable_user(tx: &mut Tx, u: &mut PortalUser) -> Result<(), StoreError> {
    u.disabled = true;
    u.epoch += 1;
    tx.put_user(u)
}

/// End contract `id` at `now` (Unix ms), in one store transaction:
///
/// - the contract is marked ended; its appliances are revoked and the active ones get a
///   wipe (delivered when they next connect: see `ingest::deliver_wipe`);
/// - its portal users are disabled (every login ends: the portal checks the user's epoch
///   on each request) and deleted with their e-mail index;
/// - personal data goes: the customer record (when no other open contract of the customer
///   needs it), notification addresses, isolation allow-list and exceptions (addresses of
///   the office), alerts and their index, traffic, command history, dedup and escalation
///   keys, (device, seq) rows, the mail window, queued and failed mails, activation codes;
/// - kept, without personal data, for billing, insurance and the wipe: the contract
///   record (id, customer id, dates; its name blanked), the device records (id, serial,
///   status, dates; names blanked), pending wipe commands and dispatch records (date,
///   amount, covered; note blanked).
///
/// Returns what was removed. Callers wake the revoked appliances' sessions
/// ([`App::commands_changed`]) after it returns.
pub fn end(
    app: &App,
    id: u64,
    now: i64,
    actor: &crate::audit::Actor,
) -> Result<EndReport, StoreError> {
    let today = Date::of_ms(now, app.cfg.utc_offset_secs());
    app.store.write(|tx| {
        let r = end_in(tx, id, now, today)?;
        // the entry names no person: the contract, its end date and the counts
        crate::audit::record(
            tx,
            actor,
            Some(id),
            "contract.end",
            &format!("contract {id}"),
            serde_json::Value::Null,
            crate::audit::json(&r),
        )?;
        Ok(r)
    })
}

fn end_in(tx: &mut Tx, id: u64, now: i64, today: Date) -> Result<EndReport, StoreError> {
    let mut c = tx
        .contract(id)?
        .ok_or_else(|| StoreError::NotFound(format!("contract {id}")))?;
    if let Some(e) = c.ended {
        return Err(StoreError::Refused(format!(
            "contract {id} already ended on {e}"
        )));
    }
    let mut r = EndReport {
        contract: id,
        ended: Some(today),
        ..Default::default()
    };
    // the audit log keeps this contract's entries without personal data (it reads the
    // customer and the users to know what to replace, so before they are deleted)
    r.audit_entries_anonymised = crate::audit::anonymise_contract(tx, id)?;
    // every address this contract's people were reached at (mails without a contract tag)
    let mut addresses: Vec<String> = c.recipients.iter().map(|a| a.to_lowercase()).collect();

    // 1. access: users disabled (logins end at their next request), then deleted
    for mut u in tx.users_of(id)? {
        disable_user(tx, &mut u)?;
        addresses.push(u.email.to_lowercase());
        tx.remove_user(&u)?;
        r.users_removed += 1;
    }

    // 2. appliances: revoked, wiped, their per-device records removed
    let devices = tx.devices_of(id)?;
    let device_ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
    for mut d in devices {
        if d.status == DeviceStatus::Active {
            // the certificate is refused from now on, except to deliver this wipe
            tx.queue_command(
                &d,
                protocol::messages::CommandKind::Wipe,
                "contract end",
                now,
            )?;
            r.wipes_queued += 1;
        }
        if d.status != DeviceStatus::Revoked {
            d.status = DeviceStatus::Revoked;
            r.revoked_devices.push(d.id.clone());
        }
        d.name.clear();
        tx.put_device(&d)?;
        for cmd in tx.commands_of(&d.id)? {
            let wipe_due = matches!(cmd.kind, protocol::messages::CommandKind::Wipe)
                && matches!(cmd.state, CommandState::Pending | CommandState::Sent);
            if !wipe_due {
                tx.remove_command(&d.id, cmd.id)?;
                r.commands_removed += 1;
            }
        }
        r.seen_rows_removed += tx.purge_seen(&d.id)?;
        r.dedup_keys_removed += tx.purge_dedup_prefix(&format!("{}|", d.id))?;
    }
    r.activation_codes_removed = tx.purge_codes_of(&device_ids)?;

    // 3. what the appliances reported
    r.alerts_removed = tx.purge_contract_alerts(id)?;
    r.traffic_removed = tx.purge_contract_traffic(id)?;
    r.escalation_keys_removed = tx.purge_medium_prefix(&format!("{id}|"))?;

    // 4. mails: the window, queued and given-up mails of the contract or to its people
    if tx.window(id)?.is_some() {
        tx.remove_window(id)?;
        r.mail_windows_removed = 1;
    }
    let customer = tx.customer(c.customer_id)?;
    let other_open = tx
        .contracts()?
        .iter()
        .any(|o| o.id != id && o.customer_id == c.customer_id && o.ended.is_none());
    if let Some(cust) = &customer {
        if !other_open && !cust.contact_email.is_empty() {
            addresses.push(cust.contact_email.to_lowercase());
        }
    }
    // an address another open contract still uses keeps its untagged mails
    let mut shared: Vec<String> = Vec::new();
    for o in tx.contracts()? {
        if o.id != id && o.ended.is_none() {
            shared.extend(o.recipients.iter().map(|a| a.to_lowercase()));
        }
    }
    let ours = |m: &crate::store::Mail| match m.contract {
        Some(k) => k == id,
        None => {
            let to = m.to.to_lowercase();
            addresses.contains(&to) && !shared.contains(&to)
        }
    };
    for m in tx.outbox()? {
        if ours(&m) {
            tx.remove_mail(m.id)?;
            r.queued_mails_removed += 1;
        }
    }
    for m in tx.failed_mails()? {
        if ours(&m) {
            tx.remove_failed_mail(m.id)?;
            r.failed_mails_removed += 1;
        }
    }

    // 5. the customer's contact data, unless another open contract still needs it
    if customer.is_some() && !other_open {
        tx.remove_customer(c.customer_id)?;
        r.customer_removed = true;
    }

    // 6. the records billing and insurance keep, without personal data
    for mut d in tx.dispatches_of(id)? {
        if !d.note.is_empty() {
            d.note.clear();
            tx.put_dispatch(&d)?;
            r.dispatch_notes_cleared += 1;
        }
    }
    r.addresses_removed = c.recipients.len();
    c.recipients.clear();
    c.isolation_allow.clear();
    c.exceptions.clear();
    c.auto_isolation = false;
    c.name.clear();
    c.ended = Some(today);
    tx.put_contract(&c)?;

    Ok(r)
}

#[cfg(test)]
mod test {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn contract_start_by_application_day() {
        // 1st and 5th: starts that day; paid from the 1st of the next month
        assert_eq!(
            contract_dates(d("2026-04-01"), false),
            (d("2026-04-01"), d("2026-05-01"))
        );
        assert_eq!(
            contract_dates(d("2026-04-05"), false),
            (d("2026-04-05"), d("2026-05-01"))
        );
        // 6th and 31st: starts the 1st of next month; paid from the month after
        assert_eq!(
            contract_dates(d("2026-04-06"), false),
            (d("2026-05-01"), d("2026-06-01"))
        );
        assert_eq!(
            contract_dates(d("2026-12-31"), false),
            (d("2027-01-01"), d("2027-02-01"))
        );
        // on the 1st–5th a customer may choose the 1st of next month
        assert_eq!(
            contract_dates(d("2026-04-03"), true),
            (d("2026-05-01"), d("2026-06-01"))
        );
        assert!(Date::parse("2026-02-30").is_err());
        assert!(Date::parse("yesterday").is_err());
    }

    #[test]
    fn insurance_rules() {
        let paid = d("2026-05-01");
        let alerts = [d("2026-06-10")];
        // inside 30 days of the ★★★ alert: covered
        assert_eq!(
            check_dispatch(paid, None, d("2026-07-10"), 50_000, &alerts, &[]),
            Ok(())
        );
        // 31 days after: refused
        assert!(matches!(
            check_dispatch(paid, None, d("2026-07-11"), 1, &alerts, &[]),
            Err(DispatchRefusal::TooLate { days: 31, .. })
        ));
        // a second dispatch in the same insurance year: refused
        assert!(matches!(
            check_dispatch(
                paid,
                None,
                d("2026-06-20"),
                1,
                &[d("2026-06-15")],
                &[d("2026-06-12")]
            ),
            Err(DispatchRefusal::AlreadyUsed { .. })
        ));
        // next insurance year: a new alert makes it eligible again
        assert_eq!(
            check_dispatch(
                paid,
                None,
                d("2027-05-03"),
                1,
                &[d("2027-05-02")],
                &[d("2026-06-12")]
            ),
            Ok(())
        );
        // before the paid start: refused, even with an alert
        assert!(matches!(
            check_dispatch(paid, None, d("2026-04-20"), 1, &[d("2026-04-19")], &[]),
            Err(DispatchRefusal::BeforePaidStart { .. })
        ));
        // an alert before the paid start does not count
        assert!(matches!(
            check_dispatch(paid, None, d("2026-05-10"), 1, &[d("2026-04-28")], &[]),
            Err(DispatchRefusal::NoHighAlert { .. })
        ));
        assert!(matches!(
            check_dispatch(paid, None, d("2026-06-11"), 60_000, &alerts, &[]),
            Err(DispatchRefusal::OverLimit { .. })
        ));
        assert_eq!(
            insurance_year(paid, d("2027-04-30")),
            Some((d("2026-05-01"), d("2027-05-01")))
        );
    }

    mod end {
        use std::sync::Arc;

        use crate::contract::{Date, end};
        use crate::store::*;

        fn app(name: &str) -> Arc<crate::App> {
            let dir = std::env::temp_dir()
                .join(format!("mimamori-contract-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let cfg: crate::config::Config =
                toml::from_str(&format!("data_dir = {dir:?}\n[admin]\ntoken = \"t\"\n")).unwrap();
            crate::serve::build(
                cfg,
                Arc::new(crate::clock::ManualClock::new(1_790_000_000_000)),
            )
            .unwrap()
        }

        fn contract(id: u64, customer: u64, to: &str) -> Contract {
            Contract {
                id,
                customer_id: customer,
                name: format!("office {id}"),
                application_date: Date::parse("2026-04-03").unwrap(),
                start: Date::parse("2026-04-03").unwrap(),
                paid_start: Date::parse("2026-05-01").unwrap(),
                ended: None,
                recipients: vec![to.into()],
                auto_isolation: true,
                isolation_allow: vec!["198.18.0.53".into()],
                exceptions: vec!["host:198.18.0.99".into()],
            }
        }

        fn mail(to: &str, contract: Option<u64>) -> Mail {
            Mail {
                id: 0,
                to: to.into(),
                subject: "s".into(),
                body: "b".into(),
                created_ms: 0,
                next_attempt_ms: 0,
                attempts: 0,
                last_error: None,
                kind: "alerts".into(),
                contract,
                given_up_ms: None,
            }
        }

        /// Contract 1 (customer 1, also on contract 2) and contract 3 (customer 2) with
        /// data of every kind.
        fn seed(app: &crate::App) {
            let now = app.now();
            app.store
                .write(|tx| {
                    for (id, email) in [(1, "c1@a.example"), (2, "c2@b.example")] {
                        tx.put_customer(&Customer {
                            id,
                            company: format!("company {id}"),
                            contact_email: email.into(),
                            phone: "03-0000-0000".into(),
                            ..Default::default()
                        })?;
                    }
                    tx.put_contract(&contract(1, 1, "to1@a.example"))?;
                    tx.put_contract(&contract(2, 1, "to2@a.example"))?;
                    tx.put_contract(&contract(3, 2, "to3@b.example"))?;
                    for (d, k, st) in [
                        ("d1", 1, DeviceStatus::Active),
                        ("d1p", 1, DeviceStatus::Pending),
                        ("d2", 2, DeviceStatus::Active),
                        ("d3", 3, DeviceStatus::Active),
                    ] {
                        let dev = Device::new(d, k, format!("{d} name"), st, now);
                        tx.put_device(&dev)?;
                        let a = crate::store::AlertRecord {
                            id: tx.next_id("alert")?,
                            contract_id: k,
                            device: d.into(),
                            seq: 1,
                            received_ms: now,
                            event: StoredEvent::Alert(crate::testutil::sig_alert(
                                9,
                                protocol::messages::Direction::Outbound,
                                "trojan-activity",
                                &[],
                                protocol::messages::Action::Allowed,
                            )),
                            level: crate::score::Level::High,
                            reason: String::new(),
                            mailed: true,
                            deduplicated: false,
                            status: AlertStatus::Open,
                            history: vec![],
                        };
                        tx.insert_alert(&a)?;
                        tx.mark_seen(d, 2)?;
                        tx.set_dedup(&format!("{d}|198.18.0.10|sig:1:9"), now)?;
                        tx.queue_command(
                            &dev,
                            protocol::messages::CommandKind::Reboot,
                            "portal:x@a.example",
                            now,
                        )?;
                        tx.put_code(&format!("hash-{d}"), d)?;
                    }
                    for k in [1u64, 2, 3] {
                        tx.add_medium(&format!("{k}|198.18.0.10"), now, 1)?;
                        tx.add_traffic(
                            k,
                            &TrafficRow {
                                device: "d".into(),
                                bucket_start: 600,
                                host_ip: "198.18.0.10".into(),
                                ..Default::default()
                            },
                        )?;
                        tx.put_window(
                            k,
                            &Window {
                                closes_ms: now,
                                alerts: vec![1],
                            },
                        )?;
                        tx.put_dispatch(&Dispatch {
                            id: k,
                            contract_id: k,
                            date: Date::parse("2026-06-01").unwrap(),
                            amount_yen: 1000,
                            covered: true,
                            note: "called 佐藤さん".into(),
                        })?;
                    }
                    for (i, (e, k)) in [("u1@a.example", 1), ("u3@b.example", 3)]
                        .iter()
                        .enumerate()
                    {
                        tx.put_user(&PortalUser {
                            id: i as u64 + 1,
                            contract_id: *k,
                            email: e.to_string(),
                            ..Default::default()
                        })?;
                    }
                    tx.queue_mail(mail("to1@a.example", Some(1)))?;
                    tx.queue_mail(mail("u1@a.example", None))?; // untagged, to a user of 1
                    tx.queue_mail(mail("to3@b.example", None))?;
                    tx.queue_mail(mail("to2@a.example", Some(2)))?;
                    let id = tx.queue_mail(mail("to1@a.example", Some(1)))?;
                    let mut g = tx.mail(id)?.unwrap();
                    g.given_up_ms = Some(now);
                    tx.give_up_mail(&g)?;
                    Ok(())
                })
                .unwrap();
        }

        #[test]
        fn contract_end_removes_every_kind_and_keeps_others() {
            let app = app("end");
            seed(&app);
            let r = end(
                &app,
                1,
                app.now(),
                &crate::audit::Actor::system("test", app.now()),
            )
            .unwrap();
            assert_eq!(r.users_removed, 1);
            assert_eq!(r.revoked_devices, vec!["d1".to_string(), "d1p".to_string()]);
            assert_eq!(r.wipes_queued, 1);
            assert!(!r.customer_removed, "contract 2 of the customer is open");
            assert_eq!(r.addresses_removed, 1);
            assert_eq!(r.alerts_removed, 2);
            assert_eq!(r.traffic_removed, 1);
            assert_eq!(r.commands_removed, 2);
            assert_eq!(r.dedup_keys_removed, 2);
            assert_eq!(r.escalation_keys_removed, 1);
            assert_eq!(r.seen_rows_removed, 4);
            assert_eq!(r.mail_windows_removed, 1);
            assert_eq!(r.queued_mails_removed, 2);
            assert_eq!(r.failed_mails_removed, 1);
            assert_eq!(r.activation_codes_removed, 2);
            assert_eq!(r.dispatch_notes_cleared, 1);
            app.store
                .read(|rx| {
                    assert!(rx.user_by_email("u1@a.example")?.is_none());
                    assert!(rx.user(1)?.is_none());
                    let c = rx.contract(1)?.unwrap();
                    assert!(c.ended.is_some() && c.recipients.is_empty() && c.name.is_empty());
                    assert!(c.isolation_allow.is_empty() && c.exceptions.is_empty());
                    // the wipe stays until delivered; the rest of the history is gone
                    let cmds = rx.commands_of("d1")?;
                    assert_eq!(cmds.len(), 1);
                    assert!(matches!(
                        cmds[0].kind,
                        protocol::messages::CommandKind::Wipe
                    ));
                    assert!(rx.commands_of("d1p")?.is_empty());
                    assert!(rx.seen("d1", 1)?.is_none() && rx.seen("d1", 2)?.is_none());
                    assert!(rx.dedup_last("d1|198.18.0.10|sig:1:9")?.is_none());
                    assert!(rx.medium_since("1|198.18.0.10", 0)?.is_empty());
                    assert!(rx.traffic_of(1, 0, u64::MAX)?.is_empty());
                    assert!(rx.alerts_of(1, 10)?.is_empty());
                    assert!(rx.code_device("hash-d1")?.is_none());
                    let d = rx.device("d1")?.unwrap();
                    assert_eq!(d.status, DeviceStatus::Revoked);
                    assert!(d.name.is_empty());
                    assert_eq!(rx.dispatches_of(1)?[0].note, "");
                    assert_eq!(rx.dispatches_of(1)?[0].amount_yen, 1000);
                    // the others' data stays
                    assert!(rx.customer(1)?.is_some() && rx.customer(2)?.is_some());
                    assert!(rx.user_by_email("u3@b.example")?.is_some());
                    assert_eq!(rx.commands_of("d2")?.len(), 1);
                    assert!(rx.seen("d3", 1)?.is_some());
                    assert!(rx.dedup_last("d3|198.18.0.10|sig:1:9")?.is_some());
                    assert_eq!(rx.medium_since("3|198.18.0.10", 0)?.len(), 1);
                    assert_eq!(rx.traffic_of(2, 0, u64::MAX)?.len(), 1);
                    assert_eq!(rx.alerts_of(3, 10)?.len(), 1);
                    assert_eq!(rx.windows()?.len(), 2);
                    let to: Vec<String> = rx.outbox()?.into_iter().map(|m| m.to).collect();
                    assert_eq!(to, vec!["to3@b.example", "to2@a.example"]);
                    assert_eq!(rx.dispatches_of(3)?[0].note, "called 佐藤さん");
                    Ok(())
                })
                .unwrap();
            // twice: refused; the customer's last open contract: its record goes
            assert!(matches!(
                end(
                    &app,
                    1,
                    app.now(),
                    &crate::audit::Actor::system("test", app.now())
                ),
                Err(StoreError::Refused(_))
            ));
            assert!(matches!(
                end(
                    &app,
                    9,
                    app.now(),
                    &crate::audit::Actor::system("test", app.now())
                ),
                Err(StoreError::NotFound(_))
            ));
            let r = end(
                &app,
                2,
                app.now(),
                &crate::audit::Actor::system("test", app.now()),
            )
            .unwrap();
            assert!(r.customer_removed);
            assert!(app.store.read(|rx| rx.customer(1)).unwrap().is_none());
            assert!(app.store.read(|rx| rx.customer(2)).unwrap().is_some());
        }
    }
}
