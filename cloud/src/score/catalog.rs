//! The cloud's own copy of rule metadata (msg, classtype, metadata) by (gid, sid, rev).
//!
//! Alerts are scored from this catalogue, not from what an appliance sends (whoever holds
//! a device key could otherwise manufacture ★★★ alerts). It is filled from every bundle
//! published with `admin rules publish` and by `admin rules import` for the rule sets
//! appliances carry outside bundles. Rules are parsed with the workspace's rule parser
//! (`mimamori-rules`), so a rule the appliance could load is one the cloud can know.

use protocol::bounded::BoundedString;
use protocol::bundle::BundleFile;
use protocol::messages::{MetaPair, Signature};
use serde::Serialize;

use crate::clock::Ms;
use crate::store::{CatalogRule, Tx};

/// Most parse errors listed in a report (all are counted).
const MAX_LISTED_ERRORS: usize = 50;

/// What an import (or a bundle's publication) added to the catalogue.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct ImportReport {
    /// Rule files read.
    pub files: usize,
    /// Rules added or replaced.
    pub rules: usize,
    /// Rules that did not parse (not added).
    pub failed: usize,
    /// The first parse errors, `file:line: reason`.
    pub errors: Vec<String>,
}

/// Parses the `.rules` files among `files` into catalogue entries (parse errors are
/// counted in the report, not fatal).
pub fn parse_files(
    files: &[BundleFile],
    source: &str,
    now: Ms,
) -> (Vec<CatalogRule>, ImportReport) {
    let mut ctx = rules::ParseCtx::new(rules::Vars::default());
    let mut report = rules::LoadReport::default();
    let mut out = ImportReport::default();
    for f in files.iter().filter(|f| f.path.ends_with(".rules")) {
        let text = String::from_utf8_lossy(&f.data);
        rules::parse::load_text(&text, &f.path, &mut ctx, &mut report);
        out.files += 1;
    }
    out.failed = report.failures.len();
    out.errors = report
        .failures
        .iter()
        .take(MAX_LISTED_ERRORS)
        .map(|e| e.to_string())
        .collect();
    let entries: Vec<CatalogRule> = report
        .rules
        .into_iter()
        .map(|r| CatalogRule {
            gid: r.gid,
            sid: r.sid,
            rev: r.rev,
            msg: r.msg,
            classtype: r.classtype,
            metadata: r.metadata,
            source: source.to_string(),
            added_ms: now,
        })
        .collect();
    out.rules = entries.len();
    (entries, out)
}

/// Parses `files` and adds their rules to the catalogue in `tx`.
pub fn import(
    tx: &mut Tx,
    files: &[BundleFile],
    source: &str,
    now: Ms,
) -> crate::store::Result<ImportReport> {
    let (entries, report) = parse_files(files, source, now);
    for e in &entries {
        tx.put_catalog_rule(e)?;
    }
    Ok(report)
}

/// How the catalogue rated a signature alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// The exact (gid, sid, rev) is known.
    Exact,
    /// Only another revision is known (the newest, `rev`).
    OtherRev(u32),
    /// The cloud does not know the rule.
    Unknown,
}

/// Replaces the signature's msg, classtype and metadata by the catalogue's for its
/// (gid, sid, rev), or the newest revision of (gid, sid).
pub fn apply(tx: &Tx, sig: &mut Signature) -> crate::store::Result<Known> {
    let (rule, known) = match tx.catalog_rule(sig.gid, sig.sid, sig.rev)? {
        Some(r) => (r, Known::Exact),
        None => match tx.catalog_newest(sig.gid, sig.sid)? {
            Some(r) => {
                let rev = r.rev;
                (r, Known::OtherRev(rev))
            }
            None => return Ok(Known::Unknown),
        },
    };
    sig.msg = BoundedString::truncated(&rule.msg);
    sig.classtype = rule.classtype.as_deref().map(BoundedString::truncated);
    sig.metadata = rule
        .metadata
        .iter()
        .filter(|(k, _)| protocol::messages::SCORING_METADATA_KEYS.contains(&k.as_str()))
        .take(protocol::limits::MAX_METADATA)
        .map(|(k, v)| MetaPair {
            key: BoundedString::truncated(k),
            value: BoundedString::truncated(v),
        })
        .collect();
    Ok(known)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn parses_rules_counts_errors_and_keeps_metadata() {
        let text = b"alert tcp any any -> any any (msg:\"A\"; content:\"x\"; classtype:misc-activity; metadata: signature_severity Informational; sid:1; rev:2;)\nalert tcp any any -> any any (msg:\"broken\"; nosuchkeyword; sid:2; rev:1;)\n# alert tcp any any -> any any (msg:\"off\"; sid:3;)\n".to_vec();
        let files = vec![
            BundleFile {
                path: "rules/a.rules".into(),
                data: text,
            },
            BundleFile {
                path: "rules/classification.config".into(),
                data: b"config classification: x,y,1\n".to_vec(),
            },
        ];
        let (entries, report) = parse_files(&files, "import test", 5);
        assert_eq!(report.files, 1);
        assert_eq!(report.rules, 1);
        assert_eq!(report.failed, 1);
        assert_eq!(report.errors.len(), 1);
        let e = &entries[0];
        assert_eq!((e.gid, e.sid, e.rev), (1, 1, 2));
        assert_eq!(e.classtype.as_deref(), Some("misc-activity"));
        assert_eq!(
            e.metadata,
            vec![(
                "signature_severity".to_string(),
                "Informational".to_string()
            )]
        );
    }
}
