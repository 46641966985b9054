//! Mimamori appliance ↔ cloud wire format: messages, framing, versioning, limits.
//!
//! This crate does no I/O ("sans-IO", as rustls and smoltcp): the appliance uplink and the cloud
//! ingest read and write bytes on their TLS streams and use this crate to turn them into
//! messages and back.
//!
//! * [`messages`]: [`UpMsg`] (appliance → cloud) and [`DownMsg`] (cloud → appliance).
//! * [`frame`]: 4-byte big-endian length prefix + postcard body; [`FrameDecoder`] for streams.
//! * [`handshake`]: `Hello` version negotiation.
//! * [`limits`]: every cap a peer could otherwise abuse; enforced on encode and decode.
//!
//! Privacy (SPEC §3.4) is a property of the types: no message has a field that could carry
//! payload bytes, file contents or mail bodies, and URLs lose their query string on
//! construction ([`UrlRef`]).
//!
//! ```
//! use mimamori_protocol::{DownMsg, FrameDecoder, encode_frame, messages::{Ack}};
//!
//! let bytes = encode_frame(&DownMsg::Ack(Ack { upto_seq: 42 }))?;
//! let mut decoder = FrameDecoder::new();
//! decoder.push(&bytes[..3])?;
//! assert_eq!(decoder.next_frame::<DownMsg>()?, None); // incomplete: read more
//! decoder.push(&bytes[3..])?;
//! assert_eq!(decoder.next_frame::<DownMsg>()?, Some(DownMsg::Ack(Ack { upto_seq: 42 })));
//! # Ok::<(), mimamori_protocol::FrameError>(())
//! ```

pub mod bounded;
pub mod bundle;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod limits;
pub mod messages;
mod validate;

/// Newest protocol version this build speaks.
/// Version 2 added `BundleFetch` / `BundleChunk` (rule bundles over the uplink).
pub const PROTOCOL_VERSION: u16 = 2;

/// Oldest protocol version this build still accepts from a peer.
pub const MIN_COMPATIBLE_VERSION: u16 = 1;

pub use bounded::BoundedString;
pub use error::{FrameError, HandshakeError, Role, StringTooLong};
pub use frame::{FrameDecoder, decode_body, decode_frame, encode_frame, encode_into};
pub use handshake::{check_hello, check_reply, read_hello};
pub use messages::{DownMsg, Message, UpMsg, UrlRef};
pub use validate::Validate;
