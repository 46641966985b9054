//! ★ scoring (SPEC §5.2): every alert gets a level and a one-line reason.
//!
//! The policy is a TOML table of rules evaluated top to bottom; the first that matches
//! decides. [`DEFAULT_POLICY`] is SPEC §5.2; operators replace it with `scoring_policy` in
//! the config. Escalation (two distinct ★★☆ of one host within 24 h → ★★★) and
//! per-contract exceptions are applied around the policy by the ingest transaction.

pub mod catalog;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use protocol::messages::{Action, Alert, Detection, Direction, FileVerdict};

/// Importance of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Not important: portal only.
    Info,
    /// 調査中: needs an operator's look.
    Investigating,
    /// ★☆☆
    Low,
    /// ★★☆
    Medium,
    /// ★★★
    High,
}

impl Level {
    /// Mailed to the customer.
    pub fn important(self) -> bool {
        self != Level::Info
    }
    pub fn stars(self) -> &'static str {
        match self {
            Level::High => "★★★",
            Level::Medium => "★★☆",
            Level::Low => "★☆☆",
            Level::Investigating => "調査中",
            Level::Info => "参考",
        }
    }
    pub fn label_ja(self) -> &'static str {
        match self {
            Level::High => "★★★ 高",
            Level::Medium => "★★☆ 中",
            Level::Low => "★☆☆ 低",
            Level::Investigating => "※調査中※",
            Level::Info => "参考情報",
        }
    }
    /// Order for "the highest level" of a mail: ★★★ > ★★☆ > ★☆☆ > 調査中.
    pub fn rank(self) -> u8 {
        match self {
            Level::High => 4,
            Level::Medium => 3,
            Level::Low => 2,
            Level::Investigating => 1,
            Level::Info => 0,
        }
    }
    /// What the customer must do (SPEC §5.2/§5.3).
    pub fn actions_ja(self) -> &'static str {
        match self {
            Level::High => {
                "感染の可能性が高い状態です。該当端末を直ちにネットワークから切り離し（LANケーブルを抜く／Wi-Fiを切る）、ウイルス対策ソフトでフルスキャンを実施してください。結果を弊社までご連絡ください。"
            }
            Level::Medium => {
                "感染の可能性があります。該当端末でウイルス対策ソフトのフルスキャンを実施してください。"
            }
            Level::Low => {
                "感染の可能性は低いと考えられます。不審なメールやサイトにご注意ください。"
            }
            Level::Investigating => {
                "弊社にて調査中です。結果が分かり次第ご連絡します。現時点で特別な対応は不要です。"
            }
            Level::Info => "対応は不要です。",
        }
    }
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "high" | "★★★" | "3" => Level::High,
            "medium" | "★★☆" | "2" => Level::Medium,
            "low" | "★☆☆" | "1" => Level::Low,
            "investigating" | "調査中" => Level::Investigating,
            "info" | "0" => Level::Info,
            _ => return None,
        })
    }
}

/// What was detected, seen by the policy.
pub enum Subject<'a> {
    Alert(&'a Alert),
    File(&'a FileVerdict),
}

/// One policy rule: all given conditions must hold.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    pub name: String,
    pub level: String,
    pub reason: String,
    /// `signature`, `category` or `file`.
    #[serde(default)]
    pub event: Option<String>,
    /// `outbound`, `inbound`, `internal`.
    #[serde(default)]
    pub direction: Vec<String>,
    #[serde(default)]
    pub classtype: Vec<String>,
    /// At least one key has one of its values.
    #[serde(default)]
    pub any_metadata: BTreeMap<String, Vec<String>>,
    /// None of these keys is present.
    #[serde(default)]
    pub missing_metadata: Vec<String>,
    /// `allowed`, `blocked`, `disarmed`, `reset`.
    #[serde(default)]
    pub action: Vec<String>,
    /// Blocking-list categories (for `category` events).
    #[serde(default)]
    pub category: Vec<String>,
}

/// The policy file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(rename = "rule")]
    pub rules: Vec<PolicyRule>,
    /// Level and reason when no rule matches.
    #[serde(default = "default_fallback_reason")]
    pub fallback_reason: String,
}

fn default_fallback_reason() -> String {
    "重要度の低いイベントです（ポータルでのみ表示）".into()
}

/// SPEC §5.2 as a policy.
pub const DEFAULT_POLICY: &str = r#"
# Evaluated top to bottom; the first rule whose conditions all hold gives the level.
# level: high (★★★) | medium (★★☆) | low (★☆☆) | investigating (調査中) | info (portal only)

[[rule]]
name = "file-reached-host"
level = "high"
reason = "悪性ファイルが社内の端末に届きました（遮断されていません）"
event = "file"
action = ["allowed"]

[[rule]]
name = "c2-high-confidence"
level = "high"
reason = "社内の端末から外部の C2（遠隔操作）サーバー等への通信を検知しました（確度: 高）"
event = "signature"
direction = ["outbound"]
classtype = ["trojan-activity", "command-and-control", "coin-mining", "domain-c2", "targeted-activity"]
any_metadata = { signature_severity = ["Major", "Critical"], confidence = ["High"] }

[[rule]]
name = "c2-lower-confidence"
level = "medium"
reason = "社内の端末から外部の C2 サーバー等への通信の可能性があります（確度: 中・低）"
event = "signature"
direction = ["outbound"]
classtype = ["trojan-activity", "command-and-control", "coin-mining", "domain-c2", "targeted-activity"]
any_metadata = { signature_severity = ["Minor", "Informational"], confidence = ["Medium", "Low"] }

