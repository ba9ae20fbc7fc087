//! Literal Secret values replaced in unstructured output: `pods/log` and exec/attach
//! stdout/stderr, where there is no structure to mask by.
//!
//! The relay builds a [`Replacer`] from the Secrets the user may not read in the namespace
//! ([`secret_values`] extracts the decoded values from a Secret or SecretList), then runs one
//! [`TextStream`] per byte stream (one per exec channel). Every occurrence becomes
//! [`TEXT`](super::placeholder::TEXT), across arbitrary chunk boundaries: a stream keeps back
//! at most the last `longest value − 1` bytes, and only from the first position where the
//! tail could still be the start of a value — so a line ending in `\n` is usually passed on
//! at once and `kubectl logs -f` does not stall. [`TextStream::finish`] flushes the rest.
//!
//! Values shorter than [`MIN_VALUE_LEN`] bytes are ignored: `1`, `no`, `abc` occur everywhere,
//! replacing them would garble the output, and the garbling itself would tell which short
//! string is secret. Values longer than [`MAX_VALUE_LEN`] (Helm release blobs, bundles) are
//! ignored too: they are never printed verbatim and would make the automaton and the carry
//! large. Matching is exact bytes: a value printed re-encoded, split, or piece by piece is not
//! found. This is a seatbelt, not a boundary — whoever can exec can read a mounted Secret in
//! some other encoding; the policy must not give exec where that matters.
//!
//! Trusts: the values given. Rejects: nothing in the output; it only replaces.

use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use super::placeholder::TEXT;

/// Shorter values are not searched for.
pub const MIN_VALUE_LEN: usize = 4;
/// Longer values are not searched for.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// How many leading bytes of a value the "could a value start here" test compares.
const PREFIX: usize = 8;

/// The values could not be compiled into a searcher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the secret values cannot be searched for: {0}")]
pub struct TextError(String);

/// The compiled set of values to replace. Share it (`Arc`) between the streams of a request.
pub struct Replacer {
    ac: Option<AhoCorasick>,
    values: usize,
    longest: usize,
    /// Bit per byte value that starts some value.
    first: [u64; 4],
    /// Bit per byte pair that starts some value of two bytes or more.
    pairs: Box<[u64]>,
    /// `prefixes[l]`: the first `l` bytes (packed) of every value, sorted, for `l` in 1..=8.
    prefixes: [Vec<u64>; PREFIX + 1],
}

impl fmt::Debug for Replacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the values themselves.
        f.debug_struct("Replacer")
            .field("values", &self.values)
            .field("longest", &self.longest)
            .finish_non_exhaustive()
    }
}

fn pack(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(a)
}

impl Replacer {
    /// Compile `values` (raw bytes; duplicates, and lengths outside
    /// [`MIN_VALUE_LEN`]..=[`MAX_VALUE_LEN`], are dropped).
    pub fn new<I, V>(values: I) -> Result<Replacer, TextError>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let mut vals: Vec<Vec<u8>> = values
            .into_iter()
            .map(|v| v.as_ref().to_vec())
            .filter(|v| (MIN_VALUE_LEN..=MAX_VALUE_LEN).contains(&v.len()))
            .collect();
        vals.sort_unstable();
        vals.dedup();
        let mut first = [0u64; 4];
        let mut pairs = vec![0u64; 1024].into_boxed_slice();
        let mut prefixes: [Vec<u64>; PREFIX + 1] = Default::default();
        for v in &vals {
            first[usize::from(v[0] >> 6)] |= 1 << (v[0] & 63);
            let pair = usize::from(v[0]) << 8 | usize::from(v[1]);
            pairs[pair >> 6] |= 1 << (pair & 63);
            for (l, set) in prefixes.iter_mut().enumerate().skip(1) {
                set.push(pack(&v[..l.min(v.len())]));
            }
        }
        for set in &mut prefixes {
            set.sort_unstable();
            set.dedup();
        }
        let longest = vals.iter().map(Vec::len).max().unwrap_or(0);
        let ac = if vals.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&vals)
                    .map_err(|e| TextError(e.to_string()))?,
            )
        };
        Ok(Replacer {
            ac,
            values: vals.len(),
            longest,
            first,
            pairs,
            prefixes,
        })
    }

    /// How many distinct values are searched for.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values
    }

    /// Whether nothing is searched for (output passes unchanged).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values == 0
    }

    /// Replace every value in a complete text, appending to `out`; returns the replacements.
    pub fn replace_all(&self, input: &[u8], out: &mut Vec<u8>) -> usize {
        self.process(input, true, out).0
    }

    /// Whether some value might start with `tail` (or with its first [`PREFIX`] bytes): may say
    /// yes wrongly, never no wrongly.
    fn may_start(&self, tail: &[u8]) -> bool {
        let Some(&b0) = tail.first() else {
            return false;
        };
        if self.first[usize::from(b0 >> 6)] & (1 << (b0 & 63)) == 0 {
            return false;
        }
        if let Some(&b1) = tail.get(1) {
            let pair = usize::from(b0) << 8 | usize::from(b1);
            if self.pairs[pair >> 6] & (1 << (pair & 63)) == 0 {
                return false;
            }
        }
        let l = tail.len().min(PREFIX);
        // A value shorter than the tail matched whole, so the searcher has seen it already; the
        // sets hold each value's bytes padded with zeros beyond its end, which may only add yeses.
        self.prefixes[l].binary_search(&pack(&tail[..l])).is_ok()
    }

    /// Replace values in `buf`, appending to `out`; returns the replacements and where the
    /// bytes still undecided start (`buf.len()` when `eof`).
    fn process(&self, buf: &[u8], eof: bool, out: &mut Vec<u8>) -> (usize, usize) {
        let Some(ac) = &self.ac else {
            out.extend_from_slice(buf);
            return (0, buf.len());
        };
        let n = buf.len();
        // A value starting before `window` lies entirely in `buf`; one starting later may not.
        let window = if eof {
            n
        } else {
            n.saturating_sub(self.longest - 1)
        };
        let hold_from = |pos: usize| {
            (pos.max(window)..n)
                .find(|&p| self.may_start(&buf[p..]))
                .unwrap_or(n)
        };
        let mut hold = hold_from(0);
        let (mut pos, mut count) = (0, 0);
        for m in ac.find_iter(buf) {
            if m.start() >= hold {
                break;
            }
            out.extend_from_slice(&buf[pos..m.start()]);
            out.extend_from_slice(TEXT.as_bytes());
            pos = m.end();
            count += 1;
            if pos > hold {
                hold = hold_from(pos);
            }
        }
        out.extend_from_slice(&buf[pos..hold.max(pos)]);
        (count, hold.max(pos))
    }
}

