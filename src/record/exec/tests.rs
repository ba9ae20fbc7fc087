use std::time::Duration;

use crate::kube::wire::ws_frame::{encode_frame, OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT};
use super::*;
use crate::kube::wire::websocket::{encode_text, StreamProtocol};

pub(super) const KEY: [u8; 4] = [0xa1, 0x02, 0x7f, 0xee];
const EXIT_3: &[u8] = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;

pub(super) fn up(channel: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame(
        true,
        OP_BINARY,
        &[&[channel][..], payload].concat(),
        Some(KEY),
    )
}

pub(super) fn down(channel: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame(true, OP_BINARY, &[&[channel][..], payload].concat(), None)
}

pub(super) fn exact() -> RecorderConfig {
    RecorderConfig {
        coalesce_us: 0,
        ..RecorderConfig::default()
    }
}

pub(super) fn kinds(events: &[SessionEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind.clone()).collect()
}

pub(super) fn out(s: &[u8]) -> EventKind {
    EventKind::Output {
        data: Bytes::copy_from_slice(s),
    }
}

pub(super) fn input(s: &[u8]) -> EventKind {
    EventKind::Input {
        data: Bytes::copy_from_slice(s),
    }
}

/// A kubectl 1.32 `exec -it` over v5: resize, stdin, stdin CLOSE; stdout, stderr, exit 3, close.
fn v5_wires() -> (Vec<u8>, Vec<u8>) {
    let client = [
        up(4, b"{\"Width\":100,\"Height\":30}\n"),
        up(0, b"ls\n"),
        up(255, &[0]),
        encode_frame(true, OP_PING, b"", Some(KEY)),
    ]
    .concat();
    let server = [
        down(1, b"file\n"),
        down(2, b"warn"),
        down(3, EXIT_3),
        encode_frame(true, OP_CLOSE, b"\x03\xe8", None),
    ]
    .concat();
    (client, server)
}

pub(super) fn run(
    transport: Transport,
    kind: SessionKind,
    cfg: RecorderConfig,
    feeds: &[(Direction, &[u8])],
) -> (Vec<SessionEvent>, SessionSummary) {
    let mut r = Recorder::new(transport, kind, cfg).unwrap();
    for (dir, bytes) in feeds {
        let _ = r.feed(*dir, bytes, Duration::ZERO);
    }
    r.finish(Duration::from_millis(1))
}

#[test]
fn websocket_v5_exec_at_every_split_offset() {
    let (client, server) = v5_wires();
    let want = vec![
        EventKind::Resize {
            width: 100,
            height: 30,
        },
        input(b"ls\n"),
        out(b"file\n"),
        EventKind::Error {
            data: Bytes::from_static(b"warn"),
        },
        EventKind::Exit { code: 3 },
    ];
    let t = Transport::WebSocket(StreamProtocol::V5);
    for at in 0..=server.len().max(client.len()) {
        let (c, s) = (at.min(client.len()), at.min(server.len()));
        let feeds: [(Direction, &[u8]); 4] = [
            (Direction::Upstream, &client[..c]),
            (Direction::Upstream, &client[c..]),
            (Direction::Downstream, &server[..s]),
            (Direction::Downstream, &server[s..]),
        ];
        let (events, summary) = run(t, SessionKind::Exec, exact(), &feeds);
        assert_eq!(kinds(&events), want, "split at {at}");
        assert_eq!(
            (summary.exit_code, summary.error.as_deref()),
            (Some(3), None)
        );
        assert_eq!(
            (
                summary.stdin_bytes,
                summary.stdout_bytes,
                summary.stderr_bytes
            ),
            (3, 5, 4)
        );
        assert_eq!(
            (summary.upstream_bytes, summary.downstream_bytes),
            (client.len() as u64, server.len() as u64)
        );
    }
}

