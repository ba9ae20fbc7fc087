//! Label and field selectors, as the apiserver filters lists and watches with them.
//!
//! Label selectors support the equality (`=`, `==`, `!=`) and set (`in`, `notin`, `key`, `!key`)
//! forms of `apimachinery pkg/labels/selector.go`; field selectors support `=`, `==` and `!=` on
//! the fields the apiserver indexes for the served kinds. An unknown field is a 400, as the
//! apiserver answers `field label not supported`.

use serde_json::Value;

/// A parsed selector term.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Term>);

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The selector text did not parse.
    #[error("unable to parse requirement: {0}")]
    Parse(String),
    /// A field selector named a field the apiserver does not index for this kind.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// Split on commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 317 && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn set_values(s: &str) -> Result<Vec<String>, SelectorError> {
    let inner = s.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(|| SelectorError::Parse(s.into()))?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if vals.iter().any(|v| !valid_value(v)) {
        return Err(SelectorError::Parse(s.into()));
    }
    Ok(vals)
}

impl LabelSelector {
    /// Parse `?labelSelector=`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        if s.len() > 4096 {
            return Err(SelectorError::Parse("selector too long".into()));
        }
        let mut terms = Vec::new();
        for t in split_terms(s) {
            let bad = || SelectorError::Parse(t.to_string());
            let term = if let Some(k) = t.strip_prefix('!') {
                Term::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = t.split_once("!=") {
                Term::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once("==") {
                Term::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once('=') {
                Term::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once(" notin ") {
                Term::NotIn(k.trim().into(), set_values(v)?)
            } else if let Some((k, v)) = t.split_once(" in ") {
                Term::In(k.trim().into(), set_values(v)?)
            } else {
                Term::Exists(t.to_string())
            };
            let (key, vals): (&str, Vec<&str>) = match &term {
                Term::Eq(k, v) | Term::NotEq(k, v) => (k, vec![v.as_str()]),
                Term::In(k, v) | Term::NotIn(k, v) => (k, v.iter().map(String::as_str).collect()),
                Term::Exists(k) | Term::NotExists(k) => (k, vec![]),
            };
            if !valid_key(key) || vals.iter().any(|v| !valid_value(v)) {
                return Err(bad());
            }
            terms.push(term);
        }
        Ok(LabelSelector(terms))
    }

    /// Whether an object's `metadata.labels` match.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|t| match t {
            Term::Eq(k, v) => get(k) == Some(v.as_str()),
            Term::NotEq(k, v) => get(k) != Some(v.as_str()),
            Term::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Term::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Term::Exists(k) => get(k).is_some(),
            Term::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// The fields the apiserver lets a kind be selected by.
fn supported_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &["metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"],
        "Secret" => &["metadata.name", "metadata.namespace", "type"],
        "Namespace" => &["metadata.name", "status.phase"],
        "Event" => &["metadata.name", "metadata.namespace", "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

fn field_value(object: &Value, path: &str) -> String {
    let mut v = object;
    for p in path.split('.') {
        v = &v[p];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl FieldSelector {
    /// Parse `?fieldSelector=` for objects of `kind`.
    pub fn parse(s: &str, kind: &str) -> Result<Self, SelectorError> {
        let mut out = Vec::new();
        for t in split_terms(s) {
            let (k, eq, v) = if let Some((k, v)) = t.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = t.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = t.split_once('=') {
                (k, true, v)
            } else {
                return Err(SelectorError::Parse(t.to_string()));
            };
            let k = k.trim();
            if !supported_fields(kind).contains(&k) {
                return Err(SelectorError::UnsupportedField(k.to_string()));
            }
            out.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// Whether an object matches.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(k, eq, v)| (field_value(object, k) == *v) == *eq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata":{"labels":{"app":"web","tier":"fe"}}});
        for (s, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=be", false),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(s).unwrap().matches(&o), want, "{s}");
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse(&"a".repeat(5000)).is_err());
    }

    #[test]
    fn field_selectors() {
        let o = json!({"metadata":{"name":"p1","namespace":"d"},"status":{"phase":"Running"}});
        assert!(FieldSelector::parse("metadata.name=p1", "Pod").unwrap().matches(&o));
        assert!(!FieldSelector::parse("metadata.name!=p1", "Pod").unwrap().matches(&o));
        assert!(FieldSelector::parse("status.phase==Running,metadata.namespace=d", "Pod").unwrap().matches(&o));
        assert_eq!(FieldSelector::parse("spec.secret=x", "ConfigMap"), Err(SelectorError::UnsupportedField("spec.secret".into())));
        assert!(FieldSelector::parse("nonsense", "Pod").is_err());
    }
}
