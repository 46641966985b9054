//! Pipeline records → protocol alerts: what leaves the appliance about a detection.
//!
//! Alert records are sent: rule alerts, category alerts (the URL category policy decided)
//! and file verdicts (a harmful file: name, size, hash, threat — never contents). Drops
//! are the same detections seen as packets and stay home. The alert
//! carries what SPEC §3.4 allows: time, the flow's addresses seen from the office (internal
//! side = the endpoint in `HOME_NET`), the internal MAC, the rule (id, message, classtype,
//! severity and the metadata pairs the cloud's ★ scoring reads) and the action.

use protocol::UrlRef;
use protocol::bounded::{FileName, HostName, MetaValue, Name, Text};
use protocol::limits::MAX_METADATA;
use protocol::messages::{
    Action, Alert, Detection, Direction, Event, FileVerdict, FlowRef, IpProto, Mac, MetaPair,
    SCORING_METADATA_KEYS, Sha256, Signature, Transfer, UnixMs,
};
use rules::addr::AddrSet;
use rules::ast::Rule;
use rules::classification::Classifications;
use rules::compile::Ruleset;

use crate::flow::Dir;
use crate::pipeline::{Record, RecordKind};

/// A traffic record as the cloud's traffic summary: one row per (category, application),
/// the biggest first; rows beyond the protocol's limit are folded into one unnamed row.
fn traffic_summary(rec: &Record) -> Option<protocol::messages::TrafficSummary> {
    use protocol::limits::{MAX_TRAFFIC_ENTRIES, TRAFFIC_BUCKET_SECS};
    use protocol::messages::{InternalHost, TrafficEntry, TrafficSummary, UnixSecs};
    let t = rec.meta.as_deref()?.traffic.as_ref()?;
    let mut pairs = t.pairs.clone();
    pairs.sort_by(|a, b| {
        (b.bytes_in + b.bytes_out)
            .cmp(&(a.bytes_in + a.bytes_out))
            .then(a.category.cmp(&b.category))
            .then(a.app.cmp(&b.app))
    });
    let mut entries: Vec<TrafficEntry> = Vec::with_capacity(pairs.len().min(MAX_TRAFFIC_ENTRIES));
    for p in pairs {
        if entries.len() >= MAX_TRAFFIC_ENTRIES - 1 {
            // the last row takes what does not fit, unnamed
            if entries.len() == MAX_TRAFFIC_ENTRIES - 1 {
                entries.push(TrafficEntry {
                    category: Name::truncated(""),
                    app: Name::truncated(""),
                    bytes_in: 0,
                    bytes_out: 0,
                    flows: 0,
                });
            }
            let last = entries.last_mut()?;
            last.bytes_in += p.bytes_in;
            last.bytes_out += p.bytes_out;
            last.flows += p.flows;
            continue;
        }
        entries.push(TrafficEntry {
            category: Name::truncated(&p.category),
            app: Name::truncated(&p.app),
            bytes_in: p.bytes_in,
            bytes_out: p.bytes_out,
            flows: p.flows,
        });
    }
    Some(TrafficSummary {
        host: InternalHost {
            ip: rec.src,
            mac: Mac([0; 6]),
        },
        bucket_start: UnixSecs(t.bucket_unix / TRAFFIC_BUCKET_SECS * TRAFFIC_BUCKET_SECS),
        entries,
    })
}

/// Severity of a rule without `priority` and without a known classtype (Suricata's default).
const DEFAULT_SEVERITY: u8 = 3;

/// What happened to the records offered to [`AlertConverter::convert`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConvertCounters {
    /// Alerts produced.
    pub alerts: u64,
    /// Records that are not alerts (drops), not sent.
    pub not_alerts: u64,
    /// Alerts whose flow has no endpoint in `HOME_NET`: the flow's client was taken as the
    /// internal host and the direction as outbound.
    pub outside_home_net: u64,
}

