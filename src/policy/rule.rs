//! One policy rule, compiled from its config ([`RuleConfig`]) and matched against a request.
//!
//! Why a compiled form: the config is what people write (strings, optional lists); the relay
//! matches it on every request, so globs are compiled, verbs become a bit set, and every
//! combination that cannot be meant (reviewers on a deny, a mask on a deny, resource fields next
//! to `nonResourceURLs`, an unknown verb, a bad glob, CEL that does not compile) is refused here,
//! once, with the key that is wrong.

use std::sync::Arc;

use serde::Deserialize;

use super::cel::Condition;
use super::glob::{any_match, Glob};
use super::PolicyError;
use crate::relay::config::{MatchConfig, RuleConfig};

/// What a rule does to the requests it matches. Ordered from weakest to strictest: when several
/// rules match, the strictest wins (deny > review > allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through (with the rule's mask profile, if any).
    Allow,
    /// Hold it until a reviewer approves it.
    Review,
    /// Refuse it with a 403 `Status`.
    Deny,
}

impl Action {
    /// `allow`, `review` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Review => "review",
            Action::Deny => "deny",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verbs a rule may name: the apiserver's resource verbs, the exec-class verbs of
/// [`RequestInfo::policy_verb`](crate::kube::request_info::RequestInfo::policy_verb), and the
/// lower-cased HTTP methods of non-resource requests. Any other request verb is [`OTHER_VERB`].
pub const VERBS: [&str; 16] = [
    "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "exec", "attach", "portforward", "proxy", "post", "put",
    "head", "options",
];
/// The index of verbs outside [`VERBS`] (only a rule without `verbs`, or with `*`, matches them).
pub const OTHER_VERB: usize = VERBS.len();
const ALL_VERBS: u32 = (1 << (OTHER_VERB + 1)) - 1;

/// The index of `verb` in [`VERBS`], or [`OTHER_VERB`].
pub fn verb_index(verb: &str) -> usize {
    VERBS.iter().position(|v| *v == verb).unwrap_or(OTHER_VERB)
}

/// Which kind of request a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Any,
    Resource,
    NonResource,
}

/// How a rule matches the agent.
#[derive(Debug, Clone)]
enum AgentMatch {
    Any,
    Present,
    Absent,
    Named(Glob),
}

/// The request attributes rules match on, computed once per decision.
pub(crate) struct Attrs<'a> {
    pub verb: usize,
    pub resource_request: bool,
    pub api_group: &'a str,
    /// `resource` or `resource/subresource`.
    pub resource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub path: &'a str,
}

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub name: Arc<str>,
    pub action: Action,
    pub verbs: u32,
    scope: Scope,
    subjects: Option<Vec<Glob>>,
    groups: Option<Vec<Glob>>,
    agent: AgentMatch,
    api_groups: Option<Vec<Glob>>,
    resources: Option<Vec<Glob>>,
    namespaces: Option<Vec<Glob>>,
    names: Option<Vec<Glob>>,
    non_resource_urls: Option<Vec<Glob>>,
    pub cel: Option<Condition>,
    pub reviewers: Vec<String>,
    pub allow_self_approval: bool,
    pub mask: Option<Arc<str>>,
    pub message: Option<String>,
}

/// Why `name` is not a valid rule or mask profile name (`[a-z0-9-]`, 1–63 characters,
/// alphanumeric at both ends), or `None`.
pub(crate) fn name_error(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Some("is empty");
    }
    if b.len() > 63 {
        return Some("is longer than 63 characters");
    }
    if !b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-') {
        return Some("may contain only a-z, 0-9 and '-'");
    }
    if b.first() == Some(&b'-') || b.last() == Some(&b'-') {
        return Some("must start and end with a letter or digit");
    }
    None
}

