//! Rule options (`keyword:value;`) → fields of [`Rule`].

mod ext;
mod flowint;

use super::{ErrorKind, ParseCtx, lexer};
use crate::ast::*;

type R<T> = Result<T, ErrorKind>;

fn bad(keyword: &str, reason: impl Into<String>) -> ErrorKind {
    ErrorKind::BadValue {
        keyword: keyword.to_string(),
        reason: reason.into(),
    }
}

fn need<'a>(kw: &str, v: Option<&'a str>) -> R<&'a str> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| bad(kw, "needs a value"))
}

fn num<T: std::str::FromStr>(kw: &str, s: &str) -> R<T> {
    s.trim()
        .parse()
        .map_err(|_| bad(kw, format!("`{}` is not a valid number", s.trim())))
}

/// Options that only annotate and never change matching.
const IGNORED: &[&str] = &[
    "rawbytes",
    "prefilter",
    "tag",
    "noscan",
    "requires",
    "stream_size_noop",
];

pub(super) struct Builder<'c> {
    ctx: &'c mut ParseCtx,
    cur: Buffer,
    /// (program index, step index) of the last content, for its modifiers.
    last_content: Option<(usize, usize)>,
    /// Program index of the last content/pcre/byte_* step (relative keywords follow it).
    last_prog: Option<usize>,
    vars: Vec<String>,
    /// Transforms given since the current sticky buffer was named.
    pub(super) transforms: Vec<crate::transform::Transform>,
    /// (program, step) of the last `base64_decode`, which `base64_data` contents belong to.
    pub(super) base64: Option<(usize, usize)>,
}

impl<'c> Builder<'c> {
    pub fn new(ctx: &'c mut ParseCtx) -> Self {
        Builder {
            ctx,
            cur: Buffer::Payload,
            last_content: None,
            last_prog: None,
            vars: Vec::new(),
            transforms: Vec::new(),
            base64: None,
        }
    }

    /// The program of `buf` (with the current transforms when `buf` is the current sticky
    /// buffer), created on first use.
    pub(super) fn prog(&mut self, rule: &mut Rule, buf: Buffer) -> usize {
        let transforms: &[crate::transform::Transform] = if buf == self.cur {
            &self.transforms
        } else {
            &[]
        };
        if let Some(i) = rule
            .programs
            .iter()
            .position(|p| p.buffer == buf && p.transforms == transforms)
        {
            return i;
        }
        rule.programs.push(BufferProgram {
            buffer: buf,
            transforms: transforms.to_vec(),
            absent: None,
            steps: Vec::new(),
        });
        rule.programs.len() - 1
    }

    pub(super) fn push_step(&mut self, rule: &mut Rule, buf: Buffer, step: Step) -> (usize, usize) {
        let p = self.prog(rule, buf);
        rule.programs[p].steps.push(step);
        self.last_prog = Some(p);
        (p, rule.programs[p].steps.len() - 1)
    }

