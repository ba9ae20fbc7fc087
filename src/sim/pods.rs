//! Simulated containers: each pod's containers run their `command`/`args` in the built-in shell.
//!
//! A container's output becomes its log (`kubectl logs`, with timestamps, tail and follow) and is
//! broadcast live to `kubectl attach`; a container with `stdin: true` takes input from attach
//! (closed after the first attach when `stdinOnce`). Secret and ConfigMap volumes are written into
//! the container's in-memory filesystem, and `env` (literals and `valueFrom` Secret/ConfigMap
//! keys) is resolved the way the kubelet does, so exec and cp see what a real container holds.
//! A container without a command runs silently until its pod is deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};

use super::podfs::PodFs;
use super::shell::{self, ExecEnv, ExecIo};
use super::store::{Key, Store};

/// One log line with the time it was written.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: DateTime<Utc>,
    pub data: Bytes,
}

/// A container's log: lines so far, and a signal when more arrive or the container ends.
pub struct LogBuf {
    lines: Mutex<Vec<LogLine>>,
    /// (number of lines, finished)
    progress: watch::Sender<(usize, bool)>,
}

impl Default for LogBuf {
    fn default() -> Self {
        LogBuf { lines: Mutex::new(Vec::new()), progress: watch::channel((0, false)).0 }
    }
}

impl LogBuf {
    fn push(&self, data: Bytes) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.push(LogLine { time: Utc::now(), data });
        let n = lines.len();
        self.progress.send_modify(|p| p.0 = n);
    }

    fn finish(&self) {
        self.progress.send_modify(|p| p.1 = true);
    }

    /// Lines from `from` on.
    pub fn since(&self, from: usize) -> Vec<LogLine> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.get(from..).map(<[LogLine]>::to_vec).unwrap_or_default()
    }

    /// Number of lines so far.
    pub fn len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Watch progress.
    pub fn subscribe(&self) -> watch::Receiver<(usize, bool)> {
        self.progress.subscribe()
    }
}

/// One running container.
pub struct Container {
    pub name: String,
    pub log: Arc<LogBuf>,
    pub fs: Arc<Mutex<PodFs>>,
    pub env: Mutex<Vec<(String, String)>>,
    pub tty: bool,
    /// The main process's stdin, while it is open.
    pub stdin: Mutex<Option<mpsc::Sender<Bytes>>>,
    pub stdin_once: bool,
    /// Live output for attach.
    pub output: broadcast::Sender<Bytes>,
    pub resize: watch::Sender<Option<(u16, u16)>>,
    /// The main process's exit code once it has ended.
    pub exited: watch::Receiver<Option<i32>>,
}

/// One pod's containers.
pub struct PodRuntime {
    pub containers: Vec<Arc<Container>>,
    pub hostname: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PodRuntime {
    /// A container by name.
    pub fn container(&self, name: &str) -> Option<Arc<Container>> {
        self.containers.iter().find(|c| c.name == name).cloned()
    }
}

impl Drop for PodRuntime {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        // Followers of a deleted pod's logs end, as they do when a container is removed.
        for c in &self.containers {
            c.log.finish();
        }
    }
}

/// All pods' runtimes, by pod uid.
pub struct PodRuntimes {
    pods: Mutex<HashMap<String, Arc<PodRuntime>>>,
    store: Store,
}

fn uid_of(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

fn lookup_key(store: &Store, resource: &str, ns: &str, name: &str, key: &str) -> Option<Vec<u8>> {
    let obj = store.txn().get(&Key { resource: resource.into(), namespace: ns.into(), name: name.into() })?;
    if resource == "/secrets" {
        let b64 = obj["data"][key].as_str()?;
        base64::engine::general_purpose::STANDARD.decode(b64).ok()
    } else {
        obj["data"][key].as_str().map(|s| s.as_bytes().to_vec())
    }
}

/// Resolve a container's environment as the kubelet does: literals and `valueFrom` Secret /
/// ConfigMap keys (a missing optional key is skipped; a missing required one is left empty).
pub fn resolve_env(store: &Store, ns: &str, container: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else { continue };
        let value = if let Some(v) = e["value"].as_str() {
            Some(v.to_string())
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            lookup_key(store, "/secrets", ns, r.get("name").and_then(Value::as_str).unwrap_or(""), r.get("key").and_then(Value::as_str).unwrap_or(""))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        } else if let Some(r) = e["valueFrom"]["configMapKeyRef"].as_object() {
            lookup_key(store, "/configmaps", ns, r.get("name").and_then(Value::as_str).unwrap_or(""), r.get("key").and_then(Value::as_str).unwrap_or(""))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            out.push((name.to_string(), v));
        }
    }
    out
}

