//! The relay's agent sessions: one SQLite file (WAL) written through, and the sessions that
//! matter now held in memory for the per-request check.
//!
//! **Why both.** Every agent request asks "is this session alive?" ([`Registry::get`],
//! [`Live::is_active`]): that must cost a map lookup, not a query. But a revocation, a stop and
//! the spent write budget must survive a relay restart (a restart must never revive a revoked
//! session or refill `max_deletes`), so every change is committed to SQLite *before* memory and
//! the watchers learn of it. A write that fails leaves memory untouched and returns the error.
//!
//! **What is in memory.** Every session whose `not_after` lies ahead or within the last
//! [`RECENT`] (7 days) — so every usable one — loaded at open and pruned from memory as sessions
//! are created. Older ones stay only in the file ([`Registry::end`] still finds them,
//! [`Registry::prune`] deletes them). Each is an
//! `Arc<`[`Live`]`>`: its fixed facts, its end (if any), a `watch` that turns `true` when it is
//! revoked or stopped (the relay selects on it to cut open watches, logs and exec streams), and
//! its counters as atomics.
//!
//! **Counters.** [`Registry::charge`] adds to the mutating and delete counts in the file on
//! every call (as increments, so relays sharing the file add up); [`Registry::charge_checked`]
//! checks the budget and charges in one step, with the check repeated in the `UPDATE` itself, so
//! neither concurrent requests nor other relays can overspend it. [`Registry::count_request`]
//! adds the request count at most once a second per session; [`Registry::flush`] (and dropping
//! the registry) writes the rest.
//!
//! **Several relays on one file.** SQLite's lock serialises their writes. Each relay's memory
//! learns of sessions another relay created or ended at open and at [`Registry::sync`], which the
//! relay calls every few seconds; [`Registry::end`] finds a session that is only in the file.
//!
//! **The file.** Created `0600`. Marked with an SQLite `application_id` and a schema version
//! (`user_version`, like the records store): a file that is not SQLite, another application's
//! database, one holding other tables, or a newer schema is refused with a message that says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::watch;

pub use super::limits::{Charge, Counters};
use super::limits::{charge_check, LimitRefusal, LimitRule};
use crate::agent::{SessionInfo, SessionState};
use crate::kube::request_info::RequestInfo;

/// Ended sessions stay in memory (and in lists) this long after their `not_after`.
pub const RECENT: Duration = Duration::from_secs(7 * 24 * 3600);
#[path = "registry_sql.rs"]
mod sql;
pub use sql::{APPLICATION_ID, SCHEMA_VERSION};
use sql::{create_private, from_row, i64_of, micros, migrate, state_name, u64_of, COLUMNS};

/// Why the registry failed. On the request path the relay answers 503 to anything but
/// [`RegistryError::NotFound`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// SQLite refused (unreadable, disk full, locked for too long, corrupt).
    #[error("agent registry {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The file could not be created.
    #[error("agent registry {path}: cannot create it: {source}")]
    Create {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is something else (not SQLite, another application's, other tables).
    #[error("agent registry {path}: {why}; it is not a hoop-kube agent registry (name a new file in agents.store)")]
    NotARegistry { path: String, why: String },
    /// The file was written by a newer hoop-kube.
    #[error("agent registry {path}: schema version {version} is newer than this relay understands (it knows {SCHEMA_VERSION})")]
    SchemaTooNew { path: String, version: i64 },
    /// No session with this id.
    #[error("agent session {0:?} not found")]
    NotFound(String),
    /// A session with this id exists already.
    #[error("agent session {0:?} exists already")]
    Exists(String),
    /// The new session or the requested change is not acceptable (a bug in the caller).
    #[error("agent registry: {0}")]
    Invalid(String),
}

/// A session to create; everything validated by the caller except what [`Registry::create`]
/// checks again (id shape, agent name, times).
#[derive(Debug, Clone)]
pub struct NewSession {
    /// A canonical lower-case UUID (the relay makes v7 ids).
    pub id: String,
    pub agent: String,
    pub subject: String,
    pub username: String,
    pub groups: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub cert_serial: String,
    pub command: Option<String>,
}

/// The list filter: every set field must match exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub subject: Option<String>,
    pub agent: Option<String>,
}

