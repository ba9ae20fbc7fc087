//! The relay-signed agent bearer token: the second proof, beside the agent certificate, that a
//! request comes from a live agent session.
//!
//! **Why the relay signs its own token.** An agent has no session at the identity provider, and
//! it must never hold the engineer's ID token. The relay mints this token when it mints the
//! session: ES256 over a fixed header and exactly eight claims, the engineer as `sub` and the agent
//! as the RFC 8693 actor (`act.sub`), bound to the session id (`sid`) that the agent certificate
//! also carries.
//!
//! ```text
//! header   {"alg":"ES256","typ":"JWT","kid":KID}   KID = first 16 hex of SHA-256(SPKI DER)
//! payload  {"iss":"hoop-kube-relay","aud":"hoop-kube-relay","sub":SUBJECT,"act":{"sub":AGENT},
//!           "sid":SESSION,"iat":N,"nbf":N,"exp":N}
//! ```
//!
//! **What [`SigningKey::verify`] rejects** (fail closed; structure first, claims only after the
//! signature verified): everything [`crate::jws::decode`] rejects (over 16 KiB, not three
//! canonical unpadded base64url parts, duplicate keys at any depth); a header with any parameter
//! but `alg`, `typ`, `kid`, an `alg` other than `ES256` (`none`, `HS256`, `RS256`: the key type is
//! fixed, so no algorithm confusion is possible), a `typ` other than `JWT`, a `kid` other than this
//! relay's key; a signature that is not 64 bytes or does not verify; a payload that is not a
//! JSON object of exactly the eight claims; `iss` or `aud` other than `hoop-kube-relay`; `act`
//! other than an object with exactly `sub`; an agent name [`crate::agent::check_name`] refuses;
//! a `sid` that is not a canonical lower-case UUID; an empty `sub` or one over 1024 bytes;
//! `iat`/`nbf`/`exp` that are not integers; `exp` not after `iat`; `nbf` more than 30 s ahead;
//! `exp` reached (no leeway: the session's end is exact).
//!
//! [`TokenError`]'s `Display` is safe to show a client: it quotes token content only through
//! [`crate::jws::sanitize`] (short, printable). The token itself is a bearer secret and is never
//! logged here; [`SigningKey`]'s `Debug` shows only its `kid`.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rcgen::PublicKeyData as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::jws::{self, JwsError};

/// `iss` and `aud` of every agent token.
pub const ISSUER: &str = "hoop-kube-relay";
/// How far in the future `nbf` may lie (clock skew between relay replicas).
pub const LEEWAY_SECONDS: i64 = 30;
/// The longest `sub`, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 1024;
/// The claims of the payload, all required, no others allowed.
pub const CLAIM_NAMES: [&str; 8] = ["iss", "aud", "sub", "act", "sid", "iat", "nbf", "exp"];
/// An ES256 signature: r ‖ s, 32 bytes each.
const SIGNATURE_BYTES: usize = 64;

/// What an agent token says, verified. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: the engineer's OIDC subject.
    pub subject: String,
    /// `act.sub`: the agent's name.
    pub agent: String,
    /// `sid`: the agent session id.
    pub session: String,
    /// `iat`.
    pub issued_at: i64,
    /// `nbf`.
    pub not_before: i64,
    /// `exp`: the session's `notAfter`.
    pub expires_at: i64,
}

/// Why an agent token was refused (or could not be made). `Display` is safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`crate::jws::MAX_TOKEN_BYTES`].
    #[error("agent token is larger than 16 KiB")]
    TooLarge,
    /// Not a well-formed compact JWS, or a header or payload of the wrong shape.
    #[error("malformed agent token: {0}")]
    Malformed(&'static str),
    /// `alg` is not `ES256` (sanitized name).
    #[error("agent token signing algorithm {0:?} is not accepted (only ES256)")]
    UnsupportedAlgorithm(String),
    /// `kid` is not this relay's agent signing key (sanitized).
    #[error("agent token key id {0:?} is not this relay's agent signing key")]
    UnknownKey(String),
    /// The signature does not verify with this relay's key.
    #[error("agent token signature is invalid")]
    BadSignature,
    /// `exp` has been reached.
    #[error("agent token has expired")]
    Expired,
    /// `nbf` lies in the future (beyond [`LEEWAY_SECONDS`]).
    #[error("agent token is not valid yet")]
    NotYetValid,
    /// `iss` is not [`ISSUER`].
    #[error("agent token issuer is not this relay")]
    WrongIssuer,
    /// `aud` is not [`ISSUER`].
    #[error("agent token audience is not this relay")]
    WrongAudience,
    /// One of [`CLAIM_NAMES`] is absent.
    #[error("agent token lacks the {0:?} claim")]
    MissingClaim(&'static str),
    /// A claim outside [`CLAIM_NAMES`] (sanitized name).
    #[error("agent token has the unexpected claim {0:?}")]
    UnexpectedClaim(String),
    /// A claim has the wrong type or value (`act.sub` for the agent name).
    #[error("agent token claim {0:?} is invalid")]
    InvalidClaim(&'static str),
    /// Signing failed (the relay's side; never caused by a client).
    #[error("cannot sign the agent token: {0}")]
    Signing(String),
}

impl From<JwsError> for TokenError {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::TooLarge => TokenError::TooLarge,
            JwsError::Malformed(m) => TokenError::Malformed(m),
        }
    }
}

