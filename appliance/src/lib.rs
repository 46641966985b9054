//! Mimamori appliance firmware. The folders follow the data path (SPEC §2):
//!
//! `capture` → `decode` → `flow` → `reassembly` → `app` → `classify` (URL categories,
//! applications, traffic record) and `file` (file verdicts) → `detect` → `events`,
//! chained per frame by `pipeline`; `replay` runs it over capture files; `uplink` spools
//! alerts and sends them to the cloud.

pub mod app;
pub mod bridge;
pub mod capture;
pub mod classify;
pub mod decode;
pub mod detect;
pub mod events;
pub mod file;
pub mod flow;
pub mod mgmt;
pub mod pipeline;
pub mod reassembly;
pub mod replay;
pub mod ssid;
pub mod uplink;
