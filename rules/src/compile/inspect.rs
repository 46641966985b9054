//! Verification of one buffer against a rule's compiled program: contents with their
//! modifiers, pcre, byte_test/byte_jump/byte_extract, isdataat, bsize — with Suricata's
//! relative-match semantics and bounded backtracking.

use memchr::memmem;

use crate::ast::{ByteOp, NumCmp, NumEncoding, Val};

/// A compiled content.
#[derive(Debug)]
pub struct CContent {
    pub pattern: Vec<u8>,
    /// Lowercased pattern when `nocase`.
    pub nocase: bool,
    pub negated: bool,
    pub offset: Option<Val>,
    pub depth: Option<Val>,
    pub distance: Option<Val>,
    pub within: Option<Val>,
    pub endswith: bool,
    finder: memmem::Finder<'static>,
}

impl CContent {
    pub fn new(c: &crate::ast::Content) -> CContent {
        let pattern = if c.nocase {
            c.pattern.to_ascii_lowercase()
        } else {
            c.pattern.clone()
        };
        CContent {
            finder: memmem::Finder::new(&pattern).into_owned(),
            pattern,
            nocase: c.nocase,
            negated: c.negated,
            offset: c.offset,
            depth: c.depth,
            distance: c.distance,
            within: c.within,
            endswith: c.endswith,
        }
    }

    fn relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }

    /// First occurrence at or after `from` that ends at or before `end`.
    fn find(&self, buf: &[u8], from: usize, end: usize) -> Option<usize> {
        let n = self.pattern.len();
        if end > buf.len() || from > end || end - from < n {
            return None;
        }
        let hay = &buf[from..end];
        if self.endswith {
            let p = hay.len() - n;
            return self.eq_at(hay, p).then_some(from + p);
        }
        if !self.nocase {
            return self.finder.find(hay).map(|p| from + p);
        }
        let first = self.pattern[0];
        let upper = first.to_ascii_uppercase();
        let last_start = hay.len() - n;
        let mut i = 0;
        while i <= last_start {
            let p = match memchr::memchr2(first, upper, &hay[i..=last_start]) {
                Some(p) => i + p,
                None => return None,
            };
            if self.eq_at(hay, p) {
                return Some(from + p);
            }
            i = p + 1;
        }
        None
    }

    fn eq_at(&self, hay: &[u8], p: usize) -> bool {
        let s = &hay[p..p + self.pattern.len()];
        if self.nocase {
            s.eq_ignore_ascii_case(&self.pattern)
        } else {
            s == self.pattern.as_slice()
        }
    }
}

/// A compiled pcre.
#[derive(Debug)]
pub struct CPcre {
    pub re: pcre2::bytes::Regex,
    pub negated: bool,
    pub relative: bool,
}

/// One compiled step.
#[derive(Debug)]
pub enum CStep {
    Content(CContent),
    Pcre(CPcre),
    ByteTest(crate::ast::ByteTest),
    ByteJump(crate::ast::ByteJump),
    ByteExtract(crate::ast::ByteExtract),
    IsDataAt {
        n: Val,
        relative: bool,
        negated: bool,
    },
    Bsize(NumCmp),
    /// `base64_decode` and the `base64_data` program run on what it decoded.
    Base64Decode {
        bytes: Option<u32>,
        offset: u32,
        relative: bool,
        data: Vec<CStep>,
    },
    Dataset {
        op: crate::dataset::DatasetOp,
        set: std::sync::Arc<crate::dataset::Dataset>,
    },
}

/// Most bytes `base64_decode` decodes at once.
const BASE64_MAX_DECODED: usize = 64 * 1024;

/// Upper bound on backtracking work per buffer, Suricata's `inspection_recursion_limit`.
const BUDGET: u32 = 3000;

/// Byte-extract variables of one rule evaluation.
pub type Vars = [u64; 8];

