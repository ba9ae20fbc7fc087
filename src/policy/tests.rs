//! The policy engine on the issue's example rules, strictest-wins, fail-closed CEL, hostile
//! paths, and rule files that must be refused with their key path.

use http::Method;
use serde_json::{json, Value};

use super::*;
use crate::kube::request_info;
use crate::relay::config::{load_policy_section, PolicyConfig};

/// The four example rules of the issue, plus a broad allow for group dev.
const EXAMPLES: &str = r#"
rules:
  - name: privileged-pods-need-sre
    match: {verbs: [create], apiGroups: [""], resources: [pods]}
    cel: "object.spec.containers.exists(c, has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged == true)"
    action: review
    reviewers: [sre]
  - name: agents-never-read-secrets
    match: {agent: present, verbs: [get, list, watch], resources: [secrets]}
    action: deny
    message: agents never read secrets
  - name: prod-deletes-need-approval
    match: {verbs: [delete, deletecollection], namespaces: ["prod-*"]}
    action: review
    reviewers: [sre, leads]
  - name: no-exec-in-kube-system
    match: {verbs: [exec, attach], namespaces: [kube-system]}
    action: deny
    message: nobody execs into kube-system
  - name: dev-does-everything
    match: {groups: [dev]}
    action: allow
    mask: default
"#;

fn policy(yaml: &str) -> Policy {
    let cfg: PolicyConfig = serde_yaml_ng::from_str(yaml).unwrap();
    Policy::compile(&cfg).unwrap()
}

fn compile_err(yaml: &str) -> PolicyError {
    let cfg: PolicyConfig = serde_yaml_ng::from_str(yaml).unwrap();
    Policy::compile(&cfg).unwrap_err()
}

struct Who {
    subject: &'static str,
    groups: Vec<String>,
    agent: Option<&'static str>,
    claims: Value,
}

fn alice() -> Who {
    Who { subject: "alice", groups: vec!["dev".into()], agent: None, claims: json!({"sub": "alice"}) }
}

fn agent_of_alice() -> Who {
    Who { agent: Some("agent-bot"), ..alice() }
}

fn decide_with(p: &Policy, who: &Who, method: &str, target: &str, object: Option<&Value>) -> Decision {
    let method: Method = method.parse().unwrap();
    let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
    let info = request_info::parse(&method, path, query).unwrap();
    let req = Request { info: &info, method: &method, path, query, object };
    let user = User { subject: who.subject, username: who.subject, groups: &who.groups, agent: who.agent, claims: &who.claims };
    p.decide(&user, &req)
}

fn decide(p: &Policy, who: &Who, method: &str, target: &str) -> Decision {
    decide_with(p, who, method, target, None)
}

fn pod(privileged: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y", "securityContext": {"privileged": privileged}}]}})
}

#[test]
fn privileged_pod_needs_sre_approval() {
    let p = policy(EXAMPLES);
    let path = "/api/v1/namespaces/default/pods";
    let d = decide_with(&p, &alice(), "POST", path, Some(&pod(true)));
    assert_eq!(d.action, Action::Review);
    assert_eq!(d.rule.as_deref(), Some("privileged-pods-need-sre"));
    assert_eq!(d.reviewers, ["sre"]);
    assert!(!d.allow_self_approval);
    let d = decide_with(&p, &alice(), "POST", path, Some(&pod(false)));
    assert_eq!((d.action, d.rule.as_deref(), d.masks.iter().map(|m| &**m).collect::<Vec<_>>()), (Action::Allow, Some("dev-does-everything"), vec!["default"]));
    // The relay buffers the body only when a rule needs it.
    let method = Method::POST;
    let info = request_info::parse(&method, path, None).unwrap();
    let req = Request { info: &info, method: &method, path, query: None, object: None };
    assert!(p.needs_object(&req));
    assert_eq!(p.rules_needing_object(&req), ["privileged-pods-need-sre"]);
    let info = request_info::parse(&Method::GET, path, None).unwrap();
    assert!(!p.needs_object(&Request { info: &info, method: &Method::GET, path, query: None, object: None }));
    let info = request_info::parse(&Method::POST, "/apis/apps/v1/namespaces/default/deployments", None).unwrap();
    assert!(!p.needs_object(&Request { info: &info, method: &Method::POST, path: "/apis/apps/v1/namespaces/default/deployments", query: None, object: None }));
}

