//! Reviews with real kubectl through forwarder and relay to the simulator: a held `kubectl
//! delete` approved from another process (`hoop-kube reviews approve`, the real binary, through
//! the reviewer's own kubeconfig context), the retry after an expired hold, spend-once, a changed
//! body, self-approval and non-reviewers refused, deny with a reason, and a pending review that
//! survives a relay restart.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Cluster, Kubectl, Out};
use hoop_kube::demo;

const POLICY: &str = r#"policy:
  rules:
    - name: team-may-use-the-cluster
      match:
        groups: [dev, sre]
      action: allow
    - name: prod-deletes-need-approval
      match:
        verbs: [delete]
        namespaces: ["prod-*"]
      action: review
      reviewers: [sre]
    - name: prod-patches-need-approval
      match:
        verbs: [patch]
        namespaces: ["prod-*"]
      action: review
      reviewers: [sre]
review:
  hold_seconds: 3
  ttl_seconds: 60
"#;

type Bed = common::PolicyBed;

async fn bed() -> Bed {
    Bed::start(&common::team(), POLICY).await
}

/// Run the real `hoop-kube reviews …` as its own process.
async fn hk(kubeconfig: &Path, home: &Path, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hoop-kube"))
        .arg("reviews")
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .env("HOME", home)
        .kill_on_drop(true)
        .output()
        .await
        .expect("hoop-kube runs");
    Out { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
}

/// The first review id (`r-` + 10 base32 characters) in `text`.
fn review_id(text: &str) -> Option<String> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(11)).find_map(|i| {
        let cand = &text[i..i + 12];
        let ok = cand.starts_with("r-") && cand[2..].bytes().all(|c| matches!(c, b'a'..=b'z' | b'2'..=b'7')) && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        ok.then(|| cand.to_string())
    })
}

