//! Tests for the SPDY/3.1 codec (`spdy.rs`).

use super::*;
use bytes::{BufMut, BytesMut};
use flate2::{Compress, Compression, FlushCompress};

fn hdrs(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    b << 16 | a
}

/// Decodes frames until the decoder wants more bytes.
fn drain(dec: &mut Decoder, buf: &mut BytesMut) -> Result<Vec<Frame>, SpdyError> {
    let mut out = Vec::new();
    while let Some(f) = dec.decode(buf)? {
        out.push(f);
    }
    Ok(out)
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut enc = Encoder::new();
    let mut buf = BytesMut::new();
    for f in frames {
        enc.encode(f, &mut buf).unwrap();
    }
    buf
}

fn decode_one(bytes: &[u8]) -> Result<Option<Frame>, SpdyError> {
    Decoder::new(MAX_FRAME_PAYLOAD).decode(&mut BytesMut::from(bytes))
}

fn control(ty: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0x03];
    v.put_u16(ty);
    v.put_u32(u32::from(flags) << 24 | payload.len() as u32);
    v.extend_from_slice(payload);
    v
}

/// zlib-compresses `raw` as one sync-flushed block of a fresh stream.
fn zblock(raw: &[u8], dict: Option<&[u8]>) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), true);
    if let Some(d) = dict {
        c.set_dictionary(d).unwrap();
    }
    let mut out = Vec::with_capacity(raw.len() + 1024);
    c.compress_vec(raw, &mut out, FlushCompress::Sync).unwrap();
    assert_eq!(c.total_in() as usize, raw.len());
    out
}

/// A SYN_STREAM for stream 1 whose header block is `raw`, compressed properly.
fn syn_with_raw_block(raw: &[u8]) -> Vec<u8> {
    let mut p = hex("00000001 00000000 0000");
    p.extend(zblock(raw, Some(SPDY3_DICTIONARY)));
    control(TYPE_SYN_STREAM, 0, &p)
}

fn raw_block(count: u32, pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_u32(count);
    for (n, val) in pairs {
        v.put_u32(n.len() as u32);
        v.extend_from_slice(n);
        v.put_u32(val.len() as u32);
        v.extend_from_slice(val);
    }
    v
}

fn hb_err(bytes: &[u8]) -> HeaderBlockError {
    match decode_one(bytes) {
        Err(SpdyError::HeaderBlock(e)) => e,
        other => panic!("expected a header block error, got {other:?}"),
    }
}

fn sample_frames() -> Vec<Frame> {
    vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: hdrs(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 7,
            fin: true,
            unidirectional: true,
            headers: hdrs(&[
                ("streamtype", "data"),
                ("x-multi", "a\0b\0c"),
                ("empty", ""),
            ]),
        },
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::new(),
        },
        Frame::SynReply {
            stream_id: 3,
            fin: true,
            headers: hdrs(&[("status", "200")]),
        },
        Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"hello"),
        },
        Frame::Data {
            stream_id: 3,
            fin: true,
            data: Bytes::new(),
        },
        Frame::RstStream {
            stream_id: 5,
            status: RST_CANCEL,
        },
        Frame::Settings {
            clear: true,
            entries: vec![
                (
                    SETTINGS_FLAG_PERSIST_VALUE,
                    SETTINGS_INITIAL_WINDOW_SIZE,
                    1 << 20,
                ),
                (0, 0x00ff_ffff, 7),
            ],
        },
        Frame::Settings {
            clear: false,
            entries: vec![],
        },
        Frame::Ping { id: 1 },
        Frame::Ping { id: 0xffff_fffe },
        Frame::GoAway {
            last_good_stream_id: 3,
            status: GOAWAY_OK,
        },
        Frame::Headers {
            stream_id: 1,
            fin: true,
            headers: hdrs(&[("trailer", "x")]),
        },
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 0x7fff_ffff,
        },
        Frame::WindowUpdate {
            stream_id: 7,
            delta: 1,
        },
    ]
}

