//! Fuzzes `kube::protobuf::decode`, the reader of kubectl's `application/vnd.kubernetes.protobuf`
//! request bodies that the relay's policy engine and the simulator both trust.
//!
//! Input: the raw body (`k8s\0` + `runtime.Unknown`). Checked: no panic, no unbounded time or
//! memory; an `Ok` body had the magic and fits `MAX_BODY`, and decodes to a JSON object with
//! string `kind` and `apiVersion` and at most `MAX_VALUES` values; decoding is deterministic.
#![no_main]

use hoop_kube::kube::protobuf::{decode, MAGIC, MAX_BODY, MAX_VALUES};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Object(m) => m.values().map(count).sum(),
        Value::Array(a) => a.iter().map(count).sum(),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let res = decode(data);
    match &res {
        Ok(v) => {
            assert!(data.starts_with(MAGIC) && data.len() <= MAX_BODY);
            let obj = v.as_object().expect("decoded body is a JSON object");
            assert!(obj.get("kind").is_some_and(Value::is_string), "no kind: {v}");
            assert!(obj.get("apiVersion").is_some_and(Value::is_string), "no apiVersion: {v}");
            // Room for kind/apiVersion and the object itself on top of the decoded values.
            assert!(count(v) <= MAX_VALUES + 3, "{} values", count(v));
            let text = serde_json::to_string(v).expect("serialises");
            assert_eq!(&serde_json::from_str::<Value>(&text).expect("reparses"), v);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    assert_eq!(res, decode(data), "decode is not deterministic");
});
