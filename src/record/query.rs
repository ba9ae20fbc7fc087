//! The records API's wire types: routes, query parameters and responses.
//!
//! Routes (GET only; HEAD is not served):
//! - `/hoop-kube/v1/records?user=&agent=&agentSession=&since=&until=&verb=&resource=&namespace=&decision=&kubectlSession=&limit=&format=`
//!   → a [`RecordList`] newest first (`format=audit`: an `audit.k8s.io/v1` `EventList`).
//! - `/hoop-kube/v1/records?watch=1&…filters…` → newline-delimited JSON [`WatchLine`]s of the
//!   live feed, filtered; `since` first lists what matched since then (oldest first), then
//!   follows. `until`, `limit` and `format` do not apply to a watch.
//! - `/hoop-kube/v1/records/{id}` → one [`Record`].
//! - `/hoop-kube/v1/sessions/{id}?format=json|asciicast` → a session export or its asciicast.
//!
//! What it trusts: nothing. What it rejects ([`QueryError`]): other methods and paths, ids not
//! of the record id shape, unknown or repeated parameters, empty or over-long values, bad
//! times (RFC 3339, or a relative duration `30s`, `15m`, `2h`, `3d`, `1w`, combinable as
//! `1h30m`, meaning "that long before now"), `since` not before `until`, limits outside
//! 1..=1000, unknown decisions or formats, and parameters that do not apply to the route.

use serde::{Deserialize, Serialize};

use super::event::{parse_time, Decision, Record, Stage};
use super::store::{RecordFilter, DEFAULT_LIMIT, MAX_LIMIT};

/// `apiVersion` of the records API's own documents.
pub const API_VERSION: &str = "hoop-kube.dev/v1";
/// Where the records API lives.
pub const RECORDS_PATH: &str = "/hoop-kube/v1/records";
pub const SESSIONS_PATH: &str = "/hoop-kube/v1/sessions";
/// Longest accepted parameter value.
pub const MAX_VALUE_LEN: usize = 512;
/// Longest relative duration accepted (ten years).
const MAX_RELATIVE_US: i64 = 10 * 366 * 24 * 3600 * 1_000_000;

/// How a list is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListFormat {
    /// [`RecordList`].
    #[default]
    Records,
    /// `audit.k8s.io/v1` `EventList` of each record's latest stage.
    Audit,
}

/// How a session is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionFormat {
    /// [`super::asciicast::SessionExport`].
    #[default]
    Json,
    /// asciicast v2 (`application/x-asciicast`).
    Asciicast,
}

/// A records API request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    List {
        filter: RecordFilter,
        format: ListFormat,
    },
    /// Live feed; `filter.since` asks for a backlog first, `filter.limit` is unused.
    Watch {
        filter: RecordFilter,
    },
    Get {
        id: String,
    },
    Session {
        id: String,
        format: SessionFormat,
    },
}

/// Why a records API request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("no such records API path")]
    NotFound,
    #[error("method not allowed (only GET)")]
    MethodNotAllowed,
    #[error("invalid record or session id")]
    BadId,
    #[error("unknown parameter {0:?}")]
    UnknownParameter(String),
    #[error("parameter {0:?} given more than once")]
    Duplicate(String),
    #[error("parameter {0:?} does not apply here")]
    NotApplicable(String),
    #[error("invalid value for {param:?}: {reason}")]
    BadValue { param: String, reason: &'static str },
    #[error("invalid time for {param:?}: expected RFC 3339 or a duration like 15m, 2h, 3d")]
    BadTime { param: String },
    #[error("since must be before until")]
    EmptyRange,
}

impl QueryError {
    /// The HTTP status the relay answers with.
    #[must_use]
    pub fn code(&self) -> u16 {
        match self {
            QueryError::NotFound => 404,
            QueryError::MethodNotAllowed => 405,
            _ => 400,
        }
    }
}

