//! Records with real kubectl: every request a user makes — a get, an apply, a denied delete, an
//! approved delete, an `exec -it` typed through a pseudo-terminal, a port-forward — is in the
//! relay's records (the records API and the `audit.k8s.io/v1` JSON-lines export), the exec
//! session replays to exactly what the terminal showed, the live feed delivers records as they
//! happen, a store that cannot be written refuses requests, and a relay killed with SIGKILL
//! under load has a record for every request it answered.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::{Cluster, Kubectl, Out, Raw};
use tokio::io::AsyncBufReadExt;

const POLICY: &str = r#"policy:
  rules:
    - name: team-may-use-the-cluster
      match:
        groups: [dev, sre]
      action: allow
    - name: no-deletes-in-prod
      match:
        verbs: [delete]
        namespaces: [prod]
      action: deny
    - name: deletes-of-reviewed-pods-need-sre
      match:
        verbs: [delete]
        names: ["reviewed-*"]
      action: review
      reviewers: [sre]
review:
  hold_seconds: 1
records:
  auditors: [sre]
  export:
    file: audit.jsonl
"#;

async fn hk(b: &common::PolicyBed, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hoop-kube"))
        .args(args)
        .arg("--kubeconfig")
        .arg(b.kubeconfig())
        .env_remove("KUBECONFIG")
        .env("HOME", b.home.path())
        .kill_on_drop(true)
        .output()
        .await
        .expect("hoop-kube runs");
    Out { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
}

async fn records(raw: &Raw, query: &str) -> Vec<serde_json::Value> {
    let (code, _, body) = raw.get(&format!("/hoop-kube/v1/records?{query}"), &[]).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["kind"], "RecordList");
    v["items"].as_array().unwrap().clone()
}

/// `kubectl exec -it` through a pseudo-terminal: type one command and exit; everything the
/// terminal received.
fn exec_tty(k: &Kubectl, context: &str, pod: &str) -> Vec<u8> {
    use portable_pty::{CommandBuilder, NativePtySystem, PtySize, PtySystem};
    let pty = NativePtySystem::default().openpty(PtySize { rows: 24, cols: 80, pixel_width: 0, pixel_height: 0 }).unwrap();
    let mut cmd = CommandBuilder::new(&k.bin);
    for a in ["--kubeconfig", &k.kubeconfig.display().to_string(), "--cache-dir", &k.cache.path().display().to_string(), "--context", context, "exec", "-it", pod, "--", "sh"] {
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
    let mut screen: Vec<u8> = Vec::new();
    let wait_for = |needle: &str, screen: &mut Vec<u8>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(screen).contains(needle) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "exec -it: never saw {needle:?}; screen: {:?}", String::from_utf8_lossy(screen));
            if let Ok(chunk) = rx.recv_timeout(left) {
                screen.extend_from_slice(&chunk);
            }
        }
    };
    wait_for("# ", &mut screen);
    writer.write_all(b"echo recorded-$HOSTNAME\r").unwrap();
    wait_for("recorded-shell", &mut screen);
    writer.write_all(b"exit\r").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exec -it exits 0: {:?}", String::from_utf8_lossy(&screen));
    // Whatever is still in flight.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(300)) {
        screen.extend_from_slice(&chunk);
    }
    screen
}

/// The output an asciicast v2 recording replays: its `o` events, in order.
fn cast_output(cast: &str) -> Vec<u8> {
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().expect("a header line")).expect("the header is JSON");
    assert_eq!(header["version"], 2, "{header}");
    let mut out = Vec::new();
    for l in lines {
        let e: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("event line {l:?}: {e}"));
        assert!(e[0].is_number(), "{l}");
        if e[1] == "o" {
            out.extend_from_slice(e[2].as_str().unwrap().as_bytes());
        }
    }
    out
}

