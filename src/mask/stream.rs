//! Masking a JSON watch stream as it arrives: bytes in, masked events out.
//!
//! The API server writes watch events as JSON objects one after another (`{"type":…,
//! "object":…}\n`), and chunk boundaries are not event boundaries (`k8s-wire.md` §3). This
//! frames by complete top-level values — counting brackets outside strings, honouring escapes —
//! so a value may split anywhere (inside a string, an escape, a UTF-8 sequence); each complete
//! event goes through [`super::json`] and [`super::object`] whole. Whitespace between events is
//! passed through as it comes.
//!
//! Memory is bounded: only the current incomplete event is buffered, and an event longer than
//! the limit (default [`DEFAULT_MAX_EVENT`]) is an error before it is buffered.
//!
//! Trusts nothing. Rejects (and stays failed: every later call returns the first error): a
//! top-level value that is not an object, an event that is not exactly `type` (a string) and
//! `object` (an object), whatever the JSON parser rejects, an oversized event, and a stream that
//! ends inside an event ([`WatchMasker::finish`]) — a truncated event is never dropped silently.

use std::sync::Arc;

use memchr::memchr2;

use super::json::{self, MAX_DEPTH};
use super::object::{mask_tape, MaskError};
use super::profile::MaskProfile;

/// The default largest watch event: 16 MiB (an object is at most ~1.5 MiB in etcd; a Table or
/// metadata event is smaller).
pub const DEFAULT_MAX_EVENT: usize = 16 << 20;

/// A buffer grown past this for one big event is released after it.
const KEEP_CAPACITY: usize = 1 << 20;

/// Why a watch stream cannot be passed on. One line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// An event longer than the limit.
    #[error("a watch event is longer than {limit} bytes")]
    EventTooLarge { limit: usize },
    /// Something other than a JSON object at the top level.
    #[error("byte {offset} of the watch stream starts no JSON object")]
    NotAnObject { offset: u64 },
    /// An event nested deeper than the JSON parser allows.
    #[error("watch event {index} nests deeper than {MAX_DEPTH} levels")]
    TooDeep { index: u64 },
    /// The stream ended inside an event.
    #[error("the watch stream ended inside event {index} ({buffered} bytes of it received)")]
    Truncated { index: u64, buffered: usize },
    /// An event that could not be masked.
    #[error("watch event {index}: {source}")]
    Event { index: u64, source: MaskError },
}

