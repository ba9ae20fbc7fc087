//! Mask profiles: what a policy rule's `mask: <name>` hides, read from `mask_profiles:` in
//! relay.yaml and compiled into per-kind path rules.
//!
//! ```yaml
//! mask_profiles:
//!   secrets:                      # the name rules refer to: [a-z0-9-], at most 63 characters
//!     secret_data: true           # Secret .data (base64 placeholder) and .stringData values
//!     last_applied: true          # default true: the kubectl last-applied annotation is parsed
//!                                 # and masked with the same rules (false only when nothing
//!                                 # structural is masked, or the values leak through it)
//!     env_literals: true          # env[].value of containers, initContainers and
//!                                 # ephemeralContainers in Pods and every pod template
//!     configmap_keys: ["*password*", "*token*"]   # ConfigMap data/binaryData keys (globs: * ?)
//!     serviceaccount_tokens: true # TokenRequest status.token
//!     json_paths:                 # custom fields, by kind (exact, case-sensitive)
//!       - kind: MyCredential
//!         path: spec.password     # dotted; `*` = every member of an object or element of an
//!                                 # array; `name[]` = `name.*`
//!     logs: true                  # Secret values replaced in pods/log and exec output
//! ```
//!
//! Trusts: nothing in the YAML. Rejects: unknown keys and wrong types (serde, with the key path),
//! empty or malformed globs, kinds that are not identifiers, paths with empty segments, array
//! indices or brackets it does not know, `last_applied: false` next to a structural rule, a
//! profile that masks nothing, and bad profile names. Each error names the profile and field.
//!
//! Kinds are matched by name alone, never by API group: a custom resource that reuses a built-in
//! kind name (`Secret`, `Job`) is masked like the built-in, which can only hide too much.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use crate::policy::glob::Glob;

/// The annotation `kubectl apply` stores the applied manifest in, as a JSON string.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The most segments a `json_paths` path may have.
const MAX_PATH_SEGMENTS: usize = 32;

/// One profile as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskProfileConfig {
    /// `secret_data`: every `data` and `stringData` value of a `Secret`.
    #[serde(default)]
    pub secret_data: bool,
    /// `last_applied` (default true): mask inside the last-applied annotation of any object.
    #[serde(default)]
    pub last_applied: Option<bool>,
    /// `env_literals`: literal `env[].value`s of pods and pod templates.
    #[serde(default)]
    pub env_literals: bool,
    /// `configmap_keys`: globs on `ConfigMap` `data`/`binaryData` keys.
    #[serde(default)]
    pub configmap_keys: Vec<String>,
    /// `serviceaccount_tokens`: `TokenRequest` `status.token`.
    #[serde(default)]
    pub serviceaccount_tokens: bool,
    /// `json_paths`: custom fields by kind.
    #[serde(default)]
    pub json_paths: Vec<JsonPathConfig>,
    /// `logs`: Secret values replaced in log and exec output.
    #[serde(default)]
    pub logs: bool,
}

/// One `json_paths` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonPathConfig {
    /// The object kind, e.g. `MyCredential`.
    pub kind: String,
    /// The dotted path, e.g. `spec.password` or `spec.users[].password`.
    pub path: String,
}

/// `mask_profiles:` as written: profile name → profile.
pub type MaskProfilesConfig = BTreeMap<String, MaskProfileConfig>;

/// A profile that cannot be used, with where it is wrong. One line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mask_profiles{}{}: {message}", dotted(profile), dotted(field))]
pub struct ProfileError {
    /// The profile's name (empty when the error is not about one profile).
    pub profile: String,
    /// The key path inside the profile, e.g. `configmap_keys[1]` (may be empty).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn dotted(s: &str) -> String {
    if s.is_empty() || s.starts_with('[') {
        s.to_string()
    } else {
        format!(".{s}")
    }
}

/// Which placeholder a masked position gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ph {
    /// [`TEXT`](super::placeholder::TEXT).
    Text,
    /// [`BASE64`](super::placeholder::BASE64).
    Base64,
}

/// One step of a masked path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A member with this name (built-in rules).
    Lit(&'static str),
    /// A member with this name (`json_paths`).
    Key(Box<str>),
    /// A member with any of these names.
    OneOf(&'static [&'static str]),
    /// Every member of an object, every element of an array.
    Any,
    /// Every member whose name matches one of the globs.
    Globs(Box<[Glob]>),
}