#[test]
fn dictionary_is_the_spdy3_one() {
    assert_eq!(SPDY3_DICTIONARY.len(), 1423);
    assert_eq!(adler32(SPDY3_DICTIONARY), SPDY3_DICTIONARY_ID);
    assert_eq!(SPDY3_DICTIONARY_ID, 0xe3c6_a7c2);
    let mut c = Compress::new(Compression::default(), true);
    assert_eq!(
        c.set_dictionary(SPDY3_DICTIONARY).unwrap(),
        SPDY3_DICTIONARY_ID
    );
    // The dictionary is itself a header-block-like list of length-prefixed names.
    assert!(SPDY3_DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
    assert!(SPDY3_DICTIONARY.ends_with(b"utf-,*,enq=0."));
}

#[test]
fn round_trip_every_frame_type() {
    let frames = sample_frames();
    let mut buf = encode_all(&frames);
    let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
    assert_eq!(drain(&mut dec, &mut buf).unwrap(), frames);
    assert!(buf.is_empty());
    assert_eq!(dec.skipped(), 0);
}

#[test]
fn big_data_frame_round_trips() {
    let data = Bytes::from((0..MAX_FRAME_PAYLOAD).map(|i| i as u8).collect::<Vec<_>>());
    let f = Frame::Data {
        stream_id: 9,
        fin: false,
        data,
    };
    let mut buf = encode_all(std::slice::from_ref(&f));
    assert_eq!(
        Decoder::new(MAX_FRAME_PAYLOAD).decode(&mut buf).unwrap(),
        Some(f)
    );
}

#[test]
fn many_header_blocks_share_one_context() {
    let frames: Vec<Frame> = (0..40u32)
        .map(|i| Frame::SynStream {
            stream_id: 2 * i + 1,
            associated_to: 0,
            priority: (i % 8) as u8,
            fin: false,
            unidirectional: false,
            headers: hdrs(&[
                ("streamtype", "data"),
                ("port", "8080"),
                ("requestid", &i.to_string()),
            ]),
        })
        .collect();
    let mut enc = Encoder::new();
    let mut sizes = Vec::new();
    let mut buf = BytesMut::new();
    for f in &frames {
        let before = buf.len();
        enc.encode(f, &mut buf).unwrap();
        sizes.push(buf.len() - before);
    }
    // Later blocks reference earlier ones, so they are much smaller.
    assert!(sizes[10] < sizes[0] / 2, "{sizes:?}");
    let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
    assert_eq!(drain(&mut dec, &mut buf).unwrap(), frames);
    // A fresh decoder cannot pick up mid-stream: the context is per direction.
    let mut tail = encode_all(&frames).split_off(sizes[0]);
    assert!(Decoder::new(MAX_FRAME_PAYLOAD).decode(&mut tail).is_err());
}

/// Byte stream of sample frames with an unknown control frame spliced in;
/// returns it with the offsets where each known frame ends.
fn stream_with_ends() -> (Vec<u8>, Vec<usize>, Vec<Frame>) {
    let frames = sample_frames();
    let mut enc = Encoder::new();
    let mut buf = BytesMut::new();
    let mut ends = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if i == 3 {
            buf.extend_from_slice(&control(10, 0xff, b"credential"));
        }
        enc.encode(f, &mut buf).unwrap();
        ends.push(buf.len());
    }
    (buf.to_vec(), ends, frames)
}

#[test]
fn every_split_point_yields_the_same_frames() {
    let (bytes, ends, frames) = stream_with_ends();
    for k in 0..=bytes.len() {
        let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
        let mut buf = BytesMut::from(&bytes[..k]);
        let first = drain(&mut dec, &mut buf).unwrap();
        assert_eq!(
            first.len(),
            ends.iter().filter(|&&e| e <= k).count(),
            "split at {k}"
        );
        buf.extend_from_slice(&bytes[k..]);
        let mut all = first;
        all.extend(drain(&mut dec, &mut buf).unwrap());
        assert_eq!(all, frames, "split at {k}");
        assert!(buf.is_empty());
        assert_eq!(dec.skipped(), 1);
    }
}

