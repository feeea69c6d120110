//! The path glob of a `fileSystem.*` scope, parsed once and matched segment by segment.
//!
//! A glob is a `/`-separated list of segments, matched against a path relative to its root
//! (the workspace, the extension's storage or its own folder). Nothing but `**` ever matches
//! across a `/`.
//!
//! | syntax | matches |
//! |---|---|
//! | `name` | a segment spelled exactly so (case-sensitive) |
//! | `*` | any run of characters within one segment, including none |
//! | `?` | exactly one character (a Unicode scalar value, so `?.txt` matches `é.txt`) |
//! | `[abc]`, `[a-z]` | one character of the set or range; `]` right after `[` (or `[!`) is literal |
//! | `[!abc]`, `[^abc]` | one character not in the set |
//! | `{a,b,c}` | one of the alternatives, within one segment (`*.{js,ts}`); nesting allowed |
//! | `**` | as a whole segment: any number of segments, including none |
//!
//! A character that is special is matched literally inside a class: `[*]`, `[?]`, `[[]`, `[{]`.
//! Backslash escapes are refused, and so is anything that would not mean what it looks like:
//! an unclosed `[` or `{`, an empty `[]` or `{}`, `**` inside a segment (`src/**.js`: write
//! `src/**/*.js`), braces that put two `*` side by side (`*{*,a}`), a `/` inside braces or a
//! class, `[:alpha:]`-style names, a range that runs backwards, more than [`MAX_ALTERNATIVES`]
//! alternatives in one segment, braces nested more than [`MAX_BRACE_DEPTH`] deep, `.`/`..`/empty
//! segments, more than [`MAX_SEGMENTS`] segments or [`MAX_LEN`] characters.
//!
//! Both the glob (from a manifest) and the path (from a request) come from the extension, so
//! matching is polynomial whatever they hold: braces are expanded at parse time within the
//! bounds above, a segment is matched by a scan that only ever backtracks to its last `*`, and
//! `**` is handled by a table over (glob position, path position), not by backtracking.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Component, Path};
use std::sync::LazyLock;

/// The most segments a glob may have.
pub const MAX_SEGMENTS: usize = 32;
/// The most characters a glob may have.
pub const MAX_LEN: usize = 512;
/// The most alternatives the braces of one segment may expand to.
pub const MAX_ALTERNATIVES: usize = 64;
/// The deepest braces may nest.
pub const MAX_BRACE_DEPTH: usize = 8;
/// The most pattern characters all expanded alternatives of a glob may hold together, which
/// bounds the cost of one match to this times the length of the path.
const MAX_EXPANDED: usize = 4096;

/// A parsed path glob: `src/**`, `**/*.{js,ts}`, `docs/[a-m]*.md`.
///
/// Two globs are equal when their canonical texts are ([`Display`](fmt::Display)); the canonical
/// text is the glob as written, with runs of `**` segments (`**/**`) written once.
#[derive(Clone)]
pub struct Glob {
    text: String,
    segments: Vec<Segment>,
}

/// What a glob is, for code that must treat it as a folder or a file rather than a pattern
/// (a sandbox that can only grant whole folders, a check that may follow symbolic links).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GlobShape {
    /// Literal segments then one trailing `**` (or just `**`, with no segments): matches the
    /// folder they name and everything beneath it.
    Subtree(Vec<String>),
    /// Only literal segments: matches exactly this one path, and nothing beneath it.
    Exact(Vec<String>),
    /// Anything with a wildcard, a class or braces that is not a trailing `**`.
    Pattern,
}

