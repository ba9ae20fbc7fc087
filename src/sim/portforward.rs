//! `pods/portforward`: SPDY/3.1 (raw, after an HTTP/1.1 upgrade) and SPDY tunnelled in a
//! WebSocket (`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31 by default).
//!
//! For each forwarded connection kubectl opens an `error` and a `data` stream carrying the same
//! `port` and `requestID` headers. Each data stream is connected to the TCP target configured
//! for that pod port (by default a built-in echo service), bytes flow both ways, a client FIN
//! half-closes the TCP side, and when the target is done the data and error streams are
//! finished — kubectl waits for the error stream's end before it closes the local connection.
//! A failure to connect is reported as text on the error stream, as the kubelet does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::exec::{spdy_switching, websocket_accept};
use crate::respond::Body;
use super::server::Ctx;
use super::spdy_conn::{self, SpdyStream};
use crate::kube::status::{Status, Target};
use crate::kube::wire::websocket::StreamProtocol;

/// The built-in echo service: every pod port forwards here unless configured otherwise.
pub async fn start_echo() -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// Serve port-forward.
pub async fn handle(ctx: &mut Ctx, mut req: Request<Incoming>) -> Result<Response<Body>, Status> {
    let key = super::store::Key { resource: "/pods".into(), namespace: ctx.info.namespace.clone(), name: ctx.info.name.clone() };
    if ctx.state.store.txn().get(&key).is_none() {
        return Err(Status::not_found(Target { group: "", resource: "pods", name: &ctx.info.name }));
    }
    let targets: HashMap<u16, SocketAddr> = ctx.state.config.port_targets.iter().copied().collect();
    let echo = ctx.state.echo_addr;
    let upgrade = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if upgrade == "websocket" {
        ctx.entry.upgrade = "websocket".into();
        let offered: Vec<String> = req.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
        if StreamProtocol::negotiate(offered.iter().map(String::as_str), &[StreamProtocol::SpdyTunnel]).is_none() {
            return Err(Status::bad_request(format!("unable to upgrade: port-forward over WebSocket needs the SPDY/3.1+portforward.k8s.io subprotocol, offered {offered:?}")));
        }
        let proto = StreamProtocol::SpdyTunnel.name();
        ctx.entry.protocol = proto.into();
        let resp = websocket_accept(&req, proto)?;
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on_upgrade.await {
                let wsock = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                let (ours, theirs) = tokio::io::duplex(256 * 1024);
                tokio::spawn(tunnel(wsock, theirs));
                serve(ours, targets, echo).await;
            }
        });
        return Ok(resp);
    }
    if upgrade == "spdy/3.1" {
        ctx.entry.upgrade = "spdy".into();
        let offered: Vec<String> = req.headers().get_all("x-stream-protocol-version").iter().filter_map(|v| v.to_str().ok().map(str::to_string)).collect();
        if !offered.iter().any(|o| o.split(',').any(|p| p.trim() == "portforward.k8s.io")) {
            return Err(Status::forbidden(format!("unable to upgrade: no common stream protocol in {offered:?} (this server speaks portforward.k8s.io)")));
        }
        ctx.entry.protocol = "portforward.k8s.io".into();
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on_upgrade.await {
                serve(TokioIo::new(up), targets, echo).await;
            }
        });
        return Ok(spdy_switching("portforward.k8s.io"));
    }
    Err(Status::bad_request("Upgrade request required"))
}

/// Move a WebSocket's binary messages to and from a byte stream. SPDY frames may be split
/// across messages arbitrarily (even zero-length ones); the byte stream hides that.
async fn tunnel<S>(wsock: WebSocketStream<S>, bytes: tokio::io::DuplexStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = wsock.split();
    let (mut rd, mut wr) = tokio::io::split(bytes);
    let up = async {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    };
    tokio::join!(up, down);
}

async fn serve<IO>(io: IO, targets: HashMap<u16, SocketAddr>, echo: SocketAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let mut session = spdy_conn::serve(io);
    // requestID → the error stream, waiting for its data stream (or the other way round).
    let mut errors: HashMap<String, SpdyStream> = HashMap::new();
    let mut datas: HashMap<String, SpdyStream> = HashMap::new();
    while let Some(s) = session.streams.recv().await {
        let rid = s.headers.get("requestid").unwrap_or("").to_string();
        match s.headers.get("streamtype") {
            Some("error") => {
                if let Some(d) = datas.remove(&rid) {
                    tokio::spawn(forward(s, d, targets.clone(), echo));
                } else {
                    errors.insert(rid, s);
                }
            }
            Some("data") => {
                if let Some(e) = errors.remove(&rid) {
                    tokio::spawn(forward(e, s, targets.clone(), echo));
                } else {
                    datas.insert(rid, s);
                }
            }
            _ => s.writer.reset().await,
        }
    }
}

async fn forward(error: SpdyStream, data: SpdyStream, targets: HashMap<u16, SocketAddr>, echo: SocketAddr) {
    let port: Option<u16> = data.headers.get("port").and_then(|p| p.parse().ok()).filter(|p| *p > 0);
    let Some(port) = port else {
        let _ = error.writer.send(Bytes::from(format!("invalid port {:?}", data.headers.get("port")))).await;
        error.writer.finish().await;
        data.writer.finish().await;
        return;
    };
    let target = targets.get(&port).copied().unwrap_or(echo);
    let tcp = match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(target)).await {
        Ok(Ok(t)) => t,
        _ => {
            let msg = format!("error forwarding port {port} to pod: failed to connect to localhost:{port}: connection refused");
            let _ = error.writer.send(Bytes::from(msg)).await;
            error.writer.finish().await;
            data.writer.finish().await;
            return;
        }
    };
    let (mut tr, mut tw) = tcp.into_split();
    let SpdyStream { rx: mut data_rx, writer, .. } = data;
    let up = async {
        while let Some(b) = data_rx.recv().await {
            if tw.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = tw.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match tr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
        writer.finish().await;
    };
    tokio::join!(up, down);
    error.writer.finish().await;
}
