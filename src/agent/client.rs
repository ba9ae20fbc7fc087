//! The engineer's side of agent sessions: the relay's agents API, the agent's own key, and the
//! checks `hoop-kube run --agent` and `hoop-kube agents` make before anything reaches the relay.
//!
//! **Why here.** The agents API (`/hoop-kube/v1/agents`, [`super::API_PATH`]) is where an
//! engineer's credentials meet an agent's, so it is called directly (no forwarder, no kubeconfig):
//! mutual TLS with the engineer's client certificate, `Authorization: Bearer` with the engineer's
//! ID token, the relay trusted by its CA PEM or by the profile's pin ([`crate::relay_trust`]).
//! [`AgentApi::new`] takes those parts explicitly, so the demo and tests need no profile;
//! [`AgentApi::for_profile`] gets them the way `hoop-kube credential` does.
//!
//! The agent's key pair is made here ([`AgentKey`]) and never leaves this machine: the relay sees
//! a CSR, and its answer ([`Minted`]) is checked before use: a certificate for **our** key that
//! names the agent and the session we were told about ([`mint_session`]).
//!
//! What it rejects before sending anything: an agent name outside [`super::check_name`], a session
//! id that is not a UUID (it goes into a URL path), a relay URL that is not `https://HOST[:PORT]`,
//! a ttl it cannot parse ([`parse_ttl`]). What it accepts from the relay: JSON of the contract's
//! `apiVersion` and `kind`, at most [`MAX_ANSWER`] bytes; refusals are Kubernetes `Status` JSON,
//! whose `message` becomes the one-line error ([`AgentClientError::Refused`]).
//!
//! [`refuse_in_agent_session`] is the guard of the commands that hand out the engineer's
//! credentials; [`super::launch`] runs a command as the agent.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::{MintRequest, Minted, NameError, SessionInfo, SessionList, StopRequest, API_PATH, API_VERSION, SESSION_ENV};
use crate::forward::{RelayIdentity, RelayTrust};
use crate::login::profile::Profile;
use crate::pki::{self, Leaf};
use crate::relay_trust::{self, PinnedCa, TrustError};


/// How long one API call may take, body included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read (a list of a few thousand sessions).
pub const MAX_ANSWER: usize = 4 << 20;
/// Longest `command` sent with a mint, in bytes (the contract's limit).
pub const MAX_COMMAND_BYTES: usize = 256;
/// The shortest agent session the relay grants.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// The longest `--ttl` accepted (the relay caps it further: its `agents.max_ttl_minutes` and the
/// engineer's own certificate).
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why an agents API call (or its preparation) failed. `Display` is the one line shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentClientError {
    /// The relay URL is unusable.
    #[error("the relay URL {0:?} is not https://HOST[:PORT]")]
    BadUrl(String),
    /// The engineer's certificate or key, or the relay's CA, cannot be used for TLS.
    #[error("cannot set up TLS to the relay: {0}")]
    Tls(String),
    /// The relay pin is unusable, or the handshake that fetches the pinned CA failed.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The relay could not be reached.
    #[error("cannot reach the relay at {relay}: {reason}")]
    Unreachable { relay: String, reason: String },
    /// The relay refused: its `Status` message (it says what to do).
    #[error("{message}")]
    Refused { code: u16, message: String },
    /// The relay answered something that does not follow the contract.
    #[error("the relay's answer to {what} is unusable: {reason}")]
    Protocol { what: &'static str, reason: String },
    /// The agent's key pair or CSR could not be made.
    #[error("cannot make the agent's key pair: {0}")]
    Key(String),
    /// Not an agent session id.
    #[error("{0:?} is not an agent session id (a UUID, as `hoop-kube agents list` prints it)")]
    BadId(String),
    /// Not an agent name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The engineer's own credentials are unusable (not logged in, expired, no certificate, …);
    /// the line says what to run.
    #[error("{0}")]
    Engineer(String),
}

/// A line from another module's error, without the `hoop-kube: ` prefix `main` adds anyway.
fn engineer(e: impl fmt::Display) -> AgentClientError {
    AgentClientError::Engineer(e.to_string().trim_start_matches("hoop-kube: ").to_string())
}

// === The guard ===

/// Why a command refuses to run: the process carries [`SESSION_ENV`], so it was started by
/// `hoop-kube run --agent` (an agent reaching for the engineer's own profile).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this process runs as agent session {session} (hoop-kube run --agent); the engineer's credentials are not handed to agents — use the KUBECONFIG hoop-kube run set")]
pub struct InAgentSession {
    /// The session id from the environment (clipped, control characters removed).
    pub session: String,
}

/// The guard of `hoop-kube credential`, `login`, `run`, `agents …` (every command that would act
/// with the engineer's own profile credentials): refuse when
/// [`SESSION_ENV`] is set (and not empty). It protects against a careless agent, not a hostile
/// one, which can unset the variable (see `hoop-kube run --help`).
pub fn refuse_in_agent_session() -> Result<(), InAgentSession> {
    check_agent_env(std::env::var_os(SESSION_ENV).as_deref())
}

/// [`refuse_in_agent_session`] for a given value of [`SESSION_ENV`].
pub fn check_agent_env(value: Option<&OsStr>) -> Result<(), InAgentSession> {
    match value {
        Some(v) if !v.is_empty() => Err(InAgentSession { session: crate::text::clip(&v.to_string_lossy(), 64) }),
        _ => Ok(()),
    }
}

// === Durations ===

/// Why a `--ttl` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TtlError {
    #[error("{0:?} is not a duration: use numbers with units d, h, m or s, e.g. 90s, 30m, 1h or 2h30m")]
    Invalid(String),
    #[error("a ttl of {0} is too short: an agent session lasts at least 1m (60s)")]
    TooShort(String),
    #[error("a ttl of {0} is too long: at most 7d (the relay may cap it further)")]
    TooLong(String),
}

