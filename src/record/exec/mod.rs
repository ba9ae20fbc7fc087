//! exec/attach/port-forward session recording from the raw bytes of an upgraded connection.
//!
//! Why it exists: after the 101 the relay only splices bytes; what the person typed and saw is
//! in them, framed by either RFC 6455 WebSocket + `channel.k8s.io` (kubectl ≥ 1.30), a SPDY/3.1
//! stream (older kubectl, and every port-forward, tunnelled in WebSocket or raw). The relay tees
//! each direction's bytes into one [`Recorder`], in arbitrary chunks, and gets typed
//! [`SessionEvent`]s (what, when) and a [`SessionSummary`] out.
//!
//! Layout, one job per file: [`ws_frame`] (RFC 6455 frames and message reassembly, in
//! `kube::wire`),
//! [`channel`] (WebSocket `channel.k8s.io` messages → events), [`spdy`] (SPDY streams → events,
//! with the shared stream table both directions need), [`status`] (the error channel's `Status`
//! → exit code), [`recorder`] (aggregation, stdin policy, memory bounds, the summary).
//!
//! What it trusts: the transport and kind the relay negotiated (it saw the 101). Nothing in the
//! bytes: sizes are checked before anything is buffered, framing and sequencing violations, an
//! unknown channel or stream type, data on a stream nobody opened, are typed errors
//! ([`ExecError`]). Errors are sticky: after one, the session is no longer recorded; the relay
//! must then fail closed by cutting the connection (an unrecorded exec is what the records are
//! there to prevent), and the error is kept in the session.
//!
//! Ordering: the two directions share state (SPDY streams are opened by the client and carry
//! the server's output), so feed each chunk before writing it on, through one owner, in the
//! order it was read. Then no server byte can precede the client frame that made it possible.

use crate::kube::wire::ws_frame;

pub mod channel;
pub mod recorder;
pub mod spdy;
pub mod status;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use recorder::{PortCount, Recorder, RecorderConfig, SessionSummary};

use crate::kube::wire::spdy::SpdyError;
use crate::kube::wire::websocket::{ChannelError, StreamProtocol};

/// Which way bytes flow through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client → cluster (stdin, resize, data sent into a forwarded port).
    Upstream,
    /// Cluster → client (stdout, stderr, status, data coming out of a forwarded port).
    Downstream,
}

/// What kind of streaming request the session is (from the request's subresource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    Exec,
    Attach,
    #[serde(rename = "portforward")]
    PortForward,
}

