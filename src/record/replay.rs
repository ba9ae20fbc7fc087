//! Playback of an asciicast v2 recording to a terminal, for `hoop-kube sessions replay ID
//! [--speed N] [--max-idle S]`.
//!
//! Why it exists: a reviewer watches the session as it happened. Output events (`"o"`) are
//! written at their original times, divided by `speed`, with pauses longer than `max_idle`
//! shortened to it (the asciinema player's `idle_time_limit`). Input (`"i"`), resize (`"r"`)
//! and marker events are not written: with a TTY the echo is already in the output. The time
//! source is a [`Sleeper`], so tests replay instantly and check the exact waits.
//!
//! What it rejects ([`ReplayError`]): a header that is not a version 2 asciicast object, a
//! line longer than [`MAX_LINE`], an event line that is not `[number ≥ 0, string, string]`, a
//! speed that is not finite and positive. Times that go backwards are played without a wait.

use std::io::{BufRead, Write};
use std::time::Duration;

use super::asciicast::Header;

/// Longest line read (an event holds at most one coalesced 64 KiB chunk, escaped).
pub const MAX_LINE: usize = 1 << 20;

/// Waits between events.
pub trait Sleeper {
    fn sleep(&mut self, d: Duration);
}

/// Really waits (the CLI).
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Playback settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayOptions {
    /// 2.0 plays twice as fast.
    pub speed: f64,
    /// Longest pause played (before scaling).
    pub max_idle: Option<Duration>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            speed: 1.0,
            max_idle: None,
        }
    }
}

/// Why playback stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("reading or writing: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an asciicast v2 header: {0}")]
    BadHeader(String),
    #[error("line {line}: {reason}")]
    BadEvent { line: usize, reason: String },
    #[error("line {0} is longer than {MAX_LINE} bytes")]
    LineTooLong(usize),
    #[error("speed must be a positive number")]
    BadSpeed,
}

/// What was played.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplayStats {
    pub events: u64,
    pub output_bytes: u64,
    /// Total time waited.
    pub waited: Duration,
}

