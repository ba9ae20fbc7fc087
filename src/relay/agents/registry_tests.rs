//! The registry: round trip, restart, the kill-switch watch, idempotent ends, expiry, concurrent
//! charges, and files that are not registries.

use std::time::Duration as StdDuration;

use chrono::Duration;
use http::Method;

use super::*;
use crate::policy::glob::Glob;

fn dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("agents.sqlite");
    (d, p)
}

fn new_session(agent: &str, subject: &str, created: DateTime<Utc>, ttl: Duration) -> NewSession {
    NewSession {
        id: crate::record::id::new_id(created.timestamp_micros()),
        agent: agent.into(),
        subject: subject.into(),
        username: format!("{subject}@example.com"),
        groups: vec!["dev".into(), "ops".into()],
        created_at: created,
        not_after: created + ttl,
        cert_serial: "0a1b2c".into(),
        command: Some("kubectl get pods".into()),
    }
}

fn fresh(agent: &str, subject: &str) -> NewSession {
    new_session(agent, subject, Utc::now(), Duration::hours(1))
}

#[test]
fn create_get_list_round_trip() {
    let (_d, path) = dir();
    let reg = Registry::open(&path).unwrap();
    let t0 = Utc::now() - Duration::seconds(10);
    let a = reg.create(new_session("bot", "alice", t0, Duration::hours(1))).unwrap();
    let b = reg.create(new_session("bot", "bob", t0 + Duration::seconds(1), Duration::hours(1))).unwrap();
    let c = reg.create(new_session("claude", "alice", t0 + Duration::seconds(2), Duration::hours(1))).unwrap();
    assert_eq!(a.state, SessionState::Active);
    assert_eq!((a.agent.as_str(), a.subject.as_str(), a.username.as_str()), ("bot", "alice", "alice@example.com"));
    assert_eq!(a.groups, ["dev", "ops"]);
    assert_eq!((a.requests, a.mutating, a.deletes), (0, 0, 0));
    assert_eq!((a.ended_at.as_deref(), a.ended_by.as_deref(), a.command.as_deref()), (None, None, Some("kubectl get pods")));
    assert!(a.created_at.ends_with('Z') && a.not_after.ends_with('Z'), "{a:?}");
    let live = reg.get(&a.id).unwrap();
    assert_eq!(live.info(), a);
    assert!(live.is_active(Utc::now()));
    assert_eq!((live.id(), live.agent(), live.subject()), (a.id.as_str(), "bot", "alice"));
    assert!(reg.get("0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8b").is_none());
    let ids = |f: Filter| reg.list(&f).into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(Filter::default()), [c.id.clone(), b.id.clone(), a.id.clone()], "newest first");
    assert_eq!(ids(Filter { subject: Some("alice".into()), agent: None }), [c.id.clone(), a.id.clone()]);
    assert_eq!(ids(Filter { subject: None, agent: Some("bot".into()) }), [b.id.clone(), a.id.clone()]);
    assert_eq!(ids(Filter { subject: Some("alice".into()), agent: Some("bot".into()) }), std::slice::from_ref(&a.id));
    assert!(ids(Filter { subject: Some("ALICE".into()), agent: None }).is_empty());
    // Committed when create returns: another handle on the file sees it.
    let other = Registry::open(&path).unwrap();
    assert_eq!(other.get(&a.id).unwrap().info(), a);
    assert!(matches!(reg.create(new_session("bot", "alice", t0, Duration::hours(1))).map(|_| ()), Ok(())));
    let dup = NewSession { id: a.id.clone(), ..fresh("bot", "alice") };
    assert!(matches!(reg.create(dup.clone()), Err(RegistryError::Exists(id)) if id == a.id));
    // Known to the file but not to this handle's memory: still refused.
    let (_d2, path2) = dir();
    let first = Registry::open(&path2).unwrap();
    let second = Registry::open(&path2).unwrap();
    first.create(dup.clone()).unwrap();
    assert!(matches!(second.create(dup), Err(RegistryError::Exists(_))));
}

