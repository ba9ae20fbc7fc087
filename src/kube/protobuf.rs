//! Kubernetes protobuf request bodies, decoded to the JSON the apiserver would hold.
//!
//! kubectl 1.32 and later send the body of every typed-client write as
//! `application/vnd.kubernetes.protobuf`: `kubectl create <kind>`, `create token`, `auth can-i`,
//! `auth whoami`, `debug`, `autoscale`, the PUTs of `certificate approve` and `auth reconcile`,
//! and the `DeleteOptions` of typed deletes. 1.27–1.31 send the same objects as JSON, and no
//! version sends a PATCH as protobuf (`testdata/protobuf/README.md` has the captured table). The
//! simulated apiserver stores JSON and the relay's policy engine reads JSON, so both use this one
//! decoder, free of I/O.
//!
//! The envelope is the `k8s\0` magic and a `runtime.Unknown` whose `typeMeta` names the kind and
//! whose `raw` holds the object's message. The object is read against declarative schema tables
//! (`protobuf_schema.rs`, generated from the `generated.proto` and `types.go` files of
//! kubernetes/api and kubernetes/apimachinery) and written as Go's `encoding/json` writes the
//! typed object: JSON names from the Go tags, fields in Go struct order, `omitempty` honoured,
//! nil slices, maps and pointers without `omitempty` as `null`, non-pointer structs always
//! present (`"status":{}`), a zero `metav1.Time` as `null`, map keys sorted. For every captured
//! vector the output is byte for byte kubectl 1.31's JSON body for the same command.
//!
//! What it trusts: nothing in the body. It fails closed, so that the relay never authorizes a
//! body it did not fully read: an unknown kind, an unknown field number in a known message, a
//! wrong wire type, groups, a non-repeated field or map key given twice (the apiserver would
//! take the last or merge; a policy reader must not disagree with it), truncation, varints over
//! 10 bytes, integers out of range for their field, booleans other than 0/1, strings that are
//! not UTF-8 (Go would keep the bytes), malformed `Quantity`/`IntOrString`/`Time`, a
//! `contentEncoding` or foreign `contentType` in the envelope, nesting deeper than
//! [`MAX_DEPTH`], more than [`MAX_VALUES`] values and bodies over [`MAX_BODY`] are all errors.
//! It never panics.
//!
//! Where it differs from the apiserver: `Quantity` strings are validated against
//! `ParseQuantity`'s grammar but not canonicalised (`"1000m"` stays `"1000m"`, the apiserver
//! would write `"1"`; kubectl always sends canonical strings); an envelope without `typeMeta` is
//! refused, where the apiserver would take the kind from the URL; `MicroTime` and `Duration` are
//! not implemented because no decodable kind has them.

use base64::Engine as _;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::collections::BTreeMap;

#[rustfmt::skip] // generated tables, one field per line
#[path = "protobuf_schema.rs"]
mod schema;

/// The media type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Largest body accepted, in bytes: the apiserver's own request limit (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Deepest nesting of messages accepted (the envelope counts as one).
pub const MAX_DEPTH: usize = 32;