/// Route a request; `Ok(None)` when the path is not under the records API at all. `now` (Unix
/// µs) anchors relative times.
///
/// # Errors
/// See [`QueryError`].
pub fn route(
    method: &http::Method,
    path: &str,
    query: Option<&str>,
    now: i64,
) -> Result<Option<Route>, QueryError> {
    let (base, rest) = if let Some(rest) = path.strip_prefix(RECORDS_PATH) {
        (RECORDS_PATH, rest)
    } else if let Some(rest) = path.strip_prefix(SESSIONS_PATH) {
        (SESSIONS_PATH, rest)
    } else {
        return Ok(None);
    };
    let id = match rest {
        "" | "/" => None,
        r => match r.strip_prefix('/') {
            Some(id) if super::id::is_id(id) => Some(id.to_string()),
            Some(id) if !id.contains('/') => return Err(QueryError::BadId),
            Some(_) => return Err(QueryError::NotFound),
            // `/hoop-kube/v1/recordsX`: not ours.
            None => return Ok(None),
        },
    };
    if method != http::Method::GET {
        return Err(QueryError::MethodNotAllowed);
    }
    let params = Params::parse(query.unwrap_or(""))?;
    match (base, id) {
        (RECORDS_PATH, None) => list_or_watch(params, now).map(Some),
        (RECORDS_PATH, Some(id)) => {
            params.only(&[])?;
            Ok(Some(Route::Get { id }))
        }
        (_, Some(id)) => {
            params.only(&["format"])?;
            let format = match params.get("format") {
                None | Some("json") => SessionFormat::Json,
                Some("asciicast") => SessionFormat::Asciicast,
                Some(_) => return Err(bad("format", "expected json or asciicast")),
            };
            Ok(Some(Route::Session { id, format }))
        }
        (_, None) => Err(QueryError::NotFound),
    }
}

fn bad(param: &str, reason: &'static str) -> QueryError {
    QueryError::BadValue {
        param: param.to_string(),
        reason,
    }
}

const FILTERS: [&str; 10] = [
    "user",
    "agent",
    "agentSession",
    "since",
    "until",
    "verb",
    "resource",
    "namespace",
    "decision",
    "kubectlSession",
];

fn list_or_watch(p: Params, now: i64) -> Result<Route, QueryError> {
    let watch = match p.get("watch") {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(bad("watch", "expected 1, true, 0 or false")),
    };
    let mut allowed: Vec<&str> = FILTERS.to_vec();
    allowed.push("watch");
    if watch {
        for name in ["until", "limit", "format"] {
            if p.get(name).is_some() {
                return Err(QueryError::NotApplicable(name.to_string()));
            }
        }
    } else {
        allowed.extend(["limit", "format"]);
    }
    p.only(&allowed)?;
    let text = |name: &str| p.get(name).map(str::to_string);
    let time = |name: &str| {
        p.get(name)
            .map(|v| {
                parse_when(v, now).ok_or_else(|| QueryError::BadTime {
                    param: name.to_string(),
                })
            })
            .transpose()
    };
    let decision = match p.get("decision") {
        None => None,
        Some(d) => Some(Decision::parse(d).ok_or_else(|| {
            bad(
                "decision",
                "expected allow, deny, review, approved or refused",
            )
        })?),
    };
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) && !l.starts_with('+') => n,
            _ => return Err(bad("limit", "expected a number from 1 to 1000")),
        },
    };
    let filter = RecordFilter {
        user: text("user"),
        agent: text("agent"),
        agent_session: text("agentSession"),
        since: time("since")?,
        until: time("until")?,
        verb: text("verb"),
        resource: text("resource"),
        namespace: text("namespace"),
        decision,
        kubectl_session: text("kubectlSession"),
        limit,
    };
    if let (Some(s), Some(u)) = (filter.since, filter.until) {
        if s >= u {
            return Err(QueryError::EmptyRange);
        }
    }
    if watch {
        return Ok(Route::Watch { filter });
    }
    let format = match p.get("format") {
        None | Some("records") => ListFormat::Records,
        Some("audit") => ListFormat::Audit,
        Some(_) => return Err(bad("format", "expected records or audit")),
    };
    Ok(Route::List { filter, format })
}

