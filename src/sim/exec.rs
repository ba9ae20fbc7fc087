//! `pods/exec` and `pods/attach`, over WebSocket (`v5`/`v4`/`v4.base64.channel.k8s.io`) and
//! over SPDY/3.1 (`v4.channel.k8s.io` and older names offered by kubectl).
//!
//! The session is transport-independent: stdin, stdout, stderr and resize are channels; a
//! transport adapter moves them on and off the wire and ends with the exit status on the error
//! channel (`Success`, or `NonZeroExitCode` with the code as a cause, exactly as the kubelet
//! words it) followed by a normal close. A WebSocket offer with no protocol we speak is refused
//! with a non-101 answer, which is what makes kubectl fall back to SPDY.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::pods::Container;
use super::resources::ResourceDef;
use crate::respond::{self, Body};
use super::server::Ctx;
use super::shell::{self, ExecEnv, ExecIo};
use super::spdy_conn;
use crate::kube::request_info::query_all;
use crate::kube::status::{Status, Target};
use crate::kube::wire::websocket::{self as ws, ResizeStream, StreamProtocol};

/// What the client asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub command: Vec<String>,
    pub container: Arc<Container>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub attach: bool,
    pub hostname: String,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("name", &self.name).finish()
    }
}

/// The outcome of a session, as sent on the error channel.
fn exit_status(code: i32) -> Bytes {
    let v = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure", "message": format!("command terminated with non-zero exit code: exit status {code}"),
               "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    Bytes::from(v.to_string())
}

/// Channels of one session, seen from the transport.
struct Wire {
    stdin: Option<mpsc::Sender<Bytes>>,
    resize: mpsc::Sender<(u16, u16)>,
    /// (channel, data) to send to the client; closes when the process has no more output.
    out: mpsc::Receiver<(u8, Bytes)>,
    /// The exit code, after all output.
    done: oneshot::Receiver<i32>,
}

/// Start the process (exec) or join the container's main process (attach).
fn start(opts: Options) -> Wire {
    let (out_tx, out_rx) = mpsc::channel::<(u8, Bytes)>(64);
    let (resize_tx, mut resize_rx) = mpsc::channel::<(u16, u16)>(8);
    let (done_tx, done_rx) = oneshot::channel();
    let (stdin_tx, stdin_rx) = if opts.stdin { let (t, r) = mpsc::channel(64); (Some(t), Some(r)) } else { (None, None) };
    let forward = |ch: u8, out: mpsc::Sender<(u8, Bytes)>| {
        let (tx, mut rx) = mpsc::channel::<Bytes>(64);
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if out.send((ch, b)).await.is_err() {
                    break;
                }
            }
        });
        tx
    };
    if opts.attach {
        let c = opts.container.clone();
        tokio::spawn(async move {
            let mut live = c.output.subscribe();
            let mut exited = c.exited.clone();
            // stdin → the main process, if it has one.
            if let Some(mut rx) = stdin_rx {
                let c2 = c.clone();
                tokio::spawn(async move {
                    while let Some(b) = rx.recv().await {
                        let tx = c2.stdin.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        match tx {
                            Some(tx) => {
                                if tx.send(b).await.is_err() {
                                    break;
                                }
                            }
                            None => break,
                        }
                    }
                    if c2.stdin_once {
                        c2.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
                    }
                });
            }
            let c3 = c.clone();
            tokio::spawn(async move {
                while let Some((w, h)) = resize_rx.recv().await {
                    let _ = c3.resize.send(Some((w, h)));
                }
            });
            let code = loop {
                if let Some(code) = *exited.borrow() {
                    break code;
                }
                tokio::select! {
                    chunk = live.recv() => match chunk {
                        Ok(b) => { if opts.stdout && out_tx.send((ws::STDOUT, b)).await.is_err() { return; } }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break exited.borrow().unwrap_or(0),
                    },
                    r = exited.changed() => { if r.is_err() { break 0; } }
                }
            };
            // Drain what the process wrote just before it ended.
            while let Ok(b) = live.try_recv() {
                if opts.stdout {
                    let _ = out_tx.send((ws::STDOUT, b)).await;
                }
            }
            drop(out_tx);
            let _ = done_tx.send(code);
        });
    } else {
        let c = opts.container.clone();
        let stdout = forward(ws::STDOUT, out_tx.clone());
        let stderr = if opts.tty { stdout.clone() } else { forward(ws::STDERR, out_tx.clone()) };
        drop(out_tx);
        let (size_tx, size_rx) = watch::channel(None);
        tokio::spawn(async move {
            while let Some(s) = resize_rx.recv().await {
                let _ = size_tx.send(Some(s));
            }
        });
        tokio::spawn(async move {
            let env = ExecEnv { env: c.env.lock().unwrap_or_else(|p| p.into_inner()).clone(), hostname: opts.hostname.clone(), fs: c.fs.clone() };
            let io = ExecIo { stdin: stdin_rx, stdout, stderr, resize: size_rx, tty: opts.tty };
            let code = shell::run(opts.command, &env, io).await;
            let _ = done_tx.send(code);
        });
    }
    Wire { stdin: stdin_tx, resize: resize_tx, out: out_rx, done: done_rx }
}

