//! Owns per-tool authorization (RBAC): the `[[auth.rules]]` of the configuration (read at start,
//! and again on `auth reload`), and the one question the dispatcher asks of them — may this
//! principal see and use this tool
//! (resource, prompt)? — answered with the scopes it lacks when it may not.
//!
//! A name some rule covers is granted only by a covering rule whose principals include the caller
//! (or are empty) and whose scopes the caller holds, all of them; a name no rule covers gets the
//! default (`auth.default`).

use super::Principal;
use crate::config::{RuleConfig, RuleDefault};
use serde::Serialize;

/// What a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A tool (listed, called).
    Tool,
    /// A resource or a resource template (listed, read).
    Resource,
    /// A prompt (listed, got).
    Prompt,
}

impl Kind {
    /// The word for it in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Resource => "resource",
            Kind::Prompt => "prompt",
        }
    }
}

/// Why a principal may not use a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Scopes a covering rule for this principal needs and it lacks (empty: no rule covering the
    /// name names this principal, or the default denies).
    pub missing_scopes: Vec<String>,
}

/// The rules in force.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rules {
    rules: Vec<RuleConfig>,
    default: RuleDefault,
}

impl Rules {
    /// Rules as configured.
    pub(crate) fn new(rules: Vec<RuleConfig>, default: RuleDefault) -> Self {
        Self { rules, default }
    }

    /// No rules and everything allowed: the dispatcher need not ask.
    pub(crate) fn allow_all(&self) -> bool {
        self.rules.is_empty() && self.default == RuleDefault::Allow
    }

    /// The rules, as configured (for `erlmcp remote auth`).
    pub(crate) fn configured(&self) -> (&[RuleConfig], RuleDefault) {
        (&self.rules, self.default)
    }

    /// Whether `principal` may see and use the `kind` named `name`.
    pub(crate) fn decide(
        &self,
        principal: &Principal,
        kind: Kind,
        name: &str,
    ) -> Result<(), Refused> {
        let mut covered = false;
        let mut missing: Option<Vec<String>> = None;
        for rule in &self.rules {
            let names = match kind {
                Kind::Tool => &rule.tools,
                Kind::Resource => &rule.resources,
                Kind::Prompt => &rule.prompts,
            };
            if !names.iter().any(|pattern| glob_match(pattern, name)) {
                continue;
            }
            covered = true;
            if !names_principal(rule, principal) {
                continue;
            }
            let lacking: Vec<String> = rule
                .scopes
                .iter()
                .filter(|s| !principal.has_scope(s))
                .cloned()
                .collect();
            if lacking.is_empty() {
                return Ok(());
            }
            missing.get_or_insert(lacking);
        }
        if !covered && self.default == RuleDefault::Allow {
            return Ok(());
        }
        Err(Refused {
            missing_scopes: missing.unwrap_or_default(),
        })
    }
}

/// Whether `rule` names `principal`: its subject, or `client:<client id>`; no names: anyone.
fn names_principal(rule: &RuleConfig, principal: &Principal) -> bool {
    rule.principals.is_empty()
        || rule.principals.iter().any(|pattern| {
            glob_match(pattern, &principal.subject)
                || pattern.strip_prefix("client:").is_some_and(|p| {
                    principal
                        .client_id
                        .as_deref()
                        .is_some_and(|id| glob_match(p, id))
                })
        })
}

/// `*` (any run of characters, none included) and `?` (one character) globs; everything else
/// matches itself.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    // Most rules name items outright: no wildcard, no allocation.
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it was tried against.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(subject: &str, scopes: &[&str]) -> Principal {
        Principal::for_test(subject, Some("app-1"), scopes)
    }

    #[test]
    fn globs() {
        assert!(glob_match("admin_*", "admin_reset"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("file:///*/x", "file:///a/b/x"));
        assert!(!glob_match("admin_*", "echo"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("echo", "echo"));
        assert!(!glob_match("echo", "echo2"));
    }

    #[test]
    fn a_covered_name_needs_a_granting_rule_and_an_uncovered_one_the_default() {
        let rules = Rules::new(
            vec![
                RuleConfig {
                    scopes: vec!["tools:admin".into()],
                    tools: vec!["admin_*".into()],
                    ..RuleConfig::default()
                },
                RuleConfig {
                    principals: vec!["client:app-*".into()],
                    prompts: vec!["secret".into()],
                    ..RuleConfig::default()
                },
            ],
            RuleDefault::Allow,
        );
        let plain = principal("alice", &["mcp"]);
        let admin = principal("bob", &["mcp", "tools:admin"]);
        assert!(rules.decide(&plain, Kind::Tool, "echo").is_ok());
        assert_eq!(
            rules.decide(&plain, Kind::Tool, "admin_reset"),
            Err(Refused {
                missing_scopes: vec!["tools:admin".into()]
            })
        );
        assert!(rules.decide(&admin, Kind::Tool, "admin_reset").is_ok());
        assert!(rules.decide(&plain, Kind::Prompt, "secret").is_ok());
        let other = Principal::for_test("carol", Some("other"), &[]);
        assert!(rules.decide(&other, Kind::Prompt, "secret").is_err());
        let deny = Rules::new(Vec::new(), RuleDefault::Deny);
        assert!(deny.decide(&admin, Kind::Resource, "file:///x").is_err());
        assert!(!deny.allow_all());
        assert!(Rules::default().allow_all());
    }
}
