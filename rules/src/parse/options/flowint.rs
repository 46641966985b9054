//! `flowint`: integer variables kept per flow (`flowint:name,+,1`, `flowint:name,>,5`,
//! `flowint:name,isset`). Names become ids of the rule set's `ParseCtx`, as flowbits do.

use super::{Builder, R, bad};
use crate::ast::*;

/// `flowint` commands on one rule, at most (every one is evaluated on each match).
const MAX_FLOWINTS: usize = 32;

/// Suricata's variable names: a letter, then at least one of `[A-Za-z0-9_./]`.
fn valid_name(s: &str, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || extra.contains(c))
}

impl Builder<'_> {
    pub(super) fn flowint(&mut self, rule: &mut Rule, v: &str) -> R<()> {
        let kw = "flowint";
        if rule.flowints.len() >= MAX_FLOWINTS {
            return Err(bad(kw, format!("more than {MAX_FLOWINTS} on one rule")));
        }
        let parts: Vec<&str> = v.split(',').map(str::trim).collect();
        let (name, op, value) = match parts.as_slice() {
            [name, op] => (*name, *op, None),
            [name, op, value] => (*name, *op, Some(*value)),
            _ => return Err(bad(kw, "expected `name,op[,value]`")),
        };
        if !valid_name(name, b"./") {
            return Err(bad(kw, format!("`{name}` is not a variable name")));
        }
        let var = self.ctx.flowint_id(name);
        let cmd = match op {
            "isset" | "notset" | "isnotset" => {
                if value.is_some() {
                    return Err(bad(kw, format!("`{op}` takes no value")));
                }
                FlowintCmd::IsSet {
                    var,
                    set: op == "isset",
                }
            }
            _ => {
                let value = value
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| bad(kw, format!("`{op}` needs a value")))?;
                let value = self.flowint_value(value)?;
                let modify = |op| FlowintCmd::Modify { var, op, value };
                let compare = |cmp| FlowintCmd::Compare { var, cmp, value };
                match op {
                    "=" => modify(FlowintOp::Set),
                    "+" => modify(FlowintOp::Add),
                    "-" => modify(FlowintOp::Sub),
                    "==" => compare(FlowintCmp::Eq),
                    "!=" => compare(FlowintCmp::Ne),
                    "<" => compare(FlowintCmp::Lt),
                    "<=" => compare(FlowintCmp::Le),
                    ">" => compare(FlowintCmp::Gt),
                    ">=" => compare(FlowintCmp::Ge),
                    o => return Err(bad(kw, format!("unknown operator `{o}`"))),
                }
            }
        };
        rule.flowints.push(cmd);
        Ok(())
    }

    /// A number up to `u32::MAX` or the name of another flowint.
    fn flowint_value(&mut self, v: &str) -> R<FlowintVal> {
        if v.starts_with(|c: char| c.is_ascii_digit()) {
            return v.parse::<u32>().map(FlowintVal::Lit).map_err(|_| {
                bad(
                    "flowint",
                    format!("`{v}` is not a number up to {}", u32::MAX),
                )
            });
        }
        if !valid_name(v, b"") {
            return Err(bad(
                "flowint",
                format!("`{v}` is neither a number nor a variable name"),
            ));
        }
        Ok(FlowintVal::Var(self.ctx.flowint_id(v)))
    }
}
