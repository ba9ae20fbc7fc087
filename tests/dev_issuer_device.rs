//! The relay's built-in dev issuer ([`DevIssuer`]) against the real login client
//! (`hoop_kube::login::device`): discovery, the device authorization grant approved in-process
//! and on the issuer's own page, denial, expiry, `slow_down`, and refresh-token rotation — the
//! same ground `tests/login_device.rs` covers against oidc-provider. The ID tokens must also
//! pass the relay's own verifier.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoop_kube::login::device::{self, DeviceAuthorization, LoginError, Provider, Tokens};
use hoop_kube::relay::dev_issuer::{DevIssuer, DevIssuerOptions, TokenRequests};
use hoop_kube::relay::oidc::{OidcSettings, Verifier};
use serde_json::{json, Value};

const CLIENT_ID: &str = "hoop-kube";

/// The HTTP client hoop-kube would use: no redirects followed.
fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("reqwest client")
}

async fn issuer_with(options: DevIssuerOptions) -> (DevIssuer, reqwest::Client, Provider) {
    let iss = DevIssuer::start_with(options).await.expect("dev issuer");
    iss.register_user("alice", &["dev"], Value::Null);
    iss.register_user("agent-bot", &["agents"], json!({"act": {"sub": "alice"}}));
    let http = http();
    let provider = Provider::discover(&http, iss.issuer()).await.expect("discovery of the dev issuer");
    (iss, http, provider)
}

async fn issuer() -> (DevIssuer, reqwest::Client, Provider) {
    issuer_with(DevIssuerOptions::default()).await
}

async fn start(http: &reqwest::Client, provider: &Provider) -> DeviceAuthorization {
    device::start(http, provider, CLIENT_ID, &["groups"]).await.expect("device authorization")
}

fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// What a login or refresh must hold for alice, checked by the relay's verifier too.
async fn assert_alice(t: &Tokens, iss: &DevIssuer) {
    assert_eq!(t.subject, "alice");
    assert_eq!(t.groups, ["dev"]);
    let left = t.id_token_expiry - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(590) && left <= chrono::Duration::seconds(600), "ID token TTL is 10 min: {left}");
    assert!(!t.access_token.expose().is_empty());
    assert!(t.refresh_token.is_some());
    let c = claims(t.id_token.expose());
    assert_eq!((c["iss"].as_str(), c["aud"].as_str()), (Some(iss.issuer()), Some(CLIENT_ID)));
    let verifier = Verifier::discover(OidcSettings::new(iss.issuer(), CLIENT_ID)).await.expect("relay verifier");
    let id = verifier.verify(t.id_token.expose()).await.expect("the relay accepts the ID token");
    assert_eq!(id.subject, "alice");
}

#[tokio::test]
async fn discovery_reads_the_dev_issuer() {
    let (iss, http, p) = issuer().await;
    assert_eq!(p.issuer, iss.issuer());
    assert_eq!(p.device_authorization_endpoint, iss.device_authorization_endpoint());
    assert_eq!(p.token_endpoint, iss.token_endpoint());
    assert_eq!(p.jwks_uri, iss.jwks_uri());
    assert_eq!(p.revocation_endpoint, None);
    let e = Provider::discover(&http, &format!("{}/", iss.issuer())).await.unwrap_err();
    assert!(matches!(e, LoginError::Discovery { .. }), "{e:?}");
}

#[tokio::test]
async fn login_approved_in_process_before_the_first_poll() {
    let (iss, http, p) = issuer().await;
    let auth = start(&http, &p).await;
    assert_eq!(auth.verification_uri, format!("{}/device", iss.issuer()));
    assert_eq!(auth.verification_uri_complete, Some(format!("{}/device?user_code={}", iss.issuer(), auth.user_code)));
    assert_eq!((auth.expires_in, auth.interval), (Duration::from_secs(600), Duration::from_secs(1)));
    assert_eq!(iss.pending()[0].scope, "openid offline_access email profile groups");

    iss.approve(&auth.user_code, "alice").expect("approve");
    let mut waits = 0;
    let t = device::poll(&http, &p, CLIENT_ID, &auth, |_| waits += 1).await.expect("approved login");
    assert_alice(&t, &iss).await;
    assert_eq!(waits, 0, "approved before the first poll: no waiting");
    assert_eq!(iss.polls(&auth.user_code).len(), 1);
    assert_eq!(iss.token_requests(), TokenRequests { device_code: 1, refresh_token: 0, other: 0 });
}

