//! Sample messages for tests: at least one of every variant, with every optional field used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::bounded::{BoundedString, Name};

/// A bounded string from a literal that fits.
pub(crate) fn s<const N: usize>(text: &str) -> BoundedString<N> {
    BoundedString::truncated(text)
}

pub(crate) fn device() -> DeviceId {
    DeviceId::new("MM-000123").expect("valid sample device id")
}

pub(crate) fn hello() -> Hello {
    Hello::new(device(), s("1.4.2"), s("2025-06-01.3"))
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

const MAC: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);

fn flow() -> FlowRef {
    FlowRef {
        proto: IpProto::Tcp,
        direction: Direction::Outbound,
        internal_ip: v4(198, 18, 0, 10),
        internal_port: Some(51234),
        internal_mac: MAC,
        external_ip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x80)),
        external_port: Some(80),
    }
}

pub(crate) fn alert() -> Alert {
    Alert {
        time: UnixMs(1_750_000_000_123),
        flow: flow(),
        detection: Detection::Signature(Signature {
            gid: 1,
            sid: 2_024_897,
            rev: 3,
            msg: s("ET MALWARE Win32/Example CnC Checkin"),
            classtype: Some(s("trojan-activity")),
            severity: 1,
            metadata: vec![
                MetaPair {
                    key: s("signature_severity"),
                    value: s("Major"),
                },
                MetaPair {
                    key: s("confidence"),
                    value: s("High"),
                },
            ],
        }),
        url: Some(UrlRef::from_url("http://c2.example/gate.php?id=42")),
        sni: None,
        dns_name: Some(s("c2.example")),
        action: Action::Blocked,
    }
}

fn category_alert() -> Alert {
    Alert {
        detection: Detection::Category {
            category: s("phishing"),
        },
        url: None,
        sni: Some(s("login.phish.example")),
        dns_name: None,
        action: Action::Reset,
        flow: FlowRef {
            proto: IpProto::Other(132),
            internal_port: None,
            ..flow()
        },
        ..alert()
    }
}

fn file_verdict() -> FileVerdict {
    FileVerdict {
        time: UnixMs(1_750_000_001_000),
        flow: FlowRef {
            direction: Direction::Internal,
            ..flow()
        },
        transfer: Transfer::Download,
        url: Some(UrlRef::from_url("http://dl.example/eicar.com")),
        sni: Some(s("dl.example")),
        name: Some(s("eicar.com")),
        size: 68,
        sha256: Sha256([0xab; 32]),
        threat: s("EICAR-Test-File"),
        action: Action::Disarmed,
    }
}

fn traffic() -> TrafficSummary {
    TrafficSummary {
        host: InternalHost {
            ip: v4(198, 18, 0, 11),
            mac: MAC,
        },
        bucket_start: UnixSecs(1_750_000_200),
        entries: vec![TrafficEntry {
            category: s("video"),
            app: s("YouTube"),
            bytes_in: 10_000_000,
            bytes_out: 200_000,
            flows: 12,
        }],
    }
}

/// A batch holding every kind of event.
pub(crate) fn events() -> Events {
    let events = [
        Event::Alert(alert()),
        Event::Alert(category_alert()),
        Event::FileVerdict(file_verdict()),
        Event::TrafficSummary(traffic()),
    ];
    let events = events
        .into_iter()
        .zip(100..)
        .map(|(event, seq)| SeqEvent { seq, event })
        .collect();
    Events { events }
}

fn version(v: &str) -> Name {
    s(v)
}

/// One of every appliance → cloud message.
pub(crate) fn up() -> Vec<UpMsg> {
    vec![
        UpMsg::Hello(hello()),
        UpMsg::Heartbeat(Heartbeat {
            uptime_s: 86_400,
            firmware: version("1.4.2"),
            rules_version: version("2025-06-01.3"),
            mode: Mode::Detect,
            counters: vec![Counter {
                name: s("packets_uninspected"),
                value: 7,
            }],
        }),
        UpMsg::Events(events()),
        UpMsg::Events(Events::default()),
        UpMsg::BundleStatus(BundleStatus {
            version: version("7"),
            state: BundleState::Applied,
        }),
        UpMsg::BundleStatus(BundleStatus {
            version: version("8"),
            state: BundleState::Refused {
                reason: s("bad signature"),
            },
        }),
        UpMsg::CommandResult(CommandResult {
            command_id: 9,
            ok: false,
            message: s("no such host"),
        }),
        UpMsg::Activate(super::Activate {
            code: s("K7QW-2M9D-XP4R"),
            csr_pem: s(
                "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
            ),
        }),
    ]
}

/// One of every cloud → appliance message, and every command and exception.
pub(crate) fn down() -> Vec<DownMsg> {
    let host = HostRef::Mac(MAC);
    let exceptions = [
        Exception::Signature {
            gid: 1,
            sid: 2_000_001,
        },
        Exception::SignatureForHost {
            gid: 1,
            sid: 2_000_002,
            host: HostRef::Ip(v4(198, 18, 0, 5)),
        },
        Exception::Host(host),
        Exception::Domain(s("intranet.example")),
        Exception::FileHash(Sha256([7; 32])),
    ];
    let mut cmds = vec![
        CommandKind::IsolateHost {
            host,
            allow: vec![
                AllowDest {
                    ip: v4(198, 18, 1, 1),
                    port: Some(443),
                },
                AllowDest {
                    ip: v4(198, 18, 1, 2),
                    port: None,
                },
            ],
        },
        CommandKind::ReleaseHost { host },
        CommandKind::SetMode(Mode::Prevent),
        CommandKind::Reboot,
        CommandKind::Wipe,
        CommandKind::BundleAvailable {
            version: version("9"),
            size: 1 << 20,
            sha256: Sha256([1; 32]),
        },
    ];
    cmds.extend(exceptions.iter().cloned().map(CommandKind::AddException));
    cmds.extend(exceptions.into_iter().map(CommandKind::RemoveException));
    let mut msgs = vec![
        DownMsg::HelloAck(HelloAck { version: 1 }),
        DownMsg::Refused(Refused {
            reason: RefuseReason::IncompatibleVersion { min: 2, max: 3 },
        }),
        DownMsg::Refused(Refused {
            reason: RefuseReason::Other(s("maintenance")),
        }),
        DownMsg::Refused(Refused {
            reason: RefuseReason::ContractEnded,
        }),
        DownMsg::Ack(Ack { upto_seq: 103 }),
        DownMsg::Activated(super::Activated {
            device: super::DeviceId::new("dev-0001").unwrap(),
            cert_pem: s("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
            ca_pem: s("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"),
        }),
    ];
    msgs.extend(
        cmds.into_iter()
            .zip(1..)
            .map(|(cmd, id)| DownMsg::Command(Command { id, cmd })),
    );
    msgs
}
