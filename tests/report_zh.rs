//! `carelog report` through the binary on a small store: the Chinese text report has no
//! English words, its columns line up by display width, one number format in both languages;
//! `--format xlsx` writes a workbook of the figures and the claims, `--format csv` the figures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use calamine::{Data, Reader, Xlsx, open_workbook};
use serde_json::{Value, json};
use unicode_width::UnicodeWidthStr;
use uuid::Uuid;

fn run(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_carelog"));
    cmd.arg("--data")
        .arg(data)
        .arg("--actor")
        .arg("report-zh-test")
        .args(args)
        .env_remove("CARELOG_DATA")
        .env_remove("CARELOG_ACTOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the carelog binary runs");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let o = run(data, args, stdin);
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "carelog {args:?} failed\nstdout: {text}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

fn line(event_type: &str, time: &str, data: Value) -> String {
    json!({"specversion": "1.0", "id": Uuid::now_v7(), "source": "/tests/report_zh",
           "type": format!("carelog.{event_type}"), "time": time, "data": data})
    .to_string()
}

fn at(date: &str) -> String {
    format!("{date}T10:00:00+08:00")
}

/// How many contacts the store has: enough for a thousands separator.
const CONTACTS: usize = 1_203;
/// The aid given, fen: 70,404.00 元.
const AID_FEN: i64 = 7_040_400;

/// A city bureau, a county, a township, a cadre paired with a person, 1,203 contacts in 2023,
/// a visit, 70,404.00 元 of aid and a claim of 2 home visits (the records say 1).
fn small_store(tmp: &Path) -> PathBuf {
    let data = tmp.join("store");
    let [city, county, township, cadre, person, pairing, claim] =
        std::array::from_fn(|_| Uuid::now_v7());
    let unit = |id: Uuid, kind: &str, parent: Option<Uuid>| {
        line(
            "unit.registered",
            &at("2023-01-01"),
            json!({"unit_id": id, "name": format!("单位 {kind}"), "kind": kind, "parent_id": parent, "official_code": null}),
        )
    };
    let mut lines = vec![
        unit(city, "city_bureau", None),
        unit(county, "county", Some(city)),
        unit(township, "township", Some(county)),
        line(
            "staff.registered",
            &at("2023-01-01"),
            json!({"person_id": cadre, "name": "张明", "role": "cadre", "unit_id": city, "since": "2023-01-01"}),
        ),
        line(
            "recipient.registered",
            &at("2023-01-02"),
            json!({"recipient_id": person, "kind": "person", "name": "李华", "unit_id": township, "birth_date": "1950-01-01"}),
        ),
        line(
            "pairing.established",
            &at("2023-01-03"),
            json!({"pairing_id": pairing, "cadre_id": cadre, "recipient_id": person, "on": "2023-01-03"}),
        ),
        line(
            "visit.recorded",
            &at("2023-04-01"),
            json!({"pairing_id": pairing, "trip": "own", "group_trip_id": null, "companions": [], "observations": "屋顶漏雨"}),
        ),
        line(
            "aid.given",
            &at("2023-05-01"),
            json!({"pairing_id": pairing, "form": "cash", "value_fen": AID_FEN, "fund_source": "own",
                   "item": null, "quantity": null, "unit_value_fen": null, "receipt_ref": "R-1"}),
        ),
    ];
    for i in 0..CONTACTS {
        let day = 1 + i % 28;
        lines.push(line(
            "contact.recorded",
            &format!("2023-06-{day:02}T10:00:00+08:00"),
            json!({"pairing_id": pairing, "channel": "phone", "summary": "问候", "duration_minutes": 5}),
        ));
    }
    lines.push(line(
        "claim.filed",
        &at("2023-12-20"),
        json!({"claim_id": claim, "metric": "home_visits", "scope_unit_id": null, "period_from": "2023-01-01",
               "period_to": "2023-12-31", "value": 2, "comparison": "exactly",
               "source_document": "年度报告, 第 3 页", "reported_on": "2023-12-20"}),
    ));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    ok(&data, &["append"], Some(&text));
    data
}

/// The figure rows of a text report: lines indented by two spaces.
fn figure_rows(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("  ")).collect()
}

