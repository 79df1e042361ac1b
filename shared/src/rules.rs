//! Route rules inside a filter's config: a default policy and a list of rules, first match wins.
//!
//! A filter's config document is its default policy plus `rules`. Each rule has a `match`, an
//! optional `name`, and any policy fields it changes; those are merged over the defaults, so a rule
//! only says what differs (for example a logout route that adds `Clear-Site-Data`):
//!
//! ```json
//! { "preset": "strict",
//!   "rules": [ { "name": "logout", "match": { "path": { "exact": "/logout" } },
//!                "clear_site_data": "\"cache\", \"cookies\", \"storage\"" } ] }
//! ```

use crate::config::{merge, ConfigError};
use crate::matcher::{MatchSpec, Request, RouteMatch};
use serde_json::{Map, Value};

/// One compiled rule.
#[derive(Debug)]
pub struct Rule<T> {
    /// The rule's `name`, or `rules[i]`.
    pub name: String,
    matcher: RouteMatch,
    pub policy: T,
}

/// The policy chosen for a request.
#[derive(Debug, Clone, Copy)]
pub struct Selected<'a, T> {
    /// The name of the rule that matched, or `None` for the default policy.
    pub rule: Option<&'a str>,
    pub policy: &'a T,
}

/// A default policy and the rules that override it for some routes.
#[derive(Debug)]
pub struct RuleSet<T> {
    default: T,
    rules: Vec<Rule<T>>,
    needs_route_name: bool,
}

impl<T> RuleSet<T> {
    /// A rule set with only a default policy.
    pub fn single(default: T) -> Self {
        RuleSet {
            default,
            rules: Vec::new(),
            needs_route_name: false,
        }
    }

    /// Builds a rule set from a config document (a JSON object).
    ///
    /// `top_level_only` names keys that are filter-wide settings: they are removed from the
    /// document before the policy is compiled (the caller parses them) and a rule may not set them.
    /// `compile` turns a policy document (defaults merged with a rule's fields) into a policy.
    pub fn from_document(
        doc: &Map<String, Value>,
        top_level_only: &[&str],
        compile: impl Fn(Value) -> Result<T, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut base = doc.clone();
        let rules_value = base.remove("rules");
        for key in top_level_only {
            base.remove(*key);
        }
        let base = Value::Object(base);
        let default = compile(base.clone())?;

        let raw_rules = match rules_value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rules)) => rules,
            Some(_) => {
                return Err(ConfigError::field(
                    "rules",
                    "invalid type: expected a list of rules",
                ))
            }
        };
        let mut rules = Vec::with_capacity(raw_rules.len());
        let mut needs_route_name = false;
        for (i, raw) in raw_rules.into_iter().enumerate() {
            let at = format!("rules[{i}]");
            let Value::Object(mut fields) = raw else {
                return Err(ConfigError::field(
                    at,
                    "invalid type: expected an object with 'match'",
                ));
            };
            let name = match fields.remove("name") {
                None => at.clone(),
                Some(Value::String(s)) if !s.is_empty() => s,
                Some(_) => {
                    return Err(ConfigError::field(
                        format!("{at}.name"),
                        "expected a non-empty string",
                    ))
                }
            };
            let spec: MatchSpec = match fields.remove("match") {
                Some(m) => {
                    crate::config::from_value(m).map_err(|e| e.within(&format!("{at}.match")))?
                }
                None => return Err(ConfigError::field(at, "missing field `match`")),
            };
            let matcher = RouteMatch::compile(&format!("{at}.match"), &spec)?;
            if let Some(key) = top_level_only.iter().find(|k| fields.contains_key(**k)) {
                return Err(ConfigError::field(
                    format!("{at}.{key}"),
                    "can only be set at the top level of the config, not in a rule",
                ));
            }
            let mut merged = base.clone();
            merge(&mut merged, Value::Object(fields));
            let policy = compile(merged).map_err(|e| e.within(&at))?;
            needs_route_name |= matcher.needs_route_name();
            rules.push(Rule {
                name,
                matcher,
                policy,
            });
        }
        Ok(RuleSet {
            default,
            rules,
            needs_route_name,
        })
    }

    /// The first rule that matches the request, or the default policy.
    pub fn select(&self, req: &Request<'_>) -> Selected<'_, T> {
        for rule in &self.rules {
            if rule.matcher.matches(req) {
                return Selected {
                    rule: Some(&rule.name),
                    policy: &rule.policy,
                };
            }
        }
        Selected {
            rule: None,
            policy: &self.default,
        }
    }

    /// Every rule that matches the request, in order, for filters where all matching rules
    /// apply (rate limits). The default policy is not included.
    pub fn select_all<'s>(
        &'s self,
        req: &'s Request<'s>,
    ) -> impl Iterator<Item = Selected<'s, T>> + 's {
        self.rules
            .iter()
            .filter(move |rule| rule.matcher.matches(req))
            .map(|rule| Selected {
                rule: Some(&rule.name),
                policy: &rule.policy,
            })
    }

    /// Index-based selection, for filters that keep the choice across callbacks.
    pub fn select_index(&self, req: &Request<'_>) -> Option<usize> {
        self.rules.iter().position(|r| r.matcher.matches(req))
    }

    /// The policy at an index returned by [`RuleSet::select_index`].
    pub fn policy_at(&self, index: Option<usize>) -> &T {
        match index.and_then(|i| self.rules.get(i)) {
            Some(rule) => &rule.policy,
            None => &self.default,
        }
    }

    /// The name of the rule at an index (`None` for the default).
    pub fn rule_name(&self, index: Option<usize>) -> Option<&str> {
        index
            .and_then(|i| self.rules.get(i))
            .map(|r| r.name.as_str())
    }

    /// Whether any rule matches on Envoy's route name.
    pub fn needs_route_name(&self) -> bool {
        self.needs_route_name
    }

    /// Whether there are rules besides the default policy.
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The default policy.
    pub fn default_policy(&self) -> &T {
        &self.default
    }

    /// All rules in order.
    pub fn rules(&self) -> &[Rule<T>] {
        &self.rules
    }
}
