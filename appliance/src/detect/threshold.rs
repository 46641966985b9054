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
}