#[test]
fn create_refuses_malformed_sessions() {
    let (_d, path) = dir();
    let reg = Registry::open(&path).unwrap();
    let ok = fresh("bot", "alice");
    for bad in [
        NewSession { id: ok.id.to_uppercase(), ..ok.clone() },
        NewSession { id: "../../etc".into(), ..ok.clone() },
        NewSession { agent: "Bot".into(), ..ok.clone() },
        NewSession { agent: "b/t".into(), ..ok.clone() },
        NewSession { subject: String::new(), ..ok.clone() },
        NewSession { username: String::new(), ..ok.clone() },
        NewSession { not_after: ok.created_at, ..ok.clone() },
    ] {
        assert!(matches!(reg.create(bad.clone()), Err(RegistryError::Invalid(_))), "{bad:?}");
    }
    assert!(reg.list(&Filter::default()).is_empty());
    assert!(matches!(reg.end(&ok.id, SessionState::Revoked, "x"), Err(RegistryError::NotFound(_))));
    reg.create(ok.clone()).unwrap();
    for state in [SessionState::Active, SessionState::Expired] {
        assert!(matches!(reg.end(&ok.id, state, "x"), Err(RegistryError::Invalid(_))));
    }
}

#[test]
fn end_fires_the_watch_and_is_idempotent() {
    let (_d, path) = dir();
    let reg = Registry::open(&path).unwrap();
    let s = reg.create(fresh("bot", "alice")).unwrap();
    let live = reg.get(&s.id).unwrap();
    let mut rx = live.ended();
    assert!(!*rx.borrow_and_update());
    let revoked = reg.end(&s.id, SessionState::Revoked, "alice@example.com").unwrap();
    assert_eq!(revoked.state, SessionState::Revoked);
    assert_eq!(revoked.ended_by.as_deref(), Some("alice@example.com"));
    assert!(revoked.ended_at.is_some());
    assert!(rx.has_changed().unwrap() && *rx.borrow_and_update());
    assert!(!live.is_active(Utc::now()));
    assert_eq!(live.info().state, SessionState::Revoked);
    // A receiver taken after the end sees it at once.
    assert!(*live.ended().borrow());
    // Again, or as a stop by someone else: unchanged.
    let again = reg.end(&s.id, SessionState::Stopped, "sre-bob").unwrap();
    assert_eq!(again, revoked);
    assert!(matches!(reg.end("0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8b", SessionState::Stopped, "x"), Err(RegistryError::NotFound(_))));
    let stopped = reg.create(fresh("bot", "alice")).unwrap();
    let st = reg.end(&stopped.id, SessionState::Stopped, "sre-bob").unwrap();
    assert_eq!((st.state, st.ended_by.as_deref()), (SessionState::Stopped, Some("sre-bob")));
}

#[tokio::test]
async fn watchers_wake_when_the_session_is_stopped() {
    let (_d, path) = dir();
    let reg = Arc::new(Registry::open(&path).unwrap());
    let s = reg.create(fresh("bot", "alice")).unwrap();
    let live = reg.get(&s.id).unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let mut rx = live.ended();
            tokio::spawn(async move { rx.wait_for(|e| *e).await.map(|v| *v) })
        })
        .collect();
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    let r2 = reg.clone();
    let id = s.id.clone();
    tokio::task::spawn_blocking(move || r2.end(&id, SessionState::Stopped, "sre")).await.unwrap().unwrap();
    for w in waiters {
        assert!(tokio::time::timeout(StdDuration::from_secs(5), w).await.unwrap().unwrap().unwrap());
    }
}

#[test]
fn expiry_is_computed() {
    let (_d, path) = dir();
    let reg = Registry::open(&path).unwrap();
    let created = Utc::now() - Duration::minutes(5);
    let s = reg.create(new_session("bot", "alice", created, Duration::minutes(10))).unwrap();
    let live = reg.get(&s.id).unwrap();
    let end = created + Duration::minutes(10);
    assert_eq!(live.state_at(end - Duration::seconds(1)), SessionState::Active);
    assert!(live.is_active(end - Duration::seconds(1)));
    assert_eq!(live.state_at(end), SessionState::Expired);
    assert!(!live.is_active(end));
    assert_eq!(live.info_at(end).state, SessionState::Expired);
    // Past its end already: listed as expired; ending it leaves it expired but cuts its streams.
    let old = reg.create(new_session("bot", "alice", Utc::now() - Duration::hours(2), Duration::hours(1))).unwrap();
    assert_eq!(old.state, SessionState::Expired);
    let rx = reg.get(&old.id).unwrap().ended();
    let ended = reg.end(&old.id, SessionState::Revoked, "alice").unwrap();
    assert_eq!((ended.state, ended.ended_by), (SessionState::Expired, None));
    assert!(*rx.borrow());
}