fn bad(msg: impl Into<String>) -> Status {
    Status::bad_request(msg)
}

/// Parse and check the request against the stored pod.
fn options(ctx: &Ctx) -> Result<Options, Status> {
    let attach = ctx.info.subresource == "attach";
    let q = ctx.query_str();
    let command = query_all(q, "command");
    let stdin = ctx.query_bool("stdin");
    let stdout = ctx.query_bool("stdout");
    let stderr = ctx.query_bool("stderr");
    let tty = ctx.query_bool("tty");
    if !attach && command.is_empty() {
        return Err(bad("you must specify at least 1 command"));
    }
    if !(stdin || stdout || stderr) {
        return Err(bad("you must specify at least one of stdin, stdout, stderr"));
    }
    let key = super::store::Key { resource: "/pods".into(), namespace: ctx.info.namespace.clone(), name: ctx.info.name.clone() };
    let pod = ctx.state.store.txn().get(&key).ok_or_else(|| Status::not_found(Target { group: "", resource: "pods", name: &ctx.info.name }))?;
    let rt = ctx.state.pods.get(&pod).ok_or_else(|| bad(format!("pod {} is not running", ctx.info.name)))?;
    let names: Vec<String> = rt.containers.iter().map(|c| c.name.clone()).collect();
    let container = match ctx.query("container") {
        Some(c) if !c.is_empty() => rt.container(&c).ok_or_else(|| bad(format!("container {c} is not valid for pod {}", ctx.info.name)))?,
        _ if names.len() == 1 => rt.containers[0].clone(),
        _ => return Err(bad(format!("a container name must be specified for pod {}, choose one of: [{}]", ctx.info.name, names.join(" ")))),
    };
    Ok(Options { command, container, stdin, stdout, stderr, tty, attach, hostname: rt.hostname.clone() })
}

/// Serve exec or attach.
pub async fn handle(ctx: &mut Ctx, _def: &ResourceDef, mut req: Request<Incoming>) -> Result<Response<Body>, Status> {
    let upgrade = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if upgrade == "websocket" {
        let offered: Vec<String> = req.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
        let proto = StreamProtocol::negotiate(offered.iter().map(String::as_str), &[StreamProtocol::V5, StreamProtocol::V4, StreamProtocol::V4Base64]);
        ctx.entry.upgrade = "websocket".into();
        let Some(proto) = proto else {
            return Err(bad(format!("unable to upgrade: none of the offered subprotocols {offered:?} is supported (v5.channel.k8s.io, v4.channel.k8s.io, v4.base64.channel.k8s.io)")));
        };
        let opts = options(ctx)?;
        ctx.entry.protocol = proto.name().into();
        let resp = websocket_accept(&req, proto.name())?;
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(up) => {
                    let wsock = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                    serve_websocket(wsock, proto, start(opts)).await;
                }
                Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
            }
        });
        return Ok(resp);
    }
    if upgrade == "spdy/3.1" {
        ctx.entry.upgrade = "spdy".into();
        let offered: Vec<String> = req.headers().get_all("x-stream-protocol-version").iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
        let proto = ["v5.channel.k8s.io", "v4.channel.k8s.io"].into_iter().find(|p| offered.iter().any(|o| o.split(',').any(|x| x.trim() == *p)));
        let Some(proto) = proto else {
            return Err(Status::forbidden(format!("unable to upgrade: no common stream protocol in {offered:?} (this server speaks v4.channel.k8s.io and v5.channel.k8s.io)")));
        };
        let opts = options(ctx)?;
        ctx.entry.protocol = proto.into();
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(up) => serve_spdy(TokioIo::new(up), opts).await,
                Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
            }
        });
        return Ok(spdy_switching(proto));
    }
    Err(bad("Upgrade request required"))
}

/// The 101 answer to a SPDY upgrade.
pub fn spdy_switching(proto: &str) -> Response<Body> {
    let mut r = Response::new(respond::full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Ok(v) = HeaderValue::from_str(proto) {
        h.insert("x-stream-protocol-version", v);
    }
    r
}

/// The 101 answer to a WebSocket upgrade.
pub fn websocket_accept(req: &Request<Incoming>, protocol: &str) -> Result<Response<Body>, Status> {
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).ok_or_else(|| bad("missing Sec-WebSocket-Key"))?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(respond::full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).map_err(|_| bad("bad key"))?);
    h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(protocol).map_err(|_| bad("bad protocol"))?);
    Ok(r)
}

/// How long a WebSocket exec's first output waits for the client to speak (see below).
const FIRST_OUTPUT_WAIT: Duration = Duration::from_millis(100);