/// Why a signing key could not be made or loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM holds no `PRIVATE KEY` (PKCS#8) block.
    #[error("the agent signing key is not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----): {0}")]
    NotPkcs8(String),
    /// A PKCS#8 key, but not ECDSA P-256.
    #[error("the agent signing key is not an ECDSA P-256 key (ES256 needs one): {0}")]
    WrongAlgorithm(String),
    /// Generating the key, or signing with it, failed.
    #[error("the agent signing key cannot sign: {0}")]
    Crypto(String),
}

/// The relay's ES256 agent-token key (P-256). Cheap to share behind an `Arc`; `Debug` shows
/// only the `kid`.
pub struct SigningKey {
    kid: String,
    /// PKCS#8 PEM of the private key.
    pem: String,
    /// `BASE64URL({"alg":"ES256","typ":"JWT","kid":KID})`: the header never changes.
    header: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh P-256 key.
    ///
    /// # Errors
    /// The system's random source or the crypto library failed.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| KeyError::Crypto(e.to_string()))?;
        Self::from_pair(&pair)
    }

    /// Load a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) ECDSA P-256 private key, as
    /// [`to_pem`](Self::to_pem) writes it.
    ///
    /// # Errors
    /// No PKCS#8 block, another key type or curve, or a key that cannot sign.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| KeyError::NotPkcs8(e.to_string()))?;
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| KeyError::WrongAlgorithm(e.to_string()))?;
        Self::from_pair(&pair)
    }

    fn from_pair(pair: &rcgen::KeyPair) -> Result<Self, KeyError> {
        // Only jsonwebtoken's aws-lc-rs backend is compiled in; installing it explicitly keeps
        // signing working even if another crate in the build enables the other backend.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER);
        let digest = Sha256::digest(pair.subject_public_key_info());
        let kid = hex::encode(&digest[..8]);
        let header = jws_b64(&json!({"alg": "ES256", "typ": "JWT", "kid": kid}));
        let key = SigningKey {
            encoding: EncodingKey::from_ec_der(pair.serialized_der()),
            // aws-lc verifies against the uncompressed point (0x04 ‖ x ‖ y).
            decoding: DecodingKey::from_ec_der(pair.public_key_raw()),
            kid,
            pem: pair.serialize_pem(),
            header,
        };
        // Prove the key signs and verifies now, so minting cannot fail later for a key reason.
        let probe = key.sign("probe").map_err(|e| KeyError::Crypto(e.to_string()))?;
        if !jsonwebtoken::crypto::verify(&probe, b"probe", &key.decoding, Algorithm::ES256).unwrap_or(false) {
            return Err(KeyError::Crypto("a test signature does not verify".into()));
        }
        Ok(key)
    }

    /// The private key as PKCS#8 PEM. A secret: write it `0600`.
    #[must_use]
    pub fn to_pem(&self) -> String {
        self.pem.clone()
    }

    /// The key id: the first 16 lower-case hex digits of SHA-256 over the public key's SPKI DER.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn sign(&self, signing_input: &str) -> Result<String, TokenError> {
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &self.encoding, Algorithm::ES256).map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Sign a token for `claims`. The claims are not checked here ([`verify`](Self::verify)
    /// checks them); the relay mints only for a session it just created.
    ///
    /// # Errors
    /// [`TokenError::Signing`], which a key that loaded cannot produce short of the crypto
    /// library failing.
    pub fn mint(&self, claims: &Claims) -> Result<String, TokenError> {
        let payload = json!({
            "iss": ISSUER,
            "aud": ISSUER,
            "sub": claims.subject,
            "act": {"sub": claims.agent},
            "sid": claims.session,
            "iat": claims.issued_at,
            "nbf": claims.not_before,
            "exp": claims.expires_at,
        });
        let signing_input = format!("{}.{}", self.header, jws_b64(&payload));
        let signature = self.sign(&signing_input)?;
        Ok(format!("{signing_input}.{signature}"))
    }

    /// Verify `token` at `now` (Unix seconds) and return its claims; see the module
    /// documentation for everything refused.
    ///
    /// # Errors
    /// [`TokenError`], never [`TokenError::Signing`].
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let parsed = jws::decode(token)?;
        check_header(&parsed.header, &self.kid)?;
        if parsed.signature_bytes.len() != SIGNATURE_BYTES {
            return Err(TokenError::BadSignature);
        }
        let input = parsed.signing_input.as_bytes();
        if !jsonwebtoken::crypto::verify(parsed.signature, input, &self.decoding, Algorithm::ES256).unwrap_or(false) {
            return Err(TokenError::BadSignature);
        }
        let payload = jws::strict_object(&parsed.payload).ok_or(TokenError::Malformed("payload is not a JSON object with unique keys"))?;
        check_claims(&payload, now)
    }
}

