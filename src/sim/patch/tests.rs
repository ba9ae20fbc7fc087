use super::*;
use serde_json::json;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5",
            "labels": {"app": "web", "tier": "front"}, "finalizers": ["a", "x"],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1",
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "sidecar", "image": "busybox"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        },
        "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"run": "p"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
                 "tolerations": [{"key": "a", "operator": "Exists"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    })
}

fn configmap() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "cm", "namespace": "default", "resourceVersion": "7"},
           "data": {"a": "1", "b": "2"}})
}

fn ok(kind: &str, orig: &Value, patch: &Value, pt: PatchType) -> Value {
    apply(kind, orig, patch.to_string().as_bytes(), pt)
        .unwrap_or_else(|e| panic!("{pt:?} {:.300}: {:.300}", patch.to_string(), e.to_string()))
}

fn smp(kind: &str, orig: &Value, patch: Value) -> Value {
    ok(kind, orig, &patch, PatchType::StrategicMerge)
}

fn fails(kind: &str, orig: &Value, body: &[u8], pt: PatchType) -> PatchError {
    match apply(kind, orig, body, pt) {
        Ok(v) => panic!(
            "{pt:?} {} unexpectedly applied: {v}",
            String::from_utf8_lossy(body)
        ),
        Err(e) => e,
    }
}

fn code(e: &PatchError) -> (u16, &'static str) {
    (e.http_code(), e.reason())
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("?"))
        .collect()
}

#[test]
fn content_types() {
    use PatchType::*;
    for (ct, want) in [
        ("application/json-patch+json", Some(Json)),
        ("application/merge-patch+json", Some(Merge)),
        (
            "application/strategic-merge-patch+json",
            Some(StrategicMerge),
        ),
        ("application/apply-patch+yaml", Some(Apply)),
        ("application/apply-patch+yaml; charset=utf-8", Some(Apply)),
        ("Application/Merge-Patch+JSON;charset=UTF-8", Some(Merge)),
        ("application/apply-patch+cbor", None),
        ("application/json", None),
        ("", None),
    ] {
        assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
    }
    assert_eq!(
        PatchType::from_content_type(Json.content_type()),
        Some(Json)
    );
}

#[test]
fn json_patch_configmap() {
    let p = json!([
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "replace", "path": "/data/a", "value": "10"},
        {"op": "add", "path": "/data/c", "value": "3"},
        {"op": "remove", "path": "/data/b"},
        {"op": "copy", "from": "/data/c", "path": "/data/d"},
        {"op": "move", "from": "/data/d", "path": "/data/e"}
    ]);
    let out = ok("ConfigMap", &configmap(), &p, PatchType::Json);
    assert_eq!(out["data"], json!({"a": "10", "c": "3", "e": "3"}));
    assert_eq!(out["metadata"]["resourceVersion"], "7");
}

#[test]
fn json_patch_pod_and_deployment() {
    let p = json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:2"},
                   {"op": "add", "path": "/metadata/labels/x", "value": "y"}]);
    let out = ok("Pod", &pod(), &p, PatchType::Json);
    assert_eq!(out["spec"]["containers"][0]["image"], "nginx:2");
    assert_eq!(out["metadata"]["labels"]["x"], "y");
    let p = json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]);
    assert_eq!(
        ok("Deployment", &deployment(), &p, PatchType::Json)["spec"]["replicas"],
        5
    );
}

