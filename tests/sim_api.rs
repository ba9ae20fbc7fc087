//! The simulator as a hostile or unusual client sees it: raw HTTPS requests, byte for byte.
//! Every malformed input must get a Kubernetes `Status` and the simulator must keep serving;
//! authentication, impersonation, watch semantics, Tables and paging must be what
//! kube-apiserver does.

mod common;

use common::{admin_token, raw_request, request, tls_client, Sim};
use serde_json::json;

async fn get(sim: &Sim, path: &str, headers: &[(&str, &str)]) -> common::RawResponse {
    let token = admin_token(sim);
    raw_request(sim, tls_client(sim, None, &[b"http/1.1"]), &request("GET", path, Some(&token), headers, b"")).await
}

async fn send(sim: &Sim, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> common::RawResponse {
    let token = admin_token(sim);
    raw_request(sim, tls_client(sim, None, &[b"http/1.1"]), &request(method, path, Some(&token), headers, body)).await
}

fn assert_status(r: &common::RawResponse, code: u16, reason: &str) {
    assert_eq!(r.code, code, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!((v["kind"].as_str(), v["apiVersion"].as_str(), v["status"].as_str()), (Some("Status"), Some("v1"), Some("Failure")), "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_get_400_and_the_simulator_keeps_serving() {
    let sim = Sim::start().await;
    for path in [
        "/api/v1/namespaces/default/secrets%2Fx",
        "/api/v1/namespaces/default/secrets%2fx",
        "/api/v1/namespaces/default/configmaps/../secrets/x",
        "/api/v1/namespaces/default/configmaps/%2e%2e/secrets/x",
        "/api/v1/namespaces/default/configmaps/.%2E/secrets/x",
        "/api/v1/namespaces/default/pods%5c..%5csecrets",
        "/api/v1//namespaces/default/pods",
        "/api/v1/namespaces/default/secrets%252Fx",
        "/api/v1/namespaces/default/pods/%00",
    ] {
        let r = get(&sim, path, &[]).await;
        assert_status(&r, 400, "BadRequest");
    }
    let r = get(&sim, "/api/v1/namespaces/default/pods", &[]).await;
    assert_eq!(r.code, 200);
    assert_eq!(r.json()["kind"], "PodList");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_unknown_kinds_get_status_errors() {
    let sim = Sim::start().await;
    let cm = "/api/v1/namespaces/default/configmaps";
    let ct = [("Content-Type", "application/json")];
    assert_status(&send(&sim, "POST", cm, &ct, b"{not json").await, 400, "BadRequest");
    assert_status(&send(&sim, "POST", cm, &ct, b"").await, 400, "BadRequest");
    assert_status(&send(&sim, "POST", cm, &ct, b"[1,2,3]").await, 400, "BadRequest");
    assert_status(&send(&sim, "POST", cm, &ct, br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"}}"#).await, 400, "BadRequest");
    assert_status(&send(&sim, "POST", cm, &ct, br#"{"metadata":{"name":"UPPER"}}"#).await, 422, "Invalid");
    assert_status(&get(&sim, "/api/v1/namespaces/default/widgets", &[]).await, 404, "NotFound");
    assert_status(&get(&sim, "/apis/example.com/v1/things", &[]).await, 404, "NotFound");
    assert_status(&send(&sim, "POST", "/api/v1/namespaces/nosuch/configmaps", &ct, br#"{"metadata":{"name":"a"}}"#).await, 404, "NotFound");
    let big = vec![b' '; 4 * 1024 * 1024];
    assert_status(&send(&sim, "POST", cm, &ct, &big).await, 413, "RequestEntityTooLarge");
    assert_status(&send(&sim, "PATCH", &format!("{cm}/x"), &[("Content-Type", "text/plain")], b"{}").await, 415, "UnsupportedMediaType");
    let ok = send(&sim, "POST", cm, &ct, br#"{"metadata":{"name":"fine"},"data":{"a":"b"}}"#).await;
    assert_eq!(ok.code, 201, "{}", String::from_utf8_lossy(&ok.body));
    assert_status(&send(&sim, "POST", cm, &ct, br#"{"metadata":{"name":"fine"}}"#).await, 409, "AlreadyExists");
    let stale = send(&sim, "PUT", &format!("{cm}/fine"), &ct, br#"{"metadata":{"name":"fine","resourceVersion":"1"}}"#).await;
    assert_status(&stale, 409, "Conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_impersonation_follow_the_apiserver() {
    let sim = Sim::start().await;
    let cfg = tls_client(&sim, None, &[b"http/1.1"]);
    let pods = "/api/v1/namespaces/default/pods";
    assert_status(&raw_request(&sim, cfg.clone(), &request("GET", pods, None, &[], b"")).await, 401, "Unauthorized");
    assert_status(&raw_request(&sim, cfg.clone(), &request("GET", pods, Some("wrong"), &[], b"")).await, 401, "Unauthorized");
    // The admin may not impersonate; only the relay identity may.
    let r = get(&sim, pods, &[("Impersonate-User", "alice")]).await;
    assert_status(&r, 403, "Forbidden");
    assert!(r.json()["message"].as_str().unwrap().contains("cannot impersonate"));
    let relay_token = std::fs::read_to_string(sim.dir.path().join("relay.token")).unwrap();
    let r = raw_request(
        &sim,
        cfg.clone(),
        &request("GET", pods, Some(relay_token.trim()), &[("Impersonate-User", "alice"), ("Impersonate-Group", "dev"), ("Impersonate-Extra-agent", "bot")], b""),
    )
    .await;
    assert_eq!(r.code, 200);
    let g = raw_request(&sim, cfg.clone(), &request("GET", pods, Some(relay_token.trim()), &[("Impersonate-Group", "dev")], b"")).await;
    assert_status(&g, 500, "InternalError");
    // Client certificates authenticate too.
    let cert = std::fs::read_to_string(sim.dir.path().join("relay.crt")).unwrap();
    let key = std::fs::read_to_string(sim.dir.path().join("relay.key")).unwrap();
    let r = raw_request(&sim, tls_client(&sim, Some((&cert, &key)), &[b"http/1.1"]), &request("GET", pods, None, &[("Impersonate-User", "bob")], b"")).await;
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    // The request log shows who really acted.
    let log = sim.requests();
    let alice = log.iter().find(|e| e["user"] == "alice").expect("alice in the request log");
    assert_eq!(alice["authenticated_user"], "hoop-kube-relay");
    assert_eq!(alice["groups"], json!(["dev", "system:authenticated"]));
    assert_eq!(alice["extra"]["agent"], json!(["bot"]));
    assert!(log.iter().any(|e| e["user"] == "bob" && e["authenticated_user"] == "hoop-kube-relay"));
    assert!(log.iter().any(|e| e["code"] == 401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_offers_h2_and_http11() {
    use tokio::net::TcpStream;
    let sim = Sim::start().await;
    for (offer, want) in [(vec![&b"h2"[..], b"http/1.1"], Some(&b"h2"[..])), (vec![&b"http/1.1"[..]], Some(&b"http/1.1"[..]))] {
        let tcp = TcpStream::connect(sim.running.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(tls_client(&sim, None, &offer)).connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_in_both_formats() {
    let sim = Sim::start().await;
    let agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let r = get(&sim, "/apis", &[("Accept", agg)]).await;
    assert_eq!(r.header("content-type"), Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"));
    assert!(r.json()["items"].as_array().unwrap().iter().any(|g| g["metadata"]["name"] == "apps"));
    let r = get(&sim, "/apis", &[("Accept", "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList")]).await;
    assert_eq!(r.header("content-type"), Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"));
    assert_eq!(get(&sim, "/apis", &[]).await.json()["kind"], "APIGroupList");
    assert_eq!(get(&sim, "/api", &[]).await.json()["kind"], "APIVersions");
    assert_eq!(get(&sim, "/api/v1", &[]).await.json()["kind"], "APIResourceList");
    assert_eq!(get(&sim, "/apis/apps/v1", &[]).await.json()["groupVersion"], "apps/v1");
    assert_eq!(get(&sim, "/apis/apps", &[]).await.json()["kind"], "APIGroup");
    assert_eq!(get(&sim, "/version", &[]).await.json()["minor"], "32");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_partial_metadata_and_paging() {
    let sim = Sim::start().await;
    let ct = [("Content-Type", "application/json")];
    for i in 0..5 {
        let body = format!(r#"{{"metadata":{{"name":"s{i}","labels":{{"n":"{i}"}}}},"stringData":{{"password":"pw{i}"}}}}"#);
        assert_eq!(send(&sim, "POST", "/api/v1/namespaces/default/secrets", &ct, body.as_bytes()).await.code, 201);
    }
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let t = get(&sim, "/api/v1/namespaces/default/secrets?includeObject=Object", &[("Accept", table)]).await.json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"].as_array().unwrap().len(), 5);
    assert_eq!(t["rows"][0]["object"]["kind"], "Secret");
    assert_eq!(t["rows"][0]["object"]["data"]["password"], "cHcw");
    let t = get(&sim, "/api/v1/namespaces/default/secrets", &[("Accept", table)]).await.json();
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let pm = get(&sim, "/api/v1/namespaces/default/secrets", &[("Accept", "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")]).await.json();
    assert_eq!(pm["kind"], "PartialObjectMetadataList");
    // limit/continue walks every item exactly once.
    let mut names = Vec::new();
    let mut cont = String::new();
    loop {
        let page = get(&sim, &format!("/api/v1/namespaces/default/secrets?limit=2&continue={cont}"), &[]).await.json();
        names.extend(page["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()));
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_string(),
            _ => break,
        }
    }
    assert_eq!(names, vec!["s0", "s1", "s2", "s3", "s4"]);
    let sel = get(&sim, "/api/v1/namespaces/default/secrets?labelSelector=n+in+(1,3)&fieldSelector=metadata.name%3Ds3", &[]).await.json();
    assert_eq!(sel["items"].as_array().unwrap().len(), 1);
    assert_status(&get(&sim, "/api/v1/namespaces/default/secrets?fieldSelector=data.password%3Dx", &[]).await, 400, "BadRequest");
    // dryRun=All answers without storing.
    let dry = send(&sim, "POST", "/api/v1/namespaces/default/secrets?dryRun=All", &ct, br#"{"metadata":{"name":"dry"}}"#).await;
    assert_eq!(dry.code, 201);
    assert_status(&get(&sim, "/api/v1/namespaces/default/secrets/dry", &[]).await, 404, "NotFound");
    // deletecollection returns what it deleted.
    let gone = send(&sim, "DELETE", "/api/v1/namespaces/default/secrets?labelSelector=n%3D4", &[], b"").await.json();
    assert_eq!(gone["kind"], "SecretList");
    assert_eq!(gone["items"][0]["metadata"]["name"], "s4");
}

fn events(body: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(body).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_forms_bookmarks_watch_list_and_expiry() {
    let sim = Sim::start().await;
    let ct = [("Content-Type", "application/json")];
    send(&sim, "POST", "/api/v1/namespaces/default/configmaps", &ct, br#"{"metadata":{"name":"a"}}"#).await;
    // Legacy /watch/ prefix, from now: synthetic ADDED for current state, closed at timeoutSeconds.
    let r = get(&sim, "/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1", &[]).await;
    let ev = events(&r.body);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!((ev[0]["type"].as_str(), ev[0]["object"]["kind"].as_str()), (Some("ADDED"), Some("ConfigMap")));
    // Watch-list: initial state, then a BOOKMARK marking its end.
    let r = get(&sim, "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1", &[]).await;
    let ev = events(&r.body);
    assert_eq!(ev[0]["type"], "ADDED");
    let end = ev.iter().find(|e| e["type"] == "BOOKMARK").expect("a bookmark");
    assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    // Resuming from a resourceVersion replays only later changes; bookmarks arrive while idle.
    let rv = get(&sim, "/api/v1/namespaces/default/configmaps", &[]).await.json()["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    send(&sim, "POST", "/api/v1/namespaces/default/configmaps", &ct, br#"{"metadata":{"name":"b"}}"#).await;
    send(&sim, "DELETE", "/api/v1/namespaces/default/configmaps/a", &[], b"").await;
    let r = get(&sim, &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2"), &[]).await;
    let ev = events(&r.body);
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(&types[..2], &["ADDED", "DELETED"], "{types:?}");
    assert!(types.contains(&"BOOKMARK"), "{types:?}");
    // A resourceVersion older than the history gets 410 Expired in an ERROR event.
    {
        let mut txn = sim.running.state.store.txn();
        for i in 0..(hoop_kube::sim::store::HISTORY + 5) {
            txn.put(hoop_kube::sim::store::Key { resource: "/configmaps".into(), namespace: "default".into(), name: format!("bulk{i}") }, json!({"metadata": {"name": format!("bulk{i}")}}));
        }
    }
    let r = get(&sim, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=3", &[]).await;
    let ev = events(&r.body);
    assert_eq!(ev[0]["type"], "ERROR");
    assert_eq!((ev[0]["object"]["code"].as_i64(), ev[0]["object"]["reason"].as_str()), (Some(410), Some("Expired")));
    // Table watches carry one-row Tables.
    let r = get(&sim, "/api/v1/namespaces/default/configmaps?watch=1&fieldSelector=metadata.name%3Db&timeoutSeconds=1", &[("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")]).await;
    let ev = events(&r.body);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["object"]["kind"], "Table");
    assert_eq!(ev[0]["object"]["rows"][0]["cells"][0], "b");
}
