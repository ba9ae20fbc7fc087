//! How a secret is laid out in a flat keyring: the keys of slots, chunks and the index, the
//! manifest and chunk format, and the verification of what is read back.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::os_keyring::RawStore;
use super::{check_ident, new_gen_id, sha256_hex, StoreError, MAX_VALUE_LEN};

/// Most chunks a manifest may name (guards against a forged manifest making us loop).
const MAX_CHUNKS: u32 = 4096;
/// Most stale generations a manifest remembers for later cleanup.
const MAX_STALE: usize = 16;
/// Room left in an inline manifest so that recording one more generation still fits one item.
pub(super) const INLINE_SLACK: usize = 256;

/// Keyring user of a secret's manifest. Names cannot contain `/` or `#` nor start with `.`, so
/// the keys of different profiles, names, chunks and the index never collide.
pub(super) fn slot_key(profile: &str, name: &str) -> String {
    format!("{profile}/{name}")
}

fn index_key(profile: &str) -> String {
    format!("{profile}/.index")
}

fn chunk_key(slot: &str, gen: &str, index: u32) -> String {
    format!("{slot}#{gen}.{index}")
}

const INDEX_NAME: &str = ".index";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    /// The value follows the header in the same item.
    Inline,
    /// The value is in `gen.count` chunk items.
    Chunked,
    /// No value (a delete or first write in progress); only `stale` matters.
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Gen {
    pub(super) id: String,
    pub(super) count: u32,
}

/// The header of a slot's main item. Encoded as one JSON line, followed (for `inline`) by the
/// value's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Manifest {
    pub(super) v: u32,
    pub(super) kind: Kind,
    #[serde(default)]
    pub(super) len: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gen: Option<Gen>,
    /// Chunk generations that may still exist and must be deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) stale: Vec<Gen>,
}

impl Manifest {
    fn absent(stale: Vec<Gen>) -> Self {
        Manifest {
            v: 1,
            kind: Kind::Absent,
            len: 0,
            sha256: String::new(),
            gen: None,
            stale,
        }
    }

    pub(super) fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("a manifest always serializes");
        out.push(b'\n');
        out.extend_from_slice(payload);
        out
    }

    /// All chunk generations this manifest knows of (current first).
    fn generations(&self) -> Vec<Gen> {
        self.gen.iter().chain(self.stale.iter()).cloned().collect()
    }

    fn validate(&self) -> Result<(), String> {
        fn gen_ok(g: &Gen) -> bool {
            g.id.len() == 16
                && g.id.bytes().all(|b| b.is_ascii_hexdigit())
                && g.count >= 1
                && g.count <= MAX_CHUNKS
        }
        if self.v != 1 {
            return Err(format!("unknown manifest version {}", self.v));
        }
        if self.len > MAX_VALUE_LEN as u64 {
            return Err(format!("manifest claims {} bytes", self.len));
        }
        if self.stale.len() > MAX_STALE || !self.stale.iter().all(gen_ok) {
            return Err("bad stale generation list".into());
        }
        let sha_ok = self.sha256.len() == 64 && self.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        match self.kind {
            Kind::Absent if self.gen.is_none() => Ok(()),
            Kind::Inline if self.gen.is_none() && sha_ok => Ok(()),
            Kind::Chunked if sha_ok && self.gen.as_ref().is_some_and(gen_ok) => Ok(()),
            _ => Err("inconsistent manifest".into()),
        }
    }
}

fn corrupt(raw: &dyn RawStore, name: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        name: name.to_string(),
        location: format!("the {}", raw.label()),
        detail: detail.into(),
    }
}

/// Splits and checks a slot's main item into its manifest and inline payload.
pub(super) fn decode_manifest(mut item: Vec<u8>) -> Result<(Manifest, Vec<u8>), String> {
    let Some(newline) = item.iter().position(|&b| b == b'\n') else {
        return Err("manifest has no header line".into());
    };
    let manifest: Manifest = serde_json::from_slice(&item[..newline])
        .map_err(|_| "manifest does not parse".to_string())?;
    manifest.validate()?;
    let payload = item.split_off(newline + 1);
    if manifest.kind != Kind::Inline && !payload.is_empty() {
        return Err("unexpected bytes after the manifest".into());
    }
    Ok((manifest, payload))
}

/// Reads and checks a slot's manifest; `Ok(None)` if the slot does not exist.
fn read_manifest(
    raw: &dyn RawStore,
    key: &str,
    name: &str,
) -> Result<Option<(Manifest, Vec<u8>)>, StoreError> {
    let Some(item) = raw.get(key)? else {
        return Ok(None);
    };
    decode_manifest(item)
        .map(Some)
        .map_err(|why| corrupt(raw, name, why))
}

