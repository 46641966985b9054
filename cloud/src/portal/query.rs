//! What the portal reads, always through a [`Scope`]: one contract's data, nothing else.
//! A record of another contract is "not found", the same as a missing one.

use std::collections::HashMap;

use crate::clock::{civil, days_from_civil};
use crate::score::Level;
use crate::store::{AlertKey, AlertRecord, Device, Rx, StoreError, TrafficRow};

type Result<T> = std::result::Result<T, StoreError>;

/// The logged-in user's contract. Made only from a logged-in session.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub(super) contract: u64,
}

impl Scope {
    pub fn contract(&self) -> u64 {
        self.contract
    }

    /// The audit log's entries of this contract, newest first.
    pub fn activity(&self, rx: &Rx, limit: usize) -> Result<Vec<crate::audit::Entry>> {
        crate::audit::list(
            rx,
            &crate::audit::Filter {
                contract: Some(self.contract),
                limit: Some(limit),
                ..Default::default()
            },
        )
    }

    /// One alert of this contract.
    pub fn alert(&self, rx: &Rx, id: u64) -> Result<Option<AlertRecord>> {
        Ok(rx.alert(id)?.filter(|a| a.contract_id == self.contract))
    }

    /// The contract's appliances (revoked ones too: their alerts stay).
    pub fn devices(&self, rx: &Rx) -> Result<Vec<Device>> {
        let mut v = rx.devices_of(self.contract)?;
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    pub fn device(&self, rx: &Rx, id: &str) -> Result<Option<Device>> {
        Ok(rx.device(id)?.filter(|d| d.contract_id == self.contract))
    }

    /// One page of the contract's alerts matching `f`, newest first. The filters and
    /// the count read only the index; only the page's records are read.
    pub fn alert_page(&self, rx: &Rx, f: &AlertFilter, page: u32, per: usize) -> Result<AlertPage> {
        let skip = page.saturating_sub(1) as usize * per;
        let mut total = 0usize;
        let mut items = Vec::new();
        rx.scan_alerts_of(
            self.contract,
            |_, key| {
                if !f.matches(key) {
                    return false;
                }
                let take = total >= skip && total < skip + per;
                total += 1;
                take
            },
            |rec| {
                items.extend(rec);
                true
            },
        )?;
        let pages = total.div_ceil(per).max(1) as u32;
        if items.is_empty() && page > pages && total > 0 {
            // past the end: the last page
            return self.alert_page(rx, f, pages, per);
        }
        Ok(AlertPage {
            items,
            total: total as u64,
            page: page.clamp(1, pages),
            pages,
        })
    }

    /// Index entries of the alerts received since `since_ms`, newest first.
    pub fn keys_since(&self, rx: &Rx, since_ms: i64) -> Result<Vec<AlertKey>> {
        let mut out = Vec::new();
        let older = std::cell::Cell::new(false);
        rx.scan_alerts_of(
            self.contract,
            |_, key| {
                // ids grow with arrival: the first older one ends the scan
                older.set(key.received_ms < since_ms);
                if !older.get() {
                    out.push(key.clone());
                }
                false
            },
            |_| !older.get(),
        )?;
        Ok(out)
    }

    /// Traffic summaries with buckets in `[from_secs, to_secs)`, optionally of one host
    /// (IP or MAC).
    pub fn traffic(
        &self,
        rx: &Rx,
        from_secs: u64,
        to_secs: u64,
        host: Option<&str>,
    ) -> Result<Vec<TrafficRow>> {
        let mut rows = rx.traffic_of(self.contract, from_secs, to_secs)?;
        if let Some(h) = host {
            rows.retain(|r| r.host_ip == h || r.host_mac.eq_ignore_ascii_case(h));
        }
        Ok(rows)
    }
}

/// One page of alerts.
pub struct AlertPage {
    pub items: Vec<AlertRecord>,
    pub total: u64,
    pub page: u32,
    pub pages: u32,
}

/// An internal host as the user typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMatch {
    Ip(std::net::IpAddr),
    Mac([u8; 6]),
}

