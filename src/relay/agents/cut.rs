//! The kill switch's reach into open streams: when an agent session is revoked or stopped, its
//! watches and `logs -f` (response bodies) and its exec, attach and port-forward connections
//! (upgrades) end at once instead of running on with the credential already dead.
//!
//! Each is tied to the session's `ended` signal ([`super::registry::Live`]): a body ends with an
//! error (hyper resets the stream or closes the connection, so the client sees the cut, never a
//! clean end it could mistake for "no more events"), and an upgrade's copy loop is dropped,
//! which closes both connections.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::Frame;
use tokio::sync::watch;

use crate::proxy::pass::{Upgrade, UpgradeHook};
use crate::respond::{Body, BoxError};

/// Resolves when the session ends; never without a session, or when its registry is gone with
/// the relay.
pub async fn ended(rx: Option<watch::Receiver<bool>>) {
    if let Some(mut rx) = rx {
        if rx.wait_for(|ended| *ended).await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// The error a cut body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the agent session was stopped; the stream was cut")]
pub struct Cut;

/// `resp` whose body ends with [`Cut`] when the session ends.
pub fn body(resp: Response<Body>, rx: watch::Receiver<bool>) -> Response<Body> {
    let (parts, inner) = resp.into_parts();
    // The body must be Sync; the signal reaches it through a oneshot whose sender gives up when
    // the body is gone, so no task outlives its stream.
    let (tx, signal) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = tx;
        tokio::select! {
            _ = ended(Some(rx)) => { let _ = tx.send(()); }
            _ = tx.closed() => {}
        }
    });
    let cut = CutBody { inner, ended: Some(signal), done: false };
    Response::from_parts(parts, http_body_util::BodyExt::boxed(cut))
}

struct CutBody {
    inner: Body,
    ended: Option<tokio::sync::oneshot::Receiver<()>>,
    done: bool,
}

impl http_body::Body for CutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(signal) = self.ended.as_mut() {
            match Pin::new(signal).poll(cx) {
                Poll::Ready(Ok(())) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(Box::new(Cut))));
                }
                Poll::Ready(Err(_)) => self.ended = None,
                Poll::Pending => {}
            }
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A splice that is dropped (closing both connections) when the session ends. Session hooks
/// take the signal themselves ([`crate::relay::session::Plan`]) so that the recording is closed
/// properly.
pub fn splice(rx: watch::Receiver<bool>) -> Upgrade {
    let hook: UpgradeHook = Box::new(move |client, upstream, _headers| {
        Box::pin(async move {
            tokio::select! {
                _ = crate::proxy::splice::splice(client, upstream) => {}
                _ = ended(Some(rx)) => tracing::info!("agent session stopped: an upgraded connection was cut"),
            }
        })
    });
    Upgrade::Custom(hook)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_body_is_cut_when_the_session_ends_and_not_before() {
        let (tx, rx) = watch::channel(false);
        let (data_tx, data_rx) = tokio::sync::mpsc::channel(4);
        let resp = body(crate::respond::stream("application/json", data_rx), rx);
        let mut b = resp.into_body();
        data_tx.send(Bytes::from_static(b"{\"type\":\"ADDED\"}\n")).await.unwrap();
        let first = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"{\"type\":\"ADDED\"}\n");
        tx.send(true).unwrap();
        let cut = b.frame().await.unwrap();
        assert!(cut.is_err(), "the stream ends with an error, not a clean end");
        assert!(b.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_registry_never_cuts() {
        let (tx, rx) = watch::channel(false);
        drop(tx);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), ended(Some(rx))).await;
        assert!(waited.is_err());
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), ended(None)).await;
        assert!(waited.is_err());
    }
}
