//! The records store's single writer: one thread, one connection, group commit.
//!
//! Why it is built this way: the relay writes a record before it releases every response, so
//! a write must be cheap and must not wait behind other writes' fsyncs one by one. Every write
//! is an [`Op`] sent to this thread with a reply channel; the thread takes the first op, drains
//! whatever else is queued (up to `max_batch`), runs them all in one `IMMEDIATE` transaction
//! and commits once, then answers each op. While it commits, new ops queue up and form the next
//! batch, so N concurrent requests share one commit (and, with `Durability::Full`, one fsync).
//! A caller's write is durable when its reply says `Ok`: the reply is sent after `COMMIT`
//! returned. Feed items ([`super::store::FeedItem`]) are published after the commit too, so a
//! subscriber never sees a record that could still roll back.
//!
//! Failure: if any statement of a batch fails, the batch is rolled back and its ops are retried
//! one by one, so one bad op (a duplicate id) fails alone. If `COMMIT` fails, every op of that
//! transaction gets the error; the relay answers 503. Retention runs here too, in chunks, between
//! batches (and at least every `purge_every`), so purging never competes with inserts for the
//! write lock.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{broadcast, oneshot};

use super::event::{Record, Stage};
use super::exec::SessionEvent;
use super::store::{FeedItem, Retention, SessionInfo, StoreError, WriterStats};
use super::store_sql::{self as sql, Completion, PurgeReport, Update};

/// Where a reply goes.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write.
pub(super) enum Op {
    Insert(Box<Record>, Reply<()>),
    Started {
        id: String,
        code: u16,
        at: i64,
        reply: Reply<Record>,
    },
    Complete {
        id: String,
        completion: Completion,
        reply: Reply<Record>,
    },
    SessionBegin(SessionInfo, Reply<()>),
    SessionAppend {
        id: String,
        events: Vec<SessionEvent>,
        reply: Reply<()>,
    },
    SessionEnd {
        id: String,
        ended: i64,
        summary: String,
        reply: Reply<()>,
    },
    Purge {
        now: i64,
        reply: Reply<PurgeReport>,
    },
}

/// What an op did, before its reply is sent.
enum Done {
    Unit,
    Record(Box<Record>),
    Purged(PurgeReport),
}

/// The writer thread's state.
pub(super) struct Writer {
    pub conn: Connection,
    pub path: String,
    pub feed: broadcast::Sender<FeedItem>,
    pub retention: Retention,
    pub purge_every: Duration,
    pub purge_chunk: usize,
    pub max_batch: usize,
    pub stats: Arc<WriterStats>,
}

impl Writer {
    /// Serve ops until every sender is gone.
    pub fn run(mut self, rx: Receiver<Op>) {
        let mut next_purge = Instant::now();
        loop {
            if Instant::now() >= next_purge {
                next_purge = self.purge_step();
            }
            let wait = next_purge.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.run_batch(batch);
        }
    }

    /// One retention chunk; when it was full, the next one comes right after the next batch.
    fn purge_step(&mut self) -> Instant {
        if self.retention.max_age.is_none() && self.retention.max_records.is_none() {
            return Instant::now() + self.purge_every;
        }
        let (now, chunk) = (super::event::now_micros(), self.purge_chunk);
        match self.transaction(|tx, r| purge(tx, r, now, Some(chunk))) {
            Ok(report) if report.records >= chunk as u64 => Instant::now(),
            Ok(report) => {
                if report.records > 0 {
                    tracing::info!(
                        records = report.records,
                        sessions = report.sessions,
                        "records retention purge"
                    );
                }
                Instant::now() + self.purge_every
            }
            Err(e) => {
                tracing::warn!(error = %e, "records retention purge failed");
                Instant::now() + self.purge_every
            }
        }
    }

