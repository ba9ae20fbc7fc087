//! RFC 6455 WebSocket framing, one direction, incremental: bytes in any chunks → [`Frame`]s,
//! and [`Assembler`] for whole messages.
//!
//! Why it exists: the relay splices the upgraded connection and only sees bytes; to record what
//! flows on it the frames must be cut exactly as the peers cut them. tokio-tungstenite owns a
//! socket and cannot be fed teed bytes, hence this small pure decoder.
//!
//! What it rejects (typed [`WsError`], sticky): reserved bits set (no extension is allowed
//! through the relay, so no compression), unknown opcodes, fragmented or over-long (> 125)
//! control frames, a frame longer than the limit or a message that would outgrow its limit
//! (both decided from the header, *before* the payload is buffered), a 64-bit length with the
//! top bit set, unmasked frames from the client and masked frames from the server (RFC 6455
//! §5.1), a continuation without a message or a new message inside one, a 1-byte or non-UTF-8
//! close payload, text messages that are not UTF-8, and any frame after a close frame.
//!
//! Memory: at most one frame header and payload (≤ `max_frame`) plus the chunk being fed are
//! buffered, and [`Assembler`] holds at most `max_message` bytes of one message.

use bytes::{Buf, Bytes, BytesMut};

/// Who sends the bytes this decoder reads (decides the masking rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The client: every frame must be masked.
    Client,
    /// The server: no frame may be masked.
    Server,
}

/// Size limits, checked from frame headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame payload.
    pub max_frame: usize,
    /// Largest message (sum of its frames); `usize::MAX` when messages are not reassembled.
    pub max_message: usize,
}

impl Default for Limits {
    /// kubectl and the apiserver write at most 32 KiB (+ the channel byte) per message; 1 MiB
    /// leaves ample room.
    fn default() -> Self {
        Limits {
            max_frame: 1 << 20,
            max_message: 1 << 20,
        }
    }
}

/// One frame, unmasked, after its sequencing was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A piece of a text or binary message; `first` starts it, `fin` ends it.
    Data {
        text: bool,
        first: bool,
        fin: bool,
        payload: Bytes,
    },
    Ping(Bytes),
    Pong(Bytes),
    /// A close frame: its status code (absent when the payload is empty) and reason.
    Close {
        code: Option<u16>,
        reason: String,
    },
}

/// Why the framing was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// RSV1–3 set: an extension (e.g. permessage-deflate) nobody negotiated through the relay.
    #[error("reserved bits {0:#04x} set")]
    ReservedBits(u8),
    /// Opcodes 3–7 and 11–15.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame longer than 125 bytes.
    #[error("control frame of {0} bytes")]
    ControlTooLong(u64),
    /// A frame payload over the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: u64, max: usize },
    /// A message that would exceed its limit.
    #[error("message exceeds the limit of {max} bytes")]
    MessageTooLarge { max: usize },
    /// A 64-bit length with the most significant bit set.
    #[error("invalid 64-bit frame length")]
    BadLength,
    /// A client frame without a mask.
    #[error("unmasked frame from the client")]
    Unmasked,
    /// A server frame with a mask.
    #[error("masked frame from the server")]
    Masked,
    /// A continuation frame outside a message.
    #[error("continuation frame without a message")]
    UnexpectedContinuation,
    /// A new text or binary frame while a message is still open.
    #[error("new message before the previous one finished")]
    InterruptedMessage,
    /// A close payload of 1 byte or with a non-UTF-8 reason.
    #[error("invalid close frame")]
    BadClose,
    /// A text message that is not UTF-8.
    #[error("text message is not UTF-8")]
    InvalidUtf8,
    /// A frame after the sender's close frame.
    #[error("frame after close")]
    AfterClose,
}

/// Frame opcodes (RFC 6455 §5.2).
pub const OP_CONTINUATION: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// The incremental frame decoder for one direction.
#[derive(Debug)]
pub struct FrameDecoder {
    sender: Sender,
    limits: Limits,
    buf: BytesMut,
    /// `Some(text)` while a fragmented message is open, with its length so far.
    open: Option<(bool, usize)>,
    closed: bool,
    failed: Option<WsError>,
}

/// A parsed header: where the payload starts and how long it is.
struct Header {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    start: usize,
    len: usize,
}

impl FrameDecoder {
    #[must_use]
    pub fn new(sender: Sender, limits: Limits) -> FrameDecoder {
        FrameDecoder {
            sender,
            limits,
            buf: BytesMut::new(),
            open: None,
            closed: false,
            failed: None,
        }
    }

