//! The relay's records store: one SQLite file (WAL) with the request records, the exec/attach/
//! port-forward sessions and their events, and a live feed of what is written.
//!
//! Why it is built this way: the relay calls [`Store::insert`] before it forwards a request, and
//! a failed insert must stop the request (the relay answers 503), so inserts are durable when
//! they return and their errors are typed. Writes go to one writer thread that group-commits
//! (`store_writer.rs`); reads use their own connection on the blocking pool (WAL lets them
//! run beside the writer). Like the review store, the file can be shared by several relay
//! processes (SQLite's lock, `busy_timeout`); the live feed only carries this process's writes.
//!
//! Durability. `synchronous = NORMAL` ([`Durability::Normal`], the default) in WAL mode: a
//! commit appends its frames to the `-wal` file with `write()` before `COMMIT` returns, and only
//! checkpoints fsync. Those bytes are in the OS page cache, which belongs to the kernel, not the
//! process: a relay killed with `kill -9` (or crashing) loses nothing that was committed, and
//! the next open replays the WAL. This is tested (`durability_survives_sigkill`: a child process
//! inserts, reports every id whose insert returned, is SIGKILLed mid-stream, and every reported
//! id is found on reopen). What NORMAL does not survive is a power loss or kernel crash, which
//! can roll back the last commits (never corrupt the file). [`Durability::Full`] fsyncs the WAL
//! at every commit and survives that too; group commit makes one fsync serve a whole batch.
//!
//! What it trusts: the relay's values (already validated). Ids are checked by shape
//! ([`super::id::is_id`]) before lookups by the records API. The file is created `0600`: it
//! holds what people typed and saw.
//!
//! Schema and statements: `store_sql.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

use super::event::{Decision, Record, Stage};
use super::exec::{SessionEvent, SessionKind, SessionSummary};
use super::store_sql::{self as sql, MigrateError};
use super::store_writer::{Op, Writer};

pub use super::store_sql::{Completion, PurgeReport};

/// Why the store failed. The relay answers 503 to any of these on the request path.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused (file unreadable, disk full, locked for too long, corrupt).
    #[error("records store {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// The file was written by a newer hoop-kube.
    #[error("records store {path}: schema version {version} is newer than this relay understands")]
    SchemaTooNew { path: String, version: i64 },
    /// The writer thread is gone (the store was shut down, or it died).
    #[error("records store: the writer is not running")]
    Closed,
    /// No record or session with that id.
    #[error("records store: no record or session {0}")]
    NotFound(String),
    /// The record was completed already.
    #[error("records store: record {0} is already complete")]
    AlreadyComplete(String),
    /// A blocking task died.
    #[error("records store: {0}")]
    Task(String),
}

