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
mod tests {
    use super::*;
    use crate::record::event::Stage;

    fn record(id: &str) -> Record {
        Record {
            id: id.into(),
            received: 1_700_000_000_000_000,
            username: "alice".into(),
            verb: "get".into(),
            resource: "pods".into(),
            namespace: "default".into(),
            name: "web".into(),
            path: "/api/v1/namespaces/default/pods/web".into(),
            ..Record::default()
        }
    }

    const ID: &str = "0196f2a8-5b7e-7c3d-8e9f-0a1b2c3d4e5f";
    const SID: &str = "0196f2a8-5b7f-7000-8000-000000000001";

    #[test]
    fn filter_query_encodes_values_and_leaves_out_unset_ones() {
        assert_eq!(Filter::default().query(QueryKind::Records), "");
        let f = Filter {
            user: Some("alice@example.com".into()),
            agent: Some(String::new()),
            since: Some("2025-01-31T14:00:00+01:00".into()),
            until: Some("2h".into()),
            verb: Some("get".into()),
            resource: Some("pods".into()),
            namespace: None,
            decision: Some(Decision::Deny),
            kubectl_session: Some("a b&c=d".into()),
            limit: Some(5),
        };
        assert_eq!(
            f.query(QueryKind::Records),
            "user=alice%40example.com&since=2025-01-31T14%3A00%3A00%2B01%3A00&until=2h&verb=get\
             &resource=pods&decision=deny&kubectlSession=a+b%26c%3Dd&limit=5"
        );
        assert!(f.query(QueryKind::Audit).ends_with("&limit=5&format=audit"));
        let w = f.query(QueryKind::Watch);
        assert!(w.starts_with("watch=1&user="), "{w}");
        assert!(
            !w.contains("until") && !w.contains("limit") && !w.contains("format"),
            "{w}"
        );
        // What the relay's own parser makes of it.
        let now = 1_800_000_000_000_000;
        let routed = crate::record::query::route(
            &http::Method::GET,
            RECORDS_PATH,
            Some(&f.query(QueryKind::Records)),
            now,
        )
        .unwrap()
        .unwrap();
        let crate::record::query::Route::List { filter, .. } = routed else {
            panic!("{routed:?}")
        };
        assert_eq!(filter.since, Some(1_738_328_400_000_000));
        assert_eq!(filter.until, Some(now - 7_200_000_000));
        assert_eq!(filter.kubectl_session.as_deref(), Some("a b&c=d"));
        assert_eq!((filter.limit, filter.agent), (5, None));
    }

    #[test]
    fn bad_times_fail_before_any_request() {
        let f = Filter {
            since: Some("yesterday".into()),
            ..Filter::default()
        };
        let e = f.validate().unwrap_err();
        assert!(matches!(e, RecordsError::BadTime { param: "since", .. }));
        assert!(
            e.to_string()
                .starts_with("since \"yesterday\" is not a time: use RFC 3339"),
            "{e}"
        );
        for ok in ["30s", "15m", "2h", "3d", "1h30m", "2025-01-31T14:00:00Z"] {
            let f = Filter {
                until: Some(ok.into()),
                ..Filter::default()
            };
            assert!(f.validate().is_ok(), "{ok}");
        }
    }

    fn line(r: &Record, stage: Stage) -> String {
        WatchLine::Record {
            stage,
            record: Box::new(r.clone()),
        }
        .to_line()
    }

