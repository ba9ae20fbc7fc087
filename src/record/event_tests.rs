use super::*;
use crate::kube::request_info;

/// The Event a complete, approved `kubectl delete` by an agent must export: JSON names and
/// order of `audit.k8s.io/v1` `types.go`, MicroTime stamps, string annotations.
const GOLDEN: &str = r#"{
  "kind": "Event",
  "apiVersion": "audit.k8s.io/v1",
  "level": "Metadata",
  "auditID": "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b",
  "stage": "ResponseComplete",
  "requestURI": "/apis/apps/v1/namespaces/prod/deployments/web?dryRun=All",
  "verb": "delete",
  "user": {
    "username": "alice@example.com",
    "uid": "CgVhbGljZRIEdGVzdA",
    "groups": ["dev", "sre"],
    "extra": {"hoop-kube.dev/agent": ["claude"]}
  },
  "sourceIPs": ["10.0.0.7"],
  "userAgent": "kubectl.1.32/v1.32.5 (linux/amd64) kubernetes/9894294",
  "objectRef": {
    "resource": "deployments",
    "namespace": "prod",
    "name": "web",
    "apiGroup": "apps",
    "apiVersion": "v1"
  },
  "responseStatus": {"metadata": {}, "code": 200},
  "requestReceivedTimestamp": "2024-06-01T12:00:00.123456Z",
  "stageTimestamp": "2024-06-01T12:00:00.456789Z",
  "annotations": {
    "hoop-kube.dev/agent": "claude",
    "hoop-kube.dev/bytes-in": "0",
    "hoop-kube.dev/bytes-out": "1532",
    "hoop-kube.dev/client-cert-serial": "0a1b2c",
    "hoop-kube.dev/decision": "approved",
    "hoop-kube.dev/kubectl-command": "kubectl delete",
    "hoop-kube.dev/kubectl-session": "6f1d2a3b-0000-4000-8000-000000000001",
    "hoop-kube.dev/latency-us": "333333",
    "hoop-kube.dev/masked": "2",
    "hoop-kube.dev/review": "r-abcdefghij",
    "hoop-kube.dev/rule": "prod-deletes"
  }
}"#;

fn approved_delete() -> Record {
    let info = request_info::parse(
        &http::Method::DELETE,
        "/apis/apps/v1/namespaces/prod/deployments/web",
        Some("dryRun=All"),
    )
    .unwrap();
    let mut r = Record::from_request(&info, "DELETE", Some("dryRun=All"), 1_717_243_200_123_456);
    r.id = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b".into();
    r.completed = Some(1_717_243_200_456_789);
    r.latency_us = Some(333_333);
    r.subject = "CgVhbGljZRIEdGVzdA".into();
    r.username = "alice@example.com".into();
    r.groups = vec!["dev".into(), "sre".into()];
    r.agent = Some("claude".into());
    r.client_cert_serial = Some("0a1b2c".into());
    r.source_ips = vec!["10.0.0.7".into()];
    r.user_agent = Some("kubectl.1.32/v1.32.5 (linux/amd64) kubernetes/9894294".into());
    r.kubectl_command = Some("kubectl delete".into());
    r.kubectl_session = Some("6f1d2a3b-0000-4000-8000-000000000001".into());
    r.decision = Decision::Approved;
    r.rule = Some("prod-deletes".into());
    r.review = Some("r-abcdefghij".into());
    r.code = Some(200);
    r.bytes_out = 1532;
    r.masked = 2;
    r
}

#[test]
fn event_matches_the_golden_document_byte_for_byte() {
    let got = serde_json::to_string(&approved_delete().to_event()).unwrap();
    // serde_json keeps object order here (`preserve_order`), so this also checks field order.
    let want: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    assert_eq!(got, serde_json::to_string(&want).unwrap());
    let back: Event = serde_json::from_str(GOLDEN).unwrap();
    assert_eq!(back, approved_delete().to_event());
}

#[test]
fn stages_follow_the_record() {
    let mut r = approved_delete();
    r.completed = None;
    r.code = None;
    let ev = r.to_event();
    assert_eq!(ev.stage, "RequestReceived");
    assert!(ev.response_status.is_none());
    assert_eq!(ev.stage_timestamp, ev.request_received_timestamp);
    assert!(
        !ev.annotations.contains_key("hoop-kube.dev/bytes-out"),
        "sizes only once complete"
    );

    r.started = Some(1_717_243_200_200_000);
    r.code = Some(101);
    let ev = r.to_event();
    assert_eq!(
        (ev.stage.as_str(), ev.stage_timestamp.as_str()),
        ("ResponseStarted", "2024-06-01T12:00:00.200000Z")
    );
    assert_eq!(ev.response_status.map(|s| s.code), Some(101));
    assert_eq!(r.event_at(Stage::RequestReceived).stage, "RequestReceived");
}

#[test]
fn refusals_non_resource_requests_and_absent_fields() {
    let info = request_info::parse(&http::Method::GET, "/version", None).unwrap();
    let mut r = Record::from_request(&info, "GET", Some(""), 1_000_000);
    assert!(super::super::id::is_id(&r.id));
    assert_eq!(
        (r.verb.as_str(), r.query.as_deref(), r.decision),
        ("get", None, Decision::Refused)
    );
    r.code = Some(403);
    r.completed = Some(1_000_001);
    let v = serde_json::to_value(r.to_event()).unwrap();
    assert!(
        v.get("objectRef").is_none(),
        "no objectRef for a non-resource request"
    );
    assert!(v.get("sourceIPs").is_none() && v.get("userAgent").is_none());
    assert_eq!(
        v["responseStatus"],
        serde_json::json!({"metadata": {}, "status": "Failure", "code": 403})
    );
    assert_eq!(v["requestURI"], "/version");
    assert_eq!(v["user"], serde_json::json!({}));
    assert_eq!(v["annotations"]["hoop-kube.dev/decision"], "refused");
    assert_eq!(v["stageTimestamp"], "1970-01-01T00:00:01.000001Z");
}

#[test]
fn long_running_requests() {
    let lr = |m: &http::Method, p: &str, q: Option<&str>| {
        let info = request_info::parse(m, p, q).unwrap();
        Record::from_request(&info, m.as_str(), q, 0).is_long_running()
    };
    assert!(lr(
        &http::Method::GET,
        "/api/v1/namespaces/d/pods",
        Some("watch=true")
    ));
    assert!(lr(
        &http::Method::POST,
        "/api/v1/namespaces/d/pods/p/exec",
        Some("command=sh")
    ));
    assert!(lr(
        &http::Method::GET,
        "/api/v1/namespaces/d/pods/p/portforward",
        None
    ));
    assert!(!lr(&http::Method::GET, "/api/v1/namespaces/d/pods", None));
}

#[test]
fn record_json_round_trips_and_tolerates_newer_fields() {
    let r = approved_delete();
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        json.contains("\"received\":\"2024-06-01T12:00:00.123456Z\""),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["fromANewerRelay"] = serde_json::json!(1);
    assert_eq!(
        serde_json::from_value::<Record>(v).unwrap(),
        r,
        "a CLI reads a newer relay's records"
    );
    for d in Decision::ALL {
        assert_eq!(Decision::parse(d.as_str()), Some(d));
    }
    assert_eq!(Decision::parse("Allow"), None);
}

#[test]
fn times_are_micro_times() {
    assert_eq!(micro_time(0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(
        parse_time("2024-06-01T14:00:00.5+02:00"),
        Some(1_717_243_200_500_000)
    );
    assert_eq!(parse_time("yesterday"), None);
    assert!(now_micros() > 1_700_000_000_000_000);
}
