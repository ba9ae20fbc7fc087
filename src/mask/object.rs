//! Structural masking of one JSON value: which values of which objects become placeholders.
//!
//! Decided by each object's own `kind`, wherever the object sits — a `Secret` at the top, in a
//! `SecretList` or `List`, in a Table row's `object`, in a watch event, inside a custom
//! resource — never by the URL, which has many spellings (`k8s-wire.md` §8). Kinds come from
//! the objects, plus two implied by position: items of a `FooList` are also masked as `Foo`
//! (the API server leaves `kind` off list items), and a last-applied manifest without `kind`
//! is masked as the object it annotates. Groups are not consulted ([`super::profile`]).
//!
//! The `kubectl.kubernetes.io/last-applied-configuration` annotation, on any object, is parsed
//! as JSON, masked with the same rules (it is the applied manifest: a Secret's `data` or
//! plaintext `stringData`, a Deployment's env literals) and written back as a JSON string of
//! valid JSON with its original formatting, so `kubectl apply`'s three-way diff keeps working.
//! An annotation that is not a JSON object becomes [`LAST_APPLIED_INVALID`] (fail closed).
//!
//! Left alone on purpose: `Status` objects (an API error's `message` and `details.causes` can
//! echo a value a webhook or admission plugin quoted — masking free text is not structural;
//! the relay must not grant what produces them to users it masks), `managedFields` (field
//! names only), Event messages, and Table cells (Secrets show type and key count there).
//!
//! Trusts: nothing; the bytes go through [`super::json`] first, so what is masked is what every
//! client reads. Rejects: what that parser rejects. Unknown fields and formatting outside the
//! masked values are copied byte for byte.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;

use super::json::{self, JsonError};
use super::placeholder::{BASE64_JSON, LAST_APPLIED_INVALID, TEXT_JSON};
use super::profile::{MaskProfile, Ph, Seg};
use super::tape::{Tape, KEY};

/// How many last-applied annotations may nest inside each other's manifests before the
/// innermost is replaced whole.
const MAX_NESTED_MANIFESTS: usize = 4;

/// Why a value could not be masked. One line; never quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MaskError {
    /// The bytes are not JSON the masker passes on.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// A watch event that is not `{"type": <string>, "object": <object>}`.
    #[error("not a watch event: {0}")]
    NotAnEvent(&'static str),
    /// [`mask_value`] could not turn the value into JSON or back.
    #[error("the value could not be re-encoded: {0}")]
    Reencode(String),
}

/// Mask a whole JSON body (a GET, LIST, write response or WebSocket watch message). Returns the
/// masked bytes and how many values were masked.
pub fn mask_body(profile: &MaskProfile, body: &[u8]) -> Result<(Vec<u8>, usize), MaskError> {
    let mut out = Vec::with_capacity(body.len());
    let n = mask_body_into(profile, body, &mut out)?;
    Ok((out, n))
}

