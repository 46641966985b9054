//! Cloud → appliance: acknowledgements and commands.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::common::{HostRef, Mode, Sha256};
use crate::bounded::{HostName, Name};
use crate::error::FrameError;
use crate::limits::MAX_ALLOW_RULES;
use crate::validate::{self, Validate};

/// Every event with `seq <= upto_seq` is durable in the cloud and may leave the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Highest acknowledged sequence number.
    pub upto_seq: u64,
}

/// A destination an isolated host may still reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AllowDest {
    /// Destination address.
    pub ip: IpAddr,
    /// Destination port; `None` allows every port.
    pub port: Option<u16>,
}

/// A false-positive exception: matching events are suppressed (SPEC §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Exception {
    /// A signature, everywhere.
    Signature {
        /// Generator id.
        gid: u32,
        /// Signature id.
        sid: u32,
    },
    /// A signature, for one internal host only.
    SignatureForHost {
        /// Generator id.
        gid: u32,
        /// Signature id.
        sid: u32,
        /// The host.
        host: HostRef,
    },
    /// Everything about one internal host.
    Host(HostRef),
    /// A domain and its subdomains.
    Domain(HostName),
    /// A file hash.
    FileHash(Sha256),
}

/// What a command asks the appliance to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandKind {
    /// Logically unplug a host: drop its traffic except to `allow`.
    IsolateHost {
        /// The host.
        host: HostRef,
        /// At most [`MAX_ALLOW_RULES`] destinations still allowed.
        allow: Vec<AllowDest>,
    },
    /// Undo `IsolateHost`.
    ReleaseHost {
        /// The host.
        host: HostRef,
    },
    /// Switch between prevent (IPS) and detect (IDS).
    SetMode(Mode),
    /// Add a false-positive exception.
    AddException(Exception),
    /// Remove a false-positive exception.
    RemoveException(Exception),
    /// Reboot (applies a downloaded firmware).
    Reboot,
    /// Erase configuration, keys and spool (contract end).
    Wipe,
    /// A new signed rule bundle can be downloaded.
    BundleAvailable {
        /// Bundle version.
        version: Name,
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the bundle file.
        sha256: Sha256,
    },
}

/// A command; the appliance answers with a [`CommandResult`](super::CommandResult) of the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Cloud-assigned id, unique per device.
    pub id: u64,
    /// What to do.
    pub cmd: CommandKind,
}

impl Validate for Exception {
    fn validate(&self) -> Result<(), FrameError> {
        match self {
            Exception::Domain(domain) => domain.check("command.exception.domain"),
            _ => Ok(()),
        }
    }
}

impl Validate for Command {
    fn validate(&self) -> Result<(), FrameError> {
        match &self.cmd {
            CommandKind::IsolateHost { allow, .. } => {
                validate::list(allow, MAX_ALLOW_RULES, "command.isolate_host.allow")
            }
            CommandKind::AddException(e) | CommandKind::RemoveException(e) => e.validate(),
            CommandKind::BundleAvailable { version, .. } => {
                version.check("command.bundle_available.version")
            }
            CommandKind::ReleaseHost { .. }
            | CommandKind::SetMode(_)
            | CommandKind::Reboot
            | CommandKind::Wipe => Ok(()),
        }
    }
}
