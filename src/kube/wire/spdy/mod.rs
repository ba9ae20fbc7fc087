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

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::collections::HashSet;

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

/// Adler-32 of [`SPDY3_DICTIONARY`]: the DICTID a SPDY/3 zlib stream names.
pub const SPDY3_DICTIONARY_ID: u32 = 0xe3c6_a7c2;

/// The zlib dictionary of SPDY/3 header compression (draft 3 §2.6.10.1; same
/// bytes as spdystream's `spdy/dictionary.go`).
pub const SPDY3_DICTIONARY: &[u8; 1423] = b"\
    \0\0\0\x07options\0\0\0\x04head\0\0\0\x04post\0\0\0\x03put\0\0\0\x06delete\
    \0\0\0\x05trace\0\0\0\x06accept\0\0\0\x0eaccept-charset\0\0\0\x0faccept-encoding\
    \0\0\0\x0faccept-language\0\0\0\x0daccept-ranges\0\0\0\x03age\0\0\0\x05allow\
    \0\0\0\x0dauthorization\0\0\0\x0dcache-control\0\0\0\x0aconnection\0\0\0\x0ccontent-base\
    \0\0\0\x10content-encoding\0\0\0\x10content-language\0\0\0\x0econtent-length\
    \0\0\0\x10content-location\0\0\0\x0bcontent-md5\0\0\0\x0dcontent-range\
    \0\0\0\x0ccontent-type\0\0\0\x04date\0\0\0\x04etag\0\0\0\x06expect\0\0\0\x07expires\
    \0\0\0\x04from\0\0\0\x04host\0\0\0\x08if-match\0\0\0\x11if-modified-since\
    \0\0\0\x0dif-none-match\0\0\0\x08if-range\0\0\0\x13if-unmodified-since\
    \0\0\0\x0dlast-modified\0\0\0\x08location\0\0\0\x0cmax-forwards\0\0\0\x06pragma\
    \0\0\0\x12proxy-authenticate\0\0\0\x13proxy-authorization\0\0\0\x05range\
    \0\0\0\x07referer\0\0\0\x0bretry-after\0\0\0\x06server\0\0\0\x02te\0\0\0\x07trailer\
    \0\0\0\x11transfer-encoding\0\0\0\x07upgrade\0\0\0\x0auser-agent\0\0\0\x04vary\
    \0\0\0\x03via\0\0\0\x07warning\0\0\0\x10www-authenticate\0\0\0\x06method\0\0\0\x03get\
    \0\0\0\x06status\0\0\0\x06200 OK\0\0\0\x07version\0\0\0\x08HTTP/1.1\0\0\0\x03url\
    \0\0\0\x06public\0\0\0\x0aset-cookie\0\0\0\x0akeep-alive\0\0\0\x06origin\
    100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505\
    203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request\
    401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented\
    503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 \
    Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,\
    application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=\
    gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

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

type HbResult<T> = Result<T, HeaderBlockError>;

/// Incremental decoder for ONE direction of a connection. It owns that
/// direction's zlib inflate context, shared by all its header blocks (SPDY/3
/// header compression is one continuous zlib stream per direction, primed with
/// [`SPDY3_DICTIONARY`]).
#[derive(Debug)]
pub struct Decoder {
    max_payload: usize,
    inflate: Decompress,
    dictionary_loaded: bool,
    skip: usize,
    skipped: u64,
    failed: Option<SpdyError>,
}

impl Decoder {
    /// `max_payload` caps every frame's length field (clamped to
    /// [`MAX_FRAME_PAYLOAD`]). SPDY/3 asks to accept control frames of 8192
    /// bytes at least; kubectl's DATA frames are at most 32 KiB in practice.
    pub fn new(max_payload: usize) -> Self {
        Decoder {
            max_payload: max_payload.min(MAX_FRAME_PAYLOAD),
            inflate: Decompress::new(true),
            dictionary_loaded: false,
            skip: 0,
            skipped: 0,
            failed: None,
        }
    }

