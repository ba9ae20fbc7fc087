//! Every limit at its boundary, with synthetic time.

use std::time::Duration;

use http::Method;

use super::*;
use crate::kube::request_info::parse;

fn rule() -> LimitRule {
    LimitRule {
        index: 0,
        agent: Glob::new("*").unwrap(),
        agent_pattern: "*".into(),
        requests_per_second: None,
        burst: 1,
        max_mutating: None,
        max_deletes: None,
        namespaces: None,
    }
}

fn req(method: Method, path: &str) -> RequestInfo {
    parse(&method, path, None).unwrap()
}

fn get_pods() -> RequestInfo {
    req(Method::GET, "/api/v1/namespaces/default/pods")
}

#[test]
fn first_matching_rule_applies() {
    let mk = |i: usize, glob: &str, max: u64| LimitRule { index: i, agent: Glob::new(glob).unwrap(), agent_pattern: glob.into(), max_deletes: Some(max), ..rule() };
    let limiter = Limiter::new(vec![mk(0, "claude-*", 1), mk(1, "*", 5), mk(2, "bot", 9)]);
    assert_eq!(limiter.rule_for("claude-code").map(|r| r.index), Some(0));
    assert_eq!(limiter.rule_for("bot").map(|r| r.index), Some(1));
    assert_eq!(Limiter::new(vec![mk(0, "claude-*", 1)]).rule_for("bot"), None);
    assert_eq!(Limiter::default().rule_for("bot"), None);
    assert_eq!(limiter.rules().len(), 3);
}

#[test]
fn bucket_allows_burst_then_refills() {
    let r = LimitRule { requests_per_second: Some(2.0), burst: 3, ..rule() };
    let mut st = RateState::default();
    let t0 = Instant::now();
    for _ in 0..3 {
        precheck(&r, &mut st, &get_pods(), t0).unwrap();
    }
    let refused = precheck(&r, &mut st, &get_pods(), t0).unwrap_err();
    assert_eq!((refused.limit, refused.code(), refused.retry_after_seconds), (Limit::RequestsPerSecond, 429, Some(1)));
    // Half a second at 2/s is one token, no more.
    let t1 = t0 + Duration::from_millis(500);
    precheck(&r, &mut st, &get_pods(), t1).unwrap();
    assert!(precheck(&r, &mut st, &get_pods(), t1).is_err());
    // Just short of the next token.
    assert!(precheck(&r, &mut st, &get_pods(), t1 + Duration::from_millis(499)).is_err());
    precheck(&r, &mut st, &get_pods(), t1 + Duration::from_millis(600)).unwrap();
    // A long idle refills to the burst, never beyond.
    let t2 = t1 + Duration::from_secs(3600);
    for _ in 0..3 {
        precheck(&r, &mut st, &get_pods(), t2).unwrap();
    }
    assert!(precheck(&r, &mut st, &get_pods(), t2).is_err());
    // A `now` from the past does not refill or panic.
    assert!(precheck(&r, &mut st, &get_pods(), t0).is_err());
}

#[test]
fn slow_rates_give_whole_second_retry_after() {
    let r = LimitRule { requests_per_second: Some(0.1), burst: 1, ..rule() };
    let mut st = RateState::default();
    let t0 = Instant::now();
    precheck(&r, &mut st, &get_pods(), t0).unwrap();
    let e = precheck(&r, &mut st, &get_pods(), t0).unwrap_err();
    assert_eq!(e.retry_after_seconds, Some(10));
    let e = precheck(&r, &mut st, &get_pods(), t0 + Duration::from_millis(9_100)).unwrap_err();
    assert_eq!(e.retry_after_seconds, Some(1), "ceil, never 0");
    precheck(&r, &mut st, &get_pods(), t0 + Duration::from_secs(11)).unwrap();
    assert_eq!(wait_seconds(f64::NAN), 1);
    assert_eq!(wait_seconds(1e30), u32::MAX);
    assert_eq!(wait_seconds(0.0001), 1);
}

