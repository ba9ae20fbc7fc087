use super::*;
use crate::record::event::Stage;

fn record(id: &str) -> Record {
    Record {
        id: id.into(),
        received: 1_700_000_000_000_000,
        username: "alice".into(),
        verb: "get".into(),
        resource: "pods".into(),
        namespace: "default".into(),
        name: "web".into(),
        path: "/api/v1/namespaces/default/pods/web".into(),
        ..Record::default()
    }
}

const ID: &str = "0196f2a8-5b7e-7c3d-8e9f-0a1b2c3d4e5f";
const SID: &str = "0196f2a8-5b7f-7000-8000-000000000001";

#[test]
fn filter_query_encodes_values_and_leaves_out_unset_ones() {
    assert_eq!(Filter::default().query(QueryKind::Records), "");
    let f = Filter {
        user: Some("alice@example.com".into()),
        agent: Some(String::new()),
        since: Some("2025-01-31T14:00:00+01:00".into()),
        until: Some("2h".into()),
        verb: Some("get".into()),
        resource: Some("pods".into()),
        namespace: None,
        decision: Some(Decision::Deny),
        kubectl_session: Some("a b&c=d".into()),
        limit: Some(5),
    };
    assert_eq!(
        f.query(QueryKind::Records),
        "user=alice%40example.com&since=2025-01-31T14%3A00%3A00%2B01%3A00&until=2h&verb=get\
         &resource=pods&decision=deny&kubectlSession=a+b%26c%3Dd&limit=5"
    );
    assert!(f.query(QueryKind::Audit).ends_with("&limit=5&format=audit"));
    let w = f.query(QueryKind::Watch);
    assert!(w.starts_with("watch=1&user="), "{w}");
    assert!(
        !w.contains("until") && !w.contains("limit") && !w.contains("format"),
        "{w}"
    );
    // What the relay's own parser makes of it.
    let now = 1_800_000_000_000_000;
    let routed = crate::record::query::route(
        &http::Method::GET,
        RECORDS_PATH,
        Some(&f.query(QueryKind::Records)),
        now,
    )
    .unwrap()
    .unwrap();
    let crate::record::query::Route::List { filter, .. } = routed else {
        panic!("{routed:?}")
    };
    assert_eq!(filter.since, Some(1_738_328_400_000_000));
    assert_eq!(filter.until, Some(now - 7_200_000_000));
    assert_eq!(filter.kubectl_session.as_deref(), Some("a b&c=d"));
    assert_eq!((filter.limit, filter.agent), (5, None));
}

#[test]
fn bad_times_fail_before_any_request() {
    let f = Filter {
        since: Some("yesterday".into()),
        ..Filter::default()
    };
    let e = f.validate().unwrap_err();
    assert!(matches!(e, RecordsError::BadTime { param: "since", .. }));
    assert!(
        e.to_string()
            .starts_with("since \"yesterday\" is not a time: use RFC 3339"),
        "{e}"
    );
    for ok in ["30s", "15m", "2h", "3d", "1h30m", "2025-01-31T14:00:00Z"] {
        let f = Filter {
            until: Some(ok.into()),
            ..Filter::default()
        };
        assert!(f.validate().is_ok(), "{ok}");
    }
}

fn line(r: &Record, stage: Stage) -> String {
    WatchLine::Record {
        stage,
        record: Box::new(r.clone()),
    }
    .to_line()
}

#[test]
fn watch_lines_parse_across_any_chunk_border() {
    let r = record(ID);
    let text = format!(
        "{}\n{}{}",
        line(&r, Stage::RequestReceived),
        WatchLine::Missed { count: 7 }.to_line(),
        line(&r, Stage::ResponseComplete)
    );
    let want = vec![
        WatchLine::Record {
            stage: Stage::RequestReceived,
            record: Box::new(r.clone()),
        },
        WatchLine::Missed { count: 7 },
        WatchLine::Record {
            stage: Stage::ResponseComplete,
            record: Box::new(r),
        },
    ];
    let bytes = text.as_bytes();
    for size in [1, 2, 3, 7, 64, bytes.len()] {
        let mut d = LineDecoder::default();
        let mut got = Vec::new();
        for chunk in bytes.chunks(size) {
            got.extend(d.push(chunk).unwrap());
        }
        d.finish().unwrap();
        assert_eq!(got, want, "chunks of {size}");
    }
    // Every split point into two chunks.
    for at in 0..=bytes.len() {
        let mut d = LineDecoder::default();
        let mut got = d.push(&bytes[..at]).unwrap();
        got.extend(d.push(&bytes[at..]).unwrap());
        assert_eq!(got, want, "split at {at}");
    }
}

