//! `hoop-kube login` with the default token store, a real OS keyring: the kernel keyring
//! (keyutils, inside `keyctl session -`) and the Secret Service (gnome-keyring under
//! `dbus-run-session`). Login (approved through the IdP's pages), kubeconfig, kubectl through the
//! plugin (whose background forwarder reads the client key from the same keyring), status, and
//! logout run as one shell session, so every process shares that keyring; the keyring is
//! inspected before and after logout. Nothing is skipped: a missing `keyctl`, `dbus-run-session`
//! or `gnome-keyring-daemon` fails the test (`scripts/test` installs them).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::browser::Browser;
use common::login_bed::{free_port, Bed, EXE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

const SCRIPT: &str = r#"set -e
"$HK" login --profile kr-e2e --relay "$RELAY" --relay-ca-sha256 "$PIN" --issuer "$ISSUER" --forward-listen "127.0.0.1:$PORT" --no-qr
"$HK" kubeconfig --profile kr-e2e
"$KUBECTL" get configmaps -n default -o name
"$HK" status --profile kr-e2e
echo "--- keyring before logout"
eval "$SHOW"
"$HK" logout --profile kr-e2e
echo "--- keyring after logout"
eval "$SHOW"
"#;

async fn login_in(bed: &Bed, wrapper: &[&str], show: &str) -> (String, String) {
    let port = free_port();
    // What a desktop session has: a runtime directory and a cache directory (gnome-keyring
    // puts its control socket there).
    let runtime = bed.path("runtime");
    std::fs::create_dir_all(bed.path("home/.cache")).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut c = Command::new(wrapper[0]);
    c.args(&wrapper[1..]).args(["sh", "-c", SCRIPT]);
    bed.env(&mut c);
    c.env("HK", EXE)
        .env("RELAY", &bed.stack.relay.url)
        .env("PIN", &bed.fingerprint)
        .env("ISSUER", &bed.idp.issuer)
        .env("PORT", port.to_string())
        .env("KUBECTL", common::kubectl("1.33"))
        .env("SHOW", show)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{} is required (scripts/test installs it): {e}", wrapper[0]));
    let mut stdout = child.stdout.take().unwrap();
    let out_task = tokio::spawn(async move {
        let mut s = String::new();
        stdout.read_to_string(&mut s).await.unwrap();
        s
    });
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut err = String::new();
    let mut approved = false;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(120), lines.next_line()).await.expect("the session finishes").unwrap() {
        err.push_str(&line);
        err.push('\n');
        if let Some(url) = line.trim().strip_prefix("Open:") {
            Browser::new().approve(url.trim(), "alice").await;
            approved = true;
        }
    }
    let status = child.wait().await.unwrap();
    let out = out_task.await.unwrap();
    assert!(approved, "no login prompt: {err}");
    assert!(status.success(), "session failed:\n{out}\n{err}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || {
        tokio::time::sleep(Duration::from_secs(7)).await;
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    }, "the forwarder outlived logout");
    (out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_kernel_keyring() {
    let bed = Bed::start(&["alice"]).await;
    let (out, err) = login_in(&bed, &["keyctl", "session", "-"], "keyctl show @s").await;
    assert!(err.contains("logged in as alice"), "{err}");
    assert!(bed.requests().iter().any(|r| r["user"] == "alice" && r["uri"].as_str().is_some_and(|u| u.contains("configmaps"))), "kubectl's request did not reach the cluster as alice");
    assert!(out.contains("subject      alice") && out.contains("secrets      kernel keyring"), "{out}");
    let (before, after) = out.split_once("--- keyring after logout").unwrap();
    let before = before.split_once("--- keyring before logout").unwrap().1;
    assert!(before.contains("kr-e2e"), "no profile keys in the session keyring: {before}");
    assert!(!after.contains("kr-e2e"), "keys survived logout: {after}");
    // Nothing fell back to the file store.
    assert!(!bed.path("state/hoop-kube/secrets").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_secret_service() {
    let bed = Bed::start(&["alice"]).await;
    let wrapper = ["dbus-run-session", "--", "sh", "-c", "echo pw | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null && exec \"$0\" \"$@\""];
    // secret-tool may be absent; the status line and the file-store check are the evidence.
    let (out, err) = login_in(&bed, &wrapper, "true").await;
    assert!(err.contains("logged in as alice"), "{err}");
    assert!(out.contains("subject      alice"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("secrets      ") && l.to_lowercase().contains("secret service")), "{out}");
    assert!(bed.requests().iter().any(|r| r["user"] == "alice"), "kubectl's request did not reach the cluster as alice");
    assert!(!bed.path("state/hoop-kube/secrets").exists());
}
