//! One whole login: device flow with its prompt, tokens stored, key made, certificate enrolled.
//!
//! Used by `hoop-kube login` and by `hoop-kube credential` when kubectl passed a terminal and
//! the session is gone. Everything it says goes to **stderr**: in the plugin, stdout belongs to
//! kubectl and carries only the ExecCredential. The QR code is drawn only when both stdout and
//! stderr are terminals (never into a pipe or a log) and `--no-qr` was not given; the spinner only
//! when stderr is a terminal (otherwise one plain line says what is awaited).

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::client_cert::{self, CertError};
use super::device::{self, DeviceAuthorization, LoginError, Provider, Tokens};
use super::enroll;
use super::exec_credential::{ExecCredentialOut, ExecInfo};
use super::profile::Profile;
use super::refresh::{self, CredentialError, Deps};

/// Why a login failed. One line each.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The device flow failed.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// Store or lock trouble.
    #[error("{}", .0.to_string().trim_start_matches("hoop-kube: "))]
    Credential(#[from] CredentialError),
    /// Enrollment failed.
    #[error("logged in at the identity provider, but {0}")]
    Cert(#[from] CertError),
}

/// How to talk to the human.
#[derive(Debug, Clone, Copy)]
pub struct Prompt {
    /// Draw the QR code (still only on a terminal).
    pub qr: bool,
}

/// What a finished login gives.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub subject: String,
    pub username: String,
    pub groups: Vec<String>,
    pub token_expiry: DateTime<Utc>,
    pub has_refresh_token: bool,
    pub cert_expiry: DateTime<Utc>,
}

/// Run the device flow for `profile`, store the tokens, make a key and enroll it.
pub async fn login(profile: &Profile, deps: &Deps, prompt: Prompt) -> Result<LoggedIn, SessionError> {
    let http = refresh::http_client().map_err(|e| CredentialError::Setup(format!("cannot build the HTTP client: {e}")))?;
    let provider = Provider::discover(&http, &profile.issuer).await?;
    let scopes: Vec<&str> = profile.scopes.iter().map(String::as_str).collect();
    let auth = device::start(&http, &provider, &profile.client_id, &scopes).await?;
    let waiting = show(profile, &auth, prompt);
    let polled = device::poll(&http, &provider, &profile.client_id, &auth, |_| {}).await;
    waiting.finish(polled.is_ok());
    let tokens = polled?;
    store(profile, deps, &tokens).await?;

    let key = enroll::new_key_pem().map_err(CertError::from)?;
    let e = client_cert::enroll_and_store(profile, &deps.store, tokens.id_token.expose(), &tokens.subject, &key, true).await?;
    Ok(LoggedIn {
        subject: tokens.subject.clone(),
        username: e.username,
        groups: tokens.groups.clone(),
        token_expiry: tokens.id_token_expiry,
        has_refresh_token: tokens.refresh_token.is_some(),
        cert_expiry: e.not_after,
    })
}

/// A valid ID token for `profile`, exactly as `hoop-kube credential` gets one: the cached token,
/// or one refresh for all concurrent callers ([`refresh::obtain`]); when neither is possible, a
/// device-flow [`login`] on stderr, but only if `info.interactive` (a terminal is there), else
/// the one-line "run: hoop-kube login" error. `hoop-kube run --agent` and `hoop-kube agents` use
/// it for the engineer's own token.
pub async fn id_token(profile: &Profile, info: &ExecInfo, deps: &Deps) -> Result<ExecCredentialOut, SessionError> {
    match refresh::obtain(profile, info, deps).await {
        Ok(out) => Ok(out),
        Err(CredentialError::InteractiveLoginRequired { .. }) => {
            login(profile, deps, Prompt { qr: true }).await?;
            Ok(refresh::obtain(profile, info, deps).await?)
        }
        Err(e) => Err(e.into()),
    }
}

async fn store(profile: &Profile, deps: &Deps, tokens: &Tokens) -> Result<(), CredentialError> {
    let _lock = refresh::lock_profile(&deps.lock_dir, &profile.name, refresh::DEFAULT_LOCK_TIMEOUT).await?;
    refresh::save_tokens(&deps.store, tokens).await.map_err(|source| CredentialError::Store { profile: profile.name.clone(), source })
}

/// The prompt on stderr, and the spinner until [`Waiting::finish`].
struct Waiting {
    bar: Option<indicatif::ProgressBar>,
}

impl Waiting {
    fn finish(self, ok: bool) {
        if let Some(bar) = self.bar {
            if ok {
                bar.finish_with_message("approved");
            } else {
                bar.abandon_with_message("not approved");
            }
        }
    }
}

fn show(profile: &Profile, auth: &DeviceAuthorization, prompt: Prompt) -> Waiting {
    let mut err = std::io::stderr().lock();
    let tty = std::io::stderr().is_terminal();
    let _ = writeln!(err, "hoop-kube: log in to profile \"{}\" (relay {}) at {}", profile.name, profile.relay_url, profile.issuer);
    let _ = writeln!(err);
    match &auth.verification_uri_complete {
        Some(complete) => {
            let _ = writeln!(err, "  Open:  {complete}");
            let _ = writeln!(err, "  and check that it shows the code {}", auth.user_code);
        }
        None => {
            let _ = writeln!(err, "  Open:  {}", auth.verification_uri);
            let _ = writeln!(err, "  Code:  {}", auth.user_code);
        }
    }
    if prompt.qr && tty && std::io::stdout().is_terminal() {
        let target = auth.verification_uri_complete.as_deref().unwrap_or(&auth.verification_uri);
        if let Some(qr) = qr_text(target) {
            let _ = writeln!(err);
            let _ = write!(err, "{qr}");
        }
    }
    let _ = writeln!(err);
    let expires = auth.expires_at();
    drop(err);
    if !tty {
        eprintln!("hoop-kube: waiting for approval (the code expires at {})", expires.format("%H:%M:%S UTC"));
        return Waiting { bar: None };
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} waiting for approval ({elapsed}; {msg})") {
        bar.set_style(style);
    }
    bar.set_message(format!("the code expires at {}", expires.with_timezone(&chrono::Local).format("%H:%M:%S")));
    bar.enable_steady_tick(Duration::from_millis(120));
    Waiting { bar: Some(bar) }
}

/// `text` as a QR code drawn with half blocks (two rows per line), with a quiet zone.
pub fn qr_text(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build()
            + "\n",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn qr_codes_render_as_text_rows() {
        let qr = super::qr_text("http://127.0.0.1:1234/device?user_code=ABCD-EFGH").unwrap();
        let rows: Vec<&str> = qr.lines().collect();
        assert!(rows.len() > 10, "{qr}");
        assert!(rows.iter().all(|r| r.chars().count() == rows[0].chars().count()), "{qr}");
    }
}
