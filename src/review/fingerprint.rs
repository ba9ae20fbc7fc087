//! The fingerprint that binds an approval to one request: subject, agent, policy verb, raw path,
//! raw query and the SHA-256 of the exact body bytes forwarded.
//!
//! The policy verb (not the HTTP method) is used so that kubectl's WebSocket-then-SPDY retry of
//! one `exec` (a GET, then a POST of the same path and query) lands on the same review. Fields are
//! length-prefixed before hashing, so no two different requests can run together into the same
//! input.

use sha2::{Digest, Sha256};

/// The hex SHA-256 of a request body (of no bytes for requests without one).
#[must_use]
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// What is fingerprinted.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub subject: &'a str,
    pub agent: Option<&'a str>,
    pub verb: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body_sha256: &'a str,
}

/// The hex SHA-256 over the length-prefixed parts (an absent agent or query differs from an
/// empty one).
#[must_use]
pub fn fingerprint(p: &Parts<'_>) -> String {
    let mut h = Sha256::new();
    h.update(b"hoop-kube review v1\0");
    let mut field = |v: Option<&str>| match v {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    };
    field(Some(p.subject));
    field(p.agent);
    field(Some(p.verb));
    field(Some(p.path));
    field(p.query);
    field(Some(p.body_sha256));
    hex::encode(h.finalize())
}


#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Parts<'static> {
        Parts { subject: "alice", agent: None, verb: "delete", path: "/api/v1/namespaces/prod/pods/web", query: None, body_sha256: "e3b0" }
    }

    #[test]
    fn every_part_counts() {
        let f = fingerprint(&base());
        assert_eq!(f, fingerprint(&base()), "stable");
        assert_eq!(f.len(), 64);
        let variants = [
            Parts { subject: "bob", ..base() },
            Parts { agent: Some("bot"), ..base() },
            Parts { agent: Some(""), ..base() },
            Parts { verb: "get", ..base() },
            Parts { path: "/api/v1/namespaces/prod/pods/web2", ..base() },
            Parts { query: Some(""), ..base() },
            Parts { query: Some("dryRun=All"), ..base() },
            Parts { body_sha256: "e3b1", ..base() },
        ];
        for v in variants {
            assert_ne!(fingerprint(&v), f, "{v:?}");
        }
    }

    #[test]
    fn fields_do_not_run_together() {
        let a = Parts { subject: "al", path: "ice/x", ..base() };
        let b = Parts { subject: "alice", path: "/x", ..base() };
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn body_digest_is_sha256_hex() {
        assert_eq!(body_sha256(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