async fn serve_websocket<S>(wsock: WebSocketStream<S>, proto: StreamProtocol, wire: Wire)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = wsock.split();
    let Wire { stdin, resize, mut out, done } = wire;
    let encode = move |ch: u8, data: &[u8]| if proto.is_base64() { Message::Text(ws::encode_text(ch, data).into()) } else { Message::Binary(ws::encode(ch, data)) };
    // client-go's WebSocket executor starts reading before it has registered its streams, and
    // drops what arrives in between ("Unknown stream id 1, discarding message"). A container's
    // first output never follows the upgrade that closely on a real node; here the shell's prompt
    // would. So output waits for the client's first frame (kubectl -it sends a resize as soon as
    // its streams exist), or at most FIRST_OUTPUT_WAIT.
    let client_spoke = Arc::new(tokio::sync::Notify::new());
    let spoke = client_spoke.clone();
    let reader = tokio::spawn(async move {
        let mut stdin = stdin;
        let mut first = true;
        while let Some(Ok(msg)) = stream.next().await {
            if std::mem::take(&mut first) {
                spoke.notify_one();
            }
            let (ch, payload) = match &msg {
                Message::Binary(b) => match ws::decode(b) {
                    Ok((c, p)) => (c, p.to_vec()),
                    Err(_) => continue,
                },
                Message::Text(t) if proto.is_base64() => match ws::decode_text(t) {
                    Ok(x) => x,
                    Err(_) => continue,
                },
                Message::Close(_) => break,
                _ => continue,
            };
            match ch {
                ws::STDIN => {
                    if let Some(tx) = &stdin {
                        if tx.send(Bytes::from(payload)).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                ws::RESIZE => {
                    if let Ok(s) = ws::parse_resize(&payload) {
                        let _ = resize.send((s.width, s.height)).await;
                    }
                }
                ws::CLOSE if proto == StreamProtocol::V5 && payload.first() == Some(&ws::STDIN) => stdin = None,
                _ => {}
            }
        }
    });
    let mut wrote = false;
    while let Some((ch, data)) = out.recv().await {
        if !wrote {
            let _ = tokio::time::timeout(FIRST_OUTPUT_WAIT, client_spoke.notified()).await;
        }
        wrote = true;
        if sink.send(encode(ch, &data)).await.is_err() {
            reader.abort();
            return;
        }
    }
    let code = done.await.unwrap_or(1);
    if wrote {
        // client-go's WebSocket executor (seen with kubectl 1.30) can stop copying stdout once
        // the status arrives; a kubelet's status never follows its output this closely.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = sink.send(encode(ws::ERROR, &exit_status(code))).await;
    let _ = sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
    // Let the client read the close and answer it, then drop the connection.
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
}

async fn serve_spdy<IO>(io: IO, opts: Options)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut session = spdy_conn::serve(io);
    let want = |t: &str| match t {
        "error" => true,
        "stdin" => opts.stdin,
        "stdout" => opts.stdout,
        "stderr" => opts.stderr && !opts.tty,
        "resize" => opts.tty,
        _ => false,
    };
    let needed = ["error", "stdin", "stdout", "stderr", "resize"].iter().filter(|t| want(t)).count();
    let mut streams: Vec<spdy_conn::SpdyStream> = Vec::new();
    let collect = async {
        while streams.len() < needed {
            let s = session.streams.recv().await?;
            let t = s.headers.get("streamtype").unwrap_or("").to_string();
            if want(&t) && !streams.iter().any(|x| x.headers.get("streamtype") == Some(t.as_str())) {
                streams.push(s);
            } else {
                s.writer.reset().await;
            }
        }
        Some(())
    };
    if tokio::time::timeout(Duration::from_secs(30), collect).await.ok().flatten().is_none() {
        tracing::debug!("exec: the client did not open the expected streams");
        session.goaway().await;
        return;
    }
    let mut take = |t: &str| streams.iter().position(|s| s.headers.get("streamtype") == Some(t)).map(|i| streams.swap_remove(i));
    let error = take("error");
    let stdin = take("stdin");
    let stdout = take("stdout");
    let stderr = take("stderr");
    let resize = take("resize");
    let Wire { stdin: stdin_tx, resize: resize_tx, mut out, done } = start(opts);
    if let (Some(mut s), Some(tx)) = (stdin, stdin_tx) {
        tokio::spawn(async move {
            while let Some(b) = s.rx.recv().await {
                if tx.send(b).await.is_err() {
                    break;
                }
            }
        });
    }
    if let Some(mut r) = resize {
        tokio::spawn(async move {
            let mut parser = ResizeStream::default();
            while let Some(b) = r.rx.recv().await {
                match parser.feed(&b) {
                    Ok(sizes) => {
                        for s in sizes {
                            let _ = resize_tx.send((s.width, s.height)).await;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
    }
    while let Some((ch, data)) = out.recv().await {
        let w = if ch == ws::STDERR { stderr.as_ref() } else { stdout.as_ref() };
        if let Some(w) = w {
            if w.writer.send(data).await.is_err() {
                return;
            }
        }
    }
    let code = done.await.unwrap_or(1);
    for s in [&stdout, &stderr].into_iter().flatten() {
        s.writer.finish().await;
    }
    if let Some(e) = &error {
        if code != 0 {
            let _ = e.writer.send(exit_status(code)).await;
        }
        e.writer.finish().await;
    }
    // The client closes the connection once it has read everything.
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while session.streams.recv().await.is_some() {} }).await;
}