/// What `hoop-kube demo` does: take a mark, start the login elsewhere, approve whatever login
/// appears after the mark.
#[tokio::test]
async fn login_approved_through_wait_for_login_while_polling() {
    let (iss, http, p) = issuer().await;
    let stale = start(&http, &p).await; // an abandoned login must not be picked
    let mark = iss.device_authorizations();
    let login = {
        let (http, p) = (http.clone(), p.clone());
        tokio::spawn(async move {
            let auth = device::start(&http, &p, CLIENT_ID, &[]).await?;
            tokio::time::sleep(Duration::from_millis(300)).await; // let it poll while pending
            device::poll(&http, &p, CLIENT_ID, &auth, |_| {}).await.map(|t| (auth.user_code, t))
        })
    };
    let pending = iss.wait_for_login(mark, Duration::from_secs(10)).await.expect("a new login");
    assert_ne!(pending.user_code, stale.user_code);
    assert_eq!(pending.client_id, CLIENT_ID);
    iss.approve(&pending.user_code, "agent-bot").expect("approve");
    let (user_code, t) = tokio::time::timeout(Duration::from_secs(10), login).await.unwrap().unwrap().expect("login");
    assert_eq!(user_code, pending.user_code);
    assert_eq!((t.subject.as_str(), t.groups.as_slice()), ("agent-bot", ["agents".to_string()].as_slice()));
    assert_eq!(claims(t.id_token.expose())["act"], json!({"sub": "alice"}));
    assert_eq!(iss.pending().len(), 1, "only the stale login still waits");
}

#[tokio::test]
async fn login_approved_on_the_issuers_page() {
    let (iss, http, p) = issuer().await;
    let auth = Arc::new(start(&http, &p).await);
    let waits = Arc::new(Mutex::new(Vec::new()));
    let task = {
        let (http, p, a, w) = (http.clone(), p.clone(), auth.clone(), waits.clone());
        tokio::spawn(async move { device::poll(&http, &p, CLIENT_ID, &a, move |e| w.lock().unwrap().push(e)).await })
    };
    tokio::time::sleep(Duration::from_millis(1200)).await; // a poll or two while pending

    // The human: open the link, press "alice".
    let page = http.get(auth.verification_uri_complete.as_deref().unwrap()).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    let xsrf = {
        let at = page.find("name=\"xsrf\" value=\"").expect("an xsrf field") + 19;
        page[at..at + page[at..].find('"').unwrap()].to_string()
    };
    let form = [("user_code", auth.user_code.as_str()), ("xsrf", xsrf.as_str()), ("subject", "alice")];
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let done = http
        .post(format!("{}/device", iss.issuer()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status().as_u16(), 200);
    assert!(done.text().await.unwrap().contains("Signed in as <strong>alice</strong>"));

    let t = tokio::time::timeout(Duration::from_secs(10), task).await.expect("poll finishes").unwrap().expect("login");
    assert_alice(&t, &iss).await;
    let waits = waits.lock().unwrap().clone();
    assert!(!waits.is_empty(), "on_wait ran while the code was pending");
    assert!(iss.polls(&auth.user_code).len() >= 2);
}

#[tokio::test]
async fn denied_login_is_access_denied() {
    let (iss, http, p) = issuer().await;
    let auth = start(&http, &p).await;
    iss.deny(&auth.user_code).expect("deny");
    let e = device::poll(&http, &p, CLIENT_ID, &auth, |_| {}).await.unwrap_err();
    assert!(matches!(e, LoginError::AccessDenied), "{e:?}");
}

#[tokio::test]
async fn unapproved_code_expires() {
    let (iss, http, p) = issuer_with(DevIssuerOptions { device_code_ttl: Duration::from_secs(2), ..Default::default() }).await;
    let auth = start(&http, &p).await;
    assert_eq!(auth.expires_in, Duration::from_secs(2));
    let began = Instant::now();
    let e = device::poll(&http, &p, CLIENT_ID, &auth, |_| {}).await.unwrap_err();
    let took = began.elapsed();
    assert!(matches!(e, LoginError::ExpiredToken), "{e:?}");
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(5), "{took:?}");
    let polls = iss.polls(&auth.user_code);
    assert!((2..=4).contains(&polls.len()), "{polls:?}");
}

