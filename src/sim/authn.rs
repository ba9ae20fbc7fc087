//! Who is calling the simulator: bearer tokens, client certificates and impersonation.
//!
//! Mirrors kube-apiserver's order: authenticate (static tokens, then the verified client
//! certificate's CN/O), then apply `Impersonate-*` headers the way
//! `apiserver pkg/endpoints/filters/impersonation.go` does — a group, uid or extra without a user
//! is a 500, and only an identity allowed to impersonate may use them (here: the relay identity).
//! The headers are consumed; the effective user is what every later stage sees.

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::kube::status::Status;

/// An authenticated (and possibly impersonated) user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The static identities the simulator knows.
#[derive(Clone)]
pub struct Identities {
    /// token → (user, groups)
    pub tokens: Vec<(String, User)>,
    /// users allowed to impersonate
    pub impersonators: Vec<String>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities").field("users", &self.tokens.iter().map(|(_, u)| &u.name).collect::<Vec<_>>()).finish()
    }
}

fn with_authenticated(mut groups: Vec<String>) -> Vec<String> {
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    groups
}

/// Constant-time comparison, so a token cannot be guessed byte by byte from timing.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authenticate a request: `Authorization: Bearer` first, then the client certificate.
pub fn authenticate(headers: &HeaderMap, cert_identity: Option<&(String, Vec<String>)>, ids: &Identities) -> Result<User, Status> {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION) {
        let token = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).ok_or_else(Status::unauthorized)?;
        return ids
            .tokens
            .iter()
            .find(|(t, _)| ct_eq(t.as_bytes(), token.as_bytes()))
            .map(|(_, u)| User { groups: with_authenticated(u.groups.clone()), ..u.clone() })
            .ok_or_else(Status::unauthorized);
    }
    if let Some((cn, orgs)) = cert_identity {
        return Ok(User { name: cn.clone(), groups: with_authenticated(orgs.clone()), uid: None, extra: BTreeMap::new() });
    }
    Err(Status::unauthorized())
}

fn forbidden_impersonation(actor: &User, resource: &str, group: &str, name: &str) -> Status {
    Status::forbidden(format!(
        "{resource} \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"{group}\" at the cluster scope",
        actor.name
    ))
}

/// Apply `Impersonate-*` headers. Returns the effective user, or the authenticated one when no
/// impersonation was asked for.
pub fn impersonate(actor: User, headers: &HeaderMap, ids: &Identities) -> Result<User, Status> {
    let mut user: Option<String> = None;
    let mut groups = Vec::new();
    let mut uid = None;
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut any = false;
    for (name, value) in headers {
        let n = name.as_str();
        if !n.starts_with("impersonate-") {
            continue;
        }
        any = true;
        let v = value.to_str().map_err(|_| Status::bad_request(format!("invalid {n} header value")))?.to_string();
        match n {
            "impersonate-user" => {
                if user.replace(v).is_some() {
                    return Err(Status::bad_request("only one Impersonate-User header is allowed"));
                }
            }
            "impersonate-group" => groups.push(v),
            "impersonate-uid" => uid = Some(v),
            _ => match n.strip_prefix("impersonate-extra-") {
                Some(key) if !key.is_empty() => {
                    let key = crate::kube::path_unescape(key).ok_or_else(|| Status::bad_request(format!("invalid {n} header name")))?;
                    extra.entry(key).or_default().push(v);
                }
                _ => return Err(Status::bad_request(format!("unknown impersonation header {n}"))),
            },
        }
    }
    if !any {
        return Ok(actor);
    }
    let Some(name) = user else {
        return Err(Status::internal("requested impersonation of groups, uid or extra without a user"));
    };
    if !ids.impersonators.contains(&actor.name) {
        return Err(forbidden_impersonation(&actor, "users", "", &name));
    }
    let mut groups = with_authenticated(groups);
    if let Some(rest) = name.strip_prefix("system:serviceaccount:") {
        if let Some((ns, _)) = rest.split_once(':') {
            groups.push("system:serviceaccounts".into());
            groups.push(format!("system:serviceaccounts:{ns}"));
        }
    }
    Ok(User { name, groups, uid, extra })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Identities {
        let u = |n: &str, g: &[&str]| User { name: n.into(), groups: g.iter().map(|s| s.to_string()).collect(), uid: None, extra: BTreeMap::new() };
        Identities {
            tokens: vec![("admintoken".into(), u("admin", &["system:masters"])), ("relaytoken".into(), u("hoop-kube-relay", &[]))],
            impersonators: vec!["hoop-kube-relay".into()],
        }
    }

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    #[test]
    fn bearer_tokens() {
        let u = authenticate(&h(&[("authorization", "Bearer admintoken")]), None, &ids()).unwrap();
        assert_eq!(u.name, "admin");
        assert_eq!(u.groups, vec!["system:masters", "system:authenticated"]);
        assert_eq!(authenticate(&h(&[("authorization", "Bearer nope")]), None, &ids()).unwrap_err().code, 401);
        assert_eq!(authenticate(&h(&[("authorization", "Basic x")]), None, &ids()).unwrap_err().code, 401);
        assert_eq!(authenticate(&h(&[]), None, &ids()).unwrap_err().code, 401);
    }

    #[test]
    fn client_certificate_identity() {
        let u = authenticate(&h(&[]), Some(&("alice".into(), vec!["dev".into()])), &ids()).unwrap();
        assert_eq!((u.name.as_str(), u.groups.len()), ("alice", 2));
    }

    #[test]
    fn only_the_relay_may_impersonate() {
        let admin = authenticate(&h(&[("authorization", "Bearer admintoken")]), None, &ids()).unwrap();
        let err = impersonate(admin.clone(), &h(&[("impersonate-user", "alice")]), &ids()).unwrap_err();
        assert_eq!(err.code, 403);
        assert!(err.message.contains("cannot impersonate resource \"users\""));
        assert_eq!(impersonate(admin, &h(&[]), &ids()).unwrap().name, "admin");
        let relay = authenticate(&h(&[("authorization", "Bearer relaytoken")]), None, &ids()).unwrap();
        let u = impersonate(
            relay,
            &h(&[("impersonate-user", "alice"), ("impersonate-group", "dev"), ("impersonate-group", "ops"), ("impersonate-extra-agent%2fname", "bot")]),
            &ids(),
        )
        .unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["dev", "ops", "system:authenticated"]);
        assert_eq!(u.extra.get("agent/name"), Some(&vec!["bot".to_string()]));
    }

    #[test]
    fn group_without_user_is_500() {
        let relay = authenticate(&h(&[("authorization", "Bearer relaytoken")]), None, &ids()).unwrap();
        assert_eq!(impersonate(relay.clone(), &h(&[("impersonate-group", "x")]), &ids()).unwrap_err().code, 500);
        assert_eq!(impersonate(relay.clone(), &h(&[("impersonate-uid", "1")]), &ids()).unwrap_err().code, 500);
        assert_eq!(impersonate(relay, &h(&[("impersonate-user", "a"), ("impersonate-user", "b")]), &ids()).unwrap_err().code, 400);
    }
}