impl HostMatch {
    /// An IP address, or a MAC written with `:` or `-`.
    pub fn parse(s: &str) -> Option<HostMatch> {
        let s = s.trim();
        if let Ok(ip) = s.parse() {
            return Some(HostMatch::Ip(ip));
        }
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return None;
        }
        let mut mac = [0u8; 6];
        for (m, p) in mac.iter_mut().zip(parts) {
            if p.len() != 2 {
                return None;
            }
            *m = u8::from_str_radix(p, 16).ok()?;
        }
        Some(HostMatch::Mac(mac))
    }
}

/// The alert list's filters.
#[derive(Debug, Default, Clone)]
pub struct AlertFilter {
    pub level: Option<Level>,
    /// Only alerts worth a mail (not 参考情報).
    pub important: bool,
    /// Appliance time, inclusive.
    pub from_ms: Option<i64>,
    /// Appliance time, exclusive.
    pub to_ms: Option<i64>,
    pub device: Option<String>,
    /// The internal host.
    pub host: Option<HostMatch>,
}

impl AlertFilter {
    pub fn matches(&self, k: &AlertKey) -> bool {
        let t = k.time_ms;
        !(self.level.is_some_and(|l| l != k.level)
            || (self.important && !k.level.important())
            || self.from_ms.is_some_and(|f| t < f)
            || self.to_ms.is_some_and(|e| t >= e)
            || self.device.as_deref().is_some_and(|d| d != k.device)
            || match self.host {
                None => false,
                Some(HostMatch::Ip(ip)) => ip != k.ip,
                Some(HostMatch::Mac(m)) => m != k.mac,
            })
    }
}

/// Local midnight of a `YYYY-MM-DD` date, in Unix milliseconds.
pub fn parse_date(s: &str, tz_secs: i64) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // 2026-02-31 is not a date
    if civil(days) != (y, m, d) {
        return None;
    }
    Some((days * 86_400 - tz_secs) * 1000)
}

/// The local day number of a time.
pub fn local_day(ms: i64, tz_secs: i64) -> i64 {
    (ms.div_euclid(1000) + tz_secs).div_euclid(86_400)
}

/// `MM-DD` of a local day number.
pub fn day_label(day: i64) -> String {
    let (_, m, d) = civil(day);
    format!("{m:02}-{d:02}")
}

/// Index of a level in the charts (★★★ first).
pub fn level_slot(l: Level) -> usize {
    match l {
        Level::High => 0,
        Level::Medium => 1,
        Level::Low => 2,
        Level::Investigating => 3,
        Level::Info => 4,
    }
}

/// Alert counts per local day and level for the `days` days ending today.
pub fn alerts_per_day(
    alerts: &[AlertKey],
    today: i64,
    days: i64,
    tz_secs: i64,
) -> Vec<(String, [u64; 5])> {
    let first = today - days + 1;
    let mut out: Vec<(String, [u64; 5])> =
        (first..=today).map(|d| (day_label(d), [0; 5])).collect();
    for a in alerts {
        // the detection's time, as the alert list shows and filters it
        let d = local_day(a.time_ms, tz_secs);
        if d >= first && d <= today {
            out[(d - first) as usize].1[level_slot(a.level)] += 1;
        }
    }
    out
}

/// Traffic totals by a key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub bytes: u64,
    pub flows: u64,
}

/// Totals per category, per app and per host (IP), each largest first.
pub struct TrafficTotals {
    pub categories: Vec<(String, Totals)>,
    pub apps: Vec<(String, Totals)>,
    /// (ip, mac, totals, top category)
    pub hosts: Vec<(String, String, Totals, String)>,
}

