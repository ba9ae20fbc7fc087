//! Enrollment, client side: trade a verified ID token and a CSR for the relay's mTLS client
//! certificate.
//!
//! The relay's API port only serves requests that carry a client certificate from the relay's CA,
//! and the only request it serves without one is `POST /hoop-kube/v1/enroll`. The key pair is made
//! here and its private half never leaves the machine: the relay sees a CSR (public key +
//! proof of possession), checks the bearer ID token, and signs a certificate for the token's
//! subject, whatever the CSR asked for. The connection is server-authenticated TLS 1.3, with the
//! relay trusted only through the profile's CA fingerprint ([`crate::relay_trust`]).
//!
//! What comes back is checked before it is stored: a PEM certificate for **our** public key,
//! naming the token's subject, not yet expired. A relay (or anything in its place) that answers
//! with something else gets no chance to make the forwarder fail later in a confusing way.
//!
//! The wire contract (the relay's side is `crate::relay::enroll`):
//!
//! ```text
//! POST /hoop-kube/v1/enroll
//! Authorization: Bearer <ID token>
//! Content-Type: application/json
//!
//! {"csr": "-----BEGIN CERTIFICATE REQUEST-----…", "lifetimeSeconds": 43200}
//!
//! 200 {"apiVersion":"hoop-kube.dev/v1","kind":"Enrollment","subject":"…","username":"…",
//!      "certificate":"<PEM>","caCertificate":"<PEM>","notAfter":"<RFC 3339>"}
//! 4xx/5xx: a Kubernetes Status whose message says what to do
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use rcgen::PublicKeyData as _;

use crate::pki;
use crate::relay_trust::{self, TrustError};

/// The enrollment path on the relay.
pub const ENROLL_PATH: &str = "/hoop-kube/v1/enroll";

/// Timeout of the enrollment request.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer read.
const MAX_RESPONSE: usize = 256 * 1024;

/// Why enrollment failed. One line each, saying what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The key pair or CSR could not be made.
    #[error("cannot make the key pair for the relay certificate: {0}")]
    Key(String),
    /// Fingerprint or TLS setup.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The relay could not be reached, or its certificate did not match the pin.
    #[error("cannot reach the relay at {relay}: {reason}")]
    Unreachable { relay: String, reason: String },
    /// The relay refused, with its reason.
    #[error("the relay refused to issue a client certificate ({code}): {message}")]
    Refused { code: u16, message: String },
    /// The relay answered something that is not a usable certificate for us.
    #[error("the relay's enrollment answer is unusable: {0}")]
    Protocol(String),
}

/// A certificate the relay issued for our key.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// The relay's client CA, PEM (informational).
    pub ca_pem: String,
    /// The subject the certificate names.
    pub subject: String,
    /// The username the relay derived from the token.
    pub username: String,
    /// When the certificate expires.
    pub not_after: DateTime<Utc>,
}

/// A fresh P-256 key pair, as PEM (PKCS#8). Stays on this machine.
pub fn new_key_pem() -> Result<String, EnrollError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| EnrollError::Key(e.to_string()))?;
    Ok(key.serialize_pem())
}

