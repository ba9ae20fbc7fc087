//! Secret values replaced in exec and attach output, for users whose mask profile masks logs.
//! I/O-free: [`super::session`] runs it on the bytes coming from the cluster.
//!
//! After the `101`, exec is a WebSocket carrying `channel.k8s.io` messages (k8s-wire.md §2).
//! The client→server half (stdin, resize) is copied untouched. The server→client half is cut
//! into frames ([`crate::kube::wire::ws_frame`]), reassembled into messages, and the payload
//! of stdout and stderr messages runs through one [`TextStream`] per channel, so a value split
//! across messages is still found; every other message (the status channel, v5 `CLOSE`, ping,
//! pong, close) is re-sent as it came, after the output streams are flushed so ordering holds.
//!
//! What it cannot mask it refuses, before the request goes upstream: exec over SPDY (kubectl
//! before 1.30, or a client that forces it), whose frames would need the SPDY header
//! compression state of both directions to rewrite. kubectl 1.30 and later use WebSocket.
//! Mid-stream, a framing error ends the session (both connections closed): output the relay
//! cannot read is output it cannot mask.
//!
//! The price of masking: output that could be the start of a Secret value is held back until
//! the next output decides it (a line typed at a shell prompt is normally sent at once).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;

use crate::kube::status::Status;
use crate::kube::wire::websocket::{self as channel, StreamProtocol};
use crate::mask::{Replacer, TextStream};
use crate::kube::wire::ws_frame::{encode_frame, Assembler, Frame, FrameDecoder, Limits, Message, Sender};