[[rule]]
name = "file-blocked"
level = "medium"
reason = "悪性ファイルのダウンロードを遮断しました"
event = "file"
action = ["blocked", "disarmed", "reset"]

[[rule]]
name = "inbound-exploit-not-blocked"
level = "medium"
reason = "社内の端末への攻撃を検知しました（遮断されていません）"
event = "signature"
direction = ["inbound"]
action = ["allowed"]
classtype = ["attempted-admin", "attempted-user", "successful-admin", "successful-user", "web-application-attack", "shellcode-detect", "exploit-kit"]

[[rule]]
name = "malware-site-blocked"
level = "low"
reason = "マルウェア配布・攻撃サイトへのアクセスを遮断しました"
event = "category"
category = ["malware", "exploit", "cryptojacking"]
action = ["blocked", "reset"]

[[rule]]
name = "phishing-site-blocked"
level = "low"
reason = "フィッシングサイトへのアクセスを遮断しました"
event = "category"
category = ["phishing"]
action = ["blocked", "reset"]

[[rule]]
name = "outbound-unrated"
level = "investigating"
reason = "社内の端末からの不審な通信です。評価情報がないため弊社で調査します"
event = "signature"
direction = ["outbound"]
missing_metadata = ["signature_severity", "confidence"]
"#;

/// A loaded policy with levels resolved.
#[derive(Debug, Clone)]
pub struct Scorer {
    rules: Vec<(PolicyRule, Level)>,
    fallback: String,
}

impl Scorer {
    pub fn default_policy() -> Scorer {
        Scorer::from_toml(DEFAULT_POLICY).expect("the built-in policy is valid")
    }

    pub fn from_toml(text: &str) -> Result<Scorer, String> {
        let p: Policy = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut rules = Vec::new();
        for r in p.rules {
            let level = Level::parse(&r.level)
                .ok_or_else(|| format!("rule `{}`: unknown level `{}`", r.name, r.level))?;
            if let Some(e) = &r.event {
                if !matches!(e.as_str(), "signature" | "category" | "file") {
                    return Err(format!("rule `{}`: unknown event `{e}`", r.name));
                }
            }
            for d in &r.direction {
                if !matches!(d.as_str(), "outbound" | "inbound" | "internal") {
                    return Err(format!("rule `{}`: unknown direction `{d}`", r.name));
                }
            }
            for a in &r.action {
                if !matches!(a.as_str(), "allowed" | "blocked" | "disarmed" | "reset") {
                    return Err(format!("rule `{}`: unknown action `{a}`", r.name));
                }
            }
            rules.push((r, level));
        }
        Ok(Scorer {
            rules,
            fallback: p.fallback_reason,
        })
    }

    /// Level and reason of an event by the policy alone.
    pub fn score(&self, s: &Subject<'_>) -> (Level, String) {
        for (r, level) in &self.rules {
            if rule_matches(r, s) {
                return (*level, r.reason.clone());
            }
        }
        (Level::Info, self.fallback.clone())
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Allowed => "allowed",
        Action::Blocked => "blocked",
        Action::Disarmed => "disarmed",
        Action::Reset => "reset",
    }
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Outbound => "outbound",
        Direction::Inbound => "inbound",
        Direction::Internal => "internal",
    }
}

fn rule_matches(r: &PolicyRule, s: &Subject<'_>) -> bool {
    let (kind, flow, action) = match s {
        Subject::Alert(a) => (
            match a.detection {
                Detection::Signature(_) => "signature",
                Detection::Category { .. } => "category",
            },
            &a.flow,
            a.action,
        ),
        Subject::File(f) => ("file", &f.flow, f.action),
    };
    if r.event.as_deref().is_some_and(|e| e != kind) {
        return false;
    }
    if !r.direction.is_empty()
        && !r
            .direction
            .iter()
            .any(|d| d == direction_name(flow.direction))
    {
        return false;
    }
    if !r.action.is_empty() && !r.action.iter().any(|a| a == action_name(action)) {
        return false;
    }
    let sig = match s {
        Subject::Alert(Alert {
            detection: Detection::Signature(sig),
            ..
        }) => Some(sig),
        _ => None,
    };
    if !r.classtype.is_empty() {
        let ct = sig.and_then(|s| s.classtype.as_deref());
        if !ct.is_some_and(|c| r.classtype.iter().any(|x| x == c)) {
            return false;
        }
    }
    if !r.any_metadata.is_empty() {
        let Some(sig) = sig else { return false };
        let hit = r.any_metadata.iter().any(|(k, vals)| {
            sig.meta(k)
                .is_some_and(|v| vals.iter().any(|x| x.eq_ignore_ascii_case(v)))
        });
        if !hit {
            return false;
        }
    }
    if !r.missing_metadata.is_empty() {
        let Some(sig) = sig else { return false };
        if r.missing_metadata.iter().any(|k| sig.meta(k).is_some()) {
            return false;
        }
    }
    if !r.category.is_empty() {
        let cat = match s {
            Subject::Alert(Alert {
                detection: Detection::Category { category },
                ..
            }) => Some(category.as_str()),
            _ => None,
        };
        if !cat.is_some_and(|c| r.category.iter().any(|x| x == c)) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod test;
