//! The shell's parser: script text → tokens → commands (words, `;` `&&` `||` `|`, `!`,
//! redirections, `if`/`while`/`until`/`for`). Words keep their quoting and `$` parameters;
//! expansion happens at run time, in the interpreter.

/// A piece of a word: literal text (quoted?), a parameter (quoted?), or `~`.
#[derive(Debug, Clone)]
pub(super) enum Part {
    Lit(String, bool),
    Var(String, bool),
    Tilde,
}

#[derive(Debug, Clone)]
pub(super) struct Word(pub(super) Vec<Part>);

impl Word {
    fn is_lit(&self, s: &str) -> bool {
        matches!(self.0.as_slice(), [Part::Lit(l, false)] if l == s)
    }
    /// `NAME=value` with an unquoted valid name: the name and the value word.
    pub(super) fn assignment(&self) -> Option<(String, Word)> {
        let Some(Part::Lit(first, false)) = self.0.first() else { return None };
        let (name, val) = first.split_once('=')?;
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let mut parts = vec![Part::Lit(val.to_string(), true)];
        parts.extend(self.0[1..].iter().cloned());
        valid.then(|| (name.to_string(), Word(parts)))
    }
}

#[derive(Debug, Clone)]
pub(super) enum Tok {
    W(Word),
    Op(&'static str),
    Redir(Option<u8>, &'static str),
}

#[derive(Debug, Default)]
pub(super) struct Simple {
    pub(super) words: Vec<Word>,
    pub(super) redirs: Vec<(Option<u8>, &'static str, Word)>,
}

/// A command: simple, or one of the compound forms `if`, `while`/`until`, `for`.
#[derive(Debug)]
pub(super) enum Cmd {
    Simple(Simple),
    If(Vec<(Vec<AndOr>, Vec<AndOr>)>, Vec<AndOr>),
    Loop(bool, Vec<AndOr>, Vec<AndOr>),
    For(String, Option<Vec<Word>>, Vec<AndOr>),
}

#[derive(Debug)]
pub(super) struct Pipeline {
    pub(super) neg: bool,
    pub(super) cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub(super) struct AndOr {
    pub(super) first: Pipeline,
    pub(super) rest: Vec<(bool, Pipeline)>,
}

/// The error of an unclosed quote (the prompt then reads another line).
pub(super) const UNTERMINATED: &str = "unterminated quoted string";
const RESERVED: [&str; 12] = ["then", "else", "elif", "fi", "do", "done", "case", "esac", "{", "}", "function", "select"];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let s: Vec<char> = src.chars().collect();
    let (mut i, mut toks) = (0, Vec::new());
    while let Some(&c) = s.get(i) {
        let next = s.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\r' => i += 1,
            '\\' if next == Some('\n') => i += 2,
            '#' => i = s[i..].iter().position(|&c| c == '\n').map_or(s.len(), |n| i + n),
            ';' if next == Some(';') => return Err("unexpected \";;\"".into()),
            '\n' | ';' => {
                toks.push(Tok::Op(if c == ';' { ";" } else { "\n" }));
                i += 1;
            }
            '&' | '|' => {
                let op = match (c, next == Some(c)) {
                    ('&', true) => "&&",
                    ('|', true) => "||",
                    ('|', false) => "|",
                    _ => return Err("unsupported: background jobs (&)".into()),
                };
                toks.push(Tok::Op(op));
                i += op.len();
            }
            '(' | ')' => return Err(format!("unsupported: subshells ({c})")),
            _ => {
                let digits = s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                let (fd, j) = match s.get(i + digits) {
                    Some('<' | '>') if digits > 0 => (s[i..i + digits].iter().collect::<String>().parse().ok().or(Some(255)), i + digits),
                    _ => (None, i),
                };
                if matches!(s.get(j), Some('<' | '>')) {
                    let op = match (s[j], s.get(j + 1)) {
                        ('>', Some('>')) => ">>",
                        ('>', Some('&')) => ">&",
                        ('>', Some('|')) => ">|",
                        ('>', _) => ">",
                        ('<', Some('<' | '&' | '>')) => return Err("unsupported redirection".into()),
                        _ => "<",
                    };
                    toks.push(Tok::Redir(fd, if op == ">|" { ">" } else { op }));
                    i = j + op.len();
                } else {
                    let (w, n) = lex_word(&s[i..])?;
                    toks.push(Tok::W(w));
                    i += n;
                }
            }
        }
    }
    Ok(toks)
}

fn lex_word(s: &[char]) -> Result<(Word, usize), String> {
    let (mut parts, mut lit, mut i) = (Vec::new(), String::new(), 0);
    let flush = |parts: &mut Vec<Part>, lit: &mut String| {
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(lit), false));
        }
    };
    while let Some(&c) = s.get(i) {
        match c {
            ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>' => break,
            '\'' => {
                let end = s[i + 1..].iter().position(|&x| x == '\'').ok_or(UNTERMINATED)?;
                flush(&mut parts, &mut lit);
                parts.push(Part::Lit(s[i + 1..i + 1 + end].iter().collect(), true));
                i += end + 2;
            }
            '"' => {
                flush(&mut parts, &mut lit);
                let mut q = String::new();
                i += 1;
                loop {
                    match (s.get(i), s.get(i + 1)) {
                        (None, _) => return Err(UNTERMINATED.into()),
                        (Some('"'), _) => break,
                        (Some('\\'), Some(&d @ ('$' | '`' | '"' | '\\' | '\n'))) => {
                            if d != '\n' {
                                q.push(d);
                            }
                            i += 2;
                        }
                        (Some('$'), _) => {
                            let (p, n) = lex_var(&s[i..], true)?;
                            match p {
                                Some(p) => parts.extend([Part::Lit(std::mem::take(&mut q), true), p]),
                                None => q.push('$'),
                            }
                            i += n;
                        }
                        (Some('`'), _) => return Err("unsupported: command substitution (`)".into()),
                        (Some(&d), _) => {
                            q.push(d);
                            i += 1;
                        }
                    }
                }
                parts.push(Part::Lit(q, true));
                i += 1;
            }
            '\\' => {
                match s.get(i + 1) {
                    Some('\n') => {}
                    Some(&d) => {
                        flush(&mut parts, &mut lit);
                        parts.push(Part::Lit(d.to_string(), true));
                    }
                    None => lit.push('\\'),
                }
                i += 2;
            }
            '$' => {
                let (p, n) = lex_var(&s[i..], false)?;
                match p {
                    Some(p) => {
                        flush(&mut parts, &mut lit);
                        parts.push(p);
                    }
                    None => lit.push('$'),
                }
                i += n;
            }
            '`' => return Err("unsupported: command substitution (`)".into()),
            '~' if i == 0 && matches!(s.get(1), None | Some(' ' | '\t' | '\n' | '/' | ';' | '|' | '&' | '<' | '>')) => {
                parts.push(Part::Tilde);
                i += 1;
            }
            c => {
                lit.push(c);
                i += 1;
            }
        }
    }
    flush(&mut parts, &mut lit);
    Ok((Word(parts), i.min(s.len())))
}

