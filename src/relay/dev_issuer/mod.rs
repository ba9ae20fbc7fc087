//! A tiny built-in OpenID provider for `hoop-kube demo`, the relay's dev mode and the tests.
//!
//! It lets the whole stack run without an external identity provider, over plain HTTP on
//! `127.0.0.1` (loopback issuers may use plain HTTP; [`crate::relay::oidc`] and the login client
//! refuse it for any other host). It serves:
//!
//! - `GET /.well-known/openid-configuration` and `GET /jwks` (ES256, P-256): what a verifier
//!   needs;
//! - `POST /device/auth` and `POST /token`: the OAuth 2.0 device authorization grant (RFC 8628)
//!   and the refresh-token grant with rotation, for one public client (default `hoop-kube`,
//!   see [`DevIssuerOptions`]) — what `hoop-kube login` and `hoop-kube credential` speak;
//! - `GET /device?user_code=…` and `POST /device`: a minimal approval page listing the
//!   registered users as buttons (see [`DevIssuerOptions::approval_page`]);
//! - `/authorize` exists only because discovery must name an authorization endpoint: it always
//!   answers `unsupported_response_type`.
//!
//! Whoever holds a [`DevIssuer`] can mint any identity ([`DevIssuer::mint`]), and whoever can
//! reach the approval page can approve a login as any registered user: it is for demos and tests
//! only; the relay must never start one outside dev mode.
//!
//! # Approving device logins
//!
//! [`DevIssuer::register_user`] declares who exists (subject, groups, extra claims such as
//! `act`); a device login is then approved with [`DevIssuer::approve`] (or refused with
//! [`DevIssuer::deny`]) by its user code, in-process, or by a human on the page.
//!
//! To approve a login run as a child process (`hoop-kube login --profile demo-alice`) without a
//! browser, race-free:
//!
//! 1. Best: read the user code the child prints (the same code a human would type) and
//!    `approve(code, "alice")`. The code exists once it is printed, so this cannot come too
//!    early, and no other login can be approved by mistake.
//! 2. Or, when the output is not at hand: take `let mark = issuer.device_authorizations()`
//!    *before* spawning the child, then `issuer.wait_for_login(mark, timeout)` returns the first
//!    device login started after the mark that still waits, and approve its
//!    [`PendingLogin::user_code`]. Stale codes of earlier, abandoned logins are never picked.
//!    Run such logins one after the other: the issuer cannot tell two concurrent children
//!    apart (nor the child from another local program starting a device login at that moment).
//!
//! Every approved login gets a refresh token (whether or not `offline_access` was asked for, as
//! the test IdP's `issueRefreshToken` hook does). Refresh tokens rotate: each refresh returns a
//! new one, and presenting one that was already used revokes the whole grant (`invalid_grant`
//! for every token of that login from then on), as oidc-provider does. Refreshes use the user's
//! current registration (groups, extra claims).
//!
//! There is deliberately no "approve everything as alice" mode: it would hand alice's tokens to
//! any local program that asks.
//!
//! # Test hooks
//!
//! [`DevIssuer::mint_raw`] (any header and claims, signing chosen by `alg`),
//! [`DevIssuer::sign_parts`] (sign exact bytes, for non-JSON or duplicate-key headers),
//! [`DevIssuer::rotate_key`], [`DevIssuer::publish_jwk`], [`DevIssuer::set_jwks_available`],
//! [`DevIssuer::jwks_fetches`], [`DevIssuer::token_requests`], [`DevIssuer::polls`] and
//! [`DevIssuer::force_slow_down`].

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use rand::Rng as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

mod flows;
mod server;

pub use flows::{ApprovalError, PendingLogin};

/// The client id the dev issuer accepts by default (the demo's audience).
pub const DEFAULT_CLIENT_ID: &str = "hoop-kube";

/// How a [`DevIssuer`] runs its device and refresh-token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevIssuerOptions {
    /// The one public client allowed at `/device/auth` and `/token` (default `hoop-kube`); it
    /// is also the `aud` of the ID tokens issued there.
    pub client_id: String,
    /// The poll `interval` sent with every device code and enforced with `slow_down` (default
    /// 1 s). Sent in whole seconds: rounded up, at least 1 s.
    pub poll_interval: Duration,
    /// How long a device code and its user code live (default 600 s).
    pub device_code_ttl: Duration,
    /// Lifetime of the ID and access tokens issued at `/token` (default 10 minutes, short enough
    /// that a demo exercises refreshing).
    pub token_ttl: Duration,
    /// How long a refresh token stays valid after it was issued (default 24 hours).
    pub refresh_token_ttl: Duration,
    /// Serve the approval page at `/device` (default `true`). When `false` the page answers
    /// 403 and only [`DevIssuer::approve`] approves.
    pub approval_page: bool,
}

impl Default for DevIssuerOptions {
    fn default() -> Self {
        DevIssuerOptions {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            poll_interval: Duration::from_secs(1),
            device_code_ttl: Duration::from_secs(600),
            token_ttl: Duration::from_secs(600),
            refresh_token_ttl: Duration::from_secs(24 * 3600),
            approval_page: true,
        }
    }
}

/// How many token-endpoint requests arrived, by `grant_type` (every POST `/token`, answered
/// with tokens or with an error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenRequests {
    /// `urn:ietf:params:oauth:grant-type:device_code` (polls).
    pub device_code: usize,
    /// `refresh_token`.
    pub refresh_token: usize,
    /// Anything else: another or no `grant_type`, or a body that could not be read.
    pub other: usize,
}

