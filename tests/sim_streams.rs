//! Streaming endpoints as non-kubectl clients use them: WebSocket exec with the older
//! `v4.channel.k8s.io` and `v4.base64.channel.k8s.io` subprotocols, refusal of an unknown
//! subprotocol (the non-101 answer that makes kubectl fall back to SPDY), and pod logs options.

mod common;

use common::{admin_token, raw_request, request, tls_client, Sim};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn create_pod(sim: &Sim, name: &str, command: &str) {
    let body = format!(r#"{{"metadata":{{"name":"{name}"}},"spec":{{"containers":[{{"name":"c","image":"busybox","command":["sh","-c",{command:?}]}}]}}}}"#);
    let token = admin_token(sim);
    let r = raw_request(sim, tls_client(sim, None, &[b"http/1.1"]), &request("POST", "/api/v1/namespaces/default/pods", Some(&token), &[("Content-Type", "application/json")], body.as_bytes())).await;
    assert_eq!(r.code, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// Open a WebSocket exec with the given subprotocol; returns every message until close.
async fn ws_exec(sim: &Sim, path: &str, protocol: &str, stdin: Option<Message>) -> Result<Vec<Message>, String> {
    let tcp = tokio::net::TcpStream::connect(sim.running.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(tls_client(sim, None, &[b"http/1.1"])).connect(name, tcp).await.unwrap();
    let mut req = format!("wss://127.0.0.1{path}").into_client_request().unwrap();
    req.headers_mut().insert("Authorization", format!("Bearer {}", admin_token(sim)).parse().unwrap());
    req.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.map_err(|e| e.to_string())?;
    assert_eq!(resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some(protocol));
    if let Some(m) = stdin {
        ws.send(m).await.unwrap();
    }
    let mut out = Vec::new();
    while let Some(Ok(m)) = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next()).await.expect("exec finishes") {
        let close = matches!(m, Message::Close(_));
        out.push(m);
        if close {
            break;
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_v4_binary_exec() {
    let sim = Sim::start().await;
    create_pod(&sim, "p", "sleep 100").await;
    let msgs = ws_exec(&sim, "/api/v1/namespaces/default/pods/p/exec?command=sh&command=-c&command=echo+v4%3B+exit+5&stdout=true&stderr=true", "v4.channel.k8s.io", None).await.unwrap();
    let bin: Vec<Vec<u8>> = msgs.iter().filter_map(|m| if let Message::Binary(b) = m { Some(b.to_vec()) } else { None }).collect();
    assert_eq!(bin[0], b"\x01v4\n");
    let status: serde_json::Value = serde_json::from_slice(&bin.last().unwrap()[1..]).unwrap();
    assert_eq!(bin.last().unwrap()[0], 3);
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "5");
    match msgs.last() {
        Some(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("expected a normal close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_v4_base64_exec_with_stdin() {
    let sim = Sim::start().await;
    create_pod(&sim, "p", "sleep 100").await;
    // "0" + base64("hello\n") on stdin; v4 has no CLOSE signal, so `head -n 1` ends the command.
    let msgs = ws_exec(&sim, "/api/v1/namespaces/default/pods/p/exec?command=head&command=-n&command=1&stdin=true&stdout=true", "v4.base64.channel.k8s.io", Some(Message::Text("0aGVsbG8K".into())))
        .await
        .unwrap();
    let texts: Vec<String> = msgs.iter().filter_map(|m| if let Message::Text(t) = m { Some(t.to_string()) } else { None }).collect();
    assert_eq!(texts[0], "1aGVsbG8K", "stdout is channel '1' + base64(\"hello\\n\")");
    assert!(texts.last().unwrap().starts_with('3'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_websocket_subprotocol_is_refused_without_101() {
    let sim = Sim::start().await;
    create_pod(&sim, "p", "sleep 100").await;
    let err = ws_exec(&sim, "/api/v1/namespaces/default/pods/p/exec?command=echo&stdout=true", "v9.channel.k8s.io", None).await.unwrap_err();
    assert!(err.contains("400"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_timestamps_and_limits() {
    let sim = Sim::start().await;
    create_pod(&sim, "p", "echo one; echo two; echo three").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let token = admin_token(&sim);
    let get = |q: &str| request("GET", &format!("/api/v1/namespaces/default/pods/p/log{q}"), Some(&token), &[], b"");
    let cfg = tls_client(&sim, None, &[b"http/1.1"]);
    assert_eq!(raw_request(&sim, cfg.clone(), &get("")).await.body, b"one\ntwo\nthree\n");
    assert_eq!(raw_request(&sim, cfg.clone(), &get("?tailLines=1")).await.body, b"three\n");
    assert_eq!(raw_request(&sim, cfg.clone(), &get("?limitBytes=5")).await.body, b"one\nt");
    let ts = String::from_utf8(raw_request(&sim, cfg.clone(), &get("?timestamps=true&tailLines=1")).await.body).unwrap();
    let (stamp, line) = ts.split_once(' ').unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "{ts}");
    assert_eq!(line, "three\n");
    let r = raw_request(&sim, cfg.clone(), &get("?container=nope")).await;
    assert_eq!(r.code, 400);
    assert_eq!(r.json()["kind"], "Status");
    let r = raw_request(&sim, cfg, &request("GET", "/api/v1/namespaces/default/pods/ghost/log", Some(&token), &[], b"")).await;
    assert_eq!((r.code, r.json()["message"].as_str()), (404, Some("pods \"ghost\" not found")));
}
