//! The Kubernetes `meta/v1` `Status` object: the one error shape kubectl understands.
//!
//! Every error hoop-kube returns over the Kubernetes API (from the simulator today, from the relay
//! later) is built here, so the wording and the `reason`/`code` pairs match what kube-apiserver
//! sends (`apimachinery pkg/api/errors/errors.go`). kubectl prints `Error from server (Reason):
//! message` from these fields, and agents read `details`.

use serde::{Deserialize, Serialize};

/// What a client shows for an error answer's body: the `message` of its `Status`, else the
/// start of the body (at most 200 bytes). Raw text: callers choose how to fit it on one line.
#[must_use]
pub fn message_of(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        message: String,
    }
    serde_json::from_slice::<Answer>(body).map(|a| a.message).unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// The `details.causes[].reason` of the cause that carries hoop-kube's reason code.
pub const CODE_CAUSE: &str = "HoopKubeCode";

/// `details.causes[]` of a Status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `details` of a Status: which object the error is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    #[serde(rename = "retryAfterSeconds", default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

impl StatusDetails {
    fn is_empty(&self) -> bool {
        *self == StatusDetails::default()
    }
}

/// A `meta/v1` Status, serialisable exactly as the apiserver shapes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct Status {
    pub kind: String,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "StatusDetails::is_empty")]
    pub details: StatusDetails,
    pub code: u16,
}

/// Where a `resource "name"` message points: the resource (plural, with group) and the name.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub name: &'a str,
}

impl Target<'_> {
    /// `pods` or `deployments.apps`, as apiserver messages name a group resource.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
    fn details(&self) -> StatusDetails {
        StatusDetails {
            name: self.name.to_string(),
            group: self.group.to_string(),
            kind: self.resource.to_string(),
            ..StatusDetails::default()
        }
    }
}

impl Status {
    /// A failure with the given code, reason and message.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: serde_json::Map::new(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: StatusDetails::default(),
            code,
        }
    }

    /// `{"status":"Success"}`, as answered by a delete that leaves nothing to return.
    pub fn success() -> Self {
        let mut s = Status::failure(200, "", "");
        s.status = "Success".into();
        s
    }

    /// Attach `details`.
    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = details;
        self
    }

    /// Add hoop-kube's machine-readable reason code: a cause `{reason: "HoopKubeCode", field:
    /// "code", message: CODE}` (README, "What an agent can read from a refusal").
    #[must_use]
    pub fn with_code(mut self, code: &str) -> Self {
        self.details.causes.push(StatusCause { reason: CODE_CAUSE.into(), message: code.into(), field: "code".into() });
        self
    }

    /// The hoop-kube reason code of this Status, if it has one.
    pub fn code_cause(&self) -> Option<&str> {
        self.details.causes.iter().find(|c| c.reason == CODE_CAUSE).map(|c| c.message.as_str())
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Status::failure(400, "BadRequest", message)
    }

    /// 401 Unauthorized, exactly as kube-apiserver words it.
    pub fn unauthorized() -> Self {
        Status::failure(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden with a free-form message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Status::failure(403, "Forbidden", message)
    }

    /// 404 for a named object: `pods "p" not found`.
    pub fn not_found(t: Target<'_>) -> Self {
        Status::failure(404, "NotFound", format!("{} \"{}\" not found", t.qualified(), t.name)).with_details(t.details())
    }

    /// 404 for a path the server has no route for.
    pub fn no_route() -> Self {
        Status::failure(404, "NotFound", "the server could not find the requested resource").with_details(StatusDetails::default())
    }

    /// 405 MethodNotAllowed for a verb the resource does not support.
    pub fn method_not_allowed(method: &str) -> Self {
        Status::failure(405, "MethodNotAllowed", format!("the server does not allow this method on the requested resource ({method})"))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(t: Target<'_>) -> Self {
        Status::failure(409, "AlreadyExists", format!("{} \"{}\" already exists", t.qualified(), t.name)).with_details(t.details())
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(t: Target<'_>) -> Self {
        Status::failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                t.qualified(),
                t.name
            ),
        )
        .with_details(t.details())
    }

    /// 410 Expired, for a watch or continue token whose resourceVersion is gone.
    pub fn expired(message: impl Into<String>) -> Self {
        Status::failure(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        Status::failure(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {limit}"))
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Status::failure(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"))
    }

    /// 422 Invalid, with field causes.
    pub fn invalid(kind: &str, name: &str, causes: Vec<StatusCause>) -> Self {
        let summary: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        Status::failure(422, "Invalid", format!("{kind} \"{name}\" is invalid: {}", summary.join(", "))).with_details(StatusDetails {
            name: name.to_string(),
            kind: kind.to_string(),
            causes,
            ..StatusDetails::default()
        })
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Status::failure(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Status::failure(503, "ServiceUnavailable", message)
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of strings and maps cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"code\":500}".to_vec())
    }

    /// The JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_of_an_error_answer() {
        let s = Status::forbidden("no\nway");
        assert_eq!(message_of(&s.to_json()), "no\nway");
        assert_eq!(message_of(b"{}"), "");
        assert_eq!(message_of(b"plain text refusal"), "plain text refusal");
        assert_eq!(message_of(&[b'x'; 300]).len(), 200);
        assert_eq!(message_of(br#"{"message": 7}"#), r#"{"message": 7}"#);
    }

    #[test]
    fn not_found_matches_apiserver_wording() {
        let s = Status::not_found(Target { group: "", resource: "pods", name: "p" });
        let v: serde_json::Value = serde_json::from_slice(&s.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"pods \"p\" not found","reason":"NotFound","details":{"name":"p","kind":"pods"},"code":404})
        );
    }

    #[test]
    fn grouped_resources_are_qualified() {
        let s = Status::already_exists(Target { group: "apps", resource: "deployments", name: "web" });
        assert_eq!(s.message, "deployments.apps \"web\" already exists");
        assert_eq!(s.details.group, "apps");
    }

    #[test]
    fn unauthorized_has_no_details() {
        let v: serde_json::Value = serde_json::from_slice(&Status::unauthorized().to_json()).unwrap();
        assert_eq!(v, serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}));
    }

    #[test]
    fn retry_after_is_in_details() {
        let s = Status::failure(429, "TooManyRequests", "slow down").with_details(StatusDetails { retry_after_seconds: Some(1), ..Default::default() });
        let v = s.to_value();
        assert_eq!(v["details"]["retryAfterSeconds"], 1);
    }
}
