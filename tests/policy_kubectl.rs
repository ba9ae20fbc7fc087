//! The policy engine on the request path, with real kubectl (1.27: SPDY exec, JSON bodies; 1.33:
//! WebSocket exec, protobuf bodies for typed commands) through forwarder and relay to the
//! simulator. Each example rule of the README is exercised the way a user meets it, and the
//! simulator's request log proves that nothing refused reached the cluster.

mod common;

use common::{Cluster, Kubectl};

const POLICY: &str = r#"policy:
  rules:
    - name: team-may-use-the-cluster
      match:
        groups: [dev, sre]
      action: allow
    - name: privileged-pods-need-sre
      match:
        verbs: [create]
        resources: [pods]
      cel: "has(object.spec) && object.spec.containers.exists(c, has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged == true)"
      action: review
      reviewers: [sre]
    - name: agents-never-read-secrets
      match:
        agent: present
        verbs: [get, list, watch]
        resources: [secrets]
      action: deny
      message: agents never read secrets
    - name: prod-deletes-need-approval
      match:
        verbs: [delete, deletecollection]
        namespaces: ["prod-*"]
      action: review
      reviewers: [sre]
    - name: no-exec-in-kube-system
      match:
        verbs: [exec, attach]
        namespaces: [kube-system]
      action: deny
review:
  hold_seconds: 1
"#;

type Bed = common::PolicyBed;

async fn bed() -> Bed {
    Bed::start(&common::team(), POLICY).await
}

fn privileged_pod(name: &str) -> Vec<u8> {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"], "securityContext": {"privileged": true}}]}
    })
    .to_string()
    .into_bytes()
}