impl Seg {
    /// Whether an object member named `key` is on the path.
    pub(crate) fn matches(&self, key: &str) -> bool {
        match self {
            Seg::Lit(k) => *k == key,
            Seg::Key(k) => **k == *key,
            Seg::OneOf(ks) => ks.contains(&key),
            Seg::Any => true,
            Seg::Globs(gs) => gs.iter().any(|g| g.matches(key)),
        }
    }

    /// [`Seg::matches`] on a member name's UTF-8 bytes, without decoding it.
    pub(crate) fn matches_bytes(&self, key: &[u8]) -> bool {
        match self {
            Seg::Lit(k) => k.as_bytes() == key,
            Seg::Key(k) => k.as_bytes() == key,
            Seg::OneOf(ks) => ks.iter().any(|k| k.as_bytes() == key),
            Seg::Any => true,
            Seg::Globs(_) => std::str::from_utf8(key).is_ok_and(|k| self.matches(k)),
        }
    }

    /// Whether array elements are on the path.
    pub(crate) fn matches_elements(&self) -> bool {
        matches!(self, Seg::Any)
    }
}

/// A masked path inside objects of one kind, and its placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) path: Vec<Seg>,
    pub(crate) ph: Ph,
}

/// Where the last-applied annotation sits in every object.
pub(crate) static LAST_APPLIED_PATH: [Seg; 3] = [
    Seg::Lit("metadata"),
    Seg::Lit("annotations"),
    Seg::Lit(LAST_APPLIED_ANNOTATION),
];

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// Where the pod spec sits in each kind that carries one.
const POD_SPECS: &[(&str, &[&str])] = &[
    ("Pod", &["spec"]),
    ("PodTemplate", &["template", "spec"]),
    ("Deployment", &["spec", "template", "spec"]),
    ("StatefulSet", &["spec", "template", "spec"]),
    ("DaemonSet", &["spec", "template", "spec"]),
    ("ReplicaSet", &["spec", "template", "spec"]),
    ("ReplicationController", &["spec", "template", "spec"]),
    ("Job", &["spec", "template", "spec"]),
    (
        "CronJob",
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ),
];

/// A compiled profile. Cheap to share (`Arc<MaskProfile>`); masking takes `&self`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskProfile {
    secret_data: bool,
    last_applied: bool,
    env_literals: bool,
    serviceaccount_tokens: bool,
    logs: bool,
    configmap_keys: Vec<Glob>,
    json_paths: Vec<(String, Vec<Seg>)>,
    by_kind: HashMap<Box<str>, Vec<Rule>>,
}

impl MaskProfile {
    /// Validate and compile one profile; `name` only labels errors.
    pub fn compile(name: &str, cfg: &MaskProfileConfig) -> Result<MaskProfile, ProfileError> {
        let err = |field: String, message: String| ProfileError {
            profile: name.to_string(),
            field,
            message,
        };
        let mut configmap_keys: Vec<Glob> = Vec::new();
        for (i, k) in cfg.configmap_keys.iter().enumerate() {
            let g = Glob::new(k).map_err(|m| err(format!("configmap_keys[{i}]"), m))?;
            if !configmap_keys.contains(&g) {
                configmap_keys.push(g);
            }
        }
        let mut json_paths = Vec::new();
        for (i, jp) in cfg.json_paths.iter().enumerate() {
            if let Some(m) = kind_error(&jp.kind) {
                return Err(err(
                    format!("json_paths[{i}].kind"),
                    format!("{:?} {m}", jp.kind),
                ));
            }
            let segs = parse_path(&jp.path).map_err(|m| {
                err(
                    format!("json_paths[{i}].path"),
                    format!("{:?}: {m}", jp.path),
                )
            })?;
            let entry = (jp.kind.clone(), segs);
            if !json_paths.contains(&entry) {
                json_paths.push(entry);
            }
        }
        let structural = cfg.secret_data
            || cfg.env_literals
            || cfg.serviceaccount_tokens
            || !configmap_keys.is_empty()
            || !json_paths.is_empty();
        if cfg.last_applied == Some(false) && structural {
            return Err(err(
                "last_applied".into(),
                "cannot be false while values are masked: the last-applied annotation holds the same values in plain sight".into(),
            ));
        }
        if !structural && !cfg.logs {
            return Err(err(String::new(), "masks nothing: enable secret_data, env_literals, configmap_keys, serviceaccount_tokens, json_paths or logs".into()));
        }
        Ok(MaskProfile::build(
            cfg.secret_data,
            cfg.last_applied.unwrap_or(true),
            cfg.env_literals,
            cfg.serviceaccount_tokens,
            cfg.logs,
            configmap_keys,
            json_paths,
        ))
    }

