//! `selfsubjectaccessreviews` and `selfsubjectrulesreviews`: what `kubectl auth can-i` asks.
//!
//! The simulator authorizes every authenticated user for everything (it has no RBAC; the relay
//! in front of it is what decides), so the answers say allowed, and the rules say `*`. kubectl
//! ≥ 1.32 sends these as protobuf; the JSON answer is what kubectl accepts (k8s-wire.md §1).

use http::Response;
use serde_json::{json, Value};

use super::resources::ResourceDef;
use crate::respond::{self, Body};
use super::server::Ctx;
use crate::kube::status::Status;

/// Answer an access review.
pub fn handle(ctx: &Ctx, def: &ResourceDef, headers: &http::HeaderMap, body: &[u8]) -> Result<Response<Body>, Status> {
    if ctx.info.verb != "create" {
        return Err(Status::method_not_allowed(&ctx.info.verb));
    }
    // The request's spec (JSON or protobuf) is echoed back, as the apiserver does.
    let spec = super::crud::parse_body(headers, body).map(|v| v["spec"].clone()).ok().filter(|s: &Value| !s.is_null()).unwrap_or_else(|| json!({}));
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
