//! Suricata's transformations: keywords after a sticky buffer that turn its bytes into
//! something else before the buffer's contents are matched (`dns.query; dotprefix;`,
//! `file.data; from_base64; gunzip;`, ...). Transforms run in rule order, each on the output
//! of the one before.
//!
//! [`parse`] reads one transform keyword, [`TransformBuf::apply`] runs a chain without
//! allocating once its buffers have grown, and [`prefilter_literal`] derives a literal the
//! *untransformed* buffer must contain for a content of the transformed one to match, so
//! transformed programs can still be prefiltered where that is sound.

use std::io::Read;

use crate::digest;

/// One transformation of a sticky buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    /// Prepend a `.` (domain names: `.evil.com` matches `evil.com` and `a.evil.com`).
    DotPrefix,
    ToLowercase,
    ToUppercase,
    /// Remove every whitespace byte (C `isspace`).
    StripWhitespace,
    /// Keep only the first byte of each run of whitespace.
    CompressWhitespace,
    /// `%XX` → byte, `+` → space; invalid escapes are kept as they are.
    UrlDecode,
    /// XOR with a repeating key, from `offset` on (the bytes before are kept as they are).
    Xor {
        key: XorKey,
        offset: u32,
    },
    FromBase64 {
        bytes: u32,
        offset: u32,
        mode: Base64Mode,
    },
    /// Lowercase header names (up to each line's first `:`).
    HeaderLowercase,
    /// Drop header lines starting with `:` (HTTP/2 pseudo headers).
    StripPseudoHeaders,
    ToMd5,
    ToSha1,
    ToSha256,
    /// A slice of the buffer; negative values count from the end.
    Subslice {
        offset: i64,
        nbytes: Option<i64>,
        truncate: bool,
    },
    /// Decompress gzip / zlib, keeping at most `max_size` bytes.
    Gunzip {
        max_size: u32,
    },
    ZlibDeflate {
        max_size: u32,
    },
}

/// Where `xor` takes its key from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XorKey {
    /// A key written in the rule (`xor:"0d0ac8ff"`).
    Fixed(Vec<u8>),
    /// `nbytes` bytes of the buffer itself at `offset` (`xor:offset 1,extract 1 0`): the
    /// buffer is left alone when they lie past its end.
    Extract { offset: u16, nbytes: u8 },
}

/// How `from_base64` treats bytes outside the alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Base64Mode {
    /// Stop at the first invalid byte.
    #[default]
    Rfc4648,
    /// Skip invalid bytes (MIME).
    Rfc2045,
    /// Any invalid byte fails the decode.
    Strict,
}

/// Default output cap of `gunzip` / `zlib_deflate`, as in Suricata.
const DECOMPRESS_DEFAULT_MAX: u32 = 1024;
/// Largest output cap a rule may ask for.
const DECOMPRESS_LIMIT: u32 = 16 << 20;

/// Whether `name` is a transform keyword.
pub fn is_transform(name: &str) -> bool {
    matches!(
        name,
        "dotprefix"
            | "to_lowercase"
            | "to_uppercase"
            | "strip_whitespace"
            | "compress_whitespace"
            | "url_decode"
            | "xor"
            | "from_base64"
            | "header_lowercase"
            | "strip_pseudo_headers"
            | "to_md5"
            | "to_sha1"
            | "to_sha256"
            | "subslice"
            | "gunzip"
            | "zlib_deflate"
    )
}

