//! The terminal side of a session: the simulated pty's canonical-mode line discipline (echo,
//! erase, kill, `^C`, `^D`, CR/LF) and the `^C` signal that commands and the prompt wait on.

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

/// Resolves at the next `^C` (never, once the terminal is gone).
pub(super) async fn interrupted(rx: &mut watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await
    }
}

/// Canonical-mode line discipline of the simulated pty: echo, ICRNL, erase,
/// kill, `^C` (interrupt), `^D` (EOF: an empty chunk on `cooked`).
pub(super) async fn line_discipline(mut raw: mpsc::Receiver<Bytes>, cooked: mpsc::Sender<Bytes>, echo: mpsc::Sender<Bytes>, intr: watch::Sender<u64>) {
    let mut line: Vec<u8> = Vec::new();
    let flush = |e: &mut Vec<u8>| {
        let b = Bytes::from(std::mem::take(e));
        let echo = echo.clone();
        async move {
            if !b.is_empty() {
                let _ = echo.send(b).await;
            }
        }
    };
    while let Some(chunk) = raw.recv().await {
        let mut e = Vec::new();
        for &b in chunk.iter() {
            match b {
                b'\r' | b'\n' => {
                    e.extend_from_slice(b"\r\n");
                    line.push(b'\n');
                    flush(&mut e).await;
                    let _ = cooked.try_send(Bytes::from(std::mem::take(&mut line)));
                }
                0x03 => {
                    e.extend_from_slice(b"^C\r\n");
                    line.clear();
                    flush(&mut e).await;
                    intr.send_modify(|g| *g = g.wrapping_add(1));
                }
                0x04 => {
                    flush(&mut e).await;
                    let _ = cooked.try_send(Bytes::from(std::mem::take(&mut line)));
                }
                0x7f | 0x08 => (0..erase(&mut line)).for_each(|_| e.extend_from_slice(b"\x08 \x08")),
                0x15 => loop {
                    let n = erase(&mut line);
                    if n == 0 {
                        break;
                    }
                    (0..n).for_each(|_| e.extend_from_slice(b"\x08 \x08"));
                },
                _ if line.len() >= 4095 => {}
                b if b < 0x20 && b != b'\t' => {
                    e.extend_from_slice(&[b'^', b + 0x40]);
                    line.push(b);
                }
                b => {
                    e.push(b);
                    line.push(b);
                }
            }
        }
        flush(&mut e).await;
    }
    // Hangup: a half-typed line is discarded, and the reader sees EOF.
}

/// Removes the last character (UTF-8 aware) of `line`; returns its echo width.
fn erase(line: &mut Vec<u8>) -> usize {
    match line.pop() {
        None => 0,
        Some(b) if b < 0x20 && b != b'\t' => 2,
        Some(b) if b >= 0x80 => {
            let mut b = b;
            while (0x80..0xc0).contains(&b) {
                match line.pop() {
                    Some(x) => b = x,
                    None => break,
                }
            }
            1
        }
        Some(_) => 1,
    }
}
