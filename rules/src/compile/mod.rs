//! Parsed rules → a [`Ruleset`]: one Hyperscan multi-literal prefilter database per buffer
//! type, plus a verification program per rule and buffer.
//!
//! Detection scans each buffer once with its prefilter; every rule whose fast pattern
//! occurred becomes a candidate and is then fully verified ([`inspect`]). Rules without a
//! usable literal are candidates for every buffer of their kind.

pub mod inspect;
pub mod iponly;
mod prefilter;

use crate::ast::{Buffer, PcreSpec, Rule, Step};
use crate::parse::{ErrorKind, RuleError};
use crate::transform::{Transform, TransformBuf};
pub use inspect::{CStep, Vars as InspectVars, inspect, inspect_new};
pub use prefilter::{MAX_PREFILTER_LIT, Prefilter, Scratch};

/// The compiled program of one buffer (with its transforms) of a rule.
#[derive(Debug)]
pub struct CProgram {
    pub buffer: Buffer,
    pub transforms: Vec<Transform>,
    /// `absent` (`Some(false)`) or `absent: or_else` (`Some(true)`).
    pub absent: Option<bool>,
    pub steps: Vec<CStep>,
}

impl CProgram {
    /// Run the program on one instance of its buffer, transforming it first when the
    /// program has transforms (`tb` holds the transformed bytes; reused, no allocation
    /// once grown). `min_end` applies to untransformed stream windows only.
    pub fn run(
        &self,
        data: &[u8],
        vars: &mut inspect::Vars,
        min_end: usize,
        tb: &mut TransformBuf,
    ) -> bool {
        if self.absent == Some(false) {
            // present, and the program wants it absent
            return false;
        }
        if self.transforms.is_empty() {
            return inspect_new(&self.steps, data, vars, min_end);
        }
        match tb.apply(&self.transforms, data) {
            Some(t) => inspect_new(&self.steps, t, vars, 0),
            None => false,
        }
    }

    /// The outcome when the buffer does not exist at all.
    pub fn when_missing(&self) -> bool {
        self.absent.is_some()
    }
}

/// A rule ready for detection.
#[derive(Debug)]
pub struct CompiledRule {
    pub rule: Rule,
    /// One program per inspected buffer (and transform chain).
    pub programs: Vec<CProgram>,
    /// The buffer whose prefilter (or unfiltered list) makes this rule a candidate.
    pub prefilter_buffer: Option<Buffer>,
}

impl CompiledRule {
    /// The steps of the untransformed program of `buf`.
    pub fn program(&self, buf: Buffer) -> Option<&[CStep]> {
        self.programs
            .iter()
            .find(|p| p.buffer == buf && p.transforms.is_empty())
            .map(|p| p.steps.as_slice())
    }
}

/// Every rule that compiled, indexed by buffer.
pub struct Ruleset {
    pub rules: Vec<CompiledRule>,
    prefilters: Vec<Option<Prefilter>>,
    /// Per buffer: rules that have a program on it but no prefilter literal.
    unfiltered: Vec<Vec<u32>>,
    /// Rules without any buffer program that test packet or flow keywords: candidates for
    /// every packet.
    pub packet_only: Vec<u32>,
    /// Rules without a literal that can match a transaction lacking their buffer
    /// (`absent`): candidates for every transaction.
    pub tx_always: Vec<u32>,
    /// Header-only rules (addresses, ports, protocol; Suricata's "IP-only"): looked up by
    /// address, once per flow direction.
    pub ip_only: iponly::IpOnlyIndex,
    pub flowbit_count: usize,
    /// The payload rules that look at each packet even on reassembled TCP (`ip` rules,
    /// `tcp-pkt`, `flow:no_stream`): a small database of their literals, so a tracked
    /// TCP packet is not scanned against every stream rule a second time.
    packet_payload: Option<Prefilter>,
    /// Those of them without a literal on the payload.
    pub packet_payload_unfiltered: Vec<u32>,
}

/// Whether a rule inspects payloads packet by packet even where TCP is reassembled.
pub fn inspects_packets(r: &Rule) -> bool {
    use crate::ast::Proto;
    (r.flow.no_stream || matches!(r.proto, Proto::TcpPkt | Proto::Ip)) && r.has_payload()
}

impl std::fmt::Debug for Ruleset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ruleset")
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// Compile one pcre of a rule.
pub fn compile_pcre(p: &PcreSpec) -> Result<pcre2::bytes::Regex, String> {
    let mut pat = String::with_capacity(p.pattern.len() + 12);
    if p.ungreedy {
        pat.push_str("(?U)");
    }
    if p.anchored {
        pat.push_str("\\A(?:");
        pat.push_str(&p.pattern);
        pat.push(')');
    } else {
        pat.push_str(&p.pattern);
    }
    pcre2::bytes::RegexBuilder::new()
        .caseless(p.caseless)
        .dotall(p.dotall)
        .multi_line(p.multiline)
        .extended(p.extended)
        .jit_if_available(true)
        .build(&pat)
        .map_err(|e| e.to_string())
}

