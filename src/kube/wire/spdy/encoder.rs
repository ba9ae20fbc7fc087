//! The encoding direction: [`Frame`]s → bytes for a peer, refusing before anything is written
//! a frame that the peer would reject.

use bytes::{BufMut, BytesMut};

use super::header_block::{serialize_pairs, DeflateContext};
use super::*;

/// Encoder for ONE direction. It owns the deflate context (primed with the
/// SPDY/3 dictionary) shared by all header blocks it sends; each block ends
/// with a zlib sync flush, as SPDY/3 requires.
#[derive(Debug)]
pub struct Encoder {
    deflate: DeflateContext,
    failed: Option<SpdyError>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Encoder {
            deflate: DeflateContext::new(),
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
        let raw = serialize_pairs(headers)?;
        self.deflate
            .deflate_block(&raw)
            .map_err(|e| self.fail(e.into()))
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
