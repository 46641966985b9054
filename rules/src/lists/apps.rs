//! [`AppCatalog`]: well-known applications recognised by the domain of a host or SNI.

use std::fmt;
use std::str::FromStr;

use super::ListError;
use super::suffix::{self, MAX_KEY_LEN, SuffixTable, SuffixTableBuilder};

/// The built-in catalogue: `domain suffix <TAB> application <TAB> kind` per line.
const BUILTIN_TSV: &str = include_str!("../../data/apps.tsv");

/// What an application is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AppKind {
    Video,
    Storage,
    Messaging,
    Social,
    Mail,
    Search,
    Productivity,
    Update,
    Ads,
    Cdn,
    Ai,
    Game,
    Shopping,
    News,
    Remote,
    Vpn,
    Other,
}

impl AppKind {
    pub const ALL: [AppKind; 17] = [
        AppKind::Video,
        AppKind::Storage,
        AppKind::Messaging,
        AppKind::Social,
        AppKind::Mail,
        AppKind::Search,
        AppKind::Productivity,
        AppKind::Update,
        AppKind::Ads,
        AppKind::Cdn,
        AppKind::Ai,
        AppKind::Game,
        AppKind::Shopping,
        AppKind::News,
        AppKind::Remote,
        AppKind::Vpn,
        AppKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Video => "video",
            AppKind::Storage => "storage",
            AppKind::Messaging => "messaging",
            AppKind::Social => "social",
            AppKind::Mail => "mail",
            AppKind::Search => "search",
            AppKind::Productivity => "productivity",
            AppKind::Update => "update",
            AppKind::Ads => "ads",
            AppKind::Cdn => "cdn",
            AppKind::Ai => "ai",
            AppKind::Game => "game",
            AppKind::Shopping => "shopping",
            AppKind::News => "news",
            AppKind::Remote => "remote",
            AppKind::Vpn => "vpn",
            AppKind::Other => "other",
        }
    }
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`AppKind::as_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAppKind;

impl FromStr for AppKind {
    type Err = UnknownAppKind;

    fn from_str(s: &str) -> Result<AppKind, UnknownAppKind> {
        AppKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(UnknownAppKind)
    }
}

/// A recognised application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppInfo<'a> {
    pub name: &'a str,
    pub kind: AppKind,
}

/// Domain suffixes → applications; the longest matching suffix wins, so
/// `drive.google.com` can be storage while `google.com` is search.
pub struct AppCatalog {
    table: SuffixTable<u32>,
    apps: Vec<(Box<str>, AppKind)>,
}

impl AppCatalog {
    /// The catalogue shipped in `rules/data/apps.tsv`.
    pub fn builtin() -> AppCatalog {
        // The embedded file is checked by the `builtin_catalogue_parses` test.
        AppCatalog::from_tsv(BUILTIN_TSV).expect("rules/data/apps.tsv is valid")
    }

    /// Parses `domain suffix <TAB> application <TAB> kind` lines; blank lines and `#`
    /// comments are ignored. A malformed line, an unknown kind or a suffix listed twice is
    /// an error naming the line.
    pub fn from_tsv(text: &str) -> Result<AppCatalog, ListError> {
        let mut table = SuffixTableBuilder::default();
        let mut apps: Vec<(Box<str>, AppKind)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let bad = |reason: String| ListError::AppLine {
                line: n + 1,
                reason,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
            let [domain, name, kind] = cols[..] else {
                return Err(bad(format!(
                    "expected 3 tab-separated columns, found {}",
                    cols.len()
                )));
            };
            let mut key = [0u8; MAX_KEY_LEN];
            let len = suffix::normalize_domain(domain.as_bytes(), &mut key)
                .map_err(|_| bad(format!("`{domain}` is not a domain")))?;
            if name.is_empty() {
                return Err(bad("empty application name".into()));
            }
            let kind: AppKind = kind
                .parse()
                .map_err(|_| bad(format!("unknown kind `{kind}`")))?;
            let index = match apps.iter().position(|(n, k)| &**n == name && *k == kind) {
                Some(i) => i,
                None => {
                    apps.push((name.into(), kind));
                    apps.len() - 1
                }
            };
            let index = u32::try_from(index).map_err(|_| ListError::TooLarge)?;
            let new = table
                .insert(&key[..len], index, |_, _| {})
                .map_err(|_| ListError::TooLarge)?;
            if !new {
                return Err(bad(format!("`{domain}` is listed twice")));
            }
        }
        Ok(AppCatalog {
            table: table.build(),
            apps,
        })
    }

    /// The application of a host or TLS SNI (any case, trailing dot or `:port` allowed):
    /// the entry with the longest matching suffix.
    pub fn lookup(&self, host: &[u8]) -> Option<AppInfo<'_>> {
        let mut found = None;
        // Suffixes come shortest first: the last one seen is the longest.
        self.table
            .for_each_suffix(suffix::host_part(host), |_, &i| found = Some(i));
        let (name, kind) = &self.apps[found? as usize];
        Some(AppInfo { name, kind: *kind })
    }

    /// Number of domain suffixes.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// The distinct applications.
    pub fn apps(&self) -> impl Iterator<Item = AppInfo<'_>> {
        self.apps
            .iter()
            .map(|(name, kind)| AppInfo { name, kind: *kind })
    }
}