#[test]
fn hostile_watch_lines_are_refused() {
    let mut d = LineDecoder::default();
    assert!(matches!(
        d.push(b"{\"type\":\"MISSED\",\"count\":1}\nnot json\n"),
        Err(RecordsError::BadLine { line: 2, .. })
    ));
    let mut d = LineDecoder::default();
    assert!(matches!(
        d.push(b"{\"type\":\"BOOKMARK\"}\n"),
        Err(RecordsError::BadLine { line: 1, .. })
    ));
    // Too long: refused while still unterminated, without keeping the bytes.
    let mut d = LineDecoder::default();
    d.push(&vec![b' '; MAX_LINE]).unwrap();
    assert!(matches!(
        d.push(b"x"),
        Err(RecordsError::LineTooLong { line: 1 })
    ));
    let mut d = LineDecoder::default();
    let mut long = vec![b'x'; MAX_LINE + 1];
    long.push(b'\n');
    assert!(matches!(
        d.push(&long),
        Err(RecordsError::LineTooLong { line: 1 })
    ));
    // A cut line at the end of the stream; trailing whitespace is fine.
    let mut d = LineDecoder::default();
    d.push(b"{\"type\":\"MISSED\",\"count\":1}\n{\"ty").unwrap();
    assert!(matches!(
        d.finish(),
        Err(RecordsError::Truncated { line: 2 })
    ));
    let mut d = LineDecoder::default();
    assert_eq!(d.push(b"\n\r\n  \n").unwrap(), vec![]);
    d.push(b" \r\n").unwrap();
    d.finish().unwrap();
}

#[test]
fn replay_ids_resolve_through_the_record() {
    let mut with = record(ID);
    with.session = Some(SID.into());
    assert_eq!(
        SessionRef::from_lookup(ID, Ok(with)).unwrap(),
        SessionRef::OfRecord {
            record: ID.into(),
            session: SID.into()
        }
    );
    let direct = SessionRef::from_lookup(SID, Err(RecordsError::NoRecord { id: SID.into() }));
    assert_eq!(direct.unwrap().session(), SID);
    let e = SessionRef::from_lookup(ID, Ok(record(ID))).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "record {ID} (get pods default/web) has no recorded session; only exec, attach \
             and port-forward are"
        )
    );
    let e = SessionRef::from_lookup(
        ID,
        Err(RecordsError::Forbidden {
            message: "no".into(),
        }),
    );
    assert!(matches!(e, Err(RecordsError::Forbidden { .. })));
}

