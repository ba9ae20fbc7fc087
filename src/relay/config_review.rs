//! `review:` in relay.yaml — how requests the policy sends to review are held and approved.
//!
//! ```yaml
//! review:
//!   hold_seconds: 30        # 1..=120, default 30: how long a request waits for a decision
//!   ttl_seconds: 600        # 60..=86400, default 600: how long an approval stays usable
//!   store: relay.sqlite     # default relay.sqlite beside this file (SQLite, created if missing)
//!   webhook: https://hooks.example.com/x   # optional; http:// only to loopback
//! ```
//!
//! Every key is optional, and so is the section: a policy with `review` rules gets the defaults.
//! Unknown keys, out-of-range numbers and a webhook that is not `https://` (or `http://` to
//! loopback) are refused with their key path. The store file is not required to exist (the
//! relay creates it), only its directory.

use std::path::PathBuf;

use serde::Deserialize;

use super::{is_loopback, parse_url, ConfigError, Cx};

/// The default `hold_seconds`.
pub const DEFAULT_HOLD_SECONDS: u32 = 30;
/// The longest `hold_seconds`.
pub const MAX_HOLD_SECONDS: u32 = 120;
/// The default `ttl_seconds`.
pub const DEFAULT_TTL_SECONDS: u32 = 600;
/// The allowed `ttl_seconds`.
pub const TTL_RANGE: (u32, u32) = (60, 86_400);
/// The default store file name, beside the config file.
pub const DEFAULT_STORE: &str = "relay.sqlite";

/// `review:` — validated, the store path absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewConfig {
    /// `hold_seconds`: how long a request waits for a decision before it is answered 403.
    pub hold_seconds: u32,
    /// `ttl_seconds`: how long an approval (and an undecided review) stays usable.
    pub ttl_seconds: u32,
    /// `store`: the SQLite file of reviews and approvals.
    pub store: PathBuf,
    /// `webhook`: called when a review opens and closes.
    pub webhook: Option<String>,
}

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReview {
    hold_seconds: Option<u32>,
    ttl_seconds: Option<u32>,
    store: Option<PathBuf>,
    webhook: Option<String>,
}

impl Cx<'_> {
    pub(super) fn review(&self, raw: RawReview) -> Result<ReviewConfig, ConfigError> {
        let hold = raw.hold_seconds.unwrap_or(DEFAULT_HOLD_SECONDS);
        if !(1..=MAX_HOLD_SECONDS).contains(&hold) {
            return Err(self.invalid("review.hold_seconds", format!("{hold} is out of range; allowed 1–{MAX_HOLD_SECONDS} (seconds)")));
        }
        let ttl = raw.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !(TTL_RANGE.0..=TTL_RANGE.1).contains(&ttl) {
            return Err(self.invalid("review.ttl_seconds", format!("{ttl} is out of range; allowed {}–{} (seconds)", TTL_RANGE.0, TTL_RANGE.1)));
        }
        let store = raw.store.unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
        if store.as_os_str().is_empty() {
            return Err(self.invalid("review.store", "is empty; name a file"));
        }
        let store = self.base.join(store);
        if store.is_dir() {
            return Err(self.invalid("review.store", format!("{} is a directory; name a file", store.display())));
        }
        if let Some(parent) = store.parent() {
            if !parent.is_dir() {
                return Err(self.invalid("review.store", format!("the directory {} does not exist", parent.display())));
            }
        }
        let webhook = match raw.webhook {
            None => None,
            Some(w) => {
                let url = parse_url(self.file, "review.webhook", &w)?;
                if url.scheme() == "http" && !is_loopback(&url) {
                    return Err(self.invalid("review.webhook", format!("{w:?}: http is only allowed on 127.0.0.1, ::1 or localhost; use https")));
                }
                Some(w)
            }
        };
        Ok(ReviewConfig { hold_seconds: hold, ttl_seconds: ttl, store, webhook })
    }

    /// The defaults, for a config with `review` rules and no `review:` section.
    pub(super) fn review_defaults(&self) -> Result<ReviewConfig, ConfigError> {
        self.review(RawReview::default())
    }
}
