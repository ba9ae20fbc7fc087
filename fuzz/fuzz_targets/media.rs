//! Fuzzes `Accept` negotiation (`kube::media`) on arbitrary UTF-8.
//!
//! Checked: no panic; parsed ranges are lowercased `type/subtype` with lowercased parameter
//! names; a Table, PartialObjectMetadata or aggregated-discovery answer is only given when a
//! JSON range really asked for it with the exact parameters; `None` means plain JSON.
#![no_main]

use hoop_kube::kube::media::{negotiate_discovery, negotiate_object, parse_accept, MediaRange, Representation};
use libfuzzer_sys::fuzz_target;

fn json_range(r: &MediaRange) -> bool {
    matches!(r.essence.as_str(), "application/json" | "application/*" | "*/*")
}

fn asked(ranges: &[MediaRange], g: &str, v: &str, as_: &[&str]) -> bool {
    ranges.iter().any(|r| {
        json_range(r) && r.param("g") == Some(g) && r.param("v") == Some(v) && r.param("as").is_some_and(|a| as_.contains(&a))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(accept) = std::str::from_utf8(data) else {
        return;
    };
    let ranges = parse_accept(accept);
    assert!(ranges.len() <= accept.split(',').count());
    for r in &ranges {
        assert!(r.essence.contains('/'), "essence without '/': {r:?}");
        assert_eq!(r.essence, r.essence.to_ascii_lowercase());
        assert_eq!(r.essence, r.essence.trim());
        for (k, _) in &r.params {
            assert_eq!(k, &k.to_ascii_lowercase());
        }
    }

    let obj = negotiate_object(Some(accept));
    match obj {
        Representation::Json => {}
        Representation::Table(v) => assert!(asked(&ranges, "meta.k8s.io", v, &["Table"]), "{accept:?} -> {obj:?}"),
        Representation::PartialMetadata(v) => assert!(
            asked(&ranges, "meta.k8s.io", v, &["PartialObjectMetadata", "PartialObjectMetadataList"]),
            "{accept:?} -> {obj:?}"
        ),
        Representation::AggregatedDiscovery(_) => panic!("object negotiation chose discovery for {accept:?}"),
    }
    let disc = negotiate_discovery(Some(accept));
    match disc {
        Representation::Json => {}
        Representation::AggregatedDiscovery(v) => assert!(
            asked(&ranges, "apidiscovery.k8s.io", v, &["APIGroupDiscoveryList"]),
            "{accept:?} -> {disc:?}"
        ),
        other => panic!("discovery negotiation chose {other:?} for {accept:?}"),
    }
    let _ = (obj.content_type(), disc.content_type());
    assert_eq!(negotiate_object(None), Representation::Json);
    assert_eq!(negotiate_discovery(None), Representation::Json);
});