/// Replacement over one byte stream, chunk by chunk.
#[derive(Debug)]
pub struct TextStream {
    replacer: Arc<Replacer>,
    carry: Vec<u8>,
    replaced: u64,
}

impl TextStream {
    /// A stream replacing `replacer`'s values.
    #[must_use]
    pub fn new(replacer: Arc<Replacer>) -> TextStream {
        TextStream {
            replacer,
            carry: Vec::new(),
            replaced: 0,
        }
    }

    /// Feed the next chunk; what is decided is appended to `out`. Returns the replacements.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> usize {
        let count = if self.carry.is_empty() {
            let (c, keep) = self.replacer.process(chunk, false, out);
            self.carry.extend_from_slice(&chunk[keep..]);
            c
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(chunk);
            let (c, keep) = self.replacer.process(&buf, false, out);
            buf.drain(..keep);
            self.carry = buf;
            c
        };
        self.replaced += count as u64;
        count
    }

    /// The stream ended: flush what was kept back. Returns the replacements in it.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> usize {
        let carry = std::mem::take(&mut self.carry);
        let (count, _) = self.replacer.process(&carry, true, out);
        self.replaced += count as u64;
        count
    }

    /// Bytes kept back, waiting for more input.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.carry.len()
    }

    /// Replacements so far.
    #[must_use]
    pub fn replaced(&self) -> u64 {
        self.replaced
    }
}

/// The literal values of a `Secret`, `SecretList` or `List` of Secrets: every `data` value
/// decoded from base64 (and its base64 text as well), every `stringData` value. A `data` value
/// that is not valid base64 is taken as it is written. Other kinds contribute nothing.
#[must_use]
pub fn secret_values(v: &Value) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    collect(v, false, &mut out, 0);
    out.sort_unstable();
    out.dedup();
    out
}

fn collect(v: &Value, implied_secret: bool, out: &mut Vec<Vec<u8>>, depth: usize) {
    let Value::Object(m) = v else { return };
    if depth > 8 {
        return;
    }
    let kind = m.get("kind").and_then(Value::as_str);
    if kind == Some("Secret") || (kind.is_none() && implied_secret) {
        if let Some(Value::Object(data)) = m.get("data") {
            for s in data.values().filter_map(Value::as_str) {
                out.push(STANDARD.decode(s).unwrap_or_else(|_| s.as_bytes().to_vec()));
                out.push(s.as_bytes().to_vec());
            }
        }
        if let Some(Value::Object(data)) = m.get("stringData") {
            out.extend(
                data.values()
                    .filter_map(Value::as_str)
                    .map(|s| s.as_bytes().to_vec()),
            );
        }
    }
    if let Some(k) = kind.filter(|k| k.ends_with("List")) {
        if let Some(Value::Array(items)) = m.get("items") {
            for item in items {
                collect(item, k == "SecretList", out, depth + 1);
            }
        }
    }
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
