//! The `client.authentication.k8s.io` ExecCredential wire format of `hoop-kube credential`, the
//! kubectl exec plugin: what kubectl hands the plugin in `KUBERNETES_EXEC_INFO`, and the one JSON
//! object the plugin prints on stdout. Pure: no I/O, no clock, no environment access (the caller
//! reads the variable and the time and passes them in).
//!
//! # What it trusts, what it rejects
//!
//! `KUBERNETES_EXEC_INFO` is written by kubectl (client-go `plugin/pkg/client/auth/exec`, see
//! `k8s-wire.md` §6). It is parsed completely before anything acts on it:
//!
//! * absent or empty → [`ExecInfo::default`]: `client.authentication.k8s.io/v1`, not
//!   interactive, no cluster (a human running `hoop-kube credential` by hand, or a kubectl that
//!   predates the variable);
//! * larger than [`MAX_EXEC_INFO_LEN`], not UTF-8, not JSON, a `kind` other than
//!   `ExecCredential`, a field of the wrong type, or base64 that does not decode → a one-line
//!   [`ExecInfoError`];
//! * an `apiVersion` other than [`ApiVersion::V1`] and [`ApiVersion::V1beta1`] (`v1alpha1` left
//!   Kubernetes in 1.24) → [`ExecInfoError::UnsupportedVersion`], naming the supported ones;
//! * unknown fields anywhere are ignored (newer kubectl versions add some).
//!
//! # What it prints
//!
//! [`ExecCredentialOut::render`] answers in the apiVersion kubectl asked in (client-go refuses an
//! answer in another one):
//!
//! ```json
//! {"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
//!  "status":{"token":"…","expirationTimestamp":"2026-01-01T00:00:00Z"}}
//! ```
//!
//! `expirationTimestamp` is the token's expiry minus a safety margin ([`DEFAULT_MARGIN`]). kubectl
//! caches the credential in memory until that instant and then runs the plugin again. On a 401 it
//! re-runs the plugin but does **not** retry the failed request, so a token that expires while a
//! request is in flight fails that `kubectl` command. [`ExecCredentialOut::new`] therefore refuses
//! a token whose remaining lifetime is within the margin: it is never handed out, and the caller
//! refreshes instead.

use std::ffi::OsStr;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environment variable kubectl sets for exec plugins.
pub const ENV_VAR: &str = "KUBERNETES_EXEC_INFO";

/// The largest `KUBERNETES_EXEC_INFO` accepted, in bytes. Linux caps one environment string at
/// 128 KiB (`MAX_ARG_STRLEN`), so anything larger did not come from kubectl.
pub const MAX_EXEC_INFO_LEN: usize = 256 * 1024;

/// How long before the token's own expiry kubectl is told it expires: a request sent just before
/// `expirationTimestamp` still reaches the relay with this much validity left (minus clock skew).
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(60);

const V1: &str = "client.authentication.k8s.io/v1";
const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
const KIND: &str = "ExecCredential";

/// The ExecCredential versions hoop-kube speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ApiVersion {
    /// `client.authentication.k8s.io/v1` (kubectl ≥ 1.22; `interactiveMode` is mandatory in the
    /// kubeconfig).
    #[default]
    V1,
    /// `client.authentication.k8s.io/v1beta1`.
    V1beta1,
}

