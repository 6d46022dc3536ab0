//! Env file parsing: dotenv text in, ordered variables or one located error out.
//!
//! It owns how pm reads an env file: the dotenv syntax comes entirely from the
//! `dotenvy` crate's iterator (never its `load`/`dotenv()` functions, which
//! write to pm's own environment), and this module adds what dotenvy lacks:
//! line numbers in errors, readable messages, and pm's expansion rule. It must
//! never do I/O, never write to the process environment, and never parse
//! dotenv syntax by hand.
//!
//! # The rule pm implements
//!
//! - Syntax is dotenvy 0.15's: `KEY=value`, optional `export ` prefix, `#`
//!   comments (a `#` starts a comment at the start of a line or after a blank;
//!   `a#b` and `"a # b"` keep it), single quotes (literal, no expansion),
//!   double quotes (escapes `\\ \" \' \$ \n` and `\` before a blank, values
//!   over several lines), `\` escapes outside quotes; a value with blanks
//!   must be quoted. A UTF-8
//!   BOM is ignored, and a missing final newline changes nothing (dotenvy
//!   alone rejects `A=b ` at the very end of a file).
//! - Expansion: `$NAME` (NAME is the run of letters and digits after `$`; an
//!   underscore ends it, so write `${FOO_BAR}`) and `${NAME}` are replaced,
//!   outside single quotes and unless the `$` is escaped, by:
//!   1. the value NAME got on the nearest earlier line of the same file, else
//!   2. `lookup(NAME)`: the caller's view of the earlier env files (a later
//!      file winning) and then pm's own environment, else
//!   3. the empty string.
//!
//!   pm's environment is therefore consulted only through `lookup`, after the
//!   file's own earlier lines, as SPEC §1 asks.
//! - dotenvy quirks kept as they are: after `$NAME` the next character is
//!   taken literally, so `"$FOO"` leaves the quote open (an error: write
//!   `"${FOO}"`) and `$FOO bar` is accepted as the value of FOO then ` bar`.
//! - A `${...}` whose content holds a blank, a quote, `\`, `#`, `$`, `{` or
//!   `}` is not a name any env file can define; it keeps dotenvy's own rule,
//!   which comes down to pm's environment, else empty.
//! - [`parse`] is [`parse_with_lookup`] with pm's environment as `lookup`:
//!   a file sees its own earlier lines, then pm's environment, but not the
//!   files read before it.
//!
//! # How the rule is obtained from dotenvy
//!
//! dotenvy 0.15 resolves a reference against the process environment first,
//! then against earlier lines of the same reader, and offers no hook. So
//! before handing the text to dotenvy, each reference is renamed to a
//! placeholder name that no environment variable and no line of the file
//! uses, and a line defining that placeholder as a marker (private-use
//! characters absent from the text) is put in front of the text. dotenvy then
//! substitutes the marker exactly where it would have expanded the reference,
//! and pm replaces each marker with the value the rule above gives. Renaming
//! one run of letters and digits (or the content of `${...}`) to another
//! cannot change how dotenvy splits lines, quotes or comments. References in
//! places where dotenvy does not expand (single quotes, `\$`, comments) must
//! keep their original text, so a first pass records which markers appear,
//! and only those references are renamed for the real pass. In the
//! pathological case where no free marker or placeholder exists, the text is
//! parsed as it is, with dotenvy's rule.
//!
//! # Result
//!
//! Every `KEY=value` line in file order, duplicates included: a key defined
//! twice appears twice, so a caller that applies the pairs in order gets the
//! later value, as in the file.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::ops::Range;
use std::rc::Rc;

use super::ConfigError;
use super::value::Value;

/// Where an env file's references find their values, besides the file's
/// own earlier lines.
pub struct Scope<'a> {
    /// True for a runtime variable (an address variable such as
    /// `PM_STORE_HOST`): it wins over every other definition and stays in the
    /// value unexpanded, for each runtime to fill in.
    pub runtime: &'a dyn Fn(&str) -> bool,
    /// The value a name has before this file: earlier env files, then pm's
    /// environment.
    pub lookup: &'a dyn Fn(&str) -> Option<Value>,
}

/// A parsed env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Every `KEY=value` in file order, duplicates included.
    pub vars: Vec<(String, Value)>,
    /// References to names defined nowhere, which expanded to nothing.
    pub unset: Vec<Unset>,
}

/// A reference to a name that nothing defines: earlier lines, earlier
/// files, pm's environment and the runtime variables all lack it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unset {
    pub file: String,
    pub line: usize,
    /// The reference as written: `$def` or `${def}` (a name, never a value).
    pub reference: String,
    /// The variable whose value it is part of.
    pub key: String,
}

impl std::fmt::Display for Unset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} is not set; {} gets \"\" in its place (write \\$ or use single quotes for a literal $)",
            super::one_line(&self.file),
            self.line,
            super::one_line(&self.reference),
            super::one_line(&self.key),
        )
    }
}

/// Parses one env file whose references fall back on pm's own environment
/// only: [`parse_with_lookup`] with a lookup into the process environment.
/// Use [`parse_with_lookup`] to let a file see the files read before it.
pub fn parse(text: &str, file: &str) -> Result<Vec<(String, String)>, ConfigError> {
    parse_with_lookup(text, file, &|name| std::env::var(name).ok())
}

/// Parses one env file without runtime variables, into plain strings.
/// `file` is the name shown in messages; `lookup` returns the value a name
/// has before this file (earlier files, then pm's environment), used for
/// references the file's own earlier lines do not define. Unset references
/// expand to nothing without a word: use [`parse_in`] to hear of them.
pub fn parse_with_lookup(
    text: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let lookup = |name: &str| lookup(name).map(Value::literal);
    let scope = Scope {
        runtime: &|_| false,
        lookup: &lookup,
    };
    let parsed = parse_in(text, file, &scope)?;
    Ok(parsed
        .vars
        .into_iter()
        .map(|(key, value)| {
            let text = value.expand(|_| String::new());
            (key, text)
        })
        .collect())
}

/// The line (1-based) where the last definition of `name` in `text`
/// starts, for messages about a variable rather than a failing line. A line
/// that looks like `NAME=` counts only when the text before it parses into
/// one definition fewer, so a line inside a quoted value over several
/// lines is never taken for one. None when the file does not define it.
pub fn last_definition_line(text: &str, file: &str, name: &str) -> Option<usize> {
    let count = |text: &str| -> Option<usize> {
        let vars = parse_with_lookup(text, file, &|_| None).ok()?;
        Some(vars.iter().filter(|(k, _)| k == name).count())
    };
    let total = count(text)?;
    let before = total.checked_sub(1)?;
    let mut starts = Vec::new();
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if key_of(line.trim_start_matches('\u{feff}')) == Some(name) {
            starts.push((index + 1, offset));
        }
        offset += line.len();
    }
    starts
        .into_iter()
        .rev()
        .find(|&(_, start)| count(&text[..start]) == Some(before))
        .map(|(line, _)| line)
}

