//! Create, read, update, patch and delete, as kube-apiserver's generic registry does them.
//!
//! Handles `get`, `list` (selectors, `limit`/`continue`, Tables), `create`, `update`, `patch`
//! (JSON, merge, strategic-merge, server-side apply), `delete` (with preconditions),
//! `deletecollection`, `dryRun=All`, and the `status` and `scale` subresources. Every answer is a
//! full object with `apiVersion`/`kind`, or a `Status`.

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Response};
use serde_json::{json, Value};

use super::objects::{prepare_create, prepare_update};
use super::patch::{self, PatchType};
use super::resources::ResourceDef;
use crate::respond::{self, Body};
use super::selector::{FieldSelector, LabelSelector};
use super::server::Ctx;
use super::store::{Key, Txn};
use super::table::{partial_metadata, table, IncludeObject};
use super::SimState;
use crate::kube::media::{negotiate_object, Representation};
use crate::kube::status::{Status, Target};

/// The store key of a resource.
pub fn resource_key(def: &ResourceDef) -> String {
    format!("{}/{}", def.group, def.plural)
}

fn key(def: &ResourceDef, namespace: &str, name: &str) -> Key {
    Key { resource: resource_key(def), namespace: if def.namespaced { namespace.to_string() } else { String::new() }, name: name.to_string() }
}

fn target<'a>(def: &'a ResourceDef, name: &'a str) -> Target<'a> {
    Target { group: def.group, resource: def.plural, name }
}

/// Create the namespaces and service accounts every cluster starts with.
pub fn seed(state: &SimState) {
    let mut txn = state.store.txn();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = create_in(&mut txn, state, lookup("namespaces"), json!({"metadata": {"name": ns}}), "");
    }
}

fn lookup(plural: &str) -> &'static ResourceDef {
    super::resources::RESOURCES.iter().find(|r| r.plural == plural && r.group.is_empty()).unwrap_or(&super::resources::RESOURCES[0])
}

/// Store a new object after validation; side effects per kind (namespaces get a default service
/// account, pods start their containers).
fn create_in(txn: &mut Txn<'_>, state: &SimState, def: &ResourceDef, mut obj: Value, namespace: &str) -> Result<std::sync::Arc<Value>, Status> {
    prepare_create(def, &mut obj, namespace)?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if def.namespaced && txn.get(&key(lookup("namespaces"), "", namespace)).is_none() {
        return Err(Status::not_found(Target { group: "", resource: "namespaces", name: namespace }));
    }
    let k = key(def, namespace, &name);
    if txn.get(&k).is_some() {
        return Err(Status::already_exists(target(def, &name)));
    }
    let stored = txn.put(k, obj);
    match def.plural {
        "namespaces" => {
            let _ = create_in(txn, state, lookup("serviceaccounts"), json!({"metadata": {"name": "default"}}), &name);
        }
        "pods" => state.pods.start(&stored),
        _ => {}
    }
    Ok(stored)
}

fn with_type(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(def.api_version()));
        m.insert("kind".into(), json!(def.kind));
    }
    o
}

/// Items of a built-in list carry no `kind`/`apiVersion` on the wire; the list's kind names them.
fn list_item(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

fn parse_json(body: &[u8]) -> Result<Value, Status> {
    if body.is_empty() {
        return Err(Status::bad_request("the request body is empty"));
    }
    serde_json::from_slice(body).map_err(|e| Status::bad_request(format!("error decoding the request body: {e}")))
}

/// A create/update/delete body in the encoding its `Content-Type` names: JSON, or Kubernetes
/// protobuf (kubectl ≥ 1.32 sends typed-client bodies that way), read into the same JSON.
pub(crate) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Status> {
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "" => parse_json(body),
        crate::kube::protobuf::CONTENT_TYPE => {
            crate::kube::protobuf::decode(body).map_err(|e| Status::bad_request(format!("error decoding the protobuf request body: {e}")))
        }
        _ => Err(Status::unsupported_media_type(ct)),
    }
}

fn dry_run(ctx: &Ctx) -> Result<bool, Status> {
    match ctx.query("dryRun").as_deref() {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(Status::bad_request(format!("dryRun: Unsupported value: \"{other}\": supported values: \"All\""))),
    }
}

fn object_response(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap, code: u16, obj: &Value) -> Result<Response<Body>, Status> {
    let typed = with_type(def, obj);
    match negotiate_object(headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok())) {
        Representation::Table(v) => {
            let include = IncludeObject::parse(ctx.query("includeObject").as_deref()).map_err(Status::bad_request)?;
            let rv = obj["metadata"]["resourceVersion"].clone();
            Ok(respond::json(code, &table(def.kind, &def.api_version(), &[obj], include, v, json!({"resourceVersion": rv}))))
        }
        Representation::PartialMetadata(v) => Ok(respond::json(code, &partial_metadata(obj, v))),
        _ => Ok(respond::json(code, &typed)),
    }
}

