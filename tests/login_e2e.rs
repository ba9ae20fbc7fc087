//! The engineer's path end to end, with the real binary, the real test IdP (npm `oidc-provider`,
//! approved through its own pages), a relay with enrollment, the simulator, and real kubectl:
//!
//! `hoop-kube login` → `hoop-kube kubeconfig` → `kubectl get pods` (the exec plugin starts the
//! forwarder) → the token expires → 40 concurrent `hoop-kube credential` processes cause exactly
//! one refresh **counted at the IdP** (its `GET /test/grants`), with the rotated refresh token
//! kept → a second profile side by side → a revoked refresh token ends in one line, no prompt →
//! `hoop-kube logout` forgets everything and stops the forwarder.
//!
//! Every hoop-kube and kubectl process runs with its own HOME, `HOOP_KUBE_CONFIG_DIR`,
//! `XDG_STATE_HOME` and `KUBECONFIG` in a temporary directory, and the `file` token store (the
//! keyrings have their own tests in `keyring_store.rs`; `login_keyring.rs` runs this login under a
//! real kernel keyring).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::login_bed::{exec_info, free_port, token_of, Bed, EXE};
use tokio::process::Command;

async fn wait_closed(port: u16) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_to_kubectl_refresh_two_profiles_revoke_logout() {
    let bed = Bed::start(&["alice", "bob"]).await;
    let (pa, pb) = (free_port(), free_port());

    // 1. Log in, approving through the IdP's own pages.
    let said = bed.login("alice", "alice", pa, &["--token-store", "file"]).await;
    assert!(said.contains("logged in as alice, groups dev (profile \"alice\""), "{said}");
    assert!(said.contains("Next: hoop-kube kubeconfig --profile alice"), "{said}");
    // The file store: a 0700 directory of 0600 files, no token in the profile.
    let secrets = bed.path("state/hoop-kube/secrets");
    assert_eq!(mode(&secrets), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&secrets).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!files.is_empty());
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    let profile_json = std::fs::read_to_string(bed.path("config/profiles/alice.json")).unwrap();
    assert!(profile_json.contains(&bed.fingerprint), "{profile_json}");
    let stored_id = String::from_utf8(bed.store("alice").get("id_token").await.unwrap().unwrap()).unwrap();
    assert!(!profile_json.contains(&stored_id[..40]));
    // The key stays here; the certificate names alice.
    let cert = std::fs::read_to_string(bed.path("state/hoop-kube/certs/alice.crt")).unwrap();
    let (_, sub) = hoop_kube::login::enroll::inspect(&cert).unwrap();
    assert_eq!(sub.as_deref(), Some("alice"));
    assert!(bed.store("alice").get("client_key").await.unwrap().is_some());

    // 2. kubeconfig: created, then untouched.
    let o = bed.run(bed.hk(&["kubeconfig", "--profile", "alice"])).await;
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("created"), "{o:?}");
    let first = std::fs::read(bed.kubeconfig()).unwrap();
    let o = bed.run(bed.hk(&["kubeconfig", "--profile", "alice"])).await;
    assert!(o.stderr.contains("already up to date"), "{o:?}");
    assert_eq!(std::fs::read(bed.kubeconfig()).unwrap(), first);

    // 3. kubectl through the plugin; it starts the forwarder itself.
    assert!(std::net::TcpStream::connect(("127.0.0.1", pa)).is_err(), "no forwarder before kubectl");
    for minor in ["1.27", "1.33"] {
        let o = bed.kubectl(minor, &["get", "pods", "-n", "default"]).await;
        assert_eq!(o.code, 0, "kubectl {minor}: {o:?}");
    }
    assert!(bed.requests().iter().any(|r| r["user"] == "alice"), "the cluster saw alice: {:?}", bed.requests());
    let o = bed.run(bed.hk(&["status", "--profile", "alice"])).await;
    assert_eq!(o.code, 0, "{o:?}");
    for want in ["subject      alice", "groups       dev", "reachable, pinned CA verified", "running"] {
        assert!(o.stdout.contains(want), "status lacks {want:?}: {}", o.stdout);
    }

    // `hoop-kube reviews` finds the relay through the same kubeconfig: the context's exec plugin
    // gives the token, the forwarder the certificate. This relay has no review rules, and says so.
    let o = bed.run(bed.hk(&["reviews", "list"])).await;
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("this relay has no reviews"), "the relay itself answered (not a 401): {o:?}");
    assert_eq!(o.stderr.lines().count(), 1, "{o:?}");

    // 4. The ID token expires: 40 concurrent plugin processes, exactly one refresh at the IdP.
    let store = bed.store("alice");
    let old_refresh = store.get("refresh_token").await.unwrap().unwrap();
    let expired = bed.idp.token_with(serde_json::json!({"sub": "alice", "aud": "hoop-kube", "ttl": -30})).await;
    store.put("id_token", expired.as_bytes()).await.unwrap();
    let before = bed.idp.grants("refresh_token").await;
    let mut children = Vec::new();
    for _ in 0..40 {
        let mut c = bed.hk(&["credential", "--profile", "alice"]);
        c.env("KUBERNETES_EXEC_INFO", exec_info(false)).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        children.push(c.spawn().unwrap());
    }
    let mut tokens = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        tokens.insert(token_of(&String::from_utf8_lossy(&out.stdout)));
    }
    assert_eq!(bed.idp.grants("refresh_token").await - before, 1, "exactly one refresh reached the IdP");
    assert_eq!(tokens.len(), 1, "every caller got the same fresh token");
    assert!(!tokens.contains(&expired));
    let new_refresh = store.get("refresh_token").await.unwrap().unwrap();
    assert_ne!(new_refresh, old_refresh, "the rotated refresh token was kept");
    assert_eq!(bed.kubectl("1.30", &["get", "pods"]).await.code, 0);

    // 5. A second profile side by side: its own identity, port, certificate and context.
    let said = bed.login("bob", "bob", pb, &["--token-store", "file"]).await;
    assert!(said.contains("logged in as bob"), "{said}");
    let o = bed.run(bed.hk(&["kubeconfig", "--profile", "bob", "--no-switch"])).await;
    assert_eq!(o.code, 0, "{o:?}");
    let o = bed.kubectl("1.31", &["--context", "hoop-kube-bob", "get", "configmaps"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    let o = bed.kubectl("1.31", &["get", "configmaps"]).await; // current context: still alice
    assert_eq!(o.code, 0, "{o:?}");
    let users: Vec<String> = bed.requests().iter().filter(|r| r["uri"].as_str().is_some_and(|p| p.contains("configmaps"))).map(|r| r["user"].as_str().unwrap_or("").to_string()).collect();
    assert!(users.contains(&"bob".to_string()) && users.contains(&"alice".to_string()), "{users:?}");

    // 6. A revoked refresh token: presenting the old one makes the IdP revoke the grant. The
    //    plugin, not interactive, fails at once with one line and never starts a login.
    let (code, _) = bed.idp.try_refresh(std::str::from_utf8(&old_refresh).unwrap()).await;
    assert_ne!(code, 200);
    store.put("id_token", expired.as_bytes()).await.unwrap();
    let device_before = bed.idp.grants("urn:ietf:params:oauth:grant-type:device_code").await;
    let mut c = bed.hk(&["credential", "--profile", "alice"]);
    c.env("KUBERNETES_EXEC_INFO", exec_info(false));
    let o = bed.run(c).await;
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.stdout, "");
    assert_eq!(o.stderr, "hoop-kube: the session for profile \"alice\" has expired; run: hoop-kube login --profile alice\n");
    assert_eq!(bed.idp.grants("urn:ietf:params:oauth:grant-type:device_code").await, device_before);
    // kubectl shows the same line.
    let o = bed.kubectl("1.33", &["get", "pods"]).await;
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("run: hoop-kube login --profile alice"), "{o:?}");

    // 7. Logout forgets everything, everywhere, and the forwarder stops.
    let o = bed.run(bed.hk(&["logout", "--profile", "alice"])).await;
    assert_eq!(o.code, 0, "{o:?}");
    for entry in ["id_token", "refresh_token", "client_key"] {
        assert!(store.get(entry).await.unwrap().is_none(), "{entry} survived logout");
    }
    assert!(!bed.path("state/hoop-kube/certs/alice.crt").exists());
    assert!(wait_closed(pa).await, "alice's forwarder still listens after logout");
    let mut c = bed.hk(&["credential", "--profile", "alice"]);
    c.env("KUBERNETES_EXEC_INFO", exec_info(false));
    let o = bed.run(c).await;
    assert_eq!(o.stderr, "hoop-kube: profile \"alice\" is not logged in; run: hoop-kube login --profile alice\n");
    // Bob is untouched.
    assert_eq!(bed.kubectl("1.31", &["--context", "hoop-kube-bob", "get", "pods"]).await.code, 0);
    let o = bed.run(bed.hk(&["logout", "--profile", "bob", "--forget-profile"])).await;
    assert_eq!(o.code, 0, "{o:?}");
    assert!(wait_closed(pb).await);
    assert!(!bed.path("config/profiles/bob.json").exists());
}