/// Parse a ttl like `90s`, `30m`, `1h`, `2h30m` or `1d`: one or more numbers, each with a unit
/// (`d`, `h`, `m`, `s`). At least [`MIN_TTL`], at most [`MAX_TTL`].
pub fn parse_ttl(s: &str) -> Result<Duration, TtlError> {
    let t = s.trim();
    let invalid = || TtlError::Invalid(crate::text::clip(s, 40));
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(invalid()),
        };
        if digits.is_empty() {
            return Err(invalid());
        }
        // Anything that overflows is far beyond the maximum anyway.
        let n: u64 = digits.parse().unwrap_or(u64::MAX);
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() && digits.bytes().all(|b| b == b'0') && digits.len() == t.len() {
        // A bare 0 needs no unit to be refused for what it is.
        return Err(TtlError::TooShort(t.to_string()));
    }
    if t.is_empty() || !digits.is_empty() {
        return Err(invalid());
    }
    let d = Duration::from_secs(total);
    if d < MIN_TTL {
        return Err(TtlError::TooShort(t.to_string()));
    }
    if d > MAX_TTL {
        return Err(TtlError::TooLong(t.to_string()));
    }
    Ok(d)
}

/// A duration as the shortest of `2h30m`, `45m`, `90s`, `3d4h` (whole seconds).
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out
}

// === Names and ids ===

/// The canonical form (lower-case, hyphenated) of an agent session id, or [`AgentClientError::BadId`].
pub fn check_session_id(id: &str) -> Result<String, AgentClientError> {
    match uuid::Uuid::try_parse(id) {
        Ok(u) if id.len() == 36 => Ok(u.hyphenated().to_string()),
        _ => Err(AgentClientError::BadId(crate::text::clip(id, 80))),
    }
}