#[test]
fn exit_zero_from_success_or_a_normal_close_only() {
    let t = Transport::WebSocket(StreamProtocol::V5);
    let success = down(3, br#"{"metadata":{},"status":"Success"}"#);
    let (events, _) = run(
        t,
        SessionKind::Exec,
        exact(),
        &[(Direction::Downstream, &success)],
    );
    assert_eq!(kinds(&events), vec![EventKind::Exit { code: 0 }]);
    let normal = encode_frame(true, OP_CLOSE, b"\x03\xe8", None);
    let (_, s) = run(
        t,
        SessionKind::Attach,
        exact(),
        &[(Direction::Downstream, &normal)],
    );
    assert_eq!(
        s.exit_code,
        Some(0),
        "empty error channel + close 1000 is success, as client-go reads it"
    );
    let abnormal = encode_frame(true, OP_CLOSE, b"\x03\xf3", None);
    let (_, s) = run(
        t,
        SessionKind::Exec,
        exact(),
        &[(Direction::Downstream, &abnormal)],
    );
    assert_eq!(s.exit_code, None);
    // A status cut off by the end of the connection is an error, not an exit code.
    let half = down(3, &EXIT_3[..20]);
    let (_, s) = run(
        t,
        SessionKind::Exec,
        exact(),
        &[
            (Direction::Downstream, &half),
            (Direction::Downstream, &normal),
        ],
    );
    assert_eq!((s.exit_code, s.error.is_some()), (None, true));
    let failure = down(
        3,
        br#"{"status":"Failure","message":"container not found"}"#,
    );
    let (_, s) = run(
        t,
        SessionKind::Exec,
        exact(),
        &[(Direction::Downstream, &failure)],
    );
    assert_eq!(s.failure.as_deref(), Some("container not found"));
}

#[test]
fn websocket_v4_base64_text_messages() {
    let t = Transport::WebSocket(StreamProtocol::V4Base64);
    let client = encode_frame(true, OP_TEXT, encode_text(0, b"id\n").as_bytes(), Some(KEY));
    // Fragmented text message from the server.
    let text = encode_text(1, "uid=0(root) é\n".as_bytes());
    let (a, b) = text.as_bytes().split_at(5);
    let server = [
        encode_frame(false, OP_TEXT, a, None),
        encode_frame(true, 0, b, None),
    ]
    .concat();
    let (events, s) = run(
        t,
        SessionKind::Exec,
        exact(),
        &[
            (Direction::Upstream, &client),
            (Direction::Downstream, &server),
        ],
    );
    assert_eq!(
        kinds(&events),
        vec![input(b"id\n"), out("uid=0(root) é\n".as_bytes())]
    );
    assert!(s.error.is_none());
    // Binary in a text protocol and the reverse are refused; so is bad base64.
    let (_, s) = run(
        t,
        SessionKind::Exec,
        exact(),
        &[(Direction::Downstream, &down(1, b"x"))],
    );
    assert!(s.error.unwrap().contains("binary"));
    let v5 = Transport::WebSocket(StreamProtocol::V5);
    let (_, s) = run(
        v5,
        SessionKind::Exec,
        exact(),
        &[(
            Direction::Downstream,
            &encode_frame(true, OP_TEXT, b"1aGk=", None),
        )],
    );
    assert!(s.error.unwrap().contains("text"));
    let (_, s) = run(
        t,
        SessionKind::Exec,
        exact(),
        &[(
            Direction::Downstream,
            &encode_frame(true, OP_TEXT, b"1!!", None),
        )],
    );
    assert!(s.error.unwrap().contains("base64"));
}

#[test]
fn channels_are_checked_per_direction_and_protocol() {
    let v5 = Transport::WebSocket(StreamProtocol::V5);
    let v4 = Transport::WebSocket(StreamProtocol::V4);
    let err = |t: Transport, dir: Direction, wire: Vec<u8>| {
        let mut r = Recorder::new(t, SessionKind::Exec, exact()).unwrap();
        let e = r.feed(dir, &wire, Duration::ZERO).unwrap_err();
        assert_eq!(
            r.feed(dir, &down(1, b"x"), Duration::ZERO).unwrap_err(),
            e,
            "sticky"
        );
        assert_eq!(r.error(), Some(&e));
        e
    };
    assert_eq!(
        err(v5, Direction::Upstream, up(1, b"x")),
        ExecError::UnexpectedChannel {
            direction: Direction::Upstream,
            channel: 1
        }
    );
    assert_eq!(
        err(v5, Direction::Downstream, down(0, b"x")),
        ExecError::UnexpectedChannel {
            direction: Direction::Downstream,
            channel: 0
        }
    );
    assert_eq!(
        err(v5, Direction::Downstream, down(9, b"x")),
        ExecError::UnexpectedChannel {
            direction: Direction::Downstream,
            channel: 9
        }
    );
    assert_eq!(
        err(v4, Direction::Upstream, up(255, &[0])),
        ExecError::UnexpectedChannel {
            direction: Direction::Upstream,
            channel: 255
        }
    );
    assert!(matches!(
        err(v5, Direction::Upstream, up(4, b"{\"Width\":-1}")),
        ExecError::BadResize
    ));
    assert!(matches!(
        err(v5, Direction::Downstream, down(3, b"{\"status\":7}")),
        ExecError::BadStatus
    ));
    assert!(matches!(
        err(
            v5,
            Direction::Upstream,
            encode_frame(true, OP_BINARY, b"", Some(KEY))
        ),
        ExecError::Channel { .. }
    ));
    assert!(matches!(
        err(v5, Direction::Upstream, down(0, b"unmasked")),
        ExecError::WebSocket { .. }
    ));
    assert!(matches!(
        Recorder::new(
            Transport::WebSocket(StreamProtocol::V5),
            SessionKind::PortForward,
            exact()
        ),
        Err(ExecError::Unsupported(_))
    ));
    assert!(matches!(
        Recorder::new(
            Transport::WebSocket(StreamProtocol::SpdyTunnel),
            SessionKind::Exec,
            exact()
        ),
        Err(ExecError::Unsupported(_))
    ));
}

#[test]
fn stdin_off_is_counted_not_stored() {
    let (client, server) = v5_wires();
    let cfg = RecorderConfig {
        record_stdin: false,
        ..exact()
    };
    let (events, s) = run(
        Transport::WebSocket(StreamProtocol::V5),
        SessionKind::Exec,
        cfg,
        &[
            (Direction::Upstream, &client),
            (Direction::Downstream, &server),
        ],
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Input { .. })));
    assert_eq!((s.stdin_bytes, s.stdin_recorded), (3, false));
}

