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
pub use inspect::{CStep, Vars as InspectVars, inspect, inspect_new};
pub use prefilter::{Prefilter, Scratch};

/// A rule ready for detection.
#[derive(Debug)]
pub struct CompiledRule {
    pub rule: Rule,
    /// One program per inspected buffer.
    pub programs: Vec<(Buffer, Vec<CStep>)>,
    /// The buffer whose prefilter (or unfiltered list) makes this rule a candidate.
    pub prefilter_buffer: Option<Buffer>,
}

impl CompiledRule {
    pub fn program(&self, buf: Buffer) -> Option<&[CStep]> {
        self.programs.iter().find(|(b, _)| *b == buf).map(|(_, s)| s.as_slice())
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
    /// Header-only rules (addresses, ports, protocol; Suricata's "IP-only"): looked up by
    /// address, once per flow direction.
    pub ip_only: iponly::IpOnlyIndex,
    pub flowbit_count: usize,
}

impl std::fmt::Debug for Ruleset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ruleset").field("rules", &self.rules.len()).finish()
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

fn compile_rule(rule: Rule) -> Result<CompiledRule, (Rule, ErrorKind)> {
    let mut programs = Vec::with_capacity(rule.programs.len());
    for prog in &rule.programs {
        let mut steps = Vec::with_capacity(prog.steps.len());
        for s in &prog.steps {
            steps.push(match s {
                Step::Content(c) => CStep::Content(inspect::CContent::new(c)),
                Step::Pcre(p) => match compile_pcre(p) {
                    Ok(re) => CStep::Pcre(inspect::CPcre { re, negated: p.negated, relative: p.relative }),
                    Err(e) => return Err((rule, ErrorKind::Pcre(e))),
                },
                Step::ByteTest(b) => CStep::ByteTest(b.clone()),
                Step::ByteJump(b) => CStep::ByteJump(b.clone()),
                Step::ByteExtract(b) => CStep::ByteExtract(b.clone()),
                Step::IsDataAt { n, relative, negated } => {
                    CStep::IsDataAt { n: *n, relative: *relative, negated: *negated }
                }
                Step::Bsize(c) => CStep::Bsize(*c),
            });
        }
        programs.push((prog.buffer, steps));
    }
    Ok(CompiledRule { rule, programs, prefilter_buffer: None })
}

/// The literal a rule is prefiltered on: an explicit `fast_pattern`, else the longest
/// non-negated content. Returns (buffer, bytes, nocase).
fn fast_pattern(rule: &Rule) -> Option<(Buffer, Vec<u8>, bool)> {
    let mut best: Option<(Buffer, &crate::ast::Content)> = None;
    for p in &rule.programs {
        for s in &p.steps {
            if let Step::Content(c) = s {
                if c.negated {
                    continue;
                }
                if c.fast_pattern {
                    return Some((p.buffer, c.pattern.clone(), c.nocase));
                }
                if best.is_none_or(|(_, b)| c.pattern.len() > b.pattern.len()) {
                    best = Some((p.buffer, c));
                }
            }
        }
    }
    best.map(|(b, c)| (b, c.pattern.clone(), c.nocase))
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
        && r.flowbits.iter().all(|f| !matches!(f, FlowbitCmd::IsSet { .. } | FlowbitCmd::IsNotSet { .. }))
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
                Err((r, kind)) => failures.push(RuleError { file: r.file.clone(), line: r.line, sid: Some(r.sid), kind }),
            }
        }
        let mut literals: Vec<Vec<(Vec<u8>, bool, u32)>> = vec![Vec::new(); Buffer::COUNT];
        let mut unfiltered = vec![Vec::new(); Buffer::COUNT];
        let mut packet_only = Vec::new();
        let mut ip_only = Vec::new();
        for (i, c) in compiled.iter_mut().enumerate() {
            let id = i as u32;
            match fast_pattern(&c.rule) {
                Some((buf, lit, nocase)) => {
                    literals[buf.index()].push((lit, nocase, id));
                    c.prefilter_buffer = Some(buf);
                }
                None => match c.programs.first() {
                    Some((buf, _)) => {
                        unfiltered[buf.index()].push(id);
                        c.prefilter_buffer = Some(*buf);
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
        let set = Ruleset { rules: compiled, prefilters, unfiltered, packet_only, ip_only, flowbit_count };
        (set, failures)
    }

    /// Scratch space for one worker, large enough for every database of the set.
    pub fn alloc_scratch(&self) -> Result<Scratch, String> {
        let mut s = Scratch::new();
        for p in self.prefilters.iter().flatten() {
            s.grow_for(p)?;
        }
        Ok(s)
    }

    /// Whether any rule inspects `buf`.
    pub fn uses(&self, buf: Buffer) -> bool {
        self.prefilters[buf.index()].is_some() || !self.unfiltered[buf.index()].is_empty()
    }

    /// Rules with a program on `buf` but no literal: candidates for every such buffer.
    pub fn unfiltered(&self, buf: Buffer) -> &[u32] {
        &self.unfiltered[buf.index()]
    }

    /// Scan `data` as buffer `buf` and append the ids of candidate rules to `out`
    /// (unsorted, possibly with duplicates).
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
                if let Some(b) = self.rules.iter().filter_map(|r| r.prefilter_buffer).find(|b| b.index() == i) {
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
