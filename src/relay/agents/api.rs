//! `/hoop-kube/v1/agents`: how an engineer mints, lists, revokes and stops agent sessions.
//!
//! The wire contract is [`crate::agent`] (the client, `hoop-kube run` and `hoop-kube agents`,
//! is written against exactly those types). Only an engineer may call it: an agent credential
//! cannot mint more agents, extend itself or stop another agent (403). Engineers see and end
//! their own sessions; members of `agents.admins` see and end everyone's — the platform team's
//! kill switch. Every refusal is a one-line Kubernetes `Status`.
//!
//! | call | answer |
//! | --- | --- |
//! | `POST /hoop-kube/v1/agents` ([`MintRequest`]) | 200 [`Minted`] |
//! | `GET /hoop-kube/v1/agents[?all=true][&agent=NAME]` | 200 [`SessionList`] |
//! | `GET /hoop-kube/v1/agents/ID` | 200 [`SessionInfo`] |
//! | `DELETE /hoop-kube/v1/agents/ID` | 200 [`SessionInfo`], revoked |
//! | `POST /hoop-kube/v1/agents/stop` ([`StopRequest`]) | 200 [`SessionList`] of those stopped |

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::registry::{Filter, NewSession, Registry, RegistryError};
use super::Agents;
use crate::agent::{self, MintRequest, Minted, SessionInfo, SessionList, SessionState, StopRequest, API_PATH, API_VERSION};
use crate::kube::status::Status;
use crate::relay::authn::Authenticated;
use crate::relay::RelayState;
use crate::respond::{self, Body};

/// Request bodies larger than this are refused (a CSR and a command line fit easily).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The shortest session minted.
pub const MIN_TTL_SECONDS: u64 = 60;