#[test]
fn recording_is_bounded_and_coalesced() {
    let t = Transport::WebSocket(StreamProtocol::V5);
    let mut r = Recorder::new(
        t,
        SessionKind::Exec,
        RecorderConfig {
            max_recorded_bytes: 10,
            flush_bytes: 8,
            ..RecorderConfig::default()
        },
    )
    .unwrap();
    r.feed(
        Direction::Downstream,
        &down(1, b"abc"),
        Duration::from_millis(0),
    )
    .unwrap();
    r.feed(
        Direction::Downstream,
        &down(1, b"def"),
        Duration::from_millis(5),
    )
    .unwrap();
    assert!(!r.should_flush());
    r.feed(
        Direction::Downstream,
        &down(1, b"gh"),
        Duration::from_millis(100),
    )
    .unwrap();
    assert!(r.should_flush(), "8 bytes pending");
    r.feed(
        Direction::Downstream,
        &down(1, b"ijklmnop"),
        Duration::from_millis(200),
    )
    .unwrap();
    let events = r.take_events();
    assert_eq!(
        kinds(&events),
        vec![out(b"abcdef"), out(b"gh")],
        "merged within 10 ms, then the bound"
    );
    assert_eq!((events[0].at_us, events[1].at_us), (0, 100_000));
    assert!(!r.should_flush());
    let (rest, s) = r.finish(Duration::from_secs(1));
    assert!(rest.is_empty());
    assert_eq!((s.truncated, s.stdout_bytes, s.events), (true, 16, 2));
}

#[test]
fn the_relay_can_stop_recording() {
    let mut r = Recorder::new(
        Transport::WebSocket(StreamProtocol::V5),
        SessionKind::Exec,
        exact(),
    )
    .unwrap();
    r.feed(Direction::Downstream, &down(1, b"a"), Duration::ZERO)
        .unwrap();
    r.stop("store unavailable");
    assert!(r
        .feed(Direction::Downstream, &down(1, b"b"), Duration::ZERO)
        .is_err());
    let (events, s) = r.finish(Duration::ZERO);
    assert_eq!(kinds(&events), vec![out(b"a")]);
    assert_eq!(
        s.error.as_deref(),
        Some("recording stopped: store unavailable")
    );
    assert_eq!(
        s.downstream_bytes, 8,
        "bytes are counted even after recording stopped"
    );
}

#[test]
fn events_serialise_as_tagged_json() {
    let e = SessionEvent {
        at_us: 1500,
        kind: out(b"hi"),
    };
    let j = serde_json::to_string(&e).unwrap();
    assert_eq!(j, r#"{"atUs":1500,"kind":"output","data":"aGk="}"#);
    assert_eq!(serde_json::from_str::<SessionEvent>(&j).unwrap(), e);
    let p = SessionEvent {
        at_us: 0,
        kind: EventKind::PortData {
            port: 80,
            direction: Direction::Upstream,
            bytes: 3,
        },
    };
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        r#"{"atUs":0,"kind":"portData","port":80,"direction":"upstream","bytes":3}"#
    );
}
