//! A SPDY/3.1 server session over any byte stream (an upgraded HTTP/1.1 connection, or the
//! byte stream tunnelled in a `SPDY/3.1+portforward.k8s.io` WebSocket).
//!
//! kubectl (spdystream) is the client and opens every stream; the server answers each
//! SYN_STREAM with an empty SYN_REPLY (spdystream blocks writes until it arrives), echoes PINGs,
//! and delivers each stream to the caller with a receiver for its data (closed on FIN or
//! RST_STREAM) and a writer. spdystream keeps no flow-control windows (see
//! `kube::wire::spdy`), so neither does this session. Any codec error ends the session: the
//! header compression context cannot be trusted after one.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::kube::wire::spdy::{Decoder, Encoder, Frame, Headers, GOAWAY_OK, MAX_FRAME_PAYLOAD, RST_CANCEL};

/// Largest DATA frame the session sends.
const MAX_DATA: usize = 32 * 1024;

/// Writes to one stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
}

impl StreamWriter {
    /// Send data (split into frames of at most 32 KiB). Fails once the session is gone.
    pub async fn send(&self, data: Bytes) -> Result<(), ()> {
        let mut data = data;
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_DATA));
            self.out.send(Frame::Data { stream_id: self.id, fin: false, data: chunk }).await.map_err(|_| ())?;
        }
        Ok(())
    }

    /// Half-close: an empty DATA frame with FIN.
    pub async fn finish(&self) {
        let _ = self.out.send(Frame::Data { stream_id: self.id, fin: true, data: Bytes::new() }).await;
    }

    /// Reset the stream.
    pub async fn reset(&self) {
        let _ = self.out.send(Frame::RstStream { stream_id: self.id, status: RST_CANCEL }).await;
    }
}

/// One client-opened stream.
pub struct SpdyStream {
    pub id: u32,
    pub headers: Headers,
    /// Data from the client; ends at FIN or RST_STREAM.
    pub rx: mpsc::Receiver<Bytes>,
    pub writer: StreamWriter,
}

/// A running session.
pub struct Session {
    /// New streams, as the client opens them; ends when the connection does.
    pub streams: mpsc::Receiver<SpdyStream>,
    /// Send GOAWAY and close.
    pub out: mpsc::Sender<Frame>,
}

impl Session {
    /// Tell the client we are done (GOAWAY is the last frame we send).
    pub async fn goaway(&self) {
        let _ = self.out.send(Frame::GoAway { last_good_stream_id: 0, status: GOAWAY_OK }).await;
    }
}

/// Serve a SPDY session on `io`.
pub fn serve<IO>(io: IO) -> Session
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let (streams_tx, streams_rx) = mpsc::channel::<SpdyStream>(16);

    tokio::spawn(async move {
        let mut enc = Encoder::new();
        let mut buf = BytesMut::new();
        while let Some(frame) = out_rx.recv().await {
            let last = matches!(frame, Frame::GoAway { .. });
            buf.clear();
            if let Err(e) = enc.encode(&frame, &mut buf) {
                tracing::debug!(error = %e, "SPDY encode failed");
                break;
            }
            if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                break;
            }
            if last {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    let out = out_tx.clone();
    tokio::spawn(async move {
        let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut inbound: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
        'read: loop {
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(frame)) => match frame {
                        Frame::SynStream { stream_id, headers, fin, .. } => {
                            let (tx, rx) = mpsc::channel(64);
                            if !fin {
                                inbound.insert(stream_id, tx);
                            }
                            if out.send(Frame::SynReply { stream_id, fin: false, headers: Headers::new() }).await.is_err() {
                                break 'read;
                            }
                            let s = SpdyStream { id: stream_id, headers, rx, writer: StreamWriter { id: stream_id, out: out.clone() } };
                            if streams_tx.send(s).await.is_err() {
                                break 'read;
                            }
                        }
                        Frame::Data { stream_id, fin, data } => {
                            if let Some(tx) = inbound.get(&stream_id) {
                                if !data.is_empty() && tx.send(data).await.is_err() {
                                    inbound.remove(&stream_id);
                                }
                            }
                            if fin {
                                inbound.remove(&stream_id);
                            }
                        }
                        Frame::RstStream { stream_id, .. } => {
                            inbound.remove(&stream_id);
                        }
                        Frame::Ping { id } => {
                            if id % 2 == 1 && out.send(Frame::Ping { id }).await.is_err() {
                                break 'read;
                            }
                        }
                        Frame::GoAway { .. } => break 'read,
                        Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Settings { .. } | Frame::WindowUpdate { .. } => {}
                    },
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "SPDY session ends on a protocol error");
                        break 'read;
                    }
                }
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        drop(inbound);
    });

    Session { streams: streams_rx, out: out_tx }
}
