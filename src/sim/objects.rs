//! What the simulated apiserver does to an object on its way into the store.
//!
//! Validation (names, kind/apiVersion, namespace, Secret base64), system fields (uid,
//! creationTimestamp, generation) and the defaulting and status a controller would have filled
//! in (a Pod is scheduled and Running at once, a Deployment is immediately available), so that
//! kubectl's printers and waiters see what they see on a real cluster.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::resources::ResourceDef;
use crate::kube::status::{Status, StatusCause};

/// Now, as the apiserver writes timestamps.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn invalid(kind: &str, name: &str, field: &str, value: &str, msg: &str) -> Status {
    Status::invalid(kind, name, vec![StatusCause { reason: "FieldValueInvalid".into(), message: format!("Invalid value: \"{value}\": {msg}"), field: field.into() }])
}

/// RFC 1123 label (namespaces) or subdomain (everything else), as apimachinery validates names.
pub fn validate_name(kind: &str, name: &str, label_only: bool) -> Result<(), Status> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let ok = if label_only { label_ok(name) } else { name.len() <= 253 && name.split('.').all(label_ok) };
    if ok {
        return Ok(());
    }
    let msg = if label_only {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    };
    Err(invalid(kind, name, "metadata.name", name, msg))
}

fn random_suffix(n: usize) -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..n).map(|_| char::from(ALPHA[rng.random_range(0..ALPHA.len())])).collect()
}

/// Check `kind`/`apiVersion` of a request body against the resource it was sent to. A missing
/// kind is filled in, as the apiserver's decoder defaults it from the URL.
pub fn check_type(def: &ResourceDef, obj: &mut Value) -> Result<(), Status> {
    let Some(map) = obj.as_object_mut() else {
        return Err(Status::bad_request("the request body must be a JSON object"));
    };
    let api_version = def.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => return Err(Status::bad_request(format!("the API version in the data ({v}) does not match the expected API version ({api_version})"))),
    }
    match map.get("kind").and_then(Value::as_str) {
        None => {
            map.insert("kind".into(), json!(def.kind));
        }
        Some(k) if k == def.kind => {}
        Some(k) => return Err(Status::bad_request(format!("the kind in the data ({k}) does not match the expected kind ({})", def.kind))),
    }
    if !map.get("metadata").is_none_or(Value::is_object) {
        return Err(Status::bad_request("metadata must be an object"));
    }
    Ok(())
}

/// Prepare a new object for the store: name (or generateName), namespace, uid, timestamps,
/// generation, then kind-specific defaulting. `namespace` is the one from the URL.
pub fn prepare_create(def: &ResourceDef, obj: &mut Value, namespace: &str) -> Result<(), Status> {
    check_type(def, obj)?;
    let meta = obj["metadata"].as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut meta: Map<String, Value> = meta;
    let name = match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", random_suffix(5)),
            _ => {
                return Err(Status::invalid(def.kind, "", vec![StatusCause { reason: "FieldValueRequired".into(), message: "Required value: name or generateName is required".into(), field: "metadata.name".into() }]))
            }
        },
    };
    validate_name(def.kind, &name, def.plural == "namespaces")?;
    if def.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(Status::bad_request("the namespace of the provided object does not match the namespace sent on the request"))
            }
            _ => {
                meta.insert("namespace".into(), json!(namespace));
            }
        }
    } else {
        meta.remove("namespace");
    }
    meta.insert("name".into(), json!(name));
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("selfLink");
    if def.kind == "Deployment" {
        meta.insert("generation".into(), json!(1));
    }
    if def.kind == "Namespace" {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    obj["metadata"] = Value::Object(meta);
    default_kind(def, obj)
}

