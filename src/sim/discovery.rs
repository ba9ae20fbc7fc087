//! Discovery, version and OpenAPI: what kubectl reads before it does anything.
//!
//! Both discovery formats are served from the resource catalog: aggregated (`apidiscovery.k8s.io`
//! v2/v2beta1, chosen by `Accept`, answered with the exact Content-Type parameters) and legacy
//! (`/api`, `/api/v1`, `/apis`, `/apis/G`, `/apis/G/V`), because typed clients such as
//! `kubectl auth can-i` still fetch `/api/v1`. The OpenAPI v3 documents carry just enough —
//! each kind's PATCH operation with its `fieldValidation` parameter — for `kubectl apply` to
//! validate server-side.

use serde_json::{json, Value};

use super::resources::{groups, ResourceDef, SubresourceDef, RESOURCES};
use crate::kube::media::{negotiate_discovery, Representation};

fn response_kind(r: &ResourceDef, s: Option<&SubresourceDef>) -> Value {
    let (group, version, kind) = match s {
        Some(SubresourceDef { kind_gv: Some((g, v)), kind, .. }) => (*g, *v, *kind),
        Some(s) => (r.group, r.version, s.kind),
        None => (r.group, r.version, r.kind),
    };
    json!({"group": group, "version": version, "kind": kind})
}

fn aggregated_resource(r: &ResourceDef) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": response_kind(r, None),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        v["subresources"] =
            r.subresources.iter().map(|s| json!({"subresource": s.name, "responseKind": response_kind(r, Some(s)), "verbs": s.verbs})).collect();
    }
    v
}

fn aggregated_group(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).map(aggregated_resource).collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({"metadata": metadata, "versions": [{"version": version, "resources": resources, "freshness": "Current"}]})
}

fn aggregated_list(items: Vec<Value>, version: &str) -> Value {
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items})
}

/// `GET /api`: `(content type, body)`.
pub fn api(accept: Option<&str>, server_address: &str) -> (String, Value) {
    match negotiate_discovery(accept) {
        rep @ Representation::AggregatedDiscovery(v) => (rep.content_type(), aggregated_list(vec![aggregated_group("", "v1")], v)),
        _ => (
            "application/json".into(),
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}),
        ),
    }
}

fn api_group(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`.
pub fn apis(accept: Option<&str>) -> (String, Value) {
    match negotiate_discovery(accept) {
        rep @ Representation::AggregatedDiscovery(v) => {
            (rep.content_type(), aggregated_list(groups().into_iter().map(|(g, ver)| aggregated_group(g, ver)).collect(), v))
        }
        _ => (
            "application/json".into(),
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups().into_iter().map(|(g, v)| api_group(g, v)).collect::<Vec<_>>()}),
        ),
    }
}

/// `GET /apis/G`.
pub fn group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut out = api_group(g, v);
    out["kind"] = json!("APIGroup");
    out["apiVersion"] = json!("v1");
    Some(out)
}

/// `GET /api/v1` or `GET /apis/G/V`: the legacy `APIResourceList`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in defs {
        let mut e = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs});
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        resources.push(e);
        for s in r.subresources {
            let mut e = json!({"name": format!("{}/{}", r.plural, s.name), "singularName": "", "namespaced": r.namespaced, "kind": s.kind, "verbs": s.verbs});
            if let Some((g, v)) = s.kind_gv {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            resources.push(e);
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

/// `GET /version`.
pub fn version(kube_version: &str) -> Value {
    let v = kube_version.trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json!({
        "major": major, "minor": minor, "gitVersion": format!("v{v}"),
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
        "platform": "linux/amd64", "emulationMajor": major, "emulationMinor": minor,
    })
}

fn openapi_path_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn openapi_doc_for(group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version && r.is_stored()) {
        let base = if r.namespaced {
            format!("/{}/namespaces/{{namespace}}/{}/{{name}}", openapi_path_key(group, version), r.plural)
        } else {
            format!("/{}/{}/{{name}}", openapi_path_key(group, version), r.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}}
        ]);
        paths.insert(
            base,
            json!({
                "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get", "responses": {"200": {"description": "OK"}}},
                "put": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "put", "parameters": params, "responses": {"200": {"description": "OK"}}},
                "patch": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch", "parameters": params, "responses": {"200": {"description": "OK"}}},
                "delete": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "delete", "responses": {"200": {"description": "OK"}}},
            }),
        );
    }
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1"}, "paths": paths, "components": {"schemas": {}}})
}

fn hash_of(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(serde_json::to_vec(v).unwrap_or_default());
    d.iter().take(16).map(|b| format!("{b:02X}")).collect()
}

fn served_group_versions() -> Vec<(&'static str, &'static str)> {
    let mut gvs = vec![("", "v1")];
    gvs.extend(groups());
    gvs
}

/// `GET /openapi/v3`: the index of per-group-version documents.
pub fn openapi_index() -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in served_group_versions() {
        let key = openapi_path_key(g, v);
        let hash = hash_of(&openapi_doc_for(g, v));
        paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}));
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/<api/v1 | apis/G/V>`.
pub fn openapi_doc(path_key: &str) -> Option<Value> {
    served_group_versions().into_iter().find(|(g, v)| openapi_path_key(g, v) == path_key).map(|(g, v)| openapi_doc_for(g, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_api_has_pods_with_exec() {
        let (ct, body) = api(Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"), "127.0.0.1:1");
        assert_eq!(ct, "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
        let pods = body["items"][0]["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "pods").unwrap().clone();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert!(pods["subresources"].as_array().unwrap().iter().any(|s| s["subresource"] == "exec"));
    }

    #[test]
    fn legacy_lists_subresources() {
        let l = resource_list("", "v1").unwrap();
        assert!(l["resources"].as_array().unwrap().iter().any(|r| r["name"] == "pods/portforward"));
        assert!(resource_list("nope", "v1").is_none());
        assert_eq!(apis(None).1["kind"], "APIGroupList");
    }

    #[test]
    fn openapi_index_points_at_documents_with_patch_validation() {
        let idx = openapi_index();
        let url = idx["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/api/v1?hash="));
        let doc = openapi_doc("api/v1").unwrap();
        let cm = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(cm["x-kubernetes-group-version-kind"]["kind"], "ConfigMap");
        assert!(openapi_doc("apis/apps/v1").is_some());
    }
}