#[test]
fn a_create_without_its_object_fails_closed() {
    let d = decide(&policy(EXAMPLES), &alice(), "POST", "/api/v1/namespaces/default/pods");
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.rule.as_deref(), Some("privileged-pods-need-sre"));
    assert!(d.message.as_deref().unwrap().contains("the condition failed"), "{d:?}");
}

#[test]
fn agents_never_read_secrets() {
    let p = policy(EXAMPLES);
    for target in ["/api/v1/namespaces/default/secrets", "/api/v1/namespaces/default/secrets/db", "/api/v1/secrets?watch=true", "/api/v1/watch/namespaces/x/secrets"] {
        let d = decide(&p, &agent_of_alice(), "GET", target);
        assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, Some("agents-never-read-secrets")), "{target}");
        assert_eq!(d.message.as_deref(), Some("agents never read secrets"));
        // Both rules matched; the strictest won.
        assert_eq!(d.matched.len(), 2);
        assert_eq!(decide(&p, &alice(), "GET", target).action, Action::Allow, "{target}");
    }
}

#[test]
fn prod_deletes_need_approval() {
    let p = policy(EXAMPLES);
    let d = decide(&p, &alice(), "DELETE", "/api/v1/namespaces/prod-eu/pods/web-1");
    assert_eq!((d.action, d.rule.as_deref()), (Action::Review, Some("prod-deletes-need-approval")));
    assert_eq!(d.reviewers, ["sre", "leads"]);
    assert_eq!(d.masks, [std::sync::Arc::<str>::from("default")], "the matching allow rule's mask applies to a reviewed request too");
    let d = decide(&p, &alice(), "DELETE", "/apis/apps/v1/namespaces/prod-us/deployments");
    assert_eq!(d.action, Action::Review, "deletecollection too");
    assert_eq!(decide(&p, &alice(), "DELETE", "/api/v1/namespaces/staging/pods/web-1").action, Action::Allow);
    // A cluster-scoped delete never matches a namespace list.
    assert_eq!(decide(&p, &alice(), "DELETE", "/api/v1/nodes/prod-node").action, Action::Allow);
}

#[test]
fn exec_into_kube_system_is_denied_over_websocket_and_spdy() {
    let p = policy(EXAMPLES);
    let exec = "/api/v1/namespaces/kube-system/pods/coredns-1/exec?command=sh&stdin=true&tty=true";
    for method in ["GET", "POST"] {
        let d = decide(&p, &alice(), method, exec);
        assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, Some("no-exec-in-kube-system")), "{method}");
        let d = decide(&p, &alice(), method, "/api/v1/namespaces/kube-system/pods/coredns-1/attach");
        assert_eq!(d.action, Action::Deny, "attach over {method}");
    }
    assert_eq!(decide(&p, &alice(), "POST", "/api/v1/namespaces/default/pods/web/exec?command=sh").action, Action::Allow);
}

