use std::collections::VecDeque;
use std::time::Duration;

use http_body_util::BodyExt;

use super::*;
use crate::record::event::Record;
use crate::record::store::{Completion, Store, StoreConfig};

fn rec(n: u64) -> Record {
    let received = 1_717_243_200_000_000 + i64::try_from(n).unwrap();
    Record {
        id: crate::record::id::new_id(received),
        received,
        username: "alice".into(),
        verb: "get".into(),
        api_version: "v1".into(),
        resource: "pods".into(),
        method: "GET".into(),
        path: "/api/v1/pods".into(),
        ..Record::default()
    }
}

fn done() -> Completion {
    Completion {
        code: 200,
        completed: 1_717_243_201_000_000,
        latency_us: 5,
        bytes_in: 0,
        bytes_out: 10,
        masked: 0,
    }
}

fn file_cfg(dir: &std::path::Path) -> FileConfig {
    FileConfig {
        path: dir.join("audit.jsonl"),
        sync: FileSync::Batch,
        max_bytes: None,
        keep: 2,
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn file_sink_appends_private_lines_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileConfig {
        max_bytes: Some(2000),
        ..file_cfg(dir.path())
    };
    let path = cfg.path.clone();
    std::fs::write(&path, "{\"existing\":true}\n").unwrap();
    let mut sink = FileSink::open(cfg).unwrap();
    let events: Vec<Event> = (0..3).map(|n| rec(n).to_event()).collect();
    sink.write(&events).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("{\"existing\":true}\n"),
        "appended, not truncated"
    );
    let parsed: Vec<Event> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, events);
    for _ in 0..6 {
        sink.write(&events).unwrap();
    }
    let rotated: Vec<PathBuf> = (1..=3)
        .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
        .collect();
    assert!(
        rotated[0].exists() && rotated[1].exists() && !rotated[2].exists(),
        "keeps 2 rotated files"
    );
    for p in [&path, &rotated[0]] {
        assert!(std::fs::metadata(p).unwrap().len() <= 2000);
        for line in std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("existing"))
        {
            serde_json::from_str::<Event>(line).unwrap();
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fresh = FileSink::open(file_cfg(&dir.path().join("sub-does-not-exist")));
        assert!(matches!(fresh, Err(ExportError::File { .. })));
        let _ = std::fs::remove_file(&path);
        FileSink::open(file_cfg(dir.path())).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test]
async fn file_exporter_writes_completed_records_from_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.sqlite"), StoreConfig::default()).unwrap();
    let exporter = spawn_file(
        store.subscribe(),
        FileSink::open(file_cfg(dir.path())).unwrap(),
    );
    let mut watch = rec(1);
    watch.verb = "watch".into();
    store.insert(watch.clone()).await.unwrap();
    store
        .started(&watch.id, 200, watch.received + 1)
        .await
        .unwrap();
    for n in 2..7 {
        let r = rec(n);
        store.insert(r.clone()).await.unwrap();
        store.complete(&r.id, done()).await.unwrap();
    }
    eventually("6 exported events", || exporter.stats().exported == 6).await;
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let events: Vec<Event> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0].stage, "ResponseStarted");
    assert!(events[1..].iter().all(|e| e.stage == "ResponseComplete"
        && e.response_status.as_ref().map(|s| s.code) == Some(200)));
    assert_eq!(
        exporter.stats(),
        ExportCounts {
            exported: 6,
            dropped: 0,
            failed_batches: 0
        }
    );
    exporter.abort();
}

#[tokio::test]
async fn a_lagging_exporter_counts_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("r.sqlite"),
        StoreConfig {
            feed_capacity: 2,
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let feed = store.subscribe();
    for n in 0..10 {
        let mut r = rec(n);
        r.completed = Some(r.received);
        r.code = Some(403);
        store.insert(r).await.unwrap();
    }
    // Started only now: 8 items already fell out of the 2-item feed buffer.
    let exporter = spawn_file(feed, FileSink::open(file_cfg(dir.path())).unwrap());
    eventually("drops counted", || {
        exporter.stats()
            == ExportCounts {
                exported: 2,
                dropped: 8,
                failed_batches: 0,
            }
    })
    .await;
    exporter.abort();
}

/// A webhook receiver answering the scripted statuses in turn (then 200), keeping every body.
struct Hook {
    url: url::Url,
    bodies: Arc<Mutex<Vec<EventList>>>,
    hits: Arc<AtomicU64>,
}

