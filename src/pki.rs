//! Certificates and rustls configurations.
//!
//! Every TLS endpoint hoop-kube runs (the simulator today; the relay and the local forwarder
//! later) gets its certificates from here: a CA generated with `rcgen`, leaf certificates for
//! loopback servers, client certificates that name a user, and the rustls configurations that
//! use them. TLS 1.2 and 1.3 only (rustls has nothing older), aws-lc-rs as the one crypto provider.
//! Client certificates for enrolled users are signed from a verified CSR ([`csr`]).

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

pub mod csr;
pub mod subject_uri;

pub use subject_uri::{actor_uri, cert_subject, subject_uri, Actor, CertSubject, SUBJECT_URI_PREFIX};
pub use csr::{ClientCsr, CsrError};

/// What can go wrong making or loading certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen could not generate or sign.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("TLS configuration rejected: {0}")]
    Tls(#[from] rustls::Error),
    /// A PEM file could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    /// More groups were asked for than a certificate subject can carry here.
    #[error("a client certificate can name one group, {0} were given")]
    TooManyGroups(usize),
    /// The client verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    /// The CA certificate is not a CA (no `basicConstraints` CA flag).
    #[error("the certificate is not a CA certificate (basicConstraints CA is not set)")]
    NotACa,
    /// A certificate lifetime beyond what a date can hold.
    #[error("the certificate lifetime is out of range")]
    Lifetime,
    /// The private key given for a CA is not the key of its certificate.
    #[error("the private key does not belong to the CA certificate (its public key differs)")]
    CaKeyMismatch,
}

/// The one crypto provider.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client certificate issued from a CSR: the certificate (PEM), its serial (hex) and expiry.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub serial: String,
    pub not_after: time::OffsetDateTime,
}

/// A certificate authority held in memory: it signs server and client certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// A certificate with its private key, both PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf").field("cert_pem", &"…").field("key_pem", &"<redacted>").finish()
    }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days);
}

impl Ca {
    /// A new CA with the given common name, valid for `days`.
    pub fn generate(common_name: &str, days: i64) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut params, days);
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM (to persist the CA; keep it 0600).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A server certificate for the given DNS names and IP addresses.
    pub fn server_cert(&self, names: &[&str], days: i64) -> Result<Leaf, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().copied().unwrap_or("localhost"));
        params.distinguished_name = dn;
        for n in names {
            match n.parse::<std::net::IpAddr>() {
                Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
                Err(_) => params.subject_alt_names.push(SanType::DnsName((*n).try_into()?)),
            }
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        validity(&mut params, days);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// A client certificate for a hoop-kube subject: the subject in a `hoop-kube://subject/…` URI
    /// SAN (what the relay reads), valid for `hours`.
    pub fn subject_cert(&self, subject: &str, hours: i64) -> Result<Leaf, PkiError> {
        let key = KeyPair::generate()?;
        let (params, _) = client_params(subject_uri(subject), subject, time::Duration::hours(hours))?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Sign the key of a verified CSR as a client certificate for `subject` (from a verified
    /// token): CN = `common_name`, exactly one URI SAN [`subject_uri`]`(subject)`, EKU
    /// clientAuth only, not a CA, a random serial, valid from five minutes ago for
    /// `lifetime`. Nothing the CSR asked for (subject, SANs, extensions) is used.
    pub fn sign_client_csr(&self, csr: &ClientCsr, subject: &str, common_name: &str, lifetime: std::time::Duration) -> Result<Issued, PkiError> {
        let lifetime = time::Duration::try_from(lifetime).unwrap_or(time::Duration::MAX);
        let (params, serial) = client_params(subject_uri(subject), common_name, lifetime)?;
        let not_after = params.not_after;
        let cert = params.signed_by(csr, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), serial, not_after })
    }

    /// Like [`Ca::sign_client_csr`], for an agent acting for `subject`: the one URI SAN is
    /// [`actor_uri`], and the certificate expires exactly at `not_after` (Unix seconds; the
    /// agent session's end, never later).
    pub fn sign_agent_csr(&self, csr: &ClientCsr, subject: &str, common_name: &str, actor: &Actor, not_after: i64) -> Result<Issued, PkiError> {
        let (mut params, serial) = client_params(actor_uri(subject, actor), common_name, time::Duration::ZERO)?;
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).map_err(|_| PkiError::Lifetime)?;
        if params.not_after <= params.not_before {
            return Err(PkiError::Lifetime);
        }
        let cert = params.signed_by(csr, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), serial, not_after: params.not_after })
    }

    /// Load a CA from its certificate and key PEM. The first certificate in `cert_pem` is the
    /// CA; it must be a CA certificate and `key_pem` must be its key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let der = certs_from_pem(cert_pem, "CA certificate")?.remove(0);
        let key = KeyPair::from_pem(key_pem)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| PkiError::Read { path: "CA certificate".into(), reason: e.to_string() })?;
        if !parsed.is_ca() {
            return Err(PkiError::NotACa);
        }
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::CaKeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&der, key)?;
        Ok(Ca { issuer, cert_pem: pem_cert(&der) })
    }

    /// A client certificate naming a Kubernetes user the way the apiserver reads it:
    /// common name = user, organization = group. rcgen keeps one value per attribute type, so
    /// at most one group fits; more is an error rather than a silently dropped group.
    pub fn client_cert(&self, user: &str, groups: &[&str], days: i64) -> Result<Leaf, PkiError> {
        if groups.len() > 1 {
            return Err(PkiError::TooManyGroups(groups.len()));
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        for g in groups {
            dn.push(DnType::OrganizationName, *g);
        }
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, days);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// The parameters of a client certificate naming `subject`, and its serial (hex).
fn client_params(uri: String, common_name: &str, lifetime: time::Duration) -> Result<(CertificateParams, String), PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Whole seconds: X.509 times carry no fraction, so what is reported is what is signed.
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now.checked_add(lifetime).ok_or(PkiError::Lifetime)?;
    // 126 random bits; the top byte is 01xxxxxx so the DER INTEGER is exactly these 16 bytes
    // (no sign padding, no stripped zero) and the hex matches what `cert_subject` reads back.
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x3f) | 0x40;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    Ok((params, hex::encode(serial)))
}

