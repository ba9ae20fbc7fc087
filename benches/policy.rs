//! Policy decision time with 10, 100 and 1000 rules (target: under 20 µs p50 at 1000 rules).
//! Realistic mixes: per-team allows, namespace and name globs, agent denies, review rules, CEL
//! on objects; the deciding rule sits near the end. Criterion reports the mean; a separate pass
//! times single decisions and prints p50/p99. Run: `cargo bench --bench policy`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hoop_kube::kube::request_info;
use hoop_kube::policy::{Action, Policy, Request, User};
use hoop_kube::relay::config::PolicyConfig;

/// `n` rules; the last three are the ones the benchmark requests hit.
fn rules(n: usize) -> String {
    let mut y = String::from("rules:\n");
    for i in 0..n.saturating_sub(3) {
        let _ = match i % 6 {
            0 => writeln!(y, "  - {{name: team-{i}-reads, match: {{groups: [team-{i}], verbs: [get, list, watch], namespaces: [\"team-{i}-*\"]}}, action: allow, mask: default}}"),
            1 => writeln!(y, "  - {{name: team-{i}-writes, match: {{groups: [team-{i}], verbs: [create, update, patch], apiGroups: [\"\", apps], resources: [pods, deployments], namespaces: [\"team-{i}\"]}}, action: allow}}"),
            2 => writeln!(y, "  - {{name: agent-{i}, match: {{agent: \"bot-{i}-*\", verbs: [get, list], resources: [secrets, configmaps]}}, action: deny}}"),
            3 => writeln!(y, "  - {{name: deletes-{i}, match: {{subjects: [\"svc-{i}*\"], verbs: [delete], names: [\"web-{i}-*\"]}}, action: review, reviewers: [sre]}}"),
            4 => writeln!(y, "  - {{name: cel-{i}, match: {{groups: [team-{i}], verbs: [create], resources: [pods]}}, cel: \"object.spec.containers.exists(c, c.image.startsWith('evil-{i}'))\", action: deny}}"),
            _ => writeln!(y, "  - {{name: exec-{i}, match: {{subjects: [user-{i}], verbs: [exec, attach], namespaces: [\"ns-{i}\"]}}, action: allow}}"),
        };
    }
    y.push_str("  - {name: dev-reads, match: {groups: [dev], verbs: [get, list, watch]}, action: allow, mask: default}\n");
    y.push_str("  - {name: prod-deletes, match: {verbs: [delete], namespaces: [\"prod-*\"]}, action: review, reviewers: [sre]}\n");
    y.push_str("  - {name: privileged, match: {verbs: [create], resources: [pods]}, cel: \"object.spec.containers.exists(c, has(c.securityContext) && c.securityContext.privileged == true)\", action: review, reviewers: [sre]}\n");
    y
}

fn policy(n: usize) -> Policy {
    let cfg: PolicyConfig = serde_yaml_ng::from_str(&rules(n)).unwrap();
    let p = Policy::compile(&cfg).unwrap();
    assert_eq!(p.len(), n);
    p
}

struct Case {
    name: &'static str,
    method: http::Method,
    path: &'static str,
    query: Option<&'static str>,
    object: Option<serde_json::Value>,
    expect: Action,
}

fn cases() -> Vec<Case> {
    let pod = serde_json::json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "x", "securityContext": {"privileged": true}}]}});
    vec![
        Case { name: "get pod (allow)", method: http::Method::GET, path: "/api/v1/namespaces/prod-eu/pods/web-1", query: None, object: None, expect: Action::Allow },
        Case { name: "delete pod (review)", method: http::Method::DELETE, path: "/api/v1/namespaces/prod-eu/pods/web-1", query: None, object: None, expect: Action::Review },
        Case { name: "create pod, CEL (review)", method: http::Method::POST, path: "/api/v1/namespaces/prod-eu/pods", query: None, object: Some(pod), expect: Action::Review },
        Case { name: "exec (deny, no match)", method: http::Method::POST, path: "/api/v1/namespaces/kube-system/pods/x/exec", query: Some("command=sh"), object: None, expect: Action::Deny },
    ]
}

fn bench(c: &mut Criterion) {
    let groups = vec!["dev".to_string(), "team-7".to_string()];
    let claims = serde_json::json!({"sub": "alice"});
    let user = User { subject: "alice", username: "alice", groups: &groups, agent: None, claims: &claims };
    let mut report = String::new();
    for n in [10, 100, 1000] {
        let p = policy(n);
        let mut g = c.benchmark_group(format!("policy/{n} rules"));
        for case in cases() {
            let info = request_info::parse(&case.method, case.path, case.query).unwrap();
            let req = Request { info: &info, method: &case.method, path: case.path, query: case.query, object: case.object.as_ref() };
            assert_eq!(p.decide(&user, &req).action, case.expect, "{n} rules, {}", case.name);
            g.bench_function(BenchmarkId::from_parameter(case.name), |b| b.iter(|| black_box(p.decide(black_box(&user), black_box(&req)))));
            // Single decisions, timed one by one, for the percentiles.
            let mut times: Vec<u64> = (0..20_000)
                .map(|_| {
                    let t = Instant::now();
                    black_box(p.decide(&user, &req));
                    t.elapsed().as_nanos() as u64
                })
                .collect();
            times.sort_unstable();
            let pct = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)] as f64 / 1000.0;
            let _ = writeln!(report, "{n:>5} rules  {:<26} p50 {:>7.2} µs   p99 {:>7.2} µs", case.name, pct(0.50), pct(0.99));
        }
        g.finish();
    }
    println!("\npolicy decide() percentiles (single decisions, 20000 each):\n{report}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
