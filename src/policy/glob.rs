//! The globs of policy rules (`prod-*`, `bob?`), compiled once at config load.
//!
//! Why not a glob crate: rules need only `*` (any run of characters, `/` included) and `?` (one
//! character), matched against short strings thousands of times per second, and the common
//! shapes — `*`, an exact string, `prefix*`, `*suffix` — deserve a comparison, not a matcher.
//! `[`, `]`, `{`, `}` and `\` are refused rather than taken literally, so nobody writes a
//! character class believing it works. Matching is case-sensitive, as kube-apiserver is.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Kind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Any,
    /// An exact string of at most 15 bytes, packed with its length into one integer: compared
    /// without following a pointer (rule scans stay in the rule list's own memory).
    Short(u128),
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Pattern(Box<[u8]>),
}

impl Glob {
    /// Compile `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("is empty".into());
        }
        Self::new_allow_empty(pattern)
    }

    /// [`Glob::new`], accepting `""` as the exact empty string (API groups: `""` is core).
    pub fn new_allow_empty(pattern: &str) -> Result<Glob, String> {
        if let Some(c) = pattern.chars().find(|c| matches!(c, '[' | ']' | '{' | '}' | '\\')) {
            return Err(format!("{pattern:?}: {c:?} is reserved; only '*' and '?' are wildcards"));
        }
        if pattern.chars().any(char::is_control) || pattern.trim() != pattern {
            return Err(format!("{pattern:?}: no surrounding spaces or control characters"));
        }
        let wild = |s: &str| s.contains(['*', '?']);
        let kind = if pattern.bytes().all(|b| b == b'*') && !pattern.is_empty() {
            Kind::Any
        } else if !wild(pattern) {
            match pack(pattern.as_bytes()) {
                Some(p) => Kind::Short(p),
                None => Kind::Exact(pattern.into()),
            }
        } else if let Some(p) = pattern.strip_suffix('*').filter(|p| !wild(p)) {
            Kind::Prefix(p.into())
        } else if let Some(s) = pattern.strip_prefix('*').filter(|s| !wild(s)) {
            Kind::Suffix(s.into())
        } else {
            Kind::Pattern(pattern.as_bytes().into())
        };
        Ok(Glob(kind))
    }

    /// Whether `s` matches.
    #[must_use]
    pub fn matches(&self, s: &str) -> bool {
        match &self.0 {
            Kind::Any => true,
            Kind::Short(p) => s.len() == (*p >> 120) as usize && pack(s.as_bytes()) == Some(*p),
            Kind::Exact(e) => **e == *s,
            Kind::Prefix(p) => s.starts_with(&**p),
            Kind::Suffix(x) => s.ends_with(&**x),
            Kind::Pattern(p) => wildcard(p, s.as_bytes()),
        }
    }

    /// Whether this glob matches every string.
    #[must_use]
    pub fn is_any(&self) -> bool {
        self.0 == Kind::Any
    }
}

/// Whether any glob of `globs` matches `s`.
/// `s` (at most 15 bytes) and its length in one integer; `None` when longer.
#[inline]
fn pack(s: &[u8]) -> Option<u128> {
    if s.len() > 15 {
        return None;
    }
    let mut b = [0u8; 16];
    b[..s.len()].copy_from_slice(s);
    b[15] = s.len() as u8;
    Some(u128::from_le_bytes(b))
}

pub fn any_match(globs: &[Glob], s: &str) -> bool {
    globs.iter().any(|g| g.matches(s))
}

/// Length of the UTF-8 sequence a leading byte starts (1 for a stray continuation byte).
fn utf8_len(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Greedy `*` with backtracking to the last star: O(|p|·|s|) at worst, no recursion.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = s.get(si) {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some(b'?') => {
                pi += 1;
                si += utf8_len(c);
                continue;
            }
            Some(&pc) if pc == c => {
                pi += 1;
                si += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, ss)) => {
                let next = ss + s.get(ss).map_or(1, |&b| utf8_len(b));
                star = Some((sp, next));
                pi = sp + 1;
                si = next;
            }
            None => return false,
        }
    }
    si == s.len() && p.get(pi..).is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s)
    }

    #[test]
    fn shapes() {
        assert!(m("*", "") && m("*", "anything/at all"));
        assert!(m("prod", "prod") && !m("prod", "prod-eu") && !m("prod", "Prod"));
        assert!(m("prod-*", "prod-eu") && m("prod-*", "prod-") && !m("prod-*", "prod"));
        assert!(m("*-eu", "prod-eu") && !m("*-eu", "prod-us"));
        assert!(m("pods/*", "pods/exec") && !m("pods/*", "pods"));
        assert!(m("b?b", "bob") && !m("b?b", "bb") && m("b?b", "bäb"));
        assert!(m("a*b*c", "aXbYc") && m("a*b*c", "abc") && !m("a*b*c", "acb"));
        assert!(m("*x*", "x") && m("**", "") && !m("a?", "a"));
        assert!(m("/healthz*", "/healthz/ready") && !m("/healthz*", "/livez"));
    }

    #[test]
    fn reserved_and_empty_are_refused() {
        for bad in ["", "[ab]", "{a,b}", "a\\*", " prod", "prod\n"] {
            assert!(Glob::new(bad).is_err(), "{bad:?}");
        }
        assert!(Glob::new_allow_empty("").unwrap().matches(""));
        assert!(!Glob::new_allow_empty("").unwrap().matches("apps"));
    }

    #[test]
    fn exact_strings_of_every_length_around_the_packed_limit() {
        for n in [0usize, 1, 7, 14, 15, 16, 17, 40] {
            let p = "x".repeat(n);
            let g = if n == 0 { Glob::new_allow_empty(&p).unwrap() } else { Glob::new(&p).unwrap() };
            assert!(g.matches(&p), "{n}");
            assert!(!g.matches(&format!("{p}x")), "{n}+1");
            if n > 0 {
                assert!(!g.matches(&p[..n - 1]), "{n}-1");
                assert!(!g.matches(&format!("{}y", &p[..n - 1])), "{n} differs in the last byte");
            }
        }
        // A string with a NUL byte is not the shorter string padded with zeros.
        assert!(!Glob::new("ab").unwrap().matches("ab\0"));
        assert!(!Glob::new_allow_empty("").unwrap().matches("\0"));
    }
}
