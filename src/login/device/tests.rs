//! Unit tests of the device grant client against a scripted in-memory identity provider (no
//! sockets) and a fake clock (no waiting). The real-IdP tests are in `tests/login_device.rs`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::Algorithm;
use openidconnect::{http, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::flow::{poll_with, refresh_with, scope_list, start_with, Clock};
use super::http::Transport;
use super::id_token::{verify_with_keys, IdClaims, KeyLookup};
use super::provider::{check_url, RawIdToken};
use super::*;

const ISSUER: &str = "https://idp.test";
const CLIENT: &str = "hoop-kube";

// ---------------------------------------------------------------------------------------------
// Fake clock

struct FakeClock {
    state: Mutex<(DateTime<Utc>, Vec<Duration>)>,
}

impl FakeClock {
    fn new() -> Arc<Self> {
        Arc::new(FakeClock {
            state: Mutex::new((
                Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
                Vec::new(),
            )),
        })
    }
    fn sleeps(&self) -> Vec<u64> {
        self.state
            .lock()
            .unwrap()
            .1
            .iter()
            .map(|d| d.as_secs())
            .collect()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        self.state.lock().unwrap().0
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let mut s = self.state.lock().unwrap();
        s.0 += chrono::Duration::from_std(d).unwrap();
        s.1.push(d);
        // Yield once, like a real sleep would, so that other select! branches get a look in.
        let mut yielded = false;
        Box::pin(std::future::poll_fn(move |cx| {
            if yielded {
                std::task::Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Signing keys

struct Key {
    kid: String,
    pair: rcgen::KeyPair,
}

impl Key {
    fn new(kid: &str) -> Key {
        Key {
            kid: kid.into(),
            pair: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        }
    }
    fn jwk(&self) -> Value {
        let raw = self.pair.public_key_raw(); // 0x04 || x || y
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
        })
    }
    fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pair.serialize_der());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn claims(sub: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({ "iss": ISSUER, "aud": CLIENT, "sub": sub, "iat": now, "exp": now + 300, "groups": ["dev"], "email": "a@example.com" })
}

// ---------------------------------------------------------------------------------------------
// Scripted identity provider

type Answer = Result<(u16, Value), String>;
/// (method, path, form body, fake time) of every request.
type Seen = Vec<(String, String, String, DateTime<Utc>)>;

struct FakeIdp {
    key: Key,
    clock: Arc<FakeClock>,
    discovery: Mutex<Value>,
    jwks: Mutex<Value>,
    device_auth: Mutex<Answer>,
    token: Mutex<VecDeque<Answer>>,
    seen: Mutex<Seen>,
}

impl FakeIdp {
    fn new() -> Arc<FakeIdp> {
        let key = Key::new("k1");
        let jwks = json!({ "keys": [key.jwk()] });
        Arc::new(FakeIdp {
            key,
            clock: FakeClock::new(),
            discovery: Mutex::new(json!({
                "issuer": ISSUER,
                "authorization_endpoint": format!("{ISSUER}/auth"),
                "device_authorization_endpoint": format!("{ISSUER}/device/auth"),
                "token_endpoint": format!("{ISSUER}/token"),
                "jwks_uri": format!("{ISSUER}/jwks"),
                "revocation_endpoint": format!("{ISSUER}/token/revocation"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256", "Ed25519"],
            })),
            jwks: Mutex::new(jwks),
            device_auth: Mutex::new(Ok((
                200,
                json!({
                    "device_code": "DEVICE-CODE-SECRET", "user_code": "WDJB-MJHT",
                    "verification_uri": format!("{ISSUER}/device"),
                    "verification_uri_complete": format!("{ISSUER}/device?user_code=WDJB-MJHT"),
                    "expires_in": 600, "interval": 5,
                }),
            ))),
            token: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn transport(self: &Arc<Self>) -> Transport {
        let idp = self.clone();
        Transport::fake(Arc::new(move |req: &HttpRequest| idp.handle(req)))
    }

    fn handle(&self, req: &HttpRequest) -> Result<HttpResponse, String> {
        let path = req.uri().path().to_string();
        let body = String::from_utf8(req.body().clone()).unwrap();
        self.seen.lock().unwrap().push((
            req.method().to_string(),
            path.clone(),
            body,
            self.clock.now(),
        ));
        let answer: Answer = match (req.method().as_str(), path.as_str()) {
            ("GET", "/.well-known/openid-configuration") => {
                Ok((200, self.discovery.lock().unwrap().clone()))
            }
            ("GET", "/jwks") => Ok((200, self.jwks.lock().unwrap().clone())),
            ("POST", "/device/auth") => self.device_auth.lock().unwrap().clone(),
            ("POST", "/token") => self
                .token
                .lock()
                .unwrap()
                .pop_front()
                .expect("an answer scripted for /token"),
            _ => Ok((404, json!({ "error": "not_found" }))),
        };
        let (status, value) = answer?;
        let mut resp = http::Response::new(serde_json::to_vec(&value).unwrap());
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
        resp.headers_mut().insert(
            "content-type",
            "application/json; charset=utf-8".parse().unwrap(),
        );
        Ok(resp)
    }

    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.token.lock().unwrap().extend(answers);
    }

    fn tokens(&self, sub: &str, refresh: Option<&str>) -> Answer {
        let mut v = json!({
            "access_token": "ACCESS-SECRET", "token_type": "Bearer", "expires_in": 300,
            "id_token": self.key.sign(&claims(sub)), "scope": "openid offline_access email",
        });
        if let Some(r) = refresh {
            v["refresh_token"] = json!(r);
        }
        Ok((200, v))
    }

    fn token_posts(&self) -> Vec<(String, DateTime<Utc>)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.1 == "/token")
            .map(|s| (s.2.clone(), s.3))
            .collect()
    }
}

fn error(code: &str) -> Answer {
    Ok((
        400,
        json!({ "error": code, "error_description": format!("the {code} description") }),
    ))
}

async fn provider(idp: &Arc<FakeIdp>) -> Provider {
    Provider::discover_with(&idp.transport(), ISSUER)
        .await
        .expect("discovery")
}

async fn started(idp: &Arc<FakeIdp>) -> (Provider, DeviceAuthorization) {
    let p = provider(idp).await;
    let auth = start_with(&idp.transport(), &p, CLIENT, &["groups"], &*idp.clock)
        .await
        .expect("device authorization");
    (p, auth)
}

async fn poll_fake(
    idp: &Arc<FakeIdp>,
    p: &Provider,
    auth: &DeviceAuthorization,
) -> (Result<Tokens, LoginError>, Vec<u64>) {
    let mut waits = Vec::new();
    let r = poll_with(
        &idp.transport(),
        p,
        CLIENT,
        auth,
        |e| waits.push(e.as_secs()),
        &*idp.clock,
    )
    .await;
    (r, waits)
}

fn form(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Discovery

#[tokio::test]
async fn discovery_reads_device_endpoint_and_keys() {
    let idp = FakeIdp::new();
    let p = provider(&idp).await;
    assert_eq!(p.issuer, ISSUER);
    assert_eq!(
        p.device_authorization_endpoint,
        "https://idp.test/device/auth"
    );
    assert_eq!(p.token_endpoint, "https://idp.test/token");
    assert_eq!(p.jwks_uri, "https://idp.test/jwks");
    assert_eq!(
        p.revocation_endpoint.as_deref(),
        Some("https://idp.test/token/revocation")
    );
    assert_eq!(p.keys.len(), 1);
}

#[tokio::test]
async fn discovery_requires_the_exact_issuer() {
    let idp = FakeIdp::new();
    idp.discovery.lock().unwrap()["issuer"] = json!("https://idp.test/");
    let e = Provider::discover_with(&idp.transport(), ISSUER)
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::Discovery { .. }), "{e:?}");
    assert!(e.to_string().contains("issuer"), "{e}");
}

#[tokio::test]
async fn discovery_without_device_endpoint_says_so() {
    let idp = FakeIdp::new();
    idp.discovery
        .lock()
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("device_authorization_endpoint");
    let e = Provider::discover_with(&idp.transport(), ISSUER)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("does not support the device authorization grant"),
        "{e}"
    );
}

#[tokio::test]
async fn discovery_refuses_plain_http_except_loopback() {
    let idp = FakeIdp::new();
    let e = Provider::discover_with(&idp.transport(), "http://idp.example.com")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("must be an https URL"), "{e}");
    assert!(check_url("issuer", "http://127.0.0.1:8080").is_ok());
    assert!(check_url("issuer", "http://[::1]:8080").is_ok());
    assert!(check_url("issuer", "http://localhost:8080").is_ok());
    assert!(check_url("token_endpoint", "ftp://idp.test/token").is_err());

    // an endpoint of a https issuer on plain http
    idp.discovery.lock().unwrap()["token_endpoint"] = json!("http://idp.test/token");
    let e = Provider::discover_with(&idp.transport(), ISSUER)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("token_endpoint"), "{e}");
}

#[tokio::test]
async fn discovery_transport_error_is_http() {
    let t = Transport::fake(Arc::new(|_: &HttpRequest| {
        Err("connection refused".to_string())
    }));
    let e = Provider::discover_with(&t, ISSUER).await.unwrap_err();
    assert!(matches!(e, LoginError::Http { .. }), "{e:?}");
    assert!(e.to_string().contains("connection refused"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Device authorization

#[tokio::test]
async fn device_authorization_is_parsed_and_scopes_sent_once() {
    let idp = FakeIdp::new();
    let (_, auth) = started(&idp).await;
    assert_eq!(auth.user_code, "WDJB-MJHT");
    assert_eq!(auth.verification_uri, "https://idp.test/device");
    assert_eq!(
        auth.verification_uri_complete.as_deref(),
        Some("https://idp.test/device?user_code=WDJB-MJHT")
    );
    assert_eq!(auth.expires_in, Duration::from_secs(600));
    assert_eq!(auth.interval, Duration::from_secs(5));
    assert_eq!(
        auth.expires_at(),
        idp.clock.now() + chrono::Duration::seconds(600)
    );

    let seen = idp.seen.lock().unwrap().clone();
    let (_, _, body, _) = seen.iter().find(|s| s.1 == "/device/auth").unwrap();
    let f = form(body);
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("client_id").as_deref(), Some(CLIENT));
    assert_eq!(
        get("scope").as_deref(),
        Some("openid offline_access email profile groups")
    );
    assert_eq!(get("client_secret"), None);
}

#[test]
fn scope_list_dedupes_and_splits() {
    assert_eq!(scope_list(&[]), ["offline_access", "email", "profile"]);
    assert_eq!(
        scope_list(&["groups email", "openid", "", "groups"]),
        ["offline_access", "email", "profile", "groups"]
    );
}

#[tokio::test]
async fn interval_defaults_to_five_seconds() {
    let idp = FakeIdp::new();
    {
        let mut da = idp.device_auth.lock().unwrap();
        let v = &mut da.as_mut().unwrap().1;
        v.as_object_mut().unwrap().remove("interval");
        v.as_object_mut()
            .unwrap()
            .remove("verification_uri_complete");
    }
    let (p, auth) = started(&idp).await;
    assert_eq!(auth.interval, DEFAULT_INTERVAL);
    assert_eq!(auth.verification_uri_complete, None);

    idp.script([
        error("authorization_pending"),
        idp.tokens("alice", Some("R1")),
    ]);
    let (r, _) = poll_fake(&idp, &p, &auth).await;
    r.unwrap();
    assert_eq!(idp.clock.sleeps(), [5]);
}

#[tokio::test]
async fn interval_zero_is_raised_to_one_second() {
    let idp = FakeIdp::new();
    idp.device_auth.lock().unwrap().as_mut().unwrap().1["interval"] = json!(0);
    let (p, auth) = started(&idp).await;
    idp.script([
        error("authorization_pending"),
        error("authorization_pending"),
        idp.tokens("alice", None),
    ]);
    poll_fake(&idp, &p, &auth).await.0.unwrap();
    assert_eq!(idp.clock.sleeps(), [1, 1]);
}

#[tokio::test]
async fn device_authorization_errors() {
    let idp = FakeIdp::new();
    let p = provider(&idp).await;
    *idp.device_auth.lock().unwrap() = error("invalid_client");
    let e = start_with(&idp.transport(), &p, CLIENT, &[], &*idp.clock)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LoginError::Rejected { error, .. } if error == "invalid_client"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the identity provider refused the device authorization request: invalid_client (the invalid_client description); check the issuer and client id of this profile"
    );

    // not JSON at all
    *idp.device_auth.lock().unwrap() = Ok((200, json!("<html>")));
    let e = start_with(&idp.transport(), &p, CLIENT, &[], &*idp.clock)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LoginError::Protocol {
                request: "device authorization request",
                ..
            }
        ),
        "{e:?}"
    );

    // missing device_code
    *idp.device_auth.lock().unwrap() = Ok((
        200,
        json!({ "user_code": "A", "verification_uri": "https://idp.test/d", "expires_in": 5 }),
    ));
    let e = start_with(&idp.transport(), &p, CLIENT, &[], &*idp.clock)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("device_code"), "{e}");

    // a verification URI that is not a web page
    *idp.device_auth.lock().unwrap() = Ok((
        200,
        json!({ "device_code": "D", "user_code": "A", "verification_uri": "javascript:alert(1)", "expires_in": 5 }),
    ));
    let e = start_with(&idp.transport(), &p, CLIENT, &[], &*idp.clock)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a web page"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Polling

#[tokio::test]
async fn poll_honours_interval_and_slow_down() {
    let idp = FakeIdp::new();
    let (p, auth) = started(&idp).await;
    idp.script([
        error("authorization_pending"),
        error("slow_down"),
        error("authorization_pending"),
        error("slow_down"),
        idp.tokens("alice", Some("R1")),
    ]);
    let (r, waits) = poll_fake(&idp, &p, &auth).await;
    let t = r.unwrap();
    // 5, then +5 after each slow_down, and it stays up
    assert_eq!(idp.clock.sleeps(), [5, 10, 10, 15]);
    assert_eq!(
        waits,
        [0, 5, 15, 25],
        "on_wait gets the time since polling began"
    );
    let posts = idp.token_posts();
    assert_eq!(posts.len(), 5);
    let gaps: Vec<i64> = posts
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).num_seconds())
        .collect();
    assert_eq!(gaps, [5, 10, 10, 15]);
    let f = form(&posts[0].0);
    assert!(
        f.contains(&(
            "grant_type".into(),
            "urn:ietf:params:oauth:grant-type:device_code".into()
        )),
        "{f:?}"
    );
    assert!(
        f.contains(&("device_code".into(), "DEVICE-CODE-SECRET".into())),
        "{f:?}"
    );
    assert!(f.contains(&("client_id".into(), CLIENT.into())), "{f:?}");

    assert_eq!(t.subject, "alice");
    assert_eq!(t.groups, ["dev"]);
    assert_eq!(t.access_token.expose(), "ACCESS-SECRET");
    assert_eq!(t.refresh_token.as_ref().map(Secret::expose), Some("R1"));
    assert!(t.id_token.expose().starts_with("eyJ"));
    assert!(t.id_token_expiry > Utc::now());
}

