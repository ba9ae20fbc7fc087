//! The relay's review stage: a request the policy decided `review` for either spends an approval
//! made for exactly it, or waits for one.
//!
//! Order: compute nothing here — the relay hands in the [`NewReview`] with its fingerprint — then
//! (1) an approved, unspent, unexpired review with the same fingerprint is spent and the request
//! proceeds; (2) otherwise the pending review with that fingerprint is reused or a new one
//! opened (webhook "opened"), and the request waits up to `hold_seconds`: woken at once when this
//! relay's API decides it, and polling the store every second so decisions made through another
//! relay sharing the store are seen too. Approved in time → spent, proceed. Denied → 403 naming
//! the reviewer and the reason. Still pending → 403 naming the review, who may approve, the
//! command, and `retryAfterSeconds`.
//!
//! The only way to get an [`Approval`] is [`Reviews::hold`], so the relay cannot forward a
//! reviewed request without one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::store::{self, Claim, NewReview, Review, State, Store, StoreError};
use super::webhook::{Event, Webhook};
use crate::kube::status::{Status, StatusCause, StatusDetails};
use crate::relay::config::ReviewConfig;

/// The `details.causes[].reason` that names the review in a refusal (field `review`).
pub const CAUSE_REASON: &str = "HoopKubeReview";

/// How often a held request re-reads the store.
const POLL: Duration = Duration::from_secs(1);

/// Proof that an approval was spent for this request.
#[derive(Debug)]
pub struct Approval {
    review: String,
}

impl Approval {
    /// The review whose approval was spent.
    #[must_use]
    pub fn review(&self) -> &str {
        &self.review
    }
}

/// Reviews on the relay: the store, the settings, the waiters, the webhook.
pub struct Reviews {
    store: Store,
    hold: Duration,
    ttl: i64,
    webhook: Option<Webhook>,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

impl std::fmt::Debug for Reviews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reviews").field("store", &self.store).field("hold", &self.hold).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// Why reviews could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("review.webhook: {0}")]
    Webhook(#[from] reqwest::Error),
}

impl Reviews {
    /// Open the store (creating it) and set up the webhook.
    ///
    /// # Errors
    /// The store cannot be opened or the webhook client built.
    pub async fn open(cfg: &ReviewConfig) -> Result<Reviews, SetupError> {
        let path = cfg.store.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&path)).await.map_err(|e| StoreError::Task(e.to_string()))??;
        let webhook = cfg.webhook.as_deref().map(Webhook::new).transpose()?;
        Ok(Reviews { store, hold: Duration::from_secs(u64::from(cfg.hold_seconds)), ttl: i64::from(cfg.ttl_seconds), webhook, waiters: Mutex::default() })
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How long an approval stays usable, in seconds.
    #[must_use]
    pub fn ttl_seconds(&self) -> i64 {
        self.ttl
    }

    /// Tell the webhook (if any).
    pub fn notify_webhook(&self, event: Event, review: &Review) {
        if let Some(w) = &self.webhook {
            w.send(event, review);
        }
    }

    /// Wake the requests held on `id` (after a decision through this relay).
    pub fn wake(&self, id: &str) {
        let waiter = self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        if let Some(n) = waiter {
            n.notify_waiters();
        }
    }