/// Carry the system fields of the stored object over to its replacement (PUT, PATCH), check the
/// optimistic-concurrency resourceVersion, bump `generation` when the spec changed.
pub fn prepare_update(def: &ResourceDef, old: &Value, new: &mut Value) -> Result<(), Status> {
    check_type(def, new)?;
    let name = old["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let target = crate::kube::status::Target { group: def.group, resource: def.plural, name: &name };
    match new["metadata"]["name"].as_str() {
        Some(n) if n != name => return Err(Status::bad_request(format!("the name of the object ({n}) does not match the name on the URL ({name})"))),
        _ => {}
    }
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str() {
        if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() {
            return Err(Status::conflict(target));
        }
    }
    if new.get("metadata").is_none() {
        new["metadata"] = json!({});
    }
    for k in ["name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp"] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    if def.kind == "Deployment" && old.get("spec") != new.get("spec") {
        new["metadata"]["generation"] = json!(old["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
    }
    default_kind(def, new)
}

fn default_kind(def: &ResourceDef, obj: &mut Value) -> Result<(), Status> {
    match def.kind {
        "Namespace" => {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "Secret" => default_secret(obj)?,
        "Pod" => default_pod(obj)?,
        "Deployment" => default_deployment(obj)?,
        _ => {}
    }
    Ok(())
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

fn default_secret(obj: &mut Value) -> Result<(), Status> {
    let name = name_of(obj);
    let mut data = match obj.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(Status::bad_request("Secret.data must be an object")),
    };
    for (k, v) in &data {
        let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
        if !ok {
            return Err(Status::bad_request(format!("error decoding Secret {name:?} data key {k:?}: illegal base64 data")));
        }
    }
    if let Some(sd) = obj.get("stringData") {
        let Some(sd) = sd.as_object() else {
            return Err(Status::bad_request("Secret.stringData must be an object"));
        };
        for (k, v) in sd {
            let s = v.as_str().ok_or_else(|| Status::bad_request(format!("Secret.stringData.{k} must be a string")))?;
            data.insert(k.clone(), json!(base64::engine::general_purpose::STANDARD.encode(s)));
        }
    }
    let Some(map) = obj.as_object_mut() else { return Ok(()) };
    map.remove("stringData");
    if !data.is_empty() {
        map.insert("data".into(), Value::Object(data));
    }
    if !map.get("type").is_some_and(Value::is_string) {
        map.insert("type".into(), json!("Opaque"));
    }
    Ok(())
}

fn containers_of(spec: &Value) -> Result<&Vec<Value>, Status> {
    match spec.get("containers").and_then(Value::as_array) {
        Some(c) if !c.is_empty() && c.iter().all(|c| c["name"].as_str().is_some_and(|n| !n.is_empty())) => Ok(c),
        _ => Err(Status::invalid("Pod", "", vec![StatusCause { reason: "FieldValueRequired".into(), message: "Required value: every container needs a name and an image".into(), field: "spec.containers".into() }])),
    }
}

fn default_pod(obj: &mut Value) -> Result<(), Status> {
    let name = name_of(obj);
    let containers = containers_of(&obj["spec"]).map_err(|mut s| {
        s.message = s.message.replacen("Pod \"\"", &format!("Pod \"{name}\""), 1);
        s
    })?;
    let started = obj["status"]["startTime"].as_str().map(str::to_string).unwrap_or_else(now_rfc3339);
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            json!({
                "name": c["name"], "image": c["image"], "imageID": format!("docker.io/library/{}@sha256:0", c["image"].as_str().unwrap_or("")),
                "containerID": format!("containerd://{}", uuid::Uuid::new_v4().simple()),
                "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": started}},
            })
        })
        .collect();
    let spec = &mut obj["spec"];
    if spec["nodeName"].as_str().is_none() {
        spec["nodeName"] = json!("sim-node");
    }
    for (k, v) in [("restartPolicy", json!("Always")), ("dnsPolicy", json!("ClusterFirst")), ("serviceAccountName", json!("default")), ("terminationGracePeriodSeconds", json!(30))] {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    let ip_seed = uuid::Uuid::new_v4().as_bytes()[0];
    let pod_ip = obj["status"]["podIP"].as_str().map(str::to_string).unwrap_or_else(|| format!("10.244.0.{}", 2 + ip_seed % 250));
    obj["status"] = json!({
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "Ready", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
        ],
        "hostIP": "10.0.0.1", "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": started,
        "qosClass": "BestEffort", "containerStatuses": statuses,
    });
    Ok(())
}

