//! The records store's schema and every SQL statement, with the row ↔ type mapping.
//!
//! Why a file of its own: the writer thread ([`super::store_writer`]) and the readers
//! ([`super::store`]) share these statements and must agree on column order; keeping them
//! together makes that one place to read. All statements are prepared and cached; no value is
//! ever formatted into SQL text (only the fixed column list and fixed filter clauses are).
//!
//! Schema version 2 (`PRAGMA user_version`; version 1 lacked `records.agent_session` and is
//! migrated in place): `records` (one row per request; `seq` is the
//! insertion order and the rowid; indexes for every list filter, each ending in `received_us`
//! so a filter plus the time range and the newest-first order use one index), `sessions` (one
//! row per exec/attach/port-forward, the summary as JSON) and `session_events` (the session's
//! events, keyed by (session, seq), without rowid).

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::event::{Decision, Record};
use super::exec::{EventKind, SessionEvent, SessionKind};
use super::store::{RecordFilter, SessionInfo};

/// The schema version this code reads and writes.
pub(super) const SCHEMA_VERSION: i64 = 2;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    received_us INTEGER NOT NULL,
    started_us INTEGER,
    completed_us INTEGER,
    latency_us INTEGER,
    subject TEXT NOT NULL,
    username TEXT NOT NULL,
    groups TEXT NOT NULL,
    agent TEXT,
    client_cert_serial TEXT,
    source_ips TEXT NOT NULL,
    user_agent TEXT,
    kubectl_command TEXT,
    kubectl_session TEXT,
    verb TEXT NOT NULL,
    api_group TEXT NOT NULL,
    api_version TEXT NOT NULL,
    resource TEXT NOT NULL,
    subresource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT,
    decision TEXT NOT NULL,
    rule TEXT,
    review TEXT,
    code INTEGER,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    masked INTEGER NOT NULL,
    session TEXT,
    agent_session TEXT
);
CREATE INDEX IF NOT EXISTS records_by_time ON records (received_us);
CREATE INDEX IF NOT EXISTS records_by_subject ON records (subject, received_us);
CREATE INDEX IF NOT EXISTS records_by_username ON records (username, received_us);
CREATE INDEX IF NOT EXISTS records_by_agent ON records (agent, received_us) WHERE agent IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_agent_session ON records (agent_session, received_us) WHERE agent_session IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_verb ON records (verb, received_us);
CREATE INDEX IF NOT EXISTS records_by_resource ON records (resource, received_us);
CREATE INDEX IF NOT EXISTS records_by_namespace ON records (namespace, received_us);
CREATE INDEX IF NOT EXISTS records_by_decision ON records (decision, received_us);
CREATE INDEX IF NOT EXISTS records_by_kubectl_session ON records (kubectl_session, received_us) WHERE kubectl_session IS NOT NULL;
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    transport TEXT NOT NULL,
    started_us INTEGER NOT NULL,
    ended_us INTEGER,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_record ON sessions (record_id);
