//! The relay's mask stage: what a request whose policy rules name mask profiles is allowed to
//! send upstream, and what of the answer reaches the client.
//!
//! The masking itself is [`crate::mask`] (I/O-free); this module places it on the data path:
//!
//! - **Request**: `Accept` is rewritten to JSON only, keeping the `as=Table…` parameters
//!   ([`crate::kube::media::json_only_accept`]), and `Accept-Encoding` is dropped, so upstream
//!   answers in the one encoding the masker reads. A write (create, update, patch) is checked
//!   by [`crate::mask::write_guard`] before it leaves: a placeholder written back (the `kubectl
//!   edit` trap) or a JSON-patch `test`/`copy`/`move` reading a masked path is a 403.
//! - **Response**: decided from the response, never from the URL. A resource response with a
//!   `Content-Encoding`, or a `Content-Type` the masker cannot read while objects are masked, is
//!   not delivered (502 `Status`). JSON is masked object by object by its `kind` — a whole body
//!   (up to [`MAX_MASKED_BODY`], buffered) or a watch stream event by event
//!   ([`crate::mask::WatchMasker`], memory bounded per event). `pods/log` output has the
//!   namespace's Secret values replaced when the profile masks logs ([`super::secret_values`]).
//!   Non-resource requests (discovery, OpenAPI, `/version`) carry no objects and pass.
//! - Every masked non-stream response says how many values were masked in the
//!   `X-Hoop-Kube-Masked` header; every count, streams' included, goes into the record.
//!
//! What it trusts: the policy's decision and the compiled profiles. It fails closed: any error
//! while masking ends the response (a 502 before the first byte; an `ERROR` watch event or a cut
//! stream after it), and never lets the unmasked bytes through.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::kube::request_info::RequestInfo;
use crate::kube::status::Status;
use crate::mask::{MaskProfile, MaskProfiles, TextStream, WatchMasker};
use crate::respond::{self, Body};

/// The response header that reports how many values were masked.
pub const MASKED_HEADER: &str = "x-hoop-kube-masked";

/// The largest non-streaming response the relay buffers to mask (a 10,000-Secret list is about
/// 20 MiB). Larger answers are refused with a 502 telling the user to page (`--chunk-size`).
pub const MAX_MASKED_BODY: usize = 256 * 1024 * 1024;

/// The mask stage's shared state: the compiled profiles, the unions rules ask for, and the
/// Secret values of namespaces for log masking.
pub struct Masking {
    profiles: MaskProfiles,
    unions: Mutex<HashMap<Vec<Arc<str>>, Arc<MaskProfile>>>,
    pub secrets: super::secret_values::SecretValues,
}

impl Masking {
    /// The stage for these profiles.
    pub fn new(profiles: MaskProfiles) -> Self {
        Masking { profiles, unions: Mutex::new(HashMap::new()), secrets: super::secret_values::SecretValues::default() }
    }

    /// The union of the named profiles (`None` for no names). Unions are compiled once and kept:
    /// there are only as many as distinct rule combinations.
    pub fn profile_for(&self, names: &[Arc<str>]) -> Result<Option<Arc<MaskProfile>>, Status> {
        if names.is_empty() {
            return Ok(None);
        }
        let mut unions = self.unions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = unions.get(names) {
            return Ok(Some(p.clone()));
        }
        // Config validation guarantees every name exists; if one does not, nothing is delivered.
        let p = self.profiles.union_of(names.iter().map(|n| &**n)).map_err(|e| Status::internal(format!("hoop-kube mask profile {}: {}", e.profile, e.message)))?;
        let Some(p) = p.map(Arc::new) else { return Ok(None) };
        unions.insert(names.to_vec(), p.clone());
        Ok(Some(p))
    }
}

/// Rewrite the outgoing request headers so upstream answers in plain JSON.
pub fn prepare_headers(h: &mut HeaderMap) {
    let accept = h.get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let json = crate::kube::media::json_only_accept(accept.as_deref());
    if let Ok(v) = HeaderValue::from_str(&json) {
        h.insert(header::ACCEPT, v);
    }
    h.remove(header::ACCEPT_ENCODING);
}