fn verify(raw: &dyn RawStore, name: &str, m: &Manifest, value: &[u8]) -> Result<(), StoreError> {
    if value.len() as u64 != m.len {
        return Err(corrupt(
            raw,
            name,
            format!("{} bytes where the manifest says {}", value.len(), m.len),
        ));
    }
    if sha256_hex(value) != m.sha256 {
        return Err(corrupt(raw, name, "SHA-256 does not match the manifest"));
    }
    Ok(())
}

fn cap_stale(mut stale: Vec<Gen>) -> Vec<Gen> {
    if stale.len() > MAX_STALE {
        let excess = stale.len() - MAX_STALE;
        tracing::warn!(
            forgotten = excess,
            "secret store: too many leftover chunk generations; forgetting the oldest"
        );
        stale.drain(..excess);
    }
    stale
}

/// Stores `value` in the slot `key` (see the module docs for the protocol).
pub(super) fn put_slot(
    raw: &dyn RawStore,
    key: &str,
    name: &str,
    value: &[u8],
) -> Result<(), StoreError> {
    let old = match read_manifest(raw, key, name) {
        Ok(old) => old,
        Err(StoreError::Corrupt { .. }) => {
            // Overwriting is the repair; chunks the unreadable manifest named cannot be found.
            tracing::warn!(
                secret = name,
                "secret store: replacing an unreadable manifest"
            );
            None
        }
        Err(e) => return Err(e),
    };
    let stale = cap_stale(
        old.as_ref()
            .map(|(m, _)| m.generations())
            .unwrap_or_default(),
    );
    let chunk = raw.chunk_size();
    let sha256 = sha256_hex(value);
    let inline = Manifest {
        v: 1,
        kind: Kind::Inline,
        len: value.len() as u64,
        sha256: sha256.clone(),
        gen: None,
        stale: stale.clone(),
    }
    .encode(value);
    let written = if inline.len() + INLINE_SLACK.min(chunk / 4) <= chunk {
        raw.set(key, &inline)?;
        inline
    } else {
        let count = value.len().div_ceil(chunk);
        if count > MAX_CHUNKS as usize {
            return Err(StoreError::TooLarge {
                name: name.to_string(),
                len: value.len(),
                max: MAX_CHUNKS as usize * chunk,
            });
        }
        let gen = Gen {
            id: new_gen_id(),
            count: count as u32,
        };
        // 1. Record the new generation before writing it, so that a crash leaves a trace.
        let intent = match &old {
            Some((m, payload)) => {
                let mut m = m.clone();
                m.stale = cap_stale(m.stale.iter().cloned().chain([gen.clone()]).collect());
                Some(m.encode(payload)).filter(|e| e.len() <= chunk)
            }
            None => None,
        }
        .unwrap_or_else(|| {
            let mut pending = stale.clone();
            pending.push(gen.clone());
            Manifest::absent(cap_stale(pending)).encode(&[])
        });
        raw.set(key, &intent)?;
        // 2. The chunks.
        for (i, part) in value.chunks(chunk).enumerate() {
            if let Err(e) = raw.set(&chunk_key(key, &gen.id, i as u32), part) {
                for j in 0..=i {
                    let _ = raw.delete(&chunk_key(key, &gen.id, j as u32));
                }
                return Err(e);
            }
        }
        // 3. The manifest that points at them.
        let manifest = Manifest {
            v: 1,
            kind: Kind::Chunked,
            len: value.len() as u64,
            sha256,
            gen: Some(gen),
            stale,
        }
        .encode(&[]);
        raw.set(key, &manifest)?;
        manifest
    };
    // 4. Delete the old chunks.
    sweep(raw, key, name, &written);
    Ok(())
}

/// Deletes the stale generations listed by the manifest we just wrote (`written`), then
/// rewrites it without them, unless another writer replaced it meanwhile. Generations that could
/// not be deleted stay listed for the next write.
fn sweep(raw: &dyn RawStore, key: &str, name: &str, written: &[u8]) {
    let Ok((mut m, payload)) = decode_manifest(written.to_vec()) else {
        return;
    };
    if m.stale.is_empty() {
        return;
    }
    let mut left = Vec::new();
    for gen in std::mem::take(&mut m.stale) {
        let mut ok = true;
        for i in 0..gen.count {
            if let Err(e) = raw.delete(&chunk_key(key, &gen.id, i)) {
                tracing::warn!(secret = name, error = %e, "secret store: cannot delete an old chunk");
                ok = false;
            }
        }
        if !ok {
            left.push(gen);
        }
    }
    m.stale = left;
    if raw.get(key).ok().flatten().as_deref() == Some(written) {
        if let Err(e) = raw.set(key, &m.encode(&payload)) {
            tracing::warn!(secret = name, error = %e, "secret store: cannot tidy a manifest");
        }
    }
}

