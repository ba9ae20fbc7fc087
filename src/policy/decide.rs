//! The decision: every rule that matches a request counts, and the strictest action wins
//! (deny > review > allow); when nothing matches, the request is denied.
//!
//! Why it is built this way: the relay decides on every request, so rules are indexed by verb
//! at compile time (a request only looks at the rules that name its verb, or none), every
//! match field is a precompiled glob, and the CEL variables are built only when a rule whose
//! other fields matched has a condition. What the decision returns is enough to act (action,
//! reviewers, mask) and to explain (every matched rule and its action).
//!
//! Masks add up: every matching rule that lets the request through (allow or review) and names
//! a `mask` profile contributes it, and the relay masks by their union — a mask is a
//! restriction, so like every other restriction the strictest combination wins, and a second
//! rule can never unmask what a first one masks. The deciding rule is the first rule in file order with the winning action; its
//! `message` is the decision's message.

use std::sync::Arc;

use http::Method;

use super::cel::{Activation, Eval};
use super::rule::{verb_index, Action, Attrs, Rule, OTHER_VERB, VERBS};
use super::PolicyError;
use crate::kube::request_info::RequestInfo;
use crate::relay::config::PolicyConfig;

/// The compiled policy. Cheap to share (`Arc<Policy>`); deciding takes `&self`.
pub struct Policy {
    rules: Vec<Rule>,
    /// For each verb index (see [`VERBS`]), the rules that can match it, in file order.
    by_verb: Vec<Vec<u32>>,
    env: Arc<cel::Env>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").field("rules", &self.rules.len()).finish_non_exhaustive()
    }
}

/// Who is asking, as authentication established it.
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    /// The token subject (`sub`), which `subjects` globs match.
    pub subject: &'a str,
    /// The user name the cluster sees.
    pub username: &'a str,
    /// Groups, as the cluster sees them.
    pub groups: &'a [String],
    /// The agent acting for the user (`act.sub`, RFC 8693), if any.
    pub agent: Option<&'a str>,
    /// Every claim of the token (CEL's `user.claims`).
    pub claims: &'a serde_json::Value,
}

/// What is asked, as the request-info parser read it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The parsed attributes (the one parser: [`crate::kube::request_info::parse`]).
    pub info: &'a RequestInfo,
    /// The HTTP method.
    pub method: &'a Method,
    /// The raw path, as forwarded.
    pub path: &'a str,
    /// The raw query, as forwarded (no leading `?`).
    pub query: Option<&'a str>,
    /// The decoded body of a create/update/patch, when a rule needs it (see
    /// [`Policy::needs_object`]); CEL sees `null` otherwise.
    pub object: Option<&'a serde_json::Value>,
}

/// One rule that matched, for explanations and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The rule's name.
    pub rule: Arc<str>,
    /// The action it contributed: its own, or deny when its condition failed.
    pub action: Action,
    /// Why the condition failed (the rule then counts as deny), if it did.
    pub cel_error: Option<String>,
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// The deciding rule (the first in file order with the winning action); `None` when no rule
    /// matched (and the request is denied).
    pub rule: Option<Arc<str>>,
    /// Every matching rule in file order, with the action it contributed.
    pub matched: Vec<Matched>,
    /// For review: the union of the reviewer groups of every matching review rule.
    pub reviewers: Vec<String>,
    /// For review: true only if every matching review rule allows self-approval.
    pub allow_self_approval: bool,
    /// For allow or review: the mask profiles of every matching allow or review rule, in file
    /// order without duplicates; the relay masks by their union.
    pub masks: Vec<Arc<str>>,
    /// The deciding rule's `message`, or why its condition failed.
    pub message: Option<String>,
}

impl Decision {
    /// Whether the request may proceed now (allow).
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.action == Action::Allow
    }
}

