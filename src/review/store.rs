//! Reviews and approvals in SQLite: one file (WAL), created at open, shared safely by several
//! relay processes.
//!
//! Why it is built this way: every state change is one conditional `UPDATE` (`… WHERE state =
//! 'approved' AND expires_at > now`), so an approval is spent at most once even when two relays
//! or two held requests race for it, and a review is decided at most once. Opening a review
//! (spend an approval, else reuse the pending review, else insert) runs in one `IMMEDIATE`
//! transaction. All access is through prepared statements; the async methods run the SQLite work
//! on the blocking pool, never on the async workers.
//!
//! Expiry: an undecided review and an approval both carry `expires_at` (creation plus ttl,
//! decision plus ttl). Reads report a row past it as [`State::Expired`]; [`Store::sweep`] writes that down (and
//! returns the rows, for the webhook). An expired approval is never spent.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::{Deserialize, Serialize};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused (file unreadable, locked for too long, corrupt).
    #[error("review store {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    /// The blocking task died.
    #[error("review store: {0}")]
    Task(String),
}

/// A review's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for a decision.
    Pending,
    /// Approved, not yet used.
    Approved,
    /// Denied (with a reason).
    Denied,
    /// Approved and used by one request.
    Spent,
    /// Undecided or unused until its `expires_at`.
    Expired,
}

impl State {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Spent => "spent",
            State::Expired => "expired",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "pending" => State::Pending,
            "approved" => State::Approved,
            "denied" => State::Denied,
            "spent" => State::Spent,
            _ => State::Expired,
        }
    }
}

/// What the relay knows about a request when it opens a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReview {
    /// See [`super::fingerprint::fingerprint`].
    pub fingerprint: String,
    pub subject: String,
    pub username: String,
    pub agent: Option<String>,
    /// The policy verb (`delete`, `exec`, …).
    pub verb: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body_sha256: String,
    /// `delete pods "web-1" in namespace "prod"`.
    pub summary: String,
    /// The deciding rule.
    pub rule: String,
    /// Groups whose members may decide.
    pub reviewers: Vec<String>,
    pub allow_self_approval: bool,
}

/// One review, as stored and as the API shows it (timestamps in RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub id: String,
    #[serde(with = "ts")]
    pub created_at: i64,
    pub subject: String,
    pub username: String,
    #[serde(default)]
    pub agent: Option<String>,
    pub verb: String,
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: Option<String>,
    pub body_sha256: String,
    pub summary: String,
    pub rule: String,
    pub reviewers: Vec<String>,
    pub allow_self_approval: bool,
    pub state: State,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, with = "ts_opt")]
    pub decided_at: Option<i64>,
    /// Until when the review can be decided (pending) or the approval used (approved).
    #[serde(with = "ts")]
    pub expires_at: i64,
}

impl Review {
    /// Whether `state` is final (nothing can change it any more).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        !matches!(self.state, State::Pending | State::Approved)
    }
}

/// The outcome of [`Store::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// An approved, unexpired review with the same fingerprint was spent by this call.
    Spent(Review),
    /// The pending review to wait on; `true` when this call opened it.
    Pending(Review, bool),
}

/// The outcome of [`Store::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// Decided by this call.
    Done(Review),
    /// Already decided, spent or expired (as it is now).
    NotPending(Review),
    /// No such review.
    NotFound,
}

/// The store. Cheap to clone (one connection behind a mutex; SQLite serialises writers anyway).
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reviews (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    subject TEXT NOT NULL,
    username TEXT NOT NULL,
    agent TEXT,
    verb TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT,
    body_sha256 TEXT NOT NULL,
    summary TEXT NOT NULL,
    rule TEXT NOT NULL,
    reviewers TEXT NOT NULL,
    allow_self_approval INTEGER NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT,
    reason TEXT,
    decided_at INTEGER,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_by_fingerprint ON reviews (fingerprint, state);
CREATE INDEX IF NOT EXISTS reviews_by_state ON reviews (state, created_at);
";

const COLUMNS: &str = "id, created_at, subject, username, agent, verb, method, path, query, body_sha256, summary, rule, reviewers, allow_self_approval, state, decided_by, reason, decided_at, expires_at";

/// A new review id: `r-` and 10 base32 characters (50 random bits), lower case, no look-alikes
/// beyond what RFC 4648 base32 already avoids.
#[must_use]
pub fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    let tail: String = (0..10).map(|_| ALPHABET[rng.random_range(0..32)] as char).collect();
    format!("r-{tail}")
}

