//! The values the masker writes in place of secrets, and how to recognise them again.
//!
//! Why fixed texts: a masked value must stay the type the client expects. `Secret.data` values
//! are base64 on the wire and `kubectl describe secret` decodes them (it failed with `illegal
//! base64 data at input byte 0` on `"***"`, `k8s-wire.md` §8), so `data` gets [`BASE64`], the
//! base64 of [`TEXT`]; plain-text positions (`stringData`, env values, ConfigMap data, tokens)
//! get [`TEXT`] itself. Both are recognisable, so the write guard can refuse a body that writes
//! them back (`kubectl edit` of a masked Secret would otherwise store the placeholder).
//!
//! Trusts nothing: [`is_placeholder`] takes any string. Rejects nothing: it only answers.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// The plain-text placeholder (16 bytes; `kubectl describe secret` shows `16 bytes`).
pub const TEXT: &str = "hoop-kube:masked";

/// [`TEXT`] in standard base64, for positions whose wire format is base64 (`Secret.data`,
/// `ConfigMap.binaryData`).
pub const BASE64: &str = "aG9vcC1rdWJlOm1hc2tlZA==";

/// What replaces a `kubectl.kubernetes.io/last-applied-configuration` annotation that is not a
/// JSON object: a valid JSON object (so clients that parse it still can) holding [`TEXT`].
pub const LAST_APPLIED_INVALID: &str = r#"{"hoop-kube":"hoop-kube:masked"}"#;

/// [`TEXT`] as a JSON string token.
pub(crate) const TEXT_JSON: &[u8] = b"\"hoop-kube:masked\"";
/// [`BASE64`] as a JSON string token.
pub(crate) const BASE64_JSON: &[u8] = b"\"aG9vcC1rdWJlOm1hc2tlZA==\"";

/// Base64 decoding as lenient as a Go client's `StdEncoding`/`RawStdEncoding`: any padding,
/// non-zero trailing bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Whether `s` is a placeholder the masker wrote: [`TEXT`] or any base64 spelling of it
/// (standard or URL alphabet, with or without padding), surrounding ASCII whitespace ignored
/// (an editor may add a newline).
#[must_use]
pub fn is_placeholder(s: &str) -> bool {
    let s = s.trim_ascii();
    if s == TEXT || s == BASE64 {
        return true;
    }
    // Base64 of 16 bytes is 22 to 24 characters.
    (22..=24).contains(&s.len())
        && [LENIENT, LENIENT_URL]
            .iter()
            .any(|e| e.decode(s).is_ok_and(|d| d == TEXT.as_bytes()))
}

/// Whether `s` holds a placeholder anywhere (as [`TEXT`] or [`BASE64`]): the test for strings
/// that embed masked values, such as a last-applied annotation written back.
#[must_use]
pub fn contains_placeholder(s: &str) -> bool {
    s.contains(TEXT) || s.contains(BASE64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn the_base64_placeholder_is_the_text_placeholder_encoded() {
        assert_eq!(STANDARD.encode(TEXT), BASE64);
        assert_eq!(STANDARD.decode(BASE64).unwrap(), TEXT.as_bytes());
        assert_eq!(TEXT_JSON, serde_json::to_vec(TEXT).unwrap());
        assert_eq!(BASE64_JSON, serde_json::to_vec(BASE64).unwrap());
        let v: serde_json::Value = serde_json::from_str(LAST_APPLIED_INVALID).unwrap();
        assert_eq!(v["hoop-kube"], TEXT);
    }

    #[test]
    fn placeholders_are_recognised_in_every_spelling() {
        for s in [
            TEXT,
            BASE64,
            " hoop-kube:masked\n",
            "aG9vcC1rdWJlOm1hc2tlZA",
            "aG9vcC1rdWJlOm1hc2tlZB==",
            "aG9vcC1rdWJlOm1hc2tlZA==\n",
        ] {
            assert!(is_placeholder(s), "{s:?}");
        }
        for s in [
            "",
            "hoop-kube",
            "hoop-kube:masked!",
            "aG9vcC1rdWJlOm1hc2tlZA==aG9v",
            "c2VjcmV0",
            "HOOP-KUBE:MASKED",
        ] {
            assert!(!is_placeholder(s), "{s:?}");
        }
        assert!(contains_placeholder(
            r#"{"data":{"p":"aG9vcC1rdWJlOm1hc2tlZA=="}}"#
        ));
        assert!(contains_placeholder("x hoop-kube:masked y"));
        assert!(!contains_placeholder("hoop-kube: masked"));
    }
}