/// Turns records of one rule set into [`Alert`]s.
pub struct AlertConverter<'a> {
    ruleset: &'a Ruleset,
    classes: &'a Classifications,
    home_net: &'a AddrSet,
    /// Totals so far.
    pub counters: ConvertCounters,
}

impl<'a> AlertConverter<'a> {
    /// A converter for records produced with `ruleset`; `home_net` is `$HOME_NET`.
    pub fn new(ruleset: &'a Ruleset, classes: &'a Classifications, home_net: &'a AddrSet) -> Self {
        AlertConverter {
            ruleset,
            classes,
            home_net,
            counters: ConvertCounters::default(),
        }
    }

    /// What leaves the appliance about `rec`: a rule alert, a category alert (the URL
    /// category policy decided) or a file verdict (a harmful file); `None` for anything
    /// else (drops, transactions, clean files, traffic summaries).
    pub fn convert_event(&mut self, rec: &Record) -> Option<Event> {
        if rec.kind == RecordKind::Traffic {
            return traffic_summary(rec).map(Event::TrafficSummary);
        }
        if rec.kind != RecordKind::Alert {
            self.counters.not_alerts += 1;
            return None;
        }
        // a summary of suppressed alerts stays local (EVE); the cloud gets the count in the
        // heartbeat (`alerts_suppressed`), not another alert
        if rec.meta.as_deref().is_some_and(|m| m.suppressed.is_some()) {
            self.counters.not_alerts += 1;
            return None;
        }
        if rec.rule.is_some() {
            return self.convert(rec).map(Event::Alert);
        }
        let meta = rec.meta.as_deref()?;
        let (flow, in_home_net) = flow_ref(rec, self.home_net);
        if let Some(l) = meta.load.as_ref() {
            // the bridge's own alert: shedding for load, or a bypass
            let (sid, msg, _) = crate::events::eve::load_signature(l);
            self.counters.alerts += 1;
            return Some(Event::Alert(Alert {
                time: UnixMs(rec.ts_us / 1000),
                flow,
                detection: Detection::Signature(Signature {
                    gid: crate::events::eve::MIMAMORI_GID,
                    sid,
                    rev: 1,
                    msg: Text::truncated(&msg),
                    classtype: Some(Name::truncated(if l.kind == "bypass" {
                        "inspection-bypass"
                    } else {
                        "inspection-overload"
                    })),
                    severity: 2,
                    metadata: Vec::new(),
                }),
                url: None,
                sni: None,
                dns_name: None,
                action: if l.kind == "bypass" {
                    Action::Allowed
                } else {
                    Action::Blocked
                },
            }));
        }
        if !in_home_net {
            self.counters.outside_home_net += 1;
        }
        let time = UnixMs(rec.ts_us / 1000);
        let url = meta.http.as_ref().and_then(|h| {
            let host = h.hostname.as_deref()?;
            Some(UrlRef::from_url(&format!(
                "http://{host}{}",
                h.url.as_deref().unwrap_or("/")
            )))
        });
        let sni = meta
            .tls
            .as_ref()
            .and_then(|t| t.sni.as_deref())
            .map(HostName::truncated);
        if let Some(f) = meta.fileinfo.as_ref().filter(|f| f.verdict != "clean") {
            let sha256 = sha256_of_hex(&f.sha256)?;
            self.counters.alerts += 1;
            return Some(Event::FileVerdict(FileVerdict {
                time,
                transfer: if rec.dir == Dir::ToServer {
                    Transfer::Upload
                } else {
                    Transfer::Download
                },
                flow,
                url,
                sni,
                name: f.filename.as_deref().map(FileName::truncated),
                size: f.size,
                sha256,
                threat: Text::truncated(f.threat.as_deref().unwrap_or(f.verdict)),
                action: if f.disarmed || rec.blocked {
                    Action::Disarmed
                } else {
                    Action::Allowed
                },
            }));
        }
        let utm = meta.utm.as_ref()?;
        let category = utm.categories.first()?;
        let host = utm.host.as_deref().map(HostName::truncated);
        self.counters.alerts += 1;
        let sni = sni.or_else(|| meta.tls.as_ref().and(host.clone()));
        // the name that decided goes somewhere: a DNS lookup unless it was HTTP or TLS
        let dns_name = (url.is_none() && sni.is_none()).then_some(host).flatten();
        Some(Event::Alert(Alert {
            time,
            flow,
            detection: Detection::Category {
                category: Name::truncated(category),
            },
            url,
            sni,
            dns_name,
            action: if rec.blocked {
                Action::Blocked
            } else {
                Action::Allowed
            },
        }))
    }

