//! Keywords beyond the core content language: transforms, `absent`, `base64_decode` /
//! `base64_data`, `dataset`, file keywords with values and the legacy TLS value keywords.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Builder, R, bad, lexer, need};
use crate::ast::*;
use crate::dataset::{Dataset, DatasetOp, DatasetRef, DatasetType, load_hash_list};
use crate::parse::ErrorKind;
use crate::transform;

/// Suricata's limit on transforms per buffer.
const MAX_TRANSFORMS: usize = 16;

/// `"x"` / `!"x"` / `x` → (text, negated).
fn negatable(v: &str) -> (String, bool) {
    let v = v.trim();
    let (neg, v) = v.strip_prefix('!').map_or((false, v), |r| (true, r.trim()));
    (lexer::unquote(v).to_string(), neg)
}

/// A file named by a rule, relative to the rule file's folder.
fn rule_relative(rule: &Rule, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    Path::new(&rule.file)
        .parent()
        .map_or_else(|| p.to_path_buf(), |d| d.join(p))
}

impl Builder<'_> {
    /// Keywords not handled by the core match in `option`.
    pub(super) fn option_ext(&mut self, rule: &mut Rule, name: &str, v: Option<&str>) -> R<()> {
        if transform::is_transform(name) {
            if matches!(self.cur, Buffer::Payload | Buffer::Base64Data) {
                return Err(bad(name, "transforms must follow a sticky buffer"));
            }
            if self.transforms.len() >= MAX_TRANSFORMS {
                return Err(bad(
                    name,
                    format!("more than {MAX_TRANSFORMS} transforms on one buffer"),
                ));
            }
            let t = transform::parse(name, v).map_err(|e| bad(name, e))?;
            self.transforms.push(t);
            return Ok(());
        }
        match name {
            "absent" => {
                let or_else = match v.map(str::trim) {
                    None | Some("") => false,
                    Some("or_else") => true,
                    Some(o) => {
                        return Err(bad(name, format!("unknown option `{o}` (only `or_else`)")));
                    }
                };
                if matches!(self.cur, Buffer::Payload | Buffer::Base64Data) {
                    return Err(bad(name, "needs a sticky buffer"));
                }
                let p = self.prog(rule, self.cur);
                if rule.programs[p].absent.is_some() {
                    return Err(bad(name, "given twice for one buffer"));
                }
                rule.programs[p].absent = Some(or_else);
            }
            "base64_decode" => self.base64_decode(rule, v)?,
            "tls.subject" | "tls.issuerdn" => {
                let (text, negated) = negatable(need(name, v)?);
                let buf = if name == "tls.subject" {
                    Buffer::TlsCertSubject
                } else {
                    Buffer::TlsCertIssuer
                };
                let c = Content::plain(text.into_bytes(), negated, false);
                self.last_content = Some(self.push_step(rule, buf, Step::Content(c)));
            }
            "fileext" => {
                let (ext, negated) = negatable(need(name, v)?);
                let mut c = Content::plain(format!(".{ext}").into_bytes(), negated, true);
                c.endswith = true;
                self.last_content = Some(self.push_step(rule, Buffer::FileName, Step::Content(c)));
            }
            "filestore" => {}
            "filemd5" | "filesha1" | "filesha256" => {
                let algo = match name {
                    "filemd5" => HashAlgo::Md5,
                    "filesha1" => HashAlgo::Sha1,
                    _ => HashAlgo::Sha256,
                };
                let (file, negated) = negatable(need(name, v)?);
                let mut list = load_hash_list(&rule_relative(rule, &file), algo.digest_len())
                    .map_err(|e| bad(name, e))?;
                // sorted: matching is a binary search
                list.sort_unstable();
                list.dedup();
                rule.packet_tests.push(PacketTest::FileHash {
                    algo,
                    negated,
                    list: Arc::new(list),
                });
            }
            "dataset" => self.dataset(rule, need(name, v)?)?,
            "app-layer-state" | "frame" | "filemagic" => {
                return Err(ErrorKind::Unsupported(name.to_string()));
            }
            other => return Err(ErrorKind::Unsupported(other.to_string())),
        }
        Ok(())
    }

    /// A sticky-buffer name given a value: the legacy `filename:"x"` keyword.
    pub(super) fn sticky_with_value(
        &mut self,
        rule: &mut Rule,
        name: &str,
        v: Option<&str>,
    ) -> R<()> {
        if name != "filename" {
            return Err(bad(name, "sticky buffer takes no value"));
        }
        let (text, negated) = negatable(need(name, v)?);
        let c = Content::plain(text.into_bytes(), negated, true);
        self.last_content = Some(self.push_step(rule, Buffer::FileName, Step::Content(c)));
        Ok(())
    }

    /// `base64_decode[:bytes <n>][, offset <n>][, relative]`.
    fn base64_decode(&mut self, rule: &mut Rule, v: Option<&str>) -> R<()> {
        const KW: &str = "base64_decode";
        let (mut bytes, mut offset, mut relative) = (None, 0u32, false);
        for part in v
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (k, val) = part
                .split_once(char::is_whitespace)
                .map_or((part, ""), |(a, b)| (a, b.trim()));
            let n = || {
                val.parse::<u32>()
                    .map_err(|_| bad(KW, format!("`{val}` is not a number")))
            };
            match k {
                "bytes" => bytes = Some(n()?).filter(|b| *b > 0),
                "offset" => offset = n()?,
                "relative" if val.is_empty() => relative = true,
                o => return Err(bad(KW, format!("unknown option `{o}`"))),
            }
        }
        if self.cur == Buffer::Base64Data {
            return Err(bad(KW, "cannot decode base64_data again"));
        }
        let buf = self.cur_for_relative(rule, relative);
        let at = self.push_step(
            rule,
            buf,
            Step::Base64Decode {
                bytes,
                offset,
                relative,
                data: Vec::new(),
            },
        );
        self.base64 = Some(at);
        Ok(())
    }

    /// `dataset:<op>,<name>,type <type>[,load <file>][,state <file>][,save <file>]...`
    fn dataset(&mut self, rule: &mut Rule, v: &str) -> R<()> {
        const KW: &str = "dataset";
        let mut parts = v.split(',').map(str::trim);
        let op = match parts.next().unwrap_or("") {
            "isset" => DatasetOp::IsSet,
            "isnotset" => DatasetOp::IsNotSet,
            "set" => DatasetOp::Set,
            "unset" => DatasetOp::Unset,
            o => return Err(bad(KW, format!("unknown command `{o}`"))),
        };
        let name = parts
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad(KW, "needs a set name"))?;
        let (mut kind, mut load) = (None, None);
        for part in parts.filter(|p| !p.is_empty()) {
            let (k, val) = part
                .split_once(char::is_whitespace)
                .map(|(a, b)| (a, b.trim()))
                .ok_or_else(|| bad(KW, format!("`{part}` is not `key value`")))?;
            match k {
                "type" => {
                    kind = Some(
                        DatasetType::from_name(val)
                            .ok_or_else(|| bad(KW, format!("unknown type `{val}`")))?,
                    )
                }
                "load" | "state" => load = Some(val.to_string()),
                // persistence and sizing: sets live in memory and are capped
                "save" | "memcap" | "hashsize" | "format" | "context_key" | "value_key"
                | "array_key" | "remove_key" => {}
                o => return Err(bad(KW, format!("unknown option `{o}`"))),
            }
        }
        if matches!(self.cur, Buffer::Payload | Buffer::Base64Data) {
            return Err(bad(KW, "needs a sticky buffer"));
        }
        let set = match self.ctx.datasets.get(name) {
            Some(s) => {
                if kind.is_some_and(|k| k != s.kind) {
                    return Err(bad(
                        KW,
                        format!("set `{name}` was declared with type {:?}", s.kind),
                    ));
                }
                s.clone()
            }
            None => {
                let kind = kind.ok_or_else(|| bad(KW, format!("set `{name}` needs a type")))?;
                let s = Dataset::new(name, kind);
                if let Some(f) = &load {
                    let path = rule_relative(rule, f);
                    // `state` files may not exist yet; a missing `load` file is an error
                    if path.exists() || !v.contains("state") {
                        s.load(&path).map_err(|e| bad(KW, e))?;
                    }
                }
                let s = Arc::new(s);
                self.ctx.datasets.insert(name.to_string(), s.clone());
                s
            }
        };
        let buf = self.cur;
        self.push_step(
            rule,
            buf,
            Step::Dataset {
                op,
                set: DatasetRef(set),
            },
        );
        Ok(())
    }

    /// Checks and moves that need the whole rule: `base64_data` contents go into their
    /// `base64_decode`; contents of case-transformed buffers must be able to match.
    pub(super) fn finish_ext(&mut self, rule: &mut Rule) -> R<()> {
        if let Some(i) = rule
            .programs
            .iter()
            .position(|p| p.buffer == Buffer::Base64Data)
        {
            let data = rule.programs.remove(i).steps;
            let decode = rule
                .programs
                .iter_mut()
                .flat_map(|p| p.steps.iter_mut())
                .filter_map(|s| match s {
                    Step::Base64Decode { data, .. } => Some(data),
                    _ => None,
                })
                .last()
                .ok_or_else(|| bad("base64_data", "needs a preceding base64_decode"))?;
            *decode = data;
        }
        for p in &rule.programs {
            if p.absent == Some(false) && !p.steps.is_empty() {
                return Err(bad(
                    "absent",
                    "cannot be combined with other keywords on its buffer (use `absent: or_else`)",
                ));
            }
            for s in &p.steps {
                if let Step::Content(c) = s {
                    transform::content_fits(&p.transforms, &c.pattern, c.nocase)
                        .map_err(|e| bad("content", e))?;
                }
            }
        }
        Ok(())
    }
}
