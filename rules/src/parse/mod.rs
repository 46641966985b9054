//! Rule text → [`Rule`](crate::ast::Rule), with errors that say where and why.
//!
//! [`load_paths`] reads rule files (or folders of `*.rules`), parses every enabled rule and
//! keeps going past failures: one bad rule never stops the others from loading.

mod lexer;
mod options;
mod options_bytes;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::addr::Vars;
use crate::ast::{Action, AppProto, Proto, Rule};

pub use lexer::parse_content;

/// What was wrong with a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("bad header: {0}")]
    Header(String),
    #[error("unknown action `{0}`")]
    Action(String),
    #[error("unsupported protocol `{0}`")]
    Protocol(String),
    #[error("bad address: {0}")]
    Address(#[from] crate::addr::AddrError),
    #[error("unsupported keyword `{0}`")]
    Unsupported(String),
    #[error("bad value for `{keyword}`: {reason}")]
    BadValue { keyword: String, reason: String },
    #[error("rule has no sid")]
    NoSid,
    #[error("duplicate signature id {0}")]
    DuplicateSid(u32),
    #[error("pcre does not compile: {0}")]
    Pcre(String),
    #[error("pattern does not compile in Hyperscan: {0}")]
    Hyperscan(String),
    #[error("cannot read rules: {0}")]
    Io(String),
}

impl ErrorKind {
    /// A short grouping key for summaries ("unsupported keyword `dotprefix`").
    pub fn group(&self) -> String {
        match self {
            ErrorKind::Unsupported(k) => format!("unsupported keyword `{k}`"),
            ErrorKind::Protocol(p) => format!("unsupported protocol `{p}`"),
            ErrorKind::BadValue { keyword, .. } => format!("bad value for `{keyword}`"),
            ErrorKind::Address(_) => "bad address or port group".into(),
            ErrorKind::Header(_) => "bad header".into(),
            ErrorKind::Action(_) => "unknown action".into(),
            ErrorKind::NoSid => "no sid".into(),
            ErrorKind::DuplicateSid(_) => "duplicate sid".into(),
            ErrorKind::Pcre(_) => "pcre does not compile".into(),
            ErrorKind::Hyperscan(_) => "Hyperscan compile error".into(),
            ErrorKind::Io(_) => "unreadable file".into(),
        }
    }
}