    /// Append bytes read from the connection.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Bytes buffered and not yet a frame.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the sender's close frame was seen.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed. Errors are sticky.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let res = self.next_inner();
        if let Err(e) = &res {
            self.failed = Some(e.clone());
            self.buf = BytesMut::new();
        }
        res
    }

    fn next_inner(&mut self) -> Result<Option<Frame>, WsError> {
        let Some(h) = self.header()? else {
            return Ok(None);
        };
        let Some(end) = h.start.checked_add(h.len) else {
            return Err(WsError::BadLength);
        };
        if self.buf.len() < end {
            return Ok(None);
        }
        self.buf.advance(h.start);
        let mut payload = self.buf.split_to(h.len);
        if let Some(key) = h.mask {
            unmask(&mut payload, key);
        }
        let payload = payload.freeze();
        Ok(Some(match h.opcode {
            OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                let (text, first, so_far) = match self.open {
                    Some((text, so_far)) => (text, false, so_far),
                    None => (h.opcode == OP_TEXT, true, 0),
                };
                self.open = (!h.fin).then_some((text, so_far + h.len));
                Frame::Data {
                    text,
                    first,
                    fin: h.fin,
                    payload,
                }
            }
            OP_PING => Frame::Ping(payload),
            OP_PONG => Frame::Pong(payload),
            _ => {
                self.closed = true;
                close_frame(&payload)?
            }
        }))
    }

    /// Parse and check the header at the front of the buffer, if it is all there.
    fn header(&self) -> Result<Option<Header>, WsError> {
        let b = &self.buf[..];
        let (Some(&b0), Some(&b1)) = (b.first(), b.get(1)) else {
            return Ok(None);
        };
        if self.closed {
            return Err(WsError::AfterClose);
        }
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        if b0 & 0x70 != 0 {
            return Err(WsError::ReservedBits(b0 & 0x70));
        }
        let control = match opcode {
            OP_CONTINUATION | OP_TEXT | OP_BINARY => false,
            OP_CLOSE | OP_PING | OP_PONG => true,
            other => return Err(WsError::UnknownOpcode(other)),
        };
        let masked = b1 & 0x80 != 0;
        match (self.sender, masked) {
            (Sender::Client, false) => return Err(WsError::Unmasked),
            (Sender::Server, true) => return Err(WsError::Masked),
            _ => {}
        }
        let (len, mut at) = match b1 & 0x7f {
            126 => match b.get(2..4) {
                Some(s) => (u64::from(u16::from_be_bytes([s[0], s[1]])), 4),
                None => return Ok(None),
            },
            127 => match b.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
                Some(s) if s[0] & 0x80 != 0 => return Err(WsError::BadLength),
                Some(s) => (u64::from_be_bytes(s), 10),
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if control {
            if !fin {
                return Err(WsError::FragmentedControl);
            }
            if len > 125 {
                return Err(WsError::ControlTooLong(len));
            }
        }
        let max = self.limits.max_frame;
        let len = match usize::try_from(len) {
            Ok(l) if l <= max => l,
            _ => return Err(WsError::FrameTooLarge { len, max }),
        };
        if !control {
            let so_far = match (opcode, self.open) {
                (OP_CONTINUATION, None) => return Err(WsError::UnexpectedContinuation),
                (OP_CONTINUATION, Some((_, so_far))) => so_far,
                (_, Some(_)) => return Err(WsError::InterruptedMessage),
                (_, None) => 0,
            };
            let max = self.limits.max_message;
            if so_far.checked_add(len).is_none_or(|total| total > max) {
                return Err(WsError::MessageTooLarge { max });
            }
        }
        let mask = if masked {
            match b.get(at..at + 4) {
                Some(k) => {
                    at += 4;
                    Some([k[0], k[1], k[2], k[3]])
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some(Header {
            fin,
            opcode,
            mask,
            start: at,
            len,
        }))
    }
}

fn close_frame(payload: &[u8]) -> Result<Frame, WsError> {
    match payload {
        [] => Ok(Frame::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(WsError::BadClose),
        [hi, lo, reason @ ..] => {
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::BadClose)?;
            Ok(Frame::Close {
                code: Some(u16::from_be_bytes([*hi, *lo])),
                reason: reason.to_string(),
            })
        }
    }
}

/// XOR `data` with the 4-byte masking key, the key's phase starting at `data[0]`.
pub fn unmask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        if let Ok(arr) = <&mut [u8; 8]>::try_from(c) {
            *arr = (u64::from_ne_bytes(*arr) ^ wide).to_ne_bytes();
        }
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// A whole message out of data frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Binary(Bytes),
    /// Checked to be UTF-8.
    Text(Bytes),
}

/// Reassembles fragmented messages (the [`FrameDecoder`] already bounded their size). A message
/// in one frame is passed through without a copy.
#[derive(Debug, Default)]
pub struct Assembler {
    parts: BytesMut,
}

impl Assembler {
    /// Feed one data frame; a message comes out when `fin` ends it.
    pub fn push(
        &mut self,
        text: bool,
        first: bool,
        fin: bool,
        payload: Bytes,
    ) -> Result<Option<Message>, WsError> {
        let whole = if first && fin {
            payload
        } else {
            if first {
                self.parts.clear();
            }
            self.parts.extend_from_slice(&payload);
            if !fin {
                return Ok(None);
            }
            self.parts.split().freeze()
        };
        if text {
            if std::str::from_utf8(&whole).is_err() {
                return Err(WsError::InvalidUtf8);
            }
            return Ok(Some(Message::Text(whole)));
        }
        Ok(Some(Message::Binary(whole)))
    }
}

/// Build one frame (for tests, benches and fuzz seeds): `mask` makes it a client frame.
#[must_use]
pub fn encode_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(m | n as u8),
        n @ 126..=0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
    let body = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        unmask(&mut out[body..], k);
    }
    out
}

#[cfg(test)]
#[path = "ws_frame_tests.rs"]
mod tests;
