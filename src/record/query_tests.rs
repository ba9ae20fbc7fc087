use super::*;

const NOW: i64 = 1_717_243_200_000_000;
const ID: &str = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";

fn get(path: &str, query: Option<&str>) -> Result<Option<Route>, QueryError> {
    route(&http::Method::GET, path, query, NOW)
}

fn list(query: &str) -> Result<RecordFilter, QueryError> {
    match get(RECORDS_PATH, Some(query))? {
        Some(Route::List { filter, .. }) => Ok(filter),
        other => panic!("{other:?}"),
    }
}

#[test]
fn routes() {
    assert_eq!(get("/api/v1/pods", None), Ok(None));
    assert_eq!(get("/hoop-kube/v1/recordsX", None), Ok(None));
    assert_eq!(
        get("/hoop-kube/v1/records", None),
        Ok(Some(Route::List {
            filter: RecordFilter::default(),
            format: ListFormat::Records
        }))
    );
    assert!(matches!(
        get("/hoop-kube/v1/records/", Some("format=audit")),
        Ok(Some(Route::List {
            format: ListFormat::Audit,
            ..
        }))
    ));
    assert_eq!(
        get(&format!("{RECORDS_PATH}/{ID}"), None),
        Ok(Some(Route::Get { id: ID.into() }))
    );
    assert_eq!(
        get(&format!("{SESSIONS_PATH}/{ID}"), Some("format=asciicast")),
        Ok(Some(Route::Session {
            id: ID.into(),
            format: SessionFormat::Asciicast
        }))
    );
    assert_eq!(
        get(&format!("{SESSIONS_PATH}/{ID}"), None),
        Ok(Some(Route::Session {
            id: ID.into(),
            format: SessionFormat::Json
        }))
    );
    assert_eq!(get(SESSIONS_PATH, None), Err(QueryError::NotFound));
    assert_eq!(
        get(&format!("{RECORDS_PATH}/{ID}/x"), None),
        Err(QueryError::NotFound)
    );
    assert_eq!(
        get(&format!("{RECORDS_PATH}/..%2F"), None),
        Err(QueryError::BadId)
    );
    assert_eq!(
        get(&format!("{RECORDS_PATH}/{}", ID.to_uppercase()), None),
        Err(QueryError::BadId)
    );
    assert_eq!(
        route(
            &http::Method::DELETE,
            &format!("{RECORDS_PATH}/{ID}"),
            None,
            NOW
        ),
        Err(QueryError::MethodNotAllowed)
    );
    assert_eq!(QueryError::MethodNotAllowed.code(), 405);
    assert_eq!(QueryError::NotFound.code(), 404);
    assert_eq!(QueryError::BadId.code(), 400);
}

#[test]
fn list_parameters() {
    let f = list("user=alice%40example.com&agent=bot&verb=delete&resource=secrets&namespace=prod&decision=deny&kubectlSession=ks-1&limit=5").unwrap();
    assert_eq!(
        f,
        RecordFilter {
            user: Some("alice@example.com".into()),
            agent: Some("bot".into()),
            verb: Some("delete".into()),
            resource: Some("secrets".into()),
            namespace: Some("prod".into()),
            decision: Some(Decision::Deny),
            kubectl_session: Some("ks-1".into()),
            limit: 5,
            ..RecordFilter::default()
        }
    );
    let f = list("since=15m&until=2024-06-01T12:00:00Z").unwrap();
    assert_eq!(
        (f.since, f.until),
        (Some(NOW - 15 * 60 * 1_000_000), Some(NOW))
    );
    assert_eq!(
        list("since=1h30m").unwrap().since,
        Some(NOW - 5400 * 1_000_000)
    );
    assert_eq!(
        list("since=2024-06-01T11:00:00.5%2B01:00").unwrap().since,
        Some(NOW - 7_199_500_000)
    );
}