    /// The alert for `rec`, or `None` if the record is not a rule alert.
    pub fn convert(&mut self, rec: &Record) -> Option<Alert> {
        let rule = match (rec.kind, rec.rule) {
            (RecordKind::Alert, Some(i)) => &self.ruleset.rules.get(i as usize)?.rule,
            _ => {
                self.counters.not_alerts += 1;
                return None;
            }
        };
        let (flow, in_home_net) = flow_ref(rec, self.home_net);
        if !in_home_net {
            self.counters.outside_home_net += 1;
        }
        self.counters.alerts += 1;
        Some(Alert {
            time: UnixMs(rec.ts_us / 1000),
            flow,
            detection: Detection::Signature(signature(rule, self.classes)),
            url: None,
            sni: None,
            dns_name: None,
            action: if rec.blocked {
                Action::Blocked
            } else {
                Action::Allowed
            },
        })
    }
}

/// A 64-character hex SHA-256.
fn sha256_of_hex(s: &str) -> Option<Sha256> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(Sha256(out))
}

/// The rule as the cloud scores it.
pub fn signature(rule: &Rule, classes: &Classifications) -> Signature {
    let class_prio = rule
        .classtype
        .as_deref()
        .and_then(|c| classes.get(c))
        .map(|(_, p)| p);
    Signature {
        gid: rule.gid,
        sid: rule.sid,
        rev: rule.rev,
        msg: Text::truncated(&rule.msg),
        classtype: rule.classtype.as_deref().map(Name::truncated),
        severity: rule.priority.or(class_prio).unwrap_or(DEFAULT_SEVERITY),
        metadata: scoring_metadata(&rule.metadata),
    }
}

/// The metadata pairs the cloud's scoring reads, in rule order, at most [`MAX_METADATA`].
pub fn scoring_metadata(pairs: &[(String, String)]) -> Vec<MetaPair> {
    pairs
        .iter()
        .filter(|(k, _)| SCORING_METADATA_KEYS.contains(&k.as_str()))
        .take(MAX_METADATA)
        .map(|(k, v)| MetaPair {
            key: Name::truncated(k),
            value: MetaValue::truncated(v),
        })
        .collect()
}

/// The flow seen from the office, and whether an endpoint was in `HOME_NET`.
fn flow_ref(rec: &Record, home_net: &AddrSet) -> (FlowRef, bool) {
    // the record is one packet; the flow's client is its source when it goes to the server
    let src = (rec.src, rec.sport);
    let dst = (rec.dst, rec.dport);
    let (client, server) = if rec.dir == Dir::ToServer {
        (src, dst)
    } else {
        (dst, src)
    };
    let (internal, external, direction, known) =
        match (home_net.contains(client.0), home_net.contains(server.0)) {
            (true, false) => (client, server, Direction::Outbound, true),
            (false, true) => (server, client, Direction::Inbound, true),
            (true, true) => (client, server, Direction::Internal, true),
            (false, false) => (client, server, Direction::Outbound, false),
        };
    let has_ports = matches!(rec.proto, 6 | 17 | 132);
    let internal_is_src = internal == src;
    let internal_mac = rec
        .eth
        .map_or([0; 6], |(s, d)| if internal_is_src { s } else { d });
    let flow = FlowRef {
        proto: ip_proto(rec.proto),
        direction,
        internal_ip: internal.0,
        internal_port: has_ports.then_some(internal.1),
        internal_mac: Mac(internal_mac),
        external_ip: external.0,
        external_port: has_ports.then_some(external.1),
    };
    (flow, known)
}