#[test]
fn exec_class_subresources_are_classified_by_subresource() {
    let cases = [
        ("GET", "/api/v1/namespaces/a/pods/p/exec", "exec"),
        ("POST", "/api/v1/namespaces/a/pods/p/exec", "exec"),
        ("GET", "/api/v1/namespaces/a/pods/p/attach", "attach"),
        ("POST", "/api/v1/namespaces/a/pods/p/portforward", "portforward"),
        ("GET", "/api/v1/namespaces/a/pods/p/proxy/metrics", "proxy"),
        ("DELETE", "/api/v1/namespaces/a/services/s/proxy", "proxy"),
        ("GET", "/api/v1/nodes/n/proxy/stats", "proxy"),
        ("GET", "/api/v1/proxy/namespaces/a/pods/p", "proxy"),
        ("POST", "/api/v1/namespaces/a/serviceaccounts/sa/token", "create"),
        ("GET", "/api/v1/namespaces/a/serviceaccounts/sa/token", "create"),
        ("GET", "/api/v1/namespaces/a/pods/p/log", "get"),
        ("GET", "/api/v1/namespaces/a/pods/p/EXEC", "get"),
        ("GET", "/version", "get"),
    ];
    for (m, path, verb) in cases {
        let info = request_info::parse(&m.parse().unwrap(), path, None).unwrap();
        assert_eq!(info.policy_verb(), verb, "{m} {path}");
    }
}

#[test]
fn strictest_wins_and_nothing_matching_denies() {
    let p = policy(
        r#"
rules:
  - {name: a, match: {resources: [pods]}, action: allow}
  - {name: r1, match: {resources: [pods]}, action: review, reviewers: [x], allowSelfApproval: true, mask: m1}
  - {name: r2, match: {verbs: [delete]}, action: review, reviewers: [y, x], mask: m2}
  - {name: d, match: {verbs: [delete], names: [keep-*]}, action: deny}
"#,
    );
    let bob = Who { subject: "bob", groups: vec![], agent: None, claims: json!({}) };
    let d = decide(&p, &bob, "GET", "/api/v1/namespaces/x/pods/web");
    assert_eq!((d.action, d.rule.as_deref(), d.masks.iter().map(|m| &**m).collect::<Vec<_>>(), d.allow_self_approval), (Action::Review, Some("r1"), vec!["m1"], true));
    let d = decide(&p, &bob, "DELETE", "/api/v1/namespaces/x/pods/web");
    assert_eq!((d.action, d.rule.as_deref()), (Action::Review, Some("r1")));
    assert_eq!(d.reviewers, ["x", "y"]);
    assert!(!d.allow_self_approval, "only if every matching review rule allows it");
    assert_eq!(d.masks.iter().map(|m| &**m).collect::<Vec<_>>(), ["m1", "m2"], "every matching rule's mask, in file order");
    let names: Vec<_> = d.matched.iter().map(|m| (&*m.rule, m.action)).collect();
    assert_eq!(names, [("a", Action::Allow), ("r1", Action::Review), ("r2", Action::Review)]);
    let d = decide(&p, &bob, "DELETE", "/api/v1/namespaces/x/pods/keep-me");
    assert_eq!((d.action, d.rule.as_deref(), d.masks.iter().map(|m| &**m).collect::<Vec<_>>()), (Action::Deny, Some("d"), Vec::<&str>::new()));
    let d = decide(&p, &bob, "GET", "/api/v1/namespaces/x/secrets/s");
    assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, None));
    assert!(d.matched.is_empty());
    let d = decide(&policy("rules: []"), &bob, "GET", "/version");
    assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, None));
}

