use super::*;

fn new(fp: &str) -> NewReview {
    NewReview {
        fingerprint: fp.into(),
        subject: "alice".into(),
        username: "alice".into(),
        agent: None,
        verb: "delete".into(),
        method: "DELETE".into(),
        path: "/api/v1/namespaces/prod/pods/web".into(),
        query: None,
        body_sha256: "e3b0".into(),
        summary: "delete pods \"web\" in namespace \"prod\"".into(),
        rule: "prod-deletes".into(),
        reviewers: vec!["sre".into()],
        allow_self_approval: false,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("relay.sqlite")).unwrap();
    (dir, s)
}

fn pending(c: Claim) -> (Review, bool) {
    match c {
        Claim::Pending(r, created) => (r, created),
        other => panic!("expected pending, got {other:?}"),
    }
}

#[test]
fn ids_are_short_and_unambiguous() {
    let id = new_id();
    assert!(is_id(&id), "{id}");
    assert!(!is_id("r-ABCDEFGHIJ") && !is_id("r-0123456789") && !is_id("x-abcdefghij") && !is_id("r-abc"));
}

#[test]
fn pending_is_reused_then_approved_then_spent_once() {
    let (_d, s) = open();
    let (r, created) = pending(s.claim_blocking(&new("fp"), 100, 600).unwrap());
    assert!(created);
    assert_eq!((r.state, r.expires_at), (State::Pending, 700));
    let (again, created) = pending(s.claim_blocking(&new("fp"), 101, 600).unwrap());
    assert_eq!((again.id.as_str(), created), (r.id.as_str(), false));
    let (other, created) = pending(s.claim_blocking(&new("other"), 101, 600).unwrap());
    assert!(created && other.id != r.id);

    let Decided::Done(d) = s.decide_blocking(&r.id, true, "sam", None, 110, 60).unwrap() else { panic!() };
    assert_eq!((d.state, d.decided_by.as_deref(), d.expires_at), (State::Approved, Some("sam"), 170));
    // Deciding twice is refused.
    assert!(matches!(s.decide_blocking(&r.id, false, "sam", Some("no"), 111, 60).unwrap(), Decided::NotPending(x) if x.state == State::Approved));
    assert!(matches!(s.decide_blocking("r-aaaaaaaaaa", true, "sam", None, 111, 60).unwrap(), Decided::NotFound));

    // One execution spends it; the next identical request opens a new review.
    let Claim::Spent(sp) = s.claim_blocking(&new("fp"), 120, 600).unwrap() else { panic!("expected spent") };
    assert_eq!((sp.id.as_str(), sp.state), (r.id.as_str(), State::Spent));
    let (fresh, created) = pending(s.claim_blocking(&new("fp"), 121, 600).unwrap());
    assert!(created && fresh.id != r.id);
    assert!(!s.spend_blocking(&r.id, 122).unwrap());
}

#[test]
fn denied_reviews_keep_the_reason_and_are_never_spent() {
    let (_d, s) = open();
    let (r, _) = pending(s.claim_blocking(&new("fp"), 100, 600).unwrap());
    let Decided::Done(d) = s.decide_blocking(&r.id, false, "sam", Some("not today"), 101, 60).unwrap() else { panic!() };
    assert_eq!((d.state, d.reason.as_deref()), (State::Denied, Some("not today")));
    assert!(!s.spend_blocking(&r.id, 102).unwrap());
    let (fresh, created) = pending(s.claim_blocking(&new("fp"), 103, 600).unwrap());
    assert!(created && fresh.id != r.id);
}

#[test]
fn expired_approvals_are_never_spent_and_pending_reviews_expire() {
    let (_d, s) = open();
    let (r, _) = pending(s.claim_blocking(&new("fp"), 100, 600).unwrap());
    s.decide_blocking(&r.id, true, "sam", None, 110, 60).unwrap();
    assert_eq!(s.get_blocking(&r.id, 169).unwrap().unwrap().state, State::Approved);
    assert_eq!(s.get_blocking(&r.id, 170).unwrap().unwrap().state, State::Expired);
    assert!(!s.spend_blocking(&r.id, 170).unwrap());
    let (fresh, created) = pending(s.claim_blocking(&new("fp"), 171, 600).unwrap());
    assert!(created && fresh.id != r.id);

    // An undecided review cannot be approved after its ttl, and the sweep records it.
    assert!(matches!(s.decide_blocking(&fresh.id, true, "sam", None, 771, 60).unwrap(), Decided::NotPending(x) if x.state == State::Expired));
    let swept = s.sweep_blocking(771).unwrap();
    let ids: Vec<&str> = swept.iter().map(|r| r.id.as_str()).collect();
    assert!(ids.contains(&fresh.id.as_str()) && ids.contains(&r.id.as_str()), "{ids:?}");
    assert!(s.sweep_blocking(772).unwrap().is_empty());
}

#[test]
fn an_approval_is_spent_once_under_concurrency_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sqlite");
    let s = Store::open(&path).unwrap();
    let (r, _) = pending(s.claim_blocking(&new("fp"), 100, 600).unwrap());
    s.decide_blocking(&r.id, true, "sam", None, 101, 600).unwrap();
    // Sixteen "relays", each with its own connection to the file, race for the one approval.
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let path = path.clone();
            let id = r.id.clone();
            std::thread::spawn(move || {
                let s = Store::open(&path).unwrap();
                if i % 2 == 0 { s.spend_blocking(&id, 102).unwrap() } else { matches!(s.claim_blocking(&new("fp"), 102, 600).unwrap(), Claim::Spent(_)) }
            })
        })
        .collect();
    let wins = handles.into_iter().map(|h| h.join().unwrap()).filter(|w| *w).count();
    assert_eq!(wins, 1);
}

#[test]
fn reviews_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sqlite");
    let id = {
        let s = Store::open(&path).unwrap();
        pending(s.claim_blocking(&new("fp"), 100, 600).unwrap()).0.id
    };
    let s = Store::open(&path).unwrap();
    let r = s.get_blocking(&id, 200).unwrap().unwrap();
    assert_eq!((r.state, r.reviewers.clone(), r.summary.as_str()), (State::Pending, vec!["sre".to_string()], "delete pods \"web\" in namespace \"prod\""));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["createdAt"], "1970-01-01T00:01:40Z");
    assert_eq!(serde_json::from_value::<Review>(json).unwrap(), r);
}
