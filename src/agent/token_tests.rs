//! Agent tokens against hostile input: every refusal of the module documentation, and the round
//! trip.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const NOW: i64 = 1_700_000_000;
const SID: &str = "0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8b";

fn claims() -> Claims {
    Claims { subject: "alice-sub".into(), agent: "bot".into(), session: SID.into(), issued_at: NOW - 10, not_before: NOW - 10, expires_at: NOW + 600 }
}

fn b64url(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn header_json(key: &SigningKey) -> String {
    format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, key.kid())
}

fn payload() -> Value {
    json!({"iss": ISSUER, "aud": ISSUER, "sub": "alice-sub", "act": {"sub": "bot"}, "sid": SID, "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600})
}

/// `payload()` with the members of `patch` set (a `null` member removes the key).
fn with(patch: Value) -> Value {
    let mut base = payload();
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

/// Sign arbitrary header and payload text with `key` (ES256), as a key holder could.
fn sign_raw(key: &SigningKey, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64url(header), b64url(payload));
    let sig = key.sign(&input).unwrap();
    format!("{input}.{sig}")
}

fn signed(key: &SigningKey, payload: &Value) -> String {
    sign_raw(key, &header_json(key), &payload.to_string())
}

fn verify(key: &SigningKey, token: &str) -> Result<Claims, TokenError> {
    key.verify(token, NOW)
}

#[test]
fn mint_verify_round_trip() {
    let key = SigningKey::generate().unwrap();
    let token = key.mint(&claims()).unwrap();
    assert_eq!(verify(&key, &token), Ok(claims()));
    assert_eq!(kid_of(&token).as_deref(), Some(key.kid()));
    assert_eq!(key.kid().len(), 16);
    assert!(key.kid().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{}", key.kid());
    // The header and payload are exactly the contract's.
    let parts: Vec<&str> = token.split('.').collect();
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, header_json(&key));
    let body: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(body, payload());
    assert_eq!(body.to_string(), payload().to_string(), "claim order");
    // A token minted by the relay that made it is accepted by a relay that loaded the same key.
    let again = SigningKey::from_pem(&key.to_pem()).unwrap();
    assert_eq!(again.kid(), key.kid());
    assert_eq!(verify(&again, &token), Ok(claims()));
    assert_eq!(verify(&key, &again.mint(&claims()).unwrap()), Ok(claims()));
    assert_ne!(SigningKey::generate().unwrap().kid(), key.kid());
}

#[test]
fn kid_is_the_spki_digest() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key = SigningKey::from_pem(&pair.serialize_pem()).unwrap();
    let want = hex::encode(Sha256::digest(pair.subject_public_key_info()));
    assert_eq!(key.kid(), &want[..16]);
}

#[test]
fn only_pkcs8_p256_keys_load() {
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap().serialize_pem();
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap().serialize_pem();
    assert!(matches!(SigningKey::from_pem(&p384), Err(KeyError::WrongAlgorithm(_))));
    assert!(matches!(SigningKey::from_pem(&ed), Err(KeyError::WrongAlgorithm(_))));
    let pem = SigningKey::generate().unwrap().to_pem();
    for bad in ["", "not a key", &pem.replace("PRIVATE KEY", "EC PRIVATE KEY"), &pem.replace("PRIVATE KEY", "CERTIFICATE")] {
        assert!(matches!(SigningKey::from_pem(bad), Err(KeyError::NotPkcs8(_))), "{bad:?}");
    }
    let mangled = pem.replacen("MIG", "MIH", 1);
    assert!(SigningKey::from_pem(&mangled).is_err());
}

#[test]
fn debug_never_shows_the_private_key() {
    let key = SigningKey::generate().unwrap();
    let dbg = format!("{key:?}");
    assert!(dbg.contains(key.kid()) && !dbg.contains("PRIVATE") && !dbg.contains(&key.to_pem()[28..60]), "{dbg}");
}

#[test]
fn malformed_tokens() {
    let key = SigningKey::generate().unwrap();
    let token = key.mint(&claims()).unwrap();
    let [h, p, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}."),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}.{s}.{s}.{s}"),
        format!(" {token}"),
        format!("{token} "),
        format!("{token}\n"),
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}==.{s}"),
        format!("{h}.{p}.{s}="),
        format!("{h}.+{}.{s}", &p[1..]),
        format!("{h}./{}.{s}", &p[1..]),
        format!("{}.{p}.{s}", h.replace('e', "e ")),
        format!("{h}.{p}.+{}", &s[1..]),
        format!(".{p}.{s}"),
        format!("{h}..{s}"),
        format!("{}.{p}.{s}", b64url("not json")),
        format!("{}.{p}.{s}", b64url("[\"ES256\"]")),
        format!("{}.{p}.{s}", b64url(&format!("{} x", header_json(&key)))),
    ];
    for bad in &cases {
        let r = verify(&key, bad);
        assert!(matches!(r, Err(TokenError::Malformed(_)) | Err(TokenError::BadSignature)), "{bad:?}: {r:?}");
    }
    // Truncated anywhere: never accepted.
    for cut in 1..token.len() {
        assert!(verify(&key, &token[..cut]).is_err(), "cut at {cut}");
    }
    // Non-canonical trailing bits in the last base64 character of the signature (86 characters:
    // 4 spare bits) decode to the same bytes elsewhere, and are refused here.
    let last = s.as_bytes()[s.len() - 1];
    let sibling = (b'A'..=b'Z').chain(b'a'..=b'z').chain(b'0'..=b'9').chain([b'-', b'_']).find(|&c| c != last && URL_SAFE_NO_PAD.decode([&s.as_bytes()[..s.len() - 1], &[c]].concat()).is_err());
    if let Some(c) = sibling {
        let odd = format!("{h}.{p}.{}{}", &s[..s.len() - 1], c as char);
        assert!(matches!(verify(&key, &odd), Err(TokenError::Malformed(_))), "{odd}");
    }
    assert_eq!(verify(&key, &"a".repeat(MAX_BYTES + 1)), Err(TokenError::TooLarge));
    let huge = signed(&key, &with(json!({"sub": "x".repeat(MAX_BYTES)})));
    assert_eq!(verify(&key, &huge), Err(TokenError::TooLarge));
}