#[tokio::test]
async fn poll_access_denied() {
    let idp = FakeIdp::new();
    let (p, auth) = started(&idp).await;
    idp.script([error("authorization_pending"), error("access_denied")]);
    let e = poll_fake(&idp, &p, &auth).await.0.unwrap_err();
    assert!(matches!(e, LoginError::AccessDenied), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the login was denied at the identity provider"
    );
}

#[tokio::test]
async fn poll_expired_token_from_the_provider() {
    let idp = FakeIdp::new();
    let (p, auth) = started(&idp).await;
    idp.script([error("expired_token")]);
    let e = poll_fake(&idp, &p, &auth).await.0.unwrap_err();
    assert!(matches!(e, LoginError::ExpiredToken), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the code expired before it was approved; run `hoop-kube login` again"
    );
}

#[tokio::test]
async fn poll_stops_at_expires_in() {
    let idp = FakeIdp::new();
    idp.device_auth.lock().unwrap().as_mut().unwrap().1["expires_in"] = json!(12);
    let (p, auth) = started(&idp).await;
    idp.script((0..10).map(|_| error("authorization_pending")));
    let e = poll_fake(&idp, &p, &auth).await.0.unwrap_err();
    assert!(matches!(e, LoginError::ExpiredToken), "{e:?}");
    // polls at 0, 5, 10; the last wait is cut short to just past the deadline
    let posts = idp.token_posts();
    assert_eq!(posts.len(), 3, "{posts:?}");
    assert_eq!(idp.clock.sleeps(), [5, 5, 3]);
    assert!(idp.clock.now() <= auth.expires_at() + chrono::Duration::seconds(1));
}

