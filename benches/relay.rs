//! End-to-end cost of the relay, on loopback, against the bundled simulator.
//!
//! Run: `cargo build --release && cargo bench --bench relay` (about 100 s). It prints a Markdown
//! table, PASS/FAIL against the README's targets, and writes the same as JSON to
//! `<target dir>/bench-relay.json`. The load average before and after is part of the output:
//! on a small or busy machine, read the figures with it.
//!
//! What it measures, in one run:
//!
//! 1. `GET /api/v1/namespaces/default/pods/p0`: p50/p99 latency at concurrency 1 (200 warm-up,
//!    then 2000 sequential requests) and requests/s at concurrency 16 (5 s), over HTTP/2,
//!    directly against the simulator (admin token) vs through forwarder + relay (alice's token),
//!    with the whole stack in this process (`hoop_kube::demo::start`).
//! 2. `LIST /api/v1/namespaces/default/pods?limit=500` with 500 pods: the same figures with fewer
//!    iterations (20 warm-up + 200, and 3 s at concurrency 16).
//! 3. A `kubectl logs -f`-like stream (`pods/NAME/log?follow=true` read to the end) of two
//!    finished containers, direct vs relayed, in MB/s (median of 3 reads after one warm-up):
//!    40,000 lines of 1 KiB (41 MB), and `seq 100000` (short lines). The short-lines stream is
//!    read over HTTP/1.1 by this client, because hyper's own HTTP/2 client drops a connection
//!    that buffers too many tiny DATA frames (`ENHANCE_YOUR_CALM`, "too_many_data_frames");
//!    the forwarder's and the relay's upstream hops are HTTP/2 regardless.
//! 4. The relay's added resident memory (VmRSS) while holding idle watches
//!    (`/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=600`). To isolate the relay this
//!    part runs the release `hoop-kube` binary as separate processes — `hoop-kube sim` and, per
//!    run, a fresh `hoop-kube relay --config relay.yaml` (PKI and dev OIDC issuer from this
//!    process) — and opens the watches straight at the relay with alice's client certificate
//!    and token: 200 and then 1,000 over HTTP/2 (100 streams per connection; hyper servers allow
//!    200), and 200 and then 1,000 over as many HTTP/1.1 connections. It waits up to 15 s for
//!    every response header, holds everything, and compares VmRSS before and after. The same
//!    1,000 HTTP/2 watches straight at the simulator process are the control. The child
//!    processes get their open-files soft limit raised to the hard limit; the HTTP/1.1 runs are
//!    skipped with a message if this process's own limit is below 1,200.
//!
//! Targets (README): the relay adds ≤ 1 ms at p50 to a single GET; the relayed logs stream runs
//! at ≥ half the direct rate; 1,000 idle watches add < 100 MB RSS to the relay (and all of them
//! must actually be open). A stream that breaks or watches that never open are listed under
//! "Failures" and FAIL their target; the exit status is non-zero only when the bench itself could
//! not measure (e.g. the release binary is missing).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, HOST};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinSet;

use hoop_kube::pki::{self, Ca, Leaf};

type R<T> = Result<T, String>;
type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

const NS_PODS: &str = "/api/v1/namespaces/default/pods";
const GET_PATH: &str = "/api/v1/namespaces/default/pods/p0";
const LIST_PATH: &str = "/api/v1/namespaces/default/pods?limit=500";
const WATCH_PATH: &str = "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=600";
const PODS: usize = 500;
const WATCHES: usize = 1000;
/// Streams per HTTP/2 connection for the watches (hyper servers allow 200).
const STREAMS_PER_CONN: usize = 100;
/// How long to wait for every watch's response headers.
const WATCH_WAIT: Duration = Duration::from_secs(15);
const MB: f64 = 1_000_000.0;

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Clone)]
struct Row {
    measurement: String,
    unit: &'static str,
    direct: Option<f64>,
    relayed: Option<f64>,
    /// How the relayed figure compares ("+0.42 ms", "-35 %").
    cost: String,
    note: String,
}

struct Check {
    target: &'static str,
    measured: String,
    pass: Option<bool>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    checks: Vec<Check>,
    /// What the relay got wrong while being measured (a FAIL, not a broken bench).
    failures: Vec<String>,
    /// What kept the bench from measuring at all (exit status 1).
    errors: Vec<String>,
}

