//! PATCH bodies as kube-apiserver applies them, for the simulator's stored objects.
//!
//! kubectl changes objects with patches: `kubectl patch` sends JSON (RFC 6902), merge (RFC 7386)
//! or strategic merge patches; client-side `apply` and `edit` send strategic merge patches with
//! `$setElementOrder/…`, `$retainKeys`, `$deleteFromPrimitiveList/…` and `$patch` directives and
//! `null` deletions; `label`, `annotate` and `scale` send merge patches; `apply --server-side`
//! sends its applied configuration as JSON under `application/apply-patch+yaml`. The simulator
//! stores plain [`serde_json::Value`]s, so this module redoes, without Go types, what apiserver
//! does with each body (read from apiserver `endpoints/handlers/patch.go`, apimachinery
//! `util/strategicpatch` and `util/managedfields`), and refuses with apiserver's code and reason.
//!
//! The schema is a table of `k8s.io/api` `patchMergeKey`/`patchStrategy` tags for Namespace, Pod,
//! Secret, ConfigMap, ServiceAccount, Event and apps/v1 Deployment, by path from the object root
//! (a Pod's `spec.containers` and a Deployment's `spec.template.spec.containers` share an entry);
//! other lists are replaced whole. A coarse shape check (objects, lists and scalars may not turn
//! into one another) stands in for the typed decode that makes apiserver refuse broken results.
//!
//! Gaps, on purpose:
//! * Server-side apply has **no field ownership**: the applied configuration is merged into the
//!   live object with strategic-merge list semantics (keyed lists merge by key, `null` deletes).
//!   Without `managedFields`, fields dropped from a later apply are *not* removed and there are
//!   never apply conflicts (409). Only JSON apply bodies are read (kubectl sends JSON).
//! * Nesting deeper than [`MAX_DEPTH`] is refused (Go decodes up to 10000 levels).
//! * Unknown `$` keys are dropped, and a duplicate key's last value wins, as in Go's non-strict
//!   decode; strict field validation, defaulting and validation are the caller's.
//! * `metadata.resourceVersion` comes out as patched: the 409 for a stale one is the caller's.
//!
//! This file holds the entry points, the body limits and apiserver's checks before and after a
//! patch; `strategic` holds the strategic-merge algorithm, its `$` directives and the table of
//! merge keys, which server-side apply reuses.

mod strategic;

use serde_json::{Map, Value};

use strategic::{merge_map, strip_map};

/// Largest PATCH body apiserver reads (`MaxRequestBodyBytes`, 3 MiB); larger gets 413.
pub const MAX_PATCH_BYTES: usize = 3 * 1024 * 1024;
/// Deepest nesting of objects and lists accepted in a patch body.
pub const MAX_DEPTH: usize = 64;
/// Most operations apiserver accepts in one JSON patch (`maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// Most bytes JSON-patch `copy` operations may add in total (`JSONPatchMaxCopyBytes`, 3 MiB).
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

const NAMESPACE_MISMATCH: &str =
    "the namespace of the provided object does not match the namespace sent on the request";

/// The four PATCH flavours apiserver accepts, named by the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch, `application/json-patch+json`.
    Json,
    /// RFC 7386 JSON merge patch, `application/merge-patch+json`.
    Merge,
    /// Kubernetes strategic merge patch, `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// Server-side apply, `application/apply-patch+yaml`.
    Apply,
}

impl PatchType {
    /// The patch type for a Content-Type header value, ignoring parameters such as
    /// `; charset=utf-8`, surrounding blanks and ASCII case. `None` means the caller answers
    /// 415 UnsupportedMediaType, as apiserver does (also for `apply-patch+cbor`, off by default).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        [Self::Json, Self::Merge, Self::StrategicMerge, Self::Apply]
            .into_iter()
            .find(|t| t.content_type().eq_ignore_ascii_case(base))
    }

    /// The canonical Content-Type of this patch type (apiserver's list of supported types).
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json-patch+json",
            Self::Merge => "application/merge-patch+json",
            Self::StrategicMerge => "application/strategic-merge-patch+json",
            Self::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch was refused: [`PatchError::http_code`] and [`PatchError::reason`] give the Status
