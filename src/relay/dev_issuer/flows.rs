//! The dev issuer's grant state: registered users, device codes (RFC 8628) and refresh-token
//! grants. Pure bookkeeping under one mutex, with the time passed in; no HTTP, no signing of ID
//! tokens (the server mints those after the lock is released).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey};
use rand::Rng as _;
use serde_json::Value;

use super::b64;

/// The user-code alphabet: 20 consonants, no vowels (no words), no digits (no 0/O, 1/I), as
/// RFC 8628 §6.1 suggests.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// How many device codes may exist at once (pending, decided or recently expired).
const MAX_DEVICE_CODES: usize = 1000;
/// How many refresh-token grants are kept; past it the one expiring first is dropped.
const MAX_GRANTS: usize = 10_000;
/// How long an expired device code is kept, so that polls get `expired_token` rather than
/// `invalid_grant`.
const KEEP_EXPIRED: Duration = Duration::from_secs(600);
/// What every `slow_down` adds to a device code's interval (RFC 8628 §3.5), and its ceiling.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
const MAX_INTERVAL: Duration = Duration::from_secs(300);
/// A poll that comes this much early is still in time (timer and scheduling jitter).
const POLL_GRACE: Duration = Duration::from_millis(50);
/// Poll times kept per device code (for [`super::DevIssuer::polls`]).
const MAX_POLLS_KEPT: usize = 1000;

/// The scopes the dev issuer grants; other requested scopes are dropped, as providers do.
pub(super) const SCOPES: [&str; 5] = ["openid", "offline_access", "email", "profile", "groups"];

/// An RFC 6749 §5.2 error answer: `error`, `error_description` and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OAuthError {
    pub(super) status: StatusCode,
    pub(super) error: &'static str,
    pub(super) description: String,
}

impl OAuthError {
    /// A 400 answer.
    pub(super) fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError { status: StatusCode::BAD_REQUEST, error, description: description.into() }
    }

    pub(super) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        OAuthError::new("invalid_grant", description)
    }
}

/// A device login that waits for approval, as [`super::DevIssuer::pending`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The user code as shown to the human, `XXXX-XXXX`; what [`super::DevIssuer::approve`]
    /// takes (with or without the dash, any case).
    pub user_code: String,
    /// The client that asked for it.
    pub client_id: String,
    /// The scopes it will be granted (space separated).
    pub scope: String,
    /// How long until the code expires.
    pub expires_in: Duration,
    /// Its number: device authorizations are numbered 1, 2, … in the order they were made (see
    /// [`super::DevIssuer::device_authorizations`]).
    pub number: u64,
}

/// Why an approval (or denial) did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No device login has this user code (never issued, mistyped, or forgotten long after
    /// expiry).
    #[error("no device login has the user code {0:?}")]
    UnknownCode(String),
    /// The device login expired before it was approved.
    #[error("the device login {0} has expired")]
    Expired(String),
    /// The device login was already approved or denied.
    #[error("the device login {0} was already approved or denied")]
    AlreadyDecided(String),
    /// The subject was never registered with [`super::DevIssuer::register_user`].
    #[error("no user {0:?} is registered with the dev issuer")]
    UnknownSubject(String),
}

/// A registered user: who the dev issuer can vouch for.
#[derive(Debug, Clone)]
pub(super) struct User {
    pub(super) groups: Vec<String>,
    pub(super) extra: Value,
}

/// What a successful device-code or refresh-token grant hands to the server to answer with.
#[derive(Debug)]
pub(super) struct Issued {
    pub(super) subject: String,
    pub(super) user: User,
    pub(super) client_id: String,
    pub(super) scope: String,
    pub(super) refresh_token: String,
}

/// What the device authorization endpoint answers with.
#[derive(Debug)]
pub(super) struct Started {
    pub(super) device_code: String,
    /// `XXXX-XXXX`.
    pub(super) user_code: String,
    pub(super) interval: Duration,
}

/// A device code's state, for the approval page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PageView {
    Pending { user_code: String, client_id: String, scope: String, xsrf: String },
    Expired,
    Decided,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Pending,
    Approved(String),
    Denied,
    /// Approved, and its tokens were handed out: single use.
    Used,
}