impl SessionKind {
    /// The stored name (the subresource).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Exec => "exec",
            SessionKind::Attach => "attach",
            SessionKind::PortForward => "portforward",
        }
    }

    /// The kind for a subresource name.
    #[must_use]
    pub fn parse(s: &str) -> Option<SessionKind> {
        [
            SessionKind::Exec,
            SessionKind::Attach,
            SessionKind::PortForward,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The framing the upgrade negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 6455 with the subprotocol the server echoed in `Sec-WebSocket-Protocol`. The relay
    /// must not let `Sec-WebSocket-Extensions` through: compressed frames are refused.
    WebSocket(StreamProtocol),
    /// `Upgrade: SPDY/3.1`. `status_json` is true when the server chose
    /// `X-Stream-Protocol-Version` v4 or later (the error stream is a `Status` JSON; before, it
    /// is plain text). Port-forward ignores it.
    Spdy { status_json: bool },
}

impl Transport {
    /// A short name for the store (`websocket/v5.channel.k8s.io`, `spdy`).
    #[must_use]
    pub fn name(self) -> String {
        match self {
            Transport::WebSocket(p) => format!("websocket/{}", p.name()),
            Transport::Spdy { .. } => "spdy/3.1".to_string(),
        }
    }
}

/// One thing that happened in a session, `at_us` microseconds after it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEvent {
    pub at_us: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Terminal data is raw bytes (base64 in JSON); it is not necessarily UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum EventKind {
    /// stdin (only when stdin recording is on).
    Input {
        #[serde(with = "b64")]
        data: Bytes,
    },
    /// stdout.
    Output {
        #[serde(with = "b64")]
        data: Bytes,
    },
    /// stderr (absent with a TTY).
    Error {
        #[serde(with = "b64")]
        data: Bytes,
    },
    /// The terminal was resized.
    Resize { width: u16, height: u16 },
    /// The command ended: `Success` is 0, `NonZeroExitCode` carries its code.
    Exit { code: i32 },
    /// The status channel reported a failure that is not an exit code (no such container, …).
    Failure { message: String },
    /// Port-forward payload bytes (counted, never stored) on `port` in one direction.
    PortData {
        port: u16,
        direction: Direction,
        bytes: u64,
    },
    /// A forwarded port's error stream (the kubelet's text).
    PortError { port: u16, message: String },
}

impl EventKind {
    /// Bytes of payload this event keeps (what counts against the recording bounds).
    #[must_use]
    pub fn stored_len(&self) -> usize {
        match self {
            EventKind::Input { data } | EventKind::Output { data } | EventKind::Error { data } => {
                data.len()
            }
            EventKind::Failure { message } | EventKind::PortError { message, .. } => message.len(),
            _ => 0,
        }
    }
}

/// Why a session stopped being recorded. Every variant is final for the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The WebSocket framing is broken (see [`ws_frame::WsError`]).
    #[error("websocket ({direction:?}): {source}")]
    WebSocket {
        direction: Direction,
        source: ws_frame::WsError,
    },
    /// A `channel.k8s.io` message is malformed.
    #[error("channel message ({direction:?}): {source}")]
    Channel {
        direction: Direction,
        source: ChannelError,
    },
    /// A message arrived on a channel that does not exist in that direction.
    #[error("unexpected channel {channel} ({direction:?})")]
    UnexpectedChannel { direction: Direction, channel: u8 },
    /// A text message in a binary subprotocol, or the reverse.
    #[error("unexpected {0} message for the negotiated subprotocol")]
    UnexpectedMessageType(&'static str),
    /// The SPDY framing is broken.
    #[error("spdy ({direction:?}): {source}")]
    Spdy {
        direction: Direction,
        source: SpdyError,
    },
    /// DATA on a stream no SYN_STREAM opened (or already closed).
    #[error("data on unknown SPDY stream {0}")]
    UnknownStream(u32),
    /// A SYN_STREAM reused a live stream id.
    #[error("SPDY stream {0} opened twice")]
    DuplicateStream(u32),
    /// A SYN_STREAM whose `streamtype` is missing or not one this session kind has.
    #[error("SPDY stream {stream}: unexpected streamtype {streamtype:?}")]
    BadStreamType { stream: u32, streamtype: String },
    /// A port-forward stream without a valid `port` header.
    #[error("SPDY stream {0}: missing or invalid port")]
    BadPort(u32),
    /// Data flowed the wrong way on a stream (stdin from the cluster, stdout from the client).
    #[error("SPDY stream {stream}: data in the wrong direction ({direction:?})")]
    WrongDirection { stream: u32, direction: Direction },
    /// More live streams than the recorder keeps.
    #[error("more than {0} live SPDY streams")]
    TooManyStreams(usize),
    /// The status channel's content is not a `Status` (or exceeds its bound).
    #[error("invalid status on the error channel")]
    BadStatus,
    /// A resize message or stream is malformed.
    #[error("invalid resize")]
    BadResize,
    /// A combination the recorder does not decode (for example port-forward over the legacy
    /// WebSocket channel protocol, which no released kubectl uses).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The relay gave up on recording this session (it says why).
    #[error("recording stopped: {0}")]
    Stopped(String),
}

/// Bytes as standard base64 in JSON.
mod b64 {
    use base64::Engine;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[path = "spdy_tests.rs"]
mod spdy_tests;
#[cfg(test)]
mod tests;
