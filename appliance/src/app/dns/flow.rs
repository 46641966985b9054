//! DNS messages of a flow as transactions for detection: one per message (UDP datagram or
//! length-prefixed TCP message), with `dns.query` (questions of queries), the per-section
//! name buffers, and `dns.opcode` / `dns.rcode`.

use rules::ast::{AppNum, Buffer};

use super::{DnsMessage, DnsTcp, Rdata, Record, parse_message, rcode_name, rrtype_name};
use crate::app::Tx;
use crate::events::meta::{DnsAnswer, DnsMeta, text};

/// Messages kept for inspection and logging per flow.
const MAX_TXS: usize = 32;
/// The reserved bit of the header flags.
const DNS_FLAG_Z: u16 = 0x0040;

#[derive(Debug, Default, Clone, Copy)]
pub struct DnsCounters {
    pub messages: u64,
    pub parse_errors: u64,
}

/// A flow's DNS state.
#[derive(Debug, Default)]
pub struct DnsFlow {
    /// Over TCP: messages are framed by a 2-byte length.
    tcp: Option<[DnsTcp; 2]>,
    pub txs: Vec<Tx>,
    /// The parsed message of each transaction (same order), for the event.
    msgs: Vec<DnsMessage>,
    next_id: u64,
    pub counters: DnsCounters,
}

impl DnsFlow {
    pub fn new(tcp: bool) -> DnsFlow {
        DnsFlow {
            tcp: tcp.then(Default::default),
            ..Default::default()
        }
    }

    pub fn feed(&mut self, to_server: bool, data: &[u8]) {
        // the framing state is moved out while its messages are parsed (no copies)
        match self.tcp.take() {
            None => self.message(data),
            Some(mut t) => {
                t[usize::from(!to_server)].feed(data, &mut |m: &[u8]| self.message(m));
                self.tcp = Some(t);
            }
        }
    }

    fn message(&mut self, data: &[u8]) {
        let msg = match parse_message(data) {
            Ok(m) => m,
            Err(_) => {
                self.counters.parse_errors += 1;
                return;
            }
        };
        self.counters.messages += 1;
        self.next_id += 1;
        let mut tx = Tx::new(self.next_id);
        let resp = msg.header.qr;
        for q in &msg.queries {
            if !resp {
                tx.add(Buffer::DnsQuery, q.name.clone());
            }
            tx.add(Buffer::DnsQueriesRrname, q.name.clone());
            if resp {
                tx.add(Buffer::DnsResponseRrname, q.name.clone());
            }
        }
        for (sec, b) in [
            (&msg.answers, Buffer::DnsAnswersRrname),
            (&msg.authorities, Buffer::DnsAuthoritiesRrname),
            (&msg.additionals, Buffer::DnsAdditionalsRrname),
        ] {
            for r in sec {
                tx.add(b, r.name.clone());
                if resp {
                    tx.add(Buffer::DnsResponseRrname, r.name.clone());
                    if let Some(n) = rdata_name(r) {
                        tx.add(Buffer::DnsResponseRrname, n.to_vec());
                    }
                }
            }
        }
        // the reserved Z bit must be zero (Suricata's `dns.z_flag_set`)
        if msg.header.flags & DNS_FLAG_Z != 0 {
            tx.add_event("dns.z_flag_set");
        }
        tx.set_num(AppNum::DnsOpcode, i64::from(msg.header.opcode));
        if resp {
            tx.set_num(AppNum::DnsRcode, i64::from(msg.header.rcode));
        }
        if resp {
            tx.response_started = true;
        } else {
            tx.request_done = true;
        }
        tx.response_done = true;
        self.txs.push(tx);
        self.msgs.push(msg);
        while self.txs.len() > MAX_TXS {
            self.txs.remove(0);
            self.msgs.remove(0);
        }
    }

    /// Transactions retire once inspected and logged.
    pub fn retire_done(&mut self) {
        let mut i = 0;
        while i < self.txs.len() {
            if self.txs[i].logged {
                self.txs.remove(i);
                self.msgs.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// The EVE `dns` object of a transaction.
    pub fn meta(&self, tx: &Tx) -> DnsMeta {
        match self
            .txs
            .iter()
            .position(|t| t.id == tx.id)
            .and_then(|i| self.msgs.get(i))
        {
            Some(m) => meta(m),
            None => DnsMeta::default(),
        }
    }
}

fn rdata_name(r: &Record) -> Option<&[u8]> {
    match &r.rdata {
        Rdata::Cname(n) | Rdata::Ns(n) | Rdata::Ptr(n) => Some(n),
        Rdata::Mx { exchange, .. } => Some(exchange),
        Rdata::Srv(s) => Some(&s.target),
        Rdata::Soa(s) => Some(&s.mname),
        _ => None,
    }
}

fn rdata_text(r: &Record) -> Option<String> {
    Some(match &r.rdata {
        Rdata::Addr(a) => a.to_string(),
        Rdata::Txt(t) => t.iter().map(|s| text(s)).collect::<Vec<_>>().join(""),
        Rdata::Other(_) => return None,
        _ => super::name_to_string(rdata_name(r)?),
    })
}

pub fn meta(m: &DnsMessage) -> DnsMeta {
    let h = &m.header;
    let q = m.queries.first();
    DnsMeta {
        version: 2,
        kind: if h.qr { "answer" } else { "request" },
        id: h.id,
        flags: h.qr.then(|| format!("{:x}", h.flags)),
        opcode: h.opcode,
        rrname: q.map(|q| super::name_to_string(&q.name)),
        rrtype: q.map(|q| rrtype_name(q.rrtype)),
        rcode: h.qr.then(|| rcode_name(h.rcode)),
        answers: m
            .answers
            .iter()
            .map(|r| DnsAnswer {
                rrname: super::name_to_string(&r.name),
                rrtype: rrtype_name(r.rrtype).to_string(),
                ttl: r.ttl,
                rdata: rdata_text(r),
            })
            .collect(),
    }
}