/// A running dev issuer. Dropping it stops its HTTP server.
pub struct DevIssuer {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    issuer: String,
    options: DevIssuerOptions,
    state: Mutex<State>,
    flows: Mutex<flows::Flows>,
    jwks_fetches: AtomicUsize,
    /// device_code, refresh_token, other.
    token_requests: [AtomicUsize; 3],
    /// Bumped on every device authorization, for [`DevIssuer::wait_for_login`].
    logins: tokio::sync::watch::Sender<u64>,
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
    /// [`DevIssuer::start_with`] the default options.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(DevIssuerOptions::default()).await
    }

    /// Generate an ES256 (P-256) signing key and serve on `127.0.0.1:0`.
    pub async fn start_with(options: DevIssuerOptions) -> io::Result<Self> {
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        );
        let mut options = options;
        options.poll_interval = Duration::from_secs(whole_seconds(options.poll_interval).max(1));
        let key = Arc::new(SigningKey::generate()?);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            issuer,
            options,
            state: Mutex::new(State { key, extra_jwks: Vec::new(), jwks_available: true }),
            flows: Mutex::new(flows::Flows::new()),
            jwks_fetches: AtomicUsize::new(0),
            token_requests: Default::default(),
            logins: tokio::sync::watch::Sender::new(0),
        });
        let server = tokio::spawn(server::serve(listener, shared.clone()));
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
        self.shared.mint(subject, groups, audience, ttl, extra)
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

    // ---------------------------------------------------------------------------------------
    // Device and refresh-token grants

    /// The options it runs with (`poll_interval` as rounded up to whole seconds).
    pub fn options(&self) -> &DevIssuerOptions {
        &self.shared.options
    }

    /// The device authorization endpoint, `{issuer}/device/auth`.
    pub fn device_authorization_endpoint(&self) -> String {
        format!("{}/device/auth", self.shared.issuer)
    }

    /// The token endpoint, `{issuer}/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.shared.issuer)
    }

    /// Declare a user that device logins can be approved for (on the page, one button each):
    /// its ID tokens carry `sub` = `subject`, `groups`, and every member of `extra_claims` (an
    /// object, e.g. `{"act": {"sub": "alice"}}` for an agent; `null` adds nothing), as
    /// [`DevIssuer::mint`] makes them. Registering a subject again replaces it; refreshes pick
    /// up the new groups and claims.
    pub fn register_user(&self, subject: &str, groups: &[&str], extra_claims: Value) {
        let user = flows::User { groups: groups.iter().map(|g| (*g).to_owned()).collect(), extra: extra_claims };
        self.shared.flows().register_user(subject, user);
    }

    /// Device logins that wait for approval (unexpired, neither approved nor denied), oldest
    /// first.
    pub fn pending(&self) -> Vec<PendingLogin> {
        self.shared.flows().pending(Instant::now())
    }

    /// How many device authorizations were made so far; a mark for
    /// [`DevIssuer::wait_for_login`].
    pub fn device_authorizations(&self) -> u64 {
        self.shared.flows().started()
    }

    /// Wait up to `timeout` for a pending device login whose [`PendingLogin::number`] is greater
    /// than `after` (a mark from [`DevIssuer::device_authorizations`], taken before the login was
    /// started), and return the first such one. `None` on timeout. See the module docs for why
    /// this is race-free only for logins run one after the other.
    pub async fn wait_for_login(&self, after: u64, timeout: Duration) -> Option<PendingLogin> {
        let mut changes = self.shared.logins.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if let Some(login) = self.pending().into_iter().find(|p| p.number > after) {
                return Some(login);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Approve the device login with this user code (`XXXX-XXXX`; dash, spaces and case do not
    /// matter) for `subject`, who must be registered. Its next poll receives the tokens.
    pub fn approve(&self, user_code: &str, subject: &str) -> Result<(), ApprovalError> {
        self.shared.flows().approve(user_code, subject, Instant::now())
    }

    /// Deny the device login with this user code: its polls answer `access_denied`.
    pub fn deny(&self, user_code: &str) -> Result<(), ApprovalError> {
        self.shared.flows().deny(user_code, Instant::now())
    }

    /// Answer the next `polls` token requests for this user code's device code with
    /// `slow_down` (each one also raises the code's interval by 5 s, as any `slow_down` does).
    pub fn force_slow_down(&self, user_code: &str, polls: u32) -> Result<(), ApprovalError> {
        self.shared.flows().force_slow_down(user_code, polls)
    }

    /// When the token endpoint was polled with this user code's device code, as times since the
    /// device authorization (empty for an unknown code).
    pub fn polls(&self, user_code: &str) -> Vec<Duration> {
        self.shared.flows().polls(user_code)
    }

    /// How many token requests arrived, by grant type.
    pub fn token_requests(&self) -> TokenRequests {
        let [device_code, refresh_token, other] =
            self.shared.token_requests.each_ref().map(|c| c.load(Ordering::SeqCst));
        TokenRequests { device_code, refresh_token, other }
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

    fn flows(&self) -> MutexGuard<'_, flows::Flows> {
        self.flows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mint<G: AsRef<str>>(&self, subject: &str, groups: &[G], audience: &str, ttl: Duration, extra: Value) -> String {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let email = if subject.contains('@') { subject.to_owned() } else { format!("{subject}@example.com") };
        let groups: Vec<&str> = groups.iter().map(AsRef::as_ref).collect();
        let mut claims = json!({
            "iss": self.issuer, "sub": subject, "aud": audience,
            "iat": now, "nbf": now, "exp": now.saturating_add(ttl),
            "email": email, "email_verified": true, "groups": groups,
        });
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        let key = self.state().key.clone();
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": key.kid});
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signature = key.sign(&input);
        format!("{input}.{signature}")
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whole seconds, rounded up.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests;