    /// How many control frames of unknown type were skipped.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Feed bytes; frames come out as they complete, their bytes consumed from
    /// `buf`. Returns `Ok(None)` when more bytes are needed. After an `Err`,
    /// every call returns that error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let res = self.decode_inner(buf);
        if let Err(e) = &res {
            self.failed = Some(e.clone());
        }
        res
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        loop {
            let n = self.skip.min(buf.len());
            buf.advance(n);
            self.skip -= n;
            let (Some(w0), Some(w1), 0) = (be32(buf, 0), be32(buf, 4), self.skip) else {
                return Ok(None);
            };
            let (flags, len) = ((w1 >> 24) as u8, (w1 & 0x00ff_ffff) as usize);
            let ty = if w0 >> 31 == 0 {
                id31(TYPE_DATA, w0, false)?;
                TYPE_DATA
            } else if (w0 >> 16) & 0x7fff != u32::from(VERSION) {
                return Err(SpdyError::UnsupportedVersion((w0 >> 16) as u16 & 0x7fff));
            } else {
                w0 as u16
            };
            // (allowed flags, minimum length, whether the length is fixed)
            let (allowed, min, fixed) = match ty {
                TYPE_DATA => (FLAG_FIN, 0, false),
                TYPE_SYN_STREAM => (FLAG_FIN | FLAG_UNIDIRECTIONAL, 10, false),
                TYPE_SYN_REPLY | TYPE_HEADERS => (FLAG_FIN, 4, false),
                TYPE_RST_STREAM | TYPE_GOAWAY | TYPE_WINDOW_UPDATE => (0, 8, true),
                TYPE_SETTINGS => (FLAG_SETTINGS_CLEAR_SETTINGS, 4, false),
                TYPE_PING => (0, 4, true),
                _ => {
                    buf.advance(FRAME_HEADER_LEN);
                    self.skip = len;
                    self.skipped += 1;
                    continue;
                }
            };
            if flags & !allowed != 0 {
                return Err(SpdyError::BadFlags {
                    frame_type: ty,
                    flags,
                });
            }
            if len < min || (fixed && len != min) {
                return Err(SpdyError::BadLength {
                    frame_type: ty,
                    len,
                });
            }
            if len > self.max_payload {
                return Err(SpdyError::FrameTooLarge {
                    len,
                    max: self.max_payload,
                });
            }
            if buf.len() < FRAME_HEADER_LEN + len {
                return Ok(None);
            }
            buf.advance(FRAME_HEADER_LEN);
            let payload = buf.split_to(len);
            if ty == TYPE_DATA {
                let data = payload.freeze();
                return Ok(Some(Frame::Data {
                    stream_id: w0,
                    fin: flags & FLAG_FIN != 0,
                    data,
                }));
            }
            return self.control(ty, flags, &payload).map(Some);
        }
    }

    /// Parses a complete control payload whose length suits `ty`.
    fn control(&mut self, ty: u16, flags: u8, p: &[u8]) -> Result<Frame, SpdyError> {
        // The minimum lengths checked above guarantee the words each type reads.
        let (w0, w1) = (be32(p, 0).unwrap_or(0), be32(p, 4).unwrap_or(0));
        let (id, fin) = (w0 & 0x7fff_ffff, flags & FLAG_FIN != 0);
        let stream = || id31(ty, id, false);
        Ok(match ty {
            TYPE_SYN_STREAM => Frame::SynStream {
                stream_id: stream()?,
                associated_to: w1 & 0x7fff_ffff,
                priority: p.get(8).map_or(0, |b| b >> 5),
                fin,
                unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                headers: self.header_block(p.get(10..).unwrap_or_default())?,
            },
            TYPE_SYN_REPLY => Frame::SynReply {
                stream_id: stream()?,
                fin,
                headers: self.header_block(p.get(4..).unwrap_or_default())?,
            },
            TYPE_HEADERS => Frame::Headers {
                stream_id: stream()?,
                fin,
                headers: self.header_block(p.get(4..).unwrap_or_default())?,
            },
            TYPE_RST_STREAM if w1 == 0 => return Err(field_err(ty, "status", 0)),
            TYPE_RST_STREAM => Frame::RstStream {
                stream_id: stream()?,
                status: w1,
            },
            TYPE_SETTINGS => {
                let want = usize::try_from(w0)
                    .ok()
                    .and_then(|n| n.checked_mul(8)?.checked_add(4));
                if want != Some(p.len()) {
                    return Err(SpdyError::BadLength {
                        frame_type: ty,
                        len: p.len(),
                    });
                }
                let entry = |e: &[u8]| {
                    let w = |i: usize| be32(e, i).unwrap_or(0);
                    ((w(0) >> 24) as u8, w(0) & 0x00ff_ffff, w(4))
                };
                let entries = p
                    .get(4..)
                    .unwrap_or_default()
                    .chunks_exact(8)
                    .map(entry)
                    .collect();
                Frame::Settings {
                    clear: flags & FLAG_SETTINGS_CLEAR_SETTINGS != 0,
                    entries,
                }
            }
            TYPE_PING => Frame::Ping { id: w0 },
            TYPE_GOAWAY => Frame::GoAway {
                last_good_stream_id: id,
                status: w1,
            },
            TYPE_WINDOW_UPDATE => match w1 & 0x7fff_ffff {
                0 => return Err(field_err(ty, "delta", 0)),
                delta => Frame::WindowUpdate {
                    stream_id: id,
                    delta,
                },
            },
            _ => {
                return Err(SpdyError::BadLength {
                    frame_type: ty,
                    len: p.len(),
                })
            }
        })
    }

    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let raw = self.inflate_block(compressed)?;
        Ok(parse_pairs(&raw)?)
    }

    /// Inflates one block with the shared context, holding at most
    /// MAX_HEADER_BLOCK bytes of output.
    fn inflate_block(&mut self, mut input: &[u8]) -> HbResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let res = self
                .inflate
                .decompress(input, &mut chunk, FlushDecompress::Sync);
            let consumed = usize::try_from(self.inflate.total_in() - in0).unwrap_or(usize::MAX);
            let produced = usize::try_from(self.inflate.total_out() - out0).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            let new = chunk
                .get(..produced)
                .ok_or_else(|| zlib_err("output overrun"))?;
            if out.len() + new.len() > MAX_HEADER_BLOCK {
                return Err(HeaderBlockError::TooLarge);
            }
            out.extend_from_slice(new);
            match res.map_err(|e| (e.needs_dictionary(), e.to_string())) {
                Ok(Status::StreamEnd) => return Err(HeaderBlockError::StreamEnded),
                Ok(_) => {}
                Err((Some(SPDY3_DICTIONARY_ID), _)) if !self.dictionary_loaded => {
                    let loaded = self.inflate.set_dictionary(SPDY3_DICTIONARY);
                    loaded.map_err(|e| zlib_err(&e.to_string()))?;
                    self.dictionary_loaded = true;
                    continue;
                }
                Err((Some(id), _)) => return Err(HeaderBlockError::UnknownDictionary(id)),
                Err((None, msg)) => return Err(zlib_err(&msg)),
            }
            if input.is_empty() && produced < chunk.len() {
                break;
            }
            if consumed == 0 && produced == 0 {
                return Err(zlib_err("no progress"));
            }
        }
        if !self.dictionary_loaded {
            return Err(HeaderBlockError::MissingDictionary);
        }
        Ok(out)
    }
}

