//! The grants: device authorization, polling the token endpoint until the login is approved,
//! refreshing, and turning a token response into verified [`Tokens`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use openidconnect::core::{CoreDeviceAuthorizationResponse, CoreErrorResponseType};
use openidconnect::{
    DeviceCodeErrorResponseType, OAuth2TokenResponse, RefreshToken, RequestTokenError, Scope,
    StandardErrorResponse,
};

use super::http::{Transport, TransportError};
use super::id_token::verify_id_token;
use super::provider::{truncate, Provider, RawTokenResponse};
use super::{one_line, LoginError, Secret, DEFAULT_SCOPES, MIN_INTERVAL};

/// The longest interval oauth2's back-off after a failed poll request may reach.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
pub(super) fn scope_list(scopes: &[&str]) -> Vec<String> {
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
// Tokens

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
