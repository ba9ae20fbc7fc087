//! `hoop_kube::login::device` against the real OpenID provider (npm `oidc-provider`, run by
//! `tests/idp/idp.mjs`): discovery, the device authorization grant approved through the
//! test route and through the provider's own HTML pages, denial, expiry, `slow_down`, and
//! refresh-token rotation.
//!
//! Every test starts its own IdP (a node process, ~0.5 s), so they run in parallel.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::idp::{decode_jwt, Idp, CLIENT_ID};
use hoop_kube::login::device::{self, DeviceAuthorization, LoginError, Provider, Tokens};

/// The HTTP client hoop-kube would use: no redirects followed.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

async fn discovered(idp: &Idp) -> (reqwest::Client, Provider) {
    let http = http();
    let provider = Provider::discover(&http, &idp.issuer).await.expect("discovery of the test IdP");
    (http, provider)
}

async fn start(http: &reqwest::Client, provider: &Provider) -> DeviceAuthorization {
    device::start(http, provider, CLIENT_ID, &["groups"]).await.expect("device authorization")
}

/// What a successful login or refresh must hold for alice.
fn assert_alice(t: &Tokens, idp: &Idp) {
    assert_eq!(t.subject, "alice");
    assert_eq!(t.groups, ["dev"]);
    let (header, claims) = decode_jwt(t.id_token.expose());
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], idp.issuer.as_str());
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(t.id_token_expiry.timestamp(), claims["exp"].as_i64().unwrap());
    let left = t.id_token_expiry - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(250) && left <= chrono::Duration::seconds(300), "ID token TTL is 300 s: {left}");
    assert!(!t.access_token.expose().is_empty());
    assert!(t.refresh_token.is_some(), "offline_access: a refresh token");
}

#[tokio::test]
async fn discovery_reads_the_test_idp_and_needs_the_exact_issuer() {
    let idp = Idp::start().await;
    let (http, p) = discovered(&idp).await;
    assert_eq!(p.issuer, idp.issuer);
    assert_eq!(p.device_authorization_endpoint, idp.url("/device/auth"));
    assert_eq!(p.token_endpoint, idp.url("/token"));
    assert_eq!(p.jwks_uri, idp.url("/jwks"));
    assert_eq!(p.revocation_endpoint, Some(idp.url("/token/revocation")));

    let e = Provider::discover(&http, &format!("{}/", idp.issuer)).await.unwrap_err();
    assert!(matches!(e, LoginError::Discovery { .. }), "{e:?}");
    assert!(e.to_string().contains("unexpected issuer"), "{e}");
}

#[tokio::test]
async fn device_login_approved_through_the_test_route() {
    let idp = Idp::start().await;
    let (http, p) = discovered(&idp).await;
    let auth = start(&http, &p).await;
    assert_eq!(auth.verification_uri, idp.url("/device"));
    assert_eq!(auth.verification_uri_complete, Some(idp.url(&format!("/device?user_code={}", auth.user_code))));
    assert_eq!(auth.expires_in, Duration::from_secs(600));
    assert_eq!(auth.interval, Duration::from_secs(1), "tests/idp adds interval 1");

    idp.approve(&auth.user_code, "alice").await;
    let mut waits = 0;
    let t = device::poll(&http, &p, CLIENT_ID, &auth, |_| waits += 1).await.expect("approved login");
    assert_alice(&t, &idp);
    assert_eq!(waits, 0, "approved before the first poll: no waiting");
    assert_eq!(idp.polls(&auth.user_code).await.len(), 1);
    let (_, claims) = decode_jwt(t.id_token.expose());
    assert_eq!(claims["email_verified"], true);
}

#[tokio::test]
async fn device_login_approved_through_the_providers_own_pages() {
    let idp = Idp::start().await;
    let (http, p) = discovered(&idp).await;
    let auth = start(&http, &p).await;

    // hoop-kube polls while the human walks the pages, as in real life.
    let auth = Arc::new(auth);
    let waits = Arc::new(Mutex::new(Vec::new()));
    let task = {
        let (http, p, a, w) = (http.clone(), p.clone(), auth.clone(), waits.clone());
        tokio::spawn(async move { device::poll(&http, &p, CLIENT_ID, &a, move |e| w.lock().unwrap().push(e)).await })
    };

    let pages = Browser::new().approve(auth.verification_uri_complete.as_deref().unwrap(), "alice").await;
    let t = tokio::time::timeout(Duration::from_secs(20), task).await.expect("poll finishes").unwrap().expect("login");
    assert_alice(&t, &idp);
    let waits = waits.lock().unwrap().clone();
    assert!(!waits.is_empty(), "on_wait runs while the code is pending");
    assert!(waits.windows(2).all(|w| w[0] <= w[1]), "elapsed grows: {waits:?}");
    eprintln!("approved through: {}", pages.join(" → "));
}

#[tokio::test]
async fn denied_login_is_access_denied() {
    let idp = Idp::start().await;
    let (http, p) = discovered(&idp).await;
    let auth = start(&http, &p).await;
    idp.deny(&auth.user_code).await;
    let e = device::poll(&http, &p, CLIENT_ID, &auth, |_| {}).await.unwrap_err();
    assert!(matches!(e, LoginError::AccessDenied), "{e:?}");
    assert_eq!(e.to_string(), "the login was denied at the identity provider");
}

