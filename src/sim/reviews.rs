//! `selfsubjectaccessreviews` and `selfsubjectrulesreviews`: what `kubectl auth can-i` asks.
//!
//! The simulator authorizes every authenticated user for everything (it has no RBAC; the relay
//! in front of it is what decides), so the answers say allowed, and the rules say `*`. kubectl
//! sends these as protobuf; the body is not needed to answer, and the JSON answer is what
//! kubectl accepts (k8s-wire.md §1).

use http::Response;
use serde_json::{json, Value};

use super::resources::ResourceDef;
use super::respond::{self, Body};
use super::server::Ctx;
use crate::kube::status::Status;

/// Answer an access review.
pub fn handle(ctx: &Ctx, def: &ResourceDef, body: &[u8]) -> Result<Response<Body>, Status> {
    if ctx.info.verb != "create" {
        return Err(Status::method_not_allowed(&ctx.info.verb));
    }
    // A JSON body is echoed back in `spec` as the apiserver does; protobuf is not decoded.
    let spec = serde_json::from_slice::<Value>(body).ok().map(|v| v["spec"].clone()).filter(|s| !s.is_null()).unwrap_or_else(|| json!({}));
    let status = match def.kind {
        "SelfSubjectAccessReview" => json!({"allowed": true, "reason": format!("hoop-kube sim allows every authenticated user (as {})", ctx.user.name)}),
        _ => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
    };
    Ok(respond::json(201, &json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": {"creationTimestamp": null}, "spec": spec, "status": status})))
}