#[test]
fn json_patch_failures() {
    let cm = configmap();
    let e = fails(
        "ConfigMap",
        &cm,
        br#"[{"op":"test","path":"/data/a","value":"nope"}]"#,
        PatchType::Json,
    );
    assert_eq!(code(&e), (422, "Invalid"));
    assert!(e.to_string().contains("/data/a"), "{e}");
    let e = fails(
        "ConfigMap",
        &cm,
        br#"[{"op":"remove","path":"/data/zzz"}]"#,
        PatchType::Json,
    );
    assert_eq!(code(&e), (422, "Invalid"));
    let e = fails(
        "ConfigMap",
        &cm,
        br#"[{"op":"frobnicate","path":"/data"}]"#,
        PatchType::Json,
    );
    assert_eq!(code(&e), (422, "Invalid"));
    for body in [&br#"{"op":"add"}"#[..], br#"[1]"#, br#"[{"op":"add""#, b""] {
        assert_eq!(
            code(&fails("ConfigMap", &cm, body, PatchType::Json)),
            (400, "BadRequest")
        );
    }
    let many = Value::Array(vec![
        json!({"op": "test", "path": "/kind", "value": "ConfigMap"});
        10_001
    ]);
    let e = fails(
        "ConfigMap",
        &cm,
        many.to_string().as_bytes(),
        PatchType::Json,
    );
    assert_eq!(code(&e), (413, "RequestEntityTooLarge"));
    let e = fails(
        "ConfigMap",
        &cm,
        br#"[{"op":"replace","path":"","value":[1]}]"#,
        PatchType::Json,
    );
    assert_eq!(code(&e), (422, "Invalid"));
    let e = fails(
        "ConfigMap",
        &cm,
        br#"[{"op":"replace","path":"/kind","value":"Secret"}]"#,
        PatchType::Json,
    );
    assert_eq!(code(&e), (422, "Invalid"));
    let e = fails(
        "ConfigMap",
        &cm,
        br#"[{"op":"replace","path":"/metadata/name","value":"x"}]"#,
        PatchType::Json,
    );
    assert_eq!(code(&e), (400, "BadRequest"));
    assert_eq!(
        e.to_string(),
        "the name of the object (x) does not match the name on the URL (cm)"
    );
    let e = fails(
        "ConfigMap",
        &cm,
        br#"[{"op":"replace","path":"/metadata/namespace","value":"x"}]"#,
        PatchType::Json,
    );
    assert_eq!(code(&e), (400, "BadRequest"));
    let e = fails(
        "ConfigMap",
        &cm,
        br#"[{"op":"replace","path":"/data","value":["a"]}]"#,
        PatchType::Json,
    );
    assert_eq!(code(&e), (422, "Invalid"));
    // Removing kind, apiVersion or namespace: apiserver fills them back in.
    let p = json!([{"op": "remove", "path": "/kind"}, {"op": "remove", "path": "/apiVersion"},
                   {"op": "remove", "path": "/metadata/namespace"}]);
    assert_eq!(ok("ConfigMap", &cm, &p, PatchType::Json), cm);
}

#[test]
fn json_patch_copy_bomb_is_bounded() {
    let mut ops = vec![json!({"op": "add", "path": "/data/big", "value": "x".repeat(64 * 1024)})];
    for i in 0..100 {
        ops.push(json!({"op": "copy", "from": "/data", "path": format!("/data/c{i}")}));
    }
    let e = fails(
        "ConfigMap",
        &configmap(),
        Value::Array(ops).to_string().as_bytes(),
        PatchType::Json,
    );
    assert_eq!(code(&e), (422, "Invalid"));
    assert!(e.to_string().contains("accumulated size"), "{e}");
}

#[test]
fn merge_patch() {
    let out = ok(
        "ConfigMap",
        &configmap(),
        &json!({"data": {"b": null, "c": "3"}, "metadata": {"labels": {"l": "v"}}}),
        PatchType::Merge,
    );
    assert_eq!(out["data"], json!({"a": "1", "c": "3"}));
    assert_eq!(out["metadata"]["labels"], json!({"l": "v"}));
    // kubectl label --overwrite / label removal on a pod
    let out = ok(
        "Pod",
        &pod(),
        &json!({"metadata": {"labels": {"run": null, "x": "y"}}}),
        PatchType::Merge,
    );
    assert_eq!(out["metadata"]["labels"], json!({"x": "y"}));
    // kubectl scale (without the scale subresource) and lists replaced whole
    let out = ok(
        "Deployment",
        &deployment(),
        &json!({"spec": {"replicas": 0, "template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}}),
        PatchType::Merge,
    );
    assert_eq!(out["spec"]["replicas"], 0);
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["only"]
    );
    let cm = configmap();
    assert_eq!(
        code(&fails("ConfigMap", &cm, b"[1]", PatchType::Merge)),
        (422, "Invalid")
    );
    assert_eq!(
        code(&fails("ConfigMap", &cm, b"null", PatchType::Merge)),
        (400, "BadRequest")
    );
    assert_eq!(
        code(&fails("ConfigMap", &cm, b"5", PatchType::Merge)),
        (400, "BadRequest")
    );
    assert_eq!(
        code(&fails(
            "ConfigMap",
            &cm,
            br#"{"kind":"Secret"}"#,
            PatchType::Merge
        )),
        (422, "Invalid")
    );
    assert_eq!(
        code(&fails(
            "ConfigMap",
            &cm,
            br#"{"metadata":null}"#,
            PatchType::Merge
        )),
        (400, "BadRequest")
    );
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[test]
fn kubectl_apply_image_change() {
    let patch = json!({"metadata": {"annotations": {LAST_APPLIED: "{\"apiVersion\":\"apps/v1\"}\n"}},
        "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}],
                                       "containers": [{"image": "nginx:2", "name": "web"}]}}}});
    let out = smp("Deployment", &deployment(), patch);
    let cs = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(cs), ["web", "sidecar"]);
    assert_eq!(cs[0]["image"], "nginx:2");
    assert_eq!(
        cs[0]["env"],
        deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(
        out["metadata"]["annotations"][LAST_APPLIED],
        "{\"apiVersion\":\"apps/v1\"}\n"
    );
    let mut want = deployment();
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    want["metadata"]["annotations"][LAST_APPLIED] = json!("{\"apiVersion\":\"apps/v1\"}\n");
    assert_eq!(out, want);
}