/// The row whose label is `label`.
fn row_of<'a>(rows: &[&'a str], label: &str) -> &'a str {
    rows.iter()
        .copied()
        .find(|r| r.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in {rows:#?}"))
}

#[test]
fn the_chinese_report_reads_as_chinese_and_lines_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_store(tmp.path());
    let text = ok(&data, &["report", "--lang", "zh"], None);

    let letters: Vec<&str> = text
        .lines()
        .filter(|l| l.chars().any(|c| c.is_ascii_alphabetic()))
        .collect();
    assert!(letters.is_empty(), "English in the zh report: {letters:#?}");
    assert!(text.contains("截至第 "), "{text}");
    assert!(text.contains("（记录于 "), "{text}");

    let rows = figure_rows(&text);
    assert_eq!(rows.len(), 27, "one row per figure:\n{text}");
    // Every row's period begins with 期间 or 截至, at the same display column.
    let period_marker = |r: &str| {
        if r.contains("期间 ") {
            "期间 "
        } else {
            "截至 "
        }
    };
    let mut by_marker: Vec<(usize, usize)> = Vec::new();
    for row in &rows {
        let marker = period_marker(row);
        let byte = row.find(marker).unwrap();
        by_marker.push((row[..byte].trim_end().width(), row[..byte].width()));
    }
    assert!(
        by_marker.windows(2).all(|w| w[0] == w[1]),
        "value ends and period starts (display columns) differ: {by_marker:?}\n{text}"
    );
    // Labels of different display widths start at the same place, so padding counts columns.
    let short = row_of(&rows, "孤儿 (名)");
    let long = row_of(&rows, "孤儿和事实无人抚养儿童1对1帮扶计划 (份)");
    assert_ne!(short.len(), long.len());
    assert_eq!(short.width(), long.width(), "{short:?} vs {long:?}");

    // One number format: thousands separators, money in 元 with two decimals.
    let contacts = row_of(&rows, "电话、视频、信息联系交流 (次)");
    assert!(contacts.contains(" 1,203 "), "{contacts}");
    assert!(
        contacts.contains("期间 2023-01-01 至 2023-12-31"),
        "{contacts}"
    );
    let aid = row_of(&rows, "资助资金(含物资折合) (元)");
    assert!(aid.contains(" 70,404.00 元 "), "{aid}");
    let cadres = row_of(&rows, "局机关干部结对帮扶 (名)");
    assert!(cadres.contains("截至 2023-12-31"), "{cadres}");
    // The as-of position has the separator too: 8 events + 1,203 contacts + 1 claim.
    assert!(text.contains("截至第 1,212 条记录"), "{text}");
    assert!(text.contains("一、局机关干部结对关爱"), "{text}");
}

#[test]
fn the_english_report_uses_the_same_number_format_and_lines_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_store(tmp.path());
    let text = ok(&data, &["report"], None);
    let rows = figure_rows(&text);
    assert_eq!(rows.len(), 27, "{text}");
    // Periods are FROM..TO or "on DAY": both start with the year.
    let mut columns = Vec::new();
    for row in &rows {
        let start = row.find(" 20").map(|b| b + 1).unwrap();
        let start = if row[..start].ends_with("on ") {
            start - 3
        } else {
            start
        };
        columns.push((row[..start].trim_end().width(), row[..start].width()));
    }
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "{columns:?}\n{text}"
    );
    let contacts = row_of(&rows, "contacts by phone");
    assert!(contacts.contains(" 1,203 "), "{contacts}");
    assert!(contacts.contains("[contacts]"), "{contacts}");
    let aid = row_of(&rows, "money and goods given");
    assert!(aid.contains(" 70,404.00 元 "), "{aid}");
    assert!(text.contains("as of position 1,212 (recorded "), "{text}");
    // JSON keeps the number as a number beside the shown text.
    let report: Value = serde_json::from_str(&ok(&data, &["report", "--json"], None)).unwrap();
    let contacts = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["metric"] == "contacts")
        .unwrap();
    assert_eq!(contacts["value"], CONTACTS);
    assert_eq!(contacts["value_text"], "1,203");
    assert_eq!(contacts["period"], "2023-01-01..2023-12-31");
}