    #[test]
    fn watch_lines_parse_across_any_chunk_border() {
        let r = record(ID);
        let text = format!(
            "{}\n{}{}",
            line(&r, Stage::RequestReceived),
            WatchLine::Missed { count: 7 }.to_line(),
            line(&r, Stage::ResponseComplete)
        );
        let want = vec![
            WatchLine::Record {
                stage: Stage::RequestReceived,
                record: Box::new(r.clone()),
            },
            WatchLine::Missed { count: 7 },
            WatchLine::Record {
                stage: Stage::ResponseComplete,
                record: Box::new(r),
            },
        ];
        let bytes = text.as_bytes();
        for size in [1, 2, 3, 7, 64, bytes.len()] {
            let mut d = LineDecoder::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(size) {
                got.extend(d.push(chunk).unwrap());
            }
            d.finish().unwrap();
            assert_eq!(got, want, "chunks of {size}");
        }
        // Every split point into two chunks.
        for at in 0..=bytes.len() {
            let mut d = LineDecoder::default();
            let mut got = d.push(&bytes[..at]).unwrap();
            got.extend(d.push(&bytes[at..]).unwrap());
            assert_eq!(got, want, "split at {at}");
        }
    }

    #[test]
    fn hostile_watch_lines_are_refused() {
        let mut d = LineDecoder::default();
        assert!(matches!(
            d.push(b"{\"type\":\"MISSED\",\"count\":1}\nnot json\n"),
            Err(RecordsError::BadLine { line: 2, .. })
        ));
        let mut d = LineDecoder::default();
        assert!(matches!(
            d.push(b"{\"type\":\"BOOKMARK\"}\n"),
            Err(RecordsError::BadLine { line: 1, .. })
        ));
        // Too long: refused while still unterminated, without keeping the bytes.
        let mut d = LineDecoder::default();
        d.push(&vec![b' '; MAX_LINE]).unwrap();
        assert!(matches!(
            d.push(b"x"),
            Err(RecordsError::LineTooLong { line: 1 })
        ));
        let mut d = LineDecoder::default();
        let mut long = vec![b'x'; MAX_LINE + 1];
        long.push(b'\n');
        assert!(matches!(
            d.push(&long),
            Err(RecordsError::LineTooLong { line: 1 })
        ));
        // A cut line at the end of the stream; trailing whitespace is fine.
        let mut d = LineDecoder::default();
        d.push(b"{\"type\":\"MISSED\",\"count\":1}\n{\"ty").unwrap();
        assert!(matches!(
            d.finish(),
            Err(RecordsError::Truncated { line: 2 })
        ));
        let mut d = LineDecoder::default();
        assert_eq!(d.push(b"\n\r\n  \n").unwrap(), vec![]);
        d.push(b" \r\n").unwrap();
        d.finish().unwrap();
    }