#[test]
fn cel_errors_and_non_bools_deny() {
    let p = policy(
        r#"
rules:
  - {name: everyone, action: allow}
  - {name: errs, match: {resources: [pods]}, cel: "object.spec.nope == 1", action: allow}
  - {name: int, match: {resources: [configmaps]}, cel: "1 + 1", action: allow}
  - {name: reads-query, match: {verbs: [list]}, cel: "'bad' in request.query.labelSelector", action: deny, message: no bad selectors}
  - {name: claims, match: {resources: [nodes]}, cel: "user.claims.sub == 'alice' && user.agent == null && request.verb == 'get'", action: deny}
"#,
    );
    let d = decide_with(&p, &alice(), "PUT", "/api/v1/namespaces/x/pods/p", Some(&json!({"spec": {}})));
    assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, Some("errs")));
    assert!(d.message.as_deref().unwrap().starts_with("the condition failed"), "{d:?}");
    assert!(d.matched.iter().any(|m| &*m.rule == "errs" && m.cel_error.is_some()));
    let d = decide(&p, &alice(), "GET", "/api/v1/namespaces/x/configmaps/c");
    assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, Some("int")));
    assert!(d.message.as_deref().unwrap().contains("an int instead of a bool"), "{d:?}");
    assert_eq!(decide(&p, &alice(), "GET", "/api/v1/namespaces/x/secrets?labelSelector=bad").action, Action::Deny);
    assert_eq!(decide(&p, &alice(), "GET", "/api/v1/namespaces/x/secrets?labelSelector=good").action, Action::Allow);
    // A missing query key is a CEL error: deny too, which is the fail-closed side.
    let d = decide(&p, &alice(), "GET", "/api/v1/namespaces/x/secrets");
    assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, Some("reads-query")));
    assert_eq!(decide(&p, &alice(), "GET", "/api/v1/nodes/n").action, Action::Deny);
    // The rule does not match the agent, but it matches its engineer: an agent is its engineer
    // narrowed, so it is denied too.
    let d = decide(&p, &agent_of_alice(), "GET", "/api/v1/nodes/n");
    assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, Some("claims")));
}

#[test]
fn an_agent_is_never_allowed_more_than_its_engineer() {
    let p = policy(
        r#"
rules:
  - {name: team, match: {groups: [dev]}, action: allow}
  - {name: bot-deletes-in-locked, match: {agent: agent-bot, verbs: [delete], namespaces: [locked]}, action: allow}
  - {name: humans-never-delete-in-locked, match: {agent: absent, verbs: [delete], namespaces: [locked]}, action: deny}
  - {name: bot-nodes, match: {agent: agent-bot, resources: [nodes]}, action: allow}
  - {name: mask-for-agents, match: {agent: present, resources: [configmaps]}, action: allow, mask: agents}
  - {name: review-for-humans, match: {agent: absent, verbs: [create], resources: [configmaps]}, action: review, reviewers: [sre]}
"#,
    );
    // The agent's own allow rule cannot lift its engineer's deny.
    let d = decide(&p, &agent_of_alice(), "DELETE", "/api/v1/namespaces/locked/pods/p");
    assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, Some("humans-never-delete-in-locked")));
    // What only the agent is allowed and its engineer not at all (no rule for bob's groups):
    // refused, as "no rule allows it" for the engineer.
    let bob_agent = Who { subject: "bob", groups: vec![], agent: Some("agent-bot"), claims: json!({"sub": "bob"}) };
    let d = decide(&p, &bob_agent, "GET", "/api/v1/nodes/n");
    assert_eq!((d.action, d.rule), (Action::Deny, None));
    // Both allowed: allowed, with the masks of both passes.
    let d = decide(&p, &agent_of_alice(), "GET", "/api/v1/namespaces/x/configmaps/c");
    assert_eq!(d.action, Action::Allow);
    assert_eq!(d.masks.iter().map(|m| &**m).collect::<Vec<_>>(), ["agents"]);
    // The engineer's review applies to the agent too.
    let d = decide(&p, &agent_of_alice(), "POST", "/api/v1/namespaces/x/configmaps");
    assert_eq!((d.action, d.reviewers.clone()), (Action::Review, vec!["sre".to_string()]));
    // And the engineer alone is decided as before.
    assert_eq!(decide(&p, &alice(), "DELETE", "/api/v1/namespaces/locked/pods/p").action, Action::Deny);
    assert_eq!(decide(&p, &alice(), "GET", "/api/v1/namespaces/x/configmaps/c").masks.len(), 0);
}

