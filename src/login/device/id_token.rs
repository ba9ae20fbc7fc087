//! ID token verification: the signature against the provider's JWKS (refetched once for an
//! unknown `kid`), then `iss`, `aud`, `azp`, `exp`, `nbf` and `sub`, and the claims read from it.

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::core::CoreJsonWebKey;
use openidconnect::{JsonWebKeySet, JsonWebKeySetUrl};
use serde_json::Value;

use super::http::Transport;
use super::provider::{discovery_error, signing_keys, truncate, Provider};
use super::{one_line, LoginError};

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

/// What is read from a verified ID token.
#[derive(Debug)]
pub(crate) struct IdClaims {
    pub(crate) subject: String,
    pub(crate) groups: Vec<String>,
    pub(crate) expiry: DateTime<Utc>,
}

/// Verify `token` against the provider's keys; when its `kid` is unknown, fetch the JWKS once more
/// (the provider may have rotated its keys since discovery).
pub(super) async fn verify_id_token(
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
