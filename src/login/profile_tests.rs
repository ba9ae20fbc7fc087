use std::ffi::OsString;

use super::*;
use crate::login::store::SecretStore;

fn sample(name: &str) -> Profile {
    Profile {
        name: name.into(),
        relay_url: "https://relay.example.com:8443".into(),
        relay_ca_sha256: Some("AB:".repeat(31) + "AB"),
        issuer: "https://login.example.com/realms/x".into(),
        client_id: "hoop-kube".into(),
        scopes: vec!["groups".into(), "kube:admin".into()],
        token_store: Backend::File,
        forward_listen: "127.0.0.1:16443".parse().unwrap(),
    }
}

#[test]
fn save_load_round_trip_normalizes_the_pin_and_keeps_no_name_inside() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    let p = sample("dev");
    let path = p.save_to(&profiles).unwrap();
    assert_eq!(path, profiles.join("dev.json"));
    let back = Profile::load_from(&profiles, "dev").unwrap();
    assert_eq!(
        back.relay_ca_sha256.as_deref(),
        Some("ab".repeat(32).as_str())
    );
    assert_eq!(
        Profile {
            relay_ca_sha256: back.relay_ca_sha256.clone(),
            ..p
        },
        back
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "relay_url": "https://relay.example.com:8443",
            "relay_ca_sha256": "ab".repeat(32),
            "issuer": "https://login.example.com/realms/x",
            "client_id": "hoop-kube",
            "scopes": ["groups", "kube:admin"],
            "token_store": "file",
            "forward_listen": "127.0.0.1:16443"
        })
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(&profiles).unwrap().count(), 1);

    // Saving again replaces it.
    let mut q = back.clone();
    q.relay_ca_sha256 = None;
    q.token_store = Backend::Keyring;
    q.save_to(&profiles).unwrap();
    let back = Profile::load_from(&profiles, "dev").unwrap();
    assert_eq!(back, q);
    assert!(!std::fs::read_to_string(&path)
        .unwrap()
        .contains("relay_ca_sha256"));
}

#[test]
fn new_has_the_login_defaults() {
    let p = Profile::new("work", "https://relay:443", "http://127.0.0.1:5556").unwrap();
    assert_eq!(p.client_id, DEFAULT_CLIENT_ID);
    assert_eq!(p.scopes, ["groups"]);
    assert_eq!(p.token_store, Backend::Keyring);
    assert_eq!(p.forward_listen, DEFAULT_FORWARD_LISTEN);
    assert_eq!(p.relay_ca_sha256, None);
    assert_eq!(
        p.to_string(),
        "work (relay https://relay:443, issuer http://127.0.0.1:5556)"
    );
}

#[test]
fn missing_profile_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let e = Profile::load_from(dir.path(), "x").unwrap_err();
    assert!(matches!(e, ProfileError::NotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "no profile \"x\"; run hoop-kube login --profile x --relay URL --issuer URL"
    );
    // Also when the directory itself does not exist.
    let e = Profile::load_from(&dir.path().join("nope"), "x").unwrap_err();
    assert!(matches!(e, ProfileError::NotFound { .. }), "{e:?}");
}

#[test]
fn names_follow_the_secret_stores_rules() {
    let dir = tempfile::tempdir().unwrap();
    let long = "a".repeat(64);
    let too_long = "a".repeat(65);
    for (name, ok) in [
        ("dev", true),
        ("Dev-1.prod_eu", true),
        ("0", true),
        (long.as_str(), true),
        ("", false),
        (too_long.as_str(), false),
        (".hidden", false),
        ("-x", false),
        ("_x", false),
        ("a/b", false),
        ("a b", false),
        ("..", false),
        ("é", false),
        ("a\nb", false),
    ] {
        let ours = check_name(name).is_ok();
        let store = SecretStore::new_file_in(name, dir.path()).is_ok();
        assert_eq!(ours, ok, "{name:?}");
        assert_eq!(ours, store, "{name:?}: profile and secret store disagree");
        if !ok {
            let e = Profile::load_from(dir.path(), name).unwrap_err();
            assert!(matches!(e, ProfileError::InvalidName { .. }), "{e:?}");
            assert!(!e.to_string().contains('\n'));
            assert!(matches!(
                Profile::delete_from(dir.path(), name),
                Err(ProfileError::InvalidName { .. })
            ));
            assert!(sample(name).save_to(dir.path()).is_err());
        }
    }
}