/// Decoded query parameters, each at most once.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Result<Params, QueryError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if out.iter().any(|(n, _)| *n == k) {
                return Err(QueryError::Duplicate(k.chars().take(64).collect()));
            }
            if v.is_empty() {
                return Err(bad(&k, "empty"));
            }
            if v.len() > MAX_VALUE_LEN {
                return Err(bad(&k, "too long"));
            }
            if v.chars().any(char::is_control) {
                return Err(bad(&k, "control character"));
            }
            out.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Refuse any parameter not in `allowed`.
    fn only(&self, allowed: &[&str]) -> Result<(), QueryError> {
        match self.0.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
            Some((n, _))
                if FILTERS.contains(&n.as_str())
                    || ["watch", "limit", "format"].contains(&n.as_str()) =>
            {
                Err(QueryError::NotApplicable(n.clone()))
            }
            Some((n, _)) => Err(QueryError::UnknownParameter(n.chars().take(64).collect())),
            None => Ok(()),
        }
    }
}

/// An RFC 3339 time, or a duration before `now` (`90s`, `15m`, `2h`, `3d`, `1w`, `1h30m`).
#[must_use]
pub fn parse_when(v: &str, now: i64) -> Option<i64> {
    if v.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && v.bytes().last().is_some_and(|b| b.is_ascii_alphabetic())
    {
        if let Some(d) = parse_duration_us(v) {
            return Some(now.saturating_sub(d));
        }
    }
    parse_time(v)
}

/// `1h30m` → microseconds; units s, m, h, d, w; at most ten years.
#[must_use]
pub fn parse_duration_us(v: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    for b in v.bytes() {
        match b {
            b'0'..=b'9' => {
                num = Some(
                    num.unwrap_or(0)
                        .checked_mul(10)?
                        .checked_add(i64::from(b - b'0'))?,
                )
            }
            _ => {
                let unit: i64 = match b {
                    b's' => 1,
                    b'm' => 60,
                    b'h' => 3600,
                    b'd' => 86_400,
                    b'w' => 604_800,
                    _ => return None,
                };
                total =
                    total.checked_add(num.take()?.checked_mul(unit)?.checked_mul(1_000_000)?)?;
            }
        }
    }
    (num.is_none() && !v.is_empty() && total <= MAX_RELATIVE_US).then_some(total)
}

impl RecordFilter {
    /// Whether `r` passes the filter (for the live feed; `limit` does not apply).
    #[must_use]
    pub fn matches(&self, r: &Record) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.user
            .as_deref()
            .is_none_or(|u| u == r.username || u == r.subject)
            && self
                .agent
                .as_deref()
                .is_none_or(|a| r.agent.as_deref() == Some(a))
            && self
                .agent_session
                .as_deref()
                .is_none_or(|a| r.agent_session.as_deref() == Some(a))
            && self.since.is_none_or(|s| r.received >= s)
            && self.until.is_none_or(|u| r.received < u)
            && eq(&self.verb, &r.verb)
            && eq(&self.resource, &r.resource)
            && eq(&self.namespace, &r.namespace)
            && self.decision.is_none_or(|d| d == r.decision)
            && self
                .kubectl_session
                .as_deref()
                .is_none_or(|k| r.kubectl_session.as_deref() == Some(k))
    }
}

/// `GET /hoop-kube/v1/records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordList {
    pub kind: String,
    pub api_version: String,
    pub items: Vec<Record>,
}

impl RecordList {
    #[must_use]
    pub fn new(items: Vec<Record>) -> RecordList {
        RecordList {
            kind: "RecordList".into(),
            api_version: API_VERSION.into(),
            items,
        }
    }
}

/// One line of a watch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WatchLine {
    /// A record reached `stage` (written and committed).
    Record { stage: Stage, record: Box<Record> },
    /// The stream fell behind and `count` writes were skipped; list them with `since`.
    Missed { count: u64 },
}

impl WatchLine {
    /// The line, with its newline.
    #[must_use]
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