#[tokio::test]
async fn a_new_profile_without_its_settings_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(EXE);
    c.args(["login", "--profile", "x"]).env("HOOP_KUBE_CONFIG_DIR", dir.path().join("c")).env("XDG_STATE_HOME", dir.path().join("s")).env("HOME", dir.path());
    let out = c.output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "hoop-kube: profile \"x\" is new: pass --relay URL, --relay-ca-sha256 HEX and --issuer URL (your platform team has them)\n"
    );
}

/// kubectl passed its terminal (`interactive: true`) and there is no session: the plugin runs the
/// device flow on stderr, and stdout carries only the ExecCredential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_plugin_logs_in_on_stderr() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let bed = Bed::start(&["alice"]).await;
    let port = free_port();
    bed.login("alice", "alice", port, &["--token-store", "file"]).await;
    let o = bed.run(bed.hk(&["logout", "--profile", "alice"])).await;
    assert_eq!(o.code, 0, "{o:?}");
    let mut c = bed.hk(&["credential", "--profile", "alice"]);
    c.env("KUBERNETES_EXEC_INFO", exec_info(true)).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let out = tokio::spawn(async move {
        let mut s = String::new();
        stdout.read_to_string(&mut s).await.unwrap();
        s
    });
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut err = String::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.expect("the plugin finishes").unwrap() {
        if let Some(url) = line.trim().strip_prefix("Open:") {
            common::browser::Browser::new().approve(url.trim(), "alice").await;
        }
        err.push_str(&line);
        err.push('\n');
    }
    assert!(child.wait().await.unwrap().success(), "{err}");
    let out = out.await.unwrap();
    assert!(err.contains("log in to profile \"alice\""), "{err}");
    let token = token_of(out.trim());
    assert!(!token.is_empty());
    assert_eq!(out.lines().count(), 1, "stdout holds the ExecCredential only: {out}");
    // And the session is usable again: kubectl works without another login.
    assert!(bed.path("state/hoop-kube/certs/alice.crt").exists());
    let o = bed.run(bed.hk(&["logout", "--profile", "alice"])).await;
    assert_eq!(o.code, 0);
}

/// Profiles made without --forward-listen get distinct forwarder ports, so they can run side by
/// side; an unreachable issuer is one line (the profile is kept for the next attempt).
#[tokio::test]
async fn new_profiles_get_their_own_forward_ports() {
    let dir = tempfile::tempdir().unwrap();
    let pin = "ab".repeat(32);
    for name in ["one", "two"] {
        let mut c = Command::new(EXE);
        c.args(["login", "--profile", name, "--relay", "https://relay.example.com", "--relay-ca-sha256", &pin, "--issuer", "http://127.0.0.1:1", "--token-store", "file", "--no-qr"])
            .env("HOOP_KUBE_CONFIG_DIR", dir.path().join("c"))
            .env("XDG_STATE_HOME", dir.path().join("s"))
            .env("HOME", dir.path());
        let out = c.output().await.unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("hoop-kube: could not reach the identity provider at http://127.0.0.1:1/.well-known/openid-configuration"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let port = |n: &str| {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(format!("c/profiles/{n}.json"))).unwrap()).unwrap();
        v["forward_listen"].as_str().unwrap().to_string()
    };
    assert_eq!(port("one"), "127.0.0.1:6643");
    assert_eq!(port("two"), "127.0.0.1:6644");
}