/// Parses one env file in a scope: references see the file's earlier lines,
/// then `scope.lookup`; runtime variables win over both and stay in the
/// values. An unquoted value with blanks or quotes, which dotenvy rejects
/// but foreman and Compose accept, is read as they read it: the rest of the
/// line (up to an unquoted ` #`), blanks around it trimmed.
pub fn parse_in(text: &str, file: &str, scope: &Scope<'_>) -> Result<Parsed, ConfigError> {
    // dotenvy's iterator does not skip a byte order mark (only its `load`
    // functions do), and a BOM is invisible in an editor.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut current = std::borrow::Cow::Borrowed(text);
    // The error each rewritten line gave as the user wrote it: if the
    // rewritten line fails too, that is the error to report.
    let mut rewritten: HashMap<usize, ConfigError> = HashMap::new();
    loop {
        let error = match parse_text(&current, file, scope) {
            Ok(parsed) => return Ok(parsed),
            Err(error) => error,
        };
        let Some(line) = error.line else {
            return Err(error);
        };
        if let Some(original) = rewritten.remove(&line) {
            return Err(original);
        }
        match quote_unquoted(&current, line) {
            Some(fixed) => {
                rewritten.insert(line, error);
                current = std::borrow::Cow::Owned(fixed);
            }
            None => return Err(error),
        }
    }
}

/// One parse of the text as it stands (see [`parse_in`]).
fn parse_text(text: &str, file: &str, scope: &Scope<'_>) -> Result<Parsed, ConfigError> {
    let refs = references(text);
    let disguise = if refs.is_empty() {
        None
    } else {
        Disguise::choose(text, refs.len())
    };
    let Some(disguise) = disguise else {
        let input = Input::build(text, &refs, None, |_| false);
        let raw = run(&input).map_err(|f| located(text, &input, &f, file))?;
        return Ok(Parsed {
            vars: raw
                .into_iter()
                .map(|(k, v)| (k, Value::literal(v)))
                .collect(),
            unset: Vec::new(),
        });
    };

    // First pass: every reference renamed, to learn which ones dotenvy expands.
    let probe = Input::build(text, &refs, Some(&disguise), |_| true);
    // Renaming every reference to `${placeholder}` is the text as pm reads
    // it (sh's names, no character swallowed after a bare name), so a
    // failure here is the file's error, located on the same line.
    let expanded: HashSet<usize> = match run(&probe) {
        Ok(raw) => raw
            .iter()
            .flat_map(|(_, value)| disguise.markers(value))
            .collect(),
        Err(failure) => return Err(located(text, &probe, &failure, file)),
    };

    // Real pass: only expanded references renamed, so nothing but markers
    // stands in for them in the values.
    let input = Input::build(text, &refs, Some(&disguise), |k| expanded.contains(&k));
    let raw = run(&input).map_err(|f| located(text, &input, &f, file))?;
    let mut seen: HashMap<String, Value> = HashMap::new();
    let mut vars = Vec::with_capacity(raw.len());
    let mut unset = Vec::new();
    for (key, raw_value) in raw {
        let value = disguise.to_value(&raw_value, |k| {
            let r = refs.get(k)?;
            let name = text.get(r.name.clone())?;
            if (scope.runtime)(name) {
                let mut var = Value::default();
                var.push_var(name);
                return Some(var);
            }
            if let Some(value) = seen.get(name).cloned().or_else(|| (scope.lookup)(name)) {
                return Some(value);
            }
            unset.push(Unset {
                file: file.to_string(),
                line: text[..r.span.start].matches('\n').count() + 1,
                reference: text.get(r.span.clone())?.to_string(),
                key: key.clone(),
            });
            Some(Value::default())
        });
        seen.insert(key.clone(), value.clone());
        vars.push((key, value));
    }
    Ok(Parsed { vars, unset })
}

/// Line `line` (1-based) of `text` with an unquoted value rewritten as a
/// double-quoted one, when that value holds a blank or a quote: dotenvy
/// rejects `NAME=Corner Tea Shop` and `J={"a": 1}`, which foreman and
/// Compose read as the rest of the line. Inside double quotes dotenvy
/// expands `$` and reads `\` escapes exactly as it does unquoted, so only
/// the blanks and quotes change meaning. None when the line is not such an
/// entry.
fn quote_unquoted(text: &str, line: usize) -> Option<String> {
    let start = if line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let end = memchr::memchr(b'\n', &text.as_bytes()[start..]).map_or(text.len(), |i| start + i);
    let physical = &text[start..end];
    let (body, cr) = match physical.strip_suffix('\r') {
        Some(body) => (body, "\r"),
        None => (physical, ""),
    };
    let (left, right) = body.split_once('=')?;
    let key = key_of(body)?;
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    let value = right.trim_start_matches([' ', '\t']);
    if value.starts_with(['\'', '"']) {
        return None;
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    let mut special = false;
    let mut chars = value.chars().peekable();
    let mut after_blank = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                // An escape means the same inside double quotes: keep it.
                quoted.push('\\');
                if let Some(next) = chars.next() {
                    quoted.push(next);
                }
                after_blank = false;
                continue;
            }
            '#' if after_blank => break,
            '"' => {
                quoted.push_str("\\\"");
                special = true;
            }
            '\'' => {
                quoted.push('\'');
                special = true;
            }
            ' ' | '\t' => {
                quoted.push(c);
                special = true;
            }
            _ => quoted.push(c),
        }
        after_blank = c == ' ' || c == '\t';
    }
    let quoted = quoted.trim_end_matches([' ', '\t']);
    if !special {
        return None;
    }
    Some(format!(
        "{}{left}=\"{quoted}\"{cr}{}",
        &text[..start],
        &text[end..]
    ))
}

/// A `$NAME` or `${NAME}` in the text, as dotenvy would read it.
struct Reference {
    /// The whole reference, from `$` to the end of the name or the `}`.
    span: Range<usize>,
    /// The name inside it.
    name: Range<usize>,
}

