use super::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn client(limits: Limits) -> FrameDecoder {
    FrameDecoder::new(Sender::Client, limits)
}

fn server() -> FrameDecoder {
    FrameDecoder::new(Sender::Server, Limits::default())
}

/// Feed `wire` split at `at`, collect frames until an error or the end.
fn frames_split(dec: &mut FrameDecoder, wire: &[u8], at: usize) -> Result<Vec<Frame>, WsError> {
    let mut out = Vec::new();
    for part in [&wire[..at], &wire[at..]] {
        dec.push(part);
        while let Some(f) = dec.next_frame()? {
            out.push(f);
        }
    }
    Ok(out)
}

/// A client session: a masked resize, stdin, a ping between the two halves of a fragmented
/// message, a 300-byte (16-bit length) message, a close.
fn client_wire() -> Vec<u8> {
    let mut w = Vec::new();
    w.extend(encode_frame(
        true,
        OP_BINARY,
        b"\x04{\"Width\":100,\"Height\":30}\n",
        Some(KEY),
    ));
    w.extend(encode_frame(false, OP_BINARY, b"\x00ab", Some(KEY)));
    w.extend(encode_frame(true, OP_PING, b"p", Some([1, 2, 3, 4])));
    w.extend(encode_frame(
        true,
        OP_CONTINUATION,
        b"cd",
        Some([9, 9, 9, 9]),
    ));
    let big = [&[0u8][..], &[b'x'; 300][..]].concat();
    w.extend(encode_frame(true, OP_BINARY, &big, Some(KEY)));
    w.extend(encode_frame(true, OP_CLOSE, b"\x03\xe8bye", Some(KEY)));
    w
}

#[test]
fn every_split_offset_gives_the_same_frames() {
    let wire = client_wire();
    let whole = frames_split(&mut client(Limits::default()), &wire, wire.len()).unwrap();
    assert_eq!(whole.len(), 6);
    assert_eq!(
        whole[1],
        Frame::Data {
            text: false,
            first: true,
            fin: false,
            payload: Bytes::from_static(b"\x00ab")
        }
    );
    assert_eq!(whole[2], Frame::Ping(Bytes::from_static(b"p")));
    assert_eq!(
        whole[3],
        Frame::Data {
            text: false,
            first: false,
            fin: true,
            payload: Bytes::from_static(b"cd")
        }
    );
    assert!(matches!(&whole[4], Frame::Data { payload, .. } if payload.len() == 301));
    assert_eq!(
        whole[5],
        Frame::Close {
            code: Some(1000),
            reason: "bye".into()
        }
    );
    for at in 0..=wire.len() {
        let mut dec = client(Limits::default());
        assert_eq!(
            frames_split(&mut dec, &wire, at).unwrap(),
            whole,
            "split at {at}"
        );
        assert!(dec.is_closed() && dec.buffered() == 0);
    }
    // Byte by byte too.
    let mut dec = client(Limits::default());
    let mut got = Vec::new();
    for b in &wire {
        dec.push(std::slice::from_ref(b));
        while let Some(f) = dec.next_frame().unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, whole);
}

#[test]
fn assembler_joins_fragments_and_checks_text() {
    let mut a = Assembler::default();
    assert_eq!(
        a.push(false, true, true, Bytes::from_static(b"\x01hi"))
            .unwrap(),
        Some(Message::Binary(Bytes::from_static(b"\x01hi")))
    );
    assert_eq!(
        a.push(true, true, false, Bytes::from_static(b"1a"))
            .unwrap(),
        None
    );
    assert_eq!(
        a.push(true, false, false, Bytes::from_static(b"Gk"))
            .unwrap(),
        None
    );
    assert_eq!(
        a.push(true, false, true, Bytes::from_static(b"=")).unwrap(),
        Some(Message::Text(Bytes::from_static(b"1aGk=")))
    );
    // A multi-byte character split across fragments is fine; invalid UTF-8 is not.
    assert!(a
        .push(true, true, false, Bytes::from_static(b"\xc3"))
        .unwrap()
        .is_none());
    assert_eq!(
        a.push(true, false, true, Bytes::from_static(b"\xa9"))
            .unwrap(),
        Some(Message::Text(Bytes::from("é")))
    );
    assert_eq!(
        a.push(true, true, true, Bytes::from_static(b"\xff")),
        Err(WsError::InvalidUtf8)
    );
}

