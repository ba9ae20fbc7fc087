//! `/hoop-kube/v1/reviews` on the relay: list, show, approve and deny reviews.
//!
//! ```text
//! GET  /hoop-kube/v1/reviews[?all=true]     pending reviews (all with all=true) the caller may see
//! GET  /hoop-kube/v1/reviews/{id}           one review
//! POST /hoop-kube/v1/reviews/{id}/approve   optional body {"reason": "..."}
//! POST /hoop-kube/v1/reviews/{id}/deny      body {"reason": "..."}, reason required
//! ```
//!
//! Served after authentication (the same client certificate and bearer token as every request)
//! and the header checks, before request-info parsing. Answers are JSON; errors are Kubernetes
//! `Status` objects. Who may do what is decided by pure functions ([`may_see`], [`may_decide`]):
//! a caller sees the reviews they requested or may decide; only members of one of the review's
//! reviewer groups may decide it, never the requester unless the rule allows self-approval;
//! deciding a review that is no longer pending is a 409.

use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::hold::Reviews;
use super::store::{self, is_id, Decided, Review};
use super::webhook::Event;
use crate::kube::status::Status;
use crate::relay::authn::Authenticated;
use crate::respond::{self, Body};

/// The API's path prefix.
pub const PREFIX: &str = "/hoop-kube/v1/reviews";

/// The largest request body (a reason).
const MAX_BODY: usize = 64 * 1024;

/// Whether `path` belongs to this API.
#[must_use]
pub fn is_api_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/hoop-kube/v1/reviews/")
}

/// The caller, as far as these rules care.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub subject: &'a str,
    pub username: &'a str,
    pub groups: &'a [String],
}

/// Whether `c` is in one of the review's reviewer groups.
#[must_use]
pub fn is_reviewer(r: &Review, c: &Caller<'_>) -> bool {
    r.reviewers.iter().any(|g| c.groups.contains(g))
}

/// Whether `c` may see `r`: they requested it or may decide it.
#[must_use]
pub fn may_see(r: &Review, c: &Caller<'_>) -> bool {
    r.subject == c.subject || is_reviewer(r, c)
}