#[test]
fn restart_keeps_states_and_counters() {
    let (_d, path) = dir();
    let (kept, revoked) = {
        let reg = Registry::open(&path).unwrap();
        let kept = reg.create(fresh("bot", "alice")).unwrap();
        let revoked = reg.create(fresh("bot", "bob")).unwrap();
        for _ in 0..3 {
            reg.count_request(&kept.id).unwrap();
        }
        assert_eq!(reg.charge(&kept.id, Charge::Mutating).unwrap(), Counters { requests: 3, mutating: 1, deletes: 0 });
        reg.charge(&kept.id, Charge::Delete).unwrap();
        reg.charge(&kept.id, Charge::Delete).unwrap();
        reg.count_request(&kept.id).unwrap();
        reg.end(&revoked.id, SessionState::Revoked, "bob@example.com").unwrap();
        (reg.get(&kept.id).unwrap().info(), reg.get(&revoked.id).unwrap().info())
    };
    assert_eq!((kept.requests, kept.mutating, kept.deletes), (4, 3, 2));
    let reg = Registry::open(&path).unwrap();
    assert_eq!(reg.get(&kept.id).unwrap().info(), kept, "requests flushed at drop, budgets on every charge");
    let r = reg.get(&revoked.id).unwrap();
    assert_eq!(r.info(), revoked);
    assert!(!r.is_active(Utc::now()) && *r.ended().borrow(), "revoked stays revoked");
    assert_eq!(reg.end(&revoked.id, SessionState::Stopped, "x").unwrap(), revoked);
    assert_eq!(reg.list(&Filter::default()).len(), 2);
}

#[test]
fn budgets_survive_a_crash_without_flush() {
    let (_d, path) = dir();
    let reg = Registry::open(&path).unwrap();
    let s = reg.create(fresh("bot", "alice")).unwrap();
    reg.charge(&s.id, Charge::Delete).unwrap();
    // A second handle reads the file as a restarted relay would, while the first still runs.
    let after = Registry::open(&path).unwrap();
    let c = after.get(&s.id).unwrap().counters();
    assert_eq!((c.mutating, c.deletes), (1, 1));
}

#[test]
fn old_sessions_stay_in_the_file_only() {
    let (_d, path) = dir();
    let old = new_session("bot", "alice", Utc::now() - Duration::days(10), Duration::days(2));
    let recent = new_session("bot", "alice", Utc::now() - Duration::days(6), Duration::hours(1));
    {
        let reg = Registry::open(&path).unwrap();
        reg.create(old.clone()).unwrap();
        reg.create(recent.clone()).unwrap();
        // Creating prunes memory too: the 8-day-old one is gone from it already.
        reg.create(fresh("bot", "alice")).unwrap();
        assert!(reg.get(&old.id).is_none());
    }
    let reg = Registry::open(&path).unwrap();
    assert!(reg.get(&old.id).is_none());
    assert_eq!(reg.get(&recent.id).unwrap().info().state, SessionState::Expired);
    assert_eq!(reg.list(&Filter::default()).len(), 2);
    let from_file = reg.end(&old.id, SessionState::Revoked, "x").unwrap();
    assert_eq!((from_file.id.as_str(), from_file.state), (old.id.as_str(), SessionState::Expired));
    assert_eq!(reg.prune(Utc::now() - Duration::days(7)).unwrap(), 1);
    assert!(matches!(reg.end(&old.id, SessionState::Revoked, "x"), Err(RegistryError::NotFound(_))));
    assert_eq!(reg.prune(Utc::now()).unwrap(), 1);
    assert!(reg.get(&recent.id).is_none());
    assert_eq!(reg.list(&Filter::default()).len(), 1);
}

