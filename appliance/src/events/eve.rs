//! EVE-JSON output, one object per line, in the shape of Suricata's `eve.json`.

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;

use rules::classification::Classifications;
use rules::compile::Ruleset;

use super::meta::{
    DnsMeta, EventMeta, FileMeta, HttpMeta, LoadMeta, TlsMeta, TrafficMeta, UtmMeta,
};
use crate::pipeline::{Record, RecordKind};

/// Signature id and generator of alerts raised by the URL-category policy and by file
/// verdicts (no rule behind them).
pub const CATEGORY_SID: u32 = 9_000_001;
pub const FILE_SID: u32 = 9_000_002;
/// Alerts of the bridge itself: it began shedding the heaviest senders' frames for load,
/// or forwarding a stalled worker's frames uninspected.
pub const SHED_SID: u32 = 9_000_003;
pub const BYPASS_SID: u32 = 9_000_004;
pub const MIMAMORI_GID: u32 = 9000;

#[derive(Serialize)]
struct Ether {
    src_mac: String,
    dest_mac: String,
}

#[derive(Serialize)]
struct Alert<'a> {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: &'a str,
    category: &'a str,
    severity: u8,
}

#[derive(Serialize)]
struct Drop {
    len: u16,
    ttl: u8,
    reason: &'static str,
}

#[derive(Serialize)]
struct Eve<'a> {
    timestamp: String,
    flow_id: u64,
    pcap_cnt: u64,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<Vec<u16>>,
    src_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    dest_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    ip_v: u8,
    proto: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ether: Option<Ether>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_proto: Option<&'static str>,
    direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<Alert<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drop: Option<Drop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<&'a HttpMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'a TlsMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<&'a DnsMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fileinfo: Option<&'a FileMeta>,
    /// URL category and application (this product's own key).
    #[serde(skip_serializing_if = "Option::is_none")]
    mimamori: Option<&'a UtmMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traffic: Option<&'a TrafficMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<&'a LoadMeta>,
}

/// Suricata's protocol names.
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "IPv6-ICMP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        51 => "AH".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

/// Suricata writes IPv6 addresses in full (`2001:0db8:0000:...`).
pub fn ip_str(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => {
            let s = a.segments();
            format!(
                "{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}",
                s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
            )
        }
    }
}

pub fn mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// `2024-01-02T03:04:05.123456+0000`
pub fn timestamp(ts_us: u64) -> String {
    let secs = ts_us / 1_000_000;
    let us = ts_us % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}+0000",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Signature id, message and category of a load alert (EVE and the uplink alike).
pub fn load_signature(l: &LoadMeta) -> (u32, String, &'static str) {
    if l.kind == "bypass" {
        (
            BYPASS_SID,
            format!(
                "Mimamori inspection bypass: a stalled worker's frames from port {} forwarded uninspected",
                l.port
            ),
            "Inspection bypass",
        )
    } else {
        let host = l
            .host_ip
            .as_deref()
            .or(l.host_mac.as_deref())
            .unwrap_or("unknown");
        (
            SHED_SID,
            format!(
                "Mimamori inspection overload: shedding the heaviest sender's frames on port {} (host {host})",
                l.port
            ),
            "Inspection overload",
        )
    }
}

/// Writes records as EVE lines.
pub struct EveWriter<W: Write> {
    out: W,
    classes: Classifications,
}

impl<W: Write> EveWriter<W> {
    pub fn new(out: W, classes: Classifications) -> Self {
        EveWriter { out, classes }
    }

    /// Uses other classtypes from now on (a new rule set was swapped in).
    pub fn set_classes(&mut self, classes: Classifications) {
        self.classes = classes;
    }

