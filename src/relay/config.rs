//! The relay's configuration: one YAML file read by `hoop-kube relay --config relay.yaml` and
//! validated by `hoop-kube relay check --config relay.yaml`.
//!
//! Why it is strict: the relay is a security boundary, so a typo must not silently turn a setting
//! off. Unknown keys, duplicate keys (YAML would otherwise keep the last one), wrong types,
//! out-of-range numbers, `http://` upstreams, `alg: none` and HMAC algorithms are all errors. Every
//! error is one line that names the file and the key path, e.g.
//! `relay.yaml: oidc.algorithms[1]: "none" is never allowed …`.
//!
//! What it trusts: the file itself and the files it names (relative paths are taken from the
//! config file's directory). It checks that those files exist and are readable, and parses no key
//! or certificate — TLS setup does that. It holds paths, never secrets: token and key contents are
//! read by the relay when it connects ([`RelayConfig::resolve_upstream`]), never stored here, so
//! `Debug` output is safe to log.
//!
//! The relay reaches the cluster with exactly one static credential: a token file, a client
//! certificate, a kubeconfig context (exec plugins, auth providers, basic auth, `as:` and
//! `insecure-skip-tls-verify` are refused), or the pod's service account.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

#[path = "config_enrollment.rs"]
mod enrollment;
#[path = "config_policy.rs"]
mod policy;
#[path = "config_review.rs"]
mod review;
#[path = "config_records.rs"]
mod records;
#[path = "config_agents.rs"]
mod agents;
#[path = "config_yaml.rs"]
mod yaml;
pub(super) use yaml::{parse_yaml, read_capped};
pub use enrollment::{EnrollmentConfig, DEFAULT_CERTIFICATE_HOURS, MAX_CERTIFICATE_HOURS};
pub use records::{RecordsConfig, DEFAULT_RECORDS_STORE, DEFAULT_RETENTION_DAYS};
pub use agents::{AgentsConfig, DEFAULT_AGENTS_STORE, DEFAULT_MAX_TTL_MINUTES, MAX_TTL_MINUTES};
pub use review::{ReviewConfig, DEFAULT_HOLD_SECONDS, DEFAULT_STORE, DEFAULT_TTL_SECONDS};
pub use policy::{load_policy_section, policy_error, MatchConfig, PolicyConfig, RuleConfig};

/// Config and kubeconfig files larger than this (1 MiB) are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Where a pod's service account token and cluster CA are mounted (`in_cluster: true`).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Default request header limit (64 KiB); beyond it the relay answers 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default request body limit (3 MiB, kube-apiserver's own); beyond it the relay answers 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// The largest allowed `oidc.leeway_seconds`.
pub const MAX_LEEWAY_SECONDS: u64 = 300;
const HEADER_RANGE: (usize, usize) = (4 * 1024, 1024 * 1024);
const BODY_RANGE: (usize, usize) = (1024, 64 * 1024 * 1024);

/// Why a config (or the upstream kubeconfig) was refused. `Display` is the one-line message,
/// starting with the file and, unless the whole file is at fault, the key path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file itself cannot be read.
    #[error("{file}: cannot read: {}", io_msg(.source))]
    Read { file: String, source: std::io::Error },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{file}: larger than {limit} bytes; refusing to parse it (is this the right file?)")]
    TooLarge { file: String, limit: u64 },
    /// Not valid YAML, a duplicate key, an unknown key, a wrong type or a missing key.
    #[error("{file}: {}{message}", key_prefix(.key))]
    Syntax { file: String, key: String, message: String },
    /// Parsed, but a value is not acceptable.
    #[error("{file}: {}{message}", key_prefix(.key))]
    Invalid { file: String, key: String, message: String },
    /// A file named by `key` cannot be read.
    #[error("{file}: {key}: cannot read {}: {}", .path.display(), io_msg(.source))]
    File { file: String, key: String, path: PathBuf, source: std::io::Error },
    /// The kubeconfig named by `key` was refused (the inner error names its file and key).
    #[error("{file}: {key}: {source}")]
    Kubeconfig { file: String, key: String, source: Box<ConfigError> },
}