/// The command line as `agents list` shows it: arguments joined by spaces, each quoted for a
/// POSIX shell when it needs to be, cut to [`MAX_COMMAND_BYTES`] bytes.
pub fn command_line(args: &[OsString]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| {
            let a = a.to_string_lossy();
            let plain = !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
            if plain {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect();
    let mut line = crate::text::clip(&words.join(" "), MAX_COMMAND_BYTES);
    if line.len() > MAX_COMMAND_BYTES {
        let mut cut = MAX_COMMAND_BYTES - '…'.len_utf8();
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

// === The agent's key ===

/// The agent's key pair (P-256, made on this machine) and the CSR that carries its public half to
/// the relay. The private key goes only into the agent's kubeconfig.
pub struct AgentKey {
    key_pem: String,
    csr_pem: String,
}

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentKey").field("key_pem", &"<redacted>").finish_non_exhaustive()
    }
}

impl AgentKey {
    /// A new key pair and its CSR, made as `hoop-kube login` makes the engineer's
    /// ([`crate::login::enroll::new_key_pem`], [`crate::login::enroll::csr_pem`]).
    pub fn generate() -> Result<Self, AgentClientError> {
        let key = |e: crate::login::enroll::EnrollError| AgentClientError::Key(e.to_string());
        let key_pem = crate::login::enroll::new_key_pem().map_err(key)?;
        let pair = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| AgentClientError::Key(e.to_string()))?;
        let csr_pem = crate::login::enroll::csr_pem(&pair).map_err(key)?;
        Ok(AgentKey { key_pem, csr_pem })
    }

    /// The private key, PEM (PKCS#8): for the agent's kubeconfig only.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CSR, PEM.
    pub fn csr_pem(&self) -> &str {
        &self.csr_pem
    }

    /// The minted credential must be for this key, for the agent and session the answer names,
    /// and valid now. Returns the certificate's `notAfter`.
    pub fn check(&self, minted: &Minted) -> Result<DateTime<Utc>, AgentClientError> {
        let bad = |reason: String| AgentClientError::Protocol { what: "the mint", reason };
        let pair = rcgen::KeyPair::from_pem(&self.key_pem).map_err(|e| AgentClientError::Key(e.to_string()))?;
        let not_after = crate::login::enroll::check_certificate_key(&minted.certificate, &pair).map_err(|e| bad(e.to_string()))?;
        let ders = pki::certs_from_pem(&minted.certificate, "agent certificate").map_err(|e| bad(e.to_string()))?;
        let named = ders.first().and_then(pki::cert_subject).ok_or_else(|| bad("the certificate names no hoop-kube subject".into()))?;
        match named.actor {
            Some(a) if a.agent == minted.session.agent && a.session == minted.session.id && named.subject == minted.session.subject => Ok(not_after),
            _ => Err(bad(format!("the certificate is not for agent {:?}, session {}", minted.session.agent, minted.session.id))),
        }
    }
}

// === The API ===

/// The relay's agents API, called as the engineer.
pub struct AgentApi {
    relay: String,
    trust: RelayTrust,
    pinned: Option<Arc<PinnedCa>>,
    http: reqwest::Client,
    token: String,
}

impl fmt::Debug for AgentApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentApi").field("relay", &self.relay).field("token", &"<redacted>").finish_non_exhaustive()
    }
}

/// The relay URL without a trailing slash, if it is `https://HOST[:PORT]`.
fn relay_base(relay_url: &str) -> Result<String, AgentClientError> {
    let bad = || AgentClientError::BadUrl(crate::text::clip(relay_url, 200));
    let u = url::Url::parse(relay_url).map_err(|_| bad())?;
    let plain = u.scheme() == "https" && u.host_str().is_some() && u.path() == "/" && u.query().is_none() && u.fragment().is_none() && u.username().is_empty() && u.password().is_none();
    if !plain {
        return Err(bad());
    }
    Ok(relay_url.trim_end_matches('/').to_string())
}

impl AgentApi {
    /// A client for the relay at `relay_url` (`https://HOST[:PORT]`), trusted by `trust`,
    /// presenting the engineer's certificate and key and sending the engineer's ID token.
    pub fn new(relay_url: &str, trust: RelayTrust, engineer_cert_pem: &str, engineer_key_pem: &str, engineer_id_token: &str) -> Result<Self, AgentClientError> {
        let relay = relay_base(relay_url)?;
        let leaf = Leaf { cert_pem: engineer_cert_pem.to_string(), key_pem: engineer_key_pem.to_string() };
        let tls = |e: pki::PkiError| AgentClientError::Tls(e.to_string());
        let identity: Arc<dyn rustls::client::ResolvesClientCert> = RelayIdentity::new(&leaf).map_err(tls)?;
        let (config, pinned) = match &trust {
            RelayTrust::CaPem(pem) => {
                let mut c = pki::client_config(Some(pem), None, true).map_err(tls)?;
                c.client_auth_cert_resolver = identity;
                (c, None)
            }
            RelayTrust::Pin(pin) => {
                let verifier = Arc::new(PinnedCa::new(pin)?);
                (relay_trust::pinned_client_config(verifier.clone(), Some(identity))?, Some(verifier))
            }
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| AgentClientError::Tls(crate::text::error_chain(&e)))?;
        Ok(AgentApi { relay, trust, pinned, http, token: engineer_id_token.to_string() })
    }