/// Run `steps` over `buf`. Returns whether the buffer matches.
pub fn inspect(steps: &[CStep], buf: &[u8], vars: &mut Vars) -> bool {
    inspect_new(steps, buf, vars, 0)
}

/// Like [`inspect`], but the last positive match must end after `min_end`: used on a
/// stream window whose first `min_end` bytes were already inspected, so an old match is
/// not reported again. Programs without a positive match ignore `min_end`.
pub fn inspect_new(steps: &[CStep], buf: &[u8], vars: &mut Vars, min_end: usize) -> bool {
    let mut cx = Cx {
        budget: BUDGET,
        min_end,
    };
    run(steps, buf, 0, vars, &mut cx)
}

struct Cx {
    budget: u32,
    min_end: usize,
}

fn val(v: Val, vars: &Vars) -> i64 {
    match v {
        Val::Lit(n) => n,
        Val::Var(i) => vars[i as usize & 7] as i64,
    }
}

fn run(steps: &[CStep], buf: &[u8], prev_end: usize, vars: &mut Vars, cx: &mut Cx) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return prev_end == 0 || prev_end > cx.min_end;
    };
    if cx.budget == 0 {
        return false;
    }
    cx.budget -= 1;
    let len = buf.len() as i64;
    match step {
        CStep::Content(c) => {
            let (start, end) = window(c, prev_end, len, vars);
            if c.negated {
                if start <= end && c.find(buf, start, end).is_some() {
                    return false;
                }
                return run(rest, buf, prev_end, vars, cx);
            }
            if start > end {
                return false;
            }
            let mut from = start;
            while let Some(p) = c.find(buf, from, end) {
                if run(rest, buf, p + c.pattern.len(), vars, cx) {
                    return true;
                }
                // only a later relative step can profit from another occurrence
                if (cx.min_end == 0 && !rest_depends_on_position(rest)) || cx.budget == 0 {
                    return false;
                }
                from = p + 1;
            }
            false
        }
        CStep::Pcre(p) => {
            let base = if p.relative {
                prev_end.min(buf.len())
            } else {
                0
            };
            let subject = &buf[base..];
            if p.negated {
                if matches!(p.re.is_match(subject), Ok(true)) {
                    return false;
                }
                return run(rest, buf, prev_end, vars, cx);
            }
            let mut at = 0;
            loop {
                let m = match p.re.find_at(subject, at) {
                    Ok(Some(m)) => m,
                    _ => return false,
                };
                if run(rest, buf, base + m.end(), vars, cx) {
                    return true;
                }
                if (cx.min_end == 0 && !rest_depends_on_position(rest))
                    || cx.budget == 0
                    || m.start() >= subject.len()
                {
                    return false;
                }
                cx.budget = cx.budget.saturating_sub(1);
                at = m.start() + 1;
            }
        }
        CStep::ByteExtract(be) => {
            let pos = if be.relative {
                prev_end as i64 + be.offset
            } else {
                be.offset
            };
            let Some(v) = read_num(buf, pos, be.nbytes, be.enc) else {
                return false;
            };
            let mut v = match be.bitmask {
                Some(m) => apply_mask(v, m),
                None => v,
            };
            v = v.wrapping_mul(be.multiplier);
            let mut end = pos as usize + be.nbytes as usize;
            if be.align > 1 {
                let a = be.align as usize;
                end = end.div_ceil(a) * a;
            }
            vars[be.var as usize & 7] = v;
            run(rest, buf, end, vars, cx)
        }
        CStep::ByteTest(bt) => {
            let pos = val(bt.offset, vars) + if bt.relative { prev_end as i64 } else { 0 };
            let Some(v) = read_num(buf, pos, bt.nbytes, bt.enc) else {
                return false;
            };
            let v = match bt.bitmask {
                Some(m) => apply_mask(v, m),
                None => v,
            };
            let want = val(bt.value, vars) as u64;
            let ok = match bt.op {
                ByteOp::Lt => v < want,
                ByteOp::Gt => v > want,
                ByteOp::Le => v <= want,
                ByteOp::Ge => v >= want,
                ByteOp::Eq => v == want,
                ByteOp::And => v & want != 0,
                ByteOp::Or => v ^ want != 0,
            };
            if ok == bt.negated {
                return false;
            }
            run(rest, buf, prev_end, vars, cx)
        }
        CStep::ByteJump(bj) => {
            let pos = val(bj.offset, vars) + if bj.relative { prev_end as i64 } else { 0 };
            let nbytes = val(bj.nbytes, vars);
            if !(0..=20).contains(&nbytes)
                || (nbytes > 8 && !matches!(bj.enc, NumEncoding::String(_)))
            {
                return false;
            }
            let nbytes = nbytes as u8;
            let Some(v) = read_num(buf, pos, nbytes, bj.enc) else {
                return false;
            };
            let v = match bj.bitmask {
                Some(m) => apply_mask(v, m),
                None => v,
            };
            let mut jump = v.saturating_mul(bj.multiplier) as i64;
            if bj.align && jump % 4 != 0 {
                jump += 4 - jump % 4;
            }
            let base = if bj.from_beginning {
                0
            } else if bj.from_end {
                len
            } else {
                pos + nbytes as i64
            };
            let new = base.saturating_add(jump).saturating_add(bj.post_offset);
            if new < 0 || new > len {
                return false;
            }
            run(rest, buf, new as usize, vars, cx)
        }
        CStep::IsDataAt {
            n,
            relative,
            negated,
        } => {
            // Suricata: absolute `isdataat:n` needs a byte at offset n; relative needs n
            // bytes after the previous match
            let has = if *relative {
                prev_end as i64 + val(*n, vars) <= len
            } else {
                val(*n, vars) < len
            };
            if has == *negated {
                return false;
            }
            run(rest, buf, prev_end, vars, cx)
        }
        CStep::Bsize(cmp) => cmp.matches(buf.len() as u64) && run(rest, buf, prev_end, vars, cx),
        CStep::Base64Decode {
            bytes,
            offset,
            relative,
            data,
        } => {
            let start = if *relative { prev_end } else { 0 } + *offset as usize;
            if start >= buf.len() {
                return false;
            }
            let n = bytes.map_or(buf.len() - start, |b| (b as usize).min(buf.len() - start));
            let src = &buf[start..start + n.min(BASE64_MAX_DECODED * 4 / 3 + 4)];
            let mut decoded = Vec::with_capacity(src.len() * 3 / 4 + 3);
            crate::transform::base64_decode(
                src,
                crate::transform::Base64Mode::Rfc2045,
                &mut decoded,
            );
            if decoded.is_empty() {
                return false;
            }
            // the decoded bytes are a buffer of their own, with their own positions
            if !data.is_empty()
                && !run(
                    data,
                    &decoded,
                    0,
                    vars,
                    &mut Cx {
                        budget: cx.budget,
                        min_end: 0,
                    },
                )
            {
                return false;
            }
            run(rest, buf, prev_end, vars, cx)
        }
        CStep::Dataset { op, set } => set.apply(*op, buf) && run(rest, buf, prev_end, vars, cx),
    }
}

