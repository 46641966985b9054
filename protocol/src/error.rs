//! Errors of the wire format and of the version handshake.
//!
//! One enum per concern, each variant named for the fault. Context such as the peer address or
//! the device id is added at the edge (uplink, ingest), not here.

use std::fmt;

use thiserror::Error;

use crate::messages::RefuseReason;

/// A frame could not be encoded or decoded.
///
/// Any error on a connection's decoder means the peer is broken or hostile: the caller closes
/// that connection (and only that one), see SPEC §4.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix (or an encoded message) exceeds the frame limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length announced by the prefix, or the encoded length.
        len: u64,
        /// The limit, [`MAX_FRAME_LEN`](crate::limits::MAX_FRAME_LEN).
        max: usize,
    },
    /// The frame body is not a valid postcard encoding of the expected message type.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// An `Events` batch holds more events than allowed.
    #[error("event batch of {len} events exceeds the limit of {max}")]
    BatchTooLong {
        /// Number of events in the batch.
        len: usize,
        /// The limit, [`MAX_EVENTS_PER_BATCH`](crate::limits::MAX_EVENTS_PER_BATCH).
        max: usize,
    },
    /// A list inside a message (counters, metadata, traffic entries, allow-list) is too long.
    #[error("`{field}` holds {len} entries, the limit is {max}")]
    ListTooLong {
        /// Dotted path of the offending field, e.g. `heartbeat.counters`.
        field: &'static str,
        /// Number of entries found.
        len: usize,
        /// The limit for this field.
        max: usize,
    },
    /// A string field is longer than its bound.
    #[error("`{field}` is {len} bytes long, the limit is {max}")]
    FieldTooLong {
        /// Dotted path of the offending field, e.g. `alert.url.path`.
        field: &'static str,
        /// Length found, in bytes.
        len: usize,
        /// The bound of this field.
        max: usize,
    },
    /// A field holds a value that is well-formed postcard but not allowed by the protocol.
    #[error("`{field}` is invalid: {reason}")]
    InvalidField {
        /// Dotted path of the offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The decoder holds more unconsumed bytes than allowed; the caller did not drain it.
    #[error(
        "decoder buffer holds {buffered} bytes, the limit is {max}; drain frames with next_frame"
    )]
    BufferFull {
        /// Bytes that would be buffered.
        buffered: usize,
        /// The limit, [`MAX_BUFFERED`](crate::limits::MAX_BUFFERED).
        max: usize,
    },
    /// The message could not be serialized (a bug in this crate, never caused by a peer).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// A string was longer than the bound of its [`BoundedString`](crate::BoundedString).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("string of {len} bytes exceeds the limit of {max} bytes")]
pub struct StringTooLong {
    /// Length of the rejected string, in bytes.
    pub len: usize,
    /// The bound.
    pub max: usize,
}

impl StringTooLong {
    /// Names the field this string was meant for, turning it into a [`FrameError`].
    pub fn in_field(self, field: &'static str) -> FrameError {
        FrameError::FieldTooLong {
            field,
            len: self.len,
            max: self.max,
        }
    }
}

/// Which end of the connection this build is; used to word upgrade advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The office appliance (firmware).
    Appliance,
    /// The cloud watch service.
    Cloud,
}

impl Role {
    /// The other end of the connection.
    pub fn peer(self) -> Role {
        match self {
            Role::Appliance => Role::Cloud,
            Role::Cloud => Role::Appliance,
        }
    }

    fn upgrade_advice(self) -> &'static str {
        match self {
            Role::Appliance => "upgrade the appliance firmware",
            Role::Cloud => "upgrade the cloud service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Appliance => "appliance",
            Role::Cloud => "cloud",
        })
    }
}

/// The version handshake failed; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The two ends share no protocol version.
    #[error(
        "peer speaks protocol version {theirs} (accepts {theirs_min}..={theirs}), this build \
         supports {min}..={ours}; {}",
        advice(*.local, *.ours, *.theirs)
    )]
    IncompatibleVersion {
        /// Which end this build is.
        local: Role,
        /// Newest version this build speaks ([`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)).
        ours: u16,
        /// Oldest version this build accepts ([`MIN_COMPATIBLE_VERSION`](crate::MIN_COMPATIBLE_VERSION)).
        min: u16,
        /// Newest version the peer speaks.
        theirs: u16,
        /// Oldest version the peer accepts.
        theirs_min: u16,
    },
    /// The peer's `Hello` is self-contradictory (e.g. `min_version > version`).
    #[error("invalid hello: {0}")]
    InvalidHello(&'static str),
    /// The cloud refused the connection.
    #[error("cloud refused the connection: {0}")]
    Refused(RefuseReason),
    /// The peer sent another message where the handshake expected `expected`.
    #[error("expected {expected} during the handshake, got another message")]
    UnexpectedMessage {
        /// The message the handshake was waiting for.
        expected: &'static str,
    },
    /// The handshake frame itself was broken.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Upgrade advice: the end with the older version is the one to upgrade.
fn advice(local: Role, ours: u16, theirs: u16) -> &'static str {
    if theirs > ours {
        local.upgrade_advice()
    } else {
        local.peer().upgrade_advice()
    }
}

impl HandshakeError {
    /// The reason the cloud sends in `DownMsg::Refused` for this error, if it is one the
    /// appliance should be told about.
    pub fn refuse_reason(&self) -> Option<RefuseReason> {
        match self {
            HandshakeError::IncompatibleVersion { ours, min, .. } => {
                Some(RefuseReason::IncompatibleVersion {
                    min: *min,
                    max: *ours,
                })
            }
            HandshakeError::InvalidHello(_) | HandshakeError::Frame(_) => {
                Some(RefuseReason::MalformedHello)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn incompatible_message_names_versions_and_advice() {
        let err = HandshakeError::IncompatibleVersion {
            local: Role::Appliance,
            ours: 1,
            min: 1,
            theirs: 7,
            theirs_min: 7,
        };
        assert_eq!(
            err.to_string(),
            "peer speaks protocol version 7 (accepts 7..=7), this build supports 1..=1; \
             upgrade the appliance firmware"
        );
        let err = HandshakeError::IncompatibleVersion {
            local: Role::Appliance,
            ours: 3,
            min: 2,
            theirs: 1,
            theirs_min: 1,
        };
        assert!(
            err.to_string().ends_with("upgrade the cloud service"),
            "{err}"
        );
    }

    #[test]
    fn field_names_appear_in_messages() {
        let err = StringTooLong { len: 300, max: 253 }.in_field("alert.sni");
        assert_eq!(
            err.to_string(),
            "`alert.sni` is 300 bytes long, the limit is 253"
        );
    }
}
