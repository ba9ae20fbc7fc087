//! The HTTP adapter: the caller's reqwest client as openidconnect's `AsyncHttpClient`, with a
//! timeout, a body size cap, no redirects, and a count of failed requests in a row.

use std::future::Future;
use std::pin::Pin;
#[cfg(test)]
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};

use openidconnect::{http, AsyncHttpClient, HttpRequest, HttpResponse};

use super::{
    error_chain, one_line, LoginError, MAX_POLL_FAILURES, MAX_RESPONSE_BYTES, REQUEST_TIMEOUT,
};

/// A failed request: no answer at all (connection, timeout, TLS, redirect, size).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct TransportError {
    url: String,
    reason: String,
}

impl From<TransportError> for LoginError {
    fn from(e: TransportError) -> Self {
        LoginError::Http {
            url: e.url,
            reason: e.reason,
        }
    }
}

#[cfg(test)]
pub(crate) type FakeHttp = dyn Fn(&HttpRequest) -> Result<HttpResponse, String> + Send + Sync;

enum Backend {
    Reqwest(reqwest::Client),
    #[cfg(test)]
    Fake(Arc<FakeHttp>),
}

/// The adapter. It also counts failed requests in a row, so that polling can give up.
pub(crate) struct Transport {
    backend: Backend,
    failures: Mutex<Failures>,
    pub(super) give_up: tokio::sync::Notify,
}

#[derive(Default)]
struct Failures {
    in_a_row: u32,
    last: Option<TransportError>,
}

impl Transport {
    pub(crate) fn new(http: &reqwest::Client) -> Self {
        Transport::with_backend(Backend::Reqwest(http.clone()))
    }

    #[cfg(test)]
    pub(crate) fn fake(f: Arc<FakeHttp>) -> Self {
        Transport::with_backend(Backend::Fake(f))
    }

    fn with_backend(backend: Backend) -> Self {
        Transport {
            backend,
            failures: Mutex::new(Failures::default()),
            give_up: tokio::sync::Notify::new(),
        }
    }

    fn record(&self, result: &Result<HttpResponse, TransportError>) {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => f.in_a_row = 0,
            Err(e) => {
                f.in_a_row += 1;
                f.last = Some(TransportError {
                    url: e.url.clone(),
                    reason: e.reason.clone(),
                });
                if f.in_a_row >= MAX_POLL_FAILURES {
                    self.give_up.notify_one();
                }
            }
        }
    }

    pub(super) fn last_failure(&self) -> LoginError {
        let f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match &f.last {
            Some(e) => LoginError::Http {
                url: e.url.clone(),
                reason: format!("{} ({} failed requests in a row)", e.reason, f.in_a_row),
            },
            None => LoginError::Http {
                url: String::new(),
                reason: "requests failed".into(),
            },
        }
    }
}

impl<'c> AsyncHttpClient<'c> for Transport {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let result = match &self.backend {
                Backend::Reqwest(http) => send(http, request).await,
                #[cfg(test)]
                Backend::Fake(f) => {
                    let url = request.uri().to_string();
                    f(&request).map_err(|reason| TransportError { url, reason })
                }
            };
            self.record(&result);
            result
        })
    }
}

async fn send(
    http: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, TransportError> {
    let url = request.uri().to_string();
    let fail = |reason: String| TransportError {
        url: url.clone(),
        reason,
    };
    let mut req = reqwest::Request::try_from(request).map_err(|e| fail(error_chain(&e)))?;
    *req.timeout_mut() = Some(REQUEST_TIMEOUT);
    let requested = req.url().clone();
    let mut resp = http.execute(req).await.map_err(|e| fail(error_chain(&e)))?;
    if resp.url() != &requested {
        return Err(fail(format!(
            "the answer was redirected to {}; hoop-kube does not follow redirects from the identity provider",
            one_line(resp.url().as_str())
        )));
    }
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(error_chain(&e)))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(fail(format!(
                "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let mut out = http::Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}
