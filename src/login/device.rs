//! The OpenID Connect device authorization grant (RFC 8628) behind `hoop-kube login`, and the
//! refresh-token grant behind `hoop-kube credential`.
//!
//! # The flow
//!
//! 1. [`Provider::discover`] reads the issuer's discovery document (`/.well-known/openid-configuration`),
//!    insists that its `issuer` is exactly the configured one, and keeps the endpoints
//!    (including `device_authorization_endpoint`, which openidconnect's own metadata type lacks)
//!    and the signing keys (JWKS).
//! 2. [`start`] asks the device authorization endpoint for a code (RFC 8628 §3.1–3.2) with the
//!    scopes `openid offline_access email profile` plus the caller's. The caller shows
//!    [`DeviceAuthorization::verification_uri`] (or `verification_uri_complete`) and
//!    [`DeviceAuthorization::user_code`] to the human.
//! 3. [`poll`] polls the token endpoint (§3.4–3.5): it waits `interval` between polls (5 s when
//!    the provider sends none), adds 5 s for every `slow_down`, keeps going on
//!    `authorization_pending`, and stops at `expires_in` ([`LoginError::ExpiredToken`]) or on
//!    `access_denied` ([`LoginError::AccessDenied`]).
//! 4. [`refresh`] trades a refresh token for fresh tokens. Providers that rotate refresh tokens
//!    (oidc-provider does) invalidate the old one: store [`Tokens::refresh_token`] every time.
//!
//! Every token response must carry an ID token. Its signature is verified against the
//! provider's JWKS with `jsonwebtoken` (asymmetric algorithms only), with `iss` = the issuer,
//! `aud` = the client id (and `azp`, when present, = the client id), `exp` (and `nbf`) within a
//! 60 s leeway, and a non-empty `sub`. Only then are `sub`, `groups` and `exp` read from it. The
//! relay verifies the token again; this check keeps the client from storing garbage.
//!
//! # HTTP
//!
//! The requests are built by `openidconnect` 4 (and `oauth2` 5 underneath; device grant
//! polling loop included) and sent with the caller's [`reqwest::Client`] through a small adapter,
//! so there is one reqwest and one TLS stack. The adapter gives every request a 30 s timeout,
//! caps response bodies at 1 MiB, and refuses redirected answers (give it a client built with
//! `redirect(reqwest::redirect::Policy::none())` to not even follow them). The issuer and every
//! endpoint must be `https`, except on loopback addresses.
//!
//! While polling, a failed request (network down, IdP restarting) is retried with a growing
//! interval (oauth2's back-off, capped at 60 s); after three failures in a row the login stops
//! with [`LoginError::Http`] instead of waiting silently until the code expires.
//!
//! # ID tokens, not openidconnect's token types
//!
//! The token endpoint's answer is read into a response type that keeps the ID token as the raw
//! compact JWS, instead of openidconnect's `CoreTokenResponse`, whose strict claim types refuse
//! tokens from real providers (`updated_at` as a string at Auth0, `email_verified` as a string at
//! Cognito) over claims hoop-kube never reads.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
#[cfg(test)]
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreErrorResponseType, CoreGenderClaim, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreSubjectIdentifierType, CoreTokenIntrospectionResponse,
    CoreTokenType,
};
use openidconnect::{
    http, AccessToken, AdditionalProviderMetadata, AsyncHttpClient, ClientId,
    DeviceAuthorizationUrl, DeviceCodeErrorResponseType, DiscoveryError, EmptyAdditionalClaims,
    EndpointNotSet, EndpointSet, ExtraTokenFields, HttpRequest, HttpResponse, IdToken, IssuerUrl,
    JsonWebKeySet, JsonWebKeySetUrl, OAuth2TokenResponse, ProviderMetadata, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Scopes every login asks for: `openid` (an ID token), `offline_access` (a refresh token),
/// `email` and `profile`. Providers leave out the ones they do not support.
pub const DEFAULT_SCOPES: [&str; 4] = ["openid", "offline_access", "email", "profile"];

/// The poll interval when the device authorization response has no `interval` (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What every `slow_down` answer adds to the poll interval (RFC 8628 §3.5; applied by oauth2's
/// polling loop, which hard-codes the same 5 s).
pub const SLOW_DOWN_INCREMENT: Duration = Duration::from_secs(5);

/// The shortest wait between two polls, whatever `interval` the provider sends (0 would spin).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Timeout of every single request to the identity provider.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Responses larger than this are refused.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// While polling, this many failed requests in a row end the login with [`LoginError::Http`].
pub const MAX_POLL_FAILURES: u32 = 3;

/// The longest interval oauth2's back-off after a failed poll request may reach.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Clock-skew leeway for the ID token's `exp` and `nbf`, in seconds.
const ID_TOKEN_LEEWAY_SECS: u64 = 60;

/// The signature algorithms accepted for ID tokens: asymmetric only (never `none` or `HS*`).
const ID_TOKEN_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

// -------------------------------------------------------------------------------------------
// Secret

/// A token or code that must not end up in logs: its `Debug` prints `Secret(<redacted>)`, and
/// it has no `Display`. [`Secret::expose`] hands out the value where it is really needed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

// -------------------------------------------------------------------------------------------
// Errors

/// Why a login or refresh failed. Every message is one line and says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The user (or a policy) denied the request at the identity provider (`access_denied`).
    #[error("the login was denied at the identity provider")]
    AccessDenied,

    /// The device code expired (`expired_token`, or `expires_in` passed) before it was approved.
    #[error("the code expired before it was approved; run `hoop-kube login` again")]
    ExpiredToken,

    /// The token endpoint no longer accepts this device code (`invalid_grant` while polling:
    /// already used, or denied earlier).
    #[error(
        "the identity provider no longer accepts this device code ({0}); run `hoop-kube login` again"
    )]
    DeviceCodeRejected(String),

    /// The refresh token was revoked, expired, or already used (`invalid_grant`). With refresh
    /// token rotation, presenting an old token also revokes the newer ones: log in again. Set
    /// `profile` (see [`LoginError::for_profile`]) to name it in the message.
    #[error(
        "the refresh token was revoked, expired or already used; run `hoop-kube login{}`",
        profile.as_deref().map(|p| format!(" --profile {p}")).unwrap_or_default()
    )]
    InvalidGrant {
        /// The profile whose refresh token failed, if the caller knows it.
        profile: Option<String>,
    },

    /// OpenID discovery failed, or the provider's metadata is unusable (wrong `issuer`, no device
    /// authorization endpoint, plain `http` to a remote host, no usable signing key).
    #[error("OpenID discovery for {issuer} failed: {reason}; check the issuer URL")]
    Discovery {
        /// The issuer that was being discovered.
        issuer: String,
        /// What went wrong.
        reason: String,
    },

    /// A request to the identity provider failed: no connection, timeout, TLS, redirect, or an
    /// oversized answer.
    #[error("could not reach the identity provider at {url}: {reason}; check the network")]
    Http {
        /// The URL that was requested.
        url: String,
        /// What went wrong (the error and its causes).
        reason: String,
    },

    /// The identity provider answered a request with an OAuth error other than the ones above
    /// (`invalid_client`, `unauthorized_client`, `invalid_scope`, …).
    #[error(
        "the identity provider refused the {request}: {error}{}; check the issuer and client id of this profile",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    Rejected {
        /// Which request: "device authorization request", "token request" or "refresh request".
        request: &'static str,
        /// The OAuth `error` code.
        error: String,
        /// The provider's `error_description`, sanitized to one line.
        description: Option<String>,
    },

    /// The identity provider's answer does not follow the protocol (not JSON, missing fields,
    /// no ID token, …).
    #[error("the identity provider sent an unusable answer to the {request}: {reason}")]
    Protocol {
        /// Which request.
        request: &'static str,
        /// What is wrong with the answer.
        reason: String,
    },

    /// The ID token failed verification (signature, issuer, audience, expiry, subject).
    #[error(
        "the ID token from the identity provider failed verification: {0}; check the issuer and client id of this profile and the system clock"
    )]
    IdToken(String),
}