/// How a session ended.
#[derive(Debug, Clone)]
struct Ending {
    state: SessionState,
    at: DateTime<Utc>,
    by: Option<String>,
}

/// One session in memory. Shared (`Arc`) between the registry and the requests using it.
#[derive(Debug)]
pub struct Live {
    session: NewSession,
    ending: Mutex<Option<Ending>>,
    ended: watch::Sender<bool>,
    requests: AtomicU64,
    mutating: AtomicU64,
    deletes: AtomicU64,
    /// Requests counted here and not yet added to the file, and when they last were (Unix s).
    pending_requests: AtomicU64,
    persisted_at: AtomicI64,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Live {
    fn new(session: NewSession, ending: Option<Ending>, counters: Counters) -> Live {
        let (ended, _) = watch::channel(ending.is_some());
        Live {
            session,
            ending: Mutex::new(ending),
            ended,
            requests: AtomicU64::new(counters.requests),
            mutating: AtomicU64::new(counters.mutating),
            deletes: AtomicU64::new(counters.deletes),
            pending_requests: AtomicU64::new(0),
            persisted_at: AtomicI64::new(0),
        }
    }

    fn ending(&self) -> Option<Ending> {
        self.ending.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The session id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.session.id
    }

    #[must_use]
    pub fn agent(&self) -> &str {
        &self.session.agent
    }

    #[must_use]
    pub fn subject(&self) -> &str {
        &self.session.subject
    }

    /// The agent certificate's serial (hex).
    #[must_use]
    pub fn cert_serial(&self) -> &str {
        &self.session.cert_serial
    }

    #[must_use]
    pub fn not_after(&self) -> DateTime<Utc> {
        self.session.not_after
    }

    /// The state at `now`: revoked or stopped once ended; expired from `not_after` on.
    #[must_use]
    pub fn state_at(&self, now: DateTime<Utc>) -> SessionState {
        match self.ending() {
            Some(e) => e.state,
            None if now >= self.session.not_after => SessionState::Expired,
            None => SessionState::Active,
        }
    }

    /// Whether requests may use the session at `now`: not revoked or stopped, and before
    /// `not_after`. Cheap: no lock taken.
    #[must_use]
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !*self.ended.borrow() && now < self.session.not_after
    }

    /// Turns `true` when the session is revoked or stopped (never back). The relay selects on
    /// it to end the session's open streams.
    #[must_use]
    pub fn ended(&self) -> watch::Receiver<bool> {
        self.ended.subscribe()
    }

    /// The counters now.
    #[must_use]
    pub fn counters(&self) -> Counters {
        Counters {
            requests: self.requests.load(Ordering::Relaxed),
            mutating: self.mutating.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
        }
    }

    /// The session as the agents API shows it, now.
    #[must_use]
    pub fn info(&self) -> SessionInfo {
        self.info_at(Utc::now())
    }

    /// The session as the agents API shows it, at `now`.
    #[must_use]
    pub fn info_at(&self, now: DateTime<Utc>) -> SessionInfo {
        let s = &self.session;
        let ending = self.ending();
        let c = self.counters();
        SessionInfo {
            id: s.id.clone(),
            agent: s.agent.clone(),
            subject: s.subject.clone(),
            username: s.username.clone(),
            groups: s.groups.clone(),
            created_at: rfc3339(s.created_at),
            not_after: rfc3339(s.not_after),
            state: self.state_at(now),
            ended_at: ending.as_ref().map(|e| rfc3339(e.at)),
            ended_by: ending.and_then(|e| e.by),
            command: s.command.clone(),
            cert_serial: s.cert_serial.clone(),
            requests: c.requests,
            mutating: c.mutating,
            deletes: c.deletes,
        }
    }

