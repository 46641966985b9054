//! Builders shared by the unit tests.

use std::net::IpAddr;

use protocol::bounded::BoundedString;
use protocol::messages::*;

pub fn s<const N: usize>(v: &str) -> BoundedString<N> {
    BoundedString::new(v).expect("test string within bounds")
}

pub fn flow(dir: Direction, host: &str) -> FlowRef {
    FlowRef {
        proto: IpProto::Tcp,
        direction: dir,
        internal_ip: host.parse::<IpAddr>().expect("ip"),
        internal_port: Some(50000),
        internal_mac: Mac([2, 0, 0, 0, 0, 1]),
        external_ip: "198.19.1.10".parse().expect("ip"),
        external_port: Some(443),
    }
}

/// A signature alert with metadata pairs.
pub fn sig_alert(
    sid: u32,
    dir: Direction,
    classtype: &str,
    meta: &[(&str, &str)],
    action: Action,
) -> Alert {
    Alert {
        time: UnixMs(1_750_000_000_000),
        flow: flow(dir, "198.18.0.10"),
        detection: Detection::Signature(Signature {
            gid: 1,
            sid,
            rev: 1,
            msg: s("ET MALWARE Example CnC Checkin"),
            classtype: Some(s(classtype)),
            severity: 1,
            metadata: meta
                .iter()
                .map(|(k, v)| MetaPair {
                    key: s(k),
                    value: s(v),
                })
                .collect(),
        }),
        url: Some(UrlRef::from_url("http://c2.example/gate.php?id=1")),
        sni: None,
        dns_name: None,
        action,
    }
}

pub fn category_alert(cat: &str, action: Action) -> Alert {
    Alert {
        time: UnixMs(1_750_000_000_000),
        flow: flow(Direction::Outbound, "198.18.0.11"),
        detection: Detection::Category { category: s(cat) },
        url: None,
        sni: Some(s("login.phish.example")),
        dns_name: None,
        action,
    }
}

pub fn file_verdict(action: Action) -> FileVerdict {
    FileVerdict {
        time: UnixMs(1_750_000_000_000),
        flow: flow(Direction::Inbound, "198.18.0.12"),
        transfer: Transfer::Download,
        url: Some(UrlRef::from_url("http://files.example/eicar.com")),
        sni: None,
        name: Some(s("eicar.com")),
        size: 68,
        sha256: Sha256([0x27; 32]),
        threat: s("EICAR-Test-File"),
        action,
    }
}

/// A contract with the given addresses and exceptions.
pub fn contract(recipients: &[&str], exceptions: &[&str]) -> crate::store::Contract {
    let d = |s: &str| crate::contract::Date::parse(s).expect("date");
    crate::store::Contract {
        id: 1,
        customer_id: 1,
        name: "テスト商店".into(),
        application_date: d("2026-01-05"),
        start: d("2026-01-05"),
        paid_start: d("2026-02-01"),
        ended: None,
        recipients: recipients.iter().map(|s| s.to_string()).collect(),
        auto_isolation: false,
        isolation_allow: Vec::new(),
        exceptions: exceptions.iter().map(|s| s.to_string()).collect(),
    }
}
