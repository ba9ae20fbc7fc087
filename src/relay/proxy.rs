//! One request through the relay, in the documented phase order (see [`super`]):
//! limits → authn → header policy → request info → access → policy → upstream → response.
//!
//! Bodies stream both ways as they arrive (hyper bodies are pulled on demand, so a slow reader
//! slows the writer: backpressure without buffering). Upgrades (exec, attach, port-forward) go
//! to the API server over HTTP/1.1, and after both sides switch protocols the two connections are
//! spliced. The relay's upstream credential is never copied into a response.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::{authn, RelayState};
use crate::kube::request_info::{self, RequestInfo};
use crate::policy::{self, Action, Policy};
use crate::kube::status::Status;
use crate::pki::CertSubject;
use crate::proxy::headers;
use crate::proxy::pass::{pass, PassError};
use crate::respond;
use crate::review::{NewReview, Reviews};

/// Refuse client headers that would change who the request is for. By prefix, never by list.
fn refuse_identity_headers(h: &HeaderMap) -> Result<(), Status> {
    for name in h.keys() {
        let n = name.as_str();
        if n.starts_with("impersonate-") || n.starts_with("x-remote-") {
            return Err(Status::forbidden(format!("the {n} header is refused: impersonation through the hoop-kube relay is not allowed (the relay sets the identity itself)")));
        }
    }
    Ok(())
}

/// Handle one request; never fails (errors become `Status` responses).
pub async fn handle(state: Arc<RelayState>, cert: Option<CertSubject>, req: Request<Incoming>) -> Response<respond::Body> {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let subject = cert.as_ref().map(|c| c.subject.clone()).unwrap_or_default();
    let resp = match forward(&state, cert, req).await {
        Ok(r) => r,
        Err(s) => {
            tracing::info!(%subject, %method, %path, code = s.code, reason = %s.reason, "refused");
            return respond::status(&s);
        }
    };
    tracing::debug!(%subject, %method, %path, code = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64, "forwarded");
    resp
}

async fn forward(state: &RelayState, cert: Option<CertSubject>, req: Request<Incoming>) -> Result<Response<respond::Body>, Status> {
    let limits = &state.limits;
    if headers::header_bytes(req.headers()) > limits.max_header_bytes {
        return Err(Status::failure(431, "RequestHeaderFieldsTooLarge", format!("request headers are larger than the relay's limit of {} bytes", limits.max_header_bytes)));
    }
    let declared = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(Status::too_large(limits.max_body_bytes));
    }

    let who = authn::authenticate(req.headers(), cert.as_ref(), &state.verifier, &state.tokens).await.map_err(|e| match &e {
        // The issuer's keys cannot be fetched: not the client's fault, and it should retry.
        authn::Unauthenticated::BadToken(t) if t.is_unavailable() => Status::unavailable(format!("cannot verify tokens right now: {t}; retry shortly")),
        _ => Status::failure(401, "Unauthorized", format!("Unauthorized: {e}")),
    })?;
    refuse_identity_headers(req.headers())?;
    if crate::review::api::is_api_path(req.uri().path()) {
        return Ok(crate::review::api::handle(state.reviews.as_deref(), &who, req).await);
    }
    let info = request_info::parse_uri(req.method(), req.uri()).map_err(|e| Status::bad_request(format!("invalid request path: {e}")))?;
    let _admitted = state.access.check(&who, &info)?;
    let req = match &state.policy {
        Some(policy) => decide(policy, state.reviews.as_deref(), &who, &info, req, limits.max_body_bytes).await?,
        None => req.map(Either::Left),
    };

    // The exact bytes that were parsed and admitted are the bytes forwarded.
    let upstream = &state.upstream;
    pass(&upstream.hop, req, limits.max_body_bytes, |h| {
        h.remove(http::header::AUTHORIZATION);
        upstream.authorize(h, &who)
    })
    .await
    .map_err(|e| match e {
        PassError::Refused(m) => Status::internal(m),
        PassError::BodyTooLarge(n) => Status::too_large(n),
        PassError::Hop(e) => Status::unavailable(format!("the Kubernetes API server at {} is unreachable: {e}", upstream.hop.authority())),
    })
}