impl Report {
    fn row(&mut self, measurement: impl Into<String>, unit: &'static str, direct: Option<f64>, relayed: Option<f64>, cost: String, note: impl Into<String>) {
        self.rows.push(Row { measurement: measurement.into(), unit, direct, relayed, cost, note: note.into() });
    }
    fn error(&mut self, section: &str, e: String) {
        eprintln!("  !! {section}: {e}");
        self.errors.push(format!("{section}: {e}"));
    }
    fn failure(&mut self, what: &str, e: String) {
        eprintln!("  !! {what}: {e}");
        self.failures.push(format!("{what}: {e}"));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fmt_num(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if unit == "ms" => format!("{v:.3} ms"),
        Some(v) if unit == "req/s" => format!("{v:.0} req/s"),
        Some(v) if unit == "MB/s" => format!("{v:.1} MB/s"),
        Some(v) if unit == "MB" => format!("{v:.1} MB"),
        Some(v) => format!("{v:.2} {unit}"),
    }
}

fn pct_change(direct: f64, relayed: f64) -> String {
    if direct == 0.0 {
        return String::new();
    }
    format!("{:+.0} %", (relayed / direct - 1.0) * 100.0)
}

fn loadavg() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let parts: Vec<&str> = l.split_whitespace().take(3).collect();
    if parts.len() == 3 {
        format!("load average: {}, {}, {}", parts[0], parts[1], parts[2])
    } else {
        "load average: unknown".into()
    }
}

fn err_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

// ---------------------------------------------------------------------------------------------
// An HTTP/2 client against one endpoint

struct Endpoint {
    base: String,
    token: String,
    client: HttpClient,
}

/// The relay's `agents:` section for the bench: limits on every agent, set high enough that
/// they are checked but never hit.
const BENCH_AGENTS: &str = "agents:\n  signing_key: agent-signing.key\n  limits:\n    - agent: \"*\"\n      requests_per_second: 100000\n      burst: 100000\n      max_mutating: 1000000\n      namespaces: [\"*\"]\n";

/// An endpoint for an agent context of the stack's kubeconfig: the relay itself, with the
/// agent's client certificate and token.
fn agent_endpoint(kube: &Value, context: &str) -> R<Endpoint> {
    use base64::Engine as _;
    let b64 = |v: &Value, what: &str| -> R<String> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().ok_or(format!("{context}: no {what}"))?).map_err(|e| format!("{context}: {what}: {e}"))?;
        String::from_utf8(bytes).map_err(|e| format!("{context}: {what}: {e}"))
    };
    let find = |list: &str| kube[list].as_array().and_then(|l| l.iter().find(|e| e["name"] == context)).cloned().ok_or(format!("no {list} entry {context}"));
    let (cluster, user) = (find("clusters")?, find("users")?);
    let ca = b64(&cluster["cluster"]["certificate-authority-data"], "certificate-authority-data")?;
    let leaf = pki::Leaf { cert_pem: b64(&user["user"]["client-certificate-data"], "client-certificate-data")?, key_pem: b64(&user["user"]["client-key-data"], "client-key-data")? };
    let tls = pki::client_config(Some(&ca), Some(&leaf), false).map_err(|e| format!("agent TLS config: {e}"))?;
    let token = user["user"]["token"].as_str().ok_or("no agent token")?.to_string();
    let base = cluster["cluster"]["server"].as_str().ok_or("no agent server")?.to_string();
    Ok(Endpoint { base, token, client: client_with(tls, true) })
}

fn client(ca_pem: &str, h2: bool) -> R<HttpClient> {
    let tls = pki::client_config(Some(ca_pem), None, false).map_err(|e| format!("client TLS config: {e}"))?;
    Ok(client_with(tls, h2))
}

fn client_with(tls: rustls::ClientConfig, h2: bool) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let b = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only();
    if h2 {
        Client::builder(TokioExecutor::new()).http2_only(true).build(b.enable_http2().wrap_connector(http))
    } else {
        Client::builder(TokioExecutor::new()).build(b.enable_http1().wrap_connector(http))
    }
}

impl Endpoint {
    fn request(&self, path: &str) -> R<Request<Empty<Bytes>>> {
        Request::get(format!("{}{}", self.base, path))
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())
    }

    async fn send(&self, path: &str) -> R<Response<Incoming>> {
        let resp = self.client.request(self.request(path)?).await.map_err(|e| format!("GET {}{path}: {}", self.base, err_chain(&e)))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return Err(format!("GET {}{path}: HTTP {status}: {}", self.base, String::from_utf8_lossy(&body[..body.len().min(300)])));
        }
        Ok(resp)
    }

    /// One request read to the end; the body size.
    async fn get(&self, path: &str) -> R<usize> {
        let resp = self.send(path).await?;
        let body = resp.into_body().collect().await.map_err(|e| format!("GET {path}: body: {}", err_chain(&e)))?.to_bytes();
        Ok(body.len())
    }
}

struct Latency {
    p50: Duration,
    p99: Duration,
    bytes: usize,
}

