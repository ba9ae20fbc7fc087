//! The per-session recorder the relay feeds: decoding, recording policy, bounds, summary.
//!
//! Why it exists: the decoders say what the bytes mean; this decides what is kept. stdin can be
//! switched off (then it is counted, not stored); port-forward payload is never stored, only
//! counted per port and direction (flushed as aggregated [`EventKind::PortData`] events);
//! terminal data closer than `coalesce_us` is merged into one event (up to 64 KiB) so a fast
//! `cat` does not become thousands of rows; everything stored counts against
//! `max_recorded_bytes`, after which data is counted and the summary says `truncated`.
//!
//! Memory: what has not been taken with [`Recorder::take_events`] (the relay flushes when
//! [`Recorder::should_flush`] says so), at most `max_recorded_bytes`, plus the decoders' frame
//! buffers (one frame per direction, ≤ `limits.max_frame`).
//!
//! Failure: the first decoding error stops recording (sticky, also returned by every later
//! [`Recorder::feed`]) and is kept in [`SessionSummary::error`]; events decoded before it are
//! kept. What the relay does then is its decision; failing closed means cutting the session.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use super::channel::WsSession;
use super::spdy::SpdySession;
use crate::kube::wire::ws_frame::Limits;
use super::{Direction, EventKind, ExecError, SessionEvent, SessionKind, Transport};

/// Largest single coalesced data event.
const MAX_COALESCED: usize = 64 * 1024;

/// What to record and the bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderConfig {
    /// Store stdin (passwords typed into a shell land here); off: count it only.
    pub record_stdin: bool,
    /// Payload bytes stored per session; beyond, data is counted, not stored.
    pub max_recorded_bytes: u64,
    /// [`Recorder::should_flush`] once this many payload bytes are pending…
    pub flush_bytes: usize,
    /// …or this many events.
    pub flush_events: usize,
    /// Merge same-stream data events closer than this (0: never).
    pub coalesce_us: u64,
    /// WebSocket frame/message limits; `max_frame` also caps SPDY frames.
    pub limits: Limits,
    /// Live SPDY streams (port-forward opens two per connection).
    pub max_streams: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            record_stdin: true,
            max_recorded_bytes: 64 << 20,
            flush_bytes: 64 << 10,
            flush_events: 256,
            coalesce_us: 10_000,
            limits: Limits::default(),
            max_streams: 1024,
        }
    }
}

/// Bytes through one forwarded port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortCount {
    pub port: u16,
    /// Into the pod.
    pub upstream_bytes: u64,
    /// Out of the pod.
    pub downstream_bytes: u64,
    /// Error-stream messages from the kubelet.
    pub errors: u64,
}

/// What a session amounted to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// From the status channel (0 also for a normal close without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A status failure that is not an exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Why recording stopped, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Raw bytes client → cluster and back, framing included.
    pub upstream_bytes: u64,
    pub downstream_bytes: u64,
    pub stdin_bytes: u64,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortCount>,
    pub stdin_recorded: bool,
    /// Data was dropped from the recording at `max_recorded_bytes`.
    pub truncated: bool,
    /// Events produced.
    pub events: u64,
}

#[derive(Debug)]
enum Decoder {
    WebSocket(Box<WsSession>),
    Spdy(Box<SpdySession>),
}

/// A data event being coalesced.
#[derive(Debug)]
struct Open {
    at_us: u64,
    last_us: u64,
    stream: u8,
    data: BytesMut,
}

/// Records one session. Feed every chunk of both directions, in order.
#[derive(Debug)]
pub struct Recorder {
    cfg: RecorderConfig,
    decoder: Decoder,
    scratch: Vec<EventKind>,
    pending: Vec<SessionEvent>,
    pending_bytes: usize,
    open: Option<Open>,
    stored: u64,
    ports: BTreeMap<u16, PortCount>,
    port_pending: BTreeMap<(u16, Direction), (u64, u64)>,
    summary: SessionSummary,
    failed: Option<ExecError>,
    last_us: u64,
}