/// A rule that failed, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub sid: Option<u32>,
    pub kind: ErrorKind,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(sid) = self.sid {
            write!(f, "sid {sid}: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for RuleError {}

/// State shared by all rules of one set: variables, flowbit names, seen sids.
#[derive(Debug, Default)]
pub struct ParseCtx {
    pub vars: Vars,
    flowbits: HashMap<String, u32>,
    flowints: HashMap<String, u32>,
    seen: HashSet<(u32, u32)>,
    /// Datasets by name, shared by every rule that names them.
    pub(crate) datasets: HashMap<String, std::sync::Arc<crate::dataset::Dataset>>,
}

impl ParseCtx {
    pub fn new(vars: Vars) -> ParseCtx {
        ParseCtx {
            vars,
            ..Default::default()
        }
    }

    pub(crate) fn flowbit_id(&mut self, name: &str) -> u32 {
        let n = self.flowbits.len() as u32;
        *self.flowbits.entry(name.to_string()).or_insert(n)
    }

    pub(crate) fn flowint_id(&mut self, name: &str) -> u32 {
        let n = self.flowints.len() as u32;
        *self.flowints.entry(name.to_string()).or_insert(n)
    }

    /// Number of distinct flowbit names seen.
    pub fn flowbit_count(&self) -> usize {
        self.flowbits.len()
    }

    /// Parse one rule. `file`/`line` are only used for messages.
    pub fn parse_rule(&mut self, text: &str, file: &str, line: usize) -> Result<Rule, RuleError> {
        let err = |sid, kind| RuleError {
            file: file.to_string(),
            line,
            sid,
            kind,
        };
        let sid_hint = sniff_sid(text);
        let split = lexer::split_rule(text).map_err(|k| err(sid_hint, k))?;
        let rule = self
            .build(text, &split, file, line)
            .map_err(|k| err(sid_hint, k))?;
        if !self.seen.insert((rule.gid, rule.sid)) {
            return Err(err(Some(rule.sid), ErrorKind::DuplicateSid(rule.sid)));
        }
        Ok(rule)
    }

    fn build(
        &mut self,
        text: &str,
        s: &lexer::Split<'_>,
        file: &str,
        line: usize,
    ) -> Result<Rule, ErrorKind> {
        let h = &s.header;
        if h.len() != 7 {
            return Err(ErrorKind::Header(format!(
                "expected 7 header fields, found {}",
                h.len()
            )));
        }
        let action = match h[0] {
            "alert" => Action::Alert,
            "drop" => Action::Drop,
            "reject" | "rejectsrc" | "rejectdst" | "rejectboth" => Action::Reject,
            "pass" => Action::Pass,
            other => return Err(ErrorKind::Action(other.to_string())),
        };
        let (proto, app_proto) = match h[1] {
            "ip" => (Proto::Ip, None),
            "tcp" => (Proto::Tcp, None),
            "udp" => (Proto::Udp, None),
            "icmp" => (Proto::Icmp, None),
            "icmpv6" => (Proto::Icmpv6, None),
            "tcp-pkt" => (Proto::TcpPkt, None),
            "tcp-stream" => (Proto::TcpStream, None),
            "pkthdr" => (Proto::PktHdr, None),
            p => match AppProto::from_name(p) {
                Some(a) => (Proto::App(a), Some(a)),
                None => return Err(ErrorKind::Protocol(p.to_string())),
            },
        };
        let src = self.vars.parse_addr(h[2])?;
        let src_ports = self.vars.parse_ports(h[3])?;
        let bidirectional = match h[4] {
            "->" => false,
            "<>" => true,
            "=>" => {
                return Err(ErrorKind::Header(
                    "transactional `=>` direction is not supported".into(),
                ));
            }
            d => return Err(ErrorKind::Header(format!("bad direction `{d}`"))),
        };
        let dst = self.vars.parse_addr(h[5])?;
        let dst_ports = self.vars.parse_ports(h[6])?;
        let mut rule = Rule {
            action,
            proto,
            src,
            src_ports,
            bidirectional,
            dst,
            dst_ports,
            msg: String::new(),
            sid: 0,
            rev: 0,
            gid: 1,
            classtype: None,
            priority: None,
            metadata: Vec::new(),
            references: Vec::new(),
            target: None,
            flow: Default::default(),
            flowbits: Vec::new(),
            flowints: Vec::new(),
            noalert: false,
            programs: Vec::new(),
            packet_tests: Vec::new(),
            threshold: None,
            detection_filter: None,
            app_proto,
            nvars: 0,
            file: file.to_string(),
            line,
            text: text.to_string(),
        };
        let mut sid_seen = false;
        let mut b = options::Builder::new(self);
        for (name, value) in &s.options {
            if *name == "sid" {
                sid_seen = true;
            }
            b.option(&mut rule, name, value.as_deref())?;
        }
        b.finish(&mut rule)?;
        if !sid_seen {
            return Err(ErrorKind::NoSid);
        }
        Ok(rule)
    }
}

/// Best-effort sid of a rule that may not parse, for error messages.
fn sniff_sid(text: &str) -> Option<u32> {
    let i = text.find("sid:")?;
    let prev = text[..i].trim_end().chars().last();
    if !matches!(prev, Some(';') | Some('(')) {
        // e.g. "xsid:" inside a string; try the next one
        let rest = &text[i + 4..];
        return sniff_sid(rest);
    }
    let rest = text[i + 4..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The result of loading rule files.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Rules that parsed, in file order.
    pub rules: Vec<Rule>,
    /// Rules that failed.
    pub failures: Vec<RuleError>,
    /// Enabled (not commented-out) rule lines found.
    pub enabled: usize,
    /// Files read.
    pub files: Vec<PathBuf>,
}

/// Collect `*.rules` files of a path (a file is taken as is, a folder is listed, sorted).
pub fn rule_files(path: &Path) -> Result<Vec<PathBuf>, RuleError> {
    let io = |e: std::io::Error| RuleError {
        file: path.display().to_string(),
        line: 0,
        sid: None,
        kind: ErrorKind::Io(e.to_string()),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(path).map_err(io)? {
        let p = e.map_err(io)?.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "rules") {
            out.push(p);
        } else if p.is_dir() {
            out.extend(rule_files(&p)?);
        }
    }
    out.sort();
    Ok(out)
}

/// Parse every enabled rule of the given files or folders.
pub fn load_paths(paths: &[PathBuf], ctx: &mut ParseCtx) -> Result<LoadReport, RuleError> {
    let mut report = LoadReport::default();
    for p in paths {
        for f in rule_files(p)? {
            let bytes = std::fs::read(&f).map_err(|e| RuleError {
                file: f.display().to_string(),
                line: 0,
                sid: None,
                kind: ErrorKind::Io(e.to_string()),
            })?;
            let text = String::from_utf8_lossy(&bytes);
            load_text(&text, &f.display().to_string(), ctx, &mut report);
            report.files.push(f);
        }
    }
    Ok(report)
}

/// Parse every enabled rule of one file's text into `report`.
pub fn load_text(text: &str, file: &str, ctx: &mut ParseCtx, report: &mut LoadReport) {
    let mut pending = String::new();
    let mut start_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if pending.is_empty() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            start_line = i + 1;
        }
        // multi-line rules end their lines with a backslash
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            continue;
        }
        pending.push_str(line);
        report.enabled += 1;
        match ctx.parse_rule(&pending, file, start_line) {
            Ok(r) => report.rules.push(r),
            Err(e) => report.failures.push(e),
        }
        pending.clear();
    }
    if !pending.is_empty() {
        report.enabled += 1;
        report.failures.push(RuleError {
            file: file.to_string(),
            line: start_line,
            sid: sniff_sid(&pending),
            kind: ErrorKind::Header("file ends inside a continued (`\\`) rule".into()),
        });
    }
}

#[cfg(test)]
mod test;