#[test]
fn kubectl_apply_env_order_and_delete() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                        "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                        "name": "web"}]}}}});
    let out = smp("Deployment", &deployment(), patch);
    let web = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        web["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert!(web.get("$setElementOrder/env").is_none());
}

#[test]
fn kubectl_apply_null_and_retain_keys() {
    let out = smp(
        "Deployment",
        &deployment(),
        json!({"metadata": {"labels": {"tier": null}},
        "spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let out = smp(
        "Deployment",
        &deployment(),
        json!({"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}, "emptyDir": null, "name": "data"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cm"}}])
    );
    let out = smp("ConfigMap", &configmap(), json!({"data": {"b": null}}));
    assert_eq!(out["data"], json!({"a": "1"}));
}

#[test]
fn primitive_merge_lists() {
    let d = deployment();
    let out = smp(
        "Deployment",
        &d,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "$setElementOrder/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a"]));
    // New items of a merged list go before the live ones, as apimachinery orders them.
    let out = smp(
        "Deployment",
        &d,
        json!({"metadata": {"finalizers": ["b", "a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "a", "x"]));
    let out = smp(
        "Deployment",
        &d,
        json!({"metadata": {"$setElementOrder/finalizers": ["a", "b", "x"], "finalizers": ["b"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "x"]));
}

#[test]
fn keyed_list_order_and_directives() {
    let d = deployment();
    let add =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "new", "image": "x"}]}}}});
    assert_eq!(
        names(&smp("Deployment", &d, add)["spec"]["template"]["spec"]["containers"]),
        ["new", "web", "sidecar"]
    );
    let add = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}, {"name": "new"}, {"name": "sidecar"}],
        "containers": [{"name": "new", "image": "x"}]}}}});
    assert_eq!(
        names(&smp("Deployment", &d, add)["spec"]["template"]["spec"]["containers"]),
        ["web", "new", "sidecar"]
    );
    let del = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
    assert_eq!(
        names(&smp("Deployment", &d, del)["spec"]["template"]["spec"]["containers"]),
        ["web"]
    );
    let rep = json!({"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}}}});
    let out = smp("Deployment", &d, rep);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );
    let out = smp(
        "Deployment",
        &d,
        json!({"metadata": {"labels": {"$patch": "replace", "x": "1"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"x": "1"}));
    let out = smp(
        "Deployment",
        &d,
        json!({"spec": {"template": {"metadata": {"$patch": "delete"}}}}),
    );
    assert_eq!(out["spec"]["template"]["metadata"], json!({}));
    let ports = json!({"spec": {"template": {"spec": {"containers": [{"name": "web",
        "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
        "ports": [{"containerPort": 443, "protocol": "TCP"}]}]}}}});
    let out = smp("Deployment", &d, ports);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}])
    );
    let cond = json!({"status": {"conditions": [{"type": "Available", "status": "False"}]}});
    let out = smp("Deployment", &d, cond);
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}])
    );
}

