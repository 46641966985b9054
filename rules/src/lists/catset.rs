//! [`CatSet`]: a set of category ids as one 64-bit word.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

/// The most categories one [`CategoryDb`](super::CategoryDb) holds.
pub const MAX_CATEGORIES: usize = 64;

/// A set of category ids (`0..64`), `Copy` and allocation-free.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CatSet(u64);

impl CatSet {
    pub const EMPTY: CatSet = CatSet(0);

    pub const fn from_bits(bits: u64) -> CatSet {
        CatSet(bits)
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The set holding only `id`; empty if `id` is 64 or more.
    pub const fn single(id: u8) -> CatSet {
        if (id as usize) < MAX_CATEGORIES {
            CatSet(1 << id)
        } else {
            CatSet(0)
        }
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub const fn contains(self, id: u8) -> bool {
        (id as usize) < MAX_CATEGORIES && self.0 & (1 << id) != 0
    }

    /// The smallest id in the set.
    pub const fn first(self) -> Option<u8> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0.trailing_zeros() as u8)
        }
    }

    pub fn insert(&mut self, id: u8) {
        self.0 |= CatSet::single(id).0;
    }

    /// The ids in ascending order.
    pub fn iter(self) -> CatIter {
        CatIter(self.0)
    }
}

impl BitOr for CatSet {
    type Output = CatSet;
    fn bitor(self, rhs: CatSet) -> CatSet {
        CatSet(self.0 | rhs.0)
    }
}

impl BitOrAssign for CatSet {
    fn bitor_assign(&mut self, rhs: CatSet) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for CatSet {
    type Output = CatSet;
    fn bitand(self, rhs: CatSet) -> CatSet {
        CatSet(self.0 & rhs.0)
    }
}

impl IntoIterator for CatSet {
    type Item = u8;
    type IntoIter = CatIter;
    fn into_iter(self) -> CatIter {
        self.iter()
    }
}

impl FromIterator<u8> for CatSet {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> CatSet {
        let mut set = CatSet::EMPTY;
        for id in iter {
            set.insert(id);
        }
        set
    }
}

impl fmt::Debug for CatSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Iterator over the ids of a [`CatSet`], ascending.
#[derive(Clone)]
pub struct CatIter(u64);

impl Iterator for CatIter {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.0 == 0 {
            return None;
        }
        let id = self.0.trailing_zeros() as u8;
        self.0 &= self.0 - 1;
        Some(id)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for CatIter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let s: CatSet = [3u8, 0, 63, 64].into_iter().collect();
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 3, 63]);
        assert_eq!(s.len(), 3);
        assert!(s.contains(63) && !s.contains(64) && !s.contains(1));
        assert_eq!(s.first(), Some(0));
        assert!(CatSet::EMPTY.is_empty());
        assert_eq!((s & CatSet::single(3)).first(), Some(3));
        assert_eq!(format!("{s:?}"), "{0, 3, 63}");
    }
}
