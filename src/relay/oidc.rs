//! OIDC bearer-token verification: the second of the relay's two proofs of identity.
//!
//! **Why.** Every request carries two proofs that must name the same subject: the mTLS client
//! certificate (hours long, checked elsewhere) and a bearer OIDC ID token (minutes long, checked
//! here), which ties the request to a live session at the identity provider. This module turns the
//! token into an [`Identity`] or refuses it, and fails closed: what it does not understand is an error.
//!
//! **What it trusts.** The configured issuer URL, exactly as written, and the discovery document and
//! JWKS fetched from it — over HTTPS (system roots plus the optional extra CA) or plain HTTP to a
//! loopback address, without following redirects, with timeouts and a 256 KiB cap. Keys come from
//! that JWKS only: key hints inside a token (`jku`, `x5u`, `jwk`, `x5c`) are ignored.
//!
//! **What it rejects.**
//! - Tokens over 16 KiB; anything but three canonical, unpadded base64url parts; JWE (five parts);
//!   headers or payloads that are not JSON objects or that repeat a key at any depth (RFC 7515 §4
//!   lets a parser reject duplicates; "last one wins" invites parser-differential tricks); `crit`.
//!   The structural checks are [`crate::jws`], shared with the relay's own agent tokens.
//! - `alg: none` and every symmetric `HS*` algorithm, always — [`Algorithm`] cannot even name them,
//!   so no configuration can allow them — and asymmetric algorithms outside the allow-list.
//! - Keys whose type or curve does not fit the token's `alg`; JWKs whose own `alg`, `use` or
//!   `key_ops` contradict verifying with it; symmetric (`oct`) JWKs; RSA keys under 2048 bits.
//! - A wrong `iss` (exact match), an `aud` naming none of our audiences, a missing or passed `exp`,
//!   an `nbf`/`iat` in the future (all with the leeway), a missing `sub` or username claim,
//!   `email_verified` other than `true` when the username is the `email`, and a username or group
//!   that lands in the reserved `system:` namespace (the relay impersonates these upstream).
//!
//! [`AuthnError`]'s `Display` is safe to return to a client: it never quotes token contents beyond
//! a sanitized, shortened `alg` or `kid`.
//!
//! **Key caching.** The JWKS is held in memory. An unknown `kid` triggers one refetch — at most one
//! per [`JWKS_REFETCH_INTERVAL`] across all callers, single-flight (concurrent callers wait for that
//! fetch and reuse it) — then one retry. A set older than [`JWKS_MAX_AGE`] is refreshed lazily by
//! the next request; while refreshing fails the old set serves until [`JWKS_MAX_STALE`], then
//! verification fails closed.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};
use tokio::sync::Mutex as AsyncMutex;

pub use crate::jws::MAX_TOKEN_BYTES;
use crate::jws::{b64, sanitize, strict_object, JwsError};
/// Discovery documents and JWKS larger than this are refused.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// At most one JWKS refetch per this interval, shared by all callers.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// A key set older than this is refreshed by the next request that needs it.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// A key set older than this (because refreshing failed) is no longer trusted.
pub const JWKS_MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);
/// The largest accepted clock-skew leeway.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);
/// Only this many JWKs of one set are considered.
const MAX_JWKS_KEYS: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

macro_rules! algorithms {
    ($($alg:ident => $kind:ident, $doc:literal;)*) => {
        /// An asymmetric JWS algorithm the verifier can accept. `none` and the symmetric `HS*`
        /// algorithms are deliberately not representable. Serialized by its JOSE name (`"ES256"`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum Algorithm { $(#[doc = $doc] $alg,)* }

        impl Algorithm {
            /// Every supported algorithm.
            pub const ALL: [Algorithm; 9] = [$(Self::$alg),*];
            /// The JOSE name, as in a JWS header's `alg`.
            pub fn name(self) -> &'static str { match self { $(Self::$alg => stringify!($alg),)* } }
            fn jwt(self) -> jsonwebtoken::Algorithm { match self { $(Self::$alg => jsonwebtoken::Algorithm::$alg,)* } }
            fn key_kind(self) -> KeyKind { match self { $(Self::$alg => KeyKind::$kind,)* } }
        }
    };
}