#[test]
fn pod_and_service_account() {
    // kubectl set image
    let out = smp(
        "Pod",
        &pod(),
        json!({"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"],
        pod()["spec"]["containers"][0]["volumeMounts"]
    );
    assert_eq!(out["spec"]["containers"][0]["image"], "nginx:2");
    // tolerations have no merge key: replaced whole
    let out = smp(
        "Pod",
        &pod(),
        json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
    );
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
    let out = smp(
        "Pod",
        &pod(),
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}}),
    );
    assert_eq!(
        names(&json!(out["status"]["conditions"].as_array().map(|c| c
            .iter()
            .map(|x| json!({"name": x["type"]}))
            .collect::<Vec<_>>()))),
        ["Ready", "Initialized"]
    );
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "s", "namespace": "default"},
                    "secrets": [{"name": "t1"}]});
    let out = smp("ServiceAccount", &sa, json!({"secrets": [{"name": "t2"}]}));
    assert_eq!(names(&out["secrets"]), ["t2", "t1"]);
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "s"}, "secrets": []});
    let e = fails(
        "ServiceAccount",
        &sa,
        br#"{"secrets":[[{"name":"x"}]]}"#,
        PatchType::StrategicMerge,
    );
    assert_eq!(
        (code(&e), e.to_string().as_str()),
        ((422, "Invalid"), "lists of lists are not supported")
    );
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}});
    let out = smp(
        "Namespace",
        &ns,
        json!({"metadata": {"labels": {"a": "b"}, "namespace": "bogus"}}),
    );
    assert_eq!(out["metadata"], json!({"name": "n", "labels": {"a": "b"}}));
}

#[test]
fn strategic_identity_and_metadata_rules() {
    let cm = configmap();
    let out = smp(
        "ConfigMap",
        &cm,
        json!({"kind": "Secret", "apiVersion": "v9"}),
    );
    assert_eq!(out, cm);
    assert_eq!(smp("ConfigMap", &cm, Value::Null), cm);
    assert_eq!(
        smp("ConfigMap", &cm, json!({"metadata": {"namespace": null}})),
        cm
    );
    let e = fails(
        "ConfigMap",
        &cm,
        br#"{"$patch":"delete"}"#,
        PatchType::StrategicMerge,
    );
    assert_eq!(code(&e), (400, "BadRequest"));
    let e = fails(
        "ConfigMap",
        &cm,
        br#"{"metadata":{"namespace":"other"}}"#,
        PatchType::StrategicMerge,
    );
    assert_eq!(code(&e), (400, "BadRequest"));
    // Duplicate keys: the last one wins, as in Go's non-strict decoding.
    let out = apply(
        "ConfigMap",
        &cm,
        br#"{"data":{"a":"x","a":"y"}}"#,
        PatchType::StrategicMerge,
    )
    .expect("applies");
    assert_eq!(out["data"]["a"], "y");
}