impl LoginError {
    /// Name the profile in an [`LoginError::InvalidGrant`] message (other errors pass through).
    pub fn for_profile(self, profile: &str) -> Self {
        match self {
            LoginError::InvalidGrant { .. } => LoginError::InvalidGrant {
                profile: Some(profile.to_string()),
            },
            other => other,
        }
    }
}

/// One line, no control characters, at most 300 characters: text from the network that goes
/// into an error message.
fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if out.chars().count() > 300 {
        out = out.chars().take(299).collect::<String>() + "…";
    }
    out
}

/// `e: cause: cause…`, without repeating a cause that the previous message already contains.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    one_line(&out)
}

// -------------------------------------------------------------------------------------------
// HTTP: the caller's reqwest client as openidconnect's AsyncHttpClient

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
    give_up: tokio::sync::Notify,
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

    fn last_failure(&self) -> LoginError {
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

// -------------------------------------------------------------------------------------------
// Clock (injectable, so unit tests do not wait)

/// Wall-clock time and sleeping, as the poll loop sees them.
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(tokio::time::sleep(d))
    }
}

// -------------------------------------------------------------------------------------------
// openidconnect types

/// The discovery fields openidconnect's `ProviderMetadata` does not model.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct ExtraProviderMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocation_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for ExtraProviderMetadata {}

