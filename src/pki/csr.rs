//! Certificate signing requests from clients that enroll (`hoop-kube login`).
//!
//! A CSR is untrusted input from the network. This module takes exactly one thing from it: the
//! public key, and only after the CSR's self-signature has verified with that key (so the
//! requester holds the private key). Subject, SANs, extensions and attributes are never read:
//! whatever the relay issues names the identity from the verified OIDC token, not what the
//! request asks for.
//!
//! Why not `rcgen::CertificateSigningRequestParams::from_der`: it does verify the signature, but
//! it also parses what we ignore and refuses requests that carry extensions it does not know,
//! and it derives the key's algorithm from the *signature* algorithm alone (a P-384 key signing
//! with SHA-256 would be written into the certificate as a P-256 key). Here the key type comes
//! from the `SubjectPublicKeyInfo`, and the signature is checked with the one crypto provider
//! ([`super::provider`], aws-lc-rs) through the same verification algorithms rustls uses.
//!
//! Accepted keys: ECDSA P-256 and P-384, Ed25519, RSA of at least 2048 bits (the verification
//! algorithms enforce the RSA size). Anything else is a [`CsrError`].

use rcgen::{PublicKeyData, SignatureAlgorithm};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{alg_id, AlgorithmIdentifier, CertificateSigningRequestDer};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;

/// CSRs larger than this (DER) are refused before parsing.
pub const MAX_CSR_DER_BYTES: usize = 8 * 1024;

/// Why a CSR was refused. `Display` is one line a client can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Not one PEM `CERTIFICATE REQUEST` block.
    #[error("the CSR is not PEM: expected one -----BEGIN CERTIFICATE REQUEST----- block")]
    NotPem,
    /// Larger than [`MAX_CSR_DER_BYTES`].
    #[error("the CSR is larger than {MAX_CSR_DER_BYTES} bytes")]
    TooLarge,
    /// The DER inside is not a PKCS#10 request (or has bytes after it).
    #[error("the CSR is not a valid PKCS#10 certificate request")]
    Malformed,
    /// The public key type is not accepted.
    #[error("the CSR's public key is {0}; use an ECDSA P-256 or P-384, Ed25519 or RSA (2048 bits or more) key")]
    UnsupportedKey(String),
    /// The signature algorithm is not accepted for this key.
    #[error("the CSR is signed with an algorithm the relay does not accept for its key ({0})")]
    UnsupportedSignature(String),
    /// The self-signature does not verify with the CSR's own key (or the RSA key is too small).
    #[error("the CSR's signature does not verify with its public key (an RSA key must have at least 2048 bits)")]
    BadSignature,
}

/// The key types a client certificate may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa,
}

impl KeyKind {
    fn alg_id(self) -> AlgorithmIdentifier {
        match self {
            Self::EcdsaP256 => alg_id::ECDSA_P256,
            Self::EcdsaP384 => alg_id::ECDSA_P384,
            Self::Ed25519 => alg_id::ED25519,
            Self::Rsa => alg_id::RSA_ENCRYPTION,
        }
    }

    /// The rcgen algorithm whose public-key encoding matches (used only to write the key's
    /// `SubjectPublicKeyInfo` into the certificate; the CA signs with its own algorithm).
    fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
            Self::Rsa => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

/// A public key taken from a CSR whose signature verified. The only way to build one is
/// [`ClientCsr::from_pem`], so [`super::Ca::sign_client_csr`] cannot sign an unverified key.
#[derive(Debug, Clone)]
pub struct ClientCsr {
    kind: KeyKind,
    key: Vec<u8>,
}

impl ClientCsr {
    /// Parse one PEM CSR, verify its self-signature, keep its public key.
    pub fn from_pem(pem: &str) -> Result<Self, CsrError> {
        let mut blocks = CertificateSigningRequestDer::pem_slice_iter(pem.as_bytes());
        let der = match (blocks.next(), blocks.next()) {
            (Some(Ok(der)), None) => der,
            _ => return Err(CsrError::NotPem),
        };
        Self::from_der(der.as_ref())
    }

