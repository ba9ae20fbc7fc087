//! Strategic merge patch, as apimachinery's `util/strategicpatch` applies it without Go types:
//! maps merged key by key, `patchStrategy:"merge"` lists merged by their merge key (or as sets
//! of scalars) and ordered as apiserver orders them, the `$patch`, `$retainKeys`,
//! `$setElementOrder/…` and `$deleteFromPrimitiveList/…` directives, and the table of merge keys
//! by kind and path that stands in for the Go struct tags.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::{failed, PatchError};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PREFIX: &str = "$deleteFromPrimitiveList";
const ERR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_ORDER: &str = "invalid patch format of setElementOrder list";
const ERR_PRIMITIVE: &str = "invalid patch format of primitive list";
const ERR_LIST_OF_LISTS: &str = "lists of lists are not supported";

/// How a list field merges: by a key in its object elements, or as a set of scalars.
#[derive(Clone, Copy)]
enum ListMerge {
    Keyed(&'static str),
    Set,
}

/// Merge strategies of Container-like element types, by field name.
fn container_field(f: &str) -> Option<ListMerge> {
    Some(ListMerge::Keyed(match f {
        "env" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        _ => return None,
    }))
}

/// `patchStrategy:"merge"` fields of the supported kinds (k8s.io/api, 1.27–1.33), by path;
/// `ontainerStatuses` covers `containerStatuses`, `initContainerStatuses` and
/// `ephemeralContainerStatuses`.
fn list_merge(kind: &str, path: &[&str]) -> Option<ListMerge> {
    use ListMerge::{Keyed, Set};
    let object_meta = |rest: &[&str]| match rest {
        ["ownerReferences"] => Some(Keyed("uid")),
        ["finalizers"] => Some(Set),
        _ => None,
    };
    let pod_spec = |rest: &[&str]| match rest {
        ["containers" | "initContainers" | "ephemeralContainers"] => Some(Keyed("name")),
        ["containers" | "initContainers" | "ephemeralContainers", f] => container_field(f),
        ["volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims"] => {
            Some(Keyed("name"))
        }
        ["hostAliases"] => Some(Keyed("ip")),
        ["topologySpreadConstraints"] => Some(Keyed("topologyKey")),
        _ => None,
    };
    match (kind, path) {
        (_, ["metadata", rest @ ..]) => object_meta(rest),
        ("Deployment", ["spec", "template", "metadata", rest @ ..]) => object_meta(rest),
        ("Deployment", ["spec", "template", "spec", rest @ ..]) | ("Pod", ["spec", rest @ ..]) => {
            pod_spec(rest)
        }
        ("Pod" | "Deployment" | "Namespace", ["status", "conditions"]) => Some(Keyed("type")),
        ("Pod", ["status", "podIPs" | "hostIPs"]) => Some(Keyed("ip")),
        ("Pod", ["status", "resourceClaimStatuses"]) => Some(Keyed("name")),
        ("Pod", ["status", statuses, f]) if statuses.ends_with("ontainerStatuses") => match *f {
            "volumeMounts" => Some(Keyed("mountPath")),
            "allocatedResourcesStatus" => Some(Keyed("name")),
            _ => None,
        },
        ("ServiceAccount", ["secrets"]) => Some(Keyed("name")),
        _ => None,
    }
}

/// A patch value to store as is: directives and `null` members dropped.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_map(m)),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

pub(super) fn strip_map(m: &Map<String, Value>) -> Map<String, Value> {
    let keep = |(k, v): (&String, &Value)| !v.is_null() && !k.starts_with('$');
    m.iter()
        .filter(|e| keep(*e))
        .map(|(k, v)| (k.clone(), strip(v)))
        .collect()
}

/// `$setElementOrder/x` → `x`, or a 400 when `key` is not exactly `<prefix>/<field>`.
fn directive_field<'a>(key: &'a str, prefix: &str, err: &str) -> Result<&'a str, PatchError> {
    match key.split_once('/') {
        Some((p, field)) if p == prefix => Ok(field),
        _ => Err(PatchError::InvalidDirective(err.into())),
    }
}

