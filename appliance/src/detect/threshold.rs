//! `threshold` and `detection_filter`: per (rule, tracked entity) counters in time windows.

use std::collections::HashMap;
use std::net::IpAddr;

use rules::ast::{Threshold, ThresholdKind, TrackBy};

use crate::decode::Packet;
use crate::flow::{Flow, FxBuild};

/// Entries kept before the oldest windows are dropped.
const MAX_ENTRIES: usize = 65_536;

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
enum Key {
    Rule,
    Ip(IpAddr),
    Pair(IpAddr, IpAddr),
}

#[derive(Default)]
pub struct Thresholds {
    table: HashMap<(u32, Key), State, FxBuild>,
}

/// (count in the window, window start, next alerting count for backoff).
pub type State = (u32, u64, u64);

/// Update a state and decide.
fn decide(state: &mut State, t: &Threshold, now_us: u64) -> bool {
    let window = t.seconds as u64 * 1_000_000;
    if state.0 == 0 || now_us.saturating_sub(state.1) > window {
        *state = (0, now_us, t.count as u64);
    }
    state.0 = state.0.saturating_add(1);
    match t.kind {
        ThresholdKind::Backoff { multiplier } => {
            if state.0 as u64 == state.2 {
                state.2 = state.2.saturating_mul(multiplier as u64);
                true
            } else {
                false
            }
        }
        ThresholdKind::Limit => state.0 <= t.count,
        ThresholdKind::Threshold => {
            if state.0 >= t.count {
                *state = (0, now_us, 0);
                true
            } else {
                false
            }
        }
        ThresholdKind::Both => state.0 == t.count,
        ThresholdKind::DetectionFilter => state.0 > t.count,
    }
}

impl Thresholds {
    /// Whether this hit of rule `id` may alert.
    pub fn allow(
        &mut self,
        id: u32,
        t: &Threshold,
        p: &Packet<'_>,
        flow: Option<&mut Flow>,
        now_us: u64,
    ) -> bool {
        let Some(ip) = p.ip else { return true };
        let key = match t.track {
            TrackBy::Src => Key::Ip(ip.src),
            TrackBy::Dst => Key::Ip(ip.dst),
            TrackBy::Both => Key::Pair(ip.src.min(ip.dst), ip.src.max(ip.dst)),
            TrackBy::Rule => Key::Rule,
            TrackBy::Flow => {
                let Some(f) = flow else { return true };
                let sid = id;
                let idx = match f.thresholds.iter().position(|e| e.0 == sid) {
                    Some(i) => i,
                    None => {
                        f.thresholds.push((sid, (0, now_us, 0)));
                        f.thresholds.len() - 1
                    }
                };
                return decide(&mut f.thresholds[idx].1, t, now_us);
            }
        };
        if self.table.len() >= MAX_ENTRIES && !self.table.contains_key(&(id, key)) {
            let window = t.seconds as u64 * 1_000_000;
            self.table
                .retain(|_, s| now_us.saturating_sub(s.1) <= window);
            if self.table.len() >= MAX_ENTRIES {
                self.table.clear();
            }
        }
        let st = self.table.entry((id, key)).or_insert((0, now_us, 0));
        decide(st, t, now_us)
    }
}

/// Default alert budget against floods: Suricata's thresholds for every rule that has none
/// of its own (a rule's own `threshold` decides for it).
///
/// An alert is written while its (rule, source), (rule, destination) and rule budgets all
/// have room in the current period; beyond that it is counted as suppressed and written
/// once per key as a summary with the number suppressed. Detection itself is unchanged: a
/// `drop` rule still drops every packet it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertLimit {
    /// `false`: every alert is written (offline replay, Suricata comparisons).
    pub enabled: bool,
    /// Alerts per (rule, source address) and per (rule, destination address) per period.
    pub per_host: u32,
    /// Alerts per rule (all hosts together) per period.
    pub per_rule: u32,
    /// Length of a period, in seconds.
    pub period_secs: u32,
    /// Keys tracked per worker (fixed table, allocated once).
    pub table: usize,
}