/// Read one line of at most [`MAX_LINE`] bytes; `None` at the end.
fn read_line<R: BufRead>(input: &mut R, n: usize) -> Result<Option<String>, ReplayError> {
    let mut buf = Vec::new();
    let read = std::io::Read::take(&mut *input, MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
    if read == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE {
        return Err(ReplayError::LineTooLong(n));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| ReplayError::BadEvent {
            line: n,
            reason: "not UTF-8".into(),
        })
}

/// Parse the header line.
///
/// # Errors
/// Not an asciicast v2 header.
pub fn parse_header(line: &str) -> Result<Header, ReplayError> {
    let h: Header =
        serde_json::from_str(line).map_err(|e| ReplayError::BadHeader(e.to_string()))?;
    if h.version != 2 {
        return Err(ReplayError::BadHeader(format!("version {}", h.version)));
    }
    Ok(h)
}

/// Parse one event line into (seconds, code, data).
///
/// # Errors
/// Not `[number ≥ 0, string, string]`.
pub fn parse_event(line: &str, n: usize) -> Result<(f64, String, String), ReplayError> {
    let bad = |reason: &str| ReplayError::BadEvent {
        line: n,
        reason: reason.into(),
    };
    let (t, code, data): (f64, String, String) =
        serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
    if !t.is_finite() || t < 0.0 {
        return Err(bad("time must be a non-negative number"));
    }
    Ok((t, code, data))
}

/// Play `input` (asciicast v2) to `out` with `opts`, waiting through `sleeper`.
///
/// # Errors
/// Reading, writing or parsing failed; a bad speed.
pub fn replay<R: BufRead, W: Write, S: Sleeper>(
    mut input: R,
    out: &mut W,
    opts: ReplayOptions,
    sleeper: &mut S,
) -> Result<ReplayStats, ReplayError> {
    if !opts.speed.is_finite() || opts.speed <= 0.0 {
        return Err(ReplayError::BadSpeed);
    }
    let header =
        read_line(&mut input, 1)?.ok_or_else(|| ReplayError::BadHeader("empty input".into()))?;
    parse_header(&header)?;
    let mut stats = ReplayStats::default();
    let mut prev = 0.0f64;
    let mut n = 1;
    while let Some(line) = read_line(&mut input, n + 1)? {
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let (t, code, data) = parse_event(&line, n)?;
        if code != "o" {
            continue;
        }
        let mut gap = Duration::from_secs_f64((t - prev).max(0.0));
        prev = prev.max(t);
        if let Some(max) = opts.max_idle {
            gap = gap.min(max);
        }
        let wait = gap.div_f64(opts.speed);
        if !wait.is_zero() {
            sleeper.sleep(wait);
            stats.waited += wait;
        }
        out.write_all(data.as_bytes())?;
        out.flush()?;
        stats.events += 1;
        stats.output_bytes += data.len() as u64;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the waits instead of waiting.
    #[derive(Default)]
    struct Recorded(Vec<Duration>);

    impl Sleeper for Recorded {
        fn sleep(&mut self, d: Duration) {
            self.0.push(d);
        }
    }

    const CAST: &str = "{\"version\":2,\"width\":80,\"height\":24}\n\
        [0.5, \"o\", \"a\"]\n\
        [0.5, \"i\", \"typed\"]\n\
        [1.5, \"o\", \"b\"]\n\
        [1.6, \"r\", \"100x30\"]\n\
        [11.5, \"o\", \"c\\u00e9\"]\n";

    #[test]
    fn plays_output_with_original_timing() {
        let (mut out, mut s) = (Vec::new(), Recorded::default());
        let stats = replay(CAST.as_bytes(), &mut out, ReplayOptions::default(), &mut s).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "abcé");
        assert_eq!(
            s.0,
            vec![
                Duration::from_millis(500),
                Duration::from_secs(1),
                Duration::from_secs(10)
            ]
        );
        assert_eq!(
            (stats.events, stats.waited),
            (3, Duration::from_millis(11_500))
        );
    }

    #[test]
    fn speed_and_max_idle_scale_the_waits() {
        let (mut out, mut s) = (Vec::new(), Recorded::default());
        let opts = ReplayOptions {
            speed: 2.0,
            max_idle: Some(Duration::from_secs(2)),
        };
        replay(CAST.as_bytes(), &mut out, opts, &mut s).unwrap();
        assert_eq!(
            s.0,
            vec![
                Duration::from_millis(250),
                Duration::from_millis(500),
                Duration::from_secs(1)
            ]
        );
    }

    #[test]
    fn hostile_casts_are_refused() {
        let mut s = Recorded::default();
        let play = |text: &str, s: &mut Recorded| {
            replay(
                text.as_bytes(),
                &mut Vec::new(),
                ReplayOptions::default(),
                s,
            )
        };
        assert!(matches!(play("", &mut s), Err(ReplayError::BadHeader(_))));
        assert!(matches!(
            play("{\"version\":1,\"width\":1,\"height\":1}\n", &mut s),
            Err(ReplayError::BadHeader(_))
        ));
        assert!(matches!(
            play("[1]\n", &mut s),
            Err(ReplayError::BadHeader(_))
        ));
        let h = "{\"version\":2,\"width\":80,\"height\":24}\n";
        assert!(matches!(
            play(&format!("{h}[-1, \"o\", \"x\"]\n"), &mut s),
            Err(ReplayError::BadEvent { line: 2, .. })
        ));
        assert!(matches!(
            play(&format!("{h}[1, \"o\"]\n"), &mut s),
            Err(ReplayError::BadEvent { .. })
        ));
        assert!(matches!(
            play(&format!("{h}{{}}\n"), &mut s),
            Err(ReplayError::BadEvent { .. })
        ));
        let long = format!("{h}[1, \"o\", \"{}\"]\n", "x".repeat(MAX_LINE));
        assert!(matches!(
            play(&long, &mut s),
            Err(ReplayError::LineTooLong(2))
        ));
        let opts = ReplayOptions {
            speed: 0.0,
            max_idle: None,
        };
        assert!(matches!(
            replay(h.as_bytes(), &mut Vec::new(), opts, &mut s),
            Err(ReplayError::BadSpeed)
        ));
        // Time going backwards plays without waiting; blank lines are skipped.
        let back = format!("{h}[2, \"o\", \"a\"]\n\n[1, \"o\", \"b\"]\n");
        let mut s = Recorded::default();
        play(&back, &mut s).unwrap();
        assert_eq!(s.0, vec![Duration::from_secs(2)]);
    }
}
