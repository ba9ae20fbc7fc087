//! A tiny built-in OpenID issuer for `hoop-kube demo`, the relay's dev mode and the tests.
//!
//! It lets the whole stack run without an external identity provider. It serves exactly what
//! a verifier needs — `/.well-known/openid-configuration` and `/jwks` — over plain HTTP on
//! `127.0.0.1` (loopback issuers may use plain HTTP; [`crate::relay::oidc`] refuses it for any
//! other host), and mints ES256 ID tokens directly: there is no login, no authorization or token
//! endpoint. Whoever holds a [`DevIssuer`] can mint any identity, so it is for demos and tests
//! only; the relay must never start one outside dev mode.
//!
//! Besides [`DevIssuer::mint`] it has hooks for hostile tests: [`DevIssuer::mint_raw`] (any
//! header and claims, signing chosen by `alg`), [`DevIssuer::sign_parts`] (sign exact bytes, for
//! non-JSON or duplicate-key headers), [`DevIssuer::rotate_key`], [`DevIssuer::publish_jwk`],
//! [`DevIssuer::set_jwks_available`] and [`DevIssuer::jwks_fetches`].

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey};
use rand::Rng as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// A running dev issuer. Dropping it stops its HTTP server.
pub struct DevIssuer {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    issuer: String,
    state: Mutex<State>,
    jwks_fetches: AtomicUsize,
}

struct State {
    key: Arc<SigningKey>,
    extra_jwks: Vec<Value>,
    jwks_available: bool,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    public_pem: String,
}

impl SigningKey {
    /// A fresh P-256 key; its `kid` is the RFC 7638 JWK thumbprint.
    fn generate() -> io::Result<Self> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(io::Error::other)?;
        let point = pair.public_key_raw();
        if point.len() != 65 || point[0] != 4 {
            return Err(io::Error::other("unexpected P-256 public key encoding"));
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
        Ok(Self { kid, encoding: EncodingKey::from_ec_der(&pair.serialize_der()), jwk, public_pem: pair.public_key_pem() })
    }

    fn sign(&self, signing_input: &str) -> String {
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &self.encoding, Algorithm::ES256)
            .expect("ES256 signing with a freshly generated P-256 key does not fail")
    }
}

impl DevIssuer {
    /// Generate an ES256 (P-256) signing key and serve discovery and JWKS on `127.0.0.1:0`.
    pub async fn start() -> io::Result<Self> {
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
        let key = Arc::new(SigningKey::generate()?);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            issuer,
            state: Mutex::new(State { key, extra_jwks: Vec::new(), jwks_available: true }),
            jwks_fetches: AtomicUsize::new(0),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        tracing::debug!(issuer = %shared.issuer, "dev OIDC issuer started");
        Ok(Self { shared, server })
    }