/// [`mask_body`], appending to `out` (left as it was on error).
pub fn mask_body_into(
    profile: &MaskProfile,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, MaskError> {
    let tape = json::parse(body)?;
    Ok(mask_tape(profile, &tape, &[], 0, out))
}

/// Mask a decoded value in place; returns how many values were masked. The value goes through
/// the same byte-level masker as [`mask_body`] (one set of rules), so a value nested deeper than
/// [`json::MAX_DEPTH`] is an error here too.
pub fn mask_value(profile: &MaskProfile, value: &mut Value) -> Result<usize, MaskError> {
    let bytes = serde_json::to_vec(&*value).map_err(|e| MaskError::Reencode(e.to_string()))?;
    let mut out = Vec::with_capacity(bytes.len());
    let n = mask_body_into(profile, &bytes, &mut out)?;
    if n > 0 {
        *value = serde_json::from_slice(&out).map_err(|e| MaskError::Reencode(e.to_string()))?;
    }
    Ok(n)
}

/// Mask a parsed value into `out`; `root_kinds` are the kinds implied for a root object (the
/// annotated object's, for a last-applied manifest), `nest` how many manifests deep this is.
pub(crate) fn mask_tape(
    profile: &MaskProfile,
    tape: &Tape<'_>,
    root_kinds: &[&str],
    nest: usize,
    out: &mut Vec<u8>,
) -> usize {
    if !profile.masks_objects() || tape.toks.is_empty() {
        out.extend_from_slice(tape.src);
        return 0;
    }
    let mut w = Walk {
        tape,
        profile,
        edits: Vec::new(),
        done: Vec::new(),
        implied: HashMap::new(),
        nest,
    };
    w.run(root_kinds);
    w.finish(out)
}

enum With {
    Ph(Ph),
    Bytes(Vec<u8>),
}

struct Edit {
    start: u32,
    end: u32,
    with: With,
    /// Values masked by this edit (more than one for a rewritten annotation).
    count: usize,
}

struct Walk<'t, 'a> {
    tape: &'t Tape<'a>,
    profile: &'t MaskProfile,
    edits: Vec<Edit>,
    /// A bit per token already masked (a scalar) or masked throughout (a container): each token
    /// is masked once, by the first rule that reaches it, and never scanned twice — so nesting
    /// masked objects in masked objects costs no more than the tokens.
    done: Vec<u64>,
    /// List item → the list whose kind implies the item's.
    implied: HashMap<u32, u32>,
    nest: usize,
}

impl<'a> Walk<'_, 'a> {
    fn run(&mut self, root_kinds: &[&str]) {
        let tape = self.tape;
        for &obj in &tape.kinded {
            if let Some(kind) = tape.kind(obj) {
                self.apply_kind(obj, &kind);
                self.list_items(obj, &kind);
            }
        }
        if tape.is_object(0) {
            for k in root_kinds {
                self.apply_kind(0, k);
            }
        }
        if self.profile.masks_last_applied() {
            for la in &tape.last_applied {
                let kinds = self.kinds_of(la.owner, root_kinds);
                let kinds: Vec<&str> = kinds.iter().map(|k| k.as_ref()).collect();
                self.last_applied(la.value, &kinds);
            }
        }
    }

    /// Items of a `FooList` are masked as `Foo` too (they usually have no `kind` of their own).
    fn list_items(&mut self, list: u32, kind: &str) {
        let Some(item_kind) = kind.strip_suffix("List").filter(|k| !k.is_empty()) else {
            return;
        };
        let tape = self.tape;
        let rules = !self.profile.rules(item_kind).is_empty();
        let track = self.profile.masks_last_applied();
        if !rules && !track {
            return;
        }
        for (k, v) in tape.members(list) {
            if !tape.is_array(v) || !tape.key_matches(k, &Seg::Lit("items")) {
                continue;
            }
            for item in tape.elements(v) {
                if tape.is_object(item) {
                    if rules {
                        self.apply_kind(item, item_kind);
                    }
                    if track {
                        self.implied.insert(item, list);
                    }
                }
            }
        }
    }

    /// Every kind object `obj` is masked as.
    fn kinds_of(&self, obj: Option<u32>, root_kinds: &[&str]) -> Vec<Cow<'a, str>> {
        let Some(obj) = obj else { return Vec::new() };
        let mut kinds: Vec<Cow<'a, str>> = Vec::new();
        kinds.extend(self.tape.kind(obj));
        if let Some(list) = self.implied.get(&obj) {
            if let Some(lk) = self.tape.kind(*list) {
                if let Some(item) = lk.strip_suffix("List") {
                    kinds.push(Cow::Owned(item.to_string()));
                }
            }
        }
        if obj == 0 {
            kinds.extend(root_kinds.iter().map(|k| Cow::Owned(k.to_string())));
        }
        kinds
    }

    fn apply_kind(&mut self, obj: u32, kind: &str) {
        let profile = self.profile;
        for rule in profile.rules(kind) {
            self.apply(obj, &rule.path, rule.ph);
        }
    }

    fn apply(&mut self, node: u32, path: &[Seg], ph: Ph) {
        let tape = self.tape;
        let Some((seg, rest)) = path.split_first() else {
            self.leaf(node, ph);
            return;
        };
        if tape.is_object(node) {
            for (k, v) in tape.members(node) {
                if tape.key_matches(k, seg) {
                    self.apply(v, rest, ph);
                }
            }
        } else if tape.is_array(node) && seg.matches_elements() {
            for e in tape.elements(node) {
                self.apply(e, rest, ph);
            }
        }
    }

    /// Mask a value at a masked position: a string, number or boolean becomes the placeholder;
    /// in an object or array every such value inside does; `null` stays.
    fn leaf(&mut self, node: u32, ph: Ph) {
        let tape = self.tape;
        match tape.first_byte(node) {
            b'{' | b'[' => {
                if !self.mark(node) {
                    return;
                }
                let (mut i, end) = (node + 1, tape.tok(node).next);
                while i < end {
                    let t = tape.tok(i);
                    match tape.src[t.start as usize] {
                        b'{' | b'[' if !self.mark(i) => {
                            i = t.next;
                            continue;
                        }
                        b'{' | b'[' | b'n' => {}
                        b'"' if t.aux & KEY != 0 => {}
                        _ => self.edit(i, With::Ph(ph), 1),
                    }
                    i += 1;
                }
            }
            b'n' => {}
            _ => self.edit(node, With::Ph(ph), 1),
        }
    }

    /// Mark token `i` done; false if it already was.
    fn mark(&mut self, i: u32) -> bool {
        if self.done.is_empty() {
            self.done = vec![0; self.tape.toks.len().div_ceil(64)];
        }
        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
        let fresh = self.done[w] & b == 0;
        self.done[w] |= b;
        fresh
    }

    fn is_done(&self, i: u32) -> bool {
        self.done
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Mask token `tok` unless a rule already did.
    fn edit(&mut self, tok: u32, with: With, count: usize) {
        if !self.mark(tok) {
            return;
        }
        let t = self.tape.tok(tok);
        self.edits.push(Edit {
            start: t.start,
            end: t.end,
            with,
            count,
        });
    }

    /// The last-applied annotation value `value`, on an object masked as `kinds`.
    fn last_applied(&mut self, value: u32, kinds: &[&str]) {
        let tape = self.tape;
        if self.is_done(value) {
            return;
        }
        if tape.first_byte(value) != b'"' {
            // Annotations are strings; whatever this is, hide every value in it.
            self.leaf(value, Ph::Text);
            return;
        }
        let manifest = tape.str_at(value);
        let (text, count) =
            match mask_manifest(self.profile, manifest.as_bytes(), kinds, self.nest + 1) {
                Some(r) => r,
                None => return,
            };
        let quoted =
            serde_json::to_vec(&text).unwrap_or_else(|_| LAST_APPLIED_INVALID.as_bytes().to_vec());
        self.edit(value, With::Bytes(quoted), count);
    }

    fn finish(mut self, out: &mut Vec<u8>) -> usize {
        // Rules run kind by kind, not in document order.
        self.edits.sort_unstable_by_key(|e| e.start);
        let src = self.tape.src;
        out.reserve(src.len());
        let mut pos = 0usize;
        let mut count = 0;
        for e in &self.edits {
            out.extend_from_slice(&src[pos..e.start as usize]);
            match &e.with {
                With::Ph(Ph::Text) => out.extend_from_slice(TEXT_JSON),
                With::Ph(Ph::Base64) => out.extend_from_slice(BASE64_JSON),
                With::Bytes(b) => out.extend_from_slice(b),
            }
            pos = e.end as usize;
            count += e.count;
        }
        out.extend_from_slice(&src[pos..]);
        count
    }
}

/// Mask the manifest text of a last-applied annotation. `None`: nothing in it needed masking.
/// Otherwise the new annotation text and how many values were masked; a manifest that is not a
/// JSON object, or nests too deep, is replaced whole and counts as one.
fn mask_manifest(
    profile: &MaskProfile,
    text: &[u8],
    kinds: &[&str],
    nest: usize,
) -> Option<(String, usize)> {
    let invalid = || Some((LAST_APPLIED_INVALID.to_string(), 1));
    if nest > MAX_NESTED_MANIFESTS {
        return invalid();
    }
    let Ok(tape) = json::parse(text) else {
        return invalid();
    };
    if !tape.is_object(0) {
        return invalid();
    }
    let mut out = Vec::with_capacity(text.len());
    match mask_tape(profile, &tape, kinds, nest, &mut out) {
        0 => None,
        n => match String::from_utf8(out) {
            Ok(s) => Some((s, n)),
            Err(_) => invalid(),
        },
    }
}

#[cfg(test)]
#[path = "object_tests.rs"]
pub(crate) mod tests;