impl Default for AlertLimit {
    /// Off: the pipeline's default is Suricata's behaviour; the live bridge turns it on.
    fn default() -> Self {
        AlertLimit {
            enabled: false,
            per_host: 20,
            per_rule: 200,
            period_secs: 60,
            table: 8192,
        }
    }
}

/// Which budget a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Track {
    Src,
    Dst,
    Rule,
}

/// One budget: a key and its window.
#[derive(Debug, Clone, Copy)]
struct Slot {
    used: bool,
    track: Track,
    rule: u32,
    ip: IpAddr,
    start_us: u64,
    count: u32,
    /// Alerts suppressed in this window (summarised when the window ends).
    suppressed: u64,
    /// The addresses and protocol of the last suppressed alert, for its summary.
    last: (IpAddr, IpAddr, u8),
}

const UNSPEC: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

impl Slot {
    const EMPTY: Slot = Slot {
        used: false,
        track: Track::Rule,
        rule: 0,
        ip: UNSPEC,
        start_us: 0,
        count: 0,
        suppressed: 0,
        last: (UNSPEC, UNSPEC, 0),
    };
}

/// Alerts suppressed for one key in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    pub rule: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub count: u64,
    /// End of the period (µs).
    pub ts_us: u64,
}

/// Slots probed per key (a small set-associative table: an attacker cycling keys replaces
/// the oldest of these, never grows memory).
const WAYS: usize = 4;
/// Summaries held between two drains; more are only counted.
const MAX_SUMMARIES: usize = 256;

/// The alert budgets of one worker: a fixed table, a keyed hash (random key per worker),
/// no allocation per packet.
pub struct AlertLimiter {
    cfg: AlertLimit,
    slots: Vec<Slot>,
    hasher: std::collections::hash_map::RandomState,
    /// Summaries of ended periods, drained by the pipeline.
    summaries: Vec<Suppressed>,
    /// Next periodic sweep for ended periods (µs).
    next_sweep_us: u64,
    /// Alerts suppressed since start.
    pub suppressed: u64,
    /// Suppressed alerts whose summary could not be kept (table churn, too many at once).
    pub unsummarised: u64,
}

