//! Tar over exec: what `kubectl cp` pipes through `tar cf -` and `tar xf -` in a container,
//! read from and written to a [`PodFs`]. [`TarScan`] finds the end of an archive arriving in
//! chunks (and refuses oversized ones early), [`tar_create`] archives paths, [`tar_extract`]
//! unpacks (or lists) one. The `tar` command line itself is the shell's.

use std::io::Read;

use super::{resolve, PodFs, DEFAULT_FILE_MODE};

/// Cap on the summed entry sizes of one archive read by `tar x`.
pub const TAR_EXTRACT_LIMIT: u64 = 64 << 20;

/// Incremental end-of-archive detector for a tar stream arriving in chunks.
/// It walks headers (validating checksums and summing entry sizes) so the
/// reader can stop at the end-of-archive block, as GNU tar does, and can
/// refuse an oversized archive before buffering its data.
#[derive(Debug)]
pub struct TarScan {
    buf: Vec<u8>,
    next: usize,
    total: u64,
    limit: u64,
}

impl TarScan {
    /// A scanner refusing archives whose entry sizes add up to more than `limit`.
    pub fn new(limit: u64) -> Self {
        TarScan { buf: Vec::new(), next: 0, total: 0, limit }
    }

    /// Adds bytes; `Ok(true)` once the end-of-archive block has been seen,
    /// `Err(message)` for a corrupt header or an archive over the limit.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<bool, String> {
        self.buf.extend_from_slice(chunk);
        while self.buf.len() >= self.next + 512 {
            let h = &self.buf[self.next..self.next + 512];
            if h.iter().all(|&b| b == 0) {
                return Ok(true);
            }
            let size = header_size(h).ok_or_else(|| "tar: invalid tar magic".to_string())?;
            self.total = self.total.saturating_add(size);
            let too_many = self.next as u64 > self.limit.saturating_add(16 << 20);
            if self.total > self.limit || too_many {
                return Err(format!("tar: archive exceeds the {} MiB extraction limit", self.limit >> 20));
            }
            self.next += 512 + (size.div_ceil(512) * 512) as usize;
        }
        Ok(false)
    }

    /// The bytes fed so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Validates the checksum of a 512-byte header and returns its size field.
fn header_size(h: &[u8]) -> Option<u64> {
    let sum: u64 = h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u64 }).sum();
    if octal(&h[148..156])? != sum {
        return None;
    }
    let field = &h[124..136];
    if field[0] & 0x80 != 0 {
        // GNU base-256: big-endian, sign bit must be clear.
        if field[0] & 0x40 != 0 || field[1..4].iter().any(|&b| b != 0) {
            return None;
        }
        return Some(field[4..].iter().fold(0u64, |a, &b| (a << 8) | b as u64));
    }
    octal(field)
}

