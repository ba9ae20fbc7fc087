//! `hoop-kube relay pki init` as a platform engineer runs it: the files and their modes, the
//! fingerprint and the snippet it prints, the refusal to overwrite, and a relay.yaml built from
//! the snippet that `relay check` accepts.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_hoop-kube");

fn init(dir: &Path, extra: &[&str]) -> Output {
    Command::new(BIN).args(["relay", "pki", "init", "--dir"]).arg(dir).args(["--host", "relay.example.com", "--host", "127.0.0.1"]).args(extra).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_writes_the_pki_prints_the_snippet_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let out = init(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    let fingerprint = hoop_kube::pki::ca_fingerprint(&ca_pem).unwrap();
    assert!(stdout.contains(&format!("CA fingerprint (SHA-256): {fingerprint}")), "{stdout}");
    for line in ["tls:", &format!("  cert: {}", dir.join("relay.crt").display()), &format!("  client_ca: {}", dir.join("ca.crt").display()), "enrollment:", &format!("  ca_key: {}", dir.join("ca.key").display()), "  max_certificate_hours: 12", "agents:", &format!("  signing_key: {}", dir.join("agent-signing.key").display())] {
        assert!(stdout.lines().any(|l| l == line), "stdout lacks {line:?}: {stdout}");
    }
    let chain = hoop_kube::pki::certs_from_pem(&std::fs::read_to_string(dir.join("relay.crt")).unwrap(), "relay.crt").unwrap();
    assert_eq!(chain.len(), 2, "relay.crt is leaf + CA");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "the directory is private");
        for (f, want) in [("ca.crt", 0o644), ("ca.key", 0o600), ("relay.crt", 0o644), ("relay.key", 0o600), ("agent-signing.key", 0o600)] {
            assert_eq!(mode(&dir.join(f)), want, "{f}");
        }
    }

    // Again: refused in one line naming the file, nothing changed.
    let before: Vec<Vec<u8>> = ["ca.crt", "ca.key", "relay.crt", "relay.key"].iter().map(|f| std::fs::read(dir.join(f)).unwrap()).collect();
    let again = init(&dir, &[]);
    let err = text(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&dir.join("ca.crt").display().to_string()) && err.contains("--force"), "{err}");
    let after: Vec<Vec<u8>> = ["ca.crt", "ca.key", "relay.crt", "relay.key"].iter().map(|f| std::fs::read(dir.join(f)).unwrap()).collect();
    assert_eq!(before, after, "nothing was overwritten");
    // Only one file left behind is enough to refuse.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("relay.key"), "mine").unwrap();
    let e = init(&other, &[]);
    assert!(!e.status.success() && text(&e.stderr).contains("relay.key"), "{}", text(&e.stderr));
    assert!(!other.join("ca.key").exists(), "a refusal writes nothing");

    // --force replaces the CA.
    let forced = init(&dir, &["--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(!text(&forced.stdout).contains(&fingerprint), "a new CA, a new fingerprint");
}

#[test]
fn relay_check_accepts_a_config_built_from_the_snippet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let out = init(&dir, &["--days", "30"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let snippet: String = stdout.lines().skip_while(|l| *l != "tls:").map(|l| format!("{l}\n")).collect();
    std::fs::write(tmp.path().join("token"), "t").unwrap();
    let cfg = tmp.path().join("relay.yaml");
    std::fs::write(&cfg, format!("listen: 127.0.0.1:8443\n{snippet}upstream: {{server: \"https://127.0.0.1:6443\", token_file: token}}\noidc: {{issuer: \"https://idp.example.com\", audiences: [hoop-kube]}}\n")).unwrap();
    let check = Command::new(BIN).args(["relay", "check", "--config"]).arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{}\n{}", text(&check.stderr), std::fs::read_to_string(&cfg).unwrap());
    let summary = text(&check.stdout);
    assert!(summary.contains("enrollment:    on") && summary.contains("certificates up to 12 h"), "{summary}");
}

#[test]
fn help_and_argument_errors() {
    let help = Command::new(BIN).args(["relay", "pki", "init", "--help"]).output().unwrap();
    let h = text(&help.stdout);
    for want in ["--dir", "--host", "--days", "--force", "ca.key", "relay.crt", "fingerprint", "0600"] {
        assert!(h.contains(want), "help must mention {want}: {h}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let no_host = Command::new(BIN).args(["relay", "pki", "init", "--dir"]).arg(tmp.path()).output().unwrap();
    assert_eq!(no_host.status.code(), Some(2), "clap refuses a missing --host");
    let bad = Command::new(BIN).args(["relay", "pki", "init", "--host", "not a host", "--dir"]).arg(tmp.path()).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("neither an IP address nor a DNS name"), "{}", text(&bad.stderr));
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none(), "nothing written");
}
