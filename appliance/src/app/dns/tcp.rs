//! DNS over TCP: messages prefixed with a 2-byte length (RFC 1035 4.2.2), reassembled
//! from arbitrarily split stream pieces with a bounded buffer.

/// Length prefix size.
const PREFIX: usize = 2;

/// Framing state of one TCP direction. The buffer never holds more than one message
/// and its prefix (at most 65,537 bytes).
#[derive(Debug, Default)]
pub struct DnsTcp {
    buf: Vec<u8>,
    /// Complete messages delivered.
    pub messages: u64,
    /// Zero-length messages skipped.
    pub empty: u64,
}

impl DnsTcp {
    pub fn new() -> DnsTcp {
        DnsTcp::default()
    }

    /// Feed in-order stream bytes; `out` is called once per complete message (without
    /// its length prefix).
    pub fn feed(&mut self, mut data: &[u8], out: &mut impl FnMut(&[u8])) {
        while !data.is_empty() {
            if self.buf.is_empty() {
                // Whole messages straight from the input, no copy.
                match message_len(data) {
                    Some(n) if data.len() >= PREFIX + n => {
                        self.deliver(&data[PREFIX..PREFIX + n], out);
                        data = &data[PREFIX + n..];
                        continue;
                    }
                    _ => {}
                }
            }
            let want = message_len(&self.buf).map_or(PREFIX, |n| PREFIX + n);
            let take = (want - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if let Some(n) = message_len(&self.buf)
                && self.buf.len() == PREFIX + n
            {
                let buf = std::mem::take(&mut self.buf);
                self.deliver(&buf[PREFIX..], out);
                self.buf = buf;
                self.buf.clear();
            }
        }
    }

    /// Bytes of an incomplete message held.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn deliver(&mut self, msg: &[u8], out: &mut impl FnMut(&[u8])) {
        if msg.is_empty() {
            self.empty += 1;
        } else {
            self.messages += 1;
            out(msg);
        }
    }
}

fn message_len(buf: &[u8]) -> Option<usize> {
    buf.get(..PREFIX)
        .map(|p| usize::from(u16::from_be_bytes([p[0], p[1]])))
}