/// apiserver answers with, `Display` its message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// A body over [`MAX_PATCH_BYTES`], or a JSON patch of over [`MAX_JSON_PATCH_OPERATIONS`]
    /// operations: 413 RequestEntityTooLarge.
    #[error("Request entity too large: {0}")]
    TooLarge(String),
    /// A body nesting objects and lists deeper than [`MAX_DEPTH`]: 400 BadRequest.
    #[error("error decoding patch: nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A body that is not JSON, or not the JSON its patch type needs: 400 BadRequest.
    #[error("{0}")]
    InvalidJson(String),
    /// A merge, strategic or apply body that is not a JSON object: 400 BadRequest.
    #[error("error decoding patch: the patch must be a JSON object")]
    NotAnObject,
    /// A server-side apply body that is not JSON (other YAML is not read): 400 BadRequest.
    #[error("error decoding YAML: only JSON-encoded apply configurations are supported")]
    ApplyNotJson,
    /// A JSON patch operation failed (a `test`, a missing path, an unknown `op`, the copy
    /// limit): 422 Invalid.
    #[error("{0}")]
    JsonPatch(String),
    /// A malformed `$retainKeys`, `$setElementOrder` or `$deleteFromPrimitiveList` directive:
    /// 400 BadRequest.
    #[error("{0}")]
    InvalidDirective(String),
    /// A strategic merge or apply that apiserver fails with a plain Go error (unknown `$patch`,
    /// missing merge key, mixed list elements, `$setElementOrder` not matching): 500, no reason.
    #[error("{0}")]
    MergeFailed(String),
    /// A patched object that no longer decodes as its kind (another kind or apiVersion, a list
    /// made an object, lists of lists): 422 Invalid.
    #[error("{0}")]
    Invalid(String),
    /// A changed name or namespace, or an apply body of another kind or version or carrying
    /// `metadata.managedFields`: 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
}

impl PatchError {
    /// The HTTP status code apiserver answers this failure with.
    pub fn http_code(&self) -> u16 {
        match self {
            Self::TooLarge(_) => 413,
            Self::JsonPatch(_) | Self::Invalid(_) => 422,
            Self::MergeFailed(_) => 500,
            _ => 400,
        }
    }

    /// The Status `reason` apiserver gives: `""` (StatusReasonUnknown, omitted) for the 500s,
    /// which apiserver builds from errors that are not a Status.
    pub fn reason(&self) -> &'static str {
        match self.http_code() {
            413 => "RequestEntityTooLarge",
            422 => "Invalid",
            500 => "",
            _ => "BadRequest",
        }
    }
}

/// Apply `patch` (the raw request body) of type `pt` to `original` (the stored object, a JSON
/// object) of kind `kind`, and return the new object.
///
/// As apiserver: a JSON or merge patch may not change `apiVersion` or `kind` (422; removing them
/// restores them), a strategic merge patch cannot (ignored); a changed `metadata.name` or
/// `metadata.namespace` is 400 and a removed namespace is restored. `resourceVersion`, `uid` and
/// `creationTimestamp` come out as patched, for the caller to check and restore.
pub fn apply(
    kind: &str,
    original: &Value,
    patch: &[u8],
    pt: PatchType,
) -> Result<Value, PatchError> {
    let Some(orig) = original.as_object() else {
        return Err(failed("the stored object is not a JSON object"));
    };
    let parsed = parse(patch);
    let result = match pt {
        PatchType::Json => json_patch(original.clone(), parsed?)?,
        PatchType::Merge => match parsed? {
            Value::Array(_) => return Err(not_decodable("the patched object is a list")),
            p @ Value::Object(_) => merge_patch(original.clone(), &p),
            _ => return Err(PatchError::InvalidJson("Invalid JSON Patch".into())),
        },
        PatchType::StrategicMerge => {
            let p = match parsed? {
                Value::Object(m) => m,
                Value::Null => Map::new(),
                _ => return Err(PatchError::NotAnObject),
            };
            Value::Object(merge_map(kind, orig.clone(), &p, &mut Vec::new())?)
        }
        PatchType::Apply => {
            let cfg = check_apply(kind, str_at(orig, &["apiVersion"]), parsed, patch)?;
            // `check_apply` refused directives, so this is a plain keyed merge.
            Value::Object(merge_map(kind, orig.clone(), &cfg, &mut Vec::new())?)
        }
    };
    finish(orig, result, pt)
}

/// Server-side apply when the object does not exist yet: the applied configuration, `null`s
/// dropped, becomes the object once checked to be a JSON object of `kind`, in the version
/// apiserver serves it at, without `metadata.managedFields`. Comparing its name and namespace
/// with the URL's (400 when they differ) is the caller's.
pub fn apply_create(kind: &str, patch: &[u8]) -> Result<Value, PatchError> {
    let cfg = check_apply(kind, None, parse(patch), patch)?;
    Ok(Value::Object(strip_map(&cfg)))
}