struct Device {
    number: u64,
    user_code: String,
    client_id: String,
    scope: String,
    created: Instant,
    expires_at: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    polls: Vec<Instant>,
    forced_slow_downs: u32,
    xsrf: String,
    status: Status,
}

struct Grant {
    subject: String,
    client_id: String,
    scope: String,
    /// The generation of the one refresh token that is valid now.
    generation: u64,
    expires_at: Instant,
}

/// All of it. Refresh tokens are `GRANT.GENERATION.MAC` (MAC = HMAC-SHA256 over
/// `GRANT.GENERATION` with a per-issuer key): an older generation of a live grant is a reused
/// token — it revokes the grant — and nothing per token has to be stored.
pub(super) struct Flows {
    devices: HashMap<String, Device>,
    /// Normalized user code (8 letters, no dash) → device code.
    user_codes: HashMap<String, String>,
    users: BTreeMap<String, User>,
    grants: HashMap<String, Grant>,
    refresh_key: EncodingKey,
    started: u64,
}

impl Flows {
    pub(super) fn new() -> Self {
        Flows {
            devices: HashMap::new(),
            user_codes: HashMap::new(),
            users: BTreeMap::new(),
            grants: HashMap::new(),
            refresh_key: EncodingKey::from_secret(&random_bytes::<32>()),
            started: 0,
        }
    }

    pub(super) fn register_user(&mut self, subject: &str, user: User) {
        self.users.insert(subject.to_owned(), user);
    }

