//! asciicast v2 output of a recorded session (`sessions replay`, and files `asciinema play`
//! reads), plus the plain JSON export of a session.
//!
//! Why it exists: a terminal session is only useful to a reviewer when it can be watched. The
//! format (<https://docs.asciinema.org/manual/asciicast/v2/>) is a header line
//! `{"version":2,"width":W,"height":H,"timestamp":T,"env":{…},"title":…}` and then one JSON
//! array per event: `[seconds, "o", data]` for output (stdout and stderr: both reach the
//! terminal), `[seconds, "i", data]` for input (only when stdin was recorded), `[seconds, "r",
//! "WxH"]` for a resize.
//!
//! UTF-8: event data must be a JSON string, the recorded bytes are arbitrary and chunk borders
//! fall anywhere, including inside a multi-byte character. [`Utf8Carry`] keeps an incomplete
//! trailing sequence (at most 3 bytes) for the next chunk of the same stream and replaces only
//! truly invalid bytes with U+FFFD, as `String::from_utf8_lossy` would on the whole stream.
//!
//! What it trusts: events from the store. Terminal escape sequences in the data are kept (that
//! is the recording); replaying them is the player's business ([`super::replay`]).

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::event::Record;
use super::exec::{EventKind, SessionEvent};
use super::store::SessionInfo;

/// The asciicast v2 header line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub version: u8,
    pub width: u16,
    pub height: u16,
    /// Unix seconds of the session's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Terminal size used when the session never reported one (no TTY, or no resize).
pub const DEFAULT_SIZE: (u16, u16) = (80, 24);

impl Header {
    /// The header for a session: the first resize gives the size, the record the title
    /// (`kubectl exec` command line from the query when there is one).
    #[must_use]
    pub fn for_session(
        info: &SessionInfo,
        record: Option<&Record>,
        events: &[SessionEvent],
    ) -> Header {
        let (width, height) = events
            .iter()
            .find_map(|e| match e.kind {
                EventKind::Resize { width, height } => Some((width, height)),
                _ => None,
            })
            .unwrap_or(DEFAULT_SIZE);
        let title = record.map(|r| {
            let target = if r.namespace.is_empty() {
                r.name.clone()
            } else {
                format!("{}/{}", r.namespace, r.name)
            };
            format!("{} {} {target} ({})", r.username, info.kind.as_str(), r.id)
        });
        let mut env = BTreeMap::new();
        env.insert("TERM".to_string(), "xterm-256color".to_string());
        Header {
            version: 2,
            width,
            height,
            timestamp: Some(info.started.div_euclid(1_000_000)),
            env,
            title,
        }
    }
}

/// Carries an incomplete UTF-8 sequence from one chunk of a stream to the next.
#[derive(Debug, Default, Clone)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// Decode `data` after what was carried; an incomplete sequence at the end is kept.
    pub fn push(&mut self, data: &[u8]) -> String {
        let mut joined;
        let mut input: &[u8] = if self.pending.is_empty() {
            data
        } else {
            joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(data);
            &joined
        };
        let mut out = String::with_capacity(input.len());
        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let (good, rest) = input.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            input = &rest[n..];
                        }
                        None => {
                            // Incomplete at the end: at most 3 bytes, kept for the next chunk.
                            self.pending = rest.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// The stream ended: a sequence still incomplete is invalid.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

/// `seconds` with microsecond precision, as a JSON number.
fn seconds(at_us: u64) -> String {
    format!("{}.{:06}", at_us / 1_000_000, at_us % 1_000_000)
}

/// Writes an asciicast v2 stream event by event.
#[derive(Debug)]
pub struct CastWriter<W: Write> {
    out: W,
    stdout: Utf8Carry,
    stderr: Utf8Carry,
    stdin: Utf8Carry,
    last_us: u64,
}

impl<W: Write> CastWriter<W> {
    /// Write the header line.
    ///
    /// # Errors
    /// Writing failed.
    pub fn new(mut out: W, header: &Header) -> io::Result<CastWriter<W>> {
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        Ok(CastWriter {
            out,
            stdout: Utf8Carry::default(),
            stderr: Utf8Carry::default(),
            stdin: Utf8Carry::default(),
            last_us: 0,
        })
    }

    fn line(&mut self, at_us: u64, code: &str, data: &str) -> io::Result<()> {
        self.last_us = self.last_us.max(at_us);
        if data.is_empty() {
            return Ok(());
        }
        let data = serde_json::to_string(data)?;
        writeln!(self.out, "[{}, \"{code}\", {data}]", seconds(self.last_us))
    }

    /// One session event (ports, exit and failures have no asciicast form and are skipped).
    ///
    /// # Errors
    /// Writing failed.
    pub fn event(&mut self, e: &SessionEvent) -> io::Result<()> {
        match &e.kind {
            EventKind::Output { data } => {
                let s = self.stdout.push(data);
                self.line(e.at_us, "o", &s)
            }
            EventKind::Error { data } => {
                let s = self.stderr.push(data);
                self.line(e.at_us, "o", &s)
            }
            EventKind::Input { data } => {
                let s = self.stdin.push(data);
                self.line(e.at_us, "i", &s)
            }
            EventKind::Resize { width, height } => {
                self.line(e.at_us, "r", &format!("{width}x{height}"))
            }
            _ => Ok(()),
        }
    }

    /// Flush what the carries still hold and hand the writer back.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(mut self) -> io::Result<W> {
        let at = self.last_us;
        let (o, e, i) = (
            self.stdout.finish(),
            self.stderr.finish(),
            self.stdin.finish(),
        );
        self.line(at, "o", &o)?;
        self.line(at, "o", &e)?;
        self.line(at, "i", &i)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A whole session as asciicast v2 text.
#[must_use]
pub fn to_cast(info: &SessionInfo, record: Option<&Record>, events: &[SessionEvent]) -> String {
    let header = Header::for_session(info, record, events);
    let write = || -> io::Result<Vec<u8>> {
        let mut w = CastWriter::new(Vec::new(), &header)?;
        for e in events {
            w.event(e)?;
        }
        w.finish()
    };
    // Writing to a Vec cannot fail; the data is valid UTF-8 by construction.
    write()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

/// The plain JSON export of a session: metadata, summary and every event (data base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionExport {
    pub kind: String,
    pub api_version: String,
    pub session: SessionInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
    pub events: Vec<SessionEvent>,
}

impl SessionExport {
    #[must_use]
    pub fn new(
        session: SessionInfo,
        record: Option<Record>,
        events: Vec<SessionEvent>,
    ) -> SessionExport {
        SessionExport {
            kind: "Session".into(),
            api_version: super::query::API_VERSION.into(),
            session,
            record,
            events,
        }
    }
}

#[cfg(test)]
#[path = "asciicast_tests.rs"]
mod tests;
