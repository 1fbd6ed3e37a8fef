//! The commands that move records in and out: append, import, export, log, events.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde_json::json;

use super::output::csv_field;
use super::{ExportFormat, Failure, progress_wanted, usage};
use crate::app::{App, AppError, Keep, PendingAppend};
use crate::domain::cloudevent::{self, MAX_LINE_BYTES};
use crate::domain::{DomainEvent, EVENT_TYPES};
use crate::log::Ack;
use crate::time;

/// How many appended lines may wait for their flush at once (they share flushes).
const APPEND_WINDOW: usize = 256;

fn open_input(file: Option<&Path>) -> Result<Box<dyn BufRead>, Failure> {
    match file {
        None => Ok(Box::new(BufReader::new(std::io::stdin()))),
        Some(p) if p == Path::new("-") => Ok(Box::new(BufReader::new(std::io::stdin()))),
        Some(p) => {
            let f =
                File::open(p).map_err(|e| usage(format!("cannot open {}: {e}", p.display())))?;
            Ok(Box::new(BufReader::new(f)))
        }
    }
}

/// Reads the next line, refusing lines longer than the limit. None at the end.
fn next_line(mut input: &mut dyn BufRead, line_no: usize) -> Result<Option<String>, Failure> {
    let mut buf = Vec::new();
    let n = (&mut input)
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE_BYTES {
        return Err(usage(format!(
            "line {line_no}: field `line`: longer than {MAX_LINE_BYTES} bytes"
        )));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| usage(format!("line {line_no}: field `line`: not UTF-8")))
}

fn ack_line(ack: &Ack) -> String {
    let mut v = json!({"id": ack.event_id, "position": ack.position});
    if ack.duplicate {
        v["duplicate"] = json!(true);
    }
    v.to_string()
}

fn line_error(line_no: usize, e: AppError) -> Failure {
    // The batch is one line, so the event index inside it is 0: name the line instead.
    let text = e.to_string();
    match text.strip_prefix("event 0") {
        Some(rest) => usage(format!("line {line_no}{rest}")),
        None => usage(format!("line {line_no}: {text}")),
    }
}