impl AlertLimiter {
    pub fn new(cfg: AlertLimit) -> AlertLimiter {
        // host budgets first, then a quarter as many rule budgets in their own region (a
        // flood of new hosts never pushes out a rule's budget)
        let n = if cfg.enabled {
            let h = cfg.table.next_power_of_two().max(4 * WAYS);
            h + h / 4
        } else {
            0
        };
        AlertLimiter {
            cfg,
            slots: vec![Slot::EMPTY; n],
            hasher: std::collections::hash_map::RandomState::new(),
            summaries: Vec::with_capacity(if cfg.enabled { MAX_SUMMARIES } else { 0 }),
            next_sweep_us: 0,
            suppressed: 0,
            unsummarised: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    fn period_us(&self) -> u64 {
        u64::from(self.cfg.period_secs.max(1)) * 1_000_000
    }

    /// Keeps the summary of a slot whose period ended.
    fn summarise(&mut self, s: Slot, end_us: u64) {
        if s.suppressed == 0 {
            return;
        }
        // one summary per (rule, source) key is enough: the destination and rule budgets
        // count the same alerts
        if s.track != Track::Src {
            return;
        }
        if self.summaries.len() < MAX_SUMMARIES {
            self.summaries.push(Suppressed {
                rule: s.rule,
                src: s.last.0,
                dst: s.last.1,
                proto: s.last.2,
                count: s.suppressed,
                ts_us: end_us,
            });
        } else {
            self.unsummarised += s.suppressed;
        }
    }

    /// The slot of a key: found, or a free/ended/oldest one taken over.
    /// `avoid`: slots of the same alert already chosen (never taken over).
    fn slot(&mut self, track: Track, rule: u32, ip: IpAddr, now_us: u64, avoid: usize) -> usize {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one((track as u8, rule, ip)) as usize;
        let hosts = self.slots.len() / 5 * 4;
        let (base, mask) = match track {
            Track::Rule => (hosts, self.slots.len() - hosts - 1),
            _ => (0, hosts - 1),
        };
        let period = self.period_us();
        let mut victim = usize::MAX;
        for w in 0..WAYS {
            let i = base + ((h + w) & mask);
            let s = &self.slots[i];
            if s.used && s.track == track && s.rule == rule && s.ip == ip {
                return i;
            }
            if i == avoid {
                continue;
            }
            let free = |s: &Slot| !s.used || now_us.saturating_sub(s.start_us) > period;
            if victim == usize::MAX {
                victim = i;
                continue;
            }
            let v = &self.slots[victim];
            if !free(v) && (free(s) || s.start_us < v.start_us) {
                victim = i;
            }
        }
        let old = self.slots[victim];
        if old.used {
            if now_us.saturating_sub(old.start_us) > period {
                self.summarise(old, old.start_us + period);
            } else {
                // a live budget pushed out by churn: its count is kept in the total only
                self.unsummarised += old.suppressed;
            }
        }
        self.slots[victim] = Slot {
            used: true,
            track,
            rule,
            ip,
            start_us: now_us,
            ..Slot::EMPTY
        };
        victim
    }

    /// Takes one alert from a budget; whether it had room.
    fn take(&mut self, i: usize, limit: u32, now_us: u64) -> bool {
        let period = self.period_us();
        let s = self.slots[i];
        if now_us.saturating_sub(s.start_us) > period {
            self.summarise(s, s.start_us + period);
            let s = &mut self.slots[i];
            s.start_us = now_us;
            s.count = 0;
            s.suppressed = 0;
        }
        let s = &mut self.slots[i];
        if s.count < limit {
            s.count += 1;
            true
        } else {
            false
        }
    }

    /// Whether an alert of rule `rule` from `src` to `dst` is written. Not enabled: always.
    pub fn allow(&mut self, rule: u32, src: IpAddr, dst: IpAddr, proto: u8, now_us: u64) -> bool {
        if !self.cfg.enabled || self.slots.is_empty() {
            return true;
        }
        let a = self.slot(Track::Src, rule, src, now_us, usize::MAX);
        let b = self.slot(Track::Dst, rule, dst, now_us, a);
        let c = self.slot(Track::Rule, rule, UNSPEC, now_us, usize::MAX);
        // the budgets are checked together: an alert refused by one is not taken from the
        // others (the per-host budgets stay fair to hosts that are not flooding)
        let ok = [
            (a, self.cfg.per_host),
            (b, self.cfg.per_host),
            (c, self.cfg.per_rule),
        ]
        .iter()
        .all(|&(i, limit)| {
            let s = &self.slots[i];
            now_us.saturating_sub(s.start_us) > self.period_us() || s.count < limit
        });
        if ok {
            for (i, limit) in [
                (a, self.cfg.per_host),
                (b, self.cfg.per_host),
                (c, self.cfg.per_rule),
            ] {
                self.take(i, limit, now_us);
            }
            return true;
        }
        self.suppressed += 1;
        for i in [a, b, c] {
            let period = self.period_us();
            let s = self.slots[i];
            if now_us.saturating_sub(s.start_us) > period {
                self.summarise(s, s.start_us + period);
                let s = &mut self.slots[i];
                s.start_us = now_us;
                s.count = 0;
                s.suppressed = 0;
            }
            let s = &mut self.slots[i];
            s.suppressed += 1;
            s.last = (src, dst, proto);
        }
        false
    }

    /// Collects summaries of periods that ended without a later alert of their key (at most
    /// once a second; a scan of the fixed table).
    pub fn sweep(&mut self, now_us: u64) {
        if !self.cfg.enabled || now_us < self.next_sweep_us {
            return;
        }
        self.next_sweep_us = now_us + 1_000_000;
        let period = self.period_us();
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            if s.used && s.suppressed > 0 && now_us.saturating_sub(s.start_us) > period {
                self.summarise(s, s.start_us + period);
                self.slots[i].suppressed = 0;
            }
        }
    }

    /// Summaries ready to be written (drained by the caller).
    pub fn summaries(&mut self) -> &mut Vec<Suppressed> {
        &mut self.summaries
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn t(kind: ThresholdKind, count: u32) -> Threshold {
        Threshold {
            kind,
            track: TrackBy::Rule,
            count,
            seconds: 60,
        }
    }

    fn run(th: Threshold, n: usize) -> Vec<bool> {
        let mut st = (0, 0, 0);
        (0..n).map(|i| decide(&mut st, &th, 1 + i as u64)).collect()
    }

    #[test]
    fn kinds() {
        assert_eq!(
            run(t(ThresholdKind::Limit, 2), 4),
            [true, true, false, false]
        );
        assert_eq!(
            run(t(ThresholdKind::Threshold, 2), 4),
            [false, true, false, true]
        );
        assert_eq!(
            run(t(ThresholdKind::Both, 2), 4),
            [false, true, false, false]
        );
        assert_eq!(
            run(t(ThresholdKind::DetectionFilter, 2), 4),
            [false, false, true, true]
        );
        let hits = run(t(ThresholdKind::Backoff { multiplier: 2 }, 3), 25);
        let at: Vec<usize> = hits
            .iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(at, [3, 6, 12, 24]);
    }

    #[test]
    fn window_resets() {
        let th = t(ThresholdKind::Limit, 1);
        let mut st = (0, 0, 0);
        assert!(decide(&mut st, &th, 1));
        assert!(!decide(&mut st, &th, 2));
        assert!(decide(&mut st, &th, 2 + 61_000_000));
    }

    fn lim(per_host: u32, per_rule: u32) -> AlertLimiter {
        AlertLimiter::new(AlertLimit {
            enabled: true,
            per_host,
            per_rule,
            period_secs: 10,
            table: 64,
        })
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, n))
    }

