//! `byte_test`, `byte_jump` and `byte_extract` option parsing.

use super::ErrorKind;
use super::options::Builder;
use crate::ast::*;

type R<T> = Result<T, ErrorKind>;

fn bad(kw: &str, reason: impl Into<String>) -> ErrorKind {
    ErrorKind::BadValue {
        keyword: kw.to_string(),
        reason: reason.into(),
    }
}

fn parse_u64(kw: &str, s: &str) -> R<u64> {
    let s = s.trim();
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        s.parse()
    };
    r.map_err(|_| bad(kw, format!("`{s}` is not a number")))
}

/// Shared trailing options.
#[derive(Default)]
struct Tail {
    relative: bool,
    big: Option<bool>,
    string: Option<u32>,
    multiplier: Option<u64>,
    align: bool,
    align_n: Option<u8>,
    from_beginning: bool,
    from_end: bool,
    post_offset: Option<i64>,
    bitmask: Option<u64>,
}

fn tail(kw: &str, parts: &[&str]) -> R<Tail> {
    let mut t = Tail::default();
    let mut i = 0;
    while i < parts.len() {
        let p = parts[i].trim();
        let (k, arg) = match p.split_once(' ') {
            Some((a, b)) => (a.trim(), Some(b.trim())),
            None => (p, None),
        };
        match k {
            "relative" => t.relative = true,
            "big" => t.big = Some(true),
            "little" => t.big = Some(false),
            "dce" => return Err(bad(kw, "dce is not supported")),
            "string" => {
                // the base may be the next part or in the same part
                let base = match arg {
                    Some(b) => b,
                    None => match parts.get(i + 1).map(|s| s.trim()) {
                        Some(b @ ("hex" | "dec" | "oct")) => {
                            i += 1;
                            b
                        }
                        _ => "dec",
                    },
                };
                t.string = Some(match base {
                    "hex" => 16,
                    "dec" => 10,
                    "oct" => 8,
                    o => return Err(bad(kw, format!("unknown string base `{o}`"))),
                });
            }
            "hex" => t.string = Some(16),
            "dec" => t.string = Some(10),
            "oct" => t.string = Some(8),
            "multiplier" => {
                t.multiplier = Some(parse_u64(
                    kw,
                    arg.ok_or_else(|| bad(kw, "multiplier needs a value"))?,
                )?)
            }
            "align" => {
                t.align = true;
                if let Some(a) = arg {
                    let n = parse_u64(kw, a)?;
                    if n != 2 && n != 4 {
                        return Err(bad(kw, "align must be 2 or 4"));
                    }
                    t.align_n = Some(n as u8);
                }
            }
            "from_beginning" => t.from_beginning = true,
            "from_end" => t.from_end = true,
            "post_offset" => {
                let a = arg.ok_or_else(|| bad(kw, "post_offset needs a value"))?;
                t.post_offset = Some(
                    a.parse()
                        .map_err(|_| bad(kw, format!("bad post_offset `{a}`")))?,
                );
            }
            "bitmask" => {
                t.bitmask = Some(parse_u64(
                    kw,
                    arg.ok_or_else(|| bad(kw, "bitmask needs a value"))?,
                )?)
            }
            "" => {}
            o => return Err(bad(kw, format!("unknown option `{o}`"))),
        }
        i += 1;
    }
    Ok(t)
}

fn encoding(kw: &str, t: &Tail, nbytes: u8) -> R<NumEncoding> {
    match t.string {
        Some(base) => {
            if nbytes > 20 {
                return Err(bad(kw, "string conversion takes at most 20 bytes"));
            }
            Ok(NumEncoding::String(base))
        }
        None => {
            if nbytes > 8 {
                return Err(bad(kw, "binary conversion takes at most 8 bytes"));
            }
            Ok(if t.big == Some(false) {
                NumEncoding::Little
            } else {
                NumEncoding::Big
            })
        }
    }
}

