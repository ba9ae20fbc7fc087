//! Durability of acknowledged inserts across a SIGKILL of the relay process: this test binary
//! re-executes itself with a filter selecting `durability_child`, which inserts until killed.

use std::io::{BufRead, BufReader};

use super::*;

/// The environment variable that turns `durability_child` into the inserting child process.
const CHILD_ENV: &str = "HOOP_KUBE_RECORD_DURABILITY_CHILD";

fn rec(n: i64) -> Record {
    let received = 1_717_243_200_000_000 + n;
    Record {
        id: super::super::id::new_id(received),
        received,
        username: "alice".into(),
        verb: "get".into(),
        path: format!("/api/v1/pods/p{n}"),
        ..Record::default()
    }
}

/// The child half of `durability_survives_sigkill`: inserts from 8 tasks, printing each id
/// once its insert returned, until it is killed. A no-op in a normal test run.
#[test]
fn durability_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let s = Store::open(
            &std::path::Path::new(&dir).join("records.sqlite"),
            StoreConfig::default(),
        )
        .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..8 {
            let s = s.clone();
            tasks.spawn(async move {
                for n in 0.. {
                    let r = rec(t * 1_000_000 + n);
                    s.insert(r.clone()).await.unwrap();
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "inserted {}", r.id).unwrap();
                    out.flush().unwrap();
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
}

/// Every insert that returned survives a SIGKILL of the process (synchronous = NORMAL, WAL).
#[test]
fn durability_survives_sigkill() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "record::store::durability_tests::durability_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("inserted ") {
            acknowledged.push(id.to_string());
            if acknowledged.len() == 2000 {
                child.kill().unwrap(); // SIGKILL, mid-stream: other inserts are in flight.
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acknowledged.len(), 2000, "the child stopped early");
    let s = Store::open(&dir.path().join("records.sqlite"), StoreConfig::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for id in &acknowledged {
            assert!(
                s.get(id).await.unwrap().is_some(),
                "acknowledged insert {id} lost"
            );
        }
    });
}
