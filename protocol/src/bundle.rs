//! Rule bundles (SPEC §3.4, issue 7): rules, category lists, hash lists and the
//! application catalogue in one versioned file, signed with Ed25519 by the cloud and
//! verified by the appliance before anything in it is read.
//!
//! ```text
//! MAGIC (16 bytes) · body (postcard) · Ed25519 signature (64 bytes) over MAGIC ‖ body
//! ```
//!
//! The signed bytes are one slice of the file (verifying copies nothing). The signature is
//! checked before the body is decoded; then every path is checked (relative, no `..`, no
//! empty or hidden parts, at most [`MAX_FILES`] files and [`MAX_BUNDLE`] bytes) and the
//! version is a safe folder name ([`valid_version`]).
//! Sans-IO: callers read directories and write files.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// First bytes of every bundle (format version 2: the signature at the end).
pub const MAGIC: &[u8; 16] = b"MIMAMORI-BUNDLE2";
/// Largest bundle accepted.
pub const MAX_BUNDLE: usize = 256 << 20;
/// Most files in a bundle.
pub const MAX_FILES: usize = 4096;
const SIG_LEN: usize = 64;

/// Why a bundle was refused or could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("not a Mimamori bundle (bad magic)")]
    Magic,
    #[error("bundle too large: {0} bytes (at most {MAX_BUNDLE})")]
    TooLarge(usize),
    #[error(
        "signature does not verify with the trusted key: the bundle was altered or signed by another key"
    )]
    Signature,
    #[error("bundle body is malformed: {0}")]
    Body(String),
    #[error("bundle path `{0}` is not allowed (relative, no `..`, no hidden parts)")]
    Path(String),
    #[error("bundle has {0} files (at most {MAX_FILES})")]
    TooManyFiles(usize),
    #[error("a bundle file appears twice: `{0}`")]
    Duplicate(String),
    #[error("signing key: {0}")]
    Key(String),
    #[error(
        "bundle version `{0}`: use letters, digits, `.`, `-`, `_` (at most 64), not starting with `.`"
    )]
    Version(String),
}

/// A version name that is also a safe folder name: letters, digits, `.`, `-`, `_`, at most
/// 64 bytes, not starting with `.`.
pub fn valid_version(v: &str) -> Result<(), BundleError> {
    let ok = !v.is_empty()
        && v.len() <= crate::limits::MAX_NAME_LEN
        && !v.starts_with('.')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(BundleError::Version(v.chars().take(80).collect()))
    }
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Relative path with `/` separators, e.g. `rules/emerging-malware.rules`.
    pub path: String,
    pub data: Vec<u8>,
}

/// What a bundle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleBody {
    /// Version shown to operators and reported by appliances, e.g. `2026.11.30-1`.
    pub version: String,
    /// When it was published (Unix seconds).
    pub created: u64,
    pub files: Vec<BundleFile>,
}

fn check_path(p: &str) -> Result<(), BundleError> {
    let bad = p.is_empty()
        || p.len() > 512
        || p.starts_with('/')
        || p.contains('\\')
        || p.contains('\0')
        || p.split('/')
            .any(|part| part.is_empty() || part.starts_with('.'));
    if bad {
        return Err(BundleError::Path(p.chars().take(80).collect()));
    }
    Ok(())
}

impl BundleBody {
    /// Paths are safe to join to a folder, unique, and not too many.
    pub fn check(&self) -> Result<(), BundleError> {
        valid_version(&self.version)?;
        self.check_files()
    }