/// Why a glob is refused. Each message says what to write instead; they reach extension authors
/// through [`PermissionParseError`](super::PermissionParseError).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlobError {
    /// Empty, absolute, or with a backslash or a NUL.
    #[error(
        "a path scope is a relative glob such as `src/**` (no leading `/`, no backslashes; \
         a literal `*`, `?`, `[` or `{{` is written `[*]`, `[?]`, `[[]`, `[{{]`)"
    )]
    NotRelative,
    /// An empty, `.` or `..` segment, or a brace alternative that is `.` or `..`.
    #[error("a path scope may not contain empty, `.` or `..` segments")]
    DotSegment,
    /// More than [`MAX_SEGMENTS`] segments or [`MAX_LEN`] characters.
    #[error("a path scope has at most {MAX_SEGMENTS} segments and {MAX_LEN} characters")]
    TooLong,
    /// A `{` with no `}` in its segment.
    #[error(
        "unclosed `{{` in `{segment}`; close it, as in `{fixed}` (a literal `{{` is written `[{{]`)"
    )]
    UnclosedBrace {
        /// The segment as written.
        segment: String,
        /// The glob with the braces closed at the end of that segment.
        fixed: String,
    },
    /// A class that holds a `/`.
    #[error(
        "`/` inside `[...]` in `{glob}`: a class matches one character of a segment, never `/`"
    )]
    SlashInClass {
        /// The glob as written.
        glob: String,
    },
    /// Braces whose alternatives hold a `/`.
    #[error(
        "`/` inside `{{...}}` in `{glob}`: braces choose within one path segment; write \
         `{{a,b}}/c` rather than `{{a/c,b/c}}`, or one entry per path"
    )]
    SlashInBraces {
        /// The glob as written.
        glob: String,
    },
    /// `{}`, which would match nothing.
    #[error("empty `{{}}` in `{segment}`; list the alternatives, as in `{{a,b}}`")]
    EmptyBraces {
        /// The segment as written.
        segment: String,
    },
    /// A `[` with no `]` in its segment.
    #[error(
        "unclosed `[` in `{segment}`; close it, as in `{fixed}` (a literal `[` is written `[[]`)"
    )]
    UnclosedClass {
        /// The segment as written.
        segment: String,
        /// The glob with the class closed at the end of that segment.
        fixed: String,
    },
    /// `[]` or `[!]`, which list no character.
    #[error(
        "empty class `[]` in `{segment}`; list the characters, as in `[ab]` \
         (a literal `]` is written `[]]`, a literal `[` `[[]`)"
    )]
    EmptyClass {
        /// The segment as written.
        segment: String,
    },
    /// `[:alpha:]`, `[.a.]` or `[=a=]` inside a class: not supported, and silently different if
    /// read as a set.
    #[error(
        "named classes such as `[:alpha:]` are not supported (in `{segment}`); list the \
         characters, as in `[a-zA-Z]`"
    )]
    NamedClass {
        /// The segment as written.
        segment: String,
    },
    /// A range such as `z-a`.
    #[error("range `{from}-{to}` in `{segment}` runs backwards; write `{to}-{from}`")]
    ReversedRange {
        /// The segment as written.
        segment: String,
        /// The range's first character.
        from: char,
        /// The range's last character.
        to: char,
    },
    /// `**` with other characters in its segment (`**.js`, `a**b`).
    #[error(
        "`**` in `{segment}` is not a whole segment: `**` stands alone between slashes; write \
         `{within}` to match within one folder{}",
        across.as_ref().map_or(String::new(), |a| format!(", or `{a}` to match in every folder beneath"))
    )]
    DoubleStarInSegment {
        /// The segment as written.
        segment: String,
        /// The glob with `**` read as `*` (one segment).
        within: String,
        /// The glob with the segment split around a `**` segment; `None` when the `**` is
        /// inside braces, which cannot hold a `/`.
        across: Option<String>,
    },
    /// Braces that put two `*` side by side (`*{*,a}`), which would read as a `**`.
    #[error(
        "the braces in `{segment}` put two `*` side by side, which reads as `**` but is not a \
         whole segment; write one `*` (`*{{,a}}` rather than `*{{*,a}}`)"
    )]
    StarsMeet {
        /// The segment as written.
        segment: String,
    },
    /// Braces expanding to more than [`MAX_ALTERNATIVES`] alternatives in one segment.
    #[error(
        "the braces in `{segment}` expand to more than {MAX_ALTERNATIVES} alternatives; \
         use `*` or split the entry into several permissions"
    )]
    TooManyAlternatives {
        /// The segment as written.
        segment: String,
    },
    /// Braces nested more than [`MAX_BRACE_DEPTH`] deep.
    #[error("braces nest more than {MAX_BRACE_DEPTH} deep in `{segment}`; flatten them")]
    TooDeep {
        /// The segment as written.
        segment: String,
    },
    /// All alternatives together are too long to match cheaply.
    #[error(
        "the braces of `{glob}` expand to more than {MAX_EXPANDED} characters in all; \
         use fewer or shorter alternatives"
    )]
    TooLarge {
        /// The glob as written.
        glob: String,
    },
}

#[derive(Debug, Clone)]
enum Segment {
    /// No `*`, `?`, `[` or `{`: compared as a string.
    Literal(String),
    /// `**`.
    AnyDepth,
    /// The alternatives its braces expand to (one when it has none), each a token sequence.
    Pattern(Vec<Vec<Token>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// `**`, shared by every unscoped path permission.
static EVERYTHING: LazyLock<Glob> = LazyLock::new(|| Glob {
    text: "**".to_owned(),
    segments: vec![Segment::AnyDepth],
});

impl Glob {
    /// Parses a glob such as `src/**` (see the [module docs](self) for the syntax).
    ///
    /// # Errors
    /// [`GlobError`], whose message names the problem and what to write instead.
    pub fn parse(text: &str) -> Result<Self, GlobError> {
        if text.is_empty() || text.starts_with('/') || text.contains(['\\', '\0']) {
            return Err(GlobError::NotRelative);
        }
        let raw: Vec<&str> = text.split('/').collect();
        if raw.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
            return Err(GlobError::DotSegment);
        }
        if raw.len() > MAX_SEGMENTS || text.chars().count() > MAX_LEN {
            return Err(GlobError::TooLong);
        }
        let mut segments = Vec::with_capacity(raw.len());
        let mut canonical: Vec<&str> = Vec::with_capacity(raw.len());
        let mut expanded = 0;
        for (index, &segment) in raw.iter().enumerate() {
            let parsed =
                parse_segment(segment).map_err(|problem| segment_error(problem, &raw, index))?;
            match parsed {
                // `**/**` means what `**` means; one spelling keeps equal globs equal.
                Segment::AnyDepth if matches!(segments.last(), Some(Segment::AnyDepth)) => {}
                parsed => {
                    if let Segment::Pattern(alternatives) = &parsed {
                        expanded += alternatives.iter().map(Vec::len).sum::<usize>();
                    }
                    segments.push(parsed);
                    canonical.push(segment);
                }
            }
        }
        if expanded > MAX_EXPANDED {
            return Err(GlobError::TooLarge {
                glob: text.to_owned(),
            });
        }
        Ok(Self {
            text: canonical.join("/"),
            segments,
        })
    }

    /// `**`: every path under the root, the root itself included.
    #[must_use]
    pub fn everything() -> Self {
        EVERYTHING.clone()
    }

    /// A shared `**`, for callers that need a reference.
    pub(crate) fn everything_ref() -> &'static Self {
        &EVERYTHING
    }

