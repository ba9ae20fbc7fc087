//! The write guard: placeholder write-back and JSON-patch oracles, escaped pointers.

use super::*;
use crate::mask::object::tests::full;
use crate::mask::placeholder::{BASE64, TEXT};
use serde_json::json;

const JSON: Option<&str> = Some("application/json");
const PATCH: Option<&str> = Some("application/json-patch+json");

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn check(kind: Option<&str>, ct: Option<&str>, v: &Value) -> Result<(), WriteRefused> {
    check_body(&full(), kind, ct, &body(v))
}

fn patch(kind: &str, ops: Value) -> Result<(), WriteRefused> {
    check(Some(kind), PATCH, &ops)
}

#[test]
fn an_edit_that_writes_a_placeholder_back_is_refused() {
    let edited = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": BASE64, "new": "bmV3"}});
    let e = check(Some("Secret"), JSON, &edited).unwrap_err();
    assert_eq!(
        e,
        WriteRefused::Placeholder {
            at: "/data/password".into()
        }
    );
    assert!(!e.to_string().contains('\n'));
    for ct in [
        "application/strategic-merge-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        assert!(
            matches!(
                check(
                    Some("Secret"),
                    Some(ct),
                    &json!({"stringData": {"p": TEXT}})
                ),
                Err(WriteRefused::Placeholder { .. })
            ),
            "{ct}"
        );
    }
    let yaml = b"apiVersion: v1\nkind: Secret\ndata:\n  p: aG9vcC1rdWJlOm1hc2tlZA==\n";
    assert!(matches!(
        check_body(&full(), None, Some("application/yaml"), yaml),
        Err(WriteRefused::Placeholder { .. })
    ));
    // Anywhere: env values, arrays, other kinds, map keys with '/' and '~' in the reported path.
    let pod = json!({"kind": "Pod", "spec": {"containers": [{"env": [{"name": "A", "value": " hoop-kube:masked\n"}]}]}});
    assert_eq!(
        check(None, JSON, &pod),
        Err(WriteRefused::Placeholder {
            at: "/spec/containers/0/env/0/value".into()
        })
    );
    let cm = json!({"kind": "ConfigMap", "data": {"a/b~c": "x", "deep": [[{"k": "prefix hoop-kube:masked suffix"}]]}});
    assert_eq!(
        check(None, JSON, &cm),
        Err(WriteRefused::Placeholder {
            at: "/data/deep/0/0/k".into()
        })
    );
    let cm = json!({"kind": "ConfigMap", "data": {"a/b~c": TEXT}});
    assert_eq!(
        check(None, JSON, &cm),
        Err(WriteRefused::Placeholder {
            at: "/data/a~1b~0c".into()
        })
    );
}

#[test]
fn placeholders_inside_the_last_applied_annotation_are_found() {
    let la = |manifest: &str| json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": manifest}}});
    assert!(check(
        None,
        JSON,
        &la(&json!({"kind": "Secret", "data": {"p": BASE64}}).to_string())
    )
    .is_err());
    // Escaped inside the manifest's own JSON: found by decoding it.
    let escaped = r#"{"kind":"Secret","stringData":{"p":"hoop\u002dkube:masked"}}"#;
    let e = check(None, JSON, &la(escaped)).unwrap_err();
    assert!(
        matches!(&e, WriteRefused::Placeholder { at } if at.contains("last-applied") && at.ends_with("/stringData/p")),
        "{e}"
    );
    // A manifest that is not JSON still cannot carry one.
    assert!(check(None, JSON, &la("not json hoop-kube:masked")).is_err());
    assert_eq!(
        check(
            None,
            JSON,
            &la(&json!({"kind": "Secret", "data": {"p": "cmVhbA=="}}).to_string())
        ),
        Ok(())
    );
}

#[test]
fn ordinary_writes_pass() {
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": {"note": "masked by hoop-kube"}}, "data": {"password": "cmVhbA=="}});
    assert_eq!(check(Some("Secret"), JSON, &s), Ok(()));
    assert_eq!(
        check_body(&full(), Some("Secret"), JSON, b""),
        Ok(()),
        "an empty body (DELETE) passes"
    );
    assert_eq!(
        patch(
            "Secret",
            json!([{"op": "replace", "path": "/data/password", "value": "bmV3"}, {"op": "remove", "path": "/stringData/x"}, {"op": "add", "path": "/data/y", "value": "eQ=="}])
        ),
        Ok(())
    );
    assert_eq!(
        patch(
            "Secret",
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "5"}, {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/b"}])
        ),
        Ok(())
    );
}

