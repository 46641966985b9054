//! Events leaving the worker: EVE-JSON lines in Suricata's shape (`eve`). The uplink to
//! the cloud will consume the same records.

pub mod eve;
pub mod meta;
