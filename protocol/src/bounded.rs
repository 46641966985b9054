//! Strings with a length bound fixed in the type.
//!
//! [`BoundedString<MAX>`] can only be built within its bound (or truncated into it). Serde
//! deserialization does not check the bound itself, because postcard would drop the error
//! message; instead every decoded message is walked by [`Validate`](crate::Validate), which
//! names the offending field. [`decode_frame`](crate::frame::decode_frame) always validates.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::error::{FrameError, StringTooLong};
use crate::limits::{
    MAX_FILE_NAME_LEN, MAX_HOST_LEN, MAX_META_VALUE_LEN, MAX_NAME_LEN, MAX_PATH_LEN, MAX_TEXT_LEN,
};

/// A UTF-8 string of at most `MAX` bytes.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BoundedString<const MAX: usize>(String);

/// A short identifier: category, app, classtype, counter or metadata key, version string.
pub type Name = BoundedString<MAX_NAME_LEN>;
/// A rule-metadata value.
pub type MetaValue = BoundedString<MAX_META_VALUE_LEN>;
/// A DNS name, SNI or URL host.
pub type HostName = BoundedString<MAX_HOST_LEN>;
/// A URL path without query string or fragment.
pub type UrlPath = BoundedString<MAX_PATH_LEN>;
/// A file name as seen in the transfer.
pub type FileName = BoundedString<MAX_FILE_NAME_LEN>;
/// Free text: rule message, threat name, result message.
pub type Text = BoundedString<MAX_TEXT_LEN>;

impl<const MAX: usize> BoundedString<MAX> {
    /// The bound, in bytes.
    pub const MAX: usize = MAX;

    /// Wraps `s` if it fits the bound.
    pub fn new(s: impl Into<String>) -> Result<Self, StringTooLong> {
        let s = s.into();
        if s.len() > MAX {
            return Err(StringTooLong {
                len: s.len(),
                max: MAX,
            });
        }
        Ok(Self(s))
    }

    /// Copies `s`, cutting it at the last character boundary within the bound.
    ///
    /// For values taken from traffic (URL paths, DNS names, file names) where a long value
    /// should still be reported rather than dropped.
    pub fn truncated(s: &str) -> Self {
        let mut end = s.len().min(MAX);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Self(s[..end].to_owned())
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unwraps the string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Checks the bound after decoding, naming `field` on failure.
    pub(crate) fn check(&self, field: &'static str) -> Result<(), FrameError> {
        if self.0.len() > MAX {
            return Err(StringTooLong {
                len: self.0.len(),
                max: MAX,
            }
            .in_field(field));
        }
        Ok(())
    }
}

impl<const MAX: usize> Deref for BoundedString<MAX> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> AsRef<str> for BoundedString<MAX> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<String> for BoundedString<MAX> {
    type Error = StringTooLong;

    fn try_from(s: String) -> Result<Self, StringTooLong> {
        Self::new(s)
    }
}

impl<const MAX: usize> TryFrom<&str> for BoundedString<MAX> {
    type Error = StringTooLong;

    fn try_from(s: &str) -> Result<Self, StringTooLong> {
        Self::new(s)
    }
}

impl<const MAX: usize> PartialEq<str> for BoundedString<MAX> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl<const MAX: usize> PartialEq<&str> for BoundedString<MAX> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<const MAX: usize> fmt::Display for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> fmt::Debug for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn new_enforces_bound() {
        assert_eq!(
            BoundedString::<3>::new("abc").map(|s| s.into_string()),
            Ok("abc".into())
        );
        assert_eq!(
            BoundedString::<3>::new("abcd"),
            Err(StringTooLong { len: 4, max: 3 })
        );
    }

    #[test]
    fn truncated_respects_char_boundaries() {
        // "見守り" is 9 bytes, 3 per character.
        assert_eq!(BoundedString::<7>::truncated("見守り"), "見守");
        assert_eq!(BoundedString::<9>::truncated("見守り"), "見守り");
        assert_eq!(BoundedString::<2>::truncated("見"), "");
    }

    #[test]
    fn check_names_the_field() {
        let long = BoundedString::<2>(String::from("abc"));
        assert_eq!(
            long.check("x.y"),
            Err(FrameError::FieldTooLong {
                field: "x.y",
                len: 3,
                max: 2
            })
        );
    }
}
