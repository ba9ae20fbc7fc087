//! The write guard: request bodies a masked user may not send upstream.
//!
//! Masking reads opens two ways to lose or leak the real values through writes
//! (`k8s-wire.md` §8):
//! - **Write-back.** `kubectl edit` of a masked Secret sends the placeholder back and the real
//!   value is destroyed. Refused: any string anywhere in the body (an object, a merge or
//!   strategic-merge patch, an apply body, the values of a JSON patch) that is a placeholder or
//!   holds one — including inside JSON held in a string, such as a last-applied annotation.
//! - **Oracles.** A JSON patch (RFC 6902) `test` op confirms a guessed value (success vs 422);
//!   `copy`/`move` from `/data/password` into an annotation exfiltrates it. Refused: a `test`,
//!   `copy` or `move` whose `path` or `from` touches a masked path of the patched kind — the
//!   path itself, anything under it, or any parent of it (`test` on `/data`, `/metadata` or the
//!   root `""` reads the masked values below).
//!
//! Pointers are read three ways and refused if any reading touches a masked path: as RFC 6901
//! says (split on `/`, then `~1` → `/`, `~0` → `~`), the same with empty segments dropped
//! (`//data`, `/data/`), and with escapes decoded *before* splitting (`/data~1x` is the root
//! member `data/x` to RFC 6901 and to the API server's json-patch, but `data` → `x` to a
//! careless one). `/d~0ata` is `d~ata` in every reading and passes. A `~` not followed by `0`
//! or `1` is refused, as is a pointer not starting with `/`. Refusing too much costs a masked
//! user nothing they should have.
//!
//! Limits: paths are those of the patched kind (`None`: of every kind), relative to the
//! patched object; a test on an object embedded in another kind's spec is not recognised.
//!
//! Trusts: nothing in the body. Rejects also, fail closed: a body that does not decode for its
//! Content-Type, an unknown Content-Type, a JSON patch that is not an array of operation
//! objects, an unknown operation, and a missing or non-string `path`/`from`.

use serde_json::Value;

use super::placeholder::{contains_placeholder, is_placeholder};
use super::profile::{MaskProfile, Seg};
use crate::kube::body;

/// How deep decoded JSON held in strings is searched for placeholders.
const MAX_EMBEDDED: usize = 4;
/// How deep a body may nest (serde_json already stops at 128).
const MAX_DEPTH: usize = 512;

/// Why a request body is refused. One line, fit for a `Status` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteRefused {
    /// The body writes back a masked placeholder.
    #[error("refused: the body writes hoop-kube's masked placeholder at {at} back; it would replace the real value (was a masked object edited?)")]
    Placeholder { at: String },
    /// A JSON patch operation that would read masked values.
    #[error("refused: JSON patch operation {index} ({op}) reaches masked data at {pointer:?}; masked users may not test, copy or move masked fields")]
    ReadsMasked {
        index: usize,
        op: &'static str,
        pointer: String,
    },
    /// A JSON patch the guard cannot check.
    #[error("refused: JSON patch operation {index}: {reason}")]
    BadPatch { index: usize, reason: String },
    /// A body the guard cannot read.
    #[error("refused: the body cannot be checked for masked values: {0}")]
    Undecodable(String),
}

/// Check a request body as sent: `content_type` is the request's header, `kind` the kind of
/// the object written (`None` when unknown: every kind's masked paths count). An empty body
/// passes.
pub fn check_body(
    profile: &MaskProfile,
    kind: Option<&str>,
    content_type: Option<&str>,
    body_bytes: &[u8],
) -> Result<(), WriteRefused> {
    let value = body::decode(content_type, body_bytes)
        .map_err(|e| WriteRefused::Undecodable(e.to_string()))?;
    let essence = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    check_decoded(
        profile,
        kind,
        &value,
        essence == "application/json-patch+json",
    )
}

/// Check a decoded body; `json_patch` when it was sent as `application/json-patch+json`.
pub fn check_decoded(
    profile: &MaskProfile,
    kind: Option<&str>,
    value: &Value,
    json_patch: bool,
) -> Result<(), WriteRefused> {
    let mut at = String::new();
    find_placeholder(value, &mut at, 0, 0)?;
    if json_patch {
        check_patch(profile, kind, value)?;
    }
    Ok(())
}

