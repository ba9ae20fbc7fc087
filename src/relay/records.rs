//! The relay's record stage: one record per request, written before anything is forwarded or
//! refused, completed when the response ends.
//!
//! Why here and in this order: an audit trail that can lose the interesting requests is not one.
//! The record is inserted (and committed, [`crate::record::Store::insert`]) after the decision
//! and before the request goes upstream or the refusal goes back; if it cannot be written the
//! client gets a 503 `Status` and nothing reaches the cluster. The response carries the record
//! id as `Audit-Id` (the cluster's audit log gets the same id, sent upstream as `Audit-ID`).
//! Completion — code, bytes both ways, latency, values masked — is written when the body ends
//! or the client goes away ([`Completer`], also on drop); long-running requests (watch, exec,
//! attach, port-forward) are marked started when their headers go out.
//!
//! What it trusts: the identity and decision the earlier stages established. Records of
//! requests refused before a request was parsed and authenticated (401, 400, 413, 431) are in
//! the relay's log only: there is no identity to record them under.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use http_body::{Frame, SizeHint};

use super::config::RecordsConfig;
use crate::kube::status::Status;
use crate::record::event::now_micros;
use crate::record::exec::RecorderConfig;
use crate::record::export::{self, Exporter, FileConfig, FileSink, FileSync, WebhookConfig};
use crate::record::store::Retention;
use crate::record::{Completion, Record, Store, StoreConfig};
use crate::respond::{BoxError, Body};

/// The response (and upstream request) header that carries the record id.
pub const AUDIT_ID: &str = "audit-id";

/// The records store, its exporters and who may read everything.
pub struct Records {
    pub store: Store,
    /// Groups that may read every user's records.
    pub auditors: Vec<String>,
    /// How exec sessions are recorded.
    pub recorder: RecorderConfig,
    exporters: Vec<Exporter>,
}

/// Why recording could not be set up (the relay does not start without it).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("records store {path}: {message}")]
    Store { path: String, message: String },
    #[error("records.export.file {path}: {message}")]
    Export { path: String, message: String },
    #[error("records.export.webhook: {0}")]
    Webhook(String),
}

impl Records {
    /// Open the store and start the exporters.
    pub async fn open(cfg: &RecordsConfig) -> Result<Records, SetupError> {
        let store_cfg = StoreConfig {
            durability: cfg.durability,
            retention: Retention { max_age: Some(Duration::from_secs(u64::from(cfg.retention_days) * 86_400)), max_records: cfg.max_records },
            ..StoreConfig::default()
        };
        let path = cfg.store.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&path, store_cfg))
            .await
            .map_err(|e| SetupError::Store { path: cfg.store.display().to_string(), message: e.to_string() })?
            .map_err(|e| SetupError::Store { path: cfg.store.display().to_string(), message: e.to_string() })?;
        let mut exporters = Vec::new();
        if let Some(file) = &cfg.export_file {
            let sink = FileSink::open(FileConfig { path: file.clone(), sync: FileSync::Batch, max_bytes: None, keep: 0 })
                .map_err(|e| SetupError::Export { path: file.display().to_string(), message: e.to_string() })?;
            exporters.push(export::spawn_file(store.subscribe(), sink));
        }
        if let Some(url) = &cfg.export_webhook {
            let url = url::Url::parse(url).map_err(|e| SetupError::Webhook(e.to_string()))?;
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| SetupError::Webhook(e.to_string()))?;
            exporters.push(export::spawn_webhook(store.subscribe(), client, WebhookConfig::new(url)));
        }
        Ok(Records { store, auditors: cfg.auditors.clone(), recorder: RecorderConfig { record_stdin: cfg.record_stdin, ..RecorderConfig::default() }, exporters })
    }

    /// Events each exporter shipped and dropped, for status pages and tests.
    pub fn export_counts(&self) -> Vec<export::ExportCounts> {
        self.exporters.iter().map(Exporter::stats).collect()
    }

    /// Whether `groups` may read every user's records.
    pub fn is_auditor(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.auditors.contains(g))
    }

    /// Insert `record`; a failure is the 503 every caller returns instead of forwarding.
    pub async fn insert(&self, record: Record) -> Result<(), Status> {
        self.store.insert(record).await.map_err(|e| {
            tracing::error!(error = %e, "cannot write an audit record; refusing the request");
            Status::unavailable(format!("hoop-kube cannot write the audit record ({e}), so the request was not forwarded; the relay's operator must fix the records store"))
        })
    }
}

/// Counters a response's stages add to while it streams.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub masked: AtomicU64,
}

/// Completes one record once, by [`Completer::finish`]. A response body completes it when it
/// ends or is dropped (the client went away); a session when it ends.
pub struct Completer {
    store: Store,
    id: String,
    t0: Instant,
    code: u16,
    pub counters: Arc<Counters>,
}

impl Completer {
    pub fn new(store: Store, id: String, t0: Instant, code: u16, counters: Arc<Counters>) -> Self {
        Completer { store, id, t0, code, counters }
    }

    fn completion(&self) -> Completion {
        Completion {
            code: self.code,
            completed: now_micros(),
            latency_us: self.t0.elapsed().as_micros() as u64,
            bytes_in: self.counters.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.counters.bytes_out.load(Ordering::Relaxed),
            masked: self.counters.masked.load(Ordering::Relaxed),
        }
    }

    /// Write the completion now.
    pub async fn finish(self) {
        let c = self.completion();
        if let Err(e) = self.store.complete(&self.id, c).await {
            tracing::error!(record = %self.id, error = %e, "cannot complete an audit record");
        }
    }
}

/// Put the record id on a response.
pub fn tag(headers: &mut HeaderMap, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert(AUDIT_ID, v);
    }
}

/// Wrap a response body so its bytes are counted and the record completes when it ends.
pub fn complete_on_end(resp: Response<Body>, completer: Completer) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let counted = Counted { inner: body, completer: Some(completer) };
    Response::from_parts(parts, http_body_util::BodyExt::boxed(counted))
}

struct Counted {
    inner: Body,
    completer: Option<Completer>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(c)) = (frame.data_ref(), &self.completer) {
                    c.counters.bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(c) = self.completer.take() {
                    tokio::spawn(c.finish());
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    /// The client went away (or hyper stopped polling after the end): complete with what was sent.
    fn drop(&mut self) {
        if let (Some(c), Ok(rt)) = (self.completer.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(c.finish());
        }
    }
}
