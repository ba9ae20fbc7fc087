//! Pass one request to the next hop and its response back, streaming, upgrades spliced.
//!
//! The caller has already decided the request may go and edits the outgoing headers (the relay
//! swaps credentials, the forwarder leaves them). The raw path and query are forwarded byte for
//! byte; hop-by-hop headers stay behind; the request body is capped at `max_body` bytes while it
//! streams.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};

use super::client::{BoxError, HopError, NextHop, OutBody};
use super::{headers, splice};
use crate::respond::Body;

/// What joins the two sides of an upgraded connection (exec, attach, port-forward) once both
/// have switched protocols.
pub enum Upgrade {
    /// Copy bytes both ways, untouched ([`splice::splice`]).
    Splice,
    /// The caller's own stage (the relay's exec output masking): it gets the client side, the
    /// upstream side and upstream's `101` headers, and owns both connections from then on.
    Custom(UpgradeHook),
}

/// A caller's handler for an upgraded connection: (client, upstream, upstream's 101 headers).
pub type UpgradeHook = Box<dyn FnOnce(hyper::upgrade::Upgraded, hyper::upgrade::Upgraded, HeaderMap) -> futures_util::future::BoxFuture<'static, ()> + Send>;

/// Forward `req` to `hop`. `edit` adjusts the outgoing headers (after hop-by-hop headers and
/// `Host` are removed) and may refuse the request with a message; `upgraded` joins the two
/// sides if the request is upgraded.
pub async fn pass<B>(hop: &NextHop, mut req: Request<B>, max_body: usize, upgraded: Upgrade, edit: impl FnOnce(&mut HeaderMap) -> Result<(), String>) -> Result<Response<Body>, PassError>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let pq = req.uri().path_and_query().cloned().ok_or(PassError::Refused("missing request path".into()))?;
    let uri = hop.uri_for(&pq)?;
    let upgrade = headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (parts, body) = req.into_parts();
    let mut out_headers = parts.headers;
    headers::strip_hop_by_hop(&mut out_headers, upgrade);
    out_headers.remove(http::header::HOST);
    edit(&mut out_headers).map_err(PassError::Refused)?;
    let too_large = Arc::new(AtomicBool::new(false));
    let flag = too_large.clone();
    let out_body: OutBody = Limited::new(body, max_body)
        .map_err(move |e: BoxError| {
            if e.is::<http_body_util::LengthLimitError>() {
                flag.store(true, Ordering::Relaxed);
            }
            e
        })
        .boxed();
    let mut out = Request::builder().method(parts.method).uri(uri).version(http::Version::HTTP_11);
    if let Some(h) = out.headers_mut() {
        *h = out_headers;
    }
    let out = out.body(out_body).map_err(|e| PassError::Refused(e.to_string()))?;
    let mut resp = match hop.send(out, upgrade).await {
        Ok(r) => r,
        Err(_) if too_large.load(Ordering::Relaxed) => return Err(PassError::BodyTooLarge(max_body)),
        Err(e) => return Err(e.into()),
    };

    if let (Some(client_up), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, resp.status()) {
        let upstream_up = hyper::upgrade::on(&mut resp);
        let headers = resp.headers().clone();
        tokio::spawn(async move {
            match tokio::try_join!(client_up, upstream_up) {
                Ok((c, u)) => match upgraded {
                    Upgrade::Splice => {
                        let _ = splice::splice(c, u).await;
                    }
                    Upgrade::Custom(hook) => hook(c, u, headers).await,
                },
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let (mut parts, _) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, true);
        parts.version = http::Version::HTTP_11;
        return Ok(Response::from_parts(parts, Empty::<Bytes>::new().map_err(|never| match never {}).boxed()));
    }
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    parts.version = http::Version::HTTP_11;
    Ok(Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed()))
}

/// Why a request did not pass.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassError {
    /// The request could not be built or the caller's edit refused it.
    #[error("{0}")]
    Refused(String),
    /// The request body (sent without a `Content-Length` that could be refused up front) grew
    /// past the limit while streaming.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The next hop could not be reached or failed mid-request.
    #[error(transparent)]
    Hop(#[from] HopError),
}
