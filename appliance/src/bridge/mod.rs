//! The inline bridge (SPEC §3.1, §3.3): ports, MAC learning, steering frames to inspection
//! workers, live actions, host isolation and fail-open.
//!
//! ```text
//!  port rx thread (one per port)                 worker (cores − 1)            port
//!  AF_PACKET ─▶ learn src MAC ─▶ out ports ─▶ isolation ─▶ hash ─▶ shed ─▶ queue ─▶ pipeline ─▶ tx / inject
//!                                                         │        │ heaviest senders above the
//!                                                         │        │ high-water mark, full queue
//!                                                         │        └─▶ drop (counted `shed`, `shed_full`)
//!                                                         │ worker stalled or dead
//!                                                         └─▶ forward uninspected (fail-open)
//!                                                             or drop (fail_closed)
//! ```
//!
//! [`shed`]: load never makes traffic bypass inspection; only a stalled or dead worker does.
//!
//! [`engine`] builds what the workers inspect with from the configuration and the cloud's
//! changes; [`manage`] carries out the cloud's commands and rule bundles (a new engine is
//! swapped into the workers between batches) and spools detections for the uplink.

pub mod config;
pub mod control;
pub mod engine;
pub mod fdb;
pub mod inject;
pub mod isolate;
pub mod manage;
pub mod port;
pub mod run;
pub mod shed;
pub mod steer;
pub mod switch;

pub use config::{Config, Role};
pub use run::{Bridge, Engine};
