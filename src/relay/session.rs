//! exec, attach and port-forward after the `101`: the relay joins client and cluster itself, so
//! that the session is recorded and, when the user's mask profile says so, its output masked.
//!
//! Why not a plain splice: the records promise covers what was typed and what came back. Each
//! chunk is read, decoded by the session [`Recorder`] (WebSocket `channel.k8s.io`, SPDY/3.1, the
//! port-forward tunnel) and only then written on, both directions through one owner so the
//! recorder sees them in read order. Downstream, the output masker ([`super::exec_mask`]) runs
//! first: **what is recorded is what the user saw**, masked. Events go to the store in order
//! through one writer task; the session ends with its summary (exit code, byte counts, ports).
//!
//! Fails closed: when the session cannot be recorded (the store refuses it, the recorder cannot
//! decode the stream, the output cannot be masked) both connections are closed — a session the
//! relay cannot account for does not go on.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Mutex};

use super::exec_mask::OutputMasker;
use super::records::Completer;
use crate::kube::wire::websocket::StreamProtocol;
use crate::mask::Replacer;
use crate::proxy::pass::UpgradeHook;
use crate::record::event::now_micros;
use crate::record::exec::{Direction, Recorder, RecorderConfig, SessionEvent, SessionKind, Transport};
use crate::record::{SessionInfo, Store};