algorithms! {
    RS256 => Rsa, "RSASSA-PKCS1-v1_5 with SHA-256.";
    RS384 => Rsa, "RSASSA-PKCS1-v1_5 with SHA-384.";
    RS512 => Rsa, "RSASSA-PKCS1-v1_5 with SHA-512.";
    PS256 => Rsa, "RSASSA-PSS with SHA-256.";
    PS384 => Rsa, "RSASSA-PSS with SHA-384.";
    PS512 => Rsa, "RSASSA-PSS with SHA-512.";
    ES256 => EcP256, "ECDSA on P-256 with SHA-256.";
    ES384 => EcP384, "ECDSA on P-384 with SHA-384.";
    EdDSA => Ed25519, "EdDSA on Ed25519.";
}

impl Algorithm {
    /// The algorithm with this exact (case-sensitive) JOSE name, if supported.
    pub fn from_name(name: &str) -> Option<Self> { Self::ALL.into_iter().find(|a| a.name() == name) }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
}

impl FromStr for Algorithm {
    type Err = String;
    /// Parse a JOSE name; the error says why `none` and HMAC can never be allowed, and catches
    /// wrong case.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(a) = Self::from_name(s) {
            return Ok(a);
        }
        let allowed = Self::ALL.map(Algorithm::name).join(", ");
        if s.trim().eq_ignore_ascii_case("none") {
            return Err(format!("{s:?} is never allowed: it accepts unsigned tokens; allowed: {allowed}"));
        }
        if s.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) {
            return Err(format!(
                "{s:?} is never allowed: HMAC needs a secret shared with the issuer, and anyone holding it can mint tokens; use an asymmetric algorithm ({allowed})"
            ));
        }
        if let Some(a) = Self::ALL.iter().find(|a| a.name().eq_ignore_ascii_case(s)) {
            return Err(format!("{s:?} is not an algorithm name (names are case-sensitive); did you mean {:?}?", a.name()));
        }
        Err(format!("{s:?} is not supported; allowed: {allowed}"))
    }
}

/// How to reach and trust one OIDC issuer, and how to map its claims to a Kubernetes identity.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer URL (`https://`, or `http://` to loopback); `iss` and discovery's `issuer` must equal it exactly.
    pub issuer: String,
    /// Accepted audiences (client ids); the token's `aud` must name at least one. Non-empty.
    pub audiences: Vec<String>,
    /// The claim holding the username (`sub`, `email`, …); with `email`, a present `email_verified` must be `true`.
    pub username_claim: String,
    /// Prepended to the username claim's value (e.g. `oidc:`).
    pub username_prefix: String,
    /// The claim that holds the groups (a string or an array of strings); empty = no groups.
    pub groups_claim: String,
    /// Prepended to every group.
    pub groups_prefix: String,
    /// The allow-list of signing algorithms. Non-empty.
    pub algorithms: Vec<Algorithm>,
    /// Clock-skew leeway for `exp`, `nbf` and `iat`, whole seconds, at most [`MAX_LEEWAY`].
    pub leeway: Duration,
    /// Extra PEM root certificate(s) trusted for the issuer's TLS, in addition to system roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl OidcSettings {
    /// Settings with defaults: username from `sub`, groups from `groups`, no prefixes,
    /// algorithms RS256 and ES256, 30 s leeway, system roots only.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        let (issuer, audiences, algorithms) = (issuer.into(), vec![audience.into()], vec![Algorithm::RS256, Algorithm::ES256]);
        let (username_claim, groups_claim, leeway) = ("sub".into(), "groups".into(), Duration::from_secs(30));
        Self { issuer, audiences, username_claim, username_prefix: String::new(), groups_claim, groups_prefix: String::new(), algorithms, leeway, ca_pem: None }
    }
}

/// The verified identity.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The `sub` claim, raw (no prefix).
    pub subject: String,
    /// `username_prefix` + the username claim.
    pub username: String,
    /// `groups_prefix` + each entry of the groups claim.
    pub groups: Vec<String>,
    /// The token's `exp`.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The whole verified payload.
    pub claims: Value,
}