/// Whether `path` is the agents API.
pub fn is_api_path(path: &str) -> bool {
    path.strip_prefix(API_PATH).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Answer one agents API call; refusals become `Status` responses.
pub async fn handle(state: &RelayState, who: &Authenticated, req: Request<Incoming>) -> Response<Body> {
    match serve(state, who, req).await {
        Ok(r) => r,
        Err(s) => {
            tracing::info!(subject = %who.identity().subject, code = s.code, message = %s.message, "agents API refused");
            respond::status(&s)
        }
    }
}

async fn serve(state: &RelayState, who: &Authenticated, req: Request<Incoming>) -> Result<Response<Body>, Status> {
    let Some(agents) = state.agents.as_deref() else {
        return Err(Status::failure(404, "NotFound", "agent sessions are not enabled on this relay; the platform team enables them with an `agents:` section in relay.yaml"));
    };
    if let Some(agent) = who.identity().agent() {
        return Err(Status::forbidden(format!("agent {agent:?} cannot use the agents API: only the engineer who launched it can mint, list, revoke or stop agent sessions")).with_code("AgentNotAllowed"));
    }
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix(API_PATH).unwrap_or_default().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let id = rest.strip_prefix('/').filter(|id| !id.is_empty() && !id.contains('/'));
    match (req.method().clone(), rest.as_str(), id) {
        (Method::POST, "", _) => {
            let body: MintRequest = read_json(req).await?;
            Ok(json(&mint(state, agents, who, body).await?))
        }
        (Method::GET, "", _) => {
            let all = query_flag(&query, "all");
            if all && !agents.is_admin(&who.identity().groups) {
                return Err(not_admin(who, "list every engineer's agent sessions"));
            }
            let agent = query_value(&query, "agent");
            let subject = if all { None } else { Some(who.identity().subject.clone()) };
            let items = agents.registry.list(&Filter { subject, agent });
            Ok(json(&SessionList { api_version: API_VERSION.into(), kind: "AgentSessionList".into(), items }))
        }
        (Method::POST, "/stop", _) => {
            let body: StopRequest = read_json(req).await?;
            let items = stop(agents, who, body).await?;
            Ok(json(&SessionList { api_version: API_VERSION.into(), kind: "AgentSessionList".into(), items }))
        }
        (Method::GET, _, Some(id)) => Ok(json(&visible(agents, who, id)?)),
        (Method::DELETE, _, Some(id)) => {
            visible(agents, who, id)?;
            Ok(json(&end(agents, id, SessionState::Revoked, &who.identity().username).await?))
        }
        (m, _, _) => Err(Status::failure(
            405,
            "MethodNotAllowed",
            format!("{m} {} is not part of the agents API ({API_PATH}: POST, GET; {API_PATH}/ID: GET, DELETE; {API_PATH}/stop: POST)", crate::text::clip(&path, 200)),
        )),
    }
}

/// Mint a session for the calling engineer.
async fn mint(state: &RelayState, agents: &Agents, who: &Authenticated, req: MintRequest) -> Result<Minted, Status> {
    agent::check_name(&req.agent).map_err(|e| Status::bad_request(format!("{e}; choose another --agent name")))?;
    if req.ttl_seconds < MIN_TTL_SECONDS {
        return Err(Status::bad_request(format!("ttlSeconds {} is too short; ask for at least {MIN_TTL_SECONDS}", req.ttl_seconds)));
    }
    let Some(enrollment) = &state.enrollment else {
        return Err(Status::failure(404, "NotFound", "agent sessions need the relay's client CA key (enrollment.ca_key in relay.yaml) to issue agent certificates"));
    };
    let csr = crate::pki::ClientCsr::from_pem(&req.csr).map_err(|e| Status::bad_request(format!("{e}; send the CSR `hoop-kube run` makes")))?;
    let id = who.identity();
    let now = chrono::Utc::now();
    let wanted = now.timestamp().saturating_add(i64::try_from(req.ttl_seconds).unwrap_or(i64::MAX));
    let cap = now.timestamp().saturating_add(i64::try_from(agents.max_ttl.as_secs()).unwrap_or(i64::MAX));
    // Never beyond the engineer's own credential: the client certificate this call came with.
    let not_after = wanted.min(cap).min(who.cert().not_after);
    if not_after - now.timestamp() < MIN_TTL_SECONDS as i64 {
        return Err(Status::bad_request(format!(
            "your client certificate expires in {} s, and an agent session never outlives it; run `hoop-kube login` to renew it, then try again",
            (who.cert().not_after - now.timestamp()).max(0)
        )));
    }
    let session = crate::record::id::new_id(now.timestamp_micros());
    let actor = crate::pki::Actor { agent: req.agent.clone(), session: session.clone() };
    let issued = enrollment
        .ca
        .sign_agent_csr(&csr, &id.subject, &id.username, &actor, not_after)
        .map_err(|e| Status::internal(format!("cannot issue the agent certificate: {e}")))?;
    let not_after_at = chrono::DateTime::<chrono::Utc>::from_timestamp(not_after, 0).ok_or_else(|| Status::internal("the session's expiry is out of range"))?;
    let new = NewSession {
        id: session.clone(),
        agent: req.agent.clone(),
        subject: id.subject.clone(),
        username: id.username.clone(),
        groups: id.groups.clone(),
        created_at: now,
        not_after: not_after_at,
        cert_serial: issued.serial.clone(),
        command: req.command.as_deref().map(|c| crate::text::clip(c, 256)),
    };
    let info = blocking(agents, move |r| r.create(new)).await?;
    let claims = crate::agent::token::Claims {
        subject: id.subject.clone(),
        agent: req.agent.clone(),
        session: session.clone(),
        issued_at: now.timestamp(),
        not_before: now.timestamp(),
        expires_at: not_after,
    };
    let token = agents.key.mint(&claims).map_err(|e| Status::internal(format!("cannot sign the agent token: {e}")))?;
    tracing::info!(subject = %id.subject, agent = %req.agent, session = %session, not_after = %info.not_after, serial = %issued.serial, "agent session minted");
    Ok(Minted { api_version: API_VERSION.into(), kind: "AgentCredential".into(), session: info, certificate: issued.cert_pem, token })
}

/// Registry writes are small synchronous SQLite transactions; they run off the async threads.
async fn blocking<T: Send + 'static>(agents: &Agents, f: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static) -> Result<T, Status> {
    let registry = agents.registry.clone();
    tokio::task::spawn_blocking(move || f(&registry))
        .await
        .map_err(|e| Status::internal(format!("the agent registry task failed: {e}")))?
        .map_err(|e| match e {
            RegistryError::NotFound(id) => not_found(&id),
            other => Status::unavailable(format!("the agent registry is unavailable: {other}; retry shortly")),
        })
}

async fn end(agents: &Agents, id: &str, state: SessionState, by: &str) -> Result<SessionInfo, Status> {
    let (id, by) = (id.to_string(), by.to_string());
    let info = blocking(agents, move |r| r.end(&id, state, &by)).await?;
    tracing::info!(session = %info.id, agent = %info.agent, subject = %info.subject, state = info.state.as_str(), by = ?info.ended_by, "agent session ended");
    Ok(info)
}

/// Stop every active session of one agent: the caller's own, or (admins) everyone's or one
/// engineer's.
async fn stop(agents: &Agents, who: &Authenticated, req: StopRequest) -> Result<Vec<SessionInfo>, Status> {
    agent::check_name(&req.agent).map_err(|e| Status::bad_request(e.to_string()))?;
    let id = who.identity();
    let admin = agents.is_admin(&id.groups);
    let subject = match req.subject {
        Some(s) if s != id.subject && !admin => return Err(not_admin(who, "stop another engineer's agents")),
        Some(s) => Some(s),
        None if admin => None,
        None => Some(id.subject.clone()),
    };
    stop_sessions(agents, subject, &req.agent, &id.username).await
}