impl ApiVersion {
    /// The `apiVersion` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => V1,
            ApiVersion::V1beta1 => V1BETA1,
        }
    }

    /// Parses an `apiVersion` string (exact match).
    pub fn parse(s: &str) -> Result<Self, ExecInfoError> {
        match s {
            V1 => Ok(ApiVersion::V1),
            V1BETA1 => Ok(ApiVersion::V1beta1),
            other => Err(ExecInfoError::UnsupportedVersion(clip(other))),
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kubectl told the plugin (`KUBERNETES_EXEC_INFO`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecInfo {
    /// The version to answer in.
    pub api_version: ApiVersion,
    /// `spec.interactive`: kubectl passed its stdin, a terminal, to the plugin. When false the
    /// plugin must never prompt or open a browser.
    pub interactive: bool,
    /// `spec.cluster`, present when the kubeconfig sets `provideClusterInfo: true`.
    pub cluster: Option<ClusterInfo>,
}

/// `spec.cluster`: the cluster kubectl is about to talk to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterInfo {
    /// `server`: the API server URL from the kubeconfig.
    pub server: String,
    /// `certificate-authority-data`, base64-decoded (PEM bytes); `None` when absent or empty.
    pub certificate_authority_data: Option<Vec<u8>>,
    /// `tls-server-name`.
    pub tls_server_name: Option<String>,
    /// `insecure-skip-tls-verify`.
    pub insecure_skip_tls_verify: bool,
    /// `proxy-url`.
    pub proxy_url: Option<String>,
    /// `disable-compression`.
    pub disable_compression: bool,
    /// `config`: the kubeconfig cluster extension named `client.authentication.k8s.io/exec`,
    /// verbatim; `Value::Null` when absent.
    pub config: Value,
}

/// Why `KUBERNETES_EXEC_INFO` was refused. Every message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecInfoError {
    /// Larger than [`MAX_EXEC_INFO_LEN`].
    #[error("KUBERNETES_EXEC_INFO is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid UTF-8.
    #[error("KUBERNETES_EXEC_INFO is not valid UTF-8")]
    NotUtf8,
    /// Not JSON, or a field has the wrong type or value.
    #[error("KUBERNETES_EXEC_INFO is not a valid ExecCredential: {0}")]
    Malformed(String),
    /// `kind` is not `ExecCredential`.
    #[error("KUBERNETES_EXEC_INFO has kind {0:?}; expected \"ExecCredential\"")]
    WrongKind(String),
    /// An `apiVersion` hoop-kube does not speak.
    #[error(
        "KUBERNETES_EXEC_INFO asks for apiVersion {0:?}; hoop-kube supports \
         client.authentication.k8s.io/v1 and client.authentication.k8s.io/v1beta1 \
         (set exec.apiVersion in the kubeconfig to one of them)"
    )]
    UnsupportedVersion(String),
}

/// The wire shape of `KUBERNETES_EXEC_INFO` (unknown fields ignored).
#[derive(Deserialize)]
struct WireInfo {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    spec: WireSpec,
}

#[derive(Deserialize, Default)]
struct WireSpec {
    #[serde(default)]
    cluster: Option<WireCluster>,
    #[serde(default)]
    interactive: Option<bool>,
}

#[derive(Deserialize)]
struct WireCluster {
    #[serde(default)]
    server: Option<String>,
    #[serde(default, rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
    #[serde(default, rename = "tls-server-name")]
    tls_server_name: Option<String>,
    #[serde(default, rename = "insecure-skip-tls-verify")]
    insecure_skip_tls_verify: Option<bool>,
    #[serde(default, rename = "proxy-url")]
    proxy_url: Option<String>,
    #[serde(default, rename = "disable-compression")]
    disable_compression: Option<bool>,
    #[serde(default)]
    config: Value,
}

impl ExecInfo {
    /// Parses the value of `KUBERNETES_EXEC_INFO` as the process environment has it (`None` when
    /// the variable is not set).
    pub fn parse_os(raw: Option<&OsStr>) -> Result<Self, ExecInfoError> {
        match raw {
            None => Ok(ExecInfo::default()),
            Some(raw) => {
                if raw.len() > MAX_EXEC_INFO_LEN {
                    return Err(ExecInfoError::TooLarge {
                        len: raw.len(),
                        max: MAX_EXEC_INFO_LEN,
                    });
                }
                ExecInfo::parse(Some(raw.to_str().ok_or(ExecInfoError::NotUtf8)?))
            }
        }
    }

    /// Parses the value of `KUBERNETES_EXEC_INFO`. `None`, empty or all-whitespace means the
    /// variable is not there: v1, not interactive, no cluster.
    pub fn parse(raw: Option<&str>) -> Result<Self, ExecInfoError> {
        let raw = match raw {
            None => return Ok(ExecInfo::default()),
            Some(r) if r.trim().is_empty() => return Ok(ExecInfo::default()),
            Some(r) => r,
        };
        if raw.len() > MAX_EXEC_INFO_LEN {
            return Err(ExecInfoError::TooLarge {
                len: raw.len(),
                max: MAX_EXEC_INFO_LEN,
            });
        }
        if !raw.trim_start().starts_with('{') {
            return Err(ExecInfoError::Malformed("it is not a JSON object".into()));
        }
        let de = &mut serde_json::Deserializer::from_str(raw);
        let wire: WireInfo = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ExecInfoError::Malformed(one_line(&if path == "." || path.is_empty() {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            }))
        })?;
        de.end()
            .map_err(|e| ExecInfoError::Malformed(one_line(&e.to_string())))?;
        if let Some(kind) = &wire.kind {
            if kind != KIND {
                return Err(ExecInfoError::WrongKind(clip(kind)));
            }
        }
        let api_version = match &wire.api_version {
            Some(v) => ApiVersion::parse(v)?,
            None => return Err(ExecInfoError::Malformed("it has no apiVersion".to_string())),
        };
        let cluster = match wire.spec.cluster {
            None => None,
            Some(c) => {
                let ca = match c.certificate_authority_data.as_deref() {
                    None | Some("") => None,
                    Some(b64) => Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .map_err(|e| {
                                ExecInfoError::Malformed(format!(
                                    "spec.cluster.certificate-authority-data is not base64 ({e})"
                                ))
                            })?,
                    ),
                };
                Some(ClusterInfo {
                    server: c.server.unwrap_or_default(),
                    certificate_authority_data: ca,
                    tls_server_name: c.tls_server_name.filter(|s| !s.is_empty()),
                    insecure_skip_tls_verify: c.insecure_skip_tls_verify.unwrap_or(false),
                    proxy_url: c.proxy_url.filter(|s| !s.is_empty()),
                    disable_compression: c.disable_compression.unwrap_or(false),
                    config: c.config,
                })
            }
        };
        Ok(ExecInfo {
            api_version,
            interactive: wire.spec.interactive.unwrap_or(false),
            cluster,
        })
    }
}