impl Identity {
    /// The agent acting for the subject: the RFC 8693 `act.sub` claim, if any.
    pub fn agent(&self) -> Option<&str> {
        self.claims.get("act").and_then(|a| a.get("sub")).and_then(Value::as_str)
    }
}

/// Why a token (or the issuer) was refused. `Display` is safe to show a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthnError {
    /// Not a well-formed compact JWS (structure, base64url, JSON, duplicate keys, `crit`).
    #[error("malformed token: {0}")] Malformed(&'static str),
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token is larger than 16 KiB")] TooLarge,
    /// The header's `alg` is unknown, `none` or symmetric (sanitized name).
    #[error("token signing algorithm {0:?} is not supported")] UnsupportedAlgorithm(String),
    /// The header's `alg` is supported but not in the configured allow-list.
    #[error("token signing algorithm {0} is not allowed")] AlgorithmNotAllowed(Algorithm),
    /// No key in the JWKS has this `kid` (sanitized; empty if none), even after the allowed refetch.
    #[error("no signing key of the issuer matches key id {0:?}")] UnknownKey(String),
    /// The JWKS has this `kid`, but that key cannot verify the token's `alg`.
    #[error("the issuer's key {0:?} cannot verify this token's algorithm")] KeyMismatch(String),
    /// The signature does not verify.
    #[error("token signature is invalid")] BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token has expired")] Expired,
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    #[error("token is not valid yet")] NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer is not the configured issuer")] WrongIssuer,
    /// `aud` names none of the configured audiences.
    #[error("token audience does not include this relay")] WrongAudience,
    /// A required claim is absent.
    #[error("token lacks the {0:?} claim")] MissingClaim(String),
    /// A claim has the wrong type or an empty value.
    #[error("token claim {0:?} has the wrong type or is empty")] InvalidClaim(String),
    /// The username comes from `email`, and `email_verified` is present but not `true`.
    #[error("token email is not verified")] EmailNotVerified,
    /// The username or a group would fall into the reserved `system:` namespace.
    #[error("token maps to a reserved \"system:\" username or group")] ReservedName,
    /// The discovery document could not be fetched or does not fit.
    #[error("OIDC discovery failed: {0}")] Discovery(String),
    /// The issuer's key set could not be fetched, parsed, or is too stale.
    #[error("issuer key set unavailable: {0}")] Jwks(String),
    /// The settings are unusable.
    #[error("invalid OIDC settings: {0}")] Config(String),
}

impl AuthnError {
    /// True when the failure is on the relay's or issuer's side (answer 503, not 401).
    pub fn is_unavailable(&self) -> bool { matches!(self, Self::Discovery(_) | Self::Jwks(_) | Self::Config(_)) }
}

/// Verifies bearer tokens of one issuer. Cheap to clone; all clones share the key cache.
#[derive(Clone)]
pub struct Verifier { inner: Arc<Inner> }

/// `refresh` is held for the whole of a refetch (single flight) and holds the last attempt's time.
struct Inner { settings: OidcSettings, jwks_uri: String, http: reqwest::Client, keys: RwLock<Arc<KeySet>>, refresh: AsyncMutex<Option<Instant>> }

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("issuer", &self.inner.settings.issuer).field("jwks_uri", &self.inner.jwks_uri).finish_non_exhaustive()
    }
}

