//! WebSocket sessions → session events: the `channel.k8s.io` subprotocols (v5, v4 binary,
//! v4.base64 text) for exec/attach, and the `SPDY/3.1+portforward.k8s.io` tunnel for
//! port-forward.
//!
//! Why it exists: it joins the frame layer ([`crate::kube::wire::ws_frame`]) to the channel codec the crate
//! already has ([`crate::kube::wire::websocket`]: channel numbers, `decode`, `decode_text`,
//! [`ResizeStream`]) and to the status parser ([`super::status`]).
//!
//! What it trusts: the subprotocol the server echoed. What it rejects ([`ExecError`]): frame
//! errors; text messages in a binary subprotocol and binary ones in the base64 one; channels
//! that do not exist in that direction (upstream: stdin, resize and, v5, close; downstream:
//! stdout, stderr, error and, v5, close); bad base64; bad resize JSON; an error channel that is
//! not one valid `Status`. In the tunnel every binary frame's payload is fed as is to the SPDY
//! session (SPDY frames are split across messages at random, some empty); text is refused.
//!
//! Exit code: the status on channel 3, or 0 when the server closed normally (1000) without
//! writing one, as client-go reads an empty error channel.

use super::spdy::SpdySession;
use super::status::StatusBuffer;
use crate::kube::wire::ws_frame::{Assembler, Frame, FrameDecoder, Limits, Message, Sender};
use super::{Direction, EventKind, ExecError, SessionKind};
use crate::kube::wire::websocket::{self as ch, ResizeStream, StreamProtocol};

/// Both directions of one WebSocket session.
#[derive(Debug)]
pub struct WsSession {
    protocol: StreamProtocol,
    up: (FrameDecoder, Assembler),
    down: (FrameDecoder, Assembler),
    resize: ResizeStream,
    status: StatusBuffer,
    normal_close: bool,
    tunnel: Option<SpdySession>,
    failed: Option<ExecError>,
}

impl WsSession {
    /// A session of `kind` over `protocol`. Port-forward needs the SPDY tunnel and exec/attach a
    /// channel protocol; other pairs are [`ExecError::Unsupported`].
    pub fn new(
        protocol: StreamProtocol,
        kind: SessionKind,
        limits: Limits,
        max_streams: usize,
    ) -> Result<WsSession, ExecError> {
        let tunnel = match (protocol, kind) {
            (StreamProtocol::SpdyTunnel, SessionKind::PortForward) => {
                Some(SpdySession::new(kind, true, limits.max_frame, max_streams))
            }
            (StreamProtocol::SpdyTunnel, _) => {
                return Err(ExecError::Unsupported(
                    "exec or attach over the SPDY tunnel",
                ))
            }
            (_, SessionKind::PortForward) => {
                return Err(ExecError::Unsupported(
                    "port-forward over the channel.k8s.io protocol",
                ))
            }
            _ => None,
        };
        // The tunnel streams messages into SPDY without reassembling them.
        let limits = if tunnel.is_some() {
            Limits {
                max_message: usize::MAX,
                ..limits
            }
        } else {
            limits
        };
        Ok(WsSession {
            protocol,
            up: (
                FrameDecoder::new(Sender::Client, limits),
                Assembler::default(),
            ),
            down: (
                FrameDecoder::new(Sender::Server, limits),
                Assembler::default(),
            ),
            resize: ResizeStream::default(),
            status: StatusBuffer::default(),
            normal_close: false,
            tunnel,
            failed: None,
        })
    }

