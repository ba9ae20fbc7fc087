use std::time::Duration;

use super::*;
use crate::record::exec::{Direction, EventKind};

fn open_with(cfg: StoreConfig) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("records.sqlite"), cfg).unwrap();
    (dir, s)
}

fn open() -> (tempfile::TempDir, Store) {
    open_with(StoreConfig::default())
}

fn rec(n: i64) -> Record {
    let received = 1_717_243_200_000_000 + n * 1_000_000;
    Record {
        id: super::super::id::new_id(received),
        received,
        subject: format!("sub-{}", n % 3),
        username: format!("user{}", n % 3),
        groups: vec!["dev".into()],
        agent: (n % 2 == 0).then(|| "bot".to_string()),
        kubectl_session: Some(format!("ks-{}", n / 4)),
        verb: if n % 4 == 0 {
            "delete".into()
        } else {
            "get".into()
        },
        api_version: "v1".into(),
        resource: if n % 5 == 0 {
            "secrets".into()
        } else {
            "pods".into()
        },
        namespace: format!("ns{}", n % 2),
        name: format!("p{n}"),
        method: "GET".into(),
        path: format!("/api/v1/namespaces/ns{}/pods/p{n}", n % 2),
        decision: if n % 3 == 0 {
            Decision::Deny
        } else {
            Decision::Allow
        },
        ..Record::default()
    }
}

fn done(code: u16) -> Completion {
    Completion {
        code,
        completed: 1_717_243_300_000_000,
        latency_us: 1234,
        bytes_in: 10,
        bytes_out: 2048,
        masked: 3,
    }
}

