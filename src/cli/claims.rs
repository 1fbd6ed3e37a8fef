//! `claims file` and `claims import`: claims from options or a CSV, filed through
//! [`App::file_claims`] in one batch (all or none). Only reading and printing live here; the
//! rules are the app's and the domain's (`app/claims.rs`).
//!
//! The CSV has a header row naming its columns ([`CLAIM_FIELDS`], any order; `comparison` and
//! `scope` may be left out), fields separated by commas, quoted with `"` when they hold a comma,
//! a quote (doubled) or a line break. A refusal names the file's line and the field.

use std::io::Read;
use std::path::Path;

use super::output::print_json;
use super::{Failure, usage};
use crate::app::claims::{CLAIM_FIELDS, ClaimInput, FiledClaim, MAX_CLAIMS_PER_BATCH};
use crate::app::{App, AppError};
use crate::domain::DomainError;

/// The largest claims CSV read (bytes).
const MAX_CSV_BYTES: u64 = 16 << 20;

/// The columns a claims CSV must have.
const REQUIRED_COLUMNS: &[&str] = &[
    "metric",
    "period_from",
    "period_to",
    "value",
    "reported_on",
    "source",
];

/// The options of `claims file`, as given.
pub struct ClaimOptions<'a> {
    pub metric: &'a str,
    pub period: &'a str,
    pub value: &'a str,
    pub comparison: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub reported_on: &'a str,
    pub source: &'a str,
}

fn rule_name(e: &DomainError) -> String {
    serde_json::to_value(e.rule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "invalid".into())
}

/// `field F: detail (rule R)`, the words of every refusal here.
fn field_error(e: &DomainError) -> String {
    format!("field {}: {} (rule {})", e.field, e.detail, rule_name(e))
}

/// A refusal of the app, with `place(index)` naming where claim `index` came from.
fn refusal(e: AppError, place: impl Fn(usize) -> String, unwritten: &str) -> Failure {
    match e {
        AppError::Rejected { index, error, .. } => usage(format!(
            "{}{}; {unwritten}",
            place(index),
            field_error(&error)
        )),
        other => other.into(),
    }
}

/// `claims file`: one claim from the options.
pub fn file(app: &App, options: &ClaimOptions<'_>, actor: &str, json: bool) -> Result<u8, Failure> {
    let claim = ClaimInput::from_text(|name| match name {
        "metric" => Some(options.metric),
        "period" => Some(options.period),
        "value" => Some(options.value),
        "comparison" => options.comparison,
        "scope" => options.scope,
        "reported_on" => Some(options.reported_on),
        "source" => Some(options.source),
        _ => None,
    })
    .map_err(|e| usage(format!("{}; nothing was written", field_error(&e))))?;
    let filed = app
        .file_claims(vec![claim], actor)
        .map_err(|e| refusal(e, |_| String::new(), "nothing was written"))?;
    if json {
        match filed.first() {
            Some(one) => print_json(one)?,
            None => print_json(&filed)?,
        }
    } else {
        for f in &filed {
            println!("{}", describe(f));
        }
    }
    Ok(0)
}

