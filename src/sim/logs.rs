//! `pods/log`: a container's output as `text/plain`, with `follow`, `tailLines`, `timestamps`,
//! `sinceSeconds` and `limitBytes`, streamed chunk by chunk while the container runs.

use bytes::{Bytes, BytesMut};
use http::Response;
use tokio::sync::mpsc;

use super::pods::LogLine;
use crate::respond::{self, Body};
use super::server::Ctx;
use crate::kube::status::{Status, Target};

/// Largest chunk a log stream sends at once.
const CHUNK: usize = 64 * 1024;

fn number(ctx: &Ctx, key: &str) -> Result<Option<i64>, Status> {
    ctx.query(key).map(|v| v.parse::<i64>().map_err(|_| Status::bad_request(format!("{key}: Invalid value: \"{v}\"")))).transpose()
}

fn render(line: &LogLine, timestamps: bool) -> Bytes {
    if !timestamps {
        return line.data.clone();
    }
    let mut b = BytesMut::new();
    b.extend_from_slice(line.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).as_bytes());
    b.extend_from_slice(b" ");
    b.extend_from_slice(&line.data);
    b.freeze()
}

/// Writes log lines to the response in chunks of up to [`CHUNK`] bytes (as a kubelet streams a
/// log file, not one frame per line), honouring `limitBytes`.
struct LogWriter {
    tx: mpsc::Sender<Bytes>,
    sent: usize,
    limit: Option<usize>,
    timestamps: bool,
}

impl LogWriter {
    /// Send `lines`; `false` when the stream must end (limit reached or client gone).
    async fn send(&mut self, lines: &[LogLine]) -> bool {
        let mut chunk = BytesMut::new();
        let mut more = true;
        for l in lines {
            let mut b = render(l, self.timestamps);
            if let Some(limit) = self.limit {
                if self.sent >= limit {
                    more = false;
                    break;
                }
                b.truncate(limit - self.sent);
            }
            self.sent += b.len();
            chunk.extend_from_slice(&b);
            if chunk.len() >= CHUNK && self.tx.send(chunk.split().freeze()).await.is_err() {
                return false;
            }
        }
        if !chunk.is_empty() && self.tx.send(chunk.freeze()).await.is_err() {
            return false;
        }
        more && self.limit.is_none_or(|l| self.sent < l)
    }
}

/// Serve a log request.
pub fn handle(ctx: &Ctx) -> Result<Response<Body>, Status> {
    if ctx.info.verb != "get" {
        return Err(Status::method_not_allowed(&ctx.info.verb));
    }
    let key = super::store::Key { resource: "/pods".into(), namespace: ctx.info.namespace.clone(), name: ctx.info.name.clone() };
    let pod = ctx.state.store.txn().get(&key).ok_or_else(|| Status::not_found(Target { group: "", resource: "pods", name: &ctx.info.name }))?;
    let rt = ctx.state.pods.get(&pod).ok_or_else(|| Status::bad_request(format!("pod {} is not running", ctx.info.name)))?;
    let names: Vec<String> = rt.containers.iter().map(|c| c.name.clone()).collect();
    let container = match ctx.query("container") {
        Some(c) if !c.is_empty() => rt.container(&c).ok_or_else(|| Status::bad_request(format!("container {c} is not valid for pod {}", ctx.info.name)))?,
        _ if names.len() == 1 => rt.containers[0].clone(),
        _ => return Err(Status::bad_request(format!("a container name must be specified for pod {}, choose one of: [{}]", ctx.info.name, names.join(" ")))),
    };
    if ctx.query_bool("previous") {
        return Err(Status::bad_request(format!("previous terminated container \"{}\" in pod \"{}\" not found", container.name, ctx.info.name)));
    }
    let follow = ctx.query_bool("follow");
    let timestamps = ctx.query_bool("timestamps");
    let tail = number(ctx, "tailLines")?;
    let since = number(ctx, "sinceSeconds")?;
    let limit = number(ctx, "limitBytes")?.map(|l| l.max(0) as usize);
    if since.is_some_and(|s| s < 1) {
        return Err(Status::bad_request("sinceSeconds: Invalid value: must be greater than 0"));
    }

    let log = container.log.clone();
    let mut progress = log.subscribe();
    let mut lines = log.since(0);
    let mut next = lines.len();
    if let Some(s) = since {
        let cutoff = chrono::Utc::now() - chrono::Duration::seconds(s);
        lines.retain(|l| l.time >= cutoff);
    }
    if let Some(t) = tail {
        let t = t.max(0) as usize;
        if lines.len() > t {
            lines.drain(..lines.len() - t);
        }
    }
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut out = LogWriter { tx, sent: 0, limit, timestamps };
        if !out.send(&lines).await || !follow {
            return;
        }
        loop {
            let (count, finished) = *progress.borrow_and_update();
            if count > next {
                let new = log.since(next);
                next += new.len();
                if !out.send(&new).await {
                    return;
                }
                continue;
            }
            if finished {
                return;
            }
            tokio::select! {
                r = progress.changed() => if r.is_err() { return },
                _ = out.tx.closed() => return,
            }
        }
    });
    Ok(respond::stream("text/plain", rx))
}
