//! `carelog report`: the programme report as text (English or Chinese), JSON, a workbook (xlsx:
//! the figures and the claims) or CSV (the figures). Formatting only: the figures, their
//! periods and their value texts come from the app (`app::report`, `app::figure_text`).

use std::io::Write;
use std::path::Path;

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};
use unicode_width::UnicodeWidthStr;

use super::figures::{AsOfArgs, progress};
use super::output::{csv_field, print_json};
use super::{Failure, usage};
use crate::app::App;
use crate::app::figure_text::count_text;
use crate::app::report::{ClaimCheck, METRICS, Report, section_title};
use crate::time;

/// What `report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    /// A workbook: a sheet of the figures and one of the claims (needs --output).
    Xlsx,
    /// The figures sheet as CSV (RFC 4180).
    Csv,
}

/// The figures sheet's (and the CSV's) columns.
pub const FIGURE_COLUMNS: [&str; 8] = [
    "section",
    "label_zh",
    "label_en",
    "value",
    "period",
    "as_of_position",
    "as_of_recorded_at",
    "metric",
];

/// The claims sheet's columns.
pub const CLAIM_COLUMNS: [&str; 10] = [
    "claim_id",
    "metric",
    "claimed",
    "comparison",
    "recorded_then",
    "recorded_now",
    "verdict",
    "period",
    "source_document",
    "recorded_at",
];

pub fn report(
    app: &App,
    args: &AsOfArgs,
    format: ReportFormat,
    zh: bool,
    output: Option<&Path>,
) -> Result<u8, Failure> {
    match (format, output) {
        (ReportFormat::Xlsx, None) => {
            return Err(usage(
                "report --format xlsx writes a workbook: give --output FILE.xlsx",
            ));
        }
        (ReportFormat::Text | ReportFormat::Json, Some(_)) => {
            return Err(usage(
                "--output is for --format xlsx or csv; text and JSON go to stdout",
            ));
        }
        _ => {}
    }
    args.configure(app);
    // The sheets carry both languages and ISO periods; the text is in the language asked for.
    let sheet_zh = zh && matches!(format, ReportFormat::Text | ReportFormat::Json);
    let report = app.report(args.as_of()?, args.period()?, sheet_zh, &mut progress())?;
    match format {
        ReportFormat::Json => print_json(&report),
        ReportFormat::Text => write_text(&report, zh),
        ReportFormat::Csv => {
            let text = figures_csv(&report);
            match output {
                Some(path) => std::fs::write(path, text)
                    .map_err(|e| usage(format!("cannot write {}: {e}", path.display()))),
                None => Ok(std::io::stdout().lock().write_all(text.as_bytes())?),
            }
        }
        ReportFormat::Xlsx => {
            // Each claim is checked as of its own recording: one pass with a timeline.
            app.set_hold_timeline(true);
            let claims = app.claims_check(&mut progress())?;
            let path = output.ok_or_else(|| usage("give --output FILE.xlsx"))?;
            write_workbook(&report, &claims, path)
                .map_err(|e| usage(format!("cannot write the workbook {}: {e}", path.display())))
        }
    }?;
    Ok(0)
}

/// `text` padded with spaces to `width` display columns (a Chinese character takes two).
fn pad_end(text: &str, width: usize) -> String {
    format!("{text}{}", " ".repeat(width.saturating_sub(text.width())))
}

fn pad_start(text: &str, width: usize) -> String {
    format!("{}{text}", " ".repeat(width.saturating_sub(text.width())))
}

fn as_of_line(report: &Report, zh: bool) -> String {
    let Some(recorded) = &report.as_of.recorded_at else {
        return if zh {
            "尚无记录"
        } else {
            "the store is empty"
        }
        .to_string();
    };
    let shown = time::parse_instant(recorded)
        .map_or_else(|_| recorded.clone(), |t| time::display_shanghai(&t));
    let position = count_text(i64::try_from(report.as_of.position).unwrap_or(i64::MAX));
    if zh {
        format!("截至第 {position} 条记录（记录于 {shown}）")
    } else {
        format!("as of position {position} (recorded {shown})")
    }
}