    /// Every built-in rule on, no `configmap_keys` or `json_paths`: what a profile with
    /// `secret_data`, `env_literals`, `serviceaccount_tokens` and `logs` compiles to.
    #[must_use]
    pub fn builtin() -> MaskProfile {
        MaskProfile::build(true, true, true, true, true, Vec::new(), Vec::new())
    }

    fn build(
        secret_data: bool,
        last_applied: bool,
        env_literals: bool,
        serviceaccount_tokens: bool,
        logs: bool,
        configmap_keys: Vec<Glob>,
        json_paths: Vec<(String, Vec<Seg>)>,
    ) -> MaskProfile {
        let mut by_kind: HashMap<Box<str>, Vec<Rule>> = HashMap::new();
        let mut add = |kind: &str, path: Vec<Seg>, ph: Ph| {
            let rules = by_kind.entry(kind.into()).or_default();
            let rule = Rule { path, ph };
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        };
        if secret_data {
            add("Secret", vec![Seg::Lit("data"), Seg::Any], Ph::Base64);
            add("Secret", vec![Seg::Lit("stringData"), Seg::Any], Ph::Text);
        }
        if serviceaccount_tokens {
            add(
                "TokenRequest",
                vec![Seg::Lit("status"), Seg::Lit("token")],
                Ph::Text,
            );
        }
        if !configmap_keys.is_empty() {
            let globs: Box<[Glob]> = configmap_keys.clone().into_boxed_slice();
            add(
                "ConfigMap",
                vec![Seg::Lit("data"), Seg::Globs(globs.clone())],
                Ph::Text,
            );
            add(
                "ConfigMap",
                vec![Seg::Lit("binaryData"), Seg::Globs(globs)],
                Ph::Base64,
            );
        }
        if env_literals {
            for (kind, at) in POD_SPECS {
                let mut path: Vec<Seg> = at.iter().map(|k| Seg::Lit(k)).collect();
                path.extend([
                    Seg::OneOf(CONTAINER_LISTS),
                    Seg::Any,
                    Seg::Lit("env"),
                    Seg::Any,
                    Seg::Lit("value"),
                ]);
                add(kind, path, Ph::Text);
            }
        }
        for (kind, segs) in &json_paths {
            add(kind, segs.clone(), Ph::Text);
        }
        MaskProfile {
            secret_data,
            last_applied,
            env_literals,
            serviceaccount_tokens,
            logs,
            configmap_keys,
            json_paths,
            by_kind,
        }
    }

    /// This profile and `other` together: every rule of either.
    #[must_use]
    pub fn union(&self, other: &MaskProfile) -> MaskProfile {
        let mut globs = self.configmap_keys.clone();
        globs.extend(
            other
                .configmap_keys
                .iter()
                .filter(|g| !self.configmap_keys.contains(g))
                .cloned(),
        );
        let mut paths = self.json_paths.clone();
        paths.extend(
            other
                .json_paths
                .iter()
                .filter(|p| !self.json_paths.contains(p))
                .cloned(),
        );
        MaskProfile::build(
            self.secret_data || other.secret_data,
            self.last_applied || other.last_applied,
            self.env_literals || other.env_literals,
            self.serviceaccount_tokens || other.serviceaccount_tokens,
            self.logs || other.logs,
            globs,
            paths,
        )
    }

    /// Whether JSON responses need masking at all (some structural rule is on).
    #[must_use]
    pub fn masks_objects(&self) -> bool {
        !self.by_kind.is_empty()
    }

    /// Whether log and exec output get Secret values replaced ([`super::text`]).
    #[must_use]
    pub fn masks_logs(&self) -> bool {
        self.logs
    }

    /// Whether the last-applied annotation is parsed and masked.
    pub(crate) fn masks_last_applied(&self) -> bool {
        self.last_applied && self.masks_objects()
    }

    /// The rules for objects of `kind`.
    pub(crate) fn rules(&self, kind: &str) -> &[Rule] {
        self.by_kind.get(kind).map_or(&[], Vec::as_slice)
    }

    /// Every masked path for objects of `kind` (`None`: of any kind), the last-applied
    /// annotation included: what a JSON patch may not read.
    pub(crate) fn masked_paths(&self, kind: Option<&str>) -> Vec<&[Seg]> {
        let mut out: Vec<&[Seg]> = match kind {
            Some(k) => self.rules(k).iter().map(|r| r.path.as_slice()).collect(),
            None => self
                .by_kind
                .values()
                .flatten()
                .map(|r| r.path.as_slice())
                .collect(),
        };
        if self.masks_last_applied() {
            out.push(&LAST_APPLIED_PATH);
        }
        out
    }
}