async fn hook(script: Vec<u16>) -> Hook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}/audit", listener.local_addr().unwrap())).unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicU64::new(0));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let (b, h) = (bodies.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (b, h, script) = (b.clone(), h.clone(), script.clone());
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (b, h, script) = (b.clone(), h.clone(), script.clone());
                        async move {
                            h.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(
                                req.headers()[http::header::CONTENT_TYPE],
                                "application/json"
                            );
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let code = script.lock().unwrap().pop_front().unwrap_or(200);
                            if code == 200 {
                                b.lock()
                                    .unwrap()
                                    .push(serde_json::from_slice::<EventList>(&body).unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(code)
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Hook { url, bodies, hits }
}

fn fast(url: url::Url) -> WebhookConfig {
    WebhookConfig {
        max_wait: Duration::from_millis(50),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        retries: 3,
        ..WebhookConfig::new(url)
    }
}

#[tokio::test]
async fn webhook_posts_event_lists_and_retries_server_errors() {
    let h = hook(vec![500, 503, 429]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.sqlite"), StoreConfig::default()).unwrap();
    let exporter = spawn_webhook(
        store.subscribe(),
        reqwest::Client::new(),
        WebhookConfig {
            max_batch: 4,
            ..fast(h.url.clone())
        },
    );
    for n in 0..6 {
        let r = rec(n);
        store.insert(r.clone()).await.unwrap();
        store.complete(&r.id, done()).await.unwrap();
    }
    eventually("6 delivered", || exporter.stats().exported == 6).await;
    let bodies = h.bodies.lock().unwrap().clone();
    assert!(bodies.iter().all(|l| l.kind == "EventList"
        && l.api_version == "audit.k8s.io/v1"
        && l.items.len() <= 4));
    let ids: Vec<String> = bodies
        .iter()
        .flat_map(|l| l.items.iter().map(|e| e.audit_id.clone()))
        .collect();
    assert_eq!(ids.len(), 6, "each event once, in order");
    assert!(
        h.hits.load(Ordering::SeqCst) >= 5,
        "three failures were retried"
    );
    assert_eq!(exporter.stats().dropped, 0);
    exporter.abort();
}

#[tokio::test]
async fn webhook_gives_up_and_counts_never_silently() {
    // A 400 is not retried; a dead endpoint is retried, then the batch is counted as dropped.
    let h = hook(vec![400]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.sqlite"), StoreConfig::default()).unwrap();
    let exporter = spawn_webhook(
        store.subscribe(),
        reqwest::Client::new(),
        fast(h.url.clone()),
    );
    let r = rec(1);
    store.insert(r.clone()).await.unwrap();
    store.complete(&r.id, done()).await.unwrap();
    eventually("one dropped", || {
        exporter.stats()
            == ExportCounts {
                exported: 0,
                dropped: 1,
                failed_batches: 1,
            }
    })
    .await;
    assert_eq!(h.hits.load(Ordering::SeqCst), 1);
    exporter.abort();

    let dead = url::Url::parse("http://127.0.0.1:9/").unwrap();
    let exporter = spawn_webhook(
        store.subscribe(),
        reqwest::Client::new(),
        WebhookConfig {
            retries: 1,
            ..fast(dead)
        },
    );
    let r = rec(2);
    store.insert(r.clone()).await.unwrap();
    store.complete(&r.id, done()).await.unwrap();
    eventually("dead endpoint counted", || {
        exporter.stats().failed_batches == 1
    })
    .await;
    assert_eq!(exporter.stats().dropped, 1);
    // The store kept the record regardless.
    assert!(store.get(&r.id).await.unwrap().is_some());
    exporter.abort();
}

#[tokio::test]
async fn a_full_webhook_queue_drops_and_counts() {
    // A receiver that never answers keeps the sender busy; the queue of 2 overflows.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let hold = tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            keep.push(tcp);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.sqlite"), StoreConfig::default()).unwrap();
    let cfg = WebhookConfig {
        queue: 2,
        max_batch: 1,
        timeout: Duration::from_secs(30),
        ..fast(url)
    };
    let exporter = spawn_webhook(store.subscribe(), reqwest::Client::new(), cfg);
    for n in 0..10 {
        let mut r = rec(n);
        r.completed = Some(r.received);
        r.code = Some(200);
        store.insert(r).await.unwrap();
    }
    // Two queued and, once the sender took one, one in flight: 7 or 8 dropped, and counted.
    eventually("drops counted", || {
        (7..=8).contains(&exporter.stats().dropped)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = exporter.stats();
    assert!((7..=8).contains(&s.dropped) && s.exported == 0, "{s:?}");
    exporter.abort();
    hold.abort();
}
