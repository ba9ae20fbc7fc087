//! How the engineer's machine trusts a relay: by the SHA-256 fingerprint of the relay's CA.
//!
//! A profile records one fingerprint (`relay_ca_sha256`, printed by `hoop-kube relay pki init`),
//! the way `kubeadm join --discovery-token-ca-cert-hash` pins a control plane. No CA file has to
//! be copied around, and nothing is trusted on first use: the relay presents its CA in the chain
//! it sends (leaf + CA); the verifier here picks the certificate whose DER hashes to the pin, uses
//! it as the only root, and then verifies the leaf against it with webpki like any other TLS
//! client would (signature chain, validity dates, server name, key usage). A chain without the
//! pinned CA, or a leaf the pinned CA did not sign, fails the handshake.
//!
//! Used by enrollment (`hoop-kube login`), the forwarder's mutual-TLS connection to the relay,
//! `hoop-kube status`, and the agents API client, which also needs the pinned CA itself: an agent's
//! kubeconfig points kubectl straight at the relay, and kubectl trusts by a CA certificate, not a
//! fingerprint. [`PinnedCa::matched_ca_pem`] gives the CA a handshake matched, and
//! [`fetch_pinned_ca`] makes a handshake just for that.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::pki;

/// Why a fingerprint or PEM could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// Not 64 hex digits (colons allowed between pairs).
    #[error("{0:?} is not a SHA-256 fingerprint: expected 64 hex digits (as printed by `hoop-kube relay pki init`)")]
    BadFingerprint(String),
    /// The CA file holds no certificate.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Tls(#[from] TlsError),
    /// The relay could not be reached, or its handshake failed (the pin did not match).
    #[error("cannot reach the relay at {relay}: {reason}")]
    Unreachable { relay: String, reason: String },
}

/// The fingerprint of the first certificate in a PEM file (the CA an operator hands out); the
/// same value `hoop-kube relay pki init` prints ([`pki::ca_fingerprint`]).
pub fn fingerprint_of_pem(pem: &str) -> Result<String, TrustError> {
    pki::ca_fingerprint(pem).map_err(|e| TrustError::Pem(format!("the relay CA: {e}")))
}

/// Normalize a fingerprint as typed by a human: hex digits, optional `:` between pairs, any case,
/// an optional `sha256:` prefix. Returns 64 lower-case hex digits.
pub fn parse_fingerprint(s: &str) -> Result<String, TrustError> {
    let t = s.trim();
    let t = t.strip_prefix("sha256:").or_else(|| t.strip_prefix("SHA256:")).unwrap_or(t);
    let digits: String = if t.contains(':') {
        let parts: Vec<&str> = t.split(':').collect();
        if parts.iter().any(|p| p.len() != 2) {
            return Err(TrustError::BadFingerprint(clip(s)));
        }
        parts.concat()
    } else {
        t.to_string()
    };
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TrustError::BadFingerprint(clip(s)));
    }
    Ok(digits.to_ascii_lowercase())
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A server-certificate verifier that trusts exactly the CA whose DER hashes to the pin.
#[derive(Debug)]
pub struct PinnedCa {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The pinned CA as the last successful verification found it in the chain.
    matched: Mutex<Option<CertificateDer<'static>>>,
}