fn octal(f: &[u8]) -> Option<u64> {
    let s = f.iter().take_while(|&&b| b != 0).copied().collect::<Vec<u8>>();
    let s = std::str::from_utf8(&s).ok()?.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// Builds a tar archive of `paths` (resolved against `cwd`), as
/// `tar cf - PATH…` does: directories recursively, member names relative
/// (leading `/` removed with busybox's notice). Problems are appended to
/// `errs` as complete `tar: …` lines; the archive holds what could be read.
/// The flag is false if any path was missing or unreadable (the leading-`/`
/// notice alone is not a failure).
pub fn tar_create(fs: &PodFs, cwd: &str, paths: &[String], errs: &mut Vec<String>) -> (Vec<u8>, bool) {
    let mut b = tar::Builder::new(Vec::new());
    let (mut warned, mut ok) = (false, true);
    for p in paths {
        let abs = resolve(cwd, p);
        if !fs.exists(&abs) {
            errs.push(format!("tar: {p}: No such file or directory"));
            ok = false;
            continue;
        }
        if p.starts_with('/') && !warned {
            errs.push("tar: removing leading '/' from member names".to_string());
            warned = true;
        }
        let name = resolve("/", p);
        let name = if name == "/" { ".".to_string() } else { name[1..].to_string() };
        ok &= add_tree(&mut b, fs, &abs, &name, errs);
    }
    (b.into_inner().unwrap_or_default(), ok)
}

fn add_tree(b: &mut tar::Builder<Vec<u8>>, fs: &PodFs, abs: &str, name: &str, errs: &mut Vec<String>) -> bool {
    let Some(n) = fs.nodes.get(abs) else { return false };
    let mut h = tar::Header::new_gnu();
    h.set_mode(n.mode);
    h.set_mtime(n.mtime);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    let data: &[u8] = n.data.as_deref().unwrap_or(&[]);
    h.set_size(data.len() as u64);
    let (kind, member) = match n.data {
        Some(_) => (tar::EntryType::Regular, name.to_string()),
        None => (tar::EntryType::Directory, format!("{name}/")),
    };
    h.set_entry_type(kind);
    let mut ok = true;
    if let Err(e) = b.append_data(&mut h, &member, data) {
        errs.push(format!("tar: {member}: {e}"));
        ok = false;
    }
    if n.data.is_none() {
        for k in fs.list(abs).unwrap_or_default() {
            let child = if abs == "/" { format!("/{}", k.name) } else { format!("{abs}/{}", k.name) };
            ok &= add_tree(b, fs, &child, &format!("{name}/{}", k.name), errs);
        }
    }
    ok
}

/// Options of [`tar_extract`].
#[derive(Debug, Clone)]
pub struct ExtractOpts {
    /// Absolute directory to extract into (`-C`); must exist.
    pub dest: String,
    /// Restore member mtimes (`false` with `-m`: files get the current time).
    pub keep_mtime: bool,
    /// Keep mode bits as stored (`false` with `--no-same-permissions`: umask 022).
    pub same_perms: bool,
    /// Only list member names (`tar t`), extract nothing.
    pub list_only: bool,
    /// Cap on the summed size of extracted file data.
    pub limit: u64,
}

/// Extracts (or lists) a complete archive into `fs`. Member names with `..`
/// components or a leading `/` are refused; symlinks, hard links and
/// devices are skipped with a notice. Names listed or extracted are pushed to
/// `names`, problems to `errs` (complete `tar: …` lines). Returns false if
/// any error happened.
pub fn tar_extract(fs: &mut PodFs, data: &[u8], o: &ExtractOpts, names: &mut Vec<String>, errs: &mut Vec<String>) -> bool {
    if data.is_empty() {
        return true;
    }
    if !fs.is_dir(&o.dest) {
        errs.push(format!("tar: can't change directory to '{}': No such file or directory", o.dest));
        return false;
    }
    let mut ar = tar::Archive::new(data);
    let entries = match ar.entries() {
        Ok(e) => e,
        Err(e) => {
            errs.push(format!("tar: {e}"));
            return false;
        }
    };
    let (mut ok, mut total) = (true, 0u64);
    for e in entries {
        let mut e = match e {
            Ok(e) => e,
            Err(e) => {
                errs.push(format!("tar: {e}"));
                return false;
            }
        };
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        if name.starts_with('/') || name.split('/').any(|c| c == "..") {
            errs.push(format!("tar: {name}: refusing unsafe member name"));
            ok = false;
            continue;
        }
        names.push(name.clone());
        if o.list_only {
            continue;
        }
        let path = resolve(&o.dest, &name);
        let mut mode = e.header().mode().unwrap_or(DEFAULT_FILE_MODE) & 0o7777;
        if !o.same_perms {
            mode &= !0o022;
        }
        let mtime = if o.keep_mtime { e.header().mtime().ok() } else { None };
        let res = if kind.is_dir() {
            fs.mkdir(&path, true).map(|_| {
                fs.set_mode(&path, mode);
                if let Some(t) = mtime {
                    fs.set_mtime(&path, t);
                }
            })
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let mut buf = Vec::new();
            let limit = o.limit.saturating_sub(total).saturating_add(1);
            if let Err(err) = (&mut e).take(limit).read_to_end(&mut buf) {
                errs.push(format!("tar: {name}: {err}"));
                return false;
            }
            total += buf.len() as u64;
            if total > o.limit {
                errs.push(format!("tar: archive exceeds the {} MiB extraction limit", o.limit >> 20));
                return false;
            }
            fs.put(&path, buf, Some(mode), mtime, true)
        } else {
            errs.push(format!("tar: {name}: skipping unsupported entry type"));
            Ok(())
        };
        if let Err(err) = res {
            errs.push(format!("tar: can't create '{name}': {err}"));
            ok = false;
        }
    }
    ok
}
