//! The masker's JSON parser: one strict, non-recursive pass from bytes to a flat tape of
//! tokens with byte spans, so masking can replace a value by its span and copy everything else
//! through untouched — no `serde_json::Value` built, no re-serialization of what is not masked.
//!
//! Trusts nothing. Rejects, with a byte offset: invalid UTF-8 anywhere; anything RFC 8259 does
//! not allow (control characters in strings, bad escapes, unpaired UTF-16 surrogates, leading
//! zeros, bare `-`, trailing commas, a BOM); numbers out of `f64` range; nesting deeper than
//! serde_json's limit (127 containers); trailing bytes after the value; and an object with two
//! `kind` members. Everything it accepts, serde_json accepts too and reads the same way, so a
//! client cannot see a kind the masker did not. (Other duplicate keys are harmless: the masker
//! acts on *every* member with a masked name, so a client's choice of first or last copy never
//! reaches an unmasked value.)
//!
//! While parsing it notes what masking needs without a second pass: each object's `kind`
//! string, and every member named `kubectl.kubernetes.io/last-applied-configuration`, with the
//! object whose `metadata.annotations` holds it.

use super::profile::LAST_APPLIED_ANNOTATION;
use super::tape::{LastApplied, Tape, Tok, ESCAPED, KEY};

/// How deep containers may nest: serde_json refuses the 128th level, so does this parser.
pub const MAX_DEPTH: usize = 127;

/// Why bytes are not JSON the masker will pass on. One line; offsets count from the start of
/// the value handed to the parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// Not JSON.
    #[error("invalid JSON at byte {offset}: {what}")]
    Syntax { offset: usize, what: &'static str },
    /// Not UTF-8.
    #[error("invalid UTF-8 at byte {offset}")]
    Utf8 { offset: usize },
    /// Containers nested deeper than [`MAX_DEPTH`].
    #[error("JSON nested deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep { offset: usize },
    /// An object with two `kind` members: a client might read either.
    #[error("an object has a second \"kind\" member at byte {offset}")]
    DuplicateKind { offset: usize },
    /// Longer than the tape's 32-bit offsets.
    #[error("{len} bytes of JSON is more than the masker handles in one value")]
    TooLarge { len: usize },
}

/// What a key means to the parser.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyClass {
    Kind,
    LastApplied,
    Other,
}

struct Frame {
    tok: u32,
    obj: bool,
    /// The key token this container is the value of (`u32::MAX`: none).
    key: u32,
    class: KeyClass,
    kind_seen: bool,
}

