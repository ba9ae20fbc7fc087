//! SPDY/3.1 sessions → session events: exec/attach streams (`streamtype` stdin, stdout, stderr,
//! error, resize) and port-forward streams (`data`/`error` with a `port` header).
//!
//! Why it exists: kubectl before 1.30 runs exec/attach over SPDY, and every kubectl runs
//! port-forward over SPDY (raw, or tunnelled in WebSocket binary messages as an arbitrary byte
//! stream). The frames come from the crate's own [`Decoder`] (one per direction: each has its
//! own zlib header context); this file keeps the stream table both directions share, since the
//! client opens every stream and the server answers on them.
//!
//! What it rejects ([`ExecError`]): any frame error from the decoder; a SYN_STREAM reusing a
//! live id, or whose `streamtype` is missing or not one of this session kind's, or (port-forward)
//! without a decimal `port` in 1..=65535; DATA on a stream that was never opened, was reset or
//! already finished in that direction; payload flowing the wrong way (stdin from the cluster,
//! stdout from the client); more than `max_streams` live streams; an error stream that is not
//! one valid `Status` (v4+). Empty DATA frames (half-closes) are allowed in either direction.
//! After a RST_STREAM the stream is kept (the last [`RESET_KEPT`] of them) because the other
//! side's frames may already be in flight: they still reach the peer, so they are recorded.
//! SYN_REPLY, HEADERS, PING, SETTINGS, WINDOW_UPDATE and GOAWAY carry nothing recorded.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::status::StatusBuffer;
use super::{Direction, EventKind, ExecError, SessionKind};
use crate::kube::wire::spdy::{Decoder, Frame};
use crate::kube::wire::websocket::ResizeStream;

/// Longest port-forward error text kept per message.
pub const MAX_PORT_ERROR: usize = 4096;
/// Reset streams remembered for frames still in flight.
pub const RESET_KEPT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamType {
    Stdin,
    Stdout,
    Stderr,
    Error,
    Resize,
    PortData(u16),
    PortError(u16),
}

#[derive(Debug)]
struct Stream {
    ty: StreamType,
    reset: bool,
    fin_up: bool,
    fin_down: bool,
    resize: ResizeStream,
    status: StatusBuffer,
    text: Vec<u8>,
}

/// Both directions of one SPDY session.
#[derive(Debug)]
pub struct SpdySession {
    kind: SessionKind,
    status_json: bool,
    up: (Decoder, BytesMut),
    down: (Decoder, BytesMut),
    streams: HashMap<u32, Stream>,
    /// Reset streams still in `streams`, oldest first.
    reset: VecDeque<u32>,
    max_streams: usize,
    failed: Option<ExecError>,
}

impl SpdySession {
    /// `max_frame` caps every frame; `max_streams` the live streams.
    #[must_use]
    pub fn new(
        kind: SessionKind,
        status_json: bool,
        max_frame: usize,
        max_streams: usize,
    ) -> SpdySession {
        SpdySession {
            kind,
            status_json,
            up: (Decoder::new(max_frame), BytesMut::new()),
            down: (Decoder::new(max_frame), BytesMut::new()),
            streams: HashMap::new(),
            reset: VecDeque::new(),
            max_streams,
            failed: None,
        }
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
            self.up.1 = BytesMut::new();
            self.down.1 = BytesMut::new();
            self.streams.clear();
            self.reset.clear();
        }
        res
    }

    fn feed_inner(
        &mut self,
        dir: Direction,
        chunk: &[u8],
        out: &mut Vec<EventKind>,
    ) -> Result<(), ExecError> {
        let (dec, buf) = match dir {
            Direction::Upstream => &mut self.up,
            Direction::Downstream => &mut self.down,
        };
        buf.extend_from_slice(chunk);
        loop {
            let frame = match dec.decode(buf) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(source) => {
                    return Err(ExecError::Spdy {
                        direction: dir,
                        source,
                    })
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers,
                    ..
                } => {
                    let ty = stream_type(self.kind, stream_id, &headers)?;
                    if self.streams.contains_key(&stream_id) {
                        return Err(ExecError::DuplicateStream(stream_id));
                    }
                    if self.streams.len() - self.reset.len() >= self.max_streams {
                        return Err(ExecError::TooManyStreams(self.max_streams));
                    }
                    let mut s = Stream {
                        ty,
                        reset: false,
                        fin_up: false,
                        fin_down: false,
                        resize: ResizeStream::default(),
                        status: StatusBuffer::default(),
                        text: Vec::new(),
                    };
                    if fin {
                        s.finish(dir);
                    }
                    self.streams.insert(stream_id, s);
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    let status_json = self.status_json;
                    let Some(s) = self.streams.get_mut(&stream_id) else {
                        return Err(ExecError::UnknownStream(stream_id));
                    };
                    if s.finished(dir) {
                        return Err(ExecError::UnknownStream(stream_id));
                    }
                    s.data(stream_id, dir, data, status_json, out)?;
                    if fin {
                        s.finish(dir);
                        s.end_of(dir, status_json, out)?;
                        if s.fin_up && s.fin_down && !s.reset {
                            self.streams.remove(&stream_id);
                        }
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    // Both directions end; frames the other side sent before it saw the reset
                    // may still arrive, so the stream is remembered for a while.
                    if let Some(s) = self.streams.get_mut(&stream_id) {
                        if !s.reset {
                            s.reset = true;
                            self.reset.push_back(stream_id);
                        }
                        s.finish(dir);
                    }
                    if self.reset.len() > RESET_KEPT {
                        if let Some(old) = self.reset.pop_front() {
                            self.streams.remove(&old);
                        }
                    }
                }
                Frame::SynReply { .. }
                | Frame::Headers { .. }
                | Frame::Ping { .. }
                | Frame::Settings { .. }
                | Frame::WindowUpdate { .. }
                | Frame::GoAway { .. } => {}
            }
        }
    }
}