/// Entry point for stored resources.
pub fn handle(ctx: &mut Ctx, def: &'static ResourceDef, headers: &HeaderMap, body: &Bytes) -> Result<Response<Body>, Status> {
    let verb = ctx.info.verb.clone();
    let sub = ctx.info.subresource.clone();
    if !sub.is_empty() {
        return match (def.subresource(&sub), sub.as_str()) {
            (Some(_), "scale") => scale(ctx, def, headers, body),
            (Some(_), "token") if verb == "create" => token(ctx, def, headers, body),
            (Some(_), "status") | (Some(_), "finalize") => match verb.as_str() {
                "get" => get(ctx, def, headers),
                "update" => update(ctx, def, headers, body),
                "patch" => patch(ctx, def, headers, body),
                _ => Err(Status::method_not_allowed(&verb)),
            },
            _ => Err(Status::no_route()),
        };
    }
    if !def.verbs.contains(&verb.as_str()) {
        return Err(Status::method_not_allowed(&verb));
    }
    match verb.as_str() {
        "get" => get(ctx, def, headers),
        "list" => list(ctx, def, headers),
        "create" => create(ctx, def, headers, body),
        "update" => update(ctx, def, headers, body),
        "patch" => patch(ctx, def, headers, body),
        "delete" => delete(ctx, def, headers, body),
        "deletecollection" => delete_collection(ctx, def, headers),
        _ => Err(Status::method_not_allowed(&verb)),
    }
}

fn get(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap) -> Result<Response<Body>, Status> {
    let obj = ctx.state.store.txn().get(&key(def, &ctx.info.namespace, &ctx.info.name));
    let obj = obj.ok_or_else(|| Status::not_found(target(def, &ctx.info.name)))?;
    object_response(ctx, def, headers, 200, &obj)
}

/// Selected objects of a list or watch request.
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    /// From `labelSelector` / `fieldSelector`.
    pub fn from_ctx(ctx: &Ctx, def: &ResourceDef) -> Result<Self, Status> {
        let labels = LabelSelector::parse(&ctx.query("labelSelector").unwrap_or_default()).map_err(|e| Status::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(&ctx.query("fieldSelector").unwrap_or_default(), def.kind).map_err(|e| Status::bad_request(e.to_string()))?;
        Ok(Selection { labels, fields })
    }

    /// Whether an object is selected.
    pub fn matches(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }
}

fn namespace_filter(ctx: &Ctx, def: &ResourceDef) -> Option<String> {
    (def.namespaced && !ctx.info.namespace.is_empty()).then(|| ctx.info.namespace.clone())
}

fn encode_continue(rv: u64, after: &Key) -> String {
    let v = json!({"rv": rv, "ns": after.namespace, "name": after.name});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), Status> {
    let bad = || Status::bad_request("continue key is not valid: the continue token is malformed");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((v["ns"].as_str().ok_or_else(bad)?.to_string(), v["name"].as_str().ok_or_else(bad)?.to_string()))
}

