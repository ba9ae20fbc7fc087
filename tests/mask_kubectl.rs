//! Masking with real kubectl: every way a Secret's value comes back through the relay — single
//! objects, lists, Tables, watches, write echoes, dry runs, deletecollection, the last-applied
//! annotation, pod and workload env literals, logs and exec output — and every way around a
//! masker (other encodings, gzip, JSON-patch oracles, writing the placeholder back). Each check
//! asserts that the real value, plain or base64, is in no byte kubectl (or a raw client) gets.
//!
//! alice (dev) is masked by the `secrets` profile; sam (sre) is not, and is the control that
//! proves the value is really there and that the simulator really serves YAML and gzip.

mod common;

use base64::Engine as _;
use common::{Cluster, Kubectl, Out};

const POLICY: &str = r#"policy:
  rules:
    - name: dev-sees-masked
      match:
        groups: [dev]
      action: allow
      mask: secrets
    - name: sre-sees-all
      match:
        groups: [sre]
      action: allow
mask_profiles:
  secrets:
    secret_data: true
    env_literals: true
    serviceaccount_tokens: true
    logs: true
"#;

const VALUE: &str = "Hunter2-s3cr3t-value";
const ENV_VALUE: &str = "literal-env-s3cr3t";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The value is in no byte of what kubectl printed.
fn no_leak(what: &str, o: &Out) {
    for needle in [VALUE.to_string(), b64(VALUE), ENV_VALUE.to_string(), b64(ENV_VALUE)] {
        assert!(!o.stdout.contains(&needle) && !o.stderr.contains(&needle), "{what}: the secret value ({needle}) reached the client: {o:?}");
    }
}

/// `--context CTX` followed by `args`.
fn as_ctx<'a>(ctx: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    ["--context", ctx].iter().chain(args).copied().collect()
}

fn ok(what: &str, o: &Out) {
    assert_eq!(o.code, 0, "{what} failed: {o:?}");
    no_leak(what, o);
}

async fn bed() -> common::PolicyBed {
    common::PolicyBed::start(&common::team(), POLICY).await
}