fn find_placeholder(
    v: &Value,
    at: &mut String,
    depth: usize,
    embedded: usize,
) -> Result<(), WriteRefused> {
    if depth > MAX_DEPTH {
        return Err(WriteRefused::Undecodable("the body nests too deep".into()));
    }
    match v {
        Value::String(s) => {
            if is_placeholder(s) || contains_placeholder(s) {
                return Err(WriteRefused::Placeholder { at: shown(at) });
            }
            let t = s.trim_start();
            if embedded < MAX_EMBEDDED && (t.starts_with('{') || t.starts_with('[')) {
                if let Ok(inner) = serde_json::from_str::<Value>(s) {
                    let n = at.len();
                    at.push_str(" (in the JSON it holds) ");
                    let r = find_placeholder(&inner, at, depth + 1, embedded + 1);
                    at.truncate(n);
                    r?;
                }
            }
        }
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                let n = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                let r = find_placeholder(e, at, depth + 1, embedded);
                at.truncate(n);
                r?;
            }
        }
        Value::Object(m) => {
            for (k, e) in m {
                let n = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                let r = find_placeholder(e, at, depth + 1, embedded);
                at.truncate(n);
                r?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A JSON pointer for a message: control characters escaped, length capped.
fn shown(at: &str) -> String {
    let at = if at.is_empty() { "the root" } else { at };
    let mut s: String = at.chars().take(200).flat_map(char::escape_debug).collect();
    if at.chars().count() > 200 {
        s.push('…');
    }
    s
}

fn check_patch(
    profile: &MaskProfile,
    kind: Option<&str>,
    value: &Value,
) -> Result<(), WriteRefused> {
    let Value::Array(ops) = value else {
        return Err(WriteRefused::Undecodable(
            "a JSON patch must be an array of operations".into(),
        ));
    };
    let paths = profile.masked_paths(kind);
    for (index, op) in ops.iter().enumerate() {
        let bad = |reason: String| WriteRefused::BadPatch { index, reason };
        let Value::Object(m) = op else {
            return Err(bad("not an object".into()));
        };
        let name = match m.get("op") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(bad("no string \"op\"".into())),
        };
        let (op, fields): (&'static str, &[&str]) = match name {
            "add" => ("add", &[]),
            "remove" => ("remove", &[]),
            "replace" => ("replace", &[]),
            "test" => ("test", &["path"]),
            "copy" => ("copy", &["from", "path"]),
            "move" => ("move", &["from", "path"]),
            other => return Err(bad(format!("unknown operation {:?}", shown(other)))),
        };
        // Every operation's path must be a pointer; the reading ones must stay off masked data.
        for field in ["path", "from"] {
            let needed = field == "path" || fields.contains(&field);
            let pointer = match m.get(field) {
                Some(Value::String(s)) => s.as_str(),
                None if !needed => continue,
                _ => return Err(bad(format!("no string {field:?}"))),
            };
            let readings = readings(pointer)
                .map_err(|why| bad(format!("{field} {:?}: {why}", shown(pointer))))?;
            if fields.contains(&field)
                && readings
                    .iter()
                    .any(|r| paths.iter().any(|p| overlaps(r, p)))
            {
                return Err(WriteRefused::ReadsMasked {
                    index,
                    op,
                    pointer: shown(pointer),
                });
            }
        }
    }
    Ok(())
}

/// The ways a pointer may be read (see the module doc).
fn readings(pointer: &str) -> Result<[Vec<String>; 3], &'static str> {
    if pointer.is_empty() {
        return Ok([Vec::new(), Vec::new(), Vec::new()]);
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON pointer must start with '/'");
    };
    let exact: Vec<String> = rest.split('/').map(unescape).collect::<Result<_, _>>()?;
    let dropped: Vec<String> = exact.iter().filter(|t| !t.is_empty()).cloned().collect();
    let decoded_first: Vec<String> = unescape(rest)?
        .split('/')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    Ok([exact, dropped, decoded_first])
}

/// RFC 6901 token unescaping; a `~` not followed by `0` or `1` is an error.
fn unescape(token: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err("'~' must be followed by '0' or '1'"),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Whether a pointer and a masked path meet: one is a prefix of the other.
fn overlaps(tokens: &[String], path: &[Seg]) -> bool {
    tokens.iter().zip(path).all(|(t, seg)| seg.matches(t))
}

#[cfg(test)]
#[path = "write_guard_tests.rs"]
mod tests;