type DeviceProviderMetadata = ProviderMetadata<
    ExtraProviderMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The token response's `id_token`, kept as the compact JWS it arrived as.
#[derive(Clone, Deserialize, Serialize)]
struct RawIdToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}
impl ExtraTokenFields for RawIdToken {}
impl fmt::Debug for RawIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawIdToken")
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A token response whose ID token is verified by this module, not parsed by openidconnect.
#[derive(Debug, Deserialize, Serialize)]
#[serde(transparent)]
struct RawTokenResponse(StandardTokenResponse<RawIdToken, CoreTokenType>);

impl OAuth2TokenResponse for RawTokenResponse {
    type TokenType = CoreTokenType;
    fn access_token(&self) -> &AccessToken {
        self.0.access_token()
    }
    fn token_type(&self) -> &CoreTokenType {
        self.0.token_type()
    }
    fn expires_in(&self) -> Option<Duration> {
        self.0.expires_in()
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.0.refresh_token()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.0.scopes()
    }
}

impl
    openidconnect::TokenResponse<
        EmptyAdditionalClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    > for RawTokenResponse
{
    /// Always `None`: the raw ID token is verified with jsonwebtoken by [`verify_id_token`].
    fn id_token(
        &self,
    ) -> Option<
        &IdToken<
            EmptyAdditionalClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >,
    > {
        None
    }
}

type DeviceClient = openidconnect::Client<
    EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    RawTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointNotSet, // authorization endpoint
    EndpointSet,    // device authorization endpoint
    EndpointNotSet, // introspection
    EndpointNotSet, // revocation
    EndpointSet,    // token endpoint
    EndpointNotSet, // userinfo
>;

// -------------------------------------------------------------------------------------------
// Provider

