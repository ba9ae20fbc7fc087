//! Unit tests of the secret store that need no OS keyring: the file backend in a temporary
//! directory, and the chunking protocol over an in-memory item store whose item size (and
//! failures) the tests choose. `tests/keyring_store.rs` runs the same API against the real kernel
//! keyring and Secret Service.

use super::chunks::{decode_manifest, Gen, Kind, Manifest, INLINE_SLACK};
use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex as StdMutex;

/// An in-memory keyring: a flat map of items, with an item size limit that it enforces (like
/// the kernel keyring's 32767 bytes) and an optional failure after a number of writes.
struct MemRaw {
    chunk: usize,
    items: StdMutex<BTreeMap<String, Vec<u8>>>,
    /// Writes left before every further write fails (`usize::MAX`: never).
    writes_left: AtomicUsize,
    writes: AtomicUsize,
}

impl MemRaw {
    fn new(chunk: usize) -> Arc<Self> {
        Arc::new(MemRaw {
            chunk,
            items: StdMutex::new(BTreeMap::new()),
            writes_left: AtomicUsize::new(usize::MAX),
            writes: AtomicUsize::new(0),
        })
    }

    fn fail_after(&self, writes: usize) {
        self.writes_left.store(writes, Ordering::SeqCst);
    }

    fn heal(&self) {
        self.writes_left.store(usize::MAX, Ordering::SeqCst);
    }

    fn keys(&self) -> Vec<String> {
        self.items.lock().unwrap().keys().cloned().collect()
    }

    fn keys_with(&self, prefix: &str) -> Vec<String> {
        self.keys()
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .collect()
    }

    fn raw_get(&self, key: &str) -> Option<Vec<u8>> {
        self.items.lock().unwrap().get(key).cloned()
    }

    fn raw_set(&self, key: &str, value: Vec<u8>) {
        self.items.lock().unwrap().insert(key.to_string(), value);
    }

    fn raw_remove(&self, key: &str) {
        self.items.lock().unwrap().remove(key);
    }
}

impl RawStore for MemRaw {
    fn label(&self) -> &'static str {
        "memory store"
    }

    fn chunk_size(&self) -> usize {
        self.chunk
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StoreError::Keyring {
                keyring: "memory store",
                op: "write",
                detail: "injected failure".into(),
            });
        }
        if left != usize::MAX {
            self.writes_left.store(left - 1, Ordering::SeqCst);
        }
        assert!(
            value.len() <= self.chunk,
            "item {key} of {} bytes exceeds the {}-byte limit",
            value.len(),
            self.chunk
        );
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.raw_set(key, value.to_vec());
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.raw_get(key))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.raw_remove(key);
        Ok(())
    }
}

fn mem_store(profile: &str, raw: &Arc<MemRaw>) -> SecretStore {
    SecretStore::with_raw(profile, raw.clone() as Arc<dyn RawStore>).unwrap()
}

/// Bytes that are not UTF-8 and include every byte value.
fn binary(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i < 256 {
                i as u8
            } else {
                (x >> 8) as u8
            }
        })
        .collect()
}

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    chmod(dir.path(), 0o700);
    dir
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Names, backends, errors

#[test]
fn profile_and_name_validation() {
    for bad in [
        "",
        ".hidden",
        "a/b",
        "a#b",
        "a b",
        "ü",
        "-x",
        &"x".repeat(65),
    ] {
        assert!(
            matches!(
                SecretStore::new(bad, Backend::Keyring),
                Err(StoreError::InvalidProfile { .. })
            ),
            "profile {bad:?} accepted"
        );
    }
    for good in ["default", "prod-eu.1", "A_b", &"x".repeat(64)] {
        SecretStore::new(good, Backend::Keyring).unwrap();
        SecretStore::new(good, Backend::File).unwrap();
    }
}