impl ConfigError {
    /// The file at fault (the config file, or the kubeconfig for errors from [`resolve_kubeconfig`]).
    pub fn file(&self) -> &str {
        match self {
            Self::Read { file, .. } | Self::TooLarge { file, .. } | Self::Syntax { file, .. } => file,
            Self::Invalid { file, .. } | Self::File { file, .. } | Self::Kubeconfig { file, .. } => file,
        }
    }
    /// The key path at fault, e.g. `oidc.algorithms[1]`; empty when the whole file is at fault.
    pub fn key(&self) -> &str {
        match self {
            Self::Read { .. } | Self::TooLarge { .. } => "",
            Self::Syntax { key, .. } | Self::Invalid { key, .. } => key,
            Self::File { key, .. } | Self::Kubeconfig { key, .. } => key,
        }
    }
}

pub(super) fn key_prefix(key: &str) -> String {
    if key.is_empty() { String::new() } else { format!("{key}: ") }
}

/// An I/O error without the trailing ` (os error N)`.
pub(super) fn io_msg(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

/// The relay's configuration, validated, with every path absolute. Holds paths, never secrets.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The config file as the user named it (used in messages).
    pub source: String,
    /// `listen`: where the API port listens (`IP:PORT`). TLS 1.3 only; a client certificate is
    /// required for everything but enrollment.
    pub listen: SocketAddr,
    /// `tls`: the relay's server certificate and the CA its clients' certificates chain to.
    pub tls: TlsConfig,
    /// `upstream`: the Kubernetes API server and the relay's own credential for it.
    pub upstream: UpstreamConfig,
    /// `oidc`: how bearer tokens are verified and turned into a user name and groups.
    pub oidc: OidcConfig,
    /// `impersonation` (default true): send `Impersonate-User`/`-Group` upstream so cluster RBAC
    /// and the cluster's audit log see the person. When false the cluster sees only the relay.
    pub impersonation: bool,
    /// `access`: who may use the relay at all, until the policy engine exists.
    pub access: AccessConfig,
    /// `limits`: request size limits.
    pub limits: Limits,
    /// `enrollment` (optional): sign client certificates at login with the `tls.client_ca` key.
    pub enrollment: Option<EnrollmentConfig>,
    /// `policy` (optional): the rules of the policy engine, checked by compiling them.
    pub policy: Option<PolicyConfig>,
    /// `review` (optional; its defaults apply when the policy has `review` rules): how held
    /// requests wait, how long approvals last, where reviews are stored. `None` when there is
    /// neither the section nor a review rule.
    pub review: Option<ReviewConfig>,
    /// `mask_profiles` (optional): named masking profiles, attached to requests by the `mask`
    /// of policy rules. Every name a rule uses must be defined here.
    pub mask_profiles: crate::mask::MaskProfiles,
    /// `records` (optional section; recording is always on): the records store, retention,
    /// export and auditors.
    pub records: RecordsConfig,
    /// `agents` (optional): agent sessions, their signing key, lifetime, admins and limits.
    /// `None` = agent sessions are off.
    pub agents: Option<AgentsConfig>,
}

/// `tls:` — PEM files, relative paths taken from the config file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `cert`: the relay's server certificate chain (PEM).
    pub cert: PathBuf,
    /// `key`: its private key (PEM).
    pub key: PathBuf,
    /// `client_ca`: client certificates must chain to this CA (PEM).
    pub client_ca: PathBuf,
}

/// `upstream:` — the Kubernetes API server and the relay's credential for it.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The API server URL, `https://host:port`. For `kubeconfig`
    /// and `in_cluster` this is what the kubeconfig or the environment said at load time.
    pub server: String,
    /// `ca`: the CA for the API server's certificate (PEM); `None` means the system roots (or, for
    /// `kubeconfig` and `in_cluster`, whatever [`RelayConfig::resolve_upstream`] finds).
    pub ca: Option<PathBuf>,
    /// Exactly one credential.
    pub credential: UpstreamCredential,
}