#[test]
fn invalid_fields_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    type Change = Box<dyn Fn(&mut Profile)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "relay_url",
            Box::new(|p| p.relay_url = "http://relay:80".into()),
            "must be https://HOST[:PORT]",
        ),
        (
            "relay_url",
            Box::new(|p| p.relay_url = "https://relay/api".into()),
            "without a path",
        ),
        (
            "relay_url",
            Box::new(|p| p.relay_url = "https://u:p@relay".into()),
            "user name",
        ),
        (
            "relay_url",
            Box::new(|p| p.relay_url = "relay:443".into()),
            "must be https",
        ),
        (
            "relay_url",
            Box::new(|p| p.relay_url = "not a url".into()),
            "is not a URL",
        ),
        (
            "relay_ca_sha256",
            Box::new(|p| p.relay_ca_sha256 = Some("abcd".into())),
            "64 hex digits",
        ),
        (
            "relay_ca_sha256",
            Box::new(|p| p.relay_ca_sha256 = Some("g".repeat(64))),
            "64 hex digits",
        ),
        (
            "issuer",
            Box::new(|p| p.issuer = "http://login.example.com".into()),
            "plain http only to a loopback",
        ),
        (
            "issuer",
            Box::new(|p| p.issuer = "https://login.example.com/?x=1".into()),
            "query",
        ),
        (
            "client_id",
            Box::new(|p| p.client_id = String::new()),
            "must not be empty",
        ),
        (
            "client_id",
            Box::new(|p| p.client_id = "a b".into()),
            "not allowed",
        ),
        (
            "scopes",
            Box::new(|p| p.scopes = vec!["openid email".into()]),
            "not allowed",
        ),
        (
            "scopes",
            Box::new(|p| p.scopes = vec!["a\"b".into()]),
            "not allowed",
        ),
        (
            "scopes",
            Box::new(|p| p.scopes = vec!["x".into(); 33]),
            "more than 32",
        ),
        (
            "forward_listen",
            Box::new(|p| p.forward_listen = "0.0.0.0:6643".parse().unwrap()),
            "loopback address only",
        ),
        (
            "forward_listen",
            Box::new(|p| p.forward_listen = "10.0.0.1:6643".parse().unwrap()),
            "loopback address only",
        ),
        (
            "forward_listen",
            Box::new(|p| p.forward_listen = "127.0.0.1:0".parse().unwrap()),
            "port 0",
        ),
    ];
    for (field, change, want) in cases {
        let mut p = sample("dev");
        change(&mut p);
        let e = p.save_to(dir.path()).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, ProfileError::Invalid { field: f, .. } if *f == field),
            "{field}: {e:?}"
        );
        assert!(
            msg.starts_with(&format!("profile \"dev\": {field} ")),
            "{msg}"
        );
        assert!(msg.contains(want), "{field}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    assert_eq!(
        Profile::list_in(dir.path()).unwrap(),
        Vec::<String>::new(),
        "nothing invalid was written"
    );
    // Accepted variants.
    for (relay, issuer) in [
        ("https://relay", "https://login.example.com"),
        ("https://relay:8443/", "http://localhost:5556/dex"),
        ("https://[::1]:9443", "http://[::1]:8080"),
    ] {
        let mut p = sample("ok");
        p.relay_url = relay.into();
        p.issuer = issuer.into();
        p.forward_listen = "[::1]:6643".parse().unwrap();
        p.relay_ca_sha256 = Some(format!("sha256:{}", "0F".repeat(32)));
        p.save_to(dir.path())
            .unwrap_or_else(|e| panic!("{relay} {issuer}: {e}"));
        assert_eq!(
            Profile::load_from(dir.path(), "ok")
                .unwrap()
                .relay_ca_sha256
                .unwrap(),
            "0f".repeat(32)
        );
    }
}