#[tokio::test]
async fn secret_names_are_validated_before_any_io() {
    let raw = MemRaw::new(1000);
    let store = mem_store("p", &raw);
    for bad in ["", ".index", "a/b", "x#0", "../etc"] {
        assert!(matches!(
            store.put(bad, b"v").await,
            Err(StoreError::InvalidName { .. })
        ));
        assert!(matches!(
            store.get(bad).await,
            Err(StoreError::InvalidName { .. })
        ));
        assert!(matches!(
            store.delete(bad).await,
            Err(StoreError::InvalidName { .. })
        ));
    }
    assert!(raw.keys().is_empty());
}

#[test]
fn backend_parses_and_prints() {
    assert_eq!("keyring".parse::<Backend>().unwrap(), Backend::Keyring);
    assert_eq!("file".parse::<Backend>().unwrap(), Backend::File);
    assert_eq!(Backend::File.to_string(), "file");
    let err = "vault".parse::<Backend>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown token store \"vault\"; use `keyring` or `file`"
    );
}

#[test]
fn no_usable_keyring_is_one_line_naming_the_fix() {
    let err = no_usable(vec![
        "Secret Service: no D-Bus session bus".into(),
        "kernel keyring: permission\n denied".into(),
    ]);
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.starts_with(
            "no usable OS keyring (Secret Service: no D-Bus session bus; kernel keyring: \
             permission denied); run with --token-store file to keep secrets in a 0600 file under "
        ),
        "{msg}"
    );
    assert!(msg.contains("hoop-kube/secrets"), "{msg}");
}

#[tokio::test]
async fn debug_and_errors_never_show_values() {
    let secret = b"s3cr3t-refresh-token-value";
    let raw = MemRaw::new(200);
    let store = mem_store("p", &raw);
    store.put("refresh_token", secret).await.unwrap();
    let dbg = format!("{store:?}");
    assert!(dbg.contains("Keyring") && dbg.contains("\"p\""), "{dbg}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");

    // A corrupt value's error names the secret and the problem, not the bytes.
    let mut item = raw.raw_get("p/refresh_token").unwrap();
    let last = item.len() - 1;
    item[last] ^= 1;
    raw.raw_set("p/refresh_token", item);
    let err = store.get("refresh_token").await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("s3cr3t") && !text.contains("s3cr3u"),
        "{text}"
    );
    assert!(text.contains("refresh_token"), "{text}");

    let dir = private_dir();
    let file_store = SecretStore::new_file_in("p", dir.path()).unwrap();
    file_store.put("k", secret).await.unwrap();
    assert!(!format!("{file_store:?}").contains("s3cr3t"));
}

// ---------------------------------------------------------------------------------------------
// The file backend

#[tokio::test]
async fn file_round_trip() {
    let dir = private_dir();
    let secrets = dir.path().join("state/hoop-kube/secrets");
    let store = SecretStore::new_file_in("default", &secrets).unwrap();
    assert_eq!(store.backend(), Backend::File);
    assert_eq!(store.get("id_token").await.unwrap(), None);
    // Reading creates nothing.
    assert!(!secrets.exists());

    let big = binary(100 * 1024, 7);
    store.put("id_token", b"eyJhbGciOi.x.y").await.unwrap();
    store.put("client_key", &big).await.unwrap();
    store.put("empty", b"").await.unwrap();
    assert_eq!(
        store.get("id_token").await.unwrap().as_deref(),
        Some(&b"eyJhbGciOi.x.y"[..])
    );
    assert_eq!(store.get("client_key").await.unwrap(), Some(big.clone()));
    assert_eq!(store.get("empty").await.unwrap(), Some(Vec::new()));

    store.put("id_token", b"second").await.unwrap();
    assert_eq!(
        store.get("id_token").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );

    let path = secrets.join("default.json");
    assert_eq!(
        store.describe().await.unwrap(),
        format!("file {}", path.display())
    );
    #[cfg(unix)]
    {
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(&secrets), 0o700);
        assert_eq!(mode_of(secrets.parent().unwrap()), 0o700);
    }
    // Only the file itself: no temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(&secrets)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["default.json"]);
    // The values are not in the file in the clear.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("second"), "{text}");

    store.delete("id_token").await.unwrap();
    store.delete("id_token").await.unwrap();
    assert_eq!(store.get("id_token").await.unwrap(), None);
    assert_eq!(store.get("client_key").await.unwrap(), Some(big));
    store.delete("client_key").await.unwrap();
    store.delete("empty").await.unwrap();
    // The last delete removes the file.
    assert!(!path.exists());
}