/// The relay's own, static credential for the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamCredential {
    /// `token_file`: a bearer token, re-read by the relay so it can be rotated.
    TokenFile(PathBuf),
    /// `client_cert` + `client_key`: a client certificate and its key (PEM).
    ClientCert { cert: PathBuf, key: PathBuf },
    /// `kubeconfig` (+ `context`, default the current context).
    Kubeconfig { path: PathBuf, context: Option<String> },
    /// `in_cluster: true`: the pod's service account token and CA ([`SERVICE_ACCOUNT_DIR`]) and
    /// `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`.
    InCluster,
}

/// `oidc:` — bearer token verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// `issuer`: must equal the tokens' `iss` exactly; discovery is read from
    /// `{issuer}/.well-known/openid-configuration`. https, or http on loopback only (tests, demo).
    pub issuer: String,
    /// `audiences`: a token's `aud` must contain at least one of these. At least one is required.
    pub audiences: Vec<String>,
    /// `username_claim` (default `sub`): the claim that names the user.
    #[serde(default = "default_username_claim")] pub username_claim: String,
    /// `username_prefix` (default empty): prepended to the user name; must not start with `system:`.
    #[serde(default)] pub username_prefix: String,
    /// `groups_claim` (default `groups`): the claim that lists the user's groups.
    #[serde(default = "default_groups_claim")] pub groups_claim: String,
    /// `groups_prefix` (default empty): prepended to every group; must not start with `system:`.
    #[serde(default)] pub groups_prefix: String,
    /// `algorithms` (default `[RS256, ES256]`): the signature algorithms accepted. `none` and
    /// HMAC (`HS*`) are never allowed.
    #[serde(default = "default_algorithms", deserialize_with = "de_algorithms")] pub algorithms: Vec<Algorithm>,
    /// `leeway_seconds` (default 30, at most 300): clock skew allowed for `exp`/`nbf`/`iat`.
    #[serde(default = "default_leeway")] pub leeway_seconds: u64,
    /// `ca`: a CA (PEM) for the issuer's TLS certificate; default the system roots.
    #[serde(default)] pub ca: Option<PathBuf>,
}

/// `access:` — a minimal allow list: a request is let through if its user is listed in
/// `subjects` or one of its groups in `groups` (names as the relay sees them, prefixes applied).
/// Both empty (the default) means every request is denied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// `subjects`: allowed user names.
    #[serde(default)] pub subjects: Vec<String>,
    /// `groups`: allowed groups.
    #[serde(default)] pub groups: Vec<String>,
}

/// `limits:` — request size limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `max_header_bytes` (default 65536, 4 KiB–1 MiB): larger request headers get 431.
    pub max_header_bytes: usize,
    /// `max_body_bytes` (default 3145728, 1 KiB–64 MiB): larger request bodies get 413.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_header_bytes: DEFAULT_MAX_HEADER_BYTES, max_body_bytes: DEFAULT_MAX_BODY_BYTES }
    }
}

fn default_username_claim() -> String { "sub".into() }
fn default_groups_claim() -> String { "groups".into() }
fn default_algorithms() -> Vec<Algorithm> { vec![Algorithm::RS256, Algorithm::ES256] }
fn default_leeway() -> u64 { 30 }
fn default_true() -> bool { true }

/// Algorithm names in the config are parsed by [`Algorithm`]'s `FromStr`, which explains why
/// `none` and HMAC are never allowed.
pub use super::oidc::Algorithm;

/// One algorithm name, parsed element by element so an error names its index.
struct AlgName(Algorithm);

impl<'de> Deserialize<'de> for AlgName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map(AlgName).map_err(D::Error::custom)
    }
}

fn de_algorithms<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Algorithm>, D::Error> {
    Ok(Vec::<AlgName>::deserialize(d)?.into_iter().map(|a| a.0).collect())
}

fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        D::Error::custom(format!("{s:?} is not IP:PORT (e.g. 0.0.0.0:8443, or \"[::]:8443\" quoted; host names are not accepted)"))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(deserialize_with = "de_listen")] listen: SocketAddr,
    tls: TlsConfig,
    upstream: RawUpstream,
    oidc: OidcConfig,
    #[serde(default = "default_true")] impersonation: bool,
    #[serde(default)] access: AccessConfig,
    #[serde(default)] limits: Limits,
    #[serde(default)] enrollment: Option<enrollment::RawEnrollment>,
    #[serde(default)] policy: Option<PolicyConfig>,
    #[serde(default)] review: Option<review::RawReview>,
    #[serde(default)] mask_profiles: Option<crate::mask::MaskProfilesConfig>,
    #[serde(default)] records: Option<records::RawRecords>,
    #[serde(default)] agents: Option<agents::RawAgents>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    server: Option<String>,
    ca: Option<PathBuf>,
    token_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    #[serde(default)] in_cluster: bool,
}

/// Bytes the relay reads when it connects: inline (from a kubeconfig's `*-data` or `token`) or a
/// file, re-read each time so rotated tokens and certificates are picked up. `Debug` shows no
/// content.
#[derive(Clone, PartialEq, Eq)]
pub enum Material {
    /// Inline bytes (already base64-decoded).
    Inline(Vec<u8>),
    /// An absolute path.
    File(PathBuf),
}

impl Material {
    /// The bytes (PEM for certificates and keys).
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Inline(b) => Ok(b.clone()),
            Self::File(p) => std::fs::read(p),
        }
    }
    /// A bearer token: the bytes without surrounding whitespace, which must be visible ASCII.
    pub fn read_token(&self) -> std::io::Result<String> {
        let bytes = self.read()?;
        let token = String::from_utf8_lossy(&bytes).trim().to_string();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the token is empty or not visible ASCII"));
        }
        Ok(token)
    }
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(b) => write!(f, "Inline(<{} bytes>)", b.len()),
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// Where and how the relay connects upstream, as found at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUpstream {
    /// `https://host:port`.
    pub server: String,
    /// The CA (PEM) for the server's certificate; `None` means the system roots.
    pub ca: Option<Material>,
    /// The name to verify the server certificate against, when not the URL's host.
    pub tls_server_name: Option<String>,
    /// The relay's credential.
    pub credential: ResolvedCredential,
}

/// A kubeconfig context resolved to server, CA and credential.
pub type ResolvedKubeconfig = ResolvedUpstream;

/// The relay's credential, ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedCredential {
    /// A bearer token (see [`Material::read_token`]).
    Token(Material),
    /// A client certificate chain and its private key (PEM).
    ClientCert { cert: Material, key: Material },
}