fn list(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap) -> Result<Response<Body>, Status> {
    let sel = Selection::from_ctx(ctx, def)?;
    let limit: usize = match ctx.query("limit") {
        None => 0,
        Some(l) => l.parse().map_err(|_| Status::bad_request(format!("limit: Invalid value: \"{l}\"")))?,
    };
    let after = ctx.query("continue").filter(|c| !c.is_empty()).map(|c| decode_continue(&c)).transpose()?;
    let txn = ctx.state.store.txn();
    let rv = txn.rv();
    let all = txn.list(&resource_key(def), namespace_filter(ctx, def).as_deref());
    drop(txn);
    let mut selected: Vec<(Key, std::sync::Arc<Value>)> = all
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|(ns, n)| (k.namespace.as_str(), k.name.as_str()) > (ns.as_str(), n.as_str())))
        .filter(|(_, o)| sel.matches(o))
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if limit > 0 && selected.len() > limit {
        let remaining = selected.len() - limit;
        selected.truncate(limit);
        if let Some((last, _)) = selected.last() {
            meta["continue"] = json!(encode_continue(rv, last));
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    let objects: Vec<&Value> = selected.iter().map(|(_, o)| o.as_ref()).collect();
    match negotiate_object(headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok())) {
        Representation::Table(v) => {
            let include = IncludeObject::parse(ctx.query("includeObject").as_deref()).map_err(Status::bad_request)?;
            Ok(respond::json(200, &table(def.kind, &def.api_version(), &objects, include, v, meta)))
        }
        Representation::PartialMetadata(v) => Ok(respond::json(
            200,
            &json!({"kind": "PartialObjectMetadataList", "apiVersion": format!("meta.k8s.io/{v}"), "metadata": meta,
                    "items": objects.iter().map(|o| partial_metadata(o, v)).collect::<Vec<_>>()}),
        )),
        _ => Ok(respond::json(200, &json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": meta, "items": objects.iter().map(|o| list_item(o)).collect::<Vec<_>>()}))),
    }
}

fn create(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap, body: &[u8]) -> Result<Response<Body>, Status> {
    let obj = parse_body(headers, body)?;
    let ns = ctx.info.namespace.clone();
    if dry_run(ctx)? {
        let mut obj = obj;
        prepare_create(def, &mut obj, &ns)?;
        return object_response(ctx, def, headers, 201, &obj);
    }
    let mut txn = ctx.state.store.txn();
    let stored = create_in(&mut txn, &ctx.state, def, obj, &ns)?;
    drop(txn);
    object_response(ctx, def, headers, 201, &stored)
}

fn current(txn: &Txn<'_>, ctx: &Ctx, def: &ResourceDef) -> Result<(Key, std::sync::Arc<Value>), Status> {
    let k = key(def, &ctx.info.namespace, &ctx.info.name);
    let old = txn.get(&k).ok_or_else(|| Status::not_found(target(def, &ctx.info.name)))?;
    Ok((k, old))
}

fn store_update(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap, txn: &mut Txn<'_>, k: Key, old: &Value, mut new: Value) -> Result<Response<Body>, Status> {
    if ctx.info.subresource == "status" {
        // Only the status changes through /status.
        let status = new.get("status").cloned();
        new = old.clone();
        if let Some(s) = status {
            new["status"] = s;
        }
    }
    prepare_update(def, old, &mut new)?;
    if dry_run(ctx)? {
        return object_response(ctx, def, headers, 200, &new);
    }
    let stored = txn.put(k, new);
    object_response(ctx, def, headers, 200, &stored)
}

fn update(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap, body: &[u8]) -> Result<Response<Body>, Status> {
    let new = parse_body(headers, body)?;
    let mut txn = ctx.state.store.txn();
    let (k, old) = current(&txn, ctx, def)?;
    store_update(ctx, def, headers, &mut txn, k, &old, new)
}

fn patch_type(headers: &HeaderMap) -> Result<PatchType, Status> {
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    PatchType::from_content_type(ct).ok_or_else(|| Status::unsupported_media_type(ct))
}

fn patch_error(e: patch::PatchError) -> Status {
    Status::failure(e.http_code(), e.reason(), e.to_string())
}

fn patch(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap, body: &[u8]) -> Result<Response<Body>, Status> {
    let pt = patch_type(headers)?;
    let mut txn = ctx.state.store.txn();
    let k = key(def, &ctx.info.namespace, &ctx.info.name);
    let Some(old) = txn.get(&k) else {
        if pt == PatchType::Apply && ctx.info.subresource.is_empty() {
            let obj = patch::apply_create(def.kind, body).map_err(patch_error)?;
            if dry_run(ctx)? {
                let mut obj = obj;
                prepare_create(def, &mut obj, &ctx.info.namespace)?;
                return object_response(ctx, def, headers, 201, &obj);
            }
            let stored = create_in(&mut txn, &ctx.state, def, obj, &ctx.info.namespace)?;
            return object_response(ctx, def, headers, 201, &stored);
        }
        return Err(Status::not_found(target(def, &ctx.info.name)));
    };
    let base = with_type(def, &old);
    let mut new = patch::apply(def.kind, &base, body, pt).map_err(patch_error)?;
    // A patch may not move the object; the stored resourceVersion is the precondition only
    // when the patch itself names one.
    if new["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"] {
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
    }
    store_update(ctx, def, headers, &mut txn, k, &old, new)
}

fn delete_options(headers: &HeaderMap, body: &[u8]) -> Result<Value, Status> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    let v = parse_body(headers, body)?;
    if !v.is_object() {
        return Err(Status::bad_request("DeleteOptions must be an object"));
    }
    Ok(v)
}

fn delete(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap, body: &[u8]) -> Result<Response<Body>, Status> {
    let opts = delete_options(headers, body)?;
    let mut txn = ctx.state.store.txn();
    let (k, old) = current(&txn, ctx, def)?;
    let pre = &opts["preconditions"];
    if (pre["uid"].is_string() && pre["uid"] != old["metadata"]["uid"])
        || (pre["resourceVersion"].is_string() && pre["resourceVersion"] != old["metadata"]["resourceVersion"])
    {
        return Err(Status::conflict(target(def, &ctx.info.name)));
    }
    let dry = dry_run(ctx)? || opts["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
    if dry {
        return object_response(ctx, def, headers, 200, &old);
    }
    let gone = remove(&mut txn, &ctx.state, def, &k).unwrap_or(old);
    object_response(ctx, def, headers, 200, &gone)
}

/// Remove an object and what hangs off it (a namespace's contents, a pod's processes).
fn remove(txn: &mut Txn<'_>, state: &SimState, def: &ResourceDef, k: &Key) -> Option<std::sync::Arc<Value>> {
    if def.plural == "namespaces" {
        for r in super::resources::RESOURCES.iter().filter(|r| r.namespaced && r.is_stored()) {
            for (ck, _) in txn.list(&resource_key(r), Some(&k.name)) {
                remove(txn, state, r, &ck);
            }
        }
    }
    let gone = txn.delete(k)?;
    if def.plural == "pods" {
        state.pods.stop(&gone);
    }
    Some(gone)
}

fn delete_collection(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap) -> Result<Response<Body>, Status> {
    let sel = Selection::from_ctx(ctx, def)?;
    let dry = dry_run(ctx)?;
    let mut txn = ctx.state.store.txn();
    let items: Vec<(Key, std::sync::Arc<Value>)> =
        txn.list(&resource_key(def), namespace_filter(ctx, def).as_deref()).into_iter().filter(|(_, o)| sel.matches(o)).collect();
    let mut deleted = Vec::new();
    for (k, o) in items {
        if dry {
            deleted.push(o);
        } else if let Some(g) = remove(&mut txn, &ctx.state, def, &k) {
            deleted.push(g);
        }
    }
    let rv = txn.rv();
    drop(txn);
    let _ = headers;
    Ok(respond::json(
        200,
        &json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": deleted.iter().map(|o| list_item(o)).collect::<Vec<_>>()}),
    ))
}

fn scale_of(def: &ResourceDef, d: &Value) -> Value {
    let labels = d["spec"]["selector"]["matchLabels"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")).unwrap_or_default();
    let _ = def;
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": d["metadata"]["name"], "namespace": d["metadata"]["namespace"], "uid": d["metadata"]["uid"], "resourceVersion": d["metadata"]["resourceVersion"], "creationTimestamp": d["metadata"]["creationTimestamp"]},
        "spec": {"replicas": d["spec"]["replicas"]},
        "status": {"replicas": d["status"]["replicas"], "selector": labels},
    })
}

fn scale(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap, body: &[u8]) -> Result<Response<Body>, Status> {
    let mut txn = ctx.state.store.txn();
    let (k, old) = current(&txn, ctx, def)?;
    let current_scale = scale_of(def, &old);
    let new_scale = match ctx.info.verb.as_str() {
        "get" => return Ok(respond::json(200, &current_scale)),
        "update" => parse_body(headers, body)?,
        "patch" => patch::apply("Scale", &current_scale, body, patch_type(headers)?).map_err(patch_error)?,
        v => return Err(Status::method_not_allowed(v)),
    };
    let replicas = new_scale["spec"]["replicas"].as_i64().filter(|r| *r >= 0).ok_or_else(|| {
        Status::invalid("Scale.autoscaling", &ctx.info.name, vec![crate::kube::status::StatusCause { reason: "FieldValueInvalid".into(), message: "Invalid value: must be greater than or equal to 0".into(), field: "spec.replicas".into() }])
    })?;
    let mut new = (*old).clone();
    new["spec"]["replicas"] = json!(replicas);
    if let Some(m) = new["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    prepare_update(def, &old, &mut new)?;
    if dry_run(ctx)? {
        return Ok(respond::json(200, &scale_of(def, &new)));
    }
    let stored = txn.put(k, new);
    Ok(respond::json(200, &scale_of(def, &stored)))
}

/// `serviceaccounts/NAME/token`: a TokenRequest answered with a (meaningless) bearer token, as
/// `kubectl create token` expects.
fn token(ctx: &Ctx, def: &ResourceDef, headers: &HeaderMap, body: &[u8]) -> Result<Response<Body>, Status> {
    let req = parse_body(headers, body)?;
    let sa = ctx.state.store.txn().get(&key(def, &ctx.info.namespace, &ctx.info.name));
    sa.ok_or_else(|| Status::not_found(target(def, &ctx.info.name)))?;
    let secs = req["spec"]["expirationSeconds"].as_i64().unwrap_or(3600).clamp(600, 86400 * 2);
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let token = format!("sim.{}.{}", ctx.info.name, uuid::Uuid::new_v4().simple());
    let mut spec = req["spec"].clone();
    spec["expirationSeconds"] = json!(secs);
    Ok(respond::json(
        201,
        &json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": ctx.info.name, "namespace": ctx.info.namespace, "creationTimestamp": null},
                "spec": spec, "status": {"token": token, "expirationTimestamp": expires}}),
    ))
}