/// Whether a request with this info writes an object whose body must be checked.
pub fn is_write(info: &RequestInfo) -> bool {
    info.is_resource_request && matches!(info.verb.as_str(), "create" | "update" | "patch")
}

/// Check a write's body (already read) against the profile.
pub fn guard_write(profile: &MaskProfile, info: &RequestInfo, content_type: Option<&str>, body: &[u8]) -> Result<(), Status> {
    let kind = kind_of_resource(info);
    crate::mask::check_body(profile, kind, content_type, body).map_err(|e| Status::forbidden(format!("hoop-kube masking refused this write: {e}")).with_code("MaskedWrite"))
}

/// The kind a core or well-known resource holds (`None`: every kind's masked paths count).
fn kind_of_resource(info: &RequestInfo) -> Option<&'static str> {
    if !info.subresource.is_empty() && info.subresource != "status" {
        return None;
    }
    Some(match (info.api_group.as_str(), info.resource.as_str()) {
        ("", "secrets") => "Secret",
        ("", "configmaps") => "ConfigMap",
        ("", "pods") => "Pod",
        ("", "podtemplates") => "PodTemplate",
        ("", "replicationcontrollers") => "ReplicationController",
        ("apps", "deployments") => "Deployment",
        ("apps", "statefulsets") => "StatefulSet",
        ("apps", "daemonsets") => "DaemonSet",
        ("apps", "replicasets") => "ReplicaSet",
        ("batch", "jobs") => "Job",
        ("batch", "cronjobs") => "CronJob",
        _ => return None,
    })
}

fn bad_gateway(message: impl Into<String>) -> Status {
    Status::failure(502, "BadGateway", message)
}

/// Mask one upstream response for `profile`. `namespace_secrets` builds the log replacer when
/// the response is `pods/log` output and the profile masks logs.
pub async fn response(masking: &Masking, upstream: &super::upstream::Upstream, profile: Arc<MaskProfile>, info: &RequestInfo, resp: Response<Body>, counters: Arc<super::records::Counters>) -> Result<Response<Body>, Status> {
    if !info.is_resource_request || resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp);
    }
    let (mut parts, body) = resp.into_parts();
    if let Some(enc) = parts.headers.get(header::CONTENT_ENCODING).filter(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity")) {
        return Err(bad_gateway(format!(
            "hoop-kube: the API server answered with Content-Encoding {:?}, which the masker cannot read; the response was not delivered",
            String::from_utf8_lossy(enc.as_bytes())
        )));
    }
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let logs = info.subresource == "log" && info.resource == "pods";
    match essence.as_str() {
        "application/json" if info.verb == "watch" && profile.masks_objects() => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Ok(Response::from_parts(parts, watch_body(profile, body, counters)))
        }
        "application/json" if profile.masks_objects() => {
            let bytes = match collect(body, MAX_MASKED_BODY).await {
                Ok(b) => b,
                Err(None) => {
                    return Err(bad_gateway(format!(
                        "hoop-kube: the response is larger than the {} MiB the relay masks at once; list in pages (kubectl --chunk-size) instead",
                        MAX_MASKED_BODY >> 20
                    )))
                }
                Err(Some(e)) => return Err(Status::unavailable(format!("reading the API server's response failed: {e}"))),
            };
            if bytes.is_empty() {
                return Ok(Response::from_parts(parts, respond::full(bytes)));
            }
            let (masked, count) = crate::mask::mask_body(&profile, &bytes).map_err(|e| bad_gateway(format!("hoop-kube could not mask the API server's response ({e}); it was not delivered")))?;
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(MASKED_HEADER, HeaderValue::from(count));
            counters.masked.fetch_add(count as u64, Ordering::Relaxed);
            Ok(Response::from_parts(parts, respond::full(masked)))
        }
        _ if logs && profile.masks_logs() => {
            let replacer = masking.secrets.replacer(upstream, &info.namespace).await?;
            parts.headers.remove(header::CONTENT_LENGTH);
            Ok(Response::from_parts(parts, text_body(TextStream::new(replacer), body, counters)))
        }
        _ if logs || !profile.masks_objects() => Ok(Response::from_parts(parts, body)),
        // Anything else on a resource request (protobuf, YAML, CBOR, proxied content) cannot be
        // masked, so it is not delivered.
        _ if content_type.is_empty() => {
            // A bodiless answer (204, a HEAD) has nothing to mask; a body without a type is refused.
            match collect(body, 0).await {
                Ok(b) => Ok(Response::from_parts(parts, respond::full(b))),
                Err(_) => Err(bad_gateway("hoop-kube: the API server's response has a body without a Content-Type; it was not delivered")),
            }
        }
        _ => Err(bad_gateway(format!("hoop-kube: the API server answered in {content_type:?}, which the masker cannot read; the response was not delivered"))),
    }
}

