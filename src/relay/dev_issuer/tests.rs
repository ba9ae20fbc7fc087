use super::*;

async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn serves_discovery_and_jwks() {
    let iss = DevIssuer::start().await.unwrap();
    assert!(iss.issuer().starts_with("http://127.0.0.1:"));
    let (status, doc) = get(&format!("{}/.well-known/openid-configuration", iss.issuer())).await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], iss.issuer());
    assert_eq!(doc["jwks_uri"], iss.jwks_uri());
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(iss.jwks_fetches(), 0);

    let (status, jwks) = get(&iss.jwks_uri()).await;
    assert_eq!(status, 200);
    assert_eq!(iss.jwks_fetches(), 1);
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(key, &iss.public_jwk());
    for (field, want) in [("kty", "EC"), ("crv", "P-256"), ("alg", "ES256"), ("use", "sig")] {
        assert_eq!(key[field], want);
    }
    assert_eq!(key["kid"], iss.kid());
    for c in ["x", "y"] {
        assert_eq!(URL_SAFE_NO_PAD.decode(key[c].as_str().unwrap()).unwrap().len(), 32);
    }
    // The kid is the RFC 7638 thumbprint.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#, key["x"], key["y"]);
    assert_eq!(iss.kid(), URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())));

    assert_eq!(get(&format!("{}/other", iss.issuer())).await.0, 404);
    let post = reqwest::Client::new().post(iss.jwks_uri()).send().await.unwrap();
    assert_eq!(post.status().as_u16(), 405);
    iss.set_jwks_available(false);
    assert_eq!(get(&iss.jwks_uri()).await.0, 503);
    iss.set_jwks_available(true);
    assert_eq!(get(&iss.jwks_uri()).await.0, 200);
    assert_eq!(iss.jwks_fetches(), 3, "GETs only, 503s included");
}

#[tokio::test]
async fn mint_sets_standard_and_extra_claims() {
    let iss = DevIssuer::start().await.unwrap();
    let token = iss.mint("bob", &["a", "b"], "aud-1", Duration::from_secs(600), json!({"act": {"sub": "agent"}, "groups": ["x"]}));
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode_part(parts[0]);
    assert_eq!(header, json!({"alg": "ES256", "typ": "JWT", "kid": iss.kid()}));
    let claims = decode_part(parts[1]);
    assert_eq!(claims["iss"], iss.issuer());
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["aud"], "aud-1");
    assert_eq!(claims["email"], "bob@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["groups"], json!(["x"]), "extra overrides");
    assert_eq!(claims["act"]["sub"], "agent");
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 600);
    assert_eq!(claims["nbf"].as_i64(), Some(iat));
    let email = decode_part(iss.mint("carol@corp.test", &[], "a", Duration::ZERO, Value::Null).split('.').nth(1).unwrap());
    assert_eq!(email["email"], "carol@corp.test");

    // The ES256 signature verifies with the published key.
    let jwk = iss.public_jwk();
    let key = jsonwebtoken::DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap()).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    assert!(jsonwebtoken::crypto::verify(sig, input.as_bytes(), &key, Algorithm::ES256).unwrap());
}

#[tokio::test]
async fn mint_raw_signing_follows_alg() {
    let iss = DevIssuer::start().await.unwrap();
    let claims = json!({"sub": "x"});
    let none = iss.mint_raw(json!({"alg": "none"}), claims.clone());
    assert!(none.ends_with('.') && none.matches('.').count() == 2);
    let rs = iss.mint_raw(json!({"alg": "RS256"}), claims.clone());
    assert_eq!(URL_SAFE_NO_PAD.decode(rs.rsplit('.').next().unwrap()).unwrap().len(), 64);
    let hs = iss.mint_raw(json!({"alg": "HS512"}), claims.clone());
    let (input, sig) = hs.rsplit_once('.').unwrap();
    let secret = jsonwebtoken::DecodingKey::from_secret(iss.public_key_pem().as_bytes());
    assert!(jsonwebtoken::crypto::verify(sig, input.as_bytes(), &secret, Algorithm::HS512).unwrap());
    assert!(iss.public_key_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
    let raw = iss.sign_parts(b"{not json", b"{}");
    assert_eq!(URL_SAFE_NO_PAD.decode(raw.split('.').next().unwrap()).unwrap(), b"{not json");
}

#[tokio::test]
async fn rotate_and_publish_change_the_jwks() {
    let iss = DevIssuer::start().await.unwrap();
    let old = iss.kid();
    let new = iss.rotate_key().unwrap();
    assert_ne!(old, new);
    assert_eq!(iss.kid(), new);
    iss.publish_jwk(json!({"kty": "oct", "kid": "extra"}));
    let (_, jwks) = get(&iss.jwks_uri()).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [new.as_str(), "extra"]);
}