    #[test]
    fn replay_ids_resolve_through_the_record() {
        let mut with = record(ID);
        with.session = Some(SID.into());
        assert_eq!(
            SessionRef::from_lookup(ID, Ok(with)).unwrap(),
            SessionRef::OfRecord {
                record: ID.into(),
                session: SID.into()
            }
        );
        let direct = SessionRef::from_lookup(SID, Err(RecordsError::NoRecord { id: SID.into() }));
        assert_eq!(direct.unwrap().session(), SID);
        let e = SessionRef::from_lookup(ID, Ok(record(ID))).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "record {ID} (get pods default/web) has no recorded session; only exec, attach \
                 and port-forward are"
            )
        );
        let e = SessionRef::from_lookup(
            ID,
            Err(RecordsError::Forbidden {
                message: "no".into(),
            }),
        );
        assert!(matches!(e, Err(RecordsError::Forbidden { .. })));
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let cases = [
            (
                RecordsError::Unreachable {
                    server: "https://127.0.0.1:9".into(),
                    message: "connection refused".into(),
                },
                "cannot reach https://127.0.0.1:9: connection refused; is the forwarder running? \
                 run `hoop-kube status`",
            ),
            (
                RecordsError::NoRecord { id: ID.into() },
                "no record 0196f2a8-5b7e-7c3d-8e9f-0a1b2c3d4e5f; `hoop-kube sessions list` shows \
                 the records you may see",
            ),
            (
                RecordsError::BadId("12".into()),
                "\"12\" is not a record or session id (a UUID v7 such as 0196f2a8-…; `hoop-kube \
                 sessions list` prints them)",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
            assert!(!e.to_string().contains('\n'));
        }
        assert!(check_id("../../etc/passwd").is_err());
        assert!(check_id(ID).is_ok());
        assert_eq!(
            describe(&Record {
                verb: "get".into(),
                path: "/version".into(),
                ..Record::default()
            }),
            "get /version"
        );
    }

    /// A plain-HTTP stand-in for the forwarder: answers each connection from `answer(request
    /// head)` and closes it.
    mod net {
        use super::*;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        pub(super) async fn serve(
            answer: fn(&str) -> Vec<Vec<u8>>,
        ) -> (RecordsClient, tempfile::TempDir) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let Ok((mut s, _)) = listener.accept().await else {
                        return;
                    };
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        for part in answer(&head) {
                            if s.write_all(&part).await.is_err() {
                                return;
                            }
                            let _ = s.flush().await;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    });
                }
            });
            client_for(&format!("http://{addr}"))
        }

        /// A client whose kubeconfig points at `server` with a static token.
        pub(super) fn client_for(server: &str) -> (RecordsClient, tempfile::TempDir) {
            let dir = tempfile::tempdir().unwrap();
            let kc = dir.path().join("kubeconfig");
            let text = format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: c\n  \
                 cluster:\n    server: {server}\ncontexts:\n- name: t\n  context:\n    \
                 cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: s3cret\n"
            );
            std::fs::write(&kc, text).unwrap();
            let target = crate::review::client::resolve(&kc, None).unwrap();
            (RecordsClient::new(target).unwrap(), dir)
        }

        pub(super) fn respond(code: u16, ctype: &str, body: &str) -> Vec<Vec<u8>> {
            vec![format!(
                "HTTP/1.1 {code} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()]
        }

        pub(super) fn status(code: u16, message: &str) -> Vec<Vec<u8>> {
            let body = serde_json::json!({"kind":"Status","apiVersion":"v1","status":"Failure",
                "message": message, "code": code});
            respond(code, "application/json", &body.to_string())
        }
    }

    fn answer(head: &str) -> Vec<Vec<u8>> {
        let first = head.lines().next().unwrap_or("");
        if !head
            .to_ascii_lowercase()
            .contains("authorization: bearer s3cret")
        {
            return net::status(401, "Unauthorized");
        }
        let path = first.split(' ').nth(1).unwrap_or("");
        let mut r = record(ID);
        r.kubectl_session = Some("ks".into());
        if path.starts_with(&format!("{RECORDS_PATH}?watch=1")) {
            let l1 = line(&r, Stage::ResponseComplete);
            let (a, b) = l1.split_at(20);
            let mut parts = vec![b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\n\r\n"
                .to_vec()];
            let missed = WatchLine::Missed { count: 3 }.to_line();
            for piece in [a, b, missed.as_str()] {
                parts.push(format!("{:x}\r\n{piece}\r\n", piece.len()).into_bytes());
            }
            parts.push(b"0\r\n\r\n".to_vec());
            return parts;
        }
        if path == format!("{RECORDS_PATH}?user=alice&limit=2") {
            let mut older = record(SID);
            older.received -= 1;
            let list = RecordList::new(vec![r, older]);
            return net::respond(
                200,
                "application/json",
                &serde_json::to_string(&list).unwrap(),
            );
        }
        if path == format!("{RECORDS_PATH}?kubectlSession=ks&limit=1000") {
            let mut older = record(SID);
            older.received -= 1;
            let list = RecordList::new(vec![r, older]);
            return net::respond(
                200,
                "application/json",
                &serde_json::to_string(&list).unwrap(),
            );
        }
        if path == format!("{RECORDS_PATH}?user=bob") {
            return net::status(403, "alice may only read her own records");
        }
        if path == format!("{RECORDS_PATH}/{ID}") {
            return net::respond(200, "application/json", &serde_json::to_string(&r).unwrap());
        }
        if path == format!("{SESSIONS_PATH}/{SID}?format=asciicast") {
            let cast = "{\"version\":2,\"width\":80,\"height\":24}\n[0.5, \"o\", \"hi\"]";
            return net::respond(200, "application/x-asciicast", cast);
        }
        if path.starts_with(RECORDS_PATH) || path.starts_with(SESSIONS_PATH) {
            return net::status(404, "not found");
        }
        net::status(500, "what?")
    }

    #[tokio::test]
    async fn client_calls_the_records_api() {
        let (c, _dir) = net::serve(answer).await;
        let f = Filter {
            user: Some("alice".into()),
            limit: Some(2),
            ..Filter::default()
        };
        let list = c.list(&f).await.unwrap();
        assert_eq!(list.items.len(), 2);
        let ks = c.kubectl_session("ks").await.unwrap();
        assert_eq!(
            (ks[0].id.as_str(), ks[1].id.as_str()),
            (SID, ID),
            "oldest first"
        );
        assert_eq!(
            c.get(ID).await.unwrap().kubectl_session.as_deref(),
            Some("ks")
        );
        assert!(matches!(
            c.get(SID).await,
            Err(RecordsError::NoRecord { .. })
        ));
        assert!(matches!(c.get("nope").await, Err(RecordsError::BadId(_))));
        let bob = Filter {
            user: Some("bob".into()),
            ..Filter::default()
        };
        let e = c.list(&bob).await.unwrap_err();
        assert_eq!(e.to_string(), "alice may only read her own records");
        // A record without a session; a session id given directly.
        assert!(matches!(
            c.resolve_session(ID).await,
            Err(RecordsError::NotASession { .. })
        ));
        let s = c.resolve_session(SID).await.unwrap();
        assert_eq!(s, SessionRef::Direct(SID.into()));
        let cast = c.session_cast(SID).await.unwrap();
        assert!(
            cast.starts_with("{\"version\":2") && cast.ends_with("\"hi\"]\n"),
            "{cast}"
        );
        assert!(matches!(
            c.session_cast(ID).await,
            Err(RecordsError::NoSession { .. })
        ));
        assert!(matches!(
            c.session_json(ID).await,
            Err(RecordsError::NoSession { .. })
        ));

        let mut w = c.watch(&f).await.unwrap();
        assert!(matches!(
            w.next().await.unwrap(),
            Some(WatchLine::Record { .. })
        ));
        assert_eq!(
            w.next().await.unwrap(),
            Some(WatchLine::Missed { count: 3 })
        );
        assert_eq!(w.next().await.unwrap(), None, "the relay ended the stream");
    }

    #[tokio::test]
    async fn client_errors_name_the_fix() {
        let (c, _dir) = net::serve(|_| net::status(404, "the server could not find it")).await;
        let e = c.list(&Filter::default()).await.unwrap_err();
        assert!(matches!(e, RecordsError::NotServed { .. }), "{e}");
        let (c, _dir) = net::serve(|_| net::status(401, "Unauthorized")).await;
        let e = c.get(ID).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unauthorized; run `hoop-kube login` (or check the context's credential)"
        );
        let (c, _dir) = net::serve(|_| {
            net::respond(
                200,
                "application/json",
                "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"items\":[]}",
            )
        })
        .await;
        let e = c.list(&Filter::default()).await.unwrap_err();
        assert!(matches!(e, RecordsError::BadAnswer { .. }), "{e}");
        // Nothing listening.
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (c, _dir) = net::client_for(&format!("http://127.0.0.1:{port}"));
        let e = c.list(&Filter::default()).await.unwrap_err();
        assert!(matches!(e, RecordsError::Unreachable { .. }), "{e}");
        assert!(
            e.to_string()
                .ends_with("is the forwarder running? run `hoop-kube status`"),
            "{e}"
        );
    }
}
