//! A policy refusal as the Kubernetes `Status` kubectl prints and an agent can act on:
//! `Error from server (Forbidden): hoop-kube policy: delete pods "web-1" in namespace "prod" is
//! denied by rule "no-prod-deletes": <message>; ask your platform team to change the policy`.
//!
//! Why here and not in the relay: `hoop-kube policy test` shows the very same text, and the
//! wording of a request (`delete pods "web-1" in namespace "prod"`) is shared with explanations.

use super::decide::{Decision, Request};
use super::rule::Action;
use crate::kube::status::{Status, StatusCause, StatusDetails};

/// The `details.causes[].reason` that marks a policy refusal.
pub const CAUSE_REASON: &str = "HoopKubePolicy";

/// `delete pods "web-1" in namespace "prod"`, `list deployments.apps`, `get path "/version"`:
/// the request in the words of the policy verb.
#[must_use]
pub fn describe(req: &Request<'_>) -> String {
    describe_info(req.info, req.path)
}

/// [`describe`] from the parsed request and its raw path (used for non-resource requests).
#[must_use]
pub fn describe_info(info: &crate::kube::request_info::RequestInfo, path: &str) -> String {
    let verb = info.policy_verb();
    if !info.is_resource_request {
        return format!("{verb} path {path:?}");
    }
    let mut s = format!("{verb} {}", info.resource);
    if !info.api_group.is_empty() {
        s.push('.');
        s.push_str(&info.api_group);
    }
    if !info.subresource.is_empty() {
        s.push('/');
        s.push_str(&info.subresource);
    }
    if !info.name.is_empty() {
        s.push_str(&format!(" {:?}", info.name));
    }
    if !info.namespace.is_empty() {
        s.push_str(&format!(" in namespace {:?}", info.namespace));
    }
    s
}

impl Decision {
    /// The 403 `Status` for a request this decision does not let through: for deny, the rule and
    /// its message (or that no rule allows it); for review, the rule and who may approve (the
    /// review stage answers with its own Status once it exists). `details` names the rule in a
    /// cause with reason [`CAUSE_REASON`] and field `rule`.
    #[must_use]
    pub fn status(&self, req: &Request<'_>) -> Status {
        let what = describe(req);
        let message = match (&self.rule, self.action) {
            (None, _) => format!("hoop-kube policy: {what} is not allowed by any rule; ask your platform team to change the policy"),
            (Some(rule), Action::Review) => {
                format!("hoop-kube policy: {what} needs approval (rule {rule:?}, reviewers: {})", self.reviewers.join(", "))
            }
            (Some(rule), _) => {
                let why = self.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                format!("hoop-kube policy: {what} is denied by rule {rule:?}{why}; ask your platform team to change the policy")
            }
        };
        let info = req.info;
        let cause = StatusCause {
            reason: CAUSE_REASON.into(),
            message: self.rule.as_deref().map_or_else(|| "no rule matched".into(), str::to_owned),
            field: "rule".into(),
        };
        let code = match (&self.rule, self.action) {
            (None, _) => "NoRuleAllows",
            (Some(_), Action::Review) => "ReviewRequired",
            (Some(_), _) => "PolicyDenied",
        };
        Status::forbidden(message)
            .with_details(StatusDetails {
                name: info.name.clone(),
                group: info.api_group.clone(),
                kind: info.resource.clone(),
                causes: vec![cause],
                ..StatusDetails::default()
            })
            .with_code(code)
    }
}
