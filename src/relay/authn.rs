//! Authentication at the relay: two proofs, one subject.
//!
//! The mutual-TLS client certificate (issued by the relay's CA at login, hours long) names the
//! subject in its `hoop-kube://subject/…` URI SAN; the bearer OIDC token (minutes long) is
//! verified against the issuer's JWKS. Both must name the same subject, or the request is a 401.
//! The only way to build an [`Authenticated`] is [`authenticate`], so later stages cannot run on
//! an unauthenticated request.

use std::collections::HashMap;
use std::sync::Mutex;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::oidc::{AuthnError, Identity, Verifier};
use crate::pki::CertSubject;

/// Proof that a request carried a valid certificate and a valid token for the same subject.
#[derive(Debug, Clone)]
pub struct Authenticated {
    identity: Identity,
    cert: CertSubject,
}

impl Authenticated {
    /// The verified identity from the token.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
    /// The client certificate's subject and serial.
    pub fn cert(&self) -> &CertSubject {
        &self.cert
    }
}

/// Why authentication failed; every variant becomes a 401 `Status` whose message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// The TLS layer verified a certificate but it names no hoop-kube subject.
    #[error("the client certificate names no hoop-kube subject; run `hoop-kube login` to get one")]
    NoCertSubject,
    /// No `Authorization: Bearer` header.
    #[error("no bearer token; configure kubectl with the hoop-kube credential plugin (`hoop-kube kubeconfig`)")]
    NoToken,
    /// The token did not verify.
    #[error("the bearer token was rejected ({0}); run `hoop-kube login`")]
    BadToken(#[from] AuthnError),
    /// Certificate and token name different subjects.
    #[error("the client certificate is for {cert:?} but the token is for {token:?}; log in again with one identity")]
    SubjectMismatch { cert: String, token: String },
}

/// Extract the bearer token. Exactly one `Authorization` header, scheme `Bearer`.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, Unauthenticated> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return Err(Unauthenticated::NoToken);
    };
    let v = v.to_str().map_err(|_| Unauthenticated::NoToken)?;
    let (scheme, token) = v.split_once(' ').ok_or(Unauthenticated::NoToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Unauthenticated::NoToken);
    }
    Ok(token.trim())
}

/// Tokens that verified, by SHA-256, until they expire. kubectl sends the same token with every
/// request for minutes, and a signature check is most of the relay's CPU per request; a hit
/// skips only the signature and claim checks, never the certificate comparison. Only verified
/// tokens enter, so it cannot be filled by garbage; when full it is simply emptied.
#[derive(Default)]
pub struct TokenCache {
    map: Mutex<HashMap<[u8; 32], Identity>>,
}

/// Entries kept at most.
const CACHE_MAX: usize = 10_000;

impl TokenCache {
    fn get(&self, key: &[u8; 32]) -> Option<Identity> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).filter(|id| id.expires_at > chrono::Utc::now()).cloned()
    }

    fn put(&self, key: [u8; 32], id: Identity) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(key, id);
    }
}

/// Verify both proofs.
pub async fn authenticate(headers: &HeaderMap, cert: Option<&CertSubject>, verifier: &Verifier, cache: &TokenCache) -> Result<Authenticated, Unauthenticated> {
    let cert = cert.ok_or(Unauthenticated::NoCertSubject)?;
    let token = bearer(headers)?;
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let identity = match cache.get(&key) {
        Some(id) => id,
        None => {
            let id = verifier.verify(token).await?;
            cache.put(key, id.clone());
            id
        }
    };
    if identity.subject != cert.subject {
        return Err(Unauthenticated::SubjectMismatch { cert: cert.subject.clone(), token: identity.subject.clone() });
    }
    Ok(Authenticated { identity, cert: cert.clone() })
}