CREATE INDEX IF NOT EXISTS sessions_by_time ON sessions (started_us);
CREATE TABLE IF NOT EXISTS session_events (
    session TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data BLOB,
    a INTEGER,
    b INTEGER,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
";

const COLUMNS: &str = "id, received_us, started_us, completed_us, latency_us, subject, username, groups, agent, client_cert_serial, source_ips, user_agent, kubectl_command, kubectl_session, verb, api_group, api_version, resource, subresource, namespace, name, method, path, query, decision, rule, review, code, bytes_in, bytes_out, masked, session, agent_session";

/// Create or check the schema. A newer schema than this code knows is refused.
pub(super) fn migrate(c: &Connection) -> Result<(), MigrateError> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        0 => {
            c.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
            Ok(())
        }
        1 => {
            c.execute_batch(&format!("BEGIN; ALTER TABLE records ADD COLUMN agent_session TEXT; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        v => Err(MigrateError::TooNew(v)),
    }
}

/// Why the schema could not be used.
#[derive(Debug)]
pub(super) enum MigrateError {
    Sqlite(rusqlite::Error),
    TooNew(i64),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sqlite(e)
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(super) fn insert(tx: &Transaction<'_>, r: &Record) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO records ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)"
    ))?;
    st.execute(params![
        r.id,
        r.received,
        r.started,
        r.completed,
        r.latency_us.map(i64_of),
        r.subject,
        r.username,
        json_list(&r.groups),
        r.agent,
        r.client_cert_serial,
        json_list(&r.source_ips),
        r.user_agent,
        r.kubectl_command,
        r.kubectl_session,
        r.verb,
        r.api_group,
        r.api_version,
        r.resource,
        r.subresource,
        r.namespace,
        r.name,
        r.method,
        r.path,
        r.query,
        r.decision.as_str(),
        r.rule,
        r.review,
        r.code,
        i64_of(r.bytes_in),
        i64_of(r.bytes_out),
        i64_of(r.masked),
        r.session,
        r.agent_session,
    ])?;
    Ok(())
}

fn read_record(r: &Row<'_>) -> rusqlite::Result<Record> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let s: String = r.get(i)?;
        Ok(serde_json::from_str(&s).unwrap_or_default())
    };
    let decision: String = r.get(24)?;
    Ok(Record {
        id: r.get(0)?,
        received: r.get(1)?,
        started: r.get(2)?,
        completed: r.get(3)?,
        latency_us: r.get::<_, Option<i64>>(4)?.map(u64_of),
        subject: r.get(5)?,
        username: r.get(6)?,
        groups: list(7)?,
        agent: r.get(8)?,
        client_cert_serial: r.get(9)?,
        source_ips: list(10)?,
        user_agent: r.get(11)?,
        kubectl_command: r.get(12)?,
        kubectl_session: r.get(13)?,
        verb: r.get(14)?,
        api_group: r.get(15)?,
        api_version: r.get(16)?,
        resource: r.get(17)?,
        subresource: r.get(18)?,
        namespace: r.get(19)?,
        name: r.get(20)?,
        method: r.get(21)?,
        path: r.get(22)?,
        query: r.get(23)?,
        // Only this code writes the column; an unknown name reads as the fail-closed default.
        decision: Decision::parse(&decision).unwrap_or_default(),
        rule: r.get(25)?,
        review: r.get(26)?,
        code: r.get(27)?,
        bytes_in: u64_of(r.get(28)?),
        bytes_out: u64_of(r.get(29)?),
        masked: u64_of(r.get(30)?),
        session: r.get(31)?,
        agent_session: r.get(32)?,
    })
}

/// What [`started`] and [`complete`] found.
pub(super) enum Update {
    Done(Box<Record>),
    /// Already completed (no change made).
    AlreadyComplete,
    NotFound,
}

pub(super) fn started(
    tx: &Transaction<'_>,
    id: &str,
    code: u16,
    at: i64,
) -> rusqlite::Result<Update> {
    let mut st = tx.prepare_cached(&format!(
        "UPDATE records SET started_us = ?2, code = ?3 WHERE id = ?1 AND completed_us IS NULL RETURNING {COLUMNS}"
    ))?;
    match st
        .query_row(params![id, at, code], read_record)
        .optional()?
    {
        Some(r) => Ok(Update::Done(Box::new(r))),
        None => not_updated(tx, id),
    }
}

/// The completion of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub code: u16,
    /// Unix µs.
    pub completed: i64,
    pub latency_us: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub masked: u64,
}

pub(super) fn complete(tx: &Transaction<'_>, id: &str, c: &Completion) -> rusqlite::Result<Update> {
    let mut st = tx.prepare_cached(&format!(
        "UPDATE records SET completed_us = ?2, code = ?3, latency_us = ?4, bytes_in = ?5, bytes_out = ?6, masked = ?7
         WHERE id = ?1 AND completed_us IS NULL RETURNING {COLUMNS}"
    ))?;
    let row = st
        .query_row(
            params![
                id,
                c.completed,
                c.code,
                i64_of(c.latency_us),
                i64_of(c.bytes_in),
                i64_of(c.bytes_out),
                i64_of(c.masked)
            ],
            read_record,
        )
        .optional()?;
    match row {
        Some(r) => Ok(Update::Done(Box::new(r))),
        None => not_updated(tx, id),
    }
}

fn not_updated(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Update> {
    let mut st = tx.prepare_cached("SELECT 1 FROM records WHERE id = ?1")?;
    Ok(match st.query_row(params![id], |_| Ok(())).optional()? {
        Some(()) => Update::AlreadyComplete,
        None => Update::NotFound,
    })
}

pub(super) fn get(c: &Connection, id: &str) -> rusqlite::Result<Option<Record>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM records WHERE id = ?1"))?;
    st.query_row(params![id], read_record).optional()
}

