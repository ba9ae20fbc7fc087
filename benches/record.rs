//! Records: what recording costs on the request path and on a spliced exec stream.
//!
//! 1. Store inserts per second (write-ahead insert, awaited until committed) with group commit:
//!    one writer awaiting each insert in turn, and 64 concurrent writers, for `synchronous =
//!    NORMAL` and `FULL`; the baseline is the work without recording (building the record).
//! 2. Exec stream decoding in MB/s: WebSocket v5 stdout frames of 4 KiB fed in 8 KiB chunks (the
//!    splice's copy buffer) through the `Recorder`, against a plain copy of the same chunks;
//!    also masked stdin frames and SPDY stdout DATA frames.
//!
//! Run: `cargo bench --bench record`. Criterion reports elements/s or bytes/s; a summary of the
//! average group-commit batch size is printed at the end.

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hoop_kube::kube::request_info;
use hoop_kube::kube::wire::spdy::{Encoder, Frame, Headers};
use hoop_kube::kube::wire::websocket::StreamProtocol;
use hoop_kube::kube::wire::ws_frame::{encode_frame, OP_BINARY};
use hoop_kube::record::exec::{Direction, Recorder, RecorderConfig, SessionKind, Transport};
use hoop_kube::record::store::{Durability, Store, StoreConfig};
use hoop_kube::record::{Decision, Record};

fn record(n: u64) -> Record {
    let info = request_info::parse(
        &http::Method::GET,
        "/api/v1/namespaces/prod/pods/web-1",
        None,
    )
    .unwrap();
    let received = hoop_kube::record::event::now_micros();
    let mut r = Record::from_request(&info, "GET", None, received);
    r.subject = "CgVhbGljZRIEdGVzdA".into();
    r.username = "alice@example.com".into();
    r.groups = vec!["dev".into(), "sre".into()];
    r.client_cert_serial = Some("0a1b2c3d".into());
    r.source_ips = vec!["10.0.0.7".into()];
    r.user_agent = Some("kubectl.1.32/v1.32.5 (linux/amd64) kubernetes/9894294".into());
    r.kubectl_command = Some("kubectl get".into());
    r.kubectl_session = Some(format!("6f1d2a3b-0000-4000-8000-{n:012}"));
    r.decision = Decision::Allow;
    r.rule = Some("dev-reads".into());
    r
}

fn store_bench(c: &mut Criterion, report: &mut String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("record/store insert");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("no recording (build the record)", |b| {
        b.iter(|| black_box(record(black_box(1))))
    });
    for durability in [Durability::Normal, Durability::Full] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("records.sqlite"),
            StoreConfig {
                durability,
                ..StoreConfig::default()
            },
        )
        .unwrap();
        for writers in [1u64, 64] {
            let (ops0, batches0) = (
                store.stats().ops.load(Ordering::Relaxed),
                store.stats().batches.load(Ordering::Relaxed),
            );
            let name = format!(
                "{durability:?}, {writers} writer{}",
                if writers == 1 { "" } else { "s" }
            );
            g.bench_function(BenchmarkId::from_parameter(&name), |b| {
                b.iter_custom(|iters| {
                    let store = store.clone();
                    rt.block_on(async move {
                        let per = iters.div_ceil(writers);
                        let start = Instant::now();
                        let mut tasks = tokio::task::JoinSet::new();
                        for w in 0..writers {
                            let store = store.clone();
                            tasks.spawn(async move {
                                for i in 0..per {
                                    store.insert(record(w * per + i)).await.unwrap();
                                }
                            });
                        }
                        while tasks.join_next().await.is_some() {}
                        start
                            .elapsed()
                            .mul_f64(iters as f64 / (per * writers) as f64)
                    })
                });
            });
            let ops = store.stats().ops.load(Ordering::Relaxed) - ops0;
            let batches = store.stats().batches.load(Ordering::Relaxed) - batches0;
            let _ = writeln!(
                report,
                "{name:<22} {ops:>8} inserts in {batches:>7} commits (avg {:.1} per commit)",
                ops as f64 / batches.max(1) as f64
            );
        }
    }
    g.finish();
}

