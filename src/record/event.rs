//! One [`Record`] per request, and its export as a Kubernetes `audit.k8s.io/v1` [`Event`].
//!
//! Why it exists: the relay promises a record of every request (DESIGN.md, Records) in the shape
//! existing SIEM pipelines already read. [`Record`] is the relay's own flat row (what the store
//! keeps and the records API serves); [`Record::to_event`] maps it onto the apiserver's audit
//! `Event` (`staging/src/k8s.io/apiserver/pkg/apis/audit/v1/types.go`): same JSON names, same
//! field order, `MicroTime` timestamps (`2006-01-02T15:04:05.000000Z`), `level: Metadata` (no
//! request or response bodies: they may hold Secrets), the hoop-kube fields as string
//! `annotations` under `hoop-kube.dev/`.
//!
//! Stages: a record is inserted before the request is forwarded (write-ahead), so its first
//! state is `RequestReceived`; long-running requests (watch, exec, attach, port-forward) may
//! note `ResponseStarted` when the response headers come back; every request ends with
//! `ResponseComplete` once the response is done. [`Record::stage`] is the latest stage reached,
//! and the exported line always reflects the record's final state at that stage.
//!
//! Who is `user`: the relay is the authenticator, so `user` is the person it authenticated
//! (`username`, their groups, `uid` = the OIDC subject) and, for an agent, `extra` carries the
//! agent (RFC 8693 actor). The relay's own upstream identity never appears; the cluster's audit
//! log shows it with the person as `impersonatedUser`.
//!
//! What it trusts: the values the relay hands in (already authenticated and parsed). Nothing is
//! re-parsed here; client-sent strings (user agent, `Kubectl-*` headers) are copied as data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kube::request_info::RequestInfo;

/// The prefix of every hoop-kube annotation on an exported [`Event`].
pub const ANNOTATION_PREFIX: &str = "hoop-kube.dev/";

/// What the relay decided for a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Decision {
    /// Forwarded: a policy rule (or the access list alone) allowed it.
    Allow,
    /// Refused by a policy rule (403).
    Deny,
    /// Held for review and not approved (still pending, denied or timed out: 403).
    Review,
    /// Forwarded on an approval it spent.
    Approved,
    /// Refused before the policy: authentication, forbidden headers, a hostile path, the access
    /// list. The default: a record nobody decided on is not an allowed one.
    #[default]
    Refused,
}

impl Decision {
    /// Every decision, in a fixed order.
    pub const ALL: [Decision; 5] = [
        Decision::Allow,
        Decision::Deny,
        Decision::Review,
        Decision::Approved,
        Decision::Refused,
    ];

    /// The stored and annotated name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Review => "review",
            Decision::Approved => "approved",
            Decision::Refused => "refused",
        }
    }

    /// The decision named `s` (exactly as [`Decision::as_str`] spells it).
    #[must_use]
    pub fn parse(s: &str) -> Option<Decision> {
        Decision::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// An audit stage (`audit.k8s.io/v1` `Stage`), as far as the relay reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Stage {
    /// Inserted, not answered yet.
    RequestReceived,
    /// Long-running request whose response headers went out (watch 200, exec 101).
    ResponseStarted,
    /// The response is finished; no more bytes will be sent.
    ResponseComplete,
}

impl Stage {
    /// The audit name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
        }
    }
}