    pub(super) fn users(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// How many device authorizations were made so far.
    pub(super) fn started(&self) -> u64 {
        self.started
    }

    /// RFC 8628 §3.1–3.2: a new device code and user code.
    pub(super) fn start(
        &mut self,
        client_id: &str,
        scope: &str,
        ttl: Duration,
        interval: Duration,
        now: Instant,
    ) -> Result<Started, OAuthError> {
        self.prune(now);
        if self.devices.len() >= MAX_DEVICE_CODES {
            return Err(OAuthError::new("temporarily_unavailable", "too many device logins in progress; try again later")
                .with_status(StatusCode::SERVICE_UNAVAILABLE));
        }
        let device_code = b64(&random_bytes::<32>());
        let user_code = loop {
            let code = random_user_code();
            if !self.user_codes.contains_key(&code) {
                break code;
            }
        };
        self.started += 1;
        self.user_codes.insert(user_code.clone(), device_code.clone());
        self.devices.insert(
            device_code.clone(),
            Device {
                number: self.started,
                user_code: user_code.clone(),
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                created: now,
                expires_at: later(now, ttl),
                interval,
                last_poll: None,
                polls: Vec::new(),
                forced_slow_downs: 0,
                xsrf: b64(&random_bytes::<16>()),
                status: Status::Pending,
            },
        );
        Ok(Started { device_code, user_code: display_user_code(&user_code), interval })
    }

    /// Unexpired device logins that wait for approval, oldest first.
    pub(super) fn pending(&self, now: Instant) -> Vec<PendingLogin> {
        let mut out: Vec<PendingLogin> = self
            .devices
            .values()
            .filter(|d| d.status == Status::Pending && now < d.expires_at)
            .map(|d| PendingLogin {
                user_code: display_user_code(&d.user_code),
                client_id: d.client_id.clone(),
                scope: d.scope.clone(),
                expires_in: d.expires_at - now,
                number: d.number,
            })
            .collect();
        out.sort_by_key(|p| p.number);
        out
    }

    fn device_by_user_code(&mut self, user_code: &str) -> Result<&mut Device, ApprovalError> {
        let unknown = || ApprovalError::UnknownCode(printable(user_code));
        let code = normalize_user_code(user_code).ok_or_else(unknown)?;
        let device_code = self.user_codes.get(&code).ok_or_else(unknown)?;
        self.devices.get_mut(device_code).ok_or_else(unknown)
    }

    fn decide(&mut self, user_code: &str, status: Status, now: Instant) -> Result<(), ApprovalError> {
        if let Status::Approved(subject) = &status {
            if !self.users.contains_key(subject) {
                return Err(ApprovalError::UnknownSubject(printable(subject)));
            }
        }
        let device = self.device_by_user_code(user_code)?;
        let shown = display_user_code(&device.user_code);
        if device.status != Status::Pending {
            return Err(ApprovalError::AlreadyDecided(shown));
        }
        if now >= device.expires_at {
            return Err(ApprovalError::Expired(shown));
        }
        device.status = status;
        Ok(())
    }

    pub(super) fn approve(&mut self, user_code: &str, subject: &str, now: Instant) -> Result<(), ApprovalError> {
        self.decide(user_code, Status::Approved(subject.to_owned()), now)
    }

    pub(super) fn deny(&mut self, user_code: &str, now: Instant) -> Result<(), ApprovalError> {
        self.decide(user_code, Status::Denied, now)
    }

    /// Answer the next `count` polls for this code with `slow_down`.
    pub(super) fn force_slow_down(&mut self, user_code: &str, count: u32) -> Result<(), ApprovalError> {
        self.device_by_user_code(user_code)?.forced_slow_downs = count;
        Ok(())
    }

    /// When the token endpoint was polled for this code, as offsets from its creation.
    pub(super) fn polls(&mut self, user_code: &str) -> Vec<Duration> {
        match self.device_by_user_code(user_code) {
            Ok(d) => d.polls.iter().map(|t| t.saturating_duration_since(d.created)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// What the approval page shows for `user_code`.
    pub(super) fn page_view(&mut self, user_code: &str, now: Instant) -> Result<PageView, ApprovalError> {
        let d = self.device_by_user_code(user_code)?;
        Ok(match &d.status {
            Status::Pending if now >= d.expires_at => PageView::Expired,
            Status::Pending => PageView::Pending {
                user_code: display_user_code(&d.user_code),
                client_id: d.client_id.clone(),
                scope: d.scope.clone(),
                xsrf: d.xsrf.clone(),
            },
            _ => PageView::Decided,
        })
    }

    /// Does `xsrf` belong to the page of `user_code`?
    pub(super) fn xsrf_matches(&mut self, user_code: &str, xsrf: &str) -> Result<bool, ApprovalError> {
        let d = self.device_by_user_code(user_code)?;
        Ok(constant_time_eq(d.xsrf.as_bytes(), xsrf.as_bytes()))
    }

    /// RFC 8628 §3.4–3.5: one poll of the token endpoint with a device code.
    pub(super) fn poll(
        &mut self,
        device_code: &str,
        client_id: &str,
        refresh_ttl: Duration,
        now: Instant,
    ) -> Result<Issued, OAuthError> {
        let device = self
            .devices
            .get_mut(device_code)
            .ok_or_else(|| OAuthError::invalid_grant("unknown device code"))?;
        if device.client_id != client_id {
            return Err(OAuthError::invalid_grant("the device code was issued to another client"));
        }
        if device.polls.len() < MAX_POLLS_KEPT {
            device.polls.push(now);
        }
        if device.status == Status::Used {
            return Err(OAuthError::invalid_grant("the device code was already used"));
        }
        if now >= device.expires_at {
            return Err(OAuthError::new("expired_token", "the device code has expired"));
        }
        let too_early = device
            .last_poll
            .is_some_and(|last| now.saturating_duration_since(last) + POLL_GRACE < device.interval);
        device.last_poll = Some(now);
        if device.forced_slow_downs > 0 || too_early {
            device.forced_slow_downs = device.forced_slow_downs.saturating_sub(1);
            device.interval = (device.interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
            return Err(OAuthError::new(
                "slow_down",
                format!("polling too fast: poll at most once every {} s", device.interval.as_secs()),
            ));
        }
        let subject = match &device.status {
            Status::Pending => {
                return Err(OAuthError::new("authorization_pending", "the login has not been approved yet"))
            }
            Status::Denied => return Err(OAuthError::new("access_denied", "the login was denied")),
            Status::Used => return Err(OAuthError::invalid_grant("the device code was already used")),
            Status::Approved(subject) => subject.clone(),
        };
        let user = self
            .users
            .get(&subject)
            .cloned()
            .ok_or_else(|| OAuthError::invalid_grant("the approved user no longer exists"))?;
        device.status = Status::Used;
        let (client_id, scope) = (device.client_id.clone(), device.scope.clone());
        let refresh_token = self.new_grant(&subject, &client_id, &scope, refresh_ttl, now);
        Ok(Issued { subject, user, client_id, scope, refresh_token })
    }

    /// RFC 6749 §6 with rotation: the presented token must be the newest of its grant; an older
    /// one revokes the grant.
    pub(super) fn refresh(
        &mut self,
        token: &str,
        client_id: &str,
        refresh_ttl: Duration,
        now: Instant,
    ) -> Result<Issued, OAuthError> {
        let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired, revoked or already used");
        let (grant_id, generation) = self.check_refresh_token(token).ok_or_else(invalid)?;
        let grant = self.grants.get_mut(&grant_id).ok_or_else(invalid)?;
        if grant.client_id != client_id {
            return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
        }
        if generation != grant.generation || now >= grant.expires_at {
            // An older token: it was used before, so someone else holds the newer one. Revoke the
            // whole grant, as oidc-provider does.
            self.grants.remove(&grant_id);
            return Err(invalid());
        }
        let user = match self.users.get(&grant.subject) {
            Some(u) => u.clone(),
            None => {
                self.grants.remove(&grant_id);
                return Err(invalid());
            }
        };
        grant.generation += 1;
        grant.expires_at = later(now, refresh_ttl);
        let generation = grant.generation;
        let (subject, client_id, scope) = (grant.subject.clone(), grant.client_id.clone(), grant.scope.clone());
        let refresh_token = self.refresh_token(&grant_id, generation);
        Ok(Issued { subject, user, client_id, scope, refresh_token })
    }

    fn new_grant(&mut self, subject: &str, client_id: &str, scope: &str, ttl: Duration, now: Instant) -> String {
        self.grants.retain(|_, g| now < g.expires_at);
        while self.grants.len() >= MAX_GRANTS {
            let Some(first) = self.grants.iter().min_by_key(|(_, g)| g.expires_at).map(|(id, _)| id.clone()) else {
                break;
            };
            self.grants.remove(&first);
        }
        let id = b64(&random_bytes::<16>());
        self.grants.insert(
            id.clone(),
            Grant {
                subject: subject.to_owned(),
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                generation: 0,
                expires_at: later(now, ttl),
            },
        );
        self.refresh_token(&id, 0)
    }

    fn refresh_token(&self, grant_id: &str, generation: u64) -> String {
        let body = format!("{grant_id}.{generation}");
        format!("{body}.{}", self.mac(&body))
    }

    fn mac(&self, input: &str) -> String {
        jsonwebtoken::crypto::sign(input.as_bytes(), &self.refresh_key, Algorithm::HS256)
            .expect("HMAC signing does not fail")
    }

    /// `(grant id, generation)` of a well-formed refresh token with a valid MAC.
    fn check_refresh_token(&self, token: &str) -> Option<(String, u64)> {
        if token.len() > 200 {
            return None;
        }
        let (body, mac) = token.rsplit_once('.')?;
        if !constant_time_eq(self.mac(body).as_bytes(), mac.as_bytes()) {
            return None;
        }
        let (grant_id, generation) = body.split_once('.')?;
        Some((grant_id.to_owned(), generation.parse().ok()?))
    }

    /// Forget device codes long expired, and expired grants.
    fn prune(&mut self, now: Instant) {
        let user_codes = &mut self.user_codes;
        self.devices.retain(|_, d| {
            let keep = now < d.expires_at + KEEP_EXPIRED;
            if !keep {
                user_codes.remove(&d.user_code);
            }
            keep
        });
        self.grants.retain(|_, g| now < g.expires_at);
    }
}

/// `now + d`, with `d` capped at 100 years (an `Instant` cannot hold every `Duration`).
fn later(now: Instant, d: Duration) -> Instant {
    now + d.min(Duration::from_secs(100 * 365 * 24 * 3600))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill(&mut bytes[..]);
    bytes
}

fn random_user_code() -> String {
    let mut rng = rand::rng();
    (0..USER_CODE_LEN)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.random_range(0..USER_CODE_ALPHABET.len())]))
        .collect()
}

/// `ABCDEFGH` → `ABCD-EFGH`.
pub(super) fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

/// What a human typed → the stored form: dashes and spaces dropped, upper case, exactly 8
/// letters of the alphabet; anything else is no user code.
pub(super) fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(code)
}

/// For error messages: at most 64 characters, control characters replaced.
fn printable(s: &str) -> String {
    s.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
