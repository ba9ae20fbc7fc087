//! The OpenID provider: discovery of its endpoints and signing keys, the URL rules, and the
//! openidconnect client and response types built on them.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AdditionalProviderMetadata, ClientId, DeviceAuthorizationUrl, DiscoveryError,
    EmptyAdditionalClaims, EndpointNotSet, EndpointSet, ExtraTokenFields, IdToken, IssuerUrl,
    JsonWebKeySet, OAuth2TokenResponse, ProviderMetadata, RefreshToken, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::http::{Transport, TransportError};
use super::{error_chain, one_line, LoginError};

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
pub(super) struct RawIdToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) id_token: Option<String>,
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
pub(super) struct RawTokenResponse(pub(super) StandardTokenResponse<RawIdToken, CoreTokenType>);

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
    pub(super) keys: Vec<Jwk>,
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

    pub(super) fn client(&self, client_id: &str) -> Result<DeviceClient, LoginError> {
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
pub(super) fn check_url(what: &str, s: &str) -> Result<(), String> {
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

pub(super) fn discovery_error(issuer: &str, e: DiscoveryError<TransportError>) -> LoginError {
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

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        s.chars().take(max - 1).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

/// The JWKS as jsonwebtoken keys. openidconnect already fetched and parsed it (skipping keys it
/// does not understand); the keys go through JSON once more into jsonwebtoken's model, and
/// symmetric (`oct`) keys are dropped.
pub(super) fn signing_keys(set: &JsonWebKeySet<CoreJsonWebKey>) -> Vec<Jwk> {
    set.keys()
        .iter()
        .filter_map(|k| serde_json::to_value(k).ok())
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter(|k| !matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
        .collect()
}