/// `total` bytes of server → client WebSocket v5 stdout frames with 4 KiB payloads.
fn ws_stdout(total: usize, mask: Option<[u8; 4]>, channel: u8) -> Vec<u8> {
    let mut payload = vec![b'x'; 4096];
    payload[0] = channel;
    let frame = encode_frame(true, OP_BINARY, &payload, mask);
    frame.repeat(total / 4096)
}

fn spdy_stdout(total: usize) -> (Vec<u8>, Vec<u8>) {
    let mut enc = Encoder::new();
    let mut up = BytesMut::new();
    let headers: Headers = [("streamtype", "stdout")].into_iter().collect();
    enc.encode(
        &Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers,
        },
        &mut up,
    )
    .unwrap();
    let mut enc = Encoder::new();
    let mut down = BytesMut::new();
    let data = Bytes::from(vec![b'x'; 4096]);
    for _ in 0..total / 4096 {
        enc.encode(
            &Frame::Data {
                stream_id: 1,
                fin: false,
                data: data.clone(),
            },
            &mut down,
        )
        .unwrap();
    }
    (up.to_vec(), down.to_vec())
}

fn decode_bench(c: &mut Criterion) {
    const TOTAL: usize = 4 << 20;
    const CHUNK: usize = 8 << 10;
    let mut g = c.benchmark_group("record/exec decode");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let down = ws_stdout(TOTAL, None, 1);
    g.bench_function("raw copy (8 KiB chunks)", |b| {
        let mut dst = vec![0u8; CHUNK];
        b.iter(|| {
            for chunk in down.chunks(CHUNK) {
                dst[..chunk.len()].copy_from_slice(chunk);
                black_box(&dst);
            }
        });
    });
    let cfg = RecorderConfig {
        max_recorded_bytes: u64::MAX,
        ..RecorderConfig::default()
    };
    let feed = |transport: Transport, dir: Direction, prelude: &[u8], wire: &[u8], expect: u64| {
        let mut r = Recorder::new(transport, SessionKind::Exec, cfg.clone()).unwrap();
        if !prelude.is_empty() {
            r.feed(Direction::Upstream, prelude, Duration::ZERO)
                .unwrap();
        }
        for (i, chunk) in wire.chunks(CHUNK).enumerate() {
            r.feed(dir, chunk, Duration::from_micros(i as u64 * 100))
                .unwrap();
            if r.should_flush() {
                black_box(r.take_events());
            }
        }
        let (events, summary) = r.finish(Duration::from_secs(1));
        // The whole payload was decoded (not an early error).
        assert!(summary.error.is_none(), "{summary:?}");
        assert_eq!(summary.stdout_bytes + summary.stdin_bytes, expect);
        black_box(events)
    };
    let v5 = Transport::WebSocket(StreamProtocol::V5);
    // Each 4 KiB WebSocket payload starts with its channel byte.
    let ws_payload = (TOTAL / 4096 * 4095) as u64;
    g.bench_function("websocket v5 stdout, 4 KiB frames", |b| {
        b.iter(|| feed(v5, Direction::Downstream, &[], &down, ws_payload))
    });
    let up = ws_stdout(TOTAL, Some([0x37, 0xfa, 0x21, 0x3d]), 0);
    g.bench_function("websocket v5 stdin (masked), 4 KiB frames", |b| {
        b.iter(|| feed(v5, Direction::Upstream, &[], &up, ws_payload))
    });
    let (syn, data) = spdy_stdout(TOTAL);
    g.bench_function("spdy stdout, 4 KiB DATA frames", |b| {
        b.iter(|| {
            feed(
                Transport::Spdy { status_json: true },
                Direction::Downstream,
                &syn,
                &data,
                TOTAL as u64,
            )
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let mut report = String::new();
    store_bench(c, &mut report);
    decode_bench(c);
    println!("\nrecords store group commit:\n{report}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
