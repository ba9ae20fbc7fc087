//! Real kubectl 1.27 … 1.33 against the simulator: every command a user runs day to day, and
//! the protocol each version really takes for exec, attach and port-forward (asserted from the
//! simulator's request log). One test per version, so the output names each one.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Cluster, Kubectl, Relayed, Sim};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: logger
  labels: {app: logger}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo first; sleep 1; echo second"]
    env:
    - {name: GREETING, value: hello-env}
---
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  containers:
  - name: main
    image: busybox
---
apiVersion: v1
kind: Pod
metadata:
  name: catter
spec:
  containers:
  - name: main
    image: busybox
    command: ["cat"]
    stdin: true
    stdinOnce: true
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: blue
"#;

const DEPLOYMENT: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
 "spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx:1"}]}}}}"#;

/// The upgrade each version uses: (exec, port-forward).
fn expected_protocols(minor: &str) -> (&'static str, &'static str) {
    let m: u32 = minor.trim_start_matches("1.").parse().unwrap();
    let exec = if m >= 30 { "websocket" } else { "spdy" };
    let pf = if m >= 31 { "websocket" } else { "spdy" };
    (exec, pf)
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// `kubectl exec -it` through a real pseudo-terminal: type a command and an exit.
fn exec_tty(k: &Kubectl) -> (i32, String) {
    use portable_pty::{CommandBuilder, NativePtySystem, PtySize, PtySystem};
    let pty = NativePtySystem::default().openpty(PtySize { rows: 30, cols: 100, pixel_width: 0, pixel_height: 0 }).unwrap();
    let mut cmd = CommandBuilder::new(&k.bin);
    for a in ["--kubeconfig", &k.kubeconfig.display().to_string(), "--cache-dir", &k.cache.path().display().to_string(), "exec", "-it", "shell", "--", "sh"] {
        cmd.arg(a);
    }
    cmd.env("HOME", k.cache.path());
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let mut writer = pty.master.take_writer().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = String::new();
    let wait_for = |needle: &str, screen: &mut String| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !screen.contains(needle) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "kubectl.{} exec -it: never saw {needle:?}; screen so far: {screen:?}", k.minor);
            if let Ok(chunk) = rx.recv_timeout(left) {
                screen.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
    };
    wait_for("# ", &mut screen);
    // kubectl sends the terminal size right after connecting; it may land just after the
    // first command, so ask until the size shows (a real shell behaves the same way).
    for attempt in 0.. {
        writer.write_all(b"stty size\r").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        while !screen.contains("\r\n30 100\r\n") && std::time::Instant::now() < deadline {
            if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
                screen.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
        if screen.contains("\r\n30 100\r\n") {
            break;
        }
        assert!(attempt < 20, "kubectl.{}: the terminal size never reached the container: {screen:?}", k.minor);
    }
    writer.write_all(b"echo typed-$GREETING-ok\r").unwrap();
    // The terminal echoes the typed line; the command's own output follows on a new line.
    wait_for("\r\ntyped--ok\r\n", &mut screen);
    writer.write_all(b"exit 7\r").unwrap();
    let status = child.wait().unwrap();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(300)) {
        screen.push_str(&String::from_utf8_lossy(&chunk));
    }
    (status.exit_code() as i32, screen)
}

async fn port_forward(k: &Kubectl) {
    let mut child = k.cmd(&["port-forward", "pod/shell", ":80"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.expect("port-forward prints its address").unwrap().unwrap();
    let port: u16 = line.split("127.0.0.1:").nth(1).and_then(|r| r.split(' ').next()).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("unexpected port-forward line {line:?}"));
    for round in 0..2 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let payload = format!("hello-pf-{round}-").repeat(5000);
        s.write_all(payload.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut back)).await.expect("echo returns").unwrap();
        assert_eq!(back, payload.as_bytes(), "kubectl.{}: port-forward must carry bytes both ways", k.minor);
    }
    child.kill().await.unwrap();
}

async fn watch_sees_new_pod(k: &Kubectl) {
    let mut child = k.cmd(&["get", "pods", "-w"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.starts_with("NAME"), "get -w starts with the table header, got {first:?}");
    let late = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"late"},"spec":{"containers":[{"name":"c","image":"x"}]}}"#;
    let k2 = k.run_with(&["create", "-f", "-"], Some(late.as_bytes())).await;
    assert_eq!(k2.code, 0, "{}", k2.stderr);
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.starts_with("late ") {
                return l;
            }
        }
        String::new()
    })
    .await
    .expect("the watch shows the new pod");
    assert!(seen.contains("Running"), "{seen}");
    child.kill().await.unwrap();
}