#[test]
fn strategic_hostile_inputs() {
    let d = deployment();
    let cases: &[(&str, (u16, &str))] = &[
        (r#"[]"#, (400, "BadRequest")),
        (r#""x""#, (400, "BadRequest")),
        (r#"{"a":NaN}"#, (400, "BadRequest")),
        (r#"{"spec":{"replicas":1e999}}"#, (400, "BadRequest")),
        (r#"{"metadata":{"$patch":"bogus"}}"#, (500, "")),
        (r#"{"metadata":{"$patch":"merge"}}"#, (500, "")),
        (r#"{"metadata":{"labels":{"$patch":7}}}"#, (500, "")),
        (
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","$patch":"bogus"}]}}}}"#,
            (500, ""),
        ),
        (
            r#"{"spec":{"template":{"spec":{"containers":[{"$patch":"merge"}]}}}}"#,
            (500, ""),
        ),
        (
            r#"{"spec":{"template":{"spec":{"containers":[{"$patch":"delete"}]}}}}"#,
            (500, ""),
        ),
        (
            r#"{"spec":{"template":{"spec":{"containers":[{"image":"nokey"}]}}}}"#,
            (500, ""),
        ),
        (
            r#"{"spec":{"template":{"spec":{"containers":["web"]}}}}"#,
            (500, ""),
        ),
        (
            r#"{"spec":{"template":{"spec":{"containers":[[1]]}}}}"#,
            (500, ""),
        ),
        (
            r#"{"spec":{"template":{"spec":{"containers":{"name":"web"}}}}}"#,
            (422, "Invalid"),
        ),
        (
            r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":"web"}}}}"#,
            (500, ""),
        ),
        (
            r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"image":"x"}]}}}}"#,
            (500, ""),
        ),
        (
            r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"sidecar"}],"containers":[{"name":"web"},{"name":"sidecar"}]}}}}"#,
            (500, ""),
        ),
        (
            r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],"containers":{"name":"web"}}}}}"#,
            (500, ""),
        ),
        (r#"{"spec":{"$setElementOrderX":[]}}"#, (400, "BadRequest")),
        (
            r#"{"spec":{"strategy":{"$retainKeys":"type"}}}"#,
            (400, "BadRequest"),
        ),
        (
            r#"{"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}"#,
            (400, "BadRequest"),
        ),
        (
            r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":"x"}}"#,
            (400, "BadRequest"),
        ),
        (
            r#"{"metadata":{"$deleteFromPrimitiveList":["x"]}}"#,
            (400, "BadRequest"),
        ),
        (r#"{"metadata":{"finalizers":[{"a":1}]}}"#, (500, "")),
        (r#"{"metadata":"x"}"#, (422, "Invalid")),
        (r#"{"spec":{"replicas":{"a":1}}}"#, (422, "Invalid")),
        (r#"{"metadata":{"name":"other"}}"#, (400, "BadRequest")),
    ];
    for (body, want) in cases {
        let e = fails("Deployment", &d, body.as_bytes(), PatchType::StrategicMerge);
        assert_eq!(code(&e), *want, "{body}: {e}");
    }
    // Unknown `$` keys are dropped, like unknown fields in a non-strict decode.
    assert_eq!(smp("Deployment", &d, json!({"spec": {"$frob": 1}})), d);
}

#[test]
fn size_and_depth_limits() {
    let cm = configmap();
    let mut deep = String::from("1");
    for _ in 0..MAX_DEPTH {
        deep = format!("{{\"a\":{deep}}}");
    }
    for pt in [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ] {
        let e = fails(
            "ConfigMap",
            &cm,
            format!("{{\"data\":{deep}}}").as_bytes(),
            pt,
        );
        assert_eq!(code(&e), (400, "BadRequest"), "{pt:?}");
        assert!(matches!(e, PatchError::TooDeep), "{pt:?}: {e:?}");
        let very = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            fails("ConfigMap", &cm, very.as_bytes(), pt),
            PatchError::TooDeep
        ));
        let big = format!("{{\"data\":{{\"a\":\"{}\"}}}}", "x".repeat(MAX_PATCH_BYTES));
        let e = fails("ConfigMap", &cm, big.as_bytes(), pt);
        assert_eq!(code(&e), (413, "RequestEntityTooLarge"));
        assert_eq!(e.to_string(), "Request entity too large: limit is 3145728");
    }
    let fits = format!(
        "{{\"data\":{{\"a\":\"{}\"}}}}",
        "x".repeat(MAX_PATCH_BYTES - 20)
    );
    assert!(apply("ConfigMap", &cm, fits.as_bytes(), PatchType::Merge).is_ok());
}

fn apply_body(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

#[test]
fn server_side_apply() {
    let d = deployment();
    let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web", "new": "1"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:3",
                 "env": [{"name": "B", "value": "20"}]}]}}}});
    let out = apply("Deployment", &d, &apply_body(cfg), PatchType::Apply).expect("applies");
    let cs = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(out["metadata"]["namespace"], "default");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "tier": "front", "new": "1"})
    );
    assert_eq!(names(cs), ["web", "sidecar"]);
    assert_eq!(cs[0]["image"], "nginx:3");
    // Live items keep their relative order when the applied list names them too.
    assert_eq!(
        cs[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"}])
    );
    let cases: &[(Value, (u16, &str), &str)] = &[
        (json!({"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "web"}}), (400, "BadRequest"),
         "invalid object type: apps/v1beta1, Kind=Deployment"),
        (json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"}}), (400, "BadRequest"),
         "invalid object type: apps/v1, Kind=StatefulSet"),
        (json!({"kind": "Deployment", "metadata": {"name": "web"}}), (400, "BadRequest"), "invalid object type: /, Kind=Deployment"),
        (json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "managedFields": []}}), (400, "BadRequest"),
         "metadata.managedFields must be nil"),
        (json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"$patch": "replace"}}), (500, ""),
         "failed to create typed patch object: .spec.$patch: field not declared in schema"),
        (json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "other"}}), (400, "BadRequest"),
         "the name of the object (other) does not match the name on the URL (web)"),
        (json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": []}}), (500, ""),
         "failed to create typed patch object: .spec.replicas changed between object, list and scalar"),
    ];
    for (cfg, want, msg) in cases {
        let e = fails("Deployment", &d, &apply_body(cfg.clone()), PatchType::Apply);
        assert_eq!((code(&e), e.to_string().as_str()), (*want, *msg), "{cfg}");
    }
    let e = fails(
        "Deployment",
        &d,
        b"apiVersion: apps/v1\nkind: Deployment\n",
        PatchType::Apply,
    );
    assert!(matches!(e, PatchError::ApplyNotJson), "{e:?}");
    assert_eq!(code(&e), (400, "BadRequest"));
    assert_eq!(
        code(&fails(
            "Deployment",
            &d,
            b"{\"apiVersion\":",
            PatchType::Apply
        )),
        (400, "BadRequest")
    );
    assert_eq!(
        code(&fails("Deployment", &d, b"[1]", PatchType::Apply)),
        (400, "BadRequest")
    );
}