    /// The files alone (before the cloud names the version).
    pub fn check_files(&self) -> Result<(), BundleError> {
        if self.files.len() > MAX_FILES {
            return Err(BundleError::TooManyFiles(self.files.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.files {
            check_path(&f.path)?;
            if !seen.insert(f.path.as_str()) {
                return Err(BundleError::Duplicate(f.path.clone()));
            }
        }
        Ok(())
    }

    /// A file by path.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.data.as_slice())
    }
}

/// A new Ed25519 signing key (PKCS#8 DER, to keep secret).
pub fn generate_key() -> Result<Vec<u8>, BundleError> {
    let rng = ring::rand::SystemRandom::new();
    Ed25519KeyPair::generate_pkcs8(&rng)
        .map(|d| d.as_ref().to_vec())
        .map_err(|e| BundleError::Key(e.to_string()))
}

/// The public key (32 bytes) appliances trust, of a PKCS#8 signing key.
pub fn public_key(pkcs8: &[u8]) -> Result<[u8; 32], BundleError> {
    let kp = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| BundleError::Key(e.to_string()))?;
    kp.public_key()
        .as_ref()
        .try_into()
        .map_err(|_| BundleError::Key("public key is not 32 bytes".into()))
}

/// Sign a bundle body with a PKCS#8 Ed25519 key: the bundle file's bytes.
pub fn seal(body: &BundleBody, pkcs8: &[u8]) -> Result<Vec<u8>, BundleError> {
    body.check()?;
    let kp = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| BundleError::Key(e.to_string()))?;
    let payload = postcard::to_allocvec(body).map_err(|e| BundleError::Body(e.to_string()))?;
    let total = MAGIC.len() + SIG_LEN + payload.len();
    if total > MAX_BUNDLE {
        return Err(BundleError::TooLarge(total));
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&payload);
    let sig = kp.sign(&out);
    out.extend_from_slice(sig.as_ref());
    Ok(out)
}

/// Verify a bundle file against the trusted public key, then decode and check it.
pub fn open(bytes: &[u8], trusted: &[u8; 32]) -> Result<BundleBody, BundleError> {
    if bytes.len() > MAX_BUNDLE {
        return Err(BundleError::TooLarge(bytes.len()));
    }
    if bytes.len() < MAGIC.len() + SIG_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(BundleError::Magic);
    }
    let (signed, sig) = bytes.split_at(bytes.len() - SIG_LEN);
    let payload = &signed[MAGIC.len()..];
    UnparsedPublicKey::new(&ED25519, trusted)
        .verify(signed, sig)
        .map_err(|_| BundleError::Signature)?;
    let body: BundleBody =
        postcard::from_bytes(payload).map_err(|e| BundleError::Body(e.to_string()))?;
    body.check()?;
    Ok(body)
}

#[cfg(test)]
mod test {
    use super::*;

    fn body() -> BundleBody {
        BundleBody {
            version: "2026.11.30-1".into(),
            created: 1_790_000_000,
            files: vec![
                BundleFile {
                    path: "rules/local.rules".into(),
                    data: b"alert tcp any any -> any any (msg:\"x\"; sid:1;)\n".to_vec(),
                },
                BundleFile {
                    path: "lists/phishing/domains".into(),
                    data: b"phish.example\n".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn sealed_bundles_open_and_tampered_ones_do_not() {
        let key = generate_key().unwrap();
        let pk = public_key(&key).unwrap();
        let sealed = seal(&body(), &key).unwrap();
        let opened = open(&sealed, &pk).unwrap();
        assert_eq!(opened, body());
        assert_eq!(
            opened.file("lists/phishing/domains"),
            Some(&b"phish.example\n"[..])
        );
        // every single flipped byte after the magic is caught by the signature
        for i in [MAGIC.len(), MAGIC.len() + 70, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert_eq!(open(&t, &pk), Err(BundleError::Signature), "byte {i}");
        }
        // another key's bundle
        let other = generate_key().unwrap();
        assert_eq!(
            open(&seal(&body(), &other).unwrap(), &pk),
            Err(BundleError::Signature)
        );
        assert_eq!(open(b"garbage", &pk), Err(BundleError::Magic));
        assert_eq!(open(&sealed[..40], &pk), Err(BundleError::Magic));
        // the version names a folder on the appliance
        for v in ["", "../x", ".hidden", "a/b", "a b"] {
            let mut b = body();
            b.version = v.into();
            assert!(
                matches!(seal(&b, &key), Err(BundleError::Version(_))),
                "{v:?}"
            );
        }
    }

    #[test]
    fn unsafe_paths_are_refused_even_when_signed() {
        let key = generate_key().unwrap();
        for p in [
            "../etc/passwd",
            "/abs",
            "a//b",
            ".hidden",
            "rules/../../x",
            "a\\b",
            "",
        ] {
            let mut b = body();
            b.files[0].path = p.into();
            assert!(matches!(seal(&b, &key), Err(BundleError::Path(_))), "{p:?}");
        }
        let mut b = body();
        b.files[1].path = b.files[0].path.clone();
        assert!(matches!(seal(&b, &key), Err(BundleError::Duplicate(_))));
    }
}
