//! Who a relay client certificate is for: the `hoop-kube://subject/…` URI SAN.
//!
//! An engineer's certificate names one OIDC subject; an agent's names the engineer as subject
//! and the agent as actor, with the agent session it belongs to:
//!
//! ```text
//! hoop-kube://subject/<percent-encoded sub>
//! hoop-kube://subject/<percent-encoded sub>/agent/<agent name>/session/<session uuid>
//! ```
//!
//! The subject is percent-encoded (every byte outside `[A-Za-z0-9-._~]`), so it can never hold
//! a `/` and smuggle a field in; agent names and session ids have alphabets that need no
//! encoding ([`crate::agent::check_name`], canonical lower-case UUIDs). The reader rejects
//! instead of guessing: exactly one hoop-kube URI SAN, exactly one of the two shapes, and the
//! canonical encoding (re-encoding what was read must give the same string back).

use rustls::pki_types::CertificateDer;

/// The URI SAN scheme that names a hoop-kube subject in a client certificate.
pub const SUBJECT_URI_PREFIX: &str = "hoop-kube://subject/";

/// The agent acting for the subject of an agent certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The agent's name.
    pub agent: String,
    /// The agent session (a canonical lower-case UUID).
    pub session: String,
}

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSubject {
    /// The OIDC subject from the single `hoop-kube://subject/…` URI SAN.
    pub subject: String,
    /// The agent, for an agent certificate.
    pub actor: Option<Actor>,
    /// The certificate serial, hex.
    pub serial: String,
    /// The certificate's `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// The URI SAN for an OIDC subject.
pub fn subject_uri(subject: &str) -> String {
    let mut s = String::from(SUBJECT_URI_PREFIX);
    for b in subject.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The URI SAN for an agent acting for `subject`.
pub fn actor_uri(subject: &str, actor: &Actor) -> String {
    format!("{}/agent/{}/session/{}", subject_uri(subject), actor.agent, actor.session)
}

/// Whether `s` is a UUID in canonical lower-case hyphenated form.
pub fn is_canonical_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_digit() || (b'a'..=b'f').contains(&b) })
}

/// Read the subject (and actor) from the text after [`SUBJECT_URI_PREFIX`]; `None` unless it is
/// exactly one of the two shapes in canonical form.
pub fn parse_uri_tail(enc: &str) -> Option<(String, Option<Actor>)> {
    let parts: Vec<&str> = enc.split('/').collect();
    let (sub, actor) = match parts[..] {
        [sub] => (sub, None),
        [sub, "agent", agent, "session", session] => {
            if crate::agent::check_name(agent).is_err() || !is_canonical_uuid(session) {
                return None;
            }
            (sub, Some(Actor { agent: agent.to_string(), session: session.to_string() }))
        }
        _ => return None,
    };
    let subject = crate::kube::path_unescape(sub)?;
    if subject.is_empty() || subject_uri(&subject) != format!("{SUBJECT_URI_PREFIX}{sub}") {
        return None;
    }
    Some((subject, actor))
}

/// Read the hoop-kube subject from a client certificate. Exactly one hoop-kube URI SAN must be
/// present and its encoding must be canonical; anything else is `None` (fail closed).
pub fn cert_subject(cert: &CertificateDer<'_>) -> Option<CertSubject> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    let mut found = None;
    for name in &san.value.general_names {
        if let x509_parser::extensions::GeneralName::URI(u) = name {
            // Any URI in our scheme counts, so a second one (whatever its shape) is refused.
            if u.starts_with("hoop-kube:") {
                if found.is_some() {
                    return None;
                }
                found = Some(u.strip_prefix(SUBJECT_URI_PREFIX)?.to_string());
            }
        }
    }
    let (subject, actor) = parse_uri_tail(&found?)?;
    let serial = hex::encode(parsed.raw_serial());
    let not_after = parsed.validity().not_after.timestamp();
    Some(CertSubject { subject, actor, serial, not_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "01890a5d-ac96-774b-bcce-b302099a8057";

    #[test]
    fn both_shapes_round_trip() {
        assert_eq!(parse_uri_tail("alice"), Some(("alice".into(), None)));
        assert_eq!(parse_uri_tail("a%2Fb"), Some(("a/b".into(), None)));
        let actor = Actor { agent: "bot".into(), session: SID.into() };
        let uri = actor_uri("a/b", &actor);
        assert_eq!(uri, format!("hoop-kube://subject/a%2Fb/agent/bot/session/{SID}"));
        assert_eq!(parse_uri_tail(uri.strip_prefix(SUBJECT_URI_PREFIX).unwrap()), Some(("a/b".into(), Some(actor))));
    }

    #[test]
    fn hostile_tails_are_refused() {
        for bad in [
            "",
            "/",
            "alice/",
            "alice/agent/bot",
            "alice/agent/bot/session",
            &format!("alice/agent/bot/session/{SID}/"),
            &format!("alice/agent/bot/session/{SID}/x"),
            &format!("alice/agent/Bot/session/{SID}"),
            &format!("alice/agent/b%2Ft/session/{SID}"),
            &format!("alice/agent//session/{SID}"),
            &format!("alice/actor/bot/session/{SID}"),
            &format!("alice/agent/bot/sessions/{SID}"),
            "alice/agent/bot/session/01890A5D-AC96-774B-BCCE-B302099A8057",
            "alice/agent/bot/session/01890a5dac96774bbcceb302099a8057",
            "alice/agent/bot/session/../../x",
            "al%69ce",
            "al%2fce",
            "alice%",
        ] {
            assert_eq!(parse_uri_tail(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uuids_must_be_canonical() {
        assert!(is_canonical_uuid(SID));
        assert!(!is_canonical_uuid(&SID.to_uppercase()));
        assert!(!is_canonical_uuid(&SID[1..]));
        assert!(!is_canonical_uuid(&format!("{SID}0")));
        assert!(!is_canonical_uuid("01890a5d_ac96_774b_bcce_b302099a8057"));
    }
}
