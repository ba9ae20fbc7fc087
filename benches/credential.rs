//! The exec plugin's cached path as kubectl runs it: one new `hoop-kube credential` process per
//! call, side by side with a peer plugin's cached path (`gke-gcloud-auth-plugin` answering from
//! `~/.kube/gke_gcloud_auth_plugin_cache`, no network), in the same run, interleaved so both see
//! the same machine load.
//!
//! ```text
//! cargo bench --bench credential            # 300 runs of each (HOOP_KUBE_BENCH_RUNS to change)
//! HOOP_KUBE_BENCH_DIAG=1 cargo bench --bench credential   # plus rows that show where time goes
//! HOOP_KUBE_BENCH_EXE=/usr/bin/hoop-kube cargo bench --bench credential   # measure another build
//! scripts/build-release && HOOP_KUBE_BENCH_EXE=target/x86_64-unknown-linux-gnu/dist/hoop-kube \
//!     cargo bench --bench credential        # the shipped static-pie build (README's table)
//! ```
//!
//! hoop-kube is measured with the `file` store and, when `keyctl` is installed, with the kernel
//! keyring (the bench re-runs itself inside `keyctl session -` so the keys live in a private
//! session keyring). Each hoop-kube call does what it does under kubectl: parse
//! `KUBERNETES_EXEC_INFO`, read the profile, read the cached ID token from the store, check the
//! client certificate's expiry, check that the forwarder runs (this process holds the running
//! lock and a listener in its place), print the ExecCredential. Prints a Markdown table for the
//! README.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

const BUILT_EXE: &str = env!("CARGO_BIN_EXE_hoop-kube");

/// The binary measured: this build's, or `HOOP_KUBE_BENCH_EXE` (e.g. a packaged or LTO build).
fn exe() -> String {
    std::env::var("HOOP_KUBE_BENCH_EXE").unwrap_or_else(|_| BUILT_EXE.to_string())
}
const PEER: &str = "gke-gcloud-auth-plugin";
const INFO: &str = r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#;
const IN_SESSION: &str = "HOOP_KUBE_BENCH_IN_SESSION";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds and runs benches without --bench: nothing to do.
    }
    if std::env::var_os(IN_SESSION).is_none() && which("keyctl") {
        let status = Command::new("keyctl")
            .args(["session", "-"])
            .arg(std::env::current_exe().expect("bench exe"))
            .args(std::env::args().skip(1))
            .env(IN_SESSION, "1")
            .status()
            .expect("keyctl session");
        std::process::exit(status.code().unwrap_or(1));
    }
    let runs: usize = std::env::var("HOOP_KUBE_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");

    // The forwarder stand-in: a listener, and the running lock a profile forwarder holds.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let port = addr.port();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let lock_dir = dir.path().join("state/hoop-kube/locks");
    let mut _running = Vec::new();

    let mut subjects: Vec<(String, Command)> = Vec::new();
    let mut backends = vec!["file"];
    if std::env::var_os(IN_SESSION).is_some() {
        backends.push("keyring");
    }
    for backend in backends {
        let profile = format!("bench-{backend}");
        rt.block_on(seed(dir.path(), &profile, backend, port));
        let mut lock = hoop_kube::forward::launch::hold_running_lock(&lock_dir, &profile).expect("running lock");
        lock.listening(addr);
        _running.push(lock);
        let mut c = Command::new(exe());
        c.args(["credential", "--profile", &profile]);
        env(&mut c, dir.path());
        let probe = c.output().expect("hoop-kube runs");
        assert!(probe.status.success(), "hoop-kube credential ({backend}) failed: {}", String::from_utf8_lossy(&probe.stderr));
        assert!(String::from_utf8_lossy(&probe.stdout).contains("cached-bench-token"));
        let label = if backend == "file" { "hoop-kube credential (file store)".to_string() } else { format!("hoop-kube credential (keyring: {})", describe(&rt, &profile)) };
        subjects.push((label, c));
    }
    if std::env::var_os("HOOP_KUBE_BENCH_DIAG").is_some() {
        // Where the time goes: process start + argument parsing, and the path without the
        // forwarder check.
        let mut v = Command::new(exe());
        v.arg("--version");
        subjects.push(("hoop-kube --version".into(), v));
        let mut c = Command::new(exe());
        c.args(["credential", "--profile", "bench-file", "--no-forwarder"]);
        env(&mut c, dir.path());
        subjects.push(("hoop-kube credential --no-forwarder (file store)".into(), c));
        let mut t = Command::new("true");
        t.env_clear();
        subjects.push(("true (process start alone)".into(), t));
    }
    if which(PEER) {
        let home = dir.path().join("gke-home");
        std::fs::create_dir_all(home.join(".kube")).expect("gke home");
        std::fs::write(home.join(".kube/config"), "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: ctx\n  context: {cluster: c, user: u}\ncurrent-context: ctx\n").expect("kubeconfig");
        std::fs::write(home.join(".kube/gke_gcloud_auth_plugin_cache"), r#"{"current_context":"ctx","access_token":"ya29.cached","token_expiry":"2099-01-01T00:00:00Z"}"#).expect("cache");
        let mut c = Command::new(PEER);
        c.env("HOME", &home).env("KUBECONFIG", home.join(".kube/config")).env("KUBERNETES_EXEC_INFO", INFO);
        let probe = c.output().expect("peer runs");
        assert!(probe.status.success() && String::from_utf8_lossy(&probe.stdout).contains("ya29.cached"), "{PEER}'s cached path failed");
        subjects.push((format!("{PEER} (cache file)"), c));
    } else {
        eprintln!("note: {PEER} is not installed; measuring hoop-kube alone");
    }

    // Warm-up, then interleaved runs.
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); subjects.len()];
    for _ in 0..10 {
        for (_, c) in subjects.iter_mut() {
            run(c);
        }
    }
    // Each round starts with the next subject, so every subject runs equally often in every
    // position: the process that follows the peer (a large Go binary) starts measurably slower,
    // and a fixed order would charge that to whoever comes first.
    let n = subjects.len();
    for round in 0..runs {
        for k in 0..n {
            let i = (round + k) % n;
            times[i].push(run(&mut subjects[i].1));
        }
    }
    println!("measuring {} ({})\n", exe(), linkage(Path::new(&exe())));
    println!("| plugin, cached path, {runs} runs each | median | p99 |");
    println!("| --- | ---: | ---: |");
    let mut medians = Vec::new();
    for ((label, _), t) in subjects.iter().zip(times.iter_mut()) {
        t.sort();
        let (med, p99) = (t[t.len() / 2], t[(t.len() * 99 / 100).min(t.len() - 1)]);
        medians.push(med);
        println!("| {label} | {:.2} ms | {:.2} ms |", ms(med), ms(p99));
    }
    // Leave nothing in the user's persistent keyring.
    if std::env::var_os(IN_SESSION).is_some() {
        let store = hoop_kube::login::store::SecretStore::new("bench-keyring", hoop_kube::login::store::Backend::Keyring).expect("store");
        let _ = rt.block_on(store.delete_all());
    }
    if subjects.last().is_some_and(|(l, _)| l.starts_with(PEER)) {
        let peer = ms(medians[medians.len() - 1]);
        for ((label, _), m) in subjects.iter().zip(&medians).take(subjects.len() - 1) {
            println!("{label}: median {:.0}% of {PEER}'s (target: at most 50%)", 100.0 * ms(*m) / peer);
        }
    }
}

