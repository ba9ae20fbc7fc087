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