/// Everything a session needs, decided before the request went upstream.
pub struct Plan {
    pub store: Store,
    pub record_id: String,
    pub session_id: String,
    pub kind: SessionKind,
    pub recorder: RecorderConfig,
    /// Secret values to replace in the output (exec/attach with a `logs` mask profile).
    pub mask: Option<Arc<Replacer>>,
    pub completer: Completer,
    /// An agent session's end signal: when it fires the session is cut (`agents stop`).
    pub ended: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The hook [`crate::proxy::pass::pass`] runs once both sides have switched protocols.
pub fn hook(plan: Plan) -> UpgradeHook {
    Box::new(move |client: Upgraded, upstream: Upgraded, resp: HeaderMap| Box::pin(run(plan, client, upstream, resp)))
}

/// The framing the cluster's `101` chose.
fn transport(resp: &HeaderMap) -> Option<Transport> {
    let upgrade = resp.get(http::header::UPGRADE)?.to_str().ok()?;
    if upgrade.eq_ignore_ascii_case("websocket") {
        let proto = resp.get("sec-websocket-protocol").and_then(|v| v.to_str().ok())?;
        let all = [StreamProtocol::V5, StreamProtocol::V4, StreamProtocol::V4Base64, StreamProtocol::SpdyTunnel];
        return StreamProtocol::negotiate([proto.trim()], &all).map(Transport::WebSocket);
    }
    if upgrade.to_ascii_uppercase().starts_with("SPDY/3.1") {
        let version = resp.get("x-stream-protocol-version").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let status_json = matches!(version, "v4.channel.k8s.io" | "v5.channel.k8s.io");
        return Some(Transport::Spdy { status_json });
    }
    None
}

/// One owner for both directions: the recorder (and the output masker) see bytes in read order.
struct Shared {
    recorder: Recorder,
    masker: Option<OutputMasker>,
    events: mpsc::UnboundedSender<Vec<SessionEvent>>,
}

impl Shared {
    fn flush(&mut self) {
        if self.recorder.should_flush() {
            let _ = self.events.send(self.recorder.take_events());
        }
    }
}

async fn run(plan: Plan, client: Upgraded, upstream: Upgraded, resp: HeaderMap) {
    let Plan { store, record_id, session_id, kind, recorder, mask, completer, ended } = plan;
    let counters = completer.counters.clone();
    session(store, &record_id, session_id, kind, recorder, mask, counters, client, upstream, resp, ended).await;
    // Whatever happened, the request's record is completed (a cut session included).
    completer.finish().await;
}

#[allow(clippy::too_many_arguments)]
async fn session(
    store: Store,
    record_id: &str,
    session_id: String,
    kind: SessionKind,
    recorder: RecorderConfig,
    mask: Option<Arc<Replacer>>,
    counters: Arc<super::records::Counters>,
    client: Upgraded,
    upstream: Upgraded,
    resp: HeaderMap,
    ended: Option<tokio::sync::watch::Receiver<bool>>,
) {
    let t0 = Instant::now();
    let started = now_micros();
    let cut = |why: &str| tracing::warn!(record = %record_id, session = %session_id, "{why}; the session was closed");
    let Some(transport) = transport(&resp) else {
        return cut("the session's protocol is not one the relay can record");
    };
    if let Err(e) = store.started(record_id, 101, started).await {
        return cut(&format!("cannot mark the audit record started ({e})"));
    }
    let info = SessionInfo { id: session_id.clone(), record_id: record_id.to_string(), kind, transport: transport.name(), started, ended: None, summary: None };
    if let Err(e) = store.session_begin(info).await {
        return cut(&format!("cannot record the session ({e})"));
    }
    let recorder = match Recorder::new(transport, kind, recorder) {
        Ok(r) => r,
        Err(e) => return cut(&format!("cannot record the session ({e})")),
    };
    let masker = match (mask, transport) {
        (Some(replacer), Transport::WebSocket(p)) => Some(OutputMasker::new(p, replacer)),
        (Some(_), _) => return cut("exec output over SPDY cannot be masked"),
        (None, _) => None,
    };
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Vec<SessionEvent>>();
    let writer = {
        let (store, id) = (store.clone(), session_id.clone());
        tokio::spawn(async move {
            while let Some(batch) = events_rx.recv().await {
                if let Err(e) = store.session_append(&id, batch).await {
                    tracing::error!(session = %id, error = %e, "cannot append session events");
                }
            }
        })
    };
    let shared = Arc::new(Mutex::new(Shared { recorder, masker, events: events_tx }));

    let (mut client_rd, mut client_wr) = tokio::io::split(TokioIo::new(client));
    let (mut up_rd, mut up_wr) = tokio::io::split(TokioIo::new(upstream));
    let up = {
        let shared = shared.clone();
        let counters = counters.clone();
        async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = match client_rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                {
                    let mut s = shared.lock().await;
                    if let Err(e) = s.recorder.feed(Direction::Upstream, &buf[..n], t0.elapsed()) {
                        return Err(format!("the client's stream cannot be recorded: {e}"));
                    }
                    s.flush();
                }
                counters.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                if up_wr.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = up_wr.shutdown().await;
            // The client finished sending; output may still come.
            std::future::pending::<Result<(), String>>().await
        }
    };
    let down = {
        let shared = shared.clone();
        let counters = counters.clone();
        async move {
            let mut buf = vec![0u8; 32 * 1024];
            let result = loop {
                let n = match up_rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break Ok(()),
                    Ok(n) => n,
                };
                let out = {
                    let mut s = shared.lock().await;
                    let out = match s.masker.as_mut().map(|m| m.feed(&buf[..n])) {
                        None => buf[..n].to_vec(),
                        Some(Ok(out)) => out,
                        Some(Err(e)) => break Err(format!("the output cannot be masked: {e}")),
                    };
                    if let Err(e) = s.recorder.feed(Direction::Downstream, &out, t0.elapsed()) {
                        break Err(format!("the output cannot be recorded: {e}"));
                    }
                    s.flush();
                    out
                };
                counters.bytes_out.fetch_add(out.len() as u64, Ordering::Relaxed);
                if !out.is_empty() && client_wr.write_all(&out).await.is_err() {
                    break Ok(());
                }
            };
            // What the masker still holds back goes out (and into the recording) at the end.
            if result.is_ok() {
                let mut s = shared.lock().await;
                if let Some(Ok(rest)) = s.masker.as_mut().map(OutputMasker::finish) {
                    if !rest.is_empty() && s.recorder.feed(Direction::Downstream, &rest, t0.elapsed()).is_ok() {
                        drop(s);
                        let _ = client_wr.write_all(&rest).await;
                    }
                }
            }
            let _ = client_wr.shutdown().await;
            result
        }
    };
    let outcome = tokio::select! {
        r = down => r,
        r = up => r,
        _ = super::agents::cut::ended(ended) => Err("the agent session was stopped".to_string()),
    };
    let Ok(shared) = Arc::try_unwrap(shared) else {
        tracing::error!(session = %session_id, "session state still shared at the end; summary not written");
        return;
    };
    let Shared { mut recorder, masker, events } = shared.into_inner();
    if let Err(why) = &outcome {
        cut(why);
        recorder.stop(why.clone());
    }
    if let Some(m) = &masker {
        counters.masked.fetch_add(m.replaced(), Ordering::Relaxed);
    }
    let (rest, summary) = recorder.finish(t0.elapsed());
    let _ = events.send(rest);
    drop(events);
    let _ = writer.await;
    if let Err(e) = store.session_end(&session_id, now_micros(), &summary).await {
        tracing::error!(session = %session_id, error = %e, "cannot end the session record");
    }
}