/// Whether `c` may approve or deny `r`; the 403 otherwise.
///
/// # Errors
/// The requester without self-approval, or someone outside the reviewer groups.
pub fn may_decide(r: &Review, c: &Caller<'_>) -> Result<(), Status> {
    if r.subject == c.subject && !r.allow_self_approval {
        return Err(Status::forbidden(format!("hoop-kube review {}: self-approval is not allowed by rule {:?}; ask a member of {} to decide it", r.id, r.rule, r.reviewers.join(", "))));
    }
    if !is_reviewer(r, c) {
        return Err(Status::forbidden(format!("hoop-kube review {}: {} is not in a reviewer group of rule {:?} ({})", r.id, c.username, r.rule, r.reviewers.join(", "))));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    #[serde(default)]
    reason: Option<String>,
    /// On a deny of an agent's request: also stop every active session of that agent for that
    /// engineer (the reviewer's kill switch; see [`crate::relay::agents`]).
    #[serde(default, rename = "stopAgent")]
    stop_agent: bool,
}

/// Serve one API request.
pub async fn handle(reviews: Option<&Reviews>, agents: Option<&crate::relay::agents::Agents>, who: &Authenticated, req: Request<Incoming>) -> Response<Body> {
    match serve(reviews, agents, who, req).await {
        Ok(r) => r,
        Err(s) => {
            tracing::info!(subject = %who.identity().subject, code = s.code, message = %s.message, "reviews API refused");
            respond::status(&s)
        }
    }
}

async fn serve(reviews: Option<&Reviews>, agents: Option<&crate::relay::agents::Agents>, who: &Authenticated, req: Request<Incoming>) -> Result<Response<Body>, Status> {
    let id = who.identity();
    // An agent acts for its engineer but never decides: only a human approves or denies.
    if let Some(agent) = id.agent().filter(|_| req.method() != Method::GET) {
        return Err(Status::forbidden(format!("agent {agent:?} cannot approve or deny reviews: a human reviewer decides (the agent may read a review's state)")).with_code("AgentNotAllowed"));
    }
    let Some(reviews) = reviews else {
        return Err(Status::failure(404, "NotFound", "this relay has no reviews: its policy has no review rules and relay.yaml has no review section"));
    };
    let caller = Caller { subject: &id.subject, username: &id.username, groups: &id.groups };
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    let now = store::now();
    let store_err = |e: store::StoreError| Status::unavailable(format!("the review store is unavailable: {e}"));
    match (req.method(), segments.as_slice()) {
        (&Method::GET, []) => {
            let all = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "all=true" || p == "all=1"));
            let items: Vec<Review> = reviews.store().list(all, now).await.map_err(store_err)?.into_iter().filter(|r| may_see(r, &caller)).collect();
            Ok(respond::json(200, &serde_json::json!({ "kind": "ReviewList", "apiVersion": "hoop-kube/v1", "items": items })))
        }
        (&Method::GET, [rid]) => {
            let r = find(reviews, rid, Some(&caller), now).await?;
            Ok(respond::json(200, &serde_json::to_value(&r).unwrap_or_default()))
        }
        (&Method::POST, [rid, action @ ("approve" | "deny")]) => {
            let approve = *action == "approve";
            // Not filtered by visibility: someone outside the reviewer groups gets the 403 that
            // says so (an id is 50 random bits, so this tells a guesser nothing useful).
            let r = find(reviews, rid, None, now).await?;
            may_decide(&r, &caller)?;
            let body = read_body(req).await?;
            let reason = body.reason.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            if !approve && reason.is_none() {
                return Err(Status::bad_request(format!("hoop-kube review {}: a deny needs a reason (--reason TEXT)", r.id)));
            }
            if reason.as_ref().is_some_and(|s| s.len() > 1000 || s.contains(['\n', '\r'])) {
                return Err(Status::bad_request("the reason must be one line of at most 1000 bytes"));
            }
            // Checked before anything is decided, so a refused stop decides nothing either.
            let stop = match (body.stop_agent, approve, &r.agent, agents) {
                (false, _, _, _) => None,
                (true, true, _, _) => return Err(Status::bad_request("stopAgent goes with a deny, not an approval")),
                (true, false, None, _) => return Err(Status::bad_request(format!("hoop-kube review {}: the request was not made by an agent; there is no agent to stop", r.id))),
                (true, false, Some(_), None) => return Err(Status::failure(404, "NotFound", "agent sessions are not enabled on this relay")),
                (true, false, Some(agent), Some(agents)) => Some((agents, agent.clone())),
            };
            match reviews.store().decide(&r.id, approve, &id.username, reason, now, reviews.ttl_seconds()).await.map_err(store_err)? {
                Decided::Done(d) => {
                    tracing::info!(review = %d.id, by = %id.username, state = d.state.as_str(), "review decided");
                    reviews.wake(&d.id);
                    reviews.notify_webhook(Event::Closed, &d);
                    let mut answer = serde_json::to_value(&d).unwrap_or_default();
                    if let Some((agents, agent)) = stop {
                        let stopped = crate::relay::agents::api::stop_sessions(agents, Some(d.subject.clone()), &agent, &id.username).await?;
                        answer["stoppedAgentSessions"] = serde_json::to_value(&stopped).unwrap_or_default();
                    }
                    Ok(respond::json(200, &answer))
                }
                Decided::NotPending(d) => {
                    let by = d.decided_by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
                    Err(Status::failure(409, "Conflict", format!("hoop-kube review {}: already {}{by}; it cannot be decided again", d.id, d.state.as_str())))
                }
                Decided::NotFound => Err(not_found(&r.id)),
            }
        }
        (m, _) if *m != Method::GET && *m != Method::POST => Err(Status::method_not_allowed(m.as_str())),
        _ => Err(Status::no_route()),
    }
}

