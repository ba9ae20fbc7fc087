//! Watch: a chunked stream of `{"type":…,"object":…}` lines, as kube-apiserver serves it.
//!
//! Supports `?watch=1` and the legacy `/watch/` path, `resourceVersion` (unset and `0` start
//! with synthetic ADDED events for the current state, a number resumes after it, an expired one
//! gets an `ERROR` event with a 410 `Expired` Status), `allowWatchBookmarks`, `timeoutSeconds`,
//! watch-list (`sendInitialEvents=true`, ending the initial state with a BOOKMARK annotated
//! `k8s.io/initial-events-end`), selectors, single-object watches, and Table events when asked.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::crud::{resource_key, Selection};
use super::resources::ResourceDef;
use crate::respond::{self, Body};
use super::server::Ctx;
use super::store::{Change, ChangeType, WatchStart};
use super::table::{table, IncludeObject};
use crate::kube::media::{negotiate_object, Representation};
use crate::kube::status::Status;

struct Filter {
    namespace: Option<String>,
    name: Option<String>,
    selection: Selection,
    resource: String,
}

impl Filter {
    fn matches(&self, c: &Change) -> bool {
        c.key.resource == self.resource
            && self.namespace.as_ref().is_none_or(|ns| &c.key.namespace == ns)
            && self.name.as_ref().is_none_or(|n| &c.key.name == n)
            && self.selection.matches(&c.object)
    }
}

struct Encoder {
    def: &'static ResourceDef,
    table: Option<(&'static str, IncludeObject)>,
}

impl Encoder {
    fn event(&self, kind: &str, obj: &Value) -> Bytes {
        let mut typed = obj.clone();
        typed["kind"] = json!(self.def.kind);
        typed["apiVersion"] = json!(self.def.api_version());
        let object = match self.table {
            Some((v, include)) => {
                let rv = obj["metadata"]["resourceVersion"].clone();
                let rows: Vec<&Value> = if kind == "BOOKMARK" { vec![] } else { vec![obj] };
                table(self.def.kind, &self.def.api_version(), &rows, include, v, json!({"resourceVersion": rv}))
            }
            None => typed,
        };
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.event("BOOKMARK", &json!({"metadata": meta}))
    }
}

fn parse_rv(s: &str) -> Result<u64, Status> {
    s.parse().map_err(|_| Status::bad_request(format!("resourceVersion: Invalid value: \"{s}\": must be a valid resourceVersion")))
}

/// Serve a watch.
pub fn handle(ctx: &Ctx, def: &'static ResourceDef, headers: &HeaderMap) -> Result<Response<Body>, Status> {
    let selection = Selection::from_ctx(ctx, def)?;
    let filter = Filter {
        namespace: (def.namespaced && !ctx.info.namespace.is_empty()).then(|| ctx.info.namespace.clone()),
        name: (!ctx.info.name.is_empty()).then(|| ctx.info.name.clone()),
        selection,
        resource: resource_key(def),
    };
    let table_rep = match negotiate_object(headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok())) {
        Representation::Table(v) => Some((v, IncludeObject::parse(ctx.query("includeObject").as_deref()).map_err(Status::bad_request)?)),
        _ => None,
    };
    let enc = Encoder { def, table: table_rep };
    let bookmarks = ctx.query_bool("allowWatchBookmarks");
    let send_initial = ctx.query_bool("sendInitialEvents");
    if send_initial && !bookmarks {
        return Err(Status::invalid("ListOptions.meta.k8s.io", "", vec![crate::kube::status::StatusCause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true".into(),
            field: "allowWatchBookmarks".into(),
        }]));
    }
    let timeout = match ctx.query("timeoutSeconds") {
        Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| Status::bad_request(format!("timeoutSeconds: Invalid value: \"{t}\"")))?)),
        None => None,
    };
    let rv = ctx.query("resourceVersion").filter(|r| !r.is_empty() && r != "0");
    let requested = rv.as_deref().map(parse_rv).transpose()?;

    let txn = ctx.state.store.txn();
    let mut initial: Vec<Bytes> = Vec::new();
    let start_rv;
    let (start, rx) = match requested {
        Some(rv) if !send_initial => {
            start_rv = rv;
            txn.watch_from(rv)
        }
        _ => {
            start_rv = txn.rv();
            for (k, o) in txn.list(&filter.resource, filter.namespace.as_deref()) {
                let c = Change { rv: 0, kind: ChangeType::Added, key: k, object: o };
                if filter.matches(&c) {
                    initial.push(enc.event("ADDED", &c.object));
                }
            }
            if send_initial {
                initial.push(enc.bookmark(start_rv, true));
            }
            txn.watch_from(start_rv)
        }
    };
    drop(txn);
    let replay = match start {
        WatchStart::Replay(r) => r,
        WatchStart::Expired { requested, oldest } => {
            let status = Status::expired(format!("too old resource version: {requested} ({})", oldest.saturating_sub(1)));
            initial.push(Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": status.to_value()}))));
            let (tx, body_rx) = mpsc::channel(4);
            tokio::spawn(async move {
                for b in initial {
                    let _ = tx.send(b).await;
                }
            });
            return Ok(respond::stream("application/json", body_rx));
        }
    };
    let (tx, body_rx) = mpsc::channel(64);
    let interval = ctx.state.config.bookmark_interval;
    tokio::spawn(run(tx, rx, initial, replay, filter, enc, bookmarks, timeout, interval, start_rv));
    Ok(respond::stream("application/json", body_rx))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    tx: mpsc::Sender<Bytes>,
    mut rx: broadcast::Receiver<Change>,
    initial: Vec<Bytes>,
    replay: Vec<Change>,
    filter: Filter,
    enc: Encoder,
    bookmarks: bool,
    timeout: Option<Duration>,
    interval: Duration,
    mut last_rv: u64,
) {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let send_all = async {
        for b in initial {
            tx.send(b).await.ok()?;
        }
        for c in replay {
            last_rv = c.rv;
            if filter.matches(&c) {
                tx.send(enc.event(c.kind.as_str(), &c.object)).await.ok()?;
            }
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                c = rx.recv() => match c {
                    Ok(c) => {
                        if c.rv <= last_rv { continue; }
                        last_rv = c.rv;
                        if filter.matches(&c) {
                            tx.send(enc.event(c.kind.as_str(), &c.object)).await.ok()?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let status = Status::expired("the watch fell behind and was closed; re-list and watch again");
                        let _ = tx.send(Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": status.to_value()})))).await;
                        return None::<()>;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = tick.tick(), if bookmarks => {
                    tx.send(enc.bookmark(last_rv, false)).await.ok()?;
                }
                _ = tx.closed() => return None,
            }
        }
    };
    match deadline {
        Some(d) => {
            let _ = tokio::time::timeout_at(d, send_all).await;
        }
        None => {
            send_all.await;
        }
    }
}