impl Recorder {
    /// A recorder for a `kind` session over `transport`.
    ///
    /// # Errors
    /// [`ExecError::Unsupported`] for a combination no decoder handles.
    pub fn new(
        transport: Transport,
        kind: SessionKind,
        cfg: RecorderConfig,
    ) -> Result<Recorder, ExecError> {
        let decoder = match transport {
            Transport::WebSocket(p) => Decoder::WebSocket(Box::new(WsSession::new(
                p,
                kind,
                cfg.limits,
                cfg.max_streams,
            )?)),
            Transport::Spdy { status_json } => Decoder::Spdy(Box::new(SpdySession::new(
                kind,
                status_json,
                cfg.limits.max_frame,
                cfg.max_streams,
            ))),
        };
        let summary = SessionSummary {
            stdin_recorded: cfg.record_stdin,
            ..SessionSummary::default()
        };
        Ok(Recorder {
            cfg,
            decoder,
            scratch: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            open: None,
            stored: 0,
            ports: BTreeMap::new(),
            port_pending: BTreeMap::new(),
            summary,
            failed: None,
            last_us: 0,
        })
    }

    /// Feed a chunk read in `dir`, `at` after the session started.
    ///
    /// # Errors
    /// The first decoding error, and the same error on every later call.
    pub fn feed(&mut self, dir: Direction, chunk: &[u8], at: Duration) -> Result<(), ExecError> {
        match dir {
            Direction::Upstream => self.summary.upstream_bytes += chunk.len() as u64,
            Direction::Downstream => self.summary.downstream_bytes += chunk.len() as u64,
        }
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let at_us = u64::try_from(at.as_micros())
            .unwrap_or(u64::MAX)
            .max(self.last_us);
        self.last_us = at_us;
        let mut scratch = std::mem::take(&mut self.scratch);
        let res = match &mut self.decoder {
            Decoder::WebSocket(d) => d.feed(dir, chunk, &mut scratch),
            Decoder::Spdy(d) => d.feed(dir, chunk, &mut scratch),
        };
        for kind in scratch.drain(..) {
            self.keep(kind, at_us);
        }
        self.scratch = scratch;
        if let Err(e) = &res {
            self.fail(e.clone());
        }
        res
    }

    /// Stop recording for a reason of the relay's (the error is kept in the summary).
    pub fn stop(&mut self, reason: impl Into<String>) {
        if self.failed.is_none() {
            self.fail(ExecError::Stopped(reason.into()));
        }
    }

    /// The error that stopped recording, if any.
    #[must_use]
    pub fn error(&self) -> Option<&ExecError> {
        self.failed.as_ref()
    }

    /// Whether enough is pending to be worth a store write.
    #[must_use]
    pub fn should_flush(&self) -> bool {
        let open = self.open.as_ref().map_or(0, |o| o.data.len());
        self.pending_bytes + open >= self.cfg.flush_bytes
            || self.pending.len() >= self.cfg.flush_events
    }

    /// Take the events decoded so far (for the store), in time order.
    pub fn take_events(&mut self) -> Vec<SessionEvent> {
        self.close_open();
        for ((port, direction), (at_us, bytes)) in std::mem::take(&mut self.port_pending) {
            self.push(
                at_us,
                EventKind::PortData {
                    port,
                    direction,
                    bytes,
                },
            );
        }
        self.pending.sort_by_key(|e| e.at_us);
        self.pending_bytes = 0;
        std::mem::take(&mut self.pending)
    }

    /// The summary so far.
    #[must_use]
    pub fn summary(&self) -> SessionSummary {
        let mut s = self.summary.clone();
        s.ports = self.ports.values().cloned().collect();
        s
    }

    /// The connection ended `at` after the start: the last events and the summary.
    pub fn finish(mut self, at: Duration) -> (Vec<SessionEvent>, SessionSummary) {
        if self.failed.is_none() {
            let at_us = u64::try_from(at.as_micros())
                .unwrap_or(u64::MAX)
                .max(self.last_us);
            let mut out = Vec::new();
            let res = match &mut self.decoder {
                Decoder::WebSocket(d) => d.finish(&mut out),
                Decoder::Spdy(_) => Ok(()),
            };
            for kind in out {
                self.keep(kind, at_us);
            }
            if let Err(e) = res {
                self.fail(e);
            }
        }
        let events = self.take_events();
        (events, self.summary())
    }