fn zlib_err(msg: &str) -> HeaderBlockError {
    HeaderBlockError::Zlib(msg.to_owned())
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

fn check_pair(name: &[u8], value: &[u8]) -> HbResult<()> {
    if name.is_empty() {
        return Err(HeaderBlockError::ZeroLengthName);
    }
    if name.iter().any(|&b| b == 0 || !b.is_ascii()) {
        return Err(HeaderBlockError::InvalidName);
    }
    let name = String::from_utf8_lossy(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(HeaderBlockError::UppercaseName(name.into_owned()));
    }
    let bad_nul = value.first() == Some(&0)
        || value.last() == Some(&0)
        || value.windows(2).any(|w| w == [0, 0]);
    if bad_nul || std::str::from_utf8(value).is_err() {
        return Err(HeaderBlockError::InvalidValue(name.into_owned()));
    }
    Ok(())
}

fn parse_pairs(raw: &[u8]) -> HbResult<Headers> {
    let mut r = raw;
    let count = take_u32(&mut r)?;
    if usize::try_from(count).map_or(true, |c| c > r.len() / 8) {
        return Err(HeaderBlockError::TooManyPairs(count));
    }
    let mut pairs = Vec::with_capacity(count as usize);
    let mut seen = HashSet::with_capacity(count as usize);
    for _ in 0..count {
        let (name, value) = (take_bytes(&mut r)?, take_bytes(&mut r)?);
        check_pair(name, value)?;
        // check_pair guarantees ASCII names and UTF-8 values.
        let name = String::from_utf8_lossy(name).into_owned();
        let value = String::from_utf8_lossy(value).into_owned();
        if !seen.insert(name.clone()) {
            return Err(HeaderBlockError::DuplicateName(name));
        }
        pairs.push((name, value));
    }
    if !r.is_empty() {
        return Err(HeaderBlockError::TrailingData(r.len()));
    }
    Ok(Headers(pairs))
}

fn take_u32(r: &mut &[u8]) -> HbResult<u32> {
    let v = be32(r, 0).ok_or(HeaderBlockError::Truncated)?;
    *r = r.get(4..).unwrap_or_default();
    Ok(v)
}

fn take_bytes<'a>(r: &mut &'a [u8]) -> HbResult<&'a [u8]> {
    let len = usize::try_from(take_u32(r)?).map_err(|_| HeaderBlockError::Truncated)?;
    if len > r.len() {
        return Err(HeaderBlockError::Truncated);
    }
    let (head, tail) = r.split_at(len);
    *r = tail;
    Ok(head)
}

