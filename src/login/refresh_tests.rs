//! Offline tests of the credential path: unsigned JWT-shaped tokens in a file store, a dead
//! issuer, an injected clock. The real identity provider is in `tests/credential_refresh.rs`.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::{json, Value};

use super::*;
use crate::login::exec_credential::{ApiVersion, ExecInfo};
use crate::login::store::Backend;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

/// The issuer of the test profile: nothing listens on port 1.
const DEAD_ISSUER: &str = "http://127.0.0.1:1";

/// A JWT-shaped token from [`DEAD_ISSUER`] (not signed: the cache path never verifies).
fn jwt(mut claims: Value) -> String {
    if claims.get("iss").is_none() {
        claims["iss"] = DEAD_ISSUER.into();
    }
    raw_jwt(claims)
}

fn raw_jwt(claims: Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2ln", b64(&json!({"alg": "RS256"})), b64(&claims))
}

struct Bed {
    dir: tempfile::TempDir,
    profile: Profile,
    deps: Deps,
}

fn bed(now: DateTime<Utc>) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let mut profile = Profile::new("dev", "https://relay.example", DEAD_ISSUER).unwrap();
    profile.token_store = Backend::File;
    let store = SecretStore::new_file_in("dev", dir.path().join("secrets")).unwrap();
    let deps = Deps::new(store, dir.path().join("locks")).with_clock(Clock::fixed(now));
    Bed { dir, profile, deps }
}

fn v1() -> ExecInfo {
    ExecInfo::default()
}

fn interactive() -> ExecInfo {
    ExecInfo {
        interactive: true,
        ..ExecInfo::default()
    }
}

#[test]
fn jwt_claims_reads_exp_and_iss_only() {
    let exp = |token: &str| jwt_claims(token).map(|c| c.exp);
    assert_eq!(
        jwt_claims(&jwt(json!({"exp": 1_800_000_000, "sub": "a"}))),
        Some(CachedClaims {
            exp: t(1_800_000_000),
            iss: Some(DEAD_ISSUER.into())
        })
    );
    assert_eq!(
        exp(&jwt(json!({"exp": 1_800_000_000.9}))),
        Some(t(1_800_000_000))
    );
    assert_eq!(
        jwt_claims(&raw_jwt(json!({"exp": 7}))),
        Some(CachedClaims {
            exp: t(7),
            iss: None
        })
    );
    // Padded base64url is fine too.
    let padded = {
        let p = base64::engine::general_purpose::URL_SAFE.encode(json!({"exp": 5}).to_string());
        format!("e30.{p}.x")
    };
    assert_eq!(exp(&padded), Some(t(5)));
    for bad in [
        String::new(),
        "abc".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "e30.!!!.x".into(),
        jwt(json!({"sub": "no exp"})),
        jwt(json!({"exp": "1800000000"})),
        jwt(json!({"exp": 1e300})),
        jwt(json!({"exp": 5, "iss": 5})),
        format!("e30.{}.x", "A".repeat(70_000)),
    ] {
        assert_eq!(jwt_claims(&bad), None, "{bad:.40}");
    }
}

#[tokio::test]
async fn a_cached_token_of_another_issuer_is_not_handed_out() {
    let b = bed(t(1_800_000_000));
    for iss in [
        json!("https://other.example"),
        json!(format!("{DEAD_ISSUER}/")),
        Value::Null,
    ] {
        let mut claims = json!({"exp": 1_800_000_300});
        if !iss.is_null() {
            claims["iss"] = iss.clone();
        }
        b.deps
            .store
            .put(ID_TOKEN, raw_jwt(claims).as_bytes())
            .await
            .unwrap();
        let e = credential(&b.profile, &v1(), &b.deps).await.unwrap_err();
        assert!(
            matches!(e, CredentialError::NeedsLogin { .. }),
            "{iss}: {e:?}"
        );
    }
}

