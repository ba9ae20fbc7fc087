//! The simulator's resource catalog: which kinds it serves and how discovery describes them.
//!
//! Discovery (both formats), the OpenAPI documents, routing and Table printing all read this one
//! table, so a resource is either fully served or not at all.

/// A subresource as discovery lists it.
#[derive(Debug)]
pub struct SubresourceDef {
    pub name: &'static str,
    pub kind: &'static str,
    /// The group/version of the subresource's kind, when it differs from the parent's.
    pub kind_gv: Option<(&'static str, &'static str)>,
    pub verbs: &'static [&'static str],
}

/// One served resource.
#[derive(Debug)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [SubresourceDef],
}

const CRUD: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const CREATE_ONLY: &[&str] = &["create"];

/// Every resource the simulator serves.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: &["create", "delete", "get", "list", "patch", "update", "watch"],
        subresources: &[
            SubresourceDef { name: "finalize", kind: "Namespace", kind_gv: None, verbs: &["update"] },
            SubresourceDef { name: "status", kind: "Namespace", kind_gv: None, verbs: &["get", "patch", "update"] },
        ],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: CRUD,
        subresources: &[
            SubresourceDef { name: "attach", kind: "PodAttachOptions", kind_gv: None, verbs: &["create", "get"] },
            SubresourceDef { name: "exec", kind: "PodExecOptions", kind_gv: None, verbs: &["create", "get"] },
            SubresourceDef { name: "log", kind: "Pod", kind_gv: None, verbs: &["get"] },
            SubresourceDef { name: "portforward", kind: "PodPortForwardOptions", kind_gv: None, verbs: &["create", "get"] },
            SubresourceDef { name: "status", kind: "Pod", kind_gv: None, verbs: &["get", "patch", "update"] },
        ],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: CRUD,
        subresources: &[],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        verbs: CRUD,
        subresources: &[],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        verbs: CRUD,
        subresources: &[SubresourceDef { name: "token", kind: "TokenRequest", kind_gv: Some(("authentication.k8s.io", "v1")), verbs: &["create"] }],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: CRUD,
        subresources: &[],
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        verbs: CRUD,
        subresources: &[
            SubresourceDef { name: "scale", kind: "Scale", kind_gv: Some(("autoscaling", "v1")), verbs: &["get", "patch", "update"] },
            SubresourceDef { name: "status", kind: "Deployment", kind_gv: None, verbs: &["get", "patch", "update"] },
        ],
    },
    ResourceDef {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: CREATE_ONLY,
        subresources: &[],
    },
    ResourceDef {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: CREATE_ONLY,
        subresources: &[],
    },
];

impl ResourceDef {
    /// `apiVersion` of the kind: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the resource is one the store keeps (reviews are computed, never stored).
    pub fn is_stored(&self) -> bool {
        self.verbs.contains(&"get")
    }

    /// The subresource definition, if served.
    pub fn subresource(&self, name: &str) -> Option<&SubresourceDef> {
        self.subresources.iter().find(|s| s.name == name)
    }
}

/// Find a served resource by group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Find a resource by kind (for the objects the simulator creates itself).
pub fn by_kind(kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// The API groups served under `/apis`, in discovery order.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