/// Parse a transform keyword and its value (`Err` holds the reason).
pub fn parse(name: &str, value: Option<&str>) -> Result<Transform, String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let no_value = |t: Transform| match value {
        Some(_) => Err("takes no value".to_string()),
        None => Ok(t),
    };
    match name {
        "dotprefix" => no_value(Transform::DotPrefix),
        "to_lowercase" => no_value(Transform::ToLowercase),
        "to_uppercase" => no_value(Transform::ToUppercase),
        "strip_whitespace" => no_value(Transform::StripWhitespace),
        "compress_whitespace" => no_value(Transform::CompressWhitespace),
        "url_decode" => no_value(Transform::UrlDecode),
        "header_lowercase" => no_value(Transform::HeaderLowercase),
        "strip_pseudo_headers" => no_value(Transform::StripPseudoHeaders),
        "to_md5" => no_value(Transform::ToMd5),
        "to_sha1" => no_value(Transform::ToSha1),
        "to_sha256" => no_value(Transform::ToSha256),
        "xor" => parse_xor(value.ok_or("needs a hex key")?),
        "from_base64" => parse_from_base64(value.unwrap_or("")),
        "subslice" => parse_subslice(value.ok_or("needs `offset[, nbytes][, truncate]`")?),
        "gunzip" | "zlib_deflate" => {
            let max_size = parse_max_size(value.unwrap_or(""))?;
            Ok(if name == "gunzip" {
                Transform::Gunzip { max_size }
            } else {
                Transform::ZlibDeflate { max_size }
            })
        }
        _ => Err("not a transform".to_string()),
    }
}

/// `xor` takes `[offset <n>,]<key>` where the key is hex (optionally quoted) or
/// `extract <nbytes> <offset>` (Suricata 9 also spells it `var <nbytes> <offset>`).
fn parse_xor(v: &str) -> Result<Transform, String> {
    let (offset, key) = match keyword_rest(v, "offset") {
        Some(rest) => {
            let (n, key) = rest
                .split_once(',')
                .ok_or("`offset` needs `offset <n>,<key>`")?;
            let n = n.trim();
            let n = n
                .parse::<u32>()
                .map_err(|_| format!("`{n}` is not an offset"))?;
            (n, key.trim())
        }
        None => (0, v.trim()),
    };
    let extract = keyword_rest(key, "extract").or_else(|| keyword_rest(key, "var"));
    let key = match extract {
        Some(spec) => parse_xor_extract(spec)?,
        None => XorKey::Fixed(parse_hex_key(key)?),
    };
    Ok(Transform::Xor { key, offset })
}

/// The text after a leading `word` followed by whitespace.
fn keyword_rest<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    s.strip_prefix(word)
        .filter(|r| r.starts_with(|c: char| c.is_ascii_whitespace()))
        .map(str::trim)
}

/// `<nbytes> <offset>` of a key taken from the buffer.
fn parse_xor_extract(spec: &str) -> Result<XorKey, String> {
    let mut parts = spec.split_ascii_whitespace();
    let (Some(nbytes), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("`extract` needs `extract <nbytes> <offset>`".into());
    };
    let nbytes = nbytes
        .parse::<u8>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(format!("key length `{nbytes}` is not between 1 and 255"))?;
    let offset = offset
        .parse::<u16>()
        .map_err(|_| format!("key offset `{offset}` is not between 0 and 65535"))?;
    Ok(XorKey::Extract { offset, nbytes })
}

fn parse_hex_key(v: &str) -> Result<Vec<u8>, String> {
    let hex = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
        .trim();
    if hex.is_empty() || !hex.len().is_multiple_of(2) || hex.len() > 510 {
        return Err("key must be an even number of hex digits (at most 255 bytes)".into());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or(format!("`{hex}` is not hex"))
        })
        .collect()
}

fn parse_from_base64(v: &str) -> Result<Transform, String> {
    let (mut bytes, mut offset, mut mode) = (None, None, None);
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = part
            .split_once(char::is_whitespace)
            .map(|(a, b)| (a, b.trim()))
            .ok_or(format!("`{part}` is not `key value`"))?;
        let n = || {
            val.parse::<u32>()
                .ok()
                .filter(|n| *n <= u16::MAX as u32)
                .ok_or(format!("`{val}` is not a number up to 65535"))
        };
        match k {
            "bytes" if bytes.is_none() => bytes = Some(n()?),
            "offset" if offset.is_none() => offset = Some(n()?),
            "mode" if mode.is_none() => {
                mode = Some(match val {
                    "rfc4648" => Base64Mode::Rfc4648,
                    "rfc2045" => Base64Mode::Rfc2045,
                    "strict" => Base64Mode::Strict,
                    o => return Err(format!("unknown mode `{o}`")),
                })
            }
            "bytes" | "offset" | "mode" => return Err(format!("`{k}` given twice")),
            o => return Err(format!("unknown option `{o}`")),
        }
    }
    Ok(Transform::FromBase64 {
        bytes: bytes.unwrap_or(0),
        offset: offset.unwrap_or(0),
        mode: mode.unwrap_or_default(),
    })
}