#[tokio::test]
async fn poll_after_expiry_does_not_poll() {
    let idp = FakeIdp::new();
    let (p, auth) = started(&idp).await;
    idp.clock.sleep(Duration::from_secs(601)).await;
    let e = poll_fake(&idp, &p, &auth).await.0.unwrap_err();
    assert!(matches!(e, LoginError::ExpiredToken), "{e:?}");
    assert!(idp.token_posts().is_empty());
}

#[tokio::test]
async fn poll_invalid_grant_and_other_errors() {
    let idp = FakeIdp::new();
    let (p, auth) = started(&idp).await;
    idp.script([error("invalid_grant")]);
    let e = poll_fake(&idp, &p, &auth).await.0.unwrap_err();
    assert!(matches!(e, LoginError::DeviceCodeRejected(_)), "{e:?}");
    assert!(
        e.to_string().ends_with("run `hoop-kube login` again"),
        "{e}"
    );

    idp.script([error("unauthorized_client")]);
    let e = poll_fake(&idp, &p, &auth).await.0.unwrap_err();
    assert!(
        matches!(&e, LoginError::Rejected { request: "token request", error, .. } if error == "unauthorized_client"),
        "{e:?}"
    );

    // an error answer that is not JSON
    idp.script([Ok((500, json!("oops")))]);
    let e = poll_fake(&idp, &p, &auth).await.0.unwrap_err();
    assert!(matches!(e, LoginError::Protocol { .. }), "{e:?}");
}