/// One request, as the relay records it. Times are Unix microseconds (RFC 3339 with
/// microseconds on the wire); `None` fields were not known or do not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// See [`super::id`]; also the audit `auditID`.
    pub id: String,
    /// When the relay received the request.
    #[serde(with = "micros")]
    pub received: i64,
    /// When the response headers of a long-running request went out.
    #[serde(default, with = "micros_opt", skip_serializing_if = "Option::is_none")]
    pub started: Option<i64>,
    /// When the response was finished.
    #[serde(default, with = "micros_opt", skip_serializing_if = "Option::is_none")]
    pub completed: Option<i64>,
    /// Received → completed, measured by the relay's monotonic clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// The OIDC subject (`sub`), the stable identity.
    pub subject: String,
    /// The user name the relay impersonates upstream.
    pub username: String,
    pub groups: Vec<String>,
    /// The agent acting for the subject (RFC 8693 actor), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The agent session (`hoop-kube agents list`), for an agent's request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session: Option<String>,
    /// Serial of the client certificate, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_serial: Option<String>,
    /// The connection's peer address (never a client-supplied `X-Forwarded-For`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The `Kubectl-Command` header (`kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl_command: Option<String>,
    /// The `Kubectl-Session` header: one id per kubectl invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubectl_session: Option<String>,
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, …; the lower-cased method for a
    /// non-resource request).
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The HTTP method.
    pub method: String,
    /// The raw path, exactly as authorized and forwarded.
    pub path: String,
    /// The raw query, without `?`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub decision: Decision,
    /// The rule that decided, if a rule did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The review opened or spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
    /// The HTTP status answered (101 for an upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Request body bytes (for an upgrade: bytes client → cluster).
    #[serde(default)]
    pub bytes_in: u64,
    /// Response body bytes (for an upgrade: bytes cluster → client).
    #[serde(default)]
    pub bytes_out: u64,
    /// Values the masker replaced.
    #[serde(default)]
    pub masked: u64,
    /// The exec/attach/port-forward session recorded for this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl Record {
    /// A record for a request the relay parsed into `info`, received at `received` (Unix µs),
    /// with a fresh id. The relay fills in the identity, headers and decision.
    #[must_use]
    pub fn from_request(
        info: &RequestInfo,
        method: &str,
        query: Option<&str>,
        received: i64,
    ) -> Record {
        Record {
            id: super::id::new_id(received),
            received,
            verb: info.verb.clone(),
            api_group: info.api_group.clone(),
            api_version: info.api_version.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            method: method.to_string(),
            path: info.path.clone(),
            query: query.filter(|q| !q.is_empty()).map(str::to_string),
            ..Record::default()
        }
    }

    /// The latest stage this record reached.
    #[must_use]
    pub fn stage(&self) -> Stage {
        if self.completed.is_some() {
            Stage::ResponseComplete
        } else if self.started.is_some() {
            Stage::ResponseStarted
        } else {
            Stage::RequestReceived
        }
    }

    /// Whether the request streams (watch, exec, attach, port-forward, proxy): the apiserver's
    /// long-running requests, which get a `ResponseStarted` stage.
    #[must_use]
    pub fn is_long_running(&self) -> bool {
        self.verb == "watch"
            || self.verb == "proxy"
            || matches!(
                self.subresource.as_str(),
                "exec" | "attach" | "portforward" | "proxy"
            )
    }

    /// The request URI as the client sent it.
    #[must_use]
    pub fn request_uri(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// The audit Event for the record's latest stage ([`Record::stage`]).
    #[must_use]
    pub fn to_event(&self) -> Event {
        self.event_at(self.stage())
    }

    /// The audit Event for `stage`, with what the record knows now.
    #[must_use]
    pub fn event_at(&self, stage: Stage) -> Event {
        let stage_time = match stage {
            Stage::RequestReceived => self.received,
            Stage::ResponseStarted => self.started.unwrap_or(self.received),
            Stage::ResponseComplete => self.completed.or(self.started).unwrap_or(self.received),
        };
        let object_ref = (!self.resource.is_empty()).then(|| ObjectReference {
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            api_group: self.api_group.clone(),
            api_version: self.api_version.clone(),
            subresource: self.subresource.clone(),
        });
        let response_status = match (stage, self.code) {
            (Stage::RequestReceived, _) | (_, None) => None,
            (_, Some(code)) => Some(ResponseStatus {
                metadata: EmptyMeta {},
                status: (code >= 400).then(|| "Failure".to_string()),
                code: i32::from(code),
            }),
        };
        let mut extra = BTreeMap::new();
        if let Some(agent) = &self.agent {
            extra.insert(format!("{ANNOTATION_PREFIX}agent"), vec![agent.clone()]);
        }
        if let Some(session) = &self.agent_session {
            extra.insert(format!("{ANNOTATION_PREFIX}agent-session"), vec![session.clone()]);
        }
        Event {
            kind: "Event".into(),
            api_version: "audit.k8s.io/v1".into(),
            level: "Metadata".into(),
            audit_id: self.id.clone(),
            stage: stage.as_str().into(),
            request_uri: self.request_uri(),
            verb: self.verb.clone(),
            user: UserInfo {
                username: self.username.clone(),
                uid: self.subject.clone(),
                groups: self.groups.clone(),
                extra,
            },
            source_ips: self.source_ips.clone(),
            user_agent: self.user_agent.clone().unwrap_or_default(),
            object_ref,
            response_status,
            request_received_timestamp: micro_time(self.received),
            stage_timestamp: micro_time(stage_time),
            annotations: self.annotations(stage),
        }
    }

    fn annotations(&self, stage: Stage) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            a.insert(format!("{ANNOTATION_PREFIX}{k}"), v);
        };
        put("decision", self.decision.as_str().to_string());
        let optional = [
            ("rule", &self.rule),
            ("review", &self.review),
            ("agent", &self.agent),
            ("agent-session", &self.agent_session),
            ("kubectl-command", &self.kubectl_command),
            ("kubectl-session", &self.kubectl_session),
            ("client-cert-serial", &self.client_cert_serial),
            ("session", &self.session),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                put(k, v.clone());
            }
        }
        if stage == Stage::ResponseComplete {
            put("bytes-in", self.bytes_in.to_string());
            put("bytes-out", self.bytes_out.to_string());
            put("masked", self.masked.to_string());
            if let Some(l) = self.latency_us {
                put("latency-us", l.to_string());
            }
        }
        a
    }
}