#[tokio::test]
async fn unapproved_code_expires() {
    let idp = Idp::start_with_env(&[("IDP_DEVICE_CODE_TTL", "3")]).await;
    let (http, p) = discovered(&idp).await;
    let auth = start(&http, &p).await;
    assert_eq!(auth.expires_in, Duration::from_secs(3));
    let began = Instant::now();
    let mut waits = Vec::new();
    let e = device::poll(&http, &p, CLIENT_ID, &auth, |e| waits.push(e)).await.unwrap_err();
    let took = began.elapsed();
    assert!(matches!(e, LoginError::ExpiredToken), "{e:?}");
    assert_eq!(e.to_string(), "the code expired before it was approved; run `hoop-kube login` again");
    // It polled once a second until the code expired, and then stopped.
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(5), "{took:?}");
    let polls = idp.polls(&auth.user_code).await;
    assert!((2..=4).contains(&polls.len()), "{polls:?}");
    let expires_ms = auth.expires_at().timestamp_millis() as u64;
    assert!(polls.iter().all(|&t| t <= expires_ms + 1000), "no polls long after expiry: {polls:?} vs {expires_ms}");
    assert!(!waits.is_empty());
}

/// The IdP answers one poll with `slow_down`; the poll after it must come at least 5 s later
/// than the interval (1 s) says. The timestamps are the IdP's own, and the 5 s are real: the
/// test costs ~7 s rather than hiding the increment behind a test-only knob.
#[tokio::test]
async fn slow_down_adds_five_seconds() {
    let idp = Idp::start().await;
    let (http, p) = discovered(&idp).await;
    let auth = Arc::new(start(&http, &p).await);
    let task = {
        let (http, p, a) = (http.clone(), p.clone(), auth.clone());
        tokio::spawn(async move { device::poll(&http, &p, CLIENT_ID, &a, |_| {}).await })
    };
    let wait_for_polls = |n: usize| {
        let idp = &idp;
        let user_code = auth.user_code.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let polls = idp.polls(&user_code).await;
                if polls.len() >= n {
                    return polls;
                }
                assert!(Instant::now() < deadline, "only {} polls: {polls:?}", polls.len());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for_polls(1).await; // answered authorization_pending
    idp.slow_down(&auth.user_code, 1).await;
    wait_for_polls(2).await; // answered slow_down
    idp.approve(&auth.user_code, "alice").await;
    let t = tokio::time::timeout(Duration::from_secs(20), task).await.expect("poll finishes").unwrap().expect("login");
    assert_alice(&t, &idp);

    let polls = idp.polls(&auth.user_code).await;
    assert_eq!(polls.len(), 3, "pending, slow_down, tokens: {polls:?}");
    let (gap1, gap2) = (polls[1] - polls[0], polls[2] - polls[1]);
    eprintln!("poll gaps: {gap1} ms, then {gap2} ms after slow_down");
    assert!((1000..2500).contains(&gap1), "interval 1 s: {gap1} ms");
    assert!(gap2 >= 6000, "interval + 5 s after slow_down: {gap2} ms");
    // Both gaps carry the same request latency; allow it some jitter.
    assert!(gap2 >= gap1 + 4800, "the gap grows by 5 s: {gap1} ms → {gap2} ms");
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_is_invalid_grant() {
    let idp = Idp::start().await;
    let (http, p) = discovered(&idp).await;
    let auth = start(&http, &p).await;
    idp.approve(&auth.user_code, "alice").await;
    let first = device::poll(&http, &p, CLIENT_ID, &auth, |_| {}).await.expect("login");
    let rt1 = first.refresh_token.clone().unwrap();

    let second = device::refresh(&http, &p, CLIENT_ID, rt1.expose()).await.expect("refresh");
    assert_alice(&second, &idp);
    let rt2 = second.refresh_token.clone().unwrap();
    assert_ne!(rt1, rt2, "refresh tokens rotate");

    let e = device::refresh(&http, &p, CLIENT_ID, rt1.expose()).await.unwrap_err();
    assert!(matches!(e, LoginError::InvalidGrant { .. }), "{e:?}");
    assert_eq!(e.to_string(), "the refresh token was revoked, expired or already used; run `hoop-kube login`");
    assert_eq!(
        e.for_profile("dev").to_string(),
        "the refresh token was revoked, expired or already used; run `hoop-kube login --profile dev`"
    );

    // oidc-provider treats the reuse as theft and revokes the whole grant: the newest refresh
    // token is dead too (why `hoop-kube credential` must refresh single-flight).
    let e = device::refresh(&http, &p, CLIENT_ID, rt2.expose()).await.unwrap_err();
    assert!(matches!(e, LoginError::InvalidGrant { .. }), "{e:?}");
}

#[tokio::test]
async fn unreachable_provider_is_an_http_error() {
    let idp = Idp::start().await;
    let issuer = idp.issuer.clone();
    idp.stop().await;
    let e = Provider::discover(&http(), &issuer).await.unwrap_err();
    assert!(matches!(e, LoginError::Http { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("could not reach the identity provider at {issuer}/.well-known/openid-configuration: ")), "{msg}");
    assert!(!msg.contains('\n'));
}