/// Finds every reference in the text, wherever it is (quotes, comments and
/// keys included: context is decided by dotenvy itself in the first pass).
///
/// The name grammar: after `$`, sh's `[A-Za-z_][A-Za-z0-9_]*` or one digit
/// (a positional parameter); after `${`,
/// everything up to `}`. Braced names are taken only when they hold no
/// character that matters to dotenvy's line splitting or value parsing, so
/// renaming them is neutral. Every reference is renamed to the braced form
/// (`${placeholder}`), so dotenvy neither cuts a name at `_` nor takes the
/// character after a bare name literally.
fn references(text: &str) -> Vec<Reference> {
    let mut refs = Vec::new();
    let mut from = 0;
    while let Some(offset) = memchr::memchr(b'$', &text.as_bytes()[from..]) {
        let dollar = from + offset;
        let after = dollar + 1;
        let rest = &text[after..];
        if let Some(inner) = rest.strip_prefix('{') {
            let len = inner
                .char_indices()
                .find(|&(_, c)| !is_plain_braced_char(c))
                .map_or(inner.len(), |(i, _)| i);
            if len > 0 && inner[len..].starts_with('}') {
                let name = after + 1..after + 1 + len;
                let end = name.end + 1;
                refs.push(Reference {
                    span: dollar..end,
                    name,
                });
                from = end;
            } else {
                // Not a plain name: leave the `${` alone and keep looking
                // inside it, exactly as far as dotenvy would see `$`s there.
                from = after + 1;
            }
            continue;
        }
        // A bare name is sh's and Compose's: `[A-Za-z_][A-Za-z0-9_]*`, so
        // `$DB_HOST` is one name (dotenvy alone would stop at the `_`). A
        // digit is sh's positional parameter, one digit long: never set for
        // an env file, so `PRICE=$5 each` is said, not silently " each".
        let len = if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())
        } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
            1
        } else {
            0
        };
        if len > 0 {
            refs.push(Reference {
                span: dollar..after + len,
                name: after..after + len,
            });
        }
        from = after + len;
    }
    refs
}

/// Characters that may be renamed inside `${...}` without changing how
/// dotenvy splits lines (quotes, blanks, `#`, `\`) or parses values (`$`,
/// braces).
fn is_plain_braced_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '"' | '\'' | '\\' | '#' | '$' | '{' | '}')
}

/// The placeholder names and markers for one text.
struct Disguise {
    /// Placeholder names are `{prefix}{k}` for reference k: ASCII letters and
    /// digits, so a valid dotenv key and a single dotenvy name run.
    prefix: String,
    /// Markers are `{marker}{k}{marker}`, with a private-use character that
    /// the text does not contain, so a marker can come only from a placeholder.
    marker: char,
}

impl Disguise {
    fn choose(text: &str, count: usize) -> Option<Disguise> {
        let private_use = '\u{e000}'..='\u{f8ff}';
        let used: HashSet<char> = text.chars().filter(|c| private_use.contains(c)).collect();
        let marker = private_use.clone().find(|c| !used.contains(c))?;
        // The placeholder must not be a key of the file (that line would
        // overwrite the marker) nor a variable of pm's environment (dotenvy
        // would expand it first). Either would only fall back to dotenvy's
        // rule for that reference, but a free prefix is easy to find.
        let prefix = (0..1000).map(|salt| format!("PMSUBST{salt}X")).find(|p| {
            !text.contains(p.as_str())
                && (0..count).all(|k| std::env::var_os(format!("{p}{k}")).is_none())
        })?;
        Some(Disguise { prefix, marker })
    }

    fn marker(&self, k: usize) -> String {
        format!("{m}{k}{m}", m = self.marker)
    }

    /// The reference numbers whose markers appear in `value`.
    fn markers<'a>(&'a self, value: &'a str) -> impl Iterator<Item = usize> + 'a {
        value
            .split(self.marker)
            .skip(1)
            .step_by(2)
            .filter_map(|n| n.parse().ok())
    }

    /// Replaces each marker in `value` by `resolve(k)`; a marker `resolve`
    /// does not know is kept as it is.
    fn to_value(&self, value: &str, mut resolve: impl FnMut(usize) -> Option<Value>) -> Value {
        let mut out = Value::default();
        let mut parts = value.split(self.marker);
        if let Some(first) = parts.next() {
            out.push_text(first);
        }
        // Markers come in pairs around a number; the text between two pairs
        // alternates with the numbers. The marker character was chosen absent
        // from the text, so only a placeholder produces one (or, absurdly,
        // pm's environment through a `${...}` that was not renamed); anything
        // that is not a known pair is kept as it is.
        while let Some(number) = parts.next() {
            let resolved = number.parse().ok().and_then(&mut resolve);
            match (resolved, parts.next()) {
                (Some(replacement), Some(after)) => {
                    out.append(&replacement);
                    out.push_text(after);
                }
                (_, after) => {
                    out.push_text(&self.marker.to_string());
                    out.push_text(number);
                    if let Some(after) = after {
                        out.push_text(&self.marker.to_string());
                        out.push_text(after);
                    }
                }
            }
        }
        out
    }
}

/// The text as dotenvy will read it.
struct Input {
    /// Marker definitions, one line per renamed reference, read first.
    seeds: String,
    seed_count: usize,
    /// The file's text with the chosen references renamed, ending in a
    /// newline. Renaming never adds or removes a line break, so line numbers
    /// in `body` are the file's.
    body: String,
}

impl Input {
    fn build(
        text: &str,
        refs: &[Reference],
        disguise: Option<&Disguise>,
        renamed: impl Fn(usize) -> bool,
    ) -> Input {
        let mut seeds = String::new();
        let mut seed_count = 0;
        let mut body = String::with_capacity(text.len() + 1);
        let mut copied = 0;
        if let Some(d) = disguise {
            for (k, r) in refs.iter().enumerate().filter(|&(k, _)| renamed(k)) {
                let placeholder = format!("{}{k}", d.prefix);
                body.push_str(&text[copied..r.span.start]);
                body.push_str(&format!("${{{placeholder}}}"));
                copied = r.span.end;
                seeds.push_str(&format!("{placeholder}={}\n", d.marker(k)));
                seed_count += 1;
            }
        }
        body.push_str(&text[copied..]);
        // dotenvy rejects a last line left in a "blank seen" or "escape" state
        // at end of input (`A=b ` without a newline); with a newline it parses
        // the same line normally. The file's meaning should not depend on it.
        if !body.is_empty() && !body.ends_with('\n') {
            body.push('\n');
        }
        Input {
            seeds,
            seed_count,
            body,
        }
    }
}

/// Where and why dotenvy stopped.
struct Failure {
    /// dotenvy's offending text: the logical line, its value part, or (for an
    /// unclosed quote) everything from the entry's start to the end.
    snippet: String,
    /// dotenvy's index into `snippet`.
    index: usize,
    /// Bytes of `body` dotenvy had read: the end of the failing entry.
    end: usize,
}

/// Runs dotenvy over the input and returns the pairs without the seeds.
fn run(input: &Input) -> Result<Vec<(String, String)>, Failure> {
    let consumed = Rc::new(Cell::new(0));
    let data = format!("{}{}", input.seeds, input.body);
    let reader = LineReader {
        data: data.as_bytes(),
        position: Rc::clone(&consumed),
    };
    let mut parsed = Vec::new();
    for (i, item) in dotenvy::from_read_iter(reader).enumerate() {
        match item {
            Ok(pair) => {
                if i >= input.seed_count {
                    parsed.push(pair);
                }
            }
            Err(error) => {
                let (snippet, index) = match error {
                    dotenvy::Error::LineParse(snippet, index) => (snippet, index),
                    // Only LineParse can come from an in-memory reader; keep
                    // anything else visible rather than guess.
                    other => (other.to_string(), usize::MAX),
                };
                return Err(Failure {
                    snippet,
                    index,
                    end: consumed.get().saturating_sub(input.seeds.len()),
                });
            }
        }
    }
    Ok(parsed)
}