fn parse_subslice(v: &str) -> Result<Transform, String> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("`{s}` is not a number"))
    };
    let nonzero = |s: &str| {
        int(s).and_then(|n| {
            if n == 0 {
                Err("nbytes must not be 0".to_string())
            } else {
                Ok(n)
            }
        })
    };
    let truncate = |s: &str| s.eq_ignore_ascii_case("truncate");
    let (offset, nbytes, truncate) = match parts.as_slice() {
        [o] => (int(o)?, None, false),
        [o, t] if truncate(t) => (int(o)?, None, true),
        [o, n] => (int(o)?, Some(nonzero(n)?), false),
        [o, n, t] if truncate(t) => (int(o)?, Some(nonzero(n)?), true),
        _ => return Err(
            "expected `offset`, `offset, nbytes`, `offset, truncate` or `offset, nbytes, truncate`"
                .into(),
        ),
    };
    Ok(Transform::Subslice {
        offset,
        nbytes,
        truncate,
    })
}

fn parse_max_size(v: &str) -> Result<u32, String> {
    if v.is_empty() {
        return Ok(DECOMPRESS_DEFAULT_MAX);
    }
    let (k, val) = v
        .split_once(['=', ' '])
        .map(|(a, b)| (a.trim(), b.trim()))
        .ok_or(format!("`{v}` is not `max-size <n>`"))?;
    if k != "max-size" {
        return Err(format!("unknown option `{k}`"));
    }
    let (digits, unit) = val.split_at(val.find(|c: char| !c.is_ascii_digit()).unwrap_or(val.len()));
    let mult: u64 = match unit.trim() {
        "" => 1,
        "kb" | "KB" => 1000,
        "kib" | "KiB" => 1024,
        "mb" | "MB" => 1_000_000,
        "mib" | "MiB" => 1 << 20,
        u => return Err(format!("unknown unit `{u}`")),
    };
    let n = digits
        .parse::<u64>()
        .map_err(|_| format!("`{val}` is not a size"))?
        * mult;
    if n == 0 || n > DECOMPRESS_LIMIT as u64 {
        return Err(format!("max-size must be between 1 and {DECOMPRESS_LIMIT}"));
    }
    Ok(n as u32)
}

/// C `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Reusable buffers for running transform chains: no allocation per buffer once grown.
#[derive(Debug, Default)]
pub struct TransformBuf {
    out: Vec<u8>,
    tmp: Vec<u8>,
}

impl TransformBuf {
    pub fn new() -> TransformBuf {
        TransformBuf::default()
    }

    /// Run `chain` over `input`. `None` when a transform fails (a `from_base64` that decodes
    /// nothing): the buffer then matches nothing, as in Suricata.
    pub fn apply(&mut self, chain: &[Transform], input: &[u8]) -> Option<&[u8]> {
        self.out.clear();
        self.out.extend_from_slice(input);
        for t in chain {
            std::mem::swap(&mut self.out, &mut self.tmp);
            self.out.clear();
            if !apply_one(t, &self.tmp, &mut self.out) {
                return None;
            }
        }
        Some(&self.out)
    }
}

/// Apply one transform chain into `out` (convenience form of [`TransformBuf::apply`]).
/// Returns false when a transform failed.
pub fn apply_transforms(chain: &[Transform], input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut tb = TransformBuf {
        out: std::mem::take(out),
        tmp: Vec::new(),
    };
    let ok = tb.apply(chain, input).is_some();
    *out = tb.out;
    ok
}