    /// Whether it still belongs in memory at `now`: `not_after` within the last [`RECENT`].
    fn is_recent(&self, now: DateTime<Utc>) -> bool {
        now.signed_duration_since(self.session.not_after).to_std().map_or(true, |past| past < RECENT)
    }

    /// Take in counters read from the file (which other relays sharing it add to too).
    fn merge(&self, c: Counters) {
        self.requests.fetch_max(c.requests, Ordering::Relaxed);
        self.mutating.fetch_max(c.mutating, Ordering::Relaxed);
        self.deletes.fetch_max(c.deletes, Ordering::Relaxed);
    }
}

/// The agent sessions of one relay.
pub struct Registry {
    path: PathBuf,
    name: String,
    /// Held for every write (so a check and its write are one step), never across an await.
    conn: Mutex<Connection>,
    live: RwLock<HashMap<String, Arc<Live>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "agent registry: could not write the last request counts");
        }
    }
}

impl Registry {
    /// Open (creating if needed) the registry and load the recent and active sessions.
    /// Blocking: call it at boot or from `spawn_blocking`.
    ///
    /// # Errors
    /// The file cannot be created or opened, is not a registry, or has a newer schema.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        let name = path.display().to_string();
        let sqlite = |source| RegistryError::Sqlite { path: name.clone(), source };
        create_private(path).map_err(|source| RegistryError::Create { path: name.clone(), source })?;
        let conn = Connection::open(path).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
        let not_sqlite = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => RegistryError::NotARegistry { path: name.clone(), why: "the file is not an SQLite database".into() },
            _ => RegistryError::Sqlite { path: name.clone(), source: e },
        };
        conn.query_row("PRAGMA application_id", [], |r| r.get::<_, i32>(0)).map_err(not_sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(not_sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sqlite)?;
        migrate(&conn, &name)?;
        let registry = Registry { path: path.to_path_buf(), name, conn: Mutex::new(conn), live: RwLock::default() };
        registry.sync()?;
        Ok(registry)
    }

    fn sqlite(&self, source: rusqlite::Error) -> RegistryError {
        RegistryError::Sqlite { path: self.name.clone(), source }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record a new session; it is committed when this returns.
    ///
    /// # Errors
    /// [`RegistryError::Invalid`] for a malformed id, agent name or times,
    /// [`RegistryError::Exists`] for a reused id, or SQLite failed.
    pub fn create(&self, new: NewSession) -> Result<SessionInfo, RegistryError> {
        let invalid = |m: String| Err(RegistryError::Invalid(m));
        if !crate::agent::token::is_canonical_uuid(&new.id) {
            return invalid(format!("session id {:?} is not a lower-case UUID", crate::text::clip(&new.id, 64)));
        }
        if let Err(e) = crate::agent::check_name(&new.agent) {
            return invalid(e.to_string());
        }
        if new.subject.is_empty() || new.username.is_empty() {
            return invalid("a session needs a subject and a user name".into());
        }
        if new.not_after <= new.created_at {
            return invalid(format!("session {} ends ({}) before it starts ({})", new.id, rfc3339(new.not_after), rfc3339(new.created_at)));
        }
        let conn = self.conn();
        if self.get(&new.id).is_some() {
            return Err(RegistryError::Exists(new.id));
        }
        let groups = serde_json::to_string(&new.groups).unwrap_or_else(|_| "[]".into());
        let inserted = conn.execute(
            &format!("INSERT INTO agent_sessions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active', NULL, NULL, ?8, ?9, 0, 0, 0)"),
            params![new.id, new.agent, new.subject, new.username, groups, micros(new.created_at), micros(new.not_after), new.command, new.cert_serial],
        );
        match inserted {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => return Err(RegistryError::Exists(new.id)),
            Err(e) => return Err(self.sqlite(e)),
        }
        let live = Arc::new(Live::new(new, None, Counters::default()));
        let info = live.info();
        let now = Utc::now();
        let mut map = self.live.write().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, l| l.is_recent(now));
        map.insert(live.id().to_string(), live);
        Ok(info)
    }

    /// The session in memory (active, or ended within [`RECENT`]). Cheap: a read lock and a
    /// map lookup.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        self.live.read().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// The sessions in memory that match `filter`, newest first.
    #[must_use]
    pub fn list(&self, filter: &Filter) -> Vec<SessionInfo> {
        let now = Utc::now();
        let map = self.live.read().unwrap_or_else(PoisonError::into_inner);
        let mut items: Vec<(DateTime<Utc>, SessionInfo)> = map
            .values()
            .filter(|l| filter.subject.as_deref().is_none_or(|s| s == l.subject()) && filter.agent.as_deref().is_none_or(|a| a == l.agent()))
            .map(|l| (l.session.created_at, l.info_at(now)))
            .collect();
        drop(map);
        items.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.id.cmp(&a.1.id)));
        items.into_iter().map(|(_, i)| i).collect()
    }

    /// Revoke or stop a session: persisted (state, time, who), then the `ended` watch fires.
    /// Idempotent: a session already revoked, stopped or expired is returned unchanged (an
    /// expired one's watch still fires, so nothing it had open lingers). A session only in the
    /// file (older, or minted by another relay sharing it) is found there.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::Invalid`] for a `state` other than revoked
    /// or stopped, or SQLite failed (then nothing changed).
    pub fn end(&self, id: &str, state: SessionState, by: &str) -> Result<SessionInfo, RegistryError> {
        if !matches!(state, SessionState::Revoked | SessionState::Stopped) {
            return Err(RegistryError::Invalid(format!("a session cannot be ended as {}", state.as_str())));
        }
        let conn = self.conn();
        let now = Utc::now();
        let live = match self.get(id) {
            Some(live) => live,
            None => {
                let row = conn
                    .query_row(&format!("SELECT {COLUMNS} FROM agent_sessions WHERE id = ?1"), [id], from_row)
                    .optional()
                    .map_err(|e| self.sqlite(e))?;
                let (session, ending, counters) = row.ok_or_else(|| RegistryError::NotFound(crate::text::clip(id, 64)))?;
                let live = Arc::new(Live::new(session, ending, counters));
                if live.is_recent(now) {
                    self.live.write().unwrap_or_else(PoisonError::into_inner).insert(live.id().to_string(), live.clone());
                }
                live
            }
        };
        if live.state_at(now) != SessionState::Active {
            live.ended.send_replace(true);
            return Ok(live.info_at(now));
        }
        let pending = live.pending_requests.swap(0, Ordering::Relaxed);
        let ended = conn.execute(
            "UPDATE agent_sessions SET state = ?2, ended_us = ?3, ended_by = ?4, requests = requests + ?5 WHERE id = ?1 AND state = 'active'",
            params![id, state_name(state), micros(now), by, i64_of(pending)],
        );
        match ended {
            Ok(1) => *live.ending.lock().unwrap_or_else(PoisonError::into_inner) = Some(Ending { state, at: now, by: Some(by.to_string()) }),
            Ok(_) => {
                // Ended meanwhile through another relay sharing the file: take its end.
                live.pending_requests.fetch_add(pending, Ordering::Relaxed);
                let row = conn.query_row(&format!("SELECT {COLUMNS} FROM agent_sessions WHERE id = ?1"), [id], from_row).optional().map_err(|e| self.sqlite(e))?;
                let (_, ending, counters) = row.ok_or_else(|| RegistryError::NotFound(crate::text::clip(id, 64)))?;
                live.merge(counters);
                *live.ending.lock().unwrap_or_else(PoisonError::into_inner) = ending;
            }
            Err(e) => {
                live.pending_requests.fetch_add(pending, Ordering::Relaxed);
                return Err(self.sqlite(e));
            }
        }
        live.ended.send_replace(true);
        Ok(live.info_at(now))
    }

    /// Count one request that reached the policy. Memory at once; the file at most once a
    /// second per session (and at [`flush`](Self::flush)).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], or SQLite failed (the count stays pending in memory).
    pub fn count_request(&self, id: &str) -> Result<(), RegistryError> {
        let live = self.get(id).ok_or_else(|| RegistryError::NotFound(crate::text::clip(id, 64)))?;
        live.requests.fetch_add(1, Ordering::Relaxed);
        live.pending_requests.fetch_add(1, Ordering::Relaxed);
        let now = Utc::now().timestamp();
        let last = live.persisted_at.load(Ordering::Relaxed);
        if now > last && live.persisted_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.write_requests(&self.conn(), &live)?;
        }
        Ok(())
    }

    /// Add the session's pending request count to the file.
    fn write_requests(&self, conn: &Connection, live: &Live) -> Result<(), RegistryError> {
        let pending = live.pending_requests.swap(0, Ordering::Relaxed);
        if pending == 0 {
            return Ok(());
        }
        let written = conn
            .query_row("UPDATE agent_sessions SET requests = requests + ?2 WHERE id = ?1 RETURNING requests", params![live.id(), i64_of(pending)], |r| r.get::<_, i64>(0))
            .optional();
        match written {
            Ok(total) => {
                live.requests.fetch_max(total.map_or(0, u64_of), Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                live.pending_requests.fetch_add(pending, Ordering::Relaxed);
                Err(self.sqlite(e))
            }
        }
    }

    /// Write every pending request count.
    ///
    /// # Errors
    /// SQLite failed (the counts stay pending).
    pub fn flush(&self) -> Result<(), RegistryError> {
        let dirty: Vec<Arc<Live>> = {
            let map = self.live.read().unwrap_or_else(PoisonError::into_inner);
            map.values().filter(|l| l.pending_requests.load(Ordering::Relaxed) > 0).cloned().collect()
        };
        let conn = self.conn();
        dirty.iter().try_for_each(|l| self.write_requests(&conn, l))
    }

    /// Bump the counters of a let-through mutating call (a delete counts as mutating too):
    /// committed (as an increment, so relays sharing the file add up), then in memory. Returns
    /// the counters after it.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], or SQLite failed (then nothing changed).
    pub fn charge(&self, id: &str, charge: Charge) -> Result<Counters, RegistryError> {
        let conn = self.conn();
        let live = self.get(id).ok_or_else(|| RegistryError::NotFound(crate::text::clip(id, 64)))?;
        let c = self.write_charge(&conn, &live, charge, None)?.ok_or_else(|| RegistryError::NotFound(crate::text::clip(id, 64)))?;
        Ok(c)
    }

    /// [`charge_check`] and [`charge`](Self::charge) as one step: checked against this relay's
    /// counters, then charged in the file only while the file's counters are under budget too,
    /// so neither concurrent requests nor relays sharing the file can overspend it.
    /// `Ok(Ok(None))`: not a mutating call, nothing charged; `Ok(Err(refusal))`: over budget,
    /// nothing charged.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], or SQLite failed (then nothing changed).
    pub fn charge_checked(&self, id: &str, rule: &LimitRule, info: &RequestInfo) -> Result<Result<Option<Charge>, LimitRefusal>, RegistryError> {
        let conn = self.conn();
        let live = self.get(id).ok_or_else(|| RegistryError::NotFound(crate::text::clip(id, 64)))?;
        let charge = match charge_check(rule, &live.counters(), info) {
            Ok(Some(charge)) => charge,
            other => return Ok(other),
        };
        if self.write_charge(&conn, &live, charge, Some(rule))?.is_some() {
            return Ok(Ok(Some(charge)));
        }
        // The file says the budget is spent (another relay spent it): refuse by its count.
        let row = conn.query_row(&format!("SELECT {COLUMNS} FROM agent_sessions WHERE id = ?1"), [id], from_row).optional().map_err(|e| self.sqlite(e))?;
        let (_, _, counters) = row.ok_or_else(|| RegistryError::NotFound(crate::text::clip(id, 64)))?;
        live.merge(counters);
        match charge_check(rule, &live.counters(), info) {
            Err(refusal) => Ok(Err(refusal)),
            Ok(_) => Err(RegistryError::Invalid(format!("session {id}: the budget changed while charging; try again"))),
        }
    }

    /// Add `charge` in the file (only while under `budget`, when given) and take the file's
    /// counters in; the counters after it, or `None` when no row was changed.
    fn write_charge(&self, conn: &Connection, live: &Live, charge: Charge, budget: Option<&LimitRule>) -> Result<Option<Counters>, RegistryError> {
        let delete = i64::from(charge == Charge::Delete);
        let max_mutating = budget.and_then(|r| r.max_mutating).map(i64_of);
        let max_deletes = budget.and_then(|r| r.max_deletes).filter(|_| charge == Charge::Delete).map(i64_of);
        let row = conn
            .query_row(
                "UPDATE agent_sessions SET mutating = mutating + 1, deletes = deletes + ?2 \
                 WHERE id = ?1 AND (?3 IS NULL OR mutating < ?3) AND (?4 IS NULL OR deletes < ?4) RETURNING requests, mutating, deletes",
                params![live.id(), delete, max_mutating, max_deletes],
                |r| Ok(Counters { requests: u64_of(r.get(0)?), mutating: u64_of(r.get(1)?), deletes: u64_of(r.get(2)?) }),
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        Ok(row.map(|c| {
            live.merge(c);
            live.counters()
        }))
    }

    /// Take in what other relays sharing the file did since: sessions they created, ended or
    /// charged. Ended sessions fire their `ended` watch here. Returns how many sessions were
    /// added or ended. Call it every few seconds when several relays share one file.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn sync(&self) -> Result<usize, RegistryError> {
        let now = Utc::now();
        let cutoff = micros(now).saturating_sub(i64::try_from(RECENT.as_micros()).unwrap_or(i64::MAX));
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM agent_sessions WHERE not_after_us >= ?1")).map_err(|e| self.sqlite(e))?;
        let rows = st.query_map([cutoff], from_row).map_err(|e| self.sqlite(e))?.collect::<Result<Vec<_>, _>>().map_err(|e| self.sqlite(e))?;
        let mut changed = 0;
        let mut map = self.live.write().unwrap_or_else(PoisonError::into_inner);
        for (session, ending, counters) in rows {
            match map.get(&session.id) {
                None => {
                    map.insert(session.id.clone(), Arc::new(Live::new(session, ending, counters)));
                    changed += 1;
                }
                Some(live) => {
                    live.merge(counters);
                    let mut mine = live.ending.lock().unwrap_or_else(PoisonError::into_inner);
                    if mine.is_none() && ending.is_some() {
                        *mine = ending;
                        live.ended.send_replace(true);
                        changed += 1;
                    }
                }
            }
        }
        Ok(changed)
    }

    /// Delete the sessions whose `not_after` is before `before` from the file and memory (their
    /// certificates and tokens are dead anyway). Returns how many rows went.
    ///
    /// # Errors
    /// SQLite failed.
    pub fn prune(&self, before: DateTime<Utc>) -> Result<usize, RegistryError> {
        let conn = self.conn();
        let n = conn.execute("DELETE FROM agent_sessions WHERE not_after_us < ?1", [micros(before)]).map_err(|e| self.sqlite(e))?;
        self.live.write().unwrap_or_else(PoisonError::into_inner).retain(|_, l| l.not_after() >= before);
        Ok(n)
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
