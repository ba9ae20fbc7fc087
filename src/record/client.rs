//! The records API's client: what `hoop-kube sessions` talks through.
//!
//! Why it exists: records and exec sessions live in the relay; a user (or an auditor) reads them
//! with the kubeconfig they already use. The relay is reached exactly as `hoop-kube reviews`
//! reaches it ([`crate::review::client`]): a context's server (the local forwarder, which passes
//! `/hoop-kube/v1/…` to the relay) and its user's token, `tokenFile` or exec plugin. This module
//! adds the records calls ([`super::query`] has the routes and wire types) and decodes the watch
//! stream.
//!
//! What it trusts: the relay's answers as far as they parse into the wire types; text in them is
//! data (the CLI cleans it before printing). What it rejects ([`RecordsError`]): ids not of the
//! record id shape (before any request), times that are neither RFC 3339 nor a relative
//! duration, answers that do not parse, bodies and watch lines over their size limits.

use std::collections::VecDeque;
use std::time::Duration;

use super::asciicast::SessionExport;
use super::event::{now_micros, Decision, EventList, Record};
use super::query::{RecordList, WatchLine, RECORDS_PATH, SESSIONS_PATH};
use crate::review::client::{Client, ClientError, Target};

/// How long a list or a record may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a session export may take (a long session is large).
const SESSION_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest list or record answer read (1000 records are well under it).
pub const MAX_BODY: usize = 64 << 20;
/// Largest session export read.
pub const MAX_SESSION_BODY: usize = 1 << 30;
/// Longest watch line (one record is a few KiB).
pub const MAX_LINE: usize = 1 << 20;
/// The most records one list returns (the relay's limit).
pub const MAX_LIMIT: usize = super::store::MAX_LIMIT;

/// Why a records call failed; `Display` is the one line shown, saying what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    /// The kubeconfig, the context's credential or its CA cannot be used.
    #[error(transparent)]
    Target(ClientError),
    /// The context's server (the forwarder) or the relay behind it did not answer.
    #[error("cannot reach {server}: {message}; is the forwarder running? run `hoop-kube status`")]
    Unreachable { server: String, message: String },
    /// 401: the relay did not accept the context's credential.
    #[error("{message}; run `hoop-kube login` (or check the context's credential)")]
    Unauthorized { message: String },
    /// 403: the relay's message (users see their own records; auditors see every record).
    #[error("{message}")]
    Forbidden { message: String },
    /// 404 for a record id.
    #[error("no record {id}; `hoop-kube sessions list` shows the records you may see")]
    NoRecord { id: String },
    /// 404 for a session id (which was not a record id either).
    #[error("no record or session {id}; `hoop-kube sessions list` shows the records you may see")]
    NoSession { id: String },
    /// The record exists but recorded no session.
    #[error(
        "record {id} ({what}) has no recorded session; only exec, attach and port-forward are"
    )]
    NotASession { id: String, what: String },
    /// 404 on the list: the server does not serve the records API.
    #[error("{server} does not serve the records API (HTTP 404); is the relay recording (`records:` in relay.yaml) and the context one of hoop-kube's?")]
    NotServed { server: String },
    /// Any other error answer (400 for a parameter the relay refused, 5xx).
    #[error("the relay refused (HTTP {code}): {message}")]
    Refused { code: u16, message: String },
    /// A 200 answer that is not what the records API sends.
    #[error("unexpected answer from {server}: {message}")]
    BadAnswer { server: String, message: String },
    /// An answer larger than [`MAX_BODY`] (or [`MAX_SESSION_BODY`]).
    #[error("the answer from {server} is larger than {limit} bytes")]
    TooLarge { server: String, limit: usize },
    /// The watch stream broke (connection reset, relay gone).
    #[error("the watch stream from {server} broke: {message}")]
    StreamBroken { server: String, message: String },
    /// A watch line longer than [`MAX_LINE`].
    #[error("watch line {line} is longer than {MAX_LINE} bytes")]
    LineTooLong { line: u64 },
    /// A watch line that is not a [`WatchLine`].
    #[error("watch line {line} is not a records watch event: {message}")]
    BadLine { line: u64, message: String },
    /// The stream ended inside a line.
    #[error("the watch stream ended inside line {line}")]
    Truncated { line: u64 },
    /// A `since`/`until` value the relay would refuse.
    #[error("{param} {value:?} is not a time: use RFC 3339 (2025-01-31T14:00:00Z) or a duration before now like 30s, 15m, 2h, 3d")]
    BadTime { param: &'static str, value: String },
    /// Not a record or session id.
    #[error("{0:?} is not a record or session id (a UUID v7 such as 0196f2a8-…; `hoop-kube sessions list` prints them)")]
    BadId(String),
}

