//! Strict decoding of compact JWS tokens, shared by the two bearer-token verifiers: the OIDC ID
//! token ([`crate::relay::oidc`]) and the relay's own agent token ([`crate::agent::token`]).
//!
//! **Why one place.** Both verifiers face the same hostile input and must refuse it the same way;
//! two copies of a parser drift, and a parser differential is exactly what an attacker looks for.
//!
//! **What it rejects** (every check runs before any signature is verified, and each is a
//! [`JwsError`]): tokens over [`MAX_TOKEN_BYTES`], checked before anything is allocated;
//! anything but three dot-separated parts (five is named as JWE); an empty header or payload;
//! base64url that is padded, uses the standard alphabet, or has non-zero trailing bits (only the
//! canonical unpadded form decodes, so one token has one spelling); a header that is not one
//! JSON object with unique keys at every depth (RFC 7515 §4 lets a parser reject duplicates;
//! "last one wins" invites parser-differential tricks) or has trailing bytes.
//!
//! What it does not do: look at `alg`, `kid` or any claim, or verify the signature. The payload is
//! returned as bytes and parsed (with [`strict_object`]) only after the caller has verified the
//! signature, so unauthenticated bytes are never interpreted as claims.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Tokens longer than this (in bytes) are rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token is not a well-formed compact JWS. `Display` never quotes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token is larger than 16 KiB")]
    TooLarge,
    /// Not three canonical base64url parts, or a header that is not a strict JSON object.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
}

/// A compact JWS whose structure and header passed [`decode`]; the signature is not verified.
#[derive(Debug)]
pub struct Compact<'a> {
    /// The protected header, a JSON object with unique keys.
    pub header: Map<String, Value>,
    /// The decoded payload bytes (not parsed).
    pub payload: Vec<u8>,
    /// `BASE64URL(header) '.' BASE64URL(payload)`, what the signature covers.
    pub signing_input: &'a str,
    /// The signature part, still base64url (canonical).
    pub signature: &'a str,
    /// The decoded signature.
    pub signature_bytes: Vec<u8>,
}

/// Decode the canonical unpadded base64url `s`; `None` for anything else.
#[must_use]
pub fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// The three parts of a compact JWS, or why not. Empty header or payload parts are refused.
fn split(token: &str) -> Result<[&str; 3], JwsError> {
    use JwsError::Malformed;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwsError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Malformed("expected three dot-separated parts"));
    };
    match parts.count() {
        0 => {}
        2 => return Err(Malformed("encrypted tokens (JWE) are not accepted")),
        _ => return Err(Malformed("expected three dot-separated parts")),
    }
    if header.is_empty() || payload.is_empty() {
        return Err(Malformed("empty header or payload"));
    }
    Ok([header, payload, signature])
}

fn header_object(header: &str) -> Result<Map<String, Value>, JwsError> {
    let bytes = b64(header).ok_or(JwsError::Malformed("header is not base64url"))?;
    strict_object(&bytes).ok_or(JwsError::Malformed("header is not a JSON object with unique keys"))
}

/// Check the structure of a compact JWS and decode it: size, three canonical base64url parts,
/// a strict JSON object header. The payload is decoded but not parsed.
///
/// # Errors
/// [`JwsError`], in the order listed in the module documentation.
pub fn decode(token: &str) -> Result<Compact<'_>, JwsError> {
    use JwsError::Malformed;
    let [header, payload, signature] = split(token)?;
    // Decode every part before parsing any, so the cheapest refusals come first.
    let header_bytes = b64(header).ok_or(Malformed("header is not base64url"))?;
    let payload = b64(payload).ok_or(Malformed("payload is not base64url"))?;
    let signature_bytes = b64(signature).ok_or(Malformed("signature is not base64url"))?;
    let header = strict_object(&header_bytes).ok_or(Malformed("header is not a JSON object with unique keys"))?;
    let signing_input = &token[..token.len() - signature.len() - 1];
    Ok(Compact { header, payload, signing_input, signature, signature_bytes })
}

