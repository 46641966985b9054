//! Who is this traffic for: the URL category (UT1/SquidGuard lists, with a block/record
//! policy per category) and the application (the catalogue shipped with the rules) of
//! each named access — HTTP host and path, TLS SNI, DNS name — and the traffic record:
//! per internal host and 10-minute bucket, flows and bytes by category and application.
//!
//! Lookups happen once per name (a transaction), never per packet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use rules::addr::AddrSet;
use rules::lists::{Action, AppCatalog, CatSet, CategoryDb, ListError, Policy, PolicyConfig};

use crate::events::meta::{EventMeta, TrafficLine, TrafficMeta, TrafficPair, UtmMeta};
use crate::flow::Flow;

/// Length of a traffic-record bucket.
pub const BUCKET_SECS: u64 = 600;

/// The lists a worker classifies with; replaced as a whole (an `Arc` swap) on reload.
#[derive(Debug)]
pub struct Lists {
    pub categories: Option<(CategoryDb, Policy)>,
    pub apps: AppCatalog,
    /// Internal addresses (`$HOME_NET`): the traffic record is kept for these hosts.
    pub home_net: Option<AddrSet>,
    /// Exceptions: names under these domains (lower case) are never blocked by category.
    pub allow_domains: Vec<String>,
}

impl Default for Lists {
    fn default() -> Self {
        Lists {
            categories: None,
            apps: AppCatalog::builtin(),
            home_net: None,
            allow_domains: Vec::new(),
        }
    }
}

impl Lists {
    /// Load UT1/SquidGuard category folders (optional) with a per-category policy.
    pub fn load(categories: Option<&Path>, policy: &PolicyConfig) -> Result<Lists, ListError> {
        let categories = match categories {
            Some(dir) => {
                let db = CategoryDb::load_dir(dir)?;
                let pol = Policy::new(policy, &db);
                for c in pol.unknown_categories() {
                    tracing::warn!(category = %c, "policy names a category the lists do not have");
                }
                Some((db, pol))
            }
            None => None,
        };
        Ok(Lists {
            categories,
            ..Lists::default()
        })
    }

    /// Classify a name (and, for HTTP, a path).
    pub fn classify(&self, host: &[u8], path: Option<&[u8]>) -> Label {
        let (cats, decision) = match &self.categories {
            Some((db, pol)) => {
                let cats = match path {
                    Some(p) => db.lookup_url(host, p),
                    None => db.lookup_host(host),
                };
                (cats, pol.verdict(cats))
            }
            None => (CatSet::default(), None),
        };
        let app = self
            .apps
            .lookup(host)
            .map(|a| (a.name.into(), a.kind.as_str()));
        let excepted = !self.allow_domains.is_empty() && self.excepted(host);
        Label {
            cats,
            block: decision
                .filter(|(a, _)| *a == Action::Block && !excepted)
                .map(|(_, c)| c),
            app,
        }
    }

    /// The name is under an exception domain.
    fn excepted(&self, host: &[u8]) -> bool {
        let host = host.strip_suffix(b".").unwrap_or(host);
        self.allow_domains.iter().any(|d| {
            let d = d.as_bytes();
            host.len() >= d.len()
                && host[host.len() - d.len()..].eq_ignore_ascii_case(d)
                && (host.len() == d.len() || host[host.len() - d.len() - 1] == b'.')
        })
    }

    pub fn category_names(&self, cats: CatSet) -> Vec<String> {
        match &self.categories {
            Some((db, _)) => cats.iter().map(|c| db.name(c).to_string()).collect(),
            None => Vec::new(),
        }
    }

    /// The event fields for a label.
    pub fn utm(&self, host: &[u8], l: &Label) -> UtmMeta {
        UtmMeta {
            host: Some(crate::events::meta::text(host)),
            categories: self.category_names(l.cats),
            policy: if l.block.is_some() {
                Some("block")
            } else if !l.cats.is_empty() {
                Some("record")
            } else {
                None
            },
            app: l.app.as_ref().map(|a| a.0.to_string()),
            app_type: l.app.as_ref().map(|a| a.1),
        }
    }

    pub fn is_home(&self, ip: IpAddr) -> bool {
        self.home_net.as_ref().is_some_and(|h| h.contains(ip))
    }
}

/// What a name is: its categories, the blocking category if the policy blocks it, the
/// application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Label {
    pub cats: CatSet,
    pub block: Option<u8>,
    pub app: Option<(Box<str>, &'static str)>,
}

