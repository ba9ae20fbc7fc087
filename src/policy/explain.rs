//! `hoop-kube policy test`: the decision for a described request, rule by rule, so a platform
//! team can check a policy before the relay enforces it.
//!
//! Why it is here and not in the CLI: it runs the relay's own code — the `policy:` section read
//! and compiled exactly as `relay check` does, the request parsed by the one request-info parser
//! (a path the relay would refuse is reported as refused), and [`Policy::decide`] — so what it
//! prints is what the relay would do. Only the `policy:` section is read; run `hoop-kube relay
//! check` for the rest of the file.

use std::io::Write;
use std::path::PathBuf;

use http::Method;

use super::decide::{Policy, Request, User};
use super::denial::describe;
use super::rule::Action;
use crate::kube::request_info;
use crate::relay::config::{load_policy_section, policy_error, ConfigError};

/// The largest `--object` file read (the relay's default body limit).
pub const MAX_OBJECT_BYTES: u64 = 3 * 1024 * 1024;

/// A described request and who asks.
#[derive(Debug, Clone)]
pub struct TestRequest {
    /// The relay config whose `policy:` section is used.
    pub config: PathBuf,
    /// The token subject (also used as the user name).
    pub subject: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The agent acting for the user, if any.
    pub agent: Option<String>,
    /// A JSON or YAML file holding the object of a create/update/patch.
    pub object: Option<PathBuf>,
    /// The HTTP method (any case).
    pub method: String,
    /// The raw path, optionally with `?query`, exactly as kubectl would send it.
    pub target: String,
}

/// What the relay would do; the process exit code is [`Outcome::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: let through.
    Allowed,
    /// Exit 1: refused (by a rule, by no rule matching, or as a path the relay refuses).
    Denied,
    /// Exit 3: held for a reviewer's approval.
    Review,
}

impl Outcome {
    /// 0 allowed, 1 denied, 3 review (2 is left for errors, as clap uses it for usage errors).
    #[must_use]
    pub fn code(self) -> i32 {
        match self {
            Outcome::Allowed => 0,
            Outcome::Denied => 1,
            Outcome::Review => 3,
        }
    }
}

/// Why the test could not be run at all (exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// The config cannot be read or its `policy:` section is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config has no `policy:` section.
    #[error("{0}: has no policy section; add `policy: {{rules: […]}}` (see packaging/relay.example.yaml)")]
    NoPolicy(String),
    /// `--object` cannot be read or parsed.
    #[error("--object {path}: {message}")]
    Object { path: String, message: String },
    /// The method is not an HTTP method.
    #[error("{0:?} is not an HTTP method")]
    Method(String),
    /// Writing the explanation failed.
    #[error("cannot write the explanation: {0}")]
    Io(#[from] std::io::Error),
}

/// Decide `t` against its config and write the explanation to `out`.
///
/// # Errors
/// [`ExplainError`]: the config, the object file or the method is unusable.
pub fn run(t: &TestRequest, out: &mut dyn Write) -> Result<Outcome, ExplainError> {
    let file = t.config.display().to_string();
    let cfg = load_policy_section(&t.config)?.ok_or_else(|| ExplainError::NoPolicy(file.clone()))?;
    let policy = Policy::compile(&cfg).map_err(|e| policy_error(&file, &e))?;
    let method = Method::from_bytes(t.method.to_ascii_uppercase().as_bytes()).map_err(|_| ExplainError::Method(t.method.clone()))?;
    let object = t.object.as_ref().map(read_object).transpose()?;
    let (path, query) = match t.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (t.target.as_str(), None),
    };
    writeln!(out, "request:   {method} {}", t.target)?;
    let info = match request_info::parse(&method, path, query) {
        Ok(info) => info,
        Err(e) => {
            writeln!(out, "decision:  deny (before policy: the relay refuses this path with 400 BadRequest: invalid request path: {e})")?;
            return Ok(Outcome::Denied);
        }
    };
    let req = Request { info: &info, method: &method, path, query, object: object.as_ref() };
    writeln!(out, "           {}", describe(&req))?;
    let claims = claims(t);
    let user = User { subject: &t.subject, username: &t.subject, groups: &t.groups, agent: t.agent.as_deref(), claims: &claims };
    let groups = if t.groups.is_empty() { "none".to_string() } else { t.groups.join(", ") };
    writeln!(out, "user:      {} (groups: {groups}; agent: {})", t.subject, t.agent.as_deref().unwrap_or("none"))?;
    let decision = policy.decide(&user, &req);
    match &decision.rule {
        Some(rule) => writeln!(out, "decision:  {} (rule {rule:?})", decision.action)?,
        None => writeln!(out, "decision:  deny (no rule matched; nothing matching means deny)")?,
    }
    if decision.action == Action::Review {
        let own = if decision.allow_self_approval { "allowed" } else { "not allowed" };
        writeln!(out, "reviewers: {} (self-approval {own})", decision.reviewers.join(", "))?;
    }
    if !decision.masks.is_empty() {
        writeln!(out, "mask:      {}", decision.masks.join(", "))?;
    }
    writeln!(out, "matched:   {} of {} rules", decision.matched.len(), policy.len())?;
    for m in &decision.matched {
        let why = m.cel_error.as_deref().map(|e| format!("  (counts as deny: {e})")).unwrap_or_default();
        writeln!(out, "  {:<7} {}{why}", m.action.as_str(), m.rule)?;
    }
    if object.is_none() && policy.needs_object(&req) {
        let rules = policy.rules_needing_object(&req).join(", ");
        writeln!(out, "note:      {rules} read `object`, which is null without --object FILE")?;
    }
    if decision.action != Action::Allow {
        writeln!(out, "kubectl:   Error from server (Forbidden): {}", decision.status(&req).message)?;
    }
    Ok(match decision.action {
        Action::Allow => Outcome::Allowed,
        Action::Review => Outcome::Review,
        Action::Deny => Outcome::Denied,
    })
}

/// The claims a token for this user would carry (`sub`, `groups`, and `act.sub` for an agent).
fn claims(t: &TestRequest) -> serde_json::Value {
    let mut c = serde_json::json!({ "sub": t.subject, "groups": t.groups });
    if let Some(agent) = &t.agent {
        c["act"] = serde_json::json!({ "sub": agent });
    }
    c
}

fn read_object(path: &PathBuf) -> Result<serde_json::Value, ExplainError> {
    use std::io::Read as _;
    let err = |message: String| ExplainError::Object { path: path.display().to_string(), message };
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    f.take(MAX_OBJECT_BYTES + 1).read_to_string(&mut text).map_err(|e| err(e.to_string()))?;
    if text.len() as u64 > MAX_OBJECT_BYTES {
        return Err(err(format!("larger than {MAX_OBJECT_BYTES} bytes")));
    }
    serde_yaml_ng::from_str::<serde_json::Value>(&text).map_err(|e| err(format!("not JSON or YAML: {e}")))
}