#[test]
fn server_side_apply_create() {
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": null}, "data": {"a": "1"}});
    let out = apply_create("ConfigMap", &apply_body(cfg)).expect("creates");
    assert_eq!(
        out,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}})
    );
    let out = apply_create(
        "Widget",
        br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}}"#,
    )
    .expect("creates");
    assert_eq!(out["kind"], "Widget");
    for body in [
        &br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"cm"}}"#[..],
        br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"cm"}}"#,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","managedFields":[{}]}}"#,
        br#"[]"#,
        b"kind: ConfigMap",
    ] {
        let e = apply_create("ConfigMap", body).expect_err("refused");
        assert_eq!(
            code(&e),
            (400, "BadRequest"),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let e = apply_create(
        "Pod",
        br#"{"apiVersion":"v1","kind":"Pod","spec":{"$retainKeys":[]}}"#,
    )
    .expect_err("refused");
    assert_eq!(code(&e), (500, ""));
}

/// Deterministic xorshift, so the fuzz loop below is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn random_leaf(rng: &mut Rng) -> Value {
    let pool = [
        json!(null),
        json!([]),
        json!({}),
        json!("x"),
        json!(1),
        json!(-1.5),
        json!(true),
        json!([[1]]),
        json!({"$patch": "delete"}),
        json!({"$patch": "replace"}),
        json!({"$patch": "bogus"}),
        json!({"$patch": "merge"}),
        json!([{"name": "web"}]),
        json!([{"name": "web", "$patch": "delete"}]),
        json!(["a", 1]),
        json!({"$retainKeys": ["type"]}),
        json!({"$retainKeys": "x"}),
        json!({"$setElementOrder/containers": [{"name": "web"}]}),
        json!({"$setElementOrder/env": [{"name": "A"}, {"name": "Z"}]}),
        json!({"$deleteFromPrimitiveList/finalizers": ["a"]}),
        json!([{"containerPort": 80}, {"containerPort": "80"}]),
        json!({"name": "web"}),
        json!({"kind": "Secret"}),
    ];
    pool[rng.below(pool.len())].clone()
}

fn mutate(v: &mut Value, rng: &mut Rng, depth: usize) {
    let here = rng.below(4) == 0 || depth > 8;
    match v {
        Value::Object(m) if !m.is_empty() && !here => {
            let i = rng.below(m.len());
            if let Some((_, child)) = m.iter_mut().nth(i) {
                mutate(child, rng, depth + 1);
            }
        }
        Value::Array(a) if !a.is_empty() && !here => {
            let i = rng.below(a.len());
            mutate(&mut a[i], rng, depth + 1);
        }
        Value::Object(m) if rng.below(2) == 0 => {
            let keys = [
                "$patch",
                "$retainKeys",
                "$setElementOrder/containers",
                "$setElementOrder/finalizers",
                "$deleteFromPrimitiveList/finalizers",
                "containers",
                "env",
                "name",
                "metadata",
                "finalizers",
            ];
            m.insert(keys[rng.below(keys.len())].into(), random_leaf(rng));
        }
        _ => *v = random_leaf(rng),
    }
}