/// Why a token cannot be handed to kubectl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token expires within the safety margin ({left_secs} s left, margin {margin_secs} s)")]
pub struct TooCloseToExpiry {
    /// Whole seconds the token has left (negative: expired that long ago).
    pub left_secs: i64,
    /// The margin in seconds.
    pub margin_secs: u64,
}

/// A bearer token that may be handed to kubectl, with the instant kubectl is told it expires.
/// Only [`ExecCredentialOut::new`] makes one, and only for a token that outlives the margin.
#[derive(Clone, PartialEq, Eq)]
pub struct ExecCredentialOut {
    token: String,
    expiration: DateTime<Utc>,
}

impl fmt::Debug for ExecCredentialOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecCredentialOut")
            .field("token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl ExecCredentialOut {
    /// `token` expires at `token_expiry`; at `now`, may it be handed out, and until when?
    ///
    /// The announced expiry is `token_expiry - margin`, truncated to whole seconds (the wire has
    /// second precision). It must lie strictly after `now`; otherwise the token expires within the
    /// margin and is refused ([`TooCloseToExpiry`]), so kubectl never gets a token that could run
    /// out during a request.
    pub fn new(
        token: impl Into<String>,
        token_expiry: DateTime<Utc>,
        now: DateTime<Utc>,
        margin: Duration,
    ) -> Result<Self, TooCloseToExpiry> {
        let margin_secs = margin.as_secs();
        let too_close = || TooCloseToExpiry {
            left_secs: (token_expiry - now).num_seconds(),
            margin_secs,
        };
        let margin = chrono::Duration::from_std(margin).map_err(|_| too_close())?;
        let announced = token_expiry
            .checked_sub_signed(margin)
            .ok_or_else(too_close)?;
        // Second precision, rounded down: never later than the token allows.
        let announced =
            DateTime::<Utc>::from_timestamp(announced.timestamp(), 0).ok_or_else(too_close)?;
        if announced <= now {
            return Err(too_close());
        }
        Ok(ExecCredentialOut {
            token: token.into(),
            expiration: announced,
        })
    }

    /// The `expirationTimestamp` kubectl is given.
    pub fn expiration(&self) -> DateTime<Utc> {
        self.expiration
    }

    /// The token itself.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The ExecCredential JSON (one line, no trailing newline) in `version`: print it, and
    /// nothing else, on stdout.
    pub fn render(&self, version: ApiVersion) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            kind: &'static str,
            status: Status<'a>,
        }
        #[derive(Serialize)]
        struct Status<'a> {
            token: &'a str,
            #[serde(rename = "expirationTimestamp")]
            expiration_timestamp: String,
        }
        serde_json::to_string(&Out {
            api_version: version.as_str(),
            kind: KIND,
            status: Status {
                token: &self.token,
                expiration_timestamp: self.expiration.to_rfc3339_opts(SecondsFormat::Secs, true),
            },
        })
        .expect("an ExecCredential always serializes")
    }
}

/// Longest piece of `KUBERNETES_EXEC_INFO` quoted in a message.
const MAX_QUOTED: usize = 300;

/// One line, no control characters, at most [`MAX_QUOTED`] characters.
fn one_line(s: &str) -> String {
    crate::text::one_line(s, MAX_QUOTED)
}

fn clip(s: &str) -> String {
    crate::text::clip(s, MAX_QUOTED)
}

#[cfg(test)]
#[path = "exec_credential_tests.rs"]
mod tests;