    fn transaction<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &Retention) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = &self.path;
        let err = |source| StoreError::sqlite(path, source);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let out = f(&tx, &self.retention).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    fn run_batch(&mut self, batch: Vec<Op>) {
        self.stats
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stats
            .ops
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        match self.try_batch(&batch) {
            Ok(results) => self.deliver(batch, results),
            Err(_) if batch.len() > 1 => {
                for op in batch {
                    let res = self.try_batch(std::slice::from_ref(&op));
                    match res {
                        Ok(results) => self.deliver(vec![op], results),
                        Err(e) => fail(op, e),
                    }
                }
            }
            Err(e) => batch.into_iter().for_each(|op| fail(op, e.clone())),
        }
    }

    /// All ops in one transaction: `Err` when a statement or the commit failed (nothing
    /// written), else one outcome per op (an op may fail on its own without SQL failing).
    fn try_batch(&mut self, ops: &[Op]) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
        self.transaction(|tx, retention| ops.iter().map(|op| apply(tx, op, retention)).collect())
    }

    fn deliver(&self, ops: Vec<Op>, results: Vec<Result<Done, StoreError>>) {
        for (op, res) in ops.into_iter().zip(results) {
            match (op, res) {
                (op, Err(e)) => fail(op, e),
                (Op::Insert(record, reply), Ok(_)) => {
                    let stage = record.stage();
                    let _ = self.feed.send(FeedItem {
                        stage,
                        record: Arc::new(*record),
                    });
                    let _ = reply.send(Ok(()));
                }
                (Op::Started { reply, .. }, Ok(Done::Record(r))) => {
                    let _ = self.feed.send(FeedItem {
                        stage: Stage::ResponseStarted,
                        record: Arc::new((*r).clone()),
                    });
                    let _ = reply.send(Ok(*r));
                }
                (Op::Complete { reply, .. }, Ok(Done::Record(r))) => {
                    let _ = self.feed.send(FeedItem {
                        stage: Stage::ResponseComplete,
                        record: Arc::new((*r).clone()),
                    });
                    let _ = reply.send(Ok(*r));
                }
                (Op::Purge { reply, .. }, Ok(Done::Purged(p))) => {
                    let _ = reply.send(Ok(p));
                }
                (
                    Op::SessionBegin(_, reply)
                    | Op::SessionAppend { reply, .. }
                    | Op::SessionEnd { reply, .. },
                    Ok(_),
                ) => {
                    let _ = reply.send(Ok(()));
                }
                (op, Ok(_)) => fail(op, StoreError::Task("unexpected write outcome".into())),
            }
        }
    }
}

/// Run one op inside the batch's transaction: the outer `Err` is an SQL failure (the batch
/// rolls back), the inner one this op's own failure (the others still commit).
fn apply(
    tx: &rusqlite::Transaction<'_>,
    op: &Op,
    retention: &Retention,
) -> rusqlite::Result<Result<Done, StoreError>> {
    let updated = |u: Update, id: &str| match u {
        Update::Done(r) => Ok(Done::Record(r)),
        Update::AlreadyComplete => Err(StoreError::AlreadyComplete(id.to_string())),
        Update::NotFound => Err(StoreError::NotFound(id.to_string())),
    };
    let found = |found: bool, id: &str| {
        if found {
            Ok(Done::Unit)
        } else {
            Err(StoreError::NotFound(id.to_string()))
        }
    };
    Ok(match op {
        Op::Insert(record, _) => {
            sql::insert(tx, record)?;
            Ok(Done::Unit)
        }
        Op::Started { id, code, at, .. } => updated(sql::started(tx, id, *code, *at)?, id),
        Op::Complete { id, completion, .. } => updated(sql::complete(tx, id, completion)?, id),
        Op::SessionBegin(info, _) => {
            sql::session_begin(tx, info)?;
            Ok(Done::Unit)
        }
        Op::SessionAppend { id, events, .. } => found(sql::session_append(tx, id, events)?, id),
        Op::SessionEnd {
            id, ended, summary, ..
        } => found(sql::session_end(tx, id, *ended, summary)?, id),
        Op::Purge { now, .. } => Ok(Done::Purged(purge(tx, retention, *now, None)?)),
    })
}

/// Apply the retention rules (all matching rows, or one chunk).
fn purge(
    tx: &rusqlite::Transaction<'_>,
    retention: &Retention,
    now: i64,
    chunk: Option<usize>,
) -> rusqlite::Result<PurgeReport> {
    let cutoff = retention
        .max_age
        .map(|age| now.saturating_sub(i64::try_from(age.as_micros()).unwrap_or(i64::MAX)));
    sql::purge(
        tx,
        cutoff,
        retention.max_records,
        chunk.unwrap_or(usize::MAX >> 1),
    )
}

fn fail(op: Op, e: StoreError) {
    match op {
        Op::Insert(_, reply) | Op::SessionBegin(_, reply) => {
            let _ = reply.send(Err(e));
        }
        Op::SessionAppend { reply, .. } | Op::SessionEnd { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Op::Started { reply, .. } | Op::Complete { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Op::Purge { reply, .. } => {
            let _ = reply.send(Err(e));
        }
    }
}