/// `append`: one line, one batch; a window of lines in flight shares the writer's flushes.
pub fn append(
    app: &App,
    file: Option<&Path>,
    actor: &str,
    keep_recorded_at: bool,
) -> Result<u8, Failure> {
    let mut input = open_input(file)?;
    let keep = Keep {
        recorded_by: true,
        recorded_at: keep_recorded_at,
    };
    let mut window: VecDeque<PendingAppend<'_>> = VecDeque::new();
    let mut window_lines: VecDeque<usize> = VecDeque::new();
    let out = std::io::stdout();
    let mut line_no = 0usize;
    let mut failure: Option<Failure> = None;

    let settle_one = |window: &mut VecDeque<PendingAppend<'_>>,
                      lines: &mut VecDeque<usize>|
     -> Result<(), Failure> {
        if let (Some(p), Some(line)) = (window.pop_front(), lines.pop_front()) {
            let acks = p.wait().map_err(|e| line_error(line, e))?;
            let mut o = out.lock();
            for a in &acks {
                writeln!(o, "{}", ack_line(a))?;
            }
            o.flush()?;
        }
        Ok(())
    };

    loop {
        line_no += 1;
        let line = match next_line(&mut *input, line_no) {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(f) => {
                failure = Some(f);
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let incoming = match cloudevent::parse_line(line.trim_end()) {
            Ok(i) => i,
            Err(e) => {
                failure = Some(usage(format!(
                    "line {line_no}: {e}; nothing of this line was written"
                )));
                break;
            }
        };
        match app.submit(vec![incoming], actor, keep, &|_, _| Ok(())) {
            Ok(p) => {
                window.push_back(p);
                window_lines.push_back(line_no);
            }
            Err(e) => {
                failure = Some(line_error(line_no, e));
                break;
            }
        }
        while window.len() >= APPEND_WINDOW {
            if let Err(f) = settle_one(&mut window, &mut window_lines) {
                failure = Some(f);
                break;
            }
        }
        if failure.is_some() {
            break;
        }
    }
    // Lines before a bad one stay appended: settle them and print their acks first.
    while !window.is_empty() {
        if let Err(f) = settle_one(&mut window, &mut window_lines) {
            failure.get_or_insert(f);
        }
    }
    match failure {
        None => Ok(0),
        Some(f) => Err(f),
    }
}

/// `import`: the whole file as one batch, or nothing.
pub fn import(app: &App, file: &Path, actor: &str, keep_recorded_at: bool) -> Result<u8, Failure> {
    let mut input = open_input(Some(file))?;
    let show = progress_wanted();
    let mut events = Vec::new();
    let mut lines = Vec::new();
    let mut line_no = 0usize;
    while let Some(line) = next_line(&mut *input, line_no + 1)? {
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let e = cloudevent::parse_line(line.trim_end())
            .map_err(|e| usage(format!("line {line_no}: {e}; nothing was imported")))?;
        events.push(e);
        lines.push(line_no);
        if events.len() > crate::log::MAX_BATCH_EVENTS {
            return Err(usage(format!(
                "{} holds more than {} events: split it into several imports",
                file.display(),
                crate::log::MAX_BATCH_EVENTS
            )));
        }
        if show && line_no.is_multiple_of(10_000) {
            eprint!("\rread {line_no} lines");
        }
    }
    if events.is_empty() {
        return Err(usage(format!("{} holds no events", file.display())));
    }
    if show {
        eprintln!(
            "\rread {line_no} lines; checking and writing {} events",
            events.len()
        );
    }
    let keep = Keep {
        recorded_by: true,
        recorded_at: keep_recorded_at,
    };
    let acks = app
        .append(events, actor, keep, &|_, _| Ok(()))
        .map_err(|e| {
            let message = match e.event_index().and_then(|i| lines.get(i)) {
                Some(line) => format!("line {line}: {e}; nothing was imported"),
                None => format!("{e}; nothing was imported"),
            };
            usage(message)
        })?;
    let written = acks.iter().filter(|a| !a.duplicate).count();
    let first = acks.first().map(|a| a.position).unwrap_or(0);
    let last = acks.last().map(|a| a.position).unwrap_or(0);
    println!(
        "{}",
        json!({"imported": written, "already_present": acks.len() - written, "first_position": first, "last_position": last})
    );
    Ok(0)
}

/// `export`: every event in order, streamed.
/// `journal-events FILE`: the events a commit journal file holds, as export lines; what it
/// found (records, gaps, damage) on stderr.
pub fn journal_events(file: &Path) -> Result<u8, Failure> {
    let contents = crate::log::journal::read_contents(file).map_err(|e| usage(e.to_string()))?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut ranges = Vec::new();
    let mut gaps = Vec::new();
    let mut previous_last: Option<u64> = None;
    for commit in contents.commits {
        if let Some(last) = previous_last
            && last.checked_add(1) != Some(commit.first_position)
        {
            gaps.push(format!("{last} → {}", commit.first_position));
        }
        previous_last = Some(commit.last_position);
        ranges.push(format!(
            "{}..={}",
            commit.first_position, commit.last_position
        ));
        for stored in commit.events {
            let position = stored.position;
            let recorded = crate::log::RecordedEvent::try_from(stored)
                .map_err(|e| usage(format!("the event at position {position}: {e}")))?;
            let logged = crate::app::decode_recorded(recorded)?;
            writeln!(
                out,
                "{}",
                crate::app::export::to_cloudevent(&logged.recorded, &logged.event)
            )?;
        }
    }
    out.flush()?;
    let mut found = vec![format!(
        "generation {}{}, {} whole record(s): positions {}",
        contents.generation,
        if contents.header_whole {
            ""
        } else {
            " (from its first record: the header is damaged)"
        },
        ranges.len(),
        if ranges.is_empty() {
            "(none)".to_string()
        } else {
            ranges.join(", ")
        }
    )];
    if !gaps.is_empty() {
        found.push(format!(
            "the records do not follow one another at {}",
            gaps.join(", ")
        ));
    }
    if !contents.damaged_at.is_empty() {
        let at: Vec<String> = contents.damaged_at.iter().map(u64::to_string).collect();
        found.push(format!(
            "damaged records at byte(s) {} were skipped",
            at.join(", ")
        ));
    }
    eprintln!(
        "{}: {}. Compare the lines with the log before appending any back: `carelog append \
         --keep-recorded-at` keeps their recorded times and acknowledges lines already in the \
         log as duplicates, and refuses an id the log holds with other content. A journal set \
         aside as not this log's holds another log's events.",
        file.display(),
        found.join("; ")
    );
    Ok(0)
}

pub fn export(app: &App, format: ExportFormat) -> Result<u8, Failure> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    if let ExportFormat::Csv = format {
        writeln!(
            out,
            "position,id,type,schema_version,stream,stream_version,occurred_at,recorded_at,recorded_by,data"
        )?;
    }
    let mut io_error: Option<std::io::Error> = None;
    app.for_each_event(1, |e| {
        let written = match format {
            ExportFormat::Jsonl => {
                let line = crate::app::export::export_line(&e.recorded, &e.event)?;
                writeln!(out, "{line}")
            }
            ExportFormat::Csv => {
                let r = &e.recorded;
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{}",
                    r.position,
                    r.event_id,
                    e.event.event_type(),
                    e.event.schema_version(),
                    csv_field(&r.stream),
                    r.stream_version,
                    r.occurred_at.to_rfc3339(),
                    r.recorded_at.to_rfc3339(),
                    csv_field(&r.recorded_by),
                    csv_field(&cloudevent::event_data(&e.event).to_string())
                )
            }
        };
        if let Err(err) = written {
            io_error = Some(err);
            return Err(AppError::Usage("output closed".into()));
        }
        Ok(())
    })
    .or_else(|e| if io_error.is_some() { Ok(()) } else { Err(e) })?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    out.flush()?;
    Ok(0)
}

