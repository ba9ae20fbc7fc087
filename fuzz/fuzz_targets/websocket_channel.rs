//! Fuzzes the `channel.k8s.io` WebSocket message codecs exec/attach use: binary `decode`,
//! base64 `decode_text`, resize parsing (`parse_resize`, `ResizeStream`) and subprotocol
//! negotiation.
//!
//! Input: the whole input is one message (binary, and text when it is UTF-8) and one resize
//! payload; for `ResizeStream` byte 0 (low 3 bits) picks a chunk size of 1..=8 bytes and the
//! rest is fed in chunks, then whole, and both feeds must give the same sizes when both succeed.
#![no_main]

use hoop_kube::kube::wire::websocket::{
    decode, decode_text, encode, encode_text, parse_resize, ChannelError, ResizeStream,
    StreamProtocol,
};
use libfuzzer_sys::fuzz_target;

fn feed(data: &[u8], chunk: usize) -> Result<Vec<(u16, u16)>, ChannelError> {
    let mut s = ResizeStream::default();
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        out.extend(s.feed(c)?.into_iter().map(|t| (t.width, t.height)));
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    // Binary messages: (channel, payload) is exactly the split, and re-encodes to the input.
    match decode(data) {
        Ok((c, payload)) => {
            assert_eq!(Some(&c), data.first());
            assert_eq!(payload, &data[1..]);
            assert_eq!(&encode(c, payload)[..], data, "binary round trip");
        }
        Err(e) => assert!(data.is_empty() && e == ChannelError::Empty),
    }

    // Text (v4.base64) messages: a digit channel; the standard engine is canonical, so what
    // decodes re-encodes to exactly the same text.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((c, payload)) = decode_text(text) {
            assert!(c <= 9, "channel {c} from a text message");
            assert_eq!(encode_text(c, &payload), text, "base64 round trip");
        }
        let offered: Vec<&str> = text.split('\n').collect();
        let all = [StreamProtocol::V5, StreamProtocol::V4, StreamProtocol::V4Base64, StreamProtocol::SpdyTunnel];
        for allowed in [&all[..], &all[..3], &all[3..], &[][..]] {
            if let Some(p) = StreamProtocol::negotiate(offered.iter().copied(), allowed) {
                assert!(allowed.contains(&p), "negotiated a protocol not allowed");
                assert!(text.contains(p.name()), "negotiated a protocol not offered");
                let _ = p.is_base64();
            }
        }
    }

    // One resize message: bounded, and what parses survives a serialise/parse round trip.
    if let Ok(size) = parse_resize(data) {
        assert!(data.len() <= 256);
        let again = format!("{{\"Width\":{},\"Height\":{}}}\n", size.width, size.height);
        assert_eq!(parse_resize(again.as_bytes()), Ok(size));
    }

    // A resize byte stream, chunked vs whole.
    if let Some((&ctl, stream)) = data.split_first() {
        let chunk = 1 + usize::from(ctl & 7);
        if let (Ok(a), Ok(b)) = (feed(stream, chunk), feed(stream, stream.len())) {
            assert_eq!(a, b, "ResizeStream depends on how the bytes were chunked");
        }
    }
});
