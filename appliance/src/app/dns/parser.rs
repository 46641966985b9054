//! The wire-format parser. Every read is checked; every loop is capped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

/// Label length byte: the top two bits select the label type.
const LABEL_TYPE_MASK: u8 = 0xc0;
const LABEL_POINTER: u8 = 0xc0;
const POINTER_OFFSET_MASK: u16 = 0x3fff;

/// A read position in a whole message (pointers need the whole message).
struct Cursor<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.msg.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Parse one DNS message (a UDP payload, or one message out of [`DnsTcp`]).
pub fn parse_message(buf: &[u8]) -> Result<DnsMessage, DnsError> {
    let mut c = Cursor { msg: buf, pos: 0 };
    let header = parse_header(&mut c).ok_or(DnsError::ShortHeader)?;
    let mut m = DnsMessage {
        header,
        ..DnsMessage::default()
    };
    let qd = usize::from(header.qdcount);
    for _ in 0..qd {
        let q = parse_query(&mut c)?;
        if m.queries.len() < MAX_RECORDS {
            m.queries.push(q);
        } else {
            m.capped = true;
        }
    }
    let sections = [
        (Section::Answer, header.ancount),
        (Section::Authority, header.nscount),
        (Section::Additional, header.arcount),
    ];
    for (section, count) in sections {
        let mut records = Vec::new();
        for _ in 0..count {
            let r = parse_record(&mut c, section)?;
            if records.len() < MAX_RECORDS {
                records.push(r);
            } else {
                m.capped = true;
            }
        }
        match section {
            Section::Answer => m.answers = records,
            Section::Authority => m.authorities = records,
            _ => m.additionals = records,
        }
    }
    Ok(m)
}

fn parse_header(c: &mut Cursor) -> Option<Header> {
    let id = c.u16()?;
    let flags = c.u16()?;
    Some(Header {
        id,
        qr: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0f) as u8,
        aa: flags & 0x0400 != 0,
        tc: flags & 0x0200 != 0,
        rd: flags & 0x0100 != 0,
        ra: flags & 0x0080 != 0,
        z: ((flags >> 4) & 0x07) as u8,
        rcode: (flags & 0x000f) as u8,
        flags,
        qdcount: c.u16()?,
        ancount: c.u16()?,
        nscount: c.u16()?,
        arcount: c.u16()?,
    })
}

fn parse_query(c: &mut Cursor) -> Result<Query, DnsError> {
    let name = parse_name(c, Section::Question)?;
    let trunc = DnsError::Truncated(Section::Question);
    Ok(Query {
        name,
        rrtype: c.u16().ok_or(trunc)?,
        rrclass: c.u16().ok_or(trunc)?,
    })
}

fn parse_record(c: &mut Cursor, section: Section) -> Result<Record, DnsError> {
    let trunc = DnsError::Truncated(section);
    let name = parse_name(c, section)?;
    let rrtype = c.u16().ok_or(trunc)?;
    let rrclass = c.u16().ok_or(trunc)?;
    let ttl = c.u32().ok_or(trunc)?;
    let len = usize::from(c.u16().ok_or(trunc)?);
    let start = c.pos;
    let data = c.take(len).ok_or(trunc)?;
    let rdata = parse_rdata(c.msg, start, data, rrtype, section)?;
    Ok(Record {
        name,
        rrtype,
        rrclass,
        ttl,
        rdata,
    })
}