#[test]
fn hostile_parameters_are_refused() {
    let e = |q: &str| list(q).unwrap_err();
    assert_eq!(
        e("users=alice"),
        QueryError::UnknownParameter("users".into())
    );
    assert_eq!(e("user=a&user=b"), QueryError::Duplicate("user".into()));
    assert!(matches!(e("user="), QueryError::BadValue { .. }));
    assert!(matches!(
        e(&format!("user={}", "a".repeat(MAX_VALUE_LEN + 1))),
        QueryError::BadValue { .. }
    ));
    assert!(matches!(e("user=a%0Ab"), QueryError::BadValue { .. }));
    for bad in [
        "since=yesterday",
        "since=15",
        "since=15x",
        "since=m",
        "since=-5m",
        "since=99999999999999999999s",
        "since=600w",
    ] {
        assert_eq!(
            e(bad),
            QueryError::BadTime {
                param: "since".into()
            },
            "{bad}"
        );
    }
    assert_eq!(e("since=1h&until=2h"), QueryError::EmptyRange);
    for bad in ["limit=0", "limit=1001", "limit=-1", "limit=+5", "limit=ten"] {
        assert!(matches!(e(bad), QueryError::BadValue { .. }), "{bad}");
    }
    assert!(matches!(e("decision=Allow"), QueryError::BadValue { .. }));
    assert!(matches!(e("format=yaml"), QueryError::BadValue { .. }));
    assert!(matches!(e("watch=yes"), QueryError::BadValue { .. }));
    assert_eq!(
        get(&format!("{RECORDS_PATH}/{ID}"), Some("user=a")),
        Err(QueryError::NotApplicable("user".into()))
    );
    assert_eq!(
        get(&format!("{RECORDS_PATH}/{ID}"), Some("x=1")),
        Err(QueryError::UnknownParameter("x".into()))
    );
    assert_eq!(
        get(&format!("{SESSIONS_PATH}/{ID}"), Some("limit=1")),
        Err(QueryError::NotApplicable("limit".into()))
    );
    assert!(matches!(
        get(&format!("{SESSIONS_PATH}/{ID}"), Some("format=cast")),
        Err(QueryError::BadValue { .. })
    ));
}

#[test]
fn watch() {
    match get(RECORDS_PATH, Some("watch=1&user=alice&since=5m")).unwrap() {
        Some(Route::Watch { filter }) => {
            assert_eq!(
                (filter.user.as_deref(), filter.since),
                (Some("alice"), Some(NOW - 300_000_000))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        get(RECORDS_PATH, Some("watch=false")),
        Ok(Some(Route::List { .. }))
    ));
    for p in ["until=1h", "limit=3", "format=audit"] {
        let name = p.split('=').next().unwrap();
        assert_eq!(
            get(RECORDS_PATH, Some(&format!("watch=true&{p}"))),
            Err(QueryError::NotApplicable(name.into()))
        );
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration_us("30s"), Some(30_000_000));
    assert_eq!(parse_duration_us("3d"), Some(3 * 86_400_000_000));
    assert_eq!(parse_duration_us("1w2d"), Some(9 * 86_400_000_000));
    assert_eq!(parse_duration_us("0s"), Some(0));
    assert_eq!(parse_duration_us("5"), None);
    assert_eq!(parse_duration_us("h"), None);
    assert_eq!(parse_duration_us("5y"), None);
    assert_eq!(parse_duration_us(""), None);
}

#[test]
fn live_filter_matches_like_the_store() {
    let r = Record {
        received: NOW,
        subject: "sub".into(),
        username: "alice".into(),
        agent: Some("bot".into()),
        verb: "get".into(),
        resource: "pods".into(),
        namespace: "prod".into(),
        decision: Decision::Allow,
        kubectl_session: Some("ks".into()),
        ..Record::default()
    };
    let ok = |q: &str| list(q).unwrap().matches(&r);
    assert!(ok(""));
    assert!(ok("user=alice") && ok("user=sub") && !ok("user=bob"));
    assert!(ok("agent=bot") && !ok("agent=other"));
    assert!(ok(
        "verb=get&resource=pods&namespace=prod&decision=allow&kubectlSession=ks"
    ));
    assert!(!ok("decision=deny") && !ok("namespace=dev") && !ok("kubectlSession=x"));
    assert!(ok("since=2024-06-01T12:00:00Z") && !ok("until=2024-06-01T12:00:00Z"));
}

#[test]
fn wire_types() {
    let line = WatchLine::Missed { count: 3 }.to_line();
    assert_eq!(line, "{\"type\":\"MISSED\",\"count\":3}\n");
    let r = Record {
        id: ID.into(),
        ..Record::default()
    };
    let line = WatchLine::Record {
        stage: Stage::ResponseComplete,
        record: Box::new(r.clone()),
    }
    .to_line();
    assert!(
        line.starts_with("{\"type\":\"RECORD\",\"stage\":\"ResponseComplete\",\"record\":{\"id\":"),
        "{line}"
    );
    assert_eq!(
        serde_json::from_str::<WatchLine>(&line).unwrap(),
        WatchLine::Record {
            stage: Stage::ResponseComplete,
            record: Box::new(r.clone())
        }
    );
    let list = serde_json::to_value(RecordList::new(vec![r])).unwrap();
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("RecordList"), Some("hoop-kube.dev/v1"))
    );
}