fn find<'a>(items: &'a [serde_json::Value], f: impl Fn(&serde_json::Value) -> bool, what: &str) -> &'a serde_json::Value {
    items.iter().find(|r| f(r)).unwrap_or_else(|| panic!("no record of {what} among {} records: {items:#?}", items.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_and_session_is_recorded_with_real_kubectl() {
    let b = common::PolicyBed::start(&common::team(), POLICY).await;
    let k = Kubectl::new("1.33", &b);
    let alice = Raw::new(b.kubeconfig(), "as-alice");
    let sam = Raw::new(b.kubeconfig(), "as-sam");

    // The live feed, opened before anything happens.
    let mut tail = alice.client.get(format!("{}/hoop-kube/v1/records?watch=1", alice.server)).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(tail.status().as_u16(), 200);

    k.ok(&["--context", "as-sam", "create", "namespace", "prod"]).await;
    k.ok(&["--context", "as-sam", "run", "victim", "-n", "prod", "--image=busybox", "--", "sleep", "1000"]).await;
    k.ok(&["--context", "as-sam", "run", "reviewed-1", "--image=busybox", "--", "sleep", "1000"]).await;
    k.ok(&["--context", "as-sam", "run", "shell", "--image=busybox", "-i", "--tty", "--", "sh"]).await;

    // A get, an apply, a denied delete, an approved delete.
    k.ok(&["--context", "as-alice", "get", "pods"]).await;
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n";
    k.run_with(&["--context", "as-alice", "apply", "-f", "-"], Some(cm.as_bytes())).await;
    let o = k.run(&["--context", "as-alice", "delete", "pod", "victim", "-n", "prod"]).await;
    assert!(o.code != 0 && o.stderr.contains("no-deletes-in-prod"), "{o:?}");
    let o = k.run(&["--context", "as-alice", "delete", "pod", "reviewed-1", "--wait=false"]).await;
    assert_ne!(o.code, 0, "held, not approved yet: {o:?}");
    let review = o.stderr.split_whitespace().map(|w| w.trim_end_matches([':', ',', ';', '.'])).find(|w| w.starts_with("r-") && w.len() == 12).unwrap_or_else(|| panic!("the review id in {o:?}")).to_string();
    let o = hk(&b, &["reviews", "approve", &review, "--context", "as-sam"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    k.ok(&["--context", "as-alice", "delete", "pod", "reviewed-1", "--wait=false"]).await;

    // An exec -it session typed through a terminal, and a port-forward.
    let k_tty = Kubectl::new("1.33", &b);
    let screen = tokio::task::spawn_blocking(move || exec_tty(&k_tty, "as-alice", "shell")).await.unwrap();
    let mut pf = k.cmd(&["--context", "as-alice", "port-forward", "pod/shell", ":80"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    let mut out = tokio::io::BufReader::new(pf.stdout.take().unwrap());
    tokio::time::timeout(Duration::from_secs(20), tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)).await.unwrap().unwrap();
    let port: u16 = line.rsplit(':').next().and_then(|p| p.split_whitespace().next()).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("port-forward's port: {line:?}"));
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut conn, b"ping through the relay\n").await.unwrap();
    let mut echoed = [0u8; 23];
    tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read_exact(&mut conn, &mut echoed)).await.unwrap().unwrap();
    assert_eq!(&echoed, b"ping through the relay\n");
    drop(conn);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pf.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Everything is in the records; sam (auditor) sees all of it.
    let all = records(&sam, "limit=1000").await;
    let mine = |r: &serde_json::Value| r["username"] == "alice";
    let get = find(&all, |r| mine(r) && r["verb"] == "list" && r["resource"] == "pods" && r["kubectlCommand"] == "kubectl get", "alice's get pods");
    assert_eq!((get["decision"].as_str(), get["code"].as_u64(), get["rule"].as_str()), (Some("allow"), Some(200), Some("team-may-use-the-cluster")), "{get}");
    assert!(get["kubectlSession"].is_string() && get["completed"].is_string() && get["bytesOut"].as_u64() > Some(0), "{get}");
    find(&all, |r| mine(r) && r["resource"] == "configmaps" && matches!(r["verb"].as_str(), Some("create" | "patch")) && r["kubectlCommand"] == "kubectl apply", "alice's apply");
    let denied = find(&all, |r| mine(r) && r["verb"] == "delete" && r["name"] == "victim", "the denied delete");
    assert_eq!((denied["decision"].as_str(), denied["rule"].as_str(), denied["code"].as_u64()), (Some("deny"), Some("no-deletes-in-prod"), Some(403)), "{denied}");
    let held = find(&all, |r| mine(r) && r["verb"] == "delete" && r["name"] == "reviewed-1" && r["decision"] == "review", "the held delete");
    assert_eq!((held["review"].as_str(), held["code"].as_u64()), (Some(review.as_str()), Some(403)), "{held}");
    let approved = find(&all, |r| mine(r) && r["verb"] == "delete" && r["name"] == "reviewed-1" && r["decision"] == "approved", "the approved delete");
    assert_eq!((approved["review"].as_str(), approved["code"].as_u64()), (Some(review.as_str()), Some(200)), "{approved}");
    let exec = find(&all, |r| mine(r) && r["subresource"] == "exec" && r["code"] == 101, "the exec session");
    let session = exec["session"].as_str().expect("the exec record names its session").to_string();
    let pfr = find(&all, |r| mine(r) && r["subresource"] == "portforward" && r["code"] == 101, "the port-forward");

    // alice reads her own records only.
    let hers = records(&alice, "limit=1000").await;
    assert!(!hers.is_empty() && hers.iter().all(mine), "alice sees only her records");
    let (code, _, _) = alice.get("/hoop-kube/v1/records?user=sam", &[]).await;
    assert_eq!(code, 403);
    let sams = all.iter().find(|r| r["username"] == "sam").unwrap();
    let (code, _, _) = alice.get(&format!("/hoop-kube/v1/records/{}", sams["id"].as_str().unwrap()), &[]).await;
    assert_eq!(code, 404, "another user's record is not visible");

    // The exec session replays to exactly what the terminal showed.
    let (code, h, cast) = alice.get(&format!("/hoop-kube/v1/sessions/{session}?format=asciicast"), &[]).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&cast));
    assert_eq!(h["content-type"], "application/x-asciicast");
    let replayed = cast_output(&String::from_utf8(cast).unwrap());
    assert_eq!(String::from_utf8_lossy(&replayed), String::from_utf8_lossy(&screen), "the replay is what the terminal received");
    let (_, _, json) = alice.get(&format!("/hoop-kube/v1/sessions/{session}?format=json"), &[]).await;
    let export: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(export["session"]["summary"]["exitCode"], 0, "{export}");
    let typed: String = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "input")
        .filter_map(|e| e["data"].as_str())
        .map(|d| String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, d).unwrap()).unwrap())
        .collect();
    assert!(typed.contains("echo recorded-$HOSTNAME"), "keystrokes are recorded: {export}");
    let pf_session = pfr["session"].as_str().unwrap();
    let (_, _, json) = alice.get(&format!("/hoop-kube/v1/sessions/{pf_session}?format=json"), &[]).await;
    let export: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let ports = &export["session"]["summary"]["ports"];
    assert!(ports.to_string().contains("80") && ports.to_string().contains("23"), "port and bytes each way: {export}");

    // The same through `hoop-kube sessions`, the real binary.
    let o = hk(&b, &["sessions", "list", "--context", "as-sam", "--user", "alice", "--limit", "1000"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    for needle in ["no-deletes-in-prod", "approved", "exec", "portforward", "kubectl get", "alice"] {
        assert!(o.stdout.contains(needle), "sessions list shows {needle}: {}", o.stdout);
    }
    let o = hk(&b, &["sessions", "list", "--context", "as-alice", "--user", "sam"]).await;
    assert!(o.code != 0 && o.stderr.contains("your own records"), "{o:?}");
    let o = hk(&b, &["sessions", "show", exec["id"].as_str().unwrap(), "--context", "as-alice"]).await;
    assert!(o.code == 0 && o.stdout.contains(&session) && o.stdout.contains("kubectl exec"), "{o:?}");
    let o = hk(&b, &["sessions", "replay", &session, "--speed", "50", "--context", "as-alice"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, String::from_utf8_lossy(&screen), "`sessions replay` plays back exactly what the terminal showed");
    let o = hk(&b, &["sessions", "export", exec["id"].as_str().unwrap(), "--format", "asciicast", "--context", "as-alice"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(cast_output(&o.stdout), replayed, "`sessions export` is the same asciicast");

    // The JSON-lines export: audit.k8s.io/v1 Events, each record's id among them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let jsonl = std::fs::read_to_string(b.dir.path().join("relay/audit.jsonl")).expect("the export file");
    let events: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for r in [get, denied, approved, exec] {
        let e = events.iter().find(|e| e["auditID"] == r["id"] && e["stage"] == "ResponseComplete").unwrap_or_else(|| panic!("no exported event for {r}"));
        assert_eq!((e["kind"].as_str(), e["apiVersion"].as_str(), e["user"]["username"].as_str()), (Some("Event"), Some("audit.k8s.io/v1"), Some("alice")));
        assert_eq!(e["annotations"]["hoop-kube.dev/decision"], r["decision"]);
    }

    // The live feed saw alice's requests as they happened (and nothing of sam's).
    let mut fed = String::new();
    while !fed.contains("reviewed-1") || !fed.contains("\"exec\"") {
        match tokio::time::timeout(Duration::from_secs(5), tail.chunk()).await {
            Ok(Ok(Some(c))) => fed.push_str(&String::from_utf8_lossy(&c)),
            other => panic!("the live feed stopped: {other:?}; so far: {fed}"),
        }
    }
    assert!(!fed.contains("\"username\":\"sam\""), "alice's feed carries only her records");

    // `hoop-kube sessions tail` follows new records live.
    let mut tail_cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_hoop-kube"))
        .args(["sessions", "tail", "-o", "json", "--context", "as-alice", "--kubeconfig"])
        .arg(b.kubeconfig())
        .env_remove("KUBECONFIG")
        .env("HOME", b.home.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut tail_out = tokio::io::BufReader::new(tail_cli.stdout.take().unwrap()).lines();
    tokio::time::sleep(Duration::from_millis(700)).await;
    k.ok(&["--context", "as-alice", "get", "configmap", "settings"]).await;
    let line = loop {
        let l = tokio::time::timeout(Duration::from_secs(10), tail_out.next_line()).await.expect("tail prints the new request").unwrap().expect("a line");
        if l.contains("settings") {
            break l;
        }
    };
    assert!(line.contains("\"configmaps\"") && line.contains("alice"), "{line}");
    tail_cli.kill().await.unwrap();

    // Every answer names its record.
    let (_, h, _) = alice.get("/api/v1/namespaces/default/pods", &[]).await;
    let audit_id = h.get("audit-id").expect("Audit-Id on the response").to_str().unwrap().to_string();
    let (code, _, one) = alice.get(&format!("/hoop-kube/v1/records/{audit_id}"), &[]).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&one));
    // The cluster's audit log would carry the same id: the relay sends it upstream.
    let log = b.requests();
    assert!(log.iter().any(|r| r["uri"] == "/api/v1/namespaces/default/pods" && r["user"] == "alice"), "the get reached the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_cannot_be_written_refuses_requests() {
    let b = common::PolicyBed::start(&common::team(), POLICY).await;
    let k = Kubectl::new("1.33", &b);
    k.ok(&["--context", "as-alice", "get", "pods"]).await;
    let before = b.requests().len();
    // Another process holds the store's write lock: the relay cannot commit a record.
    let store = b.dir.path().join("relay/relay-records.sqlite");
    let conn = rusqlite::Connection::open(&store).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let o = k.run(&["--context", "as-alice", "get", "pods", "--request-timeout=30s"]).await;
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("cannot write the audit record"), "the user is told why: {o:?}");
    assert_eq!(b.requests().len(), before, "nothing reached the cluster while records could not be written");
    conn.execute_batch("ROLLBACK").unwrap();
    drop(conn);
    k.ok(&["--context", "as-alice", "get", "pods"]).await;
}

/// The relay as its own process, killed with SIGKILL in the middle of a load: every request that
/// got an answer has its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_acknowledged_record() {
    let b = common::PolicyBed::start(&common::team(), POLICY).await;
    let common::PolicyBed { stack, dir: _dir, home: _home } = b;
    let hoop_kube::demo::Stack { relay: in_process, sim: _sim, forwarders: _forwarders, kubeconfig, dev_issuer: _issuer, relay_config: config, .. } = stack;
    let addr = in_process.addr;
    let relay_dir = config.parent().unwrap().to_path_buf();
    // Swap the in-process relay for a `hoop-kube relay` process on the same address.
    in_process.shutdown().await;
    let text = std::fs::read_to_string(&config).unwrap();
    let listen = text.lines().find(|l| l.starts_with("listen:")).unwrap().to_string();
    std::fs::write(&config, text.replace(&listen, &format!("listen: {addr}"))).unwrap();
    let mut relay = std::process::Command::new(env!("CARGO_BIN_EXE_hoop-kube")).args(["relay", "--config"]).arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let alice = Raw::new(&kubeconfig, "as-alice");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while alice.client.get(format!("{}/version", alice.server)).bearer_auth(&alice.token).send().await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(std::time::Instant::now() < deadline, "the relay process did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 16 clients in a loop, each answer's Audit-Id collected, until the kill.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for _ in 0..16 {
        let (c, server, token, acked) = (alice.client.clone(), alice.server.clone(), alice.token.clone(), acked.clone());
        load.push(tokio::spawn(async move {
            while let Ok(r) = c.get(format!("{server}/api/v1/namespaces/default/pods")).bearer_auth(&token).send().await {
                let id = r.headers().get("audit-id").and_then(|v| v.to_str().ok()).map(str::to_string);
                if r.status().as_u16() != 200 {
                    break; // the relay is gone (the forwarder answers 503)
                }
                if r.bytes().await.is_ok() {
                    acked.lock().unwrap().push(id.expect("an answered request names its record"));
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.kill().unwrap(); // SIGKILL
    relay.wait().unwrap();
    for l in load {
        tokio::time::timeout(Duration::from_secs(20), l).await.expect("the load stops once the relay is gone").unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);
    let conn = rusqlite::Connection::open(relay_dir.join("relay-records.sqlite")).unwrap();
    let mut missing = Vec::new();
    for id in &acked {
        let n: i64 = conn.query_row("SELECT count(*) FROM records WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        if n != 1 {
            missing.push(id.clone());
        }
    }
    assert!(missing.is_empty(), "{} of {} acknowledged requests have no record: {missing:?}", missing.len(), acked.len());
}