#[test]
fn hostile_paths_do_not_change_decisions() {
    let p = policy(EXAMPLES);
    // Every spelling of an exec into kube-system that the parser accepts is still an exec.
    for target in [
        "/api/v1/namespaces/kube-system/pods/x/exec?command=ls",
        "/api/v1/namespaces/kube-system/pods/x/exec/",
        "/api/v1/namespaces/kube%2Dsystem/pods/x/exec",
        "/api/v1/namespaces/kube-system/pods/x/%65xec",
    ] {
        assert_eq!(decide(&p, &alice(), "POST", target).action, Action::Deny, "{target}");
    }
    // What could read differently elsewhere never reaches the policy: the parser refuses it.
    for target in [
        "/api/v1/namespaces/kube-system/pods/x%2Fexec",
        "/api/v1/namespaces/default/../kube-system/pods/x/exec",
        "/api/v1/namespaces/kube-system//pods/x/exec",
        "/api/v1/namespaces/kube-system/pods/x/./exec",
        "/api/v1/namespaces/kube-system/pods/x%252Fexec",
        "/api/v1/namespaces/kube-system/pods/x\\exec",
    ] {
        let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
        assert!(request_info::parse(&Method::POST, path, query).is_err(), "{target}");
    }
    // The apiserver is case-sensitive: `EXEC` is not exec (the apiserver answers 404), and it
    // does not ride on the exec deny into an allow of exec either.
    let only_exec = policy("rules: [{name: exec-ok, match: {verbs: [exec]}, action: allow}]");
    assert_eq!(decide(&only_exec, &alice(), "POST", "/api/v1/namespaces/kube-system/pods/x/EXEC").action, Action::Deny);
    assert_eq!(decide(&only_exec, &alice(), "POST", "/api/v1/namespaces/kube-system/pods/x/exec").action, Action::Allow);
    let d = decide(&p, &alice(), "GET", "/api/v1/namespaces/Kube-System/pods/x/exec");
    assert_eq!(d.rule.as_deref(), Some("dev-does-everything"), "namespaces are case-sensitive, as in the apiserver");
    // Secrets spelled otherwise are another (non-existent) resource to the apiserver.
    let d = decide(&p, &agent_of_alice(), "GET", "/api/v1/namespaces/x/Secrets");
    assert_eq!(d.rule.as_deref(), Some("dev-does-everything"));
}

#[test]
fn status_is_a_forbidden_kubectl_can_print() {
    let p = policy(EXAMPLES);
    let method = Method::POST;
    let path = "/api/v1/namespaces/kube-system/pods/web-1/exec";
    let info = request_info::parse(&method, path, None).unwrap();
    let req = Request { info: &info, method: &method, path, query: None, object: None };
    let who = alice();
    let user = User { subject: who.subject, username: who.subject, groups: &who.groups, agent: None, claims: &who.claims };
    let s = p.decide(&user, &req).status(&req);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        "hoop-kube policy: exec pods/exec \"web-1\" in namespace \"kube-system\" is denied by rule \"no-exec-in-kube-system\": nobody execs into kube-system; ask your platform team to change the policy"
    );
    assert_eq!(s.details.causes[0].message, "no-exec-in-kube-system");
    assert_eq!(s.details.causes[0].reason, denial::CAUSE_REASON);
    assert_eq!(s.code_cause(), Some("PolicyDenied"));
    let empty = policy("rules: []");
    let s = empty.decide(&user, &req).status(&req);
    assert!(s.message.contains("is not allowed by any rule"), "{}", s.message);
    assert_eq!(s.code_cause(), Some("NoRuleAllows"));
    let info = request_info::parse(&Method::DELETE, "/apis/apps/v1/namespaces/prod/deployments/web", None).unwrap();
    let req = Request { info: &info, method: &Method::DELETE, path: "/apis/apps/v1/namespaces/prod/deployments/web", query: None, object: None };
    assert_eq!(denial::describe(&req), "delete deployments.apps \"web\" in namespace \"prod\"");
}