/// The protocol number as the wire type.
pub fn ip_proto(p: u8) -> IpProto {
    match p {
        6 => IpProto::Tcp,
        17 => IpProto::Udp,
        1 => IpProto::Icmp,
        58 => IpProto::Icmpv6,
        n => IpProto::Other(n),
    }
}

#[cfg(test)]
mod test {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::replay::load_rules;
    use crate::uplink::testutil::TempDir;

    const RULE: &str = "alert tcp $HOME_NET any -> $EXTERNAL_NET 443 (msg:\"ET MALWARE Test C2\"; \
        flow:established,to_server; content:\"x\"; classtype:trojan-activity; sid:2030001; rev:3; \
        metadata: attack_target Client_Endpoint, created_at 2020_01_01, signature_severity Major, \
        confidence High, deployment Perimeter;)";

    fn loaded() -> (crate::replay::Loaded, TempDir) {
        let dir = TempDir::new("convert");
        let path = dir.path().join("t.rules");
        std::fs::write(&path, RULE).unwrap();
        let loaded = load_rules(std::slice::from_ref(&path), rules::Vars::default()).unwrap();
        assert_eq!(loaded.ruleset.rules.len(), 1, "{:?}", loaded.failures);
        (loaded, dir)
    }

    fn record(src: [u8; 4], dst: [u8; 4], dir: Dir) -> Record {
        Record {
            kind: RecordKind::Alert,
            ts_us: 1_700_000_000_123_456,
            pcap_cnt: 4,
            rule: Some(0),
            blocked: false,
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            sport: 50_000,
            dport: 443,
            proto: 6,
            icmp: None,
            flow_id: 1,
            dir,
            app_proto: None,
            app_failed: false,
            eth: Some(([1; 6], [2; 6])),
            vlan: [0; 2],
            ttl: 64,
            ip_len: 60,
            meta: None,
        }
    }

    fn home() -> AddrSet {
        rules::Vars::default().parse_addr("$HOME_NET").unwrap()
    }

    #[test]
    fn traffic_records_become_summaries_within_the_protocol_limit() {
        use crate::events::meta::{EventMeta, TrafficMeta, TrafficPair};
        use protocol::limits::MAX_TRAFFIC_ENTRIES;
        let (loaded, _dir) = loaded();
        let home = home();
        let mut conv = AlertConverter::new(&loaded.ruleset, &loaded.classes, &home);
        let mut rec = record([192, 168, 1, 10], [192, 168, 1, 10], Dir::ToServer);
        rec.kind = RecordKind::Traffic;
        // 300 (category, app) pairs, and unnamed ones that sort last
        let mut pairs: Vec<TrafficPair> = (0..300u64)
            .map(|i| TrafficPair {
                category: format!("cat{i}"),
                app: format!("app{i}"),
                flows: 1,
                bytes_in: 1000 + i,
                bytes_out: 10,
            })
            .collect();
        pairs.push(TrafficPair {
            flows: 2,
            bytes_in: 1,
            ..TrafficPair::default()
        });
        let total_in: u64 = pairs.iter().map(|p| p.bytes_in).sum();
        rec.meta = Some(Box::new(EventMeta {
            traffic: Some(TrafficMeta {
                pairs,
                bucket_unix: 1_700_000_123,
                ..TrafficMeta::default()
            }),
            ..EventMeta::default()
        }));
        let Some(Event::TrafficSummary(s)) = conv.convert_event(&rec) else {
            panic!("no summary");
        };
        protocol::Validate::validate(&Event::TrafficSummary(s.clone())).expect("within limits");
        assert_eq!(s.entries.len(), MAX_TRAFFIC_ENTRIES);
        assert_eq!(s.entries.iter().map(|e| e.bytes_in).sum::<u64>(), total_in);
        assert_eq!(s.entries.iter().map(|e| e.flows).sum::<u64>(), 302);
        assert_eq!(s.entries[0].app.as_str(), "app299", "the biggest first");
        assert_eq!(s.bucket_start.0 % 600, 0);
        assert_eq!(s.host.ip.to_string(), "192.168.1.10");
    }

