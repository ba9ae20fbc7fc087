//! The `channel.k8s.io` WebSocket subprotocols that exec and attach speak.
//!
//! kubectl ≥ 1.30 runs exec/attach over WebSocket (`v5.channel.k8s.io`), other clients still use
//! `v4.channel.k8s.io` or the text variant `v4.base64.channel.k8s.io`. Every binary message starts
//! with one channel byte (`apimachinery pkg/util/remotecommand/constants.go`). This module owns the
//! channel numbers, subprotocol negotiation and message framing; it does no I/O. It trusts nothing:
//! an empty message, an unknown channel or bad base64 is a typed error.

use bytes::{BufMut, Bytes, BytesMut};

/// stdin, client → server.
pub const STDIN: u8 = 0;
/// stdout, server → client.
pub const STDOUT: u8 = 1;
/// stderr, server → client (unused with a TTY).
pub const STDERR: u8 = 2;
/// error/status channel, server → client: a `meta/v1` Status JSON.
pub const ERROR: u8 = 3;
/// terminal resize, client → server: `{"Width":W,"Height":H}`.
pub const RESIZE: u8 = 4;
/// v5 only: "I will send no more on channel N" (payload: the channel number).
pub const CLOSE: u8 = 255;

/// The remote-command subprotocols, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamProtocol {
    /// `v5.channel.k8s.io`: v4 plus the CLOSE signal.
    V5,
    /// `v4.channel.k8s.io`: binary, channel byte + payload; status on channel 3.
    V4,
    /// `v4.base64.channel.k8s.io`: text messages, ASCII digit channel + base64 payload.
    V4Base64,
    /// `SPDY/3.1+portforward.k8s.io`: a SPDY/3.1 byte stream tunnelled in binary messages.
    SpdyTunnel,
}

impl StreamProtocol {
    /// The exact `Sec-WebSocket-Protocol` token.
    pub fn name(self) -> &'static str {
        match self {
            StreamProtocol::V5 => "v5.channel.k8s.io",
            StreamProtocol::V4 => "v4.channel.k8s.io",
            StreamProtocol::V4Base64 => "v4.base64.channel.k8s.io",
            StreamProtocol::SpdyTunnel => "SPDY/3.1+portforward.k8s.io",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        [StreamProtocol::V5, StreamProtocol::V4, StreamProtocol::V4Base64, StreamProtocol::SpdyTunnel]
            .into_iter()
            .find(|p| p.name() == s)
    }

    /// Pick the protocol to answer from the client's `Sec-WebSocket-Protocol` header values
    /// (comma-separated, possibly repeated), honouring the client's order among those `allowed`.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>, allowed: &[StreamProtocol]) -> Option<Self> {
        offered
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter_map(StreamProtocol::from_name)
            .find(|p| allowed.contains(p))
    }

    /// Whether messages are text with base64 payloads.
    pub fn is_base64(self) -> bool {
        self == StreamProtocol::V4Base64
    }
}

/// Why a channel message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// A message had no channel byte.
    #[error("empty channel message")]
    Empty,
    /// A base64 message's channel was not an ASCII digit.
    #[error("invalid channel {0:?} in a base64 message")]
    BadChannel(u8),
    /// A base64 message's payload did not decode.
    #[error("invalid base64 payload")]
    BadBase64,
    /// A resize message was not `{"Width":W,"Height":H}`.
    #[error("invalid resize message")]
    BadResize,
}

/// Encode one message on `channel` (binary protocols; for base64 use [`encode_text`]).
pub fn encode(channel: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 1);
    b.put_u8(channel);
    b.put_slice(payload);
    b.freeze()
}

/// Encode one message of `v4.base64.channel.k8s.io`.
pub fn encode_text(channel: u8, payload: &[u8]) -> String {
    use base64::Engine;
    let mut s = String::with_capacity(payload.len() * 4 / 3 + 4);
    s.push(char::from(b'0' + channel.min(9)));
    s.push_str(&base64::engine::general_purpose::STANDARD.encode(payload));
    s
}

/// Split a binary message into (channel, payload).
pub fn decode(msg: &[u8]) -> Result<(u8, &[u8]), ChannelError> {
    match msg.split_first() {
        Some((c, rest)) => Ok((*c, rest)),
        None => Err(ChannelError::Empty),
    }
}

