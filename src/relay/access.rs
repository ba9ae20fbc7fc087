//! The relay's minimal access list: which subjects and groups may use the relay at all.
//!
//! It stands in front of the policy engine (a later stage) and fails closed: a request whose
//! user is not listed by name and has none of the listed groups is a 403 `Status`.

use super::authn::Authenticated;
use super::oidc::Identity;
use crate::kube::request_info::RequestInfo;
use crate::kube::status::{Status, StatusDetails};

/// Subjects (usernames) and groups allowed through.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub subjects: Vec<String>,
    pub groups: Vec<String>,
}

/// Proof that the access list admitted a request.
#[derive(Debug)]
pub struct Admitted(());

impl Access {
    /// Admit or refuse, with the apiserver's wording so kubectl prints `Error from server
    /// (Forbidden): …`.
    pub fn check(&self, who: &Authenticated, info: &RequestInfo) -> Result<Admitted, Status> {
        let id = who.identity();
        if self.admits(id) {
            return Ok(Admitted(()));
        }
        let what = if info.is_resource_request {
            let ns = if info.namespace.is_empty() { "at the cluster scope".to_string() } else { format!("in the namespace \"{}\"", info.namespace) };
            let res = if info.subresource.is_empty() { info.resource.clone() } else { format!("{}/{}", info.resource, info.subresource) };
            format!("{} \"{}\" is forbidden: User \"{}\" cannot {} resource \"{res}\" in API group \"{}\" {ns}", info.resource, info.name, id.username, info.verb, info.api_group)
        } else {
            format!("forbidden: User \"{}\" cannot {} path \"{}\"", id.username, info.verb, info.path)
        };
        Err(Status::forbidden(format!("{what}: not in the hoop-kube relay's access list (ask the platform team to add you)"))
            .with_details(StatusDetails { name: info.name.clone(), group: info.api_group.clone(), kind: info.resource.clone(), ..Default::default() })
            .with_code("NotInAccessList"))
    }

    /// Whether a verified identity may use the relay at all: its user name or subject is listed,
    /// or one of its groups is. Enrollment asks this before any request exists.
    pub fn admits(&self, id: &Identity) -> bool {
        self.subjects.iter().any(|s| *s == id.username || *s == id.subject) || id.groups.iter().any(|g| self.groups.contains(g))
    }
}
