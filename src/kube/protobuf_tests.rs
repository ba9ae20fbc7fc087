//! Tests of the protobuf decoder against bodies captured from real kubectl 1.32 and 1.33
//! (testdata/protobuf/), the JSON kubectl 1.31 sent for the same commands, and hostile input.

use super::*;
use serde_json::json;
use std::path::PathBuf;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/protobuf")
}

/// (name, bytes) of every captured vector of one kubectl minor version, sorted by name.
fn vectors(minor: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(testdata().join(minor))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_str().unwrap().to_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn vector(minor: &str, name: &str) -> Value {
    decode(&std::fs::read(testdata().join(minor).join(format!("{name}.pb"))).unwrap()).unwrap()
}

const MINORS: [&str; 2] = ["32", "33"];

/// Replace the parts kubectl randomises per run (debug names, approval times) by placeholders.
fn normalize(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with("debugger-") || s.starts_with("node-debugger-n1-") => {
            *s = "<random>".into()
        }
        Value::Object(m) => {
            if m.contains_key("lastUpdateTime") {
                m.insert("lastUpdateTime".into(), json!("<now>"));
            }
            m.values_mut().for_each(normalize);
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

#[test]
fn every_vector_of_every_version_decodes() {
    for minor in MINORS {
        let vs = vectors(minor);
        assert!(vs.len() >= 40, "{minor}: only {} vectors", vs.len());
        for (name, body) in vs {
            let v = decode(&body).unwrap_or_else(|e| panic!("{minor}/{name}: {e}"));
            assert!(
                v["kind"].is_string() && v["apiVersion"].is_string(),
                "{minor}/{name}"
            );
        }
    }
}

/// The decoded object is byte for byte the JSON that kubectl 1.31 sent for the same command
/// (Go's encoding/json of the same typed object), apart from fields newer than 1.31.
#[test]
fn vectors_equal_kubectl_1_31_json() {
    // Fields 1.31's Go types do not have, so its JSON lacks them: (minor, vector, JSON pointer).
    let newer: &[(&str, &str, &str)] = &[
        (
            "32",
            "debug_copy_sink",
            "/spec/securityContext/seLinuxChangePolicy",
        ),
        ("32", "debug_copy_sink", "/spec/resources"),
        (
            "33",
            "debug_copy_sink",
            "/spec/securityContext/seLinuxChangePolicy",
        ),
        ("33", "debug_copy_sink", "/spec/resources"),
        (
            "33",
            "debug_copy_sink",
            "/spec/containers/0/lifecycle/stopSignal",
        ),
    ];
    let (mut compared, mut total) = (0, 0);
    for minor in MINORS {
        total += vectors(minor).len();
        for (name, body) in vectors(minor) {
            if (minor, name.as_str()) == ("33", "autoscale") {
                continue; // 1.33 creates autoscaling/v2, 1.31 autoscaling/v1: checked below.
            }
            let raw = std::fs::read_to_string(testdata().join("31").join(format!("{name}.json")))
                .unwrap();
            let mut want: Value = serde_json::from_str(&raw).unwrap();
            let mut got = decode(&body).unwrap();
            for (_, _, ptr) in newer
                .iter()
                .filter(|(m, n, _)| (*m, *n) == (minor, name.as_str()))
            {
                let (parent, key) = ptr.rsplit_once('/').unwrap();
                assert!(
                    got.pointer_mut(parent)
                        .unwrap()
                        .as_object_mut()
                        .unwrap()
                        .shift_remove(key)
                        .is_some(),
                    "{minor}/{name} {ptr}"
                );
            }
            normalize(&mut got);
            normalize(&mut want);
            assert_eq!(got, want, "{minor}/{name}");
            // Same key order too: kind, apiVersion, then Go struct order, maps sorted.
            assert_eq!(
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(&want).unwrap(),
                "{minor}/{name}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, total - 1);
}

#[test]
fn configmap_and_secrets() {
    for minor in MINORS {
        let cm = vector(minor, "configmap");
        assert_eq!(
            cm,
            json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c1", "creationTimestamp": null}, "data": {"a": "b", "c": "d"}})
        );
        let cm = vector(minor, "configmap_fromfile");
        assert_eq!(cm["data"], json!({"file.txt": "line1\nline2\n"}));
        assert_eq!(
            cm["binaryData"],
            json!({"bin": "AP/+gGJpbg=="}),
            "non-UTF-8 file goes to binaryData"
        );
        assert_eq!(
            vector(minor, "configmap_envfile")["data"],
            json!({"X": "1", "Y": "two"})
        );

        let s = vector(minor, "secret_generic");
        assert_eq!(s["data"], json!({"password": "aHVudGVyMg=="}));
        assert!(
            s.get("type").is_none(),
            "type is omitempty and kubectl leaves it empty"
        );
        assert_eq!(vector(minor, "secret_binary")["type"], "Opaque");
        assert_eq!(
            vector(minor, "secret_binary")["data"]["bin"],
            "AP/+gGJpbg=="
        );
        let d = vector(minor, "secret_docker");
        assert_eq!(d["type"], "kubernetes.io/dockerconfigjson");
        let cfg = base64::engine::general_purpose::STANDARD
            .decode(d["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        let cfg: Value = serde_json::from_slice(&cfg).unwrap();
        assert_eq!(cfg["auths"]["x"]["username"], "u");
        assert_eq!(cfg["auths"]["x"]["password"], "p");
    }
}

#[test]
fn namespace_serviceaccount_deployment() {
    for minor in MINORS {
        assert_eq!(
            vector(minor, "namespace"),
            json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "ns1", "creationTimestamp": null}, "spec": {}, "status": {}})
        );
        assert_eq!(
            vector(minor, "serviceaccount"),
            json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "sa1", "creationTimestamp": null}})
        );
        let d = vector(minor, "deployment");
        assert_eq!(d["apiVersion"], "apps/v1");
        assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(
            d["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}])
        );
        assert_eq!(d["spec"]["strategy"], json!({}));
        assert_eq!(d["status"], json!({}));
        let images: Vec<_> = vector(minor, "deployment_multi")["spec"]["template"]["spec"]
            ["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["image"].clone())
            .collect();
        assert_eq!(images, [json!("nginx"), json!("redis")]);
    }
}

#[test]
fn pods_from_kubectl_debug() {
    for minor in MINORS {
        let p = vector(minor, "debug_copy_rich");
        assert_eq!(p["metadata"]["annotations"], json!({"note": "hello"}));
        assert!(
            p["metadata"].get("labels").is_none(),
            "kubectl debug --copy-to drops labels"
        );
        let spec = &p["spec"];
        let c = &spec["containers"][0];
        assert_eq!(c["command"], json!(["sh", "-c"]));
        assert_eq!(c["args"], json!(["sleep 1"]));
        assert_eq!(c["env"][0], json!({"name": "A", "value": "1"}));
        assert_eq!(
            c["env"][1]["valueFrom"],
            json!({"secretKeyRef": {"name": "s1", "key": "password"}})
        );
        assert_eq!(
            c["env"][2]["valueFrom"]["configMapKeyRef"]["optional"],
            true
        );
        assert_eq!(
            c["env"][3]["valueFrom"],
            json!({"fieldRef": {"fieldPath": "metadata.name"}})
        );
        assert_eq!(
            c["env"][4]["valueFrom"]["resourceFieldRef"],
            json!({"resource": "limits.cpu", "divisor": "1m"})
        );
        assert_eq!(
            c["envFrom"],
            json!([{"configMapRef": {"name": "c1"}}, {"prefix": "S_", "secretRef": {"name": "s1"}}])
        );
        assert_eq!(
            c["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}})
        );
        assert_eq!(
            c["securityContext"],
            json!({"capabilities": {"add": ["NET_ADMIN", "SYS_TIME"], "drop": ["ALL"]}, "privileged": true, "runAsUser": 0, "readOnlyRootFilesystem": false, "allowPrivilegeEscalation": true})
        );
        assert_eq!(
            c["livenessProbe"]["httpGet"],
            json!({"path": "/healthz", "port": 8080})
        );
        assert_eq!(
            c["ports"],
            json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
        );
        assert_eq!(c["stdin"], true);
        assert_eq!(
            spec["volumes"][2]["emptyDir"],
            json!({"medium": "Memory", "sizeLimit": "64Mi"})
        );
        assert_eq!(
            spec["volumes"][4]["projected"]["sources"][0]["serviceAccountToken"],
            json!({"audience": "aud", "expirationSeconds": 3600, "path": "token"})
        );
        assert_eq!(
            spec["tolerations"],
            json!([{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule", "tolerationSeconds": 30}])
        );
        assert_eq!(
            spec["securityContext"],
            json!({"runAsUser": 1000, "runAsNonRoot": true, "fsGroup": 2000})
        );
        assert_eq!(
            (
                spec["hostNetwork"].clone(),
                spec["hostPID"].clone(),
                spec["serviceAccountName"].clone()
            ),
            (json!(true), json!(true), json!("sa1"))
        );
        assert_eq!(spec["initContainers"][0]["command"], json!(["true"]));

        let n = vector(minor, "debug_node");
        assert_eq!(n["spec"]["nodeName"], "n1");
        assert_eq!(
            n["spec"]["volumes"],
            json!([{"name": "host-root", "hostPath": {"path": "/"}}])
        );
        assert_eq!(
            (n["spec"]["hostPID"].clone(), n["spec"]["hostIPC"].clone()),
            (json!(true), json!(true))
        );
        assert_eq!(n["spec"]["tolerations"], json!([{"operator": "Exists"}]));

        let s = vector(minor, "debug_copy_sink")["spec"].clone();
        assert_eq!(s["securityContext"]["supplementalGroups"], json!([1, 2]));
        assert_eq!(s["tolerations"][0]["tolerationSeconds"], -5);
        assert_eq!(
            s["nodeSelector"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["a", "b"],
            "map keys sorted as Go does"
        );
        assert_eq!(
            s["containers"][0]["livenessProbe"]["tcpSocket"]["port"],
            "http"
        );
        assert_eq!(
            s["containers"][0]["readinessProbe"]["grpc"],
            json!({"port": 9090, "service": "svc"})
        );
        assert_eq!(
            s["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
            json!(["a", "b"])
        );
    }
}

#[test]
fn reviews_tokens_and_delete_options() {
    for minor in MINORS {
        let r = vector(minor, "can_i");
        assert_eq!(
            r["spec"],
            json!({"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}})
        );
        assert_eq!(r["status"], json!({"allowed": false}));
        assert_eq!(
            vector(minor, "can_i_sub")["spec"]["resourceAttributes"],
            json!({"namespace": "kube-system", "verb": "get", "resource": "pods", "subresource": "log"})
        );
        assert_eq!(
            vector(minor, "can_i_nonresource")["spec"],
            json!({"nonResourceAttributes": {"path": "/healthz", "verb": "get"}})
        );
        assert_eq!(
            vector(minor, "can_i_list")["spec"],
            json!({"namespace": "default"})
        );
        assert_eq!(
            vector(minor, "token")["spec"],
            json!({"audiences": null, "expirationSeconds": null, "boundObjectRef": null})
        );
        let t = vector(minor, "token_bound");
        assert_eq!(
            t["spec"],
            json!({"audiences": ["a", "b"], "expirationSeconds": 3600, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p1", "uid": "11111111-2222-3333-4444-555555555555"}})
        );
        assert_eq!(
            vector(minor, "debug_replace_delete"),
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
        );
        assert_eq!(
            vector(minor, "drain_noevict_delete"),
            json!({"kind": "DeleteOptions", "apiVersion": "v1"})
        );
        let csr = vector(minor, "csr_approve_rich");
        assert_eq!(
            csr["spec"]["extra"],
            json!({"empty": [], "scopes": ["a", "b"]})
        );
        assert_eq!(csr["status"]["certificate"], "AAEC/w==");
        assert_eq!(
            csr["status"]["conditions"][0]["lastTransitionTime"],
            "2024-05-06T07:08:10Z"
        );
        assert_eq!(
            vector(minor, "role")["rules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
        );
    }
    let hpa = vector("33", "autoscale");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(
        hpa["spec"],
        json!({"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "maxReplicas": 3})
    );
}

// ---- hostile input ----

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn ld(field: u32, b: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(field) << 3 | 2);
    out.extend(varint(b.len() as u64));
    out.extend_from_slice(b);
    out
}

fn vi(field: u32, v: u64) -> Vec<u8> {
    let mut out = varint(u64::from(field) << 3);
    out.extend(varint(v));
    out
}

fn body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(ld(
        1,
        &[ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat(),
    ));
    out.extend(ld(2, raw));
    out
}

fn cm(raw: &[u8]) -> Result<Value, ProtobufError> {
    decode(&body("v1", "ConfigMap", raw))
}

#[test]
fn hand_built_configmap() {
    let meta = ld(
        1,
        &[
            ld(1, b"c"),
            ld(3, b"ns"),
            ld(11, &[ld(1, b"k"), ld(2, b"v")].concat()),
        ]
        .concat(),
    );
    let v = cm(&[meta, ld(2, &[ld(1, b"a"), ld(2, b"b")].concat()), vi(4, 1)].concat()).unwrap();
    assert_eq!(
        v,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c", "namespace": "ns", "creationTimestamp": null, "labels": {"k": "v"}}, "immutable": true, "data": {"a": "b"}})
    );
    // An empty raw is the object with every field at its zero value.
    assert_eq!(
        cm(&[]).unwrap(),
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"creationTimestamp": null}})
    );
}

#[test]
fn envelope_errors() {
    assert_eq!(decode(b""), Err(E::MissingMagic));
    assert_eq!(decode(br#"{"kind":"ConfigMap"}"#), Err(E::MissingMagic));
    assert_eq!(decode(b"k8s"), Err(E::MissingMagic));
    assert_eq!(
        decode(&vec![0; MAX_BODY + 1]),
        Err(E::TooLarge { len: MAX_BODY + 1 })
    );
    assert_eq!(
        decode(&body("v1", "Node", &[])),
        Err(E::UnknownKind {
            api_version: "v1".into(),
            kind: "Node".into()
        })
    );
    assert_eq!(
        decode(&body("apps/v1", "ConfigMap", &[])),
        Err(E::UnknownKind {
            api_version: "apps/v1".into(),
            kind: "ConfigMap".into()
        })
    );
    assert_eq!(
        decode(MAGIC),
        Err(E::UnknownKind {
            api_version: String::new(),
            kind: String::new()
        })
    );
    let mut b = body("v1", "ConfigMap", &[]);
    b.extend(ld(3, b"gzip"));
    assert!(matches!(decode(&b), Err(E::UnsupportedEncoding { .. })));
    let mut b = body("v1", "ConfigMap", &[]);
    b.extend(ld(4, b"application/json"));
    assert!(matches!(decode(&b), Err(E::UnsupportedEncoding { .. })));
    let mut b = body("v1", "ConfigMap", &[]);
    b.extend(ld(4, CONTENT_TYPE.as_bytes()));
    assert!(decode(&b).is_ok());
    let mut b = body("v1", "ConfigMap", &[]);
    b.extend(ld(2, &[]));
    assert_eq!(
        decode(&b),
        Err(E::DuplicateField {
            message: "runtime.Unknown",
            field: 2
        })
    );
    let mut b = body("v1", "ConfigMap", &[]);
    b.extend(ld(5, &[]));
    assert_eq!(
        decode(&b),
        Err(E::UnknownField {
            message: "runtime.Unknown",
            field: 5
        })
    );
    // DeleteOptions decode under any apiVersion, with it kept.
    assert_eq!(
        decode(&body("apps/v1", "DeleteOptions", &vi(1, 30))).unwrap(),
        json!({"kind": "DeleteOptions", "apiVersion": "apps/v1", "gracePeriodSeconds": 30})
    );
}

#[test]
fn wire_errors() {
    // Overlong varints: 11 bytes, and a 10th byte above 1.
    assert_eq!(cm(&[0xff; 11]), Err(E::BadVarint));
    assert_eq!(
        cm(&[0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
        Err(E::BadVarint)
    );
    assert_eq!(
        cm(&[0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        Err(E::InvalidValue {
            message: "core.ConfigMap",
            field: 4,
            reason: "bool not 0 or 1"
        })
    );
    // Lengths beyond the buffer, up to 2^60 and 2^64-1.
    assert_eq!(cm(&[0x12, 0x05, 0x0a]), Err(E::Truncated));
    let mut huge = varint(2 << 3 | 2);
    huge.extend(varint(1 << 60));
    assert_eq!(cm(&huge), Err(E::Truncated));
    let mut huge = varint(2 << 3 | 2);
    huge.extend(varint(u64::MAX));
    assert_eq!(cm(&huge), Err(E::Truncated));
    assert_eq!(cm(&[0x20]), Err(E::Truncated));
    // Wrong wire types: a message as varint, a bool as bytes, fixed64/32, groups.
    assert_eq!(
        cm(&vi(1, 1)),
        Err(E::BadWireType {
            message: "core.ConfigMap",
            field: 1,
            wire_type: 0
        })
    );
    assert_eq!(
        cm(&ld(4, &[1])),
        Err(E::BadWireType {
            message: "core.ConfigMap",
            field: 4,
            wire_type: 2
        })
    );
    for wt in [1u8, 3, 4, 5, 6, 7] {
        assert_eq!(
            cm(&[(1 << 3) | wt, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(E::BadWireType {
                message: "core.ConfigMap",
                field: 1,
                wire_type: wt
            }),
            "{wt}"
        );
    }
    // Unknown fields: in the object, deep inside, in a map entry, field 0.
    assert_eq!(
        cm(&ld(99, b"x")),
        Err(E::UnknownField {
            message: "core.ConfigMap",
            field: 99
        })
    );
    assert_eq!(
        cm(&ld(1, &ld(16, b"x"))),
        Err(E::UnknownField {
            message: "meta.ObjectMeta",
            field: 16
        })
    );
    assert_eq!(
        cm(&ld(2, &[ld(1, b"a"), ld(3, b"b")].concat())),
        Err(E::UnknownField {
            message: "<map entry>",
            field: 3
        })
    );
    assert_eq!(
        cm(&[0x02, 0x00]),
        Err(E::UnknownField {
            message: "core.ConfigMap",
            field: 0
        })
    );
    // Duplicates: a scalar, a message, a map key, a map entry's key.
    assert_eq!(
        cm(&ld(1, &[ld(1, b"a"), ld(1, b"b")].concat())),
        Err(E::DuplicateField {
            message: "meta.ObjectMeta",
            field: 1
        })
    );
    assert_eq!(
        cm(&[ld(1, &[]), ld(1, &[])].concat()),
        Err(E::DuplicateField {
            message: "core.ConfigMap",
            field: 1
        })
    );
    assert_eq!(
        cm(&[
            ld(2, &[ld(1, b"a"), ld(2, b"1")].concat()),
            ld(2, &[ld(1, b"a"), ld(2, b"2")].concat())
        ]
        .concat()),
        Err(E::DuplicateField {
            message: "<map>",
            field: 2
        })
    );
    assert_eq!(
        cm(&ld(2, &[ld(1, b"a"), ld(1, b"b")].concat())),
        Err(E::DuplicateField {
            message: "<map entry>",
            field: 1
        })
    );
    // Invalid UTF-8 in a value and in a map key.
    assert_eq!(
        cm(&ld(1, &ld(1, &[0xff, 0xfe]))),
        Err(E::InvalidUtf8 {
            message: "meta.ObjectMeta",
            field: 1
        })
    );
    assert_eq!(
        cm(&ld(2, &ld(1, &[0xc0]))),
        Err(E::InvalidUtf8 {
            message: "core.ConfigMap",
            field: 2
        })
    );
    // Integers out of range for int32; booleans other than 0 and 1.
    let dep = |raw: &[u8]| decode(&body("apps/v1", "Deployment", raw));
    assert_eq!(
        dep(&ld(2, &vi(1, 1 << 31))),
        Err(E::InvalidValue {
            message: "apps.DeploymentSpec",
            field: 1,
            reason: "int32 out of range"
        })
    );
    assert_eq!(
        dep(&ld(2, &vi(1, u64::MAX))).unwrap()["spec"]["replicas"],
        json!(-1),
        "sign-extended -1 is a valid int32"
    );
    assert_eq!(
        cm(&vi(4, 2)),
        Err(E::InvalidValue {
            message: "core.ConfigMap",
            field: 4,
            reason: "bool not 0 or 1"
        })
    );
    // Missing map values take the Go decoder's zero: "" for strings and bytes.
    assert_eq!(cm(&ld(2, &ld(1, b"a"))).unwrap()["data"], json!({"a": ""}));
    assert_eq!(
        cm(&ld(3, &ld(1, b"a"))).unwrap()["binaryData"],
        json!({"a": ""})
    );
}

#[test]
fn special_types() {
    let pod = |spec: &[u8]| decode(&body("v1", "Pod", &ld(2, spec)));
    let container = |c: &[u8]| pod(&ld(2, &[ld(1, b"c"), c.to_vec()].concat()));
    // Quantity: valid forms pass through, malformed ones are refused.
    for q in [
        "1", "500m", "1.5", ".5", "5.", "-1", "+2Gi", "64Mi", "1e3", "1E-3", "2Ei", "100k",
    ] {
        let res = ld(
            8,
            &ld(1, &[ld(1, b"cpu"), ld(2, &ld(1, q.as_bytes()))].concat()),
        );
        assert_eq!(
            container(&res).unwrap()["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            q,
            "{q}"
        );
    }
    for q in [
        "", "m", "1x", "1.2.3", "1Kii", "1e", "--1", "1 ", "1ki", "e3",
    ] {
        let res = ld(
            8,
            &ld(1, &[ld(1, b"cpu"), ld(2, &ld(1, q.as_bytes()))].concat()),
        );
        assert!(
            matches!(
                container(&res),
                Err(E::InvalidValue {
                    reason: "malformed quantity",
                    ..
                })
            ),
            "{q:?}"
        );
    }
    // An empty Quantity message is Go's zero Quantity, "0".
    let res = ld(8, &ld(1, &[ld(1, b"cpu"), ld(2, &[])].concat()));
    assert_eq!(
        container(&res).unwrap()["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "0"
    );
    // IntOrString: int, string, bad type; an absent non-pointer one is 0.
    let probe = |port: &[u8]| container(&ld(10, &ld(1, &ld(2, &ld(2, port)))));
    assert_eq!(
        probe(&[vi(1, 0), vi(2, 8080), ld(3, b"")].concat()).unwrap()["spec"]["containers"][0]
            ["livenessProbe"]["httpGet"]["port"],
        8080
    );
    assert_eq!(
        probe(&[vi(1, 1), vi(2, 0), ld(3, b"http")].concat()).unwrap()["spec"]["containers"][0]
            ["livenessProbe"]["httpGet"]["port"],
        "http"
    );
    assert_eq!(
        probe(&[]).unwrap()["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"],
        0
    );
    assert!(matches!(probe(&vi(1, 2)), Err(E::InvalidValue { .. })));
    assert_eq!(
        container(&ld(10, &ld(1, &ld(2, &[])))).unwrap()["spec"]["containers"][0]["livenessProbe"]
            ["httpGet"]["port"],
        0
    );
    // Packed repeated int64 (supplementalGroups) is accepted like the unpacked form.
    let packed = pod(&ld(14, &ld(4, &[varint(1), varint(300)].concat()))).unwrap();
    let unpacked = pod(&ld(14, &[vi(4, 1), vi(4, 300)].concat())).unwrap();
    assert_eq!(
        packed["spec"]["securityContext"]["supplementalGroups"],
        json!([1, 300])
    );
    assert_eq!(packed, unpacked);
    // Time: creationTimestamp (non-pointer) and deletionTimestamp (pointer).
    let time = |secs: u64, nanos: u64| cm(&ld(1, &ld(8, &[vi(1, secs), vi(2, nanos)].concat())));
    assert_eq!(
        time(0, 0).unwrap()["metadata"]["creationTimestamp"],
        "1970-01-01T00:00:00Z"
    );
    assert_eq!(
        time(1_700_000_000, 999_999_999).unwrap()["metadata"]["creationTimestamp"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(
        time(951_782_400, 0).unwrap()["metadata"]["creationTimestamp"],
        "2000-02-29T00:00:00Z"
    );
    assert_eq!(
        time(-1i64 as u64, 0).unwrap()["metadata"]["creationTimestamp"],
        "1969-12-31T23:59:59Z"
    );
    assert_eq!(
        time(253_402_300_799, 0).unwrap()["metadata"]["creationTimestamp"],
        "9999-12-31T23:59:59Z"
    );
    assert_eq!(
        time(GO_ZERO_TIME as u64, 0).unwrap()["metadata"]["creationTimestamp"],
        Value::Null
    );
    assert_eq!(
        time(GO_ZERO_TIME as u64 + 86_400 * 59, 0).unwrap()["metadata"]["creationTimestamp"],
        "0001-03-01T00:00:00Z"
    );
    assert!(matches!(
        time(253_402_300_800, 0),
        Err(E::InvalidValue { .. })
    ));
    assert!(matches!(
        time(GO_ZERO_TIME as u64 - 1, 0),
        Err(E::InvalidValue { .. })
    ));
    assert!(matches!(
        time(0, 1_000_000_000),
        Err(E::InvalidValue { .. })
    ));
    assert!(matches!(time(0, -1i64 as u64), Err(E::InvalidValue { .. })));
    let deleted = cm(&ld(1, &ld(9, &[]))).unwrap();
    assert_eq!(
        deleted["metadata"],
        json!({"creationTimestamp": null, "deletionTimestamp": null})
    );
    // managedFields: fieldsV1 must hold JSON, and is embedded as JSON.
    let mf = |raw: &[u8]| {
        cm(&ld(
            1,
            &ld(
                17,
                &[ld(1, b"kubectl"), ld(2, b"Update"), ld(7, &ld(1, raw))].concat(),
            ),
        ))
    };
    assert_eq!(
        mf(br#"{"f:data":{}}"#).unwrap()["metadata"]["managedFields"][0],
        json!({"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:data": {}}})
    );
    assert!(matches!(mf(b"{"), Err(E::InvalidValue { .. })));
}

#[test]
fn depth_is_bounded() {
    // No decodable kind has a recursive schema, so build one to reach the limit.
    static NODE: Message = Message {
        name: "test.Node",
        fields: &[f(1, "child", M(&NODE), PTR)],
    };
    let mut b = Vec::new();
    for _ in 0..40 {
        b = ld(1, &b);
    }
    let left = Cell::new(MAX_VALUES);
    let cx = Cx {
        depth: 1,
        left: &left,
    };
    assert_eq!(decode_message(&NODE, &b, cx), Err(E::TooDeep));
    let mut b = Vec::new();
    for _ in 0..(MAX_DEPTH - 2) {
        b = ld(1, &b);
    }
    assert!(decode_message(&NODE, &b, cx).is_ok());
    // A nesting bomb through the real schema: ConfigMap.metadata(1).name(1) holds it as a string.
    // Built back to front, then reversed, to stay linear.
    let mut rev: Vec<u8> = Vec::new();
    for _ in 0..100_000 {
        let len = varint(rev.len() as u64);
        rev.extend(len.iter().rev());
        rev.push(0x0a);
    }
    rev.reverse();
    let bomb = rev;
    assert!(bomb.len() < MAX_BODY / 2);
    let _ = decode(&body("v1", "ConfigMap", &bomb));
    let _ = decode(&body("apps/v1", "Deployment", &bomb));
    let _ = decode(&body("v1", "Pod", &bomb));
}

#[test]
fn value_budget_bounds_amplification() {
    // 1.4 M empty containers in 2.8 MB would decode to ~7 M values (~700 MB) without the budget.
    let spec: Vec<u8> = [0x12u8, 0x00].repeat(1_400_000);
    assert_eq!(
        decode(&body("v1", "Pod", &ld(2, &spec))),
        Err(E::TooManyValues)
    );
    // A large real object is far below it.
    let data: Vec<u8> = (0..50_000)
        .flat_map(|i| {
            ld(
                2,
                &[ld(1, format!("key{i}").as_bytes()), ld(2, b"value")].concat(),
            )
        })
        .collect();
    assert_eq!(
        cm(&data).unwrap()["data"].as_object().unwrap().len(),
        50_000
    );
}

/// Byte ranges (start, end) of the envelope's fields in a vector, to know where a cut may still
/// be a complete protobuf (protobuf has no end marker: a cut between two top-level fields is a
/// shorter valid message, and HTTP framing, not protobuf, guards against it).
fn top_level_boundaries(b: &[u8]) -> Vec<usize> {
    let mut r = Reader(&b[4..]);
    let mut out = vec![4];
    while let Some((field, wt)) = r.key().unwrap() {
        r.len_delim("test", field, wt).unwrap();
        out.push(b.len() - r.0.len());
    }
    out
}

#[test]
fn every_truncation_of_every_vector_fails_or_is_a_field_boundary() {
    for minor in MINORS {
        for (name, b) in vectors(minor) {
            let boundaries = top_level_boundaries(&b);
            for cut in 0..b.len() {
                match decode(&b[..cut]) {
                    Err(_) => {}
                    Ok(_) => assert!(
                        boundaries.contains(&cut),
                        "{minor}/{name}: cut at {cut} decoded"
                    ),
                }
            }
        }
    }
}

#[test]
fn mutated_vectors_never_panic() {
    // Deterministic xorshift: the same mutations on every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ok, mut err) = (0, 0);
    for minor in MINORS {
        for (_, b) in vectors(minor) {
            for _ in 0..150 {
                let mut m = b.clone();
                for _ in 0..=(next() % 4) {
                    let i = 4 + (next() as usize) % (m.len() - 4);
                    match next() % 5 {
                        0 => m[i] ^= 1 << (next() % 8),
                        1 => m[i] = next() as u8,
                        2 => m.insert(i, next() as u8),
                        3 if m.len() > 5 => {
                            m.remove(i);
                        }
                        _ => m[i] = [0x00, 0x7f, 0x80, 0xff][(next() % 4) as usize],
                    }
                }
                match decode(&m) {
                    Ok(v) => {
                        assert!(v.is_object());
                        ok += 1
                    }
                    Err(e) => {
                        let _ = e.to_string();
                        err += 1
                    }
                }
            }
        }
    }
    assert!(
        err > ok,
        "most mutations must be refused ({ok} ok, {err} err)"
    );
}

// ---- the schema tables themselves ----

fn all_messages() -> Vec<&'static Message> {
    let mut seen: Vec<&'static Message> = Vec::new();
    let mut todo: Vec<&'static Message> = schema::KINDS
        .iter()
        .map(|(_, _, m)| *m)
        .chain([schema::DELETE_OPTIONS])
        .collect();
    while let Some(m) = todo.pop() {
        if seen.iter().any(|s| std::ptr::eq(*s, m)) {
            continue;
        }
        seen.push(m);
        todo.extend(m.fields.iter().filter_map(|f| match f.kind {
            M(inner) => Some(inner),
            _ => None,
        }));
    }
    seen
}

/// Deepest chain of nested messages below `m` (1 for a message without message fields).
fn schema_depth(m: &'static Message) -> usize {
    1 + m
        .fields
        .iter()
        .filter_map(|f| match f.kind {
            M(inner) => Some(schema_depth(inner)),
            Quantity | IntOrString | Time | FieldsV1 | StrList => Some(1),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn schema_tables_are_consistent() {
    // The envelope is depth 1 and the object 2: every real schema path fits within MAX_DEPTH.
    let deepest = schema::KINDS
        .iter()
        .map(|(_, _, m)| schema_depth(m))
        .max()
        .unwrap();
    assert!(deepest < MAX_DEPTH, "{deepest}");
    assert!(deepest > 10, "{deepest}");
    let msgs = all_messages();
    assert!(msgs.len() > 200, "{}", msgs.len());
    for m in &msgs {
        let mut nums: Vec<u32> = m.fields.iter().map(|f| f.num).collect();
        nums.sort_unstable();
        nums.dedup();
        assert_eq!(
            nums.len(),
            m.fields.len(),
            "{}: duplicate field numbers",
            m.name
        );
        assert!(nums.first().is_none_or(|&n| n >= 1), "{}", m.name);
        // JSON names, with inline structs flattened, are unique; an empty message decodes.
        let left = Cell::new(MAX_VALUES);
        let v = decode_message(
            m,
            &[],
            Cx {
                depth: 1,
                left: &left,
            },
        )
        .unwrap();
        let mut names: Vec<&str> = m
            .fields
            .iter()
            .filter(|f| f.flags & INLINE == 0)
            .map(|f| f.json)
            .collect();
        for f in m.fields.iter().filter(|f| f.flags & INLINE != 0) {
            let M(inner) = f.kind else {
                panic!("{}: inline non-message", m.name)
            };
            names.extend(inner.fields.iter().map(|f| f.json));
        }
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(n, names.len(), "{}: duplicate JSON names", m.name);
        assert!(v.keys().all(|k| names.contains(&k.as_str())), "{}", m.name);
        for f in m.fields.iter() {
            assert!(
                f.json.is_empty() == (f.flags & INLINE != 0),
                "{}.{}",
                m.name,
                f.num
            );
            assert!(
                f.flags & REP == 0 || f.flags & MAP == 0,
                "{}.{}",
                m.name,
                f.num
            );
        }
    }
    let kinds = supported_kinds();
    for want in [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("autoscaling/v1", "Scale"),
        ("meta.k8s.io/v1", "DeleteOptions"),
    ] {
        assert!(kinds.contains(&want), "{want:?}");
    }
    assert_eq!(kinds.len(), schema::KINDS.len() + 1);
}

#[test]
fn every_kind_decodes_from_empty_raw_as_go_zero_value() {
    for (av, kind) in supported_kinds() {
        let v = decode(&body(av, kind, &[])).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["apiVersion"].as_str()),
            (Some(*kind), Some(*av))
        );
    }
    assert_eq!(
        decode(&body("v1", "Secret", &[])).unwrap(),
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"creationTimestamp": null}})
    );
    assert_eq!(
        decode(&body(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &[]
        ))
        .unwrap(),
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {"creationTimestamp": null}, "spec": {}, "status": {"allowed": false}})
    );
    assert_eq!(
        decode(&body("autoscaling/v1", "Scale", &[])).unwrap()["status"],
        json!({"replicas": 0})
    );
}