impl StoreError {
    pub(super) fn sqlite(path: &str, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: path.to_string(),
            source: Arc::new(source),
        }
    }
}

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous = NORMAL`: survives the relay process dying; a power loss may lose the last
    /// commits.
    #[default]
    Normal,
    /// `synchronous = FULL`: every (group) commit is fsynced.
    Full,
}

/// What is kept. Both bounds apply when both are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete records received longer ago than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many records (the newest).
    pub max_records: Option<u64>,
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub durability: Durability,
    pub retention: Retention,
    /// How often retention runs (also once at open).
    pub purge_every: Duration,
    /// Records deleted per retention step (the writer serves inserts between steps).
    pub purge_chunk: usize,
    /// Records the live feed holds for a slow subscriber before it lags.
    pub feed_capacity: usize,
    /// Most writes per transaction.
    pub max_batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::Normal,
            retention: Retention::default(),
            purge_every: Duration::from_secs(600),
            purge_chunk: 5000,
            feed_capacity: 4096,
            max_batch: 512,
        }
    }
}

/// The list filter, shared with the records API's query ([`super::query`]). Every set field
/// must match; times are Unix µs, `since` inclusive, `until` exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFilter {
    /// Matches the user name or the subject.
    pub user: Option<String>,
    pub agent: Option<String>,
    /// One agent session's records (an agent reading the records API sees only its own).
    pub agent_session: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub decision: Option<Decision>,
    pub kubectl_session: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// Default and largest page of [`Store::list`].
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

impl Default for RecordFilter {
    fn default() -> Self {
        RecordFilter {
            user: None,
            agent: None,
            agent_session: None,
            since: None,
            until: None,
            verb: None,
            resource: None,
            namespace: None,
            decision: None,
            kubectl_session: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// One exec/attach/port-forward session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub id: String,
    /// The request that opened it.
    pub record_id: String,
    pub kind: SessionKind,
    /// See [`super::exec::Transport::name`].
    pub transport: String,
    /// Unix µs; event times are offsets from here.
    #[serde(with = "super::event::micros")]
    pub started: i64,
    #[serde(
        default,
        with = "super::event::micros_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SessionSummary>,
}

/// One write as the live feed reports it, after its commit.
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// The stage the write reached (an insert of a denied request is already complete).
    pub stage: Stage,
    pub record: Arc<Record>,
}

/// What a [`Feed`] yields.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    Record(FeedItem),
    /// The subscriber fell this many items behind and they were skipped; it may list the gap
    /// from the store.
    Missed(u64),
}

/// A live feed subscription ([`Store::subscribe`]).
#[derive(Debug)]
pub struct Feed {
    rx: broadcast::Receiver<FeedItem>,
}

impl Feed {
    /// The next item, or a notice of how many were missed; `None` when the store is gone.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        match self.rx.recv().await {
            Ok(item) => Some(FeedEvent::Record(item)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(FeedEvent::Missed(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// Like [`Feed::next`] without waiting: `None` when nothing is queued (or the store is gone).
    pub fn try_next(&mut self) -> Option<FeedEvent> {
        match self.rx.try_recv() {
            Ok(item) => Some(FeedEvent::Record(item)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(FeedEvent::Missed(n)),
            Err(_) => None,
        }
    }
}

/// Counters of the writer (for benchmarks and metrics).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed or attempted.
    pub batches: AtomicU64,
    /// Writes they carried.
    pub ops: AtomicU64,
}

/// The store. Cheap to clone; the writer stops when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<std::thread::JoinHandle<()>>,
    reader: Mutex<Connection>,
    feed: broadcast::Sender<FeedItem>,
    stats: Arc<WriterStats>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ops.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Create the file `0600` if it does not exist (SQLite takes an empty file as a new database
/// and gives its `-wal`/`-shm` files the same mode). The agent registry's file is made the same
/// way.
pub(crate) fn create_private(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Open (creating if needed) the store, check or create its schema, start the writer.
    /// Blocking: call it at boot or from `spawn_blocking`.
    ///
    /// # Errors
    /// The file cannot be created or opened, or its schema is unusable.
    pub fn open(path: &Path, cfg: StoreConfig) -> Result<Store, StoreError> {
        let name = path.display().to_string();
        let err = |source| StoreError::sqlite(&name, source);
        create_private(path).map_err(|e| StoreError::Task(format!("records store {name}: {e}")))?;
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        let sync = match cfg.durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(err)?;
        sql::migrate(&conn).map_err(|e| match e {
            MigrateError::Sqlite(e) => err(e),
            MigrateError::TooNew(version) => StoreError::SchemaTooNew {
                path: name.clone(),
                version,
            },
        })?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        reader.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        reader
            .pragma_update(None, "query_only", "ON")
            .map_err(err)?;

        let (feed, _) = broadcast::channel(cfg.feed_capacity.max(1));
        let stats = Arc::new(WriterStats::default());
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            path: name.clone(),
            feed: feed.clone(),
            retention: cfg.retention,
            purge_every: cfg.purge_every,
            purge_chunk: cfg.purge_chunk.max(1),
            max_batch: cfg.max_batch.max(1),
            stats: stats.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("records-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Task(format!("records store {name}: writer thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                ops: Some(tx),
                writer: Some(handle),
                reader: Mutex::new(reader),
                feed,
                stats,
            }),
        })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The writer's counters.
    #[must_use]
    pub fn stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// Send one op to the writer and wait for its commit.
    async fn write<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let ops = self.inner.ops.as_ref().ok_or(StoreError::Closed)?;
        ops.send(op(tx)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Write a new record; durable when this returns `Ok`. A record whose `completed` is set
    /// (a refusal answered at once) is written complete in one go.
    ///
    /// # Errors
    /// SQLite failed (the relay must not forward the request), or the id exists.
    pub async fn insert(&self, record: Record) -> Result<(), StoreError> {
        self.write(|reply| Op::Insert(Box::new(record), reply))
            .await
    }

    /// Note that a long-running request's response started (`code` is its status, 101 or
    /// 200) at `at` (Unix µs). Returns the record as it is now.
    ///
    /// # Errors
    /// SQLite failed; no such record; already complete.
    pub async fn started(&self, id: &str, code: u16, at: i64) -> Result<Record, StoreError> {
        let id = id.to_string();
        self.write(|reply| Op::Started {
            id,
            code,
            at,
            reply,
        })
        .await
    }

    /// Complete a record (once). Returns it as it is now.
    ///
    /// # Errors
    /// SQLite failed; no such record; already complete.
    pub async fn complete(&self, id: &str, completion: Completion) -> Result<Record, StoreError> {
        let id = id.to_string();
        self.write(|reply| Op::Complete {
            id,
            completion,
            reply,
        })
        .await
    }

    /// Start a session (its record must have been inserted).
    ///
    /// # Errors
    /// SQLite failed, or the id exists.
    pub async fn session_begin(&self, info: SessionInfo) -> Result<(), StoreError> {
        self.write(|reply| Op::SessionBegin(info, reply)).await
    }

    /// Append events to a session, after the ones already there.
    ///
    /// # Errors
    /// SQLite failed; no such session.
    pub async fn session_append(
        &self,
        id: &str,
        events: Vec<SessionEvent>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let id = id.to_string();
        self.write(|reply| Op::SessionAppend { id, events, reply })
            .await
    }

    /// End a session at `ended` (Unix µs) with its summary.
    ///
    /// # Errors
    /// SQLite failed; no such session.
    pub async fn session_end(
        &self,
        id: &str,
        ended: i64,
        summary: &SessionSummary,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        let summary =
            serde_json::to_string(summary).map_err(|e| StoreError::Task(e.to_string()))?;
        self.write(|reply| Op::SessionEnd {
            id,
            ended,
            summary,
            reply,
        })
        .await
    }

    /// Apply the retention rules now, completely (the writer also runs them periodically).
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn purge(&self, now: i64) -> Result<PurgeReport, StoreError> {
        self.write(|reply| Op::Purge { now, reply }).await
    }

    /// Subscribe to the live feed: every write committed from now on.
    #[must_use]
    pub fn subscribe(&self) -> Feed {
        Feed {
            rx: self.inner.feed.subscribe(),
        }
    }

    /// Run `f` on the read connection, on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_blocking(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Run `f` on the read connection, here (blocking).
    fn read_blocking<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.inner.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| StoreError::sqlite(&self.inner.path.display().to_string(), e))
    }

    /// One record.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let id = id.to_string();
        self.read(move |c| sql::get(c, &id)).await
    }

    /// Records matching `filter`, newest first, at most `filter.limit` (capped at
    /// [`MAX_LIMIT`]).
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn list(&self, filter: RecordFilter) -> Result<Vec<Record>, StoreError> {
        let filter = RecordFilter {
            limit: filter.limit.clamp(1, MAX_LIMIT),
            ..filter
        };
        self.read(move |c| sql::list(c, &filter)).await
    }

    /// Every request of one kubectl invocation (`Kubectl-Session`), oldest first (at most
    /// [`MAX_LIMIT`]).
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn kubectl_session(&self, session: &str) -> Result<Vec<Record>, StoreError> {
        let session = session.to_string();
        self.read(move |c| sql::kubectl_session(c, &session, MAX_LIMIT))
            .await
    }

    /// One session's metadata and summary.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn session(&self, id: &str) -> Result<Option<SessionInfo>, StoreError> {
        let id = id.to_string();
        self.read(move |c| sql::session(c, &id)).await
    }

    /// A session's events with sequence numbers from `from`, in order, at most `limit`; page
    /// with the last sequence number + 1.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn session_events(
        &self,
        id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, SessionEvent)>, StoreError> {
        let id = id.to_string();
        self.read(move |c| sql::session_events(c, &id, from, limit))
            .await
    }
}

#[cfg(test)]
#[path = "store_durability_tests.rs"]
mod durability_tests;
#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
