//! Account security for the customer portal, without I/O: password hashing and rules,
//! temporary passwords, TOTP (RFC 6238), recovery codes, login lockout, CSRF tokens and
//! session ids.
//!
//! Everything here is pure (apart from drawing random numbers): the caller keeps the
//! stored state (password hashes, TOTP secrets, the last used TOTP step, recovery-code
//! hashes, [`Lockout`]) and passes in the current time, so the rules are easy to test.
//!
//! Random values come from `rand::rng()`, a cryptographically secure generator seeded
//! from the operating system.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, Salt, SaltString};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;
type HmacSha256 = Hmac<Sha256>;

/// Why an account-security operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Argon2 could not hash the password (in practice: never with the default
    /// parameters and a freshly drawn salt).
    #[error("password hashing failed: {0}")]
    Hash(#[from] argon2::password_hash::Error),
}

// ---------------------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------------------

/// The fewest characters (Unicode scalar values) a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The most characters (Unicode scalar values) a new password may have.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Hashes a password with Argon2id (default parameters: m=19456 KiB, t=2, p=1) and a
/// random 16-byte salt, and returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) to store.
///
/// Slow on purpose (tens of milliseconds in release builds): call it off the async
/// executor's worker threads (e.g. `tokio::task::spawn_blocking`).
pub fn hash_password(pw: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(pw.as_bytes(), &salt)?
        .to_string())
}

/// Whether `pw` matches the stored PHC string `phc` (made by [`hash_password`]).
///
/// The comparison is constant-time (done by the `argon2` crate) and uses the parameters
/// recorded in the PHC string. A malformed or non-Argon2 hash gives `false`. As slow as
/// [`hash_password`].
pub fn verify_password(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Why a new password is refused by [`check_new_password`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("{}", self.message_en())]
    TooShort,
    /// More than [`MAX_PASSWORD_CHARS`] characters.
    #[error("{}", self.message_en())]
    TooLong,
    /// Contains the e-mail address or its local part (the part before `@`).
    #[error("{}", self.message_en())]
    ContainsEmail,
    /// A well-known password, or one character repeated.
    #[error("{}", self.message_en())]
    TooCommon,
}

impl PasswordProblem {
    /// The message to show the customer, in Japanese.
    pub fn message(&self) -> &'static str {
        match self {
            Self::TooShort => "パスワードは10文字以上にしてください。",
            Self::TooLong => "パスワードは128文字以内にしてください。",
            Self::ContainsEmail => {
                "パスワードにメールアドレス（@より前の部分を含む）を使わないでください。"
            }
            Self::TooCommon => {
                "このパスワードはよく使われていて推測されやすいため、使えません。別のパスワードにしてください。"
            }
        }
    }

    /// The same message in English.
    pub fn message_en(&self) -> &'static str {
        match self {
            Self::TooShort => "The password must be at least 10 characters long.",
            Self::TooLong => "The password must be at most 128 characters long.",
            Self::ContainsEmail => {
                "The password must not contain your e-mail address or the part before the @."
            }
            Self::TooCommon => {
                "This password is too common and easy to guess. Please choose another one."
            }
        }
    }
}

/// Well-known passwords of at least [`MIN_PASSWORD_CHARS`] characters, lower case.
const COMMON_PASSWORDS: &[&str] = &[
    "password123",
    "password1234",
    "password12345",
    "password123!",
    "passw0rd123",
    "p@ssw0rd123",
    "passwordpassword",
    "1234567890",
    "12345678910",
    "123456789012",
    "0123456789",
    "9876543210",
    "1234512345",
    "1234567890a",
    "a1234567890",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "1qaz2wsx3edc",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "zaq12wsxcde3",
    "asdfghjkl;",
    "asdfghjkl123",
    "zxcvbnm123",
    "abcdefghij",
    "abcd123456",
    "abc1234567",
    "iloveyou123",
    "welcome123",
    "letmein123",
    "admin12345",
    "administrator",
];