impl RelayConfig {
    /// Read, parse and validate a config file: at most [`MAX_FILE_BYTES`], no unknown or duplicate
    /// keys, referenced files present and readable (none is parsed), exactly one upstream
    /// credential (a kubeconfig is resolved to check it), https URLs, a safe algorithm list, numbers
    /// in range. Relative paths are taken from the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = read_capped(path, &file)?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Self::from_str(&text, base, &file)
    }

    /// [`load`](Self::load) for text already read: `base_dir` anchors relative paths and
    /// `file_label` starts every message.
    pub fn from_str(text: &str, base_dir: &Path, file_label: &str) -> Result<Self, ConfigError> {
        Self::parse(text, base_dir, file_label, &|k| std::env::var(k).ok(), Path::new(SERVICE_ACCOUNT_DIR))
    }

    fn parse(text: &str, base_dir: &Path, file: &str, env: &dyn Fn(&str) -> Option<String>, sa_dir: &Path) -> Result<Self, ConfigError> {
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge { file: file.into(), limit: MAX_FILE_BYTES });
        }
        let raw: RawConfig = parse_yaml(text, file)?;
        let base = std::path::absolute(base_dir).map_err(|source| ConfigError::Read { file: file.into(), source })?;
        let cx = Cx { file, base: &base };
        let tls = TlsConfig {
            cert: cx.path("tls.cert", &raw.tls.cert)?,
            key: cx.path("tls.key", &raw.tls.key)?,
            client_ca: cx.path("tls.client_ca", &raw.tls.client_ca)?,
        };
        let upstream = cx.upstream(raw.upstream, env, sa_dir)?;
        let oidc = cx.oidc(raw.oidc)?;
        for (list, name) in [(&raw.access.subjects, "access.subjects"), (&raw.access.groups, "access.groups")] {
            if let Some(i) = list.iter().position(|s| s.trim().is_empty()) {
                return Err(cx.invalid(format!("{name}[{i}]"), "is empty"));
            }
        }
        let l = &raw.limits;
        if !(HEADER_RANGE.0..=HEADER_RANGE.1).contains(&l.max_header_bytes) {
            return Err(cx.invalid("limits.max_header_bytes", format!("{} is out of range; allowed {}–{}", l.max_header_bytes, HEADER_RANGE.0, HEADER_RANGE.1)));
        }
        if !(BODY_RANGE.0..=BODY_RANGE.1).contains(&l.max_body_bytes) {
            return Err(cx.invalid("limits.max_body_bytes", format!("{} is out of range; allowed {}–{}", l.max_body_bytes, BODY_RANGE.0, BODY_RANGE.1)));
        }
        let enrollment = raw.enrollment.map(|e| cx.enrollment(e)).transpose()?;
        let policy = raw.policy.map(|p| p.validate(file)).transpose()?;
        let review = match raw.review {
            Some(r) => Some(cx.review(r)?),
            None if policy.as_ref().is_some_and(|p| p.counts().2 > 0) => Some(cx.review_defaults()?),
            None => None,
        };
        let mask_profiles = match &raw.mask_profiles {
            Some(m) => crate::mask::MaskProfiles::compile(m).map_err(|e| {
                let key = if e.field.is_empty() { format!("mask_profiles.{}", e.profile) } else { format!("mask_profiles.{}.{}", e.profile, e.field) };
                cx.invalid(key, e.message.clone())
            })?,
            None => crate::mask::MaskProfiles::default(),
        };
        if let Some(p) = &policy {
            for (i, rule) in p.rules.iter().enumerate() {
                if let Some(m) = rule.mask.as_deref().filter(|m| mask_profiles.get(m).is_none()) {
                    let known: Vec<&str> = mask_profiles.names().collect();
                    let known = if known.is_empty() { "there is no mask_profiles section".to_string() } else { format!("defined: {}", known.join(", ")) };
                    return Err(cx.invalid(format!("policy.rules[{i}].mask"), format!("no mask profile {m:?} ({known})")));
                }
            }
        }
        let records = cx.records(raw.records.unwrap_or_default())?;
        let agents = raw.agents.map(|a| cx.agents(a)).transpose()?;
        Ok(RelayConfig { source: file.into(), listen: raw.listen, tls, upstream, oidc, impersonation: raw.impersonation, access: raw.access, limits: raw.limits, enrollment, policy, review, mask_profiles, records, agents })
    }

    /// Resolve the upstream credential now (re-reading a kubeconfig or the service-account
    /// environment). Call it when connecting; token files are re-read through [`Material`].
    pub fn resolve_upstream(&self) -> Result<ResolvedUpstream, ConfigError> {
        let u = &self.upstream;
        let ca = u.ca.clone().map(Material::File);
        let file = self.source.as_str();
        match &u.credential {
            UpstreamCredential::TokenFile(p) => {
                check_file(file, "upstream.token_file", p)?;
                Ok(ResolvedUpstream { server: u.server.clone(), ca, tls_server_name: None, credential: ResolvedCredential::Token(Material::File(p.clone())) })
            }
            UpstreamCredential::ClientCert { cert, key } => {
                check_file(file, "upstream.client_cert", cert)?;
                check_file(file, "upstream.client_key", key)?;
                let credential = ResolvedCredential::ClientCert { cert: Material::File(cert.clone()), key: Material::File(key.clone()) };
                Ok(ResolvedUpstream { server: u.server.clone(), ca, tls_server_name: None, credential })
            }
            UpstreamCredential::Kubeconfig { path, context } => resolve_kubeconfig(path, context.as_deref())
                .map_err(|e| ConfigError::Kubeconfig { file: file.into(), key: "upstream.kubeconfig".into(), source: Box::new(e) }),
            UpstreamCredential::InCluster => in_cluster(file, &|k| std::env::var(k).ok(), Path::new(SERVICE_ACCOUNT_DIR)),
        }
    }

    /// A short human summary for `relay check`: no secrets, paths only.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let p = |p: &Path| p.display().to_string();
        let u = &self.upstream;
        let cred = match &u.credential {
            UpstreamCredential::TokenFile(f) => format!("token file {}", p(f)),
            UpstreamCredential::ClientCert { cert, key } => format!("client certificate {} (key {})", p(cert), p(key)),
            UpstreamCredential::Kubeconfig { path, context } => {
                format!("kubeconfig {} (context {})", p(path), context.as_deref().unwrap_or("<current-context>"))
            }
            UpstreamCredential::InCluster => format!("in-cluster service account ({SERVICE_ACCOUNT_DIR})"),
        };
        let ca = u.ca.as_deref().map(p).unwrap_or_else(|| match u.credential {
            UpstreamCredential::Kubeconfig { .. } => "from the kubeconfig".into(),
            UpstreamCredential::InCluster => "service account ca.crt".into(),
            _ => "system roots".into(),
        });
        let o = &self.oidc;
        let algs = o.algorithms.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
        let (ns, ng) = (self.access.subjects.len(), self.access.groups.len());
        let _ = writeln!(s, "config:        {}", self.source);
        let _ = writeln!(s, "listen:        {} (TLS 1.3 only; client certificate required except for enrollment)", self.listen);
        let _ = writeln!(s, "tls:           cert {}, key {}, client CA {}", p(&self.tls.cert), p(&self.tls.key), p(&self.tls.client_ca));
        let _ = writeln!(s, "upstream:      {} via {cred}; CA: {ca}", u.server);
        let _ = writeln!(s, "oidc issuer:   {}{}", o.issuer, o.ca.as_deref().map(|c| format!(" (CA {})", p(c))).unwrap_or_default());
        let _ = writeln!(s, "audiences:     {}", o.audiences.join(", "));
        let _ = writeln!(s, "identity:      user from claim {:?} (prefix {:?}), groups from claim {:?} (prefix {:?})", o.username_claim, o.username_prefix, o.groups_claim, o.groups_prefix);
        let _ = writeln!(s, "algorithms:    {algs}; leeway {}s", o.leeway_seconds);
        let imp = if self.impersonation { "on (the cluster sees the person)" } else { "OFF (the cluster sees only the relay's identity)" };
        let _ = writeln!(s, "impersonation: {imp}");
        let access = if ns + ng == 0 { "empty: every request will be denied".to_string() } else { format!("{ns} subject(s), {ng} group(s)") };
        let _ = writeln!(s, "access:        {access}");
        let enroll = match &self.enrollment {
            Some(e) => format!("on: POST /hoop-kube/v1/enroll signs with the tls.client_ca key {}, certificates up to {} h", p(&e.ca_key), e.max_certificate_hours),
            None => "off (POST /hoop-kube/v1/enroll answers 404; set enrollment.ca_key to turn it on)".into(),
        };
        let _ = writeln!(s, "enrollment:    {enroll}");
        let policy = match &self.policy {
            Some(p) if p.rules.is_empty() => "no rules: every request will be denied".to_string(),
            Some(p) => {
                let (a, d, r) = p.counts();
                format!("{} rule(s): {a} allow, {d} deny, {r} review (CEL compiled; test with `hoop-kube policy test`)", p.rules.len())
            }
            None => "none (the access list decides)".into(),
        };
        let _ = writeln!(s, "policy:        {policy}");
        if let Some(r) = &self.review {
            let hook = r.webhook.as_deref().map(|w| format!("; webhook {w}")).unwrap_or_default();
            let _ = writeln!(s, "review:        hold {}s, approvals usable {}s, store {}{hook}", r.hold_seconds, r.ttl_seconds, p(&r.store));
        }
        if let Some(a) = &self.agents {
            let admins = if a.admins.is_empty() { "none".to_string() } else { a.admins.join(", ") };
            let _ = writeln!(s, "agents:        on: sessions up to {} min, store {}, signing key {}, {} limit rule(s), admins {admins}", a.max_ttl_minutes, p(&a.store), p(&a.signing_key), a.limits.len());
        }
        let _ = write!(s, "limits:        headers {}, body {}", bytes(self.limits.max_header_bytes), bytes(self.limits.max_body_bytes));
        s
    }
}