#[tokio::test]
async fn poll_survives_a_failed_request_and_gives_up_after_three() {
    let idp = FakeIdp::new();
    let (p, auth) = started(&idp).await;
    idp.script([
        Err("connection reset".into()),
        error("authorization_pending"),
        idp.tokens("alice", None),
    ]);
    poll_fake(&idp, &p, &auth)
        .await
        .0
        .expect("one failure is retried");
    // oauth2 doubles the interval after a failed request (5 → 10) and keeps it
    assert_eq!(idp.clock.sleeps(), [10, 10]);

    idp.script((0..5).map(|_| Err("connection refused".to_string())));
    let e = poll_fake(&idp, &p, &auth).await.0.unwrap_err();
    assert!(matches!(e, LoginError::Http { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("connection refused (3 failed requests in a row)"),
        "{e}"
    );
    assert_eq!(idp.token_posts().len(), 3 + 3);
}

#[tokio::test]
async fn poll_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let idp = FakeIdp::new();
    let (p, auth) = started(&idp).await;
    let http = reqwest::Client::new();
    let fut = poll(&http, &p, CLIENT, &auth, |_| {});
    assert_send(&fut);
    let fut = refresh(&http, &p, CLIENT, "r");
    assert_send(&fut);
}

// ---------------------------------------------------------------------------------------------
// Refresh

#[tokio::test]
async fn refresh_rotates_and_keeps_the_old_token_when_not_rotated() {
    let idp = FakeIdp::new();
    let p = provider(&idp).await;
    idp.script([idp.tokens("alice", Some("R2")), idp.tokens("alice", None)]);
    let t = refresh_with(&idp.transport(), &p, CLIENT, "R1")
        .await
        .unwrap();
    assert_eq!(t.refresh_token.as_ref().map(Secret::expose), Some("R2"));
    let f = form(&idp.token_posts()[0].0);
    assert!(
        f.contains(&("grant_type".into(), "refresh_token".into())),
        "{f:?}"
    );
    assert!(f.contains(&("refresh_token".into(), "R1".into())), "{f:?}");
    assert!(f.contains(&("client_id".into(), CLIENT.into())), "{f:?}");

    let t = refresh_with(&idp.transport(), &p, CLIENT, "R2")
        .await
        .unwrap();
    assert_eq!(
        t.refresh_token.as_ref().map(Secret::expose),
        Some("R2"),
        "no new token: keep using the old one"
    );
}

#[tokio::test]
async fn refresh_invalid_grant() {
    let idp = FakeIdp::new();
    let p = provider(&idp).await;
    idp.script([error("invalid_grant")]);
    let e = refresh_with(&idp.transport(), &p, CLIENT, "R1")
        .await
        .unwrap_err();
    assert!(
        matches!(e, LoginError::InvalidGrant { profile: None }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the refresh token was revoked, expired or already used; run `hoop-kube login`"
    );
    assert_eq!(
        e.for_profile("work").to_string(),
        "the refresh token was revoked, expired or already used; run `hoop-kube login --profile work`"
    );
    assert!(matches!(
        LoginError::AccessDenied.for_profile("x"),
        LoginError::AccessDenied
    ));
}

#[tokio::test]
async fn token_response_without_id_token_is_refused() {
    let idp = FakeIdp::new();
    let p = provider(&idp).await;
    idp.script([Ok((
        200,
        json!({ "access_token": "A", "token_type": "Bearer", "refresh_token": "R" }),
    ))]);
    let e = refresh_with(&idp.transport(), &p, CLIENT, "R1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LoginError::Protocol {
                request: "refresh request",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("no id_token"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// ID token verification

fn verify(keys: &[Jwk], token: &str) -> Result<IdClaims, LoginError> {
    verify_with_keys(keys, ISSUER, CLIENT, token).map_err(|e| match e {
        KeyLookup::UnknownKid(kid) => LoginError::IdToken(format!("unknown kid {kid}")),
        KeyLookup::Invalid(e) => e,
    })
}

fn keys_of(k: &Key) -> Vec<Jwk> {
    vec![serde_json::from_value(k.jwk()).unwrap()]
}

#[test]
fn id_token_claims_are_read_after_verification() {
    let k = Key::new("k1");
    let mut c = claims("alice");
    c["exp"] = json!(4102444800i64);
    let got = verify(&keys_of(&k), &k.sign(&c)).unwrap();
    assert_eq!(got.subject, "alice");
    assert_eq!(got.groups, ["dev"]);
    assert_eq!(
        got.expiry,
        Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()
    );

    c["groups"] = json!("ops");
    assert_eq!(verify(&keys_of(&k), &k.sign(&c)).unwrap().groups, ["ops"]);
    c.as_object_mut().unwrap().remove("groups");
    assert!(verify(&keys_of(&k), &k.sign(&c)).unwrap().groups.is_empty());
    c["aud"] = json!(["other", CLIENT]);
    c["azp"] = json!(CLIENT);
    verify(&keys_of(&k), &k.sign(&c)).unwrap();
}

#[test]
fn id_token_verification_refuses_garbage() {
    let k = Key::new("k1");
    let keys = keys_of(&k);
    let now = Utc::now().timestamp();
    let cases: Vec<(&str, String)> = vec![
        ("issuer", k.sign(&json!({ "iss": "https://evil.test", "aud": CLIENT, "sub": "a", "exp": now + 60 }))),
        ("audience", k.sign(&json!({ "iss": ISSUER, "aud": "other-client", "sub": "a", "exp": now + 60 }))),
        ("expired", k.sign(&json!({ "iss": ISSUER, "aud": CLIENT, "sub": "a", "exp": now - 120 }))),
        ("nbf", k.sign(&json!({ "iss": ISSUER, "aud": CLIENT, "sub": "a", "exp": now + 600, "nbf": now + 300 }))),
        ("no sub claim", k.sign(&json!({ "iss": ISSUER, "aud": CLIENT, "exp": now + 60 }))),
        ("sub claim is missing or empty", k.sign(&json!({ "iss": ISSUER, "aud": CLIENT, "sub": "", "exp": now + 60 }))),
        ("no exp claim", k.sign(&json!({ "iss": ISSUER, "aud": CLIENT, "sub": "a" }))),
        ("azp", k.sign(&json!({ "iss": ISSUER, "aud": [CLIENT, "x"], "azp": "x", "sub": "a", "exp": now + 60 }))),
        ("groups", k.sign(&json!({ "iss": ISSUER, "aud": CLIENT, "sub": "a", "exp": now + 60, "groups": [1] }))),
        ("signature does not verify", Key::new("k1").sign(&claims("a"))),
        ("unknown kid", Key::new("k2").sign(&claims("a"))),
        ("not a signed JWT", "not.a.jwt".to_string()),
        ("not a signed JWT", {
            // alg none
            let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
            let p = URL_SAFE_NO_PAD.encode(claims("a").to_string());
            format!("{h}.{p}.")
        }),
        ("HS256 is not allowed", {
            let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
            h.kid = Some("k1".into());
            jsonwebtoken::encode(&h, &claims("a"), &jsonwebtoken::EncodingKey::from_secret(b"k")).unwrap()
        }),
    ];
    for (want, token) in cases {
        let e = verify(&keys, &token).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want), "{want}: {msg}");
        assert!(matches!(e, LoginError::IdToken(_)), "{want}: {e:?}");
        assert!(!msg.contains('\n'));
    }
}

#[test]
fn keys_must_fit_the_algorithm() {
    let k = Key::new("k1");
    let mut jwk = k.jwk();
    jwk["alg"] = json!("ES384");
    let keys: Vec<Jwk> = vec![serde_json::from_value(jwk.clone()).unwrap()];
    let e = verify(&keys, &k.sign(&claims("a"))).unwrap_err();
    assert!(
        e.to_string()
            .contains("no key that can verify an ES256 signature"),
        "{e}"
    );

    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("enc");
    let keys: Vec<Jwk> = vec![serde_json::from_value(jwk).unwrap()];
    assert!(verify(&keys, &k.sign(&claims("a"))).is_err());
}

#[tokio::test]
async fn unknown_kid_refetches_the_key_set_once() {
    let idp = FakeIdp::new();
    let p = provider(&idp).await;
    // the provider rotates its key after discovery
    let rotated = Key::new("k2");
    *idp.jwks.lock().unwrap() = json!({ "keys": [rotated.jwk()] });
    let token = rotated.sign(&claims("alice"));
    idp.script([Ok((
        200,
        json!({ "access_token": "A", "token_type": "Bearer", "id_token": token }),
    ))]);
    let t = refresh_with(&idp.transport(), &p, CLIENT, "R1")
        .await
        .unwrap();
    assert_eq!(t.subject, "alice");
    let jwks_fetches = idp
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.1 == "/jwks")
        .count();
    assert_eq!(jwks_fetches, 2, "discovery + one refetch");

    // still unknown after the refetch: refused
    let stranger = Key::new("k3").sign(&claims("alice"));
    idp.script([Ok((
        200,
        json!({ "access_token": "A", "token_type": "Bearer", "id_token": stranger }),
    ))]);
    let e = refresh_with(&idp.transport(), &p, CLIENT, "R1")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("\"k3\", which is not in https://idp.test/jwks"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Redaction and messages

#[tokio::test]
async fn secrets_are_redacted_in_debug() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    assert_eq!(s.expose(), "hunter2");

    let idp = FakeIdp::new();
    let (p, auth) = started(&idp).await;
    let dbg = format!("{auth:?}");
    assert!(!dbg.contains("DEVICE-CODE-SECRET"), "{dbg}");
    assert!(dbg.contains("WDJB-MJHT"), "{dbg}");

    idp.script([idp.tokens("alice", Some("REFRESH-SECRET"))]);
    let t = poll_fake(&idp, &p, &auth).await.0.unwrap();
    let dbg = format!("{t:?} {:#?}", t);
    for secret in ["ACCESS-SECRET", "REFRESH-SECRET", t.id_token.expose()] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
    assert!(dbg.contains("alice"));

    let raw = RawIdToken {
        id_token: Some("eyJsecret".into()),
    };
    assert!(!format!("{raw:?}").contains("eyJsecret"));
}

#[test]
fn messages_are_one_line() {
    assert_eq!(one_line("a\nb\r\n\tc  d"), "a b c d");
    assert_eq!(one_line(&"x".repeat(1000)).chars().count(), 300);
    let e = LoginError::Rejected {
        request: "token request",
        error: "invalid_scope".into(),
        description: Some(one_line("line one\nline two")),
    };
    assert_eq!(
        e.to_string(),
        "the identity provider refused the token request: invalid_scope (line one line two); check the issuer and client id of this profile"
    );
    let all = [
        LoginError::AccessDenied,
        LoginError::ExpiredToken,
        LoginError::DeviceCodeRejected("invalid_grant".into()),
        LoginError::InvalidGrant { profile: None },
        LoginError::Discovery {
            issuer: ISSUER.into(),
            reason: "r".into(),
        },
        LoginError::Http {
            url: ISSUER.into(),
            reason: "r".into(),
        },
        LoginError::Protocol {
            request: "token request",
            reason: "r".into(),
        },
        LoginError::IdToken("r".into()),
        e,
    ];
    for e in all {
        let m = e.to_string();
        assert!(!m.contains('\n') && !m.is_empty(), "{m}");
    }
}