/// Whether `s` has the shape of a review id (checked before any lookup).
#[must_use]
pub fn is_id(s: &str) -> bool {
    s.len() == 12 && s.starts_with("r-") && s[2..].bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
}

fn read_row(r: &Row<'_>, now: i64) -> rusqlite::Result<Review> {
    let reviewers: String = r.get(12)?;
    let mut review = Review {
        id: r.get(0)?,
        created_at: r.get(1)?,
        subject: r.get(2)?,
        username: r.get(3)?,
        agent: r.get(4)?,
        verb: r.get(5)?,
        method: r.get(6)?,
        path: r.get(7)?,
        query: r.get(8)?,
        body_sha256: r.get(9)?,
        summary: r.get(10)?,
        rule: r.get(11)?,
        reviewers: serde_json::from_str(&reviewers).unwrap_or_default(),
        allow_self_approval: r.get::<_, i64>(13)? != 0,
        state: State::parse(&r.get::<_, String>(14)?),
        decided_by: r.get(15)?,
        reason: r.get(16)?,
        decided_at: r.get(17)?,
        expires_at: r.get(18)?,
    };
    if matches!(review.state, State::Pending | State::Approved) && review.expires_at <= now {
        review.state = State::Expired;
    }
    Ok(review)
}

impl Store {
    /// Open (creating if needed) the store file and its schema. Blocking: call it at boot or from
    /// `spawn_blocking`.
    ///
    /// # Errors
    /// The file cannot be opened or the schema cannot be created.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError::Sqlite { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), path: Arc::new(path.to_path_buf()) })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the connection, on the blocking pool.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run_blocking(f)).await.map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Run `f` on the connection, here (blocking).
    fn run_blocking<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| StoreError::Sqlite { path: self.path.display().to_string(), source })
    }

    /// Spend an approved, unexpired review with `new`'s fingerprint; else return the pending
    /// review with it; else open one (pending until `now + ttl`). One transaction.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn claim(&self, new: NewReview, now: i64, ttl: i64) -> Result<Claim, StoreError> {
        self.run(move |c| claim(c, &new, now, ttl)).await
    }

    /// Blocking [`claim`](Self::claim) (tests, tools).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn claim_blocking(&self, new: &NewReview, now: i64, ttl: i64) -> Result<Claim, StoreError> {
        self.run_blocking(|c| claim(c, new, now, ttl))
    }

    /// Spend the approval `id`: true when this call did (approved, unexpired, unspent).
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn spend(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.run(move |c| spend(c, &id, now)).await
    }

    /// Blocking [`spend`](Self::spend).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn spend_blocking(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        self.run_blocking(|c| spend(c, id, now))
    }

    /// One review, as it is at `now`.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn get(&self, id: &str, now: i64) -> Result<Option<Review>, StoreError> {
        let id = id.to_string();
        self.run(move |c| get(c, &id, now)).await
    }

    /// Blocking [`get`](Self::get).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn get_blocking(&self, id: &str, now: i64) -> Result<Option<Review>, StoreError> {
        self.run_blocking(|c| get(c, id, now))
    }

    /// Reviews, newest first: the pending ones, or with `all` every one (at most 500).
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn list(&self, all: bool, now: i64) -> Result<Vec<Review>, StoreError> {
        self.run(move |c| list(c, all, now)).await
    }

    /// Approve (`reason` optional) or deny a pending, unexpired review; an approval is usable
    /// until `now + ttl`.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn decide(&self, id: &str, approve: bool, by: &str, reason: Option<String>, now: i64, ttl: i64) -> Result<Decided, StoreError> {
        let (id, by) = (id.to_string(), by.to_string());
        self.run(move |c| decide(c, &id, approve, &by, reason.as_deref(), now, ttl)).await
    }

    /// Blocking [`decide`](Self::decide).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn decide_blocking(&self, id: &str, approve: bool, by: &str, reason: Option<&str>, now: i64, ttl: i64) -> Result<Decided, StoreError> {
        self.run_blocking(|c| decide(c, id, approve, by, reason, now, ttl))
    }

    /// Mark every pending or approved review past its `expires_at` expired; returns them.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn sweep(&self, now: i64) -> Result<Vec<Review>, StoreError> {
        self.run(move |c| sweep(c, now)).await
    }

    /// Blocking [`sweep`](Self::sweep).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn sweep_blocking(&self, now: i64) -> Result<Vec<Review>, StoreError> {
        self.run_blocking(|c| sweep(c, now))
    }
}

