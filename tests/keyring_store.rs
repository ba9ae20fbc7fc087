//! The secret store (`hoop_kube::login::store`) against the real OS keyrings of this machine:
//! the kernel keyring (keyutils) inside `keyctl session -`, and the Secret Service
//! (gnome-keyring) inside `dbus-run-session`.
//!
//! A keyring needs a session around the *process* that uses it, so each test is its own parent
//! and child. Run normally, a test re-runs this test binary, filtered to itself
//! (`<name> --exact`), inside the session its keyring needs, with `HOOP_KUBE_STORE_CHILD=<name>`
//! and a private `HOME`/`XDG_*` so nothing of the developer's is touched; the child does the real
//! work and asserts, printing `report:` lines; the parent asserts that the child succeeded and
//! prints its report (`cargo test --test keyring_store -- --nocapture` shows it).
//!
//! Nothing is skipped: a missing `keyctl`, `dbus-run-session` or `gnome-keyring-daemon` fails
//! the test with the Debian packages to install.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hoop_kube::login::store::{Backend, SecretStore, StoreError};

/// Set in the child to the name of the test it runs.
const CHILD: &str = "HOOP_KUBE_STORE_CHILD";
/// Debian packages these tests need.
const PACKAGES: &str = "keyutils gnome-keyring dbus-daemon";
/// How long a child may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(180);

/// `keyctl session -`: a new anonymous session keyring for the child.
const KERNEL_SESSION: &[&str] = &["keyctl", "session", "-"];
/// A session bus with gnome-keyring's Secret Service, its login collection created and unlocked
/// (the password must arrive with a trailing newline).
const SECRET_SERVICE_SESSION: &[&str] = &[
    "dbus-run-session",
    "--",
    "sh",
    "-c",
    "echo pw | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null \
     && exec \"$0\" \"$@\"",
];
/// A session keyring the child may not use at all (and, below, no session bus).
const LOCKED_KERNEL_SESSION: &[&str] = &[
    "keyctl",
    "session",
    "-",
    "sh",
    "-c",
    "keyctl setperm @s 0 && exec \"$0\" \"$@\"",
];

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn kernel_keyring() {
    const NAME: &str = "kernel_keyring";
    if in_child(NAME) {
        return exercise("kernel keyring", true);
    }
    require("keyctl", "keyutils");
    run_child(NAME, KERNEL_SESSION, &[]);
}

#[test]
fn secret_service() {
    const NAME: &str = "secret_service";
    if in_child(NAME) {
        return exercise("Secret Service", false);
    }
    require("dbus-run-session", "dbus-daemon");
    require("gnome-keyring-daemon", "gnome-keyring");
    run_child(NAME, SECRET_SERVICE_SESSION, &[]);
}

#[test]
fn no_usable_keyring() {
    const NAME: &str = "no_usable_keyring";
    if in_child(NAME) {
        return runtime().block_on(async {
            let err = SecretStore::probe(Backend::Keyring).await.unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::NoUsableKeyring { .. }), "{err:?}");
            assert!(!msg.contains('\n'), "{msg}");
            assert!(
                msg.starts_with(
                    "no usable OS keyring (Secret Service: no D-Bus session bus; kernel keyring: \
                     permission denied); run with --token-store file to keep secrets in a 0600 \
                     file under "
                ),
                "{msg}"
            );
            report("probe(Keyring)", &msg);
            // Every operation says the same.
            let store = SecretStore::new("default", Backend::Keyring).unwrap();
            let put = store.put("id_token", b"x").await.unwrap_err().to_string();
            assert_eq!(put, msg);
            let get = store.get("id_token").await.unwrap_err().to_string();
            assert_eq!(get, msg);
            // And the fix it names works here.
            SecretStore::probe(Backend::File).await.unwrap();
            let file = SecretStore::new("default", Backend::File).unwrap();
            file.put("id_token", b"x").await.unwrap();
            assert_eq!(
                file.get("id_token").await.unwrap().as_deref(),
                Some(&b"x"[..])
            );
            report("--token-store file", &file.describe().await.unwrap());
            file.delete_all().await.unwrap();
        });
    }
    require("keyctl", "keyutils");
    run_child(NAME, LOCKED_KERNEL_SESSION, &[]);
}