    /// A client for `profile`'s relay with the engineer's credentials, obtained exactly as
    /// `hoop-kube credential` obtains them: a valid ID token ([`crate::login::session::id_token`]:
    /// cached, refreshed, or, only when `interactive`, a device-flow login on stderr), the
    /// certificate renewed when due ([`crate::login::client_cert::renew_or_keep`]; `warn` gets
    /// the line to show when it cannot be renewed but still works), and the key from the
    /// profile's secret store. The relay is trusted by the profile's pin.
    pub async fn for_profile(profile: &Profile, interactive: bool, mut warn: impl FnMut(&str)) -> Result<Self, AgentClientError> {
        use crate::login::{client_cert, exec_credential::ExecInfo, refresh::Deps, session};
        // No command acts with the engineer's own credentials inside an agent session.
        refuse_in_agent_session().map_err(engineer)?;
        let pin = profile.relay_ca_sha256.clone().ok_or_else(|| {
            AgentClientError::Engineer(format!("profile \"{0}\" has no relay CA pin; run: hoop-kube login --profile {0} --relay-ca-sha256 HEX", profile.name))
        })?;
        let deps = Deps::for_profile(profile).map_err(engineer)?;
        let info = ExecInfo { interactive, ..ExecInfo::default() };
        let token = session::id_token(profile, &info, &deps).await.map_err(engineer)?;
        if let Some(w) = client_cert::renew_or_keep(profile, &deps.store, token.token(), &deps.lock_dir).await.map_err(engineer)? {
            warn(&w);
        }
        let (leaf, _) = client_cert::load_leaf(profile, &deps.store).await.map_err(engineer)?;
        AgentApi::new(&profile.relay_url, RelayTrust::Pin(pin), &leaf.cert_pem, &leaf.key_pem, token.token())
    }

    /// The relay URL (no trailing slash).
    pub fn relay_url(&self) -> &str {
        &self.relay
    }

    /// The relay's serving CA (PEM), for an agent kubeconfig's `certificate-authority-data`:
    /// the CA PEM this client was given, or the pinned CA from the chain the relay presented
    /// (a fresh handshake when no call has been made yet).
    pub async fn server_ca_pem(&self) -> Result<String, AgentClientError> {
        match &self.trust {
            RelayTrust::CaPem(pem) => Ok(pem.clone()),
            RelayTrust::Pin(pin) => match self.pinned.as_ref().and_then(|p| p.matched_ca_pem()) {
                Some(pem) => Ok(pem),
                None => Ok(relay_trust::fetch_pinned_ca(&self.relay, pin).await?),
            },
        }
    }

    /// `POST /hoop-kube/v1/agents`: mint a session. The answer's kind and agent are checked; its
    /// certificate is checked by [`AgentKey::check`] (see [`mint_session`]).
    pub async fn mint(&self, req: &MintRequest) -> Result<Minted, AgentClientError> {
        let m: Minted = self.call(reqwest::Method::POST, "", Some(req), "the mint").await?;
        let bad = |reason: String| AgentClientError::Protocol { what: "the mint", reason };
        if m.api_version != API_VERSION || m.kind != "AgentCredential" {
            return Err(bad(format!("expected kind AgentCredential in {API_VERSION}, got {:?} in {:?}", m.kind, m.api_version)));
        }
        if m.session.agent != req.agent || m.token.is_empty() {
            return Err(bad(format!("it is for agent {:?}, not {:?}, or has no token", m.session.agent, req.agent)));
        }
        check_session_id(&m.session.id).map_err(|e| bad(e.to_string()))?;
        Ok(m)
    }

