//! Operators: the admin HTTP API (`api`) and its command-line client (`cli`).

pub mod api;
pub mod cli;
