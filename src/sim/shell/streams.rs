//! The standard streams a shell command sees: where its output goes ([`Out`]: a session
//! channel, a file in the container, or nowhere), the stdin it reads ([`Input`]), and the pair
//! of them with stderr that every command is handed ([`Io`]).

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{PodFs, SIGPIPE};

/// Largest piece of output sent as one channel message.
const CHUNK: usize = 32 * 1024;

/// Where a command writes: a session channel (with ONLCR on a tty), a file, or nowhere.
#[derive(Clone)]
pub(super) enum Out {
    Chan(mpsc::Sender<Bytes>, bool),
    File(Arc<Mutex<PodFs>>, String),
    Null,
}

impl Out {
    pub(super) async fn put(&self, d: &[u8]) -> Result<(), i32> {
        for part in d.chunks(CHUNK) {
            match self {
                Out::Chan(tx, onlcr) => {
                    let b = if *onlcr {
                        let mut v = Vec::with_capacity(part.len() + 16);
                        part.iter().for_each(|&c| v.extend_from_slice(if c == b'\n' { b"\r\n" } else { std::slice::from_ref(&c) }));
                        Bytes::from(v)
                    } else {
                        Bytes::copy_from_slice(part)
                    };
                    tx.send(b).await.map_err(|_| SIGPIPE)?;
                }
                Out::File(fs, p) => lock(fs).append(p, part).map_err(|_| 1)?,
                Out::Null => {}
            }
        }
        Ok(())
    }
    pub(super) async fn msg(&self, s: impl AsRef<str>) {
        let _ = self.put(format!("{}\n", s.as_ref()).as_bytes()).await;
    }
}

/// Locks the container filesystem, even if a panicking holder poisoned it.
pub(super) fn lock(fs: &Mutex<PodFs>) -> MutexGuard<'_, PodFs> {
    fs.lock().unwrap_or_else(|e| e.into_inner())
}

/// A command's stdin. With `marker_eof` (the tty's cooked channel) an empty
/// chunk is a one-time EOF (`^D`), as a terminal read returning 0.
pub(super) struct Input {
    pub(super) rx: Option<mpsc::Receiver<Bytes>>,
    pub(super) buf: Vec<u8>,
    marker_eof: bool,
}

impl Input {
    pub(super) fn none() -> Self {
        Input { rx: None, buf: Vec::new(), marker_eof: false }
    }
    pub(super) fn chan(rx: mpsc::Receiver<Bytes>, marker_eof: bool) -> Self {
        Input { rx: Some(rx), buf: Vec::new(), marker_eof }
    }
    pub(super) fn bytes(buf: Vec<u8>) -> Self {
        Input { rx: None, buf, marker_eof: false }
    }
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.rx.as_mut()?.recv().await {
                None => {
                    self.rx = None;
                    return None;
                }
                Some(b) if b.is_empty() && self.marker_eof => return None,
                Some(b) if b.is_empty() => {}
                Some(b) => return Some(b.to_vec()),
            }
        }
    }
    /// The next chunk of input; `None` at EOF.
    pub(super) async fn read(&mut self) -> Option<Vec<u8>> {
        if !self.buf.is_empty() {
            return Some(std::mem::take(&mut self.buf));
        }
        self.next_chunk().await
    }
    /// One line including its `\n` (a partial last line at EOF; lines are cut at 1 MiB).
    pub(super) async fn read_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                return Some(std::mem::replace(&mut self.buf, rest));
            }
            if self.buf.len() >= 1 << 20 {
                return Some(std::mem::take(&mut self.buf));
            }
            match self.next_chunk().await {
                Some(c) => self.buf.extend_from_slice(&c),
                None if self.buf.is_empty() => return None,
                None => return Some(std::mem::take(&mut self.buf)),
            }
        }
    }
}

/// The standard streams of one command.
pub(super) struct Io<'a> {
    pub(super) inp: &'a mut Input,
    pub(super) out: Out,
    pub(super) err: Out,
}

impl Io<'_> {
    pub(super) fn reborrow(&mut self) -> Io<'_> {
        Io { inp: &mut *self.inp, out: self.out.clone(), err: self.err.clone() }
    }
}
