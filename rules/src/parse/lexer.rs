//! Splitting rule text: header fields, option list, content strings.

use super::ErrorKind;

/// A rule split into its header tokens and its raw options.
pub struct Split<'a> {
    pub header: Vec<&'a str>,
    pub options: Vec<(&'a str, Option<String>)>,
}

/// Split `action proto src sport dir dst dport (opts)` into header tokens and options.
pub fn split_rule(text: &str) -> Result<Split<'_>, ErrorKind> {
    let open = text
        .find('(')
        .ok_or(ErrorKind::Header("no `(` starting the options".into()))?;
    let close = text
        .rfind(')')
        .ok_or(ErrorKind::Header("no `)` closing the options".into()))?;
    if close < open {
        return Err(ErrorKind::Header("`)` before `(`".into()));
    }
    if !text[close + 1..].trim().is_empty() {
        return Err(ErrorKind::Header("text after the closing `)`".into()));
    }
    let header = split_header(&text[..open])?;
    let options = split_options(&text[open + 1..close])?;
    Ok(Split { header, options })
}

/// Header tokens separated by whitespace, keeping bracketed groups together.
fn split_header(h: &str) -> Result<Vec<&str>, ErrorKind> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start: Option<usize> = None;
    for (i, c) in h.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err(ErrorKind::Header("unbalanced `]`".into()));
        }
        if c.is_whitespace() && depth == 0 {
            if let Some(s) = start.take() {
                out.push(&h[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if depth != 0 {
        return Err(ErrorKind::Header("unbalanced `[`".into()));
    }
    if let Some(s) = start {
        out.push(&h[s..]);
    }
    Ok(out)
}

/// Split the option list at unescaped `;`. Values keep their escapes.
fn split_options(s: &str) -> Result<Vec<(&str, Option<String>)>, ErrorKind> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // skip whitespace
        while i < bytes.len() && (bytes[i] as char).is_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        let mut end = None;
        // like Suricata, only an unescaped `;` ends an option (quotes do not protect it)
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 1,
                b';' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let Some(end) = end else {
            let rest = s[start..].trim();
            if rest.is_empty() {
                break;
            }
            return Err(ErrorKind::Header(format!(
                "option `{}` is not terminated by `;`",
                clip(rest)
            )));
        };
        i = end + 1;
        let opt = &s[start..end];
        let (name, value) = match opt.find(':') {
            Some(c) => (opt[..c].trim(), Some(opt[c + 1..].trim().to_string())),
            None => (opt.trim(), None),
        };
        if name.is_empty() {
            return Err(ErrorKind::Header("empty option".into()));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Remove surrounding quotes of an option value, if any.
pub fn unquote(v: &str) -> &str {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Decode a content string: `"abc|0d 0a|def"` with `\"`, `\;`, `\\`, `\:` escapes.
/// Returns the bytes and whether it was negated (`!"..."`).
pub fn parse_content(v: &str) -> Result<(Vec<u8>, bool), String> {
    let mut v = v.trim();
    let negated = if let Some(r) = v.strip_prefix('!') {
        v = r.trim();
        true
    } else {
        false
    };
    let inner = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        return Err("content must be in double quotes".into());
    };
    let mut out = Vec::with_capacity(inner.len());
    let b = inner.as_bytes();
    let mut i = 0;
    let mut hex = false;
    let mut nib: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if hex {
            match c {
                b'|' => {
                    if nib.is_some() {
                        return Err("odd number of hex digits".into());
                    }
                    hex = false;
                }
                b' ' | b'\t' => {
                    if nib.is_some() {
                        return Err("hex byte split by a space".into());
                    }
                }
                _ => {
                    let d = (c as char)
                        .to_digit(16)
                        .ok_or_else(|| format!("bad hex digit `{}`", c as char))?
                        as u8;
                    match nib.take() {
                        Some(h) => out.push(h << 4 | d),
                        None => nib = Some(d),
                    }
                }
            }
        } else {
            match c {
                b'|' => hex = true,
                b'\\' => {
                    i += 1;
                    match b.get(i) {
                        Some(&e @ (b'"' | b';' | b'\\' | b':' | b'|')) => out.push(e),
                        Some(&e) => return Err(format!("bad escape `\\{}`", e as char)),
                        None => return Err("trailing backslash".into()),
                    }
                }
                b'"' => return Err("unescaped `\"` inside content".into()),
                b';' => return Err("unescaped `;` inside content".into()),
                _ => out.push(c),
            }
        }
        i += 1;
    }
    if hex {
        return Err("unterminated `|` hex block".into());
    }
    if out.is_empty() {
        return Err("empty content".into());
    }
    Ok((out, negated))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn splits_options_with_escapes() {
        let s = split_rule(
            r#"alert tcp [1.1.1.1, 2.2.2.2] any -> any any (msg:"a\;b"; content:"x|3b|"; sid:1;)"#,
        )
        .unwrap();
        assert_eq!(s.header.len(), 7);
        assert_eq!(s.header[2], "[1.1.1.1, 2.2.2.2]");
        assert_eq!(s.options[0], ("msg", Some(r#""a\;b""#.to_string())));
        assert_eq!(s.options.len(), 3);
    }

    #[test]
    fn content_decoding() {
        assert_eq!(
            parse_content(r#""a|0d 0A|b\"""#).unwrap(),
            (b"a\r\nb\"".to_vec(), false)
        );
        assert_eq!(parse_content(r#"!"x""#).unwrap(), (b"x".to_vec(), true));
        assert!(parse_content(r#""|0|""#).is_err());
        assert!(parse_content(r#""|zz|""#).is_err());
        assert!(parse_content("x").is_err());
        assert!(parse_content(r#""""#).is_err());
    }

    #[test]
    fn unterminated_option_is_an_error() {
        assert!(split_rule("alert tcp any any -> any any (msg:\"x\"; sid:1)").is_err());
        assert!(split_rule("alert tcp any any -> any any msg").is_err());
    }
}