#[test]
fn concurrent_charges_sum() {
    let (_d, path) = dir();
    let reg = Arc::new(Registry::open(&path).unwrap());
    let s = reg.create(fresh("bot", "alice")).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (reg, id) = (reg.clone(), s.id.clone());
            std::thread::spawn(move || {
                for i in 0..40 {
                    reg.count_request(&id).unwrap();
                    reg.charge(&id, if (t + i) % 4 == 0 { Charge::Delete } else { Charge::Mutating }).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let c = reg.get(&s.id).unwrap().counters();
    assert_eq!(c, Counters { requests: 640, mutating: 640, deletes: 160 });
    drop(reg);
    let again = Registry::open(&path).unwrap();
    assert_eq!(again.get(&s.id).unwrap().counters(), c);
}

#[test]
fn checked_charges_never_overspend() {
    let (_d, path) = dir();
    let reg = Arc::new(Registry::open(&path).unwrap());
    let s = reg.create(fresh("bot", "alice")).unwrap();
    let rule = Arc::new(LimitRule {
        index: 0,
        agent: Glob::new("*").unwrap(),
        agent_pattern: "*".into(),
        requests_per_second: None,
        burst: 1,
        max_mutating: Some(50),
        max_deletes: Some(7),
        namespaces: None,
    });
    let delete = Arc::new(crate::kube::request_info::parse(&Method::DELETE, "/api/v1/namespaces/default/pods/p", None).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (reg, id, rule, delete) = (reg.clone(), s.id.clone(), rule.clone(), delete.clone());
            std::thread::spawn(move || (0..10).filter(|_| matches!(reg.charge_checked(&id, &rule, &delete).unwrap(), Ok(Some(Charge::Delete)))).count())
        })
        .collect();
    let let_through: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(let_through, 7);
    assert_eq!(reg.get(&s.id).unwrap().counters(), Counters { requests: 0, mutating: 7, deletes: 7 });
    let refused = reg.charge_checked(&s.id, &rule, &delete).unwrap().unwrap_err();
    assert_eq!(refused.limit, crate::relay::agents::limits::Limit::MaxDeletes);
    let get = crate::kube::request_info::parse(&Method::GET, "/api/v1/namespaces/default/pods", None).unwrap();
    assert!(matches!(reg.charge_checked(&s.id, &rule, &get), Ok(Ok(None))));
    assert!(matches!(reg.charge_checked("0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8b", &rule, &get), Err(RegistryError::NotFound(_))));
    assert!(matches!(reg.charge("0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8b", Charge::Delete), Err(RegistryError::NotFound(_))));
    assert!(matches!(reg.count_request("nope"), Err(RegistryError::NotFound(_))));
}

#[cfg(unix)]
#[test]
fn the_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_d, path) = dir();
    let reg = Registry::open(&path).unwrap();
    reg.create(fresh("bot", "alice")).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(reg.path(), path);
}

#[test]
fn other_files_are_refused_clearly() {
    let (d, _) = dir();
    let junk = d.path().join("junk.sqlite");
    std::fs::write(&junk, b"this is not a database at all, just some text that is long enough to be a header ....".repeat(20)).unwrap();
    let e = Registry::open(&junk).unwrap_err();
    assert!(matches!(e, RegistryError::NotARegistry { .. }), "{e:?}");
    assert!(e.to_string().contains("not an SQLite database") && e.to_string().contains("agents.store"), "{e}");

    let other = d.path().join("other.sqlite");
    Connection::open(&other).unwrap().execute_batch("CREATE TABLE reviews (id TEXT); CREATE TABLE approvals (id TEXT);").unwrap();
    let e = Registry::open(&other).unwrap_err().to_string();
    assert!(e.contains("other tables (approvals, reviews)") && e.contains("not a hoop-kube agent registry"), "{e}");

    let foreign = d.path().join("foreign.sqlite");
    Connection::open(&foreign).unwrap().execute_batch("PRAGMA application_id = 1234;").unwrap();
    assert!(Registry::open(&foreign).unwrap_err().to_string().contains("another application (application_id 0x4d2)"));

    let newer = d.path().join("newer.sqlite");
    drop(Registry::open(&newer).unwrap());
    Connection::open(&newer).unwrap().execute_batch("PRAGMA user_version = 2;").unwrap();
    assert!(matches!(Registry::open(&newer), Err(RegistryError::SchemaTooNew { version: 2, .. })));

    let records = d.path().join("relay-records.sqlite");
    drop(crate::record::store::Store::open(&records, crate::record::store::StoreConfig::default()).unwrap());
    assert!(matches!(Registry::open(&records), Err(RegistryError::NotARegistry { .. })));

    let missing_dir = d.path().join("no/such/dir/agents.sqlite");
    assert!(matches!(Registry::open(&missing_dir), Err(RegistryError::Create { .. })));
    // An empty file (what create_private leaves) is a new registry.
    let empty = d.path().join("empty.sqlite");
    std::fs::write(&empty, b"").unwrap();
    Registry::open(&empty).unwrap();
    Registry::open(&empty).unwrap();
}

