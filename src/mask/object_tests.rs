//! Structural masking: every kind, the last-applied annotation, hostile JSON. Every test checks
//! that the real values appear in no output byte.

use super::*;
use crate::mask::placeholder::{BASE64, LAST_APPLIED_INVALID, TEXT};
use crate::mask::profile::MaskProfiles;
use serde_json::json;

/// Base64 of `super-secret-value`.
const S64: &str = "c3VwZXItc2VjcmV0LXZhbHVl";
/// Plain secrets planted in the fixtures.
const PLAIN: &[&str] = &[
    "super-secret-value",
    "env-literal-1",
    "cm-password-1",
    "sa-token-1",
    "custom-pw-1",
    "custom-tok-1",
];

pub(crate) fn full() -> MaskProfile {
    let yaml = r#"
t:
  secret_data: true
  env_literals: true
  configmap_keys: ["*password*", "token"]
  serviceaccount_tokens: true
  json_paths:
    - {kind: MyCredential, path: spec.password}
    - {kind: MyCredential, path: "spec.users[].token"}
    - {kind: MyCredential, path: "spec.keys.*"}
  logs: true
"#;
    MaskProfile::clone(MaskProfiles::from_yaml(yaml).unwrap().get("t").unwrap())
}

/// No byte of `out` spells a planted value (raw, or base64 of `super-secret-value`).
pub(crate) fn assert_clean(out: &[u8]) {
    let s = String::from_utf8_lossy(out);
    for p in PLAIN.iter().copied().chain([S64]) {
        assert!(!s.contains(p), "{p:?} leaked in {s}");
    }
}

/// Mask `v` with `p`; checks the output is JSON and clean. Returns it and the count.
fn mask_with(p: &MaskProfile, v: &Value) -> (Value, usize) {
    let bytes = serde_json::to_vec(v).unwrap();
    let (out, n) = mask_body(p, &bytes).unwrap();
    assert_clean(&out);
    let back: Value = serde_json::from_slice(&out).unwrap();
    let mut again = v.clone();
    assert_eq!(
        mask_value(p, &mut again).unwrap(),
        n,
        "mask_value counts the same"
    );
    assert_eq!(again, back, "mask_value gives the same value");
    (back, n)
}

fn mask(v: &Value) -> (Value, usize) {
    mask_with(&full(), v)
}

fn secret(name: &str) -> Value {
    json!({"kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "x"}},
        "data": {"password": S64, "user": "YWRtaW4="}, "stringData": {"token": "super-secret-value"}, "type": "Opaque", "extra": {"kept": [1, "two"]}})
}

#[test]
fn secret_values_become_placeholders_and_everything_else_stays() {
    let (out, n) = mask(&secret("s"));
    assert_eq!(n, 3);
    assert_eq!(out["data"], json!({"password": BASE64, "user": BASE64}));
    assert_eq!(out["stringData"], json!({"token": TEXT}));
    assert_eq!(out["metadata"]["name"], "s");
    assert_eq!(out["type"], "Opaque");
    assert_eq!(out["extra"], json!({"kept": [1, "two"]}));
    let keys: Vec<_> = out.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "kind",
            "apiVersion",
            "metadata",
            "data",
            "stringData",
            "type",
            "extra"
        ],
        "key order kept"
    );
}

#[test]
fn unmasked_bytes_are_copied_exactly() {
    let body = b" {\"kind\" : \"Secret\",\n  \"data\": {\"a\":  \"c3VwZXItc2VjcmV0LXZhbHVl\" }, \"n\": 1.50e1 }\n";
    let (out, n) = mask_body(&full(), body).unwrap();
    assert_eq!(n, 1);
    assert_eq!(out, b" {\"kind\" : \"Secret\",\n  \"data\": {\"a\":  \"aG9vcC1rdWJlOm1hc2tlZA==\" }, \"n\": 1.50e1 }\n");
    let pod = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"x","details":{"causes":[{"message":"super"}]}}"#;
    assert_eq!(
        mask_body(&full(), pod).unwrap(),
        (pod.to_vec(), 0),
        "Status is left alone"
    );
    assert_eq!(mask_body(&full(), b"[1,2]").unwrap().1, 0);
    assert_eq!(mask_body(&full(), b"\"x\"").unwrap().1, 0);
}