fn forbidden(o: &common::Out, rule: &str) {
    assert_ne!(o.code, 0, "expected a refusal: {o:?}");
    assert!(o.stderr.contains("Forbidden") || o.stderr.contains("forbidden"), "{o:?}");
    assert!(o.stderr.contains(rule), "the refusal names rule {rule}: {o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn example_rules_hold_with_real_kubectl() {
    let b = bed().await;
    let setup = Kubectl::new("1.33", &b);
    setup.ok(&["--context", "as-alice", "create", "namespace", "prod-eu"]).await;
    setup.ok(&["--context", "as-alice", "run", "sys", "-n", "kube-system", "--image=busybox", "--", "sleep", "1000"]).await;
    setup.ok(&["--context", "as-alice", "run", "app", "--image=busybox", "--", "sleep", "1000"]).await;
    setup.ok(&["--context", "as-alice", "create", "secret", "generic", "db", "--from-literal=password=hunter2"]).await;

    for minor in ["1.27", "1.33"] {
        let k = Kubectl::new(minor, &b);
        let ctx = |who: &str| format!("as-{who}");
        let (alice, agent) = (ctx("alice"), ctx("agent"));

        // "Creating a pod with a privileged container needs approval by sre": the object decides.
        let name = format!("priv-{}", minor.replace('.', "-"));
        let o = k.run_with(&["--context", &alice, "create", "-f", "-"], Some(&privileged_pod(&name))).await;
        forbidden(&o, "privileged-pods-need-sre");
        assert!(o.stderr.contains("sre"), "{o:?}");
        if minor == "1.33" {
            // `kubectl run` is a typed client: its body is protobuf from 1.32 on.
            let o = k.run(&["--context", &alice, "run", "priv-run", "--image=busybox", "--privileged", "--", "sleep", "1"]).await;
            forbidden(&o, "privileged-pods-need-sre");
        }
        let plain = format!("plain-{}", minor.replace('.', "-"));
        k.ok(&["--context", &alice, "run", &plain, "--image=busybox", "--", "sleep", "1000"]).await;

        // "Agents never read secrets" — while a human may.
        forbidden(&k.run(&["--context", &agent, "get", "secrets"]).await, "agents-never-read-secrets");
        let o = k.run(&["--context", &agent, "get", "secret", "db", "-o", "yaml"]).await;
        forbidden(&o, "agents-never-read-secrets");
        assert!(o.stderr.contains("agents never read secrets"), "the rule's message reaches the agent: {o:?}");
        assert!(k.ok(&["--context", &alice, "get", "secrets"]).await.contains("db"));
        k.ok(&["--context", &agent, "get", "pods"]).await;

        // "Deletes in prod-* need approval"; elsewhere they go through.
        let victim = format!("web-{}", minor.replace('.', "-"));
        k.ok(&["--context", &alice, "run", &victim, "-n", "prod-eu", "--image=busybox", "--", "sleep", "1000"]).await;
        let o = k.run(&["--context", &alice, "delete", "pod", &victim, "-n", "prod-eu", "--wait=false"]).await;
        forbidden(&o, "prod-deletes-need-approval");
        k.ok(&["--context", &alice, "get", "pod", &victim, "-n", "prod-eu"]).await;
        k.ok(&["--context", &alice, "delete", "pod", &plain, "--wait=false"]).await;

        // "kubectl exec into kube-system is denied" (SPDY POST in 1.27, WebSocket GET in 1.33).
        let o = k.run(&["--context", &alice, "exec", "-n", "kube-system", "sys", "--", "echo", "inside"]).await;
        assert_ne!(o.code, 0, "{o:?}");
        assert!(!o.stdout.contains("inside"), "{o:?}");
        assert!(o.stderr.contains("no-exec-in-kube-system") || o.stderr.contains("Forbidden") || o.stderr.contains("forbidden"), "{o:?}");
        assert_eq!(k.ok(&["--context", &alice, "exec", "app", "--", "echo", "allowed"]).await, "allowed\n");

        // Path tricks against a deny rule never turn it into an allow.
        for raw in ["/api/v1/namespaces/default/%73ecrets", "/api/v1/namespaces/default/secrets/", "//api/v1/namespaces/default/secrets", "/api/v1/namespaces/default/./secrets", "/api/v1/namespaces/default/Secrets/../secrets", "/api/v1/namespaces/default/secrets%2Fdb"] {
            let o = k.run(&["--context", &agent, "get", "--raw", raw]).await;
            assert_ne!(o.code, 0, "{raw} went through: {o:?}");
            assert!(!o.stdout.contains("hunter2") && !o.stdout.contains("aHVudGVyMg"), "{raw} leaked the secret");
        }
    }

    // Nothing refused reached the cluster.
    let log = b.requests();
    let seen = |f: &dyn Fn(&serde_json::Value) -> bool| log.iter().any(f);
    let uri = |r: &serde_json::Value| r["uri"].as_str().unwrap_or("").to_string();
    // (`//api/…` reaches the relay as the non-resource path `/v1/…`, which the apiserver answers
    // 404; only `/api/…` paths are secret reads.)
    let agent_secret: Vec<String> = log.iter().filter(|r| r["extra"]["hoop-kube.dev/agent"][0] == "bot" && uri(r).starts_with("/api/") && uri(r).to_lowercase().contains("secret")).map(|r| format!("{} {} -> {}", r["method"], uri(r), r["code"])).collect();
    assert!(agent_secret.is_empty(), "an agent.s secret read reached the cluster: {agent_secret:?}");
    assert!(!seen(&|r| r["method"] == "DELETE" && uri(r).contains("/namespaces/prod-eu/")), "a prod delete reached the cluster");
    assert!(!seen(&|r| uri(r).contains("/namespaces/kube-system/pods/sys/exec")), "an exec into kube-system reached the cluster");
    let k = Kubectl::new("1.33", &b);
    for name in ["priv-1-27", "priv-1-33", "priv-run"] {
        let o = k.run(&["--context", "as-alice", "get", "pod", name]).await;
        assert!(o.code != 0 && o.stderr.contains("NotFound"), "privileged pod {name} exists: {o:?}");
    }
}
