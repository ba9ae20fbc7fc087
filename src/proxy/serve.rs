//! The TLS accept loop shared by the simulator, the relay and the forwarder.
//!
//! Accept, set `TCP_NODELAY`, do the TLS handshake, compute per-connection facts once (the
//! client certificate's identity is parsed here, not per request), and serve the connection with
//! hyper (HTTP/2 or HTTP/1.1 by ALPN, upgrades enabled, [`super::MAX_CONCURRENT_STREAMS`]).
//! When `stop` turns true the listener and every open connection close at once.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::respond::Body;

/// Resolves when `stop` turns true; never, if its sender is gone without doing so.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A receiver for servers that run until the process ends.
pub fn never_stop() -> watch::Receiver<bool> {
    watch::channel(false).1
}

/// Serve TLS connections on `listener` until `stop`. `connect` turns the finished handshake into
/// per-connection facts; `handle` answers each request with them.
pub async fn serve_tls<C, I, H, Fut>(listener: TcpListener, tls: Arc<rustls::ServerConfig>, stop: watch::Receiver<bool>, connect: I, handle: H)
where
    C: Send + Sync + 'static,
    I: Fn(&rustls::ServerConnection) -> C + Clone + Send + Sync + 'static,
    H: Fn(Arc<C>, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut stop_accept = stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped(&mut stop_accept) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, connect, handle, mut stop_conn) = (acceptor.clone(), connect.clone(), handle.clone(), stop.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
            };
            let facts = Arc::new(connect(tls.get_ref().1));
            let svc = hyper::service::service_fn(move |req| {
                let (handle, facts) = (handle.clone(), facts.clone());
                async move { Ok::<_, Infallible>(handle(facts, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Generous transport limits; each server's own limits answer with a Status first.
            builder.http1().max_buf_size(1024 * 1024);
            builder.http2().max_header_list_size(1024 * 1024).max_concurrent_streams(super::MAX_CONCURRENT_STREAMS);
            tokio::select! {
                r = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stopped(&mut stop_conn) => {}
            }
        });
    }
}