/// A PEM `CERTIFICATE REQUEST` for `key`, with an empty subject: the relay takes only the public
/// key from it (and the proof of possession), never what it asks for ([`crate::pki::csr`]).
pub fn csr_pem(key: &rcgen::KeyPair) -> Result<String, EnrollError> {
    rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(key))
        .and_then(|c| c.pem())
        .map_err(|e| EnrollError::Key(e.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    api_version: String,
    kind: String,
    subject: String,
    #[serde(default)]
    username: String,
    certificate: String,
    #[serde(default)]
    ca_certificate: String,
}

/// Ask the relay at `relay_url` (pinned by `pin`) to certify the key in `key_pem` for the subject
/// of `id_token` (`expected_subject`), for at most `lifetime`.
pub async fn enroll(
    relay_url: &str,
    pin: &str,
    id_token: &str,
    expected_subject: &str,
    key_pem: &str,
    lifetime: Option<Duration>,
) -> Result<Enrollment, EnrollError> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| EnrollError::Key(format!("the stored key is unusable ({e}); run hoop-kube login again")))?;
    let csr = csr_pem(&key)?;
    let mut body = serde_json::json!({ "csr": csr });
    if let Some(l) = lifetime {
        body["lifetimeSeconds"] = serde_json::json!(l.as_secs());
    }

    let tls = relay_trust::client_config(pin, None)?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| EnrollError::Unreachable { relay: relay_url.into(), reason: one_line(&e) })?;
    let url = format!("{}{ENROLL_PATH}", relay_url.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .bearer_auth(id_token)
        .json(&body)
        .send()
        .await
        .map_err(|e| EnrollError::Unreachable { relay: relay_url.into(), reason: one_line(&e) })?;
    let code = resp.status().as_u16();
    let bytes = read_capped(resp).await.map_err(|reason| EnrollError::Unreachable { relay: relay_url.into(), reason })?;
    if code != 200 {
        let message = crate::kube::status::message_of(&bytes);
        let message = if message.trim().is_empty() { format!("HTTP {code} without a reason") } else { message.replace(['\n', '\r'], " ") };
        return Err(EnrollError::Refused { code, message });
    }
    let a: Answer = serde_json::from_slice(&bytes).map_err(|e| EnrollError::Protocol(format!("not an Enrollment: {e}")))?;
    if a.kind != "Enrollment" || a.api_version != "hoop-kube.dev/v1" {
        return Err(EnrollError::Protocol(format!("expected kind Enrollment in hoop-kube.dev/v1, got {:?} in {:?}", a.kind, a.api_version)));
    }
    let not_after = check_certificate(&a.certificate, &key, expected_subject)?;
    Ok(Enrollment { cert_pem: a.certificate, ca_pem: a.ca_certificate, subject: a.subject, username: a.username, not_after })
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| one_line(&e))? {
        if out.len() + chunk.len() > MAX_RESPONSE {
            return Err(format!("the answer is larger than {MAX_RESPONSE} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The certificate must be for `key`, name `subject`, and be valid now. Returns its `notAfter`.
pub fn check_certificate(cert_pem: &str, key: &rcgen::KeyPair, subject: &str) -> Result<DateTime<Utc>, EnrollError> {
    let not_after = check_certificate_key(cert_pem, key)?;
    let ders = pki::certs_from_pem(cert_pem, "certificate").map_err(|e| EnrollError::Protocol(e.to_string()))?;
    match ders.first().and_then(pki::cert_subject) {
        Some(s) if s.subject == subject => Ok(not_after),
        Some(s) => Err(EnrollError::Protocol(format!("the certificate names {:?}, not {subject:?}", s.subject))),
        None => Err(EnrollError::Protocol("the certificate names no hoop-kube subject".into())),
    }
}

/// The first certificate of `cert_pem` must be for `key` and be valid now (whatever it names:
/// agent certificates name the engineer and the agent). Returns its `notAfter`.
pub fn check_certificate_key(cert_pem: &str, key: &rcgen::KeyPair) -> Result<DateTime<Utc>, EnrollError> {
    let ders = pki::certs_from_pem(cert_pem, "certificate").map_err(|e| EnrollError::Protocol(e.to_string()))?;
    let der = ders.first().ok_or_else(|| EnrollError::Protocol("no certificate in the answer".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| EnrollError::Protocol(format!("certificate does not parse: {e}")))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(EnrollError::Protocol("the certificate is for another key than the one this machine sent".into()));
    }
    let not_after = DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or_else(|| EnrollError::Protocol("the certificate's notAfter is out of range".into()))?;
    if not_after <= Utc::now() {
        return Err(EnrollError::Protocol("the certificate has already expired (check the clocks of this machine and the relay)".into()));
    }
    Ok(not_after)
}

/// `notAfter` of a PEM certificate, and its hoop-kube subject.
pub fn inspect(cert_pem: &str) -> Option<(DateTime<Utc>, Option<String>)> {
    let ders = pki::certs_from_pem(cert_pem, "certificate").ok()?;
    let der = ders.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0)?;
    Some((not_after, pki::cert_subject(der).map(|s| s.subject)))
}

fn one_line(e: &dyn std::error::Error) -> String {
    crate::text::error_chain(e).replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_for_another_key_or_subject_are_refused() {
        let ca = pki::Ca::generate("t", 1).unwrap();
        let leaf = ca.subject_cert("alice", 1).unwrap();
        let their_key = rcgen::KeyPair::from_pem(&leaf.key_pem).unwrap();
        let our_key = rcgen::KeyPair::from_pem(&new_key_pem().unwrap()).unwrap();
        assert!(check_certificate(&leaf.cert_pem, &their_key, "alice").is_ok());
        let e = check_certificate(&leaf.cert_pem, &our_key, "alice").unwrap_err();
        assert!(e.to_string().contains("another key"), "{e}");
        let e = check_certificate(&leaf.cert_pem, &their_key, "bob").unwrap_err();
        assert!(e.to_string().contains("\"alice\""), "{e}");
        assert!(check_certificate("garbage", &their_key, "alice").is_err());
        let (exp, sub) = inspect(&leaf.cert_pem).unwrap();
        assert_eq!(sub.as_deref(), Some("alice"));
        assert!(exp > Utc::now());
    }
}