/// Strategic merge of `patch` into the map `orig` at `path` (apimachinery's `mergeMap`).
pub(super) fn merge_map<'p>(
    kind: &str,
    mut orig: Map<String, Value>,
    patch: &'p Map<String, Value>,
    path: &mut Vec<&'p str>,
) -> Result<Map<String, Value>, PatchError> {
    match patch.get(PATCH).map(|d| (d, d.as_str())) {
        None => {}
        Some((_, Some("replace"))) => return Ok(strip_map(patch)),
        Some((_, Some("delete"))) => return Ok(Map::new()),
        Some((d, _)) => return Err(failed(format!("unknown patch type: {d} in map"))),
    }
    if let Some(rk) = patch.get(RETAIN_KEYS) {
        let bad = || PatchError::InvalidDirective(ERR_RETAIN_KEYS.into());
        let keep: HashSet<&str> = rk
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .flat_map(Value::as_str)
            .collect();
        let covered = |(k, v): (&String, &Value)| {
            v.is_null() || k.starts_with('$') || keep.contains(k.as_str())
        };
        if !patch.iter().all(covered) {
            return Err(bad());
        }
        orig.retain(|k, _| keep.contains(k.as_str()));
    }
    let mut ordered = HashSet::new();
    for (k, order) in patch.iter().filter(|(k, _)| k.starts_with(ORDER_PREFIX)) {
        let Value::Array(order) = order else {
            return Err(failed(format!("expected a list in {k}, got {order}")));
        };
        let field = directive_field(k, ORDER_PREFIX, ERR_ORDER)?;
        path.push(field);
        let merged = merge_ordered(kind, orig.get_mut(field), patch.get(field), order, path);
        path.pop();
        if let Some(list) = merged? {
            orig.insert(field.to_owned(), Value::Array(list));
            ordered.insert(field);
        }
    }
    for (k, pv) in patch.iter().filter(|(k, _)| !ordered.contains(k.as_str())) {
        if k.starts_with(DELETE_PREFIX) {
            let field = directive_field(k, DELETE_PREFIX, ERR_PRIMITIVE)?;
            match (pv, orig.get_mut(field)) {
                (Value::Null, _) => drop(orig.shift_remove(field)),
                (Value::Array(del), Some(Value::Array(cur))) => {
                    let del: HashSet<String> = del.iter().map(Value::to_string).collect();
                    cur.retain(|v| !del.contains(&v.to_string()));
                }
                // No list: nothing to delete (apimachinery would store the deletion list).
                (Value::Array(_), _) => {}
                _ => return Err(PatchError::InvalidDirective(ERR_PRIMITIVE.into())),
            }
        } else if k.starts_with('$') {
            // Directives handled above; unknown ones are dropped like unknown fields.
        } else if pv.is_null() {
            orig.shift_remove(k);
        } else {
            path.push(k);
            let merged = match orig.get_mut(k) {
                Some(slot) => merge_value(kind, std::mem::take(slot), pv, path),
                None => Ok(strip(pv)),
            };
            path.pop();
            orig.insert(k.clone(), merged?);
        }
    }
    Ok(orig)
}

fn merge_value<'p>(
    kind: &str,
    cur: Value,
    pv: &'p Value,
    path: &mut Vec<&'p str>,
) -> Result<Value, PatchError> {
    Ok(match (cur, pv, list_merge(kind, path)) {
        (Value::Object(o), Value::Object(p), _) => Value::Object(merge_map(kind, o, p, path)?),
        (Value::Array(o), Value::Array(p), Some(how)) => {
            Value::Array(merge_list(kind, o, p, how, path)?)
        }
        _ => strip(pv),
    })
}