/// The stream's type from its SYN_STREAM headers.
fn stream_type(
    kind: SessionKind,
    id: u32,
    headers: &crate::kube::wire::spdy::Headers,
) -> Result<StreamType, ExecError> {
    let raw = headers.get("streamtype").unwrap_or("");
    let bad = || ExecError::BadStreamType {
        stream: id,
        streamtype: raw.chars().take(64).collect(),
    };
    if kind == SessionKind::PortForward {
        let port = headers
            .get("port")
            .filter(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or(ExecError::BadPort(id));
        return match raw {
            "data" => Ok(StreamType::PortData(port?)),
            "error" => Ok(StreamType::PortError(port?)),
            _ => Err(bad()),
        };
    }
    match raw {
        "stdin" => Ok(StreamType::Stdin),
        "stdout" => Ok(StreamType::Stdout),
        "stderr" => Ok(StreamType::Stderr),
        "error" => Ok(StreamType::Error),
        "resize" => Ok(StreamType::Resize),
        _ => Err(bad()),
    }
}

impl Stream {
    fn finished(&self, dir: Direction) -> bool {
        match dir {
            Direction::Upstream => self.fin_up,
            Direction::Downstream => self.fin_down,
        }
    }

    fn finish(&mut self, dir: Direction) {
        match dir {
            Direction::Upstream => self.fin_up = true,
            Direction::Downstream => self.fin_down = true,
        }
    }

    fn data(
        &mut self,
        id: u32,
        dir: Direction,
        data: Bytes,
        status_json: bool,
        out: &mut Vec<EventKind>,
    ) -> Result<(), ExecError> {
        use Direction::{Downstream as Down, Upstream as Up};
        if data.is_empty() {
            return Ok(());
        }
        match (self.ty, dir) {
            (StreamType::Stdin, Up) => out.push(EventKind::Input { data }),
            (StreamType::Stdout, Down) => out.push(EventKind::Output { data }),
            (StreamType::Stderr, Down) => out.push(EventKind::Error { data }),
            (StreamType::Resize, Up) => {
                let sizes = self.resize.feed(&data).map_err(|_| ExecError::BadResize)?;
                out.extend(sizes.into_iter().map(|s| EventKind::Resize {
                    width: s.width,
                    height: s.height,
                }));
            }
            (StreamType::Error, Down) if status_json => {
                if let Some(ev) = self.status.feed(&data)? {
                    out.push(ev);
                }
            }
            (StreamType::Error, Down) => {
                if self.text.len() + data.len() > super::status::MAX_STATUS {
                    return Err(ExecError::BadStatus);
                }
                self.text.extend_from_slice(&data);
            }
            (StreamType::PortData(port), direction) => {
                out.push(EventKind::PortData {
                    port,
                    direction,
                    bytes: data.len() as u64,
                });
            }
            (StreamType::PortError(port), Down) => {
                let keep = &data[..data.len().min(MAX_PORT_ERROR)];
                out.push(EventKind::PortError {
                    port,
                    message: String::from_utf8_lossy(keep).into_owned(),
                });
            }
            (_, direction) => {
                return Err(ExecError::WrongDirection {
                    stream: id,
                    direction,
                })
            }
        }
        Ok(())
    }

    /// The sender finished the stream in `dir`: an error stream's content is now complete.
    fn end_of(
        &mut self,
        dir: Direction,
        status_json: bool,
        out: &mut Vec<EventKind>,
    ) -> Result<(), ExecError> {
        if self.ty != StreamType::Error || dir != Direction::Downstream {
            return Ok(());
        }
        if status_json {
            self.status.finish()?;
            if !self.status.is_done() {
                out.push(EventKind::Exit { code: 0 });
            }
        } else if self.text.is_empty() {
            out.push(EventKind::Exit { code: 0 });
        } else {
            let message = String::from_utf8_lossy(&self.text).into_owned();
            self.text = Vec::new();
            out.push(EventKind::Failure { message });
        }
        Ok(())
    }
}
