use std::ffi::OsStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::{json, Value};

use super::*;

/// What kubectl 1.32 sent with `provideClusterInfo: true` and a cluster extension (k8s-wire.md §6).
const OBSERVED: &str = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{"server":"https://127.0.0.1:6443","certificate-authority-data":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==","config":{"audience":"relay","foo":"bar"}},"interactive":false}}"#;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

#[test]
fn absent_or_empty_means_v1_not_interactive() {
    for raw in [None, Some(""), Some("  \n")] {
        let info = ExecInfo::parse(raw).unwrap();
        assert_eq!(
            info,
            ExecInfo {
                api_version: ApiVersion::V1,
                interactive: false,
                cluster: None
            }
        );
    }
    assert_eq!(ExecInfo::parse_os(None).unwrap(), ExecInfo::default());
}

#[test]
fn observed_v1_with_cluster_info_and_config() {
    let info = ExecInfo::parse(Some(OBSERVED)).unwrap();
    assert_eq!(info.api_version, ApiVersion::V1);
    assert!(!info.interactive);
    let c = info.cluster.expect("cluster");
    assert_eq!(c.server, "https://127.0.0.1:6443");
    assert_eq!(
        c.certificate_authority_data.as_deref(),
        Some(&b"-----BEGIN CERTIFICATE-----\n"[..])
    );
    assert_eq!(c.config, json!({"audience": "relay", "foo": "bar"}));
    assert_eq!(c.tls_server_name, None);
    assert!(!c.insecure_skip_tls_verify);
}

#[test]
fn v1beta1_interactive_and_the_other_cluster_fields() {
    let raw = json!({
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "spec": {
            "interactive": true,
            "cluster": {
                "server": "https://relay.example:443",
                "tls-server-name": "relay.internal",
                "insecure-skip-tls-verify": true,
                "proxy-url": "socks5://127.0.0.1:1080",
                "disable-compression": true
            }
        }
    })
    .to_string();
    let info = ExecInfo::parse(Some(&raw)).unwrap();
    assert_eq!(info.api_version, ApiVersion::V1beta1);
    assert!(info.interactive);
    let c = info.cluster.unwrap();
    assert_eq!(c.tls_server_name.as_deref(), Some("relay.internal"));
    assert!(c.insecure_skip_tls_verify && c.disable_compression);
    assert_eq!(c.proxy_url.as_deref(), Some("socks5://127.0.0.1:1080"));
    assert_eq!(c.certificate_authority_data, None);
    assert_eq!(c.config, Value::Null);
}

#[test]
fn interactive_true_and_false_and_missing() {
    for (spec, want) in [
        (json!({"interactive": true}), true),
        (json!({"interactive": false}), false),
        (json!({}), false),
    ] {
        let raw = json!({"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1", "spec": spec}).to_string();
        assert_eq!(
            ExecInfo::parse(Some(&raw)).unwrap().interactive,
            want,
            "{raw}"
        );
    }
    // No spec at all.
    let info =
        ExecInfo::parse(Some(r#"{"apiVersion":"client.authentication.k8s.io/v1"}"#)).unwrap();
    assert!(!info.interactive && info.cluster.is_none());
}

#[test]
fn unknown_fields_are_ignored() {
    let raw = json!({
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "newTopLevel": {"x": 1},
        "spec": {"interactive": false, "futureField": [1, 2], "cluster": {"server": "https://a", "someday": true}},
        "status": null
    })
    .to_string();
    let info = ExecInfo::parse(Some(&raw)).unwrap();
    assert_eq!(info.cluster.unwrap().server, "https://a");
}

#[test]
fn unknown_version_names_the_supported_ones() {
    for v in [
        "client.authentication.k8s.io/v1alpha1",
        "client.authentication.k8s.io/v2",
        "v1",
        "",
    ] {
        let raw = json!({"kind": "ExecCredential", "apiVersion": v, "spec": {}}).to_string();
        let e = ExecInfo::parse(Some(&raw)).unwrap_err();
        assert_eq!(e, ExecInfoError::UnsupportedVersion(v.into()));
        let msg = e.to_string();
        assert!(!msg.contains('\n'));
        assert!(
            msg.contains(
                "client.authentication.k8s.io/v1 and client.authentication.k8s.io/v1beta1"
            ),
            "{msg}"
        );
    }
    assert_eq!(
        ExecInfo::parse(Some(r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1alpha1"}"#)).unwrap_err().to_string(),
        "KUBERNETES_EXEC_INFO asks for apiVersion \"client.authentication.k8s.io/v1alpha1\"; hoop-kube supports \
         client.authentication.k8s.io/v1 and client.authentication.k8s.io/v1beta1 (set exec.apiVersion in the kubeconfig to one of them)"
    );
}

#[test]
fn malformed_is_one_line_and_names_the_field() {
    let cases = [
        ("not json", "not a JSON object"),
        ("[]", "not a JSON object"),
        ("5", "not a JSON object"),
        (
            r#"{"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":"yes"}}"#,
            "spec.interactive",
        ),
        (
            r#"{"apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{"server":5}}}"#,
            "spec.cluster.server",
        ),
        (
            r#"{"apiVersion":"client.authentication.k8s.io/v1","spec":{"cluster":{"certificate-authority-data":"%%%"}}}"#,
            "certificate-authority-data is not base64",
        ),
        (r#"{"apiVersion":5}"#, "apiVersion"),
        (r#"{"kind":"ExecCredential"}"#, "no apiVersion"),
        (
            "{\"apiVersion\":\"client.authentication.k8s.io/v1\"\n,\n",
            "EOF",
        ),
        (
            r#"{"apiVersion":"client.authentication.k8s.io/v1"} trailing"#,
            "trailing",
        ),
    ];
    for (raw, want) in cases {
        let e = ExecInfo::parse(Some(raw)).unwrap_err();
        assert!(matches!(e, ExecInfoError::Malformed(_)), "{raw}: {e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("KUBERNETES_EXEC_INFO is not a valid ExecCredential: "),
            "{msg}"
        );
        assert!(msg.contains(want), "{raw}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}

#[test]
fn wrong_kind_is_refused() {
    let e = ExecInfo::parse(Some(
        r#"{"kind":"Pod","apiVersion":"client.authentication.k8s.io/v1"}"#,
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "KUBERNETES_EXEC_INFO has kind \"Pod\"; expected \"ExecCredential\""
    );
}

#[test]
fn oversized_is_refused_before_parsing() {
    let pad = "x".repeat(MAX_EXEC_INFO_LEN);
    let raw = format!(r#"{{"apiVersion":"client.authentication.k8s.io/v1","pad":"{pad}"}}"#);
    let e = ExecInfo::parse(Some(&raw)).unwrap_err();
    assert_eq!(
        e,
        ExecInfoError::TooLarge {
            len: raw.len(),
            max: MAX_EXEC_INFO_LEN
        }
    );
    assert_eq!(ExecInfo::parse_os(Some(OsStr::new(&raw))).unwrap_err(), e);
    // Just under the limit parses.
    let pad = "x".repeat(MAX_EXEC_INFO_LEN - 100);
    let raw = format!(r#"{{"apiVersion":"client.authentication.k8s.io/v1","pad":"{pad}"}}"#);
    assert!(ExecInfo::parse(Some(&raw)).is_ok());
}

#[cfg(unix)]
#[test]
fn non_utf8_is_refused() {
    use std::os::unix::ffi::OsStrExt as _;
    let raw = OsStr::from_bytes(b"{\"apiVersion\":\"\xff\"}");
    assert_eq!(
        ExecInfo::parse_os(Some(raw)).unwrap_err(),
        ExecInfoError::NotUtf8
    );
}

#[test]
fn renders_in_the_version_asked_for() {
    let c = ExecCredentialOut::new(
        "eyJ.tok.en",
        t(1_767_225_660),
        t(1_767_225_000),
        DEFAULT_MARGIN,
    )
    .unwrap();
    assert_eq!(
        c.render(ApiVersion::V1),
        r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"eyJ.tok.en","expirationTimestamp":"2026-01-01T00:00:00Z"}}"#
    );
    assert_eq!(
        c.render(ApiVersion::V1beta1),
        r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"eyJ.tok.en","expirationTimestamp":"2026-01-01T00:00:00Z"}}"#
    );
    // Round trip through what kubectl parses.
    let v: Value = serde_json::from_str(&c.render(ApiVersion::V1)).unwrap();
    let ts =
        DateTime::parse_from_rfc3339(v["status"]["expirationTimestamp"].as_str().unwrap()).unwrap();
    assert_eq!(ts, t(1_767_225_600));
    // The token is escaped, never spliced.
    let c = ExecCredentialOut::new("a\"b\\c", t(10_000), t(0), DEFAULT_MARGIN).unwrap();
    let v: Value = serde_json::from_str(&c.render(ApiVersion::V1)).unwrap();
    assert_eq!(v["status"]["token"], "a\"b\\c");
    assert!(
        !format!("{c:?}").contains("a\"b"),
        "Debug redacts the token"
    );
}

#[test]
fn expiry_is_token_expiry_minus_the_margin_and_never_past() {
    let now = t(1_000_000);
    let margin = Duration::from_secs(60);
    // Plenty left.
    let c = ExecCredentialOut::new("x", now + chrono::Duration::seconds(300), now, margin).unwrap();
    assert_eq!(c.expiration(), now + chrono::Duration::seconds(240));
    // One second beyond the margin: handed out, announced one second from now.
    let c = ExecCredentialOut::new("x", now + chrono::Duration::seconds(61), now, margin).unwrap();
    assert_eq!(c.expiration(), now + chrono::Duration::seconds(1));
    // Exactly the margin, within it, expired: refused.
    for left in [60, 59, 1, 0, -5] {
        let e = ExecCredentialOut::new("x", now + chrono::Duration::seconds(left), now, margin)
            .unwrap_err();
        assert_eq!(
            e,
            TooCloseToExpiry {
                left_secs: left,
                margin_secs: 60
            }
        );
    }
    // Sub-second `now`: the announced second must still be after it.
    let now_frac = now + chrono::Duration::milliseconds(999);
    let e = ExecCredentialOut::new(
        "x",
        now + chrono::Duration::seconds(61),
        now_frac + chrono::Duration::seconds(0),
        margin,
    );
    assert_eq!(e.unwrap().expiration(), now + chrono::Duration::seconds(1));
    let now_frac = now + chrono::Duration::milliseconds(1_500);
    assert!(
        ExecCredentialOut::new("x", now + chrono::Duration::seconds(61), now_frac, margin).is_err()
    );
    // A zero margin still never announces the past.
    assert!(ExecCredentialOut::new("x", now, now, Duration::ZERO).is_err());
    let c = ExecCredentialOut::new("x", now + chrono::Duration::seconds(1), now, Duration::ZERO)
        .unwrap();
    assert_eq!(c.expiration(), now + chrono::Duration::seconds(1));
    // An absurd margin is refused, not a panic.
    assert!(ExecCredentialOut::new("x", now, now, Duration::MAX).is_err());
}