impl Verifier {
    /// Fetch `{issuer}/.well-known/openid-configuration`, check its `issuer` equals the
    /// configured one exactly, fetch `jwks_uri` and keep its keys.
    pub async fn discover(settings: OidcSettings) -> Result<Self, AuthnError> {
        // Only jsonwebtoken's aws-lc-rs backend is compiled in; installing it explicitly keeps
        // verification working even if another crate in the build enables the other backend.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER);
        validate_settings(&settings)?;
        let http = http_client(&settings)?;
        let url = format!("{}/.well-known/openid-configuration", settings.issuer.trim_end_matches('/'));
        let body = fetch(&http, &url).await.map_err(|e| AuthnError::Discovery(format!("{url}: {e}")))?;
        let doc: DiscoveryDocument = serde_json::from_slice(&body).map_err(|e| AuthnError::Discovery(format!("{url} is not a discovery document: {e}")))?;
        if doc.issuer != settings.issuer {
            let (got, want) = (&doc.issuer, &settings.issuer);
            return Err(AuthnError::Discovery(format!("the discovery document names issuer {got:?}, expected exactly {want:?}")));
        }
        check_url(&doc.jwks_uri).map_err(|e| AuthnError::Discovery(format!("jwks_uri: {e}")))?;
        let signs_with = doc.id_token_signing_alg_values_supported.as_deref().unwrap_or_default();
        if !signs_with.is_empty() && !settings.algorithms.iter().any(|a| signs_with.iter().any(|s| s == a.name())) {
            tracing::warn!(issuer = %settings.issuer, ?signs_with, "no allowed algorithm is among those the issuer signs with");
        }
        let set = fetch_keys(&http, &doc.jwks_uri).await?;
        tracing::debug!(issuer = %settings.issuer, keys = set.keys.len(), "OIDC issuer discovered");
        let keys = RwLock::new(Arc::new(set));
        Ok(Self { inner: Arc::new(Inner { settings, jwks_uri: doc.jwks_uri, http, keys, refresh: AsyncMutex::new(None) }) })
    }

    /// The settings this verifier was built with.
    pub fn settings(&self) -> &OidcSettings { &self.inner.settings }
    /// The JWKS URL taken from discovery.
    pub fn jwks_uri(&self) -> &str { &self.inner.jwks_uri }

    /// Verify a compact JWS. Checks, in order: size and structure, header `alg` in the
    /// allow-list, key lookup by `kid` (with at most one rate-limited refetch for an unknown
    /// `kid`), signature, `iss`, `aud`, `exp`, `nbf`/`iat`, `sub`, username and groups claims.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthnError> {
        let parsed = parse(token, &self.inner.settings.algorithms)?;
        let set = self.current_keys().await?;
        match check_signature(&set, &parsed) {
            Err(AuthnError::UnknownKey(kid)) => match self.refetch_after(set.generation).await? {
                Some(fresh) => check_signature(&fresh, &parsed)?,
                None => return Err(AuthnError::UnknownKey(kid)),
            },
            other => other?,
        }
        check_claims(&self.inner.settings, &parsed.payload, chrono::Utc::now().timestamp())
    }

    fn snapshot(&self) -> Arc<KeySet> { self.inner.keys.read().unwrap_or_else(PoisonError::into_inner).clone() }

    fn install(&self, mut set: KeySet) -> Arc<KeySet> {
        let mut slot = self.inner.keys.write().unwrap_or_else(PoisonError::into_inner);
        set.generation = slot.generation + 1;
        *slot = Arc::new(set);
        slot.clone()
    }

    /// The cached key set, refreshed first (without waiting for anyone) when it is old.
    async fn current_keys(&self) -> Result<Arc<KeySet>, AuthnError> {
        let set = self.snapshot();
        if set.fetched_at.elapsed() < JWKS_MAX_AGE { return Ok(set); }
        if let Ok(mut last) = self.inner.refresh.try_lock() {
            let due = last.is_none_or(|t| t.elapsed() >= JWKS_REFETCH_INTERVAL);
            if due && self.snapshot().generation == set.generation {
                *last = Some(Instant::now());
                if let Err(e) = fetch_keys(&self.inner.http, &self.inner.jwks_uri).await.map(|fresh| self.install(fresh)) {
                    tracing::warn!(error = %e, "refreshing the OIDC key set failed");
                }
            }
        }
        let set = self.snapshot();
        if set.fetched_at.elapsed() > JWKS_MAX_STALE {
            return Err(AuthnError::Jwks("the cached key set is too old and cannot be refreshed".into()));
        }
        Ok(set)
    }

    /// Refetch because a `kid` was unknown in generation `seen`. `Ok(None)` = rate-limited.
    async fn refetch_after(&self, seen: u64) -> Result<Option<Arc<KeySet>>, AuthnError> {
        let mut last = self.inner.refresh.lock().await;
        let current = self.snapshot();
        if current.generation != seen {
            return Ok(Some(current)); // someone refetched while we waited: use theirs
        }
        if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_INTERVAL) { return Ok(None); }
        *last = Some(Instant::now());
        let fresh = fetch_keys(&self.inner.http, &self.inner.jwks_uri).await;
        let fresh = fresh.inspect_err(|e| tracing::warn!(error = %e, "refetching the OIDC key set for an unknown kid failed"))?;
        Ok(Some(self.install(fresh)))
    }
}