#[test]
fn byte_at_a_time_with_empty_feeds() {
    let (bytes, ends, frames) = stream_with_ends();
    let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        assert_eq!(dec.decode(&mut buf).unwrap(), None); // zero-length feed
        buf.put_u8(b);
        match dec.decode(&mut buf).unwrap() {
            Some(f) => {
                assert!(ends.contains(&(i + 1)), "frame completed early at {i}");
                got.push(f);
            }
            None => assert!(!ends.contains(&(i + 1)), "frame not returned at {i}"),
        }
    }
    assert_eq!(got, frames);
}

#[test]
fn kubectl_port_forward_headers() {
    let headers = hdrs(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]);
    let f = Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers,
    };
    let mut buf = encode_all(std::slice::from_ref(&f));
    // Control bit, version 3, type 1, flags 0; ids; priority/slot; zlib header
    // with FDICT set and the SPDY/3 dictionary id.
    assert_eq!(&buf[..4], &hex("80030001")[..]);
    assert_eq!(buf[4], 0);
    assert_eq!(
        &buf[8..24],
        &hex("00000001 00000000 0000 78bb e3c6a7c2")[..]
    );
    let got = Decoder::new(MAX_FRAME_PAYLOAD)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    let Frame::SynStream { headers, .. } = &got else {
        panic!("{got:?}")
    };
    assert_eq!(headers.get("streamtype"), Some("error"));
    assert_eq!(headers.get("Port"), Some("80"));
    assert_eq!(headers.get("requestid"), Some("0"));
    assert_eq!(got, f);
}

/// Two SYN_STREAMs as kubectl port-forward opens them (error stream, then data
/// stream), compressed by C zlib at level 9 with the dictionary and a sync flush
/// per block: the settings spdystream's Go zlib writer uses. Cross-checks
/// zlib-rs inflate against an independent deflate, across two blocks.
#[test]
fn independent_zlib_vector() {
    let bytes = hex(
        "800300010000003c0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0
         808614cb45a024cc64610024398b209198094adc8c0600000000ffff800300010000001a00000003
         000000000000826a25a406d56850299508000000ffff",
    );
    let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
    let frames = drain(&mut dec, &mut BytesMut::from(&bytes[..])).unwrap();
    let want = |id, t| Frame::SynStream {
        stream_id: id,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers: if id == 1 {
            hdrs(&[("streamtype", t), ("port", "80"), ("requestid", "0")])
        } else {
            hdrs(&[("port", "80"), ("requestid", "0"), ("streamtype", t)])
        },
    };
    assert_eq!(frames, vec![want(1, "error"), want(3, "data")]);
}

/// SYN_STREAM `pushStreamWithoutUnidirectional` from proxygen's public
/// SPDYCodecTest.cpp (facebook/proxygen): window-bits-11 zlib header, a stored
/// deflate block, a sync flush. Our codec accepts it (proxygen rejects it at
/// the HTTP layer only, for push semantics).
#[test]
fn proxygen_push_stream_vector() {
    let bytes = hex(
        "8003000100000091000000020000000100003830e3c6a7c200770088ff00000005000000053a686f
         73740000000b7777772e666f6f2e636f6d000000073a6d6574686f6400000000000000053a706174
         680000001468747470733a2f2f7777772e666f6f2e636f6d2f000000073a736368656d6500000004
         68747470000000083a76657273696f6e00000008485454502f312e31000000ffff",
    );
    let headers = hdrs(&[
        (":host", "www.foo.com"),
        (":method", ""),
        (":path", "https://www.foo.com/"),
        (":scheme", "http"),
        (":version", "HTTP/1.1"),
    ]);
    let want = Frame::SynStream {
        stream_id: 2,
        associated_to: 1,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers,
    };
    assert_eq!(decode_one(&bytes).unwrap(), Some(want));
}