/// Per-host traffic summaries, one per 10-minute bucket.
#[derive(Debug, Default)]
pub struct TrafficBook {
    buckets: HashMap<(IpAddr, u64), Summary>,
    pub counters: TrafficCounters,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct TrafficCounters {
    pub flows: u64,
    pub summaries: u64,
}

#[derive(Debug, Default)]
struct Summary {
    flows: u64,
    bytes: u64,
    cats: Vec<(String, u64, u64)>,
    apps: Vec<(String, Option<&'static str>, u64, u64)>,
    /// (first category or "", catalogue application or "") → flows, bytes in, bytes out:
    /// what the uplink sends.
    pairs: Vec<TrafficPair>,
}

fn add_line<K: PartialEq>(v: &mut Vec<(K, u64, u64)>, k: K, bytes: u64) {
    match v.iter_mut().find(|e| e.0 == k) {
        Some(e) => {
            e.1 += 1;
            e.2 += bytes;
        }
        None => v.push((k, 1, bytes)),
    }
}

impl TrafficBook {
    /// Account an ended flow to its internal host's bucket (the flow's start time).
    pub fn add_flow(&mut self, f: &Flow, lists: &Lists) {
        let (a, b) = f.key_endpoints();
        let server = if a == f.client { b.0 } else { a.0 };
        // the internal side: in $HOME_NET, else the initiator
        let host = if lists.is_home(f.client.0) || !lists.is_home(server) {
            f.client.0
        } else {
            server
        };
        let bucket = f.first_us / 1_000_000 / BUCKET_SECS * BUCKET_SECS;
        let bytes = f.bytes[0] + f.bytes[1];
        // bytes[0] travel from the flow's client
        let (out_b, in_b) = if host == f.client.0 {
            (f.bytes[0], f.bytes[1])
        } else {
            (f.bytes[1], f.bytes[0])
        };
        let s = self.buckets.entry((host, bucket)).or_default();
        s.flows += 1;
        s.bytes += bytes;
        self.counters.flows += 1;
        let label = f.label.as_deref();
        let cats = label
            .map(|l| lists.category_names(l.cats))
            .unwrap_or_default();
        let pair_cat = cats.first().cloned().unwrap_or_default();
        if cats.is_empty() {
            add_line(&mut s.cats, "uncategorized".to_string(), bytes);
        }
        for c in cats {
            add_line(&mut s.cats, c, bytes);
        }
        let pair_app = label
            .and_then(|l| l.app.as_ref())
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        match s
            .pairs
            .iter_mut()
            .find(|p| p.category == pair_cat && p.app == pair_app)
        {
            Some(p) => {
                p.flows += 1;
                p.bytes_in += in_b;
                p.bytes_out += out_b;
            }
            None => s.pairs.push(TrafficPair {
                category: pair_cat,
                app: pair_app,
                flows: 1,
                bytes_in: in_b,
                bytes_out: out_b,
            }),
        }
        let (name, kind) = match label.and_then(|l| l.app.as_ref()) {
            Some((n, k)) => (n.to_string(), Some(*k)),
            None => (
                f.app_proto.map_or("other", |p| p.as_str()).to_string(),
                None,
            ),
        };
        match s.apps.iter_mut().find(|e| e.0 == name) {
            Some(e) => {
                e.2 += 1;
                e.3 += bytes;
            }
            None => s.apps.push((name, kind, 1, bytes)),
        }
    }

    /// Summaries of buckets that ended before `before_us` (all with `u64::MAX`).
    pub fn drain(&mut self, before_us: u64, out: &mut Vec<(IpAddr, u64, EventMeta)>) {
        let before = before_us / 1_000_000;
        let mut keys: Vec<(IpAddr, u64)> = self
            .buckets
            .keys()
            .filter(|(_, b)| b + BUCKET_SECS <= before)
            .copied()
            .collect();
        keys.sort();
        for k in keys {
            let Some(s) = self.buckets.remove(&k) else {
                continue;
            };
            self.counters.summaries += 1;
            let mut categories: Vec<TrafficLine> = s
                .cats
                .into_iter()
                .map(|(name, flows, bytes)| TrafficLine {
                    name,
                    kind: None,
                    flows,
                    bytes,
                })
                .collect();
            categories.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
            let mut apps: Vec<TrafficLine> = s
                .apps
                .into_iter()
                .map(|(name, kind, flows, bytes)| TrafficLine {
                    name,
                    kind,
                    flows,
                    bytes,
                })
                .collect();
            apps.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
            let traffic = TrafficMeta {
                host: crate::events::eve::ip_str(k.0),
                bucket_start: crate::events::eve::timestamp(k.1 * 1_000_000),
                bucket_secs: BUCKET_SECS as u32,
                flows: s.flows,
                bytes: s.bytes,
                categories,
                apps,
                pairs: s.pairs,
                bucket_unix: k.1,
            };
            out.push((
                k.0,
                k.1,
                EventMeta {
                    traffic: Some(traffic),
                    ..EventMeta::default()
                },
            ));
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use rules::lists::CategoryDbBuilder;

    #[test]
    fn labels_and_policy() {
        let mut b = CategoryDbBuilder::new();
        let p = b.add_category("phishing").unwrap();
        b.add_domains(p, b"evil-login.example\n", Path::new("phishing/domains"))
            .unwrap();
        let g = b.add_category("gambling").unwrap();
        b.add_domains(g, b"casino.example\n", Path::new("gambling/domains"))
            .unwrap();
        let db = b.build();
        let pol = Policy::default_for(&db);
        let lists = Lists {
            categories: Some((db, pol)),
            ..Lists::default()
        };
        let l = lists.classify(b"www.Evil-Login.example", None);
        assert!(l.block.is_some());
        assert_eq!(lists.category_names(l.cats), vec!["phishing".to_string()]);
        let l = lists.classify(b"casino.example", Some(b"/"));
        assert!(l.block.is_none() && !l.cats.is_empty());
        assert_eq!(lists.utm(b"casino.example", &l).policy, Some("record"));
        let l = lists.classify(b"www.youtube.com", None);
        assert!(l.cats.is_empty() && l.block.is_none());
        assert_eq!(l.app.map(|a| a.1), Some("video"));
    }
}
