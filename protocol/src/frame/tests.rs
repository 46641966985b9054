//! Framing tests: round trips, split reads, limits, and broken input.

use super::*;
use crate::bounded::BoundedString;
use crate::messages::samples;
use crate::messages::{DownMsg, Event, Events, SeqEvent, UpMsg};

/// Frames `body` by hand, bypassing the encoder's validation.
fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len())
        .expect("small body")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(body);
    out
}

/// A postcard body encoded without validation, to test the decoder's own checks.
fn raw_up(msg: &UpMsg) -> Vec<u8> {
    raw_frame(&postcard::to_stdvec(msg).expect("serializable"))
}

fn batch(n: usize) -> Events {
    let template = samples::events().events.remove(0).event;
    let events = (0..n as u64)
        .map(|seq| SeqEvent {
            seq,
            event: template.clone(),
        })
        .collect();
    Events { events }
}

#[test]
fn test_round_trip_every_message() {
    for msg in samples::up() {
        let frame = encode_frame(&msg).expect("encodes");
        assert_eq!(decode_frame::<UpMsg>(&frame), Ok(Some((msg, frame.len()))));
    }
    for msg in samples::down() {
        let frame = encode_frame(&msg).expect("encodes");
        assert_eq!(
            decode_frame::<DownMsg>(&frame),
            Ok(Some((msg, frame.len())))
        );
    }
}