/// What hoop-kube needs from an OpenID provider's discovery document, plus its signing keys.
#[derive(Clone)]
pub struct Provider {
    /// The issuer, exactly as configured and as the discovery document states it.
    pub issuer: String,
    /// RFC 8628 device authorization endpoint.
    pub device_authorization_endpoint: String,
    /// Token endpoint (device code and refresh token grants).
    pub token_endpoint: String,
    /// Where the provider publishes its signing keys.
    pub jwks_uri: String,
    /// RFC 7009 token revocation endpoint, if the provider has one (for `hoop-kube logout`).
    pub revocation_endpoint: Option<String>,
    keys: Vec<Jwk>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field(
                "device_authorization_endpoint",
                &self.device_authorization_endpoint,
            )
            .field("token_endpoint", &self.token_endpoint)
            .field("jwks_uri", &self.jwks_uri)
            .field("revocation_endpoint", &self.revocation_endpoint)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Provider {
    /// Fetch `{issuer}/.well-known/openid-configuration` and the JWKS it names. The document's
    /// `issuer` must equal `issuer` exactly (OpenID Connect Discovery §4.3), and it must name a
    /// `device_authorization_endpoint` and a `token_endpoint`. The issuer and all endpoints must be
    /// `https` URLs, or `http` to a loopback address.
    pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Self, LoginError> {
        Self::discover_with(&Transport::new(http), issuer).await
    }

    pub(crate) async fn discover_with(
        transport: &Transport,
        issuer: &str,
    ) -> Result<Self, LoginError> {
        let fail = |reason: String| LoginError::Discovery {
            issuer: issuer.to_string(),
            reason,
        };
        check_url("issuer", issuer).map_err(fail)?;
        let issuer_url = IssuerUrl::new(issuer.to_string())
            .map_err(|e| fail(format!("the issuer is not a URL: {e}")))?;
        let metadata = DeviceProviderMetadata::discover_async(issuer_url, transport)
            .await
            .map_err(|e| discovery_error(issuer, e))?;
        if metadata.issuer().as_str() != issuer {
            return Err(fail(format!(
                "the discovery document names the issuer {:?}, not {issuer:?}",
                one_line(metadata.issuer().as_str())
            )));
        }
        let extra = metadata.additional_metadata();
        let device_authorization_endpoint = extra.device_authorization_endpoint.clone().ok_or_else(|| {
            fail("the provider does not support the device authorization grant (its discovery document has no device_authorization_endpoint)".into())
        })?;
        let token_endpoint = metadata
            .token_endpoint()
            .map(|u| u.as_str().to_string())
            .ok_or_else(|| fail("the discovery document has no token_endpoint".into()))?;
        let jwks_uri = metadata.jwks_uri().as_str().to_string();
        let revocation_endpoint = extra.revocation_endpoint.clone();
        check_url(
            "device_authorization_endpoint",
            &device_authorization_endpoint,
        )
        .map_err(fail)?;
        check_url("token_endpoint", &token_endpoint).map_err(fail)?;
        check_url("jwks_uri", &jwks_uri).map_err(fail)?;
        if let Some(r) = &revocation_endpoint {
            check_url("revocation_endpoint", r).map_err(fail)?;
        }
        let keys = signing_keys(metadata.jwks());
        if keys.is_empty() {
            return Err(fail(format!(
                "the key set at {jwks_uri} has no usable signing key"
            )));
        }
        Ok(Provider {
            issuer: issuer.to_string(),
            device_authorization_endpoint,
            token_endpoint,
            jwks_uri,
            revocation_endpoint,
            keys,
        })
    }

    fn client(&self, client_id: &str) -> Result<DeviceClient, LoginError> {
        let fail = |reason: String| LoginError::Discovery {
            issuer: self.issuer.clone(),
            reason,
        };
        let issuer = IssuerUrl::new(self.issuer.clone())
            .map_err(|e| fail(format!("the issuer is not a URL: {e}")))?;
        let device = DeviceAuthorizationUrl::new(self.device_authorization_endpoint.clone())
            .map_err(|e| fail(format!("device_authorization_endpoint is not a URL: {e}")))?;
        let token = TokenUrl::new(self.token_endpoint.clone())
            .map_err(|e| fail(format!("token_endpoint is not a URL: {e}")))?;
        Ok(openidconnect::Client::new(
            ClientId::new(client_id.to_string()),
            issuer,
            JsonWebKeySet::default(),
        )
        .set_device_authorization_url(device)
        .set_token_uri(token))
    }
}

/// `https`, or `http` to a loopback address (a local test or dev IdP).
fn check_url(what: &str, s: &str) -> Result<(), String> {
    let url =
        url::Url::parse(s).map_err(|e| format!("{what} {:?} is not a URL: {e}", one_line(s)))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{what} {:?} must be an https URL (plain http only to a loopback address)",
            one_line(s)
        )),
    }
}

