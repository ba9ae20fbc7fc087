//! Replacing a file so that a reader sees the old contents or the new, never a mixture: a new
//! file beside it (created with the final mode, so a private file is never readable by others
//! even for a moment), written, flushed, then renamed over the old one; on failure the new file
//! is removed. Shared by the files hoop-kube writes for the user: an agent's kubeconfig
//! ([`crate::agent::kubeconfig`]) and an exported session ([`crate::cli`] `sessions export`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why a file could not be replaced: the step, the file it was working on, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}", path.display())]
pub struct WriteError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Replace `path` with `bytes`; the file gets `mode` (Unix permission bits).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{:08x}.tmp", std::process::id(), rand::random::<u32>()));
    let err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { op, path, source }
    };
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp).map_err(err("create", &tmp))?;
        file.write_all(bytes).map_err(err("write", &tmp))?;
        file.sync_all().map_err(err("write", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(err("replace", path))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_with_its_mode_and_nothing_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        write(&path, b"old", 0o600).unwrap();
        write(&path, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        let e = write(&dir.path().join("missing/x"), b"x", 0o600).unwrap_err();
        assert_eq!(e.op, "create");
        assert!(e.to_string().starts_with("cannot create "), "{e}");
    }
}
