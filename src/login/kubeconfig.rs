//! `hoop-kube kubeconfig`: add or update one context in a kubeconfig file, idempotently.
//!
//! The entry is a cluster pointing at the profile's local forwarder (its CA inline: kubectl only
//! sends credentials over TLS), a user running the exec plugin (`hoop-kube credential --profile
//! NAME`, `interactiveMode: IfAvailable`, `provideClusterInfo: true`), and a context joining them.
//!
//! Which file: `--kubeconfig PATH`, else the first entry of `$KUBECONFIG`, else `~/.kube/config`
//! — the file kubectl itself writes to (`kubectl config set-context` picks the same one).
//!
//! What is kept: if the file already says exactly this, it is not written at all (byte for byte
//! unchanged, modification time included). Otherwise the three named entries are replaced in place
//! (or appended), every other entry and key keeps its order and value, and the file is replaced
//! atomically with its mode kept (new files are `0600`). Like `kubectl config`, a rewrite does not
//! keep YAML comments. A file that is not a kubeconfig (not a mapping, `clusters` not a list, …)
//! is refused rather than "repaired".

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

/// Largest kubeconfig read (kubectl has no limit; 16 MiB is far beyond any real one).
const MAX_LEN: u64 = 16 << 20;

/// Why the kubeconfig could not be updated. One line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeconfigError {
    #[error("{}: {reason}; fix the file or pass --kubeconfig to write another one", .path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot {op} {}: {source}", .path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("no home directory and no $KUBECONFIG; pass --kubeconfig")]
    NoHome,
}

/// The exec plugin invocation written into the user entry.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// One hoop-kube context.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Name of the context, and of its cluster and user entries.
    pub name: String,
    /// `https://127.0.0.1:PORT`, the forwarder.
    pub server: String,
    /// The forwarder's local CA, PEM.
    pub ca_pem: String,
    pub exec: ExecSpec,
    pub namespace: Option<String>,
}

/// What [`write`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// `$KUBECONFIG`'s first entry, else `~/.kube/config`.
pub fn default_path() -> Result<PathBuf, KubeconfigError> {
    if let Some(first) = std::env::var_os("KUBECONFIG").and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty())) {
        return Ok(first);
    }
    directories::BaseDirs::new().map(|d| d.home_dir().join(".kube").join("config")).ok_or(KubeconfigError::NoHome)
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (s(k), v)).collect())
}

impl Entry {
    fn cluster(&self) -> Value {
        use base64::Engine as _;
        map(vec![("server", s(&self.server)), ("certificate-authority-data", s(&base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)))])
    }

    fn user(&self) -> Value {
        let mut exec = vec![
            ("apiVersion", s("client.authentication.k8s.io/v1")),
            ("command", s(&self.exec.command)),
            ("args", Value::Sequence(self.exec.args.iter().map(|a| s(a)).collect())),
        ];
        if !self.exec.env.is_empty() {
            exec.push(("env", Value::Sequence(self.exec.env.iter().map(|(k, v)| map(vec![("name", s(k)), ("value", s(v))])).collect())));
        }
        exec.push(("interactiveMode", s("IfAvailable")));
        exec.push(("provideClusterInfo", Value::Bool(true)));
        exec.push(("installHint", s("hoop-kube is not installed or not on PATH: install it (see its README), then run hoop-kube login")));
        map(vec![("exec", map(exec))])
    }

    fn context(&self) -> Value {
        let mut c = vec![("cluster", s(&self.name)), ("user", s(&self.name))];
        if let Some(ns) = &self.namespace {
            c.push(("namespace", s(ns)));
        }
        map(c)
    }
}

/// Put `item` (under key `inner`) named `name` into the list `key` of `doc`.
fn upsert(doc: &mut Mapping, key: &str, inner: &str, name: &str, item: Value, path: &Path) -> Result<(), KubeconfigError> {
    let invalid = |reason: String| KubeconfigError::Invalid { path: path.to_path_buf(), reason };
    let list = doc.entry(s(key)).or_insert(Value::Sequence(Vec::new()));
    if list.is_null() {
        *list = Value::Sequence(Vec::new());
    }
    let Value::Sequence(items) = list else {
        return Err(invalid(format!("`{key}` is not a list")));
    };
    let mut found = None;
    for (i, it) in items.iter().enumerate() {
        let Value::Mapping(m) = it else {
            return Err(invalid(format!("`{key}[{i}]` is not a mapping")));
        };
        if m.get("name").and_then(Value::as_str) == Some(name) {
            if found.is_some() {
                return Err(invalid(format!("`{key}` names {name:?} twice")));
            }
            found = Some(i);
        }
    }
    match found {
        Some(i) => {
            if let Value::Mapping(m) = &mut items[i] {
                m.insert(s(inner), item);
            }
        }
        None => items.push(map(vec![("name", s(name)), (inner, item)])),
    }
    Ok(())
}

