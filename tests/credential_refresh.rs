//! `hoop_kube::login::refresh::credential` against the real OpenID provider (npm
//! `oidc-provider`, run by `tests/idp/idp.mjs`), with the file secret store in a temporary
//! directory: the cached token needs no network, an expired one is refreshed exactly once, 40
//! concurrent callers (tokio tasks, and 8 OS processes) cause exactly one refresh, a revoked
//! session asks for a login in one line, and a token within the safety margin is never handed out.
//!
//! **Counting refreshes.** The client talks to the IdP through a small HTTP forward proxy in this
//! file that records every request line (reqwest's own `Proxy::http`), so the number of
//! `POST /token` requests that reached the IdP is counted on the wire, without changing the IdP.
//! Independently, the IdP's own refresh-token rotation proves single flight: a refresh token
//! presented twice makes oidc-provider revoke the whole grant, so after the concurrent calls
//! the stored refresh token must still be accepted by the IdP.
//!
//! The 8-process test re-runs itself as child processes (driven by the environment variable
//! `HOOP_KUBE_CRED_WORKER`).

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::idp::{decode_jwt, Idp, CLIENT_ID};
use hoop_kube::login::device::{self, Provider};
use hoop_kube::login::exec_credential::{ApiVersion, ExecInfo};
use hoop_kube::login::profile::Profile;
use hoop_kube::login::refresh::{
    self, credential, CredentialError, Deps, LoginReason, ID_TOKEN, REFRESH_TOKEN,
};
use hoop_kube::login::store::{Backend, SecretStore};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROFILE: &str = "dev";
const WORKER_ENV: &str = "HOOP_KUBE_CRED_WORKER";
const PROCESSES: usize = 8;
const TASKS_PER_PROCESS: usize = 5;

// ---------------------------------------------------------------------------------------------
// A counting HTTP forward proxy