#[test]
fn every_request_spends_a_token_but_namespace_refusals_do_not() {
    let r = LimitRule { requests_per_second: Some(1.0), burst: 1, namespaces: Some((vec![Glob::new("default").unwrap()], vec!["default".into()])), ..rule() };
    let mut st = RateState::default();
    let t0 = Instant::now();
    let prod = req(Method::GET, "/api/v1/namespaces/prod/pods");
    assert_eq!(precheck(&r, &mut st, &prod, t0).unwrap_err().limit, Limit::Namespaces);
    precheck(&r, &mut st, &req(Method::GET, "/version"), t0).unwrap();
    assert_eq!(precheck(&r, &mut st, &get_pods(), t0).unwrap_err().limit, Limit::RequestsPerSecond);
}

#[test]
fn namespaces_are_globs_and_cluster_scope_is_refused() {
    let pats = ["default", "team-*"];
    let globs = pats.iter().map(|p| Glob::new(p).unwrap()).collect();
    let r = LimitRule { namespaces: Some((globs, pats.iter().map(|p| p.to_string()).collect())), ..rule() };
    let mut st = RateState::default();
    let now = Instant::now();
    for ok in [
        req(Method::GET, "/api/v1/namespaces/default/pods"),
        req(Method::DELETE, "/apis/apps/v1/namespaces/team-a/deployments/web"),
        req(Method::GET, "/api/v1/namespaces/team-b/pods/p/log"),
        req(Method::GET, "/api/v1/namespaces/team-b"),
        // Discovery and other non-resource paths pass.
        req(Method::GET, "/api"),
        req(Method::GET, "/apis/apps/v1"),
        req(Method::GET, "/version"),
        req(Method::GET, "/openapi/v3"),
    ] {
        assert_eq!(precheck(&r, &mut st, &ok, now), Ok(()), "{}", ok.path);
    }
    for bad in [
        req(Method::GET, "/api/v1/namespaces/prod/pods"),
        req(Method::GET, "/api/v1/namespaces/team/pods"),
        req(Method::GET, "/api/v1/namespaces/Default/pods"),
        req(Method::GET, "/api/v1/pods"),
        req(Method::GET, "/api/v1/nodes"),
        req(Method::GET, "/api/v1/namespaces"),
        req(Method::POST, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
        req(Method::GET, "/apis/apps/v1/deployments"),
    ] {
        let e = precheck(&r, &mut st, &bad, now).unwrap_err();
        assert_eq!((e.limit, e.code(), e.value.as_str()), (Limit::Namespaces, 403, "default, team-*"), "{}", bad.path);
    }
    // Without the key, every namespace and the cluster scope pass.
    for any in [req(Method::GET, "/api/v1/nodes"), req(Method::GET, "/api/v1/namespaces/prod/pods")] {
        assert_eq!(precheck(&rule(), &mut st, &any, now), Ok(()));
    }
}

#[test]
fn classification_follows_the_policy_verb() {
    let cases = [
        (Method::POST, "/api/v1/namespaces/default/pods", Some(Charge::Mutating)),
        (Method::PUT, "/api/v1/namespaces/default/pods/p", Some(Charge::Mutating)),
        (Method::PATCH, "/api/v1/namespaces/default/pods/p", Some(Charge::Mutating)),
        (Method::PATCH, "/api/v1/namespaces/default/pods/p/status", Some(Charge::Mutating)),
        (Method::DELETE, "/api/v1/namespaces/default/pods/p", Some(Charge::Delete)),
        (Method::DELETE, "/api/v1/namespaces/default/pods", Some(Charge::Delete)),
        (Method::POST, "/api/v1/namespaces/default/serviceaccounts/sa/token", Some(Charge::Mutating)),
        (Method::POST, "/api/v1/namespaces/default/pods/p/exec", None),
        (Method::GET, "/api/v1/namespaces/default/pods/p/exec", None),
        (Method::POST, "/api/v1/namespaces/default/pods/p/portforward", None),
        (Method::GET, "/api/v1/namespaces/default/pods", None),
        (Method::GET, "/api/v1/namespaces/default/pods/p/log", None),
        (Method::POST, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", None),
        (Method::POST, "/apis/authentication.k8s.io/v1/selfsubjectreviews", None),
        (Method::POST, "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews", None),
        (Method::POST, "/apis/rbac.authorization.k8s.io/v1/clusterroles", Some(Charge::Mutating)),
        (Method::DELETE, "/version", None),
    ];
    for (m, path, want) in cases {
        assert_eq!(classify(&req(m.clone(), path)), want, "{m} {path}");
    }
}

#[test]
fn mutating_budget_boundary() {
    let r = LimitRule { max_mutating: Some(3), ..rule() };
    let create = req(Method::POST, "/api/v1/namespaces/default/configmaps");
    let mut c = Counters::default();
    for _ in 0..3 {
        let charge = charge_check(&r, &c, &create).unwrap().unwrap();
        c = c.after(charge);
    }
    assert_eq!(c, Counters { requests: 0, mutating: 3, deletes: 0 });
    let e = charge_check(&r, &c, &create).unwrap_err();
    assert_eq!((e.limit, e.code(), e.value.as_str(), e.rule_name().as_str()), (Limit::MaxMutating, 403, "3", "agents.limits[0].max_mutating"));
    // A delete is mutating too; reads still pass.
    assert_eq!(charge_check(&r, &c, &req(Method::DELETE, "/api/v1/namespaces/default/configmaps/x")).unwrap_err().limit, Limit::MaxMutating);
    assert_eq!(charge_check(&r, &c, &get_pods()), Ok(None));
}

#[test]
fn delete_budget_boundary() {
    let r = LimitRule { max_deletes: Some(2), max_mutating: Some(10), ..rule() };
    let delete = req(Method::DELETE, "/api/v1/namespaces/default/pods/p");
    let mut c = Counters::default();
    for _ in 0..2 {
        c = c.after(charge_check(&r, &c, &delete).unwrap().unwrap());
    }
    assert_eq!((c.mutating, c.deletes), (2, 2));
    let e = charge_check(&r, &c, &delete).unwrap_err();
    assert_eq!((e.limit, e.value.as_str()), (Limit::MaxDeletes, "2"));
    assert_eq!(charge_check(&r, &c, &req(Method::DELETE, "/api/v1/namespaces/default/pods")).unwrap_err().limit, Limit::MaxDeletes);
    // Other writes still have their budget.
    assert_eq!(charge_check(&r, &c, &req(Method::POST, "/api/v1/namespaces/default/pods")), Ok(Some(Charge::Mutating)));
    // Both spent: the delete names max_deletes.
    let spent = Counters { requests: 0, mutating: 10, deletes: 2 };
    assert_eq!(charge_check(&r, &spent, &delete).unwrap_err().limit, Limit::MaxDeletes);
    // A zero budget refuses the first.
    let none = LimitRule { max_deletes: Some(0), ..rule() };
    assert_eq!(charge_check(&none, &Counters::default(), &delete).unwrap_err().limit, Limit::MaxDeletes);
    // No budget configured: counted, never refused.
    assert_eq!(charge_check(&rule(), &Counters { requests: 0, mutating: u64::MAX, deletes: u64::MAX }, &delete), Ok(Some(Charge::Delete)));
    assert_eq!(spent.after(Charge::Delete).after(Charge::Mutating), Counters { requests: 0, mutating: 12, deletes: 3 });
}

fn cause(s: &Status, reason: &str) -> Option<(String, String)> {
    s.details.causes.iter().find(|c| c.reason == reason).map(|c| (c.field.clone(), c.message.clone()))
}

#[test]
fn rate_refusal_is_a_429_with_retry_after() {
    let r = LimitRule { requests_per_second: Some(10.0), burst: 10, ..rule() };
    let mut st = RateState::default();
    let now = Instant::now();
    let e = (0..11).map(|_| precheck(&r, &mut st, &get_pods(), now)).find_map(Result::err).unwrap();
    let e = e.session("bot", "0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8b");
    let s = e.status();
    assert_eq!((s.code, s.reason.as_str(), s.details.retry_after_seconds), (429, "TooManyRequests", Some(1)));
    assert_eq!(cause(&s, CAUSE_REASON), Some(("limit".into(), "requests_per_second".into())));
    assert_eq!(cause(&s, "HoopKubeCode"), Some(("code".into(), "RateLimited".into())));
    for part in ["requests_per_second 10", "\"bot\"", "0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8b", "retry in 1 s", "agents.limits[0].requests_per_second", "list pods in namespace \"default\""] {
        assert!(s.message.contains(part), "{part}: {}", s.message);
    }
    assert!(!s.message.contains('\n'));
    assert_eq!(s.to_value()["details"]["retryAfterSeconds"], 1);
    let odd = LimitRule { requests_per_second: Some(0.5), burst: 4, ..rule() };
    let mut st = RateState::default();
    let e = (0..5).map(|_| precheck(&odd, &mut st, &get_pods(), now)).find_map(Result::err).unwrap();
    assert_eq!((e.value.as_str(), e.retry_after_seconds), ("0.5 (burst 4)", Some(2)));
}

#[test]
fn forbidden_refusals_name_limit_value_session_and_remedy() {
    let ns = LimitRule { index: 2, namespaces: Some((vec![Glob::new("team-*").unwrap()], vec!["team-*".into()])), ..rule() };
    let del = LimitRule { index: 1, max_deletes: Some(5), max_mutating: Some(100), ..rule() };
    let spent = Counters { requests: 9, mutating: 100, deletes: 5 };
    let mut st = RateState::default();
    let cases = [
        (precheck(&ns, &mut st, &req(Method::GET, "/api/v1/nodes"), Instant::now()).unwrap_err(), "namespaces", "NamespaceNotAllowed", "team-*"),
        (charge_check(&del, &spent, &req(Method::DELETE, "/api/v1/namespaces/a/pods/web")).unwrap_err(), "max_deletes", "DeleteLimit", "5 deletes"),
        (charge_check(&del, &spent, &req(Method::POST, "/api/v1/namespaces/a/pods")).unwrap_err(), "max_mutating", "MutatingLimit", "100 mutating"),
    ];
    for (e, limit, code, value) in cases {
        let s = e.clone().session("bot", "sid-1").status();
        assert_eq!((s.code, s.reason.as_str(), s.details.retry_after_seconds), (403, "Forbidden", None), "{limit}");
        assert_eq!(e.limit_name(), limit);
        assert_eq!(cause(&s, CAUSE_REASON), Some(("limit".into(), limit.into())));
        assert_eq!(cause(&s, "HoopKubeCode"), Some(("code".into(), code.into())));
        assert_eq!(s.code_cause(), Some(code));
        for part in [limit, value, "\"bot\"", "sid-1", &e.rule_name()] {
            assert!(s.message.contains(part), "{part}: {}", s.message);
        }
        assert!(!s.message.contains('\n'));
        // Without a session the message still reads.
        assert!(e.status().message.contains("this agent session"));
    }
    let s = cases_message(&del);
    assert!(s.contains("delete pods \"web\" in namespace \"a\""), "{s}");
}

fn cases_message(rule: &LimitRule) -> String {
    let spent = Counters { requests: 0, mutating: 0, deletes: 5 };
    charge_check(rule, &spent, &req(Method::DELETE, "/api/v1/namespaces/a/pods/web")).unwrap_err().status().message
}
