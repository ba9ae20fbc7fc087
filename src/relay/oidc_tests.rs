//! The verifier against a running [`DevIssuer`].

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use crate::relay::dev_issuer::DevIssuer;
use serde_json::json;

const AUD: &str = "hoop-kube";

fn settings(issuer: &str) -> OidcSettings {
    OidcSettings {
        issuer: issuer.into(),
        audiences: vec!["other-client".into(), AUD.into()],
        username_claim: "email".into(),
        username_prefix: "oidc:".into(),
        groups_claim: "groups".into(),
        groups_prefix: "oidc:".into(),
        algorithms: vec![Algorithm::ES256],
        leeway: Duration::from_secs(30),
        ca_pem: None,
    }
}

async fn setup() -> (DevIssuer, Verifier) {
    let iss = DevIssuer::start().await.unwrap();
    let v = Verifier::discover(settings(iss.issuer())).await.unwrap();
    (iss, v)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn header(iss: &DevIssuer) -> Value {
    json!({"alg": "ES256", "typ": "JWT", "kid": iss.kid()})
}

fn claims(iss: &DevIssuer) -> Value {
    json!({"iss": iss.issuer(), "sub": "u-123", "aud": AUD, "exp": now() + 300, "iat": now(),
           "email": "alice@example.com", "email_verified": true, "groups": ["dev", "ops"]})
}

/// `base` with the members of `patch` set (a `null` member removes the key).
fn with(mut base: Value, patch: Value) -> Value {
    let (Some(obj), Value::Object(patch)) = (base.as_object_mut(), patch) else { panic!("objects") };
    for (k, v) in patch {
        if v.is_null() {
            obj.remove(&k);
        } else {
            obj.insert(k, v);
        }
    }
    base
}

async fn verify_claims(iss: &DevIssuer, v: &Verifier, patch: Value) -> Result<Identity, AuthnError> {
    v.verify(&iss.mint_raw(header(iss), with(claims(iss), patch))).await
}

#[tokio::test]
async fn valid_token_gives_prefixed_identity() {
    let (iss, v) = setup().await;
    let token = iss.mint("alice", &["dev", "ops"], AUD, Duration::from_secs(300), json!({"act": {"sub": "agent-7"}}));
    let id = v.verify(&token).await.unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.username, "oidc:alice@example.com");
    assert_eq!(id.groups, ["oidc:dev", "oidc:ops"]);
    assert_eq!(id.claims["act"]["sub"], "agent-7");
    let left = (id.expires_at - chrono::Utc::now()).num_seconds();
    assert!((290..=300).contains(&left), "{left}");
    // A clone shares the cache and verifies too.
    assert_eq!(v.clone().verify(&token).await.unwrap().subject, "alice");
    assert_eq!(v.jwks_uri(), iss.jwks_uri());
}

#[tokio::test]
async fn time_claims_and_leeway() {
    let (iss, v) = setup().await;
    let t = now();
    assert!(matches!(verify_claims(&iss, &v, json!({"exp": t - 120})).await, Err(AuthnError::Expired)));
    assert!(matches!(verify_claims(&iss, &v, json!({"exp": t - 31})).await, Err(AuthnError::Expired)));
    assert!(matches!(verify_claims(&iss, &v, json!({"nbf": t + 120})).await, Err(AuthnError::NotYetValid)));
    assert!(matches!(verify_claims(&iss, &v, json!({"iat": t + 120})).await, Err(AuthnError::NotYetValid)));
    // Within the 30 s leeway: accepted.
    verify_claims(&iss, &v, json!({"exp": t - 10})).await.unwrap();
    verify_claims(&iss, &v, json!({"nbf": t + 10, "iat": t + 10})).await.unwrap();
    verify_claims(&iss, &v, json!({"exp": (t + 60) as f64 + 0.5})).await.unwrap();
    // exp is required and must be a number.
    assert!(matches!(verify_claims(&iss, &v, json!({"exp": null})).await, Err(AuthnError::MissingClaim(c)) if c == "exp"));
    assert!(matches!(verify_claims(&iss, &v, json!({"exp": (t + 60).to_string()})).await, Err(AuthnError::InvalidClaim(c)) if c == "exp"));
    assert!(matches!(verify_claims(&iss, &v, json!({"nbf": "soon"})).await, Err(AuthnError::InvalidClaim(c)) if c == "nbf"));
}