#[test]
fn lists_of_every_shape() {
    // SecretList items carry no kind on the wire.
    let mut items = vec![secret("a"), secret("b")];
    for i in &mut items {
        let m = i.as_object_mut().unwrap();
        m.remove("kind");
        m.remove("apiVersion");
    }
    let (out, n) = mask(
        &json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": items}),
    );
    assert_eq!(n, 6);
    assert_eq!(out["items"][1]["data"]["user"], BASE64);
    assert_eq!(out["metadata"]["resourceVersion"], "9");

    // A generic List of mixed kinds, and a DeploymentList whose items have no kind.
    let list = json!({"kind": "List", "apiVersion": "v1", "items": [
        secret("c"),
        {"kind": "ConfigMap", "data": {"db-password": "cm-password-1", "color": "blue"}},
        {"kind": "DeploymentList", "items": [{"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "env-literal-1"}]}]}}}}]},
        {"metadata": {"name": "no-kind"}, "data": {"x": "not-masked"}}
    ]});
    let (out, n) = mask(&list);
    assert_eq!(n, 3 + 1 + 1);
    assert_eq!(
        out["items"][1]["data"],
        json!({"db-password": TEXT, "color": "blue"})
    );
    assert_eq!(
        out["items"][2]["items"][0]["spec"]["template"]["spec"]["containers"][0]["env"][0],
        json!({"name": "A", "value": TEXT})
    );
    assert_eq!(
        out["items"][3]["data"]["x"], "not-masked",
        "a kindless object outside a typed list is not guessed at"
    );

    // deletecollection answers with the deleted items as a list: the same path.
    let (out, _) = mask(&json!({"kind": "SecretList", "items": [{"data": {"k": S64}}]}));
    assert_eq!(out["items"][0]["data"]["k"], BASE64);
}

#[test]
fn a_list_item_claiming_another_kind_is_masked_as_both() {
    let (out, n) = mask(
        &json!({"kind": "SecretList", "items": [{"kind": "ConfigMap", "data": {"a": S64, "password": "cm-password-1"}}]}),
    );
    assert_eq!(n, 2);
    assert_eq!(out["items"][0]["data"]["a"], BASE64);
}

#[test]
fn tables_with_objects_and_metadata() {
    let la = serde_json::to_string(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"}, "stringData": {"p": "super-secret-value"}})).unwrap() + "\n";
    let table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
    "columnDefinitions": [{"name": "Name", "type": "string"}, {"name": "Data", "type": "string"}],
    "rows": [
        {"cells": ["t", 1], "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": "t", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": la, "other": "kept"}}}},
        {"cells": ["s", 2], "object": secret("s")}
    ]});
    let (out, n) = mask(&table);
    assert_eq!(n, 1 + 3);
    assert_eq!(
        out["rows"][0]["cells"],
        json!(["t", 1]),
        "cells hold only type and count"
    );
    assert_eq!(out["rows"][1]["object"]["data"]["password"], BASE64);
    let ann = out["rows"][0]["object"]["metadata"]["annotations"].clone();
    assert_eq!(ann["other"], "kept");
    let s = ann["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert!(s.ends_with("}\n"), "formatting of the manifest kept: {s:?}");
    let manifest: Value = serde_json::from_str(s).unwrap();
    assert_eq!(manifest["stringData"]["p"], TEXT);
    assert_eq!(manifest["metadata"]["name"], "t");

    let (out, n) = mask(
        &json!({"kind": "PartialObjectMetadataList", "items": [{"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": la}}}]}),
    );
    assert_eq!(n, 1);
    assert!(out["items"][0]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap()
        .contains(TEXT));
}

#[test]
fn watch_event_shapes_including_error_and_bookmark() {
    for ty in ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"] {
        let (out, n) = mask(&json!({"type": ty, "object": secret("w")}));
        assert_eq!(n, 3, "{ty}");
        assert_eq!(out["type"], ty);
    }
    let bookmark = json!({"type": "BOOKMARK", "object": {"kind": "Secret", "apiVersion": "v1", "metadata": {"resourceVersion": "310", "annotations": {"k8s.io/initial-events-end": "true"}}}});
    assert_eq!(mask(&bookmark), (bookmark.clone(), 0));
    let error = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "too old resource version: 5 (300)", "reason": "Expired", "code": 410}});
    assert_eq!(mask(&error), (error.clone(), 0));
}