/// Apply one transform, appending to `out`.
fn apply_one(t: &Transform, input: &[u8], out: &mut Vec<u8>) -> bool {
    match t {
        Transform::DotPrefix => {
            // Suricata leaves an empty buffer empty
            if !input.is_empty() {
                out.push(b'.');
                out.extend_from_slice(input);
            }
        }
        Transform::ToLowercase => out.extend(input.iter().map(u8::to_ascii_lowercase)),
        Transform::ToUppercase => out.extend(input.iter().map(u8::to_ascii_uppercase)),
        Transform::StripWhitespace => out.extend(input.iter().copied().filter(|b| !is_space(*b))),
        Transform::CompressWhitespace => {
            let mut space = false;
            for &b in input {
                if !is_space(b) {
                    out.push(b);
                    space = false;
                } else if !space {
                    out.push(b);
                    space = true;
                }
            }
        }
        Transform::UrlDecode => url_decode(input, out),
        Transform::Xor { key, offset } => xor(input, key, *offset, out),
        Transform::FromBase64 {
            bytes,
            offset,
            mode,
        } => {
            let mut data = input;
            if *offset > 0 {
                if *offset as usize >= data.len() {
                    out.extend_from_slice(input);
                    return true;
                }
                data = &data[*offset as usize..];
            }
            if *bytes > 0 {
                if *bytes as usize >= data.len() {
                    out.extend_from_slice(input);
                    return true;
                }
                data = &data[..*bytes as usize];
            }
            if input.is_empty() {
                return true;
            }
            return base64_decode(data, *mode, out) && !out.is_empty();
        }
        Transform::HeaderLowercase => {
            let mut in_value = false;
            for &b in input {
                if in_value {
                    out.push(b);
                    in_value = b != b'\n';
                } else {
                    in_value = b == b':';
                    out.push(b.to_ascii_lowercase());
                }
            }
        }
        Transform::StripPseudoHeaders => {
            for line in input.split_inclusive(|b| *b == b'\n') {
                if line.first() != Some(&b':') {
                    out.extend_from_slice(line);
                }
            }
        }
        Transform::ToMd5 => out.extend_from_slice(&digest::md5(input)),
        Transform::ToSha1 => out.extend_from_slice(&digest::sha1(input)),
        Transform::ToSha256 => {
            use sha2::Digest;
            out.extend_from_slice(&sha2::Sha256::digest(input));
        }
        Transform::Subslice {
            offset,
            nbytes,
            truncate,
        } => {
            if let Some(s) = subslice(input, *offset, *nbytes, *truncate) {
                out.extend_from_slice(s);
            }
        }
        Transform::Gunzip { max_size } => {
            let _ = flate2::read::GzDecoder::new(input)
                .take(*max_size as u64)
                .read_to_end(out);
        }
        Transform::ZlibDeflate { max_size } => {
            let _ = flate2::read::ZlibDecoder::new(input)
                .take(*max_size as u64)
                .read_to_end(out);
        }
    }
    true
}

/// XOR `input[offset..]` with the key (Suricata leaves the buffer alone when the offset or
/// an extracted key lies past its end).
fn xor(input: &[u8], key: &XorKey, offset: u32, out: &mut Vec<u8>) {
    let start = offset as usize;
    let key = match key {
        XorKey::Fixed(k) => Some(k.as_slice()),
        XorKey::Extract { offset, nbytes } => {
            let from = *offset as usize;
            input.get(from..from + *nbytes as usize)
        }
    };
    match key {
        Some(key) if start <= input.len() && !key.is_empty() => {
            out.extend_from_slice(&input[..start]);
            out.extend(
                input[start..]
                    .iter()
                    .zip(key.iter().cycle())
                    .map(|(b, k)| b ^ k),
            );
        }
        _ => out.extend_from_slice(input),
    }
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn url_decode(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            // `%` followed by up to two hex digits; anything short of that is kept verbatim
            let h = input.get(i + 1).copied();
            let l = input.get(i + 2).copied();
            match (h.and_then(hex_val), l.and_then(hex_val)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                (Some(_), None) => {
                    out.push(b'%');
                    out.extend(h);
                    out.extend(l);
                    i += 3;
                }
                (None, _) => {
                    out.push(b'%');
                    out.extend(h);
                    i += 2;
                }
            }
            continue;
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
}

fn subslice(data: &[u8], offset: i64, nbytes: Option<i64>, truncate: bool) -> Option<&[u8]> {
    let len = data.len() as i64;
    if offset.abs() > len && !truncate {
        return None;
    }
    let start = if offset >= 0 {
        offset.min(len)
    } else {
        len + offset.max(-len)
    };
    let end = match nbytes {
        None => len,
        Some(n) if n < 0 => {
            let c = len + n;
            if c < 0 && !truncate {
                return None;
            }
            c.max(0)
        }
        Some(n) => {
            let c = start + n;
            if c > len && !truncate {
                return None;
            }
            c.min(len)
        }
    };
    let (a, b) = if end < start {
        (end, start)
    } else {
        (start, end)
    };
    Some(&data[a as usize..b as usize])
}

fn b64_val(b: u8) -> Option<u8> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    })
}

