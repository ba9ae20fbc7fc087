//! `hoop-kube status`: what a profile holds and whether its path to the cluster works.
//!
//! Everything is read locally (store, certificate file, profile) except two quick probes: a
//! loopback `connect` to the forwarder and a TLS handshake with the relay, trusted by the pin,
//! so a broken relay or a rotated relay CA shows up here before kubectl meets it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::client_cert;
use super::enroll;
use super::profile::Profile;
use super::refresh::{self, ID_TOKEN, REFRESH_TOKEN};
use super::store::SecretStore;
use crate::forward::launch;

/// The state of one profile.
#[derive(Debug, Clone)]
pub struct Status {
    pub profile: Profile,
    pub store: String,
    pub subject: Option<String>,
    pub groups: Vec<String>,
    pub token_expiry: Option<DateTime<Utc>>,
    pub refresh_token: bool,
    pub cert_expiry: Option<DateTime<Utc>>,
    pub cert_subject: Option<String>,
    pub forwarder: bool,
    /// `Ok(())` or why the relay handshake failed.
    pub relay: Result<(), String>,
}

/// The claims `status` shows, read from the stored ID token (verified when it was obtained).
fn claims(token: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(&refresh::jwt_payload(token)?).ok()
}

/// Gather the status of `profile`.
pub async fn gather(profile: &Profile) -> Result<Status, String> {
    let store = SecretStore::new(&profile.name, profile.token_store).map_err(|e| e.to_string())?;
    let described = store.describe().await.unwrap_or_else(|e| format!("unavailable: {e}"));
    let id = store.get(ID_TOKEN).await.map_err(|e| format!("cannot read the tokens: {e}"))?.and_then(|b| String::from_utf8(b).ok());
    let refresh_token = store.get(REFRESH_TOKEN).await.map_err(|e| format!("cannot read the tokens: {e}"))?.is_some_and(|b| !b.is_empty());
    let c = id.as_deref().and_then(claims);
    let subject = c.as_ref().and_then(|c| c["sub"].as_str()).map(str::to_string);
    let groups = c.as_ref().and_then(|c| c["groups"].as_array()).map(|g| g.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
    let token_expiry = id.as_deref().and_then(refresh::jwt_claims).map(|c| c.exp);
    let cert = client_cert::cert_path(&profile.name).ok().and_then(|p| client_cert::read_cert(&p));
    let (cert_expiry, cert_subject) = match cert.as_ref().and_then(|(pem, _)| enroll::inspect(pem)) {
        Some((exp, sub)) => (Some(exp), sub),
        None => (None, None),
    };
    let relay = probe_relay(profile).await;
    Ok(Status { profile: profile.clone(), store: described, subject, groups, token_expiry, refresh_token, cert_expiry, cert_subject, forwarder: launch::listening(profile.forward_listen), relay })
}

/// A TLS handshake with the relay, trusted by the profile's pin.
async fn probe_relay(profile: &Profile) -> Result<(), String> {
    let pin = profile.relay_ca_sha256.as_deref().ok_or("no relay_ca_sha256 pin in the profile")?;
    let cfg = crate::relay_trust::client_config(pin, None).map_err(|e| e.to_string())?;
    let url = url::Url::parse(&profile.relay_url).map_err(|e| e.to_string())?;
    let host = url.host_str().ok_or("no host in the relay URL")?.trim_matches(['[', ']']).to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("cannot connect: {e}"))?;
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.map_err(|e| format!("TLS handshake failed: {e}"))?;
        Ok::<(), String>(())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt).await.map_err(|_| "no answer within 5 s".to_string())?
}

fn when(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "none".into(),
        Some(t) if t <= now => format!("expired {} ago ({})", human(now - t), t.format("%Y-%m-%d %H:%M:%S UTC")),
        Some(t) => format!("valid for {} (until {})", human(t - now), t.format("%Y-%m-%d %H:%M:%S UTC")),
    }
}

fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Status {
    /// Whether kubectl can work through this profile right now (or after a silent refresh).
    pub fn healthy(&self) -> bool {
        self.subject.is_some() && self.cert_expiry.is_some_and(|t| t > Utc::now()) && self.relay.is_ok()
    }

    /// The human report.
    pub fn render(&self) -> String {
        let now = Utc::now();
        let p = &self.profile;
        let mut o = String::new();
        let _ = writeln!(o, "profile      {}", p.name);
        let _ = writeln!(o, "subject      {}", self.subject.as_deref().unwrap_or("(not logged in)"));
        if !self.groups.is_empty() {
            let _ = writeln!(o, "groups       {}", self.groups.join(", "));
        }
        let _ = writeln!(o, "issuer       {} (client {})", p.issuer, p.client_id);
        let _ = writeln!(o, "token        {}", when(self.token_expiry, now));
        let _ = writeln!(o, "refresh      {}", if self.refresh_token { "stored" } else { "none (log in again when the token expires)" });
        let cert = when(self.cert_expiry, now);
        let _ = writeln!(o, "certificate  {cert}{}", self.cert_subject.as_deref().map(|s| format!(", subject {s}")).unwrap_or_default());
        let _ = writeln!(o, "secrets      {}", self.store);
        let _ = writeln!(o, "relay        {} — {}", p.relay_url, match &self.relay { Ok(()) => "reachable, pinned CA verified".to_string(), Err(e) => format!("NOT reachable: {e}") });
        let _ = writeln!(o, "forwarder    https://{} — {}", p.forward_listen, if self.forwarder { "running" } else { "not running (kubectl starts it through hoop-kube credential)" });
        o
    }
}