/// Most JSON values one body may decode to. Zero-valued fields are filled in as Go would, so a
/// 2-byte empty message can become several values: without this bound a 3 MiB body of empty
/// containers would take ~800 MB. Real objects stay far below (a 1 MiB ConfigMap of 100-byte
/// values is ~20 000).
pub const MAX_VALUES: usize = 1 << 18;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtobufError {
    /// The body does not start with the `k8s\0` magic.
    #[error("not a Kubernetes protobuf body: missing k8s\\0 magic")]
    MissingMagic,
    /// The body is larger than [`MAX_BODY`].
    #[error("protobuf body of {len} bytes exceeds the {MAX_BODY} byte limit")]
    TooLarge {
        /// Length of the body.
        len: usize,
    },
    /// A key, length, value or message runs past the end of its buffer.
    #[error("truncated protobuf")]
    Truncated,
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("malformed protobuf varint")]
    BadVarint,
    /// A field has a wire type its schema does not allow (groups and types 6/7 are never allowed).
    #[error("wrong wire type {wire_type} for field {field} of {message}")]
    BadWireType {
        /// Message being decoded.
        message: &'static str,
        /// Field number.
        field: u32,
        /// Wire type found.
        wire_type: u8,
    },
    /// Messages nest deeper than [`MAX_DEPTH`].
    #[error("protobuf nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// The object would hold more than [`MAX_VALUES`] JSON values.
    #[error("protobuf body decodes to more than {MAX_VALUES} values")]
    TooManyValues,
    /// The envelope names a kind this decoder has no schema for (see [`supported_kinds`]).
    #[error("cannot decode protobuf kind {kind:?} of apiVersion {api_version:?}")]
    UnknownKind {
        /// `typeMeta.apiVersion` of the envelope.
        api_version: String,
        /// `typeMeta.kind` of the envelope.
        kind: String,
    },
    /// A known message carries a field number its schema lacks.
    #[error("unknown field {field} in {message}")]
    UnknownField {
        /// Message being decoded.
        message: &'static str,
        /// Field number.
        field: u32,
    },
    /// A non-repeated field, or a map key, appears twice.
    #[error("duplicate field {field} in {message}")]
    DuplicateField {
        /// Message being decoded (`<map>` for a repeated map key).
        message: &'static str,
        /// Field number.
        field: u32,
    },
    /// A string field is not valid UTF-8.
    #[error("field {field} of {message} is not UTF-8")]
    InvalidUtf8 {
        /// Message being decoded.
        message: &'static str,
        /// Field number.
        field: u32,
    },
    /// A value is out of range or malformed for its type.
    #[error("invalid value in field {field} of {message}: {reason}")]
    InvalidValue {
        /// Message being decoded.
        message: &'static str,
        /// Field number.
        field: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The envelope declares a `contentEncoding` or a `contentType` other than protobuf.
    #[error("unsupported protobuf envelope encoding {content_encoding:?} / type {content_type:?}")]
    UnsupportedEncoding {
        /// `contentEncoding` of the envelope.
        content_encoding: String,
        /// `contentType` of the envelope.
        content_type: String,
    },
}

use ProtobufError as E;

/// Decode a body (`k8s\0` magic + runtime.Unknown{typeMeta(1){apiVersion(1),kind(2)}, raw(2),
/// contentEncoding(3), contentType(4)}) into the JSON object the apiserver would hold, with
/// "apiVersion" and "kind" set from the typeMeta.
///
/// The caller must still check that the kind fits the request's URL, as the apiserver does.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    if body.len() > MAX_BODY {
        return Err(E::TooLarge { len: body.len() });
    }
    let rest = body.strip_prefix(MAGIC.as_slice()).ok_or(E::MissingMagic)?;
    const UNKNOWN: &str = "runtime.Unknown";
    const TYPE_META: &str = "runtime.TypeMeta";
    // Every envelope field is length-delimited: typeMeta, raw, contentEncoding, contentType.
    let mut fields: [Option<&[u8]>; 4] = [None; 4];
    let mut r = Reader(rest);
    while let Some((field, wt)) = r.key()? {
        let b = r.len_delim(UNKNOWN, field, wt)?;
        let slot = match field {
            1..=4 => &mut fields[field as usize - 1],
            _ => return Err(unknown(UNKNOWN, field)),
        };
        if slot.replace(b).is_some() {
            return Err(dup(UNKNOWN, field));
        }
    }
    let [type_meta, raw, encoding, ctype] = fields.map(Option::unwrap_or_default);
    let (encoding, ctype) = (utf8(UNKNOWN, 3, encoding)?, utf8(UNKNOWN, 4, ctype)?);
    if !encoding.is_empty() || !(ctype.is_empty() || ctype == CONTENT_TYPE) {
        return Err(E::UnsupportedEncoding {
            content_encoding: encoding,
            content_type: ctype,
        });
    }
    let (mut api_version, mut kind) = (None, None);
    let mut r = Reader(type_meta);
    while let Some((field, wt)) = r.key()? {
        let s = utf8(TYPE_META, field, r.len_delim(TYPE_META, field, wt)?)?;
        let slot = match field {
            1 => &mut api_version,
            2 => &mut kind,
            _ => return Err(unknown(TYPE_META, field)),
        };
        if slot.replace(s).is_some() {
            return Err(dup(TYPE_META, field));
        }
    }
    let (api_version, kind) = (api_version.unwrap_or_default(), kind.unwrap_or_default());
    let message = match schema::KINDS
        .iter()
        .find(|(av, k, _)| *av == api_version && *k == kind)
    {
        Some((_, _, m)) => *m,
        None if kind == "DeleteOptions" && !api_version.is_empty() => schema::DELETE_OPTIONS,
        None => return Err(E::UnknownKind { api_version, kind }),
    };
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    let left = Cell::new(MAX_VALUES);
    out.extend(decode_message(
        message,
        raw,
        Cx {
            depth: 2,
            left: &left,
        },
    )?);
    Ok(Value::Object(out))
}