/// Whether a later step's outcome depends on where the previous match ended.
fn rest_depends_on_position(rest: &[CStep]) -> bool {
    rest.iter().any(|s| match s {
        CStep::Content(c) => c.relative(),
        CStep::Pcre(p) => p.relative,
        CStep::ByteTest(b) => b.relative,
        CStep::ByteJump(b) => b.relative,
        CStep::ByteExtract(b) => b.relative,
        CStep::IsDataAt { relative, .. } => *relative,
        CStep::Bsize(_) | CStep::Dataset { .. } => false,
        CStep::Base64Decode { relative, .. } => *relative,
    })
}

/// Search window `[start, end)` of a content given the previous match end.
fn window(c: &CContent, prev_end: usize, len: i64, vars: &Vars) -> (usize, usize) {
    let n = c.pattern.len() as i64;
    let (start, end) = if c.relative() {
        let dist = c.distance.map_or(0, |d| val(d, vars));
        let start = (prev_end as i64 + dist).max(0);
        let end = match c.within {
            Some(w) => (prev_end as i64 + dist + val(w, vars)).min(len),
            None => len,
        };
        (start, end)
    } else {
        let off = c.offset.map_or(0, |o| val(o, vars)).max(0);
        let end = match c.depth {
            Some(d) => (off + val(d, vars)).min(len),
            None => len,
        };
        (off, end)
    };
    if end < start + n || start > len {
        return (1, 0);
    }
    (start as usize, end as usize)
}

