//! The file backend: a `0600` JSON file per profile in a `0700` directory, its permission and
//! file type checks, and atomic replacement.

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{check_ident, new_gen_id, StoreError};

/// Largest secrets file we read.
const MAX_FILE_LEN: u64 = 64 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    v: u32,
    /// name → base64 of the value.
    secrets: BTreeMap<String, String>,
}

pub(super) fn file_path(dir: &Path, profile: &str) -> PathBuf {
    dir.join(format!("{profile}.json"))
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(unix)]
fn check_private(
    path: &Path,
    meta: &std::fs::Metadata,
    fix: &'static str,
) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(StoreError::PermissionsTooOpen {
            path: path.to_path_buf(),
            mode,
            fix,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::Metadata, _: &'static str) -> Result<(), StoreError> {
    Ok(())
}

/// Checks the directory if it exists; `Ok(false)` if it does not.
fn check_dir(dir: &Path) -> Result<bool, StoreError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("inspect", dir)(e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            // A symlinked directory is only acceptable if what it points to is private.
            let target = std::fs::metadata(dir).map_err(io_err("inspect", dir))?;
            if !target.is_dir() {
                return Err(StoreError::Insecure {
                    path: dir.to_path_buf(),
                    reason: "not a directory",
                });
            }
            check_private(dir, &target, "700").map(|()| true)
        }
        Ok(meta) if !meta.is_dir() => Err(StoreError::Insecure {
            path: dir.to_path_buf(),
            reason: "not a directory",
        }),
        Ok(meta) => check_private(dir, &meta, "700").map(|()| true),
    }
}

fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    if check_dir(dir)? {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err("create", dir))?;
    check_dir(dir).map(|_| ())
}

pub(super) fn file_read(
    dir: &Path,
    profile: &str,
) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
    let path = file_path(dir, profile);
    if !check_dir(dir)? {
        return Ok(BTreeMap::new());
    }
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err("inspect", &path)(e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(StoreError::Insecure {
                path,
                reason: "it is a symbolic link",
            })
        }
        Ok(_) => {}
    }
    let mut file = std::fs::File::open(&path).map_err(io_err("open", &path))?;
    let meta = file.metadata().map_err(io_err("inspect", &path))?;
    if !meta.is_file() {
        return Err(StoreError::Insecure {
            path,
            reason: "not a regular file",
        });
    }
    check_private(&path, &meta, "600")?;
    if meta.len() > MAX_FILE_LEN {
        return Err(file_corrupt(&path, "the file is too large"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .map_err(io_err("read", &path))?;
    let parsed: SecretsFile =
        serde_json::from_slice(&bytes).map_err(|_| file_corrupt(&path, "not a secrets file"))?;
    if parsed.v != 1 {
        return Err(file_corrupt(&path, "unknown version"));
    }
    let mut map = BTreeMap::new();
    for (name, encoded) in parsed.secrets {
        if check_ident(&name).is_err() {
            return Err(file_corrupt(&path, "invalid secret name"));
        }
        let value = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|_| StoreError::Corrupt {
                name: name.clone(),
                location: path.display().to_string(),
                detail: "not base64".into(),
            })?;
        map.insert(name, value);
    }
    Ok(map)
}

fn file_corrupt(path: &Path, detail: &str) -> StoreError {
    StoreError::Corrupt {
        name: "*".into(),
        location: path.display().to_string(),
        detail: detail.into(),
    }
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; not every platform can open a directory, so best effort.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` atomically: a new `0600` file beside it, flushed, renamed over.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", new_gen_id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("flush", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io_err("replace", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        sync_dir(dir);
    }
    result
}

pub(super) fn file_write(
    dir: &Path,
    profile: &str,
    map: &BTreeMap<String, Vec<u8>>,
) -> Result<(), StoreError> {
    let path = file_path(dir, profile);
    if map.is_empty() {
        return match std::fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(dir);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        };
    }
    ensure_dir(dir)?;
    let file = SecretsFile {
        v: 1,
        secrets: map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    base64::engine::general_purpose::STANDARD.encode(v),
                )
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).expect("a secrets file always serializes");
    bytes.push(b'\n');
    write_atomic(dir, &path, &bytes)
}

pub(super) fn file_delete_all(dir: &Path, profile: &str) -> Result<(), StoreError> {
    let path = file_path(dir, profile);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove", &path)(e)),
    }
    // Temporary files a crash left behind hold secrets too.
    let prefix = format!(".{profile}.json.");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                let p = entry.path();
                std::fs::remove_file(&p).map_err(io_err("remove", &p))?;
            }
        }
    }
    sync_dir(dir);
    Ok(())
}

pub(super) fn file_probe(dir: &Path) -> Result<(), StoreError> {
    ensure_dir(dir)?;
    let path = dir.join(format!(".probe-{}", new_gen_id()));
    let value = b"hoop-kube probe".to_vec();
    write_atomic(dir, &path, &value)?;
    let back = std::fs::read(&path).map_err(io_err("read", &path));
    let _ = std::fs::remove_file(&path);
    if back? != value {
        return Err(file_corrupt(&path, "a test file read back different"));
    }
    Ok(())
}