/// Bytes that end the fast part of a string: `"`, `\` and control characters.
static STR_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The index of the first `"`, `\` or control byte at or after `j` (`s.len()` if none): eight
/// bytes at a time, then one by one.
fn skip_plain(s: &[u8], mut j: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Bit 7 of each byte that is zero (exact for the lowest such byte, which is all we use).
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    while let Some(w) = s.get(j..j + 8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let x = u64::from_le_bytes(b);
        let hit = zero(x ^ (LO * u64::from(b'"')))
            | zero(x ^ (LO * u64::from(b'\\')))
            | (x.wrapping_sub(LO * 0x20) & !x & HI);
        if hit != 0 {
            return j + (hit.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    while j < s.len() && !STR_STOP[s[j] as usize] {
        j += 1;
    }
    j
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Parse exactly one JSON value, optionally surrounded by whitespace.
pub(crate) fn parse(src: &[u8]) -> Result<Tape<'_>, JsonError> {
    if src.len() >= u32::MAX as usize {
        return Err(JsonError::TooLarge { len: src.len() });
    }
    if let Err(e) = std::str::from_utf8(src) {
        return Err(JsonError::Utf8 {
            offset: e.valid_up_to(),
        });
    }
    let mut p = Parser {
        src,
        i: 0,
        toks: Vec::with_capacity(src.len() / 24 + 4),
        stack: Vec::new(),
        kinded: Vec::new(),
        last_applied: Vec::new(),
    };
    p.run()?;
    Ok(Tape {
        src,
        toks: p.toks,
        kinded: p.kinded,
        last_applied: p.last_applied,
    })
}

struct Parser<'a> {
    src: &'a [u8],
    i: usize,
    toks: Vec<Tok>,
    stack: Vec<Frame>,
    kinded: Vec<u32>,
    last_applied: Vec<LastApplied>,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError::Syntax {
            offset: self.i,
            what,
        }
    }

    fn ws(&mut self) {
        while self.i < self.src.len() && is_ws(self.src[self.i]) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.i).copied()
    }

    fn push(&mut self, start: usize, end: usize, aux: u32) -> u32 {
        let idx = self.toks.len() as u32;
        self.toks.push(Tok {
            start: start as u32,
            end: end as u32,
            next: idx + 1,
            aux,
        });
        idx
    }

    fn run(&mut self) -> Result<(), JsonError> {
        // The key the next value belongs to, and what it means.
        let mut key = u32::MAX;
        let mut class = KeyClass::Other;
        self.ws();
        'value: loop {
            let start = self.i;
            let Some(b) = self.peek() else {
                return Err(self.err("unexpected end"));
            };
            let scalar = match b {
                b'{' | b'[' => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(JsonError::TooDeep { offset: start });
                    }
                    let tok = self.push(start, start + 1, 0);
                    let obj = b == b'{';
                    self.stack.push(Frame {
                        tok,
                        obj,
                        key,
                        class,
                        kind_seen: false,
                    });
                    self.i += 1;
                    self.ws();
                    let close = if obj { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        self.close()?;
                    } else if obj {
                        (key, class) = self.key()?;
                        continue 'value;
                    } else {
                        (key, class) = (u32::MAX, KeyClass::Other);
                        continue 'value;
                    }
                    None
                }
                b'"' => {
                    let escaped = self.string()?;
                    Some(self.push(start, self.i, if escaped { ESCAPED } else { 0 }))
                }
                b't' => Some(self.literal(b"true")?),
                b'f' => Some(self.literal(b"false")?),
                b'n' => Some(self.literal(b"null")?),
                b'-' | b'0'..=b'9' => Some(self.number()?),
                _ => return Err(self.err("expected a value")),
            };
            if let Some(tok) = scalar {
                self.value_done(tok, class);
            }
            // After a value: a separator, a closing bracket, or the end.
            loop {
                self.ws();
                let Some(top) = self.stack.last() else {
                    break 'value;
                };
                let obj = top.obj;
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        self.ws();
                        if obj {
                            (key, class) = self.key()?;
                        } else {
                            (key, class) = (u32::MAX, KeyClass::Other);
                        }
                        continue 'value;
                    }
                    Some(b'}') if obj => {
                        self.i += 1;
                        self.close()?;
                    }
                    Some(b']') if !obj => {
                        self.i += 1;
                        self.close()?;
                    }
                    Some(_) => {
                        return Err(self.err(if obj {
                            "expected ',' or '}'"
                        } else {
                            "expected ',' or ']'"
                        }))
                    }
                    None => return Err(self.err("unexpected end")),
                }
            }
        }
        self.ws();
        if self.i != self.src.len() {
            return Err(self.err("trailing characters after the value"));
        }
        Ok(())
    }

    /// The container on top of the stack ends at `self.i`.
    fn close(&mut self) -> Result<(), JsonError> {
        let Some(f) = self.stack.pop() else {
            return Err(self.err("unbalanced"));
        };
        let next = self.toks.len() as u32;
        let t = &mut self.toks[f.tok as usize];
        t.end = self.i as u32;
        t.next = next;
        self.value_done(f.tok, f.class);
        Ok(())
    }

    /// Record what masking needs about a complete value of a member of class `class`.
    fn value_done(&mut self, tok: u32, class: KeyClass) {
        match class {
            KeyClass::Other => {}
            KeyClass::Kind => {
                if self.src[self.toks[tok as usize].start as usize] == b'"' {
                    if let Some(top) = self.stack.last() {
                        self.toks[top.tok as usize].aux = tok + 1;
                        self.kinded.push(top.tok);
                    }
                }
            }
            KeyClass::LastApplied => {
                let owner = self.annotated_object();
                self.last_applied.push(LastApplied { value: tok, owner });
            }
        }
    }

    /// With the top of the stack an object held at `<owner>.metadata.annotations`: `owner`.
    fn annotated_object(&self) -> Option<u32> {
        let n = self.stack.len();
        if n < 3 {
            return None;
        }
        let (owner, meta, ann) = (&self.stack[n - 3], &self.stack[n - 2], &self.stack[n - 1]);
        (owner.obj
            && meta.obj
            && ann.obj
            && self.key_is(ann.key, "annotations")
            && self.key_is(meta.key, "metadata"))
        .then_some(owner.tok)
    }

    fn key_is(&self, key: u32, name: &str) -> bool {
        if key == u32::MAX {
            return false;
        }
        let t = self.toks[key as usize];
        let raw = &self.src[t.start as usize..t.end as usize];
        if t.aux & ESCAPED == 0 {
            &raw[1..raw.len() - 1] == name.as_bytes()
        } else {
            serde_json::from_slice::<String>(raw).is_ok_and(|k| k == name)
        }
    }

    /// An object key and its colon; leaves `self.i` at the value.
    fn key(&mut self) -> Result<(u32, KeyClass), JsonError> {
        let start = self.i;
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string key"));
        }
        let escaped = self.string()?;
        let tok = self.push(start, self.i, KEY | if escaped { ESCAPED } else { 0 });
        let class = if self.key_is(tok, "kind") {
            KeyClass::Kind
        } else if (escaped || self.i - start == LAST_APPLIED_ANNOTATION.len() + 2)
            && self.key_is(tok, LAST_APPLIED_ANNOTATION)
        {
            KeyClass::LastApplied
        } else {
            KeyClass::Other
        };
        if class == KeyClass::Kind {
            if let Some(top) = self.stack.last_mut() {
                if top.kind_seen {
                    return Err(JsonError::DuplicateKind { offset: start });
                }
                top.kind_seen = true;
            }
        }
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.err("expected ':'"));
        }
        self.i += 1;
        self.ws();
        Ok((tok, class))
    }

    /// A string starting at the opening quote; returns whether it had escapes.
    fn string(&mut self) -> Result<bool, JsonError> {
        let s = self.src;
        let mut j = self.i + 1;
        let mut escaped = false;
        loop {
            j = skip_plain(s, j);
            match s.get(j) {
                None => {
                    self.i = j;
                    return Err(self.err("unterminated string"));
                }
                Some(b'"') => {
                    self.i = j + 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    j = self.escape(j)?;
                }
                Some(_) => {
                    self.i = j;
                    return Err(self.err("control character in a string"));
                }
            }
        }
    }

    /// The escape at `j` (a backslash); returns the index after it.
    fn escape(&mut self, j: usize) -> Result<usize, JsonError> {
        let s = self.src;
        match s.get(j + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(j + 2),
            Some(b'u') => {
                let hi = self.hex4(j + 2)?;
                match hi {
                    0xD800..=0xDBFF => {
                        if s.get(j + 6) != Some(&b'\\') || s.get(j + 7) != Some(&b'u') {
                            self.i = j;
                            return Err(self.err("unpaired UTF-16 surrogate"));
                        }
                        let lo = self.hex4(j + 8)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            self.i = j;
                            return Err(self.err("unpaired UTF-16 surrogate"));
                        }
                        Ok(j + 12)
                    }
                    0xDC00..=0xDFFF => {
                        self.i = j;
                        Err(self.err("unpaired UTF-16 surrogate"))
                    }
                    _ => Ok(j + 6),
                }
            }
            _ => {
                self.i = j;
                Err(self.err("invalid escape"))
            }
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, JsonError> {
        let Some(h) = self.src.get(at..at + 4) else {
            self.i = at;
            return Err(self.err("truncated \\u escape"));
        };
        let mut n = 0u32;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => {
                    self.i = at;
                    return Err(self.err("invalid \\u escape"));
                }
            };
            n = n * 16 + u32::from(d);
        }
        Ok(n)
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<u32, JsonError> {
        let start = self.i;
        if self.src.get(start..start + word.len()) != Some(word) {
            return Err(self.err("invalid literal"));
        }
        self.i += word.len();
        Ok(self.push(start, self.i, 0))
    }

    fn number(&mut self) -> Result<u32, JsonError> {
        let s = self.src;
        let start = self.i;
        let mut j = start;
        let digits = |j: &mut usize| {
            let from = *j;
            while *j < s.len() && s[*j].is_ascii_digit() {
                *j += 1;
            }
            *j - from
        };
        if s.get(j) == Some(&b'-') {
            j += 1;
        }
        let int_digits = match s.get(j) {
            Some(b'0') => {
                j += 1;
                1
            }
            Some(b'1'..=b'9') => digits(&mut j),
            _ => {
                self.i = j;
                return Err(self.err("invalid number"));
            }
        };
        let mut float = false;
        if s.get(j) == Some(&b'.') {
            j += 1;
            float = true;
            if digits(&mut j) == 0 {
                self.i = j;
                return Err(self.err("invalid number"));
            }
        }
        if matches!(s.get(j), Some(b'e' | b'E')) {
            j += 1;
            float = true;
            if matches!(s.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if digits(&mut j) == 0 {
                self.i = j;
                return Err(self.err("invalid number"));
            }
        }
        // serde_json refuses what does not fit an f64; so does the masker, to read numbers as it.
        if float || int_digits > 18 {
            let text = std::str::from_utf8(&s[start..j]).unwrap_or("x");
            if !text.parse::<f64>().is_ok_and(f64::is_finite) {
                self.i = start;
                return Err(self.err("number out of range"));
            }
        }
        self.i = j;
        Ok(self.push(start, j, 0))
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
