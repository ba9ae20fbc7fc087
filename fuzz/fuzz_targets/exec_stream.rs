//! Fuzzes the exec/attach/port-forward session recorder (`record::exec::Recorder`): the RFC 6455
//! frame decoder with the `channel.k8s.io` protocols, the SPDY/3.1 session decoder, and the SPDY
//! tunnel in WebSocket, fed arbitrary bytes split at a fuzzer-chosen point.
//!
//! Input: byte 0 = `mode | dirs << 3 | stdin << 5 | small << 6`: `mode` (0..=7) picks the
//! transport and kind (WebSocket v5 exec, v4 exec, v4.base64 exec, SPDY tunnel port-forward,
//! SPDY exec with JSON status, SPDY exec with text status, SPDY port-forward, WebSocket v5
//! attach); `dirs` sends everything upstream (0), downstream (1), or the first part upstream and
//! the rest downstream (2, 3); `stdin` turns stdin recording on; `small` uses tiny limits.
//! Bytes 1..3 are the split point (u16, little-endian, modulo the length); the rest is the
//! stream.
//!
//! Checked: no panic; errors are sticky (a later feed returns the same error); the raw byte
//! counters add up to what was fed; stored payload stays within `max_recorded_bytes`; the
//! asciicast of the events parses line by line; and with one direction, feeding the stream
//! whole or split gives the same events and the same error.
#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use hoop_kube::kube::wire::websocket::StreamProtocol;
use hoop_kube::kube::wire::ws_frame::Limits;
use hoop_kube::record::exec::{
    Direction, EventKind, ExecError, Recorder, RecorderConfig, SessionEvent, SessionKind, Transport,
};
use libfuzzer_sys::fuzz_target;

fn setup(mode: u8) -> (Transport, SessionKind) {
    match mode & 7 {
        0 => (Transport::WebSocket(StreamProtocol::V5), SessionKind::Exec),
        1 => (Transport::WebSocket(StreamProtocol::V4), SessionKind::Exec),
        2 => (
            Transport::WebSocket(StreamProtocol::V4Base64),
            SessionKind::Exec,
        ),
        3 => (
            Transport::WebSocket(StreamProtocol::SpdyTunnel),
            SessionKind::PortForward,
        ),
        4 => (Transport::Spdy { status_json: true }, SessionKind::Exec),
        5 => (Transport::Spdy { status_json: false }, SessionKind::Exec),
        6 => (
            Transport::Spdy { status_json: true },
            SessionKind::PortForward,
        ),
        _ => (
            Transport::WebSocket(StreamProtocol::V5),
            SessionKind::Attach,
        ),
    }
}

/// Events, with port-forward byte counts summed per (port, direction): how they are split
/// into aggregated events depends on when the recorder was flushed.
type Outcome = (
    Vec<EventKind>,
    BTreeMap<(u16, Direction), u64>,
    Option<ExecError>,
);

fn normalize(events: Vec<SessionEvent>, err: Option<ExecError>) -> Outcome {
    let mut ports = BTreeMap::new();
    let mut kinds = Vec::new();
    for e in events {
        match e.kind {
            EventKind::PortData {
                port,
                direction,
                bytes,
            } => *ports.entry((port, direction)).or_insert(0) += bytes,
            k => kinds.push(k),
        }
    }
    (kinds, ports, err)
}

fn run(ctl: u8, parts: &[(Direction, &[u8])]) -> Outcome {
    let (transport, kind) = setup(ctl);
    let small = ctl & 0x40 != 0;
    let cfg = RecorderConfig {
        record_stdin: ctl & 0x20 != 0,
        max_recorded_bytes: if small { 64 } else { 1 << 20 },
        coalesce_us: 0,
        limits: if small {
            Limits {
                max_frame: 32,
                max_message: 48,
            }
        } else {
            Limits::default()
        },
        max_streams: if small { 2 } else { 64 },
        ..RecorderConfig::default()
    };
    let max_recorded = cfg.max_recorded_bytes;
    let mut rec = Recorder::new(transport, kind, cfg).expect("every mode is a supported pair");
    let mut events = Vec::new();
    let mut first_err: Option<ExecError> = None;
    let mut fed = (0u64, 0u64);
    for (dir, bytes) in parts {
        match dir {
            Direction::Upstream => fed.0 += bytes.len() as u64,
            Direction::Downstream => fed.1 += bytes.len() as u64,
        }
        match (rec.feed(*dir, bytes, Duration::ZERO), &first_err) {
            (Ok(()), None) => {}
            (Ok(()), Some(e)) => panic!("recovered after {e:?}"),
            (Err(e), None) => first_err = Some(e),
            (Err(e), Some(first)) => assert_eq!(&e, first, "error changed"),
        }
        if rec.should_flush() {
            events.extend(rec.take_events());
        }
    }
    if let Some(e) = &first_err {
        assert_eq!(
            rec.feed(Direction::Upstream, b"", Duration::ZERO).as_ref(),
            Err(e),
            "not sticky"
        );
    }
    let (rest, summary) = rec.finish(Duration::from_secs(1));
    events.extend(rest);
    assert_eq!((summary.upstream_bytes, summary.downstream_bytes), fed);
    let stored: u64 = events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Input { data } | EventKind::Output { data } | EventKind::Error { data } => {
                data.len() as u64
            }
            EventKind::Failure { message } | EventKind::PortError { message, .. } => {
                message.len() as u64
            }
            _ => 0,
        })
        .sum();
    assert!(stored <= max_recorded, "stored {stored} > {max_recorded}");
    if kind == SessionKind::PortForward {
        assert!(events.iter().all(|e| !matches!(
            e.kind,
            EventKind::Input { .. } | EventKind::Output { .. } | EventKind::Error { .. }
        )));
    }
    // The asciicast of whatever was recorded is valid JSON, line by line.
    let info = hoop_kube::record::store::SessionInfo {
        id: "s".into(),
        record_id: "r".into(),
        kind,
        transport: transport.name(),
        started: 0,
        ended: None,
        summary: Some(summary.clone()),
    };
    let cast = hoop_kube::record::asciicast::to_cast(&info, None, &events);
    for line in cast.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("asciicast line is JSON");
    }
    // Errors end in the summary; a first error happened iff the summary says so (or finish
    // found a truncated status).
    if first_err.is_some() {
        assert!(summary.error.is_some());
    }
    normalize(events, first_err)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let (split, stream) = match rest {
        [a, b, tail @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), tail),
        _ => (0, rest),
    };
    let at = if stream.is_empty() {
        0
    } else {
        split % (stream.len() + 1)
    };
    let (head, tail) = stream.split_at(at);
    match (ctl >> 3) & 3 {
        dirs @ (0 | 1) => {
            let dir = if dirs == 0 {
                Direction::Upstream
            } else {
                Direction::Downstream
            };
            let split = run(ctl, &[(dir, head), (dir, tail)]);
            let whole = run(ctl, &[(dir, stream)]);
            assert_eq!(split, whole, "the split changed what was recorded");
        }
        _ => {
            run(
                ctl,
                &[(Direction::Upstream, head), (Direction::Downstream, tail)],
            );
        }
    }
});
