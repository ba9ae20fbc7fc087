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
use crate::mask::MaskProfile;
use crate::policy::{self, Action, Policy};
use crate::kube::status::Status;
use crate::pki::CertSubject;
use crate::proxy::headers;
use crate::proxy::pass::{pass, PassError, Upgrade};
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
    let t0 = std::time::Instant::now();
    let received = crate::record::event::now_micros();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let subject = cert.as_ref().map(|c| c.subject.clone()).unwrap_or_default();
    let resp = match prelude(&state, cert, req).await {
        Ok(Prelude::Answered(r)) => r,
        Ok(Prelude::Proceed { who, info, serial, req }) => recorded(&state, who, info, serial, req, received, t0).await,
        Err(s) => {
            tracing::info!(%subject, %method, %path, code = s.code, reason = %s.reason, "refused before a record");
            return respond::status(&s);
        }
    };
    tracing::debug!(%subject, %method, %path, code = resp.status().as_u16(), micros = t0.elapsed().as_micros() as u64, "answered");
    resp
}

/// What the phases before the record decided. (One per request, moved once: the size
/// difference between the variants is not worth a box.)
#[allow(clippy::large_enum_variant)]
enum Prelude {
    /// The relay's own APIs (reviews, records) answered.
    Answered(Response<respond::Body>),
    /// An authenticated request with its parsed request info, to be decided and recorded.
    Proceed { who: authn::Authenticated, info: RequestInfo, serial: Option<String>, req: Request<Incoming> },
}

/// limits → authn → header policy → the relay's own APIs → request info.
async fn prelude(state: &Arc<RelayState>, cert: Option<CertSubject>, req: Request<Incoming>) -> Result<Prelude, Status> {
    let limits = &state.limits;
    if headers::header_bytes(req.headers()) > limits.max_header_bytes {
        return Err(Status::failure(431, "RequestHeaderFieldsTooLarge", format!("request headers are larger than the relay's limit of {} bytes", limits.max_header_bytes)));
    }
    let declared = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(Status::too_large(limits.max_body_bytes));
    }
    let who = authn::authenticate(req.headers(), cert.as_ref(), &state.verifier, &state.tokens, state.agents.as_deref()).await.map_err(|e| match &e {
        // The issuer's keys cannot be fetched: not the client's fault, and it should retry.
        authn::Unauthenticated::BadToken(t) if t.is_unavailable() => Status::unavailable(format!("cannot verify tokens right now: {t}; retry shortly")),
        _ => Status::failure(401, "Unauthorized", format!("Unauthorized: {e}")).with_code(e.code()),
    })?;
    refuse_identity_headers(req.headers())?;
    if crate::review::api::is_api_path(req.uri().path()) {
        return Ok(Prelude::Answered(crate::review::api::handle(state.reviews.as_deref(), state.agents.as_deref(), &who, req).await));
    }
    if super::agents::api::is_api_path(req.uri().path()) {
        return Ok(Prelude::Answered(super::agents::api::handle(state, &who, req).await));
    }
    if super::records_api::is_api_path(req.uri().path()) {
        return Ok(Prelude::Answered(super::records_api::handle(&state.records, &who, req).await));
    }
    let info = request_info::parse_uri(req.method(), req.uri()).map_err(|e| Status::bad_request(format!("invalid request path: {e}")))?;
    Ok(Prelude::Proceed { who, info, serial: cert.map(|c| c.serial), req })
}

/// What the decision phases established, for the record (filled in as they go, so a refusal
/// records how far the request got).
#[derive(Default)]
struct Verdict {
    decision: crate::record::Decision,
    rule: Option<String>,
    review: Option<String>,
}

impl Verdict {
    /// An agent session's limit refused the request: a deny, named by the limit.
    fn refused_by_limit(&mut self, refused: super::agents::gate::Refused) -> Status {
        self.decision = crate::record::Decision::Deny;
        self.rule = Some(refused.rule);
        refused.status
    }
}

/// The record's view of the request, before any decision.
fn new_record(who: &authn::Authenticated, info: &RequestInfo, serial: Option<String>, req: &Request<Incoming>, received: i64) -> crate::record::Record {
    let id = who.identity();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(|v| crate::text::clip(v, 512).to_string());
    let mut rec = crate::record::Record::from_request(info, req.method().as_str(), req.uri().query(), received);
    rec.subject = id.subject.clone();
    rec.username = id.username.clone();
    rec.groups = id.groups.clone();
    rec.agent = id.agent().map(str::to_string);
    rec.agent_session = who.agent_session().map(|l| l.id().to_string());
    rec.client_cert_serial = serial;
    rec.user_agent = header("user-agent");
    rec.kubectl_command = header("kubectl-command");
    rec.kubectl_session = header("kubectl-session");
    if crate::record::exec::SessionKind::parse(&info.subresource).is_some() {
        rec.session = Some(crate::record::id::new_id(received));
    }
    rec
}