#[test]
fn rule_errors_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("rules: [{name: a, action: allow}, {name: a, action: deny}]", "rules[1].name", "already the name of rules[0]"),
        ("rules: [{name: Bad_Name, action: allow}]", "rules[0].name", "a-z, 0-9"),
        ("rules: [{name: r, action: review}]", "rules[0].reviewers", "required with action review"),
        ("rules: [{name: r, action: review, reviewers: []}]", "rules[0].reviewers", "empty"),
        ("rules: [{name: r, action: allow, reviewers: [sre]}]", "rules[0].reviewers", "only applies with action review"),
        ("rules: [{name: r, action: allow, allowSelfApproval: true}]", "rules[0].allowSelfApproval", "only applies"),
        ("rules: [{name: r, action: deny, mask: default}]", "rules[0].mask", "allow or review"),
        ("rules: [{name: r, match: {namespaces: [\"prod-[a-z]\"]}, action: deny}]", "rules[0].match.namespaces[0]", "reserved"),
        ("rules: [{name: r, match: {subjects: [\"\"]}, action: deny}]", "rules[0].match.subjects[0]", "is empty"),
        ("rules: [{name: r, match: {verbs: [get, delet]}, action: deny}]", "rules[0].match.verbs[1]", "not a verb"),
        ("rules: [{name: r, match: {verbs: []}, action: deny}]", "rules[0].match.verbs", "empty list"),
        ("rules: [{name: r, match: {resources: [pods], nonResourceURLs: [/version]}, action: deny}]", "rules[0].match.nonResourceURLs", "cannot be combined"),
        ("rules: [{name: ok, action: allow}, {name: privileged-pods, cel: \"object.spec.(\", action: deny}]", "rules[1].cel", "does not compile"),
    ];
    for (yaml, key, msg) in cases {
        let e = compile_err(yaml);
        assert_eq!(e.key(), *key, "{yaml}: {e}");
        assert!(e.message().contains(msg), "{yaml}: {e}");
    }
    let e = compile_err("rules: [{name: ok, action: allow}, {name: privileged-pods, cel: \"object.spec.(\", action: deny}]");
    assert!(e.message().starts_with("rule \"privileged-pods\": does not compile"), "{e}");
}

#[test]
fn the_yaml_shape_is_strict() {
    let dir = tempfile::tempdir().unwrap();
    let check = |body: &str| -> String {
        let path = dir.path().join("relay.yaml");
        std::fs::write(&path, body).unwrap();
        load_policy_section(&path).unwrap_err().to_string()
    };
    let e = check("listen: 1.2.3.4:1\npolicy:\n  rules:\n    - name: a\n      action: allow\n      reviewer: [x]\n");
    assert!(e.contains("policy.rules[0]: unknown key") || e.contains("policy.rules[0].reviewer"), "{e}");
    let e = check("policy:\n  rules:\n    - name: a\n      match: {verb: [get]}\n      action: allow\n");
    assert!(e.contains("policy.rules[0].match") && e.contains("unknown key"), "{e}");
    let e = check("policy:\n  rules:\n    - name: a\n      name: b\n      action: allow\n");
    assert!(e.contains("more than once") || e.contains("duplicate"), "{e}");
    let e = check("policy:\n  rules:\n    - name: a\n      match: {verbs: get}\n      action: allow\n");
    assert!(e.contains("policy.rules[0].match.verbs"), "{e}");
    let e = check("policy:\n  rules:\n    - name: a\n      action: permit\n");
    assert!(e.contains("policy.rules[0].action"), "{e}");
    let e = check("policy:\n  rules:\n    - {name: bad, cel: \"1 +\", action: deny}\n");
    assert!(e.contains("policy.rules[0].cel: rule \"bad\": does not compile"), "{e}");
    let path = dir.path().join("relay.yaml");
    std::fs::write(&path, "anything: [else]\n").unwrap();
    assert!(load_policy_section(&path).unwrap().is_none());
}

#[test]
fn the_policy_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Policy>();
}