/// Mask one watch event (a JSON object `{"type": …, "object": …}`), appending to `out`;
/// returns how many values were masked. Also the entry point for WebSocket watches, where
/// each message is one event.
pub fn mask_event_into(
    profile: &MaskProfile,
    event: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, MaskError> {
    let tape = json::parse(event)?;
    if !tape.is_object(0) {
        return Err(MaskError::NotAnEvent("not a JSON object"));
    }
    let (mut ty, mut obj) = (0, 0);
    for (k, v) in tape.members(0) {
        match &*tape.str_at(k) {
            "type" if tape.first_byte(v) == b'"' => ty += 1,
            "object" if tape.is_object(v) => obj += 1,
            "type" => return Err(MaskError::NotAnEvent("\"type\" is not a string")),
            "object" => return Err(MaskError::NotAnEvent("\"object\" is not an object")),
            _ => {
                return Err(MaskError::NotAnEvent(
                    "a member other than \"type\" and \"object\"",
                ))
            }
        }
    }
    if ty != 1 || obj != 1 {
        return Err(MaskError::NotAnEvent(
            "not exactly one \"type\" and one \"object\"",
        ));
    }
    Ok(mask_tape(profile, &tape, &[], 0, out))
}

/// Bracket counting across chunks: where the current top-level object ends.
#[derive(Debug, Default)]
struct Framer {
    depth: usize,
    in_str: bool,
    esc: bool,
}

enum Scan {
    /// The object ends after this many bytes of the input.
    Complete(usize),
    /// All of the input belongs to the object.
    More,
    TooDeep,
}

impl Framer {
    fn scan(&mut self, b: &[u8]) -> Scan {
        let mut i = 0;
        while i < b.len() {
            if self.in_str {
                if self.esc {
                    self.esc = false;
                    i += 1;
                    continue;
                }
                match memchr2(b'"', b'\\', &b[i..]) {
                    None => return Scan::More,
                    Some(k) => {
                        i += k;
                        if b[i] == b'\\' {
                            self.esc = true;
                        } else {
                            self.in_str = false;
                        }
                        i += 1;
                    }
                }
                continue;
            }
            match b[i] {
                b'"' => self.in_str = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Scan::TooDeep;
                    }
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Scan::Complete(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Scan::More
    }
}

/// The incremental masker for one JSON watch response.
#[derive(Debug)]
pub struct WatchMasker {
    profile: Arc<MaskProfile>,
    max_event: usize,
    /// The incomplete event, when it spans chunks.
    buf: Vec<u8>,
    frame: Framer,
    in_event: bool,
    /// Stream offset of the next input byte.
    offset: u64,
    /// Events completed.
    events: u64,
    masked: u64,
    failed: Option<StreamError>,
}

impl WatchMasker {
    /// A masker for one stream, with the default event limit.
    #[must_use]
    pub fn new(profile: Arc<MaskProfile>) -> WatchMasker {
        WatchMasker {
            profile,
            max_event: DEFAULT_MAX_EVENT,
            buf: Vec::new(),
            frame: Framer::default(),
            in_event: false,
            offset: 0,
            events: 0,
            masked: 0,
            failed: None,
        }
    }

    /// Set the largest event accepted, in bytes.
    #[must_use]
    pub fn with_max_event(mut self, bytes: usize) -> WatchMasker {
        self.max_event = bytes;
        self
    }

    /// Values masked so far.
    #[must_use]
    pub fn masked(&self) -> u64 {
        self.masked
    }

    /// Events passed on so far.
    #[must_use]
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Feed the next bytes of the stream; the masked bytes of every event they complete (and
    /// the whitespace between events) are appended to `out`. Returns the values masked in them.
    /// On error nothing more may be sent to the client: the stream must be cut.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<usize, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.feed_inner(chunk, out);
        match &r {
            Ok(n) => self.masked += *n as u64,
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
            }
        }
        r
    }

    /// The stream ended: an error if it ended inside an event.
    pub fn finish(&mut self) -> Result<(), StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.in_event {
            let e = StreamError::Truncated {
                index: self.events,
                buffered: self.buf.len(),
            };
            self.failed = Some(e.clone());
            self.buf = Vec::new();
            return Err(e);
        }
        Ok(())
    }

    fn feed_inner(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<usize, StreamError> {
        let mut count = 0;
        let mut i = 0;
        while i < chunk.len() {
            if !self.in_event {
                let ws = chunk[i..]
                    .iter()
                    .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                    .count();
                out.extend_from_slice(&chunk[i..i + ws]);
                i += ws;
                let Some(&b) = chunk.get(i) else { break };
                if b != b'{' {
                    return Err(StreamError::NotAnObject {
                        offset: self.offset + i as u64,
                    });
                }
                self.in_event = true;
                self.frame = Framer::default();
            }
            let start = i;
            match self.frame.scan(&chunk[start..]) {
                Scan::TooDeep => return Err(StreamError::TooDeep { index: self.events }),
                Scan::More => {
                    self.buffer(&chunk[start..])?;
                    i = chunk.len();
                }
                Scan::Complete(n) => {
                    let end = start + n;
                    let index = self.events;
                    let event_err = |source| StreamError::Event { index, source };
                    if self.buf.is_empty() {
                        if n > self.max_event {
                            return Err(StreamError::EventTooLarge {
                                limit: self.max_event,
                            });
                        }
                        count += mask_event_into(&self.profile, &chunk[start..end], out)
                            .map_err(event_err)?;
                    } else {
                        self.buffer(&chunk[start..end])?;
                        count +=
                            mask_event_into(&self.profile, &self.buf, out).map_err(event_err)?;
                        self.buf.clear();
                        if self.buf.capacity() > KEEP_CAPACITY {
                            self.buf = Vec::new();
                        }
                    }
                    self.in_event = false;
                    self.events += 1;
                    i = end;
                }
            }
        }
        self.offset += chunk.len() as u64;
        Ok(count)
    }

    /// Keep `bytes` of the current event, if it stays within the limit.
    fn buffer(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        if self.buf.len() + bytes.len() > self.max_event {
            return Err(StreamError::EventTooLarge {
                limit: self.max_event,
            });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