#[tokio::test]
async fn cached_token_is_handed_out_without_network_in_both_versions() {
    let now = t(1_800_000_000);
    let b = bed(now);
    let token = jwt(json!({"exp": 1_800_000_300, "sub": "alice"}));
    b.deps.store.put(ID_TOKEN, token.as_bytes()).await.unwrap();
    // The issuer is dead, and there is no refresh token: only the cache can answer.
    let out = credential(&b.profile, &v1(), &b.deps).await.unwrap();
    assert_eq!(
        out,
        format!(
            r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{token}","expirationTimestamp":"2027-01-15T08:04:00Z"}}}}"#
        )
    );
    let info = ExecInfo {
        api_version: ApiVersion::V1beta1,
        ..interactive()
    };
    let out: Value =
        serde_json::from_str(&credential(&b.profile, &info, &b.deps).await.unwrap()).unwrap();
    assert_eq!(out["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert_eq!(out["status"]["token"], token.as_str());
    // The fast path creates no lock file.
    assert!(!b.dir.path().join("locks").exists());
}

#[tokio::test]
async fn token_within_the_margin_is_not_handed_out() {
    let now = t(1_800_000_000);
    for left in [60, 30, 0, -100] {
        let b = bed(now);
        let token = jwt(json!({"exp": 1_800_000_000 + left}));
        b.deps.store.put(ID_TOKEN, token.as_bytes()).await.unwrap();
        b.deps.store.put(REFRESH_TOKEN, b"rt").await.unwrap();
        // It tries to refresh (the issuer is dead) instead of printing the old token.
        let e = credential(&b.profile, &v1(), &b.deps).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(
                &e,
                CredentialError::Refresh {
                    source: LoginError::Http { .. },
                    ..
                }
            ),
            "{left}: {e:?}"
        );
        assert!(msg.starts_with("hoop-kube: cannot refresh the session for profile \"dev\": could not reach the identity provider at http://127.0.0.1:"), "{msg}");
        assert!(!msg.contains('\n') && !msg.contains(&token), "{msg}");
        // Without a refresh token: a login is needed; the old token is still not handed out.
        b.deps.store.delete(REFRESH_TOKEN).await.unwrap();
        let e = credential(&b.profile, &v1(), &b.deps).await.unwrap_err();
        assert!(
            matches!(
                e,
                CredentialError::NeedsLogin {
                    reason: LoginReason::Expired,
                    ..
                }
            ),
            "{e:?}"
        );
        // The lock file exists now, private, with our pid in it.
        let lock = b.dir.path().join("locks/dev.lock");
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap().trim(),
            std::process::id().to_string()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                std::fs::metadata(b.dir.path().join("locks"))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o700
            );
        }
    }
    // 61 s left: handed out, announced 1 s from now.
    let b = bed(now);
    b.deps
        .store
        .put(ID_TOKEN, jwt(json!({"exp": 1_800_000_061})).as_bytes())
        .await
        .unwrap();
    let out: Value =
        serde_json::from_str(&credential(&b.profile, &v1(), &b.deps).await.unwrap()).unwrap();
    assert_eq!(out["status"]["expirationTimestamp"], "2027-01-15T08:00:01Z");
}

#[tokio::test]
async fn nothing_stored_needs_login_and_says_what_to_run() {
    let b = bed(t(1_800_000_000));
    let e = credential(&b.profile, &v1(), &b.deps).await.unwrap_err();
    assert!(
        matches!(
            e,
            CredentialError::NeedsLogin {
                reason: LoginReason::NotLoggedIn,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "hoop-kube: profile \"dev\" is not logged in; run: hoop-kube login --profile dev"
    );
    let e = credential(&b.profile, &interactive(), &b.deps)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            CredentialError::InteractiveLoginRequired {
                reason: LoginReason::NotLoggedIn,
                ..
            }
        ),
        "{e:?}"
    );

    // An ID token but no refresh token (a provider that issues none): expired.
    b.deps
        .store
        .put(ID_TOKEN, jwt(json!({"exp": 1})).as_bytes())
        .await
        .unwrap();
    let e = credential(&b.profile, &v1(), &b.deps).await.unwrap_err();
    assert_eq!(e.to_string(), "hoop-kube: the session for profile \"dev\" has expired; run: hoop-kube login --profile dev");
    let e = credential(&b.profile, &interactive(), &b.deps)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            CredentialError::InteractiveLoginRequired {
                reason: LoginReason::Expired,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "hoop-kube: the session for profile \"dev\" has expired; run: hoop-kube login --profile dev");

    // Garbage in the id_token entry reads as no token (and is never printed).
    b.deps.store.put(ID_TOKEN, b"not a jwt").await.unwrap();
    assert!(matches!(
        credential(&b.profile, &v1(), &b.deps).await,
        Err(CredentialError::NeedsLogin { .. })
    ));
}