/// `multiValuedHeaderAttack` from the same proxygen test file: 529 bytes that
/// inflate to 259,291 (one ~130 KB name, one value of 64,768 NUL-separated
/// parts). It stays under MAX_HEADER_BLOCK, so it decodes, without splitting.
#[test]
fn proxygen_header_attack_vector_is_bounded() {
    let bytes = hex(
        "80030001010002110000000100000000600038eae3c6a7c2ecd4310e82401046618c851a436f694d
         3124da6d4fb88017008da1d030c96e0157b772184928e408efab61934dfe7db6a3c3f49cc21c8493
         2d5afa947a89ad3c2dbdad8d4fee1e8d5d58a65d5737ff4d1b0fd8b1fc8d5cb453ff325a38df5ed7
         2e259dc6bf0feb9b5fc2be2dca62bde6b95ff23cdff2ef81e6511fe3ab19edc48b5cb3cd271b0000
         000000000000000000000000000000f8b20707020000000040feaf8da0aaaaaaaaaaaaaaaaaaaaaa
         aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac21e1c080000000000f9bf3682aaaaaaaaaaaaaa
         aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0a7b70200000000000e4ffda08aaaaaa
         aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2aecc1410100000404b05347
         3fe5bd1410611b000000000000000000000000000000000000f0486d7aa2aaaaaaaaaaaaaaaaaaaa
         7aecc201090000000090ffaf1d115555555555555555555555555555555555555555555555555555
         55555555551576e1800400000000c8ffd78e88aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
         aaaaaaaaaaaaaaaaaaaa0abb70400200000000e4ff6b474455555555555555555555555555555555
         555555555555555555555555555555855d38a60100006018e467fe05f69f06020000000000000000
         0000000000000000000000bc050000ffff",
    );
    let Some(Frame::SynStream {
        headers, fin: true, ..
    }) = decode_one(&bytes).unwrap()
    else {
        panic!()
    };
    assert_eq!(headers.len(), 9);
    assert_eq!(headers.get(":host"), Some("www.otto.sb.facebook.com"));
    let (name, value) = headers.iter().last().unwrap();
    assert_eq!((name.len(), value.len()), (129_536, 129_536));
    assert_eq!(headers.values(name).count(), 64_768);
}

#[test]
fn rejects_wrong_version_and_stays_failed() {
    let mut bytes = control(TYPE_PING, 0, &hex("00000001"));
    bytes[1] = 2;
    let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(dec.decode(&mut buf), Err(SpdyError::UnsupportedVersion(2)));
    // Poisoned: even a good frame now fails with the same error.
    let mut good = encode_all(&[Frame::Ping { id: 1 }]);
    assert_eq!(dec.decode(&mut good), Err(SpdyError::UnsupportedVersion(2)));
}

#[test]
fn rejects_oversized_length_from_the_header_alone() {
    let mut dec = Decoder::new(1 << 16);
    let mut data = BytesMut::from(&hex("00000001 00ffffff")[..]);
    assert_eq!(
        dec.decode(&mut data),
        Err(SpdyError::FrameTooLarge {
            len: 0xff_ffff,
            max: 1 << 16
        })
    );
    let mut dec = Decoder::new(1 << 16);
    let mut syn = BytesMut::from(&hex("80030001 00ffffff")[..]);
    assert_eq!(
        dec.decode(&mut syn),
        Err(SpdyError::FrameTooLarge {
            len: 0xff_ffff,
            max: 1 << 16
        })
    );
    // The configured limit is inclusive; the default cap is the 24-bit maximum.
    let ok = encode_all(&[Frame::Data {
        stream_id: 1,
        fin: false,
        data: Bytes::from(vec![0; 16]),
    }]);
    assert!(Decoder::new(16).decode(&mut ok.clone()).unwrap().is_some());
    assert!(matches!(
        Decoder::new(15).decode(&mut ok.clone()),
        Err(SpdyError::FrameTooLarge { len: 16, max: 15 })
    ));
    assert!(matches!(
        Decoder::new(usize::MAX).decode(&mut data),
        Ok(None)
    ));
}

