//! CEL conditions of policy rules: compiled at config load, evaluated only for a rule whose other
//! match fields already matched, over one activation built at most once per decision.
//!
//! Variables: `request` (verb, apiGroup, apiVersion, resource, subresource, namespace, name, path,
//! query — a map of lists —, method), `user` (subject, username, groups, agent — a string or
//! null —, claims) and `object` (the decoded body of create/update/patch — for patch the patch as
//! sent —, otherwise null). `request.verb` is the policy verb (`exec` for an exec, whatever the
//! method).
//!
//! Fail closed: an evaluation error (a missing field, a type mismatch, `object` being null) or a
//! result that is not a bool is an [`Eval::Failed`], which the decision counts as a deny of that
//! rule. Write `object != null && …` or `has(…)` to guard optional parts.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::decide::{Request, User};

/// A compiled condition.
pub(crate) struct Condition {
    program: cel::Program,
    /// Whether the expression reads `object` (so the relay must decode the body for it).
    pub uses_object: bool,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition").field("uses_object", &self.uses_object).finish_non_exhaustive()
    }
}

/// What a condition said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Eval {
    True,
    False,
    /// An error or a non-bool result; the text says which.
    Failed(String),
}

impl Condition {
    /// Compile `source` in `env`; the error is one line.
    pub(crate) fn compile(env: &cel::Env, source: &str) -> Result<Condition, String> {
        if source.trim().is_empty() {
            return Err("is empty; remove it or write a condition".into());
        }
        let program = env.compile(source).map_err(|e| e.to_string().replace('\n', "; "))?;
        let uses_object = program.references().has_variable("object");
        Ok(Condition { program, uses_object })
    }

    pub(crate) fn eval(&self, act: &Activation) -> Eval {
        let ctx = match &act.0 {
            Ok(ctx) => ctx,
            Err(e) => return Eval::Failed(e.clone()),
        };
        match self.program.execute(ctx) {
            Ok(cel::Value::Bool(true)) => Eval::True,
            Ok(cel::Value::Bool(false)) => Eval::False,
            Ok(other) => Eval::Failed(format!("the condition gave {} instead of a bool", type_name(&other))),
            Err(e) => Eval::Failed(format!("the condition failed: {e}")),
        }
    }
}

fn type_name(v: &cel::Value) -> &'static str {
    match v {
        cel::Value::Int(_) => "an int",
        cel::Value::UInt(_) => "a uint",
        cel::Value::Float(_) => "a double",
        cel::Value::String(_) => "a string",
        cel::Value::Null => "null",
        cel::Value::List(_) => "a list",
        cel::Value::Map(_) => "a map",
        _ => "a non-bool value",
    }
}

/// The variables of one decision, or why they could not be built.
pub(crate) struct Activation(Result<cel::Context<'static, 'static>, String>);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestVar<'a> {
    verb: &'a str,
    api_group: &'a str,
    api_version: &'a str,
    resource: &'a str,
    subresource: &'a str,
    namespace: &'a str,
    name: &'a str,
    path: &'a str,
    query: BTreeMap<String, Vec<String>>,
    method: &'a str,
}

#[derive(Serialize)]
struct UserVar<'a> {
    subject: &'a str,
    username: &'a str,
    groups: &'a [String],
    agent: Option<&'a str>,
    claims: &'a serde_json::Value,
}

impl Activation {
    pub(crate) fn new(env: &Arc<cel::Env>, user: &User<'_>, req: &Request<'_>) -> Activation {
        let info = req.info;
        let request = RequestVar {
            verb: info.policy_verb(),
            api_group: &info.api_group,
            api_version: &info.api_version,
            resource: &info.resource,
            subresource: &info.subresource,
            namespace: &info.namespace,
            name: &info.name,
            path: req.path,
            query: crate::kube::request_info::query_map(req.query),
            method: req.method.as_str(),
        };
        let user = UserVar { subject: user.subject, username: user.username, groups: user.groups, agent: user.agent, claims: user.claims };
        let mut ctx = cel::Context::with_env(env.clone());
        let built = ctx
            .add_variable("request", request)
            .and_then(|()| ctx.add_variable("user", user))
            .and_then(|()| ctx.add_variable("object", req.object.unwrap_or(&serde_json::Value::Null)));
        Activation(built.map(|()| ctx).map_err(|e| format!("cannot build the CEL variables: {e}")))
    }
}
