//! SPDY/3.1 sessions through the recorder: exec (JSON and text status), port-forward raw and
//! tunnelled in WebSocket, and hostile streams.

use std::time::Duration;

use bytes::BytesMut;

use super::tests::{exact, input, kinds, out, run, KEY};
use crate::kube::wire::ws_frame::{encode_frame, OP_BINARY, OP_TEXT};
use super::*;
use crate::kube::wire::spdy::{Encoder, Frame as Spdy, Headers};
use crate::kube::wire::websocket::StreamProtocol;

fn syn(id: u32, pairs: &[(&str, &str)], fin: bool) -> Spdy {
    let headers: Headers = pairs.iter().map(|(n, v)| (*n, *v)).collect();
    Spdy::SynStream {
        stream_id: id,
        associated_to: 0,
        priority: 0,
        fin,
        unidirectional: false,
        headers,
    }
}

fn data(id: u32, bytes: &[u8], fin: bool) -> Spdy {
    Spdy::Data {
        stream_id: id,
        fin,
        data: Bytes::copy_from_slice(bytes),
    }
}

fn wire(frames: &[Spdy]) -> Vec<u8> {
    let mut enc = Encoder::new();
    let mut b = BytesMut::new();
    for f in frames {
        enc.encode(f, &mut b).unwrap();
    }
    b.to_vec()
}

/// kubectl < 1.30 `exec -i` over SPDY (v4): streams error, stdin, stdout, stderr, resize.
fn spdy_exec_wires() -> (Vec<u8>, Vec<u8>) {
    let client = wire(&[
        syn(1, &[("streamtype", "error")], false),
        data(1, b"", true),
        syn(3, &[("streamtype", "stdin")], false),
        syn(5, &[("streamtype", "stdout")], false),
        syn(7, &[("streamtype", "stderr")], false),
        syn(9, &[("streamtype", "resize")], false),
        data(9, b"{\"Width\":80,", false),
        data(9, b"\"Height\":24}\n", false),
        data(3, b"whoami\n", true),
        Spdy::Ping { id: 1 },
    ]);
    let reply = |id| Spdy::SynReply {
        stream_id: id,
        fin: false,
        headers: Headers::new(),
    };
    let server = wire(&[
        reply(1),
        reply(3),
        reply(5),
        reply(7),
        reply(9),
        data(5, b"root\n", false),
        data(7, b"oops", true),
        data(5, b"", true),
        data(1, br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"2"}]}}"#, true),
        Spdy::GoAway { last_good_stream_id: 9, status: 0 },
    ]);
    (client, server)
}

#[test]
fn spdy_exec_at_every_split_offset() {
    let (client, server) = spdy_exec_wires();
    let want = vec![
        EventKind::Resize {
            width: 80,
            height: 24,
        },
        input(b"whoami\n"),
        out(b"root\n"),
        EventKind::Error {
            data: Bytes::from_static(b"oops"),
        },
        EventKind::Exit { code: 2 },
    ];
    let t = Transport::Spdy { status_json: true };
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
        assert_eq!((summary.exit_code, summary.error), (Some(2), None));
    }
}

#[test]
fn spdy_text_error_stream_before_v4() {
    let client = wire(&[syn(1, &[("streamtype", "error")], false)]);
    let server = wire(&[data(1, b"command terminated", true)]);
    let (events, s) = run(
        Transport::Spdy { status_json: false },
        SessionKind::Exec,
        exact(),
        &[
            (Direction::Upstream, &client),
            (Direction::Downstream, &server),
        ],
    );
    assert_eq!(
        kinds(&events),
        vec![EventKind::Failure {
            message: "command terminated".into()
        }]
    );
    assert_eq!(s.failure.as_deref(), Some("command terminated"));
    let server = wire(&[data(1, b"", true)]);
    let (_, s) = run(
        Transport::Spdy { status_json: false },
        SessionKind::Exec,
        exact(),
        &[
            (Direction::Upstream, &client),
            (Direction::Downstream, &server),
        ],
    );
    assert_eq!(s.exit_code, Some(0));
}

/// Two port-forward connections (ports 80 and 5432) as kubectl sends them.
fn portforward_wires() -> (Vec<u8>, Vec<u8>) {
    let client = wire(&[
        syn(
            1,
            &[("streamtype", "error"), ("port", "80"), ("requestid", "0")],
            false,
        ),
        data(1, b"", true),
        syn(
            3,
            &[("streamtype", "data"), ("port", "80"), ("requestid", "0")],
            false,
        ),
        data(3, b"GET / HTTP/1.1\r\n\r\n", false),
        syn(
            5,
            &[
                ("streamtype", "error"),
                ("port", "5432"),
                ("requestid", "1"),
            ],
            false,
        ),
        syn(
            7,
            &[("streamtype", "data"), ("port", "5432"), ("requestid", "1")],
            false,
        ),
        data(7, &[0u8; 1000], true),
        Spdy::RstStream {
            stream_id: 3,
            status: 5,
        },
    ]);
    let server = wire(&[
        Spdy::SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::new(),
        },
        data(3, &[b'h'; 300], false),
        data(5, b"connection refused", true),
        data(7, &[1u8; 2000], false),
    ]);
    (client, server)
}

