//! The parser against serde_json, its limits, and what it notes for masking.

use super::*;

fn ok(s: &str) -> Tape<'_> {
    parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn agrees_with_serde_json_on_what_is_json() {
    let cases = [
        "{}",
        "[]",
        "0",
        "-0",
        "1.5e3",
        "\"\\ud83d\\ude00\"",
        " {\"a\" : [1, true, false, null, \"x\"] } ",
        "{\"a\":{}}",
        "1e400",
        "-1e400",
        "0e400",
        "1e-400",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "[1,]",
        "{\"a\":1,}",
        "{a:1}",
        "'a'",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\x\"",
        "\"a\tb\"",
        "\u{feff}{}",
        "{} {}",
        "",
        "nul",
        "truex",
        "[1 2]",
        "{\"a\" 1}",
        "\"\\u12\"",
        "123456789012345678901234567890",
        "1E+2",
        "-01",
        "[\"\\/\"]",
        "\"\\u00e9\"",
    ];
    for c in cases {
        let serde = serde_json::from_str::<serde_json::Value>(c).is_ok();
        assert_eq!(parse(c.as_bytes()).is_ok(), serde, "{c:?}");
    }
    let big = format!("1{}", "0".repeat(400));
    assert_eq!(
        parse(big.as_bytes()).is_ok(),
        serde_json::from_str::<serde_json::Value>(&big).is_ok()
    );
}

#[test]
fn depth_limit_is_serde_jsons() {
    for n in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 100_000] {
        let s = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let serde = serde_json::from_str::<serde_json::Value>(&s).is_ok();
        let ours = parse(s.as_bytes());
        assert_eq!(ours.is_ok(), serde, "{n}");
        if n > MAX_DEPTH {
            assert!(matches!(ours, Err(JsonError::TooDeep { .. })));
        }
    }
    let s = format!(
        "{}1{}",
        "{\"a\":".repeat(MAX_DEPTH + 1),
        "}".repeat(MAX_DEPTH + 1)
    );
    assert!(matches!(
        parse(s.as_bytes()),
        Err(JsonError::TooDeep { .. })
    ));
}

#[test]
fn invalid_utf8_is_refused_even_in_strings() {
    assert_eq!(
        parse(b"{\"a\":\"\xff\"}").err(),
        Some(JsonError::Utf8 { offset: 6 })
    );
    assert!(parse(b"\"\xc3\"").is_err());
    assert!(parse("\"é\"".as_bytes()).is_ok());
}

#[test]
fn spans_kinds_and_members() {
    let t = ok(r#"{"kind":"Secret","items":[{"kind":"ConfigMap"},{"a":1}],"data":{"k":"v"}}"#);
    assert_eq!(t.kind(0).as_deref(), Some("Secret"));
    let names: Vec<_> = t
        .members(0)
        .map(|(k, _)| t.str_at(k).into_owned())
        .collect();
    assert_eq!(names, ["kind", "items", "data"]);
    let (_, items) = t.members(0).nth(1).unwrap();
    let els: Vec<u32> = t.elements(items).collect();
    assert_eq!(els.len(), 2);
    assert_eq!(t.kind(els[0]).as_deref(), Some("ConfigMap"));
    assert_eq!(t.kind(els[1]), None);
    assert_eq!(t.raw(els[1]), br#"{"a":1}"#);
    assert_eq!(t.kinded.len(), 2);
}

#[test]
fn escaped_keys_and_kinds_are_decoded() {
    let t = ok(r#"{"\u006bind":"Sec\u0072et"}"#);
    assert_eq!(t.kind(0).as_deref(), Some("Secret"));
    assert!(matches!(
        parse(br#"{"kind":"ConfigMap","\u006bind":"Secret"}"#),
        Err(JsonError::DuplicateKind { .. })
    ));
    assert!(matches!(
        parse(br#"{"kind":1,"kind":"Secret"}"#),
        Err(JsonError::DuplicateKind { .. })
    ));
    // A kind that is not a string is no kind; nested objects have their own.
    let t = ok(r#"{"kind":5,"a":{"kind":"Pod"}}"#);
    assert_eq!(t.kind(0), None);
    assert_eq!(t.kinded.len(), 1);
}

#[test]
fn last_applied_annotations_are_found_with_their_object() {
    let t = ok(
        r#"{"kind":"Secret","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}},"x":{"kubectl.kubernetes.io\/last-applied-configuration":"{}"}}"#,
    );
    assert_eq!(t.last_applied.len(), 2);
    assert_eq!(t.last_applied[0].owner, Some(0));
    assert_eq!(t.last_applied[1].owner, None);
}