#[derive(serde::Deserialize)]
struct DiscoveryDocument { issuer: String, jwks_uri: String, id_token_signing_alg_values_supported: Option<Vec<String>> }

fn validate_settings(s: &OidcSettings) -> Result<(), AuthnError> {
    let problem = if let Err(e) = check_url(&s.issuer) {
        format!("issuer: {e}")
    } else if s.audiences.is_empty() || s.audiences.iter().any(String::is_empty) {
        "audiences must be non-empty strings, at least one".into()
    } else if s.algorithms.is_empty() {
        "the algorithm allow-list is empty".into()
    } else if s.username_claim.is_empty() {
        "username_claim is empty".into()
    } else if s.leeway > MAX_LEEWAY {
        format!("leeway is more than {} s", MAX_LEEWAY.as_secs())
    } else {
        return Ok(());
    };
    Err(AuthnError::Config(problem))
}

/// `https://…`, or `http://…` to a loopback host; no query, no fragment.
fn check_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{s:?} must not have a query or fragment"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(format!("{s:?} must use https (plain http only to a loopback address)")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some(h) if h.eq_ignore_ascii_case("localhost") => true,
        Some(h) => h.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn http_client(s: &OidcSettings) -> Result<reqwest::Client, AuthnError> {
    let mut b = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none()).user_agent(concat!("hoop-kube/", env!("CARGO_PKG_VERSION")));
    if reqwest::Url::parse(&s.issuer).is_ok_and(|u| is_loopback(&u)) { b = b.no_proxy(); }
    if let Some(pem) = &s.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| AuthnError::Config(format!("ca_pem: {}", crate::text::error_chain(&e))))?;
        if certs.is_empty() { return Err(AuthnError::Config("ca_pem holds no certificate".into())); }
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| AuthnError::Config(format!("HTTP client: {}", crate::text::error_chain(&e))))
}

/// GET `url`, expecting a 2xx JSON body of at most [`MAX_DOCUMENT_BYTES`].
async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let req = http.get(url).header(reqwest::header::ACCEPT, "application/json");
    let mut resp = req.send().await.map_err(|e| crate::text::error_chain(&e))?;
    if !resp.status().is_success() {
        return Err(format!("answered HTTP {}", resp.status()));
    }
    let too_big = || format!("response is larger than {} KiB", MAX_DOCUMENT_BYTES / 1024);
    if resp.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) { return Err(too_big()); }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| crate::text::error_chain(&e))? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES { return Err(too_big()); }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}


/// The key types a JWS algorithm can be verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind { Rsa, EcP256, EcP384, Ed25519 }

struct VerifyingKey { kid: Option<String>, kind: KeyKind, alg: Option<Algorithm>, key: DecodingKey }

impl VerifyingKey {
    fn fits(&self, alg: Algorithm) -> bool { self.kind == alg.key_kind() && self.alg.is_none_or(|a| a == alg) }
}

/// Usable keys, plus every `kid` in the JWKS usable or not (to tell "unknown" from "unusable").
struct KeySet { keys: Vec<VerifyingKey>, kids: HashSet<String>, fetched_at: Instant, generation: u64 }

async fn fetch_keys(http: &reqwest::Client, uri: &str) -> Result<KeySet, AuthnError> {
    let body = fetch(http, uri).await.map_err(|e| AuthnError::Jwks(format!("{uri}: {e}")))?;
    let (keys, kids) = parse_jwks(&body).map_err(|e| AuthnError::Jwks(format!("{uri}: {e}")))?;
    Ok(KeySet { keys, kids, fetched_at: Instant::now(), generation: 0 })
}

fn parse_jwks(body: &[u8]) -> Result<(Vec<VerifyingKey>, HashSet<String>), String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let entries = doc.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
    let (mut keys, mut kids) = (Vec::new(), HashSet::new());
    for jwk in entries.iter().take(MAX_JWKS_KEYS) {
        if let Some(kid) = jwk.get("kid").and_then(Value::as_str) { kids.insert(kid.to_owned()); }
        match parse_jwk(jwk) {
            Some(k) => keys.push(k),
            None => tracing::debug!(kid = ?jwk.get("kid"), "skipping a JWK that cannot verify signatures"),
        }
    }
    if keys.is_empty() { return Err("no usable signing key".into()); }
    Ok((keys, kids))
}