    #[test]
    fn file_and_category_alerts_leave_as_their_own_events() {
        use crate::events::meta::{EventMeta, FileMeta, HttpMeta, UtmMeta};
        let (loaded, _dir) = loaded();
        let home = home();
        let mut conv = AlertConverter::new(&loaded.ruleset, &loaded.classes, &home);
        // a harmful download: only name, size, hash and threat leave
        let mut r = record([203, 0, 113, 5], [192, 168, 1, 10], Dir::ToClient);
        r.rule = None;
        r.blocked = true;
        r.meta = Some(Box::new(EventMeta {
            http: Some(HttpMeta {
                hostname: Some("dl.example".into()),
                url: Some("/eicar.com".into()),
                ..Default::default()
            }),
            fileinfo: Some(FileMeta {
                filename: Some("eicar.com".into()),
                size: 68,
                sha256: "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f".into(),
                verdict: "signature",
                threat: Some("EICAR-Test-File".into()),
                disarmed: true,
                ..Default::default()
            }),
            ..Default::default()
        }));
        let Some(Event::FileVerdict(f)) = conv.convert_event(&r) else {
            panic!("a file verdict");
        };
        assert_eq!(
            f.sha256.to_string(),
            "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
        );
        assert_eq!(f.transfer, Transfer::Download);
        assert_eq!(f.action, Action::Disarmed);
        assert_eq!(f.flow.internal_ip, IpAddr::from([192, 168, 1, 10]));
        assert_eq!(f.name.as_ref().map(|n| n.as_str()), Some("eicar.com"));
        assert_eq!(
            f.url.as_ref().map(|u| u.host().to_string()),
            Some("dl.example".to_string())
        );
        // a clean file is nothing to report
        if let Some(m) = r.meta.as_mut() {
            if let Some(fi) = m.fileinfo.as_mut() {
                fi.verdict = "clean";
            }
            m.http = None;
        }
        assert!(conv.convert_event(&r).is_none());
        // the category policy decided
        let mut c = record([192, 168, 1, 10], [203, 0, 113, 5], Dir::ToServer);
        c.rule = None;
        c.meta = Some(Box::new(EventMeta {
            utm: Some(UtmMeta {
                host: Some("login.phish.example".into()),
                categories: vec!["phishing".into()],
                policy: Some("block"),
                ..Default::default()
            }),
            ..Default::default()
        }));
        let Some(Event::Alert(a)) = conv.convert_event(&c) else {
            panic!("a category alert");
        };
        assert!(
            matches!(&a.detection, Detection::Category { category } if category.as_str() == "phishing")
        );
        assert_eq!(
            a.dns_name.as_ref().map(|n| n.as_str()),
            Some("login.phish.example")
        );
        // drops and other records stay home
        let mut d = record([192, 168, 1, 10], [203, 0, 113, 5], Dir::ToServer);
        d.kind = RecordKind::Drop;
        assert!(conv.convert_event(&d).is_none());
        // rule alerts as before
        assert!(matches!(
            conv.convert_event(&record([192, 168, 1, 10], [203, 0, 113, 5], Dir::ToServer)),
            Some(Event::Alert(_))
        ));
    }

