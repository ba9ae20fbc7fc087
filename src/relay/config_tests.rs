use super::*;

const SECRET: &str = "s3cr3t-token-value";

/// A directory holding every file a config may name.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("server.crt", "-----BEGIN CERTIFICATE-----\nx\n"),
        ("server.key", "-----BEGIN PRIVATE KEY-----\nx\n"),
        ("client-ca.crt", "-----BEGIN CERTIFICATE-----\nx\n"),
        ("upstream-ca.crt", "-----BEGIN CERTIFICATE-----\nx\n"),
        ("idp-ca.crt", "-----BEGIN CERTIFICATE-----\nx\n"),
        ("relay.token", SECRET),
        ("relay.crt", "-----BEGIN CERTIFICATE-----\nx\n"),
        ("relay.key", "-----BEGIN PRIVATE KEY-----\nx\n"),
        ("client-ca.key", "-----BEGIN PRIVATE KEY-----\nx\n"),
        ("empty.crt", ""),
    ] {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    dir
}

const TLS: &str = "tls:\n  cert: server.crt\n  key: server.key\n  client_ca: client-ca.crt\n";
const OIDC: &str = "oidc:\n  issuer: https://idp.example.com\n  audiences: [hoop-kube]\n";
const UPSTREAM: &str = "upstream:\n  server: https://127.0.0.1:6443\n  token_file: relay.token\n";

fn minimal() -> String {
    format!("listen: 127.0.0.1:8443\n{TLS}{UPSTREAM}{OIDC}")
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str, dir: &Path) -> Result<RelayConfig, ConfigError> {
    RelayConfig::parse(text, dir, "relay.yaml", &no_env, &dir.join("no-sa"))
}

/// Parse and expect an error; return its one-line message.
fn err(text: &str) -> String {
    let dir = fixture();
    let e = parse(text, dir.path()).expect_err("config should be refused");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.starts_with("relay.yaml: "), "names the file: {msg}");
    msg
}

fn with_upstream(upstream: &str) -> String {
    format!("listen: 127.0.0.1:8443\n{TLS}upstream:\n{upstream}{OIDC}")
}

fn with_oidc(oidc: &str) -> String {
    format!("listen: 127.0.0.1:8443\n{TLS}{UPSTREAM}oidc:\n  issuer: https://idp.example.com\n  audiences: [hoop-kube]\n{oidc}")
}

#[test]
fn full_config() {
    let dir = fixture();
    let text = r#"
listen: 0.0.0.0:8443
tls:
  cert: server.crt
  key: server.key
  client_ca: client-ca.crt
upstream:
  server: https://10.0.0.1:6443/
  ca: upstream-ca.crt
  token_file: relay.token
oidc:
  issuer: https://idp.example.com/realms/main
  audiences: [hoop-kube, kubernetes]
  username_claim: email
  username_prefix: "oidc:"
  groups_claim: roles
  groups_prefix: "oidc:"
  algorithms: [RS256, PS256, ES384, EdDSA]
  leeway_seconds: 60
  ca: idp-ca.crt
impersonation: false
access:
  subjects: [alice, bob]
  groups: [dev]
limits:
  max_header_bytes: 32768
  max_body_bytes: 1048576
enrollment:
  ca_key: client-ca.key
  max_certificate_hours: 8
"#;
    let c = parse(text, dir.path()).unwrap();
    let d = dir.path();
    assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(c.tls.cert, d.join("server.crt"));
    assert_eq!(c.tls.key, d.join("server.key"));
    assert_eq!(c.tls.client_ca, d.join("client-ca.crt"));
    assert_eq!(c.upstream.server, "https://10.0.0.1:6443");
    assert_eq!(c.upstream.ca, Some(d.join("upstream-ca.crt")));
    assert_eq!(c.upstream.credential, UpstreamCredential::TokenFile(d.join("relay.token")));
    assert_eq!(c.oidc.issuer, "https://idp.example.com/realms/main");
    assert_eq!(c.oidc.audiences, ["hoop-kube", "kubernetes"]);
    assert_eq!((c.oidc.username_claim.as_str(), c.oidc.username_prefix.as_str()), ("email", "oidc:"));
    assert_eq!((c.oidc.groups_claim.as_str(), c.oidc.groups_prefix.as_str()), ("roles", "oidc:"));
    assert_eq!(c.oidc.algorithms, [Algorithm::RS256, Algorithm::PS256, Algorithm::ES384, Algorithm::EdDSA]);
    assert_eq!(c.oidc.leeway_seconds, 60);
    assert_eq!(c.oidc.ca, Some(d.join("idp-ca.crt")));
    assert!(!c.impersonation);
    assert_eq!(c.access.subjects, ["alice", "bob"]);
    assert_eq!(c.access.groups, ["dev"]);
    assert_eq!((c.limits.max_header_bytes, c.limits.max_body_bytes), (32768, 1048576));
    assert_eq!(c.enrollment, Some(EnrollmentConfig { ca_key: d.join("client-ca.key"), max_certificate_hours: 8 }));
    let debug = format!("{c:?}");
    assert!(!debug.contains(SECRET), "no secrets in Debug: {debug}");
    let s = c.summary();
    for want in ["0.0.0.0:8443", "https://10.0.0.1:6443 via token file", "idp.example.com/realms/main", "hoop-kube, kubernetes", "2 subject(s), 1 group(s)", "OFF", "headers 32 KiB, body 1 MiB", "RS256, PS256, ES384, EdDSA", "certificates up to 8 h"] {
        assert!(s.contains(want), "summary lacks {want:?}:\n{s}");
    }
    assert!(!s.contains(SECRET));
}