/// Hands out at most one line per `read`, so that the number of bytes read
/// tells where dotenvy is: `BufReader::read_line` asks for more only when its
/// buffer is empty, so it never holds data beyond the current line.
struct LineReader<'a> {
    data: &'a [u8],
    position: Rc<Cell<usize>>,
}

impl Read for LineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = self.position.get();
        let rest = self.data.get(start..).unwrap_or_default();
        let line_len = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let n = line_len.min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.position.set(start + n);
        Ok(n)
    }
}

/// Whether dotenvy parses `text` without error.
fn parses(text: &str) -> bool {
    dotenvy::from_read_iter(text.as_bytes()).all(|item| item.is_ok())
}

/// Start of the line containing byte `offset`.
fn line_start(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |i| i + 1)
}

/// The byte offset in `body` where the failing entry starts.
///
/// dotenvy has read up to `end`, the end of the failing entry. An unclosed
/// quote hands back the whole rest of the input, which gives the start
/// directly. Otherwise the entry starts at the latest line start before `end`
/// above which everything parses: a line start inside an earlier multi-line
/// value leaves a quote open above it, and a line start below the entry's
/// first line has the failing entry above it.
fn entry_start(body: &str, failure: &Failure) -> usize {
    let end = failure.end.min(body.len());
    let read = body.get(..end).unwrap_or(body);
    let snippet = failure.snippet.as_str();
    if snippet.ends_with('\n') && read.ends_with(snippet) {
        return read.len() - snippet.len();
    }
    let mut start = line_start(read, read.len().saturating_sub(1));
    while start > 0 && !parses(&read[..start]) {
        start = line_start(read, start - 1);
    }
    start
}

/// Builds the located, user-facing error for a failure.
fn located(text: &str, input: &Input, failure: &Failure, file: &str) -> ConfigError {
    let body = input.body.as_str();
    let start = entry_start(body, failure);
    let line = body.get(..start).unwrap_or(body).matches('\n').count() + 1;
    // The failing entry may hold placeholders (when the first pass failed):
    // only its shape is used here; the key and the line come from the file.
    let entry = body.get(start..failure.end).unwrap_or_default();
    let entry = entry.strip_suffix('\n').unwrap_or(entry);
    let entry = entry.strip_suffix('\r').unwrap_or(entry);
    let first_line = text
        .split('\n')
        .nth(line - 1)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(entry);
    ConfigError::new(file, Some(line), message(entry, first_line, failure))
}

/// The message for a failure in `entry` (the failing logical line, without
/// its final newline), whose first physical line is `first_line`.
fn message(entry: &str, first_line: &str, failure: &Failure) -> String {
    let snippet = failure.snippet.as_str();
    let key = key_of(first_line);
    if snippet.ends_with('\n') {
        return match key {
            Some(key) => format!(
                "unterminated quote in the value of {} (it runs to the end of the file)",
                quoted(key)
            ),
            None => "unterminated quote in a line that is not KEY=VALUE (it runs to the end of the file)".to_string(),
        };
    }
    // dotenvy reports key and `=` problems with the whole line (cut at a
    // comment, which leaves a trailing blank), and value problems with the
    // value alone, which is trimmed and never the whole line.
    let line_error =
        entry.starts_with(snippet) && (snippet == entry || snippet.ends_with(char::is_whitespace));
    match key {
        Some(key) if !line_error => {
            format!(
                "invalid value for {}: {}",
                quoted(key),
                value_hint(snippet, failure.index)
            )
        }
        _ => invalid_line(first_line),
    }
}

/// Why dotenvy rejected a value, from its index: a character it did not
/// expect (`index` counts characters), or the last byte for an unclosed
/// quote or `${`. Never the characters themselves: the value may be a
/// secret.
fn value_hint(value: &str, index: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    let before = index.checked_sub(1).and_then(|i| chars.get(i)).copied();
    let at = chars.get(index).copied();
    match (before, at) {
        (Some('\\'), Some(_)) => {
            "unsupported escape (supported: \\\\ \\\" \\' \\$ \\n and a backslash before a blank)"
                .to_string()
        }
        (Some(' ' | '\t'), Some(_)) => "quote a value that contains blanks".to_string(),
        _ if index.saturating_add(1) >= value.len() => "unterminated quote or \"${\"".to_string(),
        (_, Some(_)) => "unexpected character".to_string(),
        (_, None) => "unterminated quote or \"${\"".to_string(),
    }
}

/// The key of a line dotenvy accepted up to its `=`: what precedes the first
/// `=`, without the `export` prefix. None when there is no `=`.
fn key_of(line: &str) -> Option<&str> {
    let (left, _) = line.split_once('=')?;
    let left = left.trim();
    match left.strip_prefix("export") {
        Some(rest) if rest.starts_with(char::is_whitespace) => Some(rest.trim_start()),
        _ => Some(left),
    }
}

/// The message for a line that is not `KEY=VALUE`, never with a value:
/// cut after its first `=`; a `NAME: value` line (YAML's form) shows its
/// name; any other line is not shown at all. A line of an env file may hold
/// a secret, and an error message may end up in a CI log.
fn invalid_line(line: &str) -> String {
    if let Some((left, right)) = line.split_once('=') {
        let shown = if right.trim().is_empty() {
            quoted(line)
        } else {
            let left = quoted(&format!("{left}="));
            if left.ends_with("...") {
                left
            } else {
                format!("{left}...")
            }
        };
        return format!("invalid line {shown} (expected KEY=VALUE)");
    }
    if let Some((left, _)) = line.split_once(':') {
        let name = left.trim();
        let name = name.strip_prefix("export ").map_or(name, str::trim_start);
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            return format!(
                "invalid line {}... (expected KEY=VALUE: write {name}=...)",
                quoted(&format!("{left}:"))
            );
        }
    }
    "invalid line (expected KEY=VALUE; the line is not shown, it may hold a secret)".to_string()
}

