//! Literal replacement: across every chunk boundary, leftmost-longest, bounded carry.

use std::sync::Arc;

use super::*;
use serde_json::json;

fn replacer(values: &[&str]) -> Arc<Replacer> {
    Arc::new(Replacer::new(values.iter().map(|v| v.as_bytes())).unwrap())
}

fn stream(r: &Arc<Replacer>, chunks: &[&[u8]]) -> (Vec<u8>, usize) {
    let mut s = TextStream::new(Arc::clone(r));
    let mut out = Vec::new();
    let mut n = 0;
    for c in chunks {
        n += s.feed(c, &mut out);
        assert!(
            s.pending() < r.longest.max(1),
            "carry {} with longest {}",
            s.pending(),
            r.longest
        );
    }
    n += s.finish(&mut out);
    assert_eq!(s.replaced(), n as u64);
    (out, n)
}

/// Leftmost-longest replacement, the slow obvious way.
fn naive(values: &[&str], text: &[u8]) -> (Vec<u8>, usize) {
    let vals: Vec<&[u8]> = values
        .iter()
        .map(|v| v.as_bytes())
        .filter(|v| (MIN_VALUE_LEN..=MAX_VALUE_LEN).contains(&v.len()))
        .collect();
    let (mut out, mut i, mut n) = (Vec::new(), 0, 0);
    while i < text.len() {
        match vals
            .iter()
            .filter(|v| text[i..].starts_with(v))
            .map(|v| v.len())
            .max()
        {
            Some(l) => {
                out.extend_from_slice(TEXT.as_bytes());
                i += l;
                n += 1;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    (out, n)
}

const VALUES: &[&str] = &[
    "hunter2-pass",
    "hunter2-password",
    "word-is-x",
    "pass",
    "ab",
    "tok€n-ü",
    "\n-----BEGIN KEY-----\nMIIE\n",
];

fn text() -> Vec<u8> {
    "log: user=admin pass=hunter2-password\nretry hunter2-pass hunter2-passwor\nword-is-xword-is-x tok€n-ü ab abab\n\
     key:\n-----BEGIN KEY-----\nMIIE\n-----END KEY-----\nhunter2-pa"
        .as_bytes()
        .to_vec()
}

#[test]
fn every_split_point_gives_the_leftmost_longest_replacement() {
    let r = replacer(VALUES);
    let t = text();
    let want = naive(VALUES, &t);
    let mut all = Vec::new();
    assert_eq!((r.replace_all(&t, &mut all), &all), (want.1, &want.0));
    for i in 0..=t.len() {
        assert_eq!(stream(&r, &[&t[..i], &t[i..]]), want, "split at {i}");
    }
    for i in (0..t.len()).step_by(5) {
        for j in (i..t.len()).step_by(3) {
            assert_eq!(
                stream(&r, &[&t[..i], &t[i..j], &t[j..]]),
                want,
                "split at {i}, {j}"
            );
        }
    }
    let bytes: Vec<&[u8]> = t.chunks(1).collect();
    assert_eq!(stream(&r, &bytes), want, "byte by byte");
    let out = String::from_utf8(want.0).unwrap();
    for v in ["hunter2-pass", "word-is-x", "tok€n", "BEGIN KEY"] {
        assert!(!out.contains(v), "{v} in {out}");
    }
    assert!(
        out.contains("hunter2-pa") && out.ends_with("hunter2-pa"),
        "a partial value at the end is flushed as it is"
    );
    assert!(
        out.contains(" ab abab"),
        "values under {MIN_VALUE_LEN} bytes are not searched for"
    );
}

#[test]
fn random_texts_and_values_agree_with_the_naive_replacement() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for _ in 0..300 {
        let word = |next: &mut dyn FnMut(u64) -> u64, len: u64| {
            (0..len)
                .map(|_| [b'a', b'b', b'c', b'\n'][next(4) as usize] as char)
                .collect::<String>()
        };
        let vals: Vec<String> = (0..1 + next(5))
            .map(|_| {
                let l = 4 + next(6);
                word(&mut next, l)
            })
            .collect();
        let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
        let l = next(120);
        let t = word(&mut next, l).into_bytes();
        let r = replacer(&refs);
        let want = naive(&refs, &t);
        let (i, j) = (
            next(t.len() as u64 + 1) as usize,
            next(t.len() as u64 + 1) as usize,
        );
        let (i, j) = (i.min(j), i.max(j));
        assert_eq!(
            stream(&r, &[&t[..i], &t[i..j], &t[j..]]),
            want,
            "values {refs:?} text {:?} split {i} {j}",
            String::from_utf8_lossy(&t)
        );
    }
}

#[test]
fn lines_are_not_held_back_unless_they_may_start_a_value() {
    let r = replacer(&["super-secret-value"]);
    let mut s = TextStream::new(Arc::clone(&r));
    let mut out = Vec::new();
    s.feed(b"ready\n", &mut out);
    assert_eq!(
        (out.as_slice(), s.pending()),
        (&b"ready\n"[..], 0),
        "kubectl logs -f sees the line at once"
    );
    s.feed(b"value: super-sec", &mut out);
    assert_eq!(s.pending(), "super-sec".len());
    assert_eq!(out, b"ready\nvalue: ");
    s.feed(b"ret-value!\n", &mut out);
    assert_eq!(s.pending(), 0);
    assert_eq!(out, b"ready\nvalue: hoop-kube:masked!\n");
    assert_eq!(s.finish(&mut out), 0);
}

#[test]
fn no_values_means_pass_through() {
    let r = replacer(&["abc", ""]);
    assert!(r.is_empty());
    let (out, n) = stream(&r, &[b"abc", b"def"]);
    assert_eq!((out.as_slice(), n), (&b"abcdef"[..], 0));
    let long = "x".repeat(MAX_VALUE_LEN + 1);
    assert!(replacer(&[&long]).is_empty());
}

#[test]
fn debug_never_shows_values() {
    let r = replacer(&["super-secret-value"]);
    let d = format!("{r:?} {:?}", TextStream::new(Arc::clone(&r)));
    assert!(!d.contains("super-secret"), "{d}");
}

#[test]
fn values_of_secrets_and_lists() {
    let secret = json!({"kind": "Secret", "data": {"a": "c3VwZXItc2VjcmV0LXZhbHVl", "b": "not base64!"}, "stringData": {"c": "plain-value"}});
    let vals = secret_values(&secret);
    for want in [
        &b"super-secret-value"[..],
        b"c3VwZXItc2VjcmV0LXZhbHVl",
        b"not base64!",
        b"plain-value",
    ] {
        assert!(
            vals.iter().any(|v| v == want),
            "{}",
            String::from_utf8_lossy(want)
        );
    }
    let list = json!({"kind": "SecretList", "items": [{"data": {"a": "dmFsdWUtb25l"}}, {"kind": "Secret", "data": {"a": "dmFsdWUtdHdv"}}]});
    let vals = secret_values(&list);
    assert!(vals.contains(&b"value-one".to_vec()) && vals.contains(&b"value-two".to_vec()));
    let generic = json!({"kind": "List", "items": [secret, {"kind": "ConfigMap", "data": {"x": "configmap-value"}}, {"data": {"y": "kindless"}}]});
    let vals = secret_values(&generic);
    assert!(vals.contains(&b"plain-value".to_vec()));
    assert!(!vals.contains(&b"configmap-value".to_vec()) && !vals.contains(&b"kindless".to_vec()));
    // The values feed a replacer directly.
    let r = Arc::new(Replacer::new(secret_values(&list)).unwrap());
    assert_eq!(
        stream(&r, &[b"value-", b"one value-two"]),
        (b"hoop-kube:masked hoop-kube:masked".to_vec(), 2)
    );
}
