//! SPDY/3.1 frame codec: the framing kubectl uses for `exec`, `attach` and
//! `port-forward` (its peer is moby/spdystream, used by client-go and kubelet).
//!
//! Pure and I/O-free. A [`Decoder`] turns the bytes of one direction of a
//! connection into [`Frame`]s and an [`Encoder`] does the reverse; a server
//! holds one of each, a relay recording a connection runs one decoder per
//! direction over the bytes it forwards.
//!
//! # Trust
//! Nothing read is trusted. Sizes are checked from the 8-byte frame header
//! *before* the payload is buffered or anything is allocated: the length
//! against the decoder's limit (at most [`MAX_FRAME_PAYLOAD`]); decompressed
//! header blocks against [`MAX_HEADER_BLOCK`] while inflating, so a zlib bomb
//! fails instead of allocating; pair and SETTINGS counts against the bytes that
//! are present. Rejected: control versions other than 3; flag bits the type does
//! not define (they may change the meaning, like SPDY/2's compressed DATA);
//! wrong fixed lengths; stream id 0 where a stream is required; RST_STREAM
//! status 0; WINDOW_UPDATE delta 0; header blocks that are not zlib with the
//! SPDY/3 dictionary, end the zlib stream, are truncated or have trailing
//! bytes, or hold empty, uppercase, non-ASCII or duplicate names, values with an
//! empty NUL-separated part, or non-UTF-8 text. Reserved bits (the X bit of
//! 31-bit ids, SYN_STREAM's unused bits and slot) are ignored on receipt and
//! sent as zero. Control frames of unknown type are skipped, as SPDY/3 §2.2.1
//! requires, without buffering them ([`Decoder::skipped`] counts them).
//!
//! Errors are fatal: header compression is one zlib stream per direction, so
//! after a bad frame the context is out of step with the peer. After any `Err`
//! tear the connection down (GOAWAY, then close); the decoder keeps returning
//! that error. An `Encoder` refusing an invalid frame writes nothing and stays
//! usable; only a zlib failure poisons it.
//!
//! # The peer: moby/spdystream v0.5.0 (what client-go uses)
//! Read: spdystream's `connection.go`, `stream.go`, `spdy/{types,read,write}.go`;
//! apimachinery's `pkg/util/httpstream/spdy/connection.go`; client-go's
//! `transport/spdy/spdy.go`.
//! - No flow control. spdystream never sends WINDOW_UPDATE or SETTINGS (no code
//!   builds them), `Stream.WriteData` sends one DATA frame per write with no
//!   window accounting, and received WINDOW_UPDATE/SETTINGS reach `Serve`'s
//!   `default` branch and are dropped ("unhandled frame type", debug log). A
//!   server needs no windows, must not wait for WINDOW_UPDATE after 64 KiB, and
//!   must expect kubectl to send more than 64 KiB unacknowledged.
//! - Writes on a stream block until its SYN_REPLY arrives (apimachinery's
//!   `CreateStream` waits 30 s): reply to every SYN_STREAM; kubelet sends an
//!   empty header block.
//! - PING: client-go pings every 5 s (`PingPeriod`) with odd ids 1, 3, 5...
//!   `handlePingFrame` echoes ids of the other parity and takes its own parity
//!   as replies. Echo the client's PING unchanged; an unanswered one stalls its
//!   ping goroutine until close (there is no timeout). Never send id 0: like
//!   non-zero PING flags, spdystream fails the connection on it.
//! - DATA with FIN half-closes (`remoteStreamFinish`): for exec, stdin EOF; the
//!   other side may send until its own FIN (an empty DATA+FIN, as
//!   `Stream.Close` sends). RST_STREAM closes both ways (`handleResetFrame`):
//!   send nothing more on it. client-go's `Close` resets each stream it has
//!   not finished (CANCEL), then sends GOAWAY.
//! - GOAWAY: spdystream sends it on `Close` (status OK) and closes the socket
//!   once its streams are gone; on receiving one its read loop stops, so a
//!   GOAWAY must be the last frame sent. Its INTERNAL_ERROR status is 2 (the
//!   draft's text says 11).
//! - spdystream ignores the control version but fails the whole connection on
//!   unknown control types, duplicate or uppercase header names, and stream 0
//!   in DATA, SYN_*, HEADERS or RST_STREAM.
//!
//! Layout: this file has the wire constants, [`Frame`], [`Headers`] and the errors;
//! `decoder` and `encoder` are the two directions; `header_block` is the zlib dictionary and
//! context and the name/value block format both directions share.