/// Record data `data`, which starts at `start` in `msg` (names in it may point back).
fn parse_rdata(
    msg: &[u8],
    start: usize,
    data: &[u8],
    rrtype: u16,
    section: Section,
) -> Result<Rdata, DnsError> {
    let bad = DnsError::BadRdata(section);
    // A sub-cursor over the message that must not read past the record data.
    let end = start + data.len();
    let mut c = Cursor {
        msg: &msg[..end],
        pos: start,
    };
    let rdata = match rrtype {
        TYPE_A => {
            let b: [u8; 4] = data.try_into().map_err(|_| bad)?;
            Rdata::Addr(IpAddr::V4(Ipv4Addr::from(b)))
        }
        TYPE_AAAA => {
            let b: [u8; 16] = data.try_into().map_err(|_| bad)?;
            Rdata::Addr(IpAddr::V6(Ipv6Addr::from(b)))
        }
        TYPE_CNAME => Rdata::Cname(parse_name_in(&mut c, msg, section)?),
        TYPE_NS => Rdata::Ns(parse_name_in(&mut c, msg, section)?),
        TYPE_PTR => Rdata::Ptr(parse_name_in(&mut c, msg, section)?),
        TYPE_MX => {
            let preference = c.u16().ok_or(bad)?;
            Rdata::Mx {
                preference,
                exchange: parse_name_in(&mut c, msg, section)?,
            }
        }
        TYPE_SOA => {
            let mname = parse_name_in(&mut c, msg, section)?;
            let rname = parse_name_in(&mut c, msg, section)?;
            Rdata::Soa(Soa {
                mname,
                rname,
                serial: c.u32().ok_or(bad)?,
                refresh: c.u32().ok_or(bad)?,
                retry: c.u32().ok_or(bad)?,
                expire: c.u32().ok_or(bad)?,
                minimum: c.u32().ok_or(bad)?,
            })
        }
        TYPE_SRV => Rdata::Srv(Srv {
            priority: c.u16().ok_or(bad)?,
            weight: c.u16().ok_or(bad)?,
            port: c.u16().ok_or(bad)?,
            target: parse_name_in(&mut c, msg, section)?,
        }),
        TYPE_TXT => {
            let mut strings = Vec::new();
            while c.pos < end {
                let n = usize::from(c.u8().ok_or(bad)?);
                strings.push(c.take(n).ok_or(bad)?.to_vec());
            }
            Rdata::Txt(strings)
        }
        _ => Rdata::Other(data.to_vec()),
    };
    Ok(rdata)
}

/// A name inside record data: its labels must lie within the record (`c.msg` ends
/// there), but pointers may reach anywhere in the whole message `msg`.
fn parse_name_in(c: &mut Cursor, msg: &[u8], section: Section) -> Result<Vec<u8>, DnsError> {
    let (name, next) = read_name(msg, c.pos, c.msg.len(), section)?;
    c.pos = next;
    Ok(name)
}

fn parse_name(c: &mut Cursor, section: Section) -> Result<Vec<u8>, DnsError> {
    let (name, next) = read_name(c.msg, c.pos, c.msg.len(), section)?;
    c.pos = next;
    Ok(name)
}

/// Read the name at `pos` in `msg`, whose in-place part must end before `limit`.
/// Returns the name (labels joined with '.') and the position after it in place.
fn read_name(
    msg: &[u8],
    mut pos: usize,
    mut limit: usize,
    section: Section,
) -> Result<(Vec<u8>, usize), DnsError> {
    let trunc = DnsError::Truncated(section);
    let mut name = Vec::new();
    let mut wire_len = 0usize;
    let mut jumps = 0usize;
    let mut after: Option<usize> = None;
    loop {
        let len = *msg.get(pos).filter(|_| pos < limit).ok_or(trunc)?;
        match len & LABEL_TYPE_MASK {
            0 if len == 0 => {
                return Ok((name, after.unwrap_or(pos + 1)));
            }
            0 => {
                let n = usize::from(len);
                wire_len += n + 1;
                if wire_len + 1 > MAX_NAME_WIRE {
                    return Err(DnsError::NameTooLong);
                }
                let label = msg
                    .get(pos + 1..pos + 1 + n)
                    .filter(|_| pos + 1 + n <= limit)
                    .ok_or(trunc)?;
                if !name.is_empty() {
                    name.push(b'.');
                }
                name.extend_from_slice(label);
                pos += 1 + n;
            }
            LABEL_POINTER => {
                let lo = *msg.get(pos + 1).filter(|_| pos + 1 < limit).ok_or(trunc)?;
                let target = usize::from(u16::from_be_bytes([len, lo]) & POINTER_OFFSET_MASK);
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(DnsError::TooManyJumps);
                }
                if target >= msg.len() {
                    return Err(DnsError::BadPointer(target));
                }
                after.get_or_insert(pos + 2);
                pos = target;
                limit = msg.len();
            }
            _ => return Err(DnsError::BadLabelType(len)),
        }
    }
}