#[test]
fn mutated_patches_never_panic() {
    let seeds = [
        json!({"metadata": {"annotations": {LAST_APPLIED: "{}"}}, "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}], "containers": [{"image": "nginx:2", "name": "web"}]}}}}),
        json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
            "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}], "name": "web"}]}}}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "$setElementOrder/finalizers": ["a"]},
               "spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 81}]}]}}}}),
        json!([{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "Z"}},
               {"op": "copy", "from": "/spec", "path": "/status/x"}, {"op": "test", "path": "/kind", "value": "Deployment"}]),
        json!({"spec": {"containers": [{"name": "web", "volumeMounts": [{"mountPath": "/e", "name": "e"}]}]}}),
    ];
    let objects = [
        ("Deployment", deployment()),
        ("Pod", pod()),
        ("ConfigMap", configmap()),
    ];
    let types = [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut applied, mut refused) = (0, 0);
    for round in 0..4000 {
        let mut p = seeds[round % seeds.len()].clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut p, &mut rng, 0);
        }
        let mut body = p.to_string().into_bytes();
        if rng.below(5) == 0 && !body.is_empty() {
            let i = rng.below(body.len());
            body[i] = b"{}[]\",:0n$/ "[rng.below(12)];
        }
        let (kind, obj) = &objects[rng.below(objects.len())];
        for pt in types {
            match apply(kind, obj, &body, pt) {
                Ok(v) => {
                    applied += 1;
                    assert!(v.is_object());
                    assert_eq!(v["kind"], obj["kind"]);
                }
                Err(e) => {
                    refused += 1;
                    assert!(matches!(e.http_code(), 400 | 413 | 422 | 500), "{e:?}");
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        let _ = apply_create(kind, &body);
    }
    assert!(
        applied > 1000 && refused > 1000,
        "applied {applied}, refused {refused}"
    );
}

#[test]
fn status_codes_and_reasons() {
    let cases = [
        (
            PatchError::TooLarge("x".into()),
            413,
            "RequestEntityTooLarge",
        ),
        (PatchError::TooDeep, 400, "BadRequest"),
        (PatchError::InvalidJson("x".into()), 400, "BadRequest"),
        (PatchError::NotAnObject, 400, "BadRequest"),
        (PatchError::ApplyNotJson, 400, "BadRequest"),
        (PatchError::JsonPatch("x".into()), 422, "Invalid"),
        (PatchError::InvalidDirective("x".into()), 400, "BadRequest"),
        (PatchError::MergeFailed("x".into()), 500, ""),
        (PatchError::Invalid("x".into()), 422, "Invalid"),
        (PatchError::BadRequest("x".into()), 400, "BadRequest"),
    ];
    for (e, c, r) in cases {
        assert_eq!(code(&e), (c, r), "{e:?}");
    }
}

#[test]
fn secret_and_event_patches() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
                        "type": "Opaque", "data": {"k": "dg=="}});
    let out = smp(
        "Secret",
        &secret,
        json!({"stringData": {"a": "b"}, "data": {"k": null, "n": "eA=="}}),
    );
    assert_eq!(out["data"], json!({"n": "eA=="}));
    assert_eq!(out["stringData"], json!({"a": "b"}));
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
                       "count": 1, "involvedObject": {"kind": "Pod", "name": "p"}});
    let out = ok("Event", &event, &json!({"count": 2}), PatchType::Merge);
    assert_eq!(out["count"], 2);
}

#[test]
fn large_lists_stay_linear() {
    // 50k-element keyed lists with an order directive: quadratic handling would take minutes.
    let n = 50_000;
    let env: Vec<Value> = (0..n)
        .rev()
        .map(|i| json!({"name": format!("E{i}"), "value": "v"}))
        .collect();
    let order: Vec<Value> = (0..n)
        .rev()
        .map(|i| json!({"name": format!("E{i}")}))
        .collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": env, "$setElementOrder/env": order}]}}}});
    let started = std::time::Instant::now();
    let out = smp("Deployment", &deployment(), patch);
    let merged = out["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(merged, n + 2);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"],
        format!("E{}", n - 1)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn scale_subresource_patches() {
    // crud.rs patches the autoscaling/v1 Scale view of a Deployment with kind "Scale".
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2}, "status": {"replicas": 2, "selector": "app=web"}});
    let out = ok(
        "Scale",
        &scale,
        &json!({"spec": {"replicas": 5}}),
        PatchType::Merge,
    );
    assert_eq!(out["spec"]["replicas"], 5);
    let out = smp("Scale", &scale, json!({"spec": {"replicas": 0}}));
    assert_eq!(out["spec"]["replicas"], 0);
    let cfg = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 4}});
    let out = ok("Scale", &scale, &cfg, PatchType::Apply);
    assert_eq!(out["spec"]["replicas"], 4);
    assert_eq!(out["metadata"]["namespace"], "default");
}