/// Split a `v4.base64.channel.k8s.io` text message into (channel, decoded payload).
pub fn decode_text(msg: &str) -> Result<(u8, Vec<u8>), ChannelError> {
    use base64::Engine;
    let bytes = msg.as_bytes();
    let (c, rest) = bytes.split_first().ok_or(ChannelError::Empty)?;
    if !c.is_ascii_digit() {
        return Err(ChannelError::BadChannel(*c));
    }
    let payload = base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| ChannelError::BadBase64)?;
    Ok((c - b'0', payload))
}

/// A terminal size as kubectl sends it on the resize channel (Go field names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Parse one resize message. kubectl sends one JSON object per message, newline-terminated.
pub fn parse_resize(payload: &[u8]) -> Result<TerminalSize, ChannelError> {
    if payload.len() > 256 {
        return Err(ChannelError::BadResize);
    }
    serde_json::from_slice(payload).map_err(|_| ChannelError::BadResize)
}

/// An incremental splitter for resize streams (SPDY carries them as a byte stream of JSON objects).
#[derive(Debug, Default)]
pub struct ResizeStream {
    buf: Vec<u8>,
}

impl ResizeStream {
    /// Feed bytes, get the sizes completed by them. Garbage or an over-long object is an error.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<TerminalSize>, ChannelError> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<TerminalSize>();
        let mut consumed = 0;
        loop {
            match stream.next() {
                Some(Ok(size)) => {
                    out.push(size);
                    consumed = stream.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => return Err(ChannelError::BadResize),
                None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        if self.buf.len() > 256 {
            return Err(ChannelError::BadResize);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_in_client_order() {
        let all = [StreamProtocol::V5, StreamProtocol::V4, StreamProtocol::V4Base64];
        assert_eq!(StreamProtocol::negotiate(["v5.channel.k8s.io"], &all), Some(StreamProtocol::V5));
        assert_eq!(StreamProtocol::negotiate(["v4.channel.k8s.io, v5.channel.k8s.io"], &all), Some(StreamProtocol::V4));
        assert_eq!(StreamProtocol::negotiate(["channel.k8s.io"], &all), None);
        assert_eq!(StreamProtocol::negotiate(["SPDY/3.1+portforward.k8s.io"], &all), None);
        assert_eq!(StreamProtocol::negotiate(["V5.CHANNEL.K8S.IO"], &all), None, "tokens are case-sensitive");
    }

    #[test]
    fn binary_round_trip_and_empty() {
        let m = encode(STDOUT, b"hi");
        assert_eq!(decode(&m).unwrap(), (STDOUT, &b"hi"[..]));
        assert_eq!(decode(b""), Err(ChannelError::Empty));
        assert_eq!(decode(&[CLOSE, STDIN]).unwrap(), (CLOSE, &[STDIN][..]));
    }

    #[test]
    fn base64_round_trip_and_hostile() {
        let t = encode_text(STDERR, b"oops");
        assert_eq!(t, "2b29wcw==");
        assert_eq!(decode_text(&t).unwrap(), (STDERR, b"oops".to_vec()));
        assert_eq!(decode_text("x"), Err(ChannelError::BadChannel(b'x')));
        assert_eq!(decode_text("1!!!"), Err(ChannelError::BadBase64));
        assert_eq!(decode_text(""), Err(ChannelError::Empty));
    }

    #[test]
    fn resize_messages() {
        assert_eq!(parse_resize(b"{\"Width\":100,\"Height\":30}\n").unwrap(), TerminalSize { width: 100, height: 30 });
        assert!(parse_resize(b"{\"Width\":-1,\"Height\":30}").is_err());
        assert!(parse_resize(b"{\"Width\":1}").is_err());
        assert!(parse_resize(&[b' '; 300]).is_err());
    }

    #[test]
    fn resize_stream_splits_across_chunks() {
        let mut s = ResizeStream::default();
        assert!(s.feed(b"{\"Width\":80,").unwrap().is_empty());
        let got = s.feed(b"\"Height\":24}\n{\"Width\":100,\"Height\":30}\n{").unwrap();
        assert_eq!(got, vec![TerminalSize { width: 80, height: 24 }, TerminalSize { width: 100, height: 30 }]);
        assert!(s.feed(b"garbage").is_err());
    }
}