/// An HTTP/1.1 forward proxy for plain-http targets on loopback. It rewrites the absolute-form
/// request line to origin-form, adds `Connection: close` (one request per connection, so the
/// first request line is the only one), records `METHOD /path`, then pipes bytes both ways.
struct CountingProxy {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start() -> CountingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let log = log.clone();
            tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let _ = proxy_one(conn, log).await;
                    });
                }
            })
        };
        CountingProxy { url, log, task }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Token-endpoint requests that reached the IdP (every one here is a refresh: the logins of
    /// these tests do not go through the proxy).
    fn token_posts(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.as_str() == "POST /token")
            .count()
    }

    /// A client like hoop-kube's ([`refresh::http_client`]), through this proxy.
    fn client(&self) -> reqwest::Client {
        proxied_client(&self.url)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn proxied_client(proxy_url: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .proxy(reqwest::Proxy::http(proxy_url).unwrap())
        .build()
        .unwrap()
}

async fn proxy_one(
    mut client: tokio::net::TcpStream,
    log: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        assert!(buf.len() < 64 * 1024, "request head too large");
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let (method, target, version) = (
        request_line.next().unwrap(),
        request_line.next().unwrap(),
        request_line.next().unwrap(),
    );
    let target = url::Url::parse(target).expect("absolute-form target");
    let path = match target.query() {
        Some(q) => format!("{}?{q}", target.path()),
        None => target.path().to_string(),
    };
    log.lock()
        .unwrap()
        .push(format!("{method} {}", target.path()));
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "connection" | "proxy-connection" | "keep-alive"
        ) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let addr = format!(
        "{}:{}",
        target.host_str().unwrap(),
        target.port_or_known_default().unwrap()
    );
    let mut upstream = tokio::net::TcpStream::connect(addr).await?;
    upstream.write_all(out.as_bytes()).await?;
    upstream.write_all(&buf[head_end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Test bed

struct Bed {
    idp: Idp,
    dir: tempfile::TempDir,
    profile: Profile,
    proxy: CountingProxy,
    /// The refresh token the login stored.
    login_refresh_token: String,
}

impl Bed {
    fn secrets_dir(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    fn lock_dir(&self) -> PathBuf {
        self.dir.path().join("locks")
    }

    fn store(&self) -> SecretStore {
        SecretStore::new_file_in(PROFILE, self.secrets_dir()).unwrap()
    }

    /// Deps as a separate `hoop-kube credential` process would have them (its own store handle),
    /// talking to the IdP through the counting proxy.
    fn deps(&self) -> Deps {
        Deps::new(self.store(), self.lock_dir()).with_http(self.proxy.client())
    }

    async fn stored(&self, name: &str) -> Option<String> {
        self.store()
            .get(name)
            .await
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
    }

    /// Replace the cached ID token with one that has `ttl` seconds left (negative: expired).
    async fn cache_id_token(&self, ttl: i64) -> String {
        let token = self
            .idp
            .token_with(json!({ "sub": "alice", "aud": CLIENT_ID, "ttl": ttl }))
            .await;
        self.store().put(ID_TOKEN, token.as_bytes()).await.unwrap();
        token
    }

    /// Does the IdP still accept the stored refresh token? (Consumes it: call last.)
    async fn stored_refresh_token_is_alive(&self) -> bool {
        let rt = self
            .stored(REFRESH_TOKEN)
            .await
            .expect("a stored refresh token");
        let (status, body) = self.idp.try_refresh(&rt).await;
        assert!(
            status == 200 || body["error"] == "invalid_grant",
            "{status} {body}"
        );
        status == 200
    }
}

/// An IdP (with `env`), a real device login of alice through `hoop_kube::login::device` (not
/// through the proxy), its tokens stored with `refresh::save_tokens`, and a profile for it.
async fn bed_with(env: &[(&str, &str)]) -> Bed {
    let idp = Idp::start_with_env(env).await;
    let dir = tempfile::tempdir().unwrap();
    let http = refresh::http_client().unwrap();
    let provider = Provider::discover(&http, &idp.issuer)
        .await
        .expect("discovery");
    let auth = device::start(&http, &provider, CLIENT_ID, &["groups"])
        .await
        .expect("device authorization");
    idp.approve(&auth.user_code, "alice").await;
    let tokens = device::poll(&http, &provider, CLIENT_ID, &auth, |_| {})
        .await
        .expect("login");
    let store = SecretStore::new_file_in(PROFILE, dir.path().join("secrets")).unwrap();
    refresh::save_tokens(&store, &tokens).await.unwrap();

    let mut profile = Profile::new(PROFILE, "https://relay.example", &idp.issuer).unwrap();
    profile.client_id = CLIENT_ID.into();
    profile.token_store = Backend::File;
    let proxy = CountingProxy::start().await;
    let login_refresh_token = tokens.refresh_token.unwrap().expose().to_string();
    Bed {
        idp,
        dir,
        profile,
        proxy,
        login_refresh_token,
    }
}

async fn bed() -> Bed {
    bed_with(&[]).await
}

fn v1() -> ExecInfo {
    ExecInfo::default()
}

/// The ExecCredential's token, after checking its shape.
fn token_of(out: &str, version: ApiVersion) -> String {
    let v: Value = serde_json::from_str(out).unwrap();
    assert_eq!(v["apiVersion"], version.as_str());
    assert_eq!(v["kind"], "ExecCredential");
    let token = v["status"]["token"].as_str().unwrap().to_string();
    let (_, claims) = decode_jwt(&token);
    let exp = claims["exp"].as_i64().unwrap();
    let announced =
        chrono::DateTime::parse_from_rfc3339(v["status"]["expirationTimestamp"].as_str().unwrap())
            .unwrap();
    assert_eq!(
        announced.timestamp(),
        exp - 60,
        "expirationTimestamp = exp - 60 s"
    );
    assert!(
        announced.timestamp() > chrono::Utc::now().timestamp(),
        "never in the past"
    );
    token
}

fn dead_issuer() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn cached_token_is_printed_without_network() {
    let b = bed().await;
    let cached = b.cache_id_token(300).await;

    // Through the proxy, with the real issuer: no request at all.
    let out = credential(&b.profile, &v1(), &b.deps()).await.unwrap();
    assert_eq!(token_of(&out, ApiVersion::V1), cached);
    let info = ExecInfo {
        api_version: ApiVersion::V1beta1,
        interactive: true,
        cluster: None,
    };
    let out = credential(&b.profile, &info, &b.deps()).await.unwrap();
    assert_eq!(token_of(&out, ApiVersion::V1beta1), cached);
    assert_eq!(
        b.proxy.requests(),
        Vec::<String>::new(),
        "no network on the fast path"
    );

    // With the identity provider gone (its process killed), and the default client: still
    // served.
    let Bed {
        idp, dir, profile, ..
    } = b;
    let issuer = idp.issuer.clone();
    idp.stop().await;
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    assert!(
        refresh::http_client()
            .unwrap()
            .get(&discovery)
            .send()
            .await
            .is_err(),
        "the IdP is really gone"
    );
    let store = SecretStore::new_file_in(PROFILE, dir.path().join("secrets")).unwrap();
    let deps = Deps::new(store, dir.path().join("locks"));
    let out = credential(&profile, &v1(), &deps).await.unwrap();
    assert_eq!(token_of(&out, ApiVersion::V1), cached);
    assert!(
        !dir.path().join("locks").exists(),
        "the fast path does not even take the lock"
    );
}

#[tokio::test]
async fn expired_token_is_refreshed_exactly_once() {
    let b = bed().await;
    let old = b.cache_id_token(-10).await;

    let out = credential(&b.profile, &v1(), &b.deps()).await.unwrap();
    let token = token_of(&out, ApiVersion::V1);
    assert_ne!(token, old);
    let (_, claims) = decode_jwt(&token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], b.idp.issuer.as_str());
    assert_eq!(
        b.proxy.token_posts(),
        1,
        "one refresh: {:?}",
        b.proxy.requests()
    );
    assert_eq!(
        b.stored(ID_TOKEN).await.as_deref(),
        Some(token.as_str()),
        "the new ID token is stored"
    );
    let rt = b.stored(REFRESH_TOKEN).await.unwrap();
    assert_ne!(
        rt, b.login_refresh_token,
        "the rotated refresh token is stored"
    );

    // The next call is served from the cache.
    let again = credential(&b.profile, &v1(), &b.deps()).await.unwrap();
    assert_eq!(token_of(&again, ApiVersion::V1), token);
    assert_eq!(b.proxy.token_posts(), 1, "{:?}", b.proxy.requests());
    assert!(b.stored_refresh_token_is_alive().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_tasks_refresh_once() {
    let b = Arc::new(bed().await);
    b.cache_id_token(-10).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (b, barrier) = (b.clone(), barrier.clone());
            tokio::spawn(async move {
                let deps = b.deps();
                barrier.wait().await;
                let began = Instant::now();
                let out = credential(&b.profile, &v1(), &deps).await;
                (out, began.elapsed())
            })
        })
        .collect();
    let mut tokens = Vec::new();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (out, took) = t.await.unwrap();
        slowest = slowest.max(took);
        tokens.push(token_of(
            &out.expect("every caller gets a token"),
            ApiVersion::V1,
        ));
    }
    eprintln!(
        "40 concurrent calls: the slowest took {slowest:?}; IdP saw {:?}",
        b.proxy.requests()
    );
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all callers got the same token"
    );
    assert_eq!(
        b.proxy.token_posts(),
        1,
        "exactly one refresh at the IdP: {:?}",
        b.proxy.requests()
    );
    assert_eq!(
        b.stored(ID_TOKEN).await.as_deref(),
        Some(tokens[0].as_str())
    );
    // Rotation as a second witness: a refresh token used twice would have revoked the grant.
    assert!(
        b.stored_refresh_token_is_alive().await,
        "the grant survived"
    );
}

/// What the parent tells each worker process.
#[derive(serde::Serialize, serde::Deserialize)]
struct WorkerPlan {
    issuer: String,
    secrets_dir: PathBuf,
    lock_dir: PathBuf,
    proxy_url: String,
    sync_dir: PathBuf,
    index: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_callers_in_eight_processes_refresh_once() {
    if let Some(plan_path) = std::env::var_os(WORKER_ENV) {
        return credential_worker(plan_path).await;
    }
    let b = bed().await;
    b.cache_id_token(-10).await;
    let sync_dir = b.dir.path().join("sync");
    std::fs::create_dir(&sync_dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for index in 0..PROCESSES {
        let plan = WorkerPlan {
            issuer: b.idp.issuer.clone(),
            secrets_dir: b.secrets_dir(),
            lock_dir: b.lock_dir(),
            proxy_url: b.proxy.url.clone(),
            sync_dir: sync_dir.clone(),
            index,
        };
        let plan_path = sync_dir.join(format!("plan-{index}.json"));
        std::fs::write(&plan_path, serde_json::to_vec(&plan).unwrap()).unwrap();
        let child = tokio::process::Command::new(&exe)
            .args([
                "--exact",
                "forty_callers_in_eight_processes_refresh_once",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, &plan_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        children.push(child);
    }
    // Start them all at once, once every worker is set up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..PROCESSES).any(|i| !sync_dir.join(format!("ready-{i}")).exists()) {
        assert!(Instant::now() < deadline, "workers not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let began = Instant::now();
    std::fs::write(sync_dir.join("go"), b"").unwrap();
    for (i, child) in children.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("worker finishes")
            .unwrap();
        assert!(
            out.status.success(),
            "worker {i} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "worker {i} really ran"
        );
    }
    let elapsed = began.elapsed();
    let mut tokens = Vec::new();
    let mut pids = std::collections::BTreeSet::new();
    for i in 0..PROCESSES {
        let r: Value = serde_json::from_slice(
            &std::fs::read(sync_dir.join(format!("result-{i}.json"))).unwrap(),
        )
        .unwrap();
        pids.insert(r["pid"].as_u64().unwrap());
        for out in r["outputs"].as_array().unwrap() {
            tokens.push(token_of(out.as_str().unwrap(), ApiVersion::V1));
        }
    }
    eprintln!(
        "{} callers in {} processes took {elapsed:?}; IdP saw {:?}",
        tokens.len(),
        pids.len(),
        b.proxy.requests()
    );
    assert_eq!(pids.len(), PROCESSES, "separate OS processes");
    assert_eq!(tokens.len(), PROCESSES * TASKS_PER_PROCESS);
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all callers got the same token"
    );
    assert_eq!(
        b.proxy.token_posts(),
        1,
        "exactly one refresh at the IdP: {:?}",
        b.proxy.requests()
    );
    assert_eq!(
        b.stored(ID_TOKEN).await.as_deref(),
        Some(tokens[0].as_str())
    );
    assert!(
        b.stored_refresh_token_is_alive().await,
        "the grant survived"
    );
}

/// One worker process of `forty_callers_in_eight_processes_refresh_once` (that test re-runs
/// itself with `HOOP_KUBE_CRED_WORKER` set): its own store handles, lock attempts and HTTP
/// client, `TASKS_PER_PROCESS` concurrent calls.
async fn credential_worker(plan_path: std::ffi::OsString) {
    let plan: WorkerPlan = serde_json::from_slice(&std::fs::read(plan_path).unwrap()).unwrap();
    let mut profile = Profile::new(PROFILE, "https://relay.example", &plan.issuer).unwrap();
    profile.client_id = CLIENT_ID.into();
    profile.token_store = Backend::File;
    let profile = Arc::new(profile);
    let deps: Vec<Arc<Deps>> = (0..TASKS_PER_PROCESS)
        .map(|_| {
            let store = SecretStore::new_file_in(PROFILE, &plan.secrets_dir).unwrap();
            Arc::new(Deps::new(store, &plan.lock_dir).with_http(proxied_client(&plan.proxy_url)))
        })
        .collect();
    std::fs::write(plan.sync_dir.join(format!("ready-{}", plan.index)), b"").unwrap();
    while !plan.sync_dir.join("go").exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let tasks: Vec<_> = deps
        .into_iter()
        .map(|d| {
            let profile = profile.clone();
            tokio::spawn(async move { credential(&profile, &v1(), &d).await })
        })
        .collect();
    let mut outputs = Vec::new();
    for t in tasks {
        outputs.push(
            t.await
                .unwrap()
                .unwrap_or_else(|e| panic!("worker {}: {e}", plan.index)),
        );
    }
    let result = json!({ "pid": std::process::id(), "outputs": outputs });
    std::fs::write(
        plan.sync_dir.join(format!("result-{}.json", plan.index)),
        result.to_string(),
    )
    .unwrap();
}

#[tokio::test]
async fn revoked_refresh_token_needs_login_in_one_line() {
    let b = bed().await;
    // Revoke the grant the way a stolen token would: rotate once, then present the old token
    // again (oidc-provider then revokes the whole grant, the newest refresh token included).
    let next = b.idp.refresh(&b.login_refresh_token).await;
    let rt1 = next["refresh_token"].as_str().unwrap();
    let (status, _) = b.idp.try_refresh(&b.login_refresh_token).await;
    assert_eq!(status, 400);
    b.store().put(REFRESH_TOKEN, rt1.as_bytes()).await.unwrap();
    let old = b.cache_id_token(-10).await;

    let e = credential(&b.profile, &v1(), &b.deps()).await.unwrap_err();
    assert!(
        matches!(
            e,
            CredentialError::NeedsLogin {
                reason: LoginReason::Expired,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "hoop-kube: the session for profile \"dev\" has expired; run: hoop-kube login --profile dev");
    assert_eq!(b.proxy.token_posts(), 1, "{:?}", b.proxy.requests());
    assert_eq!(
        b.stored(REFRESH_TOKEN).await,
        None,
        "the dead refresh token is forgotten"
    );
    assert_eq!(b.stored(ID_TOKEN).await.as_deref(), Some(old.as_str()));

    // Later calls fail at once, offline; an interactive one leaves the login to the CLI.
    let e = credential(&b.profile, &v1(), &b.deps()).await.unwrap_err();
    assert!(
        matches!(
            e,
            CredentialError::NeedsLogin {
                reason: LoginReason::Expired,
                ..
            }
        ),
        "{e:?}"
    );
    let info = ExecInfo {
        interactive: true,
        ..v1()
    };
    let e = credential(&b.profile, &info, &b.deps()).await.unwrap_err();
    assert!(
        matches!(
            e,
            CredentialError::InteractiveLoginRequired {
                reason: LoginReason::Expired,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        b.proxy.token_posts(),
        1,
        "no more refreshes: {:?}",
        b.proxy.requests()
    );
}

#[tokio::test]
async fn token_within_the_margin_is_refreshed_not_handed_out() {
    let b = bed().await;
    let close = b.cache_id_token(30).await; // valid, but within the 60 s margin
    let out = credential(&b.profile, &v1(), &b.deps()).await.unwrap();
    let token = token_of(&out, ApiVersion::V1);
    assert_ne!(token, close);
    assert_eq!(b.proxy.token_posts(), 1);
    assert!(b.stored_refresh_token_is_alive().await);
}

#[tokio::test]
async fn a_provider_whose_tokens_outlive_no_margin_gets_no_token_handed_out() {
    // ID tokens of 45 s: even a freshly refreshed one expires within the 60 s margin.
    let b = bed_with(&[("IDP_ID_TOKEN_TTL", "45")]).await;
    b.cache_id_token(-10).await;
    let e = credential(&b.profile, &v1(), &b.deps()).await.unwrap_err();
    assert!(
        matches!(
            e,
            CredentialError::ShortLived {
                margin_secs: 60,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "hoop-kube: the identity provider issued profile \"dev\" an ID token with 4"
        ),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    // The rotated refresh token was stored all the same: the session is intact.
    assert_eq!(b.proxy.token_posts(), 1);
    assert!(b.stored_refresh_token_is_alive().await);
}

#[tokio::test]
async fn an_unreachable_provider_is_one_line_and_keeps_the_session() {
    let b = bed().await;
    b.cache_id_token(-10).await;
    let mut offline = b.profile.clone();
    offline.issuer = dead_issuer();
    let e = credential(&offline, &v1(), &Deps::new(b.store(), b.lock_dir()))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CredentialError::Refresh { .. }), "{e:?}");
    assert!(msg.starts_with("hoop-kube: cannot refresh the session for profile \"dev\": could not reach the identity provider at "), "{msg}");
    assert!(!msg.contains('\n'));
    assert_eq!(
        b.stored(REFRESH_TOKEN).await.as_deref(),
        Some(b.login_refresh_token.as_str()),
        "nothing forgotten"
    );
    // Back online: it refreshes.
    let out = credential(&b.profile, &v1(), &b.deps()).await.unwrap();
    token_of(&out, ApiVersion::V1);
}

/// The cached path's cost, in this process (file store). Printed, and loosely bounded.
#[tokio::test]
async fn cached_path_timing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SecretStore::new_file_in(PROFILE, dir.path().join("secrets")).unwrap();
    // A realistic token size (the test IdP's are ~900 bytes; real ones with groups, 1–2 KiB).
    let exp = chrono::Utc::now().timestamp() + 300;
    let issuer = dead_issuer();
    let payload =
        json!({"iss": issuer, "sub": "alice", "exp": exp, "groups": vec!["group-name"; 60]})
            .to_string();
    let b64 =
        |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let token = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256"}"#),
        b64(&payload),
        "s".repeat(342)
    );
    store.put(ID_TOKEN, token.as_bytes()).await.unwrap();
    store.put(REFRESH_TOKEN, b"rt").await.unwrap();
    let mut profile = Profile::new(PROFILE, "https://relay.example", &issuer).unwrap();
    profile.token_store = Backend::File;
    let deps = Deps::new(store, dir.path().join("locks"));
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let out = credential(&profile, &v1(), &deps).await.unwrap();
        times.push(t.elapsed());
        assert!(out.contains(&token));
    }
    times.sort();
    eprintln!(
        "cached path, file store, {} byte token: median {:?}, p90 {:?}, max {:?}",
        token.len(),
        times[100],
        times[180],
        times[199]
    );
    assert!(
        times[100] < Duration::from_millis(50),
        "median {:?}",
        times[100]
    );
}