#[tokio::test]
async fn zero_leeway_is_strict() {
    let iss = DevIssuer::start().await.unwrap();
    let v = Verifier::discover(OidcSettings { leeway: Duration::ZERO, ..settings(iss.issuer()) }).await.unwrap();
    assert!(matches!(verify_claims(&iss, &v, json!({"exp": now() - 2})).await, Err(AuthnError::Expired)));
    assert!(matches!(verify_claims(&iss, &v, json!({"nbf": now() + 5})).await, Err(AuthnError::NotYetValid)));
}

#[tokio::test]
async fn issuer_and_audience() {
    let (iss, v) = setup().await;
    let wrong = format!("{}/", iss.issuer());
    assert!(matches!(verify_claims(&iss, &v, json!({"iss": wrong})).await, Err(AuthnError::WrongIssuer)));
    assert!(matches!(verify_claims(&iss, &v, json!({"iss": 7})).await, Err(AuthnError::WrongIssuer)));
    assert!(matches!(verify_claims(&iss, &v, json!({"iss": null})).await, Err(AuthnError::MissingClaim(c)) if c == "iss"));
    assert!(matches!(verify_claims(&iss, &v, json!({"aud": "someone-else"})).await, Err(AuthnError::WrongAudience)));
    assert!(matches!(verify_claims(&iss, &v, json!({"aud": "HOOP-KUBE"})).await, Err(AuthnError::WrongAudience)));
    assert!(matches!(verify_claims(&iss, &v, json!({"aud": null})).await, Err(AuthnError::MissingClaim(c)) if c == "aud"));
    verify_claims(&iss, &v, json!({"aud": ["x", AUD]})).await.unwrap();
    assert!(matches!(verify_claims(&iss, &v, json!({"aud": ["x", "y"]})).await, Err(AuthnError::WrongAudience)));
    assert!(matches!(verify_claims(&iss, &v, json!({"aud": []})).await, Err(AuthnError::WrongAudience)));
    assert!(matches!(verify_claims(&iss, &v, json!({"aud": [AUD, 1]})).await, Err(AuthnError::InvalidClaim(c)) if c == "aud"));
}

#[tokio::test]
async fn username_and_groups_claims() {
    let (iss, v) = setup().await;
    assert!(matches!(verify_claims(&iss, &v, json!({"email": null})).await, Err(AuthnError::MissingClaim(c)) if c == "email"));
    assert!(matches!(verify_claims(&iss, &v, json!({"email": ""})).await, Err(AuthnError::InvalidClaim(c)) if c == "email"));
    assert!(matches!(verify_claims(&iss, &v, json!({"sub": null})).await, Err(AuthnError::MissingClaim(c)) if c == "sub"));
    assert!(matches!(verify_claims(&iss, &v, json!({"email_verified": false})).await, Err(AuthnError::EmailNotVerified)));
    assert!(matches!(verify_claims(&iss, &v, json!({"email_verified": "true"})).await, Err(AuthnError::EmailNotVerified)));
    verify_claims(&iss, &v, json!({"email_verified": null})).await.unwrap();
    let id = verify_claims(&iss, &v, json!({"groups": "solo"})).await.unwrap();
    assert_eq!(id.groups, ["oidc:solo"]);
    assert!(verify_claims(&iss, &v, json!({"groups": null})).await.unwrap().groups.is_empty());
    assert!(matches!(verify_claims(&iss, &v, json!({"groups": ["a", 1]})).await, Err(AuthnError::InvalidClaim(c)) if c == "groups"));
    assert!(matches!(verify_claims(&iss, &v, json!({"groups": {"a": 1}})).await, Err(AuthnError::InvalidClaim(_))));
    assert!(matches!(verify_claims(&iss, &v, json!({"groups": [""]})).await, Err(AuthnError::InvalidClaim(_))));
}