pub fn traffic_totals(rows: &[TrafficRow]) -> TrafficTotals {
    let mut cats: HashMap<&str, Totals> = HashMap::new();
    let mut apps: HashMap<&str, Totals> = HashMap::new();
    let mut hosts: HashMap<&str, (&str, Totals, HashMap<&str, u64>)> = HashMap::new();
    for r in rows {
        let h = hosts
            .entry(&r.host_ip)
            .or_insert_with(|| (&r.host_mac, Totals::default(), HashMap::new()));
        for e in &r.entries {
            let b = e.bytes_in.saturating_add(e.bytes_out);
            for (map, key) in [
                (&mut cats, e.category.as_str()),
                (&mut apps, e.app.as_str()),
            ] {
                let t = map.entry(key).or_default();
                t.bytes = t.bytes.saturating_add(b);
                t.flows = t.flows.saturating_add(e.flows);
            }
            h.1.bytes = h.1.bytes.saturating_add(b);
            h.1.flows = h.1.flows.saturating_add(e.flows);
            if !e.category.is_empty() {
                *h.2.entry(&e.category).or_default() += b;
            }
        }
    }
    // names and addresses as the appliance reported them: sanitised for the page
    let shown = crate::sanitize::field;
    let sorted = |m: HashMap<&str, Totals>| {
        let mut v: Vec<(String, Totals)> = m.into_iter().map(|(k, t)| (shown(k), t)).collect();
        v.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
        v
    };
    let mut hv: Vec<(String, String, Totals, String)> = hosts
        .into_iter()
        .map(|(ip, (mac, t, c))| {
            let top = c
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                .map(|(k, _)| shown(k))
                .unwrap_or_default();
            (shown(ip), shown(mac), t, top)
        })
        .collect();
    hv.sort_by(|a, b| b.2.bytes.cmp(&a.2.bytes).then(a.0.cmp(&b.0)));
    TrafficTotals {
        categories: sorted(cats),
        apps: sorted(apps),
        hosts: hv,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::store::TrafficCount;

    #[test]
    fn dates_are_local_midnights_and_invalid_ones_refused() {
        // 2026-11-30 00:00 JST = 2026-11-29 15:00 UTC
        let ms = parse_date("2026-11-30", 9 * 3600).unwrap();
        assert_eq!(crate::clock::format_local(ms, 0), "2026-11-29 15:00:00");
        assert!(parse_date("2026-02-31", 0).is_none());
        assert!(parse_date("2026-13-01", 0).is_none());
        assert!(parse_date("yesterday", 0).is_none());
        assert_eq!(day_label(local_day(ms, 9 * 3600)), "11-30");
    }

    #[test]
    fn hosts_parse_as_ip_or_mac() {
        assert_eq!(
            HostMatch::parse(" 198.18.0.7 "),
            Some(HostMatch::Ip("198.18.0.7".parse().unwrap()))
        );
        assert_eq!(
            HostMatch::parse("02-00-00-0A-0b-01"),
            Some(HostMatch::Mac([2, 0, 0, 10, 11, 1]))
        );
        assert!(HostMatch::parse("02:00:00:0a:0b").is_none());
        assert!(HostMatch::parse("pc-yamada").is_none());
    }

    #[test]
    fn traffic_adds_up_per_category_app_and_host() {
        let row = |ip: &str, cat: &str, app: &str, b: u64| TrafficRow {
            device: "d".into(),
            bucket_start: 600,
            host_ip: ip.into(),
            host_mac: "02:00:00:00:00:01".into(),
            entries: vec![TrafficCount {
                category: cat.into(),
                app: app.into(),
                bytes_in: b,
                bytes_out: 1,
                flows: 2,
            }],
        };
        let t = traffic_totals(&[
            row("198.18.0.10", "video", "YouTube", 100),
            row("198.18.0.10", "news", "Yahoo", 10),
            row("198.18.0.11", "video", "YouTube", 50),
        ]);
        assert_eq!(
            t.categories[0],
            (
                "video".into(),
                Totals {
                    bytes: 152,
                    flows: 4
                }
            )
        );
        assert_eq!(t.apps[1].0, "Yahoo");
        assert_eq!(t.hosts[0].0, "198.18.0.10");
        assert_eq!(t.hosts[0].2.bytes, 112);
        assert_eq!(t.hosts[0].3, "video");
    }
}