/// The compiled `mask_profiles:` section, by name.
#[derive(Debug, Clone, Default)]
pub struct MaskProfiles(BTreeMap<String, Arc<MaskProfile>>);

impl MaskProfiles {
    /// Validate and compile every profile; the first error wins.
    pub fn compile(cfg: &MaskProfilesConfig) -> Result<MaskProfiles, ProfileError> {
        let mut out = BTreeMap::new();
        for (name, p) in cfg {
            if let Some(m) = crate::policy::rule::name_error(name) {
                return Err(ProfileError {
                    profile: name.clone(),
                    field: String::new(),
                    message: format!("the profile name {m}"),
                });
            }
            out.insert(name.clone(), Arc::new(MaskProfile::compile(name, p)?));
        }
        Ok(MaskProfiles(out))
    }

    /// Parse and compile the value of `mask_profiles:` (a YAML mapping of name → profile).
    pub fn from_yaml(yaml: &str) -> Result<MaskProfiles, ProfileError> {
        let de = serde_yaml_ng::Deserializer::from_str(yaml);
        let cfg: MaskProfilesConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let (profile, field) = match path.split_once('.') {
                Some((p, f)) => (p.to_string(), f.to_string()),
                None if path == "." => (String::new(), String::new()),
                None => (path, String::new()),
            };
            let message = e.into_inner().to_string().replace('\n', " ");
            // serde_yaml_ng may lead with its own (shorter) path: `p: unknown field …`.
            let message = match message.split_once(": ") {
                Some((at, rest)) if !at.is_empty() && !at.contains(' ') => rest.to_string(),
                _ => message,
            };
            ProfileError {
                profile,
                field,
                message,
            }
        })?;
        MaskProfiles::compile(&cfg)
    }

    /// The profile called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Arc<MaskProfile>> {
        self.0.get(name)
    }

    /// The union of the named profiles (several rules may attach one each); `None` when
    /// `names` is empty. An unknown name is an error: masking less than configured is not an
    /// option.
    pub fn union_of<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<MaskProfile>, ProfileError> {
        let mut acc: Option<MaskProfile> = None;
        for n in names {
            let p = self.get(n).ok_or_else(|| ProfileError {
                profile: n.to_string(),
                field: String::new(),
                message: "no such profile".into(),
            })?;
            acc = Some(match acc {
                None => MaskProfile::clone(p),
                Some(a) => a.union(p),
            });
        }
        Ok(acc)
    }

    /// The profile names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

fn kind_error(kind: &str) -> Option<&'static str> {
    let mut b = kind.bytes();
    match b.next() {
        None => Some("is empty"),
        Some(c) if !c.is_ascii_alphabetic() => Some("must start with a letter"),
        _ if !b.all(|c| c.is_ascii_alphanumeric()) => {
            Some("may contain only letters and digits (kinds are matched exactly, by name)")
        }
        _ if kind.len() > 63 => Some("is longer than 63 characters"),
        _ => None,
    }
}

/// `spec.users[].password` → `[Key(spec), Key(users), Any, Key(password)]`.
pub(crate) fn parse_path(path: &str) -> Result<Vec<Seg>, String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    let mut segs = Vec::new();
    for part in path.split('.') {
        if part.is_empty() {
            return Err("has an empty segment (leading, trailing or doubled '.')".into());
        }
        if part == "*" {
            segs.push(Seg::Any);
            continue;
        }
        let (name, elements) = match part.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (part, false),
        };
        if name.is_empty() {
            return Err(
                "\"[]\" must follow a field name (\"items[]\"); use \"*\" on its own".into(),
            );
        }
        if name.contains(['[', ']']) {
            return Err(format!("segment {part:?}: array indices are not supported; \"name[]\" or \"*\" covers every element"));
        }
        if name.contains('*') {
            return Err(format!("segment {part:?}: '*' must be a whole segment"));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "segment {part:?} has whitespace or control characters"
            ));
        }
        segs.push(Seg::Key(name.into()));
        if elements {
            segs.push(Seg::Any);
        }
    }
    if segs.len() > MAX_PATH_SEGMENTS {
        return Err(format!("has more than {MAX_PATH_SEGMENTS} segments"));
    }
    Ok(segs)
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