    fn content_mut<'r>(&self, rule: &'r mut Rule, kw: &str) -> R<&'r mut Content> {
        let (p, s) = self
            .last_content
            .ok_or_else(|| bad(kw, "no preceding content"))?;
        match rule.programs.get_mut(p).and_then(|pr| pr.steps.get_mut(s)) {
            Some(Step::Content(c)) => Ok(c),
            _ => Err(bad(kw, "no preceding content")),
        }
    }

    fn val(&mut self, kw: &str, s: &str) -> R<Val> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            return Ok(Val::Lit(n));
        }
        match self.vars.iter().position(|v| v == s) {
            Some(i) => Ok(Val::Var(i as u8)),
            None => Err(bad(
                kw,
                format!("`{s}` is neither a number nor a byte_extract variable"),
            )),
        }
    }

    pub fn option(&mut self, rule: &mut Rule, name: &str, v: Option<&str>) -> R<()> {
        if name != "file_data" {
            if let Some(mbuf) = Buffer::from_modifier(name) {
                return self.move_last_content(rule, mbuf);
            }
        }
        if let Some(buf) = Buffer::from_sticky(name) {
            if v.is_some() {
                return self.sticky_with_value(rule, name, v);
            }
            if buf == Buffer::Base64Data && self.base64.is_none() {
                return Err(bad(name, "needs a preceding base64_decode"));
            }
            self.cur = buf;
            self.transforms.clear();
            return Ok(());
        }
        match name {
            "msg" => {
                rule.msg = lexer::unquote(need(name, v)?)
                    .replace("\\;", ";")
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\")
            }
            "sid" => rule.sid = num(name, need(name, v)?)?,
            "rev" => rule.rev = num(name, need(name, v)?)?,
            "gid" => rule.gid = num(name, need(name, v)?)?,
            "classtype" => rule.classtype = Some(need(name, v)?.to_string()),
            "priority" => rule.priority = Some(num(name, need(name, v)?)?),
            "reference" => rule.references.push(need(name, v)?.to_string()),
            "target" => rule.target = Some(need(name, v)?.to_string()),
            "metadata" => {
                for kv in need(name, v)?.split(',') {
                    let kv = kv.trim();
                    if kv.is_empty() {
                        continue;
                    }
                    let (k, val) = kv.split_once(' ').unwrap_or((kv, ""));
                    rule.metadata
                        .push((k.trim().to_string(), val.trim().to_string()));
                }
            }
            "content" | "uricontent" => {
                let (pattern, negated) =
                    lexer::parse_content(need(name, v)?).map_err(|e| bad(name, e))?;
                let buf = if name == "uricontent" {
                    Buffer::HttpUri
                } else {
                    self.cur
                };
                let c = Content::plain(pattern, negated, false);
                self.last_content = Some(self.push_step(rule, buf, Step::Content(c)));
            }
            "nocase" => self.content_mut(rule, name)?.nocase = true,
            "depth" | "offset" | "distance" | "within" => {
                let val = self.val(name, need(name, v)?)?;
                let c = self.content_mut(rule, name)?;
                let slot = match name {
                    "depth" => &mut c.depth,
                    "offset" => &mut c.offset,
                    "distance" => &mut c.distance,
                    _ => &mut c.within,
                };
                if slot.is_some() {
                    return Err(bad(name, "given twice for one content"));
                }
                *slot = Some(val);
                if let (Some(Val::Lit(w)), true) = (c.within, name == "within") {
                    if w < c.pattern.len() as i64 {
                        return Err(bad(name, "within is shorter than the content"));
                    }
                }
                if let (Some(Val::Lit(d)), true) = (c.depth, name == "depth") {
                    if d < c.pattern.len() as i64 {
                        return Err(bad(name, "depth is shorter than the content"));
                    }
                }
            }
            "startswith" => {
                let c = self.content_mut(rule, name)?;
                c.startswith = true;
            }
            "endswith" => self.content_mut(rule, name)?.endswith = true,
            "fast_pattern" => {
                let c = self.content_mut(rule, name)?;
                c.fast_pattern = true;
                if v.is_some_and(|s| s.trim() == "only") {
                    c.fast_pattern_only = true;
                }
            }
            "pcre" => self.pcre(rule, need(name, v)?)?,
            "isdataat" => {
                let s = need(name, v)?;
                let (negated, s) = match s.trim().strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, s),
                };
                let mut parts = s.split(',').map(str::trim);
                let n = self.val(name, parts.next().unwrap_or(""))?;
                let mut relative = false;
                for p in parts {
                    match p {
                        "relative" => relative = true,
                        "rawbytes" => {}
                        o => return Err(bad(name, format!("unknown option `{o}`"))),
                    }
                }
                let buf = self.cur_for_relative(rule, relative);
                self.push_step(
                    rule,
                    buf,
                    Step::IsDataAt {
                        n,
                        relative,
                        negated,
                    },
                );
            }
            "bsize" => {
                let cmp = parse_cmp(name, need(name, v)?)?;
                let buf = self.cur;
                if buf == Buffer::Payload {
                    return Err(bad(name, "bsize needs a sticky buffer"));
                }
                self.push_step(rule, buf, Step::Bsize(cmp));
            }
            "urilen" => {
                let s = need(name, v)?;
                let (s, raw) = match s.split_once(',') {
                    Some((a, b)) if b.trim() == "raw" => (a, true),
                    Some((a, b)) if b.trim() == "norm" => (a, false),
                    Some(_) => return Err(bad(name, "expected `,raw` or `,norm`")),
                    None => (s, false),
                };
                let cmp = parse_cmp(name, s)?;
                let buf = if raw {
                    Buffer::HttpUriRaw
                } else {
                    Buffer::HttpUri
                };
                let p = self.prog(rule, buf);
                rule.programs[p].steps.insert(0, Step::Bsize(cmp));
                if let Some((lp, ls)) = self.last_content {
                    if lp == p {
                        self.last_content = Some((lp, ls + 1));
                    }
                }
            }
            "byte_test" => {
                let bt = super::options_bytes::byte_test(self, need(name, v)?)?;
                let buf = self.cur_for_relative(rule, bt.relative);
                self.push_step(rule, buf, Step::ByteTest(bt));
            }
            "byte_jump" => {
                let bj = super::options_bytes::byte_jump(self, need(name, v)?)?;
                let buf = self.cur_for_relative(rule, bj.relative);
                self.push_step(rule, buf, Step::ByteJump(bj));
            }
            "byte_extract" => {
                let (be, var_name) = super::options_bytes::byte_extract(self, need(name, v)?)?;
                if self.vars.len() >= 8 {
                    return Err(bad(name, "more than 8 byte_extract variables"));
                }
                self.vars.push(var_name);
                let be = ByteExtract {
                    var: (self.vars.len() - 1) as u8,
                    ..be
                };
                rule.nvars = self.vars.len() as u8;
                let buf = self.cur_for_relative(rule, be.relative);
                self.push_step(rule, buf, Step::ByteExtract(be));
            }
            "flow" => parse_flow(&mut rule.flow, need(name, v)?)?,
            "flowbits" => {
                let cmd = self.flowbits(need(name, v)?)?;
                if cmd == FlowbitCmd::NoAlert {
                    rule.noalert = true;
                }
                rule.flowbits.push(cmd);
            }
            "flowint" => self.flowint(rule, need(name, v)?)?,
            "noalert" => rule.noalert = true,
            // makes a firewall `accept` rule also alert; a rule that alerts already does
            "alert" => {}
            "dsize" => rule
                .packet_tests
                .push(PacketTest::Dsize(parse_cmp(name, need(name, v)?)?)),
            "tls.cert_chain_len" | "dns.opcode" | "dns.rcode" => {
                let num = match name {
                    "tls.cert_chain_len" => AppNum::TlsCertChainLen,
                    "dns.opcode" => AppNum::DnsOpcode,
                    _ => AppNum::DnsRcode,
                };
                rule.packet_tests.push(PacketTest::AppNum {
                    num,
                    cmp: parse_cmp(name, need(name, v)?)?,
                });
            }
            "tls_cert_notbefore" | "tls.cert_notbefore" | "tls_cert_notafter"
            | "tls.cert_notafter" => {
                let num = if name.ends_with("notbefore") {
                    AppNum::TlsCertNotBefore
                } else {
                    AppNum::TlsCertNotAfter
                };
                rule.packet_tests.push(PacketTest::AppNum {
                    num,
                    cmp: parse_date_cmp(name, need(name, v)?)?,
                });
            }
            "ttl" => rule
                .packet_tests
                .push(PacketTest::Ttl(parse_cmp(name, need(name, v)?)?)),
            "itype" => rule
                .packet_tests
                .push(PacketTest::Itype(parse_cmp(name, need(name, v)?)?)),
            "icode" => rule
                .packet_tests
                .push(PacketTest::Icode(parse_cmp(name, need(name, v)?)?)),
            "icmp_id" => rule
                .packet_tests
                .push(PacketTest::IcmpId(num(name, need(name, v)?)?)),
            "icmp_seq" => rule
                .packet_tests
                .push(PacketTest::IcmpSeq(num(name, need(name, v)?)?)),
            "seq" | "tcp.seq" => rule
                .packet_tests
                .push(PacketTest::TcpSeq(num(name, need(name, v)?)?)),
            "ack" | "tcp.ack" => rule
                .packet_tests
                .push(PacketTest::TcpAck(num(name, need(name, v)?)?)),
            "id" => rule
                .packet_tests
                .push(PacketTest::Id(num(name, need(name, v)?)?)),
            "window" | "tcp.window" => {
                let s = need(name, v)?.trim();
                let (negated, s) = s.strip_prefix('!').map_or((false, s), |r| (true, r));
                rule.packet_tests.push(PacketTest::TcpWindow {
                    value: num(name, s)?,
                    negated,
                });
            }
            "ip_proto" => {
                let s = need(name, v)?.trim();
                let (negated, s) = s.strip_prefix('!').map_or((false, s), |r| (true, r));
                let proto = match s {
                    "tcp" => 6,
                    "udp" => 17,
                    "icmp" => 1,
                    "ipv6-icmp" | "icmpv6" => 58,
                    "igmp" => 2,
                    "gre" => 47,
                    "esp" => 50,
                    "ah" => 51,
                    "sctp" => 132,
                    _ => num(name, s)?,
                };
                rule.packet_tests
                    .push(PacketTest::IpProto { proto, negated });
            }
            "flags" | "tcp.flags" => rule
                .packet_tests
                .push(PacketTest::TcpFlags(parse_flags(name, need(name, v)?)?)),
            "fragbits" => {
                let s = need(name, v)?.trim();
                let (modifier, s) = flag_modifier(s);
                let mut bits = 0u8;
                for c in s.chars() {
                    bits |= match c {
                        'M' | 'm' => 0x20,
                        'D' | 'd' => 0x40,
                        'R' | 'r' => 0x80,
                        _ => return Err(bad(name, format!("unknown fragment bit `{c}`"))),
                    };
                }
                rule.packet_tests
                    .push(PacketTest::FragBits { bits, modifier });
            }
            "sameip" => rule.packet_tests.push(PacketTest::SameIp),
            "flow.pkts"
            | "flow.pkts_toserver"
            | "flow.pkts_toclient"
            | "flow.bytes"
            | "flow.bytes_toserver"
            | "flow.bytes_toclient" => {
                let s = need(name, v)?;
                let (dir, s) = if name.ends_with("_toserver") {
                    (FlowDirSel::ToServer, s)
                } else if name.ends_with("_toclient") {
                    (FlowDirSel::ToClient, s)
                } else {
                    match s.split_once(',') {
                        Some((d, rest)) => (
                            match d.trim() {
                                "toserver" => FlowDirSel::ToServer,
                                "toclient" => FlowDirSel::ToClient,
                                "either" => FlowDirSel::Either,
                                "both" => FlowDirSel::Both,
                                o => return Err(bad(name, format!("unknown direction `{o}`"))),
                            },
                            rest,
                        ),
                        None => (FlowDirSel::Sum, s),
                    }
                };
                let cmp = parse_cmp(name, s)?;
                rule.packet_tests.push(if name.starts_with("flow.pkts") {
                    PacketTest::FlowPkts { dir, cmp }
                } else {
                    PacketTest::FlowBytes { dir, cmp }
                });
            }
            "flow.age" => rule
                .packet_tests
                .push(PacketTest::FlowAge(parse_cmp(name, need(name, v)?)?)),
            "stream_size" => {
                let parts: Vec<&str> = need(name, v)?.split(',').map(str::trim).collect();
                if parts.len() != 3 {
                    return Err(bad(name, "expected <direction>,<op>,<bytes>"));
                }
                let dir = match parts[0] {
                    "server" => FlowDirSel::ToServer,
                    "client" => FlowDirSel::ToClient,
                    "both" => FlowDirSel::Both,
                    "either" => FlowDirSel::Either,
                    o => return Err(bad(name, format!("unknown direction `{o}`"))),
                };
                let n: u64 = num(name, parts[2])?;
                let cmp = match parts[1] {
                    "<" => NumCmp::Lt(n),
                    ">" => NumCmp::Gt(n),
                    "=" | "==" => NumCmp::Eq(n),
                    "!=" => NumCmp::Ne(n),
                    "<=" => NumCmp::Le(n),
                    ">=" => NumCmp::Ge(n),
                    o => return Err(bad(name, format!("unknown operator `{o}`"))),
                };
                rule.packet_tests.push(PacketTest::StreamSize { dir, cmp });
            }
            "app-layer-protocol" => {
                let s = need(name, v)?.trim();
                let s = s.split(',').next().unwrap_or(s).trim();
                let (negated, s) = s.strip_prefix('!').map_or((false, s), |r| (true, r));
                let proto = match s {
                    "failed" | "unknown" => None,
                    _ => Some(
                        AppProto::from_name(s)
                            .ok_or_else(|| bad(name, format!("unknown protocol `{s}`")))?,
                    ),
                };
                rule.packet_tests.push(PacketTest::AppLayerProtocol {
                    proto,
                    negated,
                    name: s.to_string(),
                });
            }
            "decode-event" | "stream-event" | "app-layer-event" => {
                let kind = match name {
                    "decode-event" => EventKind::Decode,
                    "stream-event" => EventKind::Stream,
                    _ => EventKind::AppLayer,
                };
                let ev = need(name, v)?.trim();
                rule.packet_tests.push(PacketTest::Event {
                    kind,
                    name: ev.to_string(),
                });
            }
            "threshold" | "detection_filter" => {
                let t = parse_threshold(name, need(name, v)?)?;
                if name == "threshold" {
                    rule.threshold = Some(t);
                } else {
                    rule.detection_filter = Some(t);
                }
            }
            n if IGNORED.contains(&n) => {}
            other => return self.option_ext(rule, other, v),
        }
        Ok(())
    }

    /// Buffer for a keyword that may be relative to the previous match: relative keywords
    /// stay with the previous step's buffer.
    fn cur_for_relative(&mut self, rule: &Rule, relative: bool) -> Buffer {
        if relative && self.cur == Buffer::Payload {
            if let Some(p) = self.last_prog {
                return rule.programs[p].buffer;
            }
        }
        self.cur
    }

    fn move_last_content(&mut self, rule: &mut Rule, buf: Buffer) -> R<()> {
        let (p, s) = self
            .last_content
            .ok_or_else(|| bad("http modifier", "no preceding content"))?;
        if rule.programs[p].buffer == buf {
            return Ok(());
        }
        if s + 1 != rule.programs[p].steps.len() {
            return Err(bad("http modifier", "must directly follow its content"));
        }
        let step = rule.programs[p].steps.remove(s);
        if rule.programs[p].steps.is_empty() {
            rule.programs.remove(p);
        }
        self.last_content = Some(self.push_step(rule, buf, step));
        Ok(())
    }

    fn pcre(&mut self, rule: &mut Rule, v: &str) -> R<()> {
        let v = v.trim();
        let (negated, v) = v.strip_prefix('!').map_or((false, v), |r| (true, r.trim()));
        let v = lexer::unquote(v);
        let v = v
            .strip_prefix('/')
            .ok_or_else(|| bad("pcre", "pattern must start with `/`"))?;
        let end = v
            .rfind('/')
            .ok_or_else(|| bad("pcre", "pattern must end with `/`"))?;
        let (pat, flags) = (&v[..end], &v[end + 1..]);
        let mut spec = PcreSpec {
            pattern: pat.replace("\\;", ";").replace("\\\"", "\""),
            negated,
            caseless: false,
            dotall: false,
            multiline: false,
            extended: false,
            anchored: false,
            dollar_endonly: false,
            ungreedy: false,
            relative: false,
            raw: false,
        };
        let mut buf = None;
        for f in flags.chars() {
            match f {
                'i' => spec.caseless = true,
                's' => spec.dotall = true,
                'm' => spec.multiline = true,
                'x' => spec.extended = true,
                'A' => spec.anchored = true,
                'E' => spec.dollar_endonly = true,
                'G' => spec.ungreedy = true,
                'R' => spec.relative = true,
                'O' | 'B' => {}
                'U' => buf = Some(Buffer::HttpUri),
                'I' => buf = Some(Buffer::HttpUriRaw),
                'P' => buf = Some(Buffer::HttpRequestBody),
                'Q' => buf = Some(Buffer::FileData),
                'H' => buf = Some(Buffer::HttpHeader),
                'D' => buf = Some(Buffer::HttpHeaderRaw),
                'M' => buf = Some(Buffer::HttpMethod),
                'C' => buf = Some(Buffer::HttpCookie),
                'S' => buf = Some(Buffer::HttpStatCode),
                'Y' => buf = Some(Buffer::HttpStatMsg),
                'V' => buf = Some(Buffer::HttpUserAgent),
                'W' => buf = Some(Buffer::HttpHost),
                'Z' => buf = Some(Buffer::HttpHostRaw),
                o => return Err(bad("pcre", format!("unknown flag `{o}`"))),
            }
        }
        let buf = match buf {
            Some(b) => b,
            None => self.cur_for_relative(rule, spec.relative),
        };
        self.push_step(rule, buf, Step::Pcre(spec));
        Ok(())
    }

    fn flowbits(&mut self, v: &str) -> R<FlowbitCmd> {
        let (cmd, names) = match v.split_once(',') {
            Some((c, n)) => (c.trim(), Some(n.trim())),
            None => (v.trim(), None),
        };
        if cmd == "noalert" {
            return Ok(FlowbitCmd::NoAlert);
        }
        let names = names
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("flowbits", format!("`{cmd}` needs a name")))?;
        let any = names.contains('|');
        let ids: Vec<u32> = names
            .split(['|', '&'])
            .map(|n| self.ctx.flowbit_id(n.trim()))
            .collect();
        Ok(match cmd {
            "set" => FlowbitCmd::Set(ids),
            "unset" => FlowbitCmd::Unset(ids),
            "toggle" => FlowbitCmd::Toggle(ids),
            "isset" => FlowbitCmd::IsSet { bits: ids, any },
            "isnotset" => FlowbitCmd::IsNotSet { bits: ids, any },
            o => return Err(bad("flowbits", format!("unknown command `{o}`"))),
        })
    }

    pub(super) fn var_val(&mut self, kw: &str, s: &str) -> R<Val> {
        self.val(kw, s)
    }

    pub fn finish(&mut self, rule: &mut Rule) -> R<()> {
        self.finish_ext(rule)?;
        // startswith is depth:len offset:0; validate that relative steps are not first
        for p in &mut rule.programs {
            for st in &mut p.steps {
                if let Step::Content(c) = st {
                    if c.startswith {
                        if c.offset.is_some() || c.depth.is_some() || c.is_relative() {
                            return Err(bad(
                                "startswith",
                                "cannot be combined with offset/depth/distance/within",
                            ));
                        }
                        c.depth = Some(Val::Lit(c.pattern.len() as i64));
                    }
                }
            }
        }
        if rule.sid == 0 && rule.gid == 1 {
            // sid:0 is accepted by Suricata but is almost always an error in a ruleset
        }
        Ok(())
    }
}