async fn matrix(minor: &str, sim: &dyn Cluster) {
    let k = Kubectl::new(minor, sim);
    let dir = tempfile::tempdir().unwrap();
    let manifests = write(dir.path(), "all.yaml", MANIFESTS);
    let deploy = write(dir.path(), "deploy.json", DEPLOYMENT);
    println!("kubectl.{minor}: version, discovery, get");

    let v = k.ok(&["version", "-o", "json"]).await;
    assert!(v.contains("\"serverVersion\""), "{v}");
    let ns = k.ok(&["get", "namespaces"]).await;
    assert!(ns.contains("default") && ns.contains("kube-system") && ns.contains("Active"), "{ns}");

    println!("kubectl.{minor}: apply (client-side, then server-side), get -o yaml, describe");
    let out = k.ok(&["apply", "-f", &manifests]).await;
    assert!(out.contains("pod/logger created") && out.contains("configmap/settings created"), "{out}");
    let changed = MANIFESTS.replace("mode: blue", "mode: green");
    let manifests2 = write(dir.path(), "all2.yaml", &changed);
    let out = k.ok(&["apply", "-f", &manifests2]).await;
    assert!(out.contains("configmap/settings configured"), "{out}");
    assert_eq!(k.ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.mode}"]).await, "green");
    let out = k.ok(&["apply", "--server-side", "-f", &deploy]).await;
    assert!(out.contains("deployment.apps/web serverside-applied"), "{out}");
    let out = k.ok(&["get", "deploy", "web"]).await;
    assert!(out.contains("2/2"), "{out}");
    let yaml = k.ok(&["get", "pod", "logger", "-o", "yaml"]).await;
    assert!(yaml.contains("kind: Pod") && yaml.contains("hello-env") && yaml.contains("phase: Running"), "{yaml}");
    let d = k.ok(&["describe", "pod", "logger"]).await;
    assert!(d.contains("Name:") && d.contains("logger") && d.contains("Running"), "{d}");
    let pods = k.ok(&["get", "pods"]).await;
    assert!(pods.contains("logger") && pods.contains("1/1") && pods.contains("Running"), "{pods}");
    let nf = k.run(&["get", "pod", "nosuch"]).await;
    assert_eq!(nf.code, 1);
    assert!(nf.stderr.contains("Error from server (NotFound): pods \"nosuch\" not found"), "{}", nf.stderr);

    println!("kubectl.{minor}: create and run (typed clients: protobuf bodies from 1.32 on)");
    assert!(k.ok(&["create", "configmap", "typed", "--from-literal=a=b"]).await.contains("configmap/typed created"));
    assert_eq!(k.ok(&["get", "configmap", "typed", "-o", "jsonpath={.data.a}"]).await, "b");
    assert!(k.ok(&["create", "secret", "generic", "creds", "--from-literal=password=hunter2"]).await.contains("secret/creds created"));
    assert_eq!(k.ok(&["get", "secret", "creds", "-o", "jsonpath={.data.password}"]).await, "aHVudGVyMg==");
    let d = k.ok(&["describe", "secret", "creds"]).await;
    assert!(d.contains("password:  7 bytes"), "{d}");
    assert!(k.ok(&["create", "namespace", "team-a"]).await.contains("namespace/team-a created"));
    assert!(k.ok(&["create", "serviceaccount", "robot"]).await.contains("serviceaccount/robot created"));
    assert!(k.ok(&["create", "token", "robot"]).await.starts_with("sim.robot."));
    assert!(k.ok(&["create", "deployment", "api", "--image=nginx", "--replicas=2"]).await.contains("deployment.apps/api created"));
    assert!(k.ok(&["get", "deployment", "api"]).await.contains("2/2"));
    assert!(k.ok(&["scale", "deployment", "api", "--replicas=3"]).await.contains("deployment.apps/api scaled"));
    assert_eq!(k.ok(&["get", "deployment", "api", "-o", "jsonpath={.spec.replicas}"]).await, "3");
    assert!(k.ok(&["label", "configmap", "typed", "team=a"]).await.contains("configmap/typed labeled"));
    assert!(k.ok(&["run", "once", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo ran"]).await.contains("pod/once created"));
    let ct = sim.requests().iter().find(|r| r["method"] == "POST" && r["uri"].as_str().unwrap_or("").ends_with("/configmaps?fieldManager=kubectl-create&fieldValidation=Strict") && r["user_agent"].as_str().unwrap_or("").starts_with(&format!("kubectl.{minor}/"))).map(|r| r["content_type"].as_str().unwrap_or("").to_string());
    let m: u32 = minor.trim_start_matches("1.").parse().unwrap();
    let want = if m >= 32 { "application/vnd.kubernetes.protobuf" } else { "application/json" };
    assert_eq!(ct.as_deref(), Some(want), "kubectl.{minor} create configmap body encoding");

    println!("kubectl.{minor}: logs -f");
    let logs = k.ok(&["logs", "-f", "logger"]).await;
    assert_eq!(logs, "first\nsecond\n");

    println!("kubectl.{minor}: exec, exit codes, stdin");
    assert_eq!(k.ok(&["exec", "logger", "--", "echo", "hello", "world"]).await, "hello world\n");
    assert_eq!(k.ok(&["exec", "logger", "--", "printenv", "GREETING"]).await, "hello-env\n");
    let failed = k.run(&["exec", "logger", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]).await;
    assert_eq!((failed.code, failed.stdout.as_str()), (3, "out\n"), "{failed:?}");
    assert!(failed.stderr.contains("err"), "{}", failed.stderr);
    let cat = k.run_with(&["exec", "-i", "logger", "--", "cat"], Some(b"piped stdin\n")).await;
    assert_eq!((cat.code, cat.stdout.as_str()), (0, "piped stdin\n"), "{cat:?}");

    println!("kubectl.{minor}: exec -it through a pseudo-terminal");
    let k_tty = Kubectl { bin: k.bin.clone(), kubeconfig: k.kubeconfig.clone(), cache: tempfile::tempdir().unwrap(), minor: minor.into() };
    let (code, screen) = tokio::task::spawn_blocking(move || exec_tty(&k_tty)).await.unwrap();
    assert_eq!(code, 7, "exec -it exit code; screen: {screen:?}");
    assert!(screen.contains("echo typed-$GREETING-ok\r\n"), "the pty echoes input: {screen:?}");

    println!("kubectl.{minor}: attach");
    let att = k.run_with(&["attach", "-i", "catter"], Some(b"attached-input\n")).await;
    assert_eq!(att.code, 0, "{att:?}");
    assert!(att.stdout.contains("attached-input"), "{att:?}");

    println!("kubectl.{minor}: cp both ways (tar over exec)");
    let local = write(dir.path(), "up.txt", "copied content\n");
    k.ok(&["cp", &local, "shell:/tmp/up.txt"]).await;
    assert_eq!(k.ok(&["exec", "shell", "--", "cat", "/tmp/up.txt"]).await, "copied content\n");
    let back = dir.path().join("down.txt");
    k.ok(&["cp", "shell:/tmp/up.txt", &back.display().to_string()]).await;
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied content\n");

    println!("kubectl.{minor}: port-forward");
    port_forward(&k).await;

    println!("kubectl.{minor}: get -w");
    watch_sees_new_pod(&k).await;

    println!("kubectl.{minor}: auth can-i");
    assert_eq!(k.ok(&["auth", "can-i", "get", "secrets"]).await.trim(), "yes");

    println!("kubectl.{minor}: delete (with its wait)");
    let out = k.ok(&["delete", "pod", "logger"]).await;
    assert!(out.contains("pod \"logger\" deleted"), "{out}");
    assert_eq!(k.run(&["get", "pod", "logger"]).await.code, 1);
    let out = k.ok(&["delete", "configmap/settings", "deployment/web"]).await;
    assert!(out.contains("deleted"), "{out}");

    // Which protocol did this version really take?
    let (exec_proto, pf_proto) = expected_protocols(minor);
    let reqs = sim.requests();
    let ua = format!("kubectl.{minor}/");
    let upgrades = |sub: &str| -> Vec<String> {
        reqs.iter()
            .filter(|r| r["user_agent"].as_str().unwrap_or("").starts_with(&ua) && r["uri"].as_str().unwrap_or("").contains(sub) && r["code"] == 101)
            .map(|r| format!("{}:{}", r["upgrade"].as_str().unwrap_or(""), r["protocol"].as_str().unwrap_or("")))
            .collect()
    };
    let execs = upgrades("/exec?");
    let pfs = upgrades("/portforward");
    let attaches = upgrades("/attach?");
    println!("kubectl.{minor}: exec over {execs:?}, attach over {attaches:?}, port-forward over {pfs:?}");
    assert!(!execs.is_empty() && execs.iter().all(|p| p.starts_with(exec_proto)), "kubectl.{minor} exec must use {exec_proto}: {execs:?}");
    assert!(!attaches.is_empty() && attaches.iter().all(|p| p.starts_with(exec_proto)), "kubectl.{minor} attach must use {exec_proto}: {attaches:?}");
    assert!(!pfs.is_empty() && pfs.iter().all(|p| p.starts_with(pf_proto)), "kubectl.{minor} port-forward must use {pf_proto}: {pfs:?}");
    if exec_proto == "websocket" {
        assert!(execs.iter().all(|p| p == "websocket:v5.channel.k8s.io"), "{execs:?}");
    }
    if pf_proto == "websocket" {
        assert!(pfs.iter().all(|p| p == "websocket:SPDY/3.1+portforward.k8s.io"), "{pfs:?}");
    }
}

/// The `kubectl` on PATH is a dispatcher: it asks `/version` and runs the matching binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_picks_the_binary_matching_the_server() {
    for (server, client) in [("1.29.3", "Client Version: v1.29."), ("1.33.0", "Client Version: v1.33.")] {
        let sim = Sim::start_version(server).await;
        let cache = tempfile::tempdir().unwrap();
        let out = tokio::process::Command::new(common::kubectl_dir().join("kubectl"))
            .arg("--kubeconfig")
            .arg(sim.kubeconfig())
            .arg("--cache-dir")
            .arg(cache.path())
            .arg("version")
            .env("HOME", cache.path())
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(client) && text.contains(&format!("Server Version: v{server}")), "{text}");
        assert!(sim.requests().iter().any(|r| r["user_agent"].as_str().unwrap_or("").starts_with("kubectl-dispatcher")));
    }
}

/// What the relay must guarantee on top of the scenario: the cluster saw the person (through
/// impersonation by the relay's identity), and the relay's credential never reached kubectl.
async fn relay_guarantees(minor: &str, r: &Relayed) {
    let ua = format!("kubectl.{minor}/");
    let seen: Vec<serde_json::Value> = r.requests().into_iter().filter(|e| e["user_agent"].as_str().unwrap_or("").starts_with(&ua)).collect();
    assert!(seen.len() > 20, "the simulator saw kubectl.{minor}'s requests");
    for e in &seen {
        assert_eq!(e["authenticated_user"], "hoop-kube-relay", "upstream authenticated as the relay: {e}");
        assert_eq!(e["user"], "alice", "upstream impersonated alice: {e}");
        assert!(e["groups"].as_array().unwrap().iter().any(|g| g == "dev"), "with alice's groups: {e}");
    }
    // -v=9 prints every request and response header and body kubectl handles.
    let k = Kubectl::new(minor, r);
    let out = k.run(&["get", "pods", "-v=9"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = r.relay_token();
    assert!(!out.stdout.contains(token.trim()) && !out.stderr.contains(token.trim()), "the relay's credential must never reach the client");
}

macro_rules! versions {
    ($($name:ident, $relayed:ident => $minor:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let sim = Sim::start().await;
            matrix($minor, &sim).await;
        }

        /// The same scenario through kubectl → forward → relay → simulator.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $relayed() {
            let r = Relayed::start(&["alice"]).await;
            matrix($minor, &r).await;
            relay_guarantees($minor, &r).await;
        }
    )*};
}

versions! {
    kubectl_1_27, relayed_kubectl_1_27 => "1.27",
    kubectl_1_28, relayed_kubectl_1_28 => "1.28",
    kubectl_1_29, relayed_kubectl_1_29 => "1.29",
    kubectl_1_30, relayed_kubectl_1_30 => "1.30",
    kubectl_1_31, relayed_kubectl_1_31 => "1.31",
    kubectl_1_32, relayed_kubectl_1_32 => "1.32",
    kubectl_1_33, relayed_kubectl_1_33 => "1.33",
}
