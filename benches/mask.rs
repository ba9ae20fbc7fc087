//! Secret masking throughput (target: ≥ 200 MB/s on one core) on a 10,000-item SecretList and
//! on a watch stream of the same Secrets, against plain pass-through: copying the bytes, and a
//! serde_json round trip through `Value`. Items are realistic: name, namespace, uid,
//! resourceVersion, creationTimestamp, labels, managedFields, the last-applied annotation (with
//! the values in it) and 3–5 base64 data keys. Criterion reports the MB/s; a summary of one
//! timed pass each is printed at the end. Run: `cargo bench --bench mask`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hoop_kube::mask::{mask_body_into, MaskProfile, WatchMasker};
use serde_json::{json, Value};

const ITEMS: usize = 10_000;
/// A typical HTTP/2 DATA frame / chunk size for a watch response.
const CHUNK: usize = 16 * 1024;

fn secret(i: usize, with_type_meta: bool) -> Value {
    let keys = ["username", "password", "host", "port", "ca.crt"];
    let n = 3 + i % 3;
    let mut data = serde_json::Map::new();
    for (j, k) in keys.iter().take(n).enumerate() {
        let raw = format!("value-{i}-{j}-{}", "x".repeat(8 + (i * 7 + j * 13) % 40));
        data.insert((*k).to_string(), json!(STANDARD.encode(raw)));
    }
    let name = format!("app-{i}-credentials");
    let manifest = json!({"apiVersion": "v1", "data": data, "kind": "Secret",
        "metadata": {"annotations": {}, "labels": {"app": format!("app-{i}"), "team": "payments"}, "name": name, "namespace": "prod"}, "type": "Opaque"});
    let mut fields = serde_json::Map::new();
    fields.insert(".".into(), json!({}));
    for k in keys.iter().take(n) {
        fields.insert(format!("f:{k}"), json!({}));
    }
    let mut s = json!({
        "metadata": {
            "name": name, "namespace": "prod", "uid": format!("6f1c2a9e-{i:04x}-4d2b-9c3e-1b2f3a4d5e6f"),
            "resourceVersion": format!("{}", 100_000 + i), "creationTimestamp": "2025-01-15T10:20:30Z",
            "labels": {"app": format!("app-{i}"), "team": "payments", "app.kubernetes.io/managed-by": "kubectl"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": manifest.to_string() + "\n"},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "time": "2025-01-15T10:20:30Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": fields, "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                    "f:labels": {".": {}, "f:app": {}, "f:team": {}}}, "f:type": {}}}]
        },
        "data": data,
        "type": "Opaque"
    });
    if with_type_meta {
        let m = s.as_object_mut().unwrap();
        let mut typed = serde_json::Map::new();
        typed.insert("kind".into(), json!("Secret"));
        typed.insert("apiVersion".into(), json!("v1"));
        typed.append(m);
        s = Value::Object(typed);
    }
    s
}

/// A SecretList as the API server writes it: items without kind/apiVersion.
fn secret_list() -> Vec<u8> {
    let items: Vec<Value> = (0..ITEMS).map(|i| secret(i, false)).collect();
    serde_json::to_vec(&json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": "123456"}, "items": items})).unwrap()
}

fn watch_stream() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..ITEMS {
        serde_json::to_writer(&mut s, &json!({"type": if i % 5 == 0 { "MODIFIED" } else { "ADDED" }, "object": secret(i, true)})).unwrap();
        s.push(b'\n');
    }
    s
}

fn mask_list(p: &MaskProfile, body: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    mask_body_into(p, body, out).unwrap()
}

fn mask_watch(p: &Arc<MaskProfile>, stream: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let mut m = WatchMasker::new(Arc::clone(p));
    let n: usize = stream.chunks(CHUNK).map(|c| m.feed(c, out).unwrap()).sum();
    m.finish().unwrap();
    n
}

fn copy_chunks(stream: &[u8], out: &mut Vec<u8>) {
    out.clear();
    for c in stream.chunks(CHUNK) {
        out.extend_from_slice(c);
    }
}

fn serde_round_trip(body: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(body).unwrap();
    serde_json::to_vec(&v).unwrap()
}

fn bench(c: &mut Criterion) {
    let profile = Arc::new(MaskProfile::builtin());
    let list = secret_list();
    let watch = watch_stream();
    let mut out = Vec::with_capacity(list.len().max(watch.len()));

    // Sanity: every data value is masked, in the list and in the annotation.
    let n = mask_list(&profile, &list, &mut out);
    assert_eq!(n, (0..ITEMS).map(|i| 2 * (3 + i % 3)).sum::<usize>());
    assert!(!String::from_utf8_lossy(&out).contains(&STANDARD.encode("value-0-0-")[..12]));
    assert_eq!(mask_watch(&profile, &watch, &mut out), n);

    let mut g = c.benchmark_group(format!("mask/SecretList {ITEMS} items"));
    g.throughput(Throughput::Bytes(list.len() as u64));
    g.sample_size(10);
    g.bench_function("copy (pass-through)", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&list));
        })
    });
    g.bench_function("serde_json Value round trip", |b| {
        b.iter(|| black_box(serde_round_trip(black_box(&list))))
    });
    g.bench_function("mask_body", |b| {
        b.iter(|| black_box(mask_list(&profile, black_box(&list), &mut out)))
    });
    g.finish();

    let mut g = c.benchmark_group(format!(
        "mask/watch {ITEMS} Secret events, {CHUNK} B chunks"
    ));
    g.throughput(Throughput::Bytes(watch.len() as u64));
    g.sample_size(10);
    g.bench_function("copy (pass-through)", |b| {
        b.iter(|| copy_chunks(black_box(&watch), &mut out))
    });
    g.bench_function("WatchMasker", |b| {
        b.iter(|| black_box(mask_watch(&profile, black_box(&watch), &mut out)))
    });
    g.finish();

    // One summary line per case: the best of five timed passes.
    let mut report = String::new();
    let mut line = |name: &str, bytes: usize, f: &mut dyn FnMut()| {
        let best = (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        let _ = writeln!(
            report,
            "{name:<48} {:>8.1} MB/s  ({:.1} MB in {:.1} ms)",
            bytes as f64 / best / 1e6,
            bytes as f64 / 1e6,
            best * 1e3
        );
    };
    let mut out2 = Vec::with_capacity(list.len().max(watch.len()));
    line("SecretList: copy", list.len(), &mut || {
        out2.clear();
        out2.extend_from_slice(black_box(&list));
    });
    line(
        "SecretList: serde_json Value round trip",
        list.len(),
        &mut || {
            black_box(serde_round_trip(&list));
        },
    );
    line("SecretList: mask_body", list.len(), &mut || {
        black_box(mask_list(&profile, &list, &mut out2));
    });
    line("watch: copy in chunks", watch.len(), &mut || {
        copy_chunks(&watch, &mut out2)
    });
    line("watch: WatchMasker", watch.len(), &mut || {
        black_box(mask_watch(&profile, &watch, &mut out2));
    });
    println!("\nmasking throughput (best of 5, one core):\n{report}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