/// Read and bound a body: size, JSON syntax, depth.
fn parse(body: &[u8]) -> Result<Value, PatchError> {
    if body.len() > MAX_PATCH_BYTES {
        return Err(PatchError::TooLarge(format!("limit is {MAX_PATCH_BYTES}")));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| match e.to_string() {
        m if m.contains("recursion limit") => PatchError::TooDeep,
        m => PatchError::InvalidJson(format!("error decoding patch: {m}")),
    })?;
    let mut stack = vec![(&v, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH && (node.is_object() || node.is_array()) {
            return Err(PatchError::TooDeep);
        }
        match node {
            Value::Object(m) => stack.extend(m.values().map(|c| (c, depth + 1))),
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    Ok(v)
}

/// RFC 6902, one operation at a time so `copy` growth can be bounded as apiserver bounds it.
fn json_patch(mut doc: Value, patch: Value) -> Result<Value, PatchError> {
    let ops = match patch {
        Value::Array(ops) if ops.iter().all(Value::is_object) => ops,
        _ => return Err(PatchError::InvalidJson("not a JSON patch".into())),
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        let (max, n) = (MAX_JSON_PATCH_OPERATIONS, ops.len());
        let msg = format!("The allowed maximum operations in a JSON patch is {max}, got {n}");
        return Err(PatchError::TooLarge(msg));
    }
    let mut copied = 0usize;
    for (i, raw) in ops.into_iter().enumerate() {
        let op: json_patch::PatchOperation = serde_json::from_value(raw)
            .map_err(|e| PatchError::JsonPatch(format!("operation {i}: {e}")))?;
        if let json_patch::PatchOperation::Copy(c) = &op {
            copied += doc
                .pointer(c.from.as_str())
                .map_or(0, |v| v.to_string().len());
            if copied > MAX_COPY_BYTES {
                let (n, max) = (copied, MAX_COPY_BYTES);
                let msg = format!(
                    "Unable to complete the copy, the accumulated size increase of copy is {n}, \
                     exceeding the limit {max}"
                );
                return Err(PatchError::JsonPatch(msg));
            }
        }
        // `doc` is a private copy dropped on error, so no rollback is needed.
        json_patch::patch_unsafe(&mut doc, std::slice::from_ref(&op)).map_err(|e| {
            let (path, why) = (&e.path, &e.kind);
            PatchError::JsonPatch(format!("operation {i} failed at path '{path}': {why}"))
        })?;
    }
    Ok(doc)
}

/// RFC 7386 (as `json_patch::merge`, but a removal keeps the order of the other keys).
fn merge_patch(doc: Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut m = match doc {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            m.shift_remove(k);
        } else {
            let cur = m.get_mut(k).map(std::mem::take).unwrap_or_default();
            m.insert(k.clone(), merge_patch(cur, v));
        }
    }
    Value::Object(m)
}

/// The checks the field manager makes on an apply body before merging it.
fn check_apply(
    kind: &str,
    live_version: Option<&str>,
    parsed: Result<Value, PatchError>,
    body: &[u8],
) -> Result<Map<String, Value>, PatchError> {
    let cfg = match parsed {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(PatchError::NotAnObject),
        Err(PatchError::InvalidJson(e)) if body.trim_ascii_start().starts_with(b"{") => {
            return Err(PatchError::InvalidJson(e))
        }
        Err(PatchError::InvalidJson(_)) => return Err(PatchError::ApplyNotJson),
        Err(e) => return Err(e),
    };
    let want = live_version.or(match kind {
        "Deployment" => Some("apps/v1"),
        "Namespace" | "Pod" | "Secret" | "ConfigMap" | "ServiceAccount" | "Event" => Some("v1"),
        _ => None,
    });
    let (av, k) = (str_at(&cfg, &["apiVersion"]), str_at(&cfg, &["kind"]));
    if k != Some(kind) || av.is_none() || want.is_some_and(|v| av != Some(v)) {
        // Go prints the group/version kind it parsed: `apps/v1, Kind=X`, `/v1, Kind=X`.
        let av = av.filter(|v| v.split('/').count() <= 2).unwrap_or_default();
        let sep = if av.contains('/') { "" } else { "/" };
        let k = k.unwrap_or_default();
        return Err(bad_request(format!(
            "invalid object type: {sep}{av}, Kind={k}"
        )));
    }
    if at(&cfg, &["metadata", "managedFields"]).is_some_and(|f| !f.is_null()) {
        return Err(bad_request("metadata.managedFields must be nil"));
    }
    match directive_path(&cfg) {
        Some(p) => Err(typed(&format!("{p}: field not declared in schema"))),
        None => Ok(cfg),
    }
}

/// The first `$` key in an apply configuration, as a field path.
fn directive_path(m: &Map<String, Value>) -> Option<String> {
    m.iter().find_map(|(k, v)| {
        let sub = match v {
            _ if k.starts_with('$') => Some(String::new()),
            Value::Object(o) => directive_path(o),
            Value::Array(a) => a.iter().find_map(|e| directive_path(e.as_object()?)),
            _ => None,
        };
        sub.map(|s| format!(".{k}{s}"))
    })
}

/// The value at `path` in `m`.
fn at<'a>(m: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut m = m;
    for p in parents {
        m = m.get(*p)?.as_object()?;
    }
    m.get(*last)
}

/// The non-empty string at `path` in `m`.
fn str_at<'a>(m: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    at(m, path)?.as_str().filter(|s| !s.is_empty())
}