/// A certificate as PEM text.
pub fn pem_cert(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

/// The fingerprint clients pin a relay by: lower-case hex SHA-256 of the DER of the first
/// certificate in `pem` (the relay's CA).
pub fn ca_fingerprint(pem: &str) -> Result<String, PkiError> {
    let der = certs_from_pem(pem, "CA certificate")?.remove(0);
    Ok(hex::encode(Sha256::digest(der.as_ref())))
}

/// Parse all certificates in a PEM string.
pub fn certs_from_pem(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|e| PkiError::Read { path: what.into(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(PkiError::Read { path: what.into(), reason: "no certificate in PEM".into() });
    }
    Ok(certs)
}

/// Parse a private key from PEM.
pub fn key_from_pem(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Read { path: what.into(), reason: e.to_string() })
}

/// Verify client certificates against `client_ca` when they are offered; accept none offered.
fn optional_client_verifier(client_ca: &str) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_from_pem(client_ca, "client CA")? {
        roots.add(c)?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Verifier(e.to_string()))
}

/// A rustls server configuration. `client_ca`: verify client certificates against it when they are
/// offered (optional, as kube-apiserver does: a request may use a bearer token instead).
/// ALPN offers h2 then http/1.1, as the apiserver does.
pub fn server_config(leaf: &Leaf, client_ca: Option<&str>) -> Result<rustls::ServerConfig, PkiError> {
    let certs = certs_from_pem(&leaf.cert_pem, "server certificate")?;
    let key = key_from_pem(&leaf.key_pem, "server key")?;
    let builder = rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(optional_client_verifier(ca)?),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The relay's API port: TLS 1.3 only, the whole `leaf` chain presented (clients pin the CA in
/// it), and a client certificate *optional* — but one that is presented must chain to
/// `client_ca`, or the handshake fails. A connection without one can only enroll; the relay
/// answers everything else on it with a 401 (see `relay::serve`).
pub fn relay_server_config(leaf: &Leaf, client_ca: &str) -> Result<rustls::ServerConfig, PkiError> {
    let certs = certs_from_pem(&leaf.cert_pem, "server certificate")?;
    let key = key_from_pem(&leaf.key_pem, "server key")?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(optional_client_verifier(client_ca)?)
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A rustls client configuration: trust `roots_pem` (or the system's roots when `None`) and
/// present `client` for mutual TLS when given.
pub fn client_config(roots_pem: Option<&str>, client: Option<&Leaf>, tls13_only: bool) -> Result<rustls::ClientConfig, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    match roots_pem {
        Some(pem) => {
            for c in certs_from_pem(pem, "CA")? {
                roots.add(c)?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let b = rustls::ClientConfig::builder_with_provider(provider());
    let b = if tls13_only { b.with_protocol_versions(&[&rustls::version::TLS13])? } else { b.with_safe_default_protocol_versions()? };
    let b = b.with_root_certificates(roots);
    Ok(match client {
        Some(leaf) => b.with_client_auth_cert(certs_from_pem(&leaf.cert_pem, "client certificate")?, key_from_pem(&leaf.key_pem, "client key")?)?,
        None => b.with_no_client_auth(),
    })
}

/// The subject of a client certificate as Kubernetes reads it: (common name, organizations).
pub fn client_identity(cert: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let cn = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let orgs = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some((cn, orgs))
}

/// Write `contents` to `path` with mode 0600 (keys, tokens) or 0644.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), PkiError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(if private { 0o600 } else { 0o644 });
    let err = |source| PkiError::Write { path: path.display().to_string(), source };
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(contents).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_cert_names_user_and_groups() {
        let ca = Ca::generate("test-ca", 1).unwrap();
        let leaf = ca.client_cert("alice", &["dev"], 1).unwrap();
        let der = certs_from_pem(&leaf.cert_pem, "t").unwrap().remove(0);
        assert_eq!(client_identity(&der), Some(("alice".into(), vec!["dev".into()])));
        assert!(ca.client_cert("alice", &["dev", "ops"], 1).is_err());
    }

    #[test]
    fn subject_certs_round_trip_hostile_subjects() {
        let ca = Ca::generate("test-ca", 1).unwrap();
        for sub in ["alice", "a/b", "üser", "x%2Fy", "a b:c@d"] {
            let leaf = ca.subject_cert(sub, 1).unwrap();
            let der = certs_from_pem(&leaf.cert_pem, "t").unwrap().remove(0);
            assert_eq!(cert_subject(&der).map(|c| c.subject), Some(sub.to_string()));
        }
        // A plain Kubernetes client certificate names no hoop-kube subject.
        let plain = ca.client_cert("alice", &[], 1).unwrap();
        assert_eq!(cert_subject(&certs_from_pem(&plain.cert_pem, "t").unwrap()[0]), None);
        assert_eq!(subject_uri("a/b"), "hoop-kube://subject/a%2Fb");
    }

    #[test]
    fn server_config_offers_h2_and_http11() {
        let ca = Ca::generate("test-ca", 1).unwrap();
        let leaf = ca.server_cert(&["127.0.0.1", "localhost"], 1).unwrap();
        let cfg = server_config(&leaf, Some(ca.cert_pem())).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn from_pem_checks_the_key_and_the_ca_flag() {
        let ca = Ca::generate("a", 1).unwrap();
        let other = Ca::generate("b", 1).unwrap();
        assert_eq!(Ca::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap().cert_pem(), ca.cert_pem());
        assert!(matches!(Ca::from_pem(ca.cert_pem(), &other.key_pem()), Err(PkiError::CaKeyMismatch)));
        let leaf = ca.server_cert(&["x"], 1).unwrap();
        assert!(matches!(Ca::from_pem(&leaf.cert_pem, &leaf.key_pem), Err(PkiError::NotACa)));
        // A bundle: the first certificate is the CA, and only it is kept.
        let bundle = format!("{}{}", ca.cert_pem(), other.cert_pem());
        assert_eq!(Ca::from_pem(&bundle, &ca.key_pem()).unwrap().cert_pem(), ca.cert_pem());
    }

    #[test]
    fn fingerprints_hash_the_first_certificate() {
        let ca = Ca::generate("a", 1).unwrap();
        let der = certs_from_pem(ca.cert_pem(), "t").unwrap().remove(0);
        let want: String = Sha256::digest(der.as_ref()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ca_fingerprint(ca.cert_pem()).unwrap(), want);
        let other = Ca::generate("b", 1).unwrap();
        assert_eq!(ca_fingerprint(&format!("{}{}", ca.cert_pem(), other.cert_pem())).unwrap(), want);
        assert!(ca_fingerprint("nothing").is_err());
    }

    #[test]
    fn agent_certificates_name_subject_and_actor_and_end_on_time() {
        let ca = Ca::generate("t", 1).unwrap();
        let key = KeyPair::generate().unwrap();
        let csr = ClientCsr::from_pem(&CertificateParams::new(Vec::<String>::new()).unwrap().serialize_request(&key).unwrap().pem().unwrap()).unwrap();
        let actor = Actor { agent: "bot".into(), session: "01890a5d-ac96-774b-bcce-b302099a8057".into() };
        let end = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
        let issued = ca.sign_agent_csr(&csr, "alice", "alice", &actor, end).unwrap();
        let der = certs_from_pem(&issued.cert_pem, "t").unwrap().remove(0);
        let got = cert_subject(&der).unwrap();
        assert_eq!((got.subject.as_str(), got.actor.as_ref(), got.not_after), ("alice", Some(&actor), end));
        // An end in the past is refused, not issued.
        assert!(ca.sign_agent_csr(&csr, "alice", "alice", &actor, end - 3600).is_err());
        // Two hoop-kube URIs (an engineer's and an agent's) in one certificate name nobody.
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::URI(subject_uri("alice").try_into().unwrap()), SanType::URI(actor_uri("alice", &actor).try_into().unwrap())];
        let two = params.signed_by(&key, &ca.issuer).unwrap();
        assert_eq!(cert_subject(&two.der().clone()), None);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::URI("hoop-kube://agent/bot".try_into().unwrap())];
        assert_eq!(cert_subject(&params.signed_by(&key, &ca.issuer).unwrap().der().clone()), None);
    }

    #[test]
    fn csr_certificates_name_the_given_identity_only() {
        use x509_parser::extensions::GeneralName;
        let ca = Ca::generate("t", 1).unwrap();
        let key = KeyPair::generate().unwrap();
        // The request asks for everything it must not get.
        let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "system:admin");
        params.subject_alt_names.push(SanType::URI(subject_uri("root").try_into().unwrap()));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let csr = ClientCsr::from_pem(&params.serialize_request(&key).unwrap().pem().unwrap()).unwrap();
        let before = time::OffsetDateTime::now_utc().unix_timestamp();
        let issued = ca.sign_client_csr(&csr, "a/b", "alice", std::time::Duration::from_secs(3600)).unwrap();
        let der = certs_from_pem(&issued.cert_pem, "t").unwrap().remove(0);
        assert_eq!(cert_subject(&der), Some(CertSubject { subject: "a/b".into(), actor: None, serial: issued.serial.clone(), not_after: issued.not_after.unix_timestamp() }));
        assert_eq!(client_identity(&der), Some(("alice".into(), vec![])));
        let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert!(!x.is_ca());
        let sans: Vec<_> = x.subject_alternative_name().unwrap().unwrap().value.general_names.clone();
        assert_eq!(sans, vec![GeneralName::URI("hoop-kube://subject/a%2Fb")]);
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty());
        assert_eq!(x.public_key().subject_public_key.data.as_ref(), key.public_key_raw(), "the CSR's key");
        assert_eq!(x.validity().not_after.timestamp(), issued.not_after.unix_timestamp());
        let life = issued.not_after.unix_timestamp() - before;
        assert!((3599..=3601).contains(&life), "{life}");
        assert!(x.validity().not_before.timestamp() <= before - 299);
        assert_eq!(issued.serial.len(), 32, "16-byte serial");
    }

    #[test]
    fn garbage_pem_is_an_error() {
        assert!(certs_from_pem("not a pem", "x").is_err());
        assert!(key_from_pem("no key here", "k").is_err());
        let ca = Ca::generate("test-ca", 1).unwrap();
        let mut leaf = ca.server_cert(&["127.0.0.1"], 1).unwrap();
        leaf.key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
        assert!(server_config(&leaf, None).is_err(), "a key that is not a key is refused");
    }
}