const MAX_BYTES: usize = crate::jws::MAX_TOKEN_BYTES;

#[test]
fn duplicate_keys_anywhere_are_refused() {
    let key = SigningKey::generate().unwrap();
    let kid = key.kid().to_string();
    let body = payload().to_string();
    let headers = [
        format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}","alg":"ES256"}}"#),
        format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}","alg":"ES256"}}"#),
        format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}","\u0061lg":"ES256"}}"#),
        format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}","x":{{"a":1,"a":2}}}}"#),
    ];
    for h in headers {
        assert!(matches!(verify(&key, &sign_raw(&key, &h, &body)), Err(TokenError::Malformed(_))), "{h}");
    }
    let tail = &body[1..];
    let payloads = [
        format!(r#"{{"sub":"mallory",{tail}"#),
        format!(r#"{{"\u0073ub":"mallory",{tail}"#),
        body.replace(r#"{"sub":"bot"}"#, r#"{"sub":"bot","sub":"root"}"#),
        body.replace(r#""sid""#, r#""exp":1,"sid""#),
    ];
    for p in payloads {
        assert_ne!(p, body);
        assert!(matches!(verify(&key, &sign_raw(&key, &header_json(&key), &p)), Err(TokenError::Malformed(_))), "{p}");
    }
    for p in ["\"a string\"", "[1]", "null", "7", ""] {
        assert!(verify(&key, &sign_raw(&key, &header_json(&key), p)).is_err(), "{p}");
    }
}

#[test]
fn header_must_be_exactly_es256_jwt_and_our_kid() {
    let key = SigningKey::generate().unwrap();
    let kid = key.kid().to_string();
    let body = payload().to_string();
    let unsupported = |h: &str| matches!(verify(&key, &sign_raw(&key, h, &body)), Err(TokenError::UnsupportedAlgorithm(_)));
    for alg in ["none", "None", "HS256", "RS256", "ES384", "es256", "ES256 ", "EdDSA", ""] {
        assert!(unsupported(&format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#)), "{alg}");
    }
    let malformed = |h: &str| matches!(verify(&key, &sign_raw(&key, h, &body)), Err(TokenError::Malformed(_)));
    for h in [
        format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"ES256","typ":"jwt","kid":"{kid}"}}"#),
        r#"{"alg":"ES256","typ":"JWT"}"#.to_string(),
        r#"{"alg":"ES256","typ":"JWT","kid":7}"#.to_string(),
        format!(r#"{{"typ":"JWT","kid":"{kid}"}}"#),
        format!(r#"{{"alg":["ES256"],"typ":"JWT","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}","crit":["exp"]}}"#),
        format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}","jku":"https://evil.example/jwks"}}"#),
        format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}","jwk":{{"kty":"EC"}}}}"#),
        format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}","cty":"JWT"}}"#),
    ] {
        assert!(malformed(&h), "{h}");
    }
    let other = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, "0".repeat(16));
    assert!(matches!(verify(&key, &sign_raw(&key, &other, &body)), Err(TokenError::UnknownKey(k)) if k == "0".repeat(16)));
    // Control: the same helper with the right header verifies.
    assert_eq!(verify(&key, &sign_raw(&key, &header_json(&key), &body)), Ok(claims()));
}

#[test]
fn hmac_and_alg_none_forgeries_are_refused() {
    let key = SigningKey::generate().unwrap();
    let kid = key.kid();
    let body = b64url(&payload().to_string());
    // alg none, empty signature.
    let none = format!("{}.{body}.", b64url(&format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#)));
    assert!(matches!(verify(&key, &none), Err(TokenError::UnsupportedAlgorithm(_))));
    // HS256 keyed with the public key's text (the classic confusion) and with the PEM.
    let hs_header = b64url(&format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#));
    let input = format!("{hs_header}.{body}");
    let pem = key.to_pem();
    for secret in [kid.as_bytes(), pem.as_bytes()] {
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256).unwrap();
        assert!(matches!(verify(&key, &format!("{input}.{sig}")), Err(TokenError::UnsupportedAlgorithm(_))));
        // The same MAC under an ES256 header: a 32-byte signature.
        let es = format!("{}.{body}.{sig}", b64url(&header_json(&key)));
        assert_eq!(verify(&key, &es), Err(TokenError::BadSignature));
    }
    // RS256 (a 2048-bit signature) is refused by name, before any key is tried.
    let h = b64url(&format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#));
    let rs = format!("{h}.{body}.{}", URL_SAFE_NO_PAD.encode([7u8; 256]));
    assert!(matches!(verify(&key, &rs), Err(TokenError::UnsupportedAlgorithm(a)) if a == "RS256"));
}

#[test]
fn another_key_is_refused_whatever_its_kid() {
    let (ours, theirs) = (SigningKey::generate().unwrap(), SigningKey::generate().unwrap());
    let foreign = theirs.mint(&claims()).unwrap();
    assert!(matches!(verify(&ours, &foreign), Err(TokenError::UnknownKey(k)) if k == theirs.kid()));
    // Their key, our kid: the signature fails.
    let forged = sign_raw(&theirs, &header_json(&ours), &payload().to_string());
    assert_eq!(verify(&ours, &forged), Err(TokenError::BadSignature));
}

#[test]
fn edited_tokens_fail_the_signature() {
    let key = SigningKey::generate().unwrap();
    let token = key.mint(&claims()).unwrap();
    let [h, _, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let edits = [
        with(json!({"sub": "bob-sub"})),
        with(json!({"act": {"sub": "other-bot"}})),
        with(json!({"sid": "0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8c"})),
        with(json!({"exp": NOW + 60_000})),
        // Actor and subject swapped.
        with(json!({"sub": "bot", "act": {"sub": "alice-sub"}})),
    ];
    for edit in edits {
        let t = format!("{h}.{}.{s}", b64url(&edit.to_string()));
        assert_eq!(verify(&key, &t), Err(TokenError::BadSignature), "{edit}");
    }
    let mut sig = URL_SAFE_NO_PAD.decode(s).unwrap();
    for i in [0, 31, 32, 63] {
        sig[i] ^= 1;
        let t = format!("{h}.{}.{}", token.split('.').nth(1).unwrap(), URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(verify(&key, &t), Err(TokenError::BadSignature));
        sig[i] ^= 1;
    }
    let prefix = &token[..token.len() - s.len()];
    for sig in [String::new(), URL_SAFE_NO_PAD.encode([0u8; 64]), URL_SAFE_NO_PAD.encode(&sig[..63]), URL_SAFE_NO_PAD.encode([sig.as_slice(), &[0]].concat())] {
        assert_eq!(verify(&key, &format!("{prefix}{sig}")), Err(TokenError::BadSignature));
    }
}

#[test]
fn claims_must_be_exactly_the_contract() {
    let key = SigningKey::generate().unwrap();
    let check = |p: Value| verify(&key, &signed(&key, &p));
    assert!(matches!(check(with(json!({"admin": true}))), Err(TokenError::UnexpectedClaim(c)) if c == "admin"));
    assert!(matches!(check(with(json!({"groups": ["system:masters"]}))), Err(TokenError::UnexpectedClaim(_))));
    for name in CLAIM_NAMES {
        assert_eq!(check(with(json!({name: null}))), Err(TokenError::MissingClaim(name)), "{name}");
    }
    assert_eq!(check(with(json!({"iss": "https://idp.example.com"}))), Err(TokenError::WrongIssuer));
    assert_eq!(check(with(json!({"iss": 1}))), Err(TokenError::InvalidClaim("iss")));
    assert_eq!(check(with(json!({"aud": "hoop-kube"}))), Err(TokenError::WrongAudience));
    assert_eq!(check(with(json!({"aud": [ISSUER]}))), Err(TokenError::InvalidClaim("aud")));
    assert_eq!(check(with(json!({"sub": ""}))), Err(TokenError::InvalidClaim("sub")));
    assert_eq!(check(with(json!({"sub": "s".repeat(MAX_SUBJECT_BYTES + 1)}))), Err(TokenError::InvalidClaim("sub")));
    assert_eq!(check(with(json!({"sub": "s".repeat(MAX_SUBJECT_BYTES)}))).unwrap().subject.len(), MAX_SUBJECT_BYTES);
    assert_eq!(check(with(json!({"sub": null, "act": null, "x": 1}))), Err(TokenError::UnexpectedClaim("x".into())));
    for act in [json!("bot"), json!({}), json!({"sub": "bot", "iss": "x"}), json!({"sub": 1}), json!([{"sub": "bot"}]), json!({"act": {"sub": "bot"}})] {
        assert_eq!(check(with(json!({"act": act}))), Err(TokenError::InvalidClaim("act")), "{act}");
    }
    for agent in ["Bot", "b/t", "bot/../admin", "alice@example.com", "", "-bot", "bot\n", &"a".repeat(64)] {
        assert_eq!(check(with(json!({"act": {"sub": agent}}))), Err(TokenError::InvalidClaim("act.sub")), "{agent:?}");
    }
    // Subject and actor swapped, re-signed: an engineer subject is no agent name.
    assert_eq!(check(with(json!({"sub": "bot", "act": {"sub": "alice@example.com"}}))), Err(TokenError::InvalidClaim("act.sub")));
    for sid in [&SID.to_uppercase(), &SID.replace('-', ""), &format!("{{{SID}}}"), &format!("{SID}0"), &SID[1..], "urn:uuid:0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8b", "0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8g", ""] {
        assert_eq!(check(with(json!({"sid": sid}))), Err(TokenError::InvalidClaim("sid")), "{sid}");
    }
    assert_eq!(check(with(json!({"sid": 5}))), Err(TokenError::InvalidClaim("sid")));
    for (name, v) in [("iat", json!(1.5)), ("nbf", json!("1700000000")), ("exp", json!(1.7e9)), ("exp", json!(u64::MAX)), ("iat", json!(null)), ("nbf", json!(true))] {
        let r = check(with(json!({name: v.clone()})));
        assert!(matches!(r, Err(TokenError::InvalidClaim(n) | TokenError::MissingClaim(n)) if n == name), "{name}={v}: {r:?}");
    }
    assert_eq!(check(with(json!({"exp": NOW - 10}))), Err(TokenError::InvalidClaim("exp")), "exp == iat");
}

#[test]
fn validity_window() {
    let key = SigningKey::generate().unwrap();
    let token = key.mint(&claims()).unwrap();
    assert!(key.verify(&token, NOW + 599).is_ok());
    assert_eq!(key.verify(&token, NOW + 600), Err(TokenError::Expired), "no leeway for exp");
    assert_eq!(key.verify(&token, i64::MAX), Err(TokenError::Expired));
    let future = Claims { not_before: NOW + 30, issued_at: NOW + 30, expires_at: NOW + 90, ..claims() };
    let t = key.mint(&future).unwrap();
    assert!(key.verify(&t, NOW).is_ok(), "30 s leeway for nbf");
    assert_eq!(key.verify(&t, NOW - 1), Err(TokenError::NotYetValid));
    assert_eq!(key.verify(&t, i64::MIN), Err(TokenError::NotYetValid));
}

#[test]
fn errors_do_not_echo_token_contents() {
    let key = SigningKey::generate().unwrap();
    let kid = key.kid().to_string();
    let secret = "s3cr3t-value";
    let tokens = [
        sign_raw(&key, &format!(r#"{{"alg":"none\n{secret}","typ":"JWT","kid":"{kid}"}}"#), "{}"),
        sign_raw(&key, &format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{secret}\r\nX-Injected: 1"}}"#), "{}"),
        signed(&key, &with(json!({"aud": secret}))),
        signed(&key, &with(json!({"iss": secret}))),
        signed(&key, &with(json!({"sub": secret, "act": {"sub": format!("{secret}\n")}}))),
        signed(&key, &with(json!({format!("{secret}\n{}", "x".repeat(300)): 1}))),
    ];
    for token in tokens {
        let msg = verify(&key, &token).unwrap_err().to_string();
        assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg}");
        assert!(!msg.contains(&format!("\"{secret}\"")) && msg.len() < 160, "{msg}");
    }
}

#[test]
fn kid_of_reads_only_a_strict_header() {
    let key = SigningKey::generate().unwrap();
    let token = key.mint(&claims()).unwrap();
    assert_eq!(kid_of(&token).as_deref(), Some(key.kid()));
    // The rest is not looked at: a broken payload still routes to the agent verifier.
    let [h, _, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
    assert_eq!(kid_of(&format!("{h}.e30.{s}")).as_deref(), Some(key.kid()));
    for bad in [
        String::new(),
        "x".into(),
        format!("{h}.{s}"),
        format!("{h}=.e30.{s}"),
        format!("{}.e30.x", b64url(r#"{"alg":"ES256","kid":7}"#)),
        format!("{}.e30.x", b64url(r#"{"alg":"ES256"}"#)),
        format!("{}.e30.x", b64url(r#"{"kid":"a","kid":"b"}"#)),
        format!("{h}.e30.{}", "x".repeat(MAX_BYTES)),
        format!("{h}.e30.x.y.z"),
    ] {
        assert_eq!(kid_of(&bad), None, "{bad:?}");
    }
}

#[test]
fn canonical_uuids() {
    assert!(is_canonical_uuid(SID) && is_canonical_uuid("00000000-0000-0000-0000-000000000000"));
    assert!(is_canonical_uuid(&crate::record::id::new_id(1_700_000_000_000_000)));
    for bad in ["", "0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8", "0190a3c2_7b4e_7d1f_9a2b_3c4d5e6f7a8b", "0190A3C2-7b4e-7d1f-9a2b-3c4d5e6f7a8b", "0190a3c2-7b4e-7d1f-9a2b-3c4d5e6f7a8bb"] {
        assert!(!is_canonical_uuid(bad), "{bad}");
    }
}
