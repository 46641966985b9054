use super::*;
use crate::testutil::*;
use protocol::messages::{Action, Direction};

fn level(a: &protocol::messages::Alert) -> Level {
    Scorer::default_policy().score(&Subject::Alert(a)).0
}

#[test]
fn default_policy_follows_spec() {
    let high = sig_alert(
        1,
        Direction::Outbound,
        "trojan-activity",
        &[("signature_severity", "Major"), ("confidence", "High")],
        Action::Blocked,
    );
    assert_eq!(level(&high), Level::High);
    let medium = sig_alert(
        2,
        Direction::Outbound,
        "trojan-activity",
        &[("signature_severity", "Minor"), ("confidence", "Medium")],
        Action::Allowed,
    );
    assert_eq!(level(&medium), Level::Medium);
    let unrated = sig_alert(
        3,
        Direction::Outbound,
        "misc-activity",
        &[],
        Action::Allowed,
    );
    assert_eq!(level(&unrated), Level::Investigating);
    let inbound_open = sig_alert(
        4,
        Direction::Inbound,
        "attempted-admin",
        &[("signature_severity", "Major")],
        Action::Allowed,
    );
    assert_eq!(level(&inbound_open), Level::Medium);
    let inbound_blocked = sig_alert(
        5,
        Direction::Inbound,
        "attempted-admin",
        &[("signature_severity", "Major")],
        Action::Blocked,
    );
    assert_eq!(level(&inbound_blocked), Level::Info);
    assert_eq!(
        level(&category_alert("phishing", Action::Blocked)),
        Level::Low
    );
    assert_eq!(level(&category_alert("malware", Action::Reset)), Level::Low);
    assert_eq!(
        level(&category_alert("games", Action::Blocked)),
        Level::Info
    );
    let sc = Scorer::default_policy();
    assert_eq!(
        sc.score(&Subject::File(&file_verdict(Action::Allowed))).0,
        Level::High
    );
    assert_eq!(
        sc.score(&Subject::File(&file_verdict(Action::Disarmed))).0,
        Level::Medium
    );
    // every level comes with a reason
    assert!(!sc.score(&Subject::Alert(&high)).1.is_empty());
}

#[test]
fn operators_can_replace_the_policy() {
    let p = r#"
[[rule]]
name = "everything-outbound-is-high"
level = "high"
reason = "outbound"
direction = ["outbound"]
"#;
    let sc = Scorer::from_toml(p).unwrap();
    let a = sig_alert(
        3,
        Direction::Outbound,
        "misc-activity",
        &[],
        Action::Allowed,
    );
    assert_eq!(
        sc.score(&Subject::Alert(&a)),
        (Level::High, "outbound".to_string())
    );
    assert!(
        Scorer::from_toml("[[rule]]\nname='x'\nlevel='huge'\nreason='r'\n")
            .unwrap_err()
            .contains("unknown level")
    );
    assert!(Scorer::from_toml("[[rule]]\nname='x'\nlevel='low'\nreason='r'\nbogus=1\n").is_err());
}

#[test]
fn levels_order_and_labels() {
    assert!(Level::High.rank() > Level::Medium.rank() && Level::Medium.rank() > Level::Low.rank());
    assert!(Level::Low.rank() > Level::Investigating.rank());
    assert_eq!(Level::parse("★★★"), Some(Level::High));
    assert!(!Level::Info.important() && Level::Investigating.important());
}