#[test]
fn relays_sharing_a_file_add_up_and_learn_of_ends() {
    let (_d, path) = dir();
    let (a, b) = (Registry::open(&path).unwrap(), Registry::open(&path).unwrap());
    let s = a.create(fresh("bot", "alice")).unwrap();
    assert!(b.get(&s.id).is_none());
    assert_eq!(b.sync().unwrap(), 1);
    assert_eq!(b.sync().unwrap(), 0);
    let live_b = b.get(&s.id).unwrap();
    let rule = LimitRule {
        index: 0,
        agent: Glob::new("*").unwrap(),
        agent_pattern: "*".into(),
        requests_per_second: None,
        burst: 1,
        max_mutating: None,
        max_deletes: Some(3),
        namespaces: None,
    };
    let delete = crate::kube::request_info::parse(&Method::DELETE, "/api/v1/namespaces/default/pods/p", None).unwrap();
    // Two deletes through A; B has not synced, yet the file's count stops its second.
    assert_eq!(a.charge(&s.id, Charge::Delete).unwrap().deletes, 1);
    assert_eq!(a.charge(&s.id, Charge::Delete).unwrap().deletes, 2);
    assert!(matches!(b.charge_checked(&s.id, &rule, &delete), Ok(Ok(Some(Charge::Delete)))));
    assert_eq!(live_b.counters().deletes, 3, "B took in the file's count");
    let refused = b.charge_checked(&s.id, &rule, &delete).unwrap().unwrap_err();
    assert_eq!(refused.limit, crate::relay::agents::limits::Limit::MaxDeletes);
    assert!(matches!(a.charge_checked(&s.id, &rule, &delete), Ok(Err(_))), "A refuses by the file even with a stale count");
    // Ended through B: A's watchers learn of it at A's next sync.
    let rx = a.get(&s.id).unwrap().ended();
    b.end(&s.id, SessionState::Stopped, "sre").unwrap();
    assert!(!*rx.borrow());
    assert_eq!(a.sync().unwrap(), 1);
    assert!(*rx.borrow());
    assert_eq!(a.get(&s.id).unwrap().info().state, SessionState::Stopped);
    // A then ending it again sees it ended.
    assert_eq!(a.end(&s.id, SessionState::Revoked, "alice").unwrap().ended_by.as_deref(), Some("sre"));
    // A session only in the file (minted through A, unseen by B) is ended from B, for real.
    let t = a.create(fresh("bot", "alice")).unwrap();
    let ended = b.end(&t.id, SessionState::Revoked, "alice").unwrap();
    assert_eq!(ended.state, SessionState::Revoked);
    assert!(b.get(&t.id).is_some());
    // And if A ends a session B already ended, A takes B's end.
    let u = a.create(fresh("bot", "alice")).unwrap();
    b.sync().unwrap();
    b.end(&u.id, SessionState::Stopped, "sre").unwrap();
    let again = a.end(&u.id, SessionState::Revoked, "alice").unwrap();
    assert_eq!((again.state, again.ended_by.as_deref()), (SessionState::Stopped, Some("sre")));
    // Request counts from both add up in the file.
    a.count_request(&u.id).unwrap();
    b.count_request(&u.id).unwrap();
    a.flush().unwrap();
    b.flush().unwrap();
    drop((a, b));
    assert_eq!(Registry::open(&path).unwrap().get(&u.id).unwrap().counters().requests, 2);
}
