//! The review webhook: a JSON POST when a review opens and when it closes (approved, denied,
//! expired), `{"text": "<one line>", "review": {…}}` — Slack-incoming-webhook compatible, and
//! generic enough for anything else.
//!
//! Fire and forget: each call runs in its own task with a 5 s timeout, and a failure is logged
//! (`warn`), never retried and never allowed to block or fail the request being reviewed. The
//! URL was validated with the config (`https://`, or `http://` to loopback).

use std::time::Duration;

use super::store::{Review, State};

/// How long one call may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Where review events go.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: String,
    http: reqwest::Client,
}

/// What happened to a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Opened,
    Closed,
}

impl Webhook {
    /// A webhook for `url`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(url: &str) -> Result<Webhook, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hoop-kube/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Webhook { url: url.to_string(), http })
    }

    /// Post the event in the background.
    pub fn send(&self, event: Event, review: &Review) {
        let body = serde_json::json!({ "text": text(event, review), "review": review });
        let (http, url, id) = (self.http.clone(), self.url.clone(), review.id.clone());
        tokio::spawn(async move {
            match http.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => tracing::debug!(review = %id, "webhook sent"),
                Ok(r) => tracing::warn!(review = %id, code = r.status().as_u16(), "the review webhook answered with an error"),
                Err(e) => tracing::warn!(review = %id, error = %e, "the review webhook could not be called"),
            }
        });
    }
}

/// The one readable line.
#[must_use]
pub fn text(event: Event, r: &Review) -> String {
    let who = match &r.agent {
        Some(a) => format!("{} (agent {a})", r.username),
        None => r.username.clone(),
    };
    match (event, r.state) {
        (Event::Opened, _) => format!(
            "hoop-kube review {}: {who} asks to {} (rule {}); reviewers: {}; approve with `hoop-kube reviews approve {}`",
            r.id,
            r.summary,
            r.rule,
            r.reviewers.join(", "),
            r.id
        ),
        (Event::Closed, State::Approved) => format!("hoop-kube review {}: {} by {who} was approved by {}", r.id, r.summary, r.decided_by.as_deref().unwrap_or("?")),
        (Event::Closed, State::Denied) => {
            format!("hoop-kube review {}: {} by {who} was denied by {}: {}", r.id, r.summary, r.decided_by.as_deref().unwrap_or("?"), r.reason.as_deref().unwrap_or(""))
        }
        (Event::Closed, _) => format!("hoop-kube review {}: {} by {who} expired ({})", r.id, r.summary, r.state.as_str()),
    }
}
