//! Fuzzes the relay's agent-token verifier (`agent::token::SigningKey::verify`) and its header
//! router (`agent::token::kid_of`), with a fixed key so seed tokens verify.
//!
//! Input: the first byte picks what the rest is.
//! - `< 0x80`: a token, verified as it is (structure, header, signature: a fuzzer cannot forge
//!   ES256, so this explores the parser in front of the signature check).
//! - `>= 0x80`: `HEADER 0xff PAYLOAD` (JSON text, split at the first `0xff`), base64url-encoded
//!   and signed with the relay's key, then verified: this reaches every claim check behind the
//!   signature, as a token the relay itself signed would.
//!
//! Checked: no panic; a refusal's message is one short line; anything that verifies has our
//! `kid` (`kid_of` agrees), was a token of exactly three canonical parts, and round-trips:
//! minting its claims gives a token that verifies to the same claims.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hoop_kube::agent::token::{kid_of, SigningKey};
use libfuzzer_sys::fuzz_target;

/// A P-256 key made for this target only (PKCS#8 DER, base64); it signs nothing anywhere else.
const FUZZ_KEY_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgc13KbTDLSLFSDnZLbVxowuRc+6uJEQ2WyXdNpudwkmKhRANCAATGKIUIHZ+xbRoUEumrxOLxwvW5lWdXFBKvZ4ZS4jQQI6H25/vKuliNVacVMBvqUsBNgW0l8gz57C7qy4GoyN33";
/// "Now" for every verification; the seed tokens are valid then.
const NOW: i64 = 1_700_000_000;

struct Fixture {
    key: SigningKey,
    encoding: jsonwebtoken::EncodingKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let der = STANDARD.decode(FUZZ_KEY_PKCS8).expect("fixed key is base64");
        let body: Vec<String> = FUZZ_KEY_PKCS8.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", body.join("\n"));
        let key = SigningKey::from_pem(&pem).expect("fixed key loads");
        Fixture { key, encoding: jsonwebtoken::EncodingKey::from_ec_der(&der) }
    })
}

fn sign_raw(f: &Fixture, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &f.encoding, jsonwebtoken::Algorithm::ES256).expect("ES256 signing");
    format!("{input}.{sig}")
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = if mode < 0x80 {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_owned(),
            Err(_) => return,
        }
    } else {
        let split = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
        let (header, payload) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
        sign_raw(f, header, payload)
    };
    let kid = kid_of(&token);
    match f.key.verify(&token, NOW) {
        Ok(claims) => {
            assert_eq!(kid.as_deref(), Some(f.key.kid()), "a verified token routes to the agent verifier");
            let parts: Vec<&str> = token.split('.').collect();
            assert_eq!(parts.len(), 3);
            for p in &parts {
                let bytes = URL_SAFE_NO_PAD.decode(p).expect("verified parts are base64url");
                assert_eq!(URL_SAFE_NO_PAD.encode(bytes), *p, "verified parts are canonical");
            }
            let again = f.key.mint(&claims).expect("minting never fails with a loaded key");
            assert_eq!(f.key.verify(&again, NOW), Ok(claims), "round trip");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && !msg.contains('\r') && msg.len() < 200, "{msg:?}");
        }
    }
});