impl Policy {
    /// Compile every rule: globs, verbs, CEL, and which keys go with which action. Rule names must
    /// be unique.
    ///
    /// # Errors
    /// The first rule that is wrong, with the field at fault ([`PolicyError::key`]).
    pub fn compile(cfg: &PolicyConfig) -> Result<Policy, PolicyError> {
        let env = Arc::new(cel::Env::stdlib());
        let mut rules: Vec<Rule> = Vec::with_capacity(cfg.rules.len());
        for (i, rc) in cfg.rules.iter().enumerate() {
            let rule = Rule::compile(i, rc, &env)?;
            if let Some(first) = rules.iter().position(|r| r.name == rule.name) {
                return Err(PolicyError { index: i, name: rc.name.clone(), field: "name".into(), message: format!("is already the name of rules[{first}]; names must be unique") });
            }
            rules.push(rule);
        }
        let mut by_verb = vec![Vec::new(); OTHER_VERB + 1];
        for (i, r) in rules.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| PolicyError { index: i, name: String::new(), field: String::new(), message: "too many rules".into() })?;
            for (v, list) in by_verb.iter_mut().enumerate() {
                if r.verbs & (1 << v) != 0 {
                    list.push(i);
                }
            }
        }
        Ok(Policy { rules, by_verb, env })
    }

    /// How many rules there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules (every request is denied).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether deciding this request needs its decoded body: it is a create, update or patch and
    /// a rule whose request fields match it reads `object` in its condition. Users are not
    /// looked at, so this may say yes for a rule that will not match the user.
    #[must_use]
    pub fn needs_object(&self, req: &Request<'_>) -> bool {
        if !matches!(req.info.policy_verb(), "create" | "update" | "patch") {
            return false;
        }
        let mut combined = String::new();
        let a = attrs(req, &mut combined);
        self.by_verb[a.verb].iter().map(|&i| &self.rules[i as usize]).any(|r| r.uses_object() && r.matches_request(&a))
    }

    /// The names of the rules that make [`needs_object`](Self::needs_object) true, in file
    /// order (for explanations).
    #[must_use]
    pub fn rules_needing_object(&self, req: &Request<'_>) -> Vec<&str> {
        let mut combined = String::new();
        let a = attrs(req, &mut combined);
        let rules = self.by_verb[a.verb].iter().map(|&i| &self.rules[i as usize]);
        rules.filter(|r| r.uses_object() && r.matches_request(&a)).map(|r| &*r.name).collect()
    }

    /// Decide: see the module documentation.
    #[must_use]
    ///
    /// An agent is its engineer **narrowed**: the request is matched twice, as the agent and as
    /// the engineer alone (no agent), and both must be let through. When either matches no rule
    /// the request is denied; otherwise every rule matched either way counts, so the strictest
    /// action, every reviewer group and every mask of both apply. A rule written for agents can
    /// therefore never allow an agent what its engineer is not allowed.
    pub fn decide(&self, user: &User<'_>, req: &Request<'_>) -> Decision {
        let mut combined = String::new();
        let attrs = attrs(req, &mut combined);
        let mut matched = self.matches(user, req, &attrs);
        if user.agent.is_some() {
            let engineer = User { agent: None, ..*user };
            let as_engineer = self.matches(&engineer, req, &attrs);
            if matched.is_empty() || as_engineer.is_empty() {
                matched.clear();
            } else {
                for m in as_engineer {
                    if !matched.iter().any(|(i, _)| *i == m.0) {
                        matched.push(m);
                    }
                }
                matched.sort_by_key(|(i, _)| *i);
            }
        }
        self.conclude(matched)
    }

    /// The rules that match `user` and `req`, in file order, with the action each contributes.
    fn matches(&self, user: &User<'_>, req: &Request<'_>, attrs: &Attrs<'_>) -> Vec<(u32, Matched)> {
        let mut activation: Option<Activation> = None;
        let mut matched = Vec::new();
        for &i in &self.by_verb[attrs.verb] {
            let r = &self.rules[i as usize];
            if !r.matches_request(attrs) || !r.matches_user(user.subject, user.groups, user.agent) {
                continue;
            }
            let (action, cel_error) = match &r.cel {
                None => (r.action, None),
                Some(cond) => match cond.eval(activation.get_or_insert_with(|| Activation::new(&self.env, user, req))) {
                    Eval::True => (r.action, None),
                    Eval::False => continue,
                    Eval::Failed(why) => (Action::Deny, Some(why)),
                },
            };
            matched.push((i, Matched { rule: r.name.clone(), action, cel_error }));
        }
        matched
    }

    fn conclude(&self, matched: Vec<(u32, Matched)>) -> Decision {
        let Some(action) = matched.iter().map(|(_, m)| m.action).max() else {
            return Decision { action: Action::Deny, rule: None, matched: Vec::new(), reviewers: Vec::new(), allow_self_approval: false, masks: Vec::new(), message: None };
        };
        let deciding = || matched.iter().filter(move |(_, m)| m.action == action).map(|(i, m)| (&self.rules[*i as usize], m));
        let (first_rule, first) = deciding().next().map(|(r, m)| (r, m.clone())).unwrap_or_else(|| unreachable!("the max action comes from a match"));
        let mut reviewers: Vec<String> = Vec::new();
        let mut allow_self_approval = false;
        if action == Action::Review {
            allow_self_approval = true;
            for (r, _) in deciding() {
                allow_self_approval &= r.allow_self_approval;
                for g in &r.reviewers {
                    if !reviewers.contains(g) {
                        reviewers.push(g.clone());
                    }
                }
            }
        }
        let mut masks: Vec<Arc<str>> = Vec::new();
        if action != Action::Deny {
            for m in matched.iter().filter(|(_, m)| m.action != Action::Deny).filter_map(|(i, _)| self.rules[*i as usize].mask.as_ref()) {
                if !masks.contains(m) {
                    masks.push(m.clone());
                }
            }
        }
        let message = first.cel_error.clone().or_else(|| first_rule.message.clone());
        Decision {
            action,
            rule: Some(first.rule.clone()),
            matched: matched.into_iter().map(|(_, m)| m).collect(),
            reviewers,
            allow_self_approval,
            masks,
            message,
        }
    }
}

/// The attributes rules match on; `combined` holds `resource/subresource` when there is one.
fn attrs<'a>(req: &Request<'a>, combined: &'a mut String) -> Attrs<'a> {
    let info = req.info;
    let resource = if info.subresource.is_empty() {
        info.resource.as_str()
    } else {
        *combined = format!("{}/{}", info.resource, info.subresource);
        combined.as_str()
    };
    Attrs {
        verb: verb_index(info.policy_verb()),
        resource_request: info.is_resource_request,
        api_group: &info.api_group,
        resource,
        namespace: &info.namespace,
        name: &info.name,
        path: req.path,
    }
}

// The index has one list per entry of `VERBS` plus one for every other verb.
const _: () = assert!(VERBS.len() == OTHER_VERB);
