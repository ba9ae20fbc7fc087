//! The parsers every relayed request goes through: request info, `Accept` negotiation, the
//! WebSocket channel framing and the SPDY/3.1 decoder. Run: `cargo bench --bench protocol`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hoop_kube::kube::media::negotiate_object;
use hoop_kube::kube::request_info;
use hoop_kube::kube::wire::spdy::{Decoder, Encoder, Frame, Headers, MAX_FRAME_PAYLOAD};
use hoop_kube::kube::wire::websocket;

const URLS: &[(&str, &str, &str, Option<&str>)] = &[
    ("list", "GET", "/api/v1/namespaces/default/pods", Some("limit=500")),
    ("watch", "GET", "/api/v1/namespaces/default/pods", Some("allowWatchBookmarks=true&fieldSelector=metadata.name%3Dp1&resourceVersion=300&timeoutSeconds=412&watch=true")),
    ("apply-patch", "PATCH", "/apis/apps/v1/namespaces/prod/deployments/web", Some("fieldManager=kubectl-client-side-apply&fieldValidation=Strict")),
    ("exec", "GET", "/api/v1/namespaces/default/pods/p1/exec", Some("command=sh&command=-c&command=echo+hi&container=c&stdin=true&stdout=true&tty=true")),
    ("discovery", "GET", "/apis", Some("timeout=32s")),
];

fn request_info(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_info");
    for (name, method, path, query) in URLS {
        let m: http::Method = method.parse().unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(name), &(m, path, query), |b, (m, p, q)| {
            b.iter(|| request_info::parse(m, p, **q).unwrap())
        });
    }
    g.finish();
}

fn media(c: &mut Criterion) {
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    c.bench_function("media/negotiate kubectl get", |b| b.iter(|| negotiate_object(Some(accept))));
}

fn channels(c: &mut Criterion) {
    let binary = websocket::encode(websocket::STDOUT, &[b'x'; 4096]);
    let text = websocket::encode_text(websocket::STDOUT, &[b'x'; 4096]);
    let resize = b"{\"Width\":100,\"Height\":30}\n";
    let mut g = c.benchmark_group("websocket");
    g.throughput(Throughput::Bytes(4096));
    g.bench_function("decode 4 KiB v5 stdout message", |b| b.iter(|| websocket::decode(&binary).unwrap()));
    g.bench_function("decode 4 KiB v4.base64 stdout message", |b| b.iter(|| websocket::decode_text(&text).unwrap()));
    g.finish();
    c.bench_function("websocket/parse resize", |b| b.iter(|| websocket::parse_resize(resize).unwrap()));
}

fn spdy(c: &mut Criterion) {
    // A port-forward style stream: one SYN_STREAM, then 256 DATA frames of 16 KiB.
    let mut enc = Encoder::new();
    let mut wire = BytesMut::new();
    let headers: Headers = [("streamtype", "data"), ("port", "80"), ("requestid", "0")].into_iter().collect();
    enc.encode(&Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, fin: false, unidirectional: false, headers }, &mut wire).unwrap();
    let chunk = Bytes::from(vec![7u8; 16 * 1024]);
    for _ in 0..256 {
        enc.encode(&Frame::Data { stream_id: 1, fin: false, data: chunk.clone() }, &mut wire).unwrap();
    }
    let wire = wire.freeze();
    let mut g = c.benchmark_group("spdy");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("decode 4 MiB port-forward stream in 1500-byte reads", |b| {
        b.iter(|| {
            let mut dec = Decoder::new(MAX_FRAME_PAYLOAD);
            let mut buf = BytesMut::new();
            let mut frames = 0;
            for piece in wire.chunks(1500) {
                buf.extend_from_slice(piece);
                while let Some(_f) = dec.decode(&mut buf).unwrap() {
                    frames += 1;
                }
            }
            assert_eq!(frames, 257);
        })
    });
    g.finish();
}

criterion_group!(benches, request_info, media, channels, spdy);
criterion_main!(benches);