    fn waiter(&self, id: &str) -> Arc<Notify> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).entry(id.to_string()).or_default().clone()
    }

    /// The review stage for one request (see the module documentation).
    ///
    /// # Errors
    /// The 403 `Status` the client gets (denied, still pending, approval used elsewhere), or a
    /// 503 when the store fails (fail closed).
    pub async fn hold(&self, new: NewReview) -> Result<Approval, Status> {
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "review store");
            Status::unavailable(format!("hoop-kube review: the review store is unavailable ({e}); the request was not forwarded"))
        };
        let (review, created) = match self.store.claim(new, store::now(), self.ttl).await.map_err(unavailable)? {
            Claim::Spent(r) => {
                tracing::info!(review = %r.id, subject = %r.subject, "approval spent");
                return Ok(Approval { review: r.id });
            }
            Claim::Pending(r, created) => (r, created),
        };
        if created {
            tracing::info!(review = %review.id, subject = %review.subject, summary = %review.summary, "review opened");
            self.notify_webhook(Event::Opened, &review);
        }
        let deadline = tokio::time::Instant::now() + self.hold;
        loop {
            let notify = self.waiter(&review.id);
            let woken = notify.notified();
            let now = store::now();
            let current = self.store.get(&review.id, now).await.map_err(unavailable)?.unwrap_or_else(|| review.clone());
            match current.state {
                State::Approved => {
                    if self.store.spend(&current.id, now).await.map_err(unavailable)? {
                        tracing::info!(review = %current.id, "approved while held; spent");
                        return Ok(Approval { review: current.id });
                    }
                    continue;
                }
                State::Pending => {}
                _ => return Err(closed_status(&current)),
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(waiting_status(&current, self.hold.as_secs()));
            }
            let _ = tokio::time::timeout(left.min(POLL), woken).await;
        }
    }
}

fn details(r: &Review, retry: Option<u32>) -> StatusDetails {
    StatusDetails {
        name: r.id.clone(),
        kind: "reviews".into(),
        group: "hoop-kube".into(),
        causes: vec![
            StatusCause { reason: CAUSE_REASON.into(), message: r.id.clone(), field: "review".into() },
            StatusCause { reason: crate::policy::denial::CAUSE_REASON.into(), message: r.rule.clone(), field: "rule".into() },
        ],
        retry_after_seconds: retry,
        ..StatusDetails::default()
    }
}

/// The 403 for a request still waiting at the end of its hold.
#[must_use]
pub fn waiting_status(r: &Review, retry_after: u64) -> Status {
    let message = format!(
        "hoop-kube review {id}: {what} needs approval by a member of {groups} (rule {rule:?}) and is still waiting; a reviewer can run `hoop-kube reviews approve {id}` within {left}, then run the same command again (an approval lets it through once)",
        id = r.id,
        what = r.summary,
        groups = r.reviewers.join(", "),
        rule = r.rule,
        left = until(r),
    );
    Status::forbidden(message).with_details(details(r, Some(u32::try_from(retry_after).unwrap_or(30)))).with_code("ReviewPending")
}

/// The 403 for a review that was denied, spent by another request, or expired.
#[must_use]
pub fn closed_status(r: &Review) -> Status {
    let message = match r.state {
        State::Denied => format!(
            "hoop-kube review {}: {} was denied by {}: {}",
            r.id,
            r.summary,
            r.decided_by.as_deref().unwrap_or("a reviewer"),
            r.reason.as_deref().unwrap_or("no reason given")
        ),
        State::Spent => format!("hoop-kube review {}: its approval of {} was used by another identical request; run the command again to open a new review", r.id, r.summary),
        _ => format!("hoop-kube review {}: {} expired before it was decided; run the command again to open a new review", r.id, r.summary),
    };
    let code = match r.state {
        State::Denied => "ReviewDenied",
        State::Spent => "ReviewSpent",
        _ => "ReviewExpired",
    };
    Status::forbidden(message).with_details(details(r, None)).with_code(code)
}

fn until(r: &Review) -> String {
    let left = (r.expires_at - store::now()).max(0);
    if left >= 120 {
        format!("{} minutes (until {})", left / 60, store::rfc3339(r.expires_at))
    } else {
        format!("{left} seconds")
    }
}

/// Every few seconds, record reviews past their `expires_at` as expired and tell the webhook;
/// ends when the relay stops or its state is dropped.
pub async fn sweep(reviews: std::sync::Weak<Reviews>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(reviews) = reviews.upgrade() else { return };
        match reviews.store.sweep(store::now()).await {
            Ok(expired) => {
                for r in expired {
                    tracing::info!(review = %r.id, "review expired");
                    reviews.wake(&r.id);
                    reviews.notify_webhook(Event::Closed, &r);
                }
            }
            Err(e) => tracing::warn!(error = %e, "review store sweep"),
        }
    }
}