#[test]
fn defaults() {
    let dir = fixture();
    let c = parse(&minimal(), dir.path()).unwrap();
    assert_eq!(c.oidc.username_claim, "sub");
    assert_eq!(c.oidc.groups_claim, "groups");
    assert_eq!((c.oidc.username_prefix.as_str(), c.oidc.groups_prefix.as_str()), ("", ""));
    assert_eq!(c.oidc.algorithms, [Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(c.oidc.leeway_seconds, 30);
    assert_eq!(c.oidc.ca, None);
    assert!(c.impersonation);
    assert!(c.access.subjects.is_empty() && c.access.groups.is_empty());
    assert_eq!((c.limits.max_header_bytes, c.limits.max_body_bytes), (65536, 3145728));
    assert_eq!(c.upstream.ca, None);
    let s = c.summary();
    assert!(s.contains("every request will be denied"), "{s}");
    assert!(s.contains("CA: system roots") && s.contains("headers 64 KiB, body 3 MiB"), "{s}");
    assert_eq!(c.enrollment, None);
    assert!(s.contains("enrollment:    off"), "{s}");
}

#[test]
fn enrollment() {
    let dir = fixture();
    let c = parse(&format!("{}enrollment:\n  ca_key: client-ca.key\n", minimal()), dir.path()).unwrap();
    let e = c.enrollment.expect("enrollment is on");
    assert_eq!(e, EnrollmentConfig { ca_key: dir.path().join("client-ca.key"), max_certificate_hours: DEFAULT_CERTIFICATE_HOURS });
    assert_eq!(e.max_lifetime(), std::time::Duration::from_secs(12 * 3600));
    for (h, ok) in [(1, true), (168, true), (0, false), (169, false)] {
        let text = format!("{}enrollment:\n  ca_key: client-ca.key\n  max_certificate_hours: {h}\n", minimal());
        match parse(&text, dir.path()) {
            Ok(c) => assert!(ok && c.enrollment.unwrap().max_certificate_hours == h, "{h}"),
            Err(e) => {
                assert!(!ok, "{h}: {e}");
                assert!(e.to_string().starts_with(&format!("relay.yaml: enrollment.max_certificate_hours: {h} is out of range; allowed 1–168")), "{e}");
            }
        }
    }
    let with = |body: &str| format!("{}enrollment:\n{body}", minimal());
    for (text, want) in [
        (with("  max_certificate_hours: 12\n"), "relay.yaml: enrollment.ca_key: is required but not set"),
        (with("  ca_key: client-ca.key\n  max_hours: 12\n"), "relay.yaml: enrollment.max_hours: unknown key"),
        (with("  ca_key: client-ca.key\n  ca_key: other.key\n"), "relay.yaml: enrollment.ca_key: is set more than once"),
        (with("  ca_key: missing.key\n"), "relay.yaml: enrollment.ca_key: cannot read "),
        (with("  ca_key: \"\"\n"), "relay.yaml: enrollment.ca_key: is empty; name a file"),
        (with("  ca_key: empty.crt\n"), "relay.yaml: enrollment.ca_key: "),
        (with("  ca_key: client-ca.key\n  max_certificate_hours: twelve\n"), "relay.yaml: enrollment.max_certificate_hours: invalid type"),
        (with("  ca_key: client-ca.key\n  max_certificate_hours: -1\n"), "relay.yaml: enrollment.max_certificate_hours: "),
        (format!("{}enrollment: client-ca.key\n", minimal()), "relay.yaml: enrollment: invalid type"),
    ] {
        let m = err(&text);
        assert!(m.starts_with(want), "want {want:?}, got {m}");
    }
}

#[test]
fn load_resolves_paths_from_the_config_directory() {
    let dir = fixture();
    let path = dir.path().join("relay.yaml");
    std::fs::write(&path, minimal()).unwrap();
    let c = RelayConfig::load(&path).unwrap();
    assert_eq!(c.tls.cert, dir.path().join("server.crt"));
    assert_eq!(c.source, path.display().to_string());
    assert!(c.tls.cert.is_absolute());
    let e = RelayConfig::load(&dir.path().join("nope.yaml")).unwrap_err().to_string();
    assert!(e.ends_with("nope.yaml: cannot read: No such file or directory"), "{e}");
}

#[test]
fn credential_client_cert() {
    let dir = fixture();
    let text = with_upstream("  server: https://k8s.example.com\n  client_cert: relay.crt\n  client_key: relay.key\n");
    let c = parse(&text, dir.path()).unwrap();
    let (cert, key) = (dir.path().join("relay.crt"), dir.path().join("relay.key"));
    assert_eq!(c.upstream.credential, UpstreamCredential::ClientCert { cert: cert.clone(), key: key.clone() });
    let r = c.resolve_upstream().unwrap();
    assert_eq!(r.server, "https://k8s.example.com:443");
    assert_eq!(r.credential, ResolvedCredential::ClientCert { cert: Material::File(cert), key: Material::File(key) });
    assert!(c.summary().contains("client certificate"));
}

#[test]
fn credential_token_file_resolves_and_reads() {
    let dir = fixture();
    let c = parse(&minimal(), dir.path()).unwrap();
    let r = c.resolve_upstream().unwrap();
    assert_eq!(r.server, "https://127.0.0.1:6443");
    assert_eq!(r.ca, None);
    let ResolvedCredential::Token(t) = &r.credential else { panic!("token expected") };
    assert_eq!(t.read_token().unwrap(), SECRET);
    assert!(!format!("{r:?}").contains(SECRET));
}

fn write_kubeconfig(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const KUBECONFIG_FILES: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://10.1.2.3:6443
    certificate-authority: upstream-ca.crt
    tls-server-name: kubernetes.default
- name: other
  cluster: {server: "https://other:6443"}
users:
- name: relay
  user:
    client-certificate: relay.crt
    client-key: relay.key
- name: tok
  user: {tokenFile: relay.token}
contexts:
- name: prod
  context: {cluster: prod, user: relay, namespace: default}
- name: tok
  context: {cluster: other, user: tok}
current-context: prod
preferences: {}
"#;

#[test]
fn credential_kubeconfig() {
    let dir = fixture();
    write_kubeconfig(dir.path(), "kubeconfig", KUBECONFIG_FILES);
    let c = parse(&with_upstream("  kubeconfig: kubeconfig\n"), dir.path()).unwrap();
    let kc = dir.path().join("kubeconfig");
    assert_eq!(c.upstream.credential, UpstreamCredential::Kubeconfig { path: kc.clone(), context: None });
    assert_eq!(c.upstream.server, "https://10.1.2.3:6443");
    assert!(c.summary().contains("context <current-context>"));
    let r = c.resolve_upstream().unwrap();
    assert_eq!(r.ca, Some(Material::File(dir.path().join("upstream-ca.crt"))));
    assert_eq!(r.tls_server_name.as_deref(), Some("kubernetes.default"));
    assert_eq!(r.credential, ResolvedCredential::ClientCert { cert: Material::File(dir.path().join("relay.crt")), key: Material::File(dir.path().join("relay.key")) });

    let c = parse(&with_upstream("  kubeconfig: kubeconfig\n  context: tok\n"), dir.path()).unwrap();
    assert_eq!(c.upstream.server, "https://other:6443");
    let r = resolve_kubeconfig(&kc, Some("tok")).unwrap();
    assert_eq!(r.credential, ResolvedCredential::Token(Material::File(dir.path().join("relay.token"))));
    assert_eq!(r.ca, None);
}

#[test]
fn kubeconfig_inline_data() {
    use base64::Engine as _;
    let dir = fixture();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let text = format!(
        "clusters:\n- name: c\n  cluster:\n    server: https://k8s:443\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
        b64("CA PEM"), b64("CERT PEM"), b64("KEY PEM")
    );
    let p = write_kubeconfig(dir.path(), "inline.yaml", &text);
    let r = resolve_kubeconfig(&p, None).unwrap();
    assert_eq!(r.server, "https://k8s:443");
    assert_eq!(resolve_kubeconfig(&write_kubeconfig(dir.path(), "b.yaml", &text.replace(":443", "")), None).unwrap().server, "https://k8s:443");
    assert_eq!(r.ca, Some(Material::Inline(b"CA PEM".to_vec())));
    assert_eq!(r.credential, ResolvedCredential::ClientCert { cert: Material::Inline(b"CERT PEM".to_vec()), key: Material::Inline(b"KEY PEM".to_vec()) });
    let debug = format!("{r:?}");
    assert!(!debug.contains("KEY PEM") && debug.contains("Inline(<7 bytes>)"), "{debug}");
}

/// The shape `sim::start` writes (pretty JSON, which is YAML).
#[test]
fn kubeconfig_json_like_the_simulator() {
    use base64::Engine as _;
    let dir = fixture();
    let v = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": "https://127.0.0.1:45678", "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE-----\nabc\n")}}],
        "users": [{"name": "admin", "user": {"token": SECRET}}],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "admin", "namespace": "default"}}],
        "current-context": "sim",
        "preferences": {},
    });
    let p = write_kubeconfig(dir.path(), "admin.kubeconfig", &serde_json::to_string_pretty(&v).unwrap());
    let r = resolve_kubeconfig(&p, None).unwrap();
    assert_eq!(r.server, "https://127.0.0.1:45678");
    assert_eq!(r.ca, Some(Material::Inline(b"-----BEGIN CERTIFICATE-----\nabc\n".to_vec())));
    let ResolvedCredential::Token(t) = &r.credential else { panic!("token expected") };
    assert_eq!(t.read_token().unwrap(), SECRET);
    assert!(!format!("{r:?}").contains(SECRET));
    // And through the relay config, which keeps only the path.
    let c = parse(&with_upstream("  kubeconfig: admin.kubeconfig\n  context: sim\n"), dir.path()).unwrap();
    assert_eq!(c.upstream.server, "https://127.0.0.1:45678");
    assert!(!format!("{c:?}").contains(SECRET));
}