fn not_found(id: &str) -> Status {
    Status::failure(404, "NotFound", format!("hoop-kube review {id:?} not found (or not yours to see)"))
}

/// The review `id`; with `caller`, only if they may see it.
async fn find(reviews: &Reviews, id: &str, caller: Option<&Caller<'_>>, now: i64) -> Result<Review, Status> {
    if !is_id(id) {
        return Err(Status::bad_request(format!("{id:?} is not a review id (r- and 10 characters, as `hoop-kube reviews list` shows)")));
    }
    let r = reviews.store().get(id, now).await.map_err(|e| Status::unavailable(format!("the review store is unavailable: {e}")))?;
    r.filter(|r| caller.is_none_or(|c| may_see(r, c))).ok_or_else(|| not_found(id))
}

async fn read_body(req: Request<Incoming>) -> Result<DecisionBody, Status> {
    let bytes = Limited::new(req.into_body(), MAX_BODY).collect().await.map_err(|_| Status::too_large(MAX_BODY))?.to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| Status::bad_request(format!("the body must be JSON {{\"reason\": \"...\"}}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::store::State;

    fn review(allow_self: bool) -> Review {
        Review {
            id: "r-abcdefghij".into(),
            created_at: 0,
            subject: "alice".into(),
            username: "alice".into(),
            agent: None,
            verb: "delete".into(),
            method: "DELETE".into(),
            path: "/api/v1/namespaces/prod/pods/web".into(),
            query: None,
            body_sha256: String::new(),
            summary: "delete pods \"web\" in namespace \"prod\"".into(),
            rule: "prod-deletes".into(),
            reviewers: vec!["sre".into(), "oncall".into()],
            allow_self_approval: allow_self,
            state: State::Pending,
            decided_by: None,
            reason: None,
            decided_at: None,
            expires_at: 600,
        }
    }

    #[test]
    fn reviewers_decide_requesters_only_when_allowed() {
        let sre = vec!["sre".to_string()];
        let dev = vec!["dev".to_string()];
        let both = vec!["dev".to_string(), "oncall".to_string()];
        let sam = Caller { subject: "sam", username: "sam", groups: &sre };
        let bob = Caller { subject: "bob", username: "bob", groups: &dev };
        let alice_reviewer = Caller { subject: "alice", username: "alice", groups: &both };
        let alice = Caller { subject: "alice", username: "alice", groups: &dev };

        let r = review(false);
        assert!(may_decide(&r, &sam).is_ok());
        let e = may_decide(&r, &bob).unwrap_err();
        assert_eq!(e.code, 403);
        assert!(e.message.contains("not in a reviewer group") && e.message.contains("sre, oncall"), "{}", e.message);
        let e = may_decide(&r, &alice_reviewer).unwrap_err();
        assert!(e.message.contains("self-approval is not allowed by rule \"prod-deletes\""), "{}", e.message);
        assert!(may_decide(&r, &alice).unwrap_err().message.contains("self-approval"));

        let r = review(true);
        assert!(may_decide(&r, &alice_reviewer).is_ok(), "self-approval allowed, and a reviewer");
        assert!(may_decide(&r, &alice).is_err(), "self-approval allowed, but not a reviewer");
    }

    #[test]
    fn callers_see_their_own_and_what_they_may_decide() {
        let sre = vec!["sre".to_string()];
        let dev = vec!["dev".to_string()];
        let r = review(false);
        assert!(may_see(&r, &Caller { subject: "alice", username: "alice", groups: &dev }));
        assert!(may_see(&r, &Caller { subject: "sam", username: "sam", groups: &sre }));
        assert!(!may_see(&r, &Caller { subject: "bob", username: "bob", groups: &dev }));
    }

    #[test]
    fn api_paths() {
        assert!(is_api_path("/hoop-kube/v1/reviews") && is_api_path("/hoop-kube/v1/reviews/r-abc/approve"));
        assert!(!is_api_path("/hoop-kube/v1/reviewsx") && !is_api_path("/api/v1/reviews"));
    }
}
