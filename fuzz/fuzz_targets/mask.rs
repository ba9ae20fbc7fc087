//! Fuzzes the Secret masker (`mask`): the input, split at a fuzzer-chosen offset, goes through
//! the watch stream masker (whole and in two chunks), the body masker, a Secret watch event with
//! the input planted as its `metadata`, the write guard and the text replacer.
//!
//! Checked: no panic; the stream gives the same bytes and result whole and split; the body
//! masker accepts exactly what serde_json accepts (except an object with two `kind`s, which it
//! refuses) and its output is JSON in which every `Secret`'s `data`/`stringData` value is a
//! placeholder or null; a planted Secret value never survives a successfully masked event;
//! the streamed text replacement equals the one-shot one and leaves no value behind.
#![no_main]

use std::sync::{Arc, OnceLock};

use hoop_kube::mask::placeholder::{BASE64, TEXT};
use hoop_kube::mask::{
    check_body, mask_body, mask_event_into, JsonError, MaskError, MaskProfile, Replacer,
    TextStream, WatchMasker,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// base64 of `PLANTED-SECRET-VALUE`.
const PLANTED: &str = "UExBTlRFRC1TRUNSRVQtVkFMVUU=";
const PLANTED_CORE: &str = "UExBTlRFRC1TRUNSRVQtVkFMVUU";

fn profile() -> &'static Arc<MaskProfile> {
    static P: OnceLock<Arc<MaskProfile>> = OnceLock::new();
    P.get_or_init(|| Arc::new(MaskProfile::builtin()))
}

/// The stream masker's output and result for `data` fed in the given chunks.
fn stream(chunks: &[&[u8]]) -> (Vec<u8>, Result<usize, String>) {
    let mut m = WatchMasker::new(Arc::clone(profile())).with_max_event(64 * 1024);
    let mut out = Vec::new();
    let mut n = 0;
    for c in chunks {
        match m.feed(c, &mut out) {
            Ok(k) => n += k,
            Err(e) => return (out, Err(e.to_string())),
        }
    }
    (out, m.finish().map(|()| n).map_err(|e| e.to_string()))
}

/// Every Secret reachable in `v` has only placeholders (or nulls) in `data` and `stringData`.
fn check_secrets(v: &Value, implied_secret: bool, depth: usize) {
    if depth > 200 {
        return;
    }
    match v {
        Value::Object(m) => {
            let kind = m.get("kind").and_then(Value::as_str);
            if kind == Some("Secret") || implied_secret {
                for (field, ph) in [("data", BASE64), ("stringData", TEXT)] {
                    if let Some(Value::Object(d)) = m.get(field) {
                        for (k, val) in d {
                            check_leaf(val, ph, &format!("{field}.{k}"));
                        }
                    }
                }
            }
            for (k, c) in m {
                check_secrets(c, k == "items" && kind == Some("SecretList"), depth + 1);
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|c| check_secrets(c, implied_secret, depth + 1)),
        _ => {}
    }
}

fn check_leaf(v: &Value, ph: &str, at: &str) {
    match v {
        Value::Null => {}
        Value::String(s) => assert_eq!(s, ph, "{at} not masked"),
        Value::Array(a) => a.iter().for_each(|c| check_leaf(c, ph, at)),
        Value::Object(m) => m.values().for_each(|c| check_leaf(c, ph, at)),
        other => panic!("{at} left as {other}"),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&k, data)) = input.split_first() else {
        return;
    };
    let at = if data.is_empty() {
        0
    } else {
        usize::from(k) * data.len() / 255
    };

    // Stream: split anywhere, same bytes, same verdict.
    let whole = stream(&[data]);
    assert_eq!(stream(&[&data[..at], &data[at..]]), whole, "split at {at}");
    if whole.1.is_ok() {
        let text = String::from_utf8(whole.0.clone()).expect("stream output is UTF-8");
        for v in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            check_secrets(&v.expect("stream output is JSON"), false, 0);
        }
    }

    // Body: accepted exactly when serde_json accepts, output JSON with Secrets masked.
    let serde_ok = serde_json::from_slice::<Value>(data).is_ok();
    match mask_body(profile(), data) {
        Ok((out, _)) => {
            assert!(serde_ok, "masker accepted what serde_json refuses");
            let v: Value = serde_json::from_slice(&out).expect("masked output is JSON");
            check_secrets(&v, false, 0);
        }
        Err(MaskError::Json(JsonError::DuplicateKind { .. })) => {}
        Err(e) => assert!(!serde_ok, "masker refused what serde_json accepts: {e}"),
    }

    // A Secret event with the input planted inside: the value never survives.
    let frag = String::from_utf8_lossy(data);
    if !frag.contains(&PLANTED_CORE[..12]) {
        let event = format!(
            r#"{{"type":"ADDED","object":{{"kind":"Secret","metadata":{frag},"data":{{"p":"{PLANTED}"}}}}}}"#
        );
        let e = event.as_bytes();
        let split = at.min(e.len());
        let (out, r) = stream(&[&e[..split], &e[split..]]);
        assert!(
            !String::from_utf8_lossy(&out).contains(PLANTED_CORE),
            "planted value leaked ({r:?})"
        );
        let mut out = Vec::new();
        if let Ok(n) = mask_event_into(profile(), e, &mut out) {
            assert!(n >= 1);
            assert!(
                !String::from_utf8_lossy(&out).contains(PLANTED_CORE),
                "planted value leaked from the event"
            );
        }
    }

    // Write guard: never panics, refuses what it cannot read.
    for ct in [
        Some("application/json"),
        Some("application/json-patch+json"),
        Some("application/strategic-merge-patch+json"),
        Some("application/apply-patch+yaml"),
        None,
    ] {
        let r = check_body(profile(), Some("Secret"), ct, data);
        if let Err(e) = &r {
            assert!(!e.to_string().contains('\n'));
        }
        let _ = check_body(profile(), None, ct, data);
    }

    // Text: the input's two halves are the values; the stream replaces like the one-shot.
    let values: Vec<&[u8]> = vec![&data[..at], &data[at..], b"secret-value"];
    if let Ok(r) = Replacer::new(&values) {
        let r = Arc::new(r);
        let mut text = data.to_vec();
        text.extend_from_slice(b" secret-value ");
        text.extend_from_slice(data);
        let mut once = Vec::new();
        let n1 = r.replace_all(&text, &mut once);
        let mut s = TextStream::new(Arc::clone(&r));
        let mut streamed = Vec::new();
        let cut = at.min(text.len());
        let n2 = s.feed(&text[..cut], &mut streamed)
            + s.feed(&text[cut..], &mut streamed)
            + s.finish(&mut streamed);
        assert_eq!((n1, &once), (n2, &streamed));
        assert!(n1 >= 1);
        assert!(!once.windows(12).any(|w| w == b"secret-value"));
    }
});