/// Read a whole body of at most `max` bytes: `Err(None)` when it is larger, `Err(Some(e))` when
/// reading failed.
async fn collect(mut body: Body, max: usize) -> Result<Bytes, Option<String>> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Some(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(None);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// A watch stream, masked event by event. An error mid-stream ends it with a watch `ERROR` event
/// carrying a 502 `Status`, so kubectl reports it instead of waiting.
fn watch_body(profile: Arc<MaskProfile>, mut body: Body, counters: Arc<super::records::Counters>) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut masker = WatchMasker::new(profile);
        let mut out = Vec::new();
        let fail = |e: String| {
            let status = bad_gateway(format!("hoop-kube could not mask the watch stream ({e}); it was cut"));
            let event = serde_json::json!({"type": "ERROR", "object": serde_json::from_slice::<serde_json::Value>(&status.to_json()).unwrap_or_default()});
            Bytes::from(format!("{event}\n"))
        };
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    out.clear();
                    if let Err(e) = masker.feed(&data, &mut out) {
                        counters.masked.fetch_add(masker.masked(), Ordering::Relaxed);
                        let _ = tx.send(fail(e.to_string())).await;
                        return;
                    }
                    if !out.is_empty() && tx.send(Bytes::copy_from_slice(&out)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "upstream watch stream failed");
                    break;
                }
                None => break,
            }
        }
        if let Err(e) = masker.finish() {
            let _ = tx.send(fail(e.to_string())).await;
        }
        counters.masked.fetch_add(masker.masked(), Ordering::Relaxed);
        tracing::debug!(events = masker.events(), masked = masker.masked(), "masked watch ended");
    });
    respond::channel_body(rx)
}