    /// Feed bytes of one direction; events are appended to `out`. Errors are sticky.
    pub fn feed(
        &mut self,
        dir: Direction,
        chunk: &[u8],
        out: &mut Vec<EventKind>,
    ) -> Result<(), ExecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let res = self.feed_inner(dir, chunk, out);
        if let Err(e) = &res {
            self.failed = Some(e.clone());
        }
        res
    }

    /// The connection ended: a normal close without a status is exit 0; a half-read status is
    /// an error.
    pub fn finish(&mut self, out: &mut Vec<EventKind>) -> Result<(), ExecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.tunnel.is_some() {
            return Ok(());
        }
        self.status.finish()?;
        if self.normal_close && !self.status.is_done() {
            out.push(EventKind::Exit { code: 0 });
        }
        Ok(())
    }

    fn feed_inner(
        &mut self,
        dir: Direction,
        chunk: &[u8],
        out: &mut Vec<EventKind>,
    ) -> Result<(), ExecError> {
        let ws = |source| ExecError::WebSocket {
            direction: dir,
            source,
        };
        let (frames, assembler) = match dir {
            Direction::Upstream => &mut self.up,
            Direction::Downstream => &mut self.down,
        };
        frames.push(chunk);
        while let Some(frame) = frames.next_frame().map_err(ws)? {
            match frame {
                Frame::Data {
                    text,
                    first,
                    fin,
                    payload,
                } => {
                    if let Some(tunnel) = &mut self.tunnel {
                        if text {
                            return Err(ExecError::UnexpectedMessageType("text"));
                        }
                        tunnel.feed(dir, &payload, out)?;
                        continue;
                    }
                    let Some(msg) = assembler.push(text, first, fin, payload).map_err(ws)? else {
                        continue;
                    };
                    message(
                        self.protocol,
                        dir,
                        msg,
                        &mut self.resize,
                        &mut self.status,
                        out,
                    )?;
                }
                Frame::Close { code, .. } => {
                    if dir == Direction::Downstream && code == Some(1000) {
                        self.normal_close = true;
                    }
                }
                Frame::Ping(_) | Frame::Pong(_) => {}
            }
        }
        Ok(())
    }
}

/// One whole channel message.
fn message(
    protocol: StreamProtocol,
    dir: Direction,
    msg: Message,
    resize: &mut ResizeStream,
    status: &mut StatusBuffer,
    out: &mut Vec<EventKind>,
) -> Result<(), ExecError> {
    let chan = |source| ExecError::Channel {
        direction: dir,
        source,
    };
    let (channel, payload) = match (msg, protocol.is_base64()) {
        (Message::Binary(m), false) => {
            let (c, _) = ch::decode(&m).map_err(chan)?;
            (c, m.slice(1..))
        }
        (Message::Text(m), true) => {
            let text = std::str::from_utf8(&m)
                .map_err(|_| ExecError::UnexpectedMessageType("non-UTF-8 text"))?;
            let (c, p) = ch::decode_text(text).map_err(chan)?;
            (c, bytes::Bytes::from(p))
        }
        (Message::Binary(_), true) => return Err(ExecError::UnexpectedMessageType("binary")),
        (Message::Text(_), false) => return Err(ExecError::UnexpectedMessageType("text")),
    };
    let v5 = protocol == StreamProtocol::V5;
    match (dir, channel) {
        (_, ch::CLOSE) if v5 => {}
        (Direction::Upstream, ch::STDIN) if !payload.is_empty() => {
            out.push(EventKind::Input { data: payload })
        }
        (Direction::Upstream, ch::STDIN) => {}
        (Direction::Upstream, ch::RESIZE) => {
            let sizes = resize.feed(&payload).map_err(|_| ExecError::BadResize)?;
            out.extend(sizes.into_iter().map(|s| EventKind::Resize {
                width: s.width,
                height: s.height,
            }));
        }
        (Direction::Downstream, ch::STDOUT) if !payload.is_empty() => {
            out.push(EventKind::Output { data: payload })
        }
        (Direction::Downstream, ch::STDERR) if !payload.is_empty() => {
            out.push(EventKind::Error { data: payload })
        }
        (Direction::Downstream, ch::STDOUT | ch::STDERR) => {}
        (Direction::Downstream, ch::ERROR) => {
            if let Some(ev) = status.feed(&payload)? {
                out.push(ev);
            }
        }
        (direction, channel) => return Err(ExecError::UnexpectedChannel { direction, channel }),
    }
    Ok(())
}