    #[test]
    fn limiter_passes_the_first_alerts_then_suppresses_and_summarises() {
        let mut l = lim(3, 100);
        let ok: Vec<bool> = (0..10)
            .map(|i| l.allow(7, ip(10), ip(1), 17, 1 + i))
            .collect();
        assert_eq!(
            ok,
            [
                true, true, true, false, false, false, false, false, false, false
            ]
        );
        assert_eq!(l.suppressed, 7);
        // another host is not held back by the flooding one
        assert!(l.allow(7, ip(11), ip(2), 17, 20));
        // nor another rule
        assert!(l.allow(8, ip(10), ip(1), 17, 20));
        assert!(l.summaries().is_empty(), "the period has not ended");
        // the period ends: the sweep writes one summary with the count
        l.sweep(12_000_000);
        let s = std::mem::take(l.summaries());
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(
            (s[0].rule, s[0].src, s[0].dst, s[0].count),
            (7, ip(10), ip(1), 7)
        );
        // a new period: a fresh budget
        assert!(l.allow(7, ip(10), ip(1), 17, 12_000_001));
    }

    #[test]
    fn limiter_caps_a_rule_across_hosts_and_summarises_on_the_next_alert() {
        let mut l = lim(5, 10);
        let mut written = 0;
        for n in 0..200u8 {
            written += usize::from(l.allow(3, ip(n), ip(n.wrapping_add(1)), 6, 100));
        }
        assert_eq!(written, 10, "the rule budget holds with spoofed sources");
        assert_eq!(l.suppressed, 190);
        assert!(l.allow(3, ip(250), ip(251), 6, 100 + 11_000_000));
        assert!(l.summaries().len() + l.unsummarised as usize > 0);
    }

    #[test]
    fn limiter_memory_is_fixed_and_off_means_everything_passes() {
        let mut l = lim(1, 1_000_000);
        let cap = l.slots.len();
        for n in 0..5000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            l.allow(n % 7, a, ip(1), 17, u64::from(n));
        }
        assert_eq!(l.slots.len(), cap);
        assert!(l.summaries().capacity() <= MAX_SUMMARIES);
        let mut off = AlertLimiter::new(AlertLimit::default());
        assert!((0..1000).all(|i| off.allow(1, ip(1), ip(2), 17, i)));
        assert!(off.slots.is_empty());
    }
}