#[test]
fn the_workbook_has_the_figures_and_the_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_store(tmp.path());
    let file = tmp.path().join("report.xlsx");
    let out = ok(
        &data,
        &[
            "report",
            "--format",
            "xlsx",
            "--output",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out, "", "the workbook goes to the file only");
    let mut book: Xlsx<_> = open_workbook(&file).expect("an xlsx calamine reads");
    assert_eq!(book.sheet_names(), vec!["figures", "claims"]);

    let figures = book.worksheet_range("figures").unwrap();
    let header: Vec<String> = figures
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        header,
        [
            "section",
            "label_zh",
            "label_en",
            "value",
            "period",
            "as_of_position",
            "as_of_recorded_at",
            "metric"
        ]
    );
    assert_eq!(figures.height(), 28, "a header and 27 figures");
    let row = |metric: &str| {
        figures
            .rows()
            .find(|r| r[7] == Data::String(metric.into()))
            .unwrap_or_else(|| panic!("no {metric} row"))
            .to_vec()
    };
    let aid = row("aid_given_fen");
    assert_eq!(aid[3], Data::Float(70_404.0), "money as a number of 元");
    assert_eq!(aid[1], Data::String("资助资金(含物资折合) (元)".into()));
    assert_eq!(aid[0], Data::String("A".into()));
    let contacts = row("contacts");
    assert_eq!(contacts[3], Data::Float(CONTACTS as f64));
    assert_eq!(
        contacts[2],
        Data::String("contacts by phone, video or message".into())
    );
    assert_eq!(contacts[4], Data::String("2023-01-01..2023-12-31".into()));
    assert_eq!(contacts[5], Data::Float(1_212.0));

    let claims = book.worksheet_range("claims").unwrap();
    assert_eq!(claims.height(), 2, "a header and the one claim");
    let header: Vec<String> = claims
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(header[..3], ["claim_id", "metric", "claimed"]);
    let claim: Vec<Data> = claims.rows().nth(1).unwrap().to_vec();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(claim[col("metric")], Data::String("home_visits".into()));
    assert_eq!(claim[col("claimed")], Data::Float(2.0));
    assert_eq!(claim[col("recorded_now")], Data::Float(1.0));
    assert_eq!(claim[col("verdict")], Data::String("differs".into()));
    assert_eq!(
        claim[col("source_document")],
        Data::String("年度报告, 第 3 页".into())
    );
}

/// Splits one RFC 4180 record (no embedded line breaks in these fields).
fn csv_record(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[test]
fn csv_is_the_figures_sheet_to_stdout_or_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_store(tmp.path());
    let text = ok(&data, &["report", "--format", "csv"], None);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "section,label_zh,label_en,value,period,as_of_position,as_of_recorded_at,metric"
    );
    assert_eq!(lines.len(), 28);
    let records: Vec<Vec<String>> = lines.iter().map(|l| csv_record(l)).collect();
    assert!(records.iter().all(|r| r.len() == 8), "{records:#?}");
    let contacts = records.iter().find(|r| r[7] == "contacts").unwrap();
    // A label with a comma is quoted, and the value is a plain number.
    assert_eq!(contacts[2], "contacts by phone, video or message");
    assert!(text.contains("\"contacts by phone, video or message\""));
    assert_eq!(contacts[3], "1203");
    let aid = records.iter().find(|r| r[7] == "aid_given_fen").unwrap();
    assert_eq!(aid[3], "70404.00");

    let file = tmp.path().join("report.csv");
    let out = ok(
        &data,
        &[
            "report",
            "--format",
            "csv",
            "--output",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out, "");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn xlsx_without_a_file_is_refused_with_what_to_give() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_store(tmp.path());
    let o = run(&data, &["report", "--format", "xlsx"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--output FILE.xlsx"));
    assert!(o.stdout.is_empty(), "no workbook bytes on a terminal");
}