/// One JWK as a verification key, or `None` when it is not a usable public signing key.
fn parse_jwk(jwk: &Value) -> Option<VerifyingKey> {
    let obj = jwk.as_object()?;
    let text = |name: &str| obj.get(name).and_then(Value::as_str);
    if obj.get("use").is_some_and(|u| u.as_str() != Some("sig")) { return None; }
    if obj.get("key_ops").is_some_and(|ops| !ops.as_array().is_some_and(|o| o.iter().any(|o| o == "verify"))) { return None; }
    let alg = match obj.get("alg") { None => None, Some(a) => Some(Algorithm::from_name(a.as_str()?)?) };
    let kid = match obj.get("kid") { None => None, Some(k) => Some(k.as_str()?.to_owned()) };
    let coord = |name: &str, len: usize| b64(text(name)?).filter(|c| c.len() == len);
    let (kind, key) = match text("kty")? {
        "RSA" => {
            let (n, e) = (b64(text("n")?)?, b64(text("e")?)?);
            if n.iter().skip_while(|b| **b == 0).count() < 256 || e.is_empty() { return None; } // < 2048 bits
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let (kind, len) = match text("crv")? { "P-256" => (KeyKind::EcP256, 32), "P-384" => (KeyKind::EcP384, 48), _ => return None };
            coord("x", len).zip(coord("y", len))?;
            (kind, DecodingKey::from_ec_components(text("x")?, text("y")?).ok()?)
        }
        "OKP" if text("crv")? == "Ed25519" => {
            coord("x", 32)?;
            (KeyKind::Ed25519, DecodingKey::from_ed_components(text("x")?).ok()?)
        }
        _ => return None, // includes "oct": symmetric keys are never used
    };
    if alg.is_some_and(|a| a.key_kind() != kind) { return None; }
    Some(VerifyingKey { kid, kind, alg, key })
}

/// A token that passed the structure and algorithm checks.
struct Parsed<'a> { signing_input: &'a str, signature: &'a str, payload: Vec<u8>, alg: Algorithm, kid: Option<String> }

fn parse<'a>(token: &'a str, allowed: &[Algorithm]) -> Result<Parsed<'a>, AuthnError> {
    use AuthnError::Malformed;
    let jws = crate::jws::decode(token).map_err(|e| match e {
        JwsError::TooLarge => AuthnError::TooLarge,
        JwsError::Malformed(m) => Malformed(m),
    })?;
    let header = jws.header;
    let Some(Value::String(alg)) = header.get("alg") else { return Err(Malformed("header has no alg")) };
    let alg = Algorithm::from_name(alg).ok_or_else(|| AuthnError::UnsupportedAlgorithm(sanitize(alg)))?;
    if !allowed.contains(&alg) { return Err(AuthnError::AlgorithmNotAllowed(alg)); }
    if header.contains_key("crit") { return Err(Malformed("critical header extensions are not supported")); }
    let kid = match header.get("kid") { None => None, Some(Value::String(k)) => Some(k.clone()), Some(_) => return Err(Malformed("kid is not a string")) };
    Ok(Parsed { signing_input: jws.signing_input, signature: jws.signature, payload: jws.payload, alg, kid })
}

/// Find the key(s) for the token and check the signature. `UnknownKey` means a refetch may help.
fn check_signature(set: &KeySet, p: &Parsed<'_>) -> Result<(), AuthnError> {
    let candidates: Vec<&VerifyingKey> = set.keys.iter().filter(|k| (p.kid.is_none() || k.kid == p.kid) && k.fits(p.alg)).collect();
    if candidates.is_empty() {
        return Err(match &p.kid {
            Some(k) if set.kids.contains(k) => AuthnError::KeyMismatch(sanitize(k)),
            k => AuthnError::UnknownKey(sanitize(k.as_deref().unwrap_or_default())),
        });
    }
    let input = p.signing_input.as_bytes();
    let verified = |k: &&VerifyingKey| jsonwebtoken::crypto::verify(p.signature, input, &k.key, p.alg.jwt()).unwrap_or(false);
    if candidates.iter().any(verified) { Ok(()) } else { Err(AuthnError::BadSignature) }
}

