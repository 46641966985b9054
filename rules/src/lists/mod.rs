//! Host and URL lists: URL categories from SquidGuard/UT1 folders ([`CategoryDb`]), the
//! action per category ([`Policy`]) and a catalogue of well-known applications by domain
//! ([`AppCatalog`]).
//!
//! Both lookups share one suffix-matching core (`suffix`): all names in one byte arena,
//! an open-addressing table keyed by a 64-bit hash, and a lookup that hashes a host once
//! from right to left and probes at every label boundary, without allocating.
//!
//! Lists are built once and then only read; [`SharedCategories`] swaps a freshly loaded
//! database in atomically while workers keep using the snapshot they hold.

mod apps;
mod category;
mod catset;
mod load;
mod policy;
mod shared;
mod suffix;
#[cfg(test)]
mod ut1_tests;

use std::path::PathBuf;

pub use apps::{AppCatalog, AppInfo, AppKind};
pub use category::{
    CategoryCounts, CategoryDb, CategoryDbBuilder, LoadReport, MAX_SKIPPED_SAMPLES, SkippedLine,
};
pub use catset::{CatIter, CatSet, MAX_CATEGORIES};
pub use load::{MAX_FILE_BYTES, MAX_URL_PATH, SkipReason};
pub use policy::{Action, Policy, PolicyConfig};
pub use shared::SharedCategories;

/// Why a list could not be loaded. Bad lines inside a list are not errors: they are
/// counted in the [`LoadReport`] and skipped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    #[error("category folder {path} does not exist")]
    MissingDir { path: PathBuf },
    #[error("{path} is not a folder")]
    NotADirectory { path: PathBuf },
    #[error("cannot read folder {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes, more than the {max}-byte limit for a list file")]
    FileTooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("category folder name {path} is not UTF-8")]
    BadCategoryName { path: PathBuf },
    #[error("{path} has more than {max} categories")]
    TooManyCategoriesIn { path: PathBuf, max: usize },
    #[error("more than {max} categories")]
    TooManyCategories { max: usize },
    #[error("category `{name}` is defined twice")]
    DuplicateCategory { name: String },
    #[error("no category with id {id}")]
    UnknownCategoryId { id: u8 },
    #[error("the lists exceed 4 GiB of names or URLs")]
    TooLarge,
    #[error("application catalogue, line {line}: {reason}")]
    AppLine { line: usize, reason: String },
}