#[test]
fn rejects_bad_fixed_fields() {
    use SpdyError::*;
    let cases: Vec<(Vec<u8>, SpdyError)> = vec![
        (
            control(TYPE_PING, 0, &hex("0000000100000000")),
            BadLength {
                frame_type: TYPE_PING,
                len: 8,
            },
        ),
        (
            control(TYPE_PING, 1, &hex("00000001")),
            BadFlags {
                frame_type: TYPE_PING,
                flags: 1,
            },
        ),
        (
            control(TYPE_GOAWAY, 0, &hex("00000001")),
            BadLength {
                frame_type: TYPE_GOAWAY,
                len: 4,
            },
        ),
        (
            control(TYPE_WINDOW_UPDATE, 0, &hex("00000001 80000000")),
            InvalidField {
                frame_type: TYPE_WINDOW_UPDATE,
                field: "delta",
                value: 0,
            },
        ),
        (
            control(TYPE_RST_STREAM, 0, &hex("00000001 00000000")),
            InvalidField {
                frame_type: TYPE_RST_STREAM,
                field: "status",
                value: 0,
            },
        ),
        (
            control(TYPE_RST_STREAM, 0, &hex("00000000 00000005")),
            InvalidStreamId {
                frame_type: TYPE_RST_STREAM,
                stream_id: 0,
            },
        ),
        (
            control(TYPE_RST_STREAM, 0, &hex("00000001 00000005 00")),
            BadLength {
                frame_type: TYPE_RST_STREAM,
                len: 9,
            },
        ),
        (
            control(TYPE_SETTINGS, 0, &hex("00000002 00000001 00000001")),
            BadLength {
                frame_type: TYPE_SETTINGS,
                len: 12,
            },
        ),
        (
            control(TYPE_SETTINGS, 0, &hex("ffffffff")),
            BadLength {
                frame_type: TYPE_SETTINGS,
                len: 4,
            },
        ),
        (
            control(TYPE_SETTINGS, 2, &hex("00000000")),
            BadFlags {
                frame_type: TYPE_SETTINGS,
                flags: 2,
            },
        ),
        (
            control(TYPE_SYN_STREAM, 0, &hex("00000001 00000000 00")),
            BadLength {
                frame_type: TYPE_SYN_STREAM,
                len: 9,
            },
        ),
        (
            control(TYPE_SYN_STREAM, 4, &hex("00000001 00000000 0000")),
            BadFlags {
                frame_type: TYPE_SYN_STREAM,
                flags: 4,
            },
        ),
        (
            control(TYPE_SYN_REPLY, 0, &hex("000001")),
            BadLength {
                frame_type: TYPE_SYN_REPLY,
                len: 3,
            },
        ),
        (
            control(TYPE_HEADERS, 2, &hex("00000001")),
            BadFlags {
                frame_type: TYPE_HEADERS,
                flags: 2,
            },
        ),
        (
            syn_zero_stream(),
            InvalidStreamId {
                frame_type: TYPE_SYN_STREAM,
                stream_id: 0,
            },
        ),
        (
            hex("00000000 00000000"),
            InvalidStreamId {
                frame_type: TYPE_DATA,
                stream_id: 0,
            },
        ),
        (
            hex("00000001 02000000"),
            BadFlags {
                frame_type: TYPE_DATA,
                flags: 2,
            },
        ),
        (hex("ffff0001 00000000"), UnsupportedVersion(0x7fff)),
    ];
    for (bytes, want) in cases {
        assert_eq!(decode_one(&bytes), Err(want), "{bytes:02x?}");
    }
}

fn syn_zero_stream() -> Vec<u8> {
    let mut bytes = syn_with_raw_block(&raw_block(0, &[]));
    bytes[8..12].copy_from_slice(&[0x80, 0, 0, 0]); // only the reserved bit set
    bytes
}

#[test]
fn reserved_bits_are_ignored() {
    let f = decode_one(&control(TYPE_WINDOW_UPDATE, 0, &hex("80000003 80000010"))).unwrap();
    assert_eq!(
        f,
        Some(Frame::WindowUpdate {
            stream_id: 3,
            delta: 16
        })
    );
    let f = decode_one(&control(TYPE_GOAWAY, 0, &hex("80000003 00000001"))).unwrap();
    assert_eq!(
        f,
        Some(Frame::GoAway {
            last_good_stream_id: 3,
            status: GOAWAY_PROTOCOL_ERROR
        })
    );
    let mut syn = syn_with_raw_block(&raw_block(0, &[]));
    syn[16] = 0b1011_1111; // priority 5, unused bits set
    syn[17] = 9; // slot
    let Some(Frame::SynStream { priority: 5, .. }) = decode_one(&syn).unwrap() else {
        panic!()
    };
}

