//! [`SharedCategories`]: the current [`CategoryDb`], replaced atomically on reload.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::CategoryDb;

/// The category database in use. Workers take a snapshot ([`load`](Self::load) to keep it,
/// [`guard`](Self::guard) for one short lookup); a reload [`replace`](Self::replace)s it
/// without blocking them, and the old database is freed when the last snapshot drops.
pub struct SharedCategories {
    current: ArcSwap<CategoryDb>,
}

impl SharedCategories {
    pub fn new(db: CategoryDb) -> SharedCategories {
        SharedCategories {
            current: ArcSwap::from_pointee(db),
        }
    }

    /// A snapshot that stays valid across reloads (one reference-count increment).
    pub fn load(&self) -> Arc<CategoryDb> {
        self.current.load_full()
    }

    /// A cheaper, short-lived snapshot for a lookup or two; do not hold it across a
    /// blocking wait or store it.
    pub fn guard(&self) -> Guard<Arc<CategoryDb>> {
        self.current.load()
    }

    /// Installs `db` and returns the previous database.
    pub fn replace(&self, db: CategoryDb) -> Arc<CategoryDb> {
        self.current.swap(Arc::new(db))
    }
}

impl Default for SharedCategories {
    fn default() -> Self {
        SharedCategories::new(CategoryDb::empty())
    }
}

impl std::fmt::Debug for SharedCategories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedCategories")
            .field(&*self.current.load())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::lists::CategoryDbBuilder;

    #[test]
    fn snapshots_survive_a_replace() {
        let shared = SharedCategories::default();
        let before = shared.load();
        let mut b = CategoryDbBuilder::new();
        let id = b.add_category("gambling").expect("category");
        b.add_domains(id, b"casino.example\n", Path::new("t"))
            .expect("domains");
        let old = shared.replace(b.build());
        assert!(Arc::ptr_eq(&before, &old));
        assert!(before.lookup_host(b"casino.example").is_empty());
        assert!(!shared.load().lookup_host(b"casino.example").is_empty());
        assert!(!shared.guard().lookup_host(b"a.casino.example").is_empty());
    }
}
