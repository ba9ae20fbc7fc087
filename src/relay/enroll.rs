//! `POST /hoop-kube/v1/enroll`: how a user gets the client certificate the relay requires.
//!
//! Why it exists: every API request must carry two proofs for one subject — a client certificate
//! from the relay's CA and an OIDC token (see [`super::authn`]). A user who has just logged in has
//! only the token. `hoop-kube login` therefore generates a key pair locally (the private key
//! never leaves the machine), sends a CSR with the ID token here, and gets back a short-lived
//! certificate naming the token's subject. This is the one path the relay serves on a connection
//! without a client certificate ([`super::entry`]).
//!
//! What it trusts: the verified token ([`super::oidc::Verifier`]) and the relay's access list.
//! What it takes from the CSR: only the public key, after the CSR's self-signature verified
//! ([`crate::pki::ClientCsr`]); its subject, SANs and extensions are ignored. What it refuses,
//! each as a one-line Kubernetes `Status`:
//!
//! | refusal | code |
//! | --- | --- |
//! | enrollment not configured | 404 |
//! | a method other than POST | 405 |
//! | header block over the relay's limit | 431 |
//! | body over [`MAX_BODY_BYTES`] (declared or read) | 413 |
//! | `Content-Type` other than `application/json` | 415 |
//! | missing or invalid token | 401 |
//! | issuer's keys unreachable | 503 |
//! | identity not in the access list | 403 |
//! | malformed JSON, unknown or duplicate fields, `lifetimeSeconds` < 300, a bad CSR | 400 |
//!
//! The wire contract (`hoop-kube login` is written against exactly this):
//!
//! ```text
//! POST /hoop-kube/v1/enroll
//! Authorization: Bearer <OIDC ID token>
//! Content-Type: application/json
//!
//! {"csr": "<PEM CERTIFICATE REQUEST>", "lifetimeSeconds": <optional u64>}
//!
//! 200 application/json
//! {"apiVersion": "hoop-kube.dev/v1", "kind": "Enrollment", "subject": "<sub>",
//!  "username": "<username>", "certificate": "<PEM>", "caCertificate": "<PEM>",
//!  "notAfter": "<RFC 3339 UTC>"}
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};

use super::{authn, RelayState};
use crate::kube::status::Status;
use crate::pki::{Ca, ClientCsr};
use crate::proxy::headers;
use crate::respond::{self, Body};

/// The enrollment endpoint's path.
pub const PATH: &str = "/hoop-kube/v1/enroll";
/// Request bodies larger than this (16 KiB) are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The shortest certificate lifetime a client may ask for, in seconds.
pub const MIN_LIFETIME_SECONDS: u64 = 300;
/// `apiVersion` of the response.
pub const API_VERSION: &str = "hoop-kube.dev/v1";

/// The relay's enrollment settings, loaded at boot.
pub struct Enrollment {
    /// The CA of `tls.client_ca` with its private key (`enrollment.ca_key`).
    pub ca: Ca,
    /// The longest certificate issued (`enrollment.max_certificate_hours`).
    pub max_lifetime: Duration,
}

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnrollRequest {
    /// A PEM `CERTIFICATE REQUEST`.
    pub csr: String,
    /// The certificate lifetime wanted; capped at the relay's maximum, which is the default.
    #[serde(default)]
    pub lifetime_seconds: Option<u64>,
}

/// The 200 response body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollResponse {
    pub api_version: String,
    pub kind: String,
    /// The token's `sub`, which the certificate's URI SAN names.
    pub subject: String,
    /// The user name the relay derived from the token (the certificate's CN).
    pub username: String,
    /// The issued certificate, PEM.
    pub certificate: String,
    /// The CA that issued it, PEM.
    pub ca_certificate: String,
    /// When it expires, RFC 3339 UTC (whole seconds).
    pub not_after: String,
}

/// Answer one enrollment request; never fails (refusals become `Status` responses and are logged).
pub async fn handle(state: &RelayState, req: Request<hyper::body::Incoming>) -> Response<Body> {
    match enroll(state, req).await {
        Ok(r) => r,
        Err(s) => {
            tracing::info!(code = s.code, reason = %s.reason, message = %s.message, "enrollment refused");
            respond::status(&s)
        }
    }
}