#[test]
fn oversized_frames_are_refused_from_the_header_alone() {
    let limits = Limits {
        max_frame: 1024,
        max_message: 4096,
    };
    // A header claiming 2^40 bytes, and nothing else: refused before any payload arrives.
    let mut hdr = vec![0x82, 0x80 | 127];
    hdr.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let mut dec = client(limits);
    dec.push(&hdr);
    assert_eq!(
        dec.next_frame(),
        Err(WsError::FrameTooLarge {
            len: 1 << 40,
            max: 1024
        })
    );
    assert_eq!(dec.buffered(), 0, "nothing kept after the error");
    dec.push(&encode_frame(true, OP_BINARY, b"\x00ok", Some(KEY)));
    assert!(dec.next_frame().is_err(), "errors are sticky");

    let mut dec = server();
    dec.push(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(dec.next_frame(), Err(WsError::BadLength));

    // The message limit counts every fragment, also decided from the header.
    let mut dec = client(Limits {
        max_frame: 2048,
        max_message: 4096,
    });
    dec.push(&encode_frame(false, OP_BINARY, &[0; 1500], Some(KEY)));
    dec.push(&encode_frame(false, OP_CONTINUATION, &[0; 1500], Some(KEY)));
    dec.push(&encode_frame(false, OP_CONTINUATION, &[0; 1500], Some(KEY))[..3]);
    for _ in 0..2 {
        assert!(matches!(dec.next_frame(), Ok(Some(Frame::Data { .. }))));
    }
    assert_eq!(
        dec.next_frame(),
        Ok(None),
        "the length of the 3rd is incomplete"
    );
    dec.push(&[0xdc]);
    assert_eq!(
        dec.next_frame(),
        Err(WsError::MessageTooLarge { max: 4096 })
    );
}

#[test]
fn protocol_violations_are_typed_errors() {
    let one = |sender: Sender, wire: &[u8]| {
        let mut dec = FrameDecoder::new(sender, Limits::default());
        dec.push(wire);
        let mut last = Ok(None);
        for _ in 0..4 {
            last = dec.next_frame();
            if !matches!(last, Ok(Some(_))) {
                break;
            }
        }
        last
    };
    use Sender::{Client as C, Server as S};
    assert_eq!(
        one(C, &encode_frame(true, OP_BINARY, b"x", None)),
        Err(WsError::Unmasked)
    );
    assert_eq!(
        one(S, &encode_frame(true, OP_BINARY, b"x", Some(KEY))),
        Err(WsError::Masked)
    );
    assert_eq!(
        one(S, &[0xc2, 0]),
        Err(WsError::ReservedBits(0x40)),
        "permessage-deflate"
    );
    assert_eq!(one(S, &[0x83, 0]), Err(WsError::UnknownOpcode(3)));
    assert_eq!(one(S, &[0x0b, 0]), Err(WsError::UnknownOpcode(11)));
    assert_eq!(one(S, &[0x09, 0]), Err(WsError::FragmentedControl));
    assert_eq!(
        one(S, &encode_frame(true, OP_PING, &[0; 126], None)),
        Err(WsError::ControlTooLong(126))
    );
    assert_eq!(
        one(S, &encode_frame(true, OP_CONTINUATION, b"x", None)),
        Err(WsError::UnexpectedContinuation)
    );
    let interrupted = [
        encode_frame(false, OP_TEXT, b"a", None),
        encode_frame(true, OP_BINARY, b"b", None),
    ]
    .concat();
    assert_eq!(one(S, &interrupted), Err(WsError::InterruptedMessage));
    assert_eq!(
        one(S, &encode_frame(true, OP_CLOSE, b"\x03", None)),
        Err(WsError::BadClose)
    );
    assert_eq!(
        one(S, &encode_frame(true, OP_CLOSE, b"\x03\xe8\xff", None)),
        Err(WsError::BadClose)
    );
    let after = [
        encode_frame(true, OP_CLOSE, b"", None),
        encode_frame(true, OP_BINARY, b"x", None),
    ]
    .concat();
    assert_eq!(one(S, &after), Err(WsError::AfterClose));
    // A duplicated close is a frame after close, too.
    let twice = [
        encode_frame(true, OP_CLOSE, b"\x03\xe8", None),
        encode_frame(true, OP_CLOSE, b"\x03\xe8", None),
    ]
    .concat();
    assert_eq!(one(S, &twice), Err(WsError::AfterClose));
}

#[test]
fn truncated_input_needs_more_and_is_never_a_frame() {
    let wire = client_wire();
    for end in 0..wire.len() {
        let mut dec = client(Limits::default());
        let got = frames_split(&mut dec, &wire[..end], end).unwrap();
        assert!(got.len() < 6, "prefix {end} produced every frame");
    }
}

#[test]
fn unmask_matches_the_naive_xor_for_every_length_and_phase() {
    for len in 0..40 {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let mut fast = data.clone();
        unmask(&mut fast, KEY);
        let naive: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ KEY[i % 4])
            .collect();
        assert_eq!(fast, naive, "length {len}");
    }
}

#[test]
fn length_encodings() {
    for len in [0usize, 125, 126, 65_535, 65_536] {
        let payload = vec![7u8; len];
        let wire = encode_frame(true, OP_BINARY, &payload, None);
        let mut dec = FrameDecoder::new(
            Sender::Server,
            Limits {
                max_frame: 1 << 17,
                max_message: 1 << 17,
            },
        );
        dec.push(&wire);
        match dec.next_frame() {
            Ok(Some(Frame::Data { payload: p, .. })) => assert_eq!(p.len(), len),
            other => panic!("{len}: {other:?}"),
        }
    }
}