/// Refuse, before anything goes upstream, an exec/attach whose output this module could not
/// rewrite: anything but a WebSocket upgrade.
pub fn check_upgrade(headers: &HeaderMap) -> Result<(), Status> {
    let upgrade = headers.get(http::header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if upgrade.eq_ignore_ascii_case("websocket") {
        return Ok(());
    }
    Err(Status::forbidden(format!(
        "hoop-kube masks Secret values in exec and attach output, which it can do over WebSocket only, and this client asked for {upgrade:?}; use kubectl 1.30 or later"
    )))
}

/// Why exec output could not be masked.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("WebSocket framing: {0}")]
    Frame(#[from] crate::kube::wire::ws_frame::WsError),
    #[error("channel message: {0}")]
    Channel(#[from] channel::ChannelError),
}

/// The server→client half of a masked exec: bytes in, masked bytes out. I/O-free.
pub struct OutputMasker {
    protocol: StreamProtocol,
    frames: FrameDecoder,
    messages: Assembler,
    stdout: TextStream,
    stderr: TextStream,
}

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

impl OutputMasker {
    /// A masker for one session.
    pub fn new(protocol: StreamProtocol, replacer: Arc<Replacer>) -> Self {
        OutputMasker {
            protocol,
            frames: FrameDecoder::new(Sender::Server, Limits::default()),
            messages: Assembler::default(),
            stdout: TextStream::new(replacer.clone()),
            stderr: TextStream::new(replacer),
        }
    }

    /// Values replaced so far.
    pub fn replaced(&self) -> u64 {
        self.stdout.replaced() + self.stderr.replaced()
    }

    /// Feed bytes from upstream; returns the bytes to send to the client.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, OutputError> {
        self.frames.push(chunk);
        let mut out = Vec::new();
        while let Some(frame) = self.frames.next_frame()? {
            match frame {
                Frame::Data { text, first, fin, payload } => {
                    if let Some(msg) = self.messages.push(text, first, fin, payload)? {
                        self.message(msg, &mut out)?;
                    }
                }
                Frame::Ping(p) => out.extend(encode_frame(true, OP_PING, &p, None)),
                Frame::Pong(p) => out.extend(encode_frame(true, OP_PONG, &p, None)),
                Frame::Close { code, reason } => {
                    self.flush(&mut out);
                    let mut payload = Vec::new();
                    if let Some(c) = code {
                        payload.extend_from_slice(&c.to_be_bytes());
                        payload.extend_from_slice(reason.as_bytes());
                    }
                    out.extend(encode_frame(true, OP_CLOSE, &payload, None));
                }
            }
        }
        Ok(out)
    }

    /// The stream ended: what the output streams still hold back.
    pub fn finish(&mut self) -> Result<Vec<u8>, OutputError> {
        let mut out = Vec::new();
        self.flush(&mut out);
        Ok(out)
    }

    fn message(&mut self, msg: Message, out: &mut Vec<u8>) -> Result<(), OutputError> {
        let (ch, payload): (u8, Bytes) = match &msg {
            Message::Binary(b) => {
                let (ch, p) = channel::decode(b)?;
                (ch, b.slice_ref(p))
            }
            Message::Text(t) => {
                let s = std::str::from_utf8(t).map_err(|_| channel::ChannelError::Empty)?;
                let (ch, p) = channel::decode_text(s)?;
                (ch, Bytes::from(p))
            }
        };
        match ch {
            channel::STDOUT | channel::STDERR => {
                let mut masked = Vec::with_capacity(payload.len());
                let stream = if ch == channel::STDOUT { &mut self.stdout } else { &mut self.stderr };
                stream.feed(&payload, &mut masked);
                if !masked.is_empty() {
                    self.emit(ch, &masked, out);
                }
            }
            _ => {
                // Status, v5 CLOSE and anything else: the output before it goes first.
                self.flush(out);
                match msg {
                    Message::Binary(b) => out.extend(encode_frame(true, OP_BINARY, &b, None)),
                    Message::Text(t) => out.extend(encode_frame(true, OP_TEXT, &t, None)),
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        for ch in [channel::STDOUT, channel::STDERR] {
            let mut rest = Vec::new();
            let stream = if ch == channel::STDOUT { &mut self.stdout } else { &mut self.stderr };
            stream.finish(&mut rest);
            if !rest.is_empty() {
                self.emit(ch, &rest, out);
            }
        }
    }

    fn emit(&self, ch: u8, data: &[u8], out: &mut Vec<u8>) {
        if self.protocol.is_base64() {
            out.extend(encode_frame(true, OP_TEXT, channel::encode_text(ch, data).as_bytes(), None));
        } else {
            let mut m = BytesMut::with_capacity(data.len() + 1);
            m.put_u8(ch);
            m.put_slice(data);
            out.extend(encode_frame(true, OP_BINARY, &m, None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdout_frame(data: &[u8]) -> Vec<u8> {
        let mut p = vec![channel::STDOUT];
        p.extend_from_slice(data);
        encode_frame(true, OP_BINARY, &p, None)
    }

    fn decode_all(bytes: &[u8]) -> Vec<u8> {
        let mut d = FrameDecoder::new(Sender::Server, Limits::default());
        d.push(bytes);
        let mut out = Vec::new();
        while let Ok(Some(Frame::Data { payload, .. })) = d.next_frame() {
            if payload.first() == Some(&channel::STDOUT) {
                out.extend_from_slice(&payload[1..]);
            }
        }
        out
    }

    #[test]
    fn a_value_split_across_messages_and_chunks_is_replaced() {
        let secret = b"s3cr3t-passw0rd";
        let replacer = Arc::new(Replacer::new([secret.to_vec()]).unwrap());
        let mut wire = stdout_frame(b"PASSWORD=s3cr3t-pa");
        wire.extend(stdout_frame(b"ssw0rd\nok\n"));
        wire.extend(encode_frame(true, OP_BINARY, b"\x03{\"status\":\"Success\"}", None));
        for split in 0..wire.len() {
            let mut m = OutputMasker::new(StreamProtocol::V5, replacer.clone());
            let mut out = m.feed(&wire[..split]).unwrap();
            out.extend(m.feed(&wire[split..]).unwrap());
            out.extend(m.finish().unwrap());
            let text = decode_all(&out);
            assert!(!text.windows(secret.len()).any(|w| w == secret), "split at {split}: {:?}", String::from_utf8_lossy(&text));
            assert_eq!(String::from_utf8_lossy(&text), format!("PASSWORD={}\nok\n", crate::mask::PLACEHOLDER_TEXT));
            assert_eq!(m.replaced(), 1);
        }
    }

    #[test]
    fn base64_protocol_and_control_frames() {
        let replacer = Arc::new(Replacer::new([b"hunter22".to_vec()]).unwrap());
        let mut m = OutputMasker::new(StreamProtocol::V4Base64, replacer);
        let mut wire = encode_frame(true, OP_TEXT, channel::encode_text(channel::STDOUT, b"pw hunter22\n").as_bytes(), None);
        wire.extend(encode_frame(true, OP_PING, b"p", None));
        let out = m.feed(&wire).unwrap();
        let mut d = FrameDecoder::new(Sender::Server, Limits::default());
        d.push(&out);
        let Some(Frame::Data { payload, .. }) = d.next_frame().unwrap() else { panic!("data frame") };
        let (ch, text) = channel::decode_text(std::str::from_utf8(&payload).unwrap()).unwrap();
        assert_eq!((ch, String::from_utf8(text).unwrap()), (channel::STDOUT, format!("pw {}\n", crate::mask::PLACEHOLDER_TEXT)));
        assert_eq!(d.next_frame().unwrap(), Some(Frame::Ping(Bytes::from_static(b"p"))));
    }

    #[test]
    fn masked_client_frames_from_upstream_are_refused() {
        let replacer = Arc::new(Replacer::new([b"hunter22".to_vec()]).unwrap());
        let mut m = OutputMasker::new(StreamProtocol::V5, replacer);
        assert!(m.feed(&encode_frame(true, OP_BINARY, b"\x01hunter22", Some([1, 2, 3, 4]))).is_err(), "a masked server frame is a protocol violation");
    }
}
