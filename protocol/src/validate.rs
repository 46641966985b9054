//! Post-decode validation: every limit of [`limits`](crate::limits) checked, field by field.
//!
//! Postcard only guarantees that bytes match the shape of a type. [`Validate`] checks what the
//! shape cannot express: string bounds, list lengths and value rules (a bucket start aligned to
//! ten minutes, strictly increasing sequence numbers). The encoder runs it too, so this end never
//! sends what the other end would refuse.

use crate::bounded::BoundedString;
use crate::error::FrameError;

/// A value that can be checked against the protocol's limits.
pub trait Validate {
    /// Returns the first violated limit, naming the field.
    fn validate(&self) -> Result<(), FrameError>;
}

/// Checks `list.len() <= max`.
pub(crate) fn list<T>(list: &[T], max: usize, field: &'static str) -> Result<(), FrameError> {
    if list.len() > max {
        return Err(FrameError::ListTooLong {
            field,
            len: list.len(),
            max,
        });
    }
    Ok(())
}

/// Checks an optional bounded string.
pub(crate) fn opt<const MAX: usize>(
    s: &Option<BoundedString<MAX>>,
    field: &'static str,
) -> Result<(), FrameError> {
    match s {
        Some(s) => s.check(field),
        None => Ok(()),
    }
}

/// Fails with [`FrameError::InvalidField`] unless `ok`.
pub(crate) fn ensure(
    ok: bool,
    field: &'static str,
    reason: &'static str,
) -> Result<(), FrameError> {
    if ok {
        Ok(())
    } else {
        Err(FrameError::InvalidField { field, reason })
    }
}

impl<T: Validate> Validate for Box<T> {
    fn validate(&self) -> Result<(), FrameError> {
        (**self).validate()
    }
}