/// Checks a password a customer chose (sign-up, password change, reset).
///
/// Rules, in this order: at least [`MIN_PASSWORD_CHARS`] and at most
/// [`MAX_PASSWORD_CHARS`] characters (Unicode scalar values, so Japanese counts per
/// character); does not contain the e-mail address, nor its local part when that part has
/// 3 characters or more (case-insensitive); is not in a small list of well-known
/// passwords (case-insensitive) nor one character repeated.
pub fn check_new_password(pw: &str, email: &str) -> Result<(), PasswordProblem> {
    let chars = pw.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordProblem::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordProblem::TooLong);
    }

    let pw_lower = pw.to_lowercase();
    let email = email.trim().to_lowercase();
    if !email.is_empty() {
        let local = email.rsplit_once('@').map_or(email.as_str(), |(l, _)| l);
        if pw_lower.contains(&email) || (local.chars().count() >= 3 && pw_lower.contains(local)) {
            return Err(PasswordProblem::ContainsEmail);
        }
    }

    let mut it = pw.chars();
    let first = it.next();
    let one_char_repeated = it.all(|c| Some(c) == first);
    if one_char_repeated || COMMON_PASSWORDS.contains(&pw_lower.as_str()) {
        return Err(PasswordProblem::TooCommon);
    }
    Ok(())
}

/// Characters for temporary passwords: no `0`/`O`/`1`/`l`/`I`, which read alike.
const TEMP_PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// The length of [`temporary_password`]'s result.
pub const TEMP_PASSWORD_CHARS: usize = 16;

/// A random temporary password (e.g. issued by support or at sign-up): 16 characters,
/// drawn uniformly from 57 characters that cannot be confused when read or typed
/// (no `0`, `O`, `1`, `l`, `I`), about 93 bits.
pub fn temporary_password() -> String {
    random_string(TEMP_PASSWORD_ALPHABET, TEMP_PASSWORD_CHARS)
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Base32 (RFC 4648 §6)
// ---------------------------------------------------------------------------------------

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, without padding.
fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buf: u16 = 0;
    let mut bits = 0u32;
    for &b in data {
        buf = (buf << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32_ALPHABET[usize::from((buf >> bits) & 31)]));
        }
        buf &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[usize::from((buf << (5 - bits)) & 31)],
        ));
    }
    out
}

/// Strict RFC 4648 base32 decoding of upper-case text without padding. `None` on a
/// character outside the alphabet, an impossible length (1, 3 or 6 modulo 8) or non-zero
/// trailing bits (a non-canonical encoding).
fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buf: u16 = 0;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buf = (buf << 5) | u16::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be fewer than one character's worth and all zero.
    if bits >= 5 || buf != 0 {
        return None;
    }
    Some(out)
}