/// `5`, `<5`, `>5`, `<=5`, `>=5`, `!5`, `=5`, `3<>7`, `3-7`.
/// `<2015-10-22`, `>2015`, `2014-01-01<>2016`: dates (UTC) as unix seconds.
fn parse_date_cmp(kw: &str, s: &str) -> R<NumCmp> {
    let date = |d: &str| -> R<u64> {
        let d = d.trim();
        let (day, time) = d.split_once([' ', 'T']).unwrap_or((d, ""));
        let mut it = day.split('-');
        let y: i64 = num(kw, it.next().unwrap_or(""))?;
        let m: i64 = it.next().map_or(Ok(1), |v| num(kw, v))?;
        let dd: i64 = it.next().map_or(Ok(1), |v| num(kw, v))?;
        let mut t = time.split(':');
        let hh: i64 = t
            .next()
            .filter(|v| !v.is_empty())
            .map_or(Ok(0), |v| num(kw, v))?;
        let mi: i64 = t.next().map_or(Ok(0), |v| num(kw, v))?;
        let ss: i64 = t.next().map_or(Ok(0), |v| num(kw, v))?;
        if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
            return Err(bad(
                kw,
                "expected a date YYYY[-MM[-DD[ HH:MM:SS]]] from 1970",
            ));
        }
        // days from civil (Howard Hinnant)
        let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
        let era = yy.div_euclid(400);
        let yoe = yy - era * 400;
        let doy = (153 * mm + 2) / 5 + dd - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Ok((days * 86_400 + hh * 3600 + mi * 60 + ss).max(0) as u64)
    };
    let s = s.trim();
    if let Some((a, b)) = s.split_once("<>") {
        return Ok(NumCmp::Range(date(a)?, date(b)?));
    }
    for (p, f) in [
        ("<=", NumCmp::Le as fn(u64) -> NumCmp),
        (">=", NumCmp::Ge),
        ("<", NumCmp::Lt),
        (">", NumCmp::Gt),
        ("!", NumCmp::Ne),
        ("=", NumCmp::Eq),
    ] {
        if let Some(r) = s.strip_prefix(p) {
            return Ok(f(date(r)?));
        }
    }
    Ok(NumCmp::Eq(date(s)?))
}

