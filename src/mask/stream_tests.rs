//! The watch stream masker: framing across every split, limits, truncation, sticky errors.

use std::sync::Arc;

use super::*;
use crate::mask::object::mask_body;
use crate::mask::object::tests::{assert_clean, full};
use crate::mask::placeholder::BASE64;
use serde_json::{json, Value};

fn events() -> Vec<u8> {
    let la =
        json!({"kind": "Secret", "apiVersion": "v1", "stringData": {"p": "super-secret-value"}})
            .to_string()
            + "\n";
    let evs = [
        json!({"type": "ADDED", "object": {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "a\"é\u{1F600}", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": la}}, "data": {"p": "c3VwZXItc2VjcmV0LXZhbHVl"}}}),
        json!({"type": "MODIFIED", "object": {"kind": "Pod", "spec": {"containers": [{"env": [{"name": "X", "value": "env-literal-1 \\ \"quoted\" {[brackets]}"}]}]}}}),
        json!({"type": "BOOKMARK", "object": {"kind": "Secret", "apiVersion": "v1", "metadata": {"resourceVersion": "310"}}}),
        json!({"type": "DELETED", "object": {"kind": "Table", "rows": [{"cells": [], "object": {"kind": "Secret", "data": {"q": "c3VwZXItc2VjcmV0LXZhbHVl"}}}]}}),
        json!({"type": "ERROR", "object": {"kind": "Status", "status": "Failure", "code": 410}}),
    ];
    let mut s = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        s.extend_from_slice(serde_json::to_string(e).unwrap().as_bytes());
        // Newlines in practice, but nothing relies on them.
        s.extend_from_slice([&b"\n"[..], b"", b" \r\n\t", b"\n\n", b""][i]);
    }
    // An escape and a UTF-8 sequence the splits will cut through.
    s.extend_from_slice(r#"{"type":"ADDED","object":{"kind":"Secret","data":{"\u0070":"c3VwZXItc2VjcmV0LXZhbHVl"},"metadata":{"name":"ü\u00fc\\"}}}"#.as_bytes());
    s.push(b'\n');
    s
}

fn masker() -> WatchMasker {
    WatchMasker::new(Arc::new(full()))
}

fn run(chunks: &[&[u8]]) -> (Vec<u8>, usize) {
    let mut m = masker();
    let mut out = Vec::new();
    let mut n = 0;
    for c in chunks {
        n += m.feed(c, &mut out).unwrap();
    }
    m.finish().unwrap();
    (out, n)
}

#[test]
fn whole_stream_is_masked_event_by_event() {
    let s = events();
    let (out, n) = run(&[&s]);
    assert_clean(&out);
    assert_eq!(
        n, 5,
        "2 in the first event (data, last-applied), then 1, 0, 1, 0, 1"
    );
    // Each output event is what masking it alone gives, and the whitespace is kept.
    let text = String::from_utf8(out.clone()).unwrap();
    let mut d = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let first = d.next().unwrap().unwrap();
    assert_eq!(first["object"]["data"]["p"], BASE64);
    assert_eq!(d.count(), 5);
    assert_eq!(
        out.iter().filter(|&&b| b == b'\n').count(),
        s.iter().filter(|&&b| b == b'\n').count()
    );
}

#[test]
fn every_split_point_gives_the_same_output() {
    let s = events();
    let want = run(&[&s]);
    for i in 0..=s.len() {
        assert_eq!(run(&[&s[..i], &s[i..]]), want, "split at {i}");
    }
    for i in (0..s.len()).step_by(7) {
        for j in (i..s.len()).step_by(13) {
            assert_eq!(
                run(&[&s[..i], &s[i..j], &s[j..]]),
                want,
                "split at {i}, {j}"
            );
        }
    }
    let bytes: Vec<&[u8]> = s.chunks(1).collect();
    assert_eq!(run(&bytes), want, "byte by byte");
}

#[test]
fn oversized_events_are_refused_before_they_are_buffered() {
    let big = serde_json::to_vec(
        &json!({"type": "ADDED", "object": {"kind": "Secret", "data": {"p": "A".repeat(5000)}}}),
    )
    .unwrap();
    for chunk in [big.len(), 100, 1] {
        let mut m = masker().with_max_event(4096);
        let mut out = Vec::new();
        let r: Result<Vec<usize>, _> = big.chunks(chunk).map(|c| m.feed(c, &mut out)).collect();
        assert_eq!(
            r,
            Err(StreamError::EventTooLarge { limit: 4096 }),
            "chunks of {chunk}"
        );
        assert!(out.is_empty());
        assert!(m.buf.len() <= 4096);
        // Sticky.
        assert!(m.feed(b"\n", &mut out).is_err());
        assert!(m.finish().is_err());
    }
    // Exactly at the limit passes.
    let mut m = masker().with_max_event(big.len());
    assert_eq!(m.feed(&big, &mut Vec::new()), Ok(1));
}

#[test]
fn a_truncated_final_event_is_reported() {
    let s = events();
    let marker = br#"{"type":"ADDED","object":{"kind":"Secret","data":{"\u0070""#;
    let last_start = s.windows(marker.len()).position(|w| w == marker).unwrap();
    for cut in [last_start + 1, s.len() - 3, s.len() - 2] {
        let mut m = masker();
        let mut out = Vec::new();
        m.feed(&s[..cut], &mut out).unwrap();
        assert_clean(&out);
        assert!(
            matches!(m.finish(), Err(StreamError::Truncated { index: 5, .. })),
            "cut at {cut}"
        );
    }
    // Ending between events, or in whitespace, is fine.
    let mut m = masker();
    m.feed(&s[..last_start], &mut Vec::new()).unwrap();
    assert_eq!(m.finish(), Ok(()));
    assert_eq!(m.events(), 5);
}

#[test]
fn what_is_not_an_event_stream_fails_and_stays_failed() {
    let secret_event =
        br#"{"type":"ADDED","object":{"kind":"Secret","data":{"p":"c3VwZXItc2VjcmV0LXZhbHVl"}}}"#;
    for (bad, what) in [
        (&b"[1]"[..], "an array"),
        (b"\"x\"", "a string"),
        (b"1", "a number"),
        (b"{\"type\":\"ADDED\"}", "no object"),
        (
            b"{\"type\":\"ADDED\",\"object\":{},\"extra\":1}",
            "an extra member",
        ),
        (b"{\"type\":1,\"object\":{}}", "a non-string type"),
        (b"{\"type\":\"ADDED\",\"object\":[]}", "an array object"),
        (
            b"{\"type\":\"ADDED\",\"type\":\"ADDED\",\"object\":{}}",
            "two types",
        ),
        (
            b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Secret\",\"kind\":\"ConfigMap\"}}",
            "two kinds",
        ),
        (b"{\"type\":\"ADDED\",\"object\":{]}", "mismatched brackets"),
        (b"\xef\xbb\xbf{}", "a BOM"),
    ] {
        let mut m = masker();
        let mut out = Vec::new();
        assert!(m.feed(bad, &mut out).is_err(), "{what}");
        assert!(m.feed(secret_event, &mut out).is_err(), "{what}: sticky");
        assert!(out.is_empty(), "{what}");
    }
    let deep = format!("{{\"type\":\"ADDED\",\"object\":{}", "[".repeat(1 << 20));
    let mut m = masker();
    assert!(matches!(
        m.feed(deep.as_bytes(), &mut Vec::new()),
        Err(StreamError::TooDeep { index: 0 })
    ));
    // Invalid UTF-8 inside a string of an event.
    let mut m = masker();
    let e = b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Secret\",\"data\":{\"p\":\"\xff\"}}}";
    assert!(matches!(
        m.feed(e, &mut Vec::new()),
        Err(StreamError::Event { index: 0, .. })
    ));
}

#[test]
fn events_before_an_error_are_passed_and_the_error_names_the_event() {
    let mut s = events();
    s.extend_from_slice(b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Secret\"},\"x\":1}");
    let mut m = masker();
    let mut out = Vec::new();
    let e = m.feed(&s, &mut out).unwrap_err();
    assert!(matches!(e, StreamError::Event { index: 6, .. }), "{e}");
    assert_clean(&out);
    assert!(!out.is_empty());
}

#[test]
fn websocket_messages_are_single_events_and_bodies_are_single_values() {
    let e =
        br#"{"type":"ADDED","object":{"kind":"Secret","data":{"p":"c3VwZXItc2VjcmV0LXZhbHVl"}}}"#;
    let mut out = Vec::new();
    assert_eq!(mask_event_into(&full(), e, &mut out), Ok(1));
    assert_clean(&out);
    assert!(mask_event_into(&full(), br#"{"kind":"Secret"}"#, &mut Vec::new()).is_err());
    let two = [&e[..], b"\n", &e[..]].concat();
    assert!(mask_event_into(&full(), &two, &mut Vec::new()).is_err());
    assert!(
        mask_body(&full(), &two).is_err(),
        "a body is one value; a second is trailing garbage"
    );
}

#[test]
fn whitespace_alone_is_passed_and_buffers_nothing() {
    let mut m = masker();
    let mut out = Vec::new();
    for _ in 0..1000 {
        m.feed(b" \n\r\t", &mut out).unwrap();
    }
    assert_eq!(out.len(), 4000);
    assert!(m.buf.capacity() == 0);
    assert_eq!(m.finish(), Ok(()));
}
