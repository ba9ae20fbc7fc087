//! Shared test helpers: find the real kubectl binaries, start the simulator, run kubectl.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hoop_kube::sim::{self, Running, SimConfig};

/// The versioned kubectl binaries (`kubectl.1.27` … `kubectl.1.33`) that ship beside the kubectl
/// dispatcher on PATH. Found at run time; a missing one fails the test that needs it.
pub fn kubectl_dir() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let k = dir.join("kubectl");
        if k.exists() {
            let real = std::fs::canonicalize(&k).unwrap_or(k);
            if let Some(parent) = real.parent() {
                return parent.to_path_buf();
            }
        }
    }
    panic!("kubectl is not on PATH; the kubectl matrix tests need the kubectl dispatcher and its versioned binaries (kubectl.1.27 … kubectl.1.33)");
}

/// The path of `kubectl.<minor>`; panics with a clear message if it is missing.
pub fn kubectl(minor: &str) -> PathBuf {
    let p = kubectl_dir().join(format!("kubectl.{minor}"));
    assert!(p.exists(), "{} is missing: the kubectl matrix needs every version 1.27 … 1.33 beside the dispatcher", p.display());
    p
}

/// A running simulator in a temporary state directory.
pub struct Sim {
    pub running: Running,
    pub dir: tempfile::TempDir,
}

impl Sim {
    pub async fn start() -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path());
        cfg.bookmark_interval = Duration::from_secs(1);
        let running = sim::start(cfg).await.expect("sim starts");
        Sim { running, dir }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.running.kubeconfig
    }

    /// Parsed request-log lines.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("requests.jsonl")).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// Output of one kubectl run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A kubectl of one version, pointed at one simulator, with its own discovery cache.
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub cache: tempfile::TempDir,
    pub minor: String,
}

impl Kubectl {
    pub fn new(minor: &str, sim: &Sim) -> Kubectl {
        Kubectl { bin: kubectl(minor), kubeconfig: sim.kubeconfig().to_path_buf(), cache: tempfile::tempdir().unwrap(), minor: minor.into() }
    }

    pub fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.arg("--kubeconfig").arg(&self.kubeconfig).arg("--cache-dir").arg(self.cache.path()).args(args);
        c.env("HOME", self.cache.path()).env_remove("KUBECONFIG");
        c.kill_on_drop(true);
        c
    }

    /// Run to completion with `stdin` (or none), with a generous timeout.
    pub async fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Out {
        use tokio::io::AsyncWriteExt;
        let mut c = self.cmd(args);
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("kubectl starts");
        if let Some(data) = stdin {
            let mut si = child.stdin.take().unwrap();
            si.write_all(data).await.unwrap();
            drop(si);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl.{} {args:?} did not finish within 60 s", self.minor))
            .expect("kubectl runs");
        Out { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
    }

    pub async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None).await
    }

    /// Run and require exit 0; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert_eq!(o.code, 0, "kubectl.{} {args:?} failed: {}{}", self.minor, o.stdout, o.stderr);
        o.stdout
    }
}
