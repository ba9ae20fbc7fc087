//! `enrollment:` in relay.yaml — the relay signs client certificates at login.
//!
//! ```yaml
//! enrollment:
//!   ca_key: ca.key            # private key of tls.client_ca; relative to the config file
//!   max_certificate_hours: 12 # 1..=168, default 12
//! ```
//!
//! Without the section `POST /hoop-kube/v1/enroll` answers 404 and users need certificates made
//! some other way. Like the rest of the config, this only checks that the key file exists and is
//! readable; the relay parses it at boot and checks that it is the key of `tls.client_ca`.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Cx};

/// The longest `max_certificate_hours` (one week).
pub const MAX_CERTIFICATE_HOURS: u32 = 168;
/// The default `max_certificate_hours`.
pub const DEFAULT_CERTIFICATE_HOURS: u32 = 12;

/// `enrollment:` — validated, the key path absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentConfig {
    /// `ca_key`: the private key (PEM) of the CA in `tls.client_ca` (its first certificate).
    pub ca_key: PathBuf,
    /// `max_certificate_hours` (default 12, 1–168): the longest client certificate issued.
    pub max_certificate_hours: u32,
}

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnrollment {
    ca_key: PathBuf,
    #[serde(default = "default_hours")]
    max_certificate_hours: u32,
}

fn default_hours() -> u32 {
    DEFAULT_CERTIFICATE_HOURS
}

impl Cx<'_> {
    pub(super) fn enrollment(&self, raw: RawEnrollment) -> Result<EnrollmentConfig, ConfigError> {
        let h = raw.max_certificate_hours;
        if !(1..=MAX_CERTIFICATE_HOURS).contains(&h) {
            return Err(self.invalid("enrollment.max_certificate_hours", format!("{h} is out of range; allowed 1–{MAX_CERTIFICATE_HOURS} (hours)")));
        }
        Ok(EnrollmentConfig { ca_key: self.path("enrollment.ca_key", &raw.ca_key)?, max_certificate_hours: h })
    }
}

impl EnrollmentConfig {
    /// The longest lifetime, as a duration.
    pub fn max_lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.max_certificate_hours) * 3600)
    }
}
