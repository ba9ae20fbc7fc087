//! A request body as the object it describes, whatever encoding kubectl chose.
//!
//! Policy conditions read `object` (the pod being created, the patch being applied). kubectl
//! sends JSON, YAML (server-side apply), the three patch types (all JSON), and, from 1.32 on, the
//! Kubernetes protobuf encoding for typed clients (`k8s-wire.md`). This is the one place that
//! knows which `Content-Type` means which decoder. It decodes or refuses: an unknown type, bytes
//! that do not parse, or a protobuf kind without a schema are errors, never "no object" — the
//! caller must not evaluate a condition on an object it could not see.

use serde_json::Value;

/// Why a body could not be decoded. One line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    #[error("unsupported Content-Type {0:?}")]
    UnsupportedType(String),
    #[error("the body is not valid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

/// Decode `body` sent with `content_type` (`None`: no header). An empty body is `Value::Null`.
pub fn decode(content_type: Option<&str>, body: &[u8]) -> Result<Value, BodyError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let essence = content_type.unwrap_or("application/json").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let invalid = |what: &'static str| move |e: &dyn std::fmt::Display| BodyError::Invalid { what, reason: e.to_string().replace('\n', " ") };
    match essence.as_str() {
        "application/json" | "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json" | "application/apply-patch+json" => {
            serde_json::from_slice(body).map_err(|e| invalid("JSON")(&e))
        }
        "application/yaml" | "application/apply-patch+yaml" => {
            let text = std::str::from_utf8(body).map_err(|e| invalid("YAML")(&e))?;
            serde_yaml_ng::from_str::<Value>(text).map_err(|e| invalid("YAML")(&e))
        }
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body).map_err(|e| invalid("Kubernetes protobuf")(&e)),
        other => Err(BodyError::UnsupportedType(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_encoding_kubectl_sends_decodes_to_the_same_shape() {
        let want = serde_json::json!({"kind": "Pod", "metadata": {"name": "web"}});
        assert_eq!(decode(Some("application/json"), br#"{"kind":"Pod","metadata":{"name":"web"}}"#).unwrap(), want);
        assert_eq!(decode(Some("application/apply-patch+yaml; charset=utf-8"), b"kind: Pod\nmetadata:\n  name: web\n").unwrap(), want);
        assert_eq!(decode(None, b"").unwrap(), Value::Null);
        assert!(decode(Some("application/merge-patch+json"), br#"{"spec":{}}"#).is_ok());
    }

    #[test]
    fn what_cannot_be_decoded_is_an_error_not_an_empty_object() {
        assert!(matches!(decode(Some("application/json"), b"{"), Err(BodyError::Invalid { .. })));
        assert!(matches!(decode(Some("text/plain"), b"x"), Err(BodyError::UnsupportedType(_))));
        assert!(matches!(decode(Some("application/yaml"), b"\xff\xfe"), Err(BodyError::Invalid { .. })));
        assert!(matches!(decode(Some("application/vnd.kubernetes.protobuf"), b"k8s\0\x0a"), Err(BodyError::Invalid { .. })));
    }
}