#[test]
fn token_requests() {
    let tr = json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {"audiences": ["a"]}, "status": {"token": "sa-token-1", "expirationTimestamp": "2030-01-01T00:00:00Z"}});
    let (out, n) = mask(&tr);
    assert_eq!(n, 1);
    assert_eq!(
        out["status"],
        json!({"token": TEXT, "expirationTimestamp": "2030-01-01T00:00:00Z"})
    );
}

fn pod_spec() -> Value {
    json!({"containers": [{"name": "a", "image": "nginx", "env": [
            {"name": "A", "value": "env-literal-1"},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "C"}]}],
        "initContainers": [{"name": "i", "env": [{"name": "I", "value": "env-literal-1"}]}],
        "ephemeralContainers": [{"name": "e", "env": [{"name": "E", "value": "env-literal-1"}]}]})
}

#[test]
fn env_literals_in_pods_and_every_template() {
    let template = json!({"metadata": {"labels": {"a": "b"}}, "spec": pod_spec()});
    let cases = [
        ("Pod", json!({"spec": pod_spec()}), vec!["spec"]),
        (
            "PodTemplate",
            json!({"template": template}),
            vec!["template", "spec"],
        ),
        (
            "Deployment",
            json!({"spec": {"replicas": 1, "template": template}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "StatefulSet",
            json!({"spec": {"template": template}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "DaemonSet",
            json!({"spec": {"template": template}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "ReplicaSet",
            json!({"spec": {"template": template}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "ReplicationController",
            json!({"spec": {"template": template}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "Job",
            json!({"spec": {"template": template}}),
            vec!["spec", "template", "spec"],
        ),
        (
            "CronJob",
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
            vec!["spec", "jobTemplate", "spec", "template", "spec"],
        ),
    ];
    for (kind, mut obj, at) in cases {
        obj["kind"] = json!(kind);
        let (out, n) = mask(&obj);
        assert_eq!(n, 3, "{kind}");
        let mut spec = &out;
        for k in at {
            spec = &spec[k];
        }
        let env = &spec["containers"][0]["env"];
        assert_eq!(env[0], json!({"name": "A", "value": TEXT}), "{kind}");
        assert_eq!(
            env[1],
            json!({"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
            "{kind}"
        );
        assert_eq!(env[2], json!({"name": "C"}), "{kind}");
        assert_eq!(spec["containers"][0]["image"], "nginx");
        assert_eq!(spec["initContainers"][0]["env"][0]["value"], TEXT);
        assert_eq!(spec["ephemeralContainers"][0]["env"][0]["value"], TEXT);
    }
}

#[test]
fn configmap_keys_by_glob() {
    let cm = json!({"kind": "ConfigMap", "data": {"db-password": "cm-password-1", "token": "cm-password-1", "tokens": "visible", "color": "blue"},
        "binaryData": {"password.bin": "Y20tcGFzc3dvcmQtMQ==", "logo.png": "iVBOR"}});
    let (out, n) = mask(&cm);
    assert_eq!(n, 3);
    assert_eq!(
        out["data"],
        json!({"db-password": TEXT, "token": TEXT, "tokens": "visible", "color": "blue"})
    );
    assert_eq!(
        out["binaryData"],
        json!({"password.bin": BASE64, "logo.png": "iVBOR"})
    );
    // Without configmap_keys, ConfigMaps pass.
    let p = MaskProfile::builtin();
    let bytes =
        serde_json::to_vec(&json!({"kind": "ConfigMap", "data": {"password": "x"}})).unwrap();
    assert_eq!(mask_body(&p, &bytes).unwrap().1, 0);
}

#[test]
fn custom_json_paths() {
    let c = json!({"kind": "MyCredential", "apiVersion": "example.com/v1",
        "spec": {"password": "custom-pw-1", "user": "bob", "users": [{"name": "a", "token": "custom-tok-1"}, {"name": "b", "token": "custom-tok-1"}],
                 "keys": {"a": "custom-pw-1", "b": {"nested": "custom-pw-1", "n": 5, "z": null}}}});
    let (out, n) = mask(&c);
    assert_eq!(n, 1 + 2 + 3);
    assert_eq!(out["spec"]["user"], "bob");
    assert_eq!(out["spec"]["users"][1], json!({"name": "b", "token": TEXT}));
    assert_eq!(
        out["spec"]["keys"],
        json!({"a": TEXT, "b": {"nested": TEXT, "n": TEXT, "z": null}}),
        "a masked object has every scalar masked, null kept"
    );
    // Another kind with the same fields is not touched.
    let other = json!({"kind": "Other", "spec": {"password": "open"}});
    assert_eq!(mask(&other).1, 0);
}

#[test]
fn last_applied_on_secrets_is_masked_and_stays_valid_json() {
    let manifest = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
        "data": {"password": S64}, "stringData": {"token": "super-secret-value"}, "type": "Opaque"});
    let la = serde_json::to_string(&manifest).unwrap() + "\n";
    let mut s = secret("s");
    s["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration": la});
    let (out, n) = mask(&s);
    assert_eq!(n, 3 + 2);
    let text = out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap();
    let back: Value = serde_json::from_str(text).unwrap();
    let mut want = manifest.clone();
    want["data"]["password"] = json!(BASE64);
    want["stringData"]["token"] = json!(TEXT);
    assert_eq!(back, want);
    assert_eq!(
        text,
        serde_json::to_string(&want).unwrap() + "\n",
        "compact, key order and trailing newline kept"
    );
}

#[test]
fn last_applied_on_any_object_and_without_kind() {
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": pod_spec()}}});
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"password": "cm-password-1"}});
    let kindless = json!({"data": {"k": S64}});
    let with = |kind: &str, m: &Value| json!({"kind": kind, "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": m.to_string()}}});
    assert_eq!(mask(&with("Deployment", &dep)).1, 3);
    assert_eq!(mask(&with("ConfigMap", &cm)).1, 1);
    // A manifest without kind is masked as the object it annotates.
    assert_eq!(mask(&with("Secret", &kindless)).1, 1);
    let (out, n) = mask(
        &json!({"kind": "SecretList", "items": [{"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": kindless.to_string()}}}]}),
    );
    assert_eq!(n, 1);
    assert!(out["items"][0]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap()
        .contains(BASE64));
    // Nothing to mask inside: the annotation is left byte for byte.
    let plain = json!({"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80}]}});
    let (out, n) = mask(&with("Service", &plain));
    assert_eq!(n, 0);
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        plain.to_string()
    );
}

#[test]
fn last_applied_that_is_not_a_json_object_is_replaced() {
    for bad in [
        "{\"kind\":\"Secret\",\"data\":{\"k\":\"c3VwZXItc2VjcmV0LXZhbHVl\"}",
        "super-secret-value",
        "",
        "[\"super-secret-value\"]",
        "\"super-secret-value\"",
        "{\"kind\":\"A\",\"kind\":\"B\"}",
    ] {
        let v = json!({"kind": "Pod", "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": bad}}});
        let (out, n) = mask(&v);
        assert_eq!(n, 1, "{bad:?}");
        assert_eq!(
            out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            LAST_APPLIED_INVALID,
            "{bad:?}"
        );
    }
    // Not a string at all: every value in it is hidden.
    let v = json!({"kind": "Pod", "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": {"data": ["super-secret-value"]}}}});
    assert_eq!(mask(&v).1, 1);
    // Outside metadata.annotations too.
    let v = json!({"kind": "Thing", "spec": {"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Secret\",\"data\":{\"a\":\"c3VwZXItc2VjcmV0LXZhbHVl\"}}"}});
    assert_eq!(mask(&v).1, 1);
}