#[test]
fn unknown_control_frames_are_skipped_incrementally() {
    let mut bytes = control(0xabcd, 0xff, &[7; 100]);
    bytes.extend(control(5, 0, b"")); // SPDY/2 NOOP, empty
    bytes.extend(encode_all(&[Frame::Ping { id: 3 }]));
    let mut dec = Decoder::new(16); // the limit does not apply to skipped frames
    let mut buf = BytesMut::from(&bytes[..50]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(buf.is_empty(), "skipped bytes are consumed, not buffered");
    buf.extend_from_slice(&bytes[50..]);
    assert_eq!(dec.decode(&mut buf), Ok(Some(Frame::Ping { id: 3 })));
    assert_eq!(dec.skipped(), 2);
}

#[test]
fn rejects_bad_header_blocks() {
    use HeaderBlockError::*;
    let ok: &[(&[u8], &[u8])] = &[(b"a", b"1")];
    let mut truncated = raw_block(1, ok);
    truncated.pop();
    let cases: Vec<(Vec<u8>, HeaderBlockError)> = vec![
        (vec![], Truncated),
        (vec![0, 0, 0], Truncated),
        (truncated, Truncated),
        (raw_block(2, ok), TooManyPairs(2)),
        (raw_block(0x8000_0000, ok), TooManyPairs(0x8000_0000)),
        (raw_block(u32::MAX, &[]), TooManyPairs(u32::MAX)),
        (
            [raw_block(1, &[]), hex("000003e8 616263 00000000")].concat(),
            Truncated,
        ),
        (
            [raw_block(1, &[]), hex("00000001 61 7fffffff 00000000")].concat(),
            Truncated,
        ),
        (raw_block(1, &[(b"", b"x")]), ZeroLengthName),
        (
            raw_block(1, &[(b"Streamtype", b"x")]),
            UppercaseName("Streamtype".into()),
        ),
        (raw_block(1, &[(b"a\0b", b"x")]), InvalidName),
        (raw_block(1, &[("é".as_bytes(), b"x")]), InvalidName),
        (raw_block(1, &[(b"a", b"\xff")]), InvalidValue("a".into())),
        (raw_block(1, &[(b"a", b"\0x")]), InvalidValue("a".into())),
        (raw_block(1, &[(b"a", b"x\0")]), InvalidValue("a".into())),
        (raw_block(1, &[(b"a", b"x\0\0y")]), InvalidValue("a".into())),
        (
            raw_block(2, &[(b"a", b"1"), (b"a", b"2")]),
            DuplicateName("a".into()),
        ),
        ([raw_block(1, ok), vec![0]].concat(), TrailingData(1)),
        ([raw_block(0, &[]), vec![0; 8]].concat(), TrailingData(8)),
    ];
    for (raw, want) in cases {
        assert_eq!(hb_err(&syn_with_raw_block(&raw)), want, "raw {raw:02x?}");
    }
}

#[test]
fn rejects_bad_zlib() {
    let raw = raw_block(1, &[(b"a", b"1")]);
    let with = |block: Vec<u8>| {
        let mut p = hex("00000001");
        p.extend(block);
        control(TYPE_SYN_REPLY, 0, &p)
    };
    assert_eq!(
        hb_err(&with(zblock(&raw, None))),
        HeaderBlockError::MissingDictionary
    );
    let other = adler32(b"another dictionary");
    assert_eq!(
        hb_err(&with(zblock(&raw, Some(b"another dictionary")))),
        HeaderBlockError::UnknownDictionary(other)
    );
    assert!(matches!(
        hb_err(&with(b"garbage, not zlib".to_vec())),
        HeaderBlockError::Zlib(_)
    ));
    let mut corrupt = zblock(&raw, Some(SPDY3_DICTIONARY));
    corrupt[6] = 0xff; // first deflate block header: reserved block type 3
    assert!(matches!(hb_err(&with(corrupt)), HeaderBlockError::Zlib(_)));
    // A finished zlib stream (BFINAL + adler trailer) cannot carry later blocks.
    let mut c = Compress::new(Compression::default(), true);
    c.set_dictionary(SPDY3_DICTIONARY).unwrap();
    let mut fin = Vec::with_capacity(1024);
    c.compress_vec(&raw, &mut fin, FlushCompress::Finish)
        .unwrap();
    assert_eq!(hb_err(&with(fin)), HeaderBlockError::StreamEnded);
    // A block cut short inside the deflate data leaves the pairs truncated.
    let mut cut = zblock(
        &raw_block(1, &[(b"a", &[b'v'; 300])]),
        Some(SPDY3_DICTIONARY),
    );
    cut.truncate(cut.len() / 2);
    let e = hb_err(&with(cut.clone()));
    let truncated = matches!(
        e,
        HeaderBlockError::Truncated | HeaderBlockError::TooManyPairs(1)
    );
    assert!(
        truncated || matches!(e, HeaderBlockError::Zlib(_)),
        "{e:?} {cut:02x?}"
    );
}

#[test]
fn zlib_bomb_is_refused() {
    let huge = vec![b'a'; 4 * MAX_HEADER_BLOCK];
    let bomb = syn_with_raw_block(&raw_block(1, &[(b"a", &huge)]));
    assert!(bomb.len() < 8 * 1024, "bomb is {} bytes", bomb.len());
    assert_eq!(hb_err(&bomb), HeaderBlockError::TooLarge);
    // Exactly at the cap is fine (count 4 + name 4+1 + value 4+len).
    let fits = vec![b'a'; MAX_HEADER_BLOCK - 13];
    assert!(
        decode_one(&syn_with_raw_block(&raw_block(1, &[(b"a", &fits)])))
            .unwrap()
            .is_some()
    );
}

#[test]
fn encoder_refuses_invalid_frames_without_writing() {
    use SpdyError::*;
    let bad_name = hdrs(&[("Upper", "x")]);
    let cases = vec![
        (
            Frame::Data {
                stream_id: 0,
                fin: false,
                data: Bytes::new(),
            },
            InvalidStreamId {
                frame_type: TYPE_DATA,
                stream_id: 0,
            },
        ),
        (
            Frame::Data {
                stream_id: 1 << 31,
                fin: false,
                data: Bytes::new(),
            },
            InvalidStreamId {
                frame_type: TYPE_DATA,
                stream_id: 1 << 31,
            },
        ),
        (
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 8,
                fin: false,
                unidirectional: false,
                headers: Headers::new(),
            },
            InvalidField {
                frame_type: TYPE_SYN_STREAM,
                field: "priority",
                value: 8,
            },
        ),
        (
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: bad_name,
            },
            HeaderBlock(HeaderBlockError::UppercaseName("Upper".into())),
        ),
        (
            Frame::Headers {
                stream_id: 1,
                fin: false,
                headers: hdrs(&[("a", "1"), ("a", "2")]),
            },
            HeaderBlock(HeaderBlockError::DuplicateName("a".into())),
        ),
        (
            Frame::Headers {
                stream_id: 1,
                fin: false,
                headers: hdrs(&[("a", "x\0")]),
            },
            HeaderBlock(HeaderBlockError::InvalidValue("a".into())),
        ),
        (
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: hdrs(&[("", "x")]),
            },
            HeaderBlock(HeaderBlockError::ZeroLengthName),
        ),
        (
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: hdrs(&[("a", &"x".repeat(MAX_HEADER_BLOCK))]),
            },
            HeaderBlock(HeaderBlockError::TooLarge),
        ),
        (
            Frame::RstStream {
                stream_id: 1,
                status: 0,
            },
            InvalidField {
                frame_type: TYPE_RST_STREAM,
                field: "status",
                value: 0,
            },
        ),
        (
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 0,
            },
            InvalidField {
                frame_type: TYPE_WINDOW_UPDATE,
                field: "delta",
                value: 0,
            },
        ),
        (
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 1 << 31,
            },
            InvalidField {
                frame_type: TYPE_WINDOW_UPDATE,
                field: "delta",
                value: 1 << 31,
            },
        ),
        (
            Frame::GoAway {
                last_good_stream_id: 1 << 31,
                status: 0,
            },
            InvalidStreamId {
                frame_type: TYPE_GOAWAY,
                stream_id: 1 << 31,
            },
        ),
        (
            Frame::Settings {
                clear: false,
                entries: vec![(0, 1 << 24, 0)],
            },
            InvalidField {
                frame_type: TYPE_SETTINGS,
                field: "setting id",
                value: 1 << 24,
            },
        ),
        (
            Frame::Data {
                stream_id: 1,
                fin: false,
                data: Bytes::from(vec![0; MAX_FRAME_PAYLOAD + 1]),
            },
            FrameTooLarge {
                len: MAX_FRAME_PAYLOAD + 1,
                max: MAX_FRAME_PAYLOAD,
            },
        ),
    ];
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
    for (i, (frame, want)) in cases.into_iter().enumerate() {
        let mut buf = BytesMut::new();
        assert_eq!(enc.encode(&frame, &mut buf), Err(want));
        assert!(buf.is_empty());
        // The encoder is still in step with a decoder that saw only good frames.
        let good = Frame::SynReply {
            stream_id: 2 * i as u32 + 1,
            fin: false,
            headers: hdrs(&[("n", &i.to_string())]),
        };
        enc.encode(&good, &mut buf).unwrap();
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(good));
    }
}