/// Parses a `$` expansion at `s[0]`: the part (None: a literal `$`) and chars consumed.
fn lex_var(s: &[char], quoted: bool) -> Result<(Option<Part>, usize), String> {
    let name_char = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    match s.get(1) {
        Some('{') => {
            let end = s.iter().position(|&c| c == '}').ok_or("bad substitution")?;
            let name: String = s[2..end].iter().collect();
            let special = name.len() == 1 && "?$#@*".contains(&name);
            let digits = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
            let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| name_char(&c));
            if !(special || digits || ident) {
                return Err("bad substitution".into());
            }
            Ok((Some(Part::Var(name, quoted)), end + 1))
        }
        Some('(') => Err("unsupported: command substitution $(...)".into()),
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let n = s[1..].iter().take_while(|c| name_char(c)).count();
            Ok((Some(Part::Var(s[1..1 + n].iter().collect(), quoted)), 1 + n))
        }
        Some(&c) if c.is_ascii_digit() || "?$#@*".contains(c) => Ok((Some(Part::Var(c.to_string(), quoted)), 2)),
        _ => Ok((None, 1)),
    }
}

/// The text of a word that is a plain valid name (for `for NAME`).
fn lit_name(w: &Word) -> Option<String> {
    match w.0.as_slice() {
        [Part::Lit(n, false)] if n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Some(n.clone()),
        _ => None,
    }
}

struct Parser {
    t: Vec<Tok>,
    i: usize,
}

/// The syntax error for token `t` (`None`: end of input, so the prompt reads another line).
pub(super) fn unexpected(t: Option<&Tok>) -> String {
    match t {
        None => "unexpected end of file".into(),
        Some(Tok::Op("\n")) => "unexpected newline".into(),
        Some(Tok::Op(op)) => format!("unexpected \"{op}\""),
        Some(Tok::Redir(..)) => "unexpected redirection".into(),
        Some(Tok::W(_)) => "unexpected word".into(),
    }
}

/// Parses a script into and-or lists.
pub(super) fn parse(src: &str) -> Result<Vec<AndOr>, String> {
    let mut p = Parser { t: lex(src)?, i: 0 };
    let mut list = Vec::new();
    loop {
        p.skip_newlines();
        if p.i >= p.t.len() {
            return Ok(list);
        }
        list.push(p.and_or()?);
        match p.t.get(p.i) {
            None => {}
            Some(Tok::Op(";" | "\n")) => p.i += 1,
            t => return Err(unexpected(t)),
        }
    }
}