#[test]
fn last_applied_nested_in_last_applied() {
    let inner = json!({"kind": "Secret", "data": {"k": S64}}).to_string();
    let mid = json!({"kind": "Secret", "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": inner}}, "data": {"k": S64}}).to_string();
    let v = json!({"kind": "Secret", "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": mid}}});
    let (out, n) = mask(&v);
    assert_eq!(n, 2);
    let mid: Value = serde_json::from_str(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let inner: Value = serde_json::from_str(
        mid["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(inner["data"]["k"], BASE64);
    // Nested past the limit: replaced whole.
    let mut s = json!({"kind": "Secret", "data": {"k": S64}}).to_string();
    for _ in 0..8 {
        s = json!({"kind": "Pod", "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": s}}}).to_string();
    }
    let (out, _) = mask_body(&full(), s.as_bytes()).unwrap();
    assert_clean(&out);
    assert!(String::from_utf8(out).unwrap().contains("hoop-kube"));
}

#[test]
fn objects_are_found_wherever_they_are_nested() {
    let cr = json!({"kind": "Wrapper", "spec": {"template": secret("inner"), "list": [{"kind": "Pod", "spec": pod_spec()}]}});
    let (out, n) = mask(&cr);
    assert_eq!(n, 3 + 3);
    assert_eq!(out["spec"]["template"]["data"]["password"], BASE64);
}