/// Maps what people type into a code field to plain ASCII: full-width ASCII forms
/// (`１２３`, `ＡＢＣ`, as a Japanese IME may produce) become ASCII, and whitespace
/// (including the ideographic space) and dashes (`-`, `‐`, `−`, `ー`, ...) are dropped.
fn normalize_typed(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .filter(|&c| {
            !c.is_whitespace()
                && !matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}')
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// TOTP (RFC 6238 over RFC 4226)
// ---------------------------------------------------------------------------------------

/// A TOTP shared secret: RFC 6238 with HMAC-SHA-1, 6 digits and a 30-second step — the
/// parameters every authenticator app supports.
///
/// `Debug` does not show the secret.
#[derive(Clone)]
pub struct Totp {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp")
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

impl Totp {
    /// Seconds per time step.
    pub const STEP_SECS: u64 = 30;
    /// Digits per code.
    pub const DIGITS: u32 = 6;
    /// Bytes in a secret made by [`Totp::generate`] (160 bits, as RFC 4226 recommends).
    pub const SECRET_BYTES: usize = 20;
    /// The shortest secret [`Totp::from_base32`] accepts (128 bits, RFC 4226 R6).
    pub const MIN_SECRET_BYTES: usize = 16;

    /// A new random 20-byte secret.
    pub fn generate() -> Totp {
        let mut secret = vec![0u8; Self::SECRET_BYTES];
        rand::rng().fill(&mut secret[..]);
        Totp { secret }
    }

    /// Reads a base32 secret (as stored, or as typed from an authenticator's setup
    /// screen): case-insensitive, spaces, dashes and trailing `=` padding ignored.
    /// `None` if it is not valid base32 or decodes to fewer than
    /// [`Totp::MIN_SECRET_BYTES`] bytes.
    pub fn from_base32(s: &str) -> Option<Totp> {
        let s = normalize_typed(s).to_ascii_uppercase();
        let secret = base32_decode(s.trim_end_matches('='))?;
        (secret.len() >= Self::MIN_SECRET_BYTES).then_some(Totp { secret })
    }

    /// The secret in base32: upper case, no padding (for storage and for manual entry in
    /// an authenticator app).
    pub fn secret_base32(&self) -> String {
        base32_encode(&self.secret)
    }

    /// The RFC 4226 HOTP value for a counter (time step), as 6 digits.
    fn code_for_step(&self, step: u64) -> String {
        let mut mac =
            HmacSha1::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(&step.to_be_bytes());
        let h = mac.finalize().into_bytes();
        let offset = usize::from(h[h.len() - 1] & 0x0f);
        let bin = u32::from_be_bytes([
            h[offset] & 0x7f,
            h[offset + 1],
            h[offset + 2],
            h[offset + 3],
        ]);
        format!("{:06}", bin % 10u32.pow(Self::DIGITS))
    }

    /// The code at a Unix time (seconds), zero-padded to 6 digits.
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.code_for_step(unix_secs / Self::STEP_SECS)
    }

    /// Checks a code typed by the customer at `unix_secs`.
    ///
    /// Accepts the codes of the current time step and of the steps just before and after
    /// it (clock drift), except steps `<= last_used_step`, so that an accepted code (or an
    /// older one) cannot be replayed. Whitespace and dashes are ignored and full-width
    /// digits accepted; anything but 6 digits is refused. The comparison is
    /// constant-time.
    ///
    /// Returns the matched step: store it as the new `last_used_step`.
    pub fn verify(&self, code: &str, unix_secs: u64, last_used_step: Option<u64>) -> Option<u64> {
        let code = normalize_typed(code);
        if code.len() != Self::DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix_secs / Self::STEP_SECS;
        let candidates = [now.checked_sub(1), Some(now), now.checked_add(1)];
        let mut matched = None;
        for step in candidates.into_iter().flatten() {
            if last_used_step.is_some_and(|last| step <= last) {
                continue;
            }
            let ok: bool = self
                .code_for_step(step)
                .as_bytes()
                .ct_eq(code.as_bytes())
                .into();
            if ok {
                // On a (1-in-a-million) collision keep the latest step: replay protection
                // then covers all of them.
                matched = Some(step);
            }
        }
        matched
    }

    /// The `otpauth://` URI to show as a QR code for authenticator apps (Google
    /// Authenticator key URI format):
    /// `otpauth://totp/Issuer:account?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`.
    ///
    /// `issuer` and `account` are percent-encoded as UTF-8 (everything but RFC 3986
    /// unreserved characters), so Japanese names, spaces, `:` and `@` are safe.
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={}&period={}",
            percent_encode(account),
            self.secret_base32(),
            Self::DIGITS,
            Self::STEP_SECS,
        )
    }
}

/// Percent-encodes every byte of the UTF-8 text except RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Recovery codes
// ---------------------------------------------------------------------------------------

/// Characters for recovery codes: lower case, no `0`/`o`/`1`/`l`/`i`.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// How many recovery codes [`recovery_codes`] makes.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// Argon2id parameters for recovery codes: lighter than for passwords (a code has ~40
/// random bits, not a human's choice), still slow and salted against an offline search of
/// a stolen database: 4 MiB, one pass (a few milliseconds per code).
fn recovery_argon() -> Argon2<'static> {
    let params = argon2::Params::new(4096, 1, 1, None).expect("valid argon2 parameters");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// The stored hash of a normalised (8 characters, lower case, no dash) recovery code: an
/// Argon2id PHC string with its own random salt (see [`recovery_argon`]).
fn recovery_hash(compact: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(recovery_argon()
        .hash_password(compact.as_bytes(), &salt)?
        .to_string())
}

/// Whether the normalised code matches one stored hash: an Argon2 PHC string, or (codes
/// issued before salted hashes) a lower-case hex SHA-256 of the code, still accepted.
fn recovery_matches(compact: &str, stored: &str) -> bool {
    if stored.starts_with('$') {
        return match PasswordHash::new(stored) {
            Ok(parsed) => recovery_argon()
                .verify_password(compact.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        };
    }
    let legacy = hex::encode(Sha256::digest(compact.as_bytes()));
    stored.len() == legacy.len() && bool::from(stored.as_bytes().ct_eq(legacy.as_bytes()))
}

/// Ten new recovery codes (`xxxx-xxxx`, lower case, from 31 unambiguous characters),
/// and their hashes to store (salted Argon2id PHC strings of the code without its dash),
/// in the same order. Show the codes once; keep only the hashes. Slow (ten Argon2
/// hashes): call it off the async threads.
pub fn recovery_codes() -> Result<(Vec<String>, Vec<String>), AuthError> {
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let compact = random_string(RECOVERY_ALPHABET, 8);
            let hash = recovery_hash(&compact)?;
            Ok((format!("{}-{}", &compact[..4], &compact[4..]), hash))
        })
        .collect::<Result<Vec<_>, AuthError>>()
        .map(|v| v.into_iter().unzip())
}