/// access → policy → review → **record** → upstream → mask → response (completing the record).
async fn recorded(state: &Arc<RelayState>, who: authn::Authenticated, info: RequestInfo, serial: Option<String>, req: Request<Incoming>, received: i64, t0: std::time::Instant) -> Response<respond::Body> {
    let records = &state.records;
    let mut rec = new_record(&who, &info, serial, &req, received);
    let id = rec.id.clone();
    let mut verdict = Verdict::default();
    let admitted = admit(state, &who, &info, req, &mut verdict).await;
    rec.decision = verdict.decision;
    rec.rule = verdict.rule;
    rec.review = verdict.review;
    let (req, mask) = match admitted {
        Ok(x) => x,
        Err(status) => {
            // A refusal is recorded complete, before it is answered.
            rec.code = Some(status.code);
            rec.completed = Some(crate::record::event::now_micros());
            rec.latency_us = Some(t0.elapsed().as_micros() as u64);
            rec.session = None;
            let status = match records.insert(rec).await {
                Ok(()) => status,
                Err(unavailable) => unavailable,
            };
            tracing::info!(subject = %who.identity().subject, record = %id, code = status.code, reason = %status.reason, "refused");
            let mut r = respond::status(&status);
            super::records::tag(r.headers_mut(), &id);
            return r;
        }
    };
    rec.bytes_in = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    let session_id = rec.session.clone();
    if let Err(unavailable) = records.insert(rec).await {
        let mut r = respond::status(&unavailable);
        super::records::tag(r.headers_mut(), &id);
        return r;
    }
    let counters = Arc::new(super::records::Counters::default());
    let completer = |code| super::records::Completer::new(records.store.clone(), id.clone(), t0, code, counters.clone());
    match forward(state, &who, &info, req, mask, session_id, &id, &completer, counters.clone()).await {
        Ok(mut resp) => {
            super::records::tag(resp.headers_mut(), &id);
            let code = resp.status().as_u16();
            if code == 101 {
                return resp; // the session completes the record
            }
            let is_long = info.verb == "watch" || matches!(info.subresource.as_str(), "log" | "proxy");
            if is_long {
                if let Err(e) = records.store.started(&id, code, crate::record::event::now_micros()).await {
                    tracing::error!(record = %id, error = %e, "cannot mark the audit record started");
                }
            }
            super::records::complete_on_end(resp, completer(code))
        }
        Err(status) => {
            let c = completer(status.code);
            let mut r = respond::status(&status);
            super::records::tag(r.headers_mut(), &id);
            c.finish().await;
            r
        }
    }
}

/// access → policy (→ mask write guard) → review. Refusals are `Status`es; `verdict` says how far
/// the request got.
async fn admit(state: &Arc<RelayState>, who: &authn::Authenticated, info: &RequestInfo, req: Request<Incoming>, verdict: &mut Verdict) -> Result<(Request<Either>, Option<Arc<MaskProfile>>), Status> {
    let _admitted = state.access.check(who, info)?;
    // An agent's session limits: where it may go and how fast, before the policy is asked.
    let limit = match (state.agents.as_deref(), who.agent_session()) {
        (Some(agents), Some(live)) => {
            let gate = super::agents::gate::Gate::new(agents, live);
            gate.precheck(info).map_err(|r| verdict.refused_by_limit(r))?;
            Some(gate)
        }
        _ => None,
    };
    let admitted = match &state.policy {
        Some(policy) => decide(policy, &state.masking, state.reviews.as_deref(), who, info, req, state.limits.max_body_bytes, verdict).await?,
        None => {
            verdict.decision = crate::record::Decision::Allow;
            (req.map(Either::Left), None)
        }
    };
    // Let through: a mutating call or delete spends the session's budget, or is refused.
    if let Some(gate) = limit {
        gate.charge(info).await.map_err(|r| verdict.refused_by_limit(r))?;
    }
    Ok(admitted)
}