#[test]
fn error_messages_say_what_to_do() {
    let cases = [
        (
            RecordsError::Unreachable {
                server: "https://127.0.0.1:9".into(),
                message: "connection refused".into(),
            },
            "cannot reach https://127.0.0.1:9: connection refused; is the forwarder running? \
             run `hoop-kube status`",
        ),
        (
            RecordsError::NoRecord { id: ID.into() },
            "no record 0196f2a8-5b7e-7c3d-8e9f-0a1b2c3d4e5f; `hoop-kube sessions list` shows \
             the records you may see",
        ),
        (
            RecordsError::BadId("12".into()),
            "\"12\" is not a record or session id (a UUID v7 such as 0196f2a8-…; `hoop-kube \
             sessions list` prints them)",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(e.to_string(), want);
        assert!(!e.to_string().contains('\n'));
    }
    assert!(check_id("../../etc/passwd").is_err());
    assert!(check_id(ID).is_ok());
    assert_eq!(
        describe(&Record {
            verb: "get".into(),
            path: "/version".into(),
            ..Record::default()
        }),
        "get /version"
    );
}

/// A plain-HTTP stand-in for the forwarder: answers each connection from `answer(request
/// head)` and closes it.
mod net {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    pub(super) async fn serve(
        answer: fn(&str) -> Vec<Vec<u8>>,
    ) -> (RecordsClient, tempfile::TempDir) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    for part in answer(&head) {
                        if s.write_all(&part).await.is_err() {
                            return;
                        }
                        let _ = s.flush().await;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
            }
        });
        client_for(&format!("http://{addr}"))
    }

    /// A client whose kubeconfig points at `server` with a static token.
    pub(super) fn client_for(server: &str) -> (RecordsClient, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: c\n  \
             cluster:\n    server: {server}\ncontexts:\n- name: t\n  context:\n    \
             cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: s3cret\n"
        );
        std::fs::write(&kc, text).unwrap();
        let target = crate::review::client::resolve(&kc, None).unwrap();
        (RecordsClient::new(target).unwrap(), dir)
    }

    pub(super) fn respond(code: u16, ctype: &str, body: &str) -> Vec<Vec<u8>> {
        vec![format!(
            "HTTP/1.1 {code} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()]
    }

    pub(super) fn status(code: u16, message: &str) -> Vec<Vec<u8>> {
        let body = serde_json::json!({"kind":"Status","apiVersion":"v1","status":"Failure",
            "message": message, "code": code});
        respond(code, "application/json", &body.to_string())
    }
}

fn answer(head: &str) -> Vec<Vec<u8>> {
    let first = head.lines().next().unwrap_or("");
    if !head
        .to_ascii_lowercase()
        .contains("authorization: bearer s3cret")
    {
        return net::status(401, "Unauthorized");
    }
    let path = first.split(' ').nth(1).unwrap_or("");
    let mut r = record(ID);
    r.kubectl_session = Some("ks".into());
    if path.starts_with(&format!("{RECORDS_PATH}?watch=1")) {
        let l1 = line(&r, Stage::ResponseComplete);
        let (a, b) = l1.split_at(20);
        let mut parts = vec![b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
            transfer-encoding: chunked\r\n\r\n"
            .to_vec()];
        let missed = WatchLine::Missed { count: 3 }.to_line();
        for piece in [a, b, missed.as_str()] {
            parts.push(format!("{:x}\r\n{piece}\r\n", piece.len()).into_bytes());
        }
        parts.push(b"0\r\n\r\n".to_vec());
        return parts;
    }
    if path == format!("{RECORDS_PATH}?user=alice&limit=2") {
        let mut older = record(SID);
        older.received -= 1;
        let list = RecordList::new(vec![r, older]);
        return net::respond(
            200,
            "application/json",
            &serde_json::to_string(&list).unwrap(),
        );
    }
    if path == format!("{RECORDS_PATH}?kubectlSession=ks&limit=1000") {
        let mut older = record(SID);
        older.received -= 1;
        let list = RecordList::new(vec![r, older]);
        return net::respond(
            200,
            "application/json",
            &serde_json::to_string(&list).unwrap(),
        );
    }
    if path == format!("{RECORDS_PATH}?user=bob") {
        return net::status(403, "alice may only read her own records");
    }
    if path == format!("{RECORDS_PATH}/{ID}") {
        return net::respond(200, "application/json", &serde_json::to_string(&r).unwrap());
    }
    if path == format!("{SESSIONS_PATH}/{SID}?format=asciicast") {
        let cast = "{\"version\":2,\"width\":80,\"height\":24}\n[0.5, \"o\", \"hi\"]";
        return net::respond(200, "application/x-asciicast", cast);
    }
    if path.starts_with(RECORDS_PATH) || path.starts_with(SESSIONS_PATH) {
        return net::status(404, "not found");
    }
    net::status(500, "what?")
}

#[tokio::test]
async fn client_calls_the_records_api() {
    let (c, _dir) = net::serve(answer).await;
    let f = Filter {
        user: Some("alice".into()),
        limit: Some(2),
        ..Filter::default()
    };
    let list = c.list(&f).await.unwrap();
    assert_eq!(list.items.len(), 2);
    let ks = c.kubectl_session("ks").await.unwrap();
    assert_eq!(
        (ks[0].id.as_str(), ks[1].id.as_str()),
        (SID, ID),
        "oldest first"
    );
    assert_eq!(
        c.get(ID).await.unwrap().kubectl_session.as_deref(),
        Some("ks")
    );
    assert!(matches!(
        c.get(SID).await,
        Err(RecordsError::NoRecord { .. })
    ));
    assert!(matches!(c.get("nope").await, Err(RecordsError::BadId(_))));
    let bob = Filter {
        user: Some("bob".into()),
        ..Filter::default()
    };
    let e = c.list(&bob).await.unwrap_err();
    assert_eq!(e.to_string(), "alice may only read her own records");
    // A record without a session; a session id given directly.
    assert!(matches!(
        c.resolve_session(ID).await,
        Err(RecordsError::NotASession { .. })
    ));
    let s = c.resolve_session(SID).await.unwrap();
    assert_eq!(s, SessionRef::Direct(SID.into()));
    let cast = c.session_cast(SID).await.unwrap();
    assert!(
        cast.starts_with("{\"version\":2") && cast.ends_with("\"hi\"]\n"),
        "{cast}"
    );
    assert!(matches!(
        c.session_cast(ID).await,
        Err(RecordsError::NoSession { .. })
    ));
    assert!(matches!(
        c.session_json(ID).await,
        Err(RecordsError::NoSession { .. })
    ));

    let mut w = c.watch(&f).await.unwrap();
    assert!(matches!(
        w.next().await.unwrap(),
        Some(WatchLine::Record { .. })
    ));
    assert_eq!(
        w.next().await.unwrap(),
        Some(WatchLine::Missed { count: 3 })
    );
    assert_eq!(w.next().await.unwrap(), None, "the relay ended the stream");
}

#[tokio::test]
async fn client_errors_name_the_fix() {
    let (c, _dir) = net::serve(|_| net::status(404, "the server could not find it")).await;
    let e = c.list(&Filter::default()).await.unwrap_err();
    assert!(matches!(e, RecordsError::NotServed { .. }), "{e}");
    let (c, _dir) = net::serve(|_| net::status(401, "Unauthorized")).await;
    let e = c.get(ID).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Unauthorized; run `hoop-kube login` (or check the context's credential)"
    );
    let (c, _dir) = net::serve(|_| {
        net::respond(
            200,
            "application/json",
            "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"items\":[]}",
        )
    })
    .await;
    let e = c.list(&Filter::default()).await.unwrap_err();
    assert!(matches!(e, RecordsError::BadAnswer { .. }), "{e}");
    // Nothing listening.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (c, _dir) = net::client_for(&format!("http://127.0.0.1:{port}"));
    let e = c.list(&Filter::default()).await.unwrap_err();
    assert!(matches!(e, RecordsError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string()
            .ends_with("is the forwarder running? run `hoop-kube status`"),
        "{e}"
    );
}
