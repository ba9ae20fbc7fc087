//! Text that goes into one-line error messages: network input made safe to print, and error
//! chains joined into one line.
//!
//! Every user-facing failure in hoop-kube is one line, and much of what goes into those lines
//! came from somewhere hoop-kube does not control (an identity provider's error description, a
//! URL, a profile field). These helpers are the one place that decides how such text is cut and
//! cleaned.

/// `s` with control characters replaced by spaces, cut to `max_chars` characters (the last one
/// becomes `…` when it is cut).
pub fn clip(s: &str, max_chars: usize) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if s.chars().count() > max_chars {
        s.chars().take(max_chars.saturating_sub(1)).collect::<String>() + "…"
    } else {
        s
    }
}

/// `s` on one line: control characters become spaces, runs of whitespace one space, then
/// [`clip`]ped to `max_chars`.
pub fn one_line(s: &str, max_chars: usize) -> String {
    let spaced: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    clip(&spaced.split_whitespace().collect::<Vec<_>>().join(" "), max_chars)
}

/// `e: cause: cause…`, every source in order.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    std::iter::successors(e.source(), |e| e.source()).fold(e.to_string(), |s, inner| format!("{s}: {inner}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_cleans_and_cuts() {
        assert_eq!(one_line("a\nb\r\n\tc  d\u{7}e", 300), "a b c d e");
        let long = one_line(&"x".repeat(1000), 300);
        assert_eq!(long.chars().count(), 300);
        assert!(long.ends_with('…'));
        assert_eq!(clip("ab\ncd", 10), "ab cd");
        assert_eq!(clip("abcdef", 3), "ab…");
    }

    #[test]
    fn error_chains_join_every_source() {
        let e = Wrapped(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&e), "wrapped: disk on fire");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
