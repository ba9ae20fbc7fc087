//! Fuzzes `kube::request_info::parse`, the security boundary that turns a raw request target
//! into the attributes policy authorizes, and the lenient `query_first`/`query_all` readers.
//!
//! Input: one method byte, then `path[?query]` (split at the first `?`; no `?` means no query).
//! A seed is therefore `G/api/v1/namespaces/default/pods?limit=500`.
//!
//! Invariants checked on every `Ok` (a panic here is a security bug, not a nuisance): the raw
//! path has no `%2f`/`%2F`, `%25`, `%5c`/`%5C`, `\`, `//`, `#`, no segment that is `.`/`..` raw
//! or after one percent-decoding, no decoded control character; the query has no `;` or `#`;
//! and the attributes agree with what the lenient Go-style query reader sees.
#![no_main]

use hoop_kube::kube::request_info::{self, RequestInfo, MAX_PATH_LEN};
use http::Method;
use libfuzzer_sys::fuzz_target;

fn method(b: u8) -> Method {
    match b {
        b'G' => Method::GET,
        b'P' => Method::POST,
        b'U' => Method::PUT,
        b'A' => Method::PATCH,
        b'D' => Method::DELETE,
        b'H' => Method::HEAD,
        b'O' => Method::OPTIONS,
        b'C' => Method::CONNECT,
        b'T' => Method::TRACE,
        // An extension method (no Kubernetes verb) and everything else.
        b'X' => Method::from_bytes(b"WATCH").expect("valid token"),
        _ => [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE][usize::from(b % 5)].clone(),
    }
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// One percent-decoding of a raw segment, leniently (bad escapes kept as is).
fn pct_decode(seg: &str) -> Vec<u8> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn go_false(v: &str) -> bool {
    v == "0" || v.eq_ignore_ascii_case("false")
}

fn check_ok(m: &Method, path: &str, query: Option<&str>, info: &RequestInfo) {
    let bug = |why: &str| -> ! {
        panic!("SECURITY: parse accepted {m} {path:?} query {query:?}: {why}; got {info:?}")
    };
    if info.path != path {
        bug("RequestInfo.path is not the raw path");
    }
    if !path.starts_with('/') || path.len() > MAX_PATH_LEN {
        bug("path not absolute or over the length limit");
    }
    let lower = path.to_ascii_lowercase();
    for bad in ["%2f", "%25", "%5c", "\\", "//", "#"] {
        if lower.contains(bad) {
            bug(&format!("path contains {bad:?}"));
        }
    }
    let body = &path[1..];
    let body = body.strip_suffix('/').unwrap_or(body);
    if !body.is_empty() {
        for seg in body.split('/') {
            if seg == "." || seg == ".." {
                bug("raw dot segment");
            }
            let dec = pct_decode(seg);
            if dec == b"." || dec == b".." {
                bug("percent-encoded dot segment");
            }
            if dec.iter().any(|c| c.is_ascii_control()) {
                bug("control character in a decoded segment");
            }
            if dec.iter().any(|&c| matches!(c, b'/' | b'%' | b'\\' | b'?' | b'#')) {
                bug("decoded segment contains / % \\ ? or #");
            }
        }
    }
    if let Some(q) = query {
        if q.contains(';') || q.contains('#') || q.bytes().any(|c| c.is_ascii_control()) {
            bug("query has ';', '#' or a control character");
        }
    }
    for name in [&info.namespace, &info.name] {
        if name == "." || name == ".." || name.contains('/') || name.contains('%') {
            bug("namespace or name is not a valid path segment name");
        }
    }
    if info.is_resource_request && info.api_prefix != "api" && info.api_prefix != "apis" {
        bug("resource request without api/apis prefix");
    }
    // What policy saw must be what a Go-style query reader (the upstream) sees.
    if matches!(info.verb.as_str(), "list" | "watch" | "deletecollection") {
        for (key, seen) in [("fieldSelector", &info.field_selector), ("labelSelector", &info.label_selector)] {
            if let Some(v) = seen {
                if request_info::query_first(query, key).as_deref() != Some(v.as_str()) {
                    bug(&format!("{key} differs from query_first"));
                }
            }
        }
    }
    if info.verb == "list" {
        if let Some(w) = request_info::query_first(query, "watch") {
            if !go_false(&w) {
                bug("authorized as list but the upstream sees watch");
            }
        }
    }
    if info.watch_list && info.verb != "watch" {
        bug("watch_list on a non-watch verb");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mb, rest)) = data.split_first() else {
        return;
    };
    let Ok(target) = std::str::from_utf8(rest) else {
        return;
    };
    let m = method(mb);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };

    let res = request_info::parse(&m, path, query);
    if let Ok(info) = &res {
        check_ok(&m, path, query, info);
        let _ = (info.is_exec_class(), info.is_mutating());
    }
    // Pure: the same input gives the same answer.
    assert_eq!(res, request_info::parse(&m, path, query), "parse is not deterministic");

    // parse_uri must agree with parse whenever `http::Uri` keeps the path and query as given.
    if let Ok(uri) = target.parse::<http::Uri>() {
        if uri.path() == path && uri.query() == query {
            assert_eq!(request_info::parse_uri(&m, &uri), res, "parse_uri disagrees with parse");
        }
    }

    // The lenient readers: never panic, and first == all[0].
    for key in ["watch", "fieldSelector", "labelSelector", "command", "container", ""] {
        let first = request_info::query_first(query, key);
        let all = request_info::query_all(query, key);
        assert_eq!(first.as_ref(), all.first(), "query_first != query_all[0] for {key:?}");
    }
    // Also with the path read as a query (arbitrary keys taken from the input).
    if let Some(q) = query {
        if let Some(key) = q.split('&').next().and_then(|p| p.split('=').next()) {
            let first = request_info::query_first(Some(q), key);
            assert_eq!(first.as_ref(), request_info::query_all(Some(q), key).first());
        }
    }
    let _ = request_info::query_all(Some(target), "x");
});