fn write_text(report: &Report, zh: bool) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let title = if zh {
        "庆阳市教育局 结对关爱 — 记录汇总"
    } else {
        "Qingyang Education Bureau paired care (结对关爱) — from the records"
    };
    writeln!(out, "{title}\n{}\n", as_of_line(report, zh))?;
    let label_width = report
        .figures
        .iter()
        .map(|f| f.label.width())
        .max()
        .unwrap_or(0);
    let value_width = report
        .figures
        .iter()
        .map(|f| f.value_text.width())
        .max()
        .unwrap_or(0);
    let period_width = report
        .figures
        .iter()
        .map(|f| f.period.width())
        .max()
        .unwrap_or(0);
    let mut section = ' ';
    for (f, def) in report.figures.iter().zip(METRICS) {
        if def.section != section {
            section = def.section;
            writeln!(out, "{}", section_title(section, zh))?;
        }
        let row = format!(
            "  {}  {}   {}",
            pad_end(f.label, label_width),
            pad_start(&f.value_text, value_width),
            pad_end(&f.period, period_width)
        );
        // The metric key is for `explain`; the Chinese report has no English words.
        if zh {
            writeln!(out, "{}", row.trim_end())?;
        } else {
            writeln!(out, "{row}  [{}]", f.metric)?;
        }
    }
    let footer = if zh {
        "每项数字均由逐条记录的事件算出，可逐项查到所依据的事件。"
    } else {
        "Each figure is computed from individual events: `carelog explain METRIC` lists them."
    };
    writeln!(out, "\n{footer}")?;
    Ok(())
}

/// A figure's value as a plain number: money in 元 with two decimals (`70404.00`), a count
/// as it is.
fn plain_number(value: i64, money: bool) -> String {
    if money {
        let sign = if value < 0 { "-" } else { "" };
        let abs = value.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    } else {
        value.to_string()
    }
}

fn figures_csv(report: &Report) -> String {
    let position = report.as_of.position.to_string();
    let recorded = report.as_of.recorded_at.clone().unwrap_or_default();
    let mut text = FIGURE_COLUMNS.join(",") + "\r\n";
    for (f, def) in report.figures.iter().zip(METRICS) {
        let fields = [
            def.section.to_string(),
            def.label_zh.to_string(),
            def.label_en.to_string(),
            plain_number(f.value, def.money),
            f.period.clone(),
            position.clone(),
            recorded.clone(),
            f.metric.to_string(),
        ];
        let row: Vec<String> = fields.iter().map(|s| csv_field(s)).collect();
        text.push_str(&row.join(","));
        text.push_str("\r\n");
    }
    text
}

fn header(sheet: &mut Worksheet, columns: &[&str], bold: &Format) -> Result<(), XlsxError> {
    for (col, name) in (0u16..).zip(columns) {
        sheet.write_string_with_format(0, col, *name, bold)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

fn write_workbook(report: &Report, claims: &[ClaimCheck], path: &Path) -> Result<(), XlsxError> {
    let bold = Format::new().set_bold();
    let yuan = Format::new().set_num_format("#,##0.00");
    let count = Format::new().set_num_format("#,##0");
    let mut workbook = Workbook::new();

    let sheet = workbook.add_worksheet().set_name("figures")?;
    header(sheet, &FIGURE_COLUMNS, &bold)?;
    let recorded = report.as_of.recorded_at.clone().unwrap_or_default();
    for (row, (f, def)) in (1u32..).zip(report.figures.iter().zip(METRICS)) {
        sheet.write_string(row, 0, def.section.to_string())?;
        sheet.write_string(row, 1, def.label_zh)?;
        sheet.write_string(row, 2, def.label_en)?;
        // A spreadsheet number: 元 for money (fen / 100 is exact in f64 far past any budget).
        if def.money {
            sheet.write_number_with_format(row, 3, f.value as f64 / 100.0, &yuan)?;
        } else {
            sheet.write_number_with_format(row, 3, f.value as f64, &count)?;
        }
        sheet.write_string(row, 4, &f.period)?;
        sheet.write_number(row, 5, report.as_of.position as f64)?;
        sheet.write_string(row, 6, &recorded)?;
        sheet.write_string(row, 7, f.metric)?;
    }
    sheet.set_column_width(1, 36)?;
    sheet.set_column_width(2, 44)?;
    sheet.set_column_width(3, 16)?;
    sheet.set_column_width(4, 24)?;

    let sheet = workbook.add_worksheet().set_name("claims")?;
    header(sheet, &CLAIM_COLUMNS, &bold)?;
    for (row, c) in (1u32..).zip(claims) {
        sheet.write_string(row, 0, c.claim_id.to_string())?;
        sheet.write_string(row, 1, &c.metric)?;
        sheet.write_number(row, 2, c.claimed as f64)?;
        let comparison = serde_json::to_value(c.comparison)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        sheet.write_string(row, 3, comparison)?;
        for (col, v) in [(4u16, c.recorded_then), (5, c.recorded_now)] {
            if let Some(v) = v {
                sheet.write_number(row, col, v as f64)?;
            }
        }
        sheet.write_string(row, 6, c.verdict)?;
        sheet.write_string(row, 7, &c.period)?;
        sheet.write_string(row, 8, &c.source_document)?;
        sheet.write_string(row, 9, &c.recorded_at)?;
    }
    sheet.set_column_width(0, 38)?;
    sheet.set_column_width(1, 32)?;
    workbook.save(path)
}