#[cfg(unix)]
#[tokio::test]
async fn file_refuses_a_file_others_can_read() {
    let dir = private_dir();
    let store = SecretStore::new_file_in("default", dir.path()).unwrap();
    store.put("refresh_token", b"rt").await.unwrap();
    let path = dir.path().join("default.json");
    for mode in [0o640, 0o604, 0o666] {
        chmod(&path, mode);
        let err = store.get("refresh_token").await.unwrap_err();
        assert!(
            matches!(err, StoreError::PermissionsTooOpen { fix: "600", .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(!msg.contains('\n'));
        assert_eq!(
            msg,
            format!(
                "refusing to use {p}: mode {mode:04o} gives other users access; run `chmod 600 {p}`",
                p = path.display()
            )
        );
        // Writes read the file first, so they refuse too, and leave it alone.
        assert!(store.put("refresh_token", b"new").await.is_err());
        assert_eq!(mode_of(&path), mode);
    }
    chmod(&path, 0o600);
    assert_eq!(
        store.get("refresh_token").await.unwrap().as_deref(),
        Some(&b"rt"[..])
    );
}

#[cfg(unix)]
#[tokio::test]
async fn file_refuses_an_open_directory_a_symlink_and_a_non_file() {
    let dir = private_dir();
    let secrets = dir.path().join("secrets");
    let store = SecretStore::new_file_in("default", &secrets).unwrap();
    store.put("k", b"v").await.unwrap();

    chmod(&secrets, 0o755);
    let err = store.get("k").await.unwrap_err();
    assert!(err.to_string().contains("run `chmod 700 "), "{err}");
    assert!(store.put("k", b"w").await.is_err());
    chmod(&secrets, 0o700);

    let real = secrets.join("elsewhere.json");
    std::fs::rename(secrets.join("default.json"), &real).unwrap();
    std::os::unix::fs::symlink(&real, secrets.join("default.json")).unwrap();
    let err = store.get("k").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Insecure {
                reason: "it is a symbolic link",
                ..
            }
        ),
        "{err:?}"
    );
    std::fs::remove_file(secrets.join("default.json")).unwrap();

    std::fs::create_dir(secrets.join("default.json")).unwrap();
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Insecure { .. }), "{err:?}");
}

