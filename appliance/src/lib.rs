//! Mimamori appliance firmware. The folders follow the data path (SPEC §2):
//!
//! `capture` → `decode` → `flow` → `reassembly` → `app` → `classify` (URL categories,
//! applications, traffic record) and `file` (file verdicts) → `detect` → `events`,
//! chained per frame by `pipeline`; `replay` runs it over capture files; `bridge` runs it
//! inline (and `bridge::manage` carries out the cloud's commands and rule bundles);
//! `uplink` spools alerts, file verdicts and traffic records and sends them to the cloud;
//! `mgmt` is the appliance's own IP stack on the bridged segment (smoltcp) the uplink can
//! run over.

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
pub mod perms;
pub mod pipeline;
pub mod reassembly;
pub mod replay;
pub mod ssid;
pub mod uplink;
