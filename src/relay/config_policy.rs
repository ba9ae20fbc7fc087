//! `policy:` in relay.yaml — the rules the policy engine ([`crate::policy`]) decides by.
//!
//! ```yaml
//! policy:
//!   rules:
//!     - name: agents-never-read-secrets     # required, unique, [a-z0-9-]
//!       match:                               # every present field must match; absent = any
//!         agent: present                     # present | absent | a glob on the agent's name
//!         verbs: [get, list, watch]
//!         resources: [secrets]
//!       action: deny                         # allow | deny | review
//!       message: agents never read secrets   # optional, added to the denial
//! ```
//!
//! Why it is its own file: the section is long and strict in ways the rest of the file is not
//! (CEL, globs, rule names). This file only reads the YAML shape (unknown keys, duplicate keys and
//! wrong types are refused by serde with their key path); every value check — names, globs,
//! verbs, CEL compilation, which keys go with which action — is done by
//! [`Policy::compile`](crate::policy::Policy::compile), the same code the relay runs at boot, and
//! its error is turned into a key path here. So `relay check` and `policy test` refuse exactly
//! what the relay would.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{parse_yaml, read_capped, ConfigError};
use crate::policy::{Action, Policy, PolicyError};

/// `policy:` — the rules, in file order. Validated when the config is loaded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `rules`: every rule that matches a request counts; the strictest action wins.
    pub rules: Vec<RuleConfig>,
}

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleConfig {
    /// `name`: unique, `[a-z0-9-]`, at most 63 characters; denials and records name it.
    pub name: String,
    /// `match` (default: every request).
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    /// `cel`: an optional condition over `request`, `user` and `object`; the rule matches only
    /// when it is `true`. An error or a non-bool result makes the rule count as `deny`.
    #[serde(default)]
    pub cel: Option<String>,
    /// `action`: allow, deny or review.
    pub action: Action,
    /// `reviewers`: groups that may approve; required for review, refused otherwise.
    #[serde(default)]
    pub reviewers: Option<Vec<String>>,
    /// `allowSelfApproval` (review only, default false): the requester may approve it too.
    #[serde(default)]
    pub allow_self_approval: Option<bool>,
    /// `mask`: a masking profile name, with allow or review only.
    #[serde(default)]
    pub mask: Option<String>,
    /// `message`: human text added to a denial.
    #[serde(default)]
    pub message: Option<String>,
}

/// `match:` — every present field must match; an absent field matches anything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchConfig {
    /// Globs on the token subject.
    pub subjects: Option<Vec<String>>,
    /// Globs; any of the user's groups.
    pub groups: Option<Vec<String>>,
    /// `present`, `absent`, or a glob on the agent (the token's `act.sub`).
    pub agent: Option<String>,
    /// Policy verbs (see [`RequestInfo::policy_verb`](crate::kube::request_info::RequestInfo::policy_verb)).
    pub verbs: Option<Vec<String>>,
    /// API groups, `""` for core (globs).
    #[serde(rename = "apiGroups")]
    pub api_groups: Option<Vec<String>>,
    /// `resource` or `resource/subresource` globs.
    pub resources: Option<Vec<String>>,
    /// Namespace globs; cluster-scoped requests never match.
    pub namespaces: Option<Vec<String>>,
    /// Object name globs; requests without a name never match.
    pub names: Option<Vec<String>>,
    /// Raw path globs for non-resource requests.
    #[serde(rename = "nonResourceURLs")]
    pub non_resource_urls: Option<Vec<String>>,
}

impl PolicyConfig {
    /// Compile the rules as the relay will, turning the first error into a key path under
    /// `policy.` of `file`.
    pub(super) fn validate(self, file: &str) -> Result<PolicyConfig, ConfigError> {
        Policy::compile(&self).map_err(|e| policy_error(file, &e))?;
        Ok(self)
    }

    /// How many rules have each action: (allow, deny, review).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |a: Action| self.rules.iter().filter(|r| r.action == a).count();
        (n(Action::Allow), n(Action::Deny), n(Action::Review))
    }
}

/// A compile error as a config error: `policy.rules[3].cel: rule "privileged-pods": …`.
pub fn policy_error(file: &str, e: &PolicyError) -> ConfigError {
    ConfigError::Invalid { file: file.into(), key: format!("policy.{}", e.key()), message: e.message() }
}

/// Only the `policy:` section of a relay config; every other key is skipped unread.
#[derive(Deserialize)]
struct PolicyOnly {
    #[serde(default)]
    policy: Option<PolicyConfig>,
    #[serde(flatten)]
    _rest: BTreeMap<String, serde::de::IgnoredAny>,
}

/// Read only the `policy:` section of a relay config (for `hoop-kube policy test`, which needs no
/// certificates or upstream): the same strict YAML reading and the same rule checks as
/// [`RelayConfig::load`](super::RelayConfig::load), nothing else validated. `Ok(None)` when the
/// file has no `policy:` section.
pub fn load_policy_section(path: &Path) -> Result<Option<PolicyConfig>, ConfigError> {
    let file = path.display().to_string();
    let text = read_capped(path, &file)?;
    let only: PolicyOnly = parse_yaml(&text, &file)?;
    only.policy.map(|p| p.validate(&file)).transpose()
}
