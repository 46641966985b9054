//! Framing: a 4-byte big-endian body length, then the postcard body.
//!
//! ```text
//! +----------------+---------------------------+
//! | len: u32 (BE)  | postcard(UpMsg | DownMsg)  |
//! +----------------+---------------------------+
//!   HEADER_LEN        len <= MAX_FRAME_LEN
//! ```
//!
//! Sans-IO: the caller reads bytes from its TLS stream and [`FrameDecoder::push`]es them, then
//! drains [`FrameDecoder::next_frame`] until it returns `Ok(None)` (need more bytes). An error
//! means the peer is broken: close the connection. As in mini-redis, "incomplete" (`Ok(None)`)
//! and "invalid" (`Err`) are kept apart.

#[cfg(test)]
mod tests;

pub use crate::limits::{HEADER_LEN, MAX_BUFFERED, MAX_EVENTS_PER_BATCH, MAX_FRAME_LEN};

use crate::error::FrameError;
use crate::messages::Message;

/// Encodes `msg` as one frame (prefix and body) into a new buffer.
///
/// Fails if the message breaks a limit (the peer would refuse it) or its body would exceed
/// [`MAX_FRAME_LEN`]; split the batch and retry.
pub fn encode_frame<T: Message>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Appends `msg` as one frame to `out`. On error `out` is left as it was.
pub fn encode_into<T: Message>(msg: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    msg.validate()?;
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(e) = postcard::to_extend(msg, Sink(out)) {
        out.truncate(start);
        return Err(FrameError::Encode(e.to_string()));
    }
    let len = out.len() - start - HEADER_LEN;
    let prefix = match u32::try_from(len) {
        Ok(prefix) if len <= MAX_FRAME_LEN => prefix,
        _ => {
            out.truncate(start);
            return Err(FrameError::TooLarge {
                len: len as u64,
                max: MAX_FRAME_LEN,
            });
        }
    };
    out[start..start + HEADER_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(())
}

/// Decodes the first frame of `buf`.
///
/// Returns `Ok(None)` if `buf` does not hold a whole frame yet, `Ok(Some((msg, consumed)))`
/// with the number of bytes the frame took, or an error for an invalid frame. An oversized
/// length prefix is refused as soon as the prefix is complete.
pub fn decode_frame<T: Message>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    match split_frame(buf, MAX_FRAME_LEN)? {
        Some((body, consumed)) => Ok(Some((decode_body(body)?, consumed))),
        None => Ok(None),
    }
}

/// Decodes and validates one frame body (without the prefix).
///
/// Trailing bytes after the message are refused, so one byte sequence has one meaning.
pub fn decode_body<T: Message>(body: &[u8]) -> Result<T, FrameError> {
    let (msg, rest) = postcard::take_from_bytes::<T>(body)
        .map_err(|e| FrameError::Malformed(format!("{} body: {e}", T::NAME)))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes after the {} message",
            rest.len(),
            T::NAME
        )));
    }
    msg.validate()?;
    Ok(msg)
}

/// Splits off the first frame: `Ok(Some((body, consumed)))`, `Ok(None)` if incomplete.
fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = body_len_max(*header, max)?;
    let end = HEADER_LEN + len;
    Ok(buf.get(HEADER_LEN..end).map(|body| (body, end)))
}

/// Reads and checks the length prefix against `max` (at most [`MAX_FRAME_LEN`]).
fn body_len_max(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(FrameError::TooLarge {
            len: u64::from(len),
            max,
        }),
    }
}

/// Lets postcard append to a borrowed `Vec`.
struct Sink<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Sink<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Incremental decoder for one connection's byte stream.
///
/// Buffers at most [`MAX_BUFFERED`] unconsumed bytes and never allocates according to a length
/// prefix. After the first error it stays failed and returns that error forever.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    failed: Option<FrameError>,
    /// A smaller frame limit than [`MAX_FRAME_LEN`] for this connection (`None`: the
    /// protocol's limit), e.g. before the peer is authenticated.
    max_frame: Option<usize>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty decoder accepting frames of at most `max` body bytes (capped at
    /// [`MAX_FRAME_LEN`]); it buffers at most two such frames.
    pub fn with_max_frame(max: usize) -> Self {
        let mut d = Self::default();
        d.set_max_frame(max);
        d
    }

    /// Changes this connection's frame limit (capped at [`MAX_FRAME_LEN`]), e.g. raises it
    /// once the peer is authenticated. Applies to frames not yet started.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = Some(max.min(MAX_FRAME_LEN));
    }

    /// This connection's frame limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame.unwrap_or(MAX_FRAME_LEN)
    }

    fn max_buffered(&self) -> usize {
        match self.max_frame {
            Some(m) => 2 * (HEADER_LEN + m),
            None => MAX_BUFFERED,
        }
    }

    /// Appends bytes read from the connection.
    ///
    /// Fails early if the pending frame's length prefix is over the limit, or if more than
    /// [`MAX_BUFFERED`] bytes would be held (drain frames after each push).
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        self.check_failed()?;
        self.compact();
        let buffered = self.buf.len() + data.len();
        let max_buffered = self.max_buffered();
        if buffered > max_buffered {
            return Err(self.fail(FrameError::BufferFull {
                buffered,
                max: max_buffered,
            }));
        }
        self.buf.extend_from_slice(data);
        if let Some(header) = self.buf.first_chunk::<HEADER_LEN>() {
            body_len_max(*header, self.max_frame()).map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// The next whole frame body, `Ok(None)` if more bytes are needed.
    ///
    /// For callers that need the raw body (e.g. [`crate::handshake::read_hello`]); most use
    /// [`next_frame`](Self::next_frame).
    pub fn next_body(&mut self) -> Result<Option<&[u8]>, FrameError> {
        self.check_failed()?;
        match split_frame(&self.buf[self.pos..], self.max_frame()) {
            Ok(Some((_, consumed))) => {
                let start = self.pos + HEADER_LEN;
                self.pos += consumed;
                Ok(Some(&self.buf[start..self.pos]))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    pub fn next_frame<T: Message>(&mut self) -> Result<Option<T>, FrameError> {
        let decoded = match self.next_body()? {
            Some(body) => decode_body::<T>(body),
            None => return Ok(None),
        };
        decoded.map(Some).map_err(|e| self.fail(e))
    }

    /// Number of bytes pushed but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether the decoder has failed; the connection should be closed.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    fn check_failed(&self) -> Result<(), FrameError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Records the first error, frees the buffer and returns the error.
    fn fail(&mut self, e: FrameError) -> FrameError {
        self.buf = Vec::new();
        self.pos = 0;
        self.failed = Some(e.clone());
        e
    }

    /// Drops consumed bytes from the front of the buffer.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}
