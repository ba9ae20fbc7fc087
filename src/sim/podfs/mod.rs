//! In-memory filesystem of one simulated container.
//!
//! The simulator has no real containers, yet `kubectl cp` and `kubectl exec`
//! expect files to persist between commands: `tar xmf - -C /tmp` must create
//! what a later `tar cf - /tmp/x` or `cat /tmp/x` returns. [`PodFs`] is that
//! state: a map from absolute, normalised paths to files and directories.
//! Directories are explicit nodes; writing a file with [`PodFs::write`]
//! creates its missing parents. The archive helpers ([`tar_create`],
//! [`tar_extract`], [`TarScan`]) live in the `tar` submodule, next to the data
//! they walk, so that the command interpreter in `shell` stays about parsing and I/O.

mod tar;

use std::collections::BTreeMap;

pub use self::tar::{tar_create, tar_extract, ExtractOpts, TarScan, TAR_EXTRACT_LIMIT};

/// Mode given to files created without an explicit mode.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Mode given to directories created without an explicit mode.
pub const DEFAULT_DIR_MODE: u32 = 0o755;
/// Total bytes of file data one [`PodFs`] may hold ("No space left on device" beyond).
pub const FS_CAPACITY: u64 = 256 << 20;
/// Directories every fresh container has.
const STANDARD_DIRS: [&str; 14] = [
    "/", "/bin", "/dev", "/etc", "/home", "/proc", "/root", "/sys", "/tmp", "/usr", "/usr/bin",
    "/var", "/var/log", "/var/tmp",
];

/// Failure of a filesystem operation; `Display` is the Linux `strerror` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// ENOENT.
    #[error("No such file or directory")]
    NotFound,
    /// ENOTDIR.
    #[error("Not a directory")]
    NotADirectory,
    /// EISDIR.
    #[error("Is a directory")]
    IsADirectory,
    /// EEXIST.
    #[error("File exists")]
    Exists,
    /// ENOTEMPTY.
    #[error("Directory not empty")]
    NotEmpty,
    /// ENOSPC: [`FS_CAPACITY`] would be exceeded.
    #[error("No space left on device")]
    NoSpace,
    /// EBUSY: the root directory cannot be removed.
    #[error("Device or resource busy")]
    Busy,
}

#[derive(Debug, Clone)]
struct Node {
    /// `None` for a directory.
    data: Option<Vec<u8>>,
    mode: u32,
    mtime: u64,
}

/// Metadata of one file or directory, as returned by [`PodFs::stat`] and [`PodFs::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Base name (for [`PodFs::stat`]: the full normalised path).
    pub name: String,
    /// Whether this is a directory.
    pub is_dir: bool,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
}

/// In-memory filesystem of one container. Paths are absolute and
/// '/'-separated; relative paths are taken relative to `/`, and `.`/`..`
/// are resolved lexically. A fresh value holds the standard directories
/// (`/`, `/tmp`, `/etc`, `/root`, `/var/log`, …).
#[derive(Debug, Clone)]
pub struct PodFs {
    nodes: BTreeMap<String, Node>,
    used: u64,
}

