//! Fuzz the appliance <-> cloud framing: arbitrary bytes from a peer, read in arbitrary pieces.
//!
//! Checks, for both directions (`UpMsg`, `DownMsg`):
//! * no panic, whatever the bytes;
//! * the streaming `FrameDecoder` and the stateless `decode_frame` agree frame by frame;
//! * every accepted message re-encodes, and decodes back to an equal message;
//! * the handshake helpers never panic on a first frame.
//!
//! The first input byte chooses the size of the pieces pushed into the decoder.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use mimamori_protocol::{
    DownMsg, FrameDecoder, Message, UpMsg, decode_frame, encode_frame, handshake,
};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    check::<UpMsg>(stream, piece);
    check::<DownMsg>(stream, piece);
    let _ = handshake::read_hello(stream);
});

fn check<T: Message + PartialEq + Debug>(stream: &[u8], piece: usize) {
    let streamed = streaming::<T>(stream, piece);
    let stateless = stateless::<T>(stream);
    assert_eq!(
        streamed, stateless,
        "streaming and stateless decoders disagree"
    );
    for msg in &streamed {
        round_trip(msg);
    }
}

/// Messages decoded by pushing `stream` in pieces, up to the first error.
fn streaming<T: Message>(stream: &[u8], piece: usize) -> Vec<T> {
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(piece) {
        if decoder.push(chunk).is_err() {
            return out;
        }
        loop {
            match decoder.next_frame::<T>() {
                Ok(Some(msg)) => out.push(msg),
                Ok(None) => break,
                Err(_) => return out,
            }
        }
    }
    out
}

/// Messages decoded by `decode_frame` on the whole input, up to the first error.
fn stateless<T: Message>(mut stream: &[u8]) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(Some((msg, consumed))) = decode_frame::<T>(stream) {
        out.push(msg);
        stream = &stream[consumed..];
    }
    out
}

fn round_trip<T: Message + PartialEq + Debug>(msg: &T) {
    let frame = encode_frame(msg).expect("an accepted message re-encodes");
    match decode_frame::<T>(&frame) {
        Ok(Some((again, consumed))) => {
            assert_eq!(consumed, frame.len());
            assert_eq!(&again, msg);
        }
        other => panic!("re-encoded frame does not decode: {other:?}"),
    }
}
