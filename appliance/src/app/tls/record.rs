//! Record framing and handshake-message reassembly for one direction.

use super::{MAX_PENDING, TlsChanges, TlsCounters, TlsInfo, cert, hello};

/// Record header: content type, version (2), length (2).
const RECORD_HEADER: usize = 5;
/// Handshake message header: type, length (3).
const HS_HEADER: usize = 4;
/// SSLv2 record header (2-byte form, high bit set).
const SSLV2_HEADER: usize = 2;

const CT_CHANGE_CIPHER_SPEC: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;

/// What is known of the record at the head of a buffer.
enum Frame {
    /// Its header is not complete yet.
    Need,
    /// Its total length, header included.
    Len(usize),
    /// Not a TLS (or leading SSLv2) record: framing is lost.
    Bad,
}

fn frame(started: bool, buf: &[u8]) -> Frame {
    let Some(&first) = buf.first() else {
        return Frame::Need;
    };
    if !started && first & 0x80 != 0 {
        return match buf.get(1) {
            Some(&lo) => {
                Frame::Len(SSLV2_HEADER + usize::from(u16::from_be_bytes([first & 0x7f, lo])))
            }
            None => Frame::Need,
        };
    }
    if !(CT_CHANGE_CIPHER_SPEC..=CT_HEARTBEAT).contains(&first)
        || buf.get(1).is_some_and(|&major| major != 3)
    {
        return Frame::Bad;
    }
    match buf.get(3..RECORD_HEADER) {
        Some(len) => Frame::Len(RECORD_HEADER + usize::from(u16::from_be_bytes([len[0], len[1]]))),
        None => Frame::Need,
    }
}

/// Where parsed messages go: the flow's info, counters and change flags.
pub(super) struct Sink<'a> {
    pub info: &'a mut TlsInfo,
    pub counters: &'a mut TlsCounters,
    pub to_server: bool,
    pub changes: TlsChanges,
}

/// Framing state of one direction.
#[derive(Debug, Default)]
pub(super) struct Direction {
    /// Bytes of an incomplete record (header included).
    rec: Vec<u8>,
    /// Bytes of an incomplete handshake message (header included).
    hs: Vec<u8>,
    /// Whether the first record has been framed (SSLv2 is only accepted there).
    started: bool,
    pub after_ccs: bool,
    pub gave_up: bool,
}

impl Direction {
    pub fn pending(&self) -> usize {
        self.rec.len() + self.hs.len()
    }

    pub fn feed(&mut self, mut data: &[u8], sink: &mut Sink) {
        while !data.is_empty() && !self.gave_up {
            if self.after_ccs {
                sink.counters.bytes_after_ccs += data.len() as u64;
                return;
            }
            // Fast path: a whole record at the head of the input needs no copy.
            if self.rec.is_empty() {
                match frame(self.started, data) {
                    Frame::Len(n) if data.len() >= n => {
                        self.record(&data[..n], sink);
                        data = &data[n..];
                        continue;
                    }
                    Frame::Bad => return self.give_up(sink),
                    _ => {}
                }
            }
            let want = match frame(self.started, &self.rec) {
                Frame::Len(n) => n,
                Frame::Need => self.rec.len() + 1,
                Frame::Bad => return self.give_up(sink),
            };
            let take = want.saturating_sub(self.rec.len()).min(data.len());
            if self.rec.len() + take + self.hs.len() > MAX_PENDING {
                return self.give_up(sink);
            }
            self.rec.extend_from_slice(&data[..take]);
            data = &data[take..];
            if let Frame::Len(n) = frame(self.started, &self.rec)
                && self.rec.len() >= n
            {
                let rec = std::mem::take(&mut self.rec);
                self.record(&rec, sink);
                if !self.gave_up {
                    self.rec = rec;
                    self.rec.clear();
                }
            }
        }
    }

    fn give_up(&mut self, sink: &mut Sink) {
        if !self.gave_up {
            self.gave_up = true;
            sink.counters.gave_up += 1;
        }
        self.rec = Vec::new();
        self.hs = Vec::new();
    }

    /// One complete record.
    fn record(&mut self, rec: &[u8], sink: &mut Sink) {
        sink.counters.records += 1;
        let sslv2 = !self.started && rec[0] & 0x80 != 0;
        self.started = true;
        if sslv2 {
            sink.counters.sslv2_records += 1;
            hello::sslv2_client_hello(&rec[SSLV2_HEADER..], sink);
            return;
        }
        let body = &rec[RECORD_HEADER..];
        match rec[0] {
            CT_CHANGE_CIPHER_SPEC => self.after_ccs = true,
            CT_HANDSHAKE => self.handshake(body, sink),
            CT_APPLICATION_DATA => sink.counters.app_data_records += 1,
            CT_ALERT | CT_HEARTBEAT => {}
            _ => {}
        }
    }

    /// Handshake record body: complete messages are handled, a partial one is kept.
    fn handshake(&mut self, body: &[u8], sink: &mut Sink) {
        if self.hs.is_empty() {
            let used = self.messages(body, sink);
            if !self.gave_up {
                self.hs.extend_from_slice(&body[used..]);
            }
            return;
        }
        if self.hs.len() + body.len() > MAX_PENDING {
            return self.give_up(sink);
        }
        self.hs.extend_from_slice(body);
        let hs = std::mem::take(&mut self.hs);
        let used = self.messages(&hs, sink);
        if !self.gave_up {
            self.hs = hs;
            self.hs.drain(..used);
        }
    }

    /// Handle the complete messages at the head of `buf`; returns the bytes used.
    fn messages(&mut self, buf: &[u8], sink: &mut Sink) -> usize {
        let mut used = 0;
        while let Some(head) = buf.get(used..used + HS_HEADER) {
            let len = usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
            if HS_HEADER + len > MAX_PENDING {
                self.give_up(sink);
                return used;
            }
            let Some(body) = buf.get(used + HS_HEADER..used + HS_HEADER + len) else {
                break;
            };
            sink.counters.handshake_msgs += 1;
            message(head[0], body, sink);
            used += HS_HEADER + len;
        }
        used
    }
}

/// One complete handshake message. Only the first of each kind, in the direction that
/// sends it, is decoded.
fn message(typ: u8, body: &[u8], sink: &mut Sink) {
    match (typ, sink.to_server) {
        (HS_CLIENT_HELLO, true) if sink.info.client_random.is_none() => {
            hello::client_hello(body, sink)
        }
        (HS_SERVER_HELLO, false) if sink.info.server_random.is_none() => {
            hello::server_hello(body, sink)
        }
        (HS_CERTIFICATE, false) if sink.info.chain_len == 0 => cert::certificate(body, sink),
        _ => {}
    }
}