/// What a list (or a watch) asks for; every set field must match. Empty strings count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The user name or the OIDC subject.
    pub user: Option<String>,
    /// The agent acting for the user.
    pub agent: Option<String>,
    /// RFC 3339, or a duration before now (`30s`, `15m`, `2h`, `3d`, `1w`, `1h30m`).
    pub since: Option<String>,
    /// As `since`; exclusive. Not sent on a watch.
    pub until: Option<String>,
    pub verb: Option<String>,
    /// The plural resource name (`pods`, `deployments`).
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub decision: Option<Decision>,
    /// The `Kubectl-Session` of one kubectl invocation.
    pub kubectl_session: Option<String>,
    /// At most this many (1..=[`MAX_LIMIT`]; the relay's default is 100). Not sent on a watch.
    pub limit: Option<usize>,
}

/// Which request a query string is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// A list as [`RecordList`].
    Records,
    /// A list as an audit `EventList`.
    Audit,
    /// A watch (`until` and `limit` do not apply and are left out).
    Watch,
}

impl Filter {
    /// Check the times as the relay will (so a typo fails before any request).
    ///
    /// # Errors
    /// [`RecordsError::BadTime`].
    pub fn validate(&self) -> Result<(), RecordsError> {
        let now = now_micros();
        for (param, v) in [("since", &self.since), ("until", &self.until)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                if super::query::parse_when(v, now).is_none() {
                    return Err(RecordsError::BadTime {
                        param,
                        value: v.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The query string (without `?`), every value URL-encoded (`+` of an RFC 3339 offset is
    /// `%2B`), unset and empty values left out.
    #[must_use]
    pub fn query(&self, kind: QueryKind) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        let watch = kind == QueryKind::Watch;
        if watch {
            q.append_pair("watch", "1");
        }
        let limit = self.limit.map(|l| l.to_string());
        let texts = [
            ("user", self.user.as_deref()),
            ("agent", self.agent.as_deref()),
            ("since", self.since.as_deref()),
            ("until", self.until.as_deref().filter(|_| !watch)),
            ("verb", self.verb.as_deref()),
            ("resource", self.resource.as_deref()),
            ("namespace", self.namespace.as_deref()),
            ("decision", self.decision.map(Decision::as_str)),
            ("kubectlSession", self.kubectl_session.as_deref()),
            ("limit", limit.as_deref().filter(|_| !watch)),
        ];
        for (k, v) in texts {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                q.append_pair(k, v);
            }
        }
        if kind == QueryKind::Audit {
            q.append_pair("format", "audit");
        }
        q.finish()
    }
}

/// What an id given to `replay`/`export` names, once its record was looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRef {
    /// A record's session.
    OfRecord { record: String, session: String },
    /// Not a record id: maybe the session id itself.
    Direct(String),
}

impl SessionRef {
    /// The session id to fetch.
    #[must_use]
    pub fn session(&self) -> &str {
        match self {
            SessionRef::OfRecord { session, .. } | SessionRef::Direct(session) => session,
        }
    }

    /// Decide from the lookup of `id` as a record: a record with a session names it, a record
    /// without one is an error, no such record leaves `id` to be tried as a session id.
    ///
    /// # Errors
    /// [`RecordsError::NotASession`], or the lookup's own error.
    pub fn from_lookup(
        id: &str,
        lookup: Result<Record, RecordsError>,
    ) -> Result<SessionRef, RecordsError> {
        match lookup {
            Ok(r) => match r.session {
                Some(session) => Ok(SessionRef::OfRecord {
                    record: r.id,
                    session,
                }),
                None => Err(RecordsError::NotASession {
                    id: r.id.clone(),
                    what: describe(&r),
                }),
            },
            Err(RecordsError::NoRecord { .. }) => Ok(SessionRef::Direct(id.to_string())),
            Err(e) => Err(e),
        }
    }
}

/// `get pods default/web` — what a record was, in a few words.
#[must_use]
pub fn describe(r: &Record) -> String {
    let what = match (r.resource.as_str(), r.subresource.as_str()) {
        ("", _) => r.path.clone(),
        (res, "") => res.to_string(),
        (res, sub) => format!("{res}/{sub}"),
    };
    let target = match (r.namespace.as_str(), r.name.as_str()) {
        ("", "") => String::new(),
        ("", n) => format!(" {n}"),
        (ns, "") => format!(" in {ns}"),
        (ns, n) => format!(" {ns}/{n}"),
    };
    crate::text::clip(&format!("{} {what}{target}", r.verb), 200)
}

/// Which route a 404 came from.
#[derive(Clone, Copy)]
enum Missing<'a> {
    List,
    Record(&'a str),
    Session(&'a str),
}

/// A records API client for one kubeconfig target.
#[derive(Debug, Clone)]
pub struct RecordsClient {
    inner: Client,
}

impl RecordsClient {
    /// A client for `target` (from [`crate::review::client::resolve`]), trusting its CA.
    ///
    /// # Errors
    /// [`RecordsError::Target`]: the CA is not PEM.
    pub fn new(target: Target) -> Result<RecordsClient, RecordsError> {
        Client::new(target)
            .map(|inner| RecordsClient { inner })
            .map_err(RecordsError::Target)
    }

    /// The target.
    #[must_use]
    pub fn target(&self) -> &Target {
        self.inner.target()
    }

    fn server(&self) -> String {
        self.inner.target().server.clone()
    }

    fn error(&self, e: ClientError, missing: Missing<'_>) -> RecordsError {
        match e {
            ClientError::Unreachable { server, message } => {
                RecordsError::Unreachable { server, message }
            }
            ClientError::Refused { code, message } => {
                let message = crate::text::one_line(&message, 300);
                match (code, missing) {
                    (401, _) => RecordsError::Unauthorized { message },
                    (403, _) => RecordsError::Forbidden { message },
                    (404, Missing::Record(id)) => RecordsError::NoRecord { id: id.into() },
                    (404, Missing::Session(id)) => RecordsError::NoSession { id: id.into() },
                    (404, Missing::List) => RecordsError::NotServed {
                        server: self.server(),
                    },
                    _ => RecordsError::Refused { code, message },
                }
            }
            other => RecordsError::Target(other),
        }
    }

    /// GET `path` and read the whole body (at most `limit` bytes).
    async fn fetch(
        &self,
        path: &str,
        missing: Missing<'_>,
        timeout: Duration,
        limit: usize,
    ) -> Result<Vec<u8>, RecordsError> {
        let mut resp = self
            .inner
            .get_path(path, Some(timeout))
            .await
            .map_err(|e| self.error(e, missing))?;
        let server = self.server();
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(RecordsError::TooLarge { server, limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| RecordsError::Unreachable {
            server: server.clone(),
            message: crate::text::error_chain(&e),
        })? {
            if body.len() + chunk.len() > limit {
                return Err(RecordsError::TooLarge { server, limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        missing: Missing<'_>,
    ) -> Result<T, RecordsError> {
        let body = self.fetch(path, missing, TIMEOUT, MAX_BODY).await?;
        self.parse(&body)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, RecordsError> {
        serde_json::from_slice(body).map_err(|e| RecordsError::BadAnswer {
            server: self.server(),
            message: e.to_string(),
        })
    }

    /// The records matching `filter`, newest first.
    ///
    /// # Errors
    /// See [`RecordsError`].
    pub async fn list(&self, filter: &Filter) -> Result<RecordList, RecordsError> {
        filter.validate()?;
        let path = with_query(RECORDS_PATH, &filter.query(QueryKind::Records));
        let list: RecordList = self.fetch_json(&path, Missing::List).await?;
        if list.kind != "RecordList" {
            return Err(self.bad_kind("RecordList", &list.kind));
        }
        Ok(list)
    }

    /// The records matching `filter` as `audit.k8s.io/v1` Events (each record's latest stage),
    /// newest first.
    ///
    /// # Errors
    /// See [`RecordsError`].
    pub async fn list_audit(&self, filter: &Filter) -> Result<EventList, RecordsError> {
        filter.validate()?;
        let path = with_query(RECORDS_PATH, &filter.query(QueryKind::Audit));
        let list: EventList = self.fetch_json(&path, Missing::List).await?;
        if list.kind != "EventList" {
            return Err(self.bad_kind("EventList", &list.kind));
        }
        Ok(list)
    }

    fn bad_kind(&self, want: &str, got: &str) -> RecordsError {
        RecordsError::BadAnswer {
            server: self.server(),
            message: format!(
                "expected a {want}, got kind {:?}",
                crate::text::clip(got, 60)
            ),
        }
    }

    /// One record.
    ///
    /// # Errors
    /// [`RecordsError::BadId`] before any request; [`RecordsError::NoRecord`]; see
    /// [`RecordsError`].
    pub async fn get(&self, id: &str) -> Result<Record, RecordsError> {
        check_id(id)?;
        let r: Record = self
            .fetch_json(&format!("{RECORDS_PATH}/{id}"), Missing::Record(id))
            .await?;
        if r.id != id {
            return Err(RecordsError::BadAnswer {
                server: self.server(),
                message: format!(
                    "asked for record {id}, got {}",
                    crate::text::clip(&r.id, 60)
                ),
            });
        }
        Ok(r)
    }

    /// Every request of one kubectl invocation (its `Kubectl-Session`), oldest first (at most
    /// [`MAX_LIMIT`]).
    ///
    /// # Errors
    /// See [`RecordsError`].
    pub async fn kubectl_session(&self, session: &str) -> Result<Vec<Record>, RecordsError> {
        let filter = Filter {
            kubectl_session: Some(session.to_string()),
            limit: Some(MAX_LIMIT),
            ..Filter::default()
        };
        let mut items = self.list(&filter).await?.items;
        items.reverse();
        Ok(items)
    }

    /// The session `id` names: `id` is a record id whose record has a session, or the session
    /// id itself.
    ///
    /// # Errors
    /// [`RecordsError::NotASession`] for a record without one; see [`RecordsError`].
    pub async fn resolve_session(&self, id: &str) -> Result<SessionRef, RecordsError> {
        check_id(id)?;
        SessionRef::from_lookup(id, self.get(id).await)
    }

    /// A session as asciicast v2 text (header line checked).
    ///
    /// # Errors
    /// [`RecordsError::NoSession`]; see [`RecordsError`].
    pub async fn session_cast(&self, id: &str) -> Result<String, RecordsError> {
        check_id(id)?;
        let path = format!("{SESSIONS_PATH}/{id}?format=asciicast");
        let body = self
            .fetch(
                &path,
                Missing::Session(id),
                SESSION_TIMEOUT,
                MAX_SESSION_BODY,
            )
            .await?;
        let bad = |message: String| RecordsError::BadAnswer {
            server: self.server(),
            message,
        };
        let mut text =
            String::from_utf8(body).map_err(|_| bad("the asciicast is not UTF-8".into()))?;
        let header = text.lines().next().unwrap_or("");
        super::replay::parse_header(header).map_err(|e| bad(e.to_string()))?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }

    /// A session's JSON export: its metadata, its record and every event.
    ///
    /// # Errors
    /// [`RecordsError::NoSession`]; see [`RecordsError`].
    pub async fn session_json(&self, id: &str) -> Result<SessionExport, RecordsError> {
        check_id(id)?;
        let path = format!("{SESSIONS_PATH}/{id}?format=json");
        let body = self
            .fetch(
                &path,
                Missing::Session(id),
                SESSION_TIMEOUT,
                MAX_SESSION_BODY,
            )
            .await?;
        self.parse(&body)
    }

    /// Follow the records matching `filter` as they are written (after those since
    /// `filter.since`, when set). `until` and `limit` do not apply to a watch and are not sent.
    ///
    /// # Errors
    /// See [`RecordsError`]; later errors come from [`Watch::next`].
    pub async fn watch(&self, filter: &Filter) -> Result<Watch, RecordsError> {
        filter.validate()?;
        let path = with_query(RECORDS_PATH, &filter.query(QueryKind::Watch));
        let resp = self
            .inner
            .get_path(&path, None)
            .await
            .map_err(|e| self.error(e, Missing::List))?;
        Ok(Watch {
            resp,
            server: self.server(),
            decoder: LineDecoder::default(),
            ready: VecDeque::new(),
        })
    }
}

fn check_id(id: &str) -> Result<(), RecordsError> {
    if super::id::is_id(id) {
        Ok(())
    } else {
        Err(RecordsError::BadId(crate::text::clip(id, 60)))
    }
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// A records watch: [`WatchLine`]s as the relay writes them, line by line as they arrive.
#[derive(Debug)]
pub struct Watch {
    resp: reqwest::Response,
    server: String,
    decoder: LineDecoder,
    ready: VecDeque<WatchLine>,
}

impl Watch {
    /// The next line; `Ok(None)` when the relay ended the stream (it restarted or shut down).
    ///
    /// # Errors
    /// [`RecordsError::StreamBroken`], [`RecordsError::LineTooLong`], [`RecordsError::BadLine`],
    /// [`RecordsError::Truncated`].
    pub async fn next(&mut self) -> Result<Option<WatchLine>, RecordsError> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            let chunk = self
                .resp
                .chunk()
                .await
                .map_err(|e| RecordsError::StreamBroken {
                    server: self.server.clone(),
                    message: crate::text::error_chain(&e),
                })?;
            match chunk {
                Some(c) => self.ready.extend(self.decoder.push(&c)?),
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}

/// Splits a watch body into [`WatchLine`]s across arbitrary chunk borders. Each push yields
/// the complete lines so far (none: need more bytes) or a typed error; a line is refused as
/// soon as it would pass [`MAX_LINE`], before its bytes are kept. Blank lines (keep-alives) are
/// skipped.
#[derive(Debug, Default)]
pub struct LineDecoder {
    partial: Vec<u8>,
    /// Lines completed so far (for error messages, 1-based).
    lines: u64,
}

impl LineDecoder {
    /// Feed one chunk.
    ///
    /// # Errors
    /// [`RecordsError::LineTooLong`], [`RecordsError::BadLine`].
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<WatchLine>, RecordsError> {
        let mut out = Vec::new();
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            let (piece, rest) = (&chunk[..end], &chunk[end + 1..]);
            self.lines += 1;
            if self.partial.len() + piece.len() > MAX_LINE {
                return Err(RecordsError::LineTooLong { line: self.lines });
            }
            let line = if self.partial.is_empty() {
                parse_line(piece, self.lines)?
            } else {
                self.partial.extend_from_slice(piece);
                let line = parse_line(&self.partial, self.lines);
                self.partial.clear();
                line?
            };
            out.extend(line);
            chunk = rest;
        }
        if self.partial.len() + chunk.len() > MAX_LINE {
            return Err(RecordsError::LineTooLong {
                line: self.lines + 1,
            });
        }
        self.partial.extend_from_slice(chunk);
        Ok(out)
    }

    /// The stream ended: anything but whitespace left over is a cut line.
    ///
    /// # Errors
    /// [`RecordsError::Truncated`].
    pub fn finish(&mut self) -> Result<(), RecordsError> {
        let rest = std::mem::take(&mut self.partial);
        if rest.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(RecordsError::Truncated {
                line: self.lines + 1,
            })
        }
    }
}

fn parse_line(bytes: &[u8], line: u64) -> Result<Option<WatchLine>, RecordsError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| RecordsError::BadLine {
            line,
            message: e.to_string(),
        })
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
