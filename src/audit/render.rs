//! Printing findings: a table for people, grouped by rule, and a JSON object
//! for tools. Both only show what `Detail` holds, which is already masked.

use serde::Serialize;

use super::{Detail, Finding, Rule, Severity};
use crate::config::one_line;

/// The widest a value may be in the table; JSON carries it whole.
const MAX_CELL: usize = 48;

fn cell(detail: Option<&Detail>) -> String {
    let Some(d) = detail else {
        return "(absent)".to_string();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(v) = &d.value {
        parts.push(if v.is_empty() {
            "(empty)".to_string()
        } else {
            v.clone()
        });
    } else if d.secret {
        parts.push("(secret)".to_string());
    }
    if let Some(kind) = &d.kind {
        parts.push(format!("[{kind}]"));
    }
    for text in [&d.image, &d.command, &d.check, &d.restart]
        .into_iter()
        .flatten()
    {
        parts.push(text.clone());
    }
    if let Some(n) = d.count {
        parts.push(format!("x{n}"));
    }
    let text = one_line(&parts.join(" ")).into_owned();
    if text.chars().count() > MAX_CELL {
        let cut: String = text.chars().take(MAX_CELL - 3).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// The column headings of a rule's group.
fn headers(rule: Rule) -> [&'static str; 4] {
    match rule {
        Rule::Address => ["NAME", "REACHES", "USE", "FILES"],
        _ => ["NAME", "LOCAL", "PRODUCTION", "FILES"],
    }
}

/// The table: one group per rule, one line per finding with the thing's
/// name, what each side has (for an address written by hand: the type it
/// reaches and the form to use), and the files; then a one-line summary.
pub fn table(findings: &[Finding], strict: bool) -> String {
    if findings.is_empty() {
        return "in parity: no drift found\n".to_string();
    }
    let rows: Vec<[String; 4]> = findings
        .iter()
        .map(|f| {
            let mut name = one_line(&f.name).into_owned();
            match f.severity {
                Severity::Drift => {}
                Severity::Warning => name.push_str(" (warning)"),
                Severity::Ignored => name.push_str(" (ignored)"),
            }
            let (left, right) = match (f.rule, &f.local) {
                (Rule::Address, Some(d)) => (
                    one_line(d.reaches.as_deref().unwrap_or("")).into_owned(),
                    one_line(d.use_instead.as_deref().unwrap_or("")).into_owned(),
                ),
                _ => (cell(f.local.as_ref()), cell(f.production.as_ref())),
            };
            [
                name,
                left,
                right,
                one_line(&f.files.join(" vs ")).into_owned(),
            ]
        })
        .collect();
    let mut widths = [0; 4];
    for heads in findings.iter().map(|f| headers(f.rule)) {
        for (w, h) in widths.iter_mut().zip(heads) {
            *w = (*w).max(h.len());
        }
    }
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: [&str; 4]| {
        let mut text = format!(
            "  {:<a$}  {:<b$}  {:<c$}  {}",
            cols[0],
            cols[1],
            cols[2],
            cols[3],
            a = widths[0],
            b = widths[1],
            c = widths[2],
        );
        text.truncate(text.trim_end().len());
        text.push('\n');
        text
    };
    let mut out = String::new();
    let mut current: Option<Rule> = None;
    for (f, row) in findings.iter().zip(&rows) {
        if current != Some(f.rule) {
            if current.is_some() {
                out.push('\n');
            }
            out.push_str(f.rule.title());
            out.push('\n');
            out.push_str(&line(headers(f.rule)));
            current = Some(f.rule);
        }
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
    }
    let count = |severity| findings.iter().filter(|f| f.severity == severity).count();
    let (drift, warnings, ignored) = (
        count(Severity::Drift),
        count(Severity::Warning),
        count(Severity::Ignored),
    );
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if drift > 0 {
        parts.push(plural(drift, "finding"));
    }
    if warnings > 0 {
        parts.push(plural(warnings, "warning"));
    }
    if ignored > 0 {
        parts.push(format!("{ignored} ignored"));
    }
    let counts = parts.join(", ");
    out.push('\n');
    out.push_str(&if drift == 0 && (warnings == 0 || !strict) {
        let why = match (warnings, ignored) {
            (0, _) => "listed in pm.toml's [audit] ignore",
            (_, 0) => "not drift; --strict makes them fail",
            _ => "not drift; --strict makes the warnings fail",
        };
        format!("in parity, with {counts} ({why})\n")
    } else if warnings > 0 && strict {
        format!("drift: {counts} (warnings count as drift: --strict)\n")
    } else {
        format!("drift: {counts}\n")
    });
    out
}

#[derive(Serialize)]
struct Report<'a> {
    drift: bool,
    findings: &'a [Finding],
}

/// The JSON object: `{"drift": bool, "findings": [...]}` (docs/parity.md).
pub fn json(findings: &[Finding], drift: bool) -> Result<String, serde_json::Error> {
    let report = Report { drift, findings };
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    Ok(text)
}
