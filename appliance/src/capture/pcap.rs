//! Reading pcap and pcapng captures (pcap-parser), frame by frame, with clear errors for
//! files that are not captures or are cut short.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a pcap or pcapng capture")]
    NotACapture { path: String },
    #[error("{path}: malformed capture after {frames} frames: {reason}")]
    Malformed {
        path: String,
        frames: u64,
        reason: String,
    },
}

/// One captured frame.
pub struct Frame<'a> {
    /// Capture time in microseconds since the Unix epoch.
    pub ts_us: u64,
    pub linktype: u32,
    pub data: &'a [u8],
    /// Length on the wire.
    pub wire_len: u32,
}

/// Buffer size of the reader; the largest frame must fit.
const READ_BUF: usize = 1 << 20;

/// What reading a capture ended with.
#[derive(Debug, Default, Clone)]
pub struct ReadSummary {
    pub frames: u64,
    /// The file ended inside a record (a cut-short capture); frames before it were read.
    pub truncated: bool,
    /// Reading stopped at a damaged record (bad length, bad block); frames before it were
    /// read. Holds the reason.
    pub damaged: Option<String>,
}

/// Read every frame of a capture, calling `on_frame` for each. Returns how it ended.
pub fn for_each_frame(
    path: &Path,
    mut on_frame: impl FnMut(&Frame<'_>),
) -> Result<ReadSummary, CaptureError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| CaptureError::Open {
        path: shown.clone(),
        source: e,
    })?;
    read_frames(file, &shown, &mut on_frame)
}

/// Read frames from any reader (tests, fuzzing).
pub fn read_frames<R: Read + Send>(
    r: R,
    shown: &str,
    on_frame: &mut dyn FnMut(&Frame<'_>),
) -> Result<ReadSummary, CaptureError> {
    let mut reader = match create_reader(READ_BUF, r) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Ok(ReadSummary::default()),
        Err(_) => {
            return Err(CaptureError::NotACapture {
                path: shown.to_string(),
            });
        }
    };
    let mut sum = ReadSummary::default();
    let mut legacy_link = 1u32;
    let mut legacy_nanos = false;
    // pcapng interfaces: (linktype, ts resolution (units per second), ts offset)
    let mut ifaces: Vec<(u32, u64, i64)> = Vec::new();
    let mut refilled = false;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                handle_one(
                    block,
                    &mut ifaces,
                    &mut legacy_link,
                    &mut legacy_nanos,
                    &mut sum,
                    on_frame,
                );
                reader.consume(offset);
                refilled = false;
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) if refilled => {
                // a refill brought nothing: the file ends inside a record
                sum.truncated = true;
                break;
            }
            Err(PcapError::Incomplete(_)) => {
                reader.refill().map_err(|e| CaptureError::Malformed {
                    path: shown.to_string(),
                    frames: sum.frames,
                    reason: format!("read error: {e:?}"),
                })?;
                refilled = true;
            }
            Err(PcapError::UnexpectedEof) => {
                sum.truncated = true;
                break;
            }
            Err(PcapError::BufferTooSmall) => {
                sum.damaged = Some(format!(
                    "record {} is larger than {} bytes (bad length field)",
                    sum.frames + 1,
                    READ_BUF
                ));
                break;
            }
            Err(e) => {
                sum.damaged = Some(format!("record {} is malformed: {e:?}", sum.frames + 1));
                break;
            }
        }
    }
    Ok(sum)
}

fn handle_one(
    block: PcapBlockOwned<'_>,
    ifaces: &mut Vec<(u32, u64, i64)>,
    legacy_link: &mut u32,
    legacy_nanos: &mut bool,
    sum: &mut ReadSummary,
    on_frame: &mut dyn FnMut(&Frame<'_>),
) {
    match block {
        PcapBlockOwned::LegacyHeader(h) => {
            *legacy_link = h.network.0 as u32;
            *legacy_nanos = h.is_nanosecond_precision();
        }
        PcapBlockOwned::Legacy(b) => {
            let sub = if *legacy_nanos {
                b.ts_usec as u64 / 1000
            } else {
                b.ts_usec as u64
            };
            sum.frames += 1;
            on_frame(&Frame {
                ts_us: b.ts_sec as u64 * 1_000_000 + sub,
                linktype: *legacy_link,
                data: b.data,
                wire_len: b.origlen,
            });
        }
        PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
        PcapBlockOwned::NG(Block::InterfaceDescription(i)) => {
            ifaces.push((
                i.linktype.0 as u32,
                i.ts_resolution().unwrap_or(1_000_000),
                i.ts_offset(),
            ));
        }
        PcapBlockOwned::NG(Block::EnhancedPacket(e)) => {
            let (link, res, off) = ifaces
                .get(e.if_id as usize)
                .copied()
                .unwrap_or((1, 1_000_000, 0));
            let ticks = ((e.ts_high as u64) << 32) | e.ts_low as u64;
            let res = res.max(1);
            let us = (ticks / res).saturating_add_signed(off) * 1_000_000
                + (ticks % res) * 1_000_000 / res;
            let data = &e.data[..(e.caplen as usize).min(e.data.len())];
            sum.frames += 1;
            on_frame(&Frame {
                ts_us: us,
                linktype: link,
                data,
                wire_len: e.origlen,
            });
        }
        PcapBlockOwned::NG(Block::SimplePacket(s)) => {
            let link = ifaces.first().map_or(1, |i| i.0);
            sum.frames += 1;
            on_frame(&Frame {
                ts_us: 0,
                linktype: link,
                data: s.data,
                wire_len: s.origlen,
            });
        }
        PcapBlockOwned::NG(_) => {}
    }
}