/// `audit.k8s.io/v1` `Event`, field for field as the apiserver writes it (JSON names and order
/// of `types.go`; `requestObject`/`responseObject` are never recorded at level `Metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: String,
    pub api_version: String,
    pub level: String,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: UserInfo,
    #[serde(rename = "sourceIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    pub request_received_timestamp: String,
    pub stage_timestamp: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `authentication.k8s.io/v1` `UserInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// `audit.k8s.io/v1` `ObjectReference` (no `uid`/`resourceVersion`: the relay does not know
/// them from the request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// The `meta/v1` `Status` of `responseStatus`: `{"metadata":{},"code":200}` on success, plus
/// `"status":"Failure"` from 400 on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseStatus {
    pub metadata: EmptyMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub code: i32,
}

/// An empty `ListMeta` (`{}`), as Go writes a zero struct.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyMeta {}

/// `audit.k8s.io/v1` `EventList`, the body of an audit webhook POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    pub kind: String,
    pub api_version: String,
    pub metadata: EmptyMeta,
    pub items: Vec<Event>,
}

impl EventList {
    #[must_use]
    pub fn new(items: Vec<Event>) -> EventList {
        EventList {
            kind: "EventList".into(),
            api_version: "audit.k8s.io/v1".into(),
            metadata: EmptyMeta {},
            items,
        }
    }
}

/// Unix microseconds as a Kubernetes `MicroTime`: RFC 3339, UTC, six fractional digits.
#[must_use]
pub fn micro_time(unix_micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(unix_micros)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// Parse an RFC 3339 time (any offset, any precision) into Unix microseconds.
#[must_use]
pub fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Now, in Unix microseconds.
#[must_use]
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Unix microseconds as RFC 3339 on the records API.
pub(super) mod micros {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::micro_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_time(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

pub(super) mod micros_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::micro_time(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                super::parse_time(&s)
                    .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
            })
            .transpose()
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
