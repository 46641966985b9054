//! File type from the first bytes ("magic"), for policies such as "no executable
//! downloads" and for the EVE `fileinfo` record. Only the first [`SNIFF_LEN`] bytes are
//! looked at; the declared `Content-Type` is not trusted.

/// Bytes of the start of a file kept for sniffing.
pub const SNIFF_LEN: usize = 512;

/// ZIP local file header: name length at 26..28, name from 30.
const ZIP_NAME_LEN_AT: usize = 26;
const ZIP_NAME_AT: usize = 30;
/// `%PDF-` may follow some junk; readers accept it within the first KiB, we look this far.
const PDF_SEARCH: usize = SNIFF_LEN;
/// Share of control bytes (besides tab, CR, LF, FF, ESC) tolerated in text.
const MAX_CONTROL_PER_MILLE: usize = 5;

/// What a file is, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Empty,
    /// Windows program or library (`MZ` with a `PE` header, or a bare `MZ` DOS program).
    Pe,
    Elf,
    Pdf,
    Zip,
    /// Office Open XML or OpenDocument: a ZIP whose first entry is an office package part.
    Ooxml,
    /// OLE compound file: legacy Office documents, MSI installers.
    Ole,
    Gzip,
    Bzip2,
    Rar,
    SevenZip,
    /// A text file that starts with `#!` or `<?php`.
    Script,
    Html,
    Text,
    Unknown,
}

impl FileKind {
    /// The MIME type reported for this kind.
    pub fn mime(self) -> &'static str {
        match self {
            FileKind::Empty => "application/x-empty",
            FileKind::Pe => "application/vnd.microsoft.portable-executable",
            FileKind::Elf => "application/x-executable",
            FileKind::Pdf => "application/pdf",
            FileKind::Zip => "application/zip",
            FileKind::Ooxml => "application/vnd.openxmlformats-officedocument",
            FileKind::Ole => "application/x-ole-storage",
            FileKind::Gzip => "application/gzip",
            FileKind::Bzip2 => "application/x-bzip2",
            FileKind::Rar => "application/vnd.rar",
            FileKind::SevenZip => "application/x-7z-compressed",
            FileKind::Script => "text/x-script",
            FileKind::Html => "text/html",
            FileKind::Text => "text/plain",
            FileKind::Unknown => "application/octet-stream",
        }
    }

    /// A program a host could run (Windows or Unix binary, or a script).
    pub fn is_executable(self) -> bool {
        matches!(self, FileKind::Pe | FileKind::Elf | FileKind::Script)
    }

    /// Sniffs the first bytes of a file (at most [`SNIFF_LEN`] are looked at).
    pub fn sniff(head: &[u8]) -> FileKind {
        let head = &head[..head.len().min(SNIFF_LEN)];
        if head.is_empty() {
            return FileKind::Empty;
        }
        if let Some(kind) = binary_kind(head) {
            return kind;
        }
        if find(head, b"%PDF-", PDF_SEARCH) {
            return FileKind::Pdf;
        }
        text_kind(head)
    }
}

fn binary_kind(head: &[u8]) -> Option<FileKind> {
    const MAGICS: [(&[u8], FileKind); 7] = [
        (b"\x7fELF", FileKind::Elf),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", FileKind::Ole),
        (b"\x1f\x8b", FileKind::Gzip),
        (b"Rar!\x1a\x07\x00", FileKind::Rar),
        (b"Rar!\x1a\x07\x01\x00", FileKind::Rar),
        (b"7z\xbc\xaf\x27\x1c", FileKind::SevenZip),
        (b"PK\x05\x06", FileKind::Zip), // empty archive
    ];
    if let Some((_, kind)) = MAGICS.iter().find(|(m, _)| head.starts_with(m)) {
        return Some(*kind);
    }
    if head.starts_with(b"MZ") {
        return Some(FileKind::Pe);
    }
    if head.starts_with(b"PK\x03\x04") {
        return Some(zip_kind(head));
    }
    if head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) {
        return Some(FileKind::Bzip2);
    }
    None
}

/// A ZIP whose first entry names an office part is an office document.
fn zip_kind(head: &[u8]) -> FileKind {
    const OFFICE_PARTS: [&[u8]; 6] = [
        b"[Content_Types].xml",
        b"_rels/",
        b"word/",
        b"xl/",
        b"ppt/",
        b"mimetype",
    ];
    let name_len = head
        .get(ZIP_NAME_LEN_AT..ZIP_NAME_LEN_AT + 2)
        .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let name = head.get(ZIP_NAME_AT..ZIP_NAME_AT + name_len).unwrap_or(&[]);
    if OFFICE_PARTS.iter().any(|p| name.starts_with(p)) {
        FileKind::Ooxml
    } else {
        FileKind::Zip
    }
}

fn find(head: &[u8], needle: &[u8], within: usize) -> bool {
    memchr::memmem::find(&head[..head.len().min(within)], needle).is_some()
}

fn text_kind(head: &[u8]) -> FileKind {
    if !looks_like_text(head) {
        return FileKind::Unknown;
    }
    let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let body = &body[start..];
    if head.starts_with(b"#!") || starts_with_nocase(body, b"<?php") {
        return FileKind::Script;
    }
    const HTML: [&[u8]; 7] = [
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<body",
        b"<script",
        b"<iframe",
        b"<meta",
    ];
    if HTML.iter().any(|tag| starts_with_nocase(body, tag)) {
        return FileKind::Html;
    }
    FileKind::Text
}

fn starts_with_nocase(data: &[u8], prefix: &[u8]) -> bool {
    data.len() >= prefix.len() && data[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// No NUL, valid UTF-8 (a character cut at the end of the window is fine), few controls.
fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    if let Err(e) = std::str::from_utf8(head)
        && e.error_len().is_some()
    {
        return false;
    }
    let controls = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b) || b == 0x7f)
        .count();
    controls * 1000 <= head.len() * MAX_CONTROL_PER_MILLE
}