impl PinnedCa {
    /// `pin`: 64 hex digits (see [`parse_fingerprint`]).
    pub fn new(pin: &str) -> Result<Self, TrustError> {
        let digits = parse_fingerprint(pin)?;
        let mut out = [0u8; 32];
        for (i, chunk) in digits.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).map_err(|_| TrustError::BadFingerprint(clip(pin)))?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| TrustError::BadFingerprint(clip(pin)))?;
        }
        Ok(PinnedCa { pin: out, provider: pki::provider(), matched: Mutex::new(None) })
    }

    /// The pinned CA certificate (PEM) from the chain of the last server this verifier accepted;
    /// `None` before the first successful handshake.
    pub fn matched_ca_pem(&self) -> Option<String> {
        let der = self.matched.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        Some(pki::pem_cert(&der))
    }

    fn pinned<'a>(&self, chain: impl Iterator<Item = &'a CertificateDer<'a>>) -> Option<CertificateDer<'static>> {
        chain.into_iter().find(|c| Sha256::digest(c.as_ref()).as_slice() == self.pin).map(|c| c.clone().into_owned())
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        // The pinned CA must be in the chain; the leaf itself is never the trust anchor.
        let Some(ca) = self.pinned(intermediates.iter()) else {
            return Err(TlsError::General(
                "the relay's certificate chain does not contain the pinned CA (wrong relay, or a relay CA rotated since login; check relay_ca_sha256)".into(),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone())?;
        let others: Vec<CertificateDer<'_>> =
            intermediates.iter().filter(|c| Sha256::digest(c.as_ref()).as_slice() != self.pin).cloned().collect();
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| TlsError::General(e.to_string()))?;
        let verified = webpki.verify_server_cert(end_entity, &others, server_name, ocsp_response, now)?;
        *self.matched.lock().unwrap_or_else(|p| p.into_inner()) = Some(ca);
        Ok(verified)
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS 1.3 client configuration for the relay: trust by `pin`, present what `client` resolves
/// (nothing for enrollment).
pub fn client_config(pin: &str, client: Option<Arc<dyn ResolvesClientCert>>) -> Result<rustls::ClientConfig, TrustError> {
    pinned_client_config(Arc::new(PinnedCa::new(pin)?), client)
}

/// [`client_config`] with a verifier the caller keeps, to read [`PinnedCa::matched_ca_pem`]
/// after a handshake.
pub fn pinned_client_config(verifier: Arc<PinnedCa>, client: Option<Arc<dyn ResolvesClientCert>>) -> Result<rustls::ClientConfig, TrustError> {
    let b = rustls::ClientConfig::builder_with_provider(pki::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match client {
        Some(r) => b.with_client_cert_resolver(r),
        None => b.with_no_client_auth(),
    })
}

/// How long [`fetch_pinned_ca`] waits for the connection and the handshake.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Connect to the relay at `relay_url` (`https://HOST[:PORT]`), complete a TLS handshake trusting
/// only the CA pinned by `pin` (no client certificate, no HTTP request), and return that CA
/// certificate as PEM: what a kubeconfig's `certificate-authority-data` needs.
pub async fn fetch_pinned_ca(relay_url: &str, pin: &str) -> Result<String, TrustError> {
    let unreachable = |reason: String| TrustError::Unreachable { relay: relay_url.to_string(), reason };
    let url = url::Url::parse(relay_url).map_err(|e| unreachable(format!("not a URL ({e})")))?;
    if url.scheme() != "https" {
        return Err(unreachable("the relay URL must start with https://".into()));
    }
    let host = url.host_str().ok_or_else(|| unreachable("the URL has no host".into()))?;
    let port = url.port().unwrap_or(443);
    // `host_str` keeps an IPv6 literal's brackets; the server name and the socket address do not.
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let name = ServerName::try_from(bare.clone()).map_err(|e| unreachable(format!("invalid host {host:?} ({e})")))?;
    let verifier = Arc::new(PinnedCa::new(pin)?);
    let config = pinned_client_config(verifier.clone(), None)?;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((bare.as_str(), port)).await.map_err(|e| unreachable(e.to_string()))?;
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| unreachable(e.to_string()))
    };
    let _tls = tokio::time::timeout(FETCH_TIMEOUT, connect).await.map_err(|_| unreachable(format!("no TLS handshake within {} s", FETCH_TIMEOUT.as_secs())))??;
    verifier.matched_ca_pem().ok_or_else(|| unreachable("the handshake completed without the pinned CA".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_the_forms_humans_paste() {
        let hexs = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        for s in [hexs.clone(), colons, format!("sha256:{hexs}"), format!("  {hexs}\n")] {
            assert_eq!(parse_fingerprint(&s).unwrap(), "ab".repeat(32), "{s}");
        }
    }

    #[test]
    fn bad_fingerprints_are_refused() {
        let long = "a".repeat(66);
        let bad_pairs = format!("{}:a", vec!["ab"; 31].join(":"));
        for s in ["", "abc", &long, &"g".repeat(64), &bad_pairs, &format!("{}\u{0660}", "a".repeat(63))] {
            assert!(parse_fingerprint(s).is_err(), "{s:?}");
            assert!(PinnedCa::new(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn fingerprint_of_pem_hashes_the_der() {
        let ca = pki::Ca::generate("t", 1).unwrap();
        let der = pki::certs_from_pem(ca.cert_pem(), "ca").unwrap();
        assert_eq!(fingerprint_of_pem(ca.cert_pem()).unwrap(), hex::encode(Sha256::digest(&der[0])));
        assert!(fingerprint_of_pem("not pem").is_err());
    }
}
