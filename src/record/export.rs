//! Export sinks: the store's live feed → `audit.k8s.io/v1` Events in a JSON-lines file and/or
//! POSTed to an audit webhook as `EventList`s (the apiserver's `--audit-log-path` and
//! `--audit-webhook-config-file` backends).
//!
//! Why it exists: records must reach existing SIEM pipelines. The store is the source of
//! truth: exporters only read its feed ([`super::store::Feed`]), after the commit, so an export
//! failure can never lose or block a record. Exported: each record's `ResponseComplete` stage,
//! and the `ResponseStarted` stage of long-running requests the relay marked started (as the
//! apiserver emits for watch and exec). `RequestReceived` (the write-ahead insert) is not
//! exported; a relay that died before completing a request leaves it in the store only.
//!
//! Never silently: an exporter that falls behind the feed (the feed says how many it skipped),
//! a full webhook queue, a batch given up after its retries, or a failed file write all count
//! into [`ExportStats::dropped`] and are logged (at most every 10 s per exporter, with totals).
//!
//! File sink: opened `O_APPEND | O_CREAT`, mode `0600` (it holds who did what), one Event per
//! line written with one `write` per batch. [`FileSync::Batch`] fsyncs after every batch (a
//! line on disk survives a power loss once its batch returned); [`FileSync::Never`] leaves it to
//! the OS (survives the process dying, not the machine). Optional size rotation renames
//! `path` → `path.1` → … `path.N` before a write would pass `max_bytes`.
//!
//! Webhook sink: a bounded queue (`queue` Events); batches of at most `max_batch`, sent when
//! full or `max_wait` after their first Event; each POST is retried on transport errors, 429 and
//! 5xx with exponential backoff (`initial_backoff` doubling up to `max_backoff`) `retries`
//! times; a 4xx other than 429 is not retried. The HTTP client (TLS roots, client certificate,
//! proxy) is the caller's `reqwest::Client`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::event::{Event, EventList, Stage};
use super::store::{Feed, FeedEvent, FeedItem};

/// Why an export step failed (counted and logged by the exporter tasks).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("audit file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("audit webhook: {0}")]
    Http(String),
    #[error("audit webhook answered {0}")]
    Status(u16),
}

/// Counters of one exporter.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Events written or accepted by the webhook.
    pub exported: AtomicU64,
    /// Events lost to this exporter (lag, full queue, failures); never silent.
    pub dropped: AtomicU64,
    /// Batches that failed (after their retries).
    pub failed_batches: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    pub exported: u64,
    pub dropped: u64,
    pub failed_batches: u64,
}

impl ExportStats {
    #[must_use]
    pub fn snapshot(&self) -> ExportCounts {
        ExportCounts {
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
        }
    }
}

/// Logs drops at most every 10 s, with totals.
struct DropLog {
    name: &'static str,
    last: Option<Instant>,
}

impl DropLog {
    fn dropped(&mut self, stats: &ExportStats, n: u64, why: &str) {
        let total = stats.dropped.fetch_add(n, Ordering::Relaxed) + n;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.last = Some(Instant::now());
            tracing::warn!(
                exporter = self.name,
                dropped = n,
                total_dropped = total,
                reason = why,
                "audit events dropped"
            );
        }
    }
}

/// Whether a feed item is exported.
#[must_use]
pub fn exported(item: &FeedItem) -> bool {
    matches!(item.stage, Stage::ResponseComplete | Stage::ResponseStarted)
}

/// A running exporter.
#[derive(Debug)]
pub struct Exporter {
    stats: Arc<ExportStats>,
    tasks: Vec<JoinHandle<()>>,
}

impl Exporter {
    #[must_use]
    pub fn stats(&self) -> ExportCounts {
        self.stats.snapshot()
    }

    /// The shared counters (for a metrics endpoint).
    #[must_use]
    pub fn counters(&self) -> Arc<ExportStats> {
        self.stats.clone()
    }

    /// Stop the exporter's tasks.
    pub fn abort(&self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// When the file is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileSync {
    /// Never explicitly (the OS writes back).
    #[default]
    Never,
    /// After every batch.
    Batch,
}

/// File sink settings.
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub path: PathBuf,
    pub sync: FileSync,
    /// Rotate before the file would exceed this.
    pub max_bytes: Option<u64>,
    /// Rotated files kept (`path.1` … `path.N`).
    pub keep: usize,
}

/// An open JSON-lines audit file.
#[derive(Debug)]
pub struct FileSink {
    cfg: FileConfig,
    file: File,
    size: u64,
}