#[tokio::test]
async fn reserved_system_names_are_refused_without_a_prefix() {
    let iss = DevIssuer::start().await.unwrap();
    let plain = OidcSettings {
        username_claim: "sub".into(),
        username_prefix: String::new(),
        groups_prefix: String::new(),
        ..settings(iss.issuer())
    };
    let v = Verifier::discover(plain).await.unwrap();
    assert_eq!(verify_claims(&iss, &v, json!({})).await.unwrap().username, "u-123");
    assert!(matches!(verify_claims(&iss, &v, json!({"groups": ["system:masters"]})).await, Err(AuthnError::ReservedName)));
    assert!(matches!(verify_claims(&iss, &v, json!({"sub": "system:admin"})).await, Err(AuthnError::ReservedName)));
    // With the prefixes of `settings`, the same claims are harmless.
    let v = Verifier::discover(settings(iss.issuer())).await.unwrap();
    assert_eq!(verify_claims(&iss, &v, json!({"groups": "system:masters"})).await.unwrap().groups, ["oidc:system:masters"]);
}

#[tokio::test]
async fn alg_none_and_hmac_confusion_are_rejected() {
    let iss = DevIssuer::start().await.unwrap();
    let v = Verifier::discover(OidcSettings { algorithms: Algorithm::ALL.to_vec(), ..settings(iss.issuer()) }).await.unwrap();
    for alg in ["none", "None", "NONE", "HS256", "HS384", "HS512", "ES512", "es256", ""] {
        let token = iss.mint_raw(json!({"alg": alg, "kid": iss.kid()}), claims(&iss));
        match v.verify(&token).await {
            Err(AuthnError::UnsupportedAlgorithm(_)) => {}
            other => panic!("{alg}: {other:?}"),
        }
    }
    let no_alg = iss.mint_raw(json!({"kid": iss.kid()}), claims(&iss));
    assert!(matches!(v.verify(&no_alg).await, Err(AuthnError::Malformed(_))));
    // The HS256 token really is a correct HMAC keyed with the public key.
    let token = iss.mint_raw(json!({"alg": "HS256", "kid": iss.kid()}), claims(&iss));
    let (input, sig) = token.rsplit_once('.').unwrap();
    let key = jsonwebtoken::DecodingKey::from_secret(iss.public_key_pem().as_bytes());
    assert!(jsonwebtoken::crypto::verify(sig, input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap());
}

#[tokio::test]
async fn algorithm_outside_allow_list() {
    let (iss, v) = setup().await;
    let token = iss.mint_raw(json!({"alg": "RS256", "kid": iss.kid()}), claims(&iss));
    assert!(matches!(v.verify(&token).await, Err(AuthnError::AlgorithmNotAllowed(Algorithm::RS256))));
    // Allowed but the key is EC: the key does not fit.
    let v = Verifier::discover(OidcSettings { algorithms: vec![Algorithm::ES256, Algorithm::RS256], ..settings(iss.issuer()) }).await.unwrap();
    assert!(matches!(v.verify(&token).await, Err(AuthnError::KeyMismatch(_))));
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_rate_limits() {
    let (iss, v) = setup().await;
    assert_eq!(iss.jwks_fetches(), 1);
    let token = iss.mint_raw(json!({"alg": "ES256", "kid": "nope"}), claims(&iss));
    assert!(matches!(v.verify(&token).await, Err(AuthnError::UnknownKey(k)) if k == "nope"));
    assert_eq!(iss.jwks_fetches(), 2);
    for _ in 0..5 {
        assert!(matches!(v.verify(&token).await, Err(AuthnError::UnknownKey(_))));
    }
    assert_eq!(iss.jwks_fetches(), 2);
    // Known keys keep working meanwhile.
    v.verify(&iss.mint_raw(header(&iss), claims(&iss))).await.unwrap();
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let (iss, v) = setup().await;
    let new_kid = iss.rotate_key().unwrap();
    let token = iss.mint_raw(json!({"alg": "ES256", "kid": new_kid}), claims(&iss));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (v, token) = (v.clone(), token.clone());
        tasks.spawn(async move { v.verify(&token).await.map(|id| id.subject) });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap(), "u-123");
    }
    assert_eq!(iss.jwks_fetches(), 2);
}