async fn latency(ep: &Endpoint, path: &str, warmup: usize, n: usize) -> R<Latency> {
    let mut bytes = 0;
    for _ in 0..warmup {
        bytes = ep.get(path).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        ep.get(path).await?;
        samples.push(t.elapsed());
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    Ok(Latency { p50: at(0.50), p99: at(0.99), bytes })
}

async fn throughput(ep: Arc<Endpoint>, path: &'static str, concurrency: usize, dur: Duration) -> R<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let ep = ep.clone();
        let done = done.clone();
        set.spawn(async move {
            while Instant::now() < deadline {
                ep.get(path).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// Read a streaming response to its end: (bytes, seconds).
async fn stream(ep: &Endpoint, path: &str) -> R<(u64, f64)> {
    let start = Instant::now();
    let resp = ep.send(path).await?;
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        let f = f.map_err(|e| format!("{path}: stream broke after {n} bytes: {}", err_chain(&e)))?;
        if let Some(d) = f.data_ref() {
            n += d.len() as u64;
        }
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

// ---------------------------------------------------------------------------------------------
// Part 1–3: the in-process stack

async fn in_process(report: &mut Report) -> R<()> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let alice = |context: &str, agent: Option<&str>| hoop_kube::demo::User { subject: "alice".into(), groups: vec!["dev".into()], context: context.into(), agent: agent.map(str::to_string) };
    // alice, and an agent of hers (a minted credential, straight to the relay) whose session
    // has limits, so the agent path pays for everything it does in production.
    let users = vec![alice("demo-alice", None), alice("demo-agent", Some("bench"))];
    let stack = hoop_kube::demo::start_with(dir.path(), &users, hoop_kube::demo::Issuer::Dev, "127.0.0.1:0".parse().map_err(|_| "bad address")?, Some(BENCH_AGENTS))
        .await
        .map_err(|e| format!("starting the demo stack: {e}"))?;

    let read_json = |p: &Path| -> R<Value> {
        serde_json::from_str(&std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?).map_err(|e| format!("{}: {e}", p.display()))
    };
    let admin = read_json(&dir.path().join("sim/admin.kubeconfig"))?;
    let admin_token = admin["users"][0]["user"]["token"].as_str().ok_or("no admin token in sim/admin.kubeconfig")?.to_string();
    let sim_ca = std::fs::read_to_string(dir.path().join("sim/ca.crt")).map_err(|e| format!("sim/ca.crt: {e}"))?;
    let kube = read_json(&stack.kubeconfig)?;
    let alice_token = kube["users"]
        .as_array()
        .and_then(|us| us.iter().find(|u| u["name"] == "demo-alice"))
        .and_then(|u| u["user"]["token"].as_str())
        .ok_or("no demo-alice token in the stack kubeconfig")?
        .to_string();
    let fwd = stack.forwarders.get("alice").ok_or("no forwarder for alice")?;
    let agent = agent_endpoint(&kube, "demo-agent")?;

    let direct = Arc::new(Endpoint { base: stack.sim.url.clone(), token: admin_token.clone(), client: client(&sim_ca, true)? });
    let relayed = Arc::new(Endpoint { base: fwd.url.clone(), token: alice_token.clone(), client: client(&fwd.ca_pem, true)? });
    // HTTP/1.1 clients for the short-lines log stream (see below).
    let direct_h1 = Endpoint { base: stack.sim.url.clone(), token: admin_token, client: client(&sim_ca, false)? };
    let relayed_h1 = Endpoint { base: fwd.url.clone(), token: alice_token, client: client(&fwd.ca_pem, false)? };

    // 500 pods (p0 … p499), created through the API.
    eprintln!("creating {PODS} pods …");
    let post = Client::builder(TokioExecutor::new()).http2_only(true).build(
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(pki::client_config(Some(&sim_ca), None, false).map_err(|e| e.to_string())?)
            .https_only()
            .enable_http2()
            .build(),
    );
    let create = |pod: Value| {
        let post = post.clone();
        let url = format!("{}{NS_PODS}", direct.base);
        let token = direct.token.clone();
        async move {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let req = Request::post(url)
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(Bytes::from(pod.to_string())))
                .map_err(|e| e.to_string())?;
            let resp = post.request(req).await.map_err(|e| format!("create pod {name}: {}", err_chain(&e)))?;
            let status = resp.status();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            if !status.is_success() {
                return Err(format!("create pod {name}: HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
            }
            Ok::<_, String>(())
        }
    };
    for i in 0..PODS {
        create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}"), "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        .await?;
    }

    // Sanity: both paths see the same objects.
    let (a, b) = (direct.get(GET_PATH).await?, relayed.get(GET_PATH).await?);
    eprintln!("GET p0: {a} bytes direct, {b} bytes relayed");

    // 1. GET one pod.
    eprintln!("GET latency (c=1) …");
    let gd = latency(&direct, GET_PATH, 200, 2000).await?;
    let gr = latency(&relayed, GET_PATH, 200, 2000).await?;
    let added = ms(gr.p50) - ms(gd.p50);
    report.row("GET pod — p50 latency (c=1, 2000 req)", "ms", Some(ms(gd.p50)), Some(ms(gr.p50)), format!("{added:+.3} ms"), format!("{} B body", gd.bytes));
    report.row("GET pod — p99 latency (c=1, 2000 req)", "ms", Some(ms(gd.p99)), Some(ms(gr.p99)), format!("{:+.3} ms", ms(gr.p99) - ms(gd.p99)), "");
    report.checks.push(Check { target: "relay adds ≤ 1 ms at p50 to a single GET", measured: format!("{added:+.3} ms"), pass: Some(added <= 1.0) });
    // The same GET by an agent: certificate ↔ token ↔ live session, narrowed policy, limits.
    eprintln!("GET latency as an agent (c=1) …");
    let ga = latency(&agent, GET_PATH, 200, 2000).await?;
    let added_agent = ms(ga.p50) - ms(gd.p50);
    report.row("GET pod as an agent — p50 latency (c=1, 2000 req)", "ms", Some(ms(gd.p50)), Some(ms(ga.p50)), format!("{added_agent:+.3} ms"), "agent credential straight to the relay; session limits on");
    report.checks.push(Check { target: "relay adds ≤ 1 ms at p50 to an agent's GET", measured: format!("{added_agent:+.3} ms"), pass: Some(added_agent <= 1.0) });
    eprintln!("GET throughput (c=16, 5 s each) …");
    let td = throughput(direct.clone(), GET_PATH, 16, Duration::from_secs(5)).await?;
    let tr = throughput(relayed.clone(), GET_PATH, 16, Duration::from_secs(5)).await?;
    report.row("GET pod — throughput (c=16, 5 s)", "req/s", Some(td), Some(tr), pct_change(td, tr), "one HTTP/2 connection");
    let ta = throughput(Arc::new(agent), GET_PATH, 16, Duration::from_secs(5)).await?;
    report.row("GET pod as an agent — throughput (c=16, 5 s)", "req/s", Some(td), Some(ta), pct_change(td, ta), "one HTTP/2 connection");

    // 2. LIST 500 pods.
    eprintln!("LIST latency (c=1) …");
    let ld = latency(&direct, LIST_PATH, 20, 200).await?;
    let lr = latency(&relayed, LIST_PATH, 20, 200).await?;
    report.row("LIST 500 pods — p50 latency (c=1, 200 req)", "ms", Some(ms(ld.p50)), Some(ms(lr.p50)), format!("{:+.3} ms", ms(lr.p50) - ms(ld.p50)), format!("{} kB body", ld.bytes / 1000));
    report.row("LIST 500 pods — p99 latency (c=1, 200 req)", "ms", Some(ms(ld.p99)), Some(ms(lr.p99)), format!("{:+.3} ms", ms(lr.p99) - ms(ld.p99)), "");
    eprintln!("LIST throughput (c=16, 3 s each) …");
    let td = throughput(direct.clone(), LIST_PATH, 16, Duration::from_secs(3)).await?;
    let tr = throughput(relayed.clone(), LIST_PATH, 16, Duration::from_secs(3)).await?;
    report.row("LIST 500 pods — throughput (c=16, 3 s)", "req/s", Some(td), Some(tr), pct_change(td, tr), format!("{:.0} / {:.0} MB/s", td * ld.bytes as f64 / MB, tr * ld.bytes as f64 / MB));

    // 3. logs -f of finished containers.
    let line = "x".repeat(1023);
    let outer: Vec<String> = (1..=200).map(|i| i.to_string()).collect();
    let outer = outer.join(" ");
    let long_script = format!("L={line}; for a in {outer}; do for b in {outer}; do echo $L; done; done");
    // The short-lines stream is read over HTTP/1.1 by this client: it arrives as one tiny HTTP/2
    // DATA frame per line, and hyper's HTTP/2 client (h2 ≥ 0.4.13) closes the whole connection
    // with ENHANCE_YOUR_CALM "too_many_data_frames" once ~10,000 small frames are buffered
    // unread. The relay's and the forwarder's own upstream hops are still HTTP/2.
    let workloads = [
        ("logs-long", long_script, "logs -f, 40,000 × 1 KiB lines", true),
        ("logs-seq", "seq 100000".to_string(), "logs -f, `seq 100000` (short lines; client on HTTP/1.1)", false),
    ];
    for (name, script, _, _) in &workloads {
        create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}]}}))
        .await?;
    }
    let state = stack.sim.state.clone();
    for (name, _, _, _) in &workloads {
        let key = hoop_kube::sim::store::Key { resource: "/pods".into(), namespace: "default".into(), name: name.to_string() };
        let t = Instant::now();
        loop {
            let pod = state.store.txn().get(&key).ok_or_else(|| format!("pod {name} vanished"))?;
            let rt = state.pods.get(&pod).ok_or_else(|| format!("pod {name} has no runtime"))?;
            let c = rt.containers.first().ok_or_else(|| format!("pod {name} has no container"))?;
            if let Some(code) = *c.exited.borrow() {
                if code != 0 {
                    return Err(format!("pod {name}'s container exited with {code}"));
                }
                eprintln!("pod {name}: {} log lines written in {:.1} s", c.log.len(), t.elapsed().as_secs_f64());
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err(format!("pod {name}'s container did not finish its output within 60 s ({} lines so far)", c.log.len()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (name, _, label, h2) in &workloads {
        eprintln!("{label} …");
        let path = format!("{NS_PODS}/{name}/log?follow=true");
        let eps: [(&str, &Endpoint); 2] = if *h2 { [("direct", &direct), ("relayed", &relayed)] } else { [("direct", &direct_h1), ("relayed", &relayed_h1)] };
        let mut rates = BTreeMap::new();
        let mut sizes = BTreeMap::new();
        let mut failed = Vec::new();
        for (which, ep) in eps {
            let mut runs = Vec::new();
            // One warm-up read, then the median of three.
            for i in 0..4 {
                match stream(ep, &path).await {
                    Ok((n, secs)) if i > 0 => {
                        sizes.insert(which, n);
                        runs.push(n as f64 / MB / secs);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failed.push(format!("{which}: {e}"));
                        break;
                    }
                }
            }
            if runs.len() == 3 {
                runs.sort_by(f64::total_cmp);
                rates.insert(which, runs[1]);
            }
        }
        let (d, r) = (rates.get("direct").copied(), rates.get("relayed").copied());
        if let (Some(bd), Some(br)) = (sizes.get("direct"), sizes.get("relayed")) {
            if bd != br {
                failed.push(format!("direct read {bd} bytes but relayed read {br}"));
            }
        }
        let size = sizes.values().next().map(|b| format!("{:.1} MB per read", *b as f64 / MB)).unwrap_or_default();
        let cost = match (d, r) {
            (Some(d), Some(r)) => pct_change(d, r),
            _ => String::new(),
        };
        let note = if failed.is_empty() { size } else { format!("{size}; **stream broke** (see Failures)") };
        for f in &failed {
            report.failure(label, f.clone());
        }
        report.row(format!("{label} — stream rate (median of 3)"), "MB/s", d, r, cost, note);
        report.checks.push(Check {
            target: if *h2 { "relayed logs ≥ ½ direct rate (1 KiB lines)" } else { "relayed logs ≥ ½ direct rate (short lines)" },
            measured: match (d, r) {
                (Some(d), Some(r)) => format!("{:.0} % of direct", r / d * 100.0),
                _ => "stream failed".into(),
            },
            pass: match (d, r) {
                (Some(d), Some(r)) => Some(r >= d / 2.0 && failed.is_empty()),
                (Some(_), None) => Some(false),
                _ => None,
            },
        });
    }

    stack.sim.task.abort();
    stack.relay.task.abort();
    for f in stack.forwarders.values() {
        f.task.abort();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Part 4: the relay as its own process

fn hoop_kube_binary() -> R<PathBuf> {
    let missing = |p: &Path| format!("the release binary {} is missing; run `cargo build --release` first (then `cargo bench --bench relay`)", p.display());
    if let Some(p) = option_env!("CARGO_BIN_EXE_hoop-kube") {
        let p = PathBuf::from(p);
        return if p.exists() { Ok(p) } else { Err(missing(&p)) };
    }
    // The bench executable lives in <target>/release/deps/; the binary in <target>/release/.
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench executable: {e}"))?;
    let p = exe.parent().and_then(Path::parent).map(|d| d.join("hoop-kube")).ok_or("cannot locate target/release")?;
    if p.exists() {
        Ok(p)
    } else {
        Err(missing(&p))
    }
}

/// The open-files soft limit of this process.
fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

fn rss_kb(pid: u32) -> R<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// A child `hoop-kube` process; killed on drop.
struct Proc {
    child: tokio::process::Child,
    pid: u32,
    url: String,
    what: &'static str,
}

impl Proc {
    /// Start `hoop-kube ARGS` (with the open-files soft limit raised to the hard limit) and wait
    /// for the stderr line that contains `marker` followed by its URL.
    async fn start(bin: &Path, args: &[&str], what: &'static str, marker: &str) -> R<Proc> {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c").arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#).arg(bin).args(args);
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id().ok_or_else(|| format!("{what} exited at once"))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen2 = seen.clone();
        let marker = marker.to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut tx = Some(tx);
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(pos) = l.find(&marker) {
                    let url = l[pos + marker.len()..].split_whitespace().next().unwrap_or_default().to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url);
                    }
                }
                let mut s = seen2.lock().unwrap_or_else(|p| p.into_inner());
                if s.len() < 50 {
                    s.push(l);
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(20), rx).await {
            Ok(Ok(url)) => Ok(Proc { child, pid, url, what }),
            _ => {
                let _ = child.start_kill();
                let out = seen.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
                Err(format!("{what} did not start within 20 s; its stderr:\n{out}"))
            }
        }
    }

    fn addr(&self) -> R<SocketAddr> {
        self.url.trim_start_matches("https://").parse().map_err(|_| format!("{} printed an unusable URL {:?}", self.what, self.url))
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

enum Proto {
    H2,
    H1,
}

/// What holding watches cost.
struct WatchRun {
    /// How many got `200` response headers.
    open: usize,
    /// The process's added VmRSS (kB) with all of them held.
    added_kb: i64,
    /// The process's VmRSS (kB) before.
    base_kb: u64,
    /// Until the last response headers arrived.
    took: Duration,
}

/// Open `count` watches at `addr` (HTTP/2: 100 streams per connection; HTTP/1.1: one
/// connection each), hold them, and read process `pid`'s resident size.
async fn hold_watches(addr: SocketAddr, tls: rustls::ClientConfig, token: &str, proto: &Proto, count: usize, pid: u32) -> R<WatchRun> {
    let before = rss_kb(pid)?;
    let mut tls = tls;
    tls.alpn_protocols = vec![match proto {
        Proto::H2 => b"h2".to_vec(),
        Proto::H1 => b"http/1.1".to_vec(),
    }];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?.to_owned();
    let connect = {
        let connector = connector.clone();
        move || {
            let connector = connector.clone();
            let name = name.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
                let _ = tcp.set_nodelay(true);
                connector.connect(name, tcp).await.map_err(|e| format!("TLS to {addr}: {e}"))
            }
        }
    };
    let auth = format!("Bearer {token}");
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + WATCH_WAIT;
    let mut set: JoinSet<R<Response<Incoming>>> = JoinSet::new();
    match proto {
        Proto::H2 => {
            for c in 0..count.div_ceil(STREAMS_PER_CONN) {
                let tls = connect().await?;
                let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                    .handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("HTTP/2 handshake: {}", err_chain(&e)))?;
                tokio::spawn(conn);
                for _ in 0..STREAMS_PER_CONN.min(count - c * STREAMS_PER_CONN) {
                    let mut send = send.clone();
                    let req = Request::get(format!("https://{addr}{WATCH_PATH}")).header(AUTHORIZATION, &auth).header(ACCEPT, "application/json").body(Empty::new()).map_err(|e| e.to_string())?;
                    set.spawn(async move {
                        send.ready().await.map_err(|e| format!("conn {c}: {}", err_chain(&e)))?;
                        send.send_request(req).await.map_err(|e| format!("conn {c}: {}", err_chain(&e)))
                    });
                }
            }
        }
        Proto::H1 => {
            // Handshakes in batches, so the listen backlog is never the limit.
            let permits = Arc::new(tokio::sync::Semaphore::new(64));
            for _ in 0..count {
                let permits = permits.clone();
                let connect = connect.clone();
                let req = Request::get(WATCH_PATH).header(HOST, addr.to_string()).header(AUTHORIZATION, &auth).header(ACCEPT, "application/json").body(Empty::new()).map_err(|e| e.to_string())?;
                set.spawn(async move {
                    let permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
                    let tls = connect().await?;
                    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls)).await.map_err(|e| format!("HTTP/1.1 handshake: {}", err_chain(&e)))?;
                    tokio::spawn(conn);
                    drop(permit);
                    send.send_request(req).await.map_err(|e| err_chain(&e))
                });
            }
        }
    }
    let mut held = Vec::with_capacity(count);
    let mut errors = Vec::new();
    let mut took = Duration::ZERO;
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(Ok(Ok(resp)))) if resp.status().is_success() => {
                held.push(resp);
                took = start.elapsed();
            }
            Ok(Some(Ok(Ok(resp)))) => errors.push(format!("HTTP {}", resp.status())),
            Ok(Some(Ok(Err(e)))) => errors.push(e),
            Ok(Some(Err(e))) => errors.push(e.to_string()),
            Ok(None) => break,
            Err(_) => {
                errors.push(format!("{} watches still had no response headers after {} s", set.len(), WATCH_WAIT.as_secs()));
                break;
            }
        }
    }
    if !errors.is_empty() {
        errors.dedup();
        eprintln!("  {} of {count} watches failed; first: {}", count - held.len(), errors.first().map(String::as_str).unwrap_or(""));
    }
    // Let allocations settle, then read the resident size while everything is still held
    // (including any requests still waiting for headers).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kb(pid)?;
    let open = held.len();
    drop(held);
    set.abort_all();
    Ok(WatchRun { open, added_kb: after as i64 - before as i64, base_kb: before, took })
}