fn compile_steps(steps: &[Step]) -> Result<Vec<CStep>, ErrorKind> {
    let mut out = Vec::with_capacity(steps.len());
    for s in steps {
        out.push(match s {
            Step::Content(c) => CStep::Content(inspect::CContent::new(c)),
            Step::Pcre(p) => {
                let re = compile_pcre(p).map_err(ErrorKind::Pcre)?;
                CStep::Pcre(inspect::CPcre {
                    re,
                    negated: p.negated,
                    relative: p.relative,
                })
            }
            Step::ByteTest(b) => CStep::ByteTest(b.clone()),
            Step::ByteJump(b) => CStep::ByteJump(b.clone()),
            Step::ByteExtract(b) => CStep::ByteExtract(b.clone()),
            Step::IsDataAt {
                n,
                relative,
                negated,
            } => CStep::IsDataAt {
                n: *n,
                relative: *relative,
                negated: *negated,
            },
            Step::Bsize(c) => CStep::Bsize(*c),
            Step::Base64Decode {
                bytes,
                offset,
                relative,
                data,
            } => CStep::Base64Decode {
                bytes: *bytes,
                offset: *offset,
                relative: *relative,
                data: compile_steps(data)?,
            },
            Step::Dataset { op, set } => CStep::Dataset {
                op: *op,
                set: set.0.clone(),
            },
        });
    }
    Ok(out)
}

fn compile_rule(rule: Rule) -> Result<CompiledRule, (Rule, ErrorKind)> {
    let mut programs = Vec::with_capacity(rule.programs.len());
    for prog in &rule.programs {
        let steps = match compile_steps(&prog.steps) {
            Ok(s) => s,
            Err(e) => return Err((rule, e)),
        };
        programs.push(CProgram {
            buffer: prog.buffer,
            transforms: prog.transforms.clone(),
            absent: prog.absent,
            steps,
        });
    }
    Ok(CompiledRule {
        rule,
        programs,
        prefilter_buffer: None,
    })
}

/// The literal a rule is prefiltered on: an explicit `fast_pattern`, else the longest
/// non-negated content. Returns (buffer, bytes, nocase).
///
/// A content of a transformed buffer only counts through the literal the *raw* buffer must
/// then contain ([`crate::transform::prefilter_literal`]); a buffer that may be absent
/// (`absent: or_else`) gives no literal.
fn fast_pattern(rule: &Rule) -> Option<(Buffer, Vec<u8>, bool)> {
    let mut best: Option<(Buffer, Vec<u8>, bool)> = None;
    for p in &rule.programs {
        if p.absent.is_some() {
            continue;
        }
        for s in &p.steps {
            let Step::Content(c) = s else { continue };
            if c.negated {
                continue;
            }
            let lit = if p.transforms.is_empty() {
                Some((c.pattern.clone(), c.nocase))
            } else {
                crate::transform::prefilter_literal(&p.transforms, &c.pattern, c.nocase)
            };
            let Some((lit, nocase)) = lit else { continue };
            if c.fast_pattern {
                return Some((p.buffer, lit, nocase));
            }
            if best.as_ref().is_none_or(|(_, b, _)| lit.len() > b.len()) {
                best = Some((p.buffer, lit, nocase));
            }
        }
    }
    best
}

/// A rule decided by addresses, ports and protocol alone (flowbits may be set, thresholds
/// apply): Suricata evaluates these once per flow direction.
pub fn is_ip_only(r: &Rule) -> bool {
    use crate::ast::{FlowbitCmd, Proto};
    r.programs.is_empty()
        && r.packet_tests.is_empty()
        && r.flow == crate::ast::FlowOpts::default()
        && r.app_proto.is_none()
        && matches!(r.proto, Proto::Ip | Proto::Tcp | Proto::Udp | Proto::Icmp)
        && r.flowbits
            .iter()
            .all(|f| !matches!(f, FlowbitCmd::IsSet { .. } | FlowbitCmd::IsNotSet { .. }))
        && r.flowints.is_empty()
}