fn discovery_error(issuer: &str, e: DiscoveryError<TransportError>) -> LoginError {
    let reason = match e {
        DiscoveryError::Request(t) => return t.into(),
        DiscoveryError::Response(_, body, msg) => {
            let body = one_line(&String::from_utf8_lossy(&body));
            if body.is_empty() {
                one_line(&msg)
            } else {
                format!("{} ({})", one_line(&msg), truncate(&body, 200))
            }
        }
        DiscoveryError::Parse(p) => format!(
            "the document is not valid OpenID provider metadata: {}",
            one_line(&p.to_string())
        ),
        DiscoveryError::UrlParse(p) => format!("the issuer is not a URL: {p}"),
        DiscoveryError::Validation(v) => one_line(&v),
        DiscoveryError::Other(o) => one_line(&o),
        other => error_chain(&other),
    };
    LoginError::Discovery {
        issuer: issuer.to_string(),
        reason,
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        s.chars().take(max - 1).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

/// The JWKS as jsonwebtoken keys. openidconnect already fetched and parsed it (skipping keys it
/// does not understand); the keys go through JSON once more into jsonwebtoken's model, and
/// symmetric (`oct`) keys are dropped.
fn signing_keys(set: &JsonWebKeySet<CoreJsonWebKey>) -> Vec<Jwk> {
    set.keys()
        .iter()
        .filter_map(|k| serde_json::to_value(k).ok())
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter(|k| !matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
        .collect()
}

// -------------------------------------------------------------------------------------------
// Device authorization

/// A pending device login: what to show the human, and (privately) the device code to poll with.
#[derive(Clone)]
pub struct DeviceAuthorization {
    /// The code the human types (or confirms) on the verification page.
    pub user_code: String,
    /// The page where the human enters [`DeviceAuthorization::user_code`].
    pub verification_uri: String,
    /// The page with the user code already filled in (for a QR code or a clickable link), if the
    /// provider sends one.
    pub verification_uri_complete: Option<String>,
    /// How long the codes are valid, counted from when the provider answered.
    pub expires_in: Duration,
    /// The provider's poll interval; [`DEFAULT_INTERVAL`] (5 s) when it sent none.
    pub interval: Duration,
    obtained_at: DateTime<Utc>,
    /// oauth2's response, holding the device code (its `Debug` redacts it).
    response: CoreDeviceAuthorizationResponse,
}

impl DeviceAuthorization {
    /// When the codes expire.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.obtained_at
            + chrono::Duration::from_std(self.expires_in).unwrap_or(chrono::Duration::MAX)
    }
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("verification_uri_complete", &self.verification_uri_complete)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .field("device_code", &Secret::new(""))
            .finish()
    }
}

/// Request a device code and user code (RFC 8628 §3.1) for `client_id` (a public client: it is
/// sent in the body, no secret). The scopes are [`DEFAULT_SCOPES`] plus `scopes`, each once.
pub async fn start(
    http: &reqwest::Client,
    provider: &Provider,
    client_id: &str,
    scopes: &[&str],
) -> Result<DeviceAuthorization, LoginError> {
    start_with(
        &Transport::new(http),
        provider,
        client_id,
        scopes,
        &SystemClock,
    )
    .await
}

/// The scopes to ask for besides `openid` (which openidconnect always adds first).
fn scope_list(scopes: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in DEFAULT_SCOPES
        .iter()
        .copied()
        .chain(scopes.iter().flat_map(|s| s.split_whitespace()))
    {
        if s != "openid" && !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

pub(crate) async fn start_with(
    transport: &Transport,
    provider: &Provider,
    client_id: &str,
    scopes: &[&str],
    clock: &dyn Clock,
) -> Result<DeviceAuthorization, LoginError> {
    const REQUEST: &str = "device authorization request";
    let client = provider.client(client_id)?;
    let response: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scopes(scope_list(scopes).into_iter().map(Scope::new))
        .request_async(transport)
        .await
        .map_err(|e| {
            request_error(REQUEST, e, |err, desc| LoginError::Rejected {
                request: REQUEST,
                error: one_line(err.as_ref()),
                description: desc,
            })
        })?;
    let verification_uri = response.verification_uri().as_str().to_string();
    let verification_uri_complete = response
        .verification_uri_complete()
        .map(|u| u.secret().to_string());
    for u in std::iter::once(&verification_uri).chain(verification_uri_complete.as_ref()) {
        let scheme = url::Url::parse(u)
            .map(|u| u.scheme().to_string())
            .unwrap_or_default();
        if scheme != "https" && scheme != "http" {
            return Err(LoginError::Protocol {
                request: REQUEST,
                reason: format!("the verification URI {:?} is not a web page", one_line(u)),
            });
        }
    }
    if response.user_code().secret().trim().is_empty() {
        return Err(LoginError::Protocol {
            request: REQUEST,
            reason: "the user_code is empty".into(),
        });
    }
    Ok(DeviceAuthorization {
        user_code: response.user_code().secret().to_string(),
        verification_uri,
        verification_uri_complete,
        expires_in: response.expires_in(),
        interval: response.interval(),
        obtained_at: clock.now(),
        response,
    })
}

/// Map an oauth2 request error; `server` builds the error for an OAuth error answer (given the
/// answer and its `error_description`, sanitized).
fn request_error<T: openidconnect::ErrorResponseType + fmt::Display + 'static>(
    request: &'static str,
    e: RequestTokenError<TransportError, StandardErrorResponse<T>>,
    server: impl FnOnce(&T, Option<String>) -> LoginError,
) -> LoginError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let desc = r
                .error_description()
                .map(|d| one_line(d))
                .filter(|d| !d.is_empty());
            server(r.error(), desc)
        }
        RequestTokenError::Request(t) => t.into(),
        RequestTokenError::Parse(p, body) => {
            let body = one_line(&String::from_utf8_lossy(&body));
            LoginError::Protocol {
                request,
                reason: format!(
                    "{} (the answer was {:?})",
                    one_line(&p.to_string()),
                    truncate(&body, 120)
                ),
            }
        }
        RequestTokenError::Other(o) => LoginError::Protocol {
            request,
            reason: one_line(&o),
        },
    }
}

