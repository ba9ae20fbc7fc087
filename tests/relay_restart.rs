//! The forwarder and kubectl across a relay restart: an open watch ends, kubectl is told the
//! relay is unreachable while it is down, and once it is back the same forwarder reconnects by
//! itself and a new watch works.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Kubectl;
use hoop_kube::demo::{self, Issuer, Stack, User};
use tokio::io::{AsyncBufReadExt, BufReader};

struct Cfg(std::path::PathBuf);

impl common::Cluster for Cfg {
    fn kubeconfig(&self) -> &std::path::Path {
        &self.0
    }
    fn requests(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_restart_mid_watch() {
    let dir = tempfile::tempdir().unwrap();
    let users = vec![User { subject: "alice".into(), groups: vec!["dev".into()], context: "alice".into(), agent: None }];
    let Stack { sim: _sim, relay, forwarders: _forwarders, kubeconfig, dev_issuer: _issuer, relay_config, .. } =
        demo::start(dir.path(), &users, Issuer::Dev, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let k = Kubectl::new("1.32", &Cfg(kubeconfig));

    let mut watch = k.cmd(&["get", "pods", "-w"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(watch.stdout.take().unwrap()).lines();
    // An empty namespace prints nothing to stdout; wait until the watch request is open.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(watch.try_wait().unwrap().is_none(), "the watch is running");

    let addr = relay.addr;
    relay.shutdown().await;
    let status = tokio::time::timeout(Duration::from_secs(30), watch.wait()).await.expect("kubectl's watch ends when the relay goes away").unwrap();
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut watch.stderr.take().unwrap(), &mut err).await.unwrap();
    while let Ok(Some(_)) = out.next_line().await {}
    println!("watch ended with {status}: {err}");

    let down = k.run(&["get", "pods"]).await;
    assert_ne!(down.code, 0);
    assert!(down.stderr.contains("the relay at") && down.stderr.contains("is unreachable"), "kubectl is told why: {}", down.stderr);

    let mut cfg = hoop_kube::relay::config::RelayConfig::load(&relay_config).unwrap();
    cfg.listen = addr;
    let _relay = hoop_kube::relay::boot::start(&cfg).await.expect("the relay restarts on the same address");
    let up = k.run(&["get", "pods"]).await;
    assert_eq!(up.code, 0, "the forwarder reconnects by itself: {}", up.stderr);

    let mut watch = k.cmd(&["get", "pods", "-w"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"after-restart"},"spec":{"containers":[{"name":"c","image":"x"}]}}"#;
    assert_eq!(k.run_with(&["create", "-f", "-"], Some(pod.as_bytes())).await.code, 0);
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.expect("the new watch sees the pod").unwrap().unwrap();
    assert!(line.contains("after-restart") || line.starts_with("NAME"), "{line}");
    watch.kill().await.unwrap();
}
