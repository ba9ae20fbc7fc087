//! The agent registry's file: schema, identity check and row mapping.
//!
//! Why a file of its own: [`super`] keeps the in-memory side and the write paths; what the file
//! looks like — and what makes a file a registry — is read here in one place. No value is ever
//! formatted into SQL text (only the fixed column list is).
//!
//! Schema version 1 (`PRAGMA user_version`, `PRAGMA application_id` [`APPLICATION_ID`]): one
//! table, `agent_sessions`, keyed by session id, times in Unix µs, groups as a JSON array, state
//! `active` | `revoked` | `stopped` (expiry is computed, never stored), and the counters.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row};

use super::{Counters, Ending, NewSession, RegistryError, SessionState};

/// `PRAGMA application_id` of a registry file: "hkag".
pub const APPLICATION_ID: i32 = 0x686b_6167;
/// The schema version this code reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE agent_sessions (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    subject TEXT NOT NULL,
    username TEXT NOT NULL,
    groups TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    not_after_us INTEGER NOT NULL,
    state TEXT NOT NULL,
    ended_us INTEGER,
    ended_by TEXT,
    command TEXT,
    cert_serial TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    mutating INTEGER NOT NULL DEFAULT 0,
    deletes INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX agent_sessions_by_not_after ON agent_sessions (not_after_us);
";

pub(super) const COLUMNS: &str = "id, agent, subject, username, groups, created_us, not_after_us, state, ended_us, ended_by, command, cert_serial, requests, mutating, deletes";

pub(super) use crate::record::store::create_private;

pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

pub(super) fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) fn state_name(s: SessionState) -> &'static str {
    match s {
        SessionState::Revoked => "revoked",
        SessionState::Stopped => "stopped",
        _ => "active",
    }
}

/// A row as a session. An unknown state counts as revoked: fail closed.
pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<(NewSession, Option<Ending>, Counters)> {
    let groups: String = r.get(4)?;
    let session = NewSession {
        id: r.get(0)?,
        agent: r.get(1)?,
        subject: r.get(2)?,
        username: r.get(3)?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        created_at: from_micros(r.get(5)?),
        not_after: from_micros(r.get(6)?),
        cert_serial: r.get(11)?,
        command: r.get(10)?,
    };
    let state = match r.get::<_, String>(7)?.as_str() {
        "active" => None,
        "stopped" => Some(SessionState::Stopped),
        _ => Some(SessionState::Revoked),
    };
    let ended_us: Option<i64> = r.get(8)?;
    let ending = state.map(|state| Ending { state, at: from_micros(ended_us.unwrap_or(0)), by: r.get(9).ok().flatten() });
    let counters = Counters { requests: u64_of(r.get(12)?), mutating: u64_of(r.get(13)?), deletes: u64_of(r.get(14)?) };
    Ok((session, ending, counters))
}

/// Create the schema in a new (empty) file, or check that this file is a registry we can read.
pub(super) fn migrate(conn: &Connection, name: &str) -> Result<(), RegistryError> {
    let sqlite = |source| RegistryError::Sqlite { path: name.to_string(), source };
    let not_ours = |why: String| RegistryError::NotARegistry { path: name.to_string(), why };
    // IMMEDIATE: two relays opening a new file at once create the schema once.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite)?;
    let result = (|| {
        let app: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(sqlite)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sqlite)?;
        let tables: Vec<String> = {
            let mut st = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").map_err(sqlite)?;
            let rows = st.query_map([], |r| r.get(0)).map_err(sqlite)?;
            rows.collect::<Result<_, _>>().map_err(sqlite)?
        };
        match (app, version) {
            (0, 0) if tables.is_empty() => {
                conn.execute_batch(&format!("{SCHEMA} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};")).map_err(sqlite)
            }
            (APPLICATION_ID, SCHEMA_VERSION) if tables.iter().any(|t| t == "agent_sessions") => Ok(()),
            (APPLICATION_ID, v) if v > SCHEMA_VERSION => Err(RegistryError::SchemaTooNew { path: name.to_string(), version: v }),
            (APPLICATION_ID, v) => Err(not_ours(format!("it is marked as one, but schema version {v} has no agent_sessions table"))),
            (0, _) => Err(not_ours(format!("it is an SQLite database holding other tables ({})", crate::text::clip(&tables.join(", "), 120)))),
            (other, _) => Err(not_ours(format!("it is an SQLite database of another application (application_id {other:#x})"))),
        }
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(sqlite)?;
    result
}