fn claim(c: &mut Connection, new: &NewReview, now: i64, ttl: i64) -> rusqlite::Result<Claim> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let spent = {
        let mut st = tx.prepare_cached(&format!(
            "UPDATE reviews SET state = 'spent' WHERE id = (SELECT id FROM reviews WHERE fingerprint = ?1 AND state = 'approved' AND expires_at > ?2 ORDER BY decided_at LIMIT 1) RETURNING {COLUMNS}"
        ))?;
        st.query_row(params![new.fingerprint, now], |r| read_row(r, now)).optional()?
    };
    if let Some(r) = spent {
        tx.commit()?;
        return Ok(Claim::Spent(r));
    }
    let pending = {
        let mut st = tx.prepare_cached(&format!("SELECT {COLUMNS} FROM reviews WHERE fingerprint = ?1 AND state = 'pending' AND expires_at > ?2 ORDER BY created_at DESC LIMIT 1"))?;
        st.query_row(params![new.fingerprint, now], |r| read_row(r, now)).optional()?
    };
    if let Some(r) = pending {
        tx.commit()?;
        return Ok(Claim::Pending(r, false));
    }
    let id = new_id();
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO reviews (id, fingerprint, created_at, subject, username, agent, verb, method, path, query, body_sha256, summary, rule, reviewers, allow_self_approval, state, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 'pending', ?16)",
        )?;
        let reviewers = serde_json::to_string(&new.reviewers).unwrap_or_else(|_| "[]".into());
        st.execute(params![
            id,
            new.fingerprint,
            now,
            new.subject,
            new.username,
            new.agent,
            new.verb,
            new.method,
            new.path,
            new.query,
            new.body_sha256,
            new.summary,
            new.rule,
            reviewers,
            i64::from(new.allow_self_approval),
            now + ttl
        ])?;
    }
    let review = get(&tx, &id, now)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    tx.commit()?;
    Ok(Claim::Pending(review, true))
}

fn spend(c: &Connection, id: &str, now: i64) -> rusqlite::Result<bool> {
    let mut st = c.prepare_cached("UPDATE reviews SET state = 'spent' WHERE id = ?1 AND state = 'approved' AND expires_at > ?2")?;
    Ok(st.execute(params![id, now])? == 1)
}

fn get(c: &Connection, id: &str, now: i64) -> rusqlite::Result<Option<Review>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM reviews WHERE id = ?1"))?;
    st.query_row(params![id], |r| read_row(r, now)).optional()
}

fn list(c: &Connection, all: bool, now: i64) -> rusqlite::Result<Vec<Review>> {
    let sql = if all {
        format!("SELECT {COLUMNS} FROM reviews ORDER BY created_at DESC, id LIMIT 500")
    } else {
        format!("SELECT {COLUMNS} FROM reviews WHERE state = 'pending' AND expires_at > ?1 ORDER BY created_at DESC, id LIMIT 500")
    };
    let mut st = c.prepare_cached(&sql)?;
    let rows = if all { st.query_map([], |r| read_row(r, now))?.collect() } else { st.query_map(params![now], |r| read_row(r, now))?.collect() };
    rows
}

fn decide(c: &Connection, id: &str, approve: bool, by: &str, reason: Option<&str>, now: i64, ttl: i64) -> rusqlite::Result<Decided> {
    let mut st = c.prepare_cached(&format!(
        "UPDATE reviews SET state = ?2, decided_by = ?3, reason = ?4, decided_at = ?5, expires_at = CASE WHEN ?2 = 'approved' THEN ?5 + ?6 ELSE expires_at END
         WHERE id = ?1 AND state = 'pending' AND expires_at > ?5 RETURNING {COLUMNS}"
    ))?;
    let state = if approve { State::Approved } else { State::Denied };
    match st.query_row(params![id, state.as_str(), by, reason, now, ttl], |r| read_row(r, now)).optional()? {
        Some(r) => Ok(Decided::Done(r)),
        None => Ok(get(c, id, now)?.map_or(Decided::NotFound, Decided::NotPending)),
    }
}

fn sweep(c: &Connection, now: i64) -> rusqlite::Result<Vec<Review>> {
    let mut st = c.prepare_cached(&format!("UPDATE reviews SET state = 'expired' WHERE state IN ('pending', 'approved') AND expires_at <= ?1 RETURNING {COLUMNS}"))?;
    let rows = st.query_map(params![now], |r| read_row(r, now))?.collect();
    rows
}

/// Unix seconds as RFC 3339 on the wire.
mod ts {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.timestamp()).map_err(serde::de::Error::custom)
    }
}

mod ts_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.timestamp()).map_err(serde::de::Error::custom)).transpose()
    }
}

/// `2025-01-31T12:00:00Z`.
#[must_use]
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}

/// Now, in unix seconds.
#[must_use]
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
