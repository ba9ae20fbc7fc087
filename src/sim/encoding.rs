//! The response encodings kube-apiserver serves besides JSON, so that what the relay's masker
//! must survive is really on the wire in tests.
//!
//! kube-apiserver answers a non-streaming request in YAML when the client's `Accept` prefers
//! `application/yaml`, and gzips any response body over 128 KiB when the client sends
//! `Accept-Encoding: gzip` (`apiserver pkg/endpoints/handlers/responsewriters/writers.go`,
//! `defaultGzipThresholdBytes`) — which kubectl always does. Both are ways a masker that only
//! reads JSON gets bypassed (k8s-wire.md §8). The simulator's handlers produce JSON; this layer
//! re-encodes complete JSON responses as the apiserver would. Streams (watch, logs, exec) are
//! left alone, as the apiserver leaves them uncompressed.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response};
use http_body_util::BodyExt;
use std::io::Write;

use crate::kube::media::parse_accept;
use crate::respond::{self, Body};

/// kube-apiserver's gzip threshold.
pub const GZIP_THRESHOLD: usize = 128 * 1024;

/// What the client asked for, read before the request is consumed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wants {
    yaml: bool,
    gzip: bool,
}

impl Wants {
    /// Read `Accept` and `Accept-Encoding`. YAML only when the client's first media range is
    /// `application/yaml` (kubectl never asks for it; `get --raw` with that header does).
    pub fn of(headers: &HeaderMap) -> Self {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let yaml = parse_accept(accept).first().is_some_and(|r| r.essence == "application/yaml" && r.params.is_empty());
        let gzip = headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|e| e.split(';').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("gzip")));
        Wants { yaml, gzip }
    }

    fn any(self) -> bool {
        self.yaml || self.gzip
    }
}

/// Re-encode a complete `application/json` response (never a stream: `streaming` is true for
/// watch, logs and upgrades) as YAML and/or gzip when the client asked for it.
pub async fn encode(wants: Wants, streaming: bool, resp: Response<Body>) -> Response<Body> {
    let is_json = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/json");
    if !wants.any() || streaming || !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await else {
        return respond::status(&crate::kube::status::Status::internal("the simulator could not read its own response body"));
    };
    let mut bytes: Bytes = collected.to_bytes();
    if wants.yaml {
        if let Some(yaml) = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| serde_yaml_ng::to_string(&v).ok()) {
            bytes = Bytes::from(yaml);
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
        }
    }
    if wants.gzip && bytes.len() > GZIP_THRESHOLD {
        let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
        if gz.write_all(&bytes).is_ok() {
            if let Ok(out) = gz.finish() {
                bytes = Bytes::from(out);
                parts.headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, respond::full(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants(accept: &str, enc: &str) -> Wants {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(enc).unwrap());
        Wants::of(&h)
    }

    async fn body_of(r: Response<Body>) -> (HeaderMap, Bytes) {
        let (p, b) = r.into_parts();
        (p.headers, b.collect().await.unwrap().to_bytes())
    }

    #[tokio::test]
    async fn yaml_when_asked_first() {
        let v = serde_json::json!({"kind": "Secret", "data": {"k": "dg=="}});
        let (h, b) = body_of(encode(wants("application/yaml", ""), false, respond::json(200, &v)).await).await;
        assert_eq!(h[header::CONTENT_TYPE], "application/yaml");
        assert!(std::str::from_utf8(&b).unwrap().contains("kind: Secret"));
        // Not first: JSON.
        let (h, _) = body_of(encode(wants("application/json, application/yaml", ""), false, respond::json(200, &v)).await).await;
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
    }

    #[tokio::test]
    async fn gzip_only_over_the_threshold_and_never_streams() {
        let big = serde_json::json!({"kind": "SecretList", "items": [{"data": {"k": "x".repeat(GZIP_THRESHOLD)}}]});
        let (h, b) = body_of(encode(wants("application/json", "gzip"), false, respond::json(200, &big)).await).await;
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&b[..]), &mut out).unwrap();
        assert!(out.contains("SecretList"));
        let small = serde_json::json!({"kind": "Secret"});
        let (h, _) = body_of(encode(wants("application/json", "gzip"), false, respond::json(200, &small)).await).await;
        assert!(h.get(header::CONTENT_ENCODING).is_none());
        let (h, _) = body_of(encode(wants("application/json", "gzip"), true, respond::json(200, &big)).await).await;
        assert!(h.get(header::CONTENT_ENCODING).is_none(), "streams are never compressed");
    }
}