#[tokio::test]
async fn drop_stops_the_server() {
    let iss = DevIssuer::start().await.unwrap();
    let url = iss.jwks_uri();
    assert_eq!(get(&url).await.0, 200);
    drop(iss);
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    assert!(client.get(&url).send().await.is_err());
}

// ---------------------------------------------------------------------------------------------
// Device authorization grant and refresh tokens, over raw HTTP.

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// POST a body; returns status, headers and the body (JSON when it parses).
async fn post(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = reqwest::Client::new().post(url).header("content-type", content_type).body(body).send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn post_form(url: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) = post(url, "application/x-www-form-urlencoded", form(pairs)).await;
    (status, body)
}

/// An RFC 6749 error answer: status, `error`, and a non-empty `error_description`.
#[track_caller]
fn assert_oauth_error(got: &(u16, Value), status: u16, error: &str) {
    assert_eq!((got.0, got.1["error"].as_str()), (status, Some(error)), "{got:?}");
    assert!(got.1["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{got:?}");
}

async fn device_auth(iss: &DevIssuer) -> Value {
    let (status, body) =
        post_form(&iss.device_authorization_endpoint(), &[("client_id", "hoop-kube"), ("scope", "openid groups offline_access bogus")]).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn poll_raw(iss: &DevIssuer, device_code: &str) -> (u16, Value) {
    post_form(&iss.token_endpoint(), &[("grant_type", DEVICE_GRANT), ("device_code", device_code), ("client_id", "hoop-kube")]).await
}

async fn refresh_raw(iss: &DevIssuer, refresh_token: &str) -> (u16, Value) {
    post_form(&iss.token_endpoint(), &[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", "hoop-kube")]).await
}

#[tokio::test]
async fn discovery_names_the_device_and_token_endpoints() {
    let iss = DevIssuer::start().await.unwrap();
    let (_, doc) = get(&format!("{}/.well-known/openid-configuration", iss.issuer())).await;
    assert_eq!(doc["device_authorization_endpoint"], iss.device_authorization_endpoint());
    assert_eq!(doc["token_endpoint"], iss.token_endpoint());
    assert_eq!(doc["authorization_endpoint"], format!("{}/authorize", iss.issuer()));
    assert_eq!(doc["grant_types_supported"], json!([DEVICE_GRANT, "refresh_token"]));
    assert_eq!(doc["token_endpoint_auth_methods_supported"], json!(["none"]));
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    assert!(doc["response_types_supported"].is_array());
    assert_eq!(doc["scopes_supported"], json!(["openid", "offline_access", "email", "profile", "groups"]));
    let authorize = get(&format!("{}/authorize?response_type=code", iss.issuer())).await;
    assert_oauth_error(&authorize, 400, "unsupported_response_type");
}

#[tokio::test]
async fn device_code_grant_over_raw_http() {
    let iss = DevIssuer::start().await.unwrap();
    iss.register_user("alice", &["dev"], json!({"team": "a"}));
    let auth = device_auth(&iss).await;
    let user_code = auth["user_code"].as_str().unwrap().to_string();
    let device_code = auth["device_code"].as_str().unwrap().to_string();
    // 8 letters from the unambiguous alphabet, shown XXXX-XXXX.
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(user_code.bytes().filter(|b| *b != b'-').all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)), "{user_code}");
    assert!(URL_SAFE_NO_PAD.decode(&device_code).unwrap().len() >= 16, "≥128 bits");
    assert_eq!(auth["verification_uri"], format!("{}/device", iss.issuer()));
    assert_eq!(auth["verification_uri_complete"], format!("{}/device?user_code={user_code}", iss.issuer()));
    assert_eq!((auth["expires_in"].as_u64(), auth["interval"].as_u64()), (Some(600), Some(1)));
    let pending = iss.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].user_code.as_str(), pending[0].client_id.as_str()), (user_code.as_str(), "hoop-kube"));
    assert_eq!(pending[0].scope, "openid offline_access groups", "unknown scopes dropped, openid first");

    assert_oauth_error(&poll_raw(&iss, &device_code).await, 400, "authorization_pending");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_oauth_error(&poll_raw(&iss, &device_code).await, 400, "authorization_pending");
    // Polled again at once: slow_down, and the interval grows by 5 s (so the next quick poll is
    // too early as well).
    let slow = poll_raw(&iss, &device_code).await;
    assert_oauth_error(&slow, 400, "slow_down");
    assert!(slow.1["error_description"].as_str().unwrap().contains("every 6 s"), "{slow:?}");
    let slow = poll_raw(&iss, &device_code).await;
    assert!(slow.1["error_description"].as_str().unwrap().contains("every 11 s"), "{slow:?}");
    assert_eq!(iss.polls(&user_code).len(), 4);
    assert!(iss.polls(&user_code)[1] >= Duration::from_millis(1050));

    // Another login, approved before its first poll (any case, dash or space).
    let auth = device_auth(&iss).await;
    let (user_code, device_code) = (auth["user_code"].as_str().unwrap(), auth["device_code"].as_str().unwrap());
    assert_eq!(iss.approve(user_code, "mallory"), Err(ApprovalError::UnknownSubject("mallory".into())));
    iss.approve(&user_code.to_lowercase().replace('-', " "), "alice").unwrap();
    assert_eq!(iss.pending().len(), 1, "only the first login still waits");
    assert_eq!(iss.approve(user_code, "alice"), Err(ApprovalError::AlreadyDecided(user_code.into())));
    assert_eq!(iss.deny(user_code), Err(ApprovalError::AlreadyDecided(user_code.into())));
    let (status, tokens) = poll_raw(&iss, device_code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 600);
    assert_eq!(tokens["scope"], "openid offline_access groups");
    assert!(tokens["access_token"].as_str().is_some_and(|t| t.len() >= 40));
    assert!(tokens["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));
    let claims = decode_part(tokens["id_token"].as_str().unwrap().split('.').nth(1).unwrap());
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str(), claims["sub"].as_str()),
        (Some(iss.issuer()), Some("hoop-kube"), Some("alice"))
    );
    assert_eq!((claims["groups"].clone(), claims["team"].clone()), (json!(["dev"]), json!("a")));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    // Single use.
    assert_oauth_error(&poll_raw(&iss, device_code).await, 400, "invalid_grant");
    assert_eq!(iss.token_requests(), TokenRequests { device_code: 6, refresh_token: 0, other: 0 });
}

