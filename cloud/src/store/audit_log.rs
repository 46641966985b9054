//! The audit log's and the operators' tables (their types and rules: `crate::audit`).
//! Entries are appended only; [`Tx::rewrite_audit`] exists for the contract end's
//! anonymisation alone.

use redb::{ReadableTable, TableDefinition};

use super::{Result, Rx, Tx, dec, enc};
use crate::audit::{Entry, Operator};

/// id → [`Entry`].
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (contract, id) of the entries about a contract.
pub(super) const AUDIT_BY_CONTRACT: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("audit_by_contract");
/// name → [`Operator`].
pub(super) const OPERATORS: TableDefinition<&str, &[u8]> = TableDefinition::new("operators");

macro_rules! audit_readers {
    ($ty:ty) => {
        impl $ty {
            /// Visit every entry newest first until `f` returns false.
            pub fn scan_audit(&self, f: &mut dyn FnMut(Entry) -> bool) -> Result<()> {
                let t = self.0.open_table(AUDIT)?;
                for e in t.iter()?.rev() {
                    let (_, v) = e?;
                    if !f(dec("audit", v.value())?) {
                        break;
                    }
                }
                Ok(())
            }
            /// Visit the entries of one contract newest first until `f` returns false.
            pub fn scan_audit_of(
                &self,
                contract: u64,
                f: &mut dyn FnMut(Entry) -> bool,
            ) -> Result<()> {
                let idx = self.0.open_table(AUDIT_BY_CONTRACT)?;
                let t = self.0.open_table(AUDIT)?;
                for e in idx.range((contract, 0)..=(contract, u64::MAX))?.rev() {
                    let (k, _) = e?;
                    if let Some(v) = t.get(k.value().1)? {
                        if !f(dec("audit", v.value())?) {
                            break;
                        }
                    }
                }
                Ok(())
            }
            pub fn audit_entry(&self, id: u64) -> Result<Option<Entry>> {
                let t = self.0.open_table(AUDIT)?;
                let r = t.get(id)?;
                match r {
                    Some(v) => Ok(Some(dec("audit", v.value())?)),
                    None => Ok(None),
                }
            }
            pub fn operator(&self, name: &str) -> Result<Option<Operator>> {
                let t = self.0.open_table(OPERATORS)?;
                let r = t.get(name)?;
                match r {
                    Some(v) => Ok(Some(dec("operators", v.value())?)),
                    None => Ok(None),
                }
            }
            pub fn operators(&self) -> Result<Vec<Operator>> {
                let t = self.0.open_table(OPERATORS)?;
                let mut v = Vec::new();
                for e in t.iter()? {
                    let (_, val) = e?;
                    v.push(dec("operators", val.value())?);
                }
                Ok(v)
            }
        }
    };
}

audit_readers!(Tx);
audit_readers!(Rx);

impl Tx {
    /// Append an entry (its id drawn by the caller from the `audit` counter).
    pub(crate) fn append_audit(&mut self, e: &Entry) -> Result<()> {
        let mut t = self.0.open_table(AUDIT)?;
        if t.get(e.id)?.is_some() {
            return Err(super::StoreError::Refused(format!(
                "audit entry {} exists; entries are never replaced",
                e.id
            )));
        }
        t.insert(e.id, enc(e).as_slice())?;
        if let Some(c) = e.contract {
            self.0
                .open_table(AUDIT_BY_CONTRACT)?
                .insert((c, e.id), ())?;
        }
        Ok(())
    }
    /// Rewrite an existing entry: only for `audit::anonymise_contract`.
    pub(crate) fn rewrite_audit(&mut self, e: &Entry) -> Result<()> {
        let mut t = self.0.open_table(AUDIT)?;
        if t.get(e.id)?.is_none() {
            return Err(super::StoreError::NotFound(format!("audit entry {}", e.id)));
        }
        t.insert(e.id, enc(e).as_slice())?;
        Ok(())
    }
    pub fn put_operator(&mut self, o: &Operator) -> Result<()> {
        self.0
            .open_table(OPERATORS)?
            .insert(o.name.as_str(), enc(o).as_slice())?;
        Ok(())
    }
}