#[test]
fn test_decoder_byte_at_a_time() {
    let msgs = samples::up();
    let mut stream = Vec::new();
    for msg in &msgs {
        encode_into(msg, &mut stream).expect("encodes");
    }
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    for byte in &stream {
        decoder.push(std::slice::from_ref(byte)).expect("push");
        while let Some(msg) = decoder.next_frame::<UpMsg>().expect("valid frame") {
            got.push(msg);
        }
    }
    assert_eq!(got, msgs);
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn test_decoder_many_frames_in_one_push() {
    let msgs = samples::down();
    let mut stream = Vec::new();
    msgs.iter()
        .try_for_each(|m| encode_into(m, &mut stream))
        .expect("encodes");
    let mut decoder = FrameDecoder::new();
    decoder.push(&stream).expect("push");
    let mut got = Vec::new();
    while let Some(msg) = decoder.next_frame::<DownMsg>().expect("valid frame") {
        got.push(msg);
    }
    assert_eq!(got, msgs);
}

#[test]
fn test_impossible_len_refused_without_allocation() {
    let header = u32::MAX.to_be_bytes();
    let too_large = FrameError::TooLarge {
        len: u64::from(u32::MAX),
        max: MAX_FRAME_LEN,
    };
    assert_eq!(decode_frame::<UpMsg>(&header), Err(too_large.clone()));

    let mut decoder = FrameDecoder::new();
    decoder.push(&header[..3]).expect("prefix incomplete");
    assert_eq!(decoder.push(&header[3..]), Err(too_large.clone()));
    assert!(decoder.is_failed());
    assert_eq!(
        decoder.buf.capacity(),
        0,
        "buffer released, body never reserved"
    );
    // Failed for good.
    assert_eq!(decoder.push(b"x"), Err(too_large.clone()));
    assert_eq!(decoder.next_frame::<UpMsg>(), Err(too_large));

    let just_over = u32::try_from(MAX_FRAME_LEN + 1)
        .expect("fits")
        .to_be_bytes();
    assert!(matches!(
        decode_frame::<DownMsg>(&just_over),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn test_truncated_frame_is_incomplete() {
    let frame = encode_frame(&samples::up()[0]).expect("encodes");
    for cut in 0..frame.len() {
        assert_eq!(
            decode_frame::<UpMsg>(&frame[..cut]),
            Ok(None),
            "cut at {cut}"
        );
    }
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame[..frame.len() - 1]).expect("push");
    assert_eq!(decoder.next_frame::<UpMsg>(), Ok(None));
    assert_eq!(decoder.buffered(), frame.len() - 1);
}

#[test]
fn test_garbage_body_is_malformed() {
    let frame = raw_frame(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(
        decode_frame::<UpMsg>(&frame),
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        decode_frame::<UpMsg>(&raw_frame(&[])),
        Err(FrameError::Malformed(_))
    ));

    let mut decoder = FrameDecoder::new();
    decoder.push(&frame).expect("header is fine");
    assert!(matches!(
        decoder.next_frame::<DownMsg>(),
        Err(FrameError::Malformed(_))
    ));
    assert!(decoder.is_failed());
}

#[test]
fn test_trailing_bytes_are_malformed() {
    let mut body = postcard::to_stdvec(&samples::down()[0]).expect("serializable");
    body.push(0);
    let err = decode_frame::<DownMsg>(&raw_frame(&body));
    assert_eq!(
        err,
        Err(FrameError::Malformed(
            "1 trailing bytes after the DownMsg message".into()
        ))
    );
}

#[test]
fn test_batch_limit() {
    let full = UpMsg::Events(batch(MAX_EVENTS_PER_BATCH));
    let frame = encode_frame(&full).expect("a full batch fits");
    assert_eq!(decode_frame::<UpMsg>(&frame), Ok(Some((full, frame.len()))));

    let over = UpMsg::Events(batch(MAX_EVENTS_PER_BATCH + 1));
    let expected = FrameError::BatchTooLong {
        len: MAX_EVENTS_PER_BATCH + 1,
        max: MAX_EVENTS_PER_BATCH,
    };
    let mut out = vec![1, 2, 3];
    assert_eq!(encode_into(&over, &mut out), Err(expected.clone()));
    assert_eq!(out, [1, 2, 3], "output untouched on error");
    assert_eq!(decode_frame::<UpMsg>(&raw_up(&over)), Err(expected));
}

#[test]
fn test_unordered_seq_refused() {
    let mut events = samples::events();
    events.events.swap(0, 1);
    let err = decode_frame::<UpMsg>(&raw_up(&UpMsg::Events(events)));
    assert!(matches!(
        err,
        Err(FrameError::InvalidField {
            field: "events.seq",
            ..
        })
    ));
}

#[test]
fn test_long_field_refused_after_decode() {
    let mut events = samples::events();
    let Event::Alert(alert) = &mut events.events[0].event else {
        panic!("sample starts with an alert")
    };
    // Serde does not check bounds; build an over-long value the way a hostile peer would.
    let long: BoundedString<300> = BoundedString::truncated(&"a".repeat(300));
    let bytes = postcard::to_stdvec(&long).expect("serializable");
    alert.sni = Some(postcard::from_bytes(&bytes).expect("same encoding as String"));
    let msg = UpMsg::Events(events);
    let expected = FrameError::FieldTooLong {
        field: "alert.sni",
        len: 300,
        max: 253,
    };
    assert_eq!(decode_frame::<UpMsg>(&raw_up(&msg)), Err(expected.clone()));
    assert_eq!(encode_frame(&msg), Err(expected));
}

#[test]
fn test_oversized_message_not_encoded() {
    let mut events = batch(MAX_EVENTS_PER_BATCH);
    for e in &mut events.events {
        if let Event::Alert(alert) = &mut e.event {
            alert.url = Some(crate::messages::UrlRef::from_url(&format!(
                "h/{}",
                "p".repeat(4096)
            )));
        }
    }
    let err = encode_frame(&UpMsg::Events(events));
    assert!(
        matches!(
            err,
            Err(FrameError::TooLarge {
                max: MAX_FRAME_LEN,
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn test_buffer_cap() {
    let mut decoder = FrameDecoder::new();
    let header = u32::try_from(MAX_FRAME_LEN).expect("fits").to_be_bytes();
    decoder.push(&header).expect("max frame is allowed");
    decoder.push(&vec![0; MAX_FRAME_LEN]).expect("whole body");
    let err = decoder.push(&vec![0; MAX_BUFFERED]);
    assert!(matches!(err, Err(FrameError::BufferFull { .. })), "{err:?}");
}

#[test]
fn a_per_connection_frame_limit_refuses_larger_prefixes_and_can_be_raised() {
    let mut d = FrameDecoder::with_max_frame(4096);
    assert_eq!(d.max_frame(), 4096);
    // a small frame passes
    d.push(&raw_frame(&[0u8; 100])).expect("small frame");
    assert!(d.next_body().expect("decodes").is_some());
    // a prefix above the limit fails at once, before its body arrives
    let big = u32::try_from(4097).expect("small").to_be_bytes();
    assert!(matches!(
        d.push(&big),
        Err(FrameError::TooLarge { max: 4096, .. })
    ));
    // raised after authentication: the protocol's frames fit again
    let mut d = FrameDecoder::with_max_frame(4096);
    d.set_max_frame(usize::MAX);
    assert_eq!(d.max_frame(), MAX_FRAME_LEN);
    d.push(&raw_frame(&vec![0u8; 8192])).expect("large frame");
    assert!(d.next_body().expect("decodes").is_some());
    // never more buffered than two frames of the limit
    let mut d = FrameDecoder::with_max_frame(16);
    assert!(matches!(
        d.push(&[0u8; 100]),
        Err(FrameError::TooLarge { .. } | FrameError::BufferFull { .. })
    ));
}