impl FileSink {
    /// Open (create `0600`) for appending.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(cfg: FileConfig) -> Result<FileSink, ExportError> {
        let (file, size) = open_append(&cfg.path)?;
        Ok(FileSink { cfg, file, size })
    }

    /// Append the events, one line each, in one write; rotate first if needed.
    ///
    /// # Errors
    /// Writing, syncing or rotating failed.
    pub fn write(&mut self, events: &[Event]) -> Result<(), ExportError> {
        let mut buf = Vec::with_capacity(events.len() * 768);
        for e in events {
            serde_json::to_writer(&mut buf, e).map_err(|e| self.err(e.into()))?;
            buf.push(b'\n');
        }
        if let Some(max) = self.cfg.max_bytes {
            if self.size > 0 && self.size + buf.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&buf).map_err(|e| self.err(e))?;
        self.size += buf.len() as u64;
        if self.cfg.sync == FileSync::Batch {
            self.file.sync_data().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn err(&self, source: std::io::Error) -> ExportError {
        ExportError::File {
            path: self.cfg.path.display().to_string(),
            source,
        }
    }

    fn rotate(&mut self) -> Result<(), ExportError> {
        let name = |i: usize| {
            let mut p = self.cfg.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if self.cfg.keep == 0 {
            std::fs::remove_file(&self.cfg.path).map_err(|e| self.err(e))?;
        } else {
            for i in (1..self.cfg.keep).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            std::fs::rename(&self.cfg.path, name(1)).map_err(|e| self.err(e))?;
        }
        let (file, size) = open_append(&self.cfg.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

fn open_append(path: &std::path::Path) -> Result<(File, u64), ExportError> {
    let err = |source| ExportError::File {
        path: path.display().to_string(),
        source,
    };
    let mut o = OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let file = o.open(path).map_err(err)?;
    let size = file.metadata().map_err(err)?.len();
    Ok((file, size))
}

/// Most events written per batch.
const FILE_BATCH: usize = 512;

/// Export the feed to `sink` until the store is gone.
#[must_use]
pub fn spawn_file(mut feed: Feed, sink: FileSink) -> Exporter {
    let stats = Arc::new(ExportStats::default());
    let st = stats.clone();
    let sink = Arc::new(Mutex::new(sink));
    let task = tokio::spawn(async move {
        let mut log = DropLog {
            name: "file",
            last: None,
        };
        while let Some(first) = feed.next().await {
            let mut batch = Vec::new();
            let take = |ev: FeedEvent, batch: &mut Vec<Event>, log: &mut DropLog| match ev {
                FeedEvent::Record(item) if exported(&item) => {
                    batch.push(item.record.event_at(item.stage))
                }
                FeedEvent::Record(_) => {}
                FeedEvent::Missed(n) => log.dropped(&st, n, "fell behind the records feed"),
            };
            take(first, &mut batch, &mut log);
            while batch.len() < FILE_BATCH {
                match feed.try_next() {
                    Some(ev) => take(ev, &mut batch, &mut log),
                    None => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            let sink = sink.clone();
            let res = tokio::task::spawn_blocking(move || {
                sink.lock().unwrap_or_else(|p| p.into_inner()).write(&batch)
            })
            .await;
            match res {
                Ok(Ok(())) => {
                    st.exported.fetch_add(n, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    st.failed_batches.fetch_add(1, Ordering::Relaxed);
                    log.dropped(&st, n, &e.to_string());
                }
                Err(e) => {
                    st.failed_batches.fetch_add(1, Ordering::Relaxed);
                    log.dropped(&st, n, &e.to_string());
                }
            }
        }
    });
    Exporter {
        stats,
        tasks: vec![task],
    }
}

/// Webhook sink settings (defaults follow the apiserver's batching backend, scaled down).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: url::Url,
    /// Events queued for sending; beyond, new events are dropped (and counted).
    pub queue: usize,
    pub max_batch: usize,
    pub max_wait: Duration,
    pub retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Per POST.
    pub timeout: Duration,
}

impl WebhookConfig {
    #[must_use]
    pub fn new(url: url::Url) -> WebhookConfig {
        WebhookConfig {
            url,
            queue: 10_000,
            max_batch: 400,
            max_wait: Duration::from_secs(1),
            retries: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Export the feed to an audit webhook until the store is gone.
#[must_use]
pub fn spawn_webhook(mut feed: Feed, client: reqwest::Client, cfg: WebhookConfig) -> Exporter {
    let stats = Arc::new(ExportStats::default());
    let (tx, mut rx) = mpsc::channel::<Event>(cfg.queue.max(1));
    let st = stats.clone();
    let intake = tokio::spawn(async move {
        let mut log = DropLog {
            name: "webhook",
            last: None,
        };
        while let Some(ev) = feed.next().await {
            match ev {
                FeedEvent::Record(item) if exported(&item) => {
                    if tx.try_send(item.record.event_at(item.stage)).is_err() {
                        log.dropped(&st, 1, "webhook queue full");
                    }
                }
                FeedEvent::Record(_) => {}
                FeedEvent::Missed(n) => log.dropped(&st, n, "fell behind the records feed"),
            }
        }
    });
    let st = stats.clone();
    let sender = tokio::spawn(async move {
        let mut log = DropLog {
            name: "webhook",
            last: None,
        };
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + cfg.max_wait;
            while batch.len() < cfg.max_batch {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(ev)) => batch.push(ev),
                    Ok(None) | Err(_) => break,
                }
            }
            let n = batch.len() as u64;
            match post(&client, &cfg, EventList::new(batch)).await {
                Ok(()) => {
                    st.exported.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    st.failed_batches.fetch_add(1, Ordering::Relaxed);
                    log.dropped(&st, n, &e.to_string());
                }
            }
        }
    });
    Exporter {
        stats,
        tasks: vec![intake, sender],
    }
}

/// POST one batch, retrying what may succeed later.
async fn post(
    client: &reqwest::Client,
    cfg: &WebhookConfig,
    list: EventList,
) -> Result<(), ExportError> {
    let body = serde_json::to_vec(&list).map_err(|e| ExportError::Http(e.to_string()))?;
    let mut backoff = cfg.initial_backoff;
    let mut attempt = 0;
    loop {
        let res = client
            .post(cfg.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .timeout(cfg.timeout)
            .body(body.clone())
            .send()
            .await;
        let err = match res {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let code = r.status().as_u16();
                if code != 429 && code < 500 {
                    return Err(ExportError::Status(code));
                }
                ExportError::Status(code)
            }
            Err(e) => ExportError::Http(e.without_url().to_string()),
        };
        if attempt >= cfg.retries {
            return Err(err);
        }
        attempt += 1;
        tracing::debug!(error = %err, attempt, "audit webhook POST failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(cfg.max_backoff);
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
