//! Fuzzes the simulator's PATCH engine (`sim::patch`): the input is a PATCH body applied with
//! every `PatchType` to a fixed Pod, and given to `apply_create` as a server-side apply body.
//!
//! Checked: no panic (no stack overflow on deep bodies); every error maps to one of the HTTP
//! codes apiserver uses; an applied Pod is still a JSON object of kind `Pod`, `v1`, named `p`
//! in `default`; strategic-merge and apply results hold no `$` directive keys and no `null`
//! members; a created object is a `v1` `Pod` with no `metadata.managedFields`.
#![no_main]

use std::sync::OnceLock;

use hoop_kube::sim::patch::{apply, apply_create, PatchError, PatchType};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fn pod() -> &'static Value {
    static POD: OnceLock<Value> = OnceLock::new();
    POD.get_or_init(|| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u1", "resourceVersion": "5",
                "labels": {"run": "p"}, "finalizers": ["a", "b"],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1",
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}],
                     "volumeMounts": [{"name": "d", "mountPath": "/d"}]},
                    {"name": "sidecar", "image": "busybox", "args": ["sleep", "1d"]}
                ],
                "volumes": [{"name": "d", "emptyDir": {}}],
                "tolerations": [{"key": "a", "operator": "Exists"}]
            },
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "False"}]}
        })
    })
}

fn check_err(e: &PatchError) {
    let code = e.http_code();
    assert!(matches!(code, 400 | 413 | 422 | 500), "unexpected code {code} for {e}");
    let _ = (e.reason(), e.to_string());
}

/// Path of the first `$…` key or `null` member, if any.
fn leftover(v: &Value, path: &mut String) -> Option<String> {
    match v {
        Value::Object(m) => m.iter().find_map(|(k, c)| {
            if k.starts_with('$') || c.is_null() {
                return Some(format!("{path}.{k}"));
            }
            let n = path.len();
            path.push('.');
            path.push_str(k);
            let r = leftover(c, path);
            path.truncate(n);
            r
        }),
        Value::Array(a) => a.iter().enumerate().find_map(|(i, c)| {
            let n = path.len();
            path.push_str(&format!("[{i}]"));
            let r = leftover(c, path);
            path.truncate(n);
            r
        }),
        _ => None,
    }
}

fn check_pod(out: &Value, pt: PatchType, body: &[u8]) {
    let body = String::from_utf8_lossy(body);
    assert!(out.is_object(), "{pt:?} {body:?}: result is not an object");
    assert_eq!(out["kind"], "Pod", "{pt:?} {body:?}: kind changed");
    assert_eq!(out["apiVersion"], "v1", "{pt:?} {body:?}: apiVersion changed");
    assert_eq!(out["metadata"]["name"], "p", "{pt:?} {body:?}: name changed");
    assert_eq!(out["metadata"]["namespace"], "default", "{pt:?} {body:?}: namespace changed");
    if matches!(pt, PatchType::StrategicMerge | PatchType::Apply) {
        if let Some(at) = leftover(out, &mut String::new()) {
            panic!("{pt:?} {body:?}: directive or null left in the object at {at}: {out}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let orig = pod();
    for pt in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge, PatchType::Apply] {
        match apply("Pod", orig, data, pt) {
            Ok(out) => check_pod(&out, pt, data),
            Err(e) => check_err(&e),
        }
    }
    match apply_create("Pod", data) {
        Ok(out) => {
            assert_eq!(out["kind"], "Pod");
            assert_eq!(out["apiVersion"], "v1");
            assert!(out["metadata"].get("managedFields").is_none_or(Value::is_null));
            if let Some(at) = leftover(&out, &mut String::new()) {
                panic!("apply_create: directive or null left at {at}: {out}");
            }
        }
        Err(e) => check_err(&e),
    }
    if let Ok(ct) = std::str::from_utf8(data) {
        if let Some(pt) = PatchType::from_content_type(ct) {
            assert!(pt.content_type().eq_ignore_ascii_case(ct.split(';').next().unwrap_or_default().trim()));
        }
    }
});