#[test]
fn headers_helpers() {
    let h = hdrs(&[("a", "1\u{0}2\u{0}3"), ("empty", "")]);
    assert_eq!(h.values("A").collect::<Vec<_>>(), ["1", "2", "3"]);
    assert_eq!(h.values("empty").collect::<Vec<_>>(), [""]);
    assert_eq!(h.values("missing").count(), 0);
    assert_eq!(h.get("a"), Some("1\u{0}2\u{0}3"));
    assert_eq!(
        (h.len(), h.is_empty(), Headers::new().is_empty()),
        (2, false, true)
    );
    assert_eq!(rst_status_name(RST_CANCEL), "CANCEL");
    assert_eq!(rst_status_name(RST_FRAME_TOO_LARGE), "FRAME_TOO_LARGE");
    assert_eq!(rst_status_name(0), "UNKNOWN");
    assert_eq!(
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 1
        }
        .stream_id(),
        None
    );
    assert_eq!(
        Frame::RstStream {
            stream_id: 3,
            status: 1
        }
        .stream_id(),
        Some(3)
    );
}

/// xorshift64*: deterministic, dependency-free randomness for the no-panic loop.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Feeds `bytes` in random pieces; must never panic, and once failed must stay failed.
fn feed_randomly(rng: &mut Rng, bytes: &[u8], max_payload: usize) {
    let mut dec = Decoder::new(max_payload);
    let mut buf = BytesMut::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let n = rng.below(64).min(bytes.len() - pos);
        buf.extend_from_slice(&bytes[pos..pos + n]);
        pos += n;
        match drain(&mut dec, &mut buf) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(dec.decode(&mut buf), Err(e));
                return;
            }
        }
    }
}

#[test]
fn no_panics_on_mutated_or_random_input() {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let (good, _, _) = stream_with_ends();
    for _ in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(4) {
                0 => {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.next() as u8;
                }
                2 => {
                    let i = rng.below(bytes.len());
                    bytes.insert(i, rng.next() as u8);
                }
                _ => bytes.truncate(rng.below(bytes.len() + 1)),
            }
            if bytes.is_empty() {
                break;
            }
        }
        let max_payload = [64, 4096, MAX_FRAME_PAYLOAD][rng.below(3)];
        feed_randomly(&mut rng, &bytes, max_payload);
    }
    for _ in 0..1000 {
        // Random header blocks behind a valid zlib stream, and random frames.
        let raw: Vec<u8> = (0..rng.below(64))
            .map(|_| [0u8, 1, 2, b'a', b'A', 0xff][rng.below(6)])
            .collect();
        feed_randomly(&mut rng, &syn_with_raw_block(&raw), MAX_FRAME_PAYLOAD);
        let mut noise: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
        if noise.len() > 2 && rng.below(2) == 0 {
            noise[0] = 0x80;
            noise[1] = 0x03;
        }
        feed_randomly(&mut rng, &noise, MAX_FRAME_PAYLOAD);
    }
}
