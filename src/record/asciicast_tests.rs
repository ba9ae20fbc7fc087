use bytes::Bytes;

use super::*;
use crate::record::exec::SessionKind;
use crate::record::replay::{parse_event, parse_header, replay, ReplayOptions, Sleeper};

fn info() -> SessionInfo {
    SessionInfo {
        id: "s1".into(),
        record_id: "r1".into(),
        kind: SessionKind::Exec,
        transport: "websocket/v5.channel.k8s.io".into(),
        started: 1_717_243_200_500_000,
        ended: None,
        summary: None,
    }
}

fn ev(at_us: u64, kind: EventKind) -> SessionEvent {
    SessionEvent { at_us, kind }
}

fn o(data: &[u8]) -> EventKind {
    EventKind::Output {
        data: Bytes::copy_from_slice(data),
    }
}

#[test]
fn utf8_split_at_every_offset_is_kept_intact() {
    let text = "héllo ✓ wörld 🦀 — ok\r\n".as_bytes();
    for a in 0..=text.len() {
        for b in a..=text.len() {
            let mut c = Utf8Carry::default();
            let got = [
                c.push(&text[..a]),
                c.push(&text[a..b]),
                c.push(&text[b..]),
                c.finish(),
            ]
            .concat();
            assert_eq!(got.as_bytes(), text, "split at {a}/{b}");
        }
    }
}

#[test]
fn invalid_bytes_are_replaced_like_lossy_decoding() {
    let cases: [&[u8]; 6] = [
        b"a\xffb",
        b"\xc3(",
        b"\xe2\x82",
        b"\xf0\x9f\xa6",
        b"\xed\xa0\x80x",
        b"ok\xc3",
    ];
    for bytes in cases {
        let want = String::from_utf8_lossy(bytes).into_owned();
        for at in 0..=bytes.len() {
            let mut c = Utf8Carry::default();
            let got = [c.push(&bytes[..at]), c.push(&bytes[at..]), c.finish()].concat();
            assert_eq!(got, want, "{bytes:?} split at {at}");
        }
    }
}

#[test]
fn cast_lines_are_valid_and_replay() {
    let events = vec![
        ev(
            0,
            EventKind::Resize {
                width: 120,
                height: 40,
            },
        ),
        ev(1_000, o(b"$ ")),
        ev(
            250_000,
            EventKind::Input {
                data: Bytes::from_static(b"echo \xc3"),
            },
        ),
        ev(
            250_001,
            EventKind::Input {
                data: Bytes::from_static(b"\xa9\r"),
            },
        ),
        ev(260_000, o("echo é\r\n\u{1b}[1mé".as_bytes())),
        ev(260_500, o(b"\xe2\x9c")),
        ev(1_500_000, o(b"\x93\r\n")),
        ev(
            1_600_000,
            EventKind::Error {
                data: Bytes::from_static(b"warn\xff\n"),
            },
        ),
        ev(1_700_000, EventKind::Exit { code: 0 }),
    ];
    let mut record = Record {
        id: "r1".into(),
        username: "alice".into(),
        namespace: "prod".into(),
        name: "web".into(),
        ..Record::default()
    };
    record.subresource = "exec".into();
    let cast = to_cast(&info(), Some(&record), &events);
    let mut lines = cast.lines();
    let header = parse_header(lines.next().unwrap()).unwrap();
    assert_eq!(
        (header.width, header.height, header.timestamp),
        (120, 40, Some(1_717_243_200))
    );
    assert_eq!(header.title.as_deref(), Some("alice exec prod/web (r1)"));
    assert_eq!(
        header.env.get("TERM").map(String::as_str),
        Some("xterm-256color")
    );
    let parsed: Vec<(f64, String, String)> = lines
        .enumerate()
        .map(|(i, l)| parse_event(l, i + 2).unwrap())
        .collect();
    let codes: Vec<&str> = parsed.iter().map(|(_, c, _)| c.as_str()).collect();
    assert_eq!(
        codes,
        ["r", "o", "i", "i", "o", "o", "o"],
        "the incomplete ✓ waits for its last byte"
    );
    assert_eq!(parsed[0], (0.0, "r".into(), "120x40".into()));
    assert_eq!(parsed[2].2, "echo ");
    assert_eq!(parsed[3].2, "é\r");
    assert_eq!(parsed[5], (1.5, "o".into(), "✓\r\n".into()));
    assert_eq!(parsed[6].2, "warn\u{fffd}\n");
    assert!(cast.contains("[0.250000, \"i\", \"echo \"]"), "{cast}");

    #[derive(Default)]
    struct Waits(Vec<std::time::Duration>);
    impl Sleeper for Waits {
        fn sleep(&mut self, d: std::time::Duration) {
            self.0.push(d);
        }
    }
    let (mut out, mut waits) = (Vec::new(), Waits::default());
    replay(
        cast.as_bytes(),
        &mut out,
        ReplayOptions::default(),
        &mut waits,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "$ echo é\r\n\u{1b}[1mé✓\r\nwarn\u{fffd}\n"
    );
    let total: std::time::Duration = waits.0.iter().sum();
    assert_eq!(total, std::time::Duration::from_micros(1_600_000));
}

#[test]
fn defaults_without_resize_and_a_dangling_sequence_is_flushed() {
    let cast = to_cast(&info(), None, &[ev(5, o(b"a\xe2\x82"))]);
    let lines: Vec<&str> = cast.lines().collect();
    let header = parse_header(lines[0]).unwrap();
    assert_eq!((header.width, header.height, header.title), (80, 24, None));
    assert_eq!(
        lines[1..],
        [
            "[0.000005, \"o\", \"a\"]",
            "[0.000005, \"o\", \"\u{fffd}\"]"
        ]
    );
}

#[test]
fn the_json_export_round_trips() {
    let export = SessionExport::new(info(), None, vec![ev(1, o(b"\x00\xff"))]);
    let json = serde_json::to_string(&export).unwrap();
    assert!(
        json.starts_with(
            r#"{"kind":"Session","apiVersion":"hoop-kube.dev/v1","session":{"id":"s1""#
        ),
        "{json}"
    );
    assert!(
        json.contains(r#""events":[{"atUs":1,"kind":"output","data":"AP8="}]"#),
        "{json}"
    );
    assert_eq!(
        serde_json::from_str::<SessionExport>(&json).unwrap(),
        export
    );
}
