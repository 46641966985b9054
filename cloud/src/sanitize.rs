//! Text that came from traffic — SNIs, host names, URLs, file names, and the rule
//! messages, categories, threat names and versions an appliance reports — made safe to
//! show a person: one line, visible, bounded.
//!
//! Such a field may hold anything the network sent: a CR/LF in an SNI would start a new
//! line in an alert mail (a forged `重要度: ★★★` line, or a forged header if it ever
//! reached a subject), a terminal escape or a bidirectional override would change what a
//! reader sees. HTML escaping (askama) does not help there. So every such field goes
//! through [`field`] before it reaches a mail, a portal page or the export; the alert's
//! display texts ([`StoredEvent::what`](crate::store::StoredEvent::what) and
//! [`StoredEvent::site`](crate::store::StoredEvent::site)) are produced sanitised.
//!
//! The rules:
//! - CR, LF and TAB are written `\r`, `\n`, `\t`; every other C0 control and DEL as
//!   `\xNN` (`\x00`, `\x1b`, `\x7f`); C1 controls as `\u{NN}` (`\u{85}`).
//! - Line and paragraph separators (U+2028/U+2029), bidirectional marks, embeddings,
//!   overrides and isolates (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069), zero-width
//!   and other invisible format characters (U+200B–U+200D, U+2060–U+2064, U+FEFF) as
//!   `\u{XXXX}`.
//! - Everything else, backslashes included (Windows paths), is kept as it is: the escapes
//!   are for reading, not for decoding back.
//! - At most [`MAX_CHARS`] characters after escaping (or the bound given to
//!   [`field_max`]); a longer value is cut and ends in `…`.

use std::fmt::Write;

/// The most characters a sanitised field shows (a URL with a long path is cut).
pub const MAX_CHARS: usize = 256;

/// `s` made safe to show: controls and invisible format characters escaped visibly, at
/// most [`MAX_CHARS`] characters (see the module documentation).
pub fn field(s: &str) -> String {
    field_max(s, MAX_CHARS)
}

/// Like [`field`], with at most `max_chars` characters (at least 1: the `…`).
pub fn field_max(s: &str, max_chars: usize) -> String {
    let max_chars = max_chars.max(1);
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    // (bytes, characters) of `out` after each whole piece: a cut never splits an escape
    let mut bounds: Vec<(usize, usize)> = vec![(0, 0)];
    let mut chars = 0usize;
    let mut piece = String::new();
    for c in s.chars() {
        piece.clear();
        escape(c, &mut piece);
        chars += piece.chars().count();
        if chars > max_chars {
            // too long: back to the last piece that leaves room for the ellipsis
            let keep = bounds
                .iter()
                .rev()
                .find(|(_, n)| *n < max_chars)
                .map_or(0, |(b, _)| *b);
            out.truncate(keep);
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        bounds.push((out.len(), chars));
    }
    out
}

/// Whether `c` is shown as an escape.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

fn escape(c: char, out: &mut String) {
    match c {
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 && c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_controls_become_visible() {
        assert_eq!(
            field("evil.example\r\nSubject: forged\r\n"),
            "evil.example\\r\\nSubject: forged\\r\\n"
        );
        assert_eq!(field("a\tb\0c\x1b[31md\x7f"), "a\\tb\\x00c\\x1b[31md\\x7f");
        assert_eq!(field("x\u{85}y\u{2028}z"), "x\\u{85}y\\u{2028}z");
        assert_eq!(field("abc\u{202E}gpj.exe"), "abc\\u{202e}gpj.exe");
        assert_eq!(field("\u{feff}bom"), "\\u{feff}bom");
        for s in [
            "x\r\n重要度: ★★★",
            "a\u{2029}b",
            "\u{b}\u{c}",
            "\u{1c}\u{1d}\u{1e}",
        ] {
            let f = field(s);
            assert!(!f.chars().any(needs_escape), "{f:?}");
            assert_eq!(f.lines().count(), 1, "{f:?}");
        }
    }

    #[test]
    fn ordinary_text_is_kept() {
        for s in [
            "login.phish.example",
            "files.example/dl/請求書.pdf",
            "C:\\Users\\yamada\\a.exe",
            "ET MALWARE CryptoWall Check-in (sid 9000001)",
            "カテゴリ「phishing」のサイト",
            "",
        ] {
            assert_eq!(field(s), s);
        }
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        let long = "a".repeat(1000);
        let f = field(&long);
        assert_eq!(f.chars().count(), MAX_CHARS);
        assert!(f.ends_with('…'));
        assert_eq!(field(&"a".repeat(MAX_CHARS)), "a".repeat(MAX_CHARS));
        assert_eq!(field_max("abcdef", 4), "abc…");
        assert_eq!(field_max("日本語のテキスト", 5), "日本語の…");
        // an escape is never cut in half
        let f = field_max("abc\r\ndef", 5);
        assert_eq!(f, "abc…");
        let f = field_max("ab\ncd", 5);
        assert_eq!(f, "ab\\n…");
        assert_eq!(field_max("abc", 0), "…");
        assert_eq!(field_max("", 0), "");
    }
}