#[test]
fn json_patch_oracles_on_masked_paths_are_refused() {
    let refused = |kind: &str, op: Value| {
        matches!(
            patch(kind, json!([op])),
            Err(WriteRefused::ReadsMasked { .. })
        )
    };
    for p in [
        "/data/password",
        "/data",
        "",
        "/",
        "/stringData/token",
        "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
        "/metadata/annotations",
        "/metadata",
    ] {
        assert!(
            refused("Secret", json!({"op": "test", "path": p, "value": "x"})),
            "test {p:?}"
        );
    }
    assert!(refused(
        "Secret",
        json!({"op": "copy", "from": "/data/password", "path": "/metadata/annotations/x"})
    ));
    assert!(refused(
        "Secret",
        json!({"op": "move", "from": "/data/password", "path": "/metadata/labels/x"})
    ));
    assert!(
        refused(
            "Secret",
            json!({"op": "copy", "from": "/metadata/name", "path": "/data/password"})
        ),
        "into masked data too"
    );
    assert!(refused(
        "Pod",
        json!({"op": "test", "path": "/spec/containers/0/env/1/value", "value": "x"})
    ));
    assert!(refused(
        "Pod",
        json!({"op": "test", "path": "/spec/initContainers/3/env/-/value", "value": "x"})
    ));
    assert!(refused(
        "Pod",
        json!({"op": "test", "path": "/spec/containers/0/env", "value": []})
    ));
    assert!(!refused(
        "Pod",
        json!({"op": "test", "path": "/spec/containers/0/env/1/name", "value": "x"})
    ));
    assert!(!refused(
        "Pod",
        json!({"op": "test", "path": "/spec/containers/0/image", "value": "x"})
    ));
    assert!(refused(
        "CronJob",
        json!({"op": "test", "path": "/spec/jobTemplate/spec/template/spec/containers/0/env/0/value", "value": "x"})
    ));
    assert!(refused(
        "ConfigMap",
        json!({"op": "test", "path": "/data/db-password", "value": "x"})
    ));
    assert!(!refused(
        "ConfigMap",
        json!({"op": "test", "path": "/data/color", "value": "x"})
    ));
    assert!(refused(
        "TokenRequest",
        json!({"op": "test", "path": "/status/token", "value": "x"})
    ));
    assert!(refused(
        "MyCredential",
        json!({"op": "test", "path": "/spec/users/0/token", "value": "x"})
    ));
    assert!(!refused(
        "MyCredential",
        json!({"op": "test", "path": "/spec/user", "value": "x"})
    ));
    // Unknown kind: every kind's paths count.
    assert!(matches!(
        check(
            None,
            PATCH,
            &json!([{"op": "test", "path": "/data/color", "value": "x"}])
        ),
        Err(WriteRefused::ReadsMasked { .. })
    ));
    assert_eq!(
        check(
            None,
            PATCH,
            &json!([{"op": "test", "path": "/spec/replicas", "value": 1}])
        ),
        Ok(())
    );
}

#[test]
fn escaped_and_oddly_slashed_pointers_cannot_slip_past() {
    let test = |p: &str| patch("Secret", json!([{"op": "test", "path": p, "value": "x"}]));
    for p in [
        "/data/pass~1word",
        "/data~1x",
        "//data",
        "/data//password",
        "/data/",
        "/stringData/~0",
        "///",
    ] {
        assert!(
            matches!(test(p), Err(WriteRefused::ReadsMasked { .. })),
            "{p:?}"
        );
    }
    // `~0` is `~`: `/d~0ata` is the member `d~ata` in every reading.
    assert_eq!(test("/d~0ata"), Ok(()));
    assert_eq!(
        test("/metadata/annotations/kubectl.kubernetes.io~0last-applied-configuration"),
        Ok(())
    );
    for bad in ["data/password", "/data/~2", "/data/~", "x"] {
        assert!(
            matches!(test(bad), Err(WriteRefused::BadPatch { index: 0, .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn patches_that_cannot_be_checked_are_refused() {
    for (ops, what) in [
        (json!({"op": "test"}), "not an array"),
        (json!([1]), "an op that is not an object"),
        (json!([{"path": "/a"}]), "no op"),
        (json!([{"op": "steal", "path": "/data"}]), "an unknown op"),
        (json!([{"op": "test"}]), "no path"),
        (json!([{"op": "copy", "path": "/a"}]), "no from"),
        (
            json!([{"op": "add", "path": 5, "value": 1}]),
            "a path that is not a string",
        ),
    ] {
        assert!(patch("Secret", ops).is_err(), "{what}");
    }
    assert!(matches!(
        check_body(&full(), None, JSON, b"{\"a\":"),
        Err(WriteRefused::Undecodable(_))
    ));
    assert!(matches!(
        check_body(&full(), None, Some("text/plain"), b"x"),
        Err(WriteRefused::Undecodable(_))
    ));
    let e = patch("Secret", json!([{"op": "steal\nthe data", "path": "/x"}]))
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
}