/// Newest first, every filter ANDed. The WHERE clause is built from fixed fragments; values
/// are bound.
pub(super) fn list(c: &Connection, f: &RecordFilter) -> rusqlite::Result<Vec<Record>> {
    use rusqlite::types::Value;
    let text = |v: &Option<String>| v.clone().map(Value::from);
    let decision = f.decision.map(|d| Value::from(d.as_str().to_string()));
    let user = text(&f.user);
    let filters: [(&str, Option<Value>); 11] = [
        ("username = ?", user.clone()),
        ("subject = ?", user),
        ("agent = ?", text(&f.agent)),
        ("agent_session = ?", text(&f.agent_session)),
        ("verb = ?", text(&f.verb)),
        ("resource = ?", text(&f.resource)),
        ("namespace = ?", text(&f.namespace)),
        ("kubectl_session = ?", text(&f.kubectl_session)),
        ("decision = ?", decision),
        ("received_us >= ?", f.since.map(Value::from)),
        ("received_us < ?", f.until.map(Value::from)),
    ];
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    for (i, (clause, value)) in filters.into_iter().enumerate() {
        let Some(value) = value else { continue };
        if i == 1 {
            // The user matches the user name or the subject.
            if let Some(last) = clauses.last_mut() {
                *last = format!("({last} OR {clause})");
            }
        } else {
            clauses.push(clause.to_string());
        }
        values.push(value);
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    values.push(Value::from(i64::try_from(f.limit).unwrap_or(i64::MAX)));
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM records {filter} ORDER BY received_us DESC, seq DESC LIMIT ?"
    ))?;
    let rows = st
        .query_map(rusqlite::params_from_iter(values), read_record)?
        .collect();
    rows
}

/// Every request of one kubectl invocation, oldest first.
pub(super) fn kubectl_session(
    c: &Connection,
    session: &str,
    limit: usize,
) -> rusqlite::Result<Vec<Record>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM records WHERE kubectl_session = ?1 ORDER BY received_us, seq LIMIT ?2"
    ))?;
    let rows = st
        .query_map(
            params![session, i64::try_from(limit).unwrap_or(i64::MAX)],
            read_record,
        )?
        .collect();
    rows
}

pub(super) fn session_begin(tx: &Transaction<'_>, s: &SessionInfo) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO sessions (id, record_id, kind, transport, started_us, ended_us, summary) VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL)",
    )?;
    st.execute(params![
        s.id,
        s.record_id,
        s.kind.as_str(),
        s.transport,
        s.started
    ])?;
    Ok(())
}