async fn enroll<B>(state: &RelayState, req: Request<B>) -> Result<Response<Body>, Status>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(enrollment) = &state.enrollment else {
        return Err(Status::failure(404, "NotFound", "enrollment is not enabled on this relay; set enrollment.ca_key in its config"));
    };
    check_request(req.method(), req.headers(), state.limits.max_header_bytes)?;

    let token = authn::bearer(req.headers()).map_err(|_| unauthorized("no bearer token: send the OIDC ID token as `Authorization: Bearer …`"))?;
    let identity = state.verifier.verify(token).await.map_err(|e| {
        if e.is_unavailable() {
            Status::unavailable(format!("cannot verify tokens right now: {e}; retry shortly"))
        } else {
            unauthorized(&format!("the ID token was rejected ({e})"))
        }
    })?;
    if identity.claims.get("act").is_some() {
        return Err(unauthorized("the ID token carries an RFC 8693 act claim, and only engineers enroll; agents get their credential from `hoop-kube run --agent`"));
    }
    if !state.access.admits(&identity) {
        return Err(Status::forbidden(format!(
            "User \"{}\" cannot enroll: not in the hoop-kube relay's access list (ask the platform team to add you)",
            identity.username
        )));
    }

    let body = read_body(req.into_body()).await?;
    let request = parse_request(&body)?;
    let lifetime = lifetime(request.lifetime_seconds, enrollment.max_lifetime)?;
    let csr = ClientCsr::from_pem(&request.csr).map_err(|e| Status::bad_request(format!("{e}; send the CSR `hoop-kube login` makes")))?;

    let issued = enrollment
        .ca
        .sign_client_csr(&csr, &identity.subject, &identity.username, lifetime)
        .map_err(|e| Status::internal(format!("cannot issue the certificate: {e}")))?;
    let not_after = chrono::DateTime::<chrono::Utc>::from_timestamp(issued.not_after.unix_timestamp(), 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .ok_or_else(|| Status::internal("the certificate's expiry is out of range"))?;
    tracing::info!(subject = %identity.subject, username = %identity.username, serial = %issued.serial, not_after = %not_after, key = ?csr.key_kind(), "enrollment: client certificate issued");
    let body = EnrollResponse {
        api_version: API_VERSION.into(),
        kind: "Enrollment".into(),
        subject: identity.subject,
        username: identity.username,
        certificate: issued.cert_pem,
        ca_certificate: enrollment.ca.cert_pem().to_string(),
        not_after,
    };
    Ok(respond::json(200, &serde_json::to_value(&body).map_err(|e| Status::internal(e.to_string()))?))
}

fn unauthorized(why: &str) -> Status {
    Status::failure(401, "Unauthorized", format!("Unauthorized: {why}; run `hoop-kube login`"))
}

/// Method, header size, declared length and content type, before the token is looked at.
fn check_request(method: &Method, h: &HeaderMap, max_header_bytes: usize) -> Result<(), Status> {
    if method != Method::POST {
        return Err(Status::failure(405, "MethodNotAllowed", format!("{PATH} accepts only POST (got {method})")));
    }
    if headers::header_bytes(h) > max_header_bytes {
        return Err(Status::failure(431, "RequestHeaderFieldsTooLarge", format!("request headers are larger than the relay's limit of {max_header_bytes} bytes")));
    }
    let declared = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut types = h.get_all(header::CONTENT_TYPE).iter();
    let content_type = match (types.next(), types.next()) {
        (Some(v), None) => v.to_str().unwrap_or(""),
        _ => "",
    };
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Status::failure(415, "UnsupportedMediaType", format!("an enrollment request is application/json (got {content_type:?})")));
    }
    Ok(())
}

fn too_large() -> Status {
    Status::failure(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {MAX_BODY_BYTES}; an enrollment request is a JSON object with one CSR"))
}

/// Read at most [`MAX_BODY_BYTES`], whatever the declared length said (chunked bodies too).
async fn read_body<B>(body: B) -> Result<Bytes, Status>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Status::bad_request(format!("cannot read the request body: {e}"))),
    }
}

/// Parse the JSON body strictly: one object (serde would also take a struct from an array),
/// no unknown or duplicate fields, nothing after it.
pub fn parse_request(body: &[u8]) -> Result<EnrollRequest, Status> {
    let invalid = |why: String| Status::bad_request(format!("invalid enrollment request: {why}; send {{\"csr\": \"<PEM CERTIFICATE REQUEST>\", \"lifetimeSeconds\": <optional>}}"));
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("the body is not a JSON object".into()));
    }
    serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))
}