impl Rule {
    /// Compile rule number `index`; errors name the field.
    pub(crate) fn compile(index: usize, cfg: &RuleConfig, env: &cel::Env) -> Result<Rule, PolicyError> {
        let err = |field: &str, message: String| PolicyError { index, name: cfg.name.clone(), field: field.into(), message };
        if let Some(why) = name_error(&cfg.name) {
            return Err(PolicyError { index, name: String::new(), field: "name".into(), message: format!("{:?} {why}", cfg.name) });
        }
        let m = &cfg.matches;
        let globs = |key: &str, list: &Option<Vec<String>>, allow_empty: bool| -> Result<Option<Vec<Glob>>, PolicyError> {
            let Some(list) = list else { return Ok(None) };
            if list.is_empty() {
                return Err(err(&format!("match.{key}"), "is an empty list, which would match nothing; remove it to match any".into()));
            }
            let compile = |(i, p): (usize, &String)| {
                let g = if allow_empty { Glob::new_allow_empty(p) } else { Glob::new(p) };
                g.map_err(|e| err(&format!("match.{key}[{i}]"), e))
            };
            list.iter().enumerate().map(compile).collect::<Result<Vec<_>, _>>().map(Some)
        };
        let verbs = match &m.verbs {
            None => ALL_VERBS,
            Some(list) if list.is_empty() => return Err(err("match.verbs", "is an empty list, which would match nothing; remove it to match any".into())),
            Some(list) => {
                let mut bits = 0u32;
                for (i, v) in list.iter().enumerate() {
                    if v == "*" {
                        bits = ALL_VERBS;
                        continue;
                    }
                    let idx = verb_index(v);
                    if idx == OTHER_VERB {
                        return Err(err(&format!("match.verbs[{i}]"), format!("{v:?} is not a verb; use one of {} or \"*\"", VERBS.join(", "))));
                    }
                    bits |= 1 << idx;
                }
                bits
            }
        };
        let resource_keys = resource_keys(m);
        let scope = match (resource_keys.is_empty(), m.non_resource_urls.is_some()) {
            (true, false) => Scope::Any,
            (false, false) => Scope::Resource,
            (true, true) => Scope::NonResource,
            (false, true) => {
                return Err(err("match.nonResourceURLs", format!("cannot be combined with {} (a request is either a resource or a non-resource request; write two rules)", resource_keys.join(", "))))
            }
        };
        let agent = match m.agent.as_deref() {
            None => AgentMatch::Any,
            Some("present") => AgentMatch::Present,
            Some("absent") => AgentMatch::Absent,
            Some(g) => AgentMatch::Named(Glob::new(g).map_err(|e| err("match.agent", format!("{e} (or write present or absent)")))?),
        };
        let cel = match &cfg.cel {
            Some(src) => Some(Condition::compile(env, src).map_err(|e| err("cel", format!("does not compile: {e}")))?),
            None => None,
        };
        let review = cfg.action == Action::Review;
        let reviewers = match (&cfg.reviewers, review) {
            (None, true) => return Err(err("reviewers", "is required with action review: name the groups that may approve".into())),
            (Some(r), true) if r.is_empty() => return Err(err("reviewers", "is empty; name the groups that may approve".into())),
            (Some(_), false) => return Err(err("reviewers", format!("only applies with action review, not {}", cfg.action))),
            (Some(r), true) => r.clone(),
            (None, false) => Vec::new(),
        };
        if let Some(i) = reviewers.iter().position(|g| g.trim().is_empty() || g.contains(['*', '?'])) {
            return Err(err(&format!("reviewers[{i}]"), format!("{:?} must be a group name (no wildcards)", reviewers[i])));
        }
        if cfg.allow_self_approval.is_some() && !review {
            return Err(err("allowSelfApproval", format!("only applies with action review, not {}", cfg.action)));
        }
        if cfg.mask.is_some() && cfg.action == Action::Deny {
            return Err(err("mask", "only applies with action allow or review: a denied request returns nothing to mask".into()));
        }
        if let Some(mask) = cfg.mask.as_deref().filter(|m| name_error(m).is_some()) {
            return Err(err("mask", format!("{mask:?} is not a profile name ([a-z0-9-])")));
        }
        if cfg.message.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(err("message", "is empty; remove it or say what to do".into()));
        }
        Ok(Rule {
            name: cfg.name.as_str().into(),
            action: cfg.action,
            verbs,
            scope,
            subjects: globs("subjects", &m.subjects, false)?,
            groups: globs("groups", &m.groups, false)?,
            agent,
            api_groups: globs("apiGroups", &m.api_groups, true)?,
            resources: globs("resources", &m.resources, false)?,
            namespaces: globs("namespaces", &m.namespaces, false)?,
            names: globs("names", &m.names, false)?,
            non_resource_urls: globs("nonResourceURLs", &m.non_resource_urls, false)?,
            cel,
            reviewers,
            allow_self_approval: cfg.allow_self_approval.unwrap_or(false),
            mask: cfg.mask.as_deref().map(Arc::from),
            message: cfg.message.clone(),
        })
    }

    /// Whether the request fields (not the user, not CEL) match.
    pub(crate) fn matches_request(&self, a: &Attrs<'_>) -> bool {
        let list = |globs: &Option<Vec<Glob>>, s: &str| globs.as_deref().is_none_or(|g| any_match(g, s));
        self.verbs & (1 << a.verb) != 0
            && match self.scope {
                Scope::Any => true,
                Scope::Resource => a.resource_request,
                Scope::NonResource => !a.resource_request,
            }
            && list(&self.resources, a.resource)
            && list(&self.api_groups, a.api_group)
            // Cluster-scoped requests (no namespace) never match a namespace list, nor requests
            // without a name a name list, even `*`.
            && self.namespaces.as_deref().is_none_or(|g| !a.namespace.is_empty() && any_match(g, a.namespace))
            && self.names.as_deref().is_none_or(|g| !a.name.is_empty() && any_match(g, a.name))
            && list(&self.non_resource_urls, a.path)
    }

    /// Whether the user fields match.
    pub(crate) fn matches_user(&self, subject: &str, groups: &[String], agent: Option<&str>) -> bool {
        self.subjects.as_deref().is_none_or(|g| any_match(g, subject))
            && self.groups.as_deref().is_none_or(|g| groups.iter().any(|group| any_match(g, group)))
            && match (&self.agent, agent) {
                (AgentMatch::Any, _) | (AgentMatch::Present, Some(_)) | (AgentMatch::Absent, None) => true,
                (AgentMatch::Named(g), Some(a)) => g.matches(a),
                _ => false,
            }
    }

    /// Whether the rule reads `object` in its condition.
    pub(crate) fn uses_object(&self) -> bool {
        self.cel.as_ref().is_some_and(|c| c.uses_object)
    }
}

/// The resource-only match keys a rule sets.
fn resource_keys(m: &MatchConfig) -> Vec<&'static str> {
    [
        (m.api_groups.is_some(), "apiGroups"),
        (m.resources.is_some(), "resources"),
        (m.namespaces.is_some(), "namespaces"),
        (m.names.is_some(), "names"),
    ]
    .into_iter()
    .filter_map(|(on, k)| on.then_some(k))
    .collect()
}