mod decoder;
mod encoder;
mod header_block;

use bytes::Bytes;

pub use decoder::Decoder;
pub use encoder::Encoder;
pub use header_block::{SPDY3_DICTIONARY, SPDY3_DICTIONARY_ID};

/// The only version spoken (SPDY/3.1 still says 3 on the wire).
pub const VERSION: u16 = 3;
/// Bytes in every frame header, control or data.
pub const FRAME_HEADER_LEN: usize = 8;
/// Hard cap on a frame's length field: all its 24 bits can say.
pub const MAX_FRAME_PAYLOAD: usize = 0x00ff_ffff;
/// Cap on one decompressed (or, encoding, serialised) name/value header block.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// SPDY/3's initial stream window (informational: spdystream keeps no windows).
pub const DEFAULT_INITIAL_WINDOW: u32 = 64 * 1024;

/// Pseudo type naming DATA frames in errors; not a control type on the wire.
pub const TYPE_DATA: u16 = 0;
pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

/// DATA, SYN_STREAM, SYN_REPLY, HEADERS: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM: the recipient may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS: clear persisted settings.
pub const FLAG_SETTINGS_CLEAR_SETTINGS: u8 = 0x01;
/// SETTINGS entry flags.
pub const SETTINGS_FLAG_PERSIST_VALUE: u8 = 0x01;
pub const SETTINGS_FLAG_PERSISTED: u8 = 0x02;
/// SETTINGS ids that matter for streams.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u32 = 4;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// RST_STREAM status codes (0 is invalid).
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_INVALID_STREAM: u32 = 2;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_UNSUPPORTED_VERSION: u32 = 4;
pub const RST_CANCEL: u32 = 5;
pub const RST_INTERNAL_ERROR: u32 = 6;
pub const RST_FLOW_CONTROL_ERROR: u32 = 7;
pub const RST_STREAM_IN_USE: u32 = 8;
pub const RST_STREAM_ALREADY_CLOSED: u32 = 9;
pub const RST_INVALID_CREDENTIALS: u32 = 10;
pub const RST_FRAME_TOO_LARGE: u32 = 11;

/// GOAWAY status codes, as spdystream defines them.
pub const GOAWAY_OK: u32 = 0;
pub const GOAWAY_PROTOCOL_ERROR: u32 = 1;
pub const GOAWAY_INTERNAL_ERROR: u32 = 2;

/// Name of a RST_STREAM status code, for logs and recordings.
pub fn rst_status_name(status: u32) -> &'static str {
    const NAMES: [&str; 11] = [
        "PROTOCOL_ERROR",
        "INVALID_STREAM",
        "REFUSED_STREAM",
        "UNSUPPORTED_VERSION",
        "CANCEL",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "STREAM_IN_USE",
        "STREAM_ALREADY_CLOSED",
        "INVALID_CREDENTIALS",
        "FRAME_TOO_LARGE",
    ];
    let index = usize::try_from(status).ok().and_then(|s| s.checked_sub(1));
    index
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// One SPDY/3.1 frame. Stream ids are 31 bits. CREDENTIAL (gone in 3.1) and
/// unknown control types have no variant: the decoder skips them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// `entries` are (flags, 24-bit id, value) in wire order.
    Settings {
        clear: bool,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    /// `stream_id` 0 is the session window (SPDY/3.1).
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
}

impl Frame {
    /// The frame's stream; `None` for session frames (SETTINGS, PING, GOAWAY,
    /// WINDOW_UPDATE of stream 0).
    pub fn stream_id(&self) -> Option<u32> {
        match *self {
            Frame::Data { stream_id, .. }
            | Frame::SynStream { stream_id, .. }
            | Frame::SynReply { stream_id, .. }
            | Frame::RstStream { stream_id, .. }
            | Frame::Headers { stream_id, .. } => Some(stream_id),
            Frame::WindowUpdate { stream_id, .. } if stream_id != 0 => Some(stream_id),
            _ => None,
        }
    }
}

