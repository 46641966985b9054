use super::*;

fn s(isn: u32) -> (Stream, StreamConfig, ReassemblyCounters) {
    let mut st = Stream::default();
    st.set_isn(isn);
    (st, StreamConfig::default(), ReassemblyCounters::default())
}

fn window(st: &Stream) -> Vec<u8> {
    st.window().map(|(b, _)| b.to_vec()).unwrap_or_default()
}

#[test]
fn in_order_and_out_of_order() {
    let (mut st, cfg, mut c) = s(1000);
    assert_eq!(st.add(1001, b"abc", &cfg, &mut c).new_bytes, 3);
    let o = st.add(1007, b"ghi", &cfg, &mut c);
    assert!(o.queued && o.new_bytes == 0);
    assert_eq!(st.add(1004, b"def", &cfg, &mut c).new_bytes, 6);
    assert_eq!(window(&st), b"abcdefghi");
}

#[test]
fn retransmission_and_overlap_first_wins() {
    let (mut st, cfg, mut c) = s(0);
    st.add(1, b"hello", &cfg, &mut c);
    let o = st.add(1, b"hello", &cfg, &mut c);
    assert!(o.retransmission && !o.overlap_different);
    let o = st.add(4, b"XXworld", &cfg, &mut c);
    assert!(o.overlap_different);
    assert_eq!(o.new_bytes, 5);
    assert_eq!(window(&st), b"helloworld");
}

#[test]
fn sequence_wraps() {
    let (mut st, cfg, mut c) = s(u32::MAX - 1);
    st.add(u32::MAX, b"ab", &cfg, &mut c);
    st.add(1, b"cd", &cfg, &mut c);
    assert_eq!(window(&st), b"abcd");
}

#[test]
fn gap_skipped_on_ack_and_flush() {
    let (mut st, cfg, mut c) = s(0);
    st.add(1, b"aa", &cfg, &mut c);
    st.consume();
    st.add(10, b"zz", &cfg, &mut c);
    let (gap, n) = st.acked(12, &cfg, &mut c);
    assert!(gap && n == 2);
    // retained bytes before the hole are not joined with data after it
    assert_eq!(window(&st), b"zz");
    st.add(20, b"qq", &cfg, &mut c);
    let (gap, n) = st.flush(&cfg, &mut c);
    assert!(gap && n == 2);
}

#[test]
fn depth_and_bounds() {
    let (mut st, _, mut c) = s(0);
    let cfg = StreamConfig {
        depth: 4,
        max_ooo_bytes: 4,
        max_ooo_segments: 2,
        inline: false,
    };
    assert_eq!(st.add(1, b"abcdef", &cfg, &mut c).new_bytes, 4);
    assert!(st.add(7, b"x", &cfg, &mut c).discarded);
    let (mut st, _, mut c) = s(0);
    st.add(10, b"abc", &cfg, &mut c);
    // queue full: the hole is given up and queued data released
    let o = st.add(20, b"defgh", &cfg, &mut c);
    assert!(o.gap);
    st.consume();
    for _ in 0..10 {
        st.consume();
    }
    assert!(st.memory() < 64 * 1024);
}

#[test]
fn retained_window_is_bounded() {
    let (mut st, cfg, mut c) = s(0);
    let chunk = vec![b'x'; 1000];
    let mut seq = 1u32;
    for _ in 0..100 {
        st.add(seq, &chunk, &cfg, &mut c);
        seq += 1000;
        let (w, new) = st.window().unwrap();
        assert_eq!(
            new,
            if seq == 1001 {
                0
            } else {
                (w.len() - 1000).min(RETAIN)
            },
            "seq {seq} len {} new {new}",
            w.len()
        );
        st.consume();
    }
    assert!(window(&st).is_empty());
}

fn inline(isn: u32) -> (Stream, StreamConfig, ReassemblyCounters) {
    let (st, mut cfg, c) = s(isn);
    cfg.inline = true;
    (st, cfg, c)
}

#[test]
fn inline_rejects_a_retransmission_with_different_bytes() {
    let (mut st, cfg, mut c) = inline(0);
    assert_eq!(st.add(1, b"GET /index", &cfg, &mut c).new_bytes, 10);
    st.consume();
    // same bytes again: an ordinary retransmission, accepted
    let o = st.add(1, b"GET /index", &cfg, &mut c);
    assert!(o.retransmission && !o.overlap_different && !o.rejected);
    // different bytes over accepted data, wholly old or with a new tail: rejected whole
    let o = st.add(1, b"GET /c2/be", &cfg, &mut c);
    assert!(o.overlap_different && o.rejected);
    let o = st.add(6, b"c2/beacon HTTP/1.1", &cfg, &mut c);
    assert!(o.overlap_different && o.rejected && o.new_bytes == 0);
    assert_eq!(st.delivered(), 10);
    assert_eq!(c.overlaps_rejected, 2);
    // the same tail after matching bytes is fine
    let o = st.add(6, b"index HTTP", &cfg, &mut c);
    assert!(!o.rejected && o.new_bytes == 5);
}

#[test]
fn inline_rejects_different_bytes_over_a_queued_segment() {
    let (mut st, cfg, mut c) = inline(0);
    st.add(1, b"G", &cfg, &mut c);
    st.consume();
    // hole at 2; a decoy is queued at 3 ...
    assert!(st.add(3, b"T /ok", &cfg, &mut c).queued);
    // ... a longer segment at the same place with other bytes (a receiver that keeps the
    // longer copy would see it): rejected
    let o = st.add(3, b"T /c2/beacon", &cfg, &mut c);
    assert!(o.overlap_different && o.rejected);
    // a segment filling the hole and running over the queued bytes differently: rejected
    let o = st.add(2, b"ET /c2", &cfg, &mut c);
    assert!(o.rejected);
    // the real continuation is accepted and the queued copy released
    let o = st.add(2, b"E", &cfg, &mut c);
    assert_eq!(o.new_bytes, 6);
    assert_eq!(window(&st), b"GET /ok");
}

#[test]
fn queued_segment_grows_when_resent_longer() {
    let (mut st, cfg, mut c) = inline(0);
    st.add(1, b"a", &cfg, &mut c);
    assert!(st.add(3, b"cd", &cfg, &mut c).queued);
    assert!(!st.add(3, b"cdef", &cfg, &mut c).rejected);
    assert_eq!(st.add(2, b"b", &cfg, &mut c).new_bytes, 5);
    assert_eq!(window(&st), b"abcdef");
}

#[test]
fn detect_mode_keeps_the_first_copy_and_flags_it() {
    let (mut st, cfg, mut c) = s(0);
    st.add(1, b"a", &cfg, &mut c);
    st.add(3, b"ok", &cfg, &mut c);
    let o = st.add(3, b"XY", &cfg, &mut c);
    assert!(o.overlap_different && !o.rejected);
    st.add(2, b"b", &cfg, &mut c);
    assert_eq!(window(&st), b"abok");
}
