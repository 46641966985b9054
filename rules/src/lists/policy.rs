//! [`Policy`]: what to do when a host or URL falls in a category.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{CatSet, CategoryDb};

/// The categories blocked when the configuration does not say otherwise.
pub const DEFAULT_BLOCKED: [&str; 2] = ["malware", "phishing"];

/// The action for a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Stop the request and record it.
    Block,
    /// Let the request pass and record it.
    Record,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Record => "record",
        }
    }
}

/// The `[categories]` table of the appliance configuration:
///
/// ```toml
/// [categories]
/// phishing = "block"
/// gambling = "record"
/// ```
///
/// `malware` and `phishing` are blocked unless set otherwise; every other category is
/// recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Category name (as the list folder is named) → `"block"` or `"record"`.
    #[serde(default)]
    pub categories: BTreeMap<String, Action>,
}

/// A [`PolicyConfig`] resolved against the category ids of one [`CategoryDb`]. Resolve it
/// again after a reload that changes the set of categories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    block: CatSet,
    record: CatSet,
    /// Configured names the database does not have.
    unknown: Vec<String>,
}

impl Policy {
    pub fn new(config: &PolicyConfig, db: &CategoryDb) -> Policy {
        let mut block = CatSet::EMPTY;
        let mut record = CatSet::EMPTY;
        for (id, name) in db.categories() {
            let action = config.categories.get(name).copied().unwrap_or(
                if DEFAULT_BLOCKED.contains(&name) {
                    Action::Block
                } else {
                    Action::Record
                },
            );
            match action {
                Action::Block => block.insert(id),
                Action::Record => record.insert(id),
            }
        }
        let unknown = config
            .categories
            .keys()
            .filter(|name| db.id(name).is_none())
            .cloned()
            .collect();
        Policy {
            block,
            record,
            unknown,
        }
    }

    /// The defaults for `db`.
    pub fn default_for(db: &CategoryDb) -> Policy {
        Policy::new(&PolicyConfig::default(), db)
    }

    /// The action for a lookup result and the category that decided it: `Block` wins over
    /// `Record`, and among the categories with the winning action the smallest id (the
    /// first name in byte order) is named. `None` when `set` is empty.
    pub fn verdict(&self, set: CatSet) -> Option<(Action, u8)> {
        if let Some(id) = (set & self.block).first() {
            return Some((Action::Block, id));
        }
        (set & self.record).first().map(|id| (Action::Record, id))
    }

    /// Category names in the configuration that the database does not have (a typo, or a
    /// list that was not installed); worth a warning.
    pub fn unknown_categories(&self) -> &[String] {
        &self.unknown
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::lists::CategoryDbBuilder;

    fn db() -> CategoryDb {
        let mut b = CategoryDbBuilder::new();
        for name in ["gambling", "malware", "phishing", "vpn"] {
            let id = b.add_category(name).expect("category");
            let line = format!("{name}.example\nshared.example\n");
            b.add_domains(id, line.as_bytes(), Path::new("t"))
                .expect("domains");
        }
        b.build()
    }

    #[test]
    fn defaults_block_malware_and_phishing() {
        let db = db();
        let p = Policy::default_for(&db);
        let id = |n| db.id(n).expect("id");
        let v = |h: &str| p.verdict(db.lookup_host(h.as_bytes()));
        assert_eq!(
            v("gambling.example"),
            Some((Action::Record, id("gambling")))
        );
        assert_eq!(
            v("x.phishing.example"),
            Some((Action::Block, id("phishing")))
        );
        // Several categories: block wins, the smallest blocking id is named.
        assert_eq!(v("shared.example"), Some((Action::Block, id("malware"))));
        assert_eq!(v("unlisted.example"), None);
    }

    #[test]
    fn toml_overrides() {
        let db = db();
        let cfg: PolicyConfig = toml::from_str(
            "[categories]\nphishing = \"block\"\nmalware = \"record\"\ngambling = \"block\"\ntypo = \"record\"\n",
        )
        .expect("toml");
        let p = Policy::new(&cfg, &db);
        let v = |h: &str| p.verdict(db.lookup_host(h.as_bytes()));
        assert_eq!(v("malware.example"), Some((Action::Record, 1)));
        assert_eq!(v("shared.example"), Some((Action::Block, 0)));
        assert_eq!(p.unknown_categories(), ["typo"]);
        assert!(toml::from_str::<PolicyConfig>("[categories]\nx = \"allow\"\n").is_err());
        assert!(toml::from_str::<PolicyConfig>("other = 1\n").is_err());
    }
}