impl fmt::Debug for AppCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCatalog")
            .field("suffixes", &self.table.len())
            .field("apps", &self.apps.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(c: &AppCatalog, host: &str) -> Option<(String, &'static str)> {
        c.lookup(host.as_bytes())
            .map(|a| (a.name.to_string(), a.kind.as_str()))
    }

    #[test]
    fn builtin_catalogue_parses() {
        let c = AppCatalog::from_tsv(BUILTIN_TSV).expect("valid");
        assert!(c.len() >= 150, "only {} suffixes", c.len());
        for kind in AppKind::ALL {
            if kind != AppKind::Other {
                assert!(c.apps().any(|a| a.kind == kind), "no {kind} application");
            }
        }
    }

    #[test]
    fn longest_suffix_wins() {
        let c = AppCatalog::builtin();
        let video = Some(("YouTube".to_string(), "video"));
        assert_eq!(app(&c, "www.youtube.com"), video);
        assert_eq!(app(&c, "rr3---sn-abc.googlevideo.com"), video);
        assert_eq!(app(&c, "drive.google.com").map(|a| a.1), Some("storage"));
        assert_eq!(
            app(&c, "docs.google.com").map(|a| a.1),
            Some("productivity")
        );
        assert_eq!(app(&c, "www.google.com").map(|a| a.1), Some("search"));
        assert_eq!(
            app(&c, "teams.microsoft.com").map(|a| a.1),
            Some("messaging")
        );
        assert_eq!(app(&c, "chatgpt.com:443").map(|a| a.1), Some("ai"));
        assert_eq!(
            app(&c, "OBS.LINE-SCDN.NET.").map(|a| a.1),
            Some("messaging")
        );
        assert_eq!(app(&c, "item.rakuten.co.jp").map(|a| a.1), Some("shopping"));
        assert_eq!(app(&c, "notyoutube.com"), None);
        assert_eq!(app(&c, "example.jp"), None);
    }

    #[test]
    fn tsv_errors_name_the_line() {
        let err =
            AppCatalog::from_tsv("# c\na.com\tA\tvideo\nb.com\tB\tweird\n").expect_err("kind");
        assert!(matches!(err, ListError::AppLine { line: 3, .. }), "{err}");
        let err = AppCatalog::from_tsv("a.com\tA\tvideo\nA.com\tA\tvideo\n").expect_err("dup");
        assert!(err.to_string().contains("twice"), "{err}");
        assert!(AppCatalog::from_tsv("a.com video\n").is_err());
        let c = AppCatalog::from_tsv("a.com\tA\tvideo\nb.a.com\tB\tstorage\n").expect("ok");
        assert_eq!(app(&c, "x.b.a.com"), Some(("B".into(), "storage")));
        assert_eq!(app(&c, "x.a.com"), Some(("A".into(), "video")));
    }
}