    /// `GET /hoop-kube/v1/agents`: the caller's sessions (every engineer's with `all`, for
    /// admins), optionally of one agent; newest first, ended ones included.
    pub async fn list(&self, all: bool, agent: Option<&str>) -> Result<SessionList, AgentClientError> {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if all {
            q.append_pair("all", "true");
        }
        if let Some(a) = agent {
            super::check_name(a)?;
            q.append_pair("agent", a);
        }
        let q = q.finish();
        let path = if q.is_empty() { String::new() } else { format!("?{q}") };
        let l: SessionList = self.call(reqwest::Method::GET, &path, None::<&()>, "the list").await?;
        check_list(l, "the list")
    }

    /// `GET /hoop-kube/v1/agents/{id}`.
    pub async fn get(&self, id: &str) -> Result<SessionInfo, AgentClientError> {
        let id = check_session_id(id)?;
        self.call(reqwest::Method::GET, &format!("/{id}"), None::<&()>, "the lookup").await
    }

    /// `DELETE /hoop-kube/v1/agents/{id}`: revoke a session (an ended one answers unchanged).
    pub async fn revoke(&self, id: &str) -> Result<SessionInfo, AgentClientError> {
        let id = check_session_id(id)?;
        self.call(reqwest::Method::DELETE, &format!("/{id}"), None::<&()>, "the revocation").await
    }

    /// `POST /hoop-kube/v1/agents/stop`: stop every active session of an agent; the answer lists
    /// the sessions stopped.
    pub async fn stop(&self, req: &StopRequest) -> Result<SessionList, AgentClientError> {
        super::check_name(&req.agent)?;
        let l: SessionList = self.call(reqwest::Method::POST, "/stop", Some(req), "the stop").await?;
        check_list(l, "the stop")
    }

    async fn call<T: DeserializeOwned>(&self, method: reqwest::Method, path: &str, body: Option<&impl serde::Serialize>, what: &'static str) -> Result<T, AgentClientError> {
        let unreachable = |e: reqwest::Error| AgentClientError::Unreachable { relay: self.relay.clone(), reason: crate::text::one_line(&crate::text::error_chain(&e), 400) };
        let mut req = self.http.request(method, format!("{}{API_PATH}{path}", self.relay)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let mut resp = req.send().await.map_err(unreachable)?;
        let code = resp.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(AgentClientError::Protocol { what, reason: format!("it is larger than {MAX_ANSWER} bytes") });
            }
            bytes.extend_from_slice(&chunk);
        }
        if code != 200 {
            return Err(refused(code, &bytes, &self.relay));
        }
        serde_json::from_slice(&bytes).map_err(|e| AgentClientError::Protocol { what, reason: e.to_string() })
    }
}

fn check_list(l: SessionList, what: &'static str) -> Result<SessionList, AgentClientError> {
    if l.api_version != API_VERSION || l.kind != "AgentSessionList" {
        return Err(AgentClientError::Protocol { what, reason: format!("expected kind AgentSessionList in {API_VERSION}, got {:?} in {:?}", l.kind, l.api_version) });
    }
    Ok(l)
}

/// A non-200 answer: the `Status` message on one line, else the start of the body.
pub fn refused(code: u16, body: &[u8], relay: &str) -> AgentClientError {
    let message = crate::text::one_line(&crate::kube::status::message_of(body), 500);
    let message = if message.is_empty() { format!("the relay at {relay} answered HTTP {code}") } else { message };
    AgentClientError::Refused { code, message }
}

/// Mint a session for `agent`: a new [`AgentKey`], the mint, and the checks of the answer. A
/// credential that fails them is revoked at once (best effort) and never used.
pub async fn mint_session(api: &AgentApi, agent: &str, ttl: Duration, command: Option<String>) -> Result<(Minted, AgentKey), AgentClientError> {
    super::check_name(agent)?;
    let key = AgentKey::generate()?;
    let req = MintRequest { agent: agent.to_string(), ttl_seconds: ttl.as_secs().max(MIN_TTL.as_secs()), csr: key.csr_pem().to_string(), command };
    let minted = api.mint(&req).await?;
    if let Err(e) = key.check(&minted) {
        let _ = api.revoke(&minted.session.id).await;
        return Err(e);
    }
    Ok((minted, key))
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
