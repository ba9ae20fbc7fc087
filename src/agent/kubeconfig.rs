//! The agent's private kubeconfig: the one file an agent gets, holding its credential only.
//!
//! **Why a separate file, and not a context in the engineer's kubeconfig.** An agent must not be
//! able to pick the engineer's own context, so it gets a kubeconfig with nothing else in it. It
//! points kubectl **directly at the relay** (no forwarder, no exec plugin): the cluster's
//! `server` is the relay URL with the relay's serving CA inline; the user holds the agent's client
//! certificate, its private key and the relay-signed agent token, all inline, so the file works
//! wherever it is copied (a container, a CI job) for as long as the session lives. One context,
//! set as current, with an optional namespace.
//!
//! The file is a secret: it is written `0600` (atomically: a temporary file in the same
//! directory, then a rename), in a directory created `0700` when missing. [`agent_kubeconfig`]
//! builds the document without I/O, so the demo can put the same contexts in its own kubeconfig.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

use super::Minted;

/// The file name written in the directory.
pub const FILE_NAME: &str = "kubeconfig";

/// Why the kubeconfig could not be written. One line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeconfigError {
    /// A directory or file operation failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    /// The document did not serialize (not expected).
    #[error("cannot write the agent kubeconfig: {0}")]
    Serialize(String),
}

/// The kubeconfig of one agent credential (see the module documentation): cluster, user and
/// context all named `context_name`.
pub fn agent_kubeconfig(relay_url: &str, server_ca_pem: &str, minted: &Minted, key_pem: &str, context_name: &str, namespace: Option<&str>) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let mut context = json!({ "cluster": context_name, "user": context_name });
    if let Some(ns) = namespace {
        context["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": context_name,
            "cluster": {
                "server": relay_url.trim_end_matches('/'),
                "certificate-authority-data": b64(server_ca_pem),
            },
        }],
        "users": [{
            "name": context_name,
            "user": {
                "client-certificate-data": b64(&minted.certificate),
                "client-key-data": b64(key_pem),
                "token": minted.token,
            },
        }],
        "contexts": [{ "name": context_name, "context": context }],
        "current-context": context_name,
        "preferences": {},
    })
}

/// Write [`agent_kubeconfig`] to `dir/kubeconfig` (mode `0600`; `dir` is created `0700` when
/// missing), replacing any file there. Returns the file's path.
pub fn write_agent_kubeconfig(dir: &Path, relay_url: &str, server_ca_pem: &str, minted: &Minted, key_pem: &str, context_name: &str, namespace: Option<&str>) -> Result<PathBuf, KubeconfigError> {
    let doc = agent_kubeconfig(relay_url, server_ca_pem, minted, key_pem, context_name, namespace);
    let text = serde_yaml_ng::to_string(&doc).map_err(|e| KubeconfigError::Serialize(e.to_string()))?;
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir).map_err(|source| KubeconfigError::Io { op: "create", path: dir.to_path_buf(), source })?;
    let path = dir.join(FILE_NAME);
    crate::atomic_file::write(&path, text.as_bytes(), 0o600).map_err(|e| KubeconfigError::Io { op: e.op, path: e.path, source: e.source })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{SessionInfo, SessionState};

    fn minted() -> Minted {
        Minted {
            api_version: "hoop-kube.dev/v1".into(),
            kind: "AgentCredential".into(),
            session: SessionInfo {
                id: "0190a0b0-0000-7000-8000-000000000001".into(),
                agent: "bot".into(),
                subject: "alice".into(),
                username: "alice".into(),
                groups: vec!["dev".into()],
                created_at: "2025-01-01T00:00:00Z".into(),
                not_after: "2025-01-01T01:00:00Z".into(),
                state: SessionState::Active,
                ended_at: None,
                ended_by: None,
                command: None,
                cert_serial: "ab".into(),
                requests: 0,
                mutating: 0,
                deletes: 0,
            },
            certificate: "CERT PEM\n".into(),
            token: "agent.token.sig".into(),
        }
    }

    #[test]
    fn the_document_has_exactly_one_direct_context() {
        let doc = agent_kubeconfig("https://relay.example.com:8443/", "CA PEM\n", &minted(), "KEY PEM\n", "hoop-kube-agent-bot", Some("team-a"));
        let expected = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "hoop-kube-agent-bot", "cluster": {"server": "https://relay.example.com:8443", "certificate-authority-data": "Q0EgUEVNCg=="}}],
            "users": [{"name": "hoop-kube-agent-bot", "user": {"client-certificate-data": "Q0VSVCBQRU0K", "client-key-data": "S0VZIFBFTQo=", "token": "agent.token.sig"}}],
            "contexts": [{"name": "hoop-kube-agent-bot", "context": {"cluster": "hoop-kube-agent-bot", "user": "hoop-kube-agent-bot", "namespace": "team-a"}}],
            "current-context": "hoop-kube-agent-bot",
            "preferences": {},
        });
        assert_eq!(doc, expected);
        let no_ns = agent_kubeconfig("https://r", "CA", &minted(), "K", "c", None);
        assert!(no_ns["contexts"][0]["context"].get("namespace").is_none());
    }

    #[test]
    fn the_file_is_private_yaml_that_reads_back_as_the_document() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("agent");
        let path = write_agent_kubeconfig(&dir, "https://relay:8443", "CA", &minted(), "KEY", "ctx", None).unwrap();
        assert_eq!(path, dir.join("kubeconfig"));
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, agent_kubeconfig("https://relay:8443", "CA", &minted(), "KEY", "ctx", None));
        assert!(text.starts_with("apiVersion: v1\n"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // Written again: replaced, still 0600, and no temporary file left behind.
        write_agent_kubeconfig(&dir, "https://relay:8443", "CA2", &minted(), "KEY", "ctx", None).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("kubeconfig")]);
        assert!(std::fs::read_to_string(&path).unwrap().contains(&base64::engine::general_purpose::STANDARD.encode("CA2")));
    }

    #[test]
    fn an_unwritable_directory_is_one_line() {
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let e = write_agent_kubeconfig(&file.join("sub"), "https://r", "CA", &minted(), "K", "c", None).unwrap_err();
        assert!(e.to_string().starts_with("cannot create "), "{e}");
        assert!(!e.to_string().contains('\n'));
    }
}