    pub fn write(&mut self, rec: &Record, rs: &Ruleset) -> std::io::Result<()> {
        let rule = rec.rule.map(|i| &rs.rules[i as usize].rule);
        let meta: Option<&EventMeta> = rec.meta.as_deref();
        let own_msg;
        let alert = rule.map(|r| {
            let (category, prio) = r
                .classtype
                .as_deref()
                .and_then(|c| self.classes.get(c))
                .unwrap_or(("", 3));
            Alert {
                action: if rec.blocked { "blocked" } else { "allowed" },
                gid: r.gid,
                signature_id: r.sid,
                rev: r.rev,
                signature: &r.msg,
                category,
                severity: r.priority.unwrap_or(prio),
            }
        });
        // alerts without a rule: the category policy or a file verdict decided
        let alert = match (alert, rec.kind, meta) {
            (None, RecordKind::Alert, Some(m)) => {
                let (sid, msg, category) = if let Some(l) = m.load.as_ref() {
                    load_signature(l)
                } else if let Some(f) = m.fileinfo.as_ref() {
                    (
                        FILE_SID,
                        format!(
                            "Mimamori file verdict: {} ({})",
                            f.threat.as_deref().unwrap_or(f.verdict),
                            f.sha256
                        ),
                        "Malware file",
                    )
                } else {
                    let u = m.utm.as_ref();
                    let cats = u.map(|u| u.categories.join(",")).unwrap_or_default();
                    let host = u.and_then(|u| u.host.as_deref()).unwrap_or("");
                    (
                        CATEGORY_SID,
                        format!("Mimamori URL category {cats}: {host}"),
                        "Web category policy",
                    )
                };
                own_msg = msg;
                Some(Alert {
                    action: if rec.blocked { "blocked" } else { "allowed" },
                    gid: MIMAMORI_GID,
                    signature_id: sid,
                    rev: 1,
                    signature: &own_msg,
                    category,
                    severity: 1,
                })
            }
            (a, _, _) => a,
        };
        let has_ports = matches!(rec.proto, 6 | 17 | 132);
        let vlan: Vec<u16> = rec.vlan.iter().copied().filter(|v| *v != 0).collect();
        let eve = Eve {
            timestamp: timestamp(rec.ts_us),
            flow_id: rec.flow_id,
            pcap_cnt: rec.pcap_cnt,
            event_type: match rec.kind {
                RecordKind::Alert => "alert",
                RecordKind::Drop => "drop",
                RecordKind::Http => "http",
                RecordKind::Tls => "tls",
                RecordKind::Dns => "dns",
                RecordKind::FileInfo => "fileinfo",
                RecordKind::Traffic => "traffic",
            },
            vlan: (!vlan.is_empty()).then_some(vlan),
            src_ip: ip_str(rec.src),
            src_port: has_ports.then_some(rec.sport),
            dest_ip: ip_str(rec.dst),
            ip_v: if rec.src.is_ipv6() { 6 } else { 4 },
            dest_port: has_ports.then_some(rec.dport),
            proto: proto_name(rec.proto),
            icmp_type: rec.icmp.map(|i| i.0),
            icmp_code: rec.icmp.map(|i| i.1),
            ether: rec.eth.map(|(s, d)| Ether {
                src_mac: mac(s),
                dest_mac: mac(d),
            }),
            app_proto: match (rec.app_proto, rec.app_failed) {
                (Some(a), _) => Some(a.as_str()),
                (None, true) => Some("failed"),
                _ => None,
            },
            direction: rec.dir.as_str(),
            alert,
            drop: (rec.kind == RecordKind::Drop).then(|| Drop {
                len: rec.ip_len,
                ttl: rec.ttl,
                reason: if rec.rule.is_some() {
                    "rules"
                } else {
                    "flow drop"
                },
            }),
            http: meta.and_then(|m| m.http.as_ref()),
            tls: meta.and_then(|m| m.tls.as_ref()),
            dns: meta.and_then(|m| m.dns.as_ref()),
            fileinfo: meta.and_then(|m| m.fileinfo.as_ref()),
            mimamori: meta.and_then(|m| m.utm.as_ref()),
            traffic: meta.and_then(|m| m.traffic.as_ref()),
            load: meta.and_then(|m| m.load.as_ref()),
        };
        serde_json::to_writer(&mut self.out, &eve)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod test {
    #[test]
    fn timestamps() {
        assert_eq!(super::timestamp(0), "1970-01-01T00:00:00.000000+0000");
        // 2009-11-12 10:23:17.403417 UTC
        assert_eq!(
            super::timestamp(1_258_021_397_403_417),
            "2009-11-12T10:23:17.403417+0000"
        );
        assert_eq!(
            super::timestamp(951_782_400_000_001),
            "2000-02-29T00:00:00.000001+0000"
        );
    }
}
