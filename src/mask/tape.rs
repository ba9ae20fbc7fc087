//! A parsed JSON value as the masker walks it: a flat tape of tokens in document order, each
//! with its byte span in the source, so a value is skipped in one step and replaced by its span.
//!
//! Built only by [`super::json::parse`], which has checked everything it holds: spans are in
//! bounds, strings are valid UTF-8 with valid escapes, containers are balanced. The accessors
//! trust that and reject nothing.

use std::borrow::Cow;

use super::profile::Seg;

/// A token: a value or an object key. Its type is its first byte (`{`, `[`, `"`, or a scalar).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tok {
    /// Span in the source, quotes and brackets included.
    pub start: u32,
    pub end: u32,
    /// Index of the first token after this value (and all of its contents).
    pub next: u32,
    /// Objects: index of the `kind` string value + 1 (0: none). Strings: [`KEY`] | [`ESCAPED`].
    pub aux: u32,
}

/// `aux` bit of a string token that is an object key.
pub(crate) const KEY: u32 = 1;
/// `aux` bit of a string token with a backslash escape in it.
pub(crate) const ESCAPED: u32 = 2;

/// A last-applied annotation value, and the object it annotates when it sits at
/// `<object>.metadata.annotations` (elsewhere: `None`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastApplied {
    pub value: u32,
    pub owner: Option<u32>,
}

/// A parsed value.
pub(crate) struct Tape<'a> {
    pub src: &'a [u8],
    pub toks: Vec<Tok>,
    /// Objects with a string `kind`, as token indices.
    pub kinded: Vec<u32>,
    pub last_applied: Vec<LastApplied>,
}

impl<'a> Tape<'a> {
    pub fn tok(&self, i: u32) -> Tok {
        self.toks[i as usize]
    }

    pub fn first_byte(&self, i: u32) -> u8 {
        self.src[self.tok(i).start as usize]
    }

    pub fn is_object(&self, i: u32) -> bool {
        self.first_byte(i) == b'{'
    }

    pub fn is_array(&self, i: u32) -> bool {
        self.first_byte(i) == b'['
    }

    /// The bytes of token `i`.
    pub fn raw(&self, i: u32) -> &'a [u8] {
        let t = self.tok(i);
        &self.src[t.start as usize..t.end as usize]
    }

    /// The decoded text of string token `i` (borrowed unless it has escapes).
    pub fn str_at(&self, i: u32) -> Cow<'a, str> {
        let t = self.tok(i);
        let raw = self.raw(i);
        if t.aux & ESCAPED == 0 {
            // The source was checked to be UTF-8 and quotes are ASCII, so this cannot fail.
            Cow::Borrowed(std::str::from_utf8(&raw[1..raw.len() - 1]).unwrap_or_default())
        } else {
            Cow::Owned(serde_json::from_slice::<String>(raw).unwrap_or_default())
        }
    }

    /// Whether member name `key` (a key token) is `seg`, decoding it only if it has escapes.
    pub fn key_matches(&self, key: u32, seg: &Seg) -> bool {
        let raw = self.raw(key);
        if self.tok(key).aux & ESCAPED == 0 {
            seg.matches_bytes(&raw[1..raw.len() - 1])
        } else {
            seg.matches(&self.str_at(key))
        }
    }

    /// The object's `kind`, if it has a string one.
    pub fn kind(&self, obj: u32) -> Option<Cow<'a, str>> {
        match self.tok(obj).aux {
            0 => None,
            k => Some(self.str_at(k - 1)),
        }
    }

    /// `(key, value)` token pairs of object `obj`, in order.
    pub fn members(&self, obj: u32) -> Members<'_, 'a> {
        Members {
            tape: self,
            at: obj + 1,
            end: self.tok(obj).next,
        }
    }

    /// Element tokens of array `arr`, in order.
    pub fn elements(&self, arr: u32) -> Elements<'_, 'a> {
        Elements {
            tape: self,
            at: arr + 1,
            end: self.tok(arr).next,
        }
    }
}

pub(crate) struct Members<'t, 'a> {
    tape: &'t Tape<'a>,
    at: u32,
    end: u32,
}

impl Iterator for Members<'_, '_> {
    type Item = (u32, u32);
    fn next(&mut self) -> Option<(u32, u32)> {
        if self.at >= self.end {
            return None;
        }
        let (k, v) = (self.at, self.at + 1);
        self.at = self.tape.tok(v).next;
        Some((k, v))
    }
}

pub(crate) struct Elements<'t, 'a> {
    tape: &'t Tape<'a>,
    at: u32,
    end: u32,
}

impl Iterator for Elements<'_, '_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.at >= self.end {
            return None;
        }
        let v = self.at;
        self.at = self.tape.tok(v).next;
        Some(v)
    }
}