impl Ruleset {
    /// Compile parsed rules. Rules that fail (a pcre that does not compile, ...) are
    /// returned as errors; the others form the set.
    pub fn compile(rules: Vec<Rule>, flowbit_count: usize) -> (Ruleset, Vec<RuleError>) {
        let mut failures = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for r in rules {
            match compile_rule(r) {
                Ok(c) => compiled.push(c),
                Err((r, kind)) => failures.push(RuleError {
                    file: r.file.clone(),
                    line: r.line,
                    sid: Some(r.sid),
                    kind,
                }),
            }
        }
        let mut literals: Vec<Vec<(Vec<u8>, bool, u32)>> = vec![Vec::new(); Buffer::COUNT];
        let mut unfiltered = vec![Vec::new(); Buffer::COUNT];
        let mut packet_only = Vec::new();
        let mut tx_always = Vec::new();
        let mut ip_only = Vec::new();
        for (i, c) in compiled.iter_mut().enumerate() {
            let id = i as u32;
            match fast_pattern(&c.rule) {
                Some((buf, lit, nocase)) => {
                    literals[buf.index()].push((lit, nocase, id));
                    c.prefilter_buffer = Some(buf);
                }
                None if c.programs.iter().any(|p| p.absent.is_some()) => {
                    tx_always.push(id);
                    c.prefilter_buffer = c
                        .programs
                        .iter()
                        .find(|p| p.absent.is_none())
                        .map(|p| p.buffer);
                }
                None => match c.programs.first() {
                    Some(p) => {
                        unfiltered[p.buffer.index()].push(id);
                        c.prefilter_buffer = Some(p.buffer);
                    }
                    None if is_ip_only(&c.rule) => ip_only.push(id),
                    None => packet_only.push(id),
                },
            }
        }
        let mut prefilters: Vec<Option<Prefilter>> = Vec::with_capacity(Buffer::COUNT);
        for lits in literals {
            if lits.is_empty() {
                prefilters.push(None);
                continue;
            }
            match Prefilter::build(&lits) {
                Ok(p) => prefilters.push(Some(p)),
                Err(e) => {
                    // A whole database failing is a bug or a resource limit; report every
                    // rule of it rather than aborting.
                    for (_, _, id) in &lits {
                        let r = &compiled[*id as usize].rule;
                        failures.push(RuleError {
                            file: r.file.clone(),
                            line: r.line,
                            sid: Some(r.sid),
                            kind: ErrorKind::Hyperscan(e.clone()),
                        });
                    }
                    prefilters.push(None);
                }
            }
        }
        let ip_only = iponly::IpOnlyIndex::build(ip_only.iter().map(|&id| {
            let r = &compiled[id as usize].rule;
            (id, &r.src, &r.dst, r.bidirectional)
        }));
        let mut pkt_lits = Vec::new();
        let mut packet_payload_unfiltered = Vec::new();
        for (i, c) in compiled.iter().enumerate() {
            if !inspects_packets(&c.rule) {
                continue;
            }
            match fast_pattern(&c.rule) {
                Some((Buffer::Payload, lit, nocase)) => pkt_lits.push((lit, nocase, i as u32)),
                _ => packet_payload_unfiltered.push(i as u32),
            }
        }
        let packet_payload = if pkt_lits.is_empty() {
            None
        } else {
            Prefilter::build(&pkt_lits).ok()
        };
        if packet_payload.is_none() && !pkt_lits.is_empty() {
            packet_payload_unfiltered.extend(pkt_lits.iter().map(|l| l.2));
        }
        let set = Ruleset {
            rules: compiled,
            prefilters,
            unfiltered,
            packet_only,
            tx_always,
            ip_only,
            flowbit_count,
            packet_payload,
            packet_payload_unfiltered,
        };
        (set, failures)
    }

    /// Scratch space for one worker, large enough for every database of the set.
    pub fn alloc_scratch(&self) -> Result<Scratch, String> {
        let mut s = Scratch::new();
        for p in self
            .prefilters
            .iter()
            .flatten()
            .chain(self.packet_payload.iter())
        {
            s.grow_for(p)?;
        }
        Ok(s)
    }

    /// Whether any rule inspects `buf` — as its prefilter or with any other program (a
    /// rule prefiltered on `http.method` still needs the request body kept).
    pub fn uses(&self, buf: Buffer) -> bool {
        self.prefilters[buf.index()].is_some()
            || !self.unfiltered[buf.index()].is_empty()
            || self
                .rules
                .iter()
                .any(|r| r.programs.iter().any(|p| p.buffer == buf))
    }

    /// Rules with a program on `buf` but no literal: candidates for every such buffer.
    pub fn unfiltered(&self, buf: Buffer) -> &[u32] {
        &self.unfiltered[buf.index()]
    }

    /// Scan `data` as buffer `buf` and append the ids of candidate rules to `out`
    /// (unsorted, possibly with duplicates).
    /// Candidates among the packet-payload rules for one TCP packet whose stream is
    /// reassembled (the stream itself is scanned against every payload rule).
    pub fn packet_prefilter(&self, data: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        if let Some(p) = &self.packet_payload {
            p.scan(data, scratch, out);
        }
        out.extend_from_slice(&self.packet_payload_unfiltered);
    }

    pub fn prefilter(&self, buf: Buffer, data: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        if let Some(p) = &self.prefilters[buf.index()] {
            p.scan(data, scratch, out);
        }
    }

    /// Per buffer with rules: (buffer, distinct prefilter literals, rules without a literal).
    pub fn buffer_stats(&self) -> Vec<(Buffer, usize, usize)> {
        let mut v = Vec::new();
        for (i, p) in self.prefilters.iter().enumerate() {
            let lits = p.as_ref().map_or(0, |p| p.len());
            let unf = self.unfiltered[i].len();
            if lits + unf > 0 {
                if let Some(b) = self
                    .rules
                    .iter()
                    .filter_map(|r| r.prefilter_buffer)
                    .find(|b| b.index() == i)
                {
                    v.push((b, lits, unf));
                }
            }
        }
        v
    }

    /// The prefilter database of a buffer, for benchmarks of the matcher alone.
    pub fn prefilter_db(&self, buf: Buffer) -> Option<&Prefilter> {
        self.prefilters[buf.index()].as_ref()
    }
}