// -------------------------------------------------------------------------------------------
// Polling

/// Poll the token endpoint until the login is approved (RFC 8628 §3.4): wait `interval` between
/// polls (at least [`MIN_INTERVAL`]), add [`SLOW_DOWN_INCREMENT`] on every `slow_down` (§3.5),
/// keep going on `authorization_pending`, and stop once `expires_in` has passed
/// ([`LoginError::ExpiredToken`]). `on_wait` is called after every poll that did not finish the
/// login, with the time since polling began, before the wait (for a spinner or a countdown).
/// Returns verified tokens.
pub async fn poll(
    http: &reqwest::Client,
    provider: &Provider,
    client_id: &str,
    auth: &DeviceAuthorization,
    on_wait: impl FnMut(Duration),
) -> Result<Tokens, LoginError> {
    poll_with(
        &Transport::new(http),
        provider,
        client_id,
        auth,
        on_wait,
        &SystemClock,
    )
    .await
}

pub(crate) async fn poll_with(
    transport: &Transport,
    provider: &Provider,
    client_id: &str,
    auth: &DeviceAuthorization,
    on_wait: impl FnMut(Duration),
    clock: &dyn Clock,
) -> Result<Tokens, LoginError> {
    const REQUEST: &str = "token request";
    let client = provider.client(client_id)?;
    let began = clock.now();
    let deadline = auth.expires_at();
    let remaining = (deadline - began).to_std().unwrap_or(Duration::ZERO);
    if remaining.is_zero() {
        return Err(LoginError::ExpiredToken);
    }
    let on_wait = Mutex::new(on_wait);
    // oauth2 calls this after every unfinished poll with the interval it wants (the current one,
    // +5 s after slow_down, doubled after a failed request). Never less than MIN_INTERVAL, and
    // never much past the deadline, so that the loop notices expiry.
    let sleep = |interval: Duration| {
        let now = clock.now();
        if let Ok(mut f) = on_wait.lock() {
            f((now - began).to_std().unwrap_or(Duration::ZERO));
        }
        let left = (deadline - now).to_std().unwrap_or(Duration::ZERO);
        clock.sleep(interval.max(MIN_INTERVAL).min(left + MIN_INTERVAL))
    };
    let polling = client
        .exchange_device_access_token(&auth.response)
        .set_time_fn(|| clock.now())
        .set_max_backoff_interval(MAX_BACKOFF)
        .request_async(transport, sleep, Some(remaining));
    let result = tokio::select! {
        biased;
        _ = transport.give_up.notified() => return Err(transport.last_failure()),
        r = polling => r,
    };
    match result {
        Ok(response) => tokens_from(transport, provider, client_id, REQUEST, response, None).await,
        Err(e) => Err(request_error(REQUEST, e, |r, desc| match r {
            DeviceCodeErrorResponseType::AccessDenied => LoginError::AccessDenied,
            DeviceCodeErrorResponseType::ExpiredToken => LoginError::ExpiredToken,
            DeviceCodeErrorResponseType::Basic(CoreErrorResponseType::InvalidGrant) => {
                LoginError::DeviceCodeRejected(match desc {
                    Some(d) => format!("invalid_grant: {d}"),
                    None => "invalid_grant".into(),
                })
            }
            other => LoginError::Rejected {
                request: REQUEST,
                error: one_line(other.as_ref()),
                description: desc,
            },
        })),
    }
}

// -------------------------------------------------------------------------------------------
// Refresh

/// Trade `refresh_token` for new tokens (RFC 6749 §6). When the provider rotates refresh
/// tokens, the returned [`Tokens::refresh_token`] is the new one and the old one is dead;
/// when it does not, the old one is returned. A revoked, expired or reused refresh token gives
/// [`LoginError::InvalidGrant`]. Callers must refresh single-flight: two refreshes with the same
/// token make a rotating provider revoke the whole grant.
pub async fn refresh(
    http: &reqwest::Client,
    provider: &Provider,
    client_id: &str,
    refresh_token: &str,
) -> Result<Tokens, LoginError> {
    refresh_with(&Transport::new(http), provider, client_id, refresh_token).await
}