#[test]
fn duplicate_keys_cannot_hide_a_value_or_a_kind() {
    // Two `data` members: a client keeps one or the other; both are masked.
    let body = br#"{"kind":"Secret","data":{"a":"c3VwZXItc2VjcmV0LXZhbHVl"},"data":{"b":"c3VwZXItc2VjcmV0LXZhbHVl","b":"c3VwZXItc2VjcmV0LXZhbHVl"}}"#;
    let (out, n) = mask_body(&full(), body).unwrap();
    assert_eq!(n, 3);
    assert_clean(&out);
    // Two `kind`s: refused, whatever their order or spelling.
    for body in [
        &br#"{"kind":"Secret","data":{"a":"c3VwZXItc2VjcmV0LXZhbHVl"},"kind":"ConfigMap"}"#[..],
        br#"{"kind":"ConfigMap","data":{"a":"c3VwZXItc2VjcmV0LXZhbHVl"},"kind":"Secret"}"#,
        br#"{"kind":"ConfigMap","\u006bind":"Secret","data":{"a":"x"}}"#,
        br#"{"items":[{"kind":"Secret","kind":"Secret"}]}"#,
    ] {
        assert!(
            matches!(
                mask_body(&full(), body),
                Err(MaskError::Json(JsonError::DuplicateKind { .. }))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // Escaped member names are what clients read them as.
    let body = br#"{"\u006bind":"Sec\u0072et","d\u0061ta":{"a":"c3VwZXItc2VjcmV0LXZhbHVl"},"stringD\u0061ta":{"b":"super-secret\u002dvalue"}}"#;
    let (out, n) = mask_body(&full(), body).unwrap();
    assert_eq!(n, 2);
    assert_clean(&out);
}

#[test]
fn hostile_bodies_are_errors_not_passed_on() {
    let deep = format!(
        "{{\"kind\":\"Secret\",\"data\":{{\"a\":\"{S64}\"}},\"x\":{}1{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(matches!(
        mask_body(&full(), deep.as_bytes()),
        Err(MaskError::Json(JsonError::TooDeep { .. }))
    ));
    let deep = "[".repeat(1_000_000);
    assert!(mask_body(&full(), deep.as_bytes()).is_err());
    let mut deep_value = json!(1);
    for _ in 0..200 {
        deep_value = json!([deep_value]);
    }
    assert!(mask_value(&full(), &mut json!({"kind": "Secret", "x": deep_value})).is_err());
    let mut bad = br#"{"kind":"Secret","data":{"a":"c3VwZXItc2VjcmV0LXZhbHVl"},"x":"#.to_vec();
    bad.extend_from_slice(b"\"\xff\xfe\"}");
    assert!(matches!(
        mask_body(&full(), &bad),
        Err(MaskError::Json(JsonError::Utf8 { .. }))
    ));
    for trailing in [&b"{} x"[..], b"{}{}", b"{},", b"{\"kind\":\"Secret\"}]"] {
        assert!(
            mask_body(&full(), trailing).is_err(),
            "{}",
            String::from_utf8_lossy(trailing)
        );
    }
    assert!(mask_body(&full(), b"").is_err());
}

#[test]
fn huge_values_are_masked() {
    let huge = "A".repeat(8 << 20);
    let v = json!({"kind": "Secret", "data": {"big": huge, "p": S64}});
    let bytes = serde_json::to_vec(&v).unwrap();
    let (out, n) = mask_body(&full(), &bytes).unwrap();
    assert_eq!(n, 2);
    assert!(out.len() < 200);
    assert_clean(&out);
}

#[test]
fn non_string_values_at_masked_positions() {
    let body = br#"{"kind":"Secret","data":{"a":12345,"b":true,"c":null,"d":{"e":"c3VwZXItc2VjcmV0LXZhbHVl"},"f":["super-secret-value"]}}"#;
    let (out, n) = mask_body(&full(), body).unwrap();
    assert_eq!(n, 4);
    assert_clean(&out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["data"],
        json!({"a": BASE64, "b": BASE64, "c": null, "d": {"e": BASE64}, "f": [BASE64]})
    );
}

#[test]
fn a_narrow_profile_masks_only_its_rules() {
    let p = MaskProfile::clone(
        MaskProfiles::from_yaml("s: {secret_data: true}")
            .unwrap()
            .get("s")
            .unwrap(),
    );
    let pod = json!({"kind": "Pod", "spec": {"containers": [{"env": [{"name": "a", "value": "visible"}]}]}});
    let bytes = serde_json::to_vec(&pod).unwrap();
    assert_eq!(mask_body(&p, &bytes).unwrap(), (bytes.clone(), 0));
    assert_eq!(mask_with(&p, &secret("x")).1, 3);
    // A logs-only profile leaves JSON alone, but still refuses what is not JSON.
    let logs = MaskProfile::clone(
        MaskProfiles::from_yaml("l: {logs: true}")
            .unwrap()
            .get("l")
            .unwrap(),
    );
    let s = serde_json::to_vec(&json!({"kind": "Secret", "data": {"a": "x"}})).unwrap();
    assert_eq!(mask_body(&logs, &s).unwrap().1, 0);
    assert!(mask_body(&logs, b"{").is_err());
}

#[test]
fn errors_never_quote_the_body() {
    let body = br#"{"kind":"Secret","data":{"a":"c3VwZXItc2VjcmV0LXZhbHVl"},"kind":"X"}"#;
    let e = mask_body(&full(), body).unwrap_err().to_string();
    assert_clean(e.as_bytes());
    let e = mask_body(&full(), br#"{"a":"super-secret-value"#)
        .unwrap_err()
        .to_string();
    assert_clean(e.as_bytes());
}

#[test]
fn nested_masked_objects_are_masked_once_each() {
    // Secrets inside Secrets' data, kind last so the innermost are reached first: every value is
    // masked (and counted) once, however deep, so nesting cannot multiply the work.
    const WRAPPERS: usize = 60;
    let ones: Vec<u8> = vec![1; 100_000];
    let mut v = json!({"data": {"v": ones}, "kind": "Secret"});
    for _ in 0..WRAPPERS {
        v = json!({"data": {"x": v}, "kind": "Secret"});
    }
    let bytes = serde_json::to_vec(&v).unwrap();
    let (out, n) = mask_body(&full(), &bytes).unwrap();
    assert_eq!(n, 100_000 + 1 + (WRAPPERS - 1));
    assert_clean(&out);
    let back: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(back["kind"], "Secret");
    assert_eq!(back["data"]["x"]["kind"], BASE64);
}
