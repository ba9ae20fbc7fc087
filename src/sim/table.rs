//! Server-side printing: `meta.k8s.io` Tables, as `kubectl get` asks for them.
//!
//! Columns and cells follow the apiserver's printers for the served kinds (`kubernetes
//! pkg/printers/internalversion/printers.go`); ages are rendered server-side as
//! human-readable durations. `includeObject` decides what each row carries: nothing, the
//! object's metadata (`PartialObjectMetadata`, the default) or the whole object.

use serde_json::{json, Value};

/// `?includeObject=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parse the query value; anything else is a 400 upstream of here.
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(format!("includeObject: Unsupported value: \"{other}\": supported values: \"None\", \"Object\", \"Metadata\"")),
        }
    }
}

fn col(name: &str, ty: &str, format: &str, priority: i32, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn name_col() -> Value {
    col("Name", "string", "name", 0, "Name must be unique within a namespace.")
}

fn age_col() -> Value {
    col("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.")
}

/// The column definitions for a kind.
pub fn columns(kind: &str) -> Vec<Value> {
    match kind {
        "Pod" => vec![
            name_col(),
            col("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
            col("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age_col(),
            col("IP", "string", "", 1, "IP address allocated to the pod."),
            col("Node", "string", "", 1, "Name of the Node this pod is assigned to."),
            col("Nominated Node", "string", "", 1, "Name of the Node this pod is nominated to."),
            col("Readiness Gates", "string", "", 1, "Pod readiness gates."),
        ],
        "Namespace" => vec![name_col(), col("Status", "string", "", 0, "The status of the namespace"), age_col()],
        "Secret" => vec![name_col(), col("Type", "string", "", 0, "The type of the secret"), col("Data", "string", "", 0, "The number of data entries in the secret"), age_col()],
        "ConfigMap" => vec![name_col(), col("Data", "string", "", 0, "The number of data entries in the config map"), age_col()],
        "ServiceAccount" => vec![name_col(), col("Secrets", "string", "", 0, "The number of secrets"), age_col()],
        "Event" => vec![
            col("Last Seen", "string", "", 0, "Time when last event occurred"),
            col("Type", "string", "", 0, "Type of this event"),
            col("Reason", "string", "", 0, "Reason why this event was generated"),
            col("Object", "string", "", 0, "The object that this event is about"),
            col("Message", "string", "", 0, "A human-readable description of the status of this operation"),
        ],
        "Deployment" => vec![
            name_col(),
            col("Ready", "string", "", 0, "Number of the pod with ready state"),
            col("Up-to-date", "string", "", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", "", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            age_col(),
            col("Containers", "string", "", 1, "Names of each container in the template."),
            col("Images", "string", "", 1, "Images referenced by each container in the template."),
            col("Selector", "string", "", 1, "Label selector for pods."),
        ],
        _ => vec![name_col(), col("Created At", "date", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.")],
    }
}

/// A duration the way kubectl prints ages (`5s`, `3m2s`, `4h`, `2d3h`).
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => format!("{}m{}s", s / 60, s % 60),
        600..=10799 => format!("{}m", s / 60),
        10800..=28799 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        28800..=172799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn age_of(ts: &Value) -> String {
    ts.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| human_age((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

fn count(v: &Value) -> i64 {
    v.as_object().map(|m| m.len() as i64).or_else(|| v.as_array().map(|a| a.len() as i64)).unwrap_or(0)
}

fn joined(items: &Value, field: &str) -> String {
    items.as_array().map(|a| a.iter().filter_map(|c| c[field].as_str()).collect::<Vec<_>>().join(",")).unwrap_or_default()
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let age = json!(age_of(&o["metadata"]["creationTimestamp"]));
    match kind {
        "Pod" => {
            let cs = o["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let ready = cs.iter().filter(|c| c["ready"] == true).count();
            let total = o["spec"]["containers"].as_array().map(Vec::len).unwrap_or(0);
            let restarts: i64 = cs.iter().filter_map(|c| c["restartCount"].as_i64()).sum();
            let status = if o["metadata"]["deletionTimestamp"].is_string() { json!("Terminating") } else { o["status"]["phase"].clone() };
            vec![name, json!(format!("{ready}/{total}")), status, json!(restarts.to_string()), age, o["status"]["podIP"].clone(), o["spec"]["nodeName"].clone(), json!("<none>"), json!("<none>")]
        }
        "Namespace" => vec![name, o["status"]["phase"].clone(), age],
        "Secret" => vec![name, o["type"].clone(), json!(count(&o["data"])), age],
        "ConfigMap" => vec![name, json!(count(&o["data"]) + count(&o["binaryData"])), age],
        "ServiceAccount" => vec![name, json!(count(&o["secrets"])), age],
        "Event" => {
            let last = if o["lastTimestamp"].is_string() { &o["lastTimestamp"] } else { &o["metadata"]["creationTimestamp"] };
            let obj = format!("{}/{}", o["involvedObject"]["kind"].as_str().unwrap_or("").to_lowercase(), o["involvedObject"]["name"].as_str().unwrap_or(""));
            vec![json!(age_of(last)), o["type"].clone(), o["reason"].clone(), json!(obj), o["message"].clone()]
        }
        "Deployment" => {
            let st = &o["status"];
            let n = |v: &Value| v.as_i64().unwrap_or(0);
            let tmpl = &o["spec"]["template"]["spec"]["containers"];
            let sel = o["spec"]["selector"]["matchLabels"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")).unwrap_or_default();
            vec![name, json!(format!("{}/{}", n(&st["readyReplicas"]), n(&o["spec"]["replicas"]))), json!(n(&st["updatedReplicas"])), json!(n(&st["availableReplicas"])), age, json!(joined(tmpl, "name")), json!(joined(tmpl, "image")), json!(sel)]
        }
        _ => vec![name, o["metadata"]["creationTimestamp"].clone()],
    }
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(o: &Value, version: &str) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": o["metadata"]})
}

fn row(kind: &str, o: &Value, include: IncludeObject, api_version: &str, table_version: &str) -> Value {
    let mut r = json!({"cells": cells(kind, o)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial_metadata(o, table_version),
        IncludeObject::Object => {
            let mut full = o.clone();
            full["kind"] = json!(kind);
            full["apiVersion"] = json!(api_version);
            r["object"] = full;
        }
    }
    r
}

/// A Table of `objects`.
pub fn table(kind: &str, api_version: &str, objects: &[&Value], include: IncludeObject, table_version: &str, list_meta: Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{table_version}"),
        "metadata": list_meta,
        "columnDefinitions": columns(kind),
        "rows": objects.iter().map(|o| row(kind, o, include, api_version, table_version)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(185), "3m5s");
        assert_eq!(human_age(900), "15m");
        assert_eq!(human_age(4 * 3600 + 60), "4h1m");
        assert_eq!(human_age(3 * 86400), "3d");
    }

    #[test]
    fn secret_rows_count_keys_and_carry_metadata() {
        let s = json!({"metadata":{"name":"s","creationTimestamp":"2026-01-01T00:00:00Z"},"type":"Opaque","data":{"a":"eA==","b":"eQ=="}});
        let t = table("Secret", "v1", &[&s], IncludeObject::Metadata, "v1", json!({"resourceVersion":"7"}));
        assert_eq!(t["rows"][0]["cells"][2], 2);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(t["rows"][0]["object"].get("data").is_none());
        let t = table("Secret", "v1", &[&s], IncludeObject::Object, "v1", json!({}));
        assert_eq!(t["rows"][0]["object"]["kind"], "Secret");
        let t = table("Secret", "v1", &[&s], IncludeObject::None, "v1", json!({}));
        assert!(t["rows"][0].get("object").is_none());
        assert!(IncludeObject::parse(Some("Everything")).is_err());
    }
}