/// A request body as it goes upstream: streamed untouched, or the bytes the policy decided on.
type Either = http_body_util::Either<Incoming, Full<Bytes>>;

/// The policy phase. When a rule that could match reads `object`, the body is read (within the
/// body limit) and decoded by its `Content-Type` ([`crate::kube::body`]); a body that cannot be
/// decoded is refused (400), never judged as "no object". The bytes that were decided on are the
/// bytes forwarded. Allowed: the request goes on; deny ends here with the decision's `Status`;
/// review goes to the review stage ([`crate::review::hold`]), which needs the body's digest, so
/// a body not read yet is read now (upgrades have none); without a review stage it is refused.
async fn decide(policy: &Policy, reviews: Option<&Reviews>, who: &authn::Authenticated, info: &RequestInfo, req: Request<Incoming>, max_body: usize) -> Result<Request<Either>, Status> {
    let id = who.identity();
    let agent = id.claims.get("act").and_then(|a| a.get("sub")).and_then(serde_json::Value::as_str);
    let user = policy::User { subject: &id.subject, username: &id.username, groups: &id.groups, agent, claims: &id.claims };
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let mut facts = policy::Request { info, method: &parts.method, path: &path, query: query.as_deref(), object: None };
    let (object, mut body) = if policy.needs_object(&facts) {
        let bytes = read_body(body, max_body).await?;
        let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let object = crate::kube::body::decode(content_type, &bytes).map_err(|e| {
            Status::bad_request(format!("hoop-kube policy: the request body cannot be decoded ({e}), and rule(s) {} must see it; the request was not forwarded", policy.rules_needing_object(&facts).join(", ")))
        })?;
        (Some(object), Body::Read(bytes))
    } else {
        (None, Body::Streaming(body))
    };
    facts.object = object.as_ref();
    let decision = policy.decide(&user, &facts);
    tracing::debug!(subject = %id.subject, action = ?decision.action, rule = ?decision.rule, "policy");
    match decision.action {
        Action::Allow => {}
        Action::Deny => return Err(decision.status(&facts)),
        Action::Review => {
            let Some(reviews) = reviews else { return Err(decision.status(&facts)) };
            // The digest is of the exact bytes forwarded; an upgrade (exec, attach, port-forward)
            // carries none.
            let upgrade = parts.headers.contains_key(http::header::UPGRADE);
            body = match body {
                Body::Streaming(incoming) if !upgrade => Body::Read(read_body(incoming, max_body).await?),
                other => other,
            };
            let digest = crate::review::fingerprint::body_sha256(match &body { Body::Read(b) => b, Body::Streaming(_) => &[] });
            let verb = info.policy_verb();
            let fingerprint = crate::review::fingerprint::fingerprint(&crate::review::fingerprint::Parts { subject: &id.subject, agent, verb, path: &path, query: query.as_deref(), body_sha256: &digest });
            let new = NewReview {
                fingerprint,
                subject: id.subject.clone(),
                username: id.username.clone(),
                agent: agent.map(str::to_string),
                verb: verb.to_string(),
                method: parts.method.to_string(),
                path: path.clone(),
                query: query.clone(),
                body_sha256: digest,
                summary: policy::denial::describe(&facts),
                rule: decision.rule.as_deref().unwrap_or_default().to_string(),
                reviewers: decision.reviewers.clone(),
                allow_self_approval: decision.allow_self_approval,
            };
            let approval = reviews.hold(new).await?;
            tracing::info!(subject = %id.subject, review = approval.review(), "reviewed request proceeds");
        }
    }
    let body = match body {
        Body::Read(b) => Either::Right(Full::new(b)),
        Body::Streaming(b) => Either::Left(b),
    };
    Ok(Request::from_parts(parts, body))
}

/// A request body in the policy phase: not read yet, or read (and then forwarded as read).
enum Body {
    Streaming(Incoming),
    Read(Bytes),
}

/// Read a whole body within the limit (413 beyond it).
async fn read_body(body: Incoming, max_body: usize) -> Result<Bytes, Status> {
    Ok(Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|e| if e.is::<http_body_util::LengthLimitError>() { Status::too_large(max_body) } else { Status::bad_request(format!("cannot read the request body: {e}")) })?
        .to_bytes())
}