fn nbytes(kw: &str, s: &str) -> R<u8> {
    s.trim()
        .parse()
        .map_err(|_| bad(kw, format!("`{}` is not a byte count", s.trim())))
}

pub(super) fn byte_test(b: &mut Builder<'_>, v: &str) -> R<ByteTest> {
    const KW: &str = "byte_test";
    let parts: Vec<&str> = v.split(',').collect();
    if parts.len() < 4 {
        return Err(bad(KW, "expected <bytes>,<op>,<value>,<offset>[,...]"));
    }
    let n = nbytes(KW, parts[0])?;
    let op_s = parts[1].trim();
    let (negated, op_s) = op_s
        .strip_prefix('!')
        .map_or((false, op_s), |r| (true, r.trim()));
    let op = match op_s {
        "<" => ByteOp::Lt,
        ">" => ByteOp::Gt,
        "<=" => ByteOp::Le,
        ">=" => ByteOp::Ge,
        "=" | "" => ByteOp::Eq,
        "&" => ByteOp::And,
        "^" => ByteOp::Or,
        o => return Err(bad(KW, format!("unknown operator `{o}`"))),
    };
    let value_s = parts[2].trim();
    let value = match parse_u64(KW, value_s) {
        Ok(n) => Val::Lit(n as i64),
        Err(_) => b.var_val(KW, value_s)?,
    };
    let offset = b.var_val(KW, parts[3])?;
    let t = tail(KW, &parts[4..])?;
    Ok(ByteTest {
        nbytes: n,
        op,
        negated,
        value,
        offset,
        relative: t.relative,
        enc: encoding(KW, &t, n)?,
        bitmask: t.bitmask,
    })
}

pub(super) fn byte_jump(b: &mut Builder<'_>, v: &str) -> R<ByteJump> {
    const KW: &str = "byte_jump";
    let parts: Vec<&str> = v.split(',').collect();
    if parts.len() < 2 {
        return Err(bad(KW, "expected <bytes>,<offset>[,...]"));
    }
    let n = b.var_val(KW, parts[0])?;
    let offset = b.var_val(KW, parts[1])?;
    let t = tail(KW, &parts[2..])?;
    let enc_n = match n {
        Val::Lit(v) if !(0..=20).contains(&v) => {
            return Err(bad(KW, format!("`{v}` is not a byte count")));
        }
        Val::Lit(v) => v as u8,
        Val::Var(_) => 1,
    };
    if t.from_beginning && t.from_end {
        return Err(bad(KW, "from_beginning and from_end together"));
    }
    Ok(ByteJump {
        nbytes: n,
        offset,
        relative: t.relative,
        enc: encoding(KW, &t, enc_n)?,
        multiplier: t.multiplier.unwrap_or(1),
        align: t.align,
        from_beginning: t.from_beginning,
        from_end: t.from_end,
        post_offset: t.post_offset.unwrap_or(0),
        bitmask: t.bitmask,
    })
}

pub(super) fn byte_extract(_b: &mut Builder<'_>, v: &str) -> R<(ByteExtract, String)> {
    const KW: &str = "byte_extract";
    let parts: Vec<&str> = v.split(',').collect();
    if parts.len() < 3 {
        return Err(bad(KW, "expected <bytes>,<offset>,<name>[,...]"));
    }
    let n = nbytes(KW, parts[0])?;
    let offset: i64 = parts[1]
        .trim()
        .parse()
        .map_err(|_| bad(KW, format!("bad offset `{}`", parts[1].trim())))?;
    let name = parts[2].trim().to_string();
    if name.is_empty() || name.parse::<i64>().is_ok() {
        return Err(bad(KW, "variable name missing"));
    }
    let t = tail(KW, &parts[3..])?;
    Ok((
        ByteExtract {
            nbytes: n,
            offset,
            var: 0,
            relative: t.relative,
            enc: encoding(KW, &t, n)?,
            multiplier: t.multiplier.unwrap_or(1),
            align: t.align_n.unwrap_or(0),
            bitmask: t.bitmask,
        },
        name,
    ))
}