#[tokio::test]
async fn file_rejects_a_corrupt_file() {
    let dir = private_dir();
    let store = SecretStore::new_file_in("default", dir.path()).unwrap();
    store.put("k", b"v").await.unwrap();
    let path = dir.path().join("default.json");
    std::fs::write(&path, b"{\"v\":1,\"secrets\":{\"k\":\"%%%\"}}").unwrap();
    assert!(matches!(
        store.get("k").await,
        Err(StoreError::Corrupt { .. })
    ));
    std::fs::write(&path, b"not json").unwrap();
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    // Logout still works, and clears it.
    store.delete_all().await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn file_profiles_are_isolated_and_delete_all_forgets_one_profile() {
    let dir = private_dir();
    let a = SecretStore::new_file_in("a", dir.path()).unwrap();
    let b = SecretStore::new_file_in("b", dir.path()).unwrap();
    a.put("refresh_token", b"A").await.unwrap();
    b.put("refresh_token", b"B").await.unwrap();
    a.put("client_key", b"KA").await.unwrap();
    assert_eq!(
        a.get("refresh_token").await.unwrap().as_deref(),
        Some(&b"A"[..])
    );
    assert_eq!(
        b.get("refresh_token").await.unwrap().as_deref(),
        Some(&b"B"[..])
    );
    assert_eq!(b.get("client_key").await.unwrap(), None);

    // A temporary file a crash left behind is forgotten by logout too.
    let leftover = dir.path().join(".a.json.0123456789abcdef.tmp");
    std::fs::write(&leftover, b"secret").unwrap();
    a.delete_all().await.unwrap();
    a.delete_all().await.unwrap();
    assert!(!leftover.exists());
    assert_eq!(a.get("refresh_token").await.unwrap(), None);
    assert_eq!(a.get("client_key").await.unwrap(), None);
    assert_eq!(
        b.get("refresh_token").await.unwrap().as_deref(),
        Some(&b"B"[..])
    );
}

#[tokio::test]
async fn file_probe_uses_the_default_directory() {
    // The default directory follows XDG_STATE_HOME; the probe must leave nothing behind. (Only
    // checks the path here: changing the environment would race other tests.)
    let dir = default_file_dir().unwrap();
    assert!(dir.ends_with("hoop-kube/secrets"), "{}", dir.display());
    let tmp = private_dir();
    file_probe(tmp.path()).unwrap();
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Chunking over the in-memory store

#[tokio::test]
async fn small_values_live_inline_in_one_item() {
    let raw = MemRaw::new(1000);
    let store = mem_store("p", &raw);
    store.put("id_token", b"small").await.unwrap();
    assert_eq!(raw.keys(), ["p/.index", "p/id_token"]);
    assert_eq!(
        store.get("id_token").await.unwrap().as_deref(),
        Some(&b"small"[..])
    );
    store.put("empty", b"").await.unwrap();
    assert_eq!(store.get("empty").await.unwrap(), Some(Vec::new()));
}

#[tokio::test]
async fn large_values_are_split_and_reassembled() {
    let raw = MemRaw::new(300);
    let store = mem_store("p", &raw);
    for len in [299, 300, 301, 599, 600, 601, 3000, 10_007] {
        let value = binary(len, len as u8);
        store.put("v", &value).await.unwrap();
        assert_eq!(store.get("v").await.unwrap(), Some(value), "len {len}");
        let chunks = raw.keys_with("p/v#");
        assert_eq!(chunks.len(), len.div_ceil(300), "len {len}: {chunks:?}");
        // Old generations are gone, and the manifest no longer lists them.
        let gens: BTreeSet<_> = chunks
            .iter()
            .map(|k| k.split(['#', '.']).nth(1).unwrap().to_string())
            .collect();
        assert!(gens.len() <= 1, "{chunks:?}");
        let (m, _) = decode_manifest(raw.raw_get("p/v").unwrap()).unwrap();
        assert!(m.stale.is_empty(), "{m:?}");
    }
    // Back to a small value: the chunks go.
    store.put("v", b"tiny").await.unwrap();
    assert!(raw.keys_with("p/v#").is_empty());
    assert_eq!(store.get("v").await.unwrap().as_deref(), Some(&b"tiny"[..]));
}

#[tokio::test]
async fn chunk_size_of_the_kernel_keyring() {
    // 100 KiB through items of at most 32767 bytes: 4 chunks.
    let raw = MemRaw::new(32767);
    let store = mem_store("p", &raw);
    let value = binary(100 * 1024, 3);
    store.put("client_key", &value).await.unwrap();
    assert_eq!(raw.keys_with("p/client_key#").len(), 4);
    assert_eq!(store.get("client_key").await.unwrap(), Some(value));
}

#[tokio::test]
async fn a_missing_chunk_is_an_error_not_a_truncation() {
    let raw = MemRaw::new(300);
    let store = mem_store("p", &raw);
    store.put("v", &binary(1000, 1)).await.unwrap();
    let chunks = raw.keys_with("p/v#");
    let last = chunks.iter().find(|k| k.ends_with(".3")).unwrap();
    raw.raw_remove(last);
    let err = store.get("v").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::ChunkMissing {
                index: 3,
                count: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("chunk 3 of 4 is missing"), "{err}");
}

#[tokio::test]
async fn manifest_mismatches_are_detected() {
    let raw = MemRaw::new(300);
    let store = mem_store("p", &raw);
    let value = binary(1000, 2);

    // A flipped bit in a chunk.
    store.put("v", &value).await.unwrap();
    let chunk = raw.keys_with("p/v#")[1].clone();
    let mut bytes = raw.raw_get(&chunk).unwrap();
    bytes[10] ^= 0x80;
    raw.raw_set(&chunk, bytes);
    let err = store.get("v").await.unwrap_err();
    assert!(err.to_string().contains("SHA-256 does not match"), "{err}");

    // A chunk that is shorter (same count, fewer bytes).
    store.put("v", &value).await.unwrap();
    let chunk = raw.keys_with("p/v#")[0].clone();
    let mut bytes = raw.raw_get(&chunk).unwrap();
    bytes.pop();
    raw.raw_set(&chunk, bytes);
    let err = store.get("v").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("999 bytes where the manifest says 1000"),
        "{err}"
    );

    // A chunk that is longer.
    store.put("v", &value).await.unwrap();
    let chunk = raw.keys_with("p/v#")[0].clone();
    let mut bytes = raw.raw_get(&chunk).unwrap();
    bytes.push(0);
    raw.raw_set(&chunk, bytes);
    assert!(matches!(
        store.get("v").await,
        Err(StoreError::Corrupt { .. })
    ));

    // A manifest that lies about the hash, the length, or does not parse.
    store.put("v", &value).await.unwrap();
    let manifest = raw.raw_get("p/v").unwrap();
    let text = String::from_utf8(manifest.clone()).unwrap();
    let sha = sha256_hex(&value);
    raw.raw_set("p/v", text.replace(&sha, &"0".repeat(64)).into_bytes());
    assert!(matches!(
        store.get("v").await,
        Err(StoreError::Corrupt { .. })
    ));
    raw.raw_set(
        "p/v",
        text.replace("\"len\":1000", "\"len\":900").into_bytes(),
    );
    assert!(matches!(
        store.get("v").await,
        Err(StoreError::Corrupt { .. })
    ));
    raw.raw_set(
        "p/v",
        text.replace("\"count\":4", "\"count\":99999").into_bytes(),
    );
    let err = store.get("v").await.unwrap_err();
    assert!(err.to_string().contains("inconsistent manifest"), "{err}");
    raw.raw_set("p/v", b"{not json\n".to_vec());
    assert!(matches!(
        store.get("v").await,
        Err(StoreError::Corrupt { .. })
    ));
    raw.raw_set("p/v", b"no header line".to_vec());
    assert!(matches!(
        store.get("v").await,
        Err(StoreError::Corrupt { .. })
    ));

    // An inline value with a flipped bit.
    store.put("w", b"inline value").await.unwrap();
    let mut item = raw.raw_get("p/w").unwrap();
    let last = item.len() - 1;
    item[last] ^= 1;
    raw.raw_set("p/w", item);
    assert!(matches!(
        store.get("w").await,
        Err(StoreError::Corrupt { .. })
    ));

    // Writing over a corrupt value repairs it.
    store.put("v", b"fresh").await.unwrap();
    assert_eq!(
        store.get("v").await.unwrap().as_deref(),
        Some(&b"fresh"[..])
    );
}

#[tokio::test]
async fn a_failed_write_keeps_the_old_value_and_cleans_up() {
    let raw = MemRaw::new(300);
    let store = mem_store("p", &raw);
    let old = binary(1000, 4);
    store.put("v", &old).await.unwrap();
    let old_chunks = raw.keys_with("p/v#");

    // Fail in the middle of writing the new chunks (index unchanged, intent, 2 chunks, fail).
    raw.fail_after(3);
    let new = binary(2000, 5);
    assert!(store.put("v", &new).await.is_err());
    raw.heal();
    assert_eq!(store.get("v").await.unwrap(), Some(old.clone()));
    // The partial chunks were removed at once.
    assert_eq!(raw.keys_with("p/v#"), old_chunks);

    // Fail on the final manifest (a crash there leaves every new chunk behind): the old value is
    // still served, and the next write sweeps the orphans the intent record names.
    raw.fail_after(1 + 7);
    assert!(store.put("v", &new).await.is_err());
    raw.heal();
    assert_eq!(store.get("v").await.unwrap(), Some(old.clone()));
    assert_eq!(raw.keys_with("p/v#").len(), 4 + 7);
    // The intent records name both failed generations.
    let (m, _) = decode_manifest(raw.raw_get("p/v").unwrap()).unwrap();
    assert_eq!(m.stale.len(), 2, "{m:?}");

    store.put("v", &new).await.unwrap();
    assert_eq!(store.get("v").await.unwrap(), Some(new));
    assert_eq!(raw.keys_with("p/v#").len(), 7);
}

#[tokio::test]
async fn a_crash_before_the_first_manifest_leaves_a_record() {
    let raw = MemRaw::new(300);
    let store = mem_store("p", &raw);
    // Index write, intent, chunks … then the manifest fails: there was no old value.
    raw.fail_after(1 + 1 + 4);
    assert!(store.put("v", &binary(1000, 6)).await.is_err());
    raw.heal();
    assert_eq!(store.get("v").await.unwrap(), None);
    assert_eq!(raw.keys_with("p/v#").len(), 4);
    // delete (or logout) removes the orphans too.
    store.delete("v").await.unwrap();
    assert_eq!(raw.keys(), Vec::<String>::new());
}

#[tokio::test]
async fn a_reader_racing_a_writer_gets_old_or_new_never_a_mixture() {
    let raw = MemRaw::new(300);
    let store = Arc::new(mem_store("p", &raw));
    let a = binary(3000, 8);
    let b = binary(2500, 9);
    store.put("v", &a).await.unwrap();
    let writer = {
        let (store, a, b) = (store.clone(), a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..100 {
                store
                    .put("v", if i % 2 == 0 { &b } else { &a })
                    .await
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        match store.get("v").await {
            Ok(Some(v)) => assert!(v == a || v == b),
            Ok(None) => panic!("value vanished during a replace"),
            // A reader can lose the race three times in a row; that must be an error, and rare.
            Err(StoreError::ChunkMissing { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
}

#[tokio::test]
async fn profiles_are_isolated() {
    let raw = MemRaw::new(300);
    let a = mem_store("a", &raw);
    let b = mem_store("b", &raw);
    // "a" and "a.b"-style prefixes must not collide either.
    let ab = mem_store("a.b", &raw);
    a.put("t", &binary(1000, 1)).await.unwrap();
    b.put("t", &binary(1000, 2)).await.unwrap();
    ab.put("t", b"ab").await.unwrap();
    assert_eq!(a.get("t").await.unwrap(), Some(binary(1000, 1)));
    assert_eq!(b.get("t").await.unwrap(), Some(binary(1000, 2)));
    assert_eq!(ab.get("t").await.unwrap().as_deref(), Some(&b"ab"[..]));
    a.delete("t").await.unwrap();
    assert_eq!(b.get("t").await.unwrap(), Some(binary(1000, 2)));
    assert!(raw.keys_with("a/").is_empty());
}

#[tokio::test]
async fn delete_is_idempotent_and_delete_all_forgets_the_profile() {
    let raw = MemRaw::new(300);
    let a = mem_store("a", &raw);
    let b = mem_store("b", &raw);
    a.delete("nothing").await.unwrap();
    a.delete_all().await.unwrap();
    assert!(raw.keys().is_empty());

    a.put("id_token", b"id").await.unwrap();
    a.put("refresh_token", &binary(5000, 3)).await.unwrap();
    a.put("client_key", &binary(700, 4)).await.unwrap();
    b.put("refresh_token", b"b's").await.unwrap();
    a.delete("id_token").await.unwrap();
    a.delete("id_token").await.unwrap();
    assert_eq!(a.get("id_token").await.unwrap(), None);
    assert_eq!(read_index(raw.as_ref(), "a").unwrap().len(), 2);

    a.delete_all().await.unwrap();
    a.delete_all().await.unwrap();
    for name in ["id_token", "refresh_token", "client_key"] {
        assert_eq!(a.get(name).await.unwrap(), None);
    }
    assert!(raw.keys_with("a/").is_empty(), "{:?}", raw.keys());
    assert_eq!(
        b.get("refresh_token").await.unwrap().as_deref(),
        Some(&b"b's"[..])
    );
    assert_eq!(raw.keys_with("b/"), ["b/.index", "b/refresh_token"]);
}

#[tokio::test]
async fn a_large_index_is_chunked_like_any_value() {
    // A tiny item size (Windows' 2560 bytes, and smaller) still holds many names.
    let raw = MemRaw::new(400);
    let store = mem_store("p", &raw);
    let names: Vec<String> = (0..40)
        .map(|i| format!("secret-name-number-{i:03}"))
        .collect();
    for name in &names {
        store.put(name, name.as_bytes()).await.unwrap();
    }
    assert!(!raw.keys_with("p/.index#").is_empty());
    store.delete_all().await.unwrap();
    assert!(raw.keys().is_empty(), "{:?}", raw.keys());
}

#[tokio::test]
async fn delete_all_with_a_corrupt_index_deletes_it_and_says_so() {
    let raw = MemRaw::new(300);
    let store = mem_store("p", &raw);
    store.put("t", b"x").await.unwrap();
    raw.raw_set("p/.index", b"garbage".to_vec());
    assert!(matches!(
        store.put("u", b"y").await,
        Err(StoreError::Corrupt { .. })
    ));
    let err = store.delete_all().await.unwrap_err();
    assert!(
        err.to_string().contains("entries it listed may remain"),
        "{err}"
    );
    assert!(raw.raw_get("p/.index").is_none());
    // Usable again.
    store.put("u", b"y").await.unwrap();
}

#[tokio::test]
async fn too_large_values_are_refused_before_any_write() {
    let raw = MemRaw::new(300);
    let store = mem_store("p", &raw);
    let err = store
        .put("v", &vec![0; MAX_VALUE_LEN + 1])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");
    assert!(raw.keys().is_empty());
}

#[test]
fn probe_writes_reads_and_deletes_outside_every_profile() {
    let raw = MemRaw::new(300);
    probe_raw(raw.as_ref()).unwrap();
    assert!(raw.keys().is_empty());
    assert_eq!(raw.writes.load(Ordering::SeqCst), 1);
    raw.fail_after(0);
    assert!(probe_raw(raw.as_ref()).is_err());
}

#[test]
fn manifest_encoding_round_trips_and_is_small() {
    let m = Manifest {
        v: 1,
        kind: Kind::Chunked,
        len: 102400,
        sha256: sha256_hex(b"x"),
        gen: Some(Gen {
            id: new_gen_id(),
            count: 4,
        }),
        stale: vec![Gen {
            id: new_gen_id(),
            count: 3,
        }],
    };
    let bytes = m.encode(&[]);
    assert!(bytes.len() < INLINE_SLACK, "{}", bytes.len());
    assert_eq!(decode_manifest(bytes).unwrap(), (m, Vec::new()));
    assert_ne!(new_gen_id(), new_gen_id());
}

#[test]
fn store_errors_and_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<SecretStore>();
    send_sync::<StoreError>();
    send_sync::<Backend>();
    let store = SecretStore::new("p", Backend::Keyring).unwrap();
    // Built, never polled: nothing touches the keyring.
    send(&store.put("a", b"b"));
    send(&store.get("a"));
    send(&store.delete("a"));
    send(&store.delete_all());
    send(&store.describe());
    send(&SecretStore::probe(Backend::File));
}
