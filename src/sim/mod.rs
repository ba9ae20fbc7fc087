//! `hoop-kube sim`: an in-memory Kubernetes API server that real kubectl accepts.
//!
//! No kube-apiserver can be installed where hoop-kube is developed and tested, so the project
//! carries this simulator. It serves TLS with HTTP/2 and HTTP/1.1 by ALPN, discovery in both
//! formats, OpenAPI v3 for `apply`, CRUD with every patch type, Tables, watch, logs, exec and
//! attach over WebSocket and SPDY, port-forward over SPDY and SPDY-in-WebSocket, access reviews,
//! bearer-token and client-certificate authentication and apiserver-style impersonation. Real
//! kubectl 1.27–1.33 is what proves it faithful (tests/kubectl_matrix.rs). It writes an admin
//! kubeconfig and a relay identity into its state directory, and a JSON-lines request log that
//! tests assert on.
//!
//! Data path: [`server`] (TLS, HTTP, authn, routing) → [`crud`] / [`watch`] / [`logs`] /
//! [`exec`] / [`portforward`] → [`store`] and [`pods`].

pub mod authn;
pub mod crud;
pub mod discovery;
pub mod encoding;
pub mod exec;
pub mod logs;
pub mod objects;
pub mod patch;
pub mod pods;
pub mod podfs;
pub mod portforward;
pub mod request_log;
pub mod resources;
pub mod reviews;
pub mod selector;
pub mod server;
pub mod shell;
pub mod spdy_conn;
pub mod store;
pub mod table;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::pki::{self, Ca, PkiError};
use authn::{Identities, User};

/// The user the admin kubeconfig authenticates as.
pub const ADMIN_USER: &str = "admin";
/// The identity the relay uses upstream; the only one allowed to impersonate.
pub const RELAY_USER: &str = "hoop-kube-relay";

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen (127.0.0.1:0 picks a free port).
    pub listen: SocketAddr,
    /// Where the CA, kubeconfig, relay token and request log go.
    pub state_dir: PathBuf,
    /// The version `/version` reports, e.g. `1.32.5`.
    pub kube_version: String,
    /// Where pod ports forward to, by port. Ports not listed go to the built-in echo service.
    pub port_targets: Vec<(u16, SocketAddr)>,
    /// How often open watches get a BOOKMARK when they asked for them.
    pub bookmark_interval: Duration,
}

impl SimConfig {
    /// Defaults for a state directory.
    pub fn new(listen: SocketAddr, state_dir: impl Into<PathBuf>) -> Self {
        SimConfig { listen, state_dir: state_dir.into(), kube_version: "1.32.5".into(), port_targets: Vec::new(), bookmark_interval: Duration::from_secs(15) }
    }
}

/// What can stop the simulator from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Certificates could not be made or written.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    StateDir { path: String, source: std::io::Error },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using it? pick another with --listen)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The echo service for port-forward could not start.
    #[error("cannot start the port-forward echo service: {0}")]
    Echo(std::io::Error),
}

/// Shared state of a running simulator.
pub struct SimState {
    pub config: SimConfig,
    pub store: store::Store,
    pub pods: pods::PodRuntimes,
    pub identities: Identities,
    pub log: request_log::RequestLog,
    pub echo_addr: SocketAddr,
    pub server_address: String,
}

/// A started simulator.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The admin kubeconfig path.
    pub kubeconfig: PathBuf,
    /// Shared state (tests poke it directly).
    pub state: Arc<SimState>,
    /// The accept loop; runs until aborted.
    pub task: tokio::task::JoinHandle<()>,
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    hex::encode(bytes)
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    // JSON is valid YAML; kubectl reads either.
    let v = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": user, "namespace": "default"}}],
        "current-context": "sim",
        "preferences": {},
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    pki::write_file(path, contents.as_bytes(), private)
}

/// Start the simulator: make its PKI and identities, write the state directory, bind, serve.
pub async fn start(config: SimConfig) -> Result<Running, SimError> {
    let dir = config.state_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| SimError::StateDir { path: dir.display().to_string(), source })?;
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|source| SimError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind { addr: config.listen, source })?;
    let url = format!("https://{addr}");

    let ca = Ca::generate("hoop-kube-sim-ca", 365)?;
    let server_leaf = ca.server_cert(&["127.0.0.1", "localhost", &addr.ip().to_string()], 365)?;
    let relay_leaf = ca.client_cert(RELAY_USER, &[], 365)?;
    let admin_token = random_token();
    let relay_token = random_token();
    write(&dir.join("ca.crt"), ca.cert_pem(), false)?;
    write(&dir.join("relay.token"), &relay_token, true)?;
    write(&dir.join("relay.crt"), &relay_leaf.cert_pem, false)?;
    write(&dir.join("relay.key"), &relay_leaf.key_pem, true)?;
    let kubeconfig = dir.join("admin.kubeconfig");
    write(&kubeconfig, &kubeconfig_yaml(&url, ca.cert_pem(), ADMIN_USER, &admin_token), true)?;

    let user = |name: &str, groups: &[&str]| User { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), uid: None, extra: Default::default() };
    let identities = Identities {
        tokens: vec![(admin_token, user(ADMIN_USER, &["system:masters"])), (relay_token, user(RELAY_USER, &[]))],
        impersonators: vec![RELAY_USER.into()],
    };
    let log = request_log::RequestLog::open(&dir.join("requests.jsonl")).map_err(|source| SimError::StateDir { path: dir.display().to_string(), source })?;
    let echo_addr = portforward::start_echo().await.map_err(SimError::Echo)?;
    let tls = pki::server_config(&server_leaf, Some(ca.cert_pem()))?;

    let store = store::Store::new();
    let state = Arc::new(SimState {
        config,
        pods: pods::PodRuntimes::new(store.clone()),
        store,
        identities,
        log,
        echo_addr,
        server_address: addr.to_string(),
    });
    crud::seed(&state);
    let task = tokio::spawn(server::serve(listener, Arc::new(tls), state.clone()));
    Ok(Running { addr, url, kubeconfig, state, task })
}
