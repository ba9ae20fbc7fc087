//! The exec error channel: a `meta/v1` `Status` (v4 and later) → the command's exit code.
//!
//! Why it exists: kubectl's exit code comes from this one message (`client-go
//! tools/remotecommand/v4.go` `errorDecoderV4`): `status: Success` is 0; `Failure` with reason
//! `NonZeroExitCode` and a cause of reason `ExitCode` carries the code in the cause's message;
//! any other `Failure` is an error message (kubectl exits 1 printing it). Both the WebSocket
//! channel 3 and the SPDY `error` stream carry it, possibly in pieces, so [`StatusBuffer`]
//! collects bytes up to [`MAX_STATUS`] and parses once the JSON value is complete.
//!
//! What it rejects: more than [`MAX_STATUS`] bytes, JSON that is not an object with a string
//! `status`, an `ExitCode` cause that is not a decimal `i32`, and bytes after the value.

use serde::Deserialize;

use super::{EventKind, ExecError};

/// Bound on one status document (the apiserver's are a few hundred bytes).
pub const MAX_STATUS: usize = 64 * 1024;

#[derive(Deserialize)]
struct Status {
    status: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    causes: Vec<Cause>,
}

#[derive(Deserialize)]
struct Cause {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// What one complete status document says, or `None` if it is not a valid status.
#[must_use]
pub fn parse(doc: &[u8]) -> Option<EventKind> {
    let s: Status = serde_json::from_slice(doc).ok()?;
    match s.status.as_str() {
        "Success" => Some(EventKind::Exit { code: 0 }),
        "Failure" if s.reason.as_deref() == Some("NonZeroExitCode") => {
            let causes = s.details.map(|d| d.causes).unwrap_or_default();
            let code = causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref()?.parse::<i32>().ok());
            match code {
                Some(code) => Some(EventKind::Exit { code }),
                None => Some(EventKind::Failure {
                    message: s.message.unwrap_or_default(),
                }),
            }
        }
        "Failure" => Some(EventKind::Failure {
            message: s.message.unwrap_or_default(),
        }),
        _ => None,
    }
}

/// Collects the error channel's bytes until they form one status.
#[derive(Debug, Default)]
pub struct StatusBuffer {
    buf: Vec<u8>,
    done: bool,
}

impl StatusBuffer {
    /// Feed bytes; the status comes out once complete. Errors: oversized, not JSON, not a
    /// status, or anything after the first complete status.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<EventKind>, ExecError> {
        if data.is_empty() {
            return Ok(None);
        }
        if self.done && data.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if self.done || self.buf.len() + data.len() > MAX_STATUS {
            return Err(ExecError::BadStatus);
        }
        self.buf.extend_from_slice(data);
        let mut values =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        match values.next() {
            Some(Ok(_)) => {
                let end = values.byte_offset();
                if !self.buf[end..].iter().all(u8::is_ascii_whitespace) {
                    return Err(ExecError::BadStatus);
                }
                self.done = true;
                let out = parse(&self.buf[..end]).ok_or(ExecError::BadStatus);
                self.buf = Vec::new();
                out.map(Some)
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(_)) => Err(ExecError::BadStatus),
            None => Ok(None),
        }
    }

    /// At the end of the stream: unparsed bytes left are an error.
    pub fn finish(&mut self) -> Result<(), ExecError> {
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(ExecError::BadStatus)
        }
    }

    /// Whether a status was read.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_real_statuses() {
        assert_eq!(
            parse(br#"{"metadata":{},"status":"Success"}"#),
            Some(EventKind::Exit { code: 0 })
        );
        let three = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(parse(three), Some(EventKind::Exit { code: 3 }));
        let other = br#"{"metadata":{},"status":"Failure","message":"container not found (\"c\")","reason":"InternalError"}"#;
        assert_eq!(
            parse(other),
            Some(EventKind::Failure {
                message: "container not found (\"c\")".into()
            })
        );
        let bad_code = br#"{"status":"Failure","reason":"NonZeroExitCode","message":"m","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}"#;
        assert_eq!(
            parse(bad_code),
            Some(EventKind::Failure {
                message: "m".into()
            })
        );
        assert_eq!(parse(br#"{"status":"Maybe"}"#), None);
        assert_eq!(parse(b"[]"), None);
        assert_eq!(parse(b"not json"), None);
    }

    #[test]
    fn buffer_collects_pieces_and_refuses_garbage() {
        let mut b = StatusBuffer::default();
        assert_eq!(b.feed(br#"{"metadata":{},"sta"#), Ok(None));
        assert_eq!(
            b.feed(br#"tus":"Success"}"#),
            Ok(Some(EventKind::Exit { code: 0 }))
        );
        assert!(b.is_done() && b.finish().is_ok());
        assert_eq!(b.feed(b"\n"), Ok(None));
        assert_eq!(b.feed(b"{}"), Err(ExecError::BadStatus), "a second status");

        let mut b = StatusBuffer::default();
        assert_eq!(b.feed(b"{\"status\":"), Ok(None));
        assert_eq!(
            b.finish(),
            Err(ExecError::BadStatus),
            "truncated at the end"
        );
        assert_eq!(
            StatusBuffer::default().feed(b"}"),
            Err(ExecError::BadStatus)
        );
        assert_eq!(
            StatusBuffer::default().feed(br#"{"status":"Success"} x"#),
            Err(ExecError::BadStatus)
        );
        assert_eq!(
            StatusBuffer::default().feed(&vec![b' '; MAX_STATUS + 1]),
            Err(ExecError::BadStatus)
        );
    }
}