fn check_portforward(events: &[SessionEvent], s: &SessionSummary) {
    assert_eq!(s.error, None);
    assert_eq!(
        s.ports,
        vec![
            PortCount {
                port: 80,
                upstream_bytes: 18,
                downstream_bytes: 300,
                errors: 0
            },
            PortCount {
                port: 5432,
                upstream_bytes: 1000,
                downstream_bytes: 2000,
                errors: 1
            },
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.kind.stored_len() == 0 || matches!(e.kind, EventKind::PortError { .. })),
        "no payload is stored"
    );
    let total: u64 = events
        .iter()
        .map(|e| {
            if let EventKind::PortData { bytes, .. } = e.kind {
                bytes
            } else {
                0
            }
        })
        .sum();
    assert_eq!(total, 3318);
    assert!(events.contains(&SessionEvent {
        at_us: 0,
        kind: EventKind::PortError {
            port: 5432,
            message: "connection refused".into()
        }
    }));
}

#[test]
fn spdy_portforward_records_ports_and_counts_only() {
    let (client, server) = portforward_wires();
    let (events, s) = run(
        Transport::Spdy { status_json: true },
        SessionKind::PortForward,
        exact(),
        &[
            (Direction::Upstream, &client),
            (Direction::Downstream, &server),
        ],
    );
    check_portforward(&events, &s);
}

/// Split `bytes` into WebSocket binary messages of awkward sizes, some empty, some fragmented.
fn tunnel(bytes: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let sizes = [2usize, 2, 4, 0, 4, 1, 51, 7, 300];
    let mut out = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].min(bytes.len() - at);
        if i % 5 == 4 && n > 1 {
            out.extend(encode_frame(false, OP_BINARY, &bytes[at..at + 1], mask));
            out.extend(encode_frame(true, 0, &bytes[at + 1..at + n], mask));
        } else {
            out.extend(encode_frame(true, OP_BINARY, &bytes[at..at + n], mask));
        }
        at += n;
        i += 1;
    }
    out
}

#[test]
fn spdy_portforward_tunnelled_in_websocket_at_every_split() {
    let (client, server) = portforward_wires();
    let (client, server) = (tunnel(&client, Some(KEY)), tunnel(&server, None));
    let t = Transport::WebSocket(StreamProtocol::SpdyTunnel);
    for at in (0..=client.len().max(server.len())).step_by(7) {
        let (c, s) = (at.min(client.len()), at.min(server.len()));
        let feeds: [(Direction, &[u8]); 4] = [
            (Direction::Upstream, &client[..c]),
            (Direction::Upstream, &client[c..]),
            (Direction::Downstream, &server[..s]),
            (Direction::Downstream, &server[s..]),
        ];
        let (events, s) = run(t, SessionKind::PortForward, exact(), &feeds);
        check_portforward(&events, &s);
    }
    let text = encode_frame(true, OP_TEXT, b"x", Some(KEY));
    let (_, s) = run(
        t,
        SessionKind::PortForward,
        exact(),
        &[(Direction::Upstream, &text)],
    );
    assert!(s.error.is_some());
}

