//! The Secret values of a namespace, for masking log and exec output.
//!
//! Log lines and terminal output have no structure to mask by; the only way to keep a Secret's
//! value out of them is to know the value. The relay looks the namespace's Secrets up with its
//! own credential (never the user's: the user may be exactly the one who must not read them),
//! compiles their decoded values into one [`Replacer`], and keeps it for [`TTL`] so that a
//! `kubectl logs` per second does not become a Secret list per second. A rotated Secret is
//! masked by its new value at most [`TTL`] later.
//!
//! Fails closed: when the Secrets cannot be read (upstream down, the relay's credential may
//! not list Secrets, an unparseable answer), the log or exec request is refused with a 502
//! rather than delivered unmasked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Request};
use http_body_util::{BodyExt, Empty, Limited};

use super::upstream::Upstream;
use crate::kube::status::Status;
use crate::mask::Replacer;

/// How long one namespace's values are reused.
pub const TTL: Duration = Duration::from_secs(30);
/// The largest Secret list read.
const MAX_LIST: usize = 64 * 1024 * 1024;

/// Cached replacers by namespace.
#[derive(Default)]
pub struct SecretValues {
    cache: Mutex<HashMap<String, (Instant, Arc<Replacer>)>>,
}

fn refused(why: String) -> Status {
    Status::failure(502, "BadGateway", format!("hoop-kube masks Secret values in this output but could not read them ({why}); the output was not delivered"))
}

impl SecretValues {
    /// The replacer for `namespace`'s Secrets, from the cache or read now.
    pub async fn replacer(&self, upstream: &Upstream, namespace: &str) -> Result<Arc<Replacer>, Status> {
        if let Some((at, r)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(namespace) {
            if at.elapsed() < TTL {
                return Ok(r.clone());
            }
        }
        let values = read(upstream, namespace).await?;
        let replacer = Arc::new(Replacer::new(values).map_err(|e| refused(e.to_string()))?);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(namespace.to_string(), (Instant::now(), replacer.clone()));
        Ok(replacer)
    }
}

/// List the namespace's Secrets with the relay's own credential and extract their values.
async fn read(upstream: &Upstream, namespace: &str) -> Result<Vec<Vec<u8>>, Status> {
    if namespace.is_empty() || namespace.contains(['/', '?', '#', '%']) {
        return Err(refused(format!("{namespace:?} is not a namespace")));
    }
    let pq: http::uri::PathAndQuery = format!("/api/v1/namespaces/{namespace}/secrets").parse().map_err(|_| refused(format!("{namespace:?} is not a namespace")))?;
    let uri = upstream.hop.uri_for(&pq).map_err(|e| refused(e.to_string()))?;
    let mut req = Request::get(uri).body(Empty::new().map_err(|never| match never {}).boxed()).map_err(|e| refused(e.to_string()))?;
    req.headers_mut().insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    upstream.authorize_as_relay(req.headers_mut()).map_err(refused)?;
    let resp = upstream.hop.send(req, false).await.map_err(|e| refused(format!("the API server is unreachable: {e}")))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_LIST).collect().await.map_err(|e: crate::respond::BoxError| refused(format!("reading the Secret list failed: {e}")))?.to_bytes();
    if !status.is_success() {
        return Err(refused(format!("listing Secrets in {namespace} with the relay's credential answered {}", status.as_u16())));
    }
    let list: serde_json::Value = serde_json::from_slice(&body).map_err(|e| refused(format!("the Secret list is not JSON: {e}")))?;
    Ok(crate::mask::secret_values(&list))
}
