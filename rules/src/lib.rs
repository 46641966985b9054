//! Suricata-compatible rules for Mimamori: parsing with precise errors (`parse`), address and
//! port groups (`addr`), and compilation into Hyperscan prefilters plus per-rule
//! verification programs (`compile`); URL categories and the application catalogue
//! (`lists`).

pub mod addr;
pub mod ast;
pub mod classification;
pub mod compile;
pub mod dataset;
pub mod digest;
pub mod lists;
pub mod parse;
pub mod transform;

pub use addr::Vars;
pub use ast::Rule;
pub use parse::{ErrorKind, LoadReport, ParseCtx, RuleError};
