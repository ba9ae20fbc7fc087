//! The forwarder's client certificate for the relay, replaceable while it runs.
//!
//! Certificates from enrollment last hours, a forwarder runs for days: when `hoop-kube
//! credential` renews the certificate, the running forwarder must present the new one on its
//! next connection to the relay without a restart (open connections keep theirs; the relay checks
//! a certificate at the handshake). rustls asks [`RelayIdentity`] for the certificate at every
//! handshake; [`RelayIdentity::replace`] swaps it, after checking that key and certificate belong
//! together, so a half-written renewal is never presented.

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use crate::pki::{self, Leaf, PkiError};

/// The client certificate the forwarder presents to the relay.
#[derive(Debug)]
pub struct RelayIdentity {
    current: RwLock<Arc<CertifiedKey>>,
}

fn certified(leaf: &Leaf) -> Result<Arc<CertifiedKey>, PkiError> {
    let certs = pki::certs_from_pem(&leaf.cert_pem, "client certificate")?;
    let key = pki::key_from_pem(&leaf.key_pem, "client key")?;
    let ck = CertifiedKey::from_der(certs, key, &pki::provider()).map_err(|e| PkiError::Verifier(format!("client certificate and key: {e}")))?;
    Ok(Arc::new(ck))
}

impl RelayIdentity {
    /// Start with `leaf`.
    pub fn new(leaf: &Leaf) -> Result<Arc<Self>, PkiError> {
        Ok(Arc::new(RelayIdentity { current: RwLock::new(certified(leaf)?) }))
    }

    /// Present `leaf` from the next handshake on. On error the old certificate stays.
    pub fn replace(&self, leaf: &Leaf) -> Result<(), PkiError> {
        let ck = certified(leaf)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = ck;
        Ok(())
    }
}

impl ResolvesClientCert for RelayIdentity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatched_renewal_keeps_the_old_certificate() {
        let ca = pki::Ca::generate("t", 1).unwrap();
        let a = ca.subject_cert("alice", 1).unwrap();
        let b = ca.subject_cert("alice", 1).unwrap();
        let id = RelayIdentity::new(&a).unwrap();
        let before = id.resolve(&[], &[]).unwrap().cert[0].clone();
        let mixed = Leaf { cert_pem: b.cert_pem.clone(), key_pem: a.key_pem.clone() };
        assert!(id.replace(&mixed).is_err());
        assert_eq!(id.resolve(&[], &[]).unwrap().cert[0], before);
        id.replace(&b).unwrap();
        assert_ne!(id.resolve(&[], &[]).unwrap().cert[0], before);
    }
}