fn apply_mask(v: u64, m: u64) -> u64 {
    if m == 0 {
        return v;
    }
    (v & m) >> m.trailing_zeros()
}

/// Read `n` bytes at `pos` as a number.
fn read_num(buf: &[u8], pos: i64, n: u8, enc: NumEncoding) -> Option<u64> {
    if pos < 0 {
        return None;
    }
    let pos = pos as usize;
    if n == 0 {
        // Suricata accepts 0 bytes: a binary read of nothing is 0; a string read takes the
        // digits that are there
        let rest = buf.get(pos..)?;
        return match enc {
            NumEncoding::String(base) => {
                let len = rest
                    .iter()
                    .take(20)
                    .take_while(|b| (**b as char).is_digit(base))
                    .count();
                read_num(buf, pos as i64, len as u8, enc)
            }
            _ => Some(0),
        };
    }
    let bytes = buf.get(pos..pos.checked_add(n as usize)?)?;
    match enc {
        NumEncoding::Big => Some(bytes.iter().fold(0u64, |a, &b| a << 8 | b as u64)),
        NumEncoding::Little => Some(bytes.iter().rev().fold(0u64, |a, &b| a << 8 | b as u64)),
        NumEncoding::String(base) => {
            // leading digits only, like strtoull; at least one digit
            let mut v: u64 = 0;
            let mut any = false;
            for &b in bytes {
                let d = (b as char).to_digit(base)?;
                v = v.checked_mul(base as u64)?.checked_add(d as u64)?;
                any = true;
            }
            any.then_some(v)
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::ast::Content;

    fn content(p: &[u8]) -> Content {
        Content::plain(p.to_vec(), false, false)
    }

    fn ok(steps: Vec<CStep>, buf: &[u8]) -> bool {
        inspect(&steps, buf, &mut [0; 8])
    }

    #[test]
    fn depth_offset_and_relative() {
        let c = CStep::Content(CContent::new(&Content {
            depth: Some(Val::Lit(3)),
            ..content(b"GET")
        }));
        assert!(ok(vec![c], b"GET /"));
        let c = CStep::Content(CContent::new(&Content {
            depth: Some(Val::Lit(3)),
            ..content(b"GET")
        }));
        assert!(!ok(vec![c], b" GET /"));
        // backtracking: first "a" is followed by "x", the second by "b"
        let a = CStep::Content(CContent::new(&content(b"a")));
        let b = CStep::Content(CContent::new(&Content {
            distance: Some(Val::Lit(0)),
            within: Some(Val::Lit(1)),
            ..content(b"b")
        }));
        assert!(ok(vec![a, b], b"axab"));
        let a = CStep::Content(CContent::new(&content(b"a")));
        let b = CStep::Content(CContent::new(&Content {
            distance: Some(Val::Lit(0)),
            within: Some(Val::Lit(1)),
            ..content(b"b")
        }));
        assert!(!ok(vec![a, b], b"axax b"));
    }

    #[test]
    fn nocase_negation_endswith() {
        let c = CStep::Content(CContent::new(&Content {
            nocase: true,
            ..content(b"HeLLo")
        }));
        assert!(ok(vec![c], b"xxhelloxx"));
        let n = CStep::Content(CContent::new(&Content {
            negated: true,
            ..content(b"bad")
        }));
        assert!(!ok(vec![n], b"so bad"));
        let e = CStep::Content(CContent::new(&Content {
            endswith: true,
            ..content(b".exe")
        }));
        assert!(ok(vec![e], b"a.exe"));
        let e = CStep::Content(CContent::new(&Content {
            endswith: true,
            ..content(b".exe")
        }));
        assert!(!ok(vec![e], b"a.exe "));
    }

    #[test]
    fn byte_keywords() {
        use crate::ast::{ByteExtract, ByteJump, ByteTest};
        let bt = ByteTest {
            nbytes: 2,
            op: ByteOp::Eq,
            negated: false,
            value: Val::Lit(0x0102),
            offset: Val::Lit(1),
            relative: false,
            enc: NumEncoding::Big,
            bitmask: None,
        };
        assert!(ok(vec![CStep::ByteTest(bt.clone())], &[0, 1, 2]));
        assert!(!ok(
            vec![CStep::ByteTest(ByteTest {
                enc: NumEncoding::Little,
                ..bt.clone()
            })],
            &[0, 1, 2]
        ));
        assert!(!ok(vec![CStep::ByteTest(bt)], &[0, 1]));
        // jump over a length-prefixed field then find "z" right after it
        let bj = ByteJump {
            nbytes: Val::Lit(1),
            offset: Val::Lit(0),
            relative: false,
            enc: NumEncoding::Big,
            multiplier: 1,
            align: false,
            from_beginning: false,
            from_end: false,
            post_offset: 0,
            bitmask: None,
        };
        let z = CContent::new(&Content {
            distance: Some(Val::Lit(0)),
            within: Some(Val::Lit(1)),
            ..content(b"z")
        });
        assert!(ok(
            vec![CStep::ByteJump(bj), CStep::Content(z)],
            &[3, b'z', b'z', b'z', b'z']
        ));
        let be = ByteExtract {
            nbytes: 1,
            offset: 0,
            var: 0,
            relative: false,
            enc: NumEncoding::String(10),
            multiplier: 1,
            align: 0,
            bitmask: None,
        };
        let z = CContent::new(&Content {
            offset: Some(Val::Var(0)),
            depth: Some(Val::Lit(1)),
            ..content(b"z")
        });
        assert!(ok(
            vec![CStep::ByteExtract(be.clone()), CStep::Content(z)],
            b"2azb"
        ));
        let z = CContent::new(&Content {
            offset: Some(Val::Var(0)),
            depth: Some(Val::Lit(1)),
            ..content(b"z")
        });
        assert!(!ok(
            vec![CStep::ByteExtract(be), CStep::Content(z)],
            b"3azb"
        ));
    }

    #[test]
    fn isdataat_and_bsize() {
        assert!(ok(
            vec![CStep::IsDataAt {
                n: Val::Lit(2),
                relative: false,
                negated: false
            }],
            b"abc"
        ));
        assert!(!ok(
            vec![CStep::IsDataAt {
                n: Val::Lit(3),
                relative: false,
                negated: false
            }],
            b"abc"
        ));
        assert!(ok(
            vec![CStep::IsDataAt {
                n: Val::Lit(3),
                relative: false,
                negated: true
            }],
            b"abc"
        ));
        assert!(ok(vec![CStep::Bsize(NumCmp::Range(1, 4))], b"abc"));
        assert!(!ok(vec![CStep::Bsize(NumCmp::Lt(3))], b"abc"));
    }

    #[test]
    fn only_new_matches_count_on_a_window() {
        let c = || vec![CStep::Content(CContent::new(&content(b"ab")))];
        // "ab" at 0 is old (first 3 bytes inspected before); the one at 4 is new
        assert!(inspect_new(&c(), b"abxxab", &mut [0; 8], 3));
        assert!(!inspect_new(&c(), b"abxxxx", &mut [0; 8], 3));
    }
}