    /// Whether this is `**`, which matches every path under the root.
    #[must_use]
    pub fn is_everything(&self) -> bool {
        matches!(self.segments.as_slice(), [Segment::AnyDepth])
    }

    /// Whether the path `relative` (to the glob's root) matches. A path with a `..`, a root or a
    /// prefix component never matches; `.` components are ignored; an empty path is the root
    /// itself, which only a glob made of `**` matches. Bytes that are not UTF-8 are read as
    /// U+FFFD, so wildcards (and so denies) still cover such names.
    #[must_use]
    pub fn matches(&self, relative: &Path) -> bool {
        let mut names = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => names.push(Name::new(name.to_string_lossy())),
                Component::CurDir => {}
                _ => return false,
            }
        }
        self.reachable(&names)[self.segments.len()]
    }

    /// Whether some path equal to `prefix` or beneath it could match: a deny for which this says
    /// false cannot reach into that folder. It never says false when such a match exists (it
    /// may say true when none does, for a class no character satisfies). `prefix` is a list of
    /// segments; an element holding `/` counts as the segments it separates, `""` and `.` are
    /// ignored, and `..` makes the answer false (a path through `..` never matches).
    #[must_use]
    pub fn may_match_at_or_under(&self, prefix: &[&str]) -> bool {
        let mut names = Vec::new();
        for segment in prefix.iter().flat_map(|s| s.split('/')) {
            match segment {
                "" | "." => {}
                ".." => return false,
                name => names.push(Name::new(Cow::Borrowed(name))),
            }
        }
        // Once the prefix is consumed, any reachable glob position can go on to match something
        // beneath: every remaining segment can match some name.
        self.reachable(&names).contains(&true)
    }

    /// What kind of glob this is.
    #[must_use]
    pub fn shape(&self) -> GlobShape {
        let literals: Vec<String> = self.literal_prefix().map(str::to_owned).collect();
        match &self.segments[literals.len()..] {
            [] => GlobShape::Exact(literals),
            [Segment::AnyDepth] => GlobShape::Subtree(literals),
            _ => GlobShape::Pattern,
        }
    }

    /// The literal segments the glob starts with (`src`, `a` for `src/a/*.rs`; none for `**`).
    pub fn literal_prefix(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map_while(|segment| match segment {
            Segment::Literal(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// `reachable[i]`: the first `i` glob segments can match all of `names`. One pass over the
    /// names, each step O(glob segments) segment comparisons: O(glob × path) comparisons however
    /// the `**`s are arranged, where a backtracking matcher is exponential in their number.
    fn reachable(&self, names: &[Name<'_>]) -> Vec<bool> {
        let len = self.segments.len();
        let mut reachable = vec![false; len + 1];
        reachable[0] = true;
        self.skip_any_depth(&mut reachable);
        for name in names {
            let mut next = vec![false; len + 1];
            for (i, segment) in self.segments.iter().enumerate() {
                if !reachable[i] {
                    continue;
                }
                match segment {
                    // `**` takes this name and stays, ready for more.
                    Segment::AnyDepth => next[i] = true,
                    Segment::Literal(literal) => next[i + 1] |= *literal == *name.text,
                    Segment::Pattern(alternatives) => {
                        next[i + 1] |= alternatives.iter().any(|a| match_tokens(a, &name.chars));
                    }
                }
            }
            self.skip_any_depth(&mut next);
            if !next.contains(&true) {
                return next;
            }
            reachable = next;
        }
        reachable
    }

    /// A `**` also matches no segment at all: where it can start, the glob can go on past it.
    fn skip_any_depth(&self, reachable: &mut [bool]) {
        for (i, segment) in self.segments.iter().enumerate() {
            if reachable[i] && matches!(segment, Segment::AnyDepth) {
                reachable[i + 1] = true;
            }
        }
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Glob {}

impl Hash for Glob {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Glob").field(&self.text).finish()
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Glob {
    type Err = GlobError;

    fn from_str(text: &str) -> Result<Self, GlobError> {
        Self::parse(text)
    }
}

/// One path segment, as text (for literals) and as characters (for patterns).
struct Name<'a> {
    text: Cow<'a, str>,
    chars: Vec<char>,
}

impl<'a> Name<'a> {
    fn new(text: Cow<'a, str>) -> Self {
        let chars = text.chars().collect();
        Self { text, chars }
    }
}

/// `*`, `?` and classes within one segment, by the usual scan that backtracks only to the last
/// `*`: every other token takes exactly one character, so O(tokens × name) at worst.
fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t, n));
                t += 1;
            }
            Some(token) if token.matches_char(name[n]) => {
                t += 1;
                n += 1;
            }
            _ => match star {
                Some((star_t, star_n)) => {
                    t = star_t + 1;
                    n = star_n + 1;
                    star = Some((star_t, star_n + 1));
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| *token == Token::Star)
}

impl Token {
    fn matches_char(&self, c: char) -> bool {
        match self {
            Self::Char(expected) => *expected == c,
            Self::AnyChar => true,
            Self::Star => false,
            Self::Class { negated, ranges } => {
                *negated != ranges.iter().any(|&(from, to)| from <= c && c <= to)
            }
        }
    }
}

/// What is wrong with one segment, before it is put in terms of the whole glob.
#[derive(Clone, Copy)]
enum Problem {
    UnclosedBrace { open: usize },
    EmptyBraces,
    UnclosedClass,
    EmptyClass,
    NamedClass,
    ReversedRange(char, char),
    DoubleStar { at: usize, in_braces: bool },
    StarsMeet,
    TooManyAlternatives,
    TooDeep,
    DotAlternative,
}

fn segment_error(problem: Problem, raw: &[&str], index: usize) -> GlobError {
    let segment = raw[index].to_owned();
    // The closing character is there, past a `/`: the author meant it to span segments.
    let later = |c: char| raw[index + 1..].iter().any(|s| s.contains(c));
    let glob_with = |replacement: &str| {
        let mut parts = raw.to_vec();
        parts[index] = replacement;
        parts.join("/")
    };
    match problem {
        Problem::UnclosedBrace { .. } if later('}') => GlobError::SlashInBraces {
            glob: raw.join("/"),
        },
        Problem::UnclosedBrace { open } => GlobError::UnclosedBrace {
            fixed: glob_with(&format!("{segment}{}", "}".repeat(open))),
            segment,
        },
        Problem::EmptyBraces => GlobError::EmptyBraces { segment },
        Problem::UnclosedClass if later(']') => GlobError::SlashInClass {
            glob: raw.join("/"),
        },
        Problem::UnclosedClass => GlobError::UnclosedClass {
            fixed: glob_with(&format!("{segment}]")),
            segment,
        },
        Problem::EmptyClass => GlobError::EmptyClass { segment },
        Problem::NamedClass => GlobError::NamedClass { segment },
        Problem::ReversedRange(from, to) => GlobError::ReversedRange { segment, from, to },
        Problem::DoubleStar { at, in_braces } => {
            let (before, after) = (&segment[..at], &segment[at + 2..]);
            let within = glob_with(&format!("{before}*{after}"));
            let across = (!in_braces).then(|| match (before.is_empty(), after.is_empty()) {
                (true, _) => glob_with(&format!("**/*{after}")),
                (false, true) => glob_with(&format!("{before}*/**")),
                (false, false) => glob_with(&format!("{before}*/**/*{after}")),
            });
            GlobError::DoubleStarInSegment {
                segment,
                within,
                across,
            }
        }
        Problem::TooManyAlternatives => GlobError::TooManyAlternatives { segment },
        Problem::TooDeep => GlobError::TooDeep { segment },
        Problem::StarsMeet => GlobError::StarsMeet { segment },
        Problem::DotAlternative => GlobError::DotSegment,
    }
}

fn parse_segment(segment: &str) -> Result<Segment, Problem> {
    if segment == "**" {
        return Ok(Segment::AnyDepth);
    }
    if !segment.contains(['*', '?', '[', '{']) {
        return Ok(Segment::Literal(segment.to_owned()));
    }
    let mut parser = SegmentParser {
        chars: segment.char_indices().collect(),
        pos: 0,
        depth: 0,
    };
    let mut alternatives = parser.sequence()?;
    for alternative in &mut alternatives {
        // `*{*,a}` or `*{,a}*`: textually a `**`, which is not what it means here.
        if alternative
            .windows(2)
            .any(|w| w[0] == Token::Star && w[1] == Token::Star)
        {
            return Err(Problem::StarsMeet);
        }
        let literal: Option<String> = alternative
            .iter()
            .map(|t| match t {
                Token::Char(c) => Some(*c),
                _ => None,
            })
            .collect();
        if matches!(literal.as_deref(), Some("." | "..")) {
            return Err(Problem::DotAlternative);
        }
    }
    Ok(Segment::Pattern(alternatives))
}

/// A recursive-descent parser of one segment, expanding braces as it goes.
struct SegmentParser {
    /// The segment's characters with their byte offsets.
    chars: Vec<(usize, char)>,
    pos: usize,
    /// How many `{` are open.
    depth: usize,
}

impl SegmentParser {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).map(|&(_, c)| c)
    }

    /// A run of tokens and groups up to the end, or to the `,`/`}` of the open group: the
    /// alternatives it expands to.
    fn sequence(&mut self) -> Result<Vec<Vec<Token>>, Problem> {
        let mut alternatives: Vec<Vec<Token>> = vec![Vec::new()];
        while let Some(c) = self.peek(0) {
            let token = match c {
                ',' | '}' if self.depth > 0 => break,
                '*' if self.peek(1) == Some('*') => {
                    return Err(Problem::DoubleStar {
                        at: self.chars[self.pos].0,
                        in_braces: self.depth > 0,
                    });
                }
                '[' => self.class()?,
                '{' => {
                    let group = self.group()?;
                    if alternatives.len() * group.len() > MAX_ALTERNATIVES {
                        return Err(Problem::TooManyAlternatives);
                    }
                    alternatives = alternatives
                        .iter()
                        .flat_map(|head| {
                            group.iter().map(move |tail| {
                                let mut joined = head.clone();
                                joined.extend_from_slice(tail);
                                joined
                            })
                        })
                        .collect();
                    continue;
                }
                c => {
                    self.pos += 1;
                    match c {
                        '*' => Token::Star,
                        '?' => Token::AnyChar,
                        c => Token::Char(c),
                    }
                }
            };
            for alternative in &mut alternatives {
                alternative.push(token.clone());
            }
        }
        Ok(alternatives)
    }

    /// `{a,b,...}` from its `{` past its `}`.
    fn group(&mut self) -> Result<Vec<Vec<Token>>, Problem> {
        self.pos += 1;
        self.depth += 1;
        if self.depth > MAX_BRACE_DEPTH {
            return Err(Problem::TooDeep);
        }
        let mut alternatives = Vec::new();
        loop {
            alternatives.extend(self.sequence()?);
            if alternatives.len() > MAX_ALTERNATIVES {
                return Err(Problem::TooManyAlternatives);
            }
            match self.peek(0) {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(Problem::UnclosedBrace { open: self.depth }),
            }
        }
        self.depth -= 1;
        if alternatives.iter().all(Vec::is_empty) {
            return Err(Problem::EmptyBraces);
        }
        Ok(alternatives)
    }

    /// `[...]` from its `[` past its `]`.
    fn class(&mut self) -> Result<Token, Problem> {
        self.pos += 1;
        let negated = matches!(self.peek(0), Some('!' | '^'));
        if negated {
            self.pos += 1;
        }
        let first = self.peek(0);
        let mut ranges = Vec::new();
        loop {
            let Some(c) = self.peek(0) else {
                // `[]...` with no second `]`: most likely meant as an empty class.
                return Err(if first == Some(']') {
                    Problem::EmptyClass
                } else {
                    Problem::UnclosedClass
                });
            };
            if c == ']' && !ranges.is_empty() {
                self.pos += 1;
                break;
            }
            if c == '[' && matches!(self.peek(1), Some(':' | '.' | '=')) {
                return Err(Problem::NamedClass);
            }
            self.pos += 1;
            match (self.peek(0), self.peek(1)) {
                (Some('-'), Some(to)) if to != ']' => {
                    self.pos += 2;
                    if to < c {
                        return Err(Problem::ReversedRange(c, to));
                    }
                    ranges.push((c, to));
                }
                _ => ranges.push((c, c)),
            }
        }
        Ok(Token::Class { negated, ranges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(text: &str) -> Glob {
        Glob::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn matching() {
        let table = [
            // Literals, `*`, `**`.
            ("src/main.rs", "src/main.rs", true),
            ("src/main.rs", "src/main.rs/x", false),
            ("src/*.rs", "src/main.rs", true),
            ("src/*.rs", "src/.rs", true),
            ("src/*.rs", "src/a/main.rs", false),
            ("src/**", "src", true),
            ("src/**", "src/a/b/c", true),
            ("src/**", "srcx/a", false),
            ("**", "", true),
            ("**", "a/b", true),
            ("**/*.md", "README.md", true),
            ("**/*.md", "docs/a/README.md", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/x/y/c", false),
            ("*", "a/b", false),
            // `?` is one character, not one byte.
            ("?.txt", "a.txt", true),
            ("?.txt", "é.txt", true),
            ("?.txt", "日.txt", true),
            ("?.txt", "ab.txt", false),
            ("?.txt", ".txt", false),
            ("??", "éé", true),
            ("??", "é", false),
            ("caf?", "café", true),
            ("*é", "xé", true),
            // Classes, ranges, negation, `]` first.
            ("[abc].rs", "b.rs", true),
            ("[abc].rs", "d.rs", false),
            ("[a-z]", "q", true),
            ("[a-z]", "Q", false),
            ("[a-zA-Z0-9_]x", "Zx", true),
            ("[!abc]", "d", true),
            ("[!abc]", "a", false),
            ("[^abc]", "d", true),
            ("[^abc]", "b", false),
            ("[!a]", "é", true),
            ("[é-ë]", "ê", true),
            ("[]]", "]", true),
            ("[]a]", "a", true),
            ("[!]]", "]", false),
            ("[!]]", "x", true),
            ("[a-]", "-", true),
            ("[-a]", "-", true),
            ("[*]", "*", true),
            ("[*]", "x", false),
            ("[[]x", "[x", true),
            ("[{]a,b}", "{a,b}", true),
            ("[ab]", "ab", false),
            ("[ab]*", "ax", true),
            // Braces.
            ("*.{js,ts}", "a.js", true),
            ("*.{js,ts}", "a.ts", true),
            ("*.{js,ts}", "a.rs", false),
            ("*.{js,ts}", "a.js/b", false),
            ("{src,lib}/**", "lib/x/y", true),
            ("{src,lib}/**", "test/x", false),
            ("a{,b}", "a", true),
            ("a{,b}", "ab", true),
            ("{a}", "a", true),
            ("{a,{b,c}d}", "cd", true),
            ("{a,{b,c}d}", "bd", true),
            ("{a,{b,c}d}", "d", false),
            ("{a,b}{c,d}", "bc", true),
            ("{a,b}{c,d}", "ab", false),
            ("{[ab],c*}", "b", true),
            ("{[ab],c*}", "cat", true),
            ("{[ab],c*}", "d", false),
            ("{a,b},c", "a,c", true),
            ("x}", "x}", true),
            ("a]", "a]", true),
            // Never `..`, never absolute, `.` ignored.
            ("src/**", "src/../secret", false),
            ("**", "/etc/passwd", false),
            ("**", "../x", false),
            ("src/*.rs", "./src/a.rs", true),
        ];
        for (glob, path, expected) in table {
            assert_eq!(g(glob).matches(Path::new(path)), expected, "{glob} {path}");
        }
    }

    #[test]
    fn names_that_are_not_utf8_still_meet_wildcards() {
        use std::os::unix::ffi::OsStrExt;
        let name = Path::new(std::ffi::OsStr::from_bytes(b"a/\xff.key"));
        assert!(g("**/*.key").matches(name));
        assert!(g("a/?.key").matches(name));
        assert!(!g("a/b.key").matches(name));
    }

    #[test]
    fn malformed_globs_say_what_to_write() {
        let table = [
            ("", "relative glob"),
            ("/etc/**", "no leading `/`"),
            ("a\\*", "no backslashes"),
            ("a//b", "empty, `.` or `..`"),
            ("./a", "empty, `.` or `..`"),
            ("a/..", "empty, `.` or `..`"),
            ("{.,..}", "empty, `.` or `..`"),
            (
                "src/{a,b",
                "unclosed `{` in `{a,b`; close it, as in `src/{a,b}`",
            ),
            ("{a,{b", "as in `{a,{b}}`"),
            ("x{", "as in `x{}`"),
            ("src/{a,b/c}", "`/` inside `{...}`"),
            ("{}", "empty `{}`"),
            ("a{,}", "empty `{}`"),
            (
                "src/[ab",
                "unclosed `[` in `[ab`; close it, as in `src/[ab]`",
            ),
            ("[!ab", "as in `[!ab]`"),
            ("[]", "empty class `[]`"),
            ("[!]", "empty class `[]`"),
            ("[]a", "empty class `[]`"),
            ("[[:alpha:]]", "named classes"),
            (
                "[z-a]",
                "range `z-a` in `[z-a]` runs backwards; write `a-z`",
            ),
            (
                "src/**.js",
                "write `src/*.js` to match within one folder, or `src/**/*.js`",
            ),
            ("a**", "write `a*` to match within one folder, or `a*/**`"),
            ("a**b", "or `a*/**/*b`"),
            ("{**,x}", "write `{*,x}` to match within one folder"),
            ("*{*,x}", "put two `*` side by side"),
            ("*{,b}*", "put two `*` side by side"),
            ("src/[a/b]", "`/` inside `[...]`"),
            ("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}", ""),
            (
                "{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}",
                "more than 64 alternatives",
            ),
            (
                "{a,b,c,d,e,f,g,h}{a,b,c,d,e,f,g,h,i}",
                "more than 64 alternatives",
            ),
            ("{{{{{{{{{a}}}}}}}}}", "nest more than 8 deep"),
            ("{{{{{{{{a}}}}}}}}", ""),
        ];
        for (glob, needle) in table {
            match (Glob::parse(glob), needle) {
                (Ok(_), "") => {}
                (Ok(_), _) => panic!("{glob} parsed"),
                (Err(e), needle) => {
                    assert!(!needle.is_empty(), "{glob}: {e}");
                    assert!(e.to_string().contains(needle), "{glob}: {e}");
                }
            }
        }
        // 64 alternatives of 64 stars and letters each: within the per-segment bound, over the
        // total one.
        let long = format!(
            "{{a,b}}{{a,b}}{{a,b}}{{a,b}}{{a,b}}{{a,b}}{}",
            "*x".repeat(40)
        );
        assert!(
            Glob::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("expand to more than 4096")
        );
        let segments = vec!["a"; MAX_SEGMENTS + 1].join("/");
        assert!(
            Glob::parse(&segments)
                .unwrap_err()
                .to_string()
                .contains("at most 32 segments")
        );
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        let table = [
            ("src/**", "src/**"),
            ("**/**/x/**/**", "**/x/**"),
            ("*.{js,ts}", "*.{js,ts}"),
            ("[!a-c]?", "[!a-c]?"),
        ];
        for (written, canonical) in table {
            let glob = g(written);
            assert_eq!(glob.to_string(), canonical);
            assert_eq!(g(canonical), glob);
        }
        assert_eq!(g("**/**"), Glob::everything());
        assert!(g("**/**").is_everything());
        assert!(!g("src/**").is_everything());
    }

    #[test]
    fn shapes() {
        let owned = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let table = [
            ("**", GlobShape::Subtree(vec![])),
            ("**/**", GlobShape::Subtree(vec![])),
            ("src/**", GlobShape::Subtree(owned(&["src"]))),
            ("src/a/**", GlobShape::Subtree(owned(&["src", "a"]))),
            ("src/a.rs", GlobShape::Exact(owned(&["src", "a.rs"]))),
            ("a]b/c}", GlobShape::Exact(owned(&["a]b", "c}"]))),
            ("src/*.rs", GlobShape::Pattern),
            ("src/**/a", GlobShape::Pattern),
            ("**/x", GlobShape::Pattern),
            ("{src,lib}/**", GlobShape::Pattern),
            ("{src}/**", GlobShape::Pattern),
            ("src/[a]", GlobShape::Pattern),
            ("src/?", GlobShape::Pattern),
        ];
        for (glob, shape) in table {
            assert_eq!(g(glob).shape(), shape, "{glob}");
        }
        assert_eq!(
            g("src/a/*.rs").literal_prefix().collect::<Vec<_>>(),
            ["src", "a"]
        );
    }

    #[test]
    fn may_match_at_or_under() {
        let table: &[(&str, &[&str], bool)] = &[
            ("**/*.key", &[], true),
            ("**/*.key", &["a"], true),
            ("**/*.key", &["a", "b", "c.key"], true),
            ("docs/**", &["src"], false),
            ("docs/**", &["docs"], true),
            ("docs/**", &["docs", "x"], true),
            ("src/secret/**", &["src"], true),
            ("src/secret/**", &["src", "secret"], true),
            ("src/secret/**", &["src", "secret", "x"], true),
            ("src/secret/**", &["src/secret/x"], true),
            ("src/secret/**", &["src", "public"], false),
            ("src/*.rs", &["src"], true),
            ("src/*.rs", &["src", "a.rs"], true),
            ("src/*.rs", &["src", "a"], false),
            ("src/*.rs", &["src", "a.rs", "b"], false),
            ("*/x", &["a"], true),
            ("*/x", &["a", "y"], false),
            ("a.txt", &["a.txt"], true),
            ("a.txt", &["b"], false),
            ("{src,lib}/x", &["lib"], true),
            ("{src,lib}/x", &["test"], false),
            ("src/**", &["src", "..", "etc"], false),
            ("src/**", &[".", "src", ""], true),
        ];
        for (glob, prefix, expected) in table {
            assert_eq!(
                g(glob).may_match_at_or_under(prefix),
                *expected,
                "{glob} {prefix:?}"
            );
        }
    }

    #[test]
    fn hostile_globs_match_in_polynomial_time() {
        let name: String = "a".repeat(4000);
        let deep = vec!["d"; 2000].join("/");
        let cases = [
            // Every alternative of the 64 full of stars, against a long name that none matches.
            (
                format!(
                    "{{a,b}}{{a,b}}{{a,b}}{{a,b}}{{a,b}}{{a,b}}{}b",
                    "*a".repeat(20)
                ),
                name.clone(),
                false,
            ),
            (format!("{}b", "*[a]".repeat(30)), name.clone(), false),
            ("*[!b]".repeat(30), name.clone(), true),
            (
                format!("{}/x", vec!["**/*{a,d}*"; 15].join("/")),
                deep.clone(),
                false,
            ),
            (
                format!("{}/d", vec!["**/*{a,d}*"; 15].join("/")),
                deep,
                true,
            ),
        ];
        // Finishing at all is the assertion; with backtracking these would not.
        for (glob, path, expected) in cases {
            assert_eq!(g(&glob).matches(Path::new(&path)), expected, "{glob}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A piece of a small glob segment over the alphabet `a`, `b`, `é`.
        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => prop::sample::select(vec!["a", "b", "é"]).prop_map(str::to_owned),
                2 => Just("*".to_owned()),
                2 => Just("?".to_owned()),
                1 => prop::sample::select(vec!["[ab]", "[!a]", "[a-é]", "[^é]", "[]a]"])
                    .prop_map(str::to_owned),
                1 => prop::sample::select(vec!["{a,b}", "{a,é*}", "{,b}", "{a,{b,?}}", "{*a,b?}"])
                    .prop_map(str::to_owned),
            ]
        }

        fn segment() -> impl Strategy<Value = String> {
            prop_oneof![
                1 => Just("**".to_owned()),
                4 => prop::collection::vec(piece(), 1..4).prop_map(|p| p.concat()),
            ]
        }

        fn glob() -> impl Strategy<Value = Glob> {
            prop::collection::vec(segment(), 1..5)
                .prop_filter_map("parses", |s| Glob::parse(&s.join("/")).ok())
        }

        fn path() -> impl Strategy<Value = Vec<String>> {
            let name = prop::collection::vec(prop::sample::select(vec!['a', 'b', 'é']), 1..4)
                .prop_map(|c| c.into_iter().collect::<String>());
            prop::collection::vec(name, 0..5)
        }

        /// A reference matcher written the slow and obvious way: braces expanded textually,
        /// then plain recursion with backtracking. Inputs are tiny, so speed does not matter.
        fn reference(glob: &str, path: &[String]) -> bool {
            expand(glob).iter().any(|g| {
                let segments: Vec<&str> = g.split('/').collect();
                match_path(&segments, path)
            })
        }

        fn expand(glob: &str) -> Vec<String> {
            let chars: Vec<char> = glob.chars().collect();
            // The first `{` outside a class, and its matching `}`.
            let mut i = 0;
            while i < chars.len() {
                match chars[i] {
                    '[' => {
                        let mut j = i + 1;
                        if matches!(chars.get(j), Some('!' | '^')) {
                            j += 1;
                        }
                        j += 1;
                        while chars[j] != ']' {
                            j += 1;
                        }
                        i = j + 1;
                    }
                    '{' => {
                        let (mut depth, mut j, mut start) = (0, i, i + 1);
                        let mut options = Vec::new();
                        loop {
                            match chars[j] {
                                '{' => depth += 1,
                                '}' if depth == 1 => break,
                                '}' => depth -= 1,
                                ',' if depth == 1 => {
                                    options.push(chars[start..j].iter().collect::<String>());
                                    start = j + 1;
                                }
                                '[' => {
                                    j += 1;
                                    if matches!(chars[j], '!' | '^') {
                                        j += 1;
                                    }
                                    j += 1;
                                    while chars[j] != ']' {
                                        j += 1;
                                    }
                                }
                                _ => {}
                            }
                            j += 1;
                        }
                        options.push(chars[start..j].iter().collect());
                        let head: String = chars[..i].iter().collect();
                        let tail: String = chars[j + 1..].iter().collect();
                        return options
                            .iter()
                            .flat_map(|o| expand(&format!("{head}{o}{tail}")))
                            .collect();
                    }
                    _ => i += 1,
                }
            }
            vec![glob.to_owned()]
        }

        fn match_path(glob: &[&str], path: &[String]) -> bool {
            match glob.split_first() {
                None => path.is_empty(),
                Some((&"**", rest)) => (0..=path.len()).any(|k| match_path(rest, &path[k..])),
                Some((segment, rest)) => {
                    !path.is_empty()
                        && match_chars(
                            &segment.chars().collect::<Vec<_>>(),
                            &path[0].chars().collect::<Vec<_>>(),
                        )
                        && match_path(rest, &path[1..])
                }
            }
        }

        fn match_chars(p: &[char], n: &[char]) -> bool {
            match p.first() {
                None => n.is_empty(),
                Some('*') => (0..=n.len()).any(|k| match_chars(&p[1..], &n[k..])),
                Some('?') => !n.is_empty() && match_chars(&p[1..], &n[1..]),
                Some('[') => {
                    let mut j = 1;
                    let negated = matches!(p[j], '!' | '^');
                    if negated {
                        j += 1;
                    }
                    let mut hit = false;
                    let mut first = true;
                    while first || p[j] != ']' {
                        first = false;
                        let from = p[j];
                        let to = if p[j + 1] == '-' && p[j + 2] != ']' {
                            j += 2;
                            p[j]
                        } else {
                            from
                        };
                        j += 1;
                        hit |= n.first().is_some_and(|&c| from <= c && c <= to);
                    }
                    !n.is_empty() && hit != negated && match_chars(&p[j + 1..], &n[1..])
                }
                Some(&c) => n.first() == Some(&c) && match_chars(&p[1..], &n[1..]),
            }
        }

        fn as_path(path: &[String]) -> std::path::PathBuf {
            path.iter().collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn matches_agrees_with_the_reference(glob in glob(), path in path()) {
                prop_assert_eq!(
                    glob.matches(&as_path(&path)),
                    reference(&glob.to_string(), &path),
                    "{} {:?}", glob, path
                );
            }

            #[test]
            fn a_match_is_foreseen_at_every_prefix(glob in glob(), path in path()) {
                if glob.matches(&as_path(&path)) {
                    for k in 0..=path.len() {
                        let prefix: Vec<&str> = path[..k].iter().map(String::as_str).collect();
                        prop_assert!(glob.may_match_at_or_under(&prefix), "{} {:?}", glob, prefix);
                    }
                }
            }

            #[test]
            fn shapes_mean_what_they_say(glob in glob(), path in path()) {
                let matched = glob.matches(&as_path(&path));
                match glob.shape() {
                    GlobShape::Subtree(prefix) => prop_assert_eq!(matched, path.starts_with(&prefix)),
                    GlobShape::Exact(exact) => prop_assert_eq!(matched, path == exact),
                    GlobShape::Pattern => {}
                }
            }

            #[test]
            fn display_parses_back(glob in glob()) {
                prop_assert_eq!(Glob::parse(&glob.to_string()).unwrap(), glob);
            }
        }
    }
}
