//! Fuzzes the SPDY/3.1 `Decoder` (one direction of a kubectl exec/port-forward connection) and
//! round-trips what it decodes through the `Encoder`.
//!
//! Input: byte 0 = `n | limit << 3`: `n` (0..=7) chunk-size bytes follow, and `limit` picks the
//! decoder's payload cap; the rest is the byte stream, fed in chunks of `1 + size[i % n]` bytes
//! (all at once when `n` is 0). A seed is `\x00` followed by raw SPDY frames.
//!
//! Checked: no panic; after an `Err`, decoding again gives the same `Err` (errors are fatal);
//! every decoded frame the encoder accepts re-encodes, through a fresh Encoder/Decoder pair (the
//! zlib header context is per direction), to bytes that decode to the same frame, exactly once;
//! and all of them sent through one Encoder decode in order through one Decoder.
#![no_main]

use bytes::BytesMut;
use hoop_kube::kube::wire::spdy::{Decoder, Encoder, Frame, MAX_FRAME_PAYLOAD};
use libfuzzer_sys::fuzz_target;

const LIMITS: [usize; 4] = [MAX_FRAME_PAYLOAD, 64 * 1024, 8192, 16];

fn round_trip(frame: &Frame) {
    let mut wire = BytesMut::new();
    if Encoder::new().encode(frame, &mut wire).is_err() {
        assert!(wire.is_empty(), "a refused frame wrote bytes: {frame:?}");
        return;
    }
    let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
    match dec.decode(&mut wire) {
        Ok(Some(again)) => assert_eq!(&again, frame, "round trip changed the frame"),
        other => panic!("re-encoded {frame:?} decoded as {other:?}"),
    }
    assert!(wire.is_empty(), "{} bytes left after one re-encoded frame", wire.len());
    assert!(matches!(dec.decode(&mut wire), Ok(None)));
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(ctl & 7).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let limit = LIMITS[usize::from(ctl >> 3) & 3];

    let mut dec = Decoder::new(limit);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    let mut i = 0;
    'feed: while at < stream.len() {
        let len = match sizes.get(i % n.max(1)) {
            Some(&s) if n > 0 => 1 + usize::from(s),
            _ => stream.len(),
        };
        i += 1;
        let end = (at + len).min(stream.len());
        buf.extend_from_slice(&stream[at..end]);
        at = end;
        loop {
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(buf.len() < before, "a frame came out of no bytes");
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    let mut more = BytesMut::from(&b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"[..]);
                    assert_eq!(dec.decode(&mut buf), Err(e.clone()), "decoder forgot its error");
                    assert_eq!(dec.decode(&mut more), Err(e), "decoder recovered after an error");
                    break 'feed;
                }
            }
        }
    }
    let _ = dec.skipped();
    for frame in &frames {
        let _ = frame.stream_id();
        round_trip(frame);
    }

    // The same frames through ONE encoder and ONE decoder: the shared zlib context must stay in
    // step across header blocks, and refused frames must leave the encoder usable.
    let mut enc = Encoder::new();
    let mut wire = BytesMut::new();
    let sent: Vec<&Frame> = frames.iter().filter(|f| enc.encode(f, &mut wire).is_ok()).collect();
    let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
    for want in sent {
        match dec.decode(&mut wire) {
            Ok(Some(got)) => assert_eq!(&got, want, "stream round trip changed a frame"),
            other => panic!("stream round trip: {want:?} decoded as {other:?}"),
        }
    }
    assert!(wire.is_empty() && matches!(dec.decode(&mut wire), Ok(None)));
});