/// The new contents for `existing` (None: no file yet) with `e` merged in, or None if nothing
/// changes.
pub fn merge(existing: Option<&str>, e: &Entry, set_current: bool, path: &Path) -> Result<Option<String>, KubeconfigError> {
    let invalid = |reason: String| KubeconfigError::Invalid { path: path.to_path_buf(), reason };
    let before: Value = match existing {
        Some(text) if !text.trim().is_empty() => serde_yaml_ng::from_str(text).map_err(|err| invalid(format!("not YAML: {}", err.to_string().replace('\n', " "))))?,
        _ => Value::Null,
    };
    let mut doc = match &before {
        Value::Null => {
            let mut m = Mapping::new();
            m.insert(s("apiVersion"), s("v1"));
            m.insert(s("kind"), s("Config"));
            m.insert(s("preferences"), Value::Mapping(Mapping::new()));
            m
        }
        Value::Mapping(m) => m.clone(),
        _ => return Err(invalid("not a kubeconfig (the top level is not a mapping)".into())),
    };
    if let Some(kind) = doc.get("kind").and_then(Value::as_str) {
        if kind != "Config" {
            return Err(invalid(format!("kind is {kind:?}, not Config")));
        }
    }
    upsert(&mut doc, "clusters", "cluster", &e.name, e.cluster(), path)?;
    upsert(&mut doc, "users", "user", &e.name, e.user(), path)?;
    upsert(&mut doc, "contexts", "context", &e.name, e.context(), path)?;
    if set_current {
        doc.insert(s("current-context"), s(&e.name));
    }
    let after = Value::Mapping(doc);
    if after == before {
        return Ok(None);
    }
    serde_yaml_ng::to_string(&after).map(Some).map_err(|err| invalid(format!("cannot serialize: {err}")))
}

/// Merge `e` into the kubeconfig at `path` (see the module documentation).
pub fn write(path: &Path, e: &Entry, set_current: bool) -> Result<Outcome, KubeconfigError> {
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| KubeconfigError::Io { op, path: p, source }
    };
    let existing = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_LEN => return Err(KubeconfigError::Invalid { path: path.into(), reason: format!("larger than {MAX_LEN} bytes") }),
        Ok(m) => Some((std::fs::read_to_string(path).map_err(io("read", path))?, m)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(io("inspect", path)(err)),
    };
    let Some(text) = merge(existing.as_ref().map(|(t, _)| t.as_str()), e, set_current, path)? else {
        return Ok(Outcome::Unchanged);
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let tmp = dir.join(format!(".{}.hoop-kube.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("config"), std::process::id()));
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp).map_err(io("create", &tmp))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("write", &tmp))?;
        if let Some((_, meta)) = &existing {
            std::fs::set_permissions(&tmp, meta.permissions()).map_err(io("set the mode of", &tmp))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(io("replace", path))?;
    Ok(if existing.is_some() { Outcome::Updated } else { Outcome::Created })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, port: u16) -> Entry {
        Entry {
            name: name.into(),
            server: format!("https://127.0.0.1:{port}"),
            ca_pem: "-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----\n".into(),
            exec: ExecSpec { command: "/usr/bin/hoop-kube".into(), args: vec!["credential".into(), "--profile".into(), name.into()], env: vec![] },
            namespace: None,
        }
    }

    #[test]
    fn writing_twice_changes_nothing_the_second_time() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kube/config");
        assert_eq!(write(&p, &entry("hk", 6643), true).unwrap(), Outcome::Created);
        let first = std::fs::read(&p).unwrap();
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(write(&p, &entry("hk", 6643), true).unwrap(), Outcome::Unchanged);
        assert_eq!(std::fs::read(&p).unwrap(), first);
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), mtime);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn other_entries_are_kept_and_ours_is_updated_in_place() {
        let existing = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://prod:6443\n- name: hk\n  cluster:\n    server: https://old\nusers:\n- name: prod\n  user:\n    token: abc\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: prod\ncurrent-context: prod\nextensions: []\n";
        let out = merge(Some(existing), &entry("hk", 7000), false, Path::new("c")).unwrap().unwrap();
        let v: Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(v["current-context"], s("prod"));
        assert_eq!(v["clusters"][0]["name"], s("prod"));
        assert_eq!(v["clusters"][1]["cluster"]["server"], s("https://127.0.0.1:7000"));
        assert_eq!(v["clusters"].as_sequence().unwrap().len(), 2);
        assert_eq!(v["users"][0]["user"]["token"], s("abc"));
        assert_eq!(v["users"][1]["user"]["exec"]["interactiveMode"], s("IfAvailable"));
        assert_eq!(v["users"][1]["user"]["exec"]["provideClusterInfo"], Value::Bool(true));
        assert_eq!(v["extensions"], Value::Sequence(vec![]));
        // And merging the result again is a no-op.
        assert!(merge(Some(&out), &entry("hk", 7000), false, Path::new("c")).unwrap().is_none());
    }

    #[test]
    fn files_that_are_not_kubeconfigs_are_refused() {
        for bad in ["- a\n- b\n", "clusters: 3\n", "kind: Pod\n", "clusters:\n- 1\n", "clusters:\n- name: hk\n- name: hk\n", "a: [\n"] {
            let e = merge(Some(bad), &entry("hk", 1), true, Path::new("cfg")).unwrap_err();
            assert!(e.to_string().starts_with("cfg: "), "{bad:?}: {e}");
        }
    }
}