fn quoted(text: &str) -> String {
    super::procfile::echo(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn vars_with(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        match parse_with_lookup(text, ".env", lookup) {
            Ok(v) => v,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn vars(text: &str) -> Vec<(String, String)> {
        vars_with(text, &none)
    }

    fn err(text: &str) -> String {
        match parse_with_lookup(text, ".env", &none) {
            Ok(v) => panic!("{text:?}: expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A name no test environment defines.
    const UNSET: &str = "PMENVFILETESTUNSET7Q";

    #[test]
    fn the_line_of_a_last_definition() {
        let text = "# c\nA=1\nexport B=2\nM=\"one\nA=inside\"\nA=3\n";
        assert_eq!(last_definition_line(text, ".env", "A"), Some(6));
        assert_eq!(last_definition_line(text, ".env", "B"), Some(3));
        assert_eq!(last_definition_line(text, ".env", "M"), Some(4));
        assert_eq!(last_definition_line(text, ".env", "C"), None);
        // The line inside a quoted value is never a definition.
        let text = "A=1\nM=\"x\nA=2\"\n";
        assert_eq!(last_definition_line(text, ".env", "A"), Some(1));
    }

    // Syntax (dotenvy's).

    #[test]
    fn plain_values() {
        assert_eq!(
            vars("A=1\nB=two\nC=\n"),
            p(&[("A", "1"), ("B", "two"), ("C", "")])
        );
    }

    #[test]
    fn empty_text() {
        assert_eq!(vars(""), p(&[]));
        assert_eq!(vars("\n\n# only a comment\n"), p(&[]));
    }

    #[test]
    fn export_prefix() {
        assert_eq!(
            vars("export A=1\nexport   B=2\nexport=3\n"),
            p(&[("A", "1"), ("B", "2"), ("export", "3")])
        );
    }

    #[test]
    fn comments() {
        assert_eq!(
            vars("# comment\n  # indented\nA=1 # trailing\nB=a#b\nC= # empty\n"),
            p(&[("A", "1"), ("B", "a#b"), ("C", "")])
        );
    }

    #[test]
    fn quoted_hash_is_not_a_comment() {
        assert_eq!(
            vars("A=\"a # b\"\nB='c # d' # real\n"),
            p(&[("A", "a # b"), ("B", "c # d")])
        );
    }

    #[test]
    fn quotes() {
        assert_eq!(
            vars("A='single $X \\n'\nB=\"double\"\nC=\"it's\"\nD='say \"hi\"'\n"),
            p(&[
                ("A", "single $X \\n"),
                ("B", "double"),
                ("C", "it's"),
                ("D", "say \"hi\"")
            ])
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            vars(concat!(
                "A=\"line 1\\nline 2\"\n",
                "B=\"q \\\" b \\\\ d \\$X s \\'\"\n",
                "C=my\\ value\n",
                "D=\\$X\n",
            )),
            p(&[
                ("A", "line 1\nline 2"),
                ("B", "q \" b \\ d $X s '"),
                ("C", "my value"),
                ("D", "$X"),
            ])
        );
    }

    #[test]
    fn multi_line_double_quoted_value() {
        assert_eq!(
            vars("A=\"first\nsecond\n\nfourth\"\nB=2\n"),
            p(&[("A", "first\nsecond\n\nfourth"), ("B", "2")])
        );
    }

    #[test]
    fn multi_line_single_quoted_value() {
        assert_eq!(vars("A='x\ny'\n"), p(&[("A", "x\ny")]));
    }

    #[test]
    fn blanks_around_equals_and_value() {
        assert_eq!(
            vars("A = 1\nB=   \"x\"  \n  C=3\n"),
            p(&[("A", "1"), ("B", "x"), ("C", "3")])
        );
    }

    #[test]
    fn crlf() {
        assert_eq!(vars("A=1\r\nB=\"x\"\r\n"), p(&[("A", "1"), ("B", "x")]));
    }

    #[test]
    fn bom_is_ignored() {
        assert_eq!(vars("\u{feff}A=1\n"), p(&[("A", "1")]));
    }

    #[test]
    fn missing_final_newline_changes_nothing() {
        assert_eq!(vars("A=b"), p(&[("A", "b")]));
        assert_eq!(vars("A=b "), p(&[("A", "b")]));
        assert_eq!(vars("A=b # c"), p(&[("A", "b")]));
    }

    #[test]
    fn dotted_keys() {
        assert_eq!(vars("a.b=1\n"), p(&[("a.b", "1")]));
    }

    #[test]
    fn duplicates_are_all_returned_in_order() {
        assert_eq!(
            vars("A=1\nB=2\nA=3\n"),
            p(&[("A", "1"), ("B", "2"), ("A", "3")])
        );
    }

    #[test]
    fn value_may_contain_equals() {
        assert_eq!(vars("A==b=c\n"), p(&[("A", "=b=c")]));
    }

    // Expansion.

    #[test]
    fn expands_an_earlier_line() {
        assert_eq!(
            vars("HOST=db\nURL=postgres://${HOST}/app\nURL2=\"http://$HOST:80\"\n"),
            p(&[
                ("HOST", "db"),
                ("URL", "postgres://db/app"),
                ("URL2", "http://db:80"),
            ])
        );
    }

    #[test]
    fn earlier_line_wins_over_lookup() {
        let lookup = |name: &str| (name == "HOST").then(|| "from-lookup".to_string());
        assert_eq!(
            vars_with("A=${HOST}\nHOST=here\nB=${HOST}\n", &lookup),
            p(&[("A", "from-lookup"), ("HOST", "here"), ("B", "here")])
        );
    }

    #[test]
    fn later_line_is_not_seen() {
        assert_eq!(vars("A=${B}\nB=1\n"), p(&[("A", ""), ("B", "1")]));
    }

    #[test]
    fn latest_earlier_definition_is_used() {
        assert_eq!(
            vars("A=1\nA=2\nB=$A\nA=3\n"),
            p(&[("A", "1"), ("A", "2"), ("B", "2"), ("A", "3")])
        );
    }

    #[test]
    fn self_reference_sees_the_earlier_value() {
        let lookup = |name: &str| (name == "PATHX").then(|| "/usr/bin".to_string());
        assert_eq!(
            vars_with("PATHX=/opt/bin:${PATHX}\nPATHX=$PATHX:/x\n", &lookup),
            p(&[
                ("PATHX", "/opt/bin:/usr/bin"),
                ("PATHX", "/opt/bin:/usr/bin:/x")
            ])
        );
    }

    #[test]
    fn undefined_expands_to_empty() {
        assert_eq!(
            vars(&format!("A=>${{{UNSET}}}<\nB=\">${UNSET}<\"\n")),
            p(&[("A", "><"), ("B", "><")])
        );
    }

    #[test]
    fn lookup_provides_earlier_files_and_environment() {
        let lookup = |name: &str| match name {
            "FROM_EARLIER_FILE" => Some("e".to_string()),
            _ => None,
        };
        assert_eq!(
            vars_with("A=${FROM_EARLIER_FILE}-x\n", &lookup),
            p(&[("A", "e-x")])
        );
    }

    /// pm's own environment is reached only through `lookup`: a variable that
    /// the process has (PATH, HOME in any test run) but that `lookup` does
    /// not return expands to nothing, and an earlier line of the file wins
    /// over it. dotenvy alone would use the process value in both cases.
    #[test]
    fn process_environment_is_not_consulted_directly() {
        assert_eq!(
            vars("A=${PATH}|$HOME\nPATH=/mine\nB=${PATH}\n"),
            p(&[("A", "|"), ("PATH", "/mine"), ("B", "/mine")])
        );
        let lookup = |name: &str| (name == "HOME").then(|| "/merged-home".to_string());
        assert_eq!(vars_with("A=$HOME\n", &lookup), p(&[("A", "/merged-home")]));
    }

    #[test]
    fn lookup_is_called_only_when_needed() {
        let calls = std::cell::RefCell::new(Vec::new());
        let lookup = |name: &str| {
            calls.borrow_mut().push(name.to_string());
            None
        };
        assert_eq!(
            vars_with("A=1\nB=$A${C}'$D'\\$E\n", &lookup),
            p(&[("A", "1"), ("B", "1$D$E")])
        );
        assert_eq!(*calls.borrow(), vec!["C".to_string()]);
    }

    #[test]
    fn no_expansion_in_single_quotes_or_after_backslash() {
        assert_eq!(
            vars("A=1\nB='$A ${A}'\nC=\\$A\nD=\"\\${A}\"\nE='x'$A\n"),
            p(&[
                ("A", "1"),
                ("B", "$A ${A}"),
                ("C", "$A"),
                ("D", "${A}"),
                ("E", "x1"),
            ])
        );
    }

    #[test]
    fn references_in_comments_are_ignored() {
        let lookup = |_: &str| -> Option<String> { panic!("lookup called") };
        assert_eq!(
            vars_with("# uses $A and ${B}\nX=1 # $C\n", &lookup),
            p(&[("X", "1")])
        );
    }

    #[test]
    fn bare_names_are_shs() {
        // `[A-Za-z_][A-Za-z0-9_]*`: `$DB_HOST` is one name, as in sh and
        // Compose (dotenvy alone reads `$DB` and then `_HOST`).
        let lookup = |name: &str| match name {
            "FOO" => Some("f".to_string()),
            "DB_HOST" => Some("db".to_string()),
            _ => None,
        };
        assert_eq!(
            vars_with(
                "A=$FOO_BAR\nB=${FOO_BAR}\nC=pg://$DB_HOST/x\nD=$FOO-$FOO.$_\nE=$FOOé\n",
                &lookup
            ),
            p(&[
                ("A", ""),
                ("B", ""),
                ("C", "pg://db/x"),
                ("D", "f-f."),
                ("E", "fé")
            ])
        );
    }

    #[test]
    fn character_after_bare_name_is_not_swallowed() {
        // dotenvy alone takes the character after `$FOO` literally, so
        // `"$FOO"` leaves its quote open; pm reads it as sh does.
        let lookup = |name: &str| (name == "FOO").then(|| "f".to_string());
        assert_eq!(
            vars_with("A=$FOO bar\nB=\"$FOO\"\nC='x'$FOO'y'\n", &lookup),
            p(&[("A", "f bar"), ("B", "f"), ("C", "xfy")])
        );
    }

    #[test]
    fn dollar_forms() {
        assert_eq!(
            vars("A=1\nB=$$A\nC=a$\nD=${}x\nE=$-\n"),
            p(&[("A", "1"), ("B", "1"), ("C", "a"), ("D", "x"), ("E", "-")])
        );
    }

    #[test]
    fn braced_dotted_name_refers_to_a_dotted_key() {
        assert_eq!(vars("a.b=1\nc=${a.b}\n"), p(&[("a.b", "1"), ("c", "1")]));
    }

    #[test]
    fn expansion_inside_multi_line_value() {
        assert_eq!(
            vars("A=x\nB=\"1 ${A}\n2 $A.\"\n"),
            p(&[("A", "x"), ("B", "1 x\n2 x.")])
        );
    }

    #[test]
    fn expanded_value_is_not_reparsed() {
        let lookup = |name: &str| (name == "Q").then(|| "\"$A' #".to_string());
        assert_eq!(
            vars_with("A=1\nB=${Q}\nC=\"${Q}\"\n", &lookup),
            p(&[("A", "1"), ("B", "\"$A' #"), ("C", "\"$A' #")])
        );
    }

    #[test]
    fn text_that_looks_like_a_placeholder_is_kept() {
        assert_eq!(
            vars("PMSUBST0X0=a\nB=$PMSUBST0X0 'PMSUB'ST1X0\u{e000}0\u{e000}\nC=$B\n"),
            p(&[
                ("PMSUBST0X0", "a"),
                ("B", "a 'PMSUB'ST1X0\u{e000}0\u{e000}"),
                ("C", "a 'PMSUB'ST1X0\u{e000}0\u{e000}"),
            ])
        );
    }

    #[test]
    fn unusual_braced_names_keep_dotenvys_rule() {
        assert_eq!(vars(&format!("A=${{{UNSET} x}}.\n")), p(&[("A", ".")]));
    }

    // Scopes: runtime variables and unset references.

    fn parsed_in(text: &str, lookup: &dyn Fn(&str) -> Option<Value>) -> Parsed {
        let scope = Scope {
            runtime: &|name| name.starts_with("PM_"),
            lookup,
        };
        match parse_in(text, "config/.env", &scope) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    #[test]
    fn runtime_variables_stay_in_the_value_and_win() {
        let lookup = |name: &str| (name == "PM_STORE_HOST").then(|| Value::literal("env-host"));
        let parsed = parsed_in(
            concat!(
                "PM_STORE_PORT=9\n",
                "REDIS_URL=redis://${PM_STORE_HOST}:$PM_STORE_PORT/0\n",
                "CACHE=${REDIS_URL}?x\n",
                "LITERAL='${PM_STORE_HOST}'\n",
            ),
            &lookup,
        );
        let mut url = Value::literal("redis://");
        url.push_var("PM_STORE_HOST");
        url.push_text(":");
        url.push_var("PM_STORE_PORT");
        url.push_text("/0");
        let mut cache = url.clone();
        cache.push_text("?x");
        assert_eq!(
            parsed.vars,
            vec![
                ("PM_STORE_PORT".to_string(), Value::literal("9")),
                ("REDIS_URL".to_string(), url),
                ("CACHE".to_string(), cache),
                ("LITERAL".to_string(), Value::literal("${PM_STORE_HOST}")),
            ]
        );
        assert_eq!(parsed.unset, []);
    }

    #[test]
    fn earlier_files_may_hold_runtime_variables() {
        let mut earlier = Value::literal("http://");
        earlier.push_var("PM_WEB_HOST");
        let lookup = move |name: &str| (name == "BASE").then(|| earlier.clone());
        let parsed = parsed_in("URL=$BASE/x\n", &lookup);
        assert_eq!(parsed.vars[0].1.vars().collect::<Vec<_>>(), ["PM_WEB_HOST"]);
        assert_eq!(
            parsed.vars[0].1.expand(|_| "h".into()),
            "http://h/x".to_string()
        );
    }

    #[test]
    fn unset_references_are_named_with_their_line_and_expand_to_nothing() {
        let parsed = parsed_in(
            &format!(
                "A=1\n# ${UNSET}\nPASS=abc$def\nURL=\"pg://${{{UNSET}}}/x\nmore $A\"\nQ='$def'\nE=\\$def\n"
            ),
            &|_| None,
        );
        assert_eq!(
            parsed.vars,
            vec![
                ("A".to_string(), Value::literal("1")),
                ("PASS".to_string(), Value::literal("abc")),
                ("URL".to_string(), Value::literal("pg:///x\nmore 1")),
                ("Q".to_string(), Value::literal("$def")),
                ("E".to_string(), Value::literal("$def")),
            ]
        );
        let shown: Vec<String> = parsed.unset.iter().map(|u| u.to_string()).collect();
        assert_eq!(
            shown,
            [
                r#"config/.env:3: $def is not set; PASS gets "" in its place (write \$ or use single quotes for a literal $)"#.to_string(),
                format!(
                    r#"config/.env:4: ${{{UNSET}}} is not set; URL gets "" in its place (write \$ or use single quotes for a literal $)"#
                ),
            ]
        );
    }

    #[test]
    fn a_dollar_digit_is_an_unset_reference_as_in_sh() {
        let parsed = parsed_in("PRICE=$5 each\nPAIR=$12\nQ='$5'\n", &|_| None);
        assert_eq!(
            parsed.vars,
            vec![
                ("PRICE".to_string(), Value::literal(" each")),
                ("PAIR".to_string(), Value::literal("2")),
                ("Q".to_string(), Value::literal("$5")),
            ]
        );
        let shown: Vec<String> = parsed.unset.iter().map(|u| u.to_string()).collect();
        assert_eq!(
            shown,
            [
                r#"config/.env:1: $5 is not set; PRICE gets "" in its place (write \$ or use single quotes for a literal $)"#,
                r#"config/.env:2: $1 is not set; PAIR gets "" in its place (write \$ or use single quotes for a literal $)"#,
            ]
        );
    }

    // Errors.

    const NOT_SHOWN: &str =
        "invalid line (expected KEY=VALUE; the line is not shown, it may hold a secret)";

    #[test]
    fn malformed_line() {
        assert_eq!(err("A=1\nB=2\nFOO BAR\n"), format!(".env:3: {NOT_SHOWN}"));
        assert_eq!(err("FOO\n"), format!(".env:1: {NOT_SHOWN}"));
        assert_eq!(err("FOO BAR # c\n"), format!(".env:1: {NOT_SHOWN}"));
        assert_eq!(err("sk_live_abc123\n"), format!(".env:1: {NOT_SHOWN}"));
    }

    #[test]
    fn yaml_style_line_names_the_key_and_hides_the_value() {
        let e = err("A=1\nSTRIPE_SECRET_KEY: sk_live_abc123\n");
        assert_eq!(
            e,
            r#".env:2: invalid line "STRIPE_SECRET_KEY:"... (expected KEY=VALUE: write STRIPE_SECRET_KEY=...)"#
        );
        assert!(!e.contains("sk_live"), "{e}");
    }

    #[test]
    fn malformed_key_hides_the_value() {
        assert_eq!(
            err("1KEY=secret\n"),
            r#".env:1: invalid line "1KEY="... (expected KEY=VALUE)"#
        );
        assert_eq!(
            err("very bacon = yes\n"),
            r#".env:1: invalid line "very bacon ="... (expected KEY=VALUE)"#
        );
        assert_eq!(
            err("  =x\n"),
            r#".env:1: invalid line "  ="... (expected KEY=VALUE)"#
        );
    }

    #[test]
    fn unquoted_values_read_as_foreman_and_compose_read_them() {
        let lookup = |name: &str| (name == "X").then(|| "x".to_string());
        assert_eq!(
            vars_with(
                concat!(
                    "A=1\n",
                    "NAME=Corner Tea Shop\n",
                    "J={\"a\": 1}\n",
                    "C=foo bar # a comment\n",
                    "D=it's\n",
                    "E=  spaced   out  \n",
                    "export F=a$X b\\ c\t\td\n",
                    "G=say \\\"hi\\\" \\$X\n",
                    "H=a#b c\r\n",
                    "I=x\n",
                ),
                &lookup
            ),
            p(&[
                ("A", "1"),
                ("NAME", "Corner Tea Shop"),
                ("J", "{\"a\": 1}"),
                ("C", "foo bar"),
                ("D", "it's"),
                ("E", "spaced   out"),
                ("F", "ax b c\t\td"),
                ("G", "say \"hi\" $X"),
                ("H", "a#b c"),
                ("I", "x"),
            ])
        );
    }

    #[test]
    fn an_unquoted_value_that_stays_wrong_keeps_its_error() {
        assert_eq!(
            err("A=1\nKEY=my \\q value\n"),
            r#".env:2: invalid value for "KEY": quote a value that contains blanks"#
        );
    }

    #[test]
    fn unsupported_escape() {
        assert_eq!(
            err("A=\"x\\q\"\n"),
            r#".env:1: invalid value for "A": unsupported escape (supported: \\ \" \' \$ \n and a backslash before a blank)"#
        );
    }

    #[test]
    fn text_right_after_a_closing_quote_joins_the_value() {
        assert_eq!(vars("export A=\"x\"y\n"), p(&[("A", "xy")]));
    }

    #[test]
    fn bare_reference_before_closing_quote() {
        assert_eq!(vars("A=1\nB=\"$A\"\n"), p(&[("A", "1"), ("B", "1")]));
    }

    #[test]
    fn unterminated_brace() {
        assert_eq!(
            err("A=${FOO\n"),
            r#".env:1: invalid value for "A": unterminated quote or "${""#
        );
    }

    #[test]
    fn unterminated_quote() {
        assert_eq!(
            err("A=1\nB='abc\nC=2\n"),
            r#".env:2: unterminated quote in the value of "B" (it runs to the end of the file)"#
        );
        assert_eq!(
            err("A=\"abc"),
            r#".env:1: unterminated quote in the value of "A" (it runs to the end of the file)"#
        );
        assert_eq!(err("x\n'abc\n"), format!(".env:1: {NOT_SHOWN}"));
        assert_eq!(
            err("A=1\n'abc\n"),
            r#".env:2: unterminated quote in a line that is not KEY=VALUE (it runs to the end of the file)"#
        );
    }

    #[test]
    fn line_is_found_after_multi_line_values() {
        let text = "A=\"1\n2\n3\"\nB='x\n\ny'\n# c\nC=\"FOO BAR\"\nFOO BAR\n";
        assert_eq!(err(text), format!(".env:9: {NOT_SHOWN}"));
    }

    #[test]
    fn same_text_earlier_does_not_confuse_the_line() {
        let text = "A=\"x\nKEY=my \\\\q value\"\nKEY=my \\q value\n";
        assert_eq!(
            err(text),
            r#".env:3: invalid value for "KEY": quote a value that contains blanks"#
        );
    }

    #[test]
    fn error_in_a_multi_line_entry_names_its_first_line() {
        assert_eq!(
            err("A=1\nB=\"x\ny\" junk\n"),
            r#".env:2: invalid value for "B": quote a value that contains blanks"#
        );
    }

    #[test]
    fn error_line_with_crlf_and_bom() {
        assert_eq!(
            err("\u{feff}A=1\r\nB=\"x\r\ny\"\r\nC D\r\n"),
            format!(".env:4: {NOT_SHOWN}")
        );
    }

    #[test]
    fn error_after_references() {
        assert_eq!(
            err("A=1\nB=${A}\nC='$A'\nD=x \\q\n"),
            r#".env:4: invalid value for "D": quote a value that contains blanks"#
        );
    }

    #[test]
    fn error_carries_file_and_line() {
        let Err(e) = parse_with_lookup("A=1\nbad line\n", "config/.env.local", &none) else {
            panic!("expected an error");
        };
        assert_eq!((e.file.as_str(), e.line), ("config/.env.local", Some(2)));
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "x".repeat(100);
        assert_eq!(
            err(&format!("{long} y=1\n")),
            format!(
                r#".env:1: invalid line "{}"... (expected KEY=VALUE)"#,
                "x".repeat(60)
            )
        );
    }

    // Properties.

    /// Pieces of near-valid dotenv text, with names no environment defines.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "pmta",
            "pmtb",
            "x y",
            "'",
            "\"",
            "\\",
            "$",
            "${",
            "}",
            "$pmta",
            "${pmta}",
            "${pmt.b}",
            "$pmtb_",
            "#",
            " ",
            "\t",
            "\n",
            "\r\n",
            "\\n",
            "\\$",
            "=",
            "é",
            "_",
            "export ",
            "pmt.b",
            "$$",
            "${pmt a}",
            "\u{e000}",
            "PMSUBST0X0",
        ])
    }

    fn near_valid_text() -> impl Strategy<Value = String> {
        let line = (
            prop::option::of(Just("export ")),
            prop::sample::select(vec!["pmta", "pmtb", "pmt.b", "PMSUBST0X0"]),
            prop::collection::vec(piece(), 0..6),
        )
            .prop_map(|(export, key, pieces)| {
                format!("{}{key}={}", export.unwrap_or(""), pieces.concat())
            });
        prop::collection::vec(
            prop_oneof![3 => line, 1 => prop::collection::vec(piece(), 0..4).prop_map(|p| p.concat())],
            0..6,
        )
        .prop_map(|lines| lines.join("\n"))
    }

    fn has_bare_reference(text: &str) -> bool {
        references(text)
            .iter()
            .any(|r| !text[r.span.clone()].starts_with("${"))
    }

    /// Brute force: the failing entry starts at the last line start above
    /// which everything parses; an unquoted value on that line is quoted
    /// once and the text tried again, as `parse_in` does.
    fn expected_error_line(text: &str) -> Option<usize> {
        let mut current = text.to_string();
        let mut rewritten = HashSet::new();
        loop {
            let mut body = current.clone();
            body.push('\n');
            if parses(&body) {
                return None;
            }
            let line = (0..body.len())
                .filter(|&i| i == 0 || body.as_bytes()[i - 1] == b'\n')
                .filter(|&i| parses(&body[..i]))
                .map(|i| body[..i].matches('\n').count() + 1)
                .max()?;
            if !rewritten.insert(line) {
                return Some(line);
            }
            match quote_unquoted(&current, line) {
                Some(fixed) => current = fixed,
                None => return Some(line),
            }
        }
    }

    /// dotenvy alone, on the text as pm feeds it (BOM removed, final newline).
    fn dotenvy_alone(text: &str) -> Result<Vec<(String, String)>, ()> {
        let mut text = text.strip_prefix('\u{feff}').unwrap_or(text).to_string();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        dotenvy::from_read_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ())
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = parse_with_lookup(&text, ".env", &none);
        }

        #[test]
        fn errors_name_a_line_of_the_file(text in near_valid_text()) {
            if has_bare_reference(&text) {
                return Ok(());
            }
            let result = parse_with_lookup(&text, ".env", &none);
            prop_assert_eq!(result.as_ref().err().and_then(|e| e.line), expected_error_line(&text));
            if let Err(e) = result {
                prop_assert!(!e.message.contains('\n'));
            }
        }

        /// When the names used are in no environment and `lookup` knows
        /// nothing, pm's rule and dotenvy's agree, so pm must give exactly
        /// dotenvy's result: the renaming never changes how text is parsed.
        #[test]
        fn agrees_with_dotenvy_when_only_the_file_defines_names(text in near_valid_text()) {
            // `${_}` would reach the shell's `$_`, for instance.
            prop_assume!(references(&text)
                .iter()
                .all(|r| std::env::var_os(&text[r.name.clone()]).is_none()));
            // Where pm reads differently on purpose: sh's bare names, and
            // unquoted blanks and quotes (texts dotenvy rejects).
            if has_bare_reference(&text) {
                return Ok(());
            }
            let ours = parse_with_lookup(&text, ".env", &none).map_err(|_| ());
            if let Ok(expected) = dotenvy_alone(&text) {
                prop_assert_eq!(ours, Ok(expected));
            }
        }

        /// `lookup` behaves like lines defining its names placed before the
        /// file: dotenvy alone on that longer text (with names in no
        /// environment) is the oracle for the whole rule.
        #[test]
        fn lookup_acts_like_lines_before_the_file(
            text in near_valid_text(),
            known in prop::collection::btree_map(
                prop::sample::select(vec!["pmta", "pmtb", "pmt.b", "x", "PMSUBST0X0"]),
                "[a-z0-9 /:$\"#{}]{0,8}",
                0..4,
            ),
        ) {
            prop_assume!(references(&text)
                .iter()
                .all(|r| std::env::var_os(&text[r.name.clone()]).is_none()));
            let lookup = |name: &str| known.get(name).cloned();
            let ours = parse_with_lookup(&text, ".env", &lookup).map_err(|_| ());
            let before: String = known.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
            let oracle = dotenvy_alone(&format!("{before}{text}"))
                .map(|vars| vars[known.len()..].to_vec());
            if !has_bare_reference(&text) && let Ok(expected) = oracle {
                prop_assert_eq!(ours, Ok(expected));
            }
        }

        /// A malformed line placed after arbitrary valid entries (some over
        /// several lines) is reported on its own line.
        #[test]
        fn malformed_line_is_located(
            entries in prop::collection::vec(
                prop_oneof![
                    Just("A=1"), Just("B=\"x\ny\""), Just("C='p\n\nq'"), Just("# c"),
                    Just(""), Just("export D=\"$A\n${B}\""), Just("E=\"FOO BAR\""),
                    Just("F='FOO BAR\n'"),
                ],
                0..8,
            ),
            bad in prop::sample::select(vec!["FOO BAR", "G=FOO \\q BAR", "H=\"x\\q\""]),
        ) {
            let mut text = entries.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            let line = text.matches('\n').count() + 1;
            text.push_str(bad);
            text.push_str("\nI=1\n");
            let e = parse_with_lookup(&text, ".env", &none);
            prop_assert!(matches!(&e, Err(e) if e.line == Some(line)), "{:?}", e);
        }
    }
}
