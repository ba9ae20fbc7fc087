//! Dialing the next hop: the API server (from the relay) or the relay (from the forwarder).
//!
//! Two hyper clients share one rustls configuration: a pooled client that negotiates HTTP/2 by
//! ALPN for ordinary calls (one connection carries every concurrent request, and a broken one
//! is replaced on the next request — that is how the forwarder reconnects after a relay
//! restart), and an HTTP/1.1-only client for upgrades, since WebSocket and SPDY upgrades exist
//! only in HTTP/1.1. Requests are built from the raw path-and-query bytes that were authorized;
//! no URL type that normalises paths is ever involved.

use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use crate::respond::BoxError;
/// The body type sent to the next hop.
pub type OutBody = BoxBody<Bytes, BoxError>;

/// Why the next hop could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HopError {
    /// The configured server is not an `https://host:port` URL.
    #[error("invalid server URL {0:?}: expected https://HOST[:PORT]")]
    BadServer(String),
    /// Connecting or sending failed.
    #[error("{0}")]
    Send(String),
    /// A request URI could not be built from the authorized path.
    #[error("invalid request path: {0}")]
    BadPath(String),
}

/// A next hop.
#[derive(Clone)]
pub struct NextHop {
    scheme: Scheme,
    authority: Authority,
    pooled: Client<HttpsConnector<HttpConnector>, OutBody>,
    upgrades: Client<HttpsConnector<HttpConnector>, OutBody>,
}

fn connector(tls: rustls::ClientConfig, h2: bool) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let b = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only();
    if h2 {
        b.enable_http1().enable_http2().wrap_connector(http)
    } else {
        b.enable_http1().wrap_connector(http)
    }
}

impl NextHop {
    /// A next hop at `server` (`https://host:port`), using `tls` (roots and, for mutual TLS,
    /// the client certificate). ALPN is set here.
    pub fn new(server: &str, tls: rustls::ClientConfig) -> Result<Self, HopError> {
        let uri: Uri = server.parse().map_err(|_| HopError::BadServer(server.into()))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
            return Err(HopError::BadServer(server.into()));
        };
        if scheme != Scheme::HTTPS || !matches!(uri.path(), "" | "/") {
            return Err(HopError::BadServer(server.into()));
        }
        let pooled = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_timeout(Duration::from_secs(10))
            .build(connector(tls.clone(), true));
        let upgrades = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector(tls, false));
        Ok(NextHop { scheme, authority, pooled, upgrades })
    }

    /// `host:port` of the next hop.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The absolute URI for a raw path-and-query, byte for byte.
    pub fn uri_for(&self, pq: &PathAndQuery) -> Result<Uri, HopError> {
        Uri::builder().scheme(self.scheme.clone()).authority(self.authority.clone()).path_and_query(pq.clone()).build().map_err(|e| HopError::BadPath(e.to_string()))
    }

    /// Send a request; upgrades go over a fresh HTTP/1.1 connection.
    pub async fn send(&self, req: Request<OutBody>, upgrade: bool) -> Result<Response<Incoming>, HopError> {
        let client = if upgrade { &self.upgrades } else { &self.pooled };
        client.request(req).await.map_err(|e| HopError::Send(crate::text::error_chain(&e)))
    }
}