/// Decode base64 into `out`. `=` ends the data; a last partial group yields the bytes it
/// completely encodes. Returns false only for invalid input in strict mode.
pub fn base64_decode(input: &[u8], mode: Base64Mode, out: &mut Vec<u8>) -> bool {
    let mut acc = 0u32;
    let mut n = 0u8;
    for &b in input {
        if b == b'=' {
            break;
        }
        let Some(v) = b64_val(b) else {
            match mode {
                Base64Mode::Rfc2045 => continue,
                Base64Mode::Rfc4648 => break,
                Base64Mode::Strict => return false,
            }
        };
        acc = acc << 6 | v as u32;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    true
}

/// For a content `lit` (with `nocase`) to match the output of `chain`, which literal must
/// the untransformed buffer contain? `None` when no sound literal exists.
pub fn prefilter_literal(chain: &[Transform], lit: &[u8], nocase: bool) -> Option<(Vec<u8>, bool)> {
    let mut lit = lit.to_vec();
    let mut nocase = nocase;
    for t in chain.iter().rev() {
        match t {
            Transform::DotPrefix => {
                // the literal either starts at the added dot or lies within the input
                if lit.first() == Some(&b'.') {
                    lit.remove(0);
                }
            }
            Transform::ToLowercase | Transform::ToUppercase | Transform::HeaderLowercase => {
                nocase = true
            }
            Transform::CompressWhitespace if !lit.iter().any(|b| is_space(*b)) => {}
            Transform::StripPseudoHeaders if !lit.contains(&b'\n') => {}
            Transform::Subslice { .. } => {}
            _ => return None,
        }
        if lit.is_empty() {
            return None;
        }
    }
    Some((lit, nocase))
}

/// Whether a content can ever match the output of `chain` (Suricata refuses rules whose
/// content contradicts a case transform).
pub fn content_fits(chain: &[Transform], lit: &[u8], nocase: bool) -> Result<(), &'static str> {
    match chain.last() {
        Some(Transform::ToLowercase) if !nocase && lit.iter().any(u8::is_ascii_uppercase) => {
            Err("content has upper case letters but the buffer is lowercased")
        }
        Some(Transform::ToUppercase) if !nocase && lit.iter().any(u8::is_ascii_lowercase) => {
            Err("content has lower case letters but the buffer is uppercased")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chain: &[Transform], input: &[u8]) -> Option<Vec<u8>> {
        TransformBuf::new().apply(chain, input).map(<[u8]>::to_vec)
    }

    fn p(name: &str, v: Option<&str>) -> Transform {
        parse(name, v).unwrap()
    }

    #[test]
    fn simple_transforms() {
        assert_eq!(
            run(&[Transform::DotPrefix], b"evil.com").unwrap(),
            b".evil.com"
        );
        assert_eq!(run(&[Transform::DotPrefix], b"").unwrap(), b"");
        assert_eq!(run(&[Transform::ToLowercase], b"AbC").unwrap(), b"abc");
        assert_eq!(run(&[Transform::ToUppercase], b"AbC").unwrap(), b"ABC");
        assert_eq!(
            run(&[Transform::StripWhitespace], b" a \t b\r\n").unwrap(),
            b"ab"
        );
        assert_eq!(
            run(&[Transform::CompressWhitespace], b" A B  C\t \tD ").unwrap(),
            b" A B C\tD "
        );
        assert_eq!(
            run(
                &[Transform::UrlDecode],
                b"Suricata%20is+%27%61wesome%21%27%25%30%30%ZZ%4"
            )
            .unwrap(),
            b"Suricata is 'awesome!'%00%ZZ%4"
        );
        assert_eq!(
            run(&[p("xor", Some("\"0102\""))], b"\x01\x02\x03").unwrap(),
            b"\x00\x00\x02"
        );
        assert_eq!(
            run(
                &[Transform::HeaderLowercase],
                b"Header1: Value1\nHEADER2:Value2\n"
            )
            .unwrap(),
            b"header1: Value1\nheader2:Value2\n"
        );
        assert_eq!(
            run(
                &[Transform::StripPseudoHeaders],
                b"H: V\n:method:get\nh2:v\n"
            )
            .unwrap(),
            b"H: V\nh2:v\n"
        );
    }

    #[test]
    fn hashes() {
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(run(&[Transform::ToMd5], b"abc").unwrap()),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            hex(run(&[Transform::ToSha1], b"abc").unwrap()),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(run(&[Transform::ToSha256], b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn from_base64_modes_and_options() {
        assert_eq!(
            run(&[p("from_base64", None)], b"VGhpcyBpcyBTdXJpY2F0YQ==").unwrap(),
            b"This is Suricata"
        );
        // rfc4648 stops at an invalid byte, rfc2045 skips it, strict fails
        assert_eq!(
            run(&[p("from_base64", Some("mode rfc4648"))], b"VGhp cyBp").unwrap(),
            b"Thi"
        );
        assert_eq!(
            run(&[p("from_base64", Some("mode rfc2045"))], b"VGhp cyBp").unwrap(),
            b"This i"
        );
        assert_eq!(
            run(&[p("from_base64", Some("mode strict"))], b"VGhp cyBp"),
            None
        );
        assert_eq!(
            run(
                &[p("from_base64", Some("offset 4, bytes 4"))],
                b"xxxxVGhpyyyy"
            )
            .unwrap(),
            b"Thi"
        );
        // offset or bytes past the end leave the buffer alone
        assert_eq!(
            run(&[p("from_base64", Some("offset 40"))], b"VGhp").unwrap(),
            b"VGhp"
        );
        assert!(parse("from_base64", Some("bytes 4, offset 70000")).is_err());
        assert!(parse("from_base64", Some("mode strict, mode rfc2045")).is_err());
        assert!(parse("from_base64", Some("mode unknown")).is_err());
    }

    #[test]
    fn subslice_like_suricata() {
        let s = b"this is suricata";
        assert_eq!(
            run(&[p("subslice", Some("1"))], s).unwrap(),
            b"his is suricata"
        );
        assert_eq!(
            run(&[p("subslice", Some("00,9"))], s).unwrap(),
            b"this is s"
        );
        assert_eq!(
            run(&[p("subslice", Some("1,12"))], s).unwrap(),
            b"his is suric"
        );
        assert_eq!(
            run(&[p("subslice", Some("13,-12"))], s).unwrap(),
            b" is suric"
        );
        assert_eq!(run(&[p("subslice", Some("2, 30"))], s).unwrap(), b"");
        assert_eq!(
            run(&[p("subslice", Some("2, 30, truncate"))], s).unwrap(),
            b"is is suricata"
        );
        assert_eq!(run(&[p("subslice", Some("-6"))], s).unwrap(), b"ricata");
        for bad in ["f, y", "1,0", "", "1, 2, nottruncate", "1, 2, 3, 4"] {
            assert!(parse("subslice", Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn decompression_is_capped() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"This is compressed").unwrap();
        let gz = e.finish().unwrap();
        assert_eq!(
            run(&[p("gunzip", None)], &gz).unwrap(),
            b"This is compressed"
        );
        assert_eq!(
            run(&[p("gunzip", Some("max-size 8"))], &gz).unwrap(),
            b"This is "
        );
        assert_eq!(
            run(&[p("gunzip", Some("max-size=8"))], &gz).unwrap(),
            b"This is "
        );
        assert_eq!(run(&[p("gunzip", None)], b"not gzip").unwrap(), b"");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"zlib data").unwrap();
        assert_eq!(
            run(&[p("zlib_deflate", None)], &z.finish().unwrap()).unwrap(),
            b"zlib data"
        );
        assert!(parse("gunzip", Some("max-size 0")).is_err());
    }

    #[test]
    fn chains_run_in_order() {
        let chain = [
            Transform::StripWhitespace,
            Transform::ToUppercase,
            Transform::DotPrefix,
        ];
        assert_eq!(run(&chain, b"a b c").unwrap(), b".ABC");
        let mut out = Vec::new();
        assert!(apply_transforms(&chain, b"x y", &mut out));
        assert_eq!(out, b".XY");
    }

    #[test]
    fn prefilter_literals_are_sound() {
        let dp = [Transform::DotPrefix];
        assert_eq!(
            prefilter_literal(&dp, b".evil.com", false),
            Some((b"evil.com".to_vec(), false))
        );
        assert_eq!(
            prefilter_literal(&dp, b"evil", true),
            Some((b"evil".to_vec(), true))
        );
        assert_eq!(prefilter_literal(&dp, b".", false), None);
        assert_eq!(
            prefilter_literal(&[Transform::ToLowercase], b"abc", false),
            Some((b"abc".to_vec(), true))
        );
        assert_eq!(
            prefilter_literal(&[Transform::CompressWhitespace], b"a b", false),
            None
        );
        assert_eq!(
            prefilter_literal(&[Transform::CompressWhitespace], b"ab", false),
            Some((b"ab".to_vec(), false))
        );
        assert_eq!(
            prefilter_literal(&[Transform::UrlDecode], b"abc", false),
            None
        );
        assert_eq!(
            prefilter_literal(&[Transform::ToSha256], b"abc", false),
            None
        );
        assert!(content_fits(&[Transform::ToLowercase], b"ABC", false).is_err());
        assert!(content_fits(&[Transform::ToLowercase], b"ABC", true).is_ok());
    }

    #[test]
    fn xor_keys_from_the_buffer() {
        // a key byte, then "hello" XORed with it
        let mut body = vec![0x42u8];
        body.extend(b"hello".iter().map(|b| b ^ 0x42));
        for v in [
            "offset 1,extract 1 0",
            "offset   1,  extract 1 0",
            "offset 1,var 1 0",
        ] {
            let t = p("xor", Some(v));
            assert_eq!(
                t,
                Transform::Xor {
                    key: XorKey::Extract {
                        offset: 0,
                        nbytes: 1
                    },
                    offset: 1
                },
                "{v}"
            );
            assert_eq!(run(&[t], &body).unwrap(), b"\x42hello");
        }
        // without an offset the key byte itself is XORed too
        assert_eq!(
            run(&[p("xor", Some("extract 1 0"))], &body).unwrap()[1..],
            *b"hello"
        );
        assert_eq!(
            run(&[p("xor", Some("offset 2,\"4242\""))], b"ab\x2a\x2b").unwrap(),
            b"abhi"
        );
        // a key or an offset past the end leaves the buffer alone
        assert_eq!(
            run(&[p("xor", Some("extract 2 5"))], b"abcdef").unwrap(),
            b"abcdef"
        );
        assert_eq!(
            run(&[p("xor", Some("offset 9,01"))], b"abc").unwrap(),
            b"abc"
        );
        for bad in [
            "offset 1",
            "offset x,01",
            "offset 1,",
            "extract 0 0",
            "extract 256 0",
            "extract 1 65536",
            "extract 1",
            "extract 1 2 3",
            "a\u{e9}0",
        ] {
            assert!(parse("xor", Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse("dotprefix", Some("x")).is_err());
        assert!(parse("xor", None).is_err());
        assert!(parse("xor", Some("\"0g\"")).is_err());
        assert!(parse("xor", Some("\"012\"")).is_err());
    }
}