async fn watches(report: &mut Report) -> R<()> {
    let bin = hoop_kube_binary()?;
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let d = dir.path();
    let sim_dir = d.join("sim");
    let sim = Proc::start(&bin, &["sim", "--listen", "127.0.0.1:0", "--state-dir", &sim_dir.to_string_lossy()], "hoop-kube sim", "serving the Kubernetes API on ").await?;

    // The relay's PKI and configuration, as `hoop-kube demo` writes them.
    let ca = Ca::generate("hoop-kube bench relay CA", 1).map_err(|e| e.to_string())?;
    let serving = ca.server_cert(&["127.0.0.1", "localhost"], 1).map_err(|e| e.to_string())?;
    let alice: Leaf = ca.subject_cert("alice", 2).map_err(|e| e.to_string())?;
    let rdir = d.join("relay");
    std::fs::create_dir_all(&rdir).map_err(|e| e.to_string())?;
    let w = |name: &str, text: &str| pki::write_file(&rdir.join(name), text.as_bytes(), name.ends_with(".key")).map_err(|e| e.to_string());
    w("ca.crt", ca.cert_pem())?;
    w("server.crt", &serving.cert_pem)?;
    w("server.key", &serving.key_pem)?;
    let issuer = hoop_kube::relay::dev_issuer::DevIssuer::start().await.map_err(|e| format!("dev issuer: {e}"))?;
    let token = issuer.mint("alice", &["dev"], hoop_kube::demo::AUDIENCE, Duration::from_secs(3600), json!({}));
    let relay_yaml = format!(
        "listen: 127.0.0.1:0\ntls:\n  cert: server.crt\n  key: server.key\n  client_ca: ca.crt\nupstream:\n  server: {server}\n  ca: {sim_ca}\n  token_file: {tok}\noidc:\n  issuer: {iss}\n  audiences: [{aud}]\naccess:\n  subjects: [alice]\n  groups: [dev]\n",
        server = sim.url,
        sim_ca = sim_dir.join("ca.crt").display(),
        tok = sim_dir.join("relay.token").display(),
        iss = issuer.issuer(),
        aud = hoop_kube::demo::AUDIENCE,
    );
    w("relay.yaml", &relay_yaml)?;
    let config = rdir.join("relay.yaml").to_string_lossy().into_owned();

    let sim_ca = std::fs::read_to_string(sim_dir.join("ca.crt")).map_err(|e| format!("sim ca.crt: {e}"))?;
    let admin: Value = serde_json::from_str(&std::fs::read_to_string(sim_dir.join("admin.kubeconfig")).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let admin_token = admin["users"][0]["user"]["token"].as_str().ok_or("no admin token")?.to_string();
    let sim_tls = pki::client_config(Some(&sim_ca), None, false).map_err(|e| e.to_string())?;
    let relay_tls = pki::client_config(Some(ca.cert_pem()), Some(&alice), true).map_err(|e| e.to_string())?;

    let fd_need = WATCHES as u64 + 200;
    let h1_ok = nofile_limit().is_none_or(|l| l >= fd_need);
    if !h1_ok {
        eprintln!("  open-files limit {:?} < {fd_need}: skipping the 1,000 HTTP/1.1 connections (raise `ulimit -n`)", nofile_limit());
    }

    // Control: the same watches straight at the simulator process.
    eprintln!("{WATCHES} watches straight at the simulator process (HTTP/2) …");
    let control = hold_watches(sim.addr()?, sim_tls.clone(), &admin_token, &Proto::H2, WATCHES, sim.pid).await?;

    let mb = |kb: i64| kb as f64 * 1024.0 / MB;
    for proto in [Proto::H2, Proto::H1] {
        if matches!(proto, Proto::H1) && !h1_ok {
            continue;
        }
        let mut per_watch_kb = None;
        // 200 first (what one upstream HTTP/2 connection to a hyper server carries), then 1,000.
        for count in [200, WATCHES] {
            let label = match proto {
                Proto::H2 => format!("HTTP/2, {} conns × {STREAMS_PER_CONN} streams", count.div_ceil(STREAMS_PER_CONN)),
                Proto::H1 => format!("HTTP/1.1, {count} conns"),
            };
            // A fresh relay per run, so freed-but-kept allocator pages do not hide the cost.
            let relay = Proc::start(&bin, &["relay", "--config", &config], "hoop-kube relay", "serving on ").await?;
            // Warm up: the upstream connection, the key set, the allocator.
            let warm = Endpoint {
                base: relay.url.clone(),
                token: token.clone(),
                client: {
                    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(relay_tls.clone()).https_only().enable_http2().build();
                    Client::builder(TokioExecutor::new()).http2_only(true).build(https)
                },
            };
            for _ in 0..20 {
                warm.get(NS_PODS).await?;
            }
            drop(warm);
            tokio::time::sleep(Duration::from_millis(500)).await;
            eprintln!("{count} watches through the relay process ({label}) …");
            let run = hold_watches(relay.addr()?, relay_tls.clone(), &token, &proto, count, relay.pid).await?;
            relay.stop().await;
            let per = run.added_kb as f64 * 1024.0 / 1000.0 / count as f64;
            if run.open == count && per_watch_kb.is_none() {
                per_watch_kb = Some(per);
            }
            if run.open < count {
                report.failure(
                    &format!("{count} watches through the relay ({label})"),
                    format!("only {}/{count} got response headers within {} s; the rest were still waiting", run.open, WATCH_WAIT.as_secs()),
                );
            }
            let mut note = format!("{}/{count} got headers (last after {:.1} s); relay base RSS {:.1} MB", run.open, run.took.as_secs_f64(), mb(run.base_kb as i64));
            if run.open < count {
                note.push_str(&format!("; the other {} waited {} s without headers (held while measuring)", count - run.open, WATCH_WAIT.as_secs()));
            }
            let direct = if count == WATCHES && matches!(proto, Proto::H2) {
                note.push_str(&format!("; direct = simulator process, {}/{WATCHES} in {:.1} s", control.open, control.took.as_secs_f64()));
                Some(mb(control.added_kb))
            } else {
                None
            };
            let per = if run.open == count { format!("{per:.1} kB/watch") } else { format!("{}/{count} open", run.open) };
            report.row(format!("{count} idle watches ({label}) — added RSS"), "MB", direct, Some(mb(run.added_kb)), per, note);
            if count == WATCHES {
                let extrapolated = per_watch_kb.map(|k| format!("; ≈ {:.0} MB extrapolated from 200", k * 1000.0 * WATCHES as f64 / MB)).unwrap_or_default();
                report.checks.push(Check {
                    target: if matches!(proto, Proto::H2) { "1,000 idle watches < 100 MB added RSS (HTTP/2)" } else { "1,000 idle watches < 100 MB added RSS (HTTP/1.1)" },
                    measured: format!("{:.1} MB with {}/{WATCHES} open{extrapolated}", mb(run.added_kb), run.open),
                    pass: Some(run.open == WATCHES && mb(run.added_kb) < 100.0),
                });
            }
        }
    }
    sim.stop().await;
    drop(issuer);
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn print_and_save(report: &Report, load_before: &str, load_after: &str, elapsed: Duration) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut out = String::new();
    out.push_str(&format!("\n## hoop-kube relay benchmark (loopback, {cores} cores; {load_before} before, {load_after} after; {:.0} s)\n\n", elapsed.as_secs_f64()));
    out.push_str("| Measurement | Direct (simulator) | Relayed (forward + relay) | Relay cost | Notes |\n|---|---:|---:|---:|---|\n");
    for r in &report.rows {
        out.push_str(&format!("| {} | {} | {} | {} | {} |\n", r.measurement, fmt_num(r.direct, r.unit), fmt_num(r.relayed, r.unit), r.cost, r.note));
    }
    out.push_str("\n| Target | Measured | Result |\n|---|---|---|\n");
    for c in &report.checks {
        let res = match c.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a",
        };
        out.push_str(&format!("| {} | {} | {res} |\n", c.target, c.measured));
    }
    if !report.failures.is_empty() {
        out.push_str("\nFailures (the relay misbehaved while being measured):\n");
        for f in &report.failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    if !report.errors.is_empty() {
        out.push_str("\nErrors (the bench could not take these measurements):\n");
        for e in &report.errors {
            out.push_str(&format!("- {e}\n"));
        }
    }
    println!("{out}");
    let _ = std::io::stdout().flush();

    let json = json!({
        "cores": cores,
        "load_before": load_before,
        "load_after": load_after,
        "seconds": elapsed.as_secs_f64(),
        "rows": report.rows.iter().map(|r| json!({
            "measurement": r.measurement, "unit": r.unit, "direct": r.direct, "relayed": r.relayed, "relay_cost": r.cost, "note": r.note,
        })).collect::<Vec<_>>(),
        "targets": report.checks.iter().map(|c| json!({"target": c.target, "measured": c.measured, "pass": c.pass})).collect::<Vec<_>>(),
        "failures": report.failures,
        "errors": report.errors,
    });
    let target_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().and_then(Path::parent).and_then(Path::parent).map(Path::to_path_buf))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from("target"));
    let path = target_dir.join("bench-relay.json");
    match std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap_or_default()) {
        Ok(()) => println!("JSON: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

fn main() {
    // `cargo bench` passes `--bench` (and any filter); this bench has nothing to filter.
    // `cargo test --all-targets` runs bench binaries without it: a 100 s measurement is not a
    // test, so say how to run it and stop.
    if !std::env::args().any(|a| a == "--bench") {
        println!("relay benchmark: run it with `cargo build --release && cargo bench --bench relay`");
        return;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let load_before = loadavg();
    let start = Instant::now();
    let report = rt.block_on(async {
        let mut report = Report::default();
        eprintln!("hoop-kube relay benchmark — {load_before}");
        if let Err(e) = in_process(&mut report).await {
            report.error("GET / LIST / logs (in-process stack)", e);
        }
        if let Err(e) = watches(&mut report).await {
            report.error("1,000 idle watches (separate processes)", e);
        }
        report
    });
    print_and_save(&report, &load_before, &loadavg(), start.elapsed());
    drop(rt);
    if !report.errors.is_empty() {
        std::process::exit(1);
    }
}