#[tokio::test]
async fn the_clock_decides() {
    let b = bed(t(1_800_000_000));
    b.deps
        .store
        .put(ID_TOKEN, jwt(json!({"exp": 1_800_000_300})).as_bytes())
        .await
        .unwrap();
    assert!(credential(&b.profile, &v1(), &b.deps).await.is_ok());
    let later = Deps {
        clock: Clock::fixed(t(1_800_000_241)),
        ..b.deps
    };
    assert!(matches!(
        credential(&b.profile, &v1(), &later).await,
        Err(CredentialError::NeedsLogin { .. })
    ));
    let later = Deps {
        clock: Clock::fixed(t(1_800_000_239)),
        ..later
    };
    assert!(credential(&b.profile, &v1(), &later).await.is_ok());
    let wider = Deps {
        margin: Duration::from_secs(120),
        ..later
    };
    assert!(credential(&b.profile, &v1(), &wider).await.is_err());
}

#[tokio::test]
async fn a_store_of_another_profile_is_refused() {
    let b = bed(t(0));
    let mut other = b.profile.clone();
    other.name = "prod".into();
    let e = credential(&other, &v1(), &b.deps).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "hoop-kube: the secret store is for profile \"dev\", not \"prod\""
    );
}

#[tokio::test]
async fn store_errors_are_one_line() {
    let b = bed(t(0));
    b.deps.store.put(ID_TOKEN, b"x").await.unwrap();
    let secrets = b.dir.path().join("secrets/dev.json");
    std::fs::write(&secrets, "{").unwrap();
    let e = credential(&b.profile, &v1(), &b.deps).await.unwrap_err();
    assert!(matches!(e, CredentialError::Store { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("hoop-kube: cannot read the tokens of profile \"dev\": "),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}

#[tokio::test]
async fn the_lock_excludes_other_holders_and_times_out_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let held = lock_profile(dir.path(), "dev", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(held.path(), dir.path().join("dev.lock"));
    // Another open file description in the same process: flock(2) semantics, it must wait.
    let began = std::time::Instant::now();
    let e = lock_profile(dir.path(), "dev", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert!(
        matches!(e, CredentialError::LockTimeout { holder: Some(p), .. } if p == std::process::id()),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "hoop-kube: another hoop-kube (pid {}) has held {} for 0 s",
            std::process::id(),
            dir.path().join("dev.lock").display()
        )),
        "{msg}"
    );
    // Another profile is not affected.
    drop(
        lock_profile(dir.path(), "prod", Duration::from_millis(100))
            .await
            .unwrap(),
    );
    // Released on drop; a waiter gets it as soon as it is free.
    let waiter = {
        let d = dir.path().to_path_buf();
        tokio::spawn(async move {
            lock_profile(&d, "dev", Duration::from_secs(5))
                .await
                .map(|_| std::time::Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let released = std::time::Instant::now();
    drop(held);
    let got = waiter.await.unwrap().unwrap();
    assert!(
        got >= released && got - released < Duration::from_secs(1),
        "{:?}",
        got - released
    );
    // Invalid profile names never become file names.
    assert!(matches!(
        lock_profile(dir.path(), "../x", Duration::from_millis(10)).await,
        Err(CredentialError::Setup(_))
    ));
}

#[tokio::test]
async fn a_waiter_returns_the_token_another_holder_stores() {
    let now = t(1_800_000_000);
    let b = bed(now);
    b.deps
        .store
        .put(ID_TOKEN, jwt(json!({"exp": 1_800_000_010})).as_bytes())
        .await
        .unwrap();
    b.deps.store.put(REFRESH_TOKEN, b"rt").await.unwrap();
    // "Another process" holds the lock, and stores a fresh token 300 ms later.
    let held = lock_profile(&b.deps.lock_dir, "dev", Duration::from_secs(1))
        .await
        .unwrap();
    let fresh = jwt(json!({"exp": 1_800_000_300}));
    let store2 = SecretStore::new_file_in("dev", b.dir.path().join("secrets")).unwrap();
    let writer = {
        let fresh = fresh.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            store2.put(ID_TOKEN, fresh.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(held);
        })
    };
    let began = std::time::Instant::now();
    let out: Value =
        serde_json::from_str(&credential(&b.profile, &v1(), &b.deps).await.unwrap()).unwrap();
    let took = began.elapsed();
    assert_eq!(
        out["status"]["token"],
        fresh.as_str(),
        "the other holder's token, not a refresh (the issuer is dead)"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "returned before the lock was released: {took:?}"
    );
    writer.abort();
}

#[test]
fn login_lines_are_exact() {
    let e = CredentialError::NeedsLogin {
        profile: "P".into(),
        reason: LoginReason::Expired,
    };
    assert_eq!(
        e.to_string(),
        "hoop-kube: the session for profile \"P\" has expired; run: hoop-kube login --profile P"
    );
    let e = CredentialError::ShortLived {
        profile: "P".into(),
        left_secs: 30,
        margin_secs: 60,
    };
    assert!(!e.to_string().contains('\n'));
}