/// `claims import FILE.csv`: one claim a row, all filed or none.
pub fn import(app: &App, path: &Path, actor: &str, json: bool) -> Result<u8, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| usage(format!("cannot open {}: {e}", path.display())))?;
    let mut text = String::new();
    file.take(MAX_CSV_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| usage(format!("cannot read {} as UTF-8 text: {e}", path.display())))?;
    if text.len() as u64 > MAX_CSV_BYTES {
        return Err(usage(format!(
            "{} is larger than {} MiB: split it",
            path.display(),
            MAX_CSV_BYTES >> 20
        )));
    }
    let rows = parse_csv(&text).map_err(|(line, message)| {
        usage(format!(
            "line {line}: {message}; nothing of the file was written"
        ))
    })?;
    let Some((_, header)) = rows.first() else {
        return Err(usage(format!(
            "{} is empty: write a header row ({}) and one claim a row",
            path.display(),
            CLAIM_FIELDS.join(",")
        )));
    };
    let header: Vec<&str> = header.iter().map(|h| h.trim()).collect();
    for column in &header {
        if !CLAIM_FIELDS.contains(column) {
            return Err(usage(format!(
                "line 1: field {column}: not a column of a claims CSV (they are {}); nothing of the file was written",
                CLAIM_FIELDS.join(", ")
            )));
        }
    }
    for column in REQUIRED_COLUMNS {
        if !header.contains(column) {
            return Err(usage(format!(
                "line 1: field {column}: the header has no such column (it needs {}); nothing of the file was written",
                REQUIRED_COLUMNS.join(", ")
            )));
        }
    }
    let body = &rows[1..];
    if body.len() > MAX_CLAIMS_PER_BATCH {
        return Err(usage(format!(
            "{} rows; at most {MAX_CLAIMS_PER_BATCH} claims a file: split it",
            body.len()
        )));
    }
    let mut claims = Vec::with_capacity(body.len());
    for (line, fields) in body {
        if fields.len() != header.len() {
            return Err(usage(format!(
                "line {line}: {} fields where the header names {}; nothing of the file was written",
                fields.len(),
                header.len()
            )));
        }
        let claim = ClaimInput::from_text(|name| {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|i| fields.get(i))
                .map(String::as_str)
        })
        .map_err(|e| {
            usage(format!(
                "line {line}: {}; nothing of the file was written",
                field_error(&e)
            ))
        })?;
        claims.push(claim);
    }
    if claims.is_empty() {
        return Err(usage(format!(
            "{} has a header but no claims: write one claim a row",
            path.display()
        )));
    }
    let lines: Vec<usize> = body.iter().map(|(line, _)| *line).collect();
    let filed = app.file_claims(claims, actor).map_err(|e| {
        refusal(
            e,
            |i| {
                lines
                    .get(i)
                    .map_or(String::new(), |line| format!("line {line}: "))
            },
            "nothing of the file was written",
        )
    })?;
    if json {
        print_json(&filed)?;
    } else {
        for f in &filed {
            println!("{}", describe(f));
        }
        println!("{} claims filed from {}", filed.len(), path.display());
    }
    Ok(0)
}

fn describe(f: &FiledClaim) -> String {
    let c = &f.claim;
    let comparison = serde_json::to_value(c.comparison)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let scope = c
        .scope
        .map_or("the whole programme".to_string(), |u| format!("unit {u}"));
    format!(
        "filed claim {} at position {}: {} {} {} for {}..{}, {}, reported on {} ({})",
        f.claim_id,
        f.position,
        c.metric,
        comparison,
        c.value,
        c.period_from,
        c.period_to,
        scope,
        c.reported_on,
        c.source
    )
}

/// The records of a CSV text, each with the line it starts on. Blank lines are skipped.
/// A CSV record: the line it starts on, and its fields.
type CsvRow = (usize, Vec<String>);

fn parse_csv(text: &str) -> Result<Vec<CsvRow>, (usize, String)> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut field_started_quoted = false;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err((start, "a quoted field is not closed".into()));
                }
                break;
            };
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        line += 1;
                        field.push('\n');
                    }
                    other => field.push(other),
                }
                continue;
            }
            match c {
                '"' if field.is_empty() && !field_started_quoted => {
                    quoted = true;
                    field_started_quoted = true;
                }
                '"' => {
                    return Err((
                        line,
                        "a quote inside an unquoted field: quote the whole field and double the quote".into(),
                    ));
                }
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    field_started_quoted = false;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    break;
                }
                other => field.push(other),
            }
        }
        fields.push(field);
        let blank = fields.len() == 1 && fields[0].trim().is_empty() && !field_started_quoted;
        if !blank {
            rows.push((start, fields));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::parse_csv;

    #[test]
    fn quoted_fields_keep_commas_quotes_and_line_breaks_and_rows_know_their_line() {
        let rows =
            parse_csv("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\n\"two\nlines\",z\nlast,1").unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[1],
            (2, vec!["x, y".to_string(), "say \"hi\"".to_string()])
        );
        assert_eq!(
            rows[2],
            (4, vec!["two\nlines".to_string(), "z".to_string()])
        );
        assert_eq!(rows[3].0, 6);
        assert!(parse_csv("a,\"open\n").is_err());
        assert!(parse_csv("a,b\"c\n").is_err());
    }
}