fn raw_no_leak(what: &str, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    assert!(!text.contains(VALUE) && !text.contains(&b64(VALUE)), "{what}: the secret value reached the client: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_never_reach_a_masked_user_with_real_kubectl() {
    let b = bed().await;
    let admin = Kubectl::new("1.33", &b);
    // The control: sam creates the Secret and sees its value.
    let lit = format!("--from-literal=password={VALUE}");
    assert_eq!(admin.run(&as_ctx("as-sam", &["create", "secret", "generic", "db", &lit])).await.code, 0);
    let o = admin.run(&as_ctx("as-sam", &["get", "secret", "db", "-o", "jsonpath={.data.password}"])).await;
    assert_eq!(o.stdout, b64(VALUE), "sam (unmasked) sees the value: the secret is really there");

    for minor in ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"] {
        let k = Kubectl::new(minor, &b);
        // Reads in every output format kubectl has.
        for fmt in ["yaml", "json", "jsonpath={.data.password}", "go-template={{.data.password}}"] {
            let o = k.run(&as_ctx("as-alice", &["get", "secret", "db", "-o", fmt])).await;
            ok(&format!("{minor} get secret -o {fmt}"), &o);
        }
        let o = k.run(&as_ctx("as-alice", &["get", "secret", "db", "-o", "jsonpath={.data.password}"])).await;
        let shown = base64::engine::general_purpose::STANDARD.decode(o.stdout.trim()).expect("the placeholder is valid base64");
        assert_eq!(String::from_utf8(shown).unwrap(), hoop_kube::mask::PLACEHOLDER_TEXT, "{minor}: decodes to a text that says masked");
        let o = k.run(&as_ctx("as-alice", &["describe", "secret", "db"])).await;
        ok(&format!("{minor} describe secret"), &o);
        assert!(o.stdout.contains("password:"), "{minor}: describe works on the placeholder: {o:?}");
        let o = k.run(&as_ctx("as-alice", &["get", "secrets"])).await;
        ok(&format!("{minor} get secrets (Table)"), &o);
        assert!(o.stdout.contains("db"), "{o:?}");
        let o = k.run(&as_ctx("as-alice", &["get", "secrets", "-o", "yaml"])).await;
        ok(&format!("{minor} get secrets -o yaml (SecretList)"), &o);
        let o = k.run(&as_ctx("as-alice", &["get", "--raw", "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1"])).await;
        ok(&format!("{minor} raw watch"), &o);
        assert!(o.stdout.contains("\"ADDED\""), "{minor}: the watch delivered events: {o:?}");
        let o = k.run(&as_ctx("as-alice", &["get", "secret", "db", "-w", "-o", "json", "--request-timeout=2s"])).await;
        no_leak(&format!("{minor} get secret -w"), &o);
        assert!(o.stdout.contains("\"db\""), "{minor}: the watch printed the object: {o:?}");
        let o = k.run(&as_ctx("as-alice", &["get", "--raw", "/api/v1/namespaces/default/secrets?includeObject=Object"])).await;
        ok(&format!("{minor} Table rows with objects"), &o);

        // Write echoes: create, dry-run patch (a read through patch), apply then get.
        let name = format!("echo-{}", minor.replace('.', "-"));
        let o = k.run(&as_ctx("as-alice", &["create", "secret", "generic", &name, &format!("--from-literal=k={VALUE}"), "-o", "yaml"])).await;
        ok(&format!("{minor} create secret -o yaml"), &o);
        let o = k.run(&as_ctx("as-alice", &["patch", "secret", "db", "-p", "{}", "--dry-run=server", "-o", "yaml"])).await;
        ok(&format!("{minor} patch --dry-run=server"), &o);
        let applied = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied-{n}\nstringData:\n  token: {VALUE}\n", n = minor.replace('.', "-"));
        let o = k.run_with(&as_ctx("as-alice", &["apply", "-f", "-", "-o", "yaml"]), Some(applied.as_bytes())).await;
        ok(&format!("{minor} apply -o yaml"), &o);
        let o = k.run(&as_ctx("as-alice", &["get", "secret", &format!("applied-{}", minor.replace('.', "-")), "-o", "json"])).await;
        ok(&format!("{minor} get applied secret"), &o);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        let last = v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().expect("the annotation is there");
        let last: serde_json::Value = serde_json::from_str(last).expect("the masked annotation is still valid JSON");
        assert_eq!(last["kind"], "Secret", "{last}");
        // Applying again still works on the masked annotation (the 3-way diff reads it).
        let o = k.run_with(&as_ctx("as-alice", &["apply", "-f", "-"]), Some(applied.replace("token:", "token2:").as_bytes())).await;
        ok(&format!("{minor} re-apply"), &o);

        // The edit trap: the placeholder written back is refused, and the value survives.
        let o = k.run(&as_ctx("as-alice", &["get", "secret", "db", "-o", "yaml"])).await;
        let o = k.run_with(&as_ctx("as-alice", &["replace", "-f", "-"]), Some(o.stdout.as_bytes())).await;
        assert_ne!(o.code, 0, "{minor}: writing the placeholder back must be refused: {o:?}");
        assert!(o.stderr.contains("masked") || o.stderr.contains("placeholder"), "{minor}: the refusal says why: {o:?}");
        // JSON-patch oracles.
        for op in [
            r#"[{"op":"test","path":"/data/password","value":"SHVudGVy"}]"#,
            r#"[{"op":"copy","from":"/data/password","path":"/metadata/annotations/x"}]"#,
            r#"[{"op":"move","from":"/data/password","path":"/metadata/labels/x"}]"#,
        ] {
            let o = k.run(&as_ctx("as-alice", &["patch", "secret", "db", "--type=json", "-p", op])).await;
            assert_ne!(o.code, 0, "{minor}: {op} must be refused: {o:?}");
            no_leak(op, &o);
        }
        // An edit that does not touch the data still works.
        let o = k.run(&as_ctx("as-alice", &["label", "secret", "db", &format!("seen-by-{}=yes", minor.replace('.', "-"))])).await;
        ok(&format!("{minor} label a masked secret"), &o);
    }
    let o = admin.run(&as_ctx("as-sam", &["get", "secret", "db", "-o", "jsonpath={.data.password}"])).await;
    assert_eq!(o.stdout, b64(VALUE), "the refused writes left the value intact");

    // deletecollection echoes the deleted items.
    let o = admin.run(&["--context", "as-sam", "create", "namespace", "trash"]).await;
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(admin.run(&as_ctx("as-sam", &["create", "secret", "generic", "gone", "-n", "trash", &lit])).await.code, 0);
    let o = admin.run(&["--context", "as-alice", "delete", "--raw", "/api/v1/namespaces/trash/secrets"]).await;
    ok("deletecollection", &o);
    assert!(o.stdout.contains("gone"), "the deleted items came back, masked: {o:?}");

    // The records count what was masked, watches included.
    let alice_raw = common::Raw::new(b.kubeconfig(), "as-alice");
    let (code, _, body) = alice_raw.get("/hoop-kube/v1/records?resource=secrets&limit=1000", &[]).await;
    assert_eq!(code, 200);
    let recs: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let masked = |verb: &str| recs["items"].as_array().unwrap().iter().filter(|r| r["verb"] == verb).map(|r| r["masked"].as_u64().unwrap_or(0)).max().unwrap_or(0);
    assert!(masked("get") >= 1 && masked("list") >= 1 && masked("watch") >= 1, "masked counts in the records: get {} list {} watch {}", masked("get"), masked("list"), masked("watch"));

    // The upstream was asked for JSON only, uncompressed, for every masked request.
    let log = b.requests();
    let alice: Vec<&serde_json::Value> = log.iter().filter(|r| r["user"] == "alice").collect();
    assert!(!alice.is_empty());
    for r in &alice {
        assert!(r.get("accept_encoding").is_none(), "Accept-Encoding reached upstream for alice: {r}");
        let accept = r["accept"].as_str().unwrap_or("");
        assert!(accept.is_empty() || accept.split(',').all(|m| m.starts_with("application/json")), "a non-JSON Accept reached upstream: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_encodings_and_gzip_never_bypass_the_masker() {
    let b = bed().await;
    let k = Kubectl::new("1.33", &b);
    // Enough Secrets that a list is over the apiserver's 128 KiB gzip threshold.
    let filler = "x".repeat(4096);
    for i in 0..40 {
        let o = k.run(&["--context", "as-sam", "create", "secret", "generic", &format!("s{i}"), &format!("--from-literal=password={VALUE}"), &format!("--from-literal=filler={filler}")]).await;
        assert_eq!(o.code, 0, "{o:?}");
    }
    let alice = common::Raw::new(b.kubeconfig(), "as-alice");
    let sam = common::Raw::new(b.kubeconfig(), "as-sam");
    let list = "/api/v1/namespaces/default/secrets";

    // Controls: unmasked, the simulator really answers YAML and gzip, as kube-apiserver does.
    let (code, h, _) = sam.get(list, &[("accept", "application/yaml")]).await;
    assert_eq!((code, h.get("content-type").map(|v| v.to_str().unwrap())), (200, Some("application/yaml")));
    let (_, h, _) = sam.get(list, &[("accept", "application/json"), ("accept-encoding", "gzip")]).await;
    assert_eq!(h.get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"), "the control list is gzipped");

    for accept in [
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
        "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json",
        "application/cbor",
        "*/*",
    ] {
        for enc in ["", "gzip", "gzip, deflate, br"] {
            let mut headers = vec![("accept", accept)];
            if !enc.is_empty() {
                headers.push(("accept-encoding", enc));
            }
            let (code, h, body) = alice.get(list, &headers).await;
            assert_eq!(code, 200, "{accept} {enc}: {}", String::from_utf8_lossy(&body));
            assert!(h.get("content-encoding").is_none(), "{accept} {enc}: a compressed answer reached the client");
            assert_eq!(h.get("content-type").map(|v| v.to_str().unwrap()), Some("application/json"), "{accept} {enc}");
            raw_no_leak(&format!("{accept} {enc}"), &body);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let masked: u64 = h.get("x-hoop-kube-masked").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("the masked count header");
            if accept.contains("as=Table") {
                // The Table the client asked for (its cells hold only type and count).
                assert_eq!((v["kind"].as_str(), v["rows"].as_array().map(Vec::len), masked), (Some("Table"), Some(40), 0));
            } else {
                assert_eq!((v["kind"].as_str(), v["items"].as_array().map(Vec::len)), (Some("SecretList"), Some(40)));
                assert_eq!(masked, 80, "two values per Secret");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn env_literals_logs_and_exec_output_are_masked() {
    let b = bed().await;
    let k = Kubectl::new("1.33", &b);
    assert_eq!(k.run(&as_ctx("as-sam", &["create", "secret", "generic", "db", &format!("--from-literal=password={VALUE}")])).await.code, 0);
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo pw=$PW; sleep 1000"],
            "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}, {"name": "LIT", "value": ENV_VALUE}]}]}
    });
    let o = k.run_with(&as_ctx("as-sam", &["create", "-f", "-"]), Some(pod.to_string().as_bytes())).await;
    assert_eq!(o.code, 0, "{o:?}");
    let deploy = format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        env:\n        - {{name: LIT, value: {ENV_VALUE}}}\n");
    let o = k.run_with(&as_ctx("as-sam", &["apply", "-f", "-"]), Some(deploy.as_bytes())).await;
    assert_eq!(o.code, 0, "{o:?}");
    // Control: sam sees the log line with the value.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(k.ok(&as_ctx("as-sam", &["logs", "app"])).await.contains(VALUE), "the pod really prints the value");

    // A minted service-account token is a credential: masked for alice, real for sam.
    let token = k.ok(&as_ctx("as-sam", &["create", "token", "default"])).await;
    assert!(token.trim().len() > 20 && !token.contains(hoop_kube::mask::PLACEHOLDER_TEXT), "the control gets a token: {token}");
    let o = k.run(&as_ctx("as-alice", &["create", "token", "default"])).await;
    assert_eq!((o.code, o.stdout.trim()), (0, hoop_kube::mask::PLACEHOLDER_TEXT), "{o:?}");

    for minor in ["1.27", "1.33"] {
        let k = Kubectl::new(minor, &b);
        for args in [&["get", "pod", "app", "-o", "yaml"][..], &["get", "deployment", "web", "-o", "json"], &["get", "pods", "-o", "wide"], &["describe", "pod", "app"]] {
            let o = k.run(&as_ctx("as-alice", args)).await;
            ok(&format!("{minor} {args:?}"), &o);
        }
        let o = k.run(&as_ctx("as-alice", &["logs", "app"])).await;
        ok(&format!("{minor} logs"), &o);
        assert!(o.stdout.contains(&format!("pw={}", hoop_kube::mask::PLACEHOLDER_TEXT)), "{minor}: the value's place is marked: {o:?}");
        // Exec output: Secret values are replaced (env literals are masked in objects, not in
        // output — README says so — so only the Secret's value is checked here).
        let o = k.run(&as_ctx("as-alice", &["exec", "app", "--", "env"])).await;
        let o = Out { stdout: o.stdout.replace(&format!("LIT={ENV_VALUE}"), "LIT=(literal)"), ..o };
        if minor == "1.27" {
            // SPDY exec output cannot be rewritten: refused, with the way out.
            assert_ne!(o.code, 0, "{o:?}");
            assert!(o.stderr.contains("1.30"), "the refusal names the fix: {o:?}");
            no_leak("1.27 exec", &o);
        } else {
            ok(&format!("{minor} exec -- env"), &o);
            assert!(o.stdout.contains(&format!("PW={}", hoop_kube::mask::PLACEHOLDER_TEXT)), "{o:?}");
        }
    }
}