/// Append events after the session's last; false when the session does not exist.
pub(super) fn session_append(
    tx: &Transaction<'_>,
    session: &str,
    events: &[SessionEvent],
) -> rusqlite::Result<bool> {
    let next: Option<i64> = {
        let mut st = tx.prepare_cached(
            "SELECT (SELECT COALESCE(MAX(seq), -1) + 1 FROM session_events WHERE session = ?1) FROM sessions WHERE id = ?1",
        )?;
        st.query_row(params![session], |r| r.get(0)).optional()?
    };
    let Some(mut seq) = next else {
        return Ok(false);
    };
    let mut st = tx.prepare_cached("INSERT INTO session_events (session, seq, at_us, kind, data, a, b) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
    for e in events {
        let (kind, data, a, b) = columns_of(&e.kind);
        st.execute(params![session, seq, i64_of(e.at_us), kind, data, a, b])?;
        seq += 1;
    }
    Ok(true)
}

/// The columns of one event: kind, data, a, b.
fn columns_of(k: &EventKind) -> (&'static str, Option<&[u8]>, Option<i64>, Option<i64>) {
    use super::exec::Direction;
    match k {
        EventKind::Input { data } => ("i", Some(data), None, None),
        EventKind::Output { data } => ("o", Some(data), None, None),
        EventKind::Error { data } => ("e", Some(data), None, None),
        EventKind::Resize { width, height } => {
            ("r", None, Some((*width).into()), Some((*height).into()))
        }
        EventKind::Exit { code } => ("x", None, Some((*code).into()), None),
        EventKind::Failure { message } => ("f", Some(message.as_bytes()), None, None),
        EventKind::PortData {
            port,
            direction: Direction::Upstream,
            bytes,
        } => ("pu", None, Some((*port).into()), Some(i64_of(*bytes))),
        EventKind::PortData {
            port,
            direction: Direction::Downstream,
            bytes,
        } => ("pd", None, Some((*port).into()), Some(i64_of(*bytes))),
        EventKind::PortError { port, message } => {
            ("pe", Some(message.as_bytes()), Some((*port).into()), None)
        }
    }
}

fn event_of(r: &Row<'_>) -> rusqlite::Result<(u64, SessionEvent)> {
    use super::exec::Direction;
    let seq: i64 = r.get(0)?;
    let at_us: i64 = r.get(1)?;
    let kind: String = r.get(2)?;
    let data: Option<Vec<u8>> = r.get(3)?;
    let (a, b): (Option<i64>, Option<i64>) = (r.get(4)?, r.get(5)?);
    let bytes = || bytes::Bytes::from(data.clone().unwrap_or_default());
    let text = || String::from_utf8_lossy(data.as_deref().unwrap_or_default()).into_owned();
    let small = |v: Option<i64>| u16::try_from(v.unwrap_or(0)).unwrap_or(0);
    let port = |direction| EventKind::PortData {
        port: small(a),
        direction,
        bytes: u64_of(b.unwrap_or(0)),
    };
    let kind = match kind.as_str() {
        "i" => EventKind::Input { data: bytes() },
        "o" => EventKind::Output { data: bytes() },
        "e" => EventKind::Error { data: bytes() },
        "r" => EventKind::Resize {
            width: small(a),
            height: small(b),
        },
        "x" => EventKind::Exit {
            code: i32::try_from(a.unwrap_or(0)).unwrap_or(-1),
        },
        "pu" => port(Direction::Upstream),
        "pd" => port(Direction::Downstream),
        "pe" => EventKind::PortError {
            port: small(a),
            message: text(),
        },
        _ => EventKind::Failure { message: text() },
    };
    Ok((
        u64_of(seq),
        SessionEvent {
            at_us: u64_of(at_us),
            kind,
        },
    ))
}

pub(super) fn session_end(
    tx: &Transaction<'_>,
    session: &str,
    ended: i64,
    summary: &str,
) -> rusqlite::Result<bool> {
    let mut st =
        tx.prepare_cached("UPDATE sessions SET ended_us = ?2, summary = ?3 WHERE id = ?1")?;
    Ok(st.execute(params![session, ended, summary])? == 1)
}

pub(super) fn session(c: &Connection, id: &str) -> rusqlite::Result<Option<SessionInfo>> {
    let mut st = c.prepare_cached("SELECT id, record_id, kind, transport, started_us, ended_us, summary FROM sessions WHERE id = ?1")?;
    st.query_row(params![id], |r| {
        let kind: String = r.get(2)?;
        let summary: Option<String> = r.get(6)?;
        Ok(SessionInfo {
            id: r.get(0)?,
            record_id: r.get(1)?,
            kind: SessionKind::parse(&kind).unwrap_or(SessionKind::Exec),
            transport: r.get(3)?,
            started: r.get(4)?,
            ended: r.get(5)?,
            summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
        })
    })
    .optional()
}

/// Events of a session with `seq >= from`, in order, at most `limit`.
pub(super) fn session_events(
    c: &Connection,
    id: &str,
    from: u64,
    limit: usize,
) -> rusqlite::Result<Vec<(u64, SessionEvent)>> {
    let mut st = c.prepare_cached("SELECT seq, at_us, kind, data, a, b FROM session_events WHERE session = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3")?;
    let rows = st
        .query_map(
            params![id, i64_of(from), i64::try_from(limit).unwrap_or(i64::MAX)],
            event_of,
        )?
        .collect();
    rows
}

/// Rows removed by one purge step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub records: u64,
    pub sessions: u64,
    pub events: u64,
}

/// Delete at most `chunk` records received before `cutoff` (Unix µs) or beyond the newest
/// `keep`, then the sessions (and events) of records that are gone.
pub(super) fn purge(
    tx: &Transaction<'_>,
    cutoff: Option<i64>,
    keep: Option<u64>,
    chunk: usize,
) -> rusqlite::Result<PurgeReport> {
    let chunk = i64::try_from(chunk).unwrap_or(i64::MAX);
    let mut report = PurgeReport::default();
    if let Some(cutoff) = cutoff {
        let mut st = tx.prepare_cached("DELETE FROM records WHERE seq IN (SELECT seq FROM records WHERE received_us < ?1 ORDER BY received_us LIMIT ?2)")?;
        report.records += st.execute(params![cutoff, chunk])? as u64;
    }
    if let Some(keep) = keep {
        let mut st = tx.prepare_cached(
            "DELETE FROM records WHERE seq IN (SELECT seq FROM records ORDER BY seq DESC LIMIT ?2 OFFSET ?1)",
        )?;
        report.records += st.execute(params![i64_of(keep), chunk])? as u64;
    }
    let gone: Vec<String> = {
        let mut st = tx.prepare_cached(
            "DELETE FROM sessions WHERE record_id NOT IN (SELECT id FROM records) RETURNING id",
        )?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        rows
    };
    let mut st = tx.prepare_cached("DELETE FROM session_events WHERE session = ?1")?;
    for id in &gone {
        report.events += st.execute(params![id])? as u64;
    }
    report.sessions = gone.len() as u64;
    Ok(report)
}