/// `log`: events readably, or as CloudEvents with --json.
pub fn show_log(
    app: &App,
    stream: Option<&str>,
    from: u64,
    limit: usize,
    json_out: bool,
) -> Result<u8, Failure> {
    let events = match stream {
        Some(s) => app.read_stream(s, from, limit)?,
        None => app.read_from(from, limit)?,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    for e in &events {
        if json_out {
            writeln!(
                out,
                "{}",
                crate::app::export::to_cloudevent(&e.recorded, &e.event)
            )?;
        } else {
            let r = &e.recorded;
            writeln!(
                out,
                "#{:<8} {}  {:<34} {} v{}  by {}\n          {}",
                r.position,
                time::display_shanghai(&r.occurred_at),
                e.event.event_type(),
                r.stream,
                r.stream_version,
                r.recorded_by,
                cloudevent::event_data(&e.event)
            )?;
        }
    }
    if events.is_empty() && !json_out {
        writeln!(out, "no events")?;
    }
    out.flush()?;
    Ok(0)
}

/// `events`: every type, its version, what it is, and an example line `append` accepts.
pub fn list_event_types(json_out: bool, markdown: bool) -> Result<u8, Failure> {
    if markdown {
        print!("{}", cloudevent::events_reference_markdown());
        return Ok(0);
    }
    let examples = DomainEvent::examples();
    let at = time::parse_instant("2023-05-08T10:00:00+08:00").map_err(|e| usage(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    let mut all = Vec::new();
    for ((name, version, doc), example) in EVENT_TYPES.iter().zip(examples.iter()) {
        let line = cloudevent::to_input_cloudevent(cloudevent::EXAMPLE_EVENT_ID, example, &at);
        if json_out {
            all.push(json!({"type": name, "schema_version": version, "description": doc, "example": line}));
        } else {
            writeln!(out, "{name} (v{version})\n  {doc}\n  {line}\n")?;
        }
    }
    if json_out {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&all).unwrap_or_default()
        )?;
    }
    Ok(0)
}