fn default_deployment(obj: &mut Value) -> Result<(), Status> {
    let name = name_of(obj);
    if !obj["spec"]["template"]["spec"].is_object() {
        return Err(Status::invalid("Deployment.apps", &name, vec![StatusCause { reason: "FieldValueRequired".into(), message: "Required value".into(), field: "spec.template.spec".into() }]));
    }
    if !obj["spec"]["selector"].is_object() {
        return Err(Status::invalid("Deployment.apps", &name, vec![StatusCause { reason: "FieldValueRequired".into(), message: "Required value".into(), field: "spec.selector".into() }]));
    }
    let spec = &mut obj["spec"];
    if spec.get("replicas").is_none() {
        spec["replicas"] = json!(1);
    }
    for (k, v) in [
        ("revisionHistoryLimit", json!(10)),
        ("progressDeadlineSeconds", json!(600)),
        ("strategy", json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})),
    ] {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    let replicas = spec["replicas"].as_i64().unwrap_or(1);
    let now = now_rfc3339();
    obj["status"] = json!({
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "lastUpdateTime": now, "lastTransitionTime": now, "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
            {"type": "Progressing", "status": "True", "lastUpdateTime": now, "lastTransitionTime": now, "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{name}-sim\" has successfully progressed.")},
        ],
    });
    if replicas == 0 {
        for k in ["readyReplicas", "availableReplicas", "updatedReplicas"] {
            if let Some(m) = obj["status"].as_object_mut() {
                m.remove(k);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::lookup;

    #[test]
    fn names_are_validated_like_apimachinery() {
        assert!(validate_name("Pod", "web-1.a", false).is_ok());
        assert_eq!(validate_name("Pod", "Web", false).unwrap_err().code, 422);
        assert!(validate_name("Namespace", "a.b", true).is_err());
        assert!(validate_name("Pod", "-x", false).is_err());
        assert!(validate_name("Pod", &"a".repeat(254), false).is_err());
    }

    #[test]
    fn secret_string_data_becomes_base64_data() {
        let def = lookup("", "v1", "secrets").unwrap();
        let mut s = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"stringData":{"password":"hunter2"}});
        prepare_create(def, &mut s, "default").unwrap();
        assert_eq!(s["data"]["password"], "aHVudGVyMg==");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
        let mut bad = json!({"metadata":{"name":"s"},"data":{"k":"***"}});
        assert_eq!(prepare_create(def, &mut bad, "default").unwrap_err().code, 400);
    }

    #[test]
    fn kind_and_namespace_mismatches_are_rejected() {
        let def = lookup("", "v1", "configmaps").unwrap();
        assert_eq!(prepare_create(def, &mut json!({"kind":"Secret","metadata":{"name":"x"}}), "d").unwrap_err().code, 400);
        assert_eq!(prepare_create(def, &mut json!({"metadata":{"name":"x","namespace":"other"}}), "d").unwrap_err().code, 400);
        assert_eq!(prepare_create(def, &mut json!([1, 2]), "d").unwrap_err().code, 400);
        let mut ok = json!({"metadata":{"generateName":"cm-"}});
        prepare_create(def, &mut ok, "d").unwrap();
        assert!(ok["metadata"]["name"].as_str().unwrap().starts_with("cm-"));
    }

    #[test]
    fn stale_resource_version_conflicts() {
        let def = lookup("", "v1", "configmaps").unwrap();
        let old = json!({"metadata":{"name":"x","resourceVersion":"5","uid":"u"}});
        let mut new = json!({"metadata":{"name":"x","resourceVersion":"4"}});
        assert_eq!(prepare_update(def, &old, &mut new).unwrap_err().code, 409);
        let mut new = json!({"metadata":{"name":"x"},"data":{"a":"b"}});
        prepare_update(def, &old, &mut new).unwrap();
        assert_eq!(new["metadata"]["uid"], "u");
    }

    #[test]
    fn pods_are_running_and_deployments_available() {
        let mut p = json!({"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}});
        prepare_create(lookup("", "v1", "pods").unwrap(), &mut p, "d").unwrap();
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
        let mut d = json!({"metadata":{"name":"web"},"spec":{"replicas":3,"selector":{"matchLabels":{"a":"b"}},"template":{"spec":{"containers":[{"name":"c","image":"x"}]}}}});
        prepare_create(lookup("apps", "v1", "deployments").unwrap(), &mut d, "d").unwrap();
        assert_eq!(d["status"]["readyReplicas"], 3);
        assert_eq!(d["status"]["observedGeneration"], 1);
    }
}