pub(crate) fn parse_cmp(kw: &str, s: &str) -> R<NumCmp> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once("<>") {
        let (a, b): (u64, u64) = (num(kw, a)?, num(kw, b)?);
        if a >= b {
            return Err(bad(kw, "range start must be below its end"));
        }
        return Ok(NumCmp::Range(a, b));
    }
    if let Some(r) = s.strip_prefix("<=") {
        return Ok(NumCmp::Le(num(kw, r)?));
    }
    if let Some(r) = s.strip_prefix(">=") {
        return Ok(NumCmp::Ge(num(kw, r)?));
    }
    if let Some(r) = s.strip_prefix('<') {
        return Ok(NumCmp::Lt(num(kw, r)?));
    }
    if let Some(r) = s.strip_prefix('>') {
        return Ok(NumCmp::Gt(num(kw, r)?));
    }
    if let Some(r) = s.strip_prefix('!') {
        return Ok(NumCmp::Ne(num(kw, r.trim_start_matches('='))?));
    }
    if let Some(r) = s.strip_prefix('=') {
        return Ok(NumCmp::Eq(num(kw, r)?));
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (u64, u64) = (num(kw, a)?, num(kw, b)?);
        if a > b {
            return Err(bad(kw, "range start must not exceed its end"));
        }
        return Ok(NumCmp::RangeIncl(a, b));
    }
    Ok(NumCmp::Eq(num(kw, s)?))
}