/// The `kid` of a token's header, decoding nothing else: the relay routes a bearer token to the
/// agent verifier when this is its key's id. `None` unless the token has three parts within the
/// size limit and a canonical base64url header that is a strict JSON object with a string `kid`.
/// Everything else is [`SigningKey::verify`]'s job.
#[must_use]
pub fn kid_of(token: &str) -> Option<String> {
    match jws::decode_header(token).ok()?.remove("kid")? {
        Value::String(kid) => Some(kid),
        _ => None,
    }
}

fn jws_b64(v: &Value) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string())
}

/// Exactly `alg` ES256, `typ` JWT and our `kid`.
fn check_header(header: &Map<String, Value>, ours: &str) -> Result<(), TokenError> {
    use TokenError::Malformed;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a,
        Some(_) => return Err(Malformed("alg is not a string")),
        None => return Err(Malformed("header has no alg")),
    };
    if alg != "ES256" {
        return Err(TokenError::UnsupportedAlgorithm(jws::sanitize(alg)));
    }
    if header.keys().any(|k| !matches!(k.as_str(), "alg" | "typ" | "kid")) {
        return Err(Malformed("header has a parameter other than alg, typ and kid"));
    }
    if header.get("typ") != Some(&Value::String("JWT".into())) {
        return Err(Malformed("typ is not \"JWT\""));
    }
    match header.get("kid") {
        Some(Value::String(k)) if k == ours => Ok(()),
        Some(Value::String(k)) => Err(TokenError::UnknownKey(jws::sanitize(k))),
        Some(_) => Err(Malformed("kid is not a string")),
        None => Err(Malformed("header has no kid")),
    }
}

fn check_claims(c: &Map<String, Value>, now: i64) -> Result<Claims, TokenError> {
    use TokenError::InvalidClaim;
    if let Some(extra) = c.keys().find(|k| !CLAIM_NAMES.contains(&k.as_str())) {
        return Err(TokenError::UnexpectedClaim(jws::sanitize(extra)));
    }
    if let Some(missing) = CLAIM_NAMES.iter().find(|k| !c.contains_key(**k)) {
        return Err(TokenError::MissingClaim(missing));
    }
    let text = |name: &'static str| c.get(name).and_then(Value::as_str).ok_or(InvalidClaim(name));
    if text("iss")? != ISSUER {
        return Err(TokenError::WrongIssuer);
    }
    if text("aud")? != ISSUER {
        return Err(TokenError::WrongAudience);
    }
    let subject = text("sub")?;
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return Err(InvalidClaim("sub"));
    }
    let act = c.get("act").and_then(Value::as_object).filter(|a| a.len() == 1).ok_or(InvalidClaim("act"))?;
    let agent = act.get("sub").and_then(Value::as_str).ok_or(InvalidClaim("act"))?;
    crate::agent::check_name(agent).map_err(|_| InvalidClaim("act.sub"))?;
    let session = text("sid")?;
    if !is_canonical_uuid(session) {
        return Err(InvalidClaim("sid"));
    }
    let int = |name: &'static str| c.get(name).and_then(Value::as_i64).ok_or(InvalidClaim(name));
    let (issued_at, not_before, expires_at) = (int("iat")?, int("nbf")?, int("exp")?);
    if expires_at <= issued_at {
        return Err(InvalidClaim("exp"));
    }
    if not_before > now.saturating_add(LEEWAY_SECONDS) {
        return Err(TokenError::NotYetValid);
    }
    if now >= expires_at {
        return Err(TokenError::Expired);
    }
    Ok(Claims { subject: subject.to_owned(), agent: agent.to_owned(), session: session.to_owned(), issued_at, not_before, expires_at })
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lower-case hex (any version).
#[must_use]
pub fn is_canonical_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
