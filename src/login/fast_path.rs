//! The exec plugin's cached path, before argument parsing, logging and the async runtime.
//!
//! kubectl starts `hoop-kube credential` for nearly every command, and most of the time the
//! answer is already on disk: a cached ID token that outlives the safety margin, a client
//! certificate outside its renewal window, a forwarder that runs. [`cached_credential`] checks
//! exactly that, synchronously, and prints nothing itself; on **any** doubt (other arguments, a
//! missing or expiring token, the Secret Service backend, a certificate to renew, no forwarder,
//! an unreadable file) it returns `None` and `main` runs the full command, which makes the same
//! decisions with error reporting, refresh, renewal and forwarder start (and, inside an agent
//! session, refuses: [`crate::agent::client::refuse_in_agent_session`]). It never answers what
//! the full path would not: the token test is [`super::refresh`]'s (same claims, same issuer
//! check, same margin), the certificate test is [`super::client_cert::due`].

use std::ffi::OsString;

use chrono::{DateTime, Utc};

use super::client_cert;
use super::exec_credential::{ExecCredentialOut, ExecInfo, DEFAULT_MARGIN};
use super::profile::Profile;
use super::refresh::{self, ID_TOKEN};
use super::store::SecretStore;
use crate::forward::launch;

/// `credential [--profile NAME | --profile=NAME] [--no-forwarder]`, nothing else: the profile
/// (from `HOOP_KUBE_PROFILE` or `default` when not given) and whether to skip the forwarder.
fn parse_args(args: &[OsString]) -> Option<(String, bool)> {
    let mut it = args.iter().skip(1).map(|a| a.to_str());
    if it.next()? != Some("credential") {
        return None;
    }
    let (mut profile, mut no_forwarder) = (None, false);
    while let Some(a) = it.next() {
        match a? {
            "--no-forwarder" if !no_forwarder => no_forwarder = true,
            "--profile" if profile.is_none() => profile = Some(it.next()??.to_string()),
            s if profile.is_none() && s.starts_with("--profile=") => profile = Some(s["--profile=".len()..].to_string()),
            _ => return None,
        }
    }
    let profile = match profile {
        Some(p) => p,
        None => match std::env::var_os("HOOP_KUBE_PROFILE") {
            None => "default".to_string(),
            Some(v) => v.into_string().ok().filter(|v| !v.is_empty())?,
        },
    };
    Some((profile, no_forwarder))
}

/// The ExecCredential to print, when the cached path can answer (see the module documentation).
pub fn cached_credential(args: &[OsString]) -> Option<String> {
    let (name, no_forwarder) = parse_args(args)?;
    // Inside `hoop-kube run --agent`: the full path refuses, with the reason.
    crate::agent::client::refuse_in_agent_session().ok()?;
    let info = ExecInfo::parse_os(std::env::var_os("KUBERNETES_EXEC_INFO").as_deref()).ok()?;
    let profile = Profile::load(&name).ok()?;
    let store = SecretStore::new(&profile.name, profile.token_store).ok()?;
    let token = store.get_cached_now(ID_TOKEN)?;
    let cert = client_cert::read_cert(&client_cert::cert_path(&profile.name).ok()?).map(|(_, not_after)| not_after);
    let forwarder = no_forwarder || launch::running(&refresh::default_lock_dir().ok()?, &profile.name, profile.forward_listen);
    answer(&profile, &info, &token, cert, forwarder, Utc::now())
}

/// The decision, given what was read.
pub fn answer(profile: &Profile, info: &ExecInfo, token: &[u8], cert_not_after: Option<DateTime<Utc>>, forwarder_ok: bool, now: DateTime<Utc>) -> Option<String> {
    if !forwarder_ok || client_cert::due(cert_not_after?, client_cert::LIFETIME, now) {
        return None;
    }
    let token = std::str::from_utf8(token).ok()?;
    let claims = refresh::jwt_claims(token)?;
    if claims.iss.as_deref() != Some(profile.issuer.as_str()) {
        return None;
    }
    let out = ExecCredentialOut::new(token, claims.exp, now, DEFAULT_MARGIN).ok()?;
    Some(out.render(info.api_version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn args(a: &[&str]) -> Vec<OsString> {
        std::iter::once("hoop-kube").chain(a.iter().copied()).map(OsString::from).collect()
    }

    #[test]
    fn only_the_plain_plugin_invocations_take_the_cached_path() {
        assert_eq!(parse_args(&args(&["credential", "--profile", "p"])), Some(("p".into(), false)));
        assert_eq!(parse_args(&args(&["credential", "--profile=p", "--no-forwarder"])), Some(("p".into(), true)));
        for bad in [
            &["credential", "--help"][..],
            &["credential", "--profile"],
            &["credential", "--profile", "a", "--profile", "b"],
            &["credential", "--no-forwarder", "--no-forwarder"],
            &["login"],
            &[],
            &["credential", "-h"],
        ] {
            assert_eq!(parse_args(&args(bad)), None, "{bad:?}");
        }
    }

    fn jwt(iss: &str, exp: i64) -> String {
        let b = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.sig", b(serde_json::json!({"alg": "RS256"})), b(serde_json::json!({"iss": iss, "exp": exp})))
    }

    #[test]
    fn it_answers_only_what_the_full_path_would_answer_from_cache() {
        let p = Profile::new("p", "https://relay.example.com", "https://issuer.example.com").unwrap();
        let info = ExecInfo::parse(None).unwrap();
        let now = Utc::now();
        let good = jwt("https://issuer.example.com", now.timestamp() + 600);
        let cert = Some(now + chrono::Duration::hours(10));
        let out = answer(&p, &info, good.as_bytes(), cert, true, now).expect("cached answer");
        assert!(out.contains(&good));
        // Each doubt sends the call to the full path.
        assert!(answer(&p, &info, good.as_bytes(), cert, false, now).is_none(), "no forwarder");
        assert!(answer(&p, &info, good.as_bytes(), None, true, now).is_none(), "no certificate");
        assert!(answer(&p, &info, good.as_bytes(), Some(now + chrono::Duration::hours(1)), true, now).is_none(), "certificate due");
        let other = jwt("https://evil.example.com", now.timestamp() + 600);
        assert!(answer(&p, &info, other.as_bytes(), cert, true, now).is_none(), "another issuer");
        let expiring = jwt("https://issuer.example.com", now.timestamp() + 30);
        assert!(answer(&p, &info, expiring.as_bytes(), cert, true, now).is_none(), "inside the margin");
        assert!(answer(&p, &info, b"\xff\xfe", cert, true, now).is_none());
        assert!(answer(&p, &info, b"not.a.jwt.at-all", cert, true, now).is_none());
    }
}
