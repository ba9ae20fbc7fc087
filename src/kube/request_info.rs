//! Kubernetes request attributes: (method, raw path, raw query) → [`RequestInfo`].
//!
//! This is the one parser shared by the simulator's router, the relay's policy engine and the
//! audit records. It reproduces kube-apiserver's `RequestInfoFactory.NewRequestInfo`
//! (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`, release-1.32) and is pure: no I/O.
//!
//! **It is a security boundary.** The relay authorizes what this returns and then forwards the
//! very same raw bytes, so the parse must mean exactly what kube-apiserver will make of those
//! bytes. Where another component could read them differently (a URL library that collapses dot
//! segments or backslashes, a second decoding of `%25`, `%2F` splitting a segment, a query parser
//! that drops `;` pairs or badly escaped pairs), the input is **rejected**, never normalised.
//!
//! What it trusts: nothing about the input. What it accepts in the path: `/`-separated segments
//! of RFC 3986 `pchar`s, percent-decoded once as Go's `url.URL.Path` is, after which no segment
//! may be `.`/`..` and none may contain `/`, `%`, `\`, `?`, `#` or a control character. One
//! trailing `/` is ignored, as `splitPath` does. In the query: RFC 3986 query characters except
//! `;`, valid escapes, UTF-8 after decoding, and bounded size. A `#fragment` is refused (clients
//! never send one; `http::Uri` silently drops it, which is why [`parse_uri`] cannot see it).

use http::{Method, Uri};

use super::query::{first, hex_pair, parse_query_strict};
pub use super::query::{query_all, query_first, query_map};

/// Longest accepted raw path, in bytes. kube-apiserver itself is bounded only by Go's 1 MiB
/// header limit, but no legitimate path comes near 4 KiB: names are at most 253 bytes, namespaces
/// 63, and a full `/apis/<group>/<version>/namespaces/<ns>/<resource>/<name>/<sub>` path stays
/// under 700 bytes even when every segment is percent-encoded. The bound keeps audit records and
/// policy matching cheap and leaves room for proxy sub-paths.
pub const MAX_PATH_LEN: usize = 4096;
/// Most path segments accepted: resource paths use at most 8, proxy sub-paths a few more.
pub const MAX_SEGMENTS: usize = 64;
/// Longest accepted raw query, in bytes (long `exec` command lines and selectors fit easily).
pub const MAX_QUERY_LEN: usize = 64 * 1024;
/// Most `&`-separated query parameters accepted. Newer Go releases refuse queries with more than
/// 10 000 parameters and then see *none* of them, which would turn a watch into a list.
pub const MAX_QUERY_PARAMS: usize = 1000;

/// Kubernetes request attributes, as kube-apiserver's `RequestInfo` (plus `watch_list`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// True for `/api/<v>/...` (3+ segments) and `/apis/<g>/<v>/...` (4+ segments).
    pub is_resource_request: bool,
    /// The raw path exactly as given (already validated); never the decoded form.
    pub path: String,
    /// `get list watch create update patch delete deletecollection proxy`, `""` for a method with
    /// no Kubernetes verb; for non-resource requests the lower-cased HTTP method.
    pub verb: String,
    /// `"api"` or `"apis"`. As in apiserver it is also set on a non-resource `/apis/<g>/<v>`,
    /// and it is `""` for every other non-resource request.
    pub api_prefix: String,
    /// API group, `""` for the core group.
    pub api_group: String,
    /// API version, e.g. `v1`.
    pub api_version: String,
    /// Namespace, `""` for cluster-scoped requests.
    pub namespace: String,
    /// Resource, e.g. `pods` (case is kept: `Secrets` is not `secrets`).
    pub resource: String,
    /// Subresource, e.g. `exec`; deeper segments are not interpreted.
    pub subresource: String,
    /// Object name from the path, or from `fieldSelector=metadata.name=X` on list/watch.
    pub name: String,
    /// Decoded path segments from the resource on, as apiserver's `RequestInfo.Parts`.
    pub parts: Vec<String>,
    /// First `fieldSelector` value for list/watch/deletecollection (not for the legacy `/watch/`
    /// path form), as the `AuthorizeWithSelectors` gate copies it; `None` if absent or empty.
    pub field_selector: Option<String>,
    /// First `labelSelector` value, under the same rule as `field_selector`.
    pub label_selector: Option<String>,
    /// A watch with `sendInitialEvents` true: it streams the current state first, so authorize
    /// and mask it as a list too.
    pub watch_list: bool,
}