/// upstream → mask. The session hook (exec, attach, port-forward) records the stream and, with
/// a `logs` mask, masks its output.
#[allow(clippy::too_many_arguments)]
async fn forward(
    state: &Arc<RelayState>,
    who: &authn::Authenticated,
    info: &RequestInfo,
    req: Request<Either>,
    mask: Option<Arc<MaskProfile>>,
    session_id: Option<String>,
    record_id: &str,
    completer: &(dyn Fn(u16) -> super::records::Completer + Send + Sync),
    counters: Arc<super::records::Counters>,
) -> Result<Response<respond::Body>, Status> {
    let limits = &state.limits;
    let upgrade = match (crate::record::exec::SessionKind::parse(&info.subresource), session_id) {
        (Some(kind), Some(session_id)) if headers::is_upgrade(req.headers()) => {
            let output_mask = match &mask {
                Some(p) if p.masks_logs() && kind != crate::record::exec::SessionKind::PortForward => {
                    super::exec_mask::check_upgrade(req.headers())?;
                    Some(state.masking.secrets.replacer(&state.upstream, &info.namespace).await?)
                }
                _ => None,
            };
            Upgrade::Custom(super::session::hook(super::session::Plan {
                store: state.records.store.clone(),
                record_id: record_id.to_string(),
                session_id,
                kind,
                recorder: state.records.recorder.clone(),
                mask: output_mask,
                completer: completer(101),
                ended: who.agent_session().map(|live| live.ended()),
            }))
        }
        _ => match who.agent_session() {
            Some(live) => super::agents::cut::splice(live.ended()),
            None => Upgrade::Splice,
        },
    };

    // The exact bytes that were parsed and admitted are the bytes forwarded.
    let upstream = &state.upstream;
    let resp = pass(&upstream.hop, req, limits.max_body_bytes, upgrade, |h| {
        h.remove(http::header::AUTHORIZATION);
        // The recorder reads every frame: no compression extension is negotiated.
        h.remove(http::header::SEC_WEBSOCKET_EXTENSIONS);
        if mask.is_some() {
            super::mask::prepare_headers(h);
        }
        if let Ok(v) = http::HeaderValue::from_str(record_id) {
            h.insert(super::records::AUDIT_ID, v);
        }
        upstream.authorize(h, who)
    })
    .await
    .map_err(|e| match e {
        PassError::Refused(m) => Status::internal(m),
        PassError::BodyTooLarge(n) => Status::too_large(n),
        PassError::Hop(e) => Status::unavailable(format!("the Kubernetes API server at {} is unreachable: {e}", upstream.hop.authority())),
    })?;
    let resp = match mask {
        Some(profile) => super::mask::response(&state.masking, upstream, profile, info, resp, counters).await?,
        None => resp,
    };
    // An agent's watches and logs end when its session does.
    Ok(match who.agent_session() {
        Some(live) if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS => super::agents::cut::body(resp, live.ended()),
        _ => resp,
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
#[allow(clippy::too_many_arguments)]
async fn decide(
    policy: &Policy,
    masking: &super::mask::Masking,
    reviews: Option<&Reviews>,
    who: &authn::Authenticated,
    info: &RequestInfo,
    req: Request<Incoming>,
    max_body: usize,
    verdict: &mut Verdict,
) -> Result<(Request<Either>, Option<Arc<MaskProfile>>), Status> {
    let id = who.identity();
    let agent = id.agent();
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
    tracing::debug!(subject = %id.subject, action = ?decision.action, rule = ?decision.rule, masks = ?decision.masks, "policy");
    verdict.rule = decision.rule.as_deref().map(str::to_string);
    verdict.decision = match decision.action {
        Action::Allow => crate::record::Decision::Allow,
        Action::Deny => crate::record::Decision::Deny,
        Action::Review => crate::record::Decision::Review,
    };
    if decision.action == Action::Deny {
        return Err(decision.status(&facts));
    }
    // A masked user's write is checked before it can be held for review or sent: a placeholder
    // written back, or a JSON patch reading a masked path, is refused.
    let mask = masking.profile_for(&decision.masks)?;
    if let Some(profile) = mask.as_ref().filter(|_| super::mask::is_write(info)) {
        body = match body {
            Body::Streaming(incoming) => Body::Read(read_body(incoming, max_body).await?),
            other => other,
        };
        if let Body::Read(bytes) = &body {
            let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            super::mask::guard_write(profile, info, content_type, bytes)?;
        }
    }
    match decision.action {
        Action::Allow | Action::Deny => {}
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
            let approval = reviews.hold(new).await.inspect_err(|s| {
                verdict.review = Some(s.details.name.clone()).filter(|n| !n.is_empty());
            })?;
            verdict.decision = crate::record::Decision::Approved;
            verdict.review = Some(approval.review().to_string());
            tracing::info!(subject = %id.subject, review = approval.review(), "reviewed request proceeds");
        }
    }
    let body = match body {
        Body::Read(b) => Either::Right(Full::new(b)),
        Body::Streaming(b) => Either::Left(b),
    };
    Ok((Request::from_parts(parts, body), mask))
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
