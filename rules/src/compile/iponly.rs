//! Address index for header-only rules ("IP-only", like reputation lists): which rules
//! can match a given source or destination address, found by binary search instead of
//! testing every rule. Rules are keyed on their narrower side; rules broad on both sides
//! are always candidates.

use std::net::IpAddr;

use crate::addr::AddrSet;

/// A side is narrow enough to index when it covers fewer addresses than this.
const NARROW_V4: u64 = 1 << 24;
const NARROW_V6: u128 = 1 << 100;

/// Elementary intervals of one address family, each with the rules covering it.
#[derive(Debug, Default)]
struct Segments<T> {
    /// Sorted start of each elementary interval; interval i is [starts[i], starts[i+1]).
    starts: Vec<T>,
    /// Rules of interval i: `rules[idx[i]..idx[i+1]]`.
    idx: Vec<u32>,
    rules: Vec<u32>,
}

trait Addr: Copy + Ord + std::fmt::Debug {
    fn succ(self) -> Option<Self>;
}
impl Addr for u32 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}
impl Addr for u128 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl<T: Addr> Segments<T> {
    fn build(ranges: &[(T, T, u32)]) -> Self {
        let mut bounds: Vec<T> = Vec::with_capacity(ranges.len() * 2);
        for &(a, b, _) in ranges {
            bounds.push(a);
            if let Some(n) = b.succ() {
                bounds.push(n);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        let mut per: Vec<Vec<u32>> = vec![Vec::new(); bounds.len()];
        for &(a, b, r) in ranges {
            let s = bounds.partition_point(|x| *x < a);
            let e = match b.succ() {
                Some(n) => bounds.partition_point(|x| *x < n),
                None => bounds.len(),
            };
            for seg in per.iter_mut().take(e).skip(s) {
                seg.push(r);
            }
        }
        let mut idx = Vec::with_capacity(bounds.len() + 1);
        let mut rules = Vec::new();
        for mut p in per {
            p.sort_unstable();
            p.dedup();
            idx.push(rules.len() as u32);
            rules.extend(p);
        }
        idx.push(rules.len() as u32);
        Segments {
            starts: bounds,
            idx,
            rules,
        }
    }

    fn lookup(&self, ip: T, out: &mut Vec<u32>) {
        let i = self.starts.partition_point(|x| *x <= ip);
        if i == 0 {
            return;
        }
        let seg = i - 1;
        out.extend_from_slice(&self.rules[self.idx[seg] as usize..self.idx[seg + 1] as usize]);
    }
}

/// The index. `lookup` returns a superset of the rules whose addresses match; the caller
/// still verifies each.
#[derive(Debug, Default)]
pub struct IpOnlyIndex {
    by_src4: Segments<u32>,
    by_src6: Segments<u128>,
    by_dst4: Segments<u32>,
    by_dst6: Segments<u128>,
    /// Rules broad on both sides (with `<>` rules also indexed both ways).
    pub always: Vec<u32>,
    pub rules: usize,
}

fn narrow(a: &AddrSet) -> bool {
    let (v4, v6) = a.size();
    !a.is_any() && v4 < NARROW_V4 && v6 < NARROW_V6
}

impl IpOnlyIndex {
    /// Build from (rule id, src, dst, bidirectional).
    pub fn build<'a>(
        rules: impl Iterator<Item = (u32, &'a AddrSet, &'a AddrSet, bool)>,
    ) -> IpOnlyIndex {
        let (mut s4, mut s6, mut d4, mut d6) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut always = Vec::new();
        let mut n = 0;
        for (id, src, dst, bidi) in rules {
            n += 1;
            // `<>` rules may match with sides swapped: index the side on both keys
            let key = if narrow(src) {
                Some(src)
            } else if narrow(dst) {
                Some(dst)
            } else {
                None
            };
            let Some(k) = key else {
                always.push(id);
                continue;
            };
            let by_src = std::ptr::eq(k, src);
            for &(a, b) in k.v4_ranges() {
                if by_src || bidi {
                    s4.push((a, b, id));
                }
                if !by_src || bidi {
                    d4.push((a, b, id));
                }
            }
            for &(a, b) in k.v6_ranges() {
                if by_src || bidi {
                    s6.push((a, b, id));
                }
                if !by_src || bidi {
                    d6.push((a, b, id));
                }
            }
        }
        IpOnlyIndex {
            by_src4: Segments::build(&s4),
            by_src6: Segments::build(&s6),
            by_dst4: Segments::build(&d4),
            by_dst6: Segments::build(&d6),
            always,
            rules: n,
        }
    }

    /// Candidate rules for a packet from `src` to `dst` (unsorted, may repeat).
    pub fn lookup(&self, src: IpAddr, dst: IpAddr, out: &mut Vec<u32>) {
        out.extend_from_slice(&self.always);
        match src {
            IpAddr::V4(a) => self.by_src4.lookup(u32::from(a), out),
            IpAddr::V6(a) => self.by_src6.lookup(u128::from(a), out),
        }
        match dst {
            IpAddr::V4(a) => self.by_dst4.lookup(u32::from(a), out),
            IpAddr::V6(a) => self.by_dst6.lookup(u128::from(a), out),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::addr::Vars;

    #[test]
    fn finds_rules_by_narrow_side() {
        let v = Vars::default();
        let rep = v.parse_addr("[1.2.3.4,5.6.7.0/24]").unwrap();
        let home = v.parse_addr("$HOME_NET").unwrap();
        let any = v.parse_addr("any").unwrap();
        let ext = v.parse_addr("$EXTERNAL_NET").unwrap();
        let idx = IpOnlyIndex::build(
            [
                (0u32, &rep, &home, false),
                (1, &home, &rep, false),
                (2, &any, &ext, false),
            ]
            .into_iter(),
        );
        let mut out = Vec::new();
        idx.lookup(
            "5.6.7.9".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            &mut out,
        );
        out.sort();
        assert_eq!(out, vec![0, 2]);
        out.clear();
        idx.lookup(
            "10.0.0.1".parse().unwrap(),
            "1.2.3.4".parse().unwrap(),
            &mut out,
        );
        out.sort();
        assert_eq!(out, vec![1, 2]);
        out.clear();
        idx.lookup(
            "9.9.9.9".parse().unwrap(),
            "8.8.8.8".parse().unwrap(),
            &mut out,
        );
        assert_eq!(out, vec![2]);
    }
}