/// The lifetime to issue: the request's, capped at `max`; `max` when none is asked for.
pub fn lifetime(requested: Option<u64>, max: Duration) -> Result<Duration, Status> {
    match requested {
        None => Ok(max),
        Some(s) if s < MIN_LIFETIME_SECONDS => Err(Status::bad_request(format!(
            "lifetimeSeconds {s} is too short; ask for at least {MIN_LIFETIME_SECONDS}, or leave it out for the relay's maximum ({} hours)",
            max.as_secs() / 3600
        ))),
        Some(s) => Ok(Duration::from_secs(s).min(max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn request_checks_come_in_order() {
        let json = [("content-type", "application/json")];
        assert!(check_request(&Method::POST, &headers(&json), 65536).is_ok());
        assert!(check_request(&Method::POST, &headers(&[("content-type", "Application/JSON; charset=utf-8")]), 65536).is_ok());
        assert_eq!(check_request(&Method::GET, &headers(&json), 65536).unwrap_err().code, 405);
        assert_eq!(check_request(&Method::PUT, &headers(&[]), 65536).unwrap_err().code, 405);
        assert_eq!(check_request(&Method::POST, &headers(&[("content-type", "application/json"), ("content-length", "16385")]), 65536).unwrap_err().code, 413);
        assert!(check_request(&Method::POST, &headers(&[("content-type", "application/json"), ("content-length", "16384")]), 65536).is_ok());
        for bad in [&[][..], &[("content-type", "text/plain")], &[("content-type", "application/jsonx")], &[("content-type", "application/json"), ("content-type", "application/json")]] {
            assert_eq!(check_request(&Method::POST, &headers(bad), 65536).unwrap_err().code, 415, "{bad:?}");
        }
        assert_eq!(check_request(&Method::POST, &headers(&[("content-type", "application/json"), ("x-pad", &"x".repeat(5000))]), 4096).unwrap_err().code, 431);
    }

    #[test]
    fn the_body_is_strict_json() {
        let ok = parse_request(br#"{"csr": "PEM", "lifetimeSeconds": 600}"#).unwrap();
        assert_eq!((ok.csr.as_str(), ok.lifetime_seconds), ("PEM", Some(600)));
        assert_eq!(parse_request(br#"{"csr": "PEM"}"#).unwrap().lifetime_seconds, None);
        for bad in [
            &br#"{"csr": "a", "csr": "b"}"#[..],
            br#"{"csr": "a", "lifetime_seconds": 600}"#,
            br#"{"csr": "a", "subject": "admin"}"#,
            br#"{"lifetimeSeconds": 600}"#,
            br#"{"csr": "a", "lifetimeSeconds": -1}"#,
            br#"{"csr": "a"} {}"#,
            br#"["csr"]"#,
            b"",
            b"{\"csr\": \"a\"",
        ] {
            let e = parse_request(bad).unwrap_err();
            assert_eq!(e.code, 400, "{}", String::from_utf8_lossy(bad));
            assert!(!e.message.contains('\n'));
        }
    }

    #[test]
    fn lifetimes_are_capped_and_floored() {
        let max = Duration::from_secs(12 * 3600);
        assert_eq!(lifetime(None, max).unwrap(), max);
        assert_eq!(lifetime(Some(600), max).unwrap(), Duration::from_secs(600));
        assert_eq!(lifetime(Some(300), max).unwrap(), Duration::from_secs(300));
        assert_eq!(lifetime(Some(u64::MAX), max).unwrap(), max);
        assert_eq!(lifetime(Some(299), max).unwrap_err().code, 400);
        assert_eq!(lifetime(Some(0), max).unwrap_err().code, 400);
    }

    #[tokio::test]
    async fn bodies_are_capped_while_reading() {
        let small = http_body_util::Full::new(Bytes::from(vec![b' '; MAX_BODY_BYTES]));
        assert_eq!(read_body(small).await.unwrap().len(), MAX_BODY_BYTES);
        let big = http_body_util::Full::new(Bytes::from(vec![b' '; MAX_BODY_BYTES + 1]));
        assert_eq!(read_body(big).await.unwrap_err().code, 413);
    }
}