/// Whether every element of the lists is an object, demanding one shared element type as
/// apimachinery's `sliceElementType` does; `None` when there are no elements at all.
fn all_objects(lists: [&[Value]; 2]) -> Result<Option<bool>, PatchError> {
    let mut elems = lists.into_iter().flatten();
    let Some(first) = elems.next() else {
        return Ok(None);
    };
    if first.is_array() {
        return Err(PatchError::Invalid(ERR_LIST_OF_LISTS.into()));
    }
    let kind = std::mem::discriminant(first);
    if elems.any(|v| std::mem::discriminant(v) != kind) {
        return Err(failed("list element types are not identical"));
    }
    Ok(Some(first.is_object()))
}

/// What a list element is identified by: its merge key's value, or itself for scalars.
fn ident(v: &Value, key: Option<&str>) -> Result<String, PatchError> {
    match (key, v) {
        (None, v) => Ok(v.to_string()),
        (Some(k), Value::Object(m)) => match m.get(k) {
            Some(id) => Ok(id.to_string()),
            None => Err(failed(format!(
                "map: {v} does not contain declared merge key: {k}"
            ))),
        },
        (Some(_), v) => Err(failed(format!("expected a map, but received {v}"))),
    }
}

/// First position of each identity in `list`.
fn positions<'v>(
    list: impl IntoIterator<Item = &'v Value>,
    key: Option<&str>,
) -> Result<HashMap<String, usize>, PatchError> {
    let mut at = HashMap::new();
    for (i, v) in list.into_iter().enumerate() {
        at.entry(ident(v, key)?).or_insert(i);
    }
    Ok(at)
}

/// Strategic merge of the lists of a `patchStrategy:"merge"` field (apimachinery `mergeSlice`).
fn merge_list<'p>(
    kind: &str,
    orig: Vec<Value>,
    patch: &'p [Value],
    how: ListMerge,
    path: &mut Vec<&'p str>,
) -> Result<Vec<Value>, PatchError> {
    let key = match (all_objects([&orig, patch])?, how) {
        (None, _) => return Ok(orig),
        (Some(false), _) => {
            let (in_patch, in_live) = (positions(patch, None)?, positions(&orig, None)?);
            let mut seen = HashSet::new();
            let all = orig.into_iter().chain(patch.iter().cloned());
            let merged = all.filter(|v| seen.insert(v.to_string())).collect();
            return order_merged(merged, &in_patch, &in_live, None);
        }
        (Some(true), ListMerge::Set) => return Err(failed("cannot merge lists without merge key")),
        (Some(true), ListMerge::Keyed(key)) => key,
    };
    let (mut deleted, mut replace, mut plain) = (HashSet::new(), false, Vec::new());
    for p in patch {
        match p.get(PATCH).map(|d| (d, d.as_str())) {
            None => plain.push(p),
            Some((_, Some("delete"))) => drop(deleted.insert(ident(p, Some(key))?)),
            Some((_, Some("replace"))) => replace = true,
            Some((_, Some("merge"))) => {
                return Err(failed("merging lists cannot yet be specified in the patch"))
            }
            Some((d, _)) => return Err(failed(format!("unknown patch type: {d} in map: {p}"))),
        }
    }
    if replace {
        return Ok(plain.into_iter().map(strip).collect());
    }
    let mut merged = orig;
    merged.retain(|e| e.get(key).is_none_or(|v| !deleted.contains(&v.to_string())));
    let in_live = positions(&merged, Some(key))?;
    let in_patch = positions(plain.iter().copied(), Some(key))?;
    let mut seen = in_live.clone();
    for p in plain {
        let (id, Value::Object(pm)) = (ident(p, Some(key))?, p) else {
            continue;
        };
        if let Some(Value::Object(cur)) = seen.get(&id).and_then(|&i| merged.get_mut(i)) {
            *cur = merge_map(kind, std::mem::take(cur), pm, path)?;
        } else {
            seen.insert(id, merged.len());
            merged.push(Value::Object(strip_map(pm)));
        }
    }
    order_merged(merged, &in_patch, &in_live, Some(key))
}