/// Reads the slot `key`; `None` if absent. Retries when a concurrent writer replaced the value
/// while its chunks were being read.
pub(super) fn get_slot(
    raw: &dyn RawStore,
    key: &str,
    name: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some((m, payload)) = read_manifest(raw, key, name)? else {
            return Ok(None);
        };
        let gen = match (&m.kind, &m.gen) {
            (Kind::Absent, _) => return Ok(None),
            (Kind::Inline, _) => {
                verify(raw, name, &m, &payload)?;
                return Ok(Some(payload));
            }
            (Kind::Chunked, Some(gen)) => gen,
            (Kind::Chunked, None) => unreachable!("validated"),
        };
        let mut value = Vec::with_capacity(m.len as usize);
        let mut failure = None;
        for i in 0..gen.count {
            match raw.get(&chunk_key(key, &gen.id, i))? {
                Some(part) if value.len() + part.len() <= m.len as usize => {
                    value.extend_from_slice(&part)
                }
                Some(_) => {
                    failure = Some(corrupt(
                        raw,
                        name,
                        "chunks are longer than the manifest says",
                    ));
                    break;
                }
                None => {
                    failure = Some(StoreError::ChunkMissing {
                        name: name.to_string(),
                        location: raw.label(),
                        index: i,
                        count: gen.count,
                    });
                    break;
                }
            }
        }
        let failure = match failure {
            None => match verify(raw, name, &m, &value) {
                Ok(()) => return Ok(Some(value)),
                Err(e) => e,
            },
            Some(e) => e,
        };
        let changed = match read_manifest(raw, key, name) {
            Ok(Some((now, _))) => now != m,
            _ => true,
        };
        if !changed || attempt >= 3 {
            return Err(failure);
        }
    }
}

/// Deletes the slot `key` and all its chunks. Absent is fine.
pub(super) fn delete_slot(raw: &dyn RawStore, key: &str, name: &str) -> Result<(), StoreError> {
    match read_manifest(raw, key, name) {
        Ok(None) => Ok(()),
        Ok(Some((m, _))) => {
            let gens = m.generations();
            if !gens.is_empty() {
                // Readers see "no value" at once; a crash from here on leaves a record.
                raw.set(key, &Manifest::absent(gens.clone()).encode(&[]))?;
                for gen in &gens {
                    for i in 0..gen.count {
                        raw.delete(&chunk_key(key, &gen.id, i))?;
                    }
                }
            }
            raw.delete(key)
        }
        Err(StoreError::Corrupt { .. }) => raw.delete(key),
        Err(e) => Err(e),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    v: u32,
    names: BTreeSet<String>,
}

pub(super) fn read_index(
    raw: &dyn RawStore,
    profile: &str,
) -> Result<BTreeSet<String>, StoreError> {
    let Some(bytes) = get_slot(raw, &index_key(profile), INDEX_NAME)? else {
        return Ok(BTreeSet::new());
    };
    let index: Index = serde_json::from_slice(&bytes)
        .map_err(|_| corrupt(raw, INDEX_NAME, "the profile's index does not parse"))?;
    if index.v != 1 || index.names.iter().any(|n| check_ident(n).is_err()) {
        return Err(corrupt(raw, INDEX_NAME, "the profile's index is invalid"));
    }
    Ok(index.names)
}

pub(super) fn write_index(
    raw: &dyn RawStore,
    profile: &str,
    names: &BTreeSet<String>,
) -> Result<(), StoreError> {
    let key = index_key(profile);
    if names.is_empty() {
        return delete_slot(raw, &key, INDEX_NAME);
    }
    let bytes = serde_json::to_vec(&Index {
        v: 1,
        names: names.clone(),
    })
    .expect("an index always serializes");
    put_slot(raw, &key, INDEX_NAME, &bytes)
}

pub(super) fn delete_all_slots(raw: &dyn RawStore, profile: &str) -> Result<(), StoreError> {
    let key = index_key(profile);
    let names = match read_index(raw, profile) {
        Ok(names) => names,
        Err(StoreError::Corrupt { .. }) => {
            delete_slot(raw, &key, INDEX_NAME)?;
            return Err(corrupt(
                raw,
                INDEX_NAME,
                "the profile's index was unreadable and is now deleted; entries it listed may remain",
            ));
        }
        Err(e) => return Err(e),
    };
    let mut first_error = None;
    let mut left = BTreeSet::new();
    for name in names {
        if let Err(e) = delete_slot(raw, &slot_key(profile, &name), &name) {
            first_error.get_or_insert(e);
            left.insert(name);
        }
    }
    write_index(raw, profile, &left)?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