fn parse_flow(f: &mut FlowOpts, v: &str) -> R<()> {
    for o in v.split(',').map(str::trim) {
        match o {
            "established" => f.established = true,
            "not_established" => f.not_established = true,
            "stateless" => f.stateless = true,
            "to_server" | "from_client" => f.to_server = true,
            "to_client" | "from_server" => f.to_client = true,
            "only_stream" => f.only_stream = true,
            "no_stream" => f.no_stream = true,
            "only_frag" => f.only_frag = true,
            "no_frag" => f.no_frag = true,
            o => return Err(bad("flow", format!("unknown option `{o}`"))),
        }
    }
    if f.to_server && f.to_client {
        return Err(bad("flow", "to_server and to_client together"));
    }
    if f.established && f.not_established {
        return Err(bad("flow", "established and not_established together"));
    }
    Ok(())
}

fn flag_modifier(s: &str) -> (FlagsModifier, &str) {
    if let Some(r) = s.strip_prefix('+') {
        (FlagsModifier::Plus, r)
    } else if let Some(r) = s.strip_prefix('*') {
        (FlagsModifier::Any, r)
    } else if let Some(r) = s.strip_prefix('!') {
        (FlagsModifier::Not, r)
    } else if let Some(r) = s.strip_suffix('+') {
        (FlagsModifier::Plus, r)
    } else if let Some(r) = s.strip_suffix('*') {
        (FlagsModifier::Any, r)
    } else {
        (FlagsModifier::Exact, s)
    }
}