    /// [`from_pem`](Self::from_pem) for DER bytes.
    pub fn from_der(der: &[u8]) -> Result<Self, CsrError> {
        if der.len() > MAX_CSR_DER_BYTES {
            return Err(CsrError::TooLarge);
        }
        let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|_| CsrError::Malformed)?;
        if !rest.is_empty() {
            return Err(CsrError::Malformed);
        }
        let info = &csr.certification_request_info;
        let spki = &info.subject_pki;
        let key_oid = &spki.algorithm.algorithm;
        let kind = if *key_oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == OID_EC_P256 => KeyKind::EcdsaP256,
                Some(c) if c == OID_NIST_EC_P384 => KeyKind::EcdsaP384,
                Some(c) => return Err(CsrError::UnsupportedKey(format!("an EC key on curve {c}"))),
                None => return Err(CsrError::UnsupportedKey("an EC key without a named curve".into())),
            }
        } else if *key_oid == OID_SIG_ED25519 {
            KeyKind::Ed25519
        } else if *key_oid == OID_PKCS1_RSAENCRYPTION {
            KeyKind::Rsa
        } else {
            return Err(CsrError::UnsupportedKey(format!("of type {key_oid}")));
        };
        if spki.subject_public_key.unused_bits != 0 || csr.signature_value.unused_bits != 0 {
            return Err(CsrError::Malformed);
        }

        let sig_oid = &csr.signature_algorithm.algorithm;
        let sig = match kind {
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 if *sig_oid == OID_SIG_ECDSA_WITH_SHA256 => alg_id::ECDSA_SHA256,
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 if *sig_oid == OID_SIG_ECDSA_WITH_SHA384 => alg_id::ECDSA_SHA384,
            KeyKind::Ed25519 if *sig_oid == OID_SIG_ED25519 => alg_id::ED25519,
            KeyKind::Rsa if *sig_oid == OID_PKCS1_SHA256WITHRSA => alg_id::RSA_PKCS1_SHA256,
            KeyKind::Rsa if *sig_oid == OID_PKCS1_SHA384WITHRSA => alg_id::RSA_PKCS1_SHA384,
            KeyKind::Rsa if *sig_oid == OID_PKCS1_SHA512WITHRSA => alg_id::RSA_PKCS1_SHA512,
            _ => return Err(CsrError::UnsupportedSignature(sig_oid.to_string())),
        };
        let pk = kind.alg_id();
        let provider = super::provider();
        // Every algorithm with these identifiers (RSA has a 2048- and a 3072-bit minimum variant
        // for SHA-384) — any one verifying is enough.
        let mut candidates = provider.signature_verification_algorithms.all.iter().filter(|a| a.public_key_alg_id() == pk && a.signature_alg_id() == sig).peekable();
        if candidates.peek().is_none() {
            return Err(CsrError::UnsupportedSignature(sig_oid.to_string()));
        }
        let key = spki.subject_public_key.data.as_ref();
        if !candidates.any(|a| a.verify_signature(key, info.raw, csr.signature_value.data.as_ref()).is_ok()) {
            return Err(CsrError::BadSignature);
        }
        Ok(ClientCsr { kind, key: key.to_vec() })
    }

    /// The kind of key requested.
    pub fn key_kind(&self) -> KeyKind {
        self.kind
    }
}

impl PublicKeyData for ClientCsr {
    fn der_bytes(&self) -> &[u8] {
        &self.key
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.kind.rcgen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn csr_for(alg: &'static SignatureAlgorithm) -> (KeyPair, String) {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(vec!["admin.example.com".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "system:admin");
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        (key, pem)
    }

    #[test]
    fn accepts_the_supported_key_types() {
        for (alg, kind) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyKind::EcdsaP256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyKind::EcdsaP384),
            (&rcgen::PKCS_ED25519, KeyKind::Ed25519),
        ] {
            let (key, pem) = csr_for(alg);
            let csr = ClientCsr::from_pem(&pem).unwrap();
            assert_eq!(csr.key_kind(), kind);
            assert_eq!(csr.der_bytes(), key.public_key_raw(), "the key is the CSR's key");
        }
    }

    #[test]
    fn rsa_keys_of_2048_bits_and_more() {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let pem = CertificateParams::default().serialize_request(&key).unwrap().pem().unwrap();
        assert_eq!(ClientCsr::from_pem(&pem).unwrap().key_kind(), KeyKind::Rsa);
    }

    #[test]
    fn refuses_what_is_not_one_verified_csr() {
        let (_, pem) = csr_for(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(ClientCsr::from_pem("hello").unwrap_err(), CsrError::NotPem);
        assert_eq!(ClientCsr::from_pem(&format!("{pem}{pem}")).unwrap_err(), CsrError::NotPem, "two blocks");
        assert_eq!(ClientCsr::from_pem(&pem[..pem.len() / 2]).unwrap_err(), CsrError::NotPem, "truncated PEM");
        let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).unwrap().as_ref().to_vec();
        for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
            assert!(ClientCsr::from_der(&der[..cut]).is_err(), "every prefix is refused ({cut})");
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(ClientCsr::from_der(&trailing).unwrap_err(), CsrError::Malformed);
        // A flipped bit in the signature (the last bytes of the DER).
        let mut bad = der.clone();
        let n = bad.len();
        bad[n - 3] ^= 0x01;
        assert_eq!(ClientCsr::from_der(&bad).unwrap_err(), CsrError::BadSignature);
        // A flipped bit in the signed part (the subject) after signing.
        let mut tampered = der.clone();
        let at = tampered.windows(12).position(|w| w == b"system:admin").unwrap();
        tampered[at] = b'S';
        assert_eq!(ClientCsr::from_der(&tampered).unwrap_err(), CsrError::BadSignature);
        assert_eq!(ClientCsr::from_der(&vec![0u8; MAX_CSR_DER_BYTES + 1]).unwrap_err(), CsrError::TooLarge);
    }

    #[test]
    fn p521_is_refused() {
        let (_, pem) = csr_for(&rcgen::PKCS_ECDSA_P521_SHA512);
        assert!(matches!(ClientCsr::from_pem(&pem).unwrap_err(), CsrError::UnsupportedKey(_)));
    }
}
