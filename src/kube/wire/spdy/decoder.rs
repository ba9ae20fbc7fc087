//! The decoding direction: bytes read from a peer → [`Frame`]s, checking every size before
//! buffering and every field as the module documentation lists.

use bytes::{Buf, BytesMut};

use super::header_block::{parse_pairs, InflateContext};
use super::*;

/// Incremental decoder for ONE direction of a connection. It owns that
/// direction's zlib inflate context, shared by all its header blocks (SPDY/3
/// header compression is one continuous zlib stream per direction, primed with
/// [`SPDY3_DICTIONARY`]).
#[derive(Debug)]
pub struct Decoder {
    max_payload: usize,
    inflate: InflateContext,
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
            inflate: InflateContext::new(),
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
        let raw = self.inflate.inflate_block(compressed)?;
        Ok(parse_pairs(&raw)?)
    }
}
