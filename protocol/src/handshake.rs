//! The version handshake (SPEC §4).
//!
//! ```text
//! appliance                                   cloud
//!   UpMsg::Hello{version, min_version, …}  ──▶  read_hello / check_hello
//!                                         ◀──  DownMsg::HelloAck{version} | Refused{reason}
//!   check_reply
//! ```
//!
//! Each end speaks `MIN_COMPATIBLE_VERSION..=PROTOCOL_VERSION`; the negotiated version is the
//! newest one both speak. When the ranges do not meet, both ends report the same clear
//! [`HandshakeError::IncompatibleVersion`], and the cloud tells the appliance its range in
//! [`RefuseReason::IncompatibleVersion`] before closing.

use crate::error::{HandshakeError, Role};
use crate::frame::decode_body;
use crate::messages::{DownMsg, Hello, RefuseReason, UpMsg};
use crate::{MIN_COMPATIBLE_VERSION, PROTOCOL_VERSION};

/// Negotiates with a peer speaking `theirs_min..=theirs`, as `local`.
fn negotiate(local: Role, theirs_min: u16, theirs: u16) -> Result<u16, HandshakeError> {
    if theirs_min > theirs {
        return Err(HandshakeError::InvalidHello("min_version is above version"));
    }
    let negotiated = theirs.min(PROTOCOL_VERSION);
    if negotiated < theirs_min.max(MIN_COMPATIBLE_VERSION) {
        return Err(HandshakeError::IncompatibleVersion {
            local,
            ours: PROTOCOL_VERSION,
            min: MIN_COMPATIBLE_VERSION,
            theirs,
            theirs_min,
        });
    }
    Ok(negotiated)
}

/// Cloud side: checks an appliance's `Hello` and returns the version to answer in `HelloAck`.
///
/// On error, answer with [`HandshakeError::refuse_reason`] and close.
pub fn check_hello(hello: &Hello) -> Result<u16, HandshakeError> {
    negotiate(Role::Cloud, hello.min_version, hello.version)
}

/// Cloud side: decodes the first frame body of a connection and checks it.
///
/// If the body is not a `Hello` this build understands, the version fields (which every
/// version keeps at the front, see [`messages`](crate::messages)) are still read, so that a
/// newer appliance gets an `IncompatibleVersion` rather than a decoding error.
pub fn read_hello(body: &[u8]) -> Result<(Hello, u16), HandshakeError> {
    match decode_body::<UpMsg>(body) {
        Ok(UpMsg::Hello(hello)) => {
            let version = check_hello(&hello)?;
            Ok((hello, version))
        }
        Ok(_) => Err(HandshakeError::UnexpectedMessage { expected: "Hello" }),
        Err(e) => match peek_hello_versions(body) {
            Some((version, min_version)) => {
                negotiate(Role::Cloud, min_version, version)?;
                Err(e.into())
            }
            None => Err(e.into()),
        },
    }
}

/// Reads `(version, min_version)` from the front of an encoded `UpMsg::Hello`, ignoring the
/// rest. `None` if the body does not start like a `Hello`.
pub fn peek_hello_versions(body: &[u8]) -> Option<(u16, u16)> {
    #[derive(serde::Deserialize)]
    enum Probe {
        Hello { version: u16, min_version: u16 },
    }
    match postcard::take_from_bytes::<Probe>(body) {
        Ok((
            Probe::Hello {
                version,
                min_version,
            },
            _,
        )) => Some((version, min_version)),
        Err(_) => None,
    }
}