fn bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// Validation context: the file label and the directory relative paths are taken from.
struct Cx<'a> {
    file: &'a str,
    base: &'a Path,
}

impl Cx<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { file: self.file.into(), key: key.into(), message: message.into() }
    }

    /// Make `p` absolute and check that it is a readable, non-empty file.
    fn path(&self, key: &str, p: &Path) -> Result<PathBuf, ConfigError> {
        if p.as_os_str().is_empty() {
            return Err(self.invalid(key, "is empty; name a file"));
        }
        let abs = self.base.join(p);
        check_file(self.file, key, &abs)?;
        Ok(abs)
    }

    fn upstream(&self, u: RawUpstream, env: &dyn Fn(&str) -> Option<String>, sa_dir: &Path) -> Result<UpstreamConfig, ConfigError> {
        let set: Vec<&str> = [
            (u.token_file.is_some(), "token_file"),
            (u.client_cert.is_some() || u.client_key.is_some(), "client_cert"),
            (u.kubeconfig.is_some(), "kubeconfig"),
            (u.in_cluster, "in_cluster"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        match set.as_slice() {
            [] => return Err(self.invalid("upstream", "no credential; set exactly one of token_file, client_cert + client_key, kubeconfig, in_cluster: true")),
            [_] => {}
            many => return Err(self.invalid("upstream", format!("{} are all set; set exactly one credential", many.join(" and ")))),
        }
        if u.context.is_some() && u.kubeconfig.is_none() {
            return Err(self.invalid("upstream.context", "only applies with upstream.kubeconfig"));
        }
        let credential = match (u.token_file, u.client_cert, u.client_key, u.kubeconfig) {
            (Some(t), ..) => UpstreamCredential::TokenFile(self.path("upstream.token_file", &t)?),
            (_, Some(cert), Some(key), _) => UpstreamCredential::ClientCert { cert: self.path("upstream.client_cert", &cert)?, key: self.path("upstream.client_key", &key)? },
            (_, Some(_), None, _) => return Err(self.invalid("upstream.client_key", "is required with upstream.client_cert")),
            (_, None, Some(_), _) => return Err(self.invalid("upstream.client_cert", "is required with upstream.client_key")),
            (_, _, _, Some(k)) => {
                let path = self.path("upstream.kubeconfig", &k)?;
                if u.context.as_deref().is_some_and(|c| c.trim().is_empty()) {
                    return Err(self.invalid("upstream.context", "is empty; remove it to use the kubeconfig's current-context"));
                }
                UpstreamCredential::Kubeconfig { path, context: u.context }
            }
            _ => UpstreamCredential::InCluster,
        };
        let derived = match &credential {
            UpstreamCredential::Kubeconfig { .. } => Some("the kubeconfig's cluster names the server and its CA"),
            UpstreamCredential::InCluster => Some("the pod's environment and service account name the server and its CA"),
            _ => None,
        };
        if let Some(why) = derived {
            for (on, key) in [(u.server.is_some(), "upstream.server"), (u.ca.is_some(), "upstream.ca")] {
                if on {
                    return Err(self.invalid(key, format!("is not allowed with this credential: {why}")));
                }
            }
        }
        let ca = u.ca.map(|c| self.path("upstream.ca", &c)).transpose()?;
        let server = match &credential {
            UpstreamCredential::Kubeconfig { path, context } => {
                resolve_kubeconfig(path, context.as_deref())
                    .map_err(|e| ConfigError::Kubeconfig { file: self.file.into(), key: "upstream.kubeconfig".into(), source: Box::new(e) })?
                    .server
            }
            UpstreamCredential::InCluster => in_cluster(self.file, env, sa_dir)?.server,
            _ => {
                let s = u.server.ok_or_else(|| self.invalid("upstream.server", "is required with this credential (e.g. https://10.0.0.1:6443)"))?;
                server_url(self.file, "upstream.server", &s)?
            }
        };
        Ok(UpstreamConfig { server, ca, credential })
    }

    fn oidc(&self, mut o: OidcConfig) -> Result<OidcConfig, ConfigError> {
        let url = parse_url(self.file, "oidc.issuer", &o.issuer)?;
        if url.scheme() == "http" && !is_loopback(&url) {
            return Err(self.invalid("oidc.issuer", format!("{:?}: http is only allowed on 127.0.0.1, ::1 or localhost (tests, demo); use https", o.issuer)));
        }
        if o.audiences.is_empty() {
            return Err(self.invalid("oidc.audiences", "at least one audience is required"));
        }
        if let Some(i) = o.audiences.iter().position(|a| a.trim().is_empty()) {
            return Err(self.invalid(format!("oidc.audiences[{i}]"), "is empty"));
        }
        for (v, key) in [(&o.username_claim, "oidc.username_claim"), (&o.groups_claim, "oidc.groups_claim")] {
            if v.trim().is_empty() {
                return Err(self.invalid(key, "is empty; name a claim"));
            }
        }
        for (v, key) in [(&o.username_prefix, "oidc.username_prefix"), (&o.groups_prefix, "oidc.groups_prefix")] {
            if v.starts_with("system:") {
                return Err(self.invalid(key, format!("{v:?} must not start with \"system:\"; Kubernetes reserves those names")));
            }
        }
        if o.algorithms.is_empty() {
            return Err(self.invalid("oidc.algorithms", "at least one algorithm is required (default: [RS256, ES256])"));
        }
        for (i, a) in o.algorithms.iter().enumerate() {
            if o.algorithms[..i].contains(a) {
                return Err(self.invalid(format!("oidc.algorithms[{i}]"), format!("{a} is listed twice")));
            }
        }
        if o.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(self.invalid("oidc.leeway_seconds", format!("{} is too large; at most {MAX_LEEWAY_SECONDS}", o.leeway_seconds)));
        }
        o.ca = o.ca.map(|c| self.path("oidc.ca", &c)).transpose()?;
        Ok(o)
    }
}