fn check_claims(s: &OidcSettings, payload: &[u8], now: i64) -> Result<Identity, AuthnError> {
    use AuthnError::{InvalidClaim, MissingClaim};
    let claims = strict_object(payload).ok_or(AuthnError::Malformed("payload is not a JSON object with unique keys"))?;
    match claims.get("iss") {
        None => return Err(MissingClaim("iss".into())),
        Some(Value::String(iss)) if *iss == s.issuer => {}
        Some(_) => return Err(AuthnError::WrongIssuer),
    }
    let ours = |a: &str| s.audiences.iter().any(|x| x == a);
    let aud_ok = match claims.get("aud") {
        None => return Err(MissingClaim("aud".into())),
        Some(Value::String(a)) => ours(a),
        Some(Value::Array(items)) => items.iter().map(Value::as_str).collect::<Option<Vec<_>>>().ok_or_else(|| InvalidClaim("aud".into()))?.into_iter().any(ours),
        Some(_) => return Err(InvalidClaim("aud".into())),
    };
    if !aud_ok { return Err(AuthnError::WrongAudience); }
    let leeway = i64::try_from(s.leeway.as_secs()).unwrap_or(i64::MAX);
    let exp = numeric_date(&claims, "exp")?.ok_or_else(|| MissingClaim("exp".into()))?;
    if now >= exp.saturating_add(leeway) { return Err(AuthnError::Expired); }
    for name in ["nbf", "iat"] {
        if numeric_date(&claims, name)?.is_some_and(|t| t > now.saturating_add(leeway)) { return Err(AuthnError::NotYetValid); }
    }
    let subject = string_claim(&claims, "sub")?;
    let user = string_claim(&claims, &s.username_claim)?;
    if s.username_claim == "email" && claims.get("email_verified").is_some_and(|v| *v != Value::Bool(true)) {
        return Err(AuthnError::EmailNotVerified);
    }
    let username = format!("{}{user}", s.username_prefix);
    let bad_groups = || InvalidClaim(s.groups_claim.clone());
    let raw_groups: Vec<&str> = match claims.get(&s.groups_claim) {
        _ if s.groups_claim.is_empty() => Vec::new(),
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(g)) => vec![g.as_str()],
        Some(Value::Array(items)) => items.iter().map(Value::as_str).collect::<Option<Vec<_>>>().ok_or_else(bad_groups)?,
        Some(_) => return Err(bad_groups()),
    };
    if raw_groups.iter().any(|g| g.is_empty()) { return Err(bad_groups()); }
    let groups: Vec<String> = raw_groups.iter().map(|g| format!("{}{g}", s.groups_prefix)).collect();
    if username.starts_with("system:") || groups.iter().any(|g| g.starts_with("system:")) { return Err(AuthnError::ReservedName); }
    let expires_at = chrono::DateTime::from_timestamp(exp, 0).ok_or_else(|| InvalidClaim("exp".into()))?;
    Ok(Identity { subject: subject.to_owned(), username, groups, expires_at, claims: Value::Object(claims) })
}

/// A non-empty string claim.
fn string_claim<'c>(claims: &'c Map<String, Value>, name: &str) -> Result<&'c str, AuthnError> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(AuthnError::MissingClaim(name.to_owned())),
        Some(Value::String(v)) if !v.is_empty() => Ok(v),
        Some(_) => Err(AuthnError::InvalidClaim(name.to_owned())),
    }
}

/// A NumericDate claim (seconds; a fraction is truncated), if present.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthnError> {
    let Some(v) = claims.get(name) else { return Ok(None) };
    let n = v.as_number().ok_or_else(|| AuthnError::InvalidClaim(name.to_owned()))?;
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Ok(Some(i)),
        (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
        _ => Err(AuthnError::InvalidClaim(name.to_owned())),
    }
}

#[cfg(test)]
#[path = "oidc_tests.rs"]
mod tests;