/// Puts the items named in the patch in its order and the others in the live list's order,
/// interleaved as apimachinery's `normalizeElementOrder` does: a live-only item goes first
/// only when it stood before the next patch item in the live list.
fn order_merged(
    merged: Vec<Value>,
    in_patch: &HashMap<String, usize>,
    in_live: &HashMap<String, usize>,
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for v in merged {
        let id = ident(&v, key)?;
        let live = in_live.get(&id).copied();
        match in_patch.get(&id) {
            Some(&i) => mine.push((i, live, v)),
            None => theirs.push((live.unwrap_or(usize::MAX), live, v)),
        }
    }
    mine.sort_by_key(|e| e.0);
    theirs.sort_by_key(|e| e.0);
    let (mut mine, mut theirs) = (mine.into_iter().peekable(), theirs.into_iter().peekable());
    let mut out = Vec::new();
    while let Some(next) = match (theirs.peek(), mine.peek()) {
        (Some((_, Some(l), _)), Some((_, Some(r), _))) if l < r => theirs.next(),
        (Some(_), None) => theirs.next(),
        _ => mine.next(),
    } {
        out.push(next.2);
    }
    Ok(out)
}

/// A list named by `$setElementOrder/<field>` (apimachinery `mergePatchIntoOriginal`): merged
/// with its patch list if any, then put in the directive's order. `None`: there is no such list.
fn merge_ordered<'p>(
    kind: &str,
    cur: Option<&mut Value>,
    patch_list: Option<&'p Value>,
    order: &[Value],
    path: &mut Vec<&'p str>,
) -> Result<Option<Vec<Value>>, PatchError> {
    let how = list_merge(kind, path);
    let key = match how {
        Some(ListMerge::Keyed(k)) => Some(k),
        _ => None,
    };
    let not_list = |v: &Value| failed(format!("expected a list, but received {v}"));
    let orig = match cur {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(std::mem::take(a)),
        Some(other) => return Err(not_list(other)),
    };
    let plist = match patch_list {
        None => None,
        Some(Value::Array(a)) => Some(a.as_slice()),
        Some(other) => return Err(not_list(other)),
    };
    let (live, patched) = (
        orig.as_deref().unwrap_or_default(),
        plist.unwrap_or_default(),
    );
    check_order(patched, order, key)?;
    let objects = all_objects([live, patched])?;
    let in_live = positions(orig.iter().flatten(), key)?;
    let merged = match (orig, plist, how) {
        (None, None, _) => return Ok(None),
        (Some(o), None, _) => o,
        (Some(o), Some(p), Some(how)) => merge_list(kind, o, p, how, path)?,
        (_, Some(p), _) => p.iter().map(strip).collect(),
    };
    match objects {
        None => Err(failed("no elements in any of the given slices")),
        Some(true) if key.is_none() => {
            Err(failed("cannot order a list of maps without a merge key"))
        }
        Some(_) => order_merged(merged, &positions(order, key)?, &in_live, key).map(Some),
    }
}

/// The patch list must follow the `$setElementOrder` list (`validatePatchWithSetOrderList`).
fn check_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), PatchError> {
    if order.is_empty() {
        return Ok(());
    }
    if key.is_some() {
        if let Some(p) = patch.iter().find(|p| !p.is_object()) {
            return Err(failed(format!("expected a map, but received {p}")));
        }
    }
    let mut order = order.iter();
    for p in patch.iter().filter(|p| p.get(PATCH).is_none()) {
        let id = ident(p, key)?;
        if !order.by_ref().any(|o| ident(o, key).is_ok_and(|o| o == id)) {
            let list = Value::Array(patch.to_vec());
            return Err(failed(format!(
                "the order in patch list {list} doesn't match {ORDER_PREFIX} list"
            )));
        }
    }
    Ok(())
}