pub(crate) async fn refresh_with(
    transport: &Transport,
    provider: &Provider,
    client_id: &str,
    refresh_token: &str,
) -> Result<Tokens, LoginError> {
    const REQUEST: &str = "refresh request";
    let client = provider.client(client_id)?;
    let token = RefreshToken::new(refresh_token.to_string());
    let response = client
        .exchange_refresh_token(&token)
        .request_async(transport)
        .await
        .map_err(|e| {
            request_error(REQUEST, e, |r, desc| match r {
                CoreErrorResponseType::InvalidGrant => LoginError::InvalidGrant { profile: None },
                other => LoginError::Rejected {
                    request: REQUEST,
                    error: one_line(other.as_ref()),
                    description: desc,
                },
            })
        })?;
    tokens_from(
        transport,
        provider,
        client_id,
        REQUEST,
        response,
        Some(refresh_token),
    )
    .await
}

// -------------------------------------------------------------------------------------------
// Tokens and ID token verification

/// The tokens of a finished login or refresh, with the identity read from the verified ID token.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The ID token (compact JWS): the bearer token hoop-kube presents to the relay.
    pub id_token: Secret,
    /// The OAuth access token.
    pub access_token: Secret,
    /// The refresh token to use next time (the new one when the provider rotates them).
    pub refresh_token: Option<Secret>,
    /// The ID token's `exp`.
    pub id_token_expiry: DateTime<Utc>,
    /// The ID token's `sub`.
    pub subject: String,
    /// The ID token's `groups` claim (empty when absent).
    pub groups: Vec<String>,
}

async fn tokens_from(
    transport: &Transport,
    provider: &Provider,
    client_id: &str,
    request: &'static str,
    response: RawTokenResponse,
    previous_refresh_token: Option<&str>,
) -> Result<Tokens, LoginError> {
    let id_token =
        response
            .0
            .extra_fields()
            .id_token
            .clone()
            .ok_or_else(|| LoginError::Protocol {
                request,
                reason: "the token response has no id_token (was the `openid` scope granted?)"
                    .into(),
            })?;
    let claims = verify_id_token(transport, provider, client_id, &id_token).await?;
    let refresh_token = response
        .refresh_token()
        .map(|t| Secret::new(t.secret().as_str()))
        .or_else(|| previous_refresh_token.map(Secret::new));
    Ok(Tokens {
        id_token: Secret(id_token),
        access_token: Secret::new(response.access_token().secret().as_str()),
        refresh_token,
        id_token_expiry: claims.expiry,
        subject: claims.subject,
        groups: claims.groups,
    })
}

/// What is read from a verified ID token.
#[derive(Debug)]
pub(crate) struct IdClaims {
    pub(crate) subject: String,
    pub(crate) groups: Vec<String>,
    pub(crate) expiry: DateTime<Utc>,
}

/// Verify `token` against the provider's keys; when its `kid` is unknown, fetch the JWKS once more
/// (the provider may have rotated its keys since discovery).
async fn verify_id_token(
    transport: &Transport,
    provider: &Provider,
    client_id: &str,
    token: &str,
) -> Result<IdClaims, LoginError> {
    match verify_with_keys(&provider.keys, &provider.issuer, client_id, token) {
        Err(KeyLookup::UnknownKid(kid)) => {
            let url = JsonWebKeySetUrl::new(provider.jwks_uri.clone())
                .map_err(|e| LoginError::IdToken(format!("jwks_uri is not a URL: {e}")))?;
            let set = JsonWebKeySet::<CoreJsonWebKey>::fetch_async(&url, transport)
                .await
                .map_err(|e| discovery_error(&provider.issuer, e))?;
            match verify_with_keys(&signing_keys(&set), &provider.issuer, client_id, token) {
                Err(KeyLookup::UnknownKid(_)) => Err(LoginError::IdToken(format!(
                    "it is signed with key {:?}, which is not in {}",
                    truncate(&one_line(&kid), 64),
                    provider.jwks_uri
                ))),
                Err(KeyLookup::Invalid(e)) => Err(e),
                Ok(c) => Ok(c),
            }
        }
        Err(KeyLookup::Invalid(e)) => Err(e),
        Ok(c) => Ok(c),
    }
}