/// Processes with no session keyring of their own and no session bus (what a CI job, a container
/// or an ssh login without pam_keyinit often is): the store either uses the kernel keyring —
/// then a value one process wrote is read by the next, through the user's persistent keyring —
/// or says, in one line, what to do. Which of the two happened is reported.
#[test]
fn no_session_keyring() {
    const NAME: &str = "no_session_keyring";
    if in_child(NAME) {
        let phase = std::env::var("HOOP_KUBE_STORE_PHASE").unwrap();
        let profile = std::env::var("HOOP_KUBE_STORE_PROFILE").unwrap();
        return runtime().block_on(async {
            if let Err(err) = SecretStore::probe(Backend::Keyring).await {
                let msg = err.to_string();
                assert!(matches!(err, StoreError::NoUsableKeyring { .. }), "{err:?}");
                assert!(!msg.contains('\n'), "{msg}");
                assert!(msg.contains("--token-store file"), "{msg}");
                report(&format!("{phase}: probe(Keyring)"), &msg);
                return;
            }
            let store = SecretStore::new(&profile, Backend::Keyring).unwrap();
            let desc = store.describe().await.unwrap();
            assert!(desc.starts_with("kernel keyring"), "{desc}");
            let big = pseudo_random(100 * 1024, 3);
            if phase == "put" {
                store.put("refresh_token", &big).await.unwrap();
                store.put("id_token", b"token").await.unwrap();
                report("put (process 1)", &format!("100 KiB + 5 B into the {desc}"));
            } else {
                let got = store.get("refresh_token").await;
                let small = store.get("id_token").await;
                let intact = matches!(&got, Ok(Some(v)) if *v == big)
                    && matches!(&small, Ok(Some(v)) if v.as_slice() == b"token");
                // What this process sees of the kernel keyrings, for the failure message.
                let seen = if intact {
                    String::new()
                } else {
                    Command::new("keyctl")
                        .args(["show", "@s"])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default()
                };
                store.delete_all().await.unwrap();
                assert!(
                    intact,
                    "values written by process 1 did not reach process 2: refresh_token {}, \
                     id_token {}; keyctl show @s:\n{seen}",
                    describe(&got),
                    describe(&small)
                );
                assert_eq!(store.get("id_token").await.unwrap(), None);
                report(
                    "get + delete_all (process 2)",
                    "both values read back intact, then forgotten",
                );
            }
        });
    }
    let profile = format!("it-nosession-{}", std::process::id());
    for phase in ["put", "get"] {
        run_child(
            NAME,
            &[],
            &[
                ("HOOP_KUBE_STORE_PHASE", phase),
                ("HOOP_KUBE_STORE_PROFILE", &profile),
            ],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The child's work

/// Puts, gets, replaces and deletes small, binary and 100 KiB values in the OS keyring the
/// store chooses, which must be `expect`; reports which it was and how long 100 KiB took.
fn exercise(expect: &str, kernel: bool) {
    let rt = runtime();
    let started = Instant::now();
    rt.block_on(SecretStore::probe(Backend::Keyring))
        .unwrap_or_else(|e| panic!("probe(Keyring): {e}"));
    report(
        "first use (choice + probe)",
        &format!("{:.1} ms", ms(started.elapsed())),
    );
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let profile = format!("it-{}-{nanos}", std::process::id());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(round_trips(&profile, expect, kernel))
    }));
    // Leave nothing behind, even after a failure (kernel keys outlive the session, linked into
    // the user's persistent keyring).
    for p in [profile.clone(), format!("{profile}-b")] {
        let store = SecretStore::new(&p, Backend::Keyring).unwrap();
        let _ = rt.block_on(store.delete_all());
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn round_trips(profile: &str, expect: &str, kernel: bool) {
    let store = SecretStore::new(profile, Backend::Keyring).unwrap();
    let other = SecretStore::new(&format!("{profile}-b"), Backend::Keyring).unwrap();
    let desc = store.describe().await.unwrap();
    assert!(
        desc.starts_with(expect),
        "expected the {expect}, got {desc}"
    );
    report("backend", &desc);

    // Nothing there yet.
    assert_eq!(store.get("id_token").await.unwrap(), None);

    // Small.
    let token = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl".to_vec();
    store.put("id_token", &token).await.unwrap();
    assert_eq!(store.get("id_token").await.unwrap(), Some(token.clone()));

    // Binary: every byte value, not UTF-8.
    let bin: Vec<u8> = (0..=255u8).rev().cycle().take(5000).collect();
    store.put("client_key", &bin).await.unwrap();
    assert_eq!(store.get("client_key").await.unwrap(), Some(bin.clone()));

    // 100 KiB, binary: more than one kernel keyring key (32767 bytes) or Secret Service item.
    let big_a = pseudo_random(100 * 1024, 1);
    let big_b = pseudo_random(100 * 1024, 2);
    let mut puts = Vec::new();
    let mut gets = Vec::new();
    for i in 0..5 {
        let value = if i % 2 == 0 { &big_a } else { &big_b };
        let t = Instant::now();
        store.put("refresh_token", value).await.unwrap();
        puts.push(t.elapsed());
        let t = Instant::now();
        let back = store.get("refresh_token").await.unwrap();
        gets.push(t.elapsed());
        assert!(
            back.as_ref() == Some(value),
            "100 KiB value {i} came back different"
        );
    }
    report("put 100 KiB", &timing(&mut puts));
    report("get 100 KiB", &timing(&mut gets));
    let mut small_puts = Vec::new();
    let mut small_gets = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        store.put("id_token", &token).await.unwrap();
        small_puts.push(t.elapsed());
        let t = Instant::now();
        store.get("id_token").await.unwrap();
        small_gets.push(t.elapsed());
    }
    report("put 53 B", &timing(&mut small_puts));
    report("get 53 B", &timing(&mut small_gets));
    if kernel {
        // The last value written was big_a; the kernel keyring holds it as 4 keys of ≤ 32767
        // bytes (and nothing of the replaced generations).
        let chunks = wait_for_kernel_keys(&format!("{profile}/refresh_token#"), 4);
        report(
            "kernel keys holding 100 KiB",
            &format!("{chunks} chunks + 1 manifest"),
        );
    }

    // Replace a large value with a small one and back.
    store.put("refresh_token", b"short").await.unwrap();
    assert_eq!(
        store.get("refresh_token").await.unwrap().as_deref(),
        Some(&b"short"[..])
    );
    if kernel {
        wait_for_kernel_keys(&format!("{profile}/refresh_token#"), 0);
    }
    store.put("refresh_token", &big_b).await.unwrap();
    assert_eq!(
        store.get("refresh_token").await.unwrap(),
        Some(big_b.clone())
    );

    // Profiles do not collide.
    other.put("id_token", b"other profile").await.unwrap();
    assert_eq!(store.get("id_token").await.unwrap(), Some(token.clone()));
    assert_eq!(
        other.get("id_token").await.unwrap().as_deref(),
        Some(&b"other profile"[..])
    );
    assert_eq!(other.get("refresh_token").await.unwrap(), None);

    // delete is idempotent.
    store.delete("id_token").await.unwrap();
    store.delete("id_token").await.unwrap();
    assert_eq!(store.get("id_token").await.unwrap(), None);
    assert_eq!(store.get("client_key").await.unwrap(), Some(bin));

    // Logout forgets this profile only.
    store.delete_all().await.unwrap();
    for name in ["id_token", "client_key", "refresh_token"] {
        assert_eq!(
            store.get(name).await.unwrap(),
            None,
            "{name} survived delete_all"
        );
    }
    assert_eq!(
        other.get("id_token").await.unwrap().as_deref(),
        Some(&b"other profile"[..])
    );
    other.delete_all().await.unwrap();
    assert_eq!(other.get("id_token").await.unwrap(), None);
    if kernel {
        wait_for_kernel_keys(&format!("{profile}/"), 0);
        wait_for_kernel_keys(&format!("{profile}-b/"), 0);
    }
}

/// Counts the distinct kernel keys whose description contains `pattern` (as `keyctl show @s`
/// lists them), waiting up to 2 s for the key garbage collector to reach `want`.
fn wait_for_kernel_keys(pattern: &str, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let out = Command::new("keyctl")
            .args(["show", "@s"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut ids: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(pattern))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.len() == want {
            return want;
        }
        if Instant::now() > deadline {
            panic!(
                "expected {want} kernel keys matching {pattern:?}, found {}:\n{text}",
                ids.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn describe(r: &Result<Option<Vec<u8>>, StoreError>) -> String {
    match r {
        Ok(Some(v)) => format!("{} bytes", v.len()),
        Ok(None) => "missing".into(),
        Err(e) => format!("error: {e}"),
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn timing(samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "median {:.2} ms (min {:.2}, max {:.2}, n={})",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    )
}

fn report(what: &str, value: &str) {
    println!("report: {what}: {value}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The parent's side

fn in_child(test: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == test)
}

/// Fails (never skips) when a tool is missing, naming the Debian package.
fn require(tool: &str, package: &str) {
    if let Err(e) = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        panic!(
            "`{tool}` cannot be run ({e}): install the Debian package `{package}` \
             (these tests need: apt-get install -y {PACKAGES})"
        );
    }
}

#[cfg(unix)]
fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Runs this test binary, filtered to `test`, under `wrapper` (a command that ends by running
/// its trailing arguments; none: run directly), and asserts that it passed. The child starts with
/// no session bus address (`dbus-run-session` sets its own) and a private, empty `HOME`,
/// `XDG_RUNTIME_DIR` and `XDG_*_HOME`.
fn run_child(test: &str, wrapper: &[&str], env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let home = tempfile::tempdir().unwrap();
    let runtime_dir = home.path().join("run");
    for dir in ["", "run", "data", "state", "config", "cache"] {
        make_private(&home.path().join(dir));
    }
    let (program, wrapper_args) = match wrapper.split_first() {
        Some((program, rest)) => (program.to_string(), rest),
        None => (exe.display().to_string(), &[][..]),
    };
    let mut cmd = Command::new(&program);
    cmd.args(wrapper_args);
    if !wrapper.is_empty() {
        cmd.arg(&exe);
    }
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let ok = status.is_some_and(|s| s.success());
    assert!(
        ok,
        "child `{test}` under {wrapper:?} {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        match status {
            Some(s) => format!("failed: {s}"),
            None => format!("did not finish within {} s", CHILD_TIMEOUT.as_secs()),
        }
    );
    // The child must have run the test, not filtered it away.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "child `{test}` ran no test:\n{stdout}"
    );
    let label = if wrapper.is_empty() {
        "no wrapper".to_string()
    } else {
        wrapper.join(" ")
    };
    println!("{test} (under {label}):");
    // libtest prints "test NAME ... " right before the test's own output, on the same line.
    for line in stdout.lines() {
        if let Some((_, report)) = line.split_once("report: ") {
            println!("  {report}");
        }
    }
}
