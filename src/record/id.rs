//! Record and session ids: UUID version 7 (RFC 9562), so an id is both a valid Kubernetes audit
//! `auditID` (a UID string) and sortable by creation time (48-bit Unix milliseconds first, then
//! random bits).
//!
//! Why v7 rather than v4: the records API lists newest first and a time-ordered key keeps the
//! store's inserts at the end of its indexes; a UUID rather than a ULID because audit pipelines
//! and the apiserver's own `Audit-ID` header carry UUIDs. The relay can send the record id
//! upstream as `Audit-ID`, so the cluster's audit log and the relay's record share one id.
//!
//! What it trusts: nothing. [`is_id`] accepts exactly the lower-case hyphenated form this module
//! produces (version 7, RFC variant) and is checked before any lookup.

/// The header that carries the record id. It is the apiserver's own audit header: a relay that
/// drops the client's `Audit-ID`, sends `Audit-ID: <record id>` upstream and sets it on every
/// response (forwarded or refused) gives kubectl (`-v=8` shows it), the relay's records and the
/// cluster's audit log one id for the request.
pub const AUDIT_ID_HEADER: &str = "Audit-Id";

/// A new id for `unix_micros` (only its milliseconds are encoded).
#[must_use]
pub fn new_id(unix_micros: i64) -> String {
    let millis = u64::try_from(unix_micros.max(0) / 1000).unwrap_or(0);
    let random: [u8; 10] = rand::random();
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Whether `s` is an id of the shape [`new_id`] makes: 36 characters, lower-case hex,
/// hyphenated, version 7, RFC 4122/9562 variant.
#[must_use]
pub fn is_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    let shape = b.iter().enumerate().all(|(i, &c)| match i {
        8 | 13 | 18 | 23 => c == b'-',
        _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
    });
    shape && b[14] == b'7' && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_sort_by_time() {
        let a = new_id(1_700_000_000_000_000);
        let b = new_id(1_700_000_000_001_000);
        assert!(is_id(&a) && is_id(&b), "{a} {b}");
        assert!(a < b, "{a} !< {b}");
        assert_ne!(new_id(5), new_id(5));
        assert!(is_id(&new_id(-1)));
    }

    #[test]
    fn hostile_ids_are_refused() {
        let good = new_id(1_700_000_000_000_000);
        assert!(!is_id(&good.to_uppercase()));
        assert!(!is_id(&good[1..]));
        assert!(!is_id(&format!("{good}x")));
        assert!(
            !is_id("00000000-0000-4000-8000-000000000000"),
            "v4 is not ours"
        );
        assert!(
            !is_id("00000000-0000-7000-c000-000000000000"),
            "wrong variant"
        );
        assert!(!is_id("00000000-0000-7000-8000-00000000000g"));
        assert!(!is_id("../../../../etc/passwd-0000000000000"));
    }
}