/// Resolve a kubeconfig expected to fail; return the message.
fn kc_err(text: &str, context: Option<&str>) -> String {
    let dir = fixture();
    let p = write_kubeconfig(dir.path(), "kc.yaml", text);
    let msg = resolve_kubeconfig(&p, context).expect_err("kubeconfig should be refused").to_string();
    assert!(msg.starts_with(&format!("{}: ", p.display())) && !msg.contains('\n'), "{msg}");
    msg
}

fn kc(cluster: &str, user: &str) -> String {
    format!("clusters:\n- name: c\n  cluster:\n{cluster}users:\n- name: u\n  user:\n{user}contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n")
}
const KC_SERVER: &str = "    server: https://k8s:6443\n";
const KC_TOKEN: &str = "    token: abc\n";

#[test]
fn kubeconfig_errors() {
    let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: hoop-kube\n";
    let m = kc_err(&kc(KC_SERVER, exec), None);
    assert!(m.contains("users[0].user.exec: exec plugins are not allowed"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    auth-provider: {name: oidc}\n"), None);
    assert!(m.contains("users[0].user.auth-provider: auth providers are not allowed"), "{m}");
    let m = kc_err(&kc("    server: https://k8s:6443\n    insecure-skip-tls-verify: true\n", KC_TOKEN), None);
    assert!(m.contains("clusters[0].cluster.insecure-skip-tls-verify: true is not allowed"), "{m}");
    let m = kc_err(&kc("    server: http://k8s:6443\n", KC_TOKEN), None);
    assert!(m.contains("clusters[0].cluster.server: \"http://k8s:6443\": must be https"), "{m}");
    let m = kc_err(&kc("    certificate-authority-data: AAAA\n", KC_TOKEN), None);
    assert!(m.contains("clusters[0].cluster.server: is required"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    username: a\n    password: b\n"), None);
    assert!(m.contains("users[0].user.username: basic authentication"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    token: abc\n    as: admin\n"), None);
    assert!(m.contains("users[0].user.as: impersonation"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    token: abc\n    tokenFile: relay.token\n"), None);
    assert!(m.contains("users[0].user.token: set only one of token and tokenFile"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    token: abc\n    client-certificate: relay.crt\n    client-key: relay.key\n"), None);
    assert!(m.contains("users[0].user: has both a token and a client certificate"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    client-certificate: relay.crt\n"), None);
    assert!(m.contains("users[0].user.client-key: is required"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    client-certificate: relay.crt\n    client-certificate-data: AAAA\n    client-key: relay.key\n"), None);
    assert!(m.contains("users[0].user.client-certificate-data: set only one"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    client-certificate-data: '!!notbase64'\n    client-key: relay.key\n"), None);
    assert!(m.contains("users[0].user.client-certificate-data: is not valid base64"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    client-certificate: missing.crt\n    client-key: relay.key\n"), None);
    assert!(m.contains("users[0].user.client-certificate: cannot read ") && m.ends_with("missing.crt: No such file or directory"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    {}\n"), None);
    assert!(m.contains("users[0].user: has no static credential"), "{m}");
    let m = kc_err(&kc(KC_SERVER, KC_TOKEN), Some("nope"));
    assert!(m.contains("contexts: no contexts entry named \"nope\" (found: x)"), "{m}");
    let m = kc_err(&kc(KC_SERVER, KC_TOKEN).replace("current-context: x\n", ""), None);
    assert!(m.contains("current-context: is not set"), "{m}");
    let m = kc_err(&kc(KC_SERVER, KC_TOKEN).replace("user: u}", "user: v}"), None);
    assert!(m.contains("contexts[0].context.user: no users entry named \"v\""), "{m}");
    let dup = kc(KC_SERVER, KC_TOKEN).replace("contexts:\n", "- name: u\n  user: {token: x}\ncontexts:\n");
    let m = kc_err(&dup, None);
    assert!(m.contains("users[1].name: \"u\" appears more than once"), "{m}");
    let m = kc_err(&kc(KC_SERVER, "    token: a\n    token: b\n"), None);
    assert!(m.contains("users[0].user.token: is set more than once"), "{m}");
}

#[test]
fn kubeconfig_error_is_wrapped_with_the_relay_key() {
    let dir = fixture();
    write_kubeconfig(dir.path(), "kc", &kc(KC_SERVER, "    exec: {command: x}\n"));
    let m = err(&with_upstream("  kubeconfig: kc\n"));
    // fixture() in err() is a fresh dir without kc: the file check fires first.
    assert!(m.contains("relay.yaml: upstream.kubeconfig: cannot read "), "{m}");
    let e = parse(&with_upstream("  kubeconfig: kc\n"), dir.path()).unwrap_err();
    assert_eq!(e.key(), "upstream.kubeconfig");
    let m = e.to_string();
    assert!(m.starts_with(&format!("relay.yaml: upstream.kubeconfig: {}: users[0].user.exec: exec plugins", dir.path().join("kc").display())), "{m}");
}

#[test]
fn credential_in_cluster() {
    let dir = fixture();
    let sa = dir.path().join("sa");
    std::fs::create_dir(&sa).unwrap();
    std::fs::write(sa.join("token"), SECRET).unwrap();
    std::fs::write(sa.join("ca.crt"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let env = |k: &str| match k {
        "KUBERNETES_SERVICE_HOST" => Some("fd00::1".to_string()),
        "KUBERNETES_SERVICE_PORT" => Some("443".to_string()),
        _ => None,
    };
    let text = with_upstream("  in_cluster: true\n");
    let c = RelayConfig::parse(&text, dir.path(), "relay.yaml", &env, &sa).unwrap();
    assert_eq!(c.upstream.credential, UpstreamCredential::InCluster);
    assert_eq!(c.upstream.server, "https://[fd00::1]:443");
    let r = in_cluster("relay.yaml", &env, &sa).unwrap();
    assert_eq!(r.credential, ResolvedCredential::Token(Material::File(sa.join("token"))));
    assert_eq!(r.ca, Some(Material::File(sa.join("ca.crt"))));
    // Outside a pod.
    let m = err(&text);
    assert_eq!(m, "relay.yaml: upstream.in_cluster: KUBERNETES_SERVICE_HOST is not set; in_cluster only works inside a Kubernetes pod");
    let env_no_sa = |k: &str| env(k);
    let e = RelayConfig::parse(&text, dir.path(), "relay.yaml", &env_no_sa, &dir.path().join("nosa")).unwrap_err().to_string();
    assert!(e.starts_with("relay.yaml: upstream.in_cluster: cannot read ") && e.ends_with("token: No such file or directory"), "{e}");
}

#[test]
fn unknown_keys() {
    assert_eq!(err(&minimal().replace("listen:", "lisen:")).split(" at line").next().unwrap(), "relay.yaml: lisen: unknown key, expected one of `listen`, `tls`, `upstream`, `oidc`, `impersonation`, `access`, `limits`, `enrollment`, `policy`, `review`, `mask_profiles`, `records`, `agents`");
    let m = err(&format!("{}extra: 1\n", minimal()));
    assert!(m.starts_with("relay.yaml: extra: unknown key") && m.contains("line 12"), "{m}");
    let m = err(&minimal().replace("  cert:", "  cret:"));
    assert!(m.starts_with("relay.yaml: tls.cret: unknown key, expected one of `cert`, `key`, `client_ca` at line 3"), "{m}");
    let m = err(&with_oidc("  leeway: 5\n"));
    assert!(m.starts_with("relay.yaml: oidc.leeway: unknown key"), "{m}");
    let m = err(&format!("{}limits: {{max_headers: 5}}\n", minimal()));
    assert!(m.starts_with("relay.yaml: limits.max_headers: unknown key"), "{m}");
}

#[test]
fn wrong_types_and_missing_keys() {
    let m = err(&with_oidc("  leeway_seconds: soon\n"));
    assert!(m.starts_with("relay.yaml: oidc.leeway_seconds: invalid type: string \"soon\", expected u64 at line"), "{m}");
    let m = err(&with_oidc("  leeway_seconds: -1\n"));
    assert!(m.starts_with("relay.yaml: oidc.leeway_seconds: invalid type: integer `-1`"), "{m}");
    let m = err(&format!("{}impersonation: yes please\n", minimal()));
    assert!(m.starts_with("relay.yaml: impersonation: invalid type"), "{m}");
    let m = err(&minimal().replace("audiences: [hoop-kube]", "audiences: hoop-kube"));
    assert!(m.starts_with("relay.yaml: oidc.audiences: invalid type: string \"hoop-kube\", expected a sequence"), "{m}");
    let m = err(&minimal().replace("listen: 127.0.0.1:8443", "listen: relay.example.com:8443"));
    assert!(m.starts_with("relay.yaml: listen: \"relay.example.com:8443\" is not IP:PORT"), "{m}");
    assert_eq!(err(&minimal().replace("listen: 127.0.0.1:8443\n", "")), "relay.yaml: listen: is required but not set");
    let m = err(&minimal().replace("  key: server.key\n", ""));
    assert!(m.starts_with("relay.yaml: tls.key: is required but not set in the mapping at line 3"), "{m}");
    let m = err(&minimal().replace("  issuer: https://idp.example.com\n", ""));
    assert!(m.starts_with("relay.yaml: oidc.issuer: is required but not set"), "{m}");
    let m = err(&format!("listen: 127.0.0.1:8443\n{TLS}{UPSTREAM}"));
    assert_eq!(m, "relay.yaml: oidc: is required but not set");
}

#[test]
fn upstream_credential_count() {
    let m = err(&with_upstream("  server: https://k:6443\n  token_file: relay.token\n  client_cert: relay.crt\n  client_key: relay.key\n"));
    assert_eq!(m, "relay.yaml: upstream: token_file and client_cert are all set; set exactly one credential");
    let m = err(&with_upstream("  server: https://k:6443\n"));
    assert_eq!(m, "relay.yaml: upstream: no credential; set exactly one of token_file, client_cert + client_key, kubeconfig, in_cluster: true");
    let m = err(&with_upstream("  server: https://k:6443\n  in_cluster: false\n"));
    assert!(m.starts_with("relay.yaml: upstream: no credential"), "{m}");
    let m = err(&with_upstream("  server: https://k:6443\n  client_cert: relay.crt\n"));
    assert_eq!(m, "relay.yaml: upstream.client_key: is required with upstream.client_cert");
    let m = err(&with_upstream("  server: https://k:6443\n  client_key: relay.key\n"));
    assert_eq!(m, "relay.yaml: upstream.client_cert: is required with upstream.client_key");
    let m = err(&with_upstream("  server: https://k:6443\n  token_file: relay.token\n  context: prod\n"));
    assert_eq!(m, "relay.yaml: upstream.context: only applies with upstream.kubeconfig");
    let m = err(&with_upstream("  server: https://k:6443\n  in_cluster: true\n"));
    assert!(m.starts_with("relay.yaml: upstream.server: is not allowed with this credential"), "{m}");
    let m = err(&with_upstream("  token_file: relay.token\n"));
    assert!(m.starts_with("relay.yaml: upstream.server: is required with this credential"), "{m}");
}

#[test]
fn upstream_urls() {
    let m = err(&with_upstream("  server: http://127.0.0.1:6443\n  token_file: relay.token\n"));
    assert_eq!(m, "relay.yaml: upstream.server: \"http://127.0.0.1:6443\": must be https (the relay sends its credential there)");
    let m = err(&with_upstream("  server: ftp://k\n  token_file: relay.token\n"));
    assert!(m.contains("upstream.server: \"ftp://k\": the scheme must be https"), "{m}");
    let m = err(&with_upstream("  server: not a url\n  token_file: relay.token\n"));
    assert!(m.contains("upstream.server: \"not a url\" is not a URL"), "{m}");
    let m = err(&with_upstream("  server: https://user:pw@k:6443\n  token_file: relay.token\n"));
    assert!(m.contains("no user name, password, query or fragment"), "{m}");
    for bad in ["https://k:6443/a/../b", "https://k:6443/k8s/clusters/c-1", "https://k:6443\\\\x", "https://k:6443/%2F"] {
        let m = err(&with_upstream(&format!("  server: \"{bad}\"\n  token_file: relay.token\n")));
        assert!(m.starts_with("relay.yaml: upstream.server: ") && m.ends_with(": a path is not supported; write https://HOST[:PORT]"), "{m}");
    }
    let dir = fixture();
    let c = parse(&with_upstream("  server: https://K8S.example.com/\n  token_file: relay.token\n"), dir.path()).unwrap();
    assert_eq!(c.upstream.server, "https://k8s.example.com:443");
}

#[test]
fn oidc_issuer() {
    let text = |issuer: &str| minimal().replace("https://idp.example.com", issuer);
    let m = err(&text("http://idp.example.com"));
    assert_eq!(m, "relay.yaml: oidc.issuer: \"http://idp.example.com\": http is only allowed on 127.0.0.1, ::1 or localhost (tests, demo); use https");
    let m = err(&text("http://10.0.0.5:9000"));
    assert!(m.starts_with("relay.yaml: oidc.issuer: \"http://10.0.0.5:9000\": http is only allowed"), "{m}");
    let dir = fixture();
    for ok in ["http://127.0.0.1:9000", "http://localhost:9000/", "http://[::1]:9000"] {
        let c = parse(&text(ok), dir.path()).unwrap();
        assert_eq!(c.oidc.issuer, ok, "issuer kept verbatim");
    }
    let m = err(&text("https://idp.example.com?x=1"));
    assert!(m.contains("oidc.issuer: ") && m.contains("no user name, password, query or fragment"), "{m}");
}

#[test]
fn algorithms() {
    let m = err(&with_oidc("  algorithms: [RS256, none]\n"));
    assert!(m.starts_with("relay.yaml: oidc.algorithms[1]: \"none\" is never allowed: it accepts unsigned tokens"), "{m}");
    assert!(m.contains("at line"), "{m}");
    let m = err(&with_oidc("  algorithms: [HS256]\n"));
    assert!(m.starts_with("relay.yaml: oidc.algorithms[0]: \"HS256\" is never allowed: HMAC needs a secret shared with the issuer"), "{m}");
    let m = err(&with_oidc("  algorithms: [ES256, rs256]\n"));
    assert!(m.starts_with("relay.yaml: oidc.algorithms[1]: \"rs256\" is not an algorithm name (names are case-sensitive); did you mean \"RS256\"?"), "{m}");
    let m = err(&with_oidc("  algorithms: [ES512]\n"));
    assert!(m.starts_with("relay.yaml: oidc.algorithms[0]: \"ES512\" is not supported; allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"), "{m}");
    assert_eq!(err(&with_oidc("  algorithms: [RS256, ES256, RS256]\n")), "relay.yaml: oidc.algorithms[2]: RS256 is listed twice");
    assert!(err(&with_oidc("  algorithms: []\n")).starts_with("relay.yaml: oidc.algorithms: at least one algorithm is required"));
}

#[test]
fn oidc_values() {
    assert_eq!(err(&with_oidc("  leeway_seconds: 10000\n")), "relay.yaml: oidc.leeway_seconds: 10000 is too large; at most 300");
    let dir = fixture();
    assert_eq!(parse(&with_oidc("  leeway_seconds: 300\n"), dir.path()).unwrap().oidc.leeway_seconds, 300);
    assert_eq!(err(&minimal().replace("[hoop-kube]", "[]")), "relay.yaml: oidc.audiences: at least one audience is required");
    assert_eq!(err(&minimal().replace("[hoop-kube]", "[hoop-kube, \"\"]")), "relay.yaml: oidc.audiences[1]: is empty");
    assert_eq!(err(&with_oidc("  username_claim: \"\"\n")), "relay.yaml: oidc.username_claim: is empty; name a claim");
    let m = err(&with_oidc("  groups_prefix: \"system:\"\n"));
    assert!(m.starts_with("relay.yaml: oidc.groups_prefix: \"system:\" must not start with"), "{m}");
    let m = err(&with_oidc("  ca: nope.crt\n"));
    assert!(m.starts_with("relay.yaml: oidc.ca: cannot read /") && m.ends_with("nope.crt: No such file or directory"), "{m}");
}

#[test]
fn access_and_limits() {
    assert_eq!(err(&format!("{}access: {{subjects: [alice, \" \"]}}\n", minimal())), "relay.yaml: access.subjects[1]: is empty");
    let m = err(&format!("{}limits: {{max_header_bytes: 100}}\n", minimal()));
    assert_eq!(m, "relay.yaml: limits.max_header_bytes: 100 is out of range; allowed 4096–1048576");
    let m = err(&format!("{}limits: {{max_body_bytes: 999999999999}}\n", minimal()));
    assert!(m.starts_with("relay.yaml: limits.max_body_bytes: 999999999999 is out of range"), "{m}");
}

#[test]
fn missing_and_bad_files() {
    let dir = fixture();
    let e = parse(&minimal().replace("relay.token", "missing.token"), dir.path()).unwrap_err();
    let want = format!("relay.yaml: upstream.token_file: cannot read {}: No such file or directory", dir.path().join("missing.token").display());
    assert_eq!(e.to_string(), want);
    assert_eq!((e.file(), e.key()), ("relay.yaml", "upstream.token_file"));
    let m = err(&minimal().replace("client-ca.crt", "empty.crt"));
    assert!(m.starts_with("relay.yaml: tls.client_ca: /") && m.ends_with("empty.crt is empty"), "{m}");
    let m = err(&minimal().replace("client-ca.crt", "."));
    assert!(m.starts_with("relay.yaml: tls.client_ca: ") && m.ends_with("is not a regular file"), "{m}");
    assert_eq!(err(&minimal().replace("server.key", "\"\"")), "relay.yaml: tls.key: is empty; name a file");
    // Absolute paths are kept.
    let abs = dir.path().join("server.crt");
    let c = parse(&minimal().replace("cert: server.crt", &format!("cert: {}", abs.display())), dir.path()).unwrap();
    assert_eq!(c.tls.cert, abs);
}

#[test]
fn yaml_syntax_and_duplicates() {
    let m = err(&format!("{}oidc2: [unclosed\n", minimal()));
    assert!(m.contains("line"), "{m}");
    let m = err("listen: 127.0.0.1:8443\n  tls: x\n");
    assert!(m.starts_with("relay.yaml: mapping values are not allowed in this context at line 2"), "{m}");
    let m = err("listen:\n\t- x\n");
    assert!(m.contains("at line 2"), "{m}");
    // Duplicates are errors, never last-wins: top level, nested, and keys the schema does not know.
    assert_eq!(err(&format!("{}listen: 0.0.0.0:1\n", minimal())), "relay.yaml: listen: is set more than once (YAML keys must be unique)");
    let m = err(&minimal().replace("  key: server.key\n", "  key: server.key\n  key: other.key\n"));
    assert!(m.starts_with("relay.yaml: tls.key: is set more than once (YAML keys must be unique) in the mapping at line 3"), "{m}");
    let m = err(&format!("{}bogus: 1\nbogus: 2\n", minimal()));
    assert!(m.starts_with("relay.yaml: bogus: is set more than once"), "{m}");
    let m = err(&format!("{}access: {{subjects: [a], subjects: [b]}}\n", minimal()));
    assert!(m.starts_with("relay.yaml: access.subjects: is set more than once"), "{m}");
    let m = err(&format!("{}---\nlisten: 0.0.0.0:1\n", minimal()));
    assert!(m.contains("more than one document"), "{m}");
    assert_eq!(err("# nothing\n\n"), "relay.yaml: the file is empty");
    assert_eq!(err("listen: *x\n").split(" at line").next().unwrap(), "relay.yaml: listen: unknown anchor");
}

#[test]
fn file_size_cap() {
    let dir = fixture();
    let mut big = minimal();
    big.push('#');
    big.push_str(&"x".repeat(MAX_FILE_BYTES as usize));
    big.push('\n');
    let e = parse(&big, dir.path()).unwrap_err().to_string();
    assert_eq!(e, "relay.yaml: larger than 1048576 bytes; refusing to parse it (is this the right file?)");
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, &big).unwrap();
    let e = RelayConfig::load(&path).unwrap_err();
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    let e = resolve_kubeconfig(&path, None).unwrap_err();
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    std::fs::write(&path, b"listen: \xff\n").unwrap();
    let e = RelayConfig::load(&path).unwrap_err().to_string();
    assert!(e.ends_with("big.yaml: not UTF-8 text (bad byte at offset 8)"), "{e}");
}

#[test]
fn algorithm_names_round_trip() {
    for a in Algorithm::ALL {
        assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
    }
    assert!("None".parse::<Algorithm>().unwrap_err().contains("never allowed"));
    assert!("hs512".parse::<Algorithm>().unwrap_err().contains("never allowed"));
}

/// The packaged example must stay valid.
#[test]
fn packaged_example_parses() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/relay.example.yaml")).unwrap();
    let dir = fixture();
    let c = parse(&text, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.oidc.audiences, ["hoop-kube"]);
    assert_eq!(c.upstream.credential, UpstreamCredential::TokenFile(dir.path().join("relay.token")));
}

#[test]
fn listen_ipv6_needs_quotes() {
    let dir = fixture();
    let c = parse(&minimal().replace("listen: 127.0.0.1:8443", "listen: \"[::]:8443\""), dir.path()).unwrap();
    assert_eq!(c.listen, "[::]:8443".parse().unwrap());
    let m = err(&minimal().replace("listen: 127.0.0.1:8443", "listen: [::]:8443"));
    assert!(m.starts_with("relay.yaml: "), "{m}");
}

#[test]
fn policy_section_is_compiled_at_load() {
    let dir = fixture();
    let cfg = parse(&format!("{}policy:\n  rules:\n    - {{name: dev, match: {{groups: [dev]}}, action: allow}}\n", minimal()), dir.path()).unwrap();
    assert_eq!(cfg.policy.as_ref().map(|p| p.rules.len()), Some(1));
    assert!(cfg.summary().contains("policy:        1 rule(s): 1 allow, 0 deny, 0 review"), "{}", cfg.summary());
    assert!(parse(&minimal(), dir.path()).unwrap().policy.is_none());
    let cel = "    - {name: ok, action: allow}\n    - {name: privileged-pods, cel: \"object.spec.(\", action: deny}\n";
    let msg = err(&format!("{}policy:\n  rules:\n{cel}", minimal()));
    assert!(msg.starts_with("relay.yaml: policy.rules[1].cel: rule \"privileged-pods\": does not compile"), "{msg}");
    let msg = err(&format!("{}policy:\n  rules: []\n  default: allow\n", minimal()));
    assert!(msg.contains("policy") && msg.contains("unknown key"), "{msg}");
}

#[test]
fn review_section_is_strict() {
    let with = |review: &str| format!("{}{review}", minimal());
    assert!(err(&with("review:\n  hold_seconds: 0\n")).starts_with("relay.yaml: review.hold_seconds: 0 is out of range"));
    assert!(err(&with("review:\n  hold_seconds: 121\n")).starts_with("relay.yaml: review.hold_seconds: 121 is out of range"));
    assert!(err(&with("review:\n  ttl_seconds: 59\n")).starts_with("relay.yaml: review.ttl_seconds: 59 is out of range"));
    let m = err(&with("review:\n  webhook: http://hooks.example.com/x\n"));
    assert!(m.starts_with("relay.yaml: review.webhook: ") && m.contains("use https"), "{m}");
    let m = err(&with("review:\n  hold: 3\n"));
    assert!(m.starts_with("relay.yaml: review.hold: unknown key"), "{m}");
    let m = err(&with("review:\n  hold_seconds: 3\n  hold_seconds: 4\n"));
    assert!(m.contains("is set more than once"), "{m}");
    let dir = fixture();
    let cfg = parse(&with("review:\n  hold_seconds: 5\n  webhook: http://127.0.0.1:9/hook\n"), dir.path()).expect("valid");
    let r = cfg.review.expect("review section");
    assert_eq!((r.hold_seconds, r.ttl_seconds), (5, 600));
}

#[test]
fn mask_profiles_are_checked_and_rules_must_name_one() {
    let with = |extra: &str| format!("{}{extra}", minimal());
    let policy = "policy:\n  rules:\n    - {name: r, action: allow, mask: secrets}\n";
    let m = err(&with(policy));
    assert!(m.starts_with("relay.yaml: policy.rules[0].mask: no mask profile \"secrets\" (there is no mask_profiles section)"), "{m}");
    let m = err(&with(&format!("{policy}mask_profiles:\n  other: {{secret_data: true}}\n")));
    assert!(m.contains("no mask profile \"secrets\" (defined: other)"), "{m}");
    let m = err(&with("mask_profiles:\n  secrets: {secret_data: true, last_applied: false}\n"));
    assert!(m.starts_with("relay.yaml: mask_profiles.secrets.last_applied: cannot be false"), "{m}");
    let m = err(&with("mask_profiles:\n  secrets: {}\n"));
    assert!(m.starts_with("relay.yaml: mask_profiles.secrets: masks nothing"), "{m}");
    let m = err(&with("mask_profiles:\n  secrets: {secret_data: true, sekret: 1}\n"));
    assert!(m.contains("sekret"), "{m}");
    let dir = fixture();
    let text = with(&format!("{policy}mask_profiles:\n  secrets: {{secret_data: true, configmap_keys: [\"*password*\"]}}\n"));
    let cfg = parse(&text, dir.path()).unwrap();
    assert!(cfg.mask_profiles.get("secrets").is_some_and(|p| p.masks_objects()));
}
