//! The raw query string, read the two ways hoop-kube needs: strictly for the request-info
//! parser, which refuses anything another parser could read differently (a security boundary),
//! and leniently, exactly as Go's `url.ParseQuery` reads it, for handlers that take parameters
//! from a request that was already parsed strictly. `request_info` re-exports the lenient
//! [`query_first`] and [`query_all`].

use super::request_info::{is_pchar, RequestInfoError, MAX_QUERY_LEN, MAX_QUERY_PARAMS};

type Result<T> = std::result::Result<T, RequestInfoError>;

/// First value of `key` in a raw query, read as Go's `url.ParseQuery` does: pairs split on `&`
/// only; a pair containing `;` is dropped (Go ≥ 1.17; net/http in Go 1.22 only logs a warning
/// and serves the request, kube-apiserver does not install `AllowQuerySemicolons`); a pair
/// whose key or value has an invalid escape is dropped; `+` is a space; `key` alone means the
/// empty value. Non-UTF-8 bytes are replaced by U+FFFD. `None` if the key is absent.
#[must_use]
pub fn query_first(query: Option<&str>, key: &str) -> Option<String> {
    go_pairs(query?)
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| lossy(v))
}

/// Every value of `key` in order (e.g. exec's repeated `command=`), with [`query_first`]'s rules.
#[must_use]
pub fn query_all(query: Option<&str>, key: &str) -> Vec<String> {
    let pairs = query.into_iter().flat_map(go_pairs);
    pairs
        .filter(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| lossy(v))
        .collect()
}

/// Every key with all its values, in key order, with [`query_first`]'s rules (for CEL's
/// `request.query`). Meant for a query that [`parse`](super::request_info::parse) accepted, so
/// the lenient and the strict reading agree.
#[must_use]
pub fn query_map(query: Option<&str>) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (k, v) in query.into_iter().flat_map(go_pairs) {
        out.entry(lossy(k)).or_default().push(lossy(v));
    }
    out
}

/// Strict query parse for [`parse`](super::request_info::parse): anything Go would silently
/// drop or that is not plain RFC 3986 is refused, so no parser can see different parameters than
/// we authorized.
pub(super) fn parse_query_strict(q: &str) -> Result<Vec<(String, String)>> {
    if q.len() > MAX_QUERY_LEN {
        return Err(RequestInfoError::QueryTooLong {
            len: q.len(),
            max: MAX_QUERY_LEN,
        });
    }
    for &b in q.as_bytes() {
        match b {
            b'#' => return Err(RequestInfoError::Fragment),
            b';' => return Err(RequestInfoError::BadQuery("';' separator")),
            _ if b.is_ascii_control() => return Err(RequestInfoError::ControlCharacter),
            b'%' | b'/' | b'?' => {}
            _ if is_pchar(b) => {}
            _ => return Err(RequestInfoError::BadQuery("character not allowed")),
        }
    }
    let mut out = Vec::new();
    for (n, pair) in q.split('&').enumerate() {
        if n >= MAX_QUERY_PARAMS {
            return Err(RequestInfoError::BadQuery("too many parameters"));
        }
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let text = |s: &str| -> Result<String> {
            let bytes = query_unescape(s).ok_or(RequestInfoError::InvalidPercentEncoding)?;
            if bytes.contains(&0) {
                return Err(RequestInfoError::BadQuery("NUL in parameter"));
            }
            String::from_utf8(bytes).map_err(|_| RequestInfoError::BadQuery("not UTF-8"))
        };
        out.push((text(k)?, text(v)?));
    }
    Ok(out)
}

/// First value of `key` among strictly parsed pairs (`url.Values.Get`).
pub(super) fn first<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Go's lenient `url.ParseQuery` pair iterator, yielding decoded (key, value) bytes.
fn go_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query.split('&').filter_map(|pair| {
        if pair.contains(';') || pair.is_empty() {
            return None;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Some((query_unescape(k)?, query_unescape(v)?))
    })
}

/// Go's `url.QueryUnescape`: `%XX` decoded, `+` is a space; `None` on a bad escape.
fn query_unescape(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let (byte, len) = match b {
            b'%' => (hex_pair(bytes, i + 1)?, 3),
            b'+' => (b' ', 1),
            _ => (b, 1),
        };
        out.push(byte);
        i += len;
    }
    Some(out)
}

/// Go's `url.PathUnescape`: `%XX` escapes decoded, `+` kept as is; `None` for a malformed escape or
/// a result that is not UTF-8 (used for `Impersonate-Extra-` keys and certificate subject URIs).
pub fn path_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            out.push(hex_pair(bytes, i + 1)?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(super) fn hex_pair(bytes: &[u8], at: usize) -> Option<u8> {
    let hi = char::from(*bytes.get(at)?).to_digit(16)?;
    let lo = char::from(*bytes.get(at + 1)?).to_digit(16)?;
    u8::try_from(hi * 16 + lo).ok()
}

fn lossy(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
