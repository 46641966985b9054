//! The messages of SPEC §4, one enum per direction.
//!
//! | direction | first frame | then |
//! |---|---|---|
//! | appliance → cloud ([`UpMsg`]) | `Hello` | `Heartbeat`, `Events`, `BundleStatus`, `CommandResult`, `BundleFetch` (v2) |
//! | cloud → appliance ([`DownMsg`]) | `HelloAck` or `Refused` | `Ack`, `Command`, `BundleChunk` (v2) |
//!
//! Variant order is part of the wire format (postcard encodes the variant index): append new
//! variants at the end and bump [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).

mod activation;
mod alert;
mod command;
mod common;
mod event;
mod hello;
mod status;
mod url;

#[cfg(test)]
pub(crate) mod samples;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use activation::{ACTIVATION_DEVICE, Activate, Activated, MAX_PEM_LEN, Pem};
pub use alert::{Alert, Detection, Direction, FlowRef, MetaPair, SCORING_METADATA_KEYS, Signature};
pub use command::{Ack, AllowDest, Command, CommandKind, Exception};
pub use common::{
    Action, DeviceId, HostRef, InternalHost, IpProto, Mac, Mode, Sha256, UnixMs, UnixSecs,
};
pub use event::{Event, Events, FileVerdict, SeqEvent, TrafficEntry, TrafficSummary, Transfer};
pub use hello::{Hello, HelloAck, RefuseReason, Refused};
pub use status::{
    BundleChunk, BundleFetch, BundleState, BundleStatus, CommandResult, Counter, Heartbeat,
};
pub use url::UrlRef;

use crate::error::FrameError;
use crate::validate::Validate;

/// Appliance → cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpMsg {
    /// First frame of every connection. Must stay variant 0.
    Hello(Hello),
    /// Liveness and versions, every 60 s.
    Heartbeat(Heartbeat),
    /// A batch of spooled events.
    Events(Events),
    /// Outcome of a rule-bundle installation.
    BundleStatus(BundleStatus),
    /// Outcome of a command.
    CommandResult(CommandResult),
    /// Redeem an activation code (only on a connection without a client certificate).
    Activate(Activate),
    /// Ask for part of an announced rule bundle (version 2).
    BundleFetch(BundleFetch),
}

/// Cloud → appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownMsg {
    /// Handshake accepted. Must stay variant 0.
    HelloAck(HelloAck),
    /// Handshake refused; the connection closes. Must stay variant 1.
    Refused(Refused),
    /// Events up to a sequence number are durable.
    Ack(Ack),
    /// Something for the appliance to do.
    Command(Command),
    /// Activation succeeded: the device certificate.
    Activated(Activated),
    /// Part of a rule bundle, the answer to `BundleFetch` (version 2).
    BundleChunk(BundleChunk),
}

impl Validate for UpMsg {
    fn validate(&self) -> Result<(), FrameError> {
        match self {
            UpMsg::Hello(m) => m.validate(),
            UpMsg::Heartbeat(m) => m.validate(),
            UpMsg::Events(m) => m.validate(),
            UpMsg::BundleStatus(m) => m.validate(),
            UpMsg::CommandResult(m) => m.validate(),
            UpMsg::Activate(m) => m.validate(),
            UpMsg::BundleFetch(m) => m.validate(),
        }
    }
}

impl Validate for DownMsg {
    fn validate(&self) -> Result<(), FrameError> {
        match self {
            DownMsg::HelloAck(_) | DownMsg::Ack(_) => Ok(()),
            DownMsg::Refused(m) => m.reason.validate(),
            DownMsg::Command(m) => m.validate(),
            DownMsg::Activated(m) => m.validate(),
            DownMsg::BundleChunk(m) => m.validate(),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::UpMsg {}
    impl Sealed for super::DownMsg {}
}

/// A top-level message that travels in a frame: [`UpMsg`] or [`DownMsg`].
pub trait Message: Serialize + DeserializeOwned + Validate + sealed::Sealed {
    /// Name of the message type, for error messages and logs.
    const NAME: &'static str;
}

impl Message for UpMsg {
    const NAME: &'static str = "UpMsg";
}

impl Message for DownMsg {
    const NAME: &'static str = "DownMsg";
}