/// Encoder for ONE direction. It owns the deflate context (primed with the
/// SPDY/3 dictionary) shared by all header blocks it sends; each block ends
/// with a zlib sync flush, as SPDY/3 requires.
#[derive(Debug)]
pub struct Encoder {
    deflate: Compress,
    dictionary_set: bool,
    failed: Option<SpdyError>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        let deflate = Compress::new(Compression::default(), true);
        Encoder {
            deflate,
            dictionary_set: false,
            failed: None,
        }
    }

    /// Appends `frame` to `dst`. A frame that cannot be sent as is (ids wider
    /// than 31 bits, stream 0 where one is needed, bad header names, oversized
    /// payloads, ...) is refused before anything is written or compressed.
    pub fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), SpdyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let flag = |set: bool, flag: u8| if set { flag } else { 0 };
        let mut head = Vec::with_capacity(16); // the fixed fields after the frame header
        let (ty, flags, headers) = match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let id = id31(TYPE_DATA, *stream_id, false)?;
                let len = fit_len(data.len())?;
                dst.reserve(FRAME_HEADER_LEN + data.len());
                dst.put_u32(id);
                dst.put_u32(u32::from(flag(*fin, FLAG_FIN)) << 24 | len);
                dst.put_slice(data);
                return Ok(());
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                head.put_u32(id31(TYPE_SYN_STREAM, *stream_id, false)?);
                head.put_u32(id31(TYPE_SYN_STREAM, *associated_to, true)?);
                if *priority > 7 {
                    return Err(field_err(TYPE_SYN_STREAM, "priority", u32::from(*priority)));
                }
                head.put_u16(u16::from(*priority) << 13); // unused bits and slot are 0
                let flags = flag(*fin, FLAG_FIN) | flag(*unidirectional, FLAG_UNIDIRECTIONAL);
                (TYPE_SYN_STREAM, flags, Some(headers))
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                head.put_u32(id31(TYPE_SYN_REPLY, *stream_id, false)?);
                (TYPE_SYN_REPLY, flag(*fin, FLAG_FIN), Some(headers))
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                head.put_u32(id31(TYPE_HEADERS, *stream_id, false)?);
                (TYPE_HEADERS, flag(*fin, FLAG_FIN), Some(headers))
            }
            Frame::RstStream { stream_id, status } => {
                head.put_u32(id31(TYPE_RST_STREAM, *stream_id, false)?);
                if *status == 0 {
                    return Err(field_err(TYPE_RST_STREAM, "status", 0));
                }
                head.put_u32(*status);
                (TYPE_RST_STREAM, 0, None)
            }
            Frame::Settings { clear, entries } => {
                fit_len(entries.len().saturating_mul(8).saturating_add(4))?;
                head.put_u32(entries.len() as u32); // < 2^21: checked just above
                for &(entry_flags, id, value) in entries {
                    if id > 0x00ff_ffff {
                        return Err(field_err(TYPE_SETTINGS, "setting id", id));
                    }
                    head.put_u32(u32::from(entry_flags) << 24 | id);
                    head.put_u32(value);
                }
                (
                    TYPE_SETTINGS,
                    flag(*clear, FLAG_SETTINGS_CLEAR_SETTINGS),
                    None,
                )
            }
            Frame::Ping { id } => {
                head.put_u32(*id);
                (TYPE_PING, 0, None)
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                head.put_u32(id31(TYPE_GOAWAY, *last_good_stream_id, true)?);
                head.put_u32(*status);
                (TYPE_GOAWAY, 0, None)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                head.put_u32(id31(TYPE_WINDOW_UPDATE, *stream_id, true)?);
                if !(1..=0x7fff_ffff).contains(delta) {
                    return Err(field_err(TYPE_WINDOW_UPDATE, "delta", *delta));
                }
                head.put_u32(*delta);
                (TYPE_WINDOW_UPDATE, 0, None)
            }
        };
        let block = match headers {
            Some(h) => self.compress(h)?,
            None => Vec::new(),
        };
        // Cannot fail after compressing (blocks stay far below 2^24), but if it
        // did, the context would be ahead of the peer's: poison then.
        let len = fit_len(head.len() + block.len()).map_err(|e| {
            if headers.is_some() {
                self.fail(e)
            } else {
                e
            }
        })?;
        dst.reserve(FRAME_HEADER_LEN + head.len() + block.len());
        dst.put_u16(0x8000 | VERSION);
        dst.put_u16(ty);
        dst.put_u32(u32::from(flags) << 24 | len);
        dst.put_slice(&head);
        dst.put_slice(&block);
        Ok(())
    }

    /// Records a failure that left the deflate context out of step with the peer.
    fn fail(&mut self, e: SpdyError) -> SpdyError {
        self.failed = Some(e.clone());
        e
    }

    /// Validates and serialises `headers`, then compresses them with the shared
    /// context. Validation failures leave the context untouched.
    fn compress(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        let mut seen = HashSet::new();
        raw.put_u32(u32::try_from(headers.len()).map_err(|_| HeaderBlockError::TooLarge)?);
        for (name, value) in headers.iter() {
            check_pair(name.as_bytes(), value.as_bytes())?;
            if !seen.insert(name) {
                return Err(HeaderBlockError::DuplicateName(name.to_owned()).into());
            }
            if raw.len() + 8 + name.len() + value.len() > MAX_HEADER_BLOCK {
                return Err(HeaderBlockError::TooLarge.into());
            }
            raw.put_u32(name.len() as u32); // < MAX_HEADER_BLOCK: checked above
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        self.deflate_block(&raw).map_err(|e| self.fail(e.into()))
    }

    fn deflate_block(&mut self, mut input: &[u8]) -> HbResult<Vec<u8>> {
        if !self.dictionary_set {
            let set = self.deflate.set_dictionary(SPDY3_DICTIONARY);
            set.map_err(|e| zlib_err(&e.to_string()))?;
            self.dictionary_set = true;
        }
        let mut out = Vec::new();
        loop {
            out.reserve(input.len() / 2 + 64);
            let in0 = self.deflate.total_in();
            let res = self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync);
            res.map_err(|e| zlib_err(&e.to_string()))?;
            let consumed = usize::try_from(self.deflate.total_in() - in0).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() > MAX_FRAME_PAYLOAD {
                return Err(HeaderBlockError::TooLarge);
            }
        }
    }
}

fn fit_len(len: usize) -> Result<u32, SpdyError> {
    match u32::try_from(len) {
        Ok(l) if len <= MAX_FRAME_PAYLOAD => Ok(l),
        _ => Err(SpdyError::FrameTooLarge {
            len,
            max: MAX_FRAME_PAYLOAD,
        }),
    }
}

#[cfg(test)]
#[path = "spdy_tests.rs"]
mod tests;