/// The typed code in its stored form (case, whitespace, dashes and full-width characters
/// normalised), or `None` if it cannot be a recovery code (cheap: no hashing).
pub fn recovery_candidate(code: &str) -> Option<String> {
    let compact = normalize_typed(code).to_ascii_lowercase();
    (compact.len() == 8 && compact.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
        .then_some(compact)
}

/// Which stored hash a typed recovery code matches, if any. Slow (one Argon2 check per
/// stored hash): call it off the async threads.
pub fn find_recovery_code(code: &str, stored_hashes: &[String]) -> Option<usize> {
    let compact = recovery_candidate(code)?;
    stored_hashes
        .iter()
        .position(|stored| recovery_matches(&compact, stored))
}

/// Uses a recovery code typed by the customer ([`find_recovery_code`]): on a match that
/// hash is removed from `stored_hashes` (each code works once). Returns whether the code
/// was valid.
pub fn use_recovery_code(code: &str, stored_hashes: &mut Vec<String>) -> bool {
    match find_recovery_code(code, stored_hashes) {
        Some(i) => {
            stored_hashes.remove(i);
            true
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------------------
// Lockout
// ---------------------------------------------------------------------------------------

/// Failed-login bookkeeping for one account (store it with the account).
///
/// Passwords ([`Lockout::failed`]): the [`Lockout::MAX_FAILURES`]th failure within a
/// series locks the account for [`Lockout::LOCK_MS`]. A series ends when a lock expires or
/// when [`Lockout::LOCK_MS`] passed since its last failure; the count then starts again
/// from zero. Failures while locked are ignored (they neither count nor extend the lock;
/// the caller should refuse the attempt without checking the password). A success resets
/// everything.
///
/// Second-factor codes ([`Lockout::code_failed`]) have a budget of their own, kept
/// separately, that neither a correct password nor time resets: see there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lockout {
    /// Failures of the current series.
    pub failures: u32,
    /// Locked while the time (Unix milliseconds) is before this; 0 when never locked.
    pub locked_until_ms: i64,
    /// Time of the last counted failure (Unix milliseconds; 0: none recorded).
    pub last_failure_ms: i64,
}

impl Lockout {
    /// Failures of one series that lock the account.
    pub const MAX_FAILURES: u32 = 5;
    /// How long a lock lasts (and how long a series of password failures is remembered):
    /// 15 minutes.
    pub const LOCK_MS: i64 = 15 * 60 * 1000;
    /// The longest lock of the second factor: 24 hours.
    pub const MAX_CODE_LOCK_MS: i64 = 24 * 3600 * 1000;

    /// Whether the account is locked at `now_ms` (Unix milliseconds).
    pub fn is_locked(&self, now_ms: i64) -> bool {
        now_ms < self.locked_until_ms
    }

    /// Whether this record still differs from a fresh one at `now_ms`: locked, or a
    /// password series that has not ended yet. One that does not can be forgotten.
    pub fn matters(&self, now_ms: i64) -> bool {
        self.is_locked(now_ms)
            || (self.failures > 0
                && self.failures < Self::MAX_FAILURES
                && now_ms.saturating_sub(self.last_failure_ms) < Self::LOCK_MS)
    }

    /// Records a failed password attempt at `now_ms`.
    pub fn failed(&mut self, now_ms: i64) {
        if self.is_locked(now_ms) {
            return;
        }
        if self.failures >= Self::MAX_FAILURES
            || now_ms.saturating_sub(self.last_failure_ms) >= Self::LOCK_MS
        {
            // The previous lock has expired, or the series is old: a fresh series.
            self.failures = 0;
        }
        self.failures += 1;
        self.last_failure_ms = now_ms;
        if self.failures >= Self::MAX_FAILURES {
            self.locked_until_ms = now_ms.saturating_add(Self::LOCK_MS);
        }
    }

    /// Records a wrong second-factor code (TOTP or recovery code) at `now_ms`.
    ///
    /// The [`Lockout::MAX_FAILURES`]th wrong code locks for [`Lockout::LOCK_MS`]. The count
    /// does not start again when the lock expires: every further wrong code locks again,
    /// each time twice as long (30 min, 1 h, 2 h, ... up to [`Lockout::MAX_CODE_LOCK_MS`]).
    /// Only a correct code ([`Lockout::succeeded`]) or an operator's reset clears it, never a
    /// correct password. Failures while locked are ignored (the caller refuses them).
    pub fn code_failed(&mut self, now_ms: i64) {
        if self.is_locked(now_ms) {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure_ms = now_ms;
        if self.failures >= Self::MAX_FAILURES {
            let doublings = (self.failures - Self::MAX_FAILURES).min(20);
            let ms = Self::LOCK_MS
                .saturating_mul(1i64 << doublings)
                .min(Self::MAX_CODE_LOCK_MS);
            self.locked_until_ms = now_ms.saturating_add(ms);
        }
    }

    /// Records a successful login (or a correct code): clears the failures and any lock.
    pub fn succeeded(&mut self) {
        *self = Lockout::default();
    }
}

// ---------------------------------------------------------------------------------------
// Sessions and CSRF
// ---------------------------------------------------------------------------------------

/// The CSRF token for a session: lower-case hex HMAC-SHA256 keyed with the server's
/// session secret over the session id, so a token is only valid with its own session.
pub fn csrf_token(session_secret: &[u8], session_id: &str) -> String {
    hex::encode(csrf_mac(session_secret, session_id).finalize().into_bytes())
}

/// Whether `token` is the CSRF token of `session_id` (constant-time comparison).
pub fn csrf_ok(session_secret: &[u8], session_id: &str, token: &str) -> bool {
    match hex::decode(token) {
        Ok(tag) => csrf_mac(session_secret, session_id)
            .verify_slice(&tag)
            .is_ok(),
        Err(_) => false,
    }
}

fn csrf_mac(session_secret: &[u8], session_id: &str) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(session_secret).expect("HMAC takes keys of any length");
    mac.update(session_id.as_bytes());
    mac
}

/// A new session id: 32 random bytes as 64 lower-case hex characters (URL- and
/// cookie-safe).
pub fn new_session_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_totp() -> Totp {
        Totp {
            secret: b"12345678901234567890".to_vec(),
        }
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        let t = rfc_totp();
        for (time, eight) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(t.code_at(time), &eight[2..], "time {time}");
        }
    }

    #[test]
    fn base32_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn base32_round_trip_and_strictness() {
        for len in 0..=41 {
            let data: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
            let enc = base32_encode(&data);
            assert_eq!(base32_decode(&enc).unwrap(), data, "len {len}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base32_decode(&base32_encode(&all)).unwrap(), all);
        assert!(base32_decode("MZ").is_none(), "non-zero trailing bits");
        assert!(base32_decode("M").is_none(), "impossible length");
        assert!(base32_decode("MZXW6YTBO").is_none(), "impossible length");
        assert!(base32_decode("MZXW1").is_none(), "1 is not base32");
        assert!(
            base32_decode("mzxw6").is_none(),
            "lower case is normalised by the caller"
        );
    }

    #[test]
    fn totp_secret_base32() {
        let t = Totp::generate();
        assert_eq!(t.secret.len(), 20);
        let b32 = t.secret_base32();
        assert_eq!(b32.len(), 32);
        assert!(b32.bytes().all(|b| BASE32_ALPHABET.contains(&b)));
        let back = Totp::from_base32(&b32).unwrap();
        assert_eq!(back.secret, t.secret);
        assert_ne!(Totp::generate().secret, t.secret);

        // Lower case, spaces and padding are accepted.
        let rfc = rfc_totp();
        let b32 = rfc.secret_base32();
        assert_eq!(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let typed = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq====";
        assert_eq!(Totp::from_base32(typed).unwrap().secret, rfc.secret);

        assert!(Totp::from_base32("").is_none());
        assert!(
            Totp::from_base32("MZXW6YTBOI").is_none(),
            "too short a secret"
        );
        assert!(Totp::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ!").is_none());
        assert!(!format!("{t:?}").contains(&t.secret_base32()));
    }

    #[test]
    fn totp_window_and_replay() {
        let t = rfc_totp();
        let now = 1111111111u64;
        let step = now / 30;
        let code = |s: u64| t.code_for_step(s);

        assert_eq!(t.verify(&t.code_at(now), now, None), Some(step));
        assert_eq!(t.verify(&code(step - 1), now, None), Some(step - 1));
        assert_eq!(t.verify(&code(step + 1), now, None), Some(step + 1));
        assert_eq!(t.verify(&code(step - 2), now, None), None);
        assert_eq!(t.verify(&code(step + 2), now, None), None);

        // Replay: the step just used (or an earlier one) is refused.
        assert_eq!(t.verify(&code(step), now, Some(step)), None);
        assert_eq!(t.verify(&code(step - 1), now, Some(step)), None);
        assert_eq!(t.verify(&code(step), now + 29, Some(step + 1)), None);
        assert_eq!(t.verify(&code(step), now, Some(step - 1)), Some(step));
        assert_eq!(t.verify(&code(step + 1), now, Some(step)), Some(step + 1));

        // Typing variants.
        let c = code(step);
        let spaced = format!(" {} {} ", &c[..3], &c[3..]);
        assert_eq!(t.verify(&spaced, now, None), Some(step));
        let full_width: String = c
            .chars()
            .map(|d| char::from_u32(u32::from(d) + 0xFEE0).unwrap())
            .collect();
        assert_eq!(t.verify(&full_width, now, None), Some(step));
        assert_eq!(t.verify(&c[..5], now, None), None);
        assert_eq!(t.verify(&format!("{c}0"), now, None), None);
        assert_eq!(t.verify("abcdef", now, None), None);
        assert_eq!(t.verify("", now, None), None);

        // Step 0 has no previous step.
        assert_eq!(t.verify(&t.code_at(0), 0, None), Some(0));
    }

    #[test]
    fn totp_uri() {
        let t = rfc_totp();
        let uri = t.uri("見守りサービス", "taro.yamada@example.co.jp");
        assert_eq!(
            uri,
            "otpauth://totp/%E8%A6%8B%E5%AE%88%E3%82%8A%E3%82%B5%E3%83%BC%E3%83%93%E3%82%B9:\
             taro.yamada%40example.co.jp?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=%E8%A6%8B%E5%AE%88%E3%82%8A%E3%82%B5%E3%83%BC%E3%83%93%E3%82%B9\
             &algorithm=SHA1&digits=6&period=30"
        );
        let uri = t.uri("Mimamori Co:Ltd", "a&b=c");
        assert!(uri.starts_with("otpauth://totp/Mimamori%20Co%3ALtd:a%26b%3Dc?secret="));
        assert!(uri.contains("&issuer=Mimamori%20Co%3ALtd&"));
    }

    #[test]
    fn password_hash_and_verify() {
        // The only Argon2 work in the tests: one hash and two verifications.
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse battery!", &phc));
    }

    #[test]
    fn malformed_hash_is_false() {
        assert!(!verify_password("x", ""));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("x", "$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!verify_password(
            "x",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$???"
        ));
        assert!(!verify_password("x", "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA"));
    }

    #[test]
    fn new_password_rules() {
        let email = "Taro.Yamada@example.co.jp";
        assert_eq!(check_new_password("kumo-no-ue-42", email), Ok(()));
        assert_eq!(
            check_new_password("みまもりサービスの合言葉", email),
            Ok(())
        );
        assert_eq!(
            check_new_password("short", email),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(
            check_new_password("あいうえおかきくけ", email),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(
            check_new_password("123456789", email),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(check_new_password(&"x1".repeat(64), email), Ok(()));
        assert_eq!(
            check_new_password(&"x1".repeat(65), email),
            Err(PasswordProblem::TooLong)
        );
        assert_eq!(
            check_new_password("taro.yamada@example.co.jp", email),
            Err(PasswordProblem::ContainsEmail)
        );
        assert_eq!(
            check_new_password("TARO.YAMADA2024", email),
            Err(PasswordProblem::ContainsEmail)
        );
        // A very short local part is not held against the password.
        assert_eq!(check_new_password("kabocha-pie-7", "ka@example.jp"), Ok(()));
        assert_eq!(
            check_new_password("xx-ka@example.jp", "ka@example.jp"),
            Err(PasswordProblem::ContainsEmail)
        );
        for common in ["password123", "Password123", "1234567890", "QWERTYUIOP"] {
            assert_eq!(
                check_new_password(common, email),
                Err(PasswordProblem::TooCommon),
                "{common}"
            );
        }
        assert_eq!(
            check_new_password("aaaaaaaaaaaa", email),
            Err(PasswordProblem::TooCommon)
        );
        assert_eq!(check_new_password("kumo-no-ue-42", ""), Ok(()));

        for p in [
            PasswordProblem::TooShort,
            PasswordProblem::TooLong,
            PasswordProblem::ContainsEmail,
            PasswordProblem::TooCommon,
        ] {
            assert!(!p.message().is_empty() && !p.message().is_ascii());
            assert!(p.message_en().is_ascii());
            assert_eq!(p.to_string(), p.message_en());
        }
        assert!(
            PasswordProblem::TooShort
                .message()
                .contains(&MIN_PASSWORD_CHARS.to_string())
        );
        assert!(
            PasswordProblem::TooLong
                .message_en()
                .contains(&MAX_PASSWORD_CHARS.to_string())
        );
    }

    #[test]
    fn temporary_passwords() {
        let a = temporary_password();
        assert_eq!(a.chars().count(), 16);
        assert!(a.bytes().all(|b| TEMP_PASSWORD_ALPHABET.contains(&b)));
        assert!(!a.contains(['0', 'O', '1', 'l', 'I']));
        assert_ne!(a, temporary_password());
        assert_eq!(TEMP_PASSWORD_ALPHABET.len(), 57);
    }

    #[test]
    fn recovery_codes_are_single_use() {
        let (codes, mut hashes) = recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(hashes.len(), 10);
        for (code, hash) in codes.iter().zip(&hashes) {
            assert_eq!(code.len(), 9);
            assert_eq!(&code[4..5], "-");
            assert!(
                code.bytes()
                    .filter(|&b| b != b'-')
                    .all(|b| RECOVERY_ALPHABET.contains(&b))
            );
            // salted and slow: no plain digest of the code, a salt of its own per code
            assert!(hash.starts_with("$argon2id$v=19$m=4096,t=1,p=1$"), "{hash}");
            assert!(!hash.contains(&hex::encode(Sha256::digest(code.replace('-', "")))));
            assert!(recovery_matches(&code.replace('-', ""), hash));
        }
        let salts: std::collections::HashSet<&str> = hashes
            .iter()
            .map(|h| h.split('$').nth(4).unwrap())
            .collect();
        assert_eq!(salts.len(), 10, "one salt per code");
        // the same code hashed twice gives two different strings
        assert_ne!(
            recovery_hash("abcdefgh").unwrap(),
            recovery_hash("abcdefgh").unwrap()
        );

        if !codes.iter().any(|c| c == "zzzz-zzzz") {
            assert!(!use_recovery_code("zzzz-zzzz", &mut hashes));
        }
        assert!(!use_recovery_code("", &mut hashes));
        assert!(!use_recovery_code("abc", &mut hashes));
        assert_eq!(hashes.len(), 10);

        assert!(use_recovery_code(&codes[3], &mut hashes));
        assert_eq!(hashes.len(), 9);
        assert!(!use_recovery_code(&codes[3], &mut hashes), "second use");
        assert_eq!(hashes.len(), 9);

        // Upper case, spaces, no dash, full-width dash.
        let typed = format!(" {} {} ", codes[0][..4].to_uppercase(), &codes[0][5..]);
        assert!(use_recovery_code(&typed, &mut hashes));
        let typed = codes[1].replace('-', "");
        assert!(use_recovery_code(&typed, &mut hashes));
        let typed = codes[2].replace('-', "－");
        assert!(use_recovery_code(&typed, &mut hashes));
        assert_eq!(hashes.len(), 6);
        assert!(find_recovery_code(&codes[0], &hashes).is_none());
    }

    #[test]
    fn recovery_codes_stored_before_salted_hashes_still_work() {
        // what older versions stored: hex SHA-256 of the compact code
        let mut stored = vec![
            hex::encode(Sha256::digest(b"abcd2345")),
            recovery_hash("wxyz6789").unwrap(),
        ];
        assert!(!use_recovery_code("abcd-2346", &mut stored));
        assert!(use_recovery_code("ABCD-2345", &mut stored));
        assert_eq!(stored.len(), 1);
        assert!(!use_recovery_code("abcd-2345", &mut stored), "once only");
        assert!(use_recovery_code("wxyz-6789", &mut stored));
        assert!(stored.is_empty());
        // malformed stored entries match nothing
        let stored = vec!["$argon2id$bad".to_string(), "zz".to_string(), String::new()];
        assert!(find_recovery_code("abcd-2345", &stored).is_none());
    }

    #[test]
    fn lockout_after_five_failures() {
        let t0 = 1_700_000_000_000i64;
        let mut l = Lockout::default();
        for i in 0..4 {
            l.failed(t0 + i);
            assert!(!l.is_locked(t0 + i), "failure {}", i + 1);
        }
        l.failed(t0 + 10);
        assert!(l.is_locked(t0 + 10));
        assert_eq!(l.locked_until_ms, t0 + 10 + Lockout::LOCK_MS);

        // Failures while locked are ignored: no extension.
        l.failed(t0 + 60_000);
        assert_eq!(l.failures, 5);
        assert_eq!(l.locked_until_ms, t0 + 10 + Lockout::LOCK_MS);
        assert!(l.is_locked(t0 + 10 + Lockout::LOCK_MS - 1));
        assert!(
            !l.is_locked(t0 + 10 + Lockout::LOCK_MS),
            "released after 15 minutes"
        );

        // After the release a fresh series of five starts.
        let t1 = t0 + 10 + Lockout::LOCK_MS;
        l.failed(t1);
        assert_eq!(l.failures, 1);
        assert!(!l.is_locked(t1));

        // A success resets.
        l.succeeded();
        assert_eq!(l, Lockout::default());
        for i in 0..4 {
            l.failed(t1 + i);
        }
        l.succeeded();
        l.failed(t1 + 5);
        assert!(!l.is_locked(t1 + 5));

        // Serde round trip, and missing fields default.
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Lockout>(&json).unwrap(), l);
        assert_eq!(
            serde_json::from_str::<Lockout>("{}").unwrap(),
            Lockout::default()
        );
    }

    #[test]
    fn a_password_series_ends_after_fifteen_quiet_minutes() {
        let t0 = 1_700_000_000_000i64;
        let mut l = Lockout::default();
        for i in 0..4 {
            l.failed(t0 + i);
        }
        assert!(l.matters(t0 + 4));
        assert!(
            !l.matters(t0 + 3 + Lockout::LOCK_MS),
            "forgettable after 15 min"
        );
        l.failed(t0 + 3 + Lockout::LOCK_MS);
        assert_eq!(l.failures, 1, "an old series does not count");
        assert!(!l.is_locked(t0 + 3 + Lockout::LOCK_MS));
        assert!(!Lockout::default().matters(t0));
    }

    #[test]
    fn code_lockout_survives_time_and_doubles() {
        let t0 = 1_700_000_000_000i64;
        let mut l = Lockout::default();
        for i in 0..4 {
            l.code_failed(t0 + i);
            assert!(!l.is_locked(t0 + i));
        }
        l.code_failed(t0 + 4);
        assert_eq!(l.locked_until_ms, t0 + 4 + Lockout::LOCK_MS);
        // ignored while locked
        l.code_failed(t0 + 5);
        assert_eq!(l.failures, 5);
        // after the lock: one more wrong code locks again, twice as long
        let t1 = l.locked_until_ms;
        l.code_failed(t1);
        assert_eq!(l.locked_until_ms, t1 + 2 * Lockout::LOCK_MS);
        let t2 = l.locked_until_ms;
        l.code_failed(t2);
        assert_eq!(l.locked_until_ms, t2 + 4 * Lockout::LOCK_MS);
        // hours later the count is still there; the lock is capped at a day
        let mut t = l.locked_until_ms + 10 * Lockout::LOCK_MS;
        for _ in 0..40 {
            l.code_failed(t);
            assert!(l.locked_until_ms - t <= Lockout::MAX_CODE_LOCK_MS);
            t = l.locked_until_ms;
        }
        assert_eq!(
            l.locked_until_ms - l.last_failure_ms,
            Lockout::MAX_CODE_LOCK_MS
        );
        l.succeeded();
        assert_eq!(l, Lockout::default());
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let secret = b"server session secret";
        let (a, b) = (new_session_id(), new_session_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );

        let ta = csrf_token(secret, &a);
        assert_eq!(ta.len(), 64);
        assert_eq!(ta, csrf_token(secret, &a), "deterministic");
        assert!(csrf_ok(secret, &a, &ta));
        assert!(!csrf_ok(secret, &b, &ta), "another session");
        assert!(!csrf_ok(b"another secret", &a, &ta), "another key");
        assert!(!csrf_ok(secret, &a, &ta[..62]));
        assert!(!csrf_ok(secret, &a, ""));
        assert!(!csrf_ok(secret, &a, "not hex"));
        let mut flipped = ta.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert!(!csrf_ok(secret, &a, std::str::from_utf8(&flipped).unwrap()));
    }
}