/// Stop every active session of `agent` (of one engineer, or of everyone): new requests get a
/// 401 and open streams are cut. Also the reviews API's kill switch (`stopAgent` on a deny).
pub async fn stop_sessions(agents: &Agents, subject: Option<String>, agent: &str, by: &str) -> Result<Vec<SessionInfo>, Status> {
    let targets: Vec<SessionInfo> = agents.registry.list(&Filter { subject, agent: Some(agent.to_string()) }).into_iter().filter(|s| s.state == SessionState::Active).collect();
    let mut stopped = Vec::new();
    for s in targets {
        stopped.push(end(agents, &s.id, SessionState::Stopped, by).await?);
    }
    Ok(stopped)
}

/// The session, if the caller may see it (owner or admin); a 404 otherwise, so ids of other
/// engineers' sessions cannot be probed.
fn visible(agents: &Agents, who: &Authenticated, id: &str) -> Result<SessionInfo, Status> {
    match agents.registry.get(id).map(|l| l.info()) {
        Some(i) if i.subject == who.identity().subject || agents.is_admin(&who.identity().groups) => Ok(i),
        _ => Err(not_found(id)),
    }
}

fn not_found(id: &str) -> Status {
    Status::failure(404, "NotFound", format!("agent session {:?} not found (`hoop-kube agents list` shows yours)", crate::text::clip(id, 64)))
}

fn not_admin(who: &Authenticated, what: &str) -> Status {
    Status::forbidden(format!("User {:?} cannot {what}: that needs a group listed in the relay's agents.admins", who.identity().username))
}

fn json<T: serde::Serialize>(v: &T) -> Response<Body> {
    match serde_json::to_value(v) {
        Ok(v) => respond::json(200, &v),
        Err(e) => respond::status(&Status::internal(e.to_string())),
    }
}

fn query_flag(query: &str, name: &str) -> bool {
    query.split('&').any(|p| p == name || p == format!("{name}=true") || p == format!("{name}=1"))
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|p| p.strip_prefix(name).and_then(|r| r.strip_prefix('='))).and_then(crate::kube::path_unescape)
}

/// Read a JSON body: `application/json`, at most [`MAX_BODY_BYTES`], one object, no unknown
/// or duplicate fields.
async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Status> {
    let ct = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json") {
        return Err(Status::failure(415, "UnsupportedMediaType", format!("the agents API takes application/json (got {:?})", crate::text::clip(ct, 100))));
    }
    let bytes: Bytes = match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(Status::too_large(MAX_BODY_BYTES)),
        Err(e) => return Err(Status::bad_request(format!("cannot read the request body: {e}"))),
    };
    parse_json(&bytes)
}

/// Strictly parse one JSON object into `T` (serde refuses duplicate and unknown fields).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Status::bad_request("invalid agents API request: the body is not a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| Status::bad_request(format!("invalid agents API request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_requests_are_strict() {
        let ok: MintRequest = parse_json(br#"{"agent": "bot", "ttlSeconds": 600, "csr": "PEM"}"#).unwrap();
        assert_eq!((ok.agent.as_str(), ok.ttl_seconds, ok.command), ("bot", 600, None));
        for bad in [
            &br#"{"agent": "bot", "agent": "root", "ttlSeconds": 600, "csr": "PEM"}"#[..],
            br#"{"agent": "bot", "ttlSeconds": 600, "csr": "PEM", "subject": "admin"}"#,
            br#"{"agent": "bot", "ttlSeconds": -1, "csr": "PEM"}"#,
            br#"{"agent": "bot", "ttlSeconds": "600", "csr": "PEM"}"#,
            br#"{"agent": "bot", "ttlSeconds": 1e3, "csr": "PEM"}"#,
            br#"{"agent": "bot", "csr": "PEM"}"#,
            br#"["bot"]"#,
            br#"{"agent": "bot", "ttlSeconds": 600, "csr": "PEM"} {}"#,
            b"",
            b"{\"agent\": \"bot\"",
        ] {
            let e = parse_json::<MintRequest>(bad).unwrap_err();
            assert_eq!(e.code, 400, "{}", String::from_utf8_lossy(bad));
            assert!(!e.message.contains('\n'));
        }
        let stop: StopRequest = parse_json(br#"{"agent": "bot"}"#).unwrap();
        assert_eq!((stop.agent.as_str(), stop.subject), ("bot", None));
        assert_eq!(parse_json::<StopRequest>(br#"{"agent": "bot", "all": true}"#).unwrap_err().code, 400);
    }

    #[test]
    fn queries_and_paths_are_read_exactly() {
        assert!(query_flag("all=true", "all") && query_flag("x=1&all", "all") && !query_flag("all=false", "all") && !query_flag("tall=1", "all"));
        assert_eq!(query_value("agent=bot&all=1", "agent").as_deref(), Some("bot"));
        assert_eq!(query_value("agents=bot", "agent"), None);
        assert!(is_api_path("/hoop-kube/v1/agents") && is_api_path("/hoop-kube/v1/agents/x") && !is_api_path("/hoop-kube/v1/agentsx"));
    }
}
