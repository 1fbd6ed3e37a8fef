//! The commands that show figures: project, projections, explain, claims check (the report
//! is `report_out.rs`).

use std::io::Write;

use super::output::print_json;
use super::{Failure, progress_wanted, usage};
use crate::app::App;
use crate::app::report::ClaimsReport;
use crate::projection::{AsOf, Period, Query};
use crate::time;

/// The flags every figure command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct AsOfArgs {
    /// What the records said at this recorded time (RFC 3339, or a date meaning its end in Asia/Shanghai).
    #[arg(long, conflicts_with = "at_position")]
    pub as_of: Option<String>,
    /// What the records said at this log position.
    #[arg(long)]
    pub at_position: Option<u64>,
    /// Count only what happened in FROM..TO (dates; either end may be left empty).
    #[arg(long)]
    pub period: Option<String>,
    /// Replay from the events alone, ignoring saved checkpoints (derived files an auditor may
    /// not want to trust).
    #[arg(long)]
    pub no_checkpoints: bool,
}

impl AsOfArgs {
    /// Applies the checkpoint choice to the app.
    pub fn configure(&self, app: &App) {
        app.set_use_checkpoints(!self.no_checkpoints);
    }

    pub fn as_of(&self) -> Result<AsOf, Failure> {
        match (&self.as_of, self.at_position) {
            (Some(t), _) => Ok(AsOf::Time(
                time::parse_as_of(t).map_err(|e| usage(format!("--as-of: {e}")))?,
            )),
            (None, Some(p)) => Ok(AsOf::Position(p)),
            (None, None) => Ok(AsOf::Now),
        }
    }

    pub fn period(&self) -> Result<Option<Period>, Failure> {
        match &self.period {
            None => Ok(None),
            Some(text) => Period::parse(text).map(Some).ok_or_else(|| {
                usage(format!(
                    "--period {text:?}: use FROM..TO with dates YYYY-MM-DD, FROM not after TO"
                ))
            }),
        }
    }
}

/// Progress on a terminal for long replays.
pub fn progress() -> impl FnMut(u64, u64) {
    let show = progress_wanted();
    move |done: u64, total: u64| {
        if show && total > 100_000 {
            eprint!("\rreplaying {done}/{total} events");
            if done >= total {
                eprint!("\r\x1b[K");
            }
        }
    }
}

pub fn explain(app: &App, metric: &str, args: &AsOfArgs, json_out: bool) -> Result<u8, Failure> {
    args.configure(app);
    let e = app.explain(metric, args.as_of()?, args.period()?, &mut progress())?;
    if json_out {
        print_json(&e)?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} = {} ({}), from {} events:",
        e.metric,
        e.value,
        e.period,
        e.events.len()
    )?;
    for s in e.events.iter().take(50) {
        if let Some(ev) = app.read_event(s.position)? {
            writeln!(
                out,
                "  #{:<8} {}  {}  {}",
                s.position,
                time::display_shanghai(&ev.recorded.occurred_at),
                ev.event.event_type(),
                s.id
            )?;
        }
    }
    if e.events.len() > 50 {
        writeln!(
            out,
            "  … and {} more (--json lists all)",
            e.events.len() - 50
        )?;
    }
    for a in &e.adjustments {
        writeln!(
            out,
            "  {:?}: event #{} by #{} ({})",
            a.kind, a.target.position, a.by.position, a.reason
        )?;
    }
    for l in &e.late_entries {
        writeln!(
            out,
            "  late entry: event #{} (noted at #{}): {}",
            l.position, l.noted_at_position, l.reason
        )?;
    }
    Ok(0)
}

pub fn projections(json_out: bool) -> Result<u8, Failure> {
    let list = crate::app::report::projection_list();
    if json_out {
        print_json(&list)?;
    } else {
        let mut out = std::io::stdout().lock();
        for p in &list {
            writeln!(out, "{:<16} v{} {}", p.name, p.version, p.about)?;
        }
    }
    Ok(0)
}

pub fn project(app: &App, name: &str, args: &AsOfArgs, params: &[String]) -> Result<u8, Failure> {
    let mut query = Query {
        period: args.period()?,
        ..Query::default()
    };
    for p in params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| usage(format!("--param {p:?}: use NAME=VALUE (e.g. days=30)")))?;
        if k == "on" {
            query.on = Some(
                crate::domain::Date::parse(v)
                    .ok_or_else(|| usage(format!("--param on={v}: use YYYY-MM-DD")))?,
            );
        } else {
            query.params.insert(k.to_string(), v.to_string());
        }
    }
    args.configure(app);
    let view = app.project(name, args.as_of()?, query, &mut progress())?;
    print_json(&view)?;
    Ok(0)
}

pub fn claims_check(app: &App, json_out: bool) -> Result<u8, Failure> {
    // Each claim is checked as of its reported-on day: many points, one pass with a timeline.
    app.set_hold_timeline(true);
    let report = ClaimsReport::new(None, app.claims_check(&mut progress())?);
    let (all_hold, checks) = (report.all_hold, &report.claims);
    if json_out {
        print_json(&report)?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{:<38} {:>14} {:>14} {:>14}  verdict",
            "metric", "claimed", "recorded now", "then"
        )?;
        for c in checks {
            let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            writeln!(
                out,
                "{:<38} {:>14} {:>14} {:>14}  {}",
                c.metric,
                c.claimed,
                show(c.recorded_now),
                show(c.recorded_then),
                c.verdict
            )?;
            if c.verdict != "holds" && c.difference.is_some_and(|d| d != 0) {
                writeln!(
                    out,
                    "    difference {}: {} explained, {} unexplained",
                    show(c.difference),
                    c.explained,
                    c.unexplained
                )?;
            }
            if let Some(text) = &c.unexplained_text {
                writeln!(out, "    {text}")?;
            }
            for r in &c.reasons {
                writeln!(out, "    {} ({}): {} events", r.kind, r.explains, r.count)?;
                for e in &r.events {
                    writeln!(out, "      #{} {} — {}", e.position, e.id, e.detail)?;
                }
                if r.count > r.events.len() {
                    writeln!(
                        out,
                        "      … and {} more (--json lists the first {})",
                        r.count - r.events.len(),
                        r.events.len()
                    )?;
                }
            }
            for l in c.late_entries.iter().take(20) {
                writeln!(
                    out,
                    "    late entry: #{} {} — {}",
                    l.position, l.id, l.reason
                )?;
            }
        }
        writeln!(
            out,
            "\n{} claims, {}",
            checks.len(),
            if all_hold { "all hold" } else { "some differ" }
        )?;
    }
    Ok(if all_hold { 0 } else { 1 })
}