async fn login_raw(iss: &DevIssuer, subject: &str) -> Value {
    let auth = device_auth(iss).await;
    iss.approve(auth["user_code"].as_str().unwrap(), subject).unwrap();
    let (status, tokens) = poll_raw(iss, auth["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

fn id_claims(tokens: &Value) -> Value {
    decode_part(tokens["id_token"].as_str().unwrap().split('.').nth(1).unwrap())
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_grant() {
    let iss = DevIssuer::start().await.unwrap();
    iss.register_user("alice", &["dev"], Value::Null);
    let first = login_raw(&iss, "alice").await;
    let other = login_raw(&iss, "alice").await;
    let rt1 = first["refresh_token"].as_str().unwrap();

    let (status, second) = refresh_raw(&iss, rt1).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2, "rotated");
    assert_ne!(first["id_token"], second["id_token"]);
    assert_eq!(id_claims(&second)["sub"], "alice");
    assert_eq!(second["scope"], first["scope"]);

    // A refresh picks up what the user is now.
    iss.register_user("alice", &["dev", "ops"], json!({"act": {"sub": "bot"}}));
    let (status, third) = refresh_raw(&iss, rt2).await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(id_claims(&third)["groups"], json!(["dev", "ops"]));
    assert_eq!(id_claims(&third)["act"], json!({"sub": "bot"}));
    let rt3 = third["refresh_token"].as_str().unwrap();

    // Reusing rt2 (already used) revokes the grant: rt3 is dead too.
    assert_oauth_error(&refresh_raw(&iss, rt2).await, 400, "invalid_grant");
    assert_oauth_error(&refresh_raw(&iss, rt3).await, 400, "invalid_grant");
    assert_oauth_error(&refresh_raw(&iss, rt1).await, 400, "invalid_grant");
    // Forged or mangled tokens.
    let (body, _) = rt3.rsplit_once('.').unwrap();
    let (grant, _) = body.split_once('.').unwrap();
    for bad in [String::from("x"), "a.b.c".into(), format!("{grant}.9.{}", "A".repeat(43)), format!("{rt3}x"), "é".repeat(300)] {
        assert_oauth_error(&refresh_raw(&iss, &bad).await, 400, "invalid_grant");
    }
    // Another client may not use it.
    let rt_other = other["refresh_token"].as_str().unwrap();
    let wrong_client =
        post_form(&iss.token_endpoint(), &[("grant_type", "refresh_token"), ("refresh_token", rt_other), ("client_id", "nope")]).await;
    assert_oauth_error(&wrong_client, 401, "invalid_client");
    // The other grant is untouched.
    assert_eq!(refresh_raw(&iss, rt_other).await.0, 200);
    assert_eq!(iss.token_requests(), TokenRequests { device_code: 2, refresh_token: 12, other: 0 });
}

#[tokio::test]
async fn unapproved_codes_expire() {
    let opts = DevIssuerOptions { device_code_ttl: Duration::from_secs(1), ..Default::default() };
    let iss = DevIssuer::start_with(opts).await.unwrap();
    iss.register_user("alice", &[], Value::Null);
    let auth = device_auth(&iss).await;
    assert_eq!(auth["expires_in"], 1);
    let user_code = auth["user_code"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(iss.pending().is_empty());
    assert_oauth_error(&poll_raw(&iss, auth["device_code"].as_str().unwrap()).await, 400, "expired_token");
    assert_eq!(iss.approve(user_code, "alice"), Err(ApprovalError::Expired(user_code.into())));
    let page = reqwest::get(auth["verification_uri_complete"].as_str().unwrap()).await.unwrap();
    assert_eq!(page.status().as_u16(), 410);
}

#[tokio::test]
async fn hostile_requests_get_rfc6749_errors() {
    let iss = DevIssuer::start().await.unwrap();
    let (token, device) = (iss.token_endpoint(), iss.device_authorization_endpoint());
    let form_type = "application/x-www-form-urlencoded";

    // Too large: declared, and streamed without a length.
    let big = format!("client_id=hoop-kube&grant_type=refresh_token&refresh_token={}", "a".repeat(17 * 1024));
    let (status, _, body) = post(&token, form_type, big.clone()).await;
    assert_oauth_error(&(status, body), 413, "invalid_request");
    let (status, _, body) = post(&device, form_type, big.clone()).await;
    assert_oauth_error(&(status, body), 413, "invalid_request");
    assert_eq!(chunked_post(iss.issuer(), "/token", big.as_bytes()).await, 413);
    assert_eq!(chunked_post(iss.issuer(), "/token", b"client_id=hoop-kube&grant_type=x").await, 400, "small chunked bodies are fine");

    let cases: Vec<(&str, String, u16, &str)> = vec![
        (&token, form(&[("client_id", "hoop-kube"), ("grant_type", "password"), ("username", "a")]), 400, "unsupported_grant_type"),
        (&token, form(&[("client_id", "hoop-kube")]), 400, "invalid_request"),
        (&token, form(&[("client_id", "hoop-kube"), ("grant_type", "")]), 400, "invalid_request"),
        (&token, form(&[("client_id", "hoop-kube"), ("grant_type", DEVICE_GRANT), ("grant_type", DEVICE_GRANT)]), 400, "invalid_request"),
        (&token, form(&[("client_id", "hoop-kube"), ("client_id", "hoop-kube"), ("grant_type", DEVICE_GRANT)]), 400, "invalid_request"),
        (&token, form(&[("client_id", "hoop-kube"), ("grant_type", DEVICE_GRANT)]), 400, "invalid_request"),
        (&token, form(&[("client_id", "hoop-kube"), ("grant_type", DEVICE_GRANT), ("device_code", "nope")]), 400, "invalid_grant"),
        (&token, form(&[("client_id", "hoop-kube"), ("grant_type", "refresh_token")]), 400, "invalid_request"),
        (&token, form(&[("client_id", "evil"), ("grant_type", DEVICE_GRANT), ("device_code", "x")]), 401, "invalid_client"),
        (&token, form(&[("grant_type", DEVICE_GRANT), ("device_code", "x")]), 401, "invalid_client"),
        (&token, "client_id=hoop-kube&grant_type=%FF%FE&x=%".into(), 400, "unsupported_grant_type"),
        (&device, form(&[("client_id", "evil")]), 401, "invalid_client"),
        (&device, form(&[("scope", "openid")]), 401, "invalid_client"),
        (&device, form(&[("client_id", "hoop-kube"), ("scope", "openid"), ("scope", "email")]), 400, "invalid_request"),
    ];
    for (url, body, status, error) in cases {
        let (got, _, answer) = post(url, form_type, body.clone()).await;
        assert_oauth_error(&(got, answer), status, error);
    }
    // Not a form, not UTF-8.
    let (status, _, body) = post(&token, "application/json", r#"{"grant_type":"refresh_token"}"#).await;
    assert_oauth_error(&(status, body), 400, "invalid_request");
    let (status, _, body) = post(&token, form_type, b"client_id=hoop-kube&grant_type=\xff".to_vec()).await;
    assert_oauth_error(&(status, body), 400, "invalid_request");
    let (status, _, body) = post(&device, "text/plain", "client_id=hoop-kube").await;
    assert_oauth_error(&(status, body), 400, "invalid_request");

    // Wrong methods and paths.
    let client = reqwest::Client::new();
    for (method, url, allow) in [
        (reqwest::Method::GET, token.clone(), "POST"),
        (reqwest::Method::PUT, device.clone(), "POST"),
        (reqwest::Method::DELETE, format!("{}/device", iss.issuer()), "GET, POST"),
    ] {
        let resp = client.request(method, &url).send().await.unwrap();
        assert_eq!(resp.headers()["allow"], allow);
        let status = resp.status().as_u16();
        assert_oauth_error(&(status, resp.json().await.unwrap()), 405, "invalid_request");
    }
    assert_oauth_error(&get(&format!("{}/nope", iss.issuer())).await, 404, "not_found");
    assert!(iss.pending().is_empty(), "no device code was issued");
    // Every POST /token counted, by grant type (unreadable and unknown ones as other).
    assert_eq!(iss.token_requests(), TokenRequests { device_code: 4, refresh_token: 1, other: 11 });
}

/// POST `body` with `Transfer-Encoding: chunked` (no length) over a raw connection; the status.
async fn chunked_post(issuer: &str, path: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(issuer.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(1000) {
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.unwrap();
        stream.write_all(chunk).await.unwrap();
        // The server may answer (and close) before the whole body is sent.
        if stream.write_all(b"\r\n").await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// The `value` of the `<input name="{name}">` on a page.
fn input_value(page: &str, name: &str) -> String {
    let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} on {page}")) + name.len() + 15;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

async fn page_post(iss: &DevIssuer, pairs: &[(&str, &str)]) -> (u16, String) {
    let (status, _, body) = post(&format!("{}/device", iss.issuer()), "application/x-www-form-urlencoded", form(pairs)).await;
    (status, body.as_str().map(str::to_string).unwrap_or_else(|| body.to_string()))
}

#[tokio::test]
async fn approval_page_approves_and_denies() {
    let iss = DevIssuer::start().await.unwrap();
    iss.register_user("alice", &["dev"], Value::Null);
    iss.register_user("<b>eve</b>\"'&", &[], Value::Null);
    let auth = device_auth(&iss).await;
    let user_code = auth["user_code"].as_str().unwrap();

    let resp = reqwest::get(auth["verification_uri_complete"].as_str().unwrap()).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert!(resp.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    let page = resp.text().await.unwrap();
    assert!(page.contains(user_code), "{page}");
    assert!(page.contains("<button type=\"submit\" name=\"subject\" value=\"alice\">alice</button>"), "{page}");
    assert!(page.contains("&lt;b&gt;eve&lt;/b&gt;&quot;&#39;&amp;") && !page.contains("<b>eve"), "escaped: {page}");
    assert!(!page.contains("http://") && !page.contains("https://"), "no external assets");
    let xsrf = input_value(&page, "xsrf");
    assert_eq!(input_value(&page, "user_code"), user_code);

    // Forged or stale forms.
    for bad in ["", "wrong"] {
        let (status, _) = page_post(&iss, &[("user_code", user_code), ("xsrf", bad), ("subject", "alice")]).await;
        assert_eq!(status, 403);
    }
    assert_eq!(page_post(&iss, &[("user_code", user_code), ("xsrf", &xsrf), ("subject", "nobody")]).await.0, 400);
    assert_eq!(page_post(&iss, &[("user_code", user_code), ("xsrf", &xsrf)]).await.0, 400, "no subject chosen");
    assert_eq!(page_post(&iss, &[("user_code", user_code), ("xsrf", &xsrf), ("action", "launch")]).await.0, 400);
    assert_eq!(page_post(&iss, &[("user_code", "BCDF-GHJK"), ("xsrf", &xsrf), ("subject", "alice")]).await.0, 404);
    assert_eq!(page_post(&iss, &[("xsrf", &xsrf), ("subject", "alice")]).await.0, 400);
    assert!(!iss.pending().is_empty(), "still pending");

    let (status, done) = page_post(&iss, &[("user_code", user_code), ("xsrf", &xsrf), ("subject", "alice")]).await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Signed in as <strong>alice</strong>"), "{done}");
    let (status, tokens) = poll_raw(&iss, auth["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(id_claims(&tokens)["sub"], "alice");
    assert_eq!(reqwest::get(auth["verification_uri_complete"].as_str().unwrap()).await.unwrap().status().as_u16(), 409);
    assert_eq!(page_post(&iss, &[("user_code", user_code), ("xsrf", &xsrf), ("subject", "alice")]).await.0, 409);

    // Deny.
    let auth = device_auth(&iss).await;
    let page = reqwest::get(auth["verification_uri_complete"].as_str().unwrap()).await.unwrap().text().await.unwrap();
    let user_code = auth["user_code"].as_str().unwrap();
    let (status, denied) = page_post(&iss, &[("user_code", user_code), ("xsrf", &input_value(&page, "xsrf")), ("action", "deny")]).await;
    assert_eq!(status, 200, "{denied}");
    assert_oauth_error(&poll_raw(&iss, auth["device_code"].as_str().unwrap()).await, 400, "access_denied");

    // The code entry form, unknown and hostile codes.
    let entry = reqwest::get(format!("{}/device", iss.issuer())).await.unwrap();
    assert_eq!(entry.status().as_u16(), 200);
    assert!(entry.text().await.unwrap().contains("name=\"user_code\""));
    for (query, status) in [("user_code=AAAA-AAAA", 404), ("user_code=%3Cscript%3E", 404), ("user_code=a&user_code=b", 400), ("x=%FF", 200)] {
        let resp = reqwest::get(format!("{}/device?{query}", iss.issuer())).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{query}");
        assert!(!resp.text().await.unwrap().contains("<script>"));
    }
    let long = format!("{}/device?user_code={}", iss.issuer(), "B".repeat(17 * 1024));
    assert_eq!(reqwest::get(long).await.unwrap().status().as_u16(), 414);
}

#[tokio::test]
async fn approval_page_can_be_turned_off() {
    let iss = DevIssuer::start_with(DevIssuerOptions { approval_page: false, ..Default::default() }).await.unwrap();
    iss.register_user("alice", &[], Value::Null);
    let auth = device_auth(&iss).await;
    let resp = reqwest::get(auth["verification_uri_complete"].as_str().unwrap()).await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let user_code = auth["user_code"].as_str().unwrap();
    assert_eq!(page_post(&iss, &[("user_code", user_code), ("xsrf", "x"), ("subject", "alice")]).await.0, 403);
    iss.approve(user_code, "alice").unwrap();
}

#[tokio::test]
async fn wait_for_login_returns_logins_started_after_the_mark() {
    let iss = DevIssuer::start().await.unwrap();
    let stale = device_auth(&iss).await;
    let mark = iss.device_authorizations();
    assert_eq!(mark, 1);
    assert_eq!(iss.wait_for_login(mark, Duration::from_millis(100)).await, None, "the stale login is not picked");
    let iss = Arc::new(iss);
    let started = {
        let iss = iss.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            device_auth(&iss).await
        })
    };
    let login = iss.wait_for_login(mark, Duration::from_secs(10)).await.expect("the new login");
    let fresh = started.await.unwrap();
    assert_eq!(login.user_code, fresh["user_code"].as_str().unwrap());
    assert_ne!(login.user_code, stale["user_code"].as_str().unwrap());
    assert_eq!(login.number, 2);
    assert!(login.expires_in <= Duration::from_secs(600) && login.expires_in > Duration::from_secs(590));
}

// ---------------------------------------------------------------------------------------------
// The bookkeeping alone, with a made-up clock.

#[test]
fn flows_expire_cap_and_prune() {
    let t0 = Instant::now();
    let ttl = Duration::from_secs(600);
    let mut f = flows::Flows::new();
    f.register_user("alice", flows::User { groups: vec![], extra: Value::Null });
    let a = f.start("c", "openid", ttl, Duration::from_secs(1), t0).unwrap();
    assert_eq!(f.poll(&a.device_code, "other", ttl, t0).unwrap_err().error, "invalid_grant");
    f.approve(&a.user_code, "alice", t0).unwrap();
    assert_eq!(f.poll(&a.device_code, "c", ttl, t0 + ttl).unwrap_err().error, "expired_token", "approved, but collected too late");

    // A refresh token expires refresh_ttl after it was issued.
    let b = f.start("c", "openid", ttl, Duration::from_secs(1), t0).unwrap();
    f.approve(&b.user_code, "alice", t0).unwrap();
    let issued = f.poll(&b.device_code, "c", Duration::from_secs(60), t0).unwrap();
    let again = f.refresh(&issued.refresh_token, "c", Duration::from_secs(60), t0 + Duration::from_secs(59)).unwrap();
    let late = f.refresh(&again.refresh_token, "c", Duration::from_secs(60), t0 + Duration::from_secs(119));
    assert_eq!(late.unwrap_err().error, "invalid_grant");

    // At most 1000 device codes at once; long-expired ones are forgotten.
    let mut n = 2;
    let full = loop {
        match f.start("c", "openid", ttl, Duration::from_secs(1), t0) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!((n, full.status.as_u16(), full.error), (1000, 503, "temporarily_unavailable"));
    let later = t0 + ttl + Duration::from_secs(601);
    let c = f.start("c", "openid", ttl, Duration::from_secs(1), later).unwrap();
    assert_eq!(f.pending(later).len(), 1);
    assert_eq!(f.approve(&a.user_code, "alice", later), Err(ApprovalError::UnknownCode(a.user_code.clone())));
    assert_eq!(f.poll(&a.device_code, "c", ttl, later).unwrap_err().error, "invalid_grant", "forgotten");
    assert_eq!(f.pending(later)[0].user_code, c.user_code);
}

#[test]
fn user_codes_normalize() {
    assert_eq!(flows::normalize_user_code("bcdf-ghjk").as_deref(), Some("BCDFGHJK"));
    assert_eq!(flows::normalize_user_code(" BCDF GHJK ").as_deref(), Some("BCDFGHJK"));
    for bad in ["BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1", "", "ＢCDF-GHJK"] {
        assert_eq!(flows::normalize_user_code(bad), None, "{bad}");
    }
    assert_eq!(flows::normalize_user_code(&"-".repeat(100)), None);
    assert_eq!(flows::display_user_code("BCDFGHJK"), "BCDF-GHJK");
}
