//! The customer portal (SPEC §5.6).

pub mod auth;