    fn fail(&mut self, e: ExecError) {
        self.summary.error = Some(e.to_string());
        self.failed = Some(e);
    }

    /// Apply the recording policy to one decoded event.
    fn keep(&mut self, kind: EventKind, at_us: u64) {
        let stream = match &kind {
            EventKind::Input { data } => {
                self.summary.stdin_bytes += data.len() as u64;
                if !self.cfg.record_stdin {
                    return;
                }
                0
            }
            EventKind::Output { data } => {
                self.summary.stdout_bytes += data.len() as u64;
                1
            }
            EventKind::Error { data } => {
                self.summary.stderr_bytes += data.len() as u64;
                2
            }
            EventKind::PortData {
                port,
                direction,
                bytes,
            } => {
                let c = self.ports.entry(*port).or_insert_with(|| PortCount {
                    port: *port,
                    ..PortCount::default()
                });
                match direction {
                    Direction::Upstream => c.upstream_bytes += bytes,
                    Direction::Downstream => c.downstream_bytes += bytes,
                }
                let p = self
                    .port_pending
                    .entry((*port, *direction))
                    .or_insert((at_us, 0));
                p.1 += bytes;
                return;
            }
            EventKind::PortError { port, .. } => {
                let c = self.ports.entry(*port).or_insert_with(|| PortCount {
                    port: *port,
                    ..PortCount::default()
                });
                c.errors += 1;
                self.push_bounded(at_us, kind);
                return;
            }
            EventKind::Exit { code } => {
                self.summary.exit_code = Some(*code);
                self.push(at_us, kind);
                return;
            }
            EventKind::Failure { message } => {
                self.summary.failure = Some(message.clone());
                self.push_bounded(at_us, kind);
                return;
            }
            EventKind::Resize { .. } => {
                self.push(at_us, kind);
                return;
            }
        };
        let data = match &kind {
            EventKind::Input { data } | EventKind::Output { data } | EventKind::Error { data } => {
                data
            }
            _ => return,
        };
        if self.stored + data.len() as u64 > self.cfg.max_recorded_bytes {
            self.summary.truncated = true;
            return;
        }
        self.stored += data.len() as u64;
        if let Some(o) = &mut self.open {
            let near = at_us.saturating_sub(o.last_us) <= self.cfg.coalesce_us;
            if o.stream == stream && near && o.data.len() + data.len() <= MAX_COALESCED {
                o.data.extend_from_slice(data);
                o.last_us = at_us;
                return;
            }
        }
        self.close_open();
        if self.cfg.coalesce_us == 0 {
            self.pending_bytes += data.len();
            self.summary.events += 1;
            self.pending.push(SessionEvent { at_us, kind });
            return;
        }
        self.open = Some(Open {
            at_us,
            last_us: at_us,
            stream,
            data: BytesMut::from(&data[..]),
        });
    }

    /// Push a non-data event whose text counts against the stored bytes.
    fn push_bounded(&mut self, at_us: u64, kind: EventKind) {
        let len = kind.stored_len() as u64;
        if self.stored + len > self.cfg.max_recorded_bytes {
            self.summary.truncated = true;
            return;
        }
        self.stored += len;
        self.push(at_us, kind);
    }

    fn push(&mut self, at_us: u64, kind: EventKind) {
        self.close_open();
        self.pending_bytes += kind.stored_len();
        self.summary.events += 1;
        self.pending.push(SessionEvent { at_us, kind });
    }

    fn close_open(&mut self) {
        if let Some(o) = self.open.take() {
            let data = o.data.freeze();
            let kind = match o.stream {
                0 => EventKind::Input { data },
                1 => EventKind::Output { data },
                _ => EventKind::Error { data },
            };
            self.pending_bytes += kind.stored_len();
            self.summary.events += 1;
            self.pending.push(SessionEvent {
                at_us: o.at_us,
                kind,
            });
        }
    }
}
