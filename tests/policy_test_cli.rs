//! `hoop-kube policy test` as a platform team runs it: the decision, every matched rule, the
//! message kubectl would print, and the exit status (0 allow, 1 deny, 2 error, 3 review).

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_hoop-kube");

/// The example rules of packaging/relay.example.yaml, uncommented, in an otherwise minimal file
/// whose certificates do not exist (`policy test` reads only the policy section).
fn config(dir: &Path) -> std::path::PathBuf {
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/relay.example.yaml")).unwrap();
    let start = example.find("# policy:").expect("the example has a commented policy section");
    let policy: String = example[start..].lines().map(|l| l.strip_prefix("# ").unwrap_or(l)).collect::<Vec<_>>().join("\n");
    let path = dir.join("relay.yaml");
    std::fs::write(&path, format!("listen: 127.0.0.1:8443\ntls: {{cert: nope.crt, key: nope.key, client_ca: nope-ca.crt}}\n{policy}\n")).unwrap();
    path
}

fn run(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(BIN).args(["policy", "test", "--config"]).arg(cfg).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn prod_delete_is_held_for_review() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (code, out, err) = run(&cfg, &["--as", "alice", "--group", "dev", "DELETE", "/api/v1/namespaces/prod-eu/pods/web-1"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("delete pods \"web-1\" in namespace \"prod-eu\""), "{out}");
    assert!(out.contains("decision:  review (rule \"prod-deletes-need-approval\")"), "{out}");
    assert!(out.contains("reviewers: sre (self-approval not allowed)"), "{out}");
    assert!(out.contains("  review  prod-deletes-need-approval") && out.contains("  allow   dev-works-normally"), "{out}");
}

#[test]
fn allowed_and_denied_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (code, out, _) = run(&cfg, &["--as", "alice", "--group", "dev", "get", "/api/v1/namespaces/default/pods"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("decision:  allow (rule \"dev-works-normally\")") && out.contains("mask:      default"), "{out}");
    // Exec into kube-system, over WebSocket (GET) and SPDY (POST).
    for method in ["GET", "POST"] {
        let (code, out, _) = run(&cfg, &["--as", "alice", "--group", "dev", method, "/api/v1/namespaces/kube-system/pods/coredns/exec?command=sh&stdin=true"]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("kubectl:   Error from server (Forbidden): hoop-kube policy: exec pods/exec \"coredns\" in namespace \"kube-system\" is denied by rule \"no-exec-in-kube-system\": nobody execs into kube-system; ask your platform team to change the policy"), "{out}");
    }
    // Agents never read secrets; the human may.
    let (code, out, _) = run(&cfg, &["--as", "alice", "--group", "dev", "--agent", "claude", "GET", "/api/v1/namespaces/default/secrets/db"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  deny    agents-never-read-secrets"), "{out}");
    // Nobody's rule: denied, and said so.
    let (code, out, _) = run(&cfg, &["--as", "mallory", "GET", "/api/v1/namespaces/default/pods"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no rule matched") && out.contains("is not allowed by any rule"), "{out}");
    // A path the relay refuses never reaches the policy.
    let (code, out, _) = run(&cfg, &["--as", "alice", "--group", "dev", "POST", "/api/v1/namespaces/kube-system/pods/x%2Fexec"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("before policy") && out.contains("encoded '/'"), "{out}");
}

#[test]
fn privileged_pod_is_reviewed_by_its_object() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let pod = dir.path().join("pod.yaml");
    std::fs::write(&pod, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: a\n      image: busybox\n      securityContext: {privileged: true}\n").unwrap();
    let args = ["--as", "alice", "--group", "dev", "--object", pod.to_str().unwrap(), "POST", "/api/v1/namespaces/default/pods"];
    let (code, out, _) = run(&cfg, &args);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("rule \"privileged-pods-need-sre\""), "{out}");
    // Without the object the condition errors, which counts as deny, and the tool says why.
    let (code, out, _) = run(&cfg, &["--as", "alice", "--group", "dev", "POST", "/api/v1/namespaces/default/pods"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("counts as deny") && out.contains("without --object FILE"), "{out}");
}

#[test]
fn bad_rules_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.yaml");
    std::fs::write(&cfg, "policy:\n  rules:\n    - {name: ok, action: allow}\n    - {name: privileged-pods, cel: \"object.spec.(\", action: review, reviewers: [sre]}\n").unwrap();
    let (code, out, err) = run(&cfg, &["--as", "a", "GET", "/version"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("relay.yaml: policy.rules[1].cel: rule \"privileged-pods\": does not compile"), "{err}");
    std::fs::write(&cfg, "policy:\n  rules:\n    - {name: a, action: allow, colour: blue}\n").unwrap();
    let (code, _, err) = run(&cfg, &["--as", "a", "GET", "/version"]);
    assert_eq!(code, 2);
    assert!(err.contains("policy.rules[0]") && err.contains("unknown key"), "{err}");
}
