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
use std::time::Duration;

mod flow;
mod http;
mod id_token;
mod provider;

pub use flow::{poll, refresh, start, DeviceAuthorization, Tokens};
pub use provider::Provider;

#[cfg(test)]
mod tests;

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
    crate::text::one_line(s, 300)
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
