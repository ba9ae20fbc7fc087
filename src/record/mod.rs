//! Records: one audit record per request, exec/attach/port-forward session recordings, their
//! store, their export, and the records API's wire types.
//!
//! Why it exists: the relay promises that every request is recorded before its response is
//! released, that exec/attach streams are recorded and replayable, and that records reach
//! existing audit pipelines (DESIGN.md, Records). This module is the I/O-light core of that
//! promise; the relay (`src/relay/`) wires it into the request path and the CLI reads it.
//!
//! One job per file:
//! - [`id`] — record and session ids (UUID v7: an audit `auditID`, sortable by time).
//! - [`event`] — [`Record`] and its `audit.k8s.io/v1` [`Event`] form.
//! - [`store`] — the SQLite store (WAL, one writer thread with group commit, live feed,
//!   retention); `store_sql` has its schema and statements, `store_writer` the writer.
//! - [`exec`] — session decoding from the spliced bytes (WebSocket `channel.k8s.io`, SPDY/3.1,
//!   the port-forward tunnel) and the per-session [`exec::Recorder`].
//! - [`asciicast`] — asciicast v2 writing (UTF-8 safe across chunks) and [`replay`] playback.
//! - [`export`] — sinks that ship audit Events: a JSON-lines file and an audit webhook.
//! - [`query`] — the records API's routes, query parameters and response types.
//! - [`client`] — the records API from the command line's side (`hoop-kube sessions`).
//!
//! What it trusts: identities, decisions and [`crate::kube::request_info::RequestInfo`] handed
//! in by the relay (never re-parsed here). What it rejects: anything malformed in the bytes it
//! decodes or the query strings it parses, with typed errors.

pub mod asciicast;
pub mod client;
pub mod event;
pub mod exec;
pub mod export;
pub mod id;
pub mod query;
pub mod replay;
pub mod store;
mod store_sql;
mod store_writer;

pub use event::{Decision, Event, EventList, Record, Stage};
pub use store::{
    Completion, Feed, FeedEvent, FeedItem, RecordFilter, SessionInfo, Store, StoreConfig,
    StoreError,
};