fn not_decodable(why: &str) -> PatchError {
    PatchError::Invalid(format!(
        "Invalid value: patch: {why}, so it no longer decodes"
    ))
}

fn bad_request(msg: impl Into<String>) -> PatchError {
    PatchError::BadRequest(msg.into())
}

/// A server-side apply body that does not fit the kind's schema: apiserver answers 500.
fn typed(why: &str) -> PatchError {
    failed(format!("failed to create typed patch object: {why}"))
}

/// Apiserver's checks on the patched object: type identity, decodability, name, namespace.
fn finish(orig: &Map<String, Value>, result: Value, pt: PatchType) -> Result<Value, PatchError> {
    let Value::Object(mut obj) = result else {
        return Err(not_decodable("the patched object is not a JSON object"));
    };
    for key in ["apiVersion", "kind"] {
        let strict = matches!(pt, PatchType::Json | PatchType::Merge);
        match (orig.get(key), obj.get(key)) {
            (None, _) => {}
            (Some(want), Some(got)) if got == want => {}
            (Some(want), Some(got)) if strict && !got.is_null() => {
                return Err(not_decodable(&format!(
                    "{key} changed from {want} to {got}"
                )));
            }
            (Some(want), _) => drop(obj.insert(key.to_owned(), want.clone())),
        }
    }
    if let Some(path) = map_mismatch(orig, &obj) {
        let why = format!("{path} changed between object, list and scalar");
        return Err(if pt == PatchType::Apply {
            typed(&why)
        } else {
            not_decodable(&why)
        });
    }
    let name = |m| str_at(m, &["metadata", "name"]).unwrap_or_default();
    if name(orig) != name(&obj) {
        let (got, want) = (name(&obj), name(orig));
        let msg =
            format!("the name of the object ({got}) does not match the name on the URL ({want})");
        return Err(bad_request(msg));
    }
    let want = str_at(orig, &["metadata", "namespace"]).map(str::to_owned);
    let got = str_at(&obj, &["metadata", "namespace"]).map(str::to_owned);
    if let Some(Value::Object(md)) = obj.get_mut("metadata").filter(|_| want != got) {
        match want {
            Some(_) if got.is_some() => return Err(bad_request(NAMESPACE_MISMATCH)),
            Some(ns) => drop(md.insert("namespace".into(), Value::String(ns))),
            None => drop(md.shift_remove("namespace")),
        }
    }
    Ok(Value::Object(obj))
}

/// Where `new` turned an object, list or scalar of `old` into another of those, as a Go decode
/// of the patched object would refuse. Scalars may change type (int-or-string fields exist).
fn shape_mismatch(old: &Value, new: &Value) -> Option<String> {
    let container = |v: &Value| v.is_object() || v.is_array();
    match (old, new) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Object(a), Value::Object(b)) => map_mismatch(a, b),
        (Value::Array(a), Value::Array(b)) => {
            // Elements share one Go type: any old element shows what every new one must be.
            let sample = a.iter().find(|v| !v.is_null())?;
            let bad = |(i, nv)| shape_mismatch(sample, nv).map(|p| format!("[{i}]{p}"));
            b.iter().enumerate().find_map(bad)
        }
        (o, n) if container(o) || container(n) => {
            let same = std::mem::discriminant(o) == std::mem::discriminant(n);
            (!same).then(String::new)
        }
        _ => None,
    }
}

fn map_mismatch(old: &Map<String, Value>, new: &Map<String, Value>) -> Option<String> {
    let bad = |(k, v): (&String, &Value)| Some(format!(".{k}{}", shape_mismatch(old.get(k)?, v)?));
    new.iter().find_map(bad)
}

fn failed(msg: impl Into<String>) -> PatchError {
    PatchError::MergeFailed(msg.into())
}

#[cfg(test)]
mod tests;