/// A name/value header block: ordered pairs; names lowercase ASCII, each once.
/// Several values of one header stay NUL-separated in one value string, as on
/// the wire; [`Headers::values`] splits them. Construction checks nothing;
/// [`Encoder::encode`] does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }
    /// The raw value of `name` (compared ASCII case-insensitively), NULs included.
    pub fn get(&self, name: &str) -> Option<&str> {
        let mut pairs = self.0.iter();
        pairs
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The NUL-separated values of `name`; an empty value yields one `""`.
    pub fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.get(name).into_iter().flat_map(|v| v.split('\0'))
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers(
            iter.into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

/// Why a frame was refused. Decoding errors are fatal for the connection.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpdyError {
    /// A control frame's version is not 3.
    #[error("unsupported SPDY version {0}")]
    UnsupportedVersion(u16),
    /// The length exceeds the decoder's limit (encoding: 2^24-1).
    #[error("frame length {len} exceeds limit {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// The length does not fit the type (fixed size, minimum, SETTINGS count).
    #[error("length {len} is invalid for frame type {frame_type}")]
    BadLength { frame_type: u16, len: usize },
    /// Flag bits the type does not define are set.
    #[error("flags {flags:#04x} are invalid for frame type {frame_type}")]
    BadFlags { frame_type: u16, flags: u8 },
    /// Stream id 0 where a stream is required, or (encoding) wider than 31 bits.
    #[error("invalid stream id {stream_id} for frame type {frame_type}")]
    InvalidStreamId { frame_type: u16, stream_id: u32 },
    /// A forbidden field value: RST status 0, window delta 0, priority > 7, ...
    #[error("invalid {field} {value} in frame type {frame_type}")]
    InvalidField {
        frame_type: u16,
        field: &'static str,
        value: u32,
    },
    /// The name/value header block is bad; the zlib context is no longer trusted.
    #[error("bad header block: {0}")]
    HeaderBlock(#[from] HeaderBlockError),
}

/// What is wrong with a header block.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderBlockError {
    /// zlib refused the data (corrupt stream or header) or failed.
    #[error("zlib: {0}")]
    Zlib(String),
    /// The zlib stream asks for a dictionary other than SPDY/3's.
    #[error("zlib stream wants unknown dictionary {0:#010x}")]
    UnknownDictionary(u32),
    /// The direction's first header block did not load the SPDY/3 dictionary.
    #[error("zlib stream does not use the SPDY/3 dictionary")]
    MissingDictionary,
    /// The peer finished its zlib stream; no later block could be decoded.
    #[error("zlib stream ended")]
    StreamEnded,
    /// The block inflates (encoding: serialises) to more than MAX_HEADER_BLOCK.
    #[error("header block exceeds {MAX_HEADER_BLOCK} bytes")]
    TooLarge,
    /// The block ends inside the pair count, a length, a name or a value.
    #[error("header block truncated")]
    Truncated,
    /// The pair count cannot fit in the block (a pair takes 8 bytes at least).
    #[error("header block claims {0} pairs")]
    TooManyPairs(u32),
    /// A header name is empty.
    #[error("zero-length header name")]
    ZeroLengthName,
    /// A header name has an uppercase letter.
    #[error("uppercase header name {0:?}")]
    UppercaseName(String),
    /// A header name has a NUL or a non-ASCII byte.
    #[error("invalid header name")]
    InvalidName,
    /// A value is not UTF-8, starts or ends with NUL, or has two NULs in a row.
    #[error("invalid value for header {0:?}")]
    InvalidValue(String),
    /// A header name occurs twice.
    #[error("duplicate header name {0:?}")]
    DuplicateName(String),
    /// Bytes follow the last pair.
    #[error("{0} bytes after the last header pair")]
    TrailingData(usize),
}

fn field_err(frame_type: u16, field: &'static str, value: u32) -> SpdyError {
    SpdyError::InvalidField {
        frame_type,
        field,
        value,
    }
}

/// Checks a 31-bit stream id, and that it is not 0 unless `zero_ok`.
fn id31(frame_type: u16, stream_id: u32, zero_ok: bool) -> Result<u32, SpdyError> {
    if stream_id > 0x7fff_ffff || (stream_id == 0 && !zero_ok) {
        return Err(SpdyError::InvalidStreamId {
            frame_type,
            stream_id,
        });
    }
    Ok(stream_id)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests;