/// Kinds this decoder knows (for error messages / docs): (apiVersion, kind) pairs.
/// `DeleteOptions` is listed under `meta.k8s.io/v1` but decoded under any apiVersion, since
/// every group version registers the same type.
pub fn supported_kinds() -> &'static [(&'static str, &'static str)] {
    schema::SUPPORTED
}

// ---- schema model (the tables live in protobuf_schema.rs) ----

/// How a field's value is encoded and rendered.
#[derive(Clone, Copy)]
enum Kind {
    /// `string` → JSON string (UTF-8 enforced).
    Str,
    /// `bytes` → base64 JSON string, as Go renders `[]byte`.
    Bytes,
    /// `int32` varint, range-checked.
    I32,
    /// `int64` varint.
    I64,
    /// `bool` varint, 0 or 1.
    Bool,
    /// A nested message with a table.
    M(&'static Message),
    /// `resource.Quantity{string(1)}` → its string, validated but not canonicalised.
    Quantity,
    /// `intstr.IntOrString{type(1), intVal(2), strVal(3)}` → JSON number or string.
    IntOrString,
    /// `metav1.Time{seconds(1), nanos(2)}` → RFC 3339 UTC to the second; empty → `null`.
    Time,
    /// `metav1.FieldsV1{Raw(1)}` → the JSON document it holds.
    FieldsV1,
    /// An `ExtraValue{items(1)}` (a masked `[]string`) → JSON array of strings (`[]` if empty).
    StrList,
}
use Kind::*;

/// Repeated field (JSON array).
const REP: u8 = 1;
/// `map<string, V>` field (JSON object, keys sorted as Go does).
const MAP: u8 = 2;
/// Go `omitempty`: a zero scalar, empty slice or empty map is left out.
const OMIT: u8 = 4;
/// Go pointer: present → written even if zero; absent → `null`, or left out with `OMIT`.
const PTR: u8 = 8;
/// Embedded Go struct (`json:",inline"`): its fields are written into the parent object.
const INLINE: u8 = 16;

/// One row of a schema table.
struct Field {
    num: u32,
    json: &'static str,
    kind: Kind,
    flags: u8,
}

const fn f(num: u32, json: &'static str, kind: Kind, flags: u8) -> Field {
    Field {
        num,
        json,
        kind,
        flags,
    }
}

/// A message's table: its fields in Go struct order.
struct Message {
    name: &'static str,
    fields: &'static [Field],
}

// ---- wire reader ----

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.0.split_first().ok_or(E::Truncated)?;
            self.0 = rest;
            if i == 9 && b > 1 {
                return Err(E::BadVarint);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(E::BadVarint)
    }

    /// The next (field number, wire type), or `None` at the end of the buffer.
    fn key(&mut self) -> Result<Option<(u32, u8)>, ProtobufError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((
            u32::try_from(k >> 3).unwrap_or(u32::MAX),
            (k & 7) as u8,
        )))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ProtobufError> {
        let n = usize::try_from(n).map_err(|_| E::Truncated)?;
        if n > self.0.len() {
            return Err(E::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn len_delim(
        &mut self,
        message: &'static str,
        field: u32,
        wt: u8,
    ) -> Result<&'a [u8], ProtobufError> {
        if wt != 2 {
            return Err(wire(message, field, wt));
        }
        let n = self.varint()?;
        self.take(n)
    }
}

fn unknown(message: &'static str, field: u32) -> ProtobufError {
    E::UnknownField { message, field }
}

fn dup(message: &'static str, field: u32) -> ProtobufError {
    E::DuplicateField { message, field }
}

fn wire(message: &'static str, field: u32, wire_type: u8) -> ProtobufError {
    E::BadWireType {
        message,
        field,
        wire_type,
    }
}

fn utf8(message: &'static str, field: u32, b: &[u8]) -> Result<String, ProtobufError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| E::InvalidUtf8 { message, field })
}

// ---- message decoding ----

/// Decoding context: nesting depth, and the values still allowed (shared by the whole body).
#[derive(Clone, Copy)]
struct Cx<'a> {
    depth: usize,
    left: &'a Cell<usize>,
}

