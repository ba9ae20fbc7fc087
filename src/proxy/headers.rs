//! Which headers cross a proxy hop.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1: `Connection`, the headers it names, `Keep-Alive`,
//! `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) belong to one connection and are
//! never forwarded, except `Connection: Upgrade` + `Upgrade` on an upgrade request, which must
//! reach the next hop for the upgrade to happen there. Header sizes are counted here so an
//! oversized header block gets a 431 `Status` rather than a bare connection error.

use http::header::{self, HeaderMap, HeaderName};

const HOP_BY_HOP: &[&str] = &["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"];

/// Whether the request asks for an HTTP/1.1 upgrade (WebSocket or SPDY).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Remove hop-by-hop headers; keep `Connection: Upgrade` and `Upgrade` when `keep_upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        headers.remove(n);
    }
    let upgrade = if keep_upgrade { headers.get(header::UPGRADE).cloned() } else { None };
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    }
}

/// Total size of a header block as HTTP/2 counts it (name + value + 32 per field).
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = map(&[("connection", "keep-alive, x-secret"), ("x-secret", "1"), ("keep-alive", "5"), ("te", "trailers"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn upgrades_keep_their_two_headers() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "k")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "Upgrade");
        assert!(h.contains_key("sec-websocket-key"));
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty());
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])), "Upgrade without Connection: Upgrade is not an upgrade");
    }

    #[test]
    fn header_bytes_counts_like_h2() {
        assert_eq!(header_bytes(&map(&[("a", "bc")])), 1 + 2 + 32);
    }
}