/// Log output with Secret values replaced, chunk by chunk.
fn text_body(mut stream: TextStream, mut body: Body, counters: Arc<super::records::Counters>) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            out.clear();
            stream.feed(&data, &mut out);
            if !out.is_empty() && tx.send(Bytes::copy_from_slice(&out)).await.is_err() {
                counters.masked.fetch_add(stream.replaced(), Ordering::Relaxed);
                return;
            }
        }
        out.clear();
        stream.finish(&mut out);
        if !out.is_empty() {
            let _ = tx.send(Bytes::from(out)).await;
        }
        counters.masked.fetch_add(stream.replaced(), Ordering::Relaxed);
        tracing::debug!(masked = stream.replaced(), "masked log stream ended");
    });
    respond::channel_body(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::request_info;

    fn upstream() -> super::super::upstream::Upstream {
        let tls = crate::pki::client_config(None, None, false).unwrap();
        let hop = crate::proxy::client::NextHop::new("https://127.0.0.1:1", tls).unwrap();
        super::super::upstream::Upstream { hop, auth: super::super::upstream::UpstreamAuth::Token("t".into()), impersonate: true }
    }

    fn profile() -> Arc<MaskProfile> {
        Arc::new(MaskProfile::builtin())
    }

    fn info(method: &str, uri: &str) -> RequestInfo {
        request_info::parse_uri(&method.parse().unwrap(), &uri.parse().unwrap()).unwrap()
    }

    fn resp(content_type: &str, body: &'static [u8]) -> Response<Body> {
        let mut r = Response::new(respond::full(body));
        if !content_type.is_empty() {
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        }
        r
    }

    async fn run(i: &RequestInfo, r: Response<Body>) -> Result<(HeaderMap, Vec<u8>), Status> {
        let masking = Masking::new(MaskProfiles::default());
        let r = response(&masking, &upstream(), profile(), i, r, Default::default()).await?;
        let (p, b) = r.into_parts();
        Ok((p.headers, b.collect().await.unwrap().to_bytes().to_vec()))
    }

    const SECRET: &[u8] = br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"aHVudGVyMg=="}}"#;

    #[tokio::test]
    async fn json_is_masked_and_counted() {
        let (h, b) = run(&info("GET", "/api/v1/namespaces/d/secrets/db"), resp("application/json", SECRET)).await.unwrap();
        assert_eq!(h[MASKED_HEADER], "1");
        assert!(!String::from_utf8_lossy(&b).contains("aHVudGVyMg"));
    }

    #[tokio::test]
    async fn what_cannot_be_masked_is_not_delivered() {
        let get = info("GET", "/api/v1/namespaces/d/secrets/db");
        for ct in ["application/vnd.kubernetes.protobuf", "application/yaml", "application/cbor", "text/plain", "application/json-seq"] {
            let e = run(&get, resp(ct, SECRET)).await.unwrap_err();
            assert_eq!(e.code, 502, "{ct}");
            assert!(e.message.contains(ct), "{ct}: {}", e.message);
        }
        let mut gz = resp("application/json", SECRET);
        gz.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(run(&get, gz).await.unwrap_err().code, 502);
        // A body without a type is refused; an empty one (204) passes.
        assert_eq!(run(&get, resp("", SECRET)).await.unwrap_err().code, 502);
        assert!(run(&get, resp("", b"")).await.unwrap().1.is_empty());
        // Unparseable JSON, trailing garbage, a truncated body: not delivered.
        for bad in [&b"{"[..], b"{\"kind\":\"Secret\"} x", b"[1,"] {
            let r = Response::builder().header(header::CONTENT_TYPE, "application/json").body(respond::full(bad.to_vec())).unwrap();
            assert_eq!(run(&get, r).await.unwrap_err().code, 502, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test]
    async fn non_resource_requests_pass() {
        let (_, b) = run(&info("GET", "/openapi/v2"), resp("application/com.github.proto-openapi.spec.v2.v1.0+protobuf", b"\x0a\x01")).await.unwrap();
        assert_eq!(b, b"\x0a\x01");
    }

    #[tokio::test]
    async fn a_watch_is_masked_event_by_event_and_an_error_ends_it_with_an_error_event() {
        let w = info("GET", "/api/v1/namespaces/d/secrets?watch=1");
        let stream = br#"{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"aHVudGVyMg=="}}}
{"type":"MODIFIED","object":{"kind":"Secret","data":{"password":"aHVudGVyMg=="}"#;
        let (_, b) = run(&w, resp("application/json", stream)).await.unwrap();
        let text = String::from_utf8(b).unwrap();
        assert!(!text.contains("aHVudGVyMg"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("ADDED"));
        assert!(lines[1].contains("\"ERROR\"") && lines[1].contains("502"), "the truncated event ends the watch with an error: {text}");
    }

    #[test]
    fn accept_and_encoding_are_rewritten() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/yaml"));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        prepare_headers(&mut h);
        assert_eq!(h[header::ACCEPT], "application/json;as=Table;v=v1;g=meta.k8s.io,application/json");
        assert!(h.get(header::ACCEPT_ENCODING).is_none());
        let mut h = HeaderMap::new();
        prepare_headers(&mut h);
        assert_eq!(h[header::ACCEPT], "application/json", "no Accept at all still asks for JSON");
    }
}