#[tokio::test]
async fn rotated_key_is_picked_up() {
    let (iss, v) = setup().await;
    let old = iss.mint("alice", &[], AUD, Duration::from_secs(300), Value::Null);
    v.verify(&old).await.unwrap();
    let old_kid = iss.kid();
    let new_kid = iss.rotate_key().unwrap();
    assert_ne!(old_kid, new_kid);
    let new = iss.mint("alice", &[], AUD, Duration::from_secs(300), Value::Null);
    assert_eq!(v.verify(&new).await.unwrap().subject, "alice");
    assert_eq!(iss.jwks_fetches(), 2);
    // The old key is gone from the fresh set; the refetch budget is spent.
    assert!(matches!(v.verify(&old).await, Err(AuthnError::UnknownKey(_))));
    assert_eq!(iss.jwks_fetches(), 2);
}

#[tokio::test]
async fn tampering_and_structure() {
    let (iss, v) = setup().await;
    let token = iss.mint_raw(header(&iss), claims(&iss));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64url(with(claims(&iss), json!({"sub": "mallory"})).to_string().as_bytes());
    let tampered_payload = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert!(matches!(v.verify(&tampered_payload).await, Err(AuthnError::BadSignature)));
    let mut sig = parts[2].to_owned();
    let first = if sig.starts_with('A') { "B" } else { "A" };
    sig.replace_range(0..1, first);
    let tampered_sig = format!("{}.{}.{sig}", parts[0], parts[1]);
    assert!(matches!(v.verify(&tampered_sig).await, Err(AuthnError::BadSignature)));
    // Truncated anywhere: never accepted, never an availability error.
    for cut in [1, 10, token.len() / 2, token.len() - parts[2].len(), token.len() - 1] {
        let r = v.verify(&token[..token.len() - cut]).await;
        assert!(matches!(r, Err(AuthnError::Malformed(_) | AuthnError::BadSignature)), "cut {cut}: {r:?}");
    }
    let no_sig = format!("{}.{}.", parts[0], parts[1]);
    assert!(matches!(v.verify(&no_sig).await, Err(AuthnError::BadSignature)));
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn";
    assert!(matches!(v.verify(jwe).await, Err(AuthnError::Malformed(m)) if m.contains("JWE")));
    assert!(matches!(v.verify(&format!("{token}.x")).await, Err(AuthnError::Malformed(_))));
    assert!(matches!(v.verify("").await, Err(AuthnError::Malformed(_))));
    assert!(matches!(v.verify(&format!(" {token}")).await, Err(AuthnError::Malformed(_))));
    assert!(matches!(v.verify(&format!("{}=.{}.{}", parts[0], parts[1], parts[2])).await, Err(AuthnError::Malformed(_))));
    let huge = iss.mint_raw(header(&iss), with(claims(&iss), json!({"pad": "x".repeat(MAX_TOKEN_BYTES)})));
    assert!(matches!(v.verify(&huge).await, Err(AuthnError::TooLarge)));
    assert!(matches!(v.verify(&"a".repeat(1 << 20)).await, Err(AuthnError::TooLarge)));
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn header_json_must_be_strict() {
    let (iss, v) = setup().await;
    let payload = claims(&iss).to_string();
    let kid = iss.kid();
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "non-JSON"),
        ("[1,2]".into(), "array"),
        (format!(r#"{{"alg":"ES256","kid":"{kid}","alg":"ES256"}}"#), "duplicate alg"),
        (format!(r#"{{"alg":"none","kid":"{kid}","alg":"ES256"}}"#), "duplicate alg, last wins elsewhere"),
        (format!(r#"{{"alg":"ES256","kid":"{kid}","\u0061lg":"ES256"}}"#), "escaped duplicate"),
        (format!(r#"{{"alg":"ES256","kid":"{kid}","x":{{"a":1,"a":2}}}}"#), "nested duplicate"),
        (format!(r#"{{"alg":"ES256","kid":"{kid}","crit":["exp"],"exp":1}}"#), "crit"),
        (r#"{"alg":"ES256","kid":7}"#.to_string(), "numeric kid"),
        (format!(r#"{{"alg":"ES256","kid":"{kid}"}} x"#), "trailing garbage"),
    ];
    for (h, what) in cases {
        let token = iss.sign_parts(h.as_bytes(), payload.as_bytes());
        assert!(matches!(v.verify(&token).await, Err(AuthnError::Malformed(_))), "{what}");
    }
    let dup_payload = format!(r#"{{"sub":"u-1","sub":"admin",{}"#, &payload[1..]);
    let token = iss.sign_parts(header(&iss).to_string().as_bytes(), dup_payload.as_bytes());
    assert!(matches!(v.verify(&token).await, Err(AuthnError::Malformed(_))));
    let token = iss.sign_parts(header(&iss).to_string().as_bytes(), b"\"just a string\"");
    assert!(matches!(v.verify(&token).await, Err(AuthnError::Malformed(_))));
    // Control: the same helper with a clean header works.
    v.verify(&iss.sign_parts(header(&iss).to_string().as_bytes(), payload.as_bytes())).await.unwrap();
}

#[tokio::test]
async fn kid_naming_an_unfit_key_is_refused() {
    let iss = DevIssuer::start().await.unwrap();
    let mut n = vec![0xc5u8; 256];
    n[255] |= 1;
    iss.publish_jwk(json!({"kty": "RSA", "kid": "rsa-1", "n": b64url(&n), "e": "AQAB", "alg": "RS256", "use": "sig"}));
    // The issuer's own key, republished under other kids with a contradicting use / alg / key_ops.
    let own = iss.public_jwk();
    iss.publish_jwk(with(own.clone(), json!({"kid": "enc-1", "use": "enc"})));
    iss.publish_jwk(with(own.clone(), json!({"kid": "es384-1", "alg": "ES384"})));
    iss.publish_jwk(with(own.clone(), json!({"kid": "ops-1", "key_ops": ["encrypt"]})));
    iss.publish_jwk(with(own.clone(), json!({"kid": "hs-1", "alg": "HS256"})));
    iss.publish_jwk(json!({"kty": "oct", "kid": "oct-1", "k": b64url(iss.public_key_pem().as_bytes())}));
    iss.publish_jwk(with(own, json!({"kid": "ok-1", "key_ops": ["verify"]})));
    let v = Verifier::discover(OidcSettings { algorithms: Algorithm::ALL.to_vec(), ..settings(iss.issuer()) }).await.unwrap();
    for kid in ["rsa-1", "enc-1", "es384-1", "ops-1", "hs-1", "oct-1"] {
        let token = iss.mint_raw(json!({"alg": "ES256", "kid": kid}), claims(&iss));
        assert!(matches!(v.verify(&token).await, Err(AuthnError::KeyMismatch(k)) if k == kid), "{kid}");
    }
    let token = iss.mint_raw(json!({"alg": "ES256", "kid": "ok-1"}), claims(&iss));
    v.verify(&token).await.unwrap();
    assert_eq!(iss.jwks_fetches(), 1, "unfit keys do not trigger refetches");
}

#[tokio::test]
async fn token_without_kid_tries_fitting_keys() {
    let (iss, v) = setup().await;
    v.verify(&iss.mint_raw(json!({"alg": "ES256"}), claims(&iss))).await.unwrap();
    let other = DevIssuer::start().await.unwrap();
    let foreign = other.mint_raw(json!({"alg": "ES256"}), claims(&iss));
    assert!(matches!(v.verify(&foreign).await, Err(AuthnError::BadSignature)));
}

#[tokio::test]
async fn discovery_issuer_must_match_exactly() {
    let iss = DevIssuer::start().await.unwrap();
    let slash = format!("{}/", iss.issuer());
    let err = Verifier::discover(settings(&slash)).await.unwrap_err();
    assert!(matches!(&err, AuthnError::Discovery(m) if m.contains("expected exactly")), "{err}");
    let port = iss.issuer().rsplit(':').next().unwrap();
    let err = Verifier::discover(settings(&format!("http://localhost:{port}"))).await.unwrap_err();
    assert!(matches!(&err, AuthnError::Discovery(_)), "{err}");
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn discovery_failures_are_clear() {
    let iss = DevIssuer::start().await.unwrap();
    iss.set_jwks_available(false);
    let err = Verifier::discover(settings(iss.issuer())).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AuthnError::Jwks(_)), "{msg}");
    assert!(msg.contains("/jwks") && msg.contains("503"), "{msg}");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = Verifier::discover(settings(&format!("http://127.0.0.1:{dead}"))).await.unwrap_err();
    assert!(matches!(&err, AuthnError::Discovery(m) if m.contains("openid-configuration")), "{err}");
    let err = Verifier::discover(settings(&format!("{}/nowhere", iss.issuer()))).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test]
async fn settings_are_validated() {
    let iss = DevIssuer::start().await.unwrap();
    let cases = [
        settings("http://idp.example.com"),
        settings("ftp://127.0.0.1"),
        settings("https://idp.example.com?tenant=a"),
        OidcSettings { audiences: vec![], ..settings(iss.issuer()) },
        OidcSettings { audiences: vec![String::new()], ..settings(iss.issuer()) },
        OidcSettings { algorithms: vec![], ..settings(iss.issuer()) },
        OidcSettings { username_claim: String::new(), ..settings(iss.issuer()) },
        OidcSettings { leeway: Duration::from_secs(3600), ..settings(iss.issuer()) },
        OidcSettings { ca_pem: Some(b"not a pem".to_vec()), ..settings(iss.issuer()) },
    ];
    for s in cases {
        let shown = format!("{s:?}");
        assert!(matches!(Verifier::discover(s).await, Err(AuthnError::Config(_))), "{shown}");
    }
    assert_eq!(iss.jwks_fetches(), 0);
    assert_eq!("ES256".parse::<Algorithm>(), Ok(Algorithm::ES256));
    assert!("HS256".parse::<Algorithm>().is_err());
    assert_eq!(serde_json::to_string(&Algorithm::EdDSA).unwrap(), "\"EdDSA\"");
}

#[tokio::test]
async fn stale_key_set_is_refreshed_then_fails_closed() {
    let (iss, v) = setup().await;
    let token = iss.mint_raw(header(&iss), claims(&iss));
    let age = |d: Duration| {
        let mut slot = v.inner.keys.write().unwrap();
        let old = Arc::get_mut(&mut slot).map(|s| s.fetched_at = Instant::now().checked_sub(d).unwrap());
        assert!(old.is_some());
    };
    age(JWKS_MAX_AGE + Duration::from_secs(60));
    v.verify(&token).await.unwrap();
    assert_eq!(iss.jwks_fetches(), 2, "an old set is refreshed lazily");
    // Refresh failing: the old set keeps working until it is too stale.
    iss.set_jwks_available(false);
    *v.inner.refresh.lock().await = None;
    age(JWKS_MAX_AGE + Duration::from_secs(60));
    v.verify(&token).await.unwrap();
    assert_eq!(iss.jwks_fetches(), 3);
    if Instant::now().checked_sub(JWKS_MAX_STALE * 2).is_some() {
        *v.inner.refresh.lock().await = None;
        age(JWKS_MAX_STALE + Duration::from_secs(60));
        assert!(matches!(v.verify(&token).await, Err(AuthnError::Jwks(_))));
    }
}

#[tokio::test]
async fn errors_do_not_echo_token_contents() {
    let (iss, v) = setup().await;
    let secret = "s3cr3t-value";
    let tokens = [
        iss.mint_raw(json!({"alg": format!("none\n{secret}"), "kid": iss.kid()}), claims(&iss)),
        iss.mint_raw(json!({"alg": "ES256", "kid": format!("{secret}\r\nX-Injected: 1")}), claims(&iss)),
        iss.mint_raw(header(&iss), with(claims(&iss), json!({"aud": secret}))),
        iss.mint_raw(header(&iss), with(claims(&iss), json!({"iss": secret}))),
    ];
    for token in tokens {
        let msg = v.verify(&token).await.unwrap_err().to_string();
        assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg}");
        assert!(!msg.contains("aud\":") && !msg.contains(&format!("\"{secret}\"")), "{msg}");
    }
    let long_kid = iss.mint_raw(json!({"alg": "ES256", "kid": "k".repeat(500)}), claims(&iss));
    assert!(v.verify(&long_kid).await.unwrap_err().to_string().len() < 200);
}

#[test]
fn jwk_parsing_skips_unusable_keys() {
    let n2048 = b64url(&[0xffu8; 256]);
    let n1024 = b64url(&[0xffu8; 128]);
    let padded_small = b64url(&[[0u8; 200].as_slice(), &[0xff; 100]].concat());
    let xy = b64url(&[1u8; 32]);
    let good = parse_jwk(&json!({"kty": "RSA", "n": n2048, "e": "AQAB"})).unwrap();
    assert_eq!(good.kind, KeyKind::Rsa);
    assert!(good.fits(Algorithm::PS256) && !good.fits(Algorithm::ES256));
    for bad in [
        json!({"kty": "RSA", "n": n1024, "e": "AQAB"}),
        json!({"kty": "RSA", "n": padded_small, "e": "AQAB"}),
        json!({"kty": "RSA", "n": n2048}),
        json!({"kty": "EC", "crv": "P-256", "x": xy, "y": b64url(&[1u8; 31])}),
        json!({"kty": "EC", "crv": "P-521", "x": xy, "y": xy}),
        json!({"kty": "EC", "crv": "P-256", "x": xy, "y": xy, "alg": "RS256"}),
        json!({"kty": "EC", "crv": "P-256", "x": xy, "y": xy, "kid": 5}),
        json!({"kty": "EC", "crv": "P-256", "x": format!("{xy}="), "y": xy}),
        json!({"kty": "OKP", "crv": "X25519", "x": xy}),
        json!({"kty": "oct", "k": xy}),
        json!("not an object"),
    ] {
        assert!(parse_jwk(&bad).is_none(), "{bad}");
    }
    let ed = parse_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": xy, "alg": "EdDSA"})).unwrap();
    assert!(ed.fits(Algorithm::EdDSA) && !ed.fits(Algorithm::ES256));
    assert!(parse_jwks(br#"{"keys": []}"#).is_err());
    assert!(parse_jwks(br#"{"nokeys": 1}"#).is_err());
}

#[test]
fn sanitize_keeps_errors_printable() {
    assert_eq!(sanitize("abc-123_x.y"), "abc-123_x.y");
    assert_eq!(sanitize("a\nb"), "ab…");
    assert_eq!(sanitize(&"k".repeat(100)).chars().count(), 65);
}

/// An HTTPS issuer (certificate from a throwaway CA) serving discovery and the dev key's JWKS.
async fn https_issuer(keys: &DevIssuer) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&leaf_key, &Issuer::new(ca, ca_key)).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let tls = rustls::ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap()
        .with_no_client_auth().with_single_cert(vec![leaf.der().clone()], key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("https://{}", listener.local_addr().unwrap());
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")}).to_string();
    let jwks = json!({"keys": [keys.public_jwk()]}).to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, discovery, jwks) = (acceptor.clone(), discovery.clone(), jwks.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let body = if req.uri().path() == "/keys" { jwks.clone() } else { discovery.clone() };
                    async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tls), svc).await;
            });
        }
    });
    (issuer, ca_pem)
}

#[tokio::test]
async fn https_issuer_with_extra_ca() {
    let keys = DevIssuer::start().await.unwrap();
    let (issuer, ca_pem) = https_issuer(&keys).await;
    let err = Verifier::discover(settings(&issuer)).await.unwrap_err();
    assert!(matches!(&err, AuthnError::Discovery(m) if m.to_lowercase().contains("certificate")), "{err}");
    let v = Verifier::discover(OidcSettings { ca_pem: Some(ca_pem.into_bytes()), ..settings(&issuer) }).await.unwrap();
    let token = keys.mint_raw(header(&keys), with(claims(&keys), json!({"iss": issuer})));
    assert_eq!(v.verify(&token).await.unwrap().subject, "u-123");
}