    /// The issuer URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The JWKS URL, `{issuer}/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> String {
        self.shared.state().key.kid.clone()
    }

    /// The current public key as a JWK (`kty` EC, `crv` P-256, `x`, `y`, `kid`, `alg`, `use`).
    pub fn public_jwk(&self) -> Value {
        self.shared.state().key.jwk.clone()
    }

    /// The current public key as SPKI PEM — what an algorithm-confusion attacker would use as
    /// an HMAC secret.
    pub fn public_key_pem(&self) -> String {
        self.shared.state().key.public_pem.clone()
    }

    /// Mint an ID token signed with the current key (header `alg` ES256, `typ` JWT, `kid`).
    /// Claims: `iss`, `sub`, `aud`, `iat`, `nbf` (now), `exp` (now + `ttl`), `email` (the
    /// subject if it contains `@`, else `subject@example.com`), `email_verified: true`, `groups`;
    /// then every member of `extra` (an object; `null` adds nothing), overriding those above.
    pub fn mint(&self, subject: &str, groups: &[&str], audience: &str, ttl: Duration, extra: Value) -> String {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let email = if subject.contains('@') { subject.to_owned() } else { format!("{subject}@example.com") };
        let mut claims = json!({
            "iss": self.shared.issuer, "sub": subject, "aud": audience,
            "iat": now, "nbf": now, "exp": now.saturating_add(ttl),
            "email": email, "email_verified": true, "groups": groups,
        });
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid()});
        self.mint_raw(header, claims)
    }

    /// Mint a token from an arbitrary header and claims, serialized as given. The signature
    /// depends only on the header's `alg` (never on extra header fields):
    /// - `"ES256"`: signed with the current issuer key (whatever `kid` says);
    /// - `"none"`: no signature (the token ends with `.`);
    /// - `"HS256"`, `"HS384"`, `"HS512"`: HMAC keyed with [`Self::public_key_pem`], the classic
    ///   algorithm-confusion attack;
    /// - anything else (or no `alg`): 64 random bytes, well-formed but never valid.
    pub fn mint_raw(&self, header: Value, claims: Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signature = match header.get("alg").and_then(Value::as_str).unwrap_or("") {
            "ES256" => self.shared.state().key.sign(&input),
            "none" => String::new(),
            alg @ ("HS256" | "HS384" | "HS512") => {
                let alg = match alg {
                    "HS256" => Algorithm::HS256,
                    "HS384" => Algorithm::HS384,
                    _ => Algorithm::HS512,
                };
                let secret = EncodingKey::from_secret(self.public_key_pem().as_bytes());
                jsonwebtoken::crypto::sign(input.as_bytes(), &secret, alg)
                    .expect("HMAC signing does not fail")
            }
            _ => {
                let mut junk = [0u8; 64];
                rand::rng().fill(&mut junk[..]);
                b64(&junk)
            }
        };
        format!("{input}.{signature}")
    }

    /// Sign exact header and payload bytes (base64url-encoded here) with the current ES256 key:
    /// for headers that are not JSON, repeat a key, or are otherwise not expressible as a
    /// [`Value`].
    pub fn sign_parts(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let signature = self.shared.state().key.sign(&input);
        format!("{input}.{signature}")
    }

    /// Replace the signing key with a fresh one; the JWKS then serves only the new key (plus
    /// any published extra keys). Returns the new `kid`.
    pub fn rotate_key(&self) -> io::Result<String> {
        let key = Arc::new(SigningKey::generate()?);
        let kid = key.kid.clone();
        self.shared.state().key = key;
        Ok(kid)
    }

    /// Also serve `jwk` in the JWKS, verbatim (e.g. an RSA key, or a key with a contradicting
    /// `use` or `alg`).
    pub fn publish_jwk(&self, jwk: Value) {
        self.shared.state().extra_jwks.push(jwk);
    }

    /// While `false`, `/jwks` answers `503 Service Unavailable`.
    pub fn set_jwks_available(&self, available: bool) {
        self.shared.state().jwks_available = available;
    }

    /// How many GET requests `/jwks` has received (answered 200 or 503).
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer").field("issuer", &self.shared.issuer).finish_non_exhaustive()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Accept loop; connection tasks live in the `JoinSet`, so aborting this task ends them too.
async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let response = route(&shared, &req);
                            async move { Ok::<_, Infallible>(response) }
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                            tracing::debug!(error = %e, "dev issuer connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dev issuer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn route<B>(shared: &Shared, req: &Request<B>) -> Response<Full<Bytes>> {
    const DISCOVERY: &str = "/.well-known/openid-configuration";
    match (req.method(), req.uri().path()) {
        (&Method::GET, DISCOVERY) => json_response(&json!({
            "issuer": shared.issuer,
            "jwks_uri": format!("{}/jwks", shared.issuer),
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "scopes_supported": ["openid", "email", "groups"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "email", "email_verified", "groups"],
        })),
        (&Method::GET, "/jwks") => {
            shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let state = shared.state();
            if !state.jwks_available {
                return text_response(StatusCode::SERVICE_UNAVAILABLE, "jwks unavailable\n");
            }
            let mut keys = vec![state.key.jwk.clone()];
            keys.extend(state.extra_jwks.iter().cloned());
            json_response(&json!({ "keys": keys }))
        }
        (_, DISCOVERY | "/jwks") => text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn json_response(body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text_response(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

#[cfg(test)]
#[path = "dev_issuer_tests.rs"]
mod tests;