/// Why a request was refused. Every variant is a fail-closed rejection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestInfoError {
    /// The path does not start with `/` (empty, `*`, authority-form).
    #[error("path must start with '/'")]
    NotAbsolute,
    /// The path is longer than [`MAX_PATH_LEN`].
    #[error("path is {len} bytes, the limit is {max}")]
    TooLong {
        /// Length of the path in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The query is longer than [`MAX_QUERY_LEN`].
    #[error("query is {len} bytes, the limit is {max}")]
    QueryTooLong {
        /// Length of the query in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The path has more than [`MAX_SEGMENTS`] segments.
    #[error("path has more than {MAX_SEGMENTS} segments")]
    TooManySegments,
    /// `%2F`/`%2f` in the path: Go decodes it and splits there, other parsers do not.
    #[error("encoded '/' in path")]
    EncodedSlash,
    /// `%25` in the path: a second decoding anywhere downstream would change the meaning.
    #[error("encoded '%' in path")]
    EncodedPercent,
    /// A `.` or `..` segment, raw or percent-encoded: URL libraries collapse them, Go does not.
    #[error("dot segment in path")]
    DotSegment,
    /// A backslash, raw or `%5C`: some URL libraries turn it into `/`.
    #[error("backslash in path")]
    Backslash,
    /// `//`: an empty segment (Go keeps it, URL joiners may not; a leading `//` is an authority).
    #[error("empty path segment")]
    EmptySegment,
    /// `%` not followed by two hex digits (path or query).
    #[error("invalid percent-encoding")]
    InvalidPercentEncoding,
    /// A control character or NUL, raw anywhere or percent-encoded in the path.
    #[error("control character in request target")]
    ControlCharacter,
    /// `%3F` or `%23` in the path: a decoded `?`/`#` would end the path if re-serialized.
    #[error("encoded '?' or '#' in path")]
    EncodedDelimiter,
    /// A raw `#`: fragments are never sent by clients.
    #[error("fragment in request target")]
    Fragment,
    /// A raw character outside RFC 3986 `pchar`s (space, `"`, `{`, non-ASCII, ...).
    #[error("character {0:?} not allowed in path")]
    InvalidCharacter(char),
    /// The percent-decoded path is not UTF-8.
    #[error("decoded path is not UTF-8")]
    InvalidUtf8,
    /// The query cannot be read unambiguously (the reason says why).
    #[error("bad query: {0}")]
    BadQuery(&'static str),
    /// A namespace or name segment breaks apimachinery's path segment name rules.
    #[error("invalid path segment name: {0}")]
    InvalidName(&'static str),
    /// `/api/v1/watch` or `/api/v1/proxy` with nothing after (apiserver fails these with 500).
    #[error("path verb without a resource")]
    PathVerbWithoutResource,
}

type Result<T> = std::result::Result<T, RequestInfoError>;

impl RequestInfo {
    /// Whether policy must treat the request by its subresource whatever the method: pods
    /// exec/attach/portforward/proxy, services/proxy, nodes/proxy, serviceaccounts/token, and
    /// the legacy `proxy` path verb. (A WebSocket exec is a `get`, its SPDY fallback a `create`.)
    /// The group is deliberately not checked: matching more requests here is the safe side.
    #[must_use]
    pub fn is_exec_class(&self) -> bool {
        let sub = (self.resource.as_str(), self.subresource.as_str());
        self.is_resource_request
            && (self.verb == "proxy"
                || matches!(
                    sub,
                    ("pods", "exec" | "attach" | "portforward" | "proxy")
                        | ("services" | "nodes", "proxy")
                        | ("serviceaccounts", "token")
                ))
    }

    /// The verb policy and records use, with exec-class subresources classified by subresource
    /// whatever the HTTP method (a WebSocket exec is a `get`, its SPDY fallback a `create`; both
    /// are `exec`): `pods/exec` → `exec`, `pods/attach` → `attach`, `pods/portforward` →
    /// `portforward`, `pods|services|nodes/proxy` and the legacy `proxy` path verb → `proxy`,
    /// `serviceaccounts/token` → `create` (a token request is never a harmless `get`). Every
    /// other request keeps [`RequestInfo::verb`]. The group is not checked, as in
    /// [`is_exec_class`](Self::is_exec_class). This is the one place that classification lives.
    #[must_use]
    pub fn policy_verb(&self) -> &str {
        if !self.is_exec_class() {
            return &self.verb;
        }
        match (self.resource.as_str(), self.subresource.as_str()) {
            ("pods", sub @ ("exec" | "attach" | "portforward")) => sub,
            ("serviceaccounts", "token") => "create",
            _ => "proxy",
        }
    }

    /// Whether the verb writes: create, update, patch, delete or deletecollection.
    #[must_use]
    pub fn is_mutating(&self) -> bool {
        self.is_resource_request
            && matches!(
                self.verb.as_str(),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
    }
}

/// Parse a request the way kube-apiserver does, rejecting anything ambiguous.
///
/// `path` and `query` are the raw bytes of the request target (no `?` in `path`, no leading `?`
/// in `query`), exactly as they will be forwarded.
///
/// # Errors
/// Any [`RequestInfoError`]: the request must then be refused, not forwarded.
pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<RequestInfo> {
    let segments = split_path(path)?;
    let params = match query {
        Some(q) => parse_query_strict(q)?,
        None => Vec::new(),
    };
    for key in ["watch", "sendInitialEvents"] {
        // Go compares with EqualFold on one code path and ToLower on another; they only
        // disagree on non-ASCII (`falſe`), so refuse that rather than pick one.
        if first(&params, key).is_some_and(|v| !v.is_ascii()) {
            return Err(RequestInfoError::BadQuery("non-ASCII boolean parameter"));
        }
    }
    let mut info = RequestInfo {
        path: path.to_owned(),
        verb: method.as_str().to_ascii_lowercase(),
        ..RequestInfo::default()
    };
    let Some(verb_via_path) = resolve_path(&mut info, method, &segments)? else {
        return Ok(info);
    };
    if info.name.is_empty() && info.verb == "get" {
        let watch = first(&params, "watch").is_some_and(|v| !go_false(v));
        set(&mut info.verb, if watch { "watch" } else { "list" });
        if let Some(name) = name_from_list_options(&params) {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        set(&mut info.verb, "deletecollection");
    }
    if !verb_via_path && matches!(info.verb.as_str(), "list" | "watch" | "deletecollection") {
        let non_empty = |k| {
            first(&params, k)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        info.field_selector = non_empty("fieldSelector");
        info.label_selector = non_empty("labelSelector");
    }
    info.watch_list =
        info.verb == "watch" && first(&params, "sendInitialEvents").is_some_and(|v| !go_false(v));
    Ok(info)
}

/// The path part of `NewRequestInfo`. `None` for a non-resource request, otherwise whether the
/// verb came from a `watch`/`proxy` path segment.
fn resolve_path(
    info: &mut RequestInfo,
    method: &Method,
    segments: &[String],
) -> Result<Option<bool>> {
    let Some((prefix, mut cur)) = segments.split_first() else {
        return Ok(None);
    };
    if cur.len() < 2 || (prefix != "api" && prefix != "apis") {
        return Ok(None);
    }
    info.api_prefix.clone_from(prefix);
    if prefix == "apis" {
        // /apis/<g>/<v> is non-resource; apiserver has already set APIPrefix, and so do we.
        match cur.split_first() {
            Some((group, rest)) if rest.len() >= 2 => {
                info.api_group.clone_from(group);
                cur = rest;
            }
            _ => return Ok(None),
        }
    }
    let Some((version, mut cur)) = cur.split_first() else {
        return Err(RequestInfoError::PathVerbWithoutResource);
    };
    info.is_resource_request = true;
    info.api_version.clone_from(version);

    let verb_via_path = match cur.split_first() {
        Some((special, rest)) if special == "watch" || special == "proxy" => {
            if rest.is_empty() {
                return Err(RequestInfoError::PathVerbWithoutResource);
            }
            info.verb.clone_from(special);
            cur = rest;
            true
        }
        Some(_) => {
            set(&mut info.verb, method_verb(method));
            false
        }
        None => return Err(RequestInfoError::PathVerbWithoutResource),
    };
    // /namespaces/{ns}/{resource}/... is re-based on the resource, except namespace subresources.
    if cur.first().is_some_and(|p| p == "namespaces") {
        if let Some(ns) = cur.get(1) {
            info.namespace.clone_from(ns);
            if cur
                .get(2)
                .is_some_and(|next| next != "status" && next != "finalize")
            {
                cur = cur.get(2..).unwrap_or(cur);
            }
        }
    }
    info.parts = cur.to_vec();
    if info.verb != "proxy" {
        if let Some(sub) = cur.get(2) {
            info.subresource.clone_from(sub);
        }
    }
    if let Some(name) = cur.get(1) {
        info.name.clone_from(name);
    }
    if let Some(resource) = cur.first() {
        info.resource.clone_from(resource);
    }
    for name in [&info.namespace, &info.name] {
        if let Some(why) = path_segment_name_error(name) {
            return Err(RequestInfoError::InvalidName(why));
        }
    }
    Ok(Some(verb_via_path))
}

fn set(field: &mut String, value: &str) {
    value.clone_into(field);
}

/// [`parse`] on an `http::Uri`, using its raw `path()` and `query()` (the `http` crate does not
/// normalise either). A `#fragment` has already been dropped by `http::Uri` and is not seen.
///
/// # Errors
/// As [`parse`].
pub fn parse_uri(method: &Method, uri: &Uri) -> Result<RequestInfo> {
    parse(method, uri.path(), uri.query())
}

// ---------------------------------------------------------------------------------------------
// Path

/// Validate the raw path and return its decoded segments (splitPath on the decoded path).
fn split_path(path: &str) -> Result<Vec<String>> {
    if path.len() > MAX_PATH_LEN {
        return Err(RequestInfoError::TooLong {
            len: path.len(),
            max: MAX_PATH_LEN,
        });
    }
    let Some(body) = path.strip_prefix('/') else {
        return Err(RequestInfoError::NotAbsolute);
    };
    if path.contains("//") {
        return Err(RequestInfoError::EmptySegment);
    }
    let body = body.strip_suffix('/').unwrap_or(body);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for raw in body.split('/') {
        if out.len() == MAX_SEGMENTS {
            return Err(RequestInfoError::TooManySegments);
        }
        let seg = String::from_utf8(decode_path_segment(raw)?)
            .map_err(|_| RequestInfoError::InvalidUtf8)?;
        if seg == "." || seg == ".." {
            return Err(RequestInfoError::DotSegment);
        }
        out.push(seg);
    }
    Ok(out)
}

/// Percent-decode one raw segment (contains no `/`), refusing what decoding could make dangerous.
fn decode_path_segment(raw: &str) -> Result<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let decoded = if b == b'%' {
            let v = hex_pair(bytes, i + 1).ok_or(RequestInfoError::InvalidPercentEncoding)?;
            i += 3;
            match v {
                b'/' => return Err(RequestInfoError::EncodedSlash),
                b'%' => return Err(RequestInfoError::EncodedPercent),
                b'\\' => return Err(RequestInfoError::Backslash),
                b'?' | b'#' => return Err(RequestInfoError::EncodedDelimiter),
                _ => v,
            }
        } else {
            i += 1;
            match b {
                b'\\' => return Err(RequestInfoError::Backslash),
                b'#' => return Err(RequestInfoError::Fragment),
                _ if is_pchar(b) => b,
                _ if b.is_ascii_control() => b,
                _ => {
                    let c = raw
                        .get(i - 1..)
                        .and_then(|s| s.chars().next())
                        .unwrap_or('\u{fffd}');
                    return Err(RequestInfoError::InvalidCharacter(c));
                }
            }
        };
        if decoded.is_ascii_control() {
            return Err(RequestInfoError::ControlCharacter);
        }
        out.push(decoded);
    }
    Ok(out)
}

/// RFC 3986 `pchar` minus `%`: unreserved, sub-delims, `:` and `@`.
pub(super) fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

/// apimachinery `path.IsValidPathSegmentName`: not `.`/`..`, no `/`, no `%`.
fn path_segment_name_error(name: &str) -> Option<&'static str> {
    match name {
        "." => Some("may not be '.'"),
        ".." => Some("may not be '..'"),
        _ if name.contains('/') => Some("may not contain '/'"),
        _ if name.contains('%') => Some("may not contain '%'"),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Parameter values and verbs

/// `runtime.Convert_Slice_string_To_bool` for ASCII input: only `0` and `false` (any case) are
/// false; anything else, the empty value included, is true.
fn go_false(v: &str) -> bool {
    v == "0" || v.eq_ignore_ascii_case("false")
}

fn method_verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// List options: the name apiserver derives from `fieldSelector=metadata.name=X`.

/// apiserver decodes the whole `ListOptions` and, only if that succeeds, takes the name from
/// `FieldSelector.RequiresExactMatch("metadata.name")` when it is a valid path segment name.
/// Decoding fails when `timeoutSeconds`/`limit` are not int64 or either selector does not parse.
/// We only return a name when we are certain decoding succeeds: a label selector outside the
/// simple subset we verify leaves the name unset, so the request is authorized as the broader,
/// unnamed list (and apiserver's handler would refuse the request anyway if decoding failed).
fn name_from_list_options(params: &[(String, String)]) -> Option<String> {
    for key in ["timeoutSeconds", "limit"] {
        if let Some(v) = first(params, key) {
            v.parse::<i64>().ok()?; // strconv.ParseInt(v, 10, 64) accepts the same strings
        }
    }
    if !first(params, "labelSelector").is_none_or(label_selector_surely_parses) {
        return None;
    }
    let name = field_selector_exact_name(first(params, "fieldSelector")?)?;
    path_segment_name_error(&name).is_none().then_some(name)
}

/// `fields.ParseSelector(s)` then `RequiresExactMatch("metadata.name")`; `None` if the selector
/// does not parse or has no `metadata.name=`/`==` term. Terms are sorted bytewise before parsing,
/// so with several `metadata.name` terms the smallest term wins, as in Go.
fn field_selector_exact_name(sel: &str) -> Option<String> {
    let mut terms = split_field_terms(sel);
    terms.sort_unstable();
    let mut found = None;
    for term in terms.into_iter().filter(|t| !t.is_empty()) {
        let (lhs, op, rhs) = split_field_term(term)?;
        let value = unescape_field_value(rhs)?;
        if found.is_none() && op != "!=" && lhs == "metadata.name" {
            found = Some(value);
        }
    }
    found
}

/// `fields.splitTerms`: split on `,` not preceded by an escaping `\`.
fn split_field_terms(sel: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    if sel.is_empty() {
        return terms;
    }
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in sel.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(sel.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    terms.push(sel.get(start..).unwrap_or_default());
    terms
}

/// `fields.splitTerm`: the first `!=`, `==` or `=` (checked in that order at each position).
fn split_field_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = term.get(i..)?;
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((term.get(..i)?, op, rhs));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`: `\\`, `\,`, `\=` only; a bare `,`/`=` or other escape is an error.
fn unescape_field_value(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return None;
            }
            out.push(c);
            in_slash = false;
        } else {
            match c {
                '\\' => in_slash = true,
                ',' | '=' => return None,
                _ => out.push(c),
            }
        }
    }
    (!in_slash).then_some(out)
}

/// True only if `labels.Parse` certainly accepts `sel`: the empty selector, or `,`-separated
/// `key`, `!key`, `key=v`, `key==v`, `key!=v` terms with no whitespace, a valid qualified-name
/// key and a valid label value. `false` means "not certain", not "invalid".
fn label_selector_surely_parses(sel: &str) -> bool {
    sel.is_empty()
        || sel.split(',').all(|term| {
            if let Some(key) = term.strip_prefix('!') {
                return is_label_key(key);
            }
            let Some(at) = term.find(['=', '!']) else {
                return is_label_key(term);
            };
            let (key, rest) = term.split_at(at);
            let value = ["!=", "==", "="]
                .iter()
                .find_map(|op| rest.strip_prefix(op));
            is_label_key(key) && value.is_some_and(|v| v.is_empty() || is_label_name(v))
        })
}

/// `validation.IsQualifiedName`, excluding the lexer keywords `in`/`notin`.
fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_label_name(name),
        None => is_label_name(key),
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 bytes, not `in`/`notin`.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && s != "in"
        && s != "notin"
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// `validation.IsDNS1123Subdomain`: at most 253 bytes of `.`-separated DNS-1123 labels.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            let edge =
                |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            edge(b.first())
                && edge(b.last())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[cfg(test)]
#[path = "request_info_tests.rs"]
mod tests;
