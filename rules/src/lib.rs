//! Suricata-compatible rules for Mimamori: parsing with precise errors (`parse`), address and
//! port groups (`addr`), and compilation into Hyperscan prefilters plus per-rule
//! verification programs (`compile`).

pub mod addr;
pub mod ast;
pub mod classification;
pub mod compile;
pub mod parse;

pub use addr::Vars;
pub use ast::Rule;
pub use parse::{ErrorKind, LoadReport, ParseCtx, RuleError};