/// Check that `path` is a readable, non-empty regular file (its contents are not read).
pub(super) fn check_file(file: &str, key: &str, path: &Path) -> Result<(), ConfigError> {
    let err = |source| ConfigError::File { file: file.into(), key: key.into(), path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(err)?;
    let invalid = |m: &str| ConfigError::Invalid { file: file.into(), key: key.into(), message: format!("{} {m}", path.display()) };
    if !meta.is_file() {
        return Err(invalid("is not a regular file"));
    }
    if meta.len() == 0 {
        return Err(invalid("is empty"));
    }
    std::fs::File::open(path).map_err(err)?;
    Ok(())
}

fn parse_url(file: &str, key: &str, s: &str) -> Result<url::Url, ConfigError> {
    let invalid = |m: String| ConfigError::Invalid { file: file.into(), key: key.into(), message: m };
    let url = url::Url::parse(s).map_err(|e| invalid(format!("{s:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid(format!("{s:?}: the scheme must be https")));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!("{s:?}: no user name, password, query or fragment allowed")));
    }
    Ok(url)
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Validate an API server URL: `https://host[:port]`, no path (the relay forwards the client's
/// path as it is). Returns it with the port explicit.
pub(super) fn server_url(file: &str, key: &str, s: &str) -> Result<String, ConfigError> {
    let url = parse_url(file, key, s)?;
    let invalid = |m: String| ConfigError::Invalid { file: file.into(), key: key.into(), message: m };
    if url.scheme() != "https" {
        return Err(invalid(format!("{s:?}: must be https (the relay sends its credential there)")));
    }
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Err(invalid(format!("{s:?}: names no host")));
    };
    let raw_path = s.split_once("://").and_then(|(_, rest)| rest.find(['/', '\\']).map(|i| &rest[i..])).unwrap_or("");
    if !matches!(raw_path, "" | "/") {
        return Err(invalid(format!("{s:?}: a path is not supported; write https://HOST[:PORT]")));
    }
    Ok(format!("https://{host}:{port}"))
}

pub use super::kubeconfig::resolve_kubeconfig;
use super::kubeconfig::in_cluster;