/// Poll `reviews list` as `context` until a pending review of `summary` shows; its id.
async fn wait_listed(kubeconfig: &Path, home: &Path, context: &str, summary: &str, not: &[&str]) -> String {
    for _ in 0..100 {
        let o = hk(kubeconfig, home, &["list", "--context", context]).await;
        assert_eq!(o.code, 0, "{o:?}");
        if let Some(line) = o.stdout.lines().find(|l| l.contains(summary) && !not.iter().any(|n| l.contains(n))) {
            return review_id(line).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pending review of {summary} appeared");
}

fn pending_403(o: &Out) -> String {
    assert_ne!(o.code, 0, "expected a held-then-refused request: {o:?}");
    assert!(o.stderr.contains("Forbidden"), "{o:?}");
    assert!(o.stderr.contains("hoop-kube reviews approve r-"), "names the command: {o:?}");
    assert!(o.stderr.contains("sre"), "names who can approve: {o:?}");
    review_id(&o.stderr).unwrap()
}

fn deletes_of(b: &Bed, pod: &str) -> usize {
    b.requests().iter().filter(|r| r["method"] == "DELETE" && r["uri"].as_str().unwrap_or("").contains(&format!("/namespaces/prod-eu/pods/{pod}")) && r["code"] == 200).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reviews_with_real_kubectl() {
    let b = bed().await;
    let kc = b.stack.kubeconfig.clone();
    let home = b.home.path().to_path_buf();
    let k = Kubectl::new("1.33", &b);
    k.ok(&["--context", "as-alice", "create", "namespace", "prod-eu"]).await;
    for p in ["web", "api", "db", "cache", "queue"] {
        k.ok(&["--context", "as-alice", "run", p, "-n", "prod-eu", "--image=busybox", "--", "sleep", "1000"]).await;
    }

    // 1. Held, then approved by sam from another process while kubectl waits: it completes.
    let kubectl = Kubectl::new("1.33", &b);
    let held = tokio::spawn(async move { kubectl.run(&["--context", "as-alice", "delete", "pod", "web", "-n", "prod-eu", "--wait=false"]).await });
    let id = wait_listed(&kc, &home, "as-sam", "delete pods \"web\"", &[]).await;
    let o = hk(&kc, &home, &["approve", &id, "--context", "as-sam"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains(&format!("approved {id}")), "{o:?}");
    let o = held.await.unwrap();
    assert_eq!(o.code, 0, "the approved delete completes: {o:?}");
    assert_eq!(deletes_of(&b, "web"), 1, "the DELETE reached the cluster once");
    let o = hk(&kc, &home, &["show", &id, "--context", "as-alice"]).await;
    assert!(o.code == 0 && o.stdout.contains("spent") && o.stdout.contains("decided by:  sam"), "{o:?}");

    // 2. The hold expires: 403 naming the review and the command; approved later, the retry
    //    succeeds once; the next identical request needs a new review.
    let o = k.run(&["--context", "as-alice", "delete", "pod", "api", "-n", "prod-eu", "--wait=false"]).await;
    let id = pending_403(&o);
    assert!(o.stderr.contains(&id) && o.stderr.contains("prod-deletes-need-approval"), "{o:?}");
    assert_eq!(deletes_of(&b, "api"), 0);
    let o = hk(&kc, &home, &["approve", &id, "--context", "as-sam"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    k.ok(&["--context", "as-alice", "delete", "pod", "api", "-n", "prod-eu", "--wait=false"]).await;
    assert_eq!(deletes_of(&b, "api"), 1);
    k.ok(&["--context", "as-alice", "run", "api", "-n", "prod-eu", "--image=busybox", "--", "sleep", "1000"]).await;
    let o = k.run(&["--context", "as-alice", "delete", "pod", "api", "-n", "prod-eu", "--wait=false"]).await;
    let again = pending_403(&o);
    assert_ne!(again, id, "a spent approval is not used twice");
    assert_eq!(deletes_of(&b, "api"), 1);

    // 3. A changed body does not ride on an old approval.
    let patch = |v: &str| format!(r#"{{"metadata":{{"labels":{{"tier":"{v}"}}}}}}"#);
    let o = k.run(&["--context", "as-alice", "patch", "pod", "db", "-n", "prod-eu", "-p", &patch("one")]).await;
    let patch_id = pending_403(&o);
    assert_eq!(hk(&kc, &home, &["approve", &patch_id, "--context", "as-sam"]).await.code, 0);
    let o = k.run(&["--context", "as-alice", "patch", "pod", "db", "-n", "prod-eu", "-p", &patch("two")]).await;
    let other = pending_403(&o);
    assert_ne!(other, patch_id, "a different body needs its own review");
    k.ok(&["--context", "as-alice", "patch", "pod", "db", "-n", "prod-eu", "-p", &patch("one")]).await;
    assert!(k.ok(&["--context", "as-alice", "get", "pod", "db", "-n", "prod-eu", "-o", "jsonpath={.metadata.labels.tier}"]).await.contains("one"));

    // 4. Self-approval refused; a non-reviewer cannot approve; a deny needs a reason; a deny
    //    reaches the held request with the reason.
    let o = hk(&kc, &home, &["approve", &again, "--context", "as-alice"]).await;
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("self-approval is not allowed by rule \"prod-deletes-need-approval\""), "{o:?}");
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {o:?}");
    let o = hk(&kc, &home, &["approve", &again, "--context", "as-agent"]).await;
    assert!(o.code != 0 && o.stderr.contains("cannot approve or deny reviews"), "alice's agent cannot approve alice's review: {o:?}");
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {o:?}");
    let o = hk(&kc, &home, &["deny", &again, "--reason", " ", "--context", "as-sam"]).await;
    assert!(o.code != 0 && o.stderr.contains("a deny needs a reason"), "{o:?}");
    let kubectl = Kubectl::new("1.33", &b);
    let held = tokio::spawn(async move { kubectl.run(&["--context", "as-agent", "delete", "pod", "cache", "-n", "prod-eu", "--wait=false"]).await });
    let cache_id = wait_listed(&kc, &home, "as-sam", "delete pods \"cache\"", &[]).await;
    let o = hk(&kc, &home, &["approve", &cache_id, "--context", "as-alice"]).await;
    // The agent acts for alice: its request is hers, so her approval would be self-approval.
    assert!(o.code != 0 && o.stderr.contains("self-approval is not allowed"), "alice cannot approve her own agent's request: {o:?}");
    let o = hk(&kc, &home, &["deny", &cache_id, "--reason", "not during the freeze", "--context", "as-sam"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    let o = held.await.unwrap();
    assert!(o.code != 0 && o.stderr.contains("denied by sam: not during the freeze"), "{o:?}");
    let o = hk(&kc, &home, &["approve", &cache_id, "--context", "as-sam"]).await;
    assert!(o.code != 0 && o.stderr.contains("already denied"), "deciding twice is a conflict: {o:?}");
    assert_eq!(deletes_of(&b, "cache"), 0);

    // 5. A pending review survives a relay restart and can be approved on the new relay.
    let o = k.run(&["--context", "as-alice", "delete", "pod", "queue", "-n", "prod-eu", "--wait=false"]).await;
    let queue_id = pending_403(&o);
    let Bed { stack, dir, home: _home } = b;
    let demo::Stack { relay, relay_config, forwarders, .. } = stack;
    drop(forwarders);
    relay.shutdown().await;
    let cfg = hoop_kube::relay::config::RelayConfig::load(&relay_config).unwrap();
    let relay = hoop_kube::relay::boot::start(&cfg).await.expect("the relay restarts");
    let kc2 = restarted_kubeconfig(dir.path(), &relay.url).await;
    let o = hk(&kc2.0, &home, &["list", "--context", "as-sam"]).await;
    assert!(o.code == 0 && o.stdout.contains(&queue_id), "the pending review survived: {o:?}");
    assert_eq!(hk(&kc2.0, &home, &["approve", &queue_id, "--context", "as-sam"]).await.code, 0);
    let k2 = Kubectl { bin: common::kubectl("1.33"), kubeconfig: kc2.0.clone(), cache: tempfile::tempdir().unwrap(), minor: "1.33".into() };
    k2.ok(&["--context", "as-alice", "delete", "pod", "queue", "-n", "prod-eu", "--wait=false"]).await;
    let log = std::fs::read_to_string(dir.path().join("sim/requests.jsonl")).unwrap();
    assert!(log.lines().any(|l| l.contains("\"DELETE\"") && l.contains("/namespaces/prod-eu/pods/queue")), "the approved delete reached the cluster after the restart");
    drop(kc2);
    relay.shutdown().await;
}

/// New forwarders for alice and sam pointed at the restarted relay, and a kubeconfig for them.
async fn restarted_kubeconfig(dir: &Path, relay_url: &str) -> (PathBuf, Vec<hoop_kube::forward::Forwarding>) {
    use base64::Engine;
    let ca = std::fs::read_to_string(dir.join("relay/ca.crt")).unwrap();
    let mut kube: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("static.kubeconfig")).unwrap()).unwrap();
    let mut keep = Vec::new();
    for (subject, ctx) in [("alice", "as-alice"), ("sam", "as-sam")] {
        let leaf = hoop_kube::pki::Leaf {
            cert_pem: std::fs::read_to_string(dir.join(format!("users/{subject}.crt"))).unwrap(),
            key_pem: std::fs::read_to_string(dir.join(format!("users/{subject}.key"))).unwrap(),
        };
        let fwd = hoop_kube::forward::start(hoop_kube::forward::ForwardConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            relay: relay_url.to_string(),
            trust: hoop_kube::forward::RelayTrust::CaPem(ca.clone()),
            client: hoop_kube::forward::RelayIdentity::new(&leaf).unwrap(),
            local_ca_dir: dir.join("forward2"),
        })
        .await
        .unwrap();
        for c in kube["clusters"].as_array_mut().unwrap() {
            if c["name"] == ctx {
                c["cluster"]["server"] = serde_json::json!(fwd.url);
                c["cluster"]["certificate-authority-data"] = serde_json::json!(base64::engine::general_purpose::STANDARD.encode(&fwd.ca_pem));
            }
        }
        keep.push(fwd);
    }
    let path = dir.join("restarted.kubeconfig");
    std::fs::write(&path, serde_json::to_string_pretty(&kube).unwrap()).unwrap();
    (path, keep)
}

/// A loopback HTTP server that records every request body (the webhook's receiver).
async fn hook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))).unwrap_or(0);
                        if body.len() >= len {
                            if let Ok(v) = serde_json::from_str(&body[..len]) {
                                log.lock().unwrap().push(v);
                            }
                            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                            break;
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}

/// The webhook hears a review open and close, with Slack-compatible text; and kubectl's
/// WebSocket-then-SPDY retry of one `exec` (1.33 falls back to SPDY when the WebSocket upgrade is
/// refused) lands on the same review instead of opening two.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_and_one_review_per_exec() {
    let (url, seen) = hook_receiver().await;
    let policy = format!(
        "{}    - name: prod-exec-needs-approval\n      match:\n        verbs: [exec]\n        namespaces: [\"prod-*\"]\n      action: review\n      reviewers: [sre]\n",
        POLICY.split("review:\n").next().unwrap()
    ) + &format!("review:\n  hold_seconds: 1\n  ttl_seconds: 60\n  webhook: {url}\n");
    let users: Vec<_> = common::team().into_iter().filter(|u| u.agent.is_none()).collect();
    let b = Bed::start(&users, &policy).await;
    let k = Kubectl::new("1.33", &b);
    let kc = b.stack.kubeconfig.clone();
    k.ok(&["--context", "as-alice", "create", "namespace", "prod-x"]).await;
    k.ok(&["--context", "as-alice", "run", "app", "-n", "prod-x", "--image=busybox", "--", "sleep", "1000"]).await;

    let o = k.run(&["--context", "as-alice", "exec", "-n", "prod-x", "app", "--", "echo", "in-prod"]).await;
    assert_ne!(o.code, 0, "{o:?}");
    let listed = hk(&kc, b.home.path(), &["list", "--context", "as-sam"]).await;
    let ids: std::collections::BTreeSet<String> = listed.stdout.lines().filter(|l| l.contains("prod-x")).filter_map(review_id).collect();
    assert_eq!(ids.len(), 1, "one exec, one review (WebSocket and SPDY attempts share it): {listed:?}");
    let id = ids.into_iter().next().unwrap();
    let o = hk(&kc, b.home.path(), &["approve", &id, "--context", "as-sam"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(k.ok(&["--context", "as-alice", "exec", "-n", "prod-x", "app", "--", "echo", "in-prod"]).await, "in-prod\n");

    // The webhook saw the review open and close.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = seen.lock().unwrap().clone();
        if events.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(events.len() >= 2, "webhook calls: {events:?}");
    for e in &events {
        let text = e["text"].as_str().unwrap_or_default();
        assert!(text.contains(&id) && !text.contains('\n'), "one readable line naming the review: {e}");
        assert_eq!(e["review"]["id"], id.as_str(), "{e}");
    }
    assert!(events.iter().any(|e| e["review"]["state"] == "pending"), "{events:?}");
    assert!(events.iter().any(|e| e["review"]["state"] == "approved"), "{events:?}");
}
