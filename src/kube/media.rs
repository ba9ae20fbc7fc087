//! `Accept` negotiation: which representation a Kubernetes client asked for.
//!
//! kubectl asks for Tables (`application/json;as=Table;v=v1;g=meta.k8s.io`), aggregated discovery
//! (`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`), protobuf, or plain
//! JSON, in order of preference. The first media range the server can produce wins, as in
//! kube-apiserver's negotiation. Parameters are matched exactly; nothing is guessed.

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    /// `type/subtype`, lowercased.
    pub essence: String,
    /// Parameters in order, names lowercased, values as sent (quotes removed).
    pub params: Vec<(String, String)>,
}

impl MediaRange {
    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parse an `Accept` header into media ranges, in the client's order. Malformed ranges are skipped
/// (they can only make the client get plain JSON).
pub fn parse_accept(accept: &str) -> Vec<MediaRange> {
    accept
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';');
            let essence = parts.next()?.trim().to_ascii_lowercase();
            if !essence.contains('/') {
                return None;
            }
            let params = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()))
                })
                .collect();
            Some(MediaRange { essence, params })
        })
        .collect()
}

/// What a response can be rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// Plain JSON of the object itself.
    Json,
    /// A `meta.k8s.io` Table (the version is `v1` or `v1beta1`).
    Table(&'static str),
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    PartialMetadata(&'static str),
    /// Aggregated discovery (`apidiscovery.k8s.io` `v2` or `v2beta1`).
    AggregatedDiscovery(&'static str),
}

impl Representation {
    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> String {
        match self {
            Representation::Json | Representation::Table(_) | Representation::PartialMetadata(_) => "application/json".into(),
            Representation::AggregatedDiscovery(v) => format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"),
        }
    }
}

fn is_json(essence: &str) -> bool {
    matches!(essence, "application/json" | "application/*" | "*/*")
}

fn meta_version(r: &MediaRange) -> Option<&'static str> {
    if r.param("g") != Some("meta.k8s.io") {
        return None;
    }
    match r.param("v") {
        Some("v1") => Some("v1"),
        Some("v1beta1") => Some("v1beta1"),
        _ => None,
    }
}

/// Choose the representation for an object or list response. Protobuf and other encodings are
/// answered as JSON, which kubectl accepts (it decodes by the response `Content-Type`).
pub fn negotiate_object(accept: Option<&str>) -> Representation {
    for r in parse_accept(accept.unwrap_or("application/json")) {
        if !is_json(&r.essence) {
            continue;
        }
        match r.param("as") {
            None => return Representation::Json,
            Some("Table") => {
                if let Some(v) = meta_version(&r) {
                    return Representation::Table(v);
                }
            }
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList") => {
                if let Some(v) = meta_version(&r) {
                    return Representation::PartialMetadata(v);
                }
            }
            Some(_) => {}
        }
    }
    Representation::Json
}

/// Choose between aggregated and legacy discovery for `/api` and `/apis`.
pub fn negotiate_discovery(accept: Option<&str>) -> Representation {
    for r in parse_accept(accept.unwrap_or("application/json")) {
        if !is_json(&r.essence) {
            continue;
        }
        match (r.param("g"), r.param("v"), r.param("as")) {
            (None, None, None) => return Representation::Json,
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => return Representation::AggregatedDiscovery("v2"),
            (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => return Representation::AggregatedDiscovery("v2beta1"),
            _ => {}
        }
    }
    Representation::Json
}

/// The `Accept` header a masking relay sends upstream instead of the client's: every media range
/// turned into JSON with its parameters kept (`as=Table;v=v1;g=meta.k8s.io` stays a Table request,
/// `stream=watch` stays a watch), protobuf, YAML, CBOR and wildcards included, duplicates dropped,
/// and plain `application/json` always last as the fallback. The masker only reads JSON; asking
/// for nothing else is how protobuf, YAML and CBOR answers are kept off the wire (k8s-wire.md §8),
/// and a response that still comes back in another encoding is refused by the masker.
pub fn json_only_accept(accept: Option<&str>) -> String {
    let mut out: Vec<String> = Vec::new();
    for r in parse_accept(accept.unwrap_or_default()) {
        let params: Vec<String> = r.params.iter().filter(|(k, _)| k != "q" && k != "charset").map(|(k, v)| format!("{k}={v}")).collect();
        let range = if params.is_empty() { "application/json".to_string() } else { format!("application/json;{}", params.join(";")) };
        if !out.contains(&range) {
            out.push(range);
        }
    }
    out.retain(|r| r != "application/json");
    out.push("application/json".into());
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_GET: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    const KUBECTL_DISCOVERY: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn kubectl_get_asks_for_a_table() {
        assert_eq!(negotiate_object(Some(KUBECTL_GET)), Representation::Table("v1"));
    }

    #[test]
    fn plain_and_protobuf_get_json() {
        assert_eq!(negotiate_object(Some("application/json")), Representation::Json);
        assert_eq!(negotiate_object(Some("application/vnd.kubernetes.protobuf,application/json")), Representation::Json);
        assert_eq!(negotiate_object(None), Representation::Json);
        assert_eq!(negotiate_object(Some("application/json, */*")), Representation::Json);
    }

    #[test]
    fn unknown_table_version_falls_through() {
        assert_eq!(negotiate_object(Some("application/json;as=Table;v=v9;g=meta.k8s.io,application/json")), Representation::Json);
        assert_eq!(negotiate_object(Some("application/json;as=Table;v=v1;g=evil.io")), Representation::Json);
    }

    #[test]
    fn discovery_prefers_v2() {
        assert_eq!(negotiate_discovery(Some(KUBECTL_DISCOVERY)), Representation::AggregatedDiscovery("v2"));
        assert_eq!(
            Representation::AggregatedDiscovery("v2").content_type(),
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        assert_eq!(negotiate_discovery(Some("application/json, */*")), Representation::Json);
    }

    #[test]
    fn hostile_accept_headers() {
        assert!(parse_accept(";;;,,,").is_empty());
        assert_eq!(negotiate_object(Some("text/html;as=Table;v=v1;g=meta.k8s.io")), Representation::Json);
        assert_eq!(negotiate_object(Some(&"a/b;x=y,".repeat(1000))), Representation::Json);
    }
    #[test]
    fn json_only_accept_keeps_parameters_and_drops_other_encodings() {
        assert_eq!(json_only_accept(Some(KUBECTL_GET)), "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json");
        assert_eq!(
            json_only_accept(Some("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/vnd.kubernetes.protobuf,application/json")),
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        );
        assert_eq!(json_only_accept(Some("application/yaml")), "application/json");
        assert_eq!(json_only_accept(Some("application/cbor")), "application/json");
        assert_eq!(json_only_accept(Some("*/*;q=0.8")), "application/json");
        assert_eq!(json_only_accept(None), "application/json");
        assert_eq!(json_only_accept(Some("application/vnd.kubernetes.protobuf;stream=watch")), "application/json;stream=watch,application/json");
    }
}
