//! Frames over an async stream: writing [`UpMsg`]s and reading [`DownMsg`]s, with the
//! protocol's limits (the decoder refuses oversized or malformed frames).

use std::io;

use protocol::{DownMsg, FrameDecoder, FrameError, UpMsg, encode_frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes read from the socket at a time (the cloud sends small messages; frames larger than
/// this are assembled by the decoder).
const READ_CHUNK: usize = 4 * 1024;

/// The connection to the cloud failed; the caller reconnects (or gives up, for activation).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// TCP connect failed (cloud down, wrong address, no route).
    #[error("cannot connect to {addr}: {cause}")]
    Connect {
        /// The cloud address.
        addr: String,
        /// The socket error.
        cause: io::Error,
    },
    /// The TLS handshake failed (untrusted or wrong server certificate, refused client
    /// certificate, no TLS 1.3).
    #[error("TLS with {addr} failed: {cause}")]
    Tls {
        /// The cloud address.
        addr: String,
        /// The TLS error.
        cause: io::Error,
    },
    /// The cloud did not answer in time.
    #[error("{addr}: no progress for {secs} s {what}")]
    Timeout {
        /// The cloud address.
        addr: String,
        /// What was being waited for.
        what: &'static str,
        /// The time limit.
        secs: u64,
    },
    /// Reading or writing failed after the connection was up.
    #[error("connection to {addr} lost: {cause}")]
    Io {
        /// The cloud address.
        addr: String,
        /// The socket or TLS error.
        cause: io::Error,
    },
    /// The cloud closed the connection.
    #[error("{addr} closed the connection")]
    Closed {
        /// The cloud address.
        addr: String,
    },
    /// The cloud sent a frame this build cannot accept.
    #[error("bad frame from {addr}: {cause}")]
    Frame {
        /// The cloud address.
        addr: String,
        /// The frame fault.
        cause: FrameError,
    },
    /// A message could not be encoded (a limit was broken; a bug of the sender).
    #[error("cannot encode {what}: {cause}")]
    Encode {
        /// The message kind.
        what: &'static str,
        /// The broken limit.
        cause: FrameError,
    },
}

/// Encodes `msg` and writes it as one frame, flushing the TLS stream.
pub async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &UpMsg,
    addr: &str,
) -> Result<(), ConnError> {
    let frame = encode_frame(msg).map_err(|cause| ConnError::Encode {
        what: up_name(msg),
        cause,
    })?;
    send_frame(w, &frame, addr).await
}

/// Writes an encoded frame and flushes.
pub async fn send_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &[u8],
    addr: &str,
) -> Result<(), ConnError> {
    let io_err = |cause| ConnError::Io {
        addr: addr.to_string(),
        cause,
    };
    w.write_all(frame).await.map_err(io_err)?;
    w.flush().await.map_err(io_err)
}

/// The TLS alert the cloud sent, if `e` is one (e.g. `BadCertificate`,
/// `CertificateRevoked`: the cloud refused the client certificate).
pub fn tls_alert(e: &io::Error) -> Option<rustls::AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// Name of a message kind, for logs and errors.
pub fn up_name(msg: &UpMsg) -> &'static str {
    match msg {
        UpMsg::Hello(_) => "Hello",
        UpMsg::Heartbeat(_) => "Heartbeat",
        UpMsg::Events(_) => "Events",
        UpMsg::BundleStatus(_) => "BundleStatus",
        UpMsg::CommandResult(_) => "CommandResult",
        UpMsg::Activate(_) => "Activate",
        UpMsg::BundleFetch(_) => "BundleFetch",
    }
}

/// Reads [`DownMsg`] frames from one connection.
pub struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
    buf: Box<[u8]>,
    addr: String,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads from `inner`; `addr` names the peer in errors.
    pub fn new(inner: R, addr: &str) -> Self {
        FrameReader {
            inner,
            decoder: FrameDecoder::new(),
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            addr: addr.to_string(),
        }
    }

    /// The next message; [`ConnError::Closed`] at the end of the stream.
    pub async fn next(&mut self) -> Result<DownMsg, ConnError> {
        loop {
            let frame_err = |cause| ConnError::Frame {
                addr: self.addr.clone(),
                cause,
            };
            if let Some(msg) = self.decoder.next_frame::<DownMsg>().map_err(frame_err)? {
                return Ok(msg);
            }
            let n = self
                .inner
                .read(&mut self.buf)
                .await
                .map_err(|cause| ConnError::Io {
                    addr: self.addr.clone(),
                    cause,
                })?;
            if n == 0 {
                return Err(ConnError::Closed {
                    addr: self.addr.clone(),
                });
            }
            let frame_err = |cause| ConnError::Frame {
                addr: self.addr.clone(),
                cause,
            };
            self.decoder.push(&self.buf[..n]).map_err(frame_err)?;
        }
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}
