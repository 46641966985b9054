//! Encryption at rest of the store's secrets (TOTP secrets, queued mail bodies), with a key
//! kept outside the database file (`secrets_key`, default `<data_dir>/secrets.key`).
//!
//! ChaCha20-Poly1305 (ring), a random 96-bit nonce per record, the record's table, field and
//! id as associated data (a sealed value copied into another record does not open). A sealed
//! value is text: `enc1:` followed by hex of nonce ‖ ciphertext ‖ tag.

use std::io::Write;
use std::path::Path;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// What marks a sealed value.
pub const PREFIX: &str = "enc1:";

/// Why the secrets key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a secrets key (64 hex digits expected)")]
    Malformed { path: String },
}

/// The key of one store.
pub struct Sealer {
    key: LessSafeKey,
    /// First 8 bytes of SHA-256 of the key, hex: names the key in the store's meta table
    /// (so a wrong or missing key is found at open, not at the first read).
    pub id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({})", self.id)
    }
}

impl Sealer {
    pub fn from_bytes(k: &[u8; 32]) -> Sealer {
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, k).expect("a 32-byte ChaCha20-Poly1305 key"),
        );
        Sealer {
            key,
            id: hex::encode(&Sha256::digest(k)[..8]),
        }
    }

    /// Read the key file; `None` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Sealer>, KeyError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(KeyError::Io {
                    path: shown,
                    source: e,
                });
            }
        };
        let mut k = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut k)
            .map_err(|_| KeyError::Malformed { path: shown })?;
        Ok(Some(Sealer::from_bytes(&k)))
    }

    /// Create a new random key file (mode 0600, refused when the file exists).
    pub fn create(path: &Path) -> Result<Sealer, KeyError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |e| KeyError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| io(std::io::Error::other("no system randomness")))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        f.write_all(format!("{}\n", hex::encode(k)).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io)?;
        if let Some(dir) = path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(Sealer::from_bytes(&k))
    }

    /// Seal `plain` for (table, field, id).
    pub fn seal(&self, aad: &str, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("system randomness for a nonce");
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .expect("sealing cannot fail for in-memory data");
        let mut out = String::with_capacity(PREFIX.len() + 2 * (NONCE_LEN + buf.len()));
        out.push_str(PREFIX);
        out.push_str(&hex::encode(nonce));
        out.push_str(&hex::encode(&buf));
        out
    }

    /// Open a value sealed for (table, field, id); a value without the prefix is returned
    /// as is (a store written before encryption, migrated at open).
    pub fn open(&self, aad: &str, stored: &str) -> Result<String, String> {
        let Some(h) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = hex::decode(h).map_err(|_| "sealed value is not hex".to_string())?;
        if bytes.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err("sealed value is too short".into());
        }
        let (n, ct) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| "bad nonce".to_string())?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| "sealed value does not open with this key".to_string())?;
        String::from_utf8(plain.to_vec()).map_err(|_| "sealed value is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn seal_open_and_binding() {
        let s = Sealer::from_bytes(&[7; 32]);
        let a = s.seal("users:totp:1", "JBSWY3DPEHPK3PXP");
        assert!(a.starts_with(PREFIX));
        assert!(!a.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            a,
            s.seal("users:totp:1", "JBSWY3DPEHPK3PXP"),
            "random nonce"
        );
        assert_eq!(s.open("users:totp:1", &a).unwrap(), "JBSWY3DPEHPK3PXP");
        // another record's associated data, another key, a flipped bit: refused
        assert!(s.open("users:totp:2", &a).is_err());
        assert!(
            Sealer::from_bytes(&[8; 32])
                .open("users:totp:1", &a)
                .is_err()
        );
        let mut b = a.clone().into_bytes();
        let last = b.len() - 1;
        b[last] = if b[last] == b'0' { b'1' } else { b'0' };
        assert!(
            s.open("users:totp:1", &String::from_utf8(b).unwrap())
                .is_err()
        );
        // plain (not yet migrated) values pass through
        assert_eq!(s.open("x", "plain").unwrap(), "plain");
    }

    #[test]
    fn key_file_created_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mimamori-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("secrets.key");
        assert!(Sealer::load(&p).unwrap().is_none());
        let s = Sealer::create(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(Sealer::create(&p).is_err(), "never overwritten");
        let again = Sealer::load(&p).unwrap().unwrap();
        assert_eq!(again.id, s.id);
        std::fs::write(&p, "nonsense").unwrap();
        assert!(matches!(Sealer::load(&p), Err(KeyError::Malformed { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
