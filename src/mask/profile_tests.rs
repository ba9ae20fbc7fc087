//! Profiles: the YAML shape, validation errors naming their field, union.

use super::*;

fn err(yaml: &str) -> ProfileError {
    MaskProfiles::from_yaml(yaml).expect_err(yaml)
}

#[test]
fn the_documented_example_compiles() {
    let yaml = r#"
secrets:
  secret_data: true
  last_applied: true
  env_literals: true
  configmap_keys: ["*password*", "*token*"]
  serviceaccount_tokens: true
  json_paths:
    - kind: MyCredential
      path: spec.password
    - kind: MyCredential
      path: "spec.users[].token"
  logs: true
logs-only:
  logs: true
"#;
    let ps = MaskProfiles::from_yaml(yaml).unwrap();
    assert_eq!(ps.names().collect::<Vec<_>>(), ["logs-only", "secrets"]);
    let p = ps.get("secrets").unwrap();
    assert!(p.masks_objects() && p.masks_logs() && p.masks_last_applied());
    assert_eq!(p.rules("Secret").len(), 2);
    assert_eq!(p.rules("ConfigMap").len(), 2);
    assert_eq!(p.rules("CronJob").len(), 1);
    assert_eq!(p.rules("MyCredential").len(), 2);
    assert!(p.rules("Service").is_empty());
    let l = ps.get("logs-only").unwrap();
    assert!(!l.masks_objects() && l.masks_logs());
}

#[test]
fn errors_name_the_profile_and_field() {
    let cases = [
        (
            "p: {secret_data: true, secret_dta: true}",
            "mask_profiles.p.secret_dta",
            "unknown field `secret_dta`",
        ),
        (
            "p: {secret_data: yes please}",
            "mask_profiles.p.secret_data",
            "invalid type",
        ),
        (
            "p: {configmap_keys: [\"a\", \"\"]}",
            "mask_profiles.p.configmap_keys[1]",
            "is empty",
        ),
        (
            "p: {configmap_keys: [\"[ab]\"]}",
            "mask_profiles.p.configmap_keys[0]",
            "reserved",
        ),
        (
            "p: {json_paths: [{kind: My-Cred, path: a}]}",
            "mask_profiles.p.json_paths[0].kind",
            "letters and digits",
        ),
        (
            "p: {json_paths: [{kind: '', path: a}]}",
            "mask_profiles.p.json_paths[0].kind",
            "is empty",
        ),
        (
            "p: {json_paths: [{kind: A, path: ''}]}",
            "mask_profiles.p.json_paths[0].path",
            "is empty",
        ),
        (
            "p: {json_paths: [{kind: A, path: spec..x}]}",
            "mask_profiles.p.json_paths[0].path",
            "empty segment",
        ),
        (
            "p: {json_paths: [{kind: A, path: .spec}]}",
            "mask_profiles.p.json_paths[0].path",
            "empty segment",
        ),
        (
            "p: {json_paths: [{kind: A, path: 'spec.items[0]'}]}",
            "mask_profiles.p.json_paths[0].path",
            "indices are not supported",
        ),
        (
            "p: {json_paths: [{kind: A, path: 'spec.[]'}]}",
            "mask_profiles.p.json_paths[0].path",
            "must follow a field name",
        ),
        (
            "p: {json_paths: [{kind: A, path: 'spec.pass*'}]}",
            "mask_profiles.p.json_paths[0].path",
            "whole segment",
        ),
        (
            "p: {json_paths: [{kind: A, path: 'spec. x'}]}",
            "mask_profiles.p.json_paths[0].path",
            "whitespace",
        ),
        (
            "p: {json_paths: [{kind: A, path: x, extra: 1}]}",
            "mask_profiles.p.json_paths[0].extra",
            "unknown field `extra`",
        ),
        (
            "p: {secret_data: true, last_applied: false}",
            "mask_profiles.p.last_applied",
            "plain sight",
        ),
        ("p: {}", "mask_profiles.p", "masks nothing"),
        (
            "p: {last_applied: true}",
            "mask_profiles.p",
            "masks nothing",
        ),
        (
            "Bad_Name: {logs: true}",
            "mask_profiles.Bad_Name",
            "a-z, 0-9",
        ),
        ("[1, 2]", "mask_profiles", "invalid type"),
    ];
    for (yaml, at, msg) in cases {
        let e = err(yaml).to_string();
        assert!(
            e.starts_with(&format!("{at}: ")) && e.contains(msg),
            "{yaml}: {e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
    let long = "a"
        .repeat(33)
        .split("")
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    assert!(
        err(&format!("p: {{json_paths: [{{kind: A, path: '{long}'}}]}}"))
            .to_string()
            .contains("more than 32 segments")
    );
    assert_eq!(
        MaskProfiles::from_yaml("p: {logs: true, last_applied: false}").map(|_| ()),
        Ok(()),
        "nothing structural to leak"
    );
}

#[test]
fn paths_parse_into_segments() {
    assert_eq!(
        parse_path("spec.password").unwrap(),
        [Seg::Key("spec".into()), Seg::Key("password".into())]
    );
    assert_eq!(
        parse_path("spec.users[].token").unwrap(),
        [
            Seg::Key("spec".into()),
            Seg::Key("users".into()),
            Seg::Any,
            Seg::Key("token".into())
        ]
    );
    assert_eq!(
        parse_path("spec.*.token").unwrap(),
        parse_path("spec.*.token").unwrap()
    );
    assert_eq!(parse_path("a.*").unwrap(), [Seg::Key("a".into()), Seg::Any]);
    assert_eq!(
        parse_path("x-y_z$/w").unwrap(),
        [Seg::Key("x-y_z$/w".into())]
    );
}

#[test]
fn union_has_every_rule_of_both() {
    let ps = MaskProfiles::from_yaml(
        r#"
a: {secret_data: true, configmap_keys: ["*pw*"]}
b: {env_literals: true, configmap_keys: ["*pw*", "*key*"], json_paths: [{kind: K, path: x}], logs: true}
"#,
    )
    .unwrap();
    let u = ps.union_of(["a", "b"]).unwrap().unwrap();
    assert_eq!(u.rules("Secret").len(), 2);
    assert_eq!(u.rules("Pod").len(), 1);
    assert_eq!(u.rules("K").len(), 1);
    assert!(u.masks_logs());
    let Seg::Globs(g) = &u.rules("ConfigMap")[0].path[1] else {
        panic!()
    };
    assert_eq!(g.len(), 2);
    assert_eq!(
        u,
        ps.union_of(["b", "a"])
            .unwrap()
            .unwrap()
            .union(ps.get("a").unwrap())
            .union(&u)
            .union(&u)
    );
    assert_eq!(ps.union_of([]).unwrap(), None);
    assert!(ps.union_of(["a", "nope"]).is_err());
    assert_eq!(MaskProfile::builtin().rules("Secret").len(), 2);
}