#[tokio::test]
async fn insert_started_complete_and_get() {
    let (_d, s) = open();
    let mut feed = s.subscribe();
    let r = rec(1);
    s.insert(r.clone()).await.unwrap();
    assert_eq!(s.get(&r.id).await.unwrap(), Some(r.clone()));
    let got = s.started(&r.id, 101, r.received + 10).await.unwrap();
    assert_eq!((got.stage(), got.code), (Stage::ResponseStarted, Some(101)));
    let got = s.complete(&r.id, done(200)).await.unwrap();
    assert_eq!(got.stage(), Stage::ResponseComplete);
    assert_eq!(
        (got.code, got.latency_us, got.bytes_out, got.masked),
        (Some(200), Some(1234), 2048, 3)
    );
    assert_eq!(s.get(&r.id).await.unwrap(), Some(got.clone()));
    assert!(matches!(
        s.complete(&r.id, done(500)).await,
        Err(StoreError::AlreadyComplete(_))
    ));
    assert!(matches!(
        s.started(&r.id, 200, 0).await,
        Err(StoreError::AlreadyComplete(_))
    ));
    assert!(matches!(
        s.complete("nope", done(200)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        matches!(s.insert(r.clone()).await, Err(StoreError::Sqlite { .. })),
        "duplicate id"
    );
    assert_eq!(s.get("nope").await.unwrap(), None);

    let stages: Vec<Stage> = std::iter::from_fn(|| match feed.try_next() {
        Some(FeedEvent::Record(i)) => Some(i.stage),
        _ => None,
    })
    .collect();
    assert_eq!(
        stages,
        vec![
            Stage::RequestReceived,
            Stage::ResponseStarted,
            Stage::ResponseComplete
        ]
    );
}

#[tokio::test]
async fn an_insert_that_is_already_complete_is_one_write() {
    let (_d, s) = open();
    let mut feed = s.subscribe();
    let mut r = rec(2);
    r.code = Some(403);
    r.completed = Some(r.received + 5);
    s.insert(r.clone()).await.unwrap();
    match feed.try_next() {
        Some(FeedEvent::Record(i)) => {
            assert_eq!((i.stage, &*i.record), (Stage::ResponseComplete, &r))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn list_filters_newest_first() {
    let (_d, s) = open();
    for n in 0..20 {
        s.insert(rec(n)).await.unwrap();
    }
    let names = |rs: Vec<Record>| rs.into_iter().map(|r| r.name).collect::<Vec<_>>();
    let all = s.list(RecordFilter::default()).await.unwrap();
    assert_eq!(all.len(), 20);
    assert_eq!(all[0].name, "p19", "newest first");
    let f = |f: RecordFilter| {
        let s = s.clone();
        async move { names(s.list(f).await.unwrap()) }
    };
    assert_eq!(
        f(RecordFilter {
            limit: 2,
            ..RecordFilter::default()
        })
        .await,
        ["p19", "p18"]
    );
    assert_eq!(
        f(RecordFilter {
            user: Some("user1".into()),
            ..RecordFilter::default()
        })
        .await,
        ["p19", "p16", "p13", "p10", "p7", "p4", "p1"]
    );
    assert_eq!(
        f(RecordFilter {
            user: Some("sub-1".into()),
            limit: 1,
            ..RecordFilter::default()
        })
        .await,
        ["p19"],
        "the subject matches too"
    );
    assert_eq!(
        f(RecordFilter {
            agent: Some("bot".into()),
            limit: 3,
            ..RecordFilter::default()
        })
        .await,
        ["p18", "p16", "p14"]
    );
    assert_eq!(
        f(RecordFilter {
            verb: Some("delete".into()),
            ..RecordFilter::default()
        })
        .await,
        ["p16", "p12", "p8", "p4", "p0"]
    );
    assert_eq!(
        f(RecordFilter {
            resource: Some("secrets".into()),
            ..RecordFilter::default()
        })
        .await,
        ["p15", "p10", "p5", "p0"]
    );
    assert_eq!(
        f(RecordFilter {
            namespace: Some("ns1".into()),
            limit: 2,
            ..RecordFilter::default()
        })
        .await,
        ["p19", "p17"]
    );
    assert_eq!(
        f(RecordFilter {
            decision: Some(Decision::Deny),
            limit: 2,
            ..RecordFilter::default()
        })
        .await,
        ["p18", "p15"]
    );
    assert_eq!(
        f(RecordFilter {
            kubectl_session: Some("ks-2".into()),
            ..RecordFilter::default()
        })
        .await,
        ["p11", "p10", "p9", "p8"]
    );
    let t = |n: i64| rec(n).received;
    assert_eq!(
        f(RecordFilter {
            since: Some(t(17)),
            ..RecordFilter::default()
        })
        .await,
        ["p19", "p18", "p17"]
    );
    assert_eq!(
        f(RecordFilter {
            since: Some(t(5)),
            until: Some(t(7)),
            ..RecordFilter::default()
        })
        .await,
        ["p6", "p5"]
    );
    let combined = RecordFilter {
        verb: Some("delete".into()),
        namespace: Some("ns0".into()),
        decision: Some(Decision::Deny),
        ..RecordFilter::default()
    };
    assert_eq!(f(combined).await, ["p12", "p0"]);
    assert_eq!(
        f(RecordFilter {
            user: Some("nobody".into()),
            ..RecordFilter::default()
        })
        .await,
        Vec::<String>::new()
    );
    // Values are bound, never spliced into SQL.
    assert!(f(RecordFilter {
        user: Some("x' OR '1'='1".into()),
        ..RecordFilter::default()
    })
    .await
    .is_empty());

    let ks = s.kubectl_session("ks-1").await.unwrap();
    assert_eq!(names(ks), ["p4", "p5", "p6", "p7"], "oldest first");
}

#[tokio::test]
async fn retention_by_count_and_age_takes_sessions_along() {
    let retention = Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_records: Some(5),
    };
    let (_d, s) = open_with(StoreConfig {
        retention,
        purge_every: Duration::from_secs(3600),
        ..StoreConfig::default()
    });
    let now = super::super::event::now_micros();
    let mut ids = Vec::new();
    for n in 0..10 {
        let mut r = rec(n);
        r.received = if n < 2 {
            now - 7200 * 1_000_000
        } else {
            now - 100 + n
        };
        r.id = super::super::id::new_id(r.received);
        ids.push(r.id.clone());
        s.insert(r.clone()).await.unwrap();
        let info = SessionInfo {
            id: format!("s{n}"),
            record_id: r.id.clone(),
            kind: SessionKind::Exec,
            transport: "spdy/3.1".into(),
            started: r.received,
            ended: None,
            summary: None,
        };
        s.session_begin(info).await.unwrap();
        s.session_append(
            &format!("s{n}"),
            vec![SessionEvent {
                at_us: 1,
                kind: EventKind::Resize {
                    width: 1,
                    height: 1,
                },
            }],
        )
        .await
        .unwrap();
    }
    let report = s.purge(now).await.unwrap();
    assert_eq!((report.records, report.sessions, report.events), (5, 5, 5));
    let left: Vec<String> = s
        .list(RecordFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ids[5..].iter().rev().cloned().collect::<Vec<_>>());
    assert!(
        s.session("s4").await.unwrap().is_none()
            && s.session_events("s4", 0, 10).await.unwrap().is_empty()
    );
    assert!(s.session("s5").await.unwrap().is_some());
    assert_eq!(s.purge(now).await.unwrap(), PurgeReport::default());
}

#[tokio::test]
async fn retention_runs_by_itself() {
    let retention = Retention {
        max_age: None,
        max_records: Some(2),
    };
    let (_d, s) = open_with(StoreConfig {
        retention,
        purge_every: Duration::from_millis(20),
        purge_chunk: 1,
        ..StoreConfig::default()
    });
    for n in 0..6 {
        s.insert(rec(n)).await.unwrap();
    }
    for _ in 0..200 {
        if s.list(RecordFilter::default()).await.unwrap().len() == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the periodic purge did not run");
}

#[tokio::test]
async fn a_lagging_subscriber_is_told_how_many_it_missed() {
    let (_d, s) = open_with(StoreConfig {
        feed_capacity: 4,
        ..StoreConfig::default()
    });
    let mut feed = s.subscribe();
    let records: Vec<Record> = (0..10).map(rec).collect();
    for r in &records {
        s.insert(r.clone()).await.unwrap();
    }
    assert!(matches!(feed.next().await, Some(FeedEvent::Missed(6))));
    for want in &records[6..] {
        match feed.next().await {
            Some(FeedEvent::Record(i)) => assert_eq!(&*i.record, want),
            other => panic!("{other:?}"),
        }
    }
    assert!(feed.try_next().is_none());
    drop(s);
    assert!(feed.next().await.is_none(), "the feed ends with the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_share_commits() {
    let (_d, s) = open();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..200 {
        let s = s.clone();
        tasks.spawn(async move { s.insert(rec(n)).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let all = s
        .list(RecordFilter {
            limit: MAX_LIMIT,
            ..RecordFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 200);
    let (ops, batches) = (
        s.stats().ops.load(std::sync::atomic::Ordering::Relaxed),
        s.stats().batches.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert_eq!(ops, 200);
    assert!(
        batches < 200,
        "group commit: {ops} inserts in {batches} transactions"
    );
}

#[tokio::test]
async fn one_bad_write_fails_alone() {
    let (_d, s) = open();
    let r = rec(1);
    s.insert(r.clone()).await.unwrap();
    // The duplicate and the good ones likely share a batch; only the duplicate fails.
    let (a, b, c) = tokio::join!(s.insert(rec(2)), s.insert(r.clone()), s.insert(rec(3)));
    assert!(a.is_ok() && c.is_ok());
    assert!(matches!(b, Err(StoreError::Sqlite { .. })));
    assert_eq!(s.list(RecordFilter::default()).await.unwrap().len(), 3);
}

#[tokio::test]
async fn session_events_append_end_and_page() {
    let (_d, s) = open();
    let r = rec(1);
    s.insert(r.clone()).await.unwrap();
    let info = SessionInfo {
        id: "sess-1".into(),
        record_id: r.id.clone(),
        kind: SessionKind::PortForward,
        transport: "websocket/SPDY/3.1+portforward.k8s.io".into(),
        started: r.received,
        ended: None,
        summary: None,
    };
    s.session_begin(info.clone()).await.unwrap();
    assert!(matches!(
        s.session_begin(info.clone()).await,
        Err(StoreError::Sqlite { .. })
    ));
    let events = vec![
        SessionEvent {
            at_us: 0,
            kind: EventKind::Resize {
                width: 80,
                height: 24,
            },
        },
        SessionEvent {
            at_us: 5,
            kind: EventKind::Output {
                data: bytes::Bytes::from_static(b"\xff\x00bin"),
            },
        },
        SessionEvent {
            at_us: 6,
            kind: EventKind::Input {
                data: bytes::Bytes::from_static(b"ls\n"),
            },
        },
        SessionEvent {
            at_us: 7,
            kind: EventKind::Error {
                data: bytes::Bytes::from_static(b"e"),
            },
        },
    ];
    s.session_append("sess-1", events.clone()).await.unwrap();
    let more = vec![
        SessionEvent {
            at_us: 8,
            kind: EventKind::PortData {
                port: 5432,
                direction: Direction::Downstream,
                bytes: 1 << 40,
            },
        },
        SessionEvent {
            at_us: 8,
            kind: EventKind::PortData {
                port: 80,
                direction: Direction::Upstream,
                bytes: 7,
            },
        },
        SessionEvent {
            at_us: 9,
            kind: EventKind::PortError {
                port: 80,
                message: "refused".into(),
            },
        },
        SessionEvent {
            at_us: 10,
            kind: EventKind::Failure {
                message: "no container".into(),
            },
        },
        SessionEvent {
            at_us: 11,
            kind: EventKind::Exit { code: -1 },
        },
    ];
    s.session_append("sess-1", more.clone()).await.unwrap();
    s.session_append("sess-1", Vec::new()).await.unwrap();
    assert!(matches!(
        s.session_append("nope", more.clone()).await,
        Err(StoreError::NotFound(_))
    ));
    let summary = SessionSummary {
        exit_code: Some(-1),
        downstream_bytes: 9,
        ..SessionSummary::default()
    };
    s.session_end("sess-1", r.received + 11, &summary)
        .await
        .unwrap();
    assert!(matches!(
        s.session_end("nope", 0, &summary).await,
        Err(StoreError::NotFound(_))
    ));

    let got = s.session("sess-1").await.unwrap().unwrap();
    assert_eq!(
        got,
        SessionInfo {
            ended: Some(r.received + 11),
            summary: Some(summary),
            ..info
        }
    );
    let all: Vec<SessionEvent> = s
        .session_events("sess-1", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(all, [events, more].concat());
    let page = s.session_events("sess-1", 3, 2).await.unwrap();
    assert_eq!(page.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [3, 4]);
}

#[test]
fn a_newer_schema_is_refused_and_the_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite");
    drop(Store::open(&path, StoreConfig::default()).unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    drop(Store::open(&path, StoreConfig::default()).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(matches!(
        Store::open(&path, StoreConfig::default()),
        Err(StoreError::SchemaTooNew { version: 99, .. })
    ));
}

#[tokio::test]
async fn a_version_1_store_gains_the_agent_session_column_and_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite");
    let old = rec(1);
    {
        let s = Store::open(&path, StoreConfig::default()).unwrap();
        s.insert(old.clone()).await.unwrap();
    }
    // What a version 1 file looks like: no agent_session column.
    let c = Connection::open(&path).unwrap();
    c.execute_batch("DROP INDEX records_by_agent_session; ALTER TABLE records DROP COLUMN agent_session; PRAGMA user_version = 1;").unwrap();
    drop(c);
    let s = Store::open(&path, StoreConfig::default()).unwrap();
    assert_eq!(s.get(&old.id).await.unwrap(), Some(old.clone()));
    let mut agent = rec(2);
    agent.agent = Some("bot".into());
    agent.agent_session = Some("01890a5d-ac96-774b-bcce-b302099a8057".into());
    s.insert(agent.clone()).await.unwrap();
    assert_eq!(s.get(&agent.id).await.unwrap(), Some(agent));
    let version: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 2);
}