/// How the measured binary is linked, from its ELF program headers: a `PT_INTERP` header means
/// the dynamic loader runs first; `ET_DYN` without one is a static-pie.
fn linkage(path: &Path) -> &'static str {
    let Ok(b) = std::fs::read(path) else { return "unreadable" };
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as usize);
    let u64_at = |o: usize| b.get(o..o + 8).and_then(|s| s.try_into().ok()).map(|a: [u8; 8]| u64::from_le_bytes(a) as usize);
    if b.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return "not a 64-bit ELF";
    }
    let (Some(kind), Some(phoff), Some(phsize), Some(phnum)) = (u16_at(16), u64_at(0x20), u16_at(0x36), u16_at(0x38)) else { return "truncated ELF" };
    let interp = (0..phnum).any(|i| b.get(phoff + i * phsize..phoff + i * phsize + 4) == Some(&3u32.to_le_bytes()[..]));
    match (kind, interp) {
        (3, true) => "PIE, dynamically linked",
        (3, false) => "static-pie",
        (2, true) => "non-PIE, dynamically linked",
        _ => "static, non-PIE",
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run(c: &mut Command) -> Duration {
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let status = c.status().expect("runs");
    let took = t.elapsed();
    assert!(status.success());
    took
}

fn which(exe: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(exe).is_file()))
}

fn env(c: &mut Command, dir: &Path) {
    c.env("HOME", dir.join("home"))
        .env("HOOP_KUBE_CONFIG_DIR", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("KUBERNETES_EXEC_INFO", INFO)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("HOOP_KUBE_LOG");
}

fn describe(rt: &tokio::runtime::Runtime, profile: &str) -> String {
    let store = hoop_kube::login::store::SecretStore::new(profile, hoop_kube::login::store::Backend::Keyring).expect("store");
    rt.block_on(store.describe()).unwrap_or_else(|e| e.to_string())
}

/// A logged-in profile: settings, a cached ID token valid for an hour, a certificate valid for
/// 12 hours and its key, as `hoop-kube login` leaves them.
async fn seed(dir: &Path, profile: &str, backend: &str, port: u16) {
    use hoop_kube::login::store::{Backend, SecretStore};
    let issuer = "https://issuer.example.com";
    let mut p = hoop_kube::login::profile::Profile::new(profile, "https://relay.example.com:8443", issuer).expect("profile");
    p.relay_ca_sha256 = Some("ab".repeat(32));
    p.forward_listen = format!("127.0.0.1:{port}").parse().expect("addr");
    p.token_store = if backend == "file" { Backend::File } else { Backend::Keyring };
    p.save_to(&dir.join("config/profiles")).expect("save profile");
    let store = match p.token_store {
        Backend::File => SecretStore::new_file_in(profile, dir.join("state/hoop-kube/secrets")).expect("file store"),
        Backend::Keyring => SecretStore::new(profile, Backend::Keyring).expect("keyring store"),
    };
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let exp = chrono::Utc::now().timestamp() + 3600;
    let token = format!("{}.{}.cached-bench-token", b64(serde_json::json!({"alg": "RS256"})), b64(serde_json::json!({"iss": issuer, "sub": "alice", "exp": exp})));
    store.put("id_token", token.as_bytes()).await.expect("store the token");
    store.put("refresh_token", b"unused").await.expect("store the refresh token");
    let ca = hoop_kube::pki::Ca::generate("bench", 1).expect("ca");
    let leaf = ca.subject_cert("alice", 12).expect("leaf");
    store.put("client_key", leaf.key_pem.as_bytes()).await.expect("store the key");
    let cert = dir.join(format!("state/hoop-kube/certs/{profile}.crt"));
    std::fs::create_dir_all(cert.parent().expect("dir")).expect("certs dir");
    std::fs::write(cert, leaf.cert_pem).expect("cert");
}