    #[test]
    fn outbound_alert_carries_rule_and_scoring_metadata() {
        let (loaded, _dir) = loaded();
        let home = home();
        let mut conv = AlertConverter::new(&loaded.ruleset, &loaded.classes, &home);
        let alert = conv
            .convert(&record([192, 168, 1, 10], [203, 0, 113, 5], Dir::ToServer))
            .unwrap();
        assert_eq!(alert.time, UnixMs(1_700_000_000_123));
        assert_eq!(alert.action, Action::Allowed);
        let f = alert.flow;
        assert_eq!(f.direction, Direction::Outbound);
        assert_eq!(f.internal_ip, IpAddr::from(Ipv4Addr::new(192, 168, 1, 10)));
        assert_eq!(
            (f.internal_port, f.external_port),
            (Some(50_000), Some(443))
        );
        assert_eq!(f.internal_mac, Mac([1; 6]), "internal host is the source");
        let Detection::Signature(sig) = alert.detection else {
            panic!("signature")
        };
        assert_eq!(
            (sig.gid, sig.sid, sig.rev, sig.severity),
            (1, 2_030_001, 3, 1)
        );
        assert_eq!(sig.msg, "ET MALWARE Test C2");
        assert_eq!(sig.classtype.as_deref(), Some("trojan-activity"));
        let keys: Vec<&str> = sig.metadata.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["attack_target", "signature_severity", "confidence"]);
        assert_eq!(sig.meta("signature_severity"), Some("Major"));
    }

    #[test]
    fn direction_and_mac_follow_home_net() {
        let (loaded, _dir) = loaded();
        let home = home();
        let mut conv = AlertConverter::new(&loaded.ruleset, &loaded.classes, &home);
        // reply packet of an inbound flow: source is the internal server
        let mut rec = record([10, 0, 0, 5], [198, 51, 100, 7], Dir::ToClient);
        rec.blocked = true;
        let a = conv.convert(&rec).unwrap();
        assert_eq!(a.flow.direction, Direction::Inbound);
        assert_eq!(a.flow.internal_ip, IpAddr::from([10, 0, 0, 5]));
        assert_eq!(a.flow.internal_mac, Mac([1; 6]));
        assert_eq!(a.action, Action::Blocked);
        // packet to an internal host from outside
        let a = conv
            .convert(&record([198, 51, 100, 7], [10, 0, 0, 5], Dir::ToServer))
            .unwrap();
        assert_eq!(
            (a.flow.direction, a.flow.internal_mac),
            (Direction::Inbound, Mac([2; 6]))
        );
        let a = conv
            .convert(&record([10, 0, 0, 5], [10, 0, 0, 6], Dir::ToServer))
            .unwrap();
        assert_eq!(a.flow.direction, Direction::Internal);
        let a = conv
            .convert(&record([8, 8, 8, 8], [9, 9, 9, 9], Dir::ToServer))
            .unwrap();
        assert_eq!(
            (a.flow.direction, a.flow.internal_ip),
            (Direction::Outbound, IpAddr::from([8, 8, 8, 8]))
        );
        assert_eq!(
            conv.counters,
            ConvertCounters {
                alerts: 4,
                not_alerts: 0,
                outside_home_net: 1
            }
        );
        let mut drop = record([10, 0, 0, 5], [10, 0, 0, 6], Dir::ToServer);
        drop.kind = RecordKind::Drop;
        assert!(conv.convert(&drop).is_none());
        assert_eq!(conv.counters.not_alerts, 1);
    }

    #[test]
    fn metadata_is_bounded_and_truncated() {
        let long = "v".repeat(1000);
        let mut pairs: Vec<(String, String)> = vec![("confidence".into(), long.clone())];
        pairs.extend((0..100).map(|_| ("signature_severity".to_string(), "Minor".to_string())));
        let meta = scoring_metadata(&pairs);
        assert_eq!(meta.len(), MAX_METADATA);
        assert_eq!(meta[0].value.len(), MetaValue::MAX);
    }
}
