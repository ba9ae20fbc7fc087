//! The engineer's machine for end-to-end login tests: the test IdP, a relay with enrollment in
//! front of the simulator, and the environment (HOME, config and state directories, KUBECONFIG)
//! every hoop-kube and kubectl process of that machine gets.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::browser::Browser;
use super::idp::Idp;
use hoop_kube::demo::{self, Issuer, User};
use hoop_kube::login::store::SecretStore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

pub const EXE: &str = env!("CARGO_BIN_EXE_hoop-kube");

pub struct Bed {
    pub dir: tempfile::TempDir,
    pub idp: Idp,
    pub stack: demo::Stack,
    pub fingerprint: String,
}

impl Bed {
    pub async fn start(subjects: &[&str]) -> Bed {
        let idp = Idp::start().await;
        let dir = tempfile::tempdir().unwrap();
        let users: Vec<User> = subjects.iter().map(|s| User { subject: s.to_string(), groups: vec![], context: format!("static-{s}"), agent: None }).collect();
        let issuer = Issuer::External { issuer: idp.issuer.clone(), tokens: Default::default() };
        let stack = demo::start(&dir.path().join("stack"), &users, issuer, "127.0.0.1:0".parse().unwrap()).await.expect("stack starts");
        let ca = std::fs::read_to_string(dir.path().join("stack/relay/ca.crt")).unwrap();
        let fingerprint = hoop_kube::relay_trust::fingerprint_of_pem(&ca).unwrap();
        Bed { dir, idp, stack, fingerprint }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.path("home/.kube/config")
    }

    /// The environment every process of "the engineer's machine" gets.
    pub fn env(&self, c: &mut Command) {
        c.env("HOME", self.path("home"))
            .env("HOOP_KUBE_CONFIG_DIR", self.path("config"))
            .env("XDG_STATE_HOME", self.path("state"))
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("HOOP_KUBE_PROFILE")
            .env_remove("KUBERNETES_EXEC_INFO")
            .kill_on_drop(true);
    }

    pub fn hk(&self, args: &[&str]) -> Command {
        let mut c = Command::new(EXE);
        c.args(args);
        self.env(&mut c);
        c
    }

    pub async fn run(&self, mut c: Command) -> super::Out {
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = tokio::time::timeout(Duration::from_secs(90), c.output()).await.expect("finishes within 90 s").expect("runs");
        super::Out { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
    }

    /// `hoop-kube login` for `profile` as IdP user `sub`, approved through the IdP's pages.
    pub async fn login(&self, profile: &str, sub: &str, forward_port: u16, extra: &[&str]) -> String {
        let listen = format!("127.0.0.1:{forward_port}");
        let mut args = vec!["login", "--profile", profile, "--relay", &self.stack.relay.url, "--relay-ca-sha256", &self.fingerprint, "--issuer", &self.idp.issuer, "--forward-listen", &listen, "--no-qr"];
        args.extend_from_slice(extra);
        let mut c = self.hk(&args);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        let url = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.expect("login prints the URL").unwrap().unwrap_or_else(|| panic!("login ended before printing a URL: {said}"));
            said.push_str(&line);
            said.push('\n');
            if let Some(u) = line.trim().strip_prefix("Open:") {
                break u.trim().to_string();
            }
        };
        assert!(url.contains("user_code="), "{said}");
        let pages = Browser::new().approve(&url, sub).await;
        assert!(!pages.is_empty());
        while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.expect("login finishes").unwrap() {
            said.push_str(&line);
            said.push('\n');
        }
        let status = child.wait().await.unwrap();
        assert!(status.success(), "login failed: {said}");
        said
    }

    pub fn store(&self, profile: &str) -> SecretStore {
        SecretStore::new_file_in(profile, self.path("state/hoop-kube/secrets")).unwrap()
    }

    pub async fn kubectl(&self, minor: &str, args: &[&str]) -> super::Out {
        let mut c = Command::new(super::kubectl(minor));
        c.args(args);
        self.env(&mut c);
        self.run(c).await
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("stack/sim/requests.jsonl")).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn exec_info(interactive: bool) -> String {
    format!(r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{{"interactive":{interactive}}}}}"#)
}

pub fn token_of(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("not an ExecCredential ({e}): {out}"));
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(v["kind"], "ExecCredential");
    v["status"]["token"].as_str().unwrap().to_string()
}

