//! Loading the real UT1 snapshot from the shared corpus (skipped when it is absent).

use std::path::Path;

use super::{Action, CategoryDb, Policy};

const UT1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/ut1");

fn load() -> Option<CategoryDb> {
    let dir = Path::new(UT1);
    if !dir.is_dir() {
        eprintln!("skipped: UT1 corpus not found at {UT1}");
        return None;
    }
    Some(CategoryDb::load_dir(dir).expect("the UT1 snapshot loads"))
}

fn names(db: &CategoryDb, host: &str) -> Vec<String> {
    db.lookup_host(host.as_bytes())
        .iter()
        .map(|id| db.name(id).to_string())
        .collect()
}

#[test]
fn ut1_snapshot_loads_every_category() {
    let Some(db) = load() else { return };
    assert_eq!(db.len(), 23);
    let r = db.report();
    assert!(r.domains > 600_000, "{} domain lines", r.domains);
    assert!(r.unique_domains > 300_000, "{} unique", r.unique_domains);
    assert!(r.urls > 35_000, "{} url lines", r.urls);
    // The snapshot is clean: almost nothing is refused.
    assert!(r.skipped_lines < 100, "{:?}", r.skipped_samples);
    let malware = &r.categories[usize::from(db.id("malware").expect("malware"))];
    assert!(malware.domains > 200_000 && malware.urls > 19_000);
}

#[test]
fn ut1_known_entries_resolve() {
    let Some(db) = load() else { return };
    assert_eq!(names(&db, "facebook.com"), ["social_networks"]);
    assert_eq!(names(&db, "www.facebook.com"), ["social_networks"]);
    assert_eq!(names(&db, "mail.GMAIL.com."), ["webmail"]);
    assert_eq!(names(&db, "bit.ly:443"), ["shortener"]);
    assert_eq!(names(&db, "coinbase.com"), ["bitcoin"]);
    assert_eq!(names(&db, "teamviewer.com"), ["remote-control"]);
    assert_eq!(
        names(&db, "bet365.com"),
        ["gambling", "malware", "phishing"]
    );
    assert_eq!(names(&db, "nordvpn.com"), ["redirector", "vpn"]);
    assert_eq!(names(&db, "0000000888.weebly.com"), ["malware", "phishing"]);
    assert!(names(&db, "weebly.com").is_empty());
    assert!(names(&db, "example-nonlisted.jp").is_empty());

    let url = db.lookup_url(b"0001-5cf.pages.dev", b"/awards/2024");
    let url: Vec<_> = url.iter().map(|id| db.name(id)).collect();
    assert_eq!(url, ["malware", "phishing"]);
    assert!(db.lookup_url(b"0001-5cf.pages.dev", b"/awardsx").is_empty());
    let drugs = db.lookup_url(b"128.104.21.149", b"/~cozzi/index.html");
    assert_eq!(drugs.first(), db.id("drogue"));

    let policy = Policy::default_for(&db);
    let (action, id) = policy
        .verdict(db.lookup_host(b"bet365.com"))
        .expect("listed");
    assert_eq!((action, db.name(id)), (Action::Block, "malware"));
    let (action, id) = policy
        .verdict(db.lookup_host(b"www.facebook.com"))
        .expect("listed");
    assert_eq!((action, db.name(id)), (Action::Record, "social_networks"));
}
