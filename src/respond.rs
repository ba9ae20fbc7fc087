//! Response bodies and the few ways hoop-kube answers over HTTP: a JSON object, a `Status`, a
//! stream. Shared by the simulator, the relay and the forwarder, so every error they produce is
//! shaped the same way.
//!
//! Streams (watch, logs) are channel-fed bodies: the producer task writes chunks as they happen
//! and hyper sends each as it arrives, with backpressure from the bounded channel.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::kube::status::Status;

/// Errors a response body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response hoop-kube sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A body fed by a channel; it ends when every sender is dropped.
pub fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(Frame::data(b)), rx)) });
    StreamBody::new(stream).boxed()
}

fn code(c: u16) -> StatusCode {
    StatusCode::from_u16(c).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A JSON response with the given Content-Type.
pub fn json_with(status: u16, value: &serde_json::Value, content_type: &str) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(full(body));
    *r.status_mut() = code(status);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON response.
pub fn json(status: u16, value: &serde_json::Value) -> Response<Body> {
    json_with(status, value, "application/json")
}

/// A `Status` error response.
pub fn status(s: &Status) -> Response<Body> {
    let mut r = Response::new(full(s.to_json()));
    *r.status_mut() = code(s.code);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // As kube-apiserver does: client-go waits this long before retrying a 429 or 5xx.
    if let Some(secs) = s.details.retry_after_seconds {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// A plain-text response.
pub fn text(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = code(status);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// A streaming response.
pub fn stream(content_type: &'static str, rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let mut r = Response::new(channel_body(rx));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    r
}