fn mount_volumes(store: &Store, ns: &str, pod: &Value, container: &Value, fs: &mut PodFs) {
    let volumes = pod["spec"]["volumes"].as_array().cloned().unwrap_or_default();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let (Some(vname), Some(path)) = (m["name"].as_str(), m["mountPath"].as_str()) else { continue };
        let Some(vol) = volumes.iter().find(|v| v["name"] == vname) else { continue };
        let (resource, obj_name) = if let Some(s) = vol["secret"]["secretName"].as_str() {
            ("/secrets", s)
        } else if let Some(c) = vol["configMap"]["name"].as_str() {
            ("/configmaps", c)
        } else {
            let _ = fs.mkdir(path, true);
            continue;
        };
        let _ = fs.mkdir(path, true);
        let Some(obj) = store.txn().get(&Key { resource: resource.into(), namespace: ns.into(), name: obj_name.into() }) else { continue };
        for k in obj["data"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            if let Some(v) = lookup_key(store, resource, ns, obj_name, &k) {
                fs.write(&format!("{}/{k}", path.trim_end_matches('/')), v);
            }
        }
    }
}

/// Split process output into log lines, forwarding raw chunks to attach.
async fn collect(mut rx: mpsc::Receiver<Bytes>, log: Arc<LogBuf>, live: broadcast::Sender<Bytes>) {
    let mut partial = BytesMut::new();
    while let Some(chunk) = rx.recv().await {
        let _ = live.send(chunk.clone());
        partial.extend_from_slice(&chunk);
        while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
            let line = partial.split_to(pos + 1).freeze();
            log.push(line);
        }
        if partial.len() > 64 * 1024 {
            log.push(partial.split().freeze());
        }
    }
    if !partial.is_empty() {
        log.push(partial.freeze());
    }
}

impl PodRuntimes {
    /// Runtimes that resolve env and volumes from `store`.
    pub fn new(store: Store) -> Self {
        PodRuntimes { pods: Mutex::new(HashMap::new()), store }
    }

    /// Start a new pod's containers. Called with the store locked, so lookups happen in the
    /// spawned tasks.
    pub fn start(&self, pod: &Value) {
        let store = self.store.clone();
        let hostname = pod["metadata"]["name"].as_str().unwrap_or("pod").to_string();
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let mut containers = Vec::new();
        let mut tasks = Vec::new();
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            let argv: Vec<String> =
                c["command"].as_array().into_iter().flatten().chain(c["args"].as_array().into_iter().flatten()).filter_map(|v| v.as_str().map(str::to_string)).collect();
            let tty = c["tty"] == true;
            let (stdin_tx, stdin_rx) = if c["stdin"] == true {
                let (t, r) = mpsc::channel(64);
                (Some(t), Some(r))
            } else {
                (None, None)
            };
            let (exit_tx, exit_rx) = watch::channel(None);
            let (resize_tx, resize_rx) = watch::channel(None);
            let container = Arc::new(Container {
                name,
                log: Arc::new(LogBuf::default()),
                fs: Arc::new(Mutex::new(PodFs::default())),
                env: Mutex::new(Vec::new()),
                tty,
                stdin: Mutex::new(stdin_tx),
                stdin_once: c["stdinOnce"] == true,
                output: broadcast::channel(256).0,
                resize: resize_tx,
                exited: exit_rx,
            });
            let (out_tx, out_rx) = mpsc::channel(64);
            let spec = c.clone();
            let pod_v = pod.clone();
            let ns = ns.clone();
            let hostname = hostname.clone();
            let cont = container.clone();
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                {
                    let mut fs = cont.fs.lock().unwrap_or_else(|p| p.into_inner());
                    mount_volumes(&store, &ns, &pod_v, &spec, &mut fs);
                }
                let env = resolve_env(&store, &ns, &spec);
                *cont.env.lock().unwrap_or_else(|p| p.into_inner()) = env.clone();
                let collector = tokio::spawn(collect(out_rx, cont.log.clone(), cont.output.clone()));
                let code = if argv.is_empty() {
                    drop(out_tx);
                    std::future::pending::<i32>().await
                } else {
                    let exec_env = ExecEnv { env, hostname, fs: cont.fs.clone() };
                    let io = ExecIo { stdin: stdin_rx, stdout: out_tx.clone(), stderr: out_tx, resize: resize_rx, tty };
                    shell::run(argv, &exec_env, io).await
                };
                let _ = collector.await;
                cont.log.finish();
                let _ = exit_tx.send(Some(code));
            }));
            containers.push(container);
        }
        let rt = Arc::new(PodRuntime { containers, hostname, tasks });
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).insert(uid_of(pod), rt);
    }

    /// Stop a deleted pod's containers.
    pub fn stop(&self, pod: &Value) {
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).remove(&uid_of(pod));
    }

    /// The runtime of a stored pod.
    pub fn get(&self, pod: &Value) -> Option<Arc<PodRuntime>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).get(&uid_of(pod)).cloned()
    }
}
