//! The first message of each direction: `Hello` from the appliance, `HelloAck` or `Refused`
//! from the cloud.
//!
//! Stability contract, so that builds of any two versions can still tell each other why they
//! disagree: `Hello` stays variant 0 of [`UpMsg`](super::UpMsg) and starts with `version`,
//! `min_version`; `HelloAck` and `Refused` stay variants 0 and 1 of [`DownMsg`](super::DownMsg);
//! [`RefuseReason::IncompatibleVersion`] stays variant 0.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::common::DeviceId;
use crate::bounded::{Name, Text};
use crate::error::FrameError;
use crate::validate::Validate;
use crate::{MIN_COMPATIBLE_VERSION, PROTOCOL_VERSION};

/// Appliance → cloud, first frame on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Newest protocol version the appliance speaks.
    pub version: u16,
    /// Oldest protocol version the appliance accepts.
    pub min_version: u16,
    /// Device identity; the cloud checks it against the client certificate.
    pub device: DeviceId,
    /// Firmware version string, e.g. `1.4.2`.
    pub firmware: Name,
    /// Version of the rule bundle in use, e.g. `2025-06-01.3`.
    pub rules_version: Name,
}

impl Hello {
    /// A `Hello` announcing this build's version range.
    pub fn new(device: DeviceId, firmware: Name, rules_version: Name) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            min_version: MIN_COMPATIBLE_VERSION,
            device,
            firmware,
            rules_version,
        }
    }
}

impl Validate for Hello {
    fn validate(&self) -> Result<(), FrameError> {
        self.device.check("hello.device")?;
        self.firmware.check("hello.firmware")?;
        self.rules_version.check("hello.rules_version")
    }
}

/// Cloud → appliance: the connection is accepted and speaks `version` from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAck {
    /// The negotiated protocol version.
    pub version: u16,
}

/// Cloud → appliance: the connection is refused; the cloud closes it after this frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Why.
    pub reason: RefuseReason,
}

/// Why the cloud refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefuseReason {
    /// The cloud accepts only protocol versions `min..=max`.
    IncompatibleVersion {
        /// Oldest version the cloud accepts.
        min: u16,
        /// Newest version the cloud speaks.
        max: u16,
    },
    /// The first frame was not a valid `Hello`.
    MalformedHello,
    /// The device is not known or not yet activated.
    UnknownDevice,
    /// The device id in the `Hello` differs from the one in the client certificate.
    DeviceMismatch,
    /// The device's contract has ended.
    ContractEnded,
    /// The cloud is overloaded; retry later with backoff.
    Busy,
    /// Any other reason, as text for the appliance log.
    Other(Text),
}

impl Validate for RefuseReason {
    fn validate(&self) -> Result<(), FrameError> {
        match self {
            RefuseReason::Other(text) => text.check("refused.reason"),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::IncompatibleVersion { min, max } => {
                write!(f, "the cloud accepts protocol versions {min}..={max} only")
            }
            RefuseReason::MalformedHello => f.write_str("the hello was malformed"),
            RefuseReason::UnknownDevice => f.write_str("the device is unknown or not activated"),
            RefuseReason::DeviceMismatch => {
                f.write_str("the device id does not match the client certificate")
            }
            RefuseReason::ContractEnded => f.write_str("the device's contract has ended"),
            RefuseReason::Busy => f.write_str("the cloud is busy, retry later"),
            RefuseReason::Other(text) => f.write_str(text),
        }
    }
}