fn tcp_flag_bits(kw: &str, s: &str) -> R<u8> {
    let mut bits = 0u8;
    for c in s.chars() {
        bits |= match c {
            'F' | 'f' => 0x01,
            'S' | 's' => 0x02,
            'R' | 'r' => 0x04,
            'P' | 'p' => 0x08,
            'A' | 'a' => 0x10,
            'U' | 'u' => 0x20,
            'E' | 'e' | '2' => 0x40,
            'C' | 'c' | '1' => 0x80,
            '0' => 0,
            ' ' => 0,
            _ => return Err(bad(kw, format!("unknown TCP flag `{c}`"))),
        };
    }
    Ok(bits)
}

fn parse_flags(kw: &str, v: &str) -> R<TcpFlagsTest> {
    let (f, mask) = match v.split_once(',') {
        Some((a, b)) => (a.trim(), tcp_flag_bits(kw, b.trim())?),
        None => (v.trim(), 0),
    };
    let (modifier, f) = flag_modifier(f);
    Ok(TcpFlagsTest {
        flags: tcp_flag_bits(kw, f)?,
        modifier,
        mask,
    })
}

fn parse_threshold(kw: &str, v: &str) -> R<Threshold> {
    let mut kind = if kw == "detection_filter" {
        Some(ThresholdKind::DetectionFilter)
    } else {
        None
    };
    let (mut track, mut count, mut seconds, mut multiplier) = (None, None, None, None);
    for part in v.split(',').map(str::trim) {
        let (k, val) = part
            .split_once(' ')
            .map(|(a, b)| (a.trim(), b.trim()))
            .ok_or_else(|| bad(kw, format!("`{part}` is not `key value`")))?;
        match k {
            "type" => {
                kind = Some(match val {
                    "limit" => ThresholdKind::Limit,
                    "threshold" => ThresholdKind::Threshold,
                    "both" => ThresholdKind::Both,
                    "backoff" => ThresholdKind::Backoff { multiplier: 0 },
                    o => return Err(bad(kw, format!("unknown type `{o}`"))),
                })
            }
            "track" => {
                track = Some(match val {
                    "by_src" => TrackBy::Src,
                    "by_dst" => TrackBy::Dst,
                    "by_both" => TrackBy::Both,
                    "by_rule" => TrackBy::Rule,
                    "by_flow" => TrackBy::Flow,
                    o => return Err(bad(kw, format!("unknown track `{o}`"))),
                })
            }
            "count" => count = Some(num(kw, val)?),
            "seconds" => seconds = Some(num(kw, val)?),
            "multiplier" => multiplier = Some(num::<u32>(kw, val)?),
            "unique_on" => return Err(bad(kw, "unique_on is not supported")),
            o => return Err(bad(kw, format!("unknown field `{o}`"))),
        }
    }
    let mut kind = kind.ok_or_else(|| bad(kw, "missing type"))?;
    if let ThresholdKind::Backoff { .. } = kind {
        let m = multiplier.ok_or_else(|| bad(kw, "backoff needs a multiplier"))?;
        if m < 2 {
            return Err(bad(kw, "backoff multiplier must be at least 2"));
        }
        kind = ThresholdKind::Backoff { multiplier: m };
        // backoff has no time window
        seconds = seconds.or(Some(u32::MAX));
    } else if multiplier.is_some() {
        return Err(bad(kw, "multiplier only goes with type backoff"));
    }
    let count = count.ok_or_else(|| bad(kw, "missing count"))?;
    if count == 0 {
        return Err(bad(kw, "count must be at least 1"));
    }
    Ok(Threshold {
        kind,
        track: track.ok_or_else(|| bad(kw, "missing track"))?,
        count,
        seconds: seconds.ok_or_else(|| bad(kw, "missing seconds"))?,
    })
}