#[test]
fn hostile_spdy_is_refused() {
    let exec = |frames: &[(Direction, Vec<Spdy>)], kind: SessionKind, cfg: RecorderConfig| {
        let mut r = Recorder::new(Transport::Spdy { status_json: true }, kind, cfg).unwrap();
        let (mut eu, mut ed) = (Encoder::new(), Encoder::new());
        let mut last = Ok(());
        for (dir, fs) in frames {
            let mut b = BytesMut::new();
            for f in fs {
                match dir {
                    Direction::Upstream => eu.encode(f, &mut b).unwrap(),
                    Direction::Downstream => ed.encode(f, &mut b).unwrap(),
                }
            }
            last = r.feed(*dir, &b, Duration::ZERO);
            if last.is_err() {
                break;
            }
        }
        last
    };
    use Direction::{Downstream as D, Upstream as U};
    use SessionKind::{Exec, PortForward as Pf};
    let c = exact;
    assert_eq!(
        exec(
            &[(
                U,
                vec![
                    syn(1, &[("streamtype", "stdin")], false),
                    syn(1, &[("streamtype", "stdin")], false)
                ]
            )],
            Exec,
            c()
        ),
        Err(ExecError::DuplicateStream(1))
    );
    assert_eq!(
        exec(&[(D, vec![data(5, b"x", false)])], Exec, c()),
        Err(ExecError::UnknownStream(5))
    );
    assert!(matches!(
        exec(
            &[(U, vec![syn(1, &[("streamtype", "shell")], false)])],
            Exec,
            c()
        ),
        Err(ExecError::BadStreamType { stream: 1, .. })
    ));
    assert!(matches!(
        exec(&[(U, vec![syn(1, &[("port", "80")], false)])], Exec, c()),
        Err(ExecError::BadStreamType { .. })
    ));
    assert!(matches!(
        exec(
            &[(U, vec![syn(1, &[("streamtype", "stdin")], false)])],
            Pf,
            c()
        ),
        Err(ExecError::BadStreamType { .. })
    ));
    for port in ["0", "65536", "+80", "8o", "", " 80"] {
        assert_eq!(
            exec(
                &[(
                    U,
                    vec![syn(1, &[("streamtype", "data"), ("port", port)], false)]
                )],
                Pf,
                c()
            ),
            Err(ExecError::BadPort(1)),
            "{port:?}"
        );
    }
    assert_eq!(
        exec(
            &[(U, vec![syn(1, &[("streamtype", "data")], false)])],
            Pf,
            c()
        ),
        Err(ExecError::BadPort(1))
    );
    assert_eq!(
        exec(
            &[
                (U, vec![syn(3, &[("streamtype", "stdin")], false)]),
                (D, vec![data(3, b"x", false)])
            ],
            Exec,
            c()
        ),
        Err(ExecError::WrongDirection {
            stream: 3,
            direction: D
        })
    );
    assert_eq!(
        exec(
            &[(
                U,
                vec![
                    syn(5, &[("streamtype", "stdout")], false),
                    data(5, b"x", false)
                ]
            )],
            Exec,
            c()
        ),
        Err(ExecError::WrongDirection {
            stream: 5,
            direction: U
        })
    );
    assert_eq!(
        exec(
            &[(
                U,
                vec![
                    syn(3, &[("streamtype", "stdin")], false),
                    data(3, b"a", true),
                    data(3, b"b", false)
                ]
            )],
            Exec,
            c()
        ),
        Err(ExecError::UnknownStream(3)),
        "data after FIN"
    );
    assert_eq!(
        exec(
            &[(
                U,
                vec![
                    syn(3, &[("streamtype", "stdin")], false),
                    Spdy::RstStream {
                        stream_id: 3,
                        status: 5
                    },
                    data(3, b"b", false)
                ]
            )],
            Exec,
            c()
        ),
        Err(ExecError::UnknownStream(3)),
        "data after RST"
    );
    let few = RecorderConfig {
        max_streams: 2,
        ..exact()
    };
    let three: Vec<Spdy> = (0..3)
        .map(|i| syn(2 * i + 1, &[("streamtype", "stdin")], false))
        .collect();
    assert_eq!(
        exec(&[(U, three)], Exec, few),
        Err(ExecError::TooManyStreams(2))
    );
    assert_eq!(
        exec(
            &[
                (U, vec![syn(1, &[("streamtype", "error")], false)]),
                (D, vec![data(1, b"{\"status\":", true)])
            ],
            Exec,
            c()
        ),
        Err(ExecError::BadStatus)
    );
    assert_eq!(
        exec(
            &[(
                U,
                vec![
                    syn(1, &[("streamtype", "resize")], false),
                    data(1, b"[]", false)
                ]
            )],
            Exec,
            c()
        ),
        Err(ExecError::BadResize)
    );
    // Garbage bytes: a SPDY framing error, sticky.
    let mut r = Recorder::new(Transport::Spdy { status_json: true }, Exec, exact()).unwrap();
    let e = r
        .feed(U, &[0x80, 0x02, 0, 1, 0, 0, 0, 10], Duration::ZERO)
        .unwrap_err();
    assert!(matches!(e, ExecError::Spdy { direction: U, .. }), "{e:?}");
    assert_eq!(r.feed(D, b"", Duration::ZERO), Err(e));
    // A frame over the limit is refused from its header.
    let small = RecorderConfig {
        limits: ws_frame::Limits {
            max_frame: 64,
            max_message: 64,
        },
        ..exact()
    };
    let mut r = Recorder::new(Transport::Spdy { status_json: true }, Exec, small).unwrap();
    assert!(r
        .feed(U, &[0, 0, 0, 1, 0, 1, 0, 0], Duration::ZERO)
        .is_err());
}