/// One forced `slow_down`: the client's next poll comes interval + 5 s later, and the issuer,
/// which raised the code's interval to 6 s, does not answer `slow_down` again. Costs ~7 s.
#[tokio::test]
async fn slow_down_adds_five_seconds() {
    let (iss, http, p) = issuer().await;
    let auth = Arc::new(start(&http, &p).await);
    let task = {
        let (http, p, a) = (http.clone(), p.clone(), auth.clone());
        tokio::spawn(async move { device::poll(&http, &p, CLIENT_ID, &a, |_| {}).await })
    };
    let wait_for_polls = |n: usize| {
        let (iss, user_code) = (&iss, auth.user_code.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(15);
            while iss.polls(&user_code).len() < n {
                assert!(Instant::now() < deadline, "only {} polls", iss.polls(&user_code).len());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for_polls(1).await; // authorization_pending
    iss.force_slow_down(&auth.user_code, 1).expect("known code");
    wait_for_polls(2).await; // slow_down
    iss.approve(&auth.user_code, "alice").expect("approve");
    let t = tokio::time::timeout(Duration::from_secs(20), task).await.expect("poll finishes").unwrap().expect("login");
    assert_alice(&t, &iss).await;
    let polls = iss.polls(&auth.user_code);
    assert_eq!(polls.len(), 3, "pending, slow_down, tokens: {polls:?}");
    let (gap1, gap2) = (polls[1] - polls[0], polls[2] - polls[1]);
    assert!(gap1 >= Duration::from_secs(1) && gap1 < Duration::from_millis(2500), "interval 1 s: {gap1:?}");
    assert!(gap2 >= Duration::from_secs(6), "interval + 5 s after slow_down: {gap2:?}");
}

#[tokio::test]
async fn refresh_rotates_and_reusing_an_old_token_revokes_the_grant() {
    let (iss, http, p) = issuer().await;
    let auth = start(&http, &p).await;
    iss.approve(&auth.user_code, "alice").unwrap();
    let first = device::poll(&http, &p, CLIENT_ID, &auth, |_| {}).await.expect("login");
    let rt1 = first.refresh_token.clone().unwrap();

    tokio::time::sleep(Duration::from_millis(1100)).await; // a new iat, so a new ID token
    let second = device::refresh(&http, &p, CLIENT_ID, rt1.expose()).await.expect("refresh");
    assert_alice(&second, &iss).await;
    let rt2 = second.refresh_token.clone().unwrap();
    assert_ne!(rt1, rt2, "refresh tokens rotate");
    assert_ne!(first.id_token, second.id_token);
    assert!(second.id_token_expiry > first.id_token_expiry);

    let e = device::refresh(&http, &p, CLIENT_ID, rt1.expose()).await.unwrap_err();
    assert!(matches!(e, LoginError::InvalidGrant { .. }), "{e:?}");
    // The reuse revoked the whole grant: the newest token is dead too.
    let e = device::refresh(&http, &p, CLIENT_ID, rt2.expose()).await.unwrap_err();
    assert!(matches!(e, LoginError::InvalidGrant { .. }), "{e:?}");
    assert_eq!(iss.token_requests(), TokenRequests { device_code: 1, refresh_token: 3, other: 0 });
}

#[tokio::test]
async fn unknown_client_is_rejected() {
    let (_iss, http, p) = issuer().await;
    let e = device::start(&http, &p, "someone-else", &[]).await.unwrap_err();
    match &e {
        LoginError::Rejected { error, description, .. } => {
            assert_eq!(error, "invalid_client");
            assert_eq!(description.as_deref(), Some("unknown client"));
        }
        other => panic!("{other:?}"),
    }
    let e = device::refresh(&http, &p, CLIENT_ID, "not-a-refresh-token").await.unwrap_err();
    assert!(matches!(e, LoginError::InvalidGrant { .. }), "{e:?}");
}
