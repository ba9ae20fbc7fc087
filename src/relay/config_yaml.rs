//! Reading relay.yaml (and the upstream kubeconfig) strictly: a size cap before parsing, UTF-8
//! only, duplicate keys refused anywhere, and every serde error turned into one line naming the
//! file and the key path ([`ConfigError::Syntax`]). Validation of the values is the parent's job.

use std::io::Read as _;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::{ConfigError, MAX_FILE_BYTES};

/// Read at most [`MAX_FILE_BYTES`] of UTF-8 text.
pub(in crate::relay) fn read_capped(path: &Path, file: &str) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read { file: file.into(), source };
    let f = std::fs::File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf).map_err(read_err)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge { file: file.into(), limit: MAX_FILE_BYTES });
    }
    String::from_utf8(buf).map_err(|e| ConfigError::Syntax {
        file: file.into(),
        key: String::new(),
        message: format!("not UTF-8 text (bad byte at offset {})", e.utf8_error().valid_up_to()),
    })
}

/// Parse YAML strictly. A first pass into a generic value finds syntax errors and duplicate keys
/// anywhere (serde_yaml_ng refuses duplicate mapping keys there; a derived struct alone would
/// only catch duplicates of fields it knows). The second pass gives typed errors with key paths.
pub(in crate::relay) fn parse_yaml<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::Invalid { file: file.into(), key: String::new(), message: "the file is empty".into() });
    }
    let value: serde_yaml_ng::Value = serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text))
        .map_err(|e| yaml_error(file, e))?;
    if value.is_null() {
        return Err(ConfigError::Invalid { file: file.into(), key: String::new(), message: "the file is empty".into() });
    }
    serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(|e| yaml_error(file, e))
}

fn yaml_error(file: &str, e: serde_path_to_error::Error<serde_yaml_ng::Error>) -> ConfigError {
    let path = e.path().to_string();
    let mut key = if path == "." || path == "?" { String::new() } else { path };
    let mut message = e.into_inner().to_string();
    // serde_yaml_ng prefixes nested messages with the path (or its parent's); say it once.
    let mut prefix = key.as_str();
    while !prefix.is_empty() {
        if let Some(rest) = message.strip_prefix(&format!("{prefix}: ")) {
            message = rest.to_string();
            break;
        }
        prefix = &prefix[..prefix.rfind(['.', '[']).unwrap_or(0)];
    }
    let child = |key: &str, name: &str| if key.is_empty() { name.to_string() } else { format!("{key}.{name}") };
    let quoted = |m: &str, open: &str, close: char| {
        let rest = m.strip_prefix(open)?;
        let end = rest.find(close)?;
        Some((rest[..end].to_string(), rest[end + 1..].to_string()))
    };
    if let Some((name, rest)) = quoted(&message, "missing field `", '`') {
        key = child(&key, &name);
        message = format!("is required but not set{}", rest.replacen(" at line", " in the mapping at line", 1));
    } else if let Some((name, rest)) = quoted(&message, "duplicate field `", '`').or_else(|| quoted(&message, "duplicate entry with key \"", '"')) {
        key = child(&key, &name);
        message = format!("is set more than once (YAML keys must be unique){}", rest.replacen(" at line", " in the mapping at line", 1));
    } else if let Some((_, rest)) = quoted(&message, "unknown field `", '`') {
        message = format!("unknown key{rest}");
    }
    ConfigError::Syntax { file: file.into(), key, message }
}