/// Why an ID token did not verify: a `kid` that is not in the key set (worth one JWKS refetch),
/// or anything else.
#[derive(Debug)]
pub(crate) enum KeyLookup {
    UnknownKid(String),
    Invalid(LoginError),
}

/// Can `jwk` verify an `alg` signature? Key type and curve must fit, and the JWK's own `alg`,
/// `use` and `key_ops` must not say otherwise.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return false;
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return false;
    }
    if jwk
        .common
        .key_algorithm
        .is_some_and(|ka| format!("{ka:?}") != format!("{alg:?}"))
    {
        return false;
    }
    use Algorithm::*;
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), RS256 | RS384 | RS512 | PS256 | PS384 | PS512) => true,
        (AlgorithmParameters::EllipticCurve(p), ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), EdDSA) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    }
}

pub(crate) fn verify_with_keys(
    keys: &[Jwk],
    issuer: &str,
    client_id: &str,
    token: &str,
) -> Result<IdClaims, KeyLookup> {
    // jsonwebtoken picks aws-lc-rs by itself while it is its only crypto feature; say so
    // explicitly in case feature unification ever brings its RustCrypto backend in too.
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    let bad = |m: String| KeyLookup::Invalid(LoginError::IdToken(m));
    if token.len() > 64 * 1024 {
        return Err(bad("it is larger than 64 KiB".into()));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|e| {
        bad(format!(
            "it is not a signed JWT with a supported algorithm ({e})"
        ))
    })?;
    let alg = header.alg;
    if !ID_TOKEN_ALGORITHMS.contains(&alg) {
        return Err(bad(format!(
            "its signature algorithm {alg:?} is not allowed (asymmetric algorithms only)"
        )));
    }
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| match &header.kid {
            Some(kid) => k.common.key_id.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .filter(|k| key_fits(k, alg))
        .collect();
    if candidates.is_empty() {
        return Err(match &header.kid {
            Some(kid)
                if !keys
                    .iter()
                    .any(|k| k.common.key_id.as_deref() == Some(kid.as_str())) =>
            {
                KeyLookup::UnknownKid(kid.clone())
            }
            _ => bad(format!(
                "the provider publishes no key that can verify an {alg:?} signature"
            )),
        });
    }

    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = ID_TOKEN_LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;

    let mut last_error = None;
    for jwk in candidates {
        let key = match DecodingKey::from_jwk(jwk) {
            Ok(k) => k,
            Err(e) => {
                last_error = Some(format!("the provider's key is unusable ({e})"));
                continue;
            }
        };
        match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation) {
            Ok(data) => return claims_from(data.claims, client_id).map_err(bad),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                let reason = match e.kind() {
                    ErrorKind::InvalidSignature => "its signature does not verify".to_string(),
                    ErrorKind::ExpiredSignature => "it has expired".to_string(),
                    ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".to_string(),
                    ErrorKind::InvalidIssuer => format!("its issuer is not {issuer}"),
                    ErrorKind::InvalidAudience => format!("its audience is not {client_id}"),
                    ErrorKind::MissingRequiredClaim(c) => format!("it has no {c} claim"),
                    _ => format!("it is not valid ({e})"),
                };
                let fatal = !matches!(e.kind(), ErrorKind::InvalidSignature);
                last_error = Some(reason);
                // Claims errors are the same whichever key verified the signature.
                if fatal {
                    break;
                }
            }
        }
    }
    Err(bad(
        last_error.unwrap_or_else(|| "no key verified it".into())
    ))
}

fn claims_from(
    claims: serde_json::Map<String, Value>,
    client_id: &str,
) -> Result<IdClaims, String> {
    let subject = match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("its sub claim is missing or empty".into()),
    };
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or("its exp claim is not a number")?;
    let expiry = DateTime::<Utc>::from_timestamp(exp.floor() as i64, 0)
        .ok_or("its exp claim is out of range")?;
    // OpenID Connect Core §3.1.3.7: several audiences → azp should be us; an azp is always us.
    if let Some(azp) = claims.get("azp") {
        if azp.as_str() != Some(client_id) {
            return Err(format!(
                "it was issued to another party (azp is not {client_id})"
            ));
        }
    }
    let groups = match claims.get("groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(g)) => vec![g.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|g| g.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("its groups claim has a member that is not a string")?,
        Some(_) => return Err("its groups claim is not a list of strings".into()),
    };
    Ok(IdClaims {
        subject,
        groups,
        expiry,
    })
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