impl Default for PodFs {
    fn default() -> Self {
        let mut nodes = BTreeMap::new();
        let now = now_secs();
        for d in STANDARD_DIRS {
            let mode = if d == "/tmp" || d == "/var/tmp" { 0o1777 } else { DEFAULT_DIR_MODE };
            nodes.insert(d.to_string(), Node { data: None, mode, mtime: now });
        }
        PodFs { nodes, used: 0 }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Resolves `path` against the absolute directory `cwd` into a normalised
/// absolute path (no `.`/`..`/empty components; `..` at `/` stays at `/`).
pub fn resolve(cwd: &str, path: &str) -> String {
    let full = if path.starts_with('/') { path.to_string() } else { format!("{cwd}/{path}") };
    let mut parts: Vec<&str> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl PodFs {
    /// Same as `PodFs::default()`: only the standard directories.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes (creates or replaces) a file, creating missing parent
    /// directories. Keeps the mode of a replaced file, else 0644; mtime is now.
    /// Silently does nothing if the path is a directory, a parent is a
    /// regular file, or the filesystem is full; use [`PodFs::put`] to see why.
    pub fn write(&mut self, path: &str, data: impl Into<Vec<u8>>) {
        let _ = self.put(path, data.into(), None, None, true);
    }

    /// Writes a file with an explicit `mode` (default: keep existing or 0644)
    /// and `mtime` (default: now). `parents` creates missing parent
    /// directories like `mkdir -p`; without it the parent must exist.
    pub fn put(
        &mut self,
        path: &str,
        data: Vec<u8>,
        mode: Option<u32>,
        mtime: Option<u64>,
        parents: bool,
    ) -> Result<(), FsError> {
        let path = resolve("/", path);
        let old = match self.nodes.get(&path) {
            Some(Node { data: None, .. }) => return Err(FsError::IsADirectory),
            Some(n) => Some((n.data.as_ref().map_or(0, |d| d.len()) as u64, n.mode)),
            None => None,
        };
        let used = self.used - old.map_or(0, |o| o.0) + data.len() as u64;
        if used > FS_CAPACITY {
            return Err(FsError::NoSpace);
        }
        if parents {
            self.mkdir(parent(&path), true)?;
        } else {
            self.check_parent(&path)?;
        }
        let mode = mode.unwrap_or(old.map_or(DEFAULT_FILE_MODE, |o| o.1)) & 0o7777;
        let node = Node { data: Some(data), mode, mtime: mtime.unwrap_or_else(now_secs) };
        self.nodes.insert(path, node);
        self.used = used;
        Ok(())
    }

    /// Appends to a file, creating it (mode 0644) if missing; the parent must exist.
    pub fn append(&mut self, path: &str, more: &[u8]) -> Result<(), FsError> {
        let path = resolve("/", path);
        if self.used + more.len() as u64 > FS_CAPACITY {
            return Err(FsError::NoSpace);
        }
        match self.nodes.get_mut(&path) {
            Some(Node { data: None, .. }) => Err(FsError::IsADirectory),
            Some(Node { data: Some(d), mtime, .. }) => {
                d.extend_from_slice(more);
                *mtime = now_secs();
                self.used += more.len() as u64;
                Ok(())
            }
            None => self.put(&path, more.to_vec(), None, None, false),
        }
    }

    fn check_parent(&self, path: &str) -> Result<(), FsError> {
        match self.nodes.get(parent(path)) {
            Some(Node { data: None, .. }) => Ok(()),
            Some(_) => Err(FsError::NotADirectory),
            None => Err(FsError::NotFound),
        }
    }

    /// Contents of a regular file; `None` if missing or a directory.
    pub fn read(&self, path: &str) -> Option<&[u8]> {
        self.nodes.get(&resolve("/", path))?.data.as_deref()
    }

    /// Whether `path` is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.nodes.get(&resolve("/", path)), Some(Node { data: None, .. }))
    }

    /// Whether `path` is a regular file.
    pub fn is_file(&self, path: &str) -> bool {
        matches!(self.nodes.get(&resolve("/", path)), Some(Node { data: Some(_), .. }))
    }

    /// Whether anything exists at `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.nodes.contains_key(&resolve("/", path))
    }

    /// Metadata of `path` (`name` is the normalised absolute path).
    pub fn stat(&self, path: &str) -> Option<Entry> {
        let path = resolve("/", path);
        let n = self.nodes.get(&path)?;
        Some(entry(path, n))
    }

    /// Sets the permission bits of `path`; false if it does not exist.
    pub fn set_mode(&mut self, path: &str, mode: u32) -> bool {
        match self.nodes.get_mut(&resolve("/", path)) {
            Some(n) => {
                n.mode = mode & 0o7777;
                true
            }
            None => false,
        }
    }

    /// Sets the modification time of `path`; false if it does not exist.
    pub fn set_mtime(&mut self, path: &str, mtime: u64) -> bool {
        match self.nodes.get_mut(&resolve("/", path)) {
            Some(n) => {
                n.mtime = mtime;
                true
            }
            None => false,
        }
    }

    /// Creates a directory (mode 0755). With `parents`, missing parents are
    /// created and an existing directory is not an error (`mkdir -p`).
    pub fn mkdir(&mut self, path: &str, parents: bool) -> Result<(), FsError> {
        let path = resolve("/", path);
        match self.nodes.get(&path) {
            Some(Node { data: None, .. }) if parents => return Ok(()),
            Some(_) => return Err(FsError::Exists),
            None => {}
        }
        if parents && path != "/" {
            self.mkdir(parent(&path), true)?;
        } else {
            self.check_parent(&path)?;
        }
        let node = Node { data: None, mode: DEFAULT_DIR_MODE, mtime: now_secs() };
        self.nodes.insert(path, node);
        Ok(())
    }

    /// Removes a file, or a directory: empty unless `recursive`.
    pub fn remove(&mut self, path: &str, recursive: bool) -> Result<(), FsError> {
        let path = resolve("/", path);
        if path == "/" {
            return Err(FsError::Busy);
        }
        match self.nodes.get(&path) {
            None => return Err(FsError::NotFound),
            Some(Node { data: Some(_), .. }) => {}
            Some(Node { data: None, .. }) => {
                let kids = self.descendants(&path);
                if !kids.is_empty() && !recursive {
                    return Err(FsError::NotEmpty);
                }
                for k in kids {
                    self.drop_node(&k);
                }
            }
        }
        self.drop_node(&path);
        Ok(())
    }

    fn drop_node(&mut self, path: &str) {
        if let Some(Node { data: Some(d), .. }) = self.nodes.remove(path) {
            self.used -= d.len() as u64;
        }
    }

    fn descendants(&self, dir: &str) -> Vec<String> {
        let prefix = if dir == "/" { "/".to_string() } else { format!("{dir}/") };
        let keys = self.nodes.range(prefix.clone()..).map(|(k, _)| k);
        keys.take_while(|k| k.starts_with(&prefix)).filter(|k| k.len() > prefix.len()).cloned().collect()
    }

    /// Entries directly inside directory `path`, sorted by name; `None` if
    /// `path` is not a directory.
    pub fn list(&self, path: &str) -> Option<Vec<Entry>> {
        let path = resolve("/", path);
        if !self.is_dir(&path) {
            return None;
        }
        let skip = if path == "/" { 1 } else { path.len() + 1 };
        let kids = self.descendants(&path).into_iter().filter(|k| !k[skip..].contains('/'));
        Some(kids.filter_map(|k| Some(entry(k[skip..].to_string(), self.nodes.get(&k)?))).collect())
    }

    /// Bytes of file data held (counted against [`FS_CAPACITY`]).
    pub fn used_bytes(&self) -> u64 {
        self.used
    }
}

fn entry(name: String, n: &Node) -> Entry {
    let size = n.data.as_ref().map_or(0, |d| d.len() as u64);
    Entry { name, is_dir: n.data.is_none(), size, mode: n.mode, mtime: n.mtime }
}

/// Output of a filesystem command run by [`fs_command`].
#[derive(Debug, Default)]
pub struct CmdOutput {
    /// Bytes for stdout.
    pub out: Vec<u8>,
    /// Lines for stderr (without newline).
    pub err: Vec<String>,
    /// Exit status.
    pub code: i32,
}

/// Runs `ls [-1alA]`, `mkdir [-p]`, `rm [-frR]` or `touch [-c]` (anything else:
/// exit 127) against `fs`, with relative paths taken from `cwd`, with busybox's messages.
pub fn fs_command(fs: &mut PodFs, cwd: &str, name: &str, args: &[String]) -> CmdOutput {
    let mut o = CmdOutput::default();
    let (usage, allowed) = match name {
        "ls" => ("[-1alA] [FILE]...", "1alA"),
        "mkdir" => ("[-p] DIRECTORY...", "p"),
        "rm" => ("[-frR] FILE...", "frR"),
        "touch" => ("[-c] FILE...", "c"),
        _ => return CmdOutput { code: 127, err: vec![format!("sh: {name}: not found")], ..o },
    };
    let (mut flags, mut ops) = (String::new(), Vec::new());
    let mut dashdash = false;
    for a in args {
        match a.strip_prefix('-').filter(|r| !r.is_empty() && !dashdash) {
            Some("-") => dashdash = true,
            Some(r) => match r.chars().find(|c| !allowed.contains(*c)) {
                Some(c) => return usage_err(name, format!("invalid option -- '{c}'"), usage),
                None => flags.push_str(r),
            },
            None => ops.push(a.clone()),
        }
    }
    if ops.is_empty() && name != "ls" {
        if name == "rm" && flags.contains('f') {
            return o;
        }
        return usage_err(name, "missing operand".into(), usage);
    }
    if ops.is_empty() {
        ops.push(".".into());
    }
    let fail = |o: &mut CmdOutput, msg: String| {
        o.err.push(msg);
        o.code = 1;
    };
    for (i, p) in ops.iter().enumerate() {
        let abs = resolve(cwd, p);
        match name {
            "ls" => match fs.stat(&abs) {
                None => fail(&mut o, format!("ls: {p}: No such file or directory")),
                Some(e) if !e.is_dir => ls_line(&mut o.out, &e, p, flags.contains('l')),
                Some(_) => {
                    if ops.len() > 1 {
                        let sep = if i > 0 { "\n" } else { "" };
                        o.out.extend_from_slice(format!("{sep}{p}:\n").as_bytes());
                    }
                    let all = flags.contains('a') || flags.contains('A');
                    for e in fs.list(&abs).unwrap_or_default().iter().filter(|e| all || !e.name.starts_with('.')) {
                        ls_line(&mut o.out, e, &e.name, flags.contains('l'));
                    }
                }
            },
            "mkdir" => {
                if let Err(e) = fs.mkdir(&abs, flags.contains('p')) {
                    fail(&mut o, format!("mkdir: can't create directory '{p}': {e}"));
                }
            }
            "rm" => {
                let recursive = flags.contains('r') || flags.contains('R');
                match fs.remove(&abs, recursive) {
                    _ if fs.is_dir(&abs) && !recursive => fail(&mut o, format!("rm: '{p}' is a directory")),
                    Err(FsError::NotFound) if flags.contains('f') => {}
                    Err(e) => fail(&mut o, format!("rm: can't remove '{p}': {e}")),
                    Ok(()) => {}
                }
            }
            _ => {
                if fs.exists(&abs) {
                    fs.set_mtime(&abs, now_secs());
                } else if !flags.contains('c') {
                    if let Err(e) = fs.put(&abs, Vec::new(), None, None, false) {
                        fail(&mut o, format!("touch: {p}: {e}"));
                    }
                }
            }
        }
    }
    o
}

fn usage_err(name: &str, problem: String, usage: &str) -> CmdOutput {
    CmdOutput { out: Vec::new(), err: vec![format!("{name}: {problem}"), format!("Usage: {name} {usage}")], code: 1 }
}

fn ls_line(out: &mut Vec<u8>, e: &Entry, name: &str, long: bool) {
    if !long {
        out.extend_from_slice(format!("{name}\n").as_bytes());
        return;
    }
    let mut perms: Vec<u8> = b"rwxrwxrwx".iter().enumerate().map(|(i, &c)| if e.mode & (0o400 >> i) != 0 { c } else { b'-' }).collect();
    if e.mode & 0o1000 != 0 {
        perms[8] = if e.mode & 1 != 0 { b't' } else { b'T' };
    }
    let kind = if e.is_dir { 'd' } else { '-' };
    let links = if e.is_dir { 2 } else { 1 };
    let date = strftime("%b %e %H:%M", e.mtime);
    let perms = String::from_utf8_lossy(&perms);
    out.extend_from_slice(format!("{kind}{perms} {links:>4} root     root     {:>9} {date} {name}\n", e.size).as_bytes());
}

/// Formats a Unix time (UTC) with `%Y %y %m %d %e %H %M %S %s %a %b %j %F %T %Z %%`;
/// other `%` sequences are kept as written.
pub fn strftime(fmt: &str, secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let (hh, mm, ss) = (secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil-from-days (proleptic Gregorian), days since 1970-01-01.
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][(m - 1) as usize];
    let yday = cum + d + (leap && m > 2) as i64;
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (mut s, mut it) = (String::new(), fmt.chars());
    while let Some(c) = it.next() {
        if c != '%' {
            s.push(c);
            continue;
        }
        let part = match it.next() {
            Some('Y') => y.to_string(),
            Some('y') => format!("{:02}", y % 100),
            Some('m') => format!("{m:02}"),
            Some('d') => format!("{d:02}"),
            Some('e') => format!("{d:>2}"),
            Some('H') => format!("{hh:02}"),
            Some('M') => format!("{mm:02}"),
            Some('S') => format!("{ss:02}"),
            Some('s') => secs.to_string(),
            Some('a') => DAYS[(days + 4).rem_euclid(7) as usize].to_string(),
            Some('b') => MONTHS[(m - 1) as usize].to_string(),
            Some('j') => format!("{yday:03}"),
            Some('F') => format!("{y}-{m:02}-{d:02}"),
            Some('T') => format!("{hh:02}:{mm:02}:{ss:02}"),
            Some('Z') => "UTC".to_string(),
            Some('%') => "%".to_string(),
            Some(o) => format!("%{o}"),
            None => "%".to_string(),
        };
        s.push_str(&part);
    }
    s
}