#[test]
fn broken_files_are_refused_with_the_path_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::json!({
        "relay_url": "https://relay", "issuer": "https://idp", "client_id": "c",
        "token_store": "keyring", "forward_listen": "127.0.0.1:6643"
    });
    let write = |body: &str| std::fs::write(dir.path().join("p.json"), body).unwrap();

    write(&good.to_string());
    let p = Profile::load_from(dir.path(), "p").unwrap();
    assert_eq!(
        (p.scopes.len(), p.relay_ca_sha256),
        (0, None),
        "scopes and pin are optional"
    );

    let cases = [
        ("not json".to_string(), "not a JSON object"),
        ("[]".to_string(), "not a JSON object"),
        ("{\"relay_url\": ".to_string(), "EOF while parsing"),
        (format!("{good} x"), "trailing characters"),
        (
            {
                let mut v = good.clone();
                v["relay_ca_sha265"] = "x".into();
                v.to_string()
            },
            "unknown field `relay_ca_sha265`",
        ),
        (
            {
                let mut v = good.clone();
                v.as_object_mut().unwrap().remove("issuer");
                v.to_string()
            },
            "missing field `issuer`",
        ),
        (
            {
                let mut v = good.clone();
                v["scopes"] = 5.into();
                v.to_string()
            },
            "scopes: invalid type",
        ),
        (
            {
                let mut v = good.clone();
                v["name"] = "p".into();
                v.to_string()
            },
            "unknown field `name`",
        ),
    ];
    for (body, want) in cases {
        write(&body);
        let e = Profile::load_from(dir.path(), "p").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ProfileError::Parse { .. }), "{body}: {e:?}");
        assert!(
            msg.contains(&dir.path().join("p.json").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains(want), "{body}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    let mut v = good.clone();
    v["token_store"] = "vault".into();
    write(&v.to_string());
    assert_eq!(
        Profile::load_from(dir.path(), "p").unwrap_err().to_string(),
        "profile \"p\": token_store is \"vault\"; use \"keyring\" or \"file\""
    );
    let mut v = good.clone();
    v["forward_listen"] = "localhost:6643".into();
    write(&v.to_string());
    assert!(Profile::load_from(dir.path(), "p")
        .unwrap_err()
        .to_string()
        .contains("forward_listen is \"localhost:6643\"; expected IP:PORT"));

    // Oversized.
    write(&format!("{{\"relay_url\":\"{}\"}}", "x".repeat(70_000)));
    let e = Profile::load_from(dir.path(), "p").unwrap_err();
    assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
    // A directory where the file should be.
    std::fs::remove_file(dir.path().join("p.json")).unwrap();
    std::fs::create_dir(dir.path().join("p.json")).unwrap();
    assert!(Profile::load_from(dir.path(), "p").is_err());
}

#[test]
fn list_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    assert_eq!(
        Profile::list_in(&profiles).unwrap(),
        Vec::<String>::new(),
        "missing directory: empty"
    );
    for n in ["prod", "dev", "a.b"] {
        sample(n).save_to(&profiles).unwrap();
    }
    // Not profiles: skipped.
    std::fs::write(profiles.join(".dev.json.123.tmp"), "x").unwrap();
    std::fs::write(profiles.join("notes.txt"), "x").unwrap();
    std::fs::write(profiles.join("-bad.json"), "x").unwrap();
    std::fs::create_dir(profiles.join("dir.json")).unwrap();
    assert_eq!(Profile::list_in(&profiles).unwrap(), ["a.b", "dev", "prod"]);

    assert!(Profile::delete_from(&profiles, "dev").unwrap());
    assert!(
        !Profile::delete_from(&profiles, "dev").unwrap(),
        "already gone"
    );
    assert_eq!(Profile::list_in(&profiles).unwrap(), ["a.b", "prod"]);
    assert!(matches!(
        Profile::load_from(&profiles, "dev"),
        Err(ProfileError::NotFound { .. })
    ));
}

#[test]
fn config_dir_follows_the_override_then_xdg() {
    let env = |vars: Vec<(&'static str, &'static str)>| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    };
    assert_eq!(
        config_dir_with(env(vec![(CONFIG_DIR_ENV, "/tmp/hk-test")])).unwrap(),
        PathBuf::from("/tmp/hk-test")
    );
    // Empty means unset; then the platform's config directory (XDG on Linux; `directories`
    // reads the real environment there).
    let fallback = config_dir_with(env(vec![(CONFIG_DIR_ENV, "")])).unwrap();
    assert!(fallback.ends_with("hoop-kube"), "{}", fallback.display());
    assert_eq!(fallback, config_dir_with(env(vec![])).unwrap());
}