impl<'a> Cx<'a> {
    fn deeper(self) -> Cx<'a> {
        Cx {
            depth: self.depth + 1,
            ..self
        }
    }

    fn spend(self) -> Result<(), ProtobufError> {
        let left = self.left.get().checked_sub(1).ok_or(E::TooManyValues)?;
        self.left.set(left);
        Ok(())
    }
}

enum Slot {
    Absent,
    One(Value),
    Many(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

fn decode_message(
    msg: &'static Message,
    buf: &[u8],
    cx: Cx<'_>,
) -> Result<Map<String, Value>, ProtobufError> {
    if cx.depth > MAX_DEPTH {
        return Err(E::TooDeep);
    }
    cx.spend()?;
    // Repeated and map fields start empty: protobuf cannot tell an empty list from an absent one.
    let mut slots: Vec<Slot> = msg
        .fields
        .iter()
        .map(|f| match f.flags & (REP | MAP) {
            0 => Slot::Absent,
            MAP => Slot::Map(BTreeMap::new()),
            _ => Slot::Many(Vec::new()),
        })
        .collect();
    let mut r = Reader(buf);
    while let Some((num, wt)) = r.key()? {
        cx.spend()?;
        let Some(idx) = msg.fields.iter().position(|f| f.num == num) else {
            return Err(unknown(msg.name, num));
        };
        let field = &msg.fields[idx];
        match &mut slots[idx] {
            Slot::Map(m) => {
                let (k, v) = decode_map_entry(msg, field, r.len_delim(msg.name, num, wt)?, cx)?;
                if m.insert(k, v).is_some() {
                    return Err(dup("<map>", num));
                }
            }
            Slot::Many(items) if wt == 2 && matches!(field.kind, I32 | I64 | Bool) => {
                // Packed encoding, which the apiserver's decoder also accepts.
                let mut packed = Reader(r.len_delim(msg.name, num, wt)?);
                while !packed.0.is_empty() {
                    cx.spend()?;
                    items.push(scalar(msg, field, packed.varint()?)?);
                }
            }
            Slot::Many(items) => items.push(read_value(msg, field, &mut r, wt, cx)?),
            slot @ Slot::Absent => *slot = Slot::One(read_value(msg, field, &mut r, wt, cx)?),
            Slot::One(_) => return Err(dup(msg.name, num)),
        }
    }
    let mut out = Map::new();
    for (field, slot) in msg.fields.iter().zip(slots) {
        let value = match slot {
            Slot::Absent => absent_value(field, cx)?,
            Slot::One(v)
                if field.flags & (OMIT | PTR) == OMIT && is_zero_scalar(field.kind, &v) =>
            {
                None
            }
            Slot::One(v) => Some(v),
            Slot::Many(items) if items.is_empty() => absent_value(field, cx)?,
            Slot::Many(items) => Some(Value::Array(items)),
            Slot::Map(m) if m.is_empty() => absent_value(field, cx)?,
            Slot::Map(m) => Some(Value::Object(m.into_iter().collect())),
        };
        match value {
            Some(Value::Object(inner)) if field.flags & INLINE != 0 => out.extend(inner),
            Some(v) => {
                out.insert(field.json.to_owned(), v);
            }
            None => {}
        }
    }
    Ok(out)
}

/// What Go's encoding/json writes for a field the body did not carry (its Go zero value).
fn absent_value(field: &Field, cx: Cx<'_>) -> Result<Option<Value>, ProtobufError> {
    // nil slices, maps and pointers: `null`, or nothing with omitempty.
    if field.flags & (REP | MAP | PTR) != 0 {
        return Ok((field.flags & OMIT == 0).then_some(Value::Null));
    }
    Ok(match field.kind {
        Str | I32 | I64 | Bool | Bytes if field.flags & OMIT != 0 => None,
        kind => Some(zero_value(kind, cx)?),
    })
}

fn zero_value(kind: Kind, cx: Cx<'_>) -> Result<Value, ProtobufError> {
    cx.spend()?;
    Ok(match kind {
        Str => Value::String(String::new()),
        I32 | I64 | IntOrString => Value::from(0),
        Bool => Value::Bool(false),
        Quantity => Value::String("0".into()),
        Bytes | Time | FieldsV1 => Value::Null,
        StrList => Value::Array(Vec::new()),
        M(m) => Value::Object(decode_message(m, &[], cx.deeper())?),
    })
}

fn is_zero_scalar(kind: Kind, v: &Value) -> bool {
    match (kind, v) {
        (Str | Bytes, Value::String(s)) => s.is_empty(),
        (I32 | I64, Value::Number(n)) => n.as_i64() == Some(0),
        (Bool, Value::Bool(b)) => !b,
        _ => false,
    }
}

fn scalar(msg: &'static Message, field: &Field, v: u64) -> Result<Value, ProtobufError> {
    let bad = |reason| E::InvalidValue {
        message: msg.name,
        field: field.num,
        reason,
    };
    Ok(match field.kind {
        I64 => Value::from(v as i64),
        I32 => Value::from(i32::try_from(v as i64).map_err(|_| bad("int32 out of range"))?),
        Bool if v <= 1 => Value::Bool(v == 1),
        Bool => return Err(bad("bool not 0 or 1")),
        _ => return Err(bad("varint for a length-delimited field")),
    })
}

fn read_value(
    msg: &'static Message,
    field: &Field,
    r: &mut Reader<'_>,
    wt: u8,
    cx: Cx<'_>,
) -> Result<Value, ProtobufError> {
    if let I32 | I64 | Bool = field.kind {
        if wt != 0 {
            return Err(wire(msg.name, field.num, wt));
        }
        return scalar(msg, field, r.varint()?);
    }
    let b = r.len_delim(msg.name, field.num, wt)?;
    special(msg, field.num, field.kind, b, cx)
}

/// A length-delimited value of `kind`: string, bytes, nested or special message.
fn special(
    msg: &'static Message,
    num: u32,
    kind: Kind,
    b: &[u8],
    cx: Cx<'_>,
) -> Result<Value, ProtobufError> {
    let bad = |reason| E::InvalidValue {
        message: msg.name,
        field: num,
        reason,
    };
    Ok(match kind {
        Str => Value::String(utf8(msg.name, num, b)?),
        Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        M(m) => Value::Object(decode_message(m, b, cx.deeper())?),
        Quantity => {
            let s = decode_message(&QUANTITY, b, cx.deeper())?;
            match s.get("string").and_then(Value::as_str) {
                None => Value::String("0".into()),
                Some(q) if valid_quantity(q) => Value::String(q.to_owned()),
                Some(_) => return Err(bad("malformed quantity")),
            }
        }
        IntOrString => {
            let s = decode_message(&INT_OR_STRING, b, cx.deeper())?;
            match s.get("type").and_then(Value::as_i64).unwrap_or(0) {
                0 => s.get("intVal").cloned().unwrap_or(Value::from(0)),
                1 => s
                    .get("strVal")
                    .cloned()
                    .unwrap_or(Value::String(String::new())),
                _ => return Err(bad("IntOrString type not 0 or 1")),
            }
        }
        Time if b.is_empty() => Value::Null,
        Time => {
            let s = decode_message(&TIMESTAMP, b, cx.deeper())?;
            let secs = s.get("seconds").and_then(Value::as_i64).unwrap_or(0);
            let nanos = s.get("nanos").and_then(Value::as_i64).unwrap_or(0);
            if !(0..1_000_000_000).contains(&nanos) {
                return Err(bad("nanos out of range"));
            }
            if secs == GO_ZERO_TIME && nanos == 0 {
                return Ok(Value::Null);
            }
            rfc3339(secs)
                .map(Value::String)
                .ok_or(bad("time outside years 1-9999"))?
        }
        FieldsV1 => {
            let s = decode_message(&FIELDS_V1, b, cx.deeper())?;
            let raw = s.get("Raw").and_then(Value::as_str).unwrap_or_default();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|_| bad("bad FieldsV1"))?;
            serde_json::from_slice(&raw).map_err(|_| bad("FieldsV1 is not JSON"))?
        }
        StrList => match decode_message(&EXTRA_VALUE, b, cx.deeper())?.remove("items") {
            Some(items @ Value::Array(_)) => items,
            _ => Value::Array(Vec::new()),
        },
        I32 | I64 | Bool => return Err(bad("length-delimited value for a varint field")),
    })
}

fn decode_map_entry(
    msg: &'static Message,
    field: &Field,
    entry: &[u8],
    cx: Cx<'_>,
) -> Result<(String, Value), ProtobufError> {
    let mut r = Reader(entry);
    let (mut key, mut value) = (None, None);
    while let Some((n, wt)) = r.key()? {
        let again = match n {
            1 => key
                .replace(utf8(
                    msg.name,
                    field.num,
                    r.len_delim(msg.name, field.num, wt)?,
                )?)
                .is_some(),
            2 => value
                .replace(read_value(msg, field, &mut r, wt, cx)?)
                .is_some(),
            _ => return Err(unknown("<map entry>", n)),
        };
        if again {
            return Err(dup("<map entry>", n));
        }
    }
    // A missing value is what the generated Go decoder starts from: `[]byte{}`, not nil.
    let value = match (value, field.kind) {
        (Some(v), _) => v,
        (None, Bytes) => Value::String(String::new()),
        (None, kind) => zero_value(kind, cx)?,
    };
    Ok((key.unwrap_or_default(), value))
}

// Tables of the special messages, decoded generically and then rendered by `special`.
static QUANTITY: Message = Message {
    name: "resource.Quantity",
    fields: &[f(1, "string", Str, PTR | OMIT)],
};
static INT_OR_STRING: Message = Message {
    name: "intstr.IntOrString",
    fields: &[
        f(1, "type", I64, PTR | OMIT),
        f(2, "intVal", I32, PTR | OMIT),
        f(3, "strVal", Str, PTR | OMIT),
    ],
};
static TIMESTAMP: Message = Message {
    name: "meta.Time",
    fields: &[
        f(1, "seconds", I64, PTR | OMIT),
        f(2, "nanos", I32, PTR | OMIT),
    ],
};
static FIELDS_V1: Message = Message {
    name: "meta.FieldsV1",
    fields: &[f(1, "Raw", Bytes, PTR | OMIT)],
};
static EXTRA_VALUE: Message = Message {
    name: "ExtraValue",
    fields: &[f(1, "items", Str, REP | PTR | OMIT)],
};

/// Go's zero `time.Time`, 0001-01-01T00:00:00Z, in Unix seconds.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// `seconds` since the Unix epoch as `2006-01-02T15:04:05Z`; `None` outside years 1–9999.
/// Go's zero time (0001-01-01T00:00:00Z) is written `null` by metav1.Time, so it is too.
fn rfc3339(secs: i64) -> Option<String> {
    const MIN: i64 = GO_ZERO_TIME;
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(MIN..=MAX).contains(&secs) {
        return None;
    }
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01, counting 400-year eras from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// The grammar of `resource.ParseQuantity`: sign, digits with at most one point, then a binary SI
/// suffix (Ki…Ei), a decimal SI suffix (m, k, M, G, T, P, E or none) or a signed e/E exponent.
fn valid_quantity(q: &str) -> bool {
    let s = q.strip_prefix(['+', '-']).unwrap_or(q);
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let digits = num.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || num.matches('.').count() > 1 {
        return false;
    }
    match suffix {
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            true
        }
        _ => match suffix.strip_prefix(['e', 'E']) {
            Some(exp) => {
                let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                !exp.is_empty() && exp.bytes().all(|c| c.is_ascii_digit())
            }
            None => false,
        },
    }
}

#[cfg(test)]
#[path = "protobuf_tests.rs"]
mod tests;