/// Appliance side: checks the cloud's answer to our `Hello`; returns the negotiated version.
pub fn check_reply(reply: &DownMsg) -> Result<u16, HandshakeError> {
    match reply {
        DownMsg::HelloAck(ack) => negotiate(Role::Appliance, ack.version, ack.version),
        DownMsg::Refused(refused) => match refused.reason {
            RefuseReason::IncompatibleVersion { min, max } => {
                negotiate(Role::Appliance, min, max)?;
                Err(HandshakeError::Refused(refused.reason.clone()))
            }
            _ => Err(HandshakeError::Refused(refused.reason.clone())),
        },
        DownMsg::Ack(_) | DownMsg::Command(_) | DownMsg::Activated(_) | DownMsg::BundleChunk(_) => {
            Err(HandshakeError::UnexpectedMessage {
                expected: "HelloAck or Refused",
            })
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::frame::encode_frame;
    use crate::messages::{Ack, HelloAck, Refused, samples};

    fn hello(min_version: u16, version: u16) -> Hello {
        Hello {
            min_version,
            version,
            ..samples::hello()
        }
    }

    #[test]
    fn same_version_is_accepted() {
        assert_eq!(check_hello(&samples::hello()), Ok(PROTOCOL_VERSION));
        let reply = DownMsg::HelloAck(HelloAck {
            version: PROTOCOL_VERSION,
        });
        assert_eq!(check_reply(&reply), Ok(PROTOCOL_VERSION));
    }

    #[test]
    fn newer_peer_that_accepts_us_negotiates_down() {
        assert_eq!(
            check_hello(&hello(MIN_COMPATIBLE_VERSION, PROTOCOL_VERSION + 3)),
            Ok(PROTOCOL_VERSION)
        );
    }

    #[test]
    fn newer_and_older_peers_are_refused() {
        let newer = check_hello(&hello(PROTOCOL_VERSION + 6, PROTOCOL_VERSION + 6));
        assert!(
            matches!(
                newer,
                Err(HandshakeError::IncompatibleVersion {
                    local: Role::Cloud,
                    ..
                })
            ),
            "{newer:?}"
        );
        let older = check_hello(&hello(0, MIN_COMPATIBLE_VERSION - 1));
        let err = older.expect_err("older refused");
        assert!(
            err.to_string().contains("upgrade the appliance firmware"),
            "{err}"
        );
        assert_eq!(
            err.refuse_reason(),
            Some(RefuseReason::IncompatibleVersion {
                min: MIN_COMPATIBLE_VERSION,
                max: PROTOCOL_VERSION
            })
        );
        assert!(matches!(
            check_hello(&hello(3, 2)),
            Err(HandshakeError::InvalidHello(_))
        ));
    }

    #[test]
    fn appliance_refuses_incompatible_ack_and_reports_refusal() {
        let ack = DownMsg::HelloAck(HelloAck {
            version: PROTOCOL_VERSION + 6,
        });
        let err = check_reply(&ack).expect_err("too new");
        assert!(err.to_string().contains(&format!(
            "peer speaks protocol version {}",
            PROTOCOL_VERSION + 6
        )));
        assert!(
            err.to_string().ends_with("upgrade the appliance firmware"),
            "{err}"
        );

        let refused = DownMsg::Refused(Refused {
            reason: RefuseReason::IncompatibleVersion { min: 7, max: 7 },
        });
        assert!(matches!(
            check_reply(&refused),
            Err(HandshakeError::IncompatibleVersion { theirs: 7, .. })
        ));
        let refused = DownMsg::Refused(Refused {
            reason: RefuseReason::ContractEnded,
        });
        assert_eq!(
            check_reply(&refused),
            Err(HandshakeError::Refused(RefuseReason::ContractEnded))
        );
        let ack = DownMsg::Ack(Ack { upto_seq: 1 });
        assert!(matches!(
            check_reply(&ack),
            Err(HandshakeError::UnexpectedMessage { .. })
        ));
    }

    #[test]
    fn read_hello_reports_version_of_unreadable_future_hello() {
        let frame = encode_frame(&UpMsg::Hello(samples::hello())).expect("encodes");
        let body = &frame[crate::frame::HEADER_LEN..];
        assert_eq!(read_hello(body), Ok((samples::hello(), PROTOCOL_VERSION)));
        assert_eq!(
            peek_hello_versions(body),
            Some((PROTOCOL_VERSION, MIN_COMPATIBLE_VERSION))
        );

        // A future Hello: variant 0, version 9 (min 9), then fields this build cannot parse.
        let future = [0, 9, 9, 0xff, 0xff, 0xff];
        let err = read_hello(&future).expect_err("refused");
        assert!(
            matches!(
                err,
                HandshakeError::IncompatibleVersion {
                    theirs: 9,
                    theirs_min: 9,
                    ..
                }
            ),
            "{err:?}"
        );
        // Garbage stays a frame error.
        assert!(matches!(read_hello(&[7, 7]), Err(HandshakeError::Frame(_))));
        let heartbeat = encode_frame(&samples::up()[1]).expect("encodes");
        assert_eq!(
            read_hello(&heartbeat[crate::frame::HEADER_LEN..]),
            Err(HandshakeError::UnexpectedMessage { expected: "Hello" })
        );
    }
}