/// Only the header of a compact JWS, with the same structural checks as [`decode`] for the
/// parts (count, size, non-empty) but decoding just the first: for routing a token to its
/// verifier by `kid` before the (dearer) full verification.
///
/// # Errors
/// [`JwsError`].
pub fn decode_header(token: &str) -> Result<Map<String, Value>, JwsError> {
    let [header, ..] = split(token)?;
    header_object(header)
}

/// Shorten and filter a token-supplied string so it is safe to echo in an error: at most 64
/// characters of `[A-Za-z0-9-_.:+/=]`, with `…` when anything was dropped.
#[must_use]
pub fn sanitize(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.:+/=".contains(*c)).take(64).collect();
    if out.chars().count() < s.chars().count() {
        out.push('…');
    }
    out
}

/// Parse one JSON object (no trailing bytes), rejecting duplicate keys at any depth.
#[must_use]
pub fn strict_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<StrictValue>(bytes).ok()?.0 {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A JSON value whose objects have unique keys.
struct StrictValue(Value);
struct StrictVisitor;

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("NaN"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn decodes_a_well_formed_token() {
        let token = format!("{}.{}.{}", enc(r#"{"alg":"ES256"}"#), enc("{}"), enc("sig"));
        let c = decode(&token).unwrap();
        assert_eq!(c.header.get("alg"), Some(&Value::String("ES256".into())));
        assert_eq!(c.payload, b"{}");
        assert_eq!(c.signature_bytes, b"sig");
        assert_eq!(format!("{}.{}", c.signing_input, c.signature), token);
        assert_eq!(decode_header(&token).unwrap(), c.header);
    }

    #[test]
    fn structure_is_strict() {
        let (h, p, s) = (enc(r#"{"alg":"ES256"}"#), enc("{}"), enc("sig"));
        let cases = [
            (String::new(), "three"),
            (format!("{h}.{p}"), "three"),
            (format!("{h}.{p}.{s}.x"), "three"),
            (format!("{h}.{p}.{s}.x.y"), "JWE"),
            (format!(".{p}.{s}"), "empty"),
            (format!("{h}..{s}"), "empty"),
            (format!("{h}=.{p}.{s}"), "header is not base64url"),
            (format!("{h}.{p}=.{s}"), "payload"),
            (format!("{h}.{p}.{s}="), "signature"),
            (format!("{}.{p}.{s}", h.replace('J', "+")), "header is not base64url"),
            (format!("{}.{p}.{s}", enc("[1]")), "JSON object"),
            (format!("{}.{p}.{s}", enc(r#"{"a":1,"a":1}"#)), "JSON object"),
            (format!("{}.{p}.{s}", enc(r#"{"a":{"b":1,"b":2}}"#)), "JSON object"),
            (format!("{}.{p}.{s}", enc(r#"{"a":[{"b":1,"b":2}]}"#)), "JSON object"),
            (format!("{}.{p}.{s}", enc(r#"{"a":1} x"#)), "JSON object"),
        ];
        for (token, want) in cases {
            match decode(&token) {
                Err(JwsError::Malformed(m)) => assert!(m.contains(want), "{token}: {m}"),
                other => panic!("{token}: {other:?}"),
            }
        }
        assert_eq!(decode(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(), JwsError::TooLarge);
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        // "QQ" is the canonical spelling of "A"; "QR" has non-zero trailing bits.
        assert_eq!(b64("QQ").as_deref(), Some(&b"A"[..]));
        assert_eq!(b64("QR"), None);
        assert_eq!(b64("QQ=="), None);
        assert_eq!(b64("Q"), None);
        assert_eq!(b64("/w"), None);
        assert_eq!(b64("_w").as_deref(), Some(&[0xffu8][..]));
    }

    #[test]
    fn sanitize_keeps_errors_printable() {
        assert_eq!(sanitize("abc-123_x.y"), "abc-123_x.y");
        assert_eq!(sanitize("a\nb"), "ab…");
        assert_eq!(sanitize(&"k".repeat(100)).chars().count(), 65);
    }
}