impl Parser {
    fn op(&self, op: &str) -> bool {
        matches!(self.t.get(self.i), Some(Tok::Op(o)) if *o == op)
    }
    fn skip_newlines(&mut self) {
        while self.op("\n") {
            self.i += 1;
        }
    }
    fn and_or(&mut self) -> Result<AndOr, String> {
        let first = self.pipeline()?;
        let mut rest = Vec::new();
        while self.op("&&") || self.op("||") {
            let and = self.op("&&");
            self.i += 1;
            self.skip_newlines();
            rest.push((and, self.pipeline()?));
        }
        Ok(AndOr { first, rest })
    }
    fn pipeline(&mut self) -> Result<Pipeline, String> {
        let neg = matches!(self.t.get(self.i), Some(Tok::W(w)) if w.is_lit("!"));
        self.i += neg as usize;
        let mut cmds = vec![self.command()?];
        while self.op("|") {
            self.i += 1;
            self.skip_newlines();
            cmds.push(self.command()?);
        }
        Ok(Pipeline { neg, cmds })
    }
    /// The keyword at the current position, if the token is one of `kws`.
    fn keyword(&self, kws: &[&'static str]) -> Option<&'static str> {
        match self.t.get(self.i) {
            Some(Tok::W(w)) => kws.iter().find(|k| w.is_lit(k)).copied(),
            _ => None,
        }
    }
    /// Parses a non-empty list up to one of the keywords `ends`, which is consumed and returned.
    fn list_until(&mut self, ends: &[&'static str]) -> Result<(Vec<AndOr>, &'static str), String> {
        let mut list = Vec::new();
        loop {
            while self.op("\n") || (self.op(";") && !list.is_empty()) {
                self.i += 1;
            }
            if let Some(k) = self.keyword(ends) {
                self.i += 1;
                return match list.is_empty() {
                    true => Err(format!("unexpected \"{k}\"")),
                    false => Ok((list, k)),
                };
            }
            if self.i >= self.t.len() {
                return Err(unexpected(None));
            }
            list.push(self.and_or()?);
            if !(self.op(";") || self.op("\n") || self.keyword(ends).is_some()) {
                return Err(unexpected(self.t.get(self.i)));
            }
        }
    }
    fn compound(&mut self, kw: &str) -> Result<Cmd, String> {
        let cmd = match kw {
            "if" => {
                let mut arms = Vec::new();
                loop {
                    let (cond, _) = self.list_until(&["then"])?;
                    let (body, end) = self.list_until(&["elif", "else", "fi"])?;
                    arms.push((cond, body));
                    match end {
                        "elif" => continue,
                        "else" => break Cmd::If(arms, self.list_until(&["fi"])?.0),
                        _ => break Cmd::If(arms, Vec::new()),
                    }
                }
            }
            "for" => {
                let name = match self.t.get(self.i) {
                    Some(Tok::W(w)) => lit_name(w).ok_or("bad for loop variable")?,
                    t => return Err(unexpected(t)),
                };
                self.i += 1;
                let mut words = None;
                if self.keyword(&["in"]).is_some() {
                    self.i += 1;
                    let mut ws = Vec::new();
                    while let Some(Tok::W(w)) = self.t.get(self.i) {
                        ws.push(w.clone());
                        self.i += 1;
                    }
                    words = Some(ws);
                }
                while self.op(";") || self.op("\n") {
                    self.i += 1;
                }
                if self.keyword(&["do"]).is_none() {
                    return Err(unexpected(self.t.get(self.i)));
                }
                self.i += 1;
                Cmd::For(name, words, self.list_until(&["done"])?.0)
            }
            _ => {
                let (cond, _) = self.list_until(&["do"])?;
                Cmd::Loop(kw == "until", cond, self.list_until(&["done"])?.0)
            }
        };
        match self.t.get(self.i) {
            Some(Tok::Redir(..)) => Err("unsupported: redirection of compound commands".into()),
            Some(Tok::W(_)) => Err(unexpected(self.t.get(self.i))),
            _ => Ok(cmd),
        }
    }
    fn command(&mut self) -> Result<Cmd, String> {
        if let Some(kw) = self.keyword(&["if", "while", "until", "for"]) {
            self.i += 1;
            return self.compound(kw);
        }
        if let Some(r) = self.keyword(&RESERVED) {
            return Err(match r {
                "case" | "esac" | "{" | "}" | "function" | "select" => format!("unsupported: '{r}'"),
                _ => format!("unexpected \"{r}\""),
            });
        }
        let mut c = Simple::default();
        loop {
            match self.t.get(self.i) {
                Some(Tok::W(w)) => {
                    c.words.push(w.clone());
                }
                Some(&Tok::Redir(fd, op)) => {
                    self.i += 1;
                    match self.t.get(self.i) {
                        Some(Tok::W(w)) => c.redirs.push((fd, op, w.clone())),
                        t => return Err(unexpected(t)),
                    }
                }
                t if c.words.is_empty() && c.redirs.is_empty() => return Err(unexpected(t)),
                _ => return Ok(Cmd::Simple(c)),
            }
            self.i += 1;
        }
    }
}
