//! The `carelog` binary end to end: append (file and stdin), import, export (jsonl and csv) and
//! its round trip, verify, digest, report, explain, log, the errors and exit codes, `--help`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use uuid::Uuid;

const ACTOR: &str = "cli-test";

/// Runs `carelog --data DATA ARGS…`, with `stdin` piped in when given.
fn run(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_carelog"));
    cmd.arg("--data")
        .arg(data)
        .arg("--actor")
        .arg(ACTOR)
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

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let o = run(data, args, stdin);
    assert_eq!(
        o.status.code(),
        Some(0),
        "carelog {args:?} failed\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The head position of a store, from `digest --json`.
fn head(data: &Path) -> u64 {
    json_of(&ok(data, &["digest", "--json"], None))["position"]
        .as_u64()
        .unwrap()
}

fn ack_lines(text: &str) -> Vec<Value> {
    text.lines().map(json_of).collect()
}

fn at(date: &str) -> String {
    format!("{date}T10:00:00+08:00")
}

/// One event line with a fresh id.
fn line(event_type: &str, time: &str, data: Value) -> (Uuid, String) {
    let id = Uuid::now_v7();
    let v = json!({"specversion": "1.0", "id": id, "source": "/tests/cli",
                   "type": format!("carelog.{event_type}"), "time": time, "data": data});
    (id, v.to_string())
}

/// A tiny programme: a city bureau, a county, a township, a cadre, a person and a pairing.
struct Tiny {
    pairing: Uuid,
    /// (id, line) in order.
    lines: Vec<(Uuid, String)>,
}

impl Tiny {
    fn new() -> Tiny {
        let [city, county, township, cadre, person, pairing] =
            std::array::from_fn(|_| Uuid::now_v7());
        let unit = |id: Uuid, kind: &str, parent: Option<Uuid>| {
            line(
                "unit.registered",
                &at("2023-01-01"),
                json!({"unit_id": id, "name": format!("unit {kind}"), "kind": kind, "parent_id": parent, "official_code": null}),
            )
        };
        let lines = vec![
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
        ];
        Tiny { pairing, lines }
    }

    fn text(&self) -> String {
        lines_text(&self.lines)
    }

    fn contact(&self, time: &str) -> (Uuid, String) {
        line(
            "contact.recorded",
            time,
            json!({"pairing_id": self.pairing, "channel": "phone", "summary": "how are you, \"grandpa\"?", "duration_minutes": 7}),
        )
    }

    fn visit(&self, time: &str) -> (Uuid, String) {
        line(
            "visit.recorded",
            time,
            json!({"pairing_id": self.pairing, "trip": "own", "group_trip_id": null, "companions": [], "observations": "roof leaks, stove ok"}),
        )
    }

    fn aid(&self, time: &str, value_fen: i64) -> (Uuid, String) {
        line(
            "aid.given",
            time,
            json!({"pairing_id": self.pairing, "form": "cash", "value_fen": value_fen, "fund_source": "own",
                   "item": null, "quantity": null, "unit_value_fen": null, "receipt_ref": "R-1"}),
        )
    }
}

fn lines_text(lines: &[(Uuid, String)]) -> String {
    lines.iter().map(|(_, l)| format!("{l}\n")).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A store with the tiny programme and some activities: (store dir, tiny, all lines).
fn tiny_store(tmp: &Path) -> (PathBuf, Tiny, Vec<(Uuid, String)>) {
    let data = tmp.join("store");
    let tiny = Tiny::new();
    let mut all = tiny.lines.clone();
    all.push(tiny.contact(&at("2023-03-01")));
    all.push(tiny.visit("2023-04-01T09:15:30.25-05:00"));
    all.push(tiny.aid(&at("2023-05-01"), 12_345));
    all.push(tiny.contact("2023-06-01T01:00:00Z"));
    let file = write(tmp, "tiny.jsonl", &lines_text(&all));
    ok(&data, &["append", s(&file)], None);
    (data, tiny, all)
}

// ---- append ---------------------------------------------------------------------------------

#[test]
fn append_from_a_file_and_from_stdin_acks_each_event() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    let tiny = Tiny::new();
    let file = write(tmp.path(), "registry.jsonl", &tiny.text());
    let out = ok(&data, &["append", s(&file)], None);
    let acks = ack_lines(&out);
    assert_eq!(acks.len(), tiny.lines.len());
    for (i, (ack, (id, _))) in acks.iter().zip(&tiny.lines).enumerate() {
        assert_eq!(
            ack,
            &json!({"id": id, "position": i + 1}),
            "one ack line per event, in order"
        );
    }
    // From stdin, with `-` and with no file at all.
    let (c1, l1) = tiny.contact(&at("2023-03-01"));
    let (c2, l2) = tiny.contact(&at("2023-03-02"));
    let out = ok(&data, &["append", "-"], Some(&format!("{l1}\n{l2}\n")));
    assert_eq!(
        ack_lines(&out),
        [
            json!({"id": c1, "position": 7}),
            json!({"id": c2, "position": 8})
        ]
    );
    let (c3, l3) = tiny.visit(&at("2023-03-03"));
    // No trailing newline on the last line, and a blank line before it.
    let out = ok(&data, &["append"], Some(&format!("\n{l3}")));
    assert_eq!(ack_lines(&out), [json!({"id": c3, "position": 9})]);
    assert_eq!(head(&data), 9);
}

/// `expectedversion` on a line: the version the pairing's stream is at passes; another stops
/// the append at that line, naming the line, the stream and both versions, nothing of it
/// written.
#[test]
fn an_append_line_with_a_stale_expected_version_is_refused_naming_the_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    let tiny = Tiny::new();
    let file = write(tmp.path(), "registry.jsonl", &tiny.text());
    ok(&data, &["append", s(&file)], None);
    let with_expected = |line: String, expected: Value| {
        let mut v = json_of(&line);
        v["expectedversion"] = expected;
        v.to_string()
    };
    // The pairing's stream holds its establishment: version 1.
    let (c1, l1) = tiny.contact(&at("2023-03-01"));
    let out = ok(&data, &["append"], Some(&with_expected(l1, json!(1))));
    assert_eq!(ack_lines(&out)[0]["id"], json!(c1));
    let before = head(&data);
    let (_, ok_line) = tiny.contact(&at("2023-03-02"));
    let (_, stale) = tiny.contact(&at("2023-03-03"));
    let text = format!(
        "{}\n{}\n",
        with_expected(ok_line, json!("any")),
        with_expected(stale, json!(1))
    );
    let o = run(&data, &["append"], Some(&text));
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("line 2"), "names the line: {err}");
    assert!(
        err.contains(&format!("pairing-{}", tiny.pairing)),
        "names the stream: {err}"
    );
    assert!(
        err.contains("at version 3") && err.contains("expects version 1"),
        "names both versions: {err}"
    );
    assert_eq!(
        head(&data),
        before + 1,
        "the line before it is kept, it is not"
    );
}

#[test]
fn a_bad_line_in_the_middle_stops_there_and_keeps_the_lines_before() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    let tiny = Tiny::new();
    let mut text = tiny.text();
    // Line 7: a contact without its summary (a format error).
    let (bad_id, mut bad) = tiny.contact(&at("2023-03-01"));
    bad = bad.replace("\"summary\"", "\"summery\"");
    text.push_str(&bad);
    text.push('\n');
    let (after_id, after) = tiny.contact(&at("2023-03-02"));
    text.push_str(&after);
    text.push('\n');
    let file = write(tmp.path(), "bad.jsonl", &text);
    let o = run(&data, &["append", s(&file)], None);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("line 7"), "names the line: {err}");
    assert!(err.contains("summery"), "names the field: {err}");
    let acked = ack_lines(&stdout(&o));
    assert_eq!(acked.len(), 6, "the lines before are acked");
    assert_eq!(head(&data), 6);
    let exported = ok(&data, &["export"], None);
    assert!(!exported.contains(&bad_id.to_string()));
    assert!(!exported.contains(&after_id.to_string()));
}

#[test]
fn a_refused_line_in_the_middle_names_the_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    let tiny = Tiny::new();
    let mut lines = tiny.lines.clone();
    lines.push(tiny.contact(&at("2023-03-01")));
    lines.push(tiny.aid(&at("2023-03-02"), 0)); // line 8: zero fen
    lines.push(tiny.contact(&at("2023-03-03")));
    let file = write(tmp.path(), "refused.jsonl", &lines_text(&lines));
    let o = run(&data, &["append", s(&file)], None);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("line 8"), "names the line: {err}");
    assert!(err.contains("data.value_fen"), "names the field: {err}");
    assert_eq!(ack_lines(&stdout(&o)).len(), 7);
    assert_eq!(head(&data), 7);
    // The same file with a blank line first: the line number is the file's.
    let data2 = tmp.path().join("store2");
    let file = write(
        tmp.path(),
        "refused2.jsonl",
        &format!("\n{}", lines_text(&lines)),
    );
    let o = run(&data2, &["append", s(&file)], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 9"), "{}", stderr(&o));
    assert_eq!(head(&data2), 7);
}

#[test]
fn re_appending_a_file_acks_the_original_positions_as_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _tiny, all) = tiny_store(tmp.path());
    let before = ok(&data, &["digest", "--json"], None);
    let file = write(tmp.path(), "again.jsonl", &lines_text(&all));
    let out = ok(&data, &["append", s(&file)], None);
    let acked = ack_lines(&out);
    assert_eq!(acked.len(), all.len());
    for (i, (ack, (id, _))) in acked.iter().zip(&all).enumerate() {
        assert_eq!(
            ack,
            &json!({"id": id, "position": i + 1, "duplicate": true})
        );
    }
    assert_eq!(ok(&data, &["digest", "--json"], None), before);
}

#[test]
fn a_line_repeated_in_one_input_is_acked_as_a_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    let tiny = Tiny::new();
    let (id, first) = tiny.lines[0].clone();
    let o = run(&data, &["append"], Some(&format!("{first}\n{first}\n")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        ack_lines(&stdout(&o)),
        [
            json!({"id": id, "position": 1}),
            json!({"id": id, "position": 1, "duplicate": true})
        ]
    );
    assert_eq!(head(&data), 1);
}

// ---- import ---------------------------------------------------------------------------------

#[test]
fn import_is_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let tiny = Tiny::new();
    let mut lines = tiny.lines.clone();
    lines.push(tiny.contact(&at("2023-03-01")));
    lines.push(tiny.aid(&at("2023-03-02"), -5)); // the last line is refused
    let file = write(tmp.path(), "import.jsonl", &lines_text(&lines));
    let data = tmp.path().join("store");
    let o = run(&data, &["import", s(&file)], None);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    assert!(stderr(&o).contains("line 8"), "{}", stderr(&o));
    assert!(stderr(&o).contains("data.value_fen"), "{}", stderr(&o));
    assert_eq!(head(&data), 0, "nothing was imported");

    // A last line that is not even JSON.
    let mut text = lines_text(&lines[..7]);
    text.push_str("{\"specversion\":\"1.0\",\n");
    let file = write(tmp.path(), "import2.jsonl", &text);
    let o = run(&data, &["import", s(&file)], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 8"), "{}", stderr(&o));
    assert_eq!(head(&data), 0);

    // The good lines import whole.
    let file = write(tmp.path(), "import3.jsonl", &lines_text(&lines[..7]));
    let out = ok(&data, &["import", s(&file)], None);
    assert_eq!(
        json_of(&out),
        json!({"imported": 7, "already_present": 0, "first_position": 1, "last_position": 7})
    );
    assert_eq!(head(&data), 7);
}

// ---- export ---------------------------------------------------------------------------------

#[test]
fn an_export_appended_into_a_new_store_is_the_same_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, tiny, all) = tiny_store(tmp.path());
    // A void and a correction travel too.
    let (void_id, void) = line(
        "record.voided",
        &at("2023-07-01"),
        json!({"target_event_id": all[6].0, "reason": "twice"}),
    );
    let (corr_id, corr) = line(
        "record.corrected",
        &at("2023-07-02"),
        json!({"target_event_id": all[8].0, "reason": "amount", "corrected_type": "carelog.aid.given",
               "corrected": {"pairing_id": tiny.pairing, "form": "cash", "value_fen": 20_000, "fund_source": "own",
                             "item": null, "quantity": null, "unit_value_fen": null, "receipt_ref": "R-1"}}),
    );
    ok(&a, &["append"], Some(&format!("{void}\n{corr}\n")));
    let export_a = ok(&a, &["export", "--format", "jsonl"], None);
    assert_eq!(export_a.lines().count(), all.len() + 2);
    let file = write(tmp.path(), "export.jsonl", &export_a);

    let b = tmp.path().join("b");
    let out = ok(&b, &["append", "--keep-recorded-at", s(&file)], None);
    let acked = ack_lines(&out);
    let ids: Vec<Uuid> = all
        .iter()
        .map(|(id, _)| *id)
        .chain([void_id, corr_id])
        .collect();
    assert_eq!(acked.len(), ids.len());
    for (i, (ack, id)) in acked.iter().zip(&ids).enumerate() {
        assert_eq!(ack, &json!({"id": id, "position": i + 1}));
    }
    let export_b = ok(&b, &["export"], None);
    assert_eq!(export_b, export_a, "byte-identical exports");
    assert_eq!(
        ok(&b, &["digest", "--json"], None),
        ok(&a, &["digest", "--json"], None),
        "same head and chain hash"
    );
    // The events keep their offsets and recorded times.
    let first_visit = export_b
        .lines()
        .map(json_of)
        .find(|e| e["type"] == "carelog.visit.recorded")
        .unwrap();
    assert_eq!(first_visit["time"], "2023-04-01T09:15:30.250-05:00");
    // Same figures.
    assert_eq!(
        json_of(&ok(&b, &["report", "--json"], None))["figures"],
        json_of(&ok(&a, &["report", "--json"], None))["figures"]
    );
    // The same through one import.
    let c = tmp.path().join("c");
    ok(&c, &["import", "--keep-recorded-at", s(&file)], None);
    assert_eq!(ok(&c, &["export"], None), export_a);
}

#[test]
fn kept_recording_times_may_not_go_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _tiny, all) = tiny_store(tmp.path());
    let export = ok(&a, &["export"], None);
    let mut lines: Vec<Value> = export.lines().map(json_of).collect();
    // Line 5 says it was recorded before line 4.
    lines[4]["recordedat"] = json!("2020-01-01T00:00:00+00:00");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let b = tmp.path().join("b");
    let o = run(&b, &["append", "--keep-recorded-at"], Some(&text));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 5"), "{}", stderr(&o));
    assert!(stderr(&o).contains("recordedat"), "{}", stderr(&o));
    assert_eq!(ack_lines(&stdout(&o)).len(), 4);
    assert_eq!(head(&b), 4);
    // The store still takes the rest as exported, and ends up the same log.
    let rest: String = export.lines().skip(4).map(|l| format!("{l}\n")).collect();
    ok(&b, &["append", "--keep-recorded-at"], Some(&rest));
    assert_eq!(head(&b), all.len() as u64);
    assert_eq!(ok(&b, &["export"], None), export);
}

#[test]
fn re_appending_an_export_into_its_own_store_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _tiny, all) = tiny_store(tmp.path());
    let before = ok(&data, &["digest", "--json"], None);
    let export = ok(&data, &["export"], None);
    let out = ok(&data, &["append"], Some(&export));
    let acked = ack_lines(&out);
    assert_eq!(acked.len(), all.len());
    assert!(acked.iter().all(|a| a["duplicate"] == json!(true)), "{out}");
    assert_eq!(ok(&data, &["digest", "--json"], None), before);
    // And as one import.
    let file = write(tmp.path(), "export.jsonl", &export);
    let out = ok(&data, &["import", s(&file)], None);
    assert_eq!(json_of(&out)["imported"], 0);
    assert_eq!(json_of(&out)["already_present"], all.len());
    assert_eq!(ok(&data, &["digest", "--json"], None), before);
}

#[test]
fn export_csv_has_a_header_and_one_row_per_event() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _tiny, all) = tiny_store(tmp.path());
    let csv = ok(&data, &["export", "--format", "csv"], None);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "position,id,type,schema_version,stream,stream_version,occurred_at,recorded_at,recorded_by,data"
    );
    assert_eq!(rows.len(), all.len() + 1);
    for (i, (row, (id, _))) in rows[1..].iter().zip(&all).enumerate() {
        assert!(
            row.starts_with(&format!("{},{id},carelog.", i + 1)),
            "row {i}: {row}"
        );
        assert!(row.contains(&format!(",{ACTOR},")), "{row}");
    }
    // The data column is quoted (it holds commas and quotes).
    let contact = rows
        .iter()
        .find(|r| r.contains("carelog.contact.recorded"))
        .unwrap();
    let quoted = &contact[contact.find(",\"{").expect("a quoted data field") + 1..];
    assert!(
        quoted.starts_with('"') && quoted.ends_with('"'),
        "the JSON data is one quoted field: {contact}"
    );
    let data = json_of(&quoted[1..quoted.len() - 1].replace("\"\"", "\""));
    assert_eq!(data["summary"], "how are you, \"grandpa\"?");
    assert_eq!(data["pairing_id"], json!(_tiny.pairing));
}

// ---- verify and digest ----------------------------------------------------------------------

#[test]
fn verify_and_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, tiny, all) = tiny_store(tmp.path());
    let text = ok(&data, &["verify"], None);
    assert!(text.starts_with("intact"), "{text}");
    let report = json_of(&ok(&data, &["verify", "--json"], None));
    assert_eq!(report["intact"], true);
    assert_eq!(report["events_checked"], all.len());
    assert_eq!(report["problem"], Value::Null);

    let digest = ok(&data, &["digest", "--json"], None);
    let d = json_of(&digest);
    assert_eq!(d["position"], all.len());
    assert_eq!(d["chain_hash"].as_str().unwrap().len(), 64);
    let digest_file = write(tmp.path(), "digest.json", &digest);
    let (_, more) = tiny.contact(&at("2023-09-01"));
    ok(&data, &["append"], Some(&more));
    let o = run(&data, &["verify", "--digest", s(&digest_file)], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json_of(&ok(
        &data,
        &["verify", "--json", "--digest", s(&digest_file)],
        None,
    ));
    assert_eq!(r["intact"], true);
    assert_eq!(r["head"]["position"], all.len() + 1);

    // A digest the log never held is a failed check.
    let mut forged = d.clone();
    forged["chain_hash"] = json!("ab".repeat(32));
    let forged_file = write(tmp.path(), "forged.json", &forged.to_string());
    let o = run(
        &data,
        &["verify", "--json", "--digest", s(&forged_file)],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = json_of(&stdout(&o));
    assert_eq!(r["intact"], false);
    assert_eq!(r["problem"]["kind"], "digest_mismatch");
    // A file that is not a digest is bad input.
    let junk = write(tmp.path(), "junk.json", "{\"nope\": 1}");
    assert_eq!(
        run(&data, &["verify", "--digest", s(&junk)], None)
            .status
            .code(),
        Some(2)
    );
}

// ---- errors ---------------------------------------------------------------------------------

#[test]
fn reading_commands_on_a_missing_store_exit_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-store");
    for args in [
        &["export"][..],
        &["export", "--format", "csv"],
        &["log"],
        &["verify"],
        &["digest"],
        &["report"],
        &["report", "--json"],
        &["explain", "contacts"],
        &["project", "pairings"],
        &["claims", "check"],
    ] {
        let o = run(&missing, args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("no-such-store"),
            "{args:?} names the directory: {}",
            stderr(&o)
        );
        assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
        assert!(!missing.exists(), "{args:?} created the store");
    }
}

#[test]
fn demo_refuses_a_non_empty_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _tiny, _all) = tiny_store(tmp.path());
    let before = ok(&data, &["digest", "--json"], None);
    let o = run(&data, &["demo"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    assert_eq!(ok(&data, &["digest", "--json"], None), before);
}

// ---- figures --------------------------------------------------------------------------------

fn figure(report: &Value, metric: &str) -> i64 {
    report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["metric"] == metric)
        .unwrap_or_else(|| panic!("no figure {metric}"))["value"]
        .as_i64()
        .unwrap()
}

#[test]
fn report_json_counts_a_tiny_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, tiny, all) = tiny_store(tmp.path());
    // Outside 2023: not in the 2023 figures.
    let (_, late) = tiny.contact(&at("2024-01-02"));
    let (_, early_visit) = tiny.visit("2023-12-31T16:30:00Z"); // 2024-01-01 in Shanghai
    ok(
        &data,
        &["append"],
        Some(&format!("{late}\n{early_visit}\n")),
    );
    let report = json_of(&ok(&data, &["report", "--json"], None));
    assert_eq!(report["as_of"]["position"], all.len() + 2);
    assert_eq!(figure(&report, "contacts"), 2);
    assert_eq!(figure(&report, "home_visits"), 1);
    assert_eq!(figure(&report, "aid_given_fen"), 12_345);
    assert_eq!(figure(&report, "cadres_paired"), 1);
    assert_eq!(figure(&report, "escalations"), 0);
    // As of a position before the activities.
    let then = json_of(&ok(
        &data,
        &["report", "--json", "--at-position", "6"],
        None,
    ));
    assert_eq!(figure(&then, "contacts"), 0);
    // Over another period.
    let y2024 = json_of(&ok(
        &data,
        &["report", "--json", "--period", "2024-01-01..2024-12-31"],
        None,
    ));
    assert_eq!(figure(&y2024, "contacts"), 1);
    assert_eq!(figure(&y2024, "home_visits"), 1);
}

#[test]
fn explain_lists_exactly_the_contact_events() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    let tiny = Tiny::new();
    ok(&data, &["append"], Some(&tiny.text()));
    let mut lines = Vec::new();
    for (i, d) in ["2023-02-01", "2023-02-02", "2023-02-03"]
        .iter()
        .enumerate()
    {
        lines.push(tiny.contact(&at(d)));
        lines.push(tiny.visit(&at(d)));
        if i == 1 {
            lines.push(tiny.aid(&at(d), 100));
        }
    }
    let out = ok(&data, &["append"], Some(&lines_text(&lines)));
    let acked = ack_lines(&out);
    let contacts: Vec<Value> = acked
        .iter()
        .zip(&lines)
        .filter(|(_, (_, l))| l.contains("carelog.contact.recorded"))
        .map(|(a, _)| json!({"id": a["id"], "position": a["position"]}))
        .collect();
    assert_eq!(contacts.len(), 3);
    let e = json_of(&ok(&data, &["explain", "contacts", "--json"], None));
    assert_eq!(e["metric"], "contacts");
    assert_eq!(e["value"], 3);
    assert_eq!(e["events"], Value::Array(contacts));
    assert_eq!(e["adjustments"], json!([]));
    // An unknown metric is bad input.
    let o = run(&data, &["explain", "no_such_metric"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no_such_metric"));
}

#[test]
fn log_stream_shows_only_that_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, tiny, all) = tiny_store(tmp.path());
    let stream = format!("pairing-{}", tiny.pairing);
    let out = ok(&data, &["log", "--stream", &stream, "--json"], None);
    let events: Vec<Value> = out.lines().map(json_of).collect();
    // The establishment and the four activities.
    assert_eq!(events.len(), 5, "{out}");
    assert!(events.iter().all(|e| e["subject"] == stream.as_str()));
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = all[5..].iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(ids, expected);
    let versions: Vec<u64> = events
        .iter()
        .map(|e| e["streamversion"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    // The readable form too.
    let text = ok(&data, &["log", "--stream", &stream], None);
    assert_eq!(text.matches(&stream).count(), 5, "{text}");
    assert!(!text.contains("carelog.unit.registered"));
    // --from is a stream version with --stream.
    let out = ok(
        &data,
        &["log", "--stream", &stream, "--from", "4", "--json"],
        None,
    );
    assert_eq!(out.lines().count(), 2);
    // The whole log has every event.
    let out = ok(&data, &["log", "--json", "--limit", "1000"], None);
    assert_eq!(out.lines().count(), all.len());
}

#[test]
fn every_subcommand_has_help() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("unused");
    for args in [
        &["--help"][..],
        &["demo", "--help"],
        &["append", "--help"],
        &["import", "--help"],
        &["export", "--help"],
        &["log", "--help"],
        &["verify", "--help"],
        &["digest", "--help"],
        &["events", "--help"],
        &["report", "--help"],
        &["project", "--help"],
        &["projections", "--help"],
        &["explain", "--help"],
        &["claims", "--help"],
        &["claims", "check", "--help"],
        &["help", "append"],
    ] {
        let out = ok(&data, args, None);
        assert!(out.contains("Usage"), "{args:?}: {out}");
    }
    assert!(!data.exists(), "help created a store");
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("unused");
    for args in [
        &["no-such-command"][..],
        &["export", "--format", "xml"],
        &["report", "--as-of", "2023-12-31", "--at-position", "3"],
    ] {
        let o = run(&data, args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    let o = run(&data, &["append", "/no/such/file.jsonl"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/no/such/file.jsonl"), "{}", stderr(&o));
}

#[test]
fn events_lists_every_type_with_an_example() {
    let data = tempfile::tempdir().unwrap();
    let out = ok(data.path(), &["events", "--json"], None);
    let list = json_of(&out);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), carelog::domain::EVENT_TYPES.len());
    for (entry, (name, version, _)) in list.iter().zip(carelog::domain::EVENT_TYPES) {
        assert_eq!(entry["type"], *name);
        assert_eq!(entry["schema_version"], *version);
        assert_eq!(entry["example"]["type"], *name);
    }
}

#[test]
fn every_example_line_of_events_is_well_formed_input() {
    let data = tempfile::tempdir().unwrap();
    let out = ok(data.path(), &["events", "--json"], None);
    for entry in json_of(&out).as_array().unwrap() {
        let example = entry["example"].to_string();
        if let Err(e) = carelog::domain::cloudevent::parse_line(&example) {
            panic!("the example of {} does not parse: {e}", entry["type"]);
        }
    }
}

// ---- the commit journal -----------------------------------------------------------------------

/// `append` killed with -9 while it is appending: the commits it acknowledged last are in the
/// commit journal, not yet in sled (sled writes its file a segment at a time, and flushes when
/// the journal is full or at a clean close). The next command replays them, says so once, and
/// loses nothing.
#[test]
fn acknowledged_appends_of_a_killed_process_survive() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let (data, tiny, all) = tiny_store(tmp.path());
    // A clean close leaves nothing to replay.
    let o = run(&data, &["digest"], None);
    assert!(
        !stderr(&o).contains("commit journal"),
        "a cleanly closed store replays nothing: {}",
        stderr(&o)
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_carelog"))
        .arg("--data")
        .arg(&data)
        .args(["--actor", ACTOR, "append", "-"])
        .env_remove("CARELOG_DATA")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Lines keep coming while the acks are read, so the kill lands while it appends.
    let lines: Vec<(Uuid, String)> = (0..20_000)
        .map(|i| {
            tiny.contact(&format!(
                "2023-07-{:02}T10:{:02}:{:02}+08:00",
                1 + i / 3600 % 28,
                i / 60 % 60,
                i % 60
            ))
        })
        .collect();
    let text = lines_text(&lines);
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // Fails with a broken pipe once the child is killed.
        let _ = stdin.write_all(text.as_bytes());
    });
    let mut acks = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while acks.len() < 2_000 {
        let mut text = String::new();
        assert!(out.read_line(&mut text).unwrap() > 0, "append ended early");
        acks.push(json_of(&text));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    feeder.join().unwrap();

    let o = run(
        &data,
        &["log", "--json", "--from", "1", "--limit", "100000"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // What the open says depends on where the kill landed (sled's own flush may have taken
    // everything acknowledged just before): a replay, a set-aside partial commit, or nothing.
    // Whatever it says, nothing acknowledged is lost.
    let note = stderr(&o);
    assert!(!note.contains("WARNING"), "{note}");
    if note.contains("replayed") {
        assert!(note.contains("nothing acknowledged was lost"), "{note}");
    }
    let logged: Vec<Value> = stdout(&o).lines().map(json_of).collect();
    for (ack, (id, _)) in acks.iter().zip(&lines) {
        let position = ack["position"].as_u64().unwrap();
        assert_eq!(ack["id"], json!(id));
        assert_eq!(
            logged[(position - 1) as usize]["id"],
            json!(id),
            "acknowledged position {position}"
        );
    }
    assert!(head(&data) >= (all.len() + acks.len()) as u64);
    // Said once: the replay went into sled, and that open closed cleanly.
    let o = run(&data, &["verify"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("commit journal"), "{}", stderr(&o));
}

/// The note a replay prints, on a crash image (the store copied while a log had it open, with
/// sled's own flush off so that only the journal holds the commits).
#[test]
fn the_command_line_says_what_it_replayed_from_the_journal() {
    use carelog::app::{App, Keep};
    use carelog::log::{Log, OpenOptions};
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let image = tmp.path().join("image");
    let tiny = Tiny::new();
    {
        let log = Log::open(
            &store,
            OpenOptions {
                sled_flush_every_ms: None,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        let app = App::with_log(log, std::sync::Arc::new(carelog::time::SystemClock)).unwrap();
        // Four of the registry's events, one commit each.
        for (_, line) in &tiny.lines[..4] {
            let incoming = carelog::domain::cloudevent::parse_line(line).unwrap();
            app.append(vec![incoming], ACTOR, Keep::default(), &|_, _| Ok(()))
                .unwrap();
        }
        std::fs::create_dir_all(&image).unwrap();
        for entry in std::fs::read_dir(&store).unwrap().flatten() {
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), image.join(entry.file_name())).unwrap();
            }
        }
    }
    // What the journal holds, read without changing it: the four events, as export lines.
    let journal = image.join("journal");
    let journal_before = std::fs::read(&journal).unwrap();
    let o = run(&image, &["journal-events", s(&journal)], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let held = stdout(&o);
    let held_ids: Vec<Value> = held.lines().map(|l| json_of(l)["id"].clone()).collect();
    let expected_ids: Vec<Value> = tiny.lines[..4].iter().map(|(id, _)| json!(id)).collect();
    assert_eq!(held_ids, expected_ids, "{held}");
    assert!(
        stderr(&o).contains("4 whole record(s): positions 1..=1, 2..=2, 3..=3, 4..=4"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        journal_before,
        "unchanged"
    );
    let o = run(&image, &["journal-events", s(&image.join("db"))], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not a carelog commit journal"),
        "{}",
        stderr(&o)
    );
    // A damaged header does not hide the records: the generation comes from the first one.
    let damaged = tmp.path().join("journal.damaged-copy");
    let mut bytes = journal_before.clone();
    bytes[2] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let o = run(&image, &["journal-events", s(&damaged)], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), held);
    assert!(
        stderr(&o).contains("the header is damaged"),
        "{}",
        stderr(&o)
    );

    let o = run(&image, &["digest"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "replayed 4 commit(s) (positions 1..=4) from its commit journal into the log: \
             nothing acknowledged was lost"
        ),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("head position 4"), "{}", stdout(&o));
    let o = run(&image, &["digest"], None);
    assert!(stderr(&o).is_empty(), "said once: {}", stderr(&o));
    // The lines go back into a log as they are: here all four are already in it.
    let acks = ack_lines(&ok(&image, &["append", "--keep-recorded-at"], Some(&held)));
    let positions: Vec<u64> = acks
        .iter()
        .map(|a| a["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        [1, 2, 3, 4],
        "acknowledged as duplicates at their positions"
    );
    assert_eq!(head(&image), 4);
}

/// A journal an open could not apply is moved aside and kept: every open warns, appends are
/// refused, and `verify` still checks the log but fails while the file is there.
#[test]
fn a_journal_that_does_not_continue_the_log_is_kept_and_fails_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, tiny, _all) = tiny_store(tmp.path());
    let journal = data.join("journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    // A record of a commit at position 99 of a log whose head is at 10: not this log's next.
    let head_99 = carelog::codec::encode(
        "head",
        &carelog::codec::StoredHeadV1 {
            position: 99,
            chain_hash: [9; 32],
            recorded_at: carelog::codec::StoredTime {
                unix_seconds: 1_700_000_000,
                nanos: 0,
                offset_seconds: 0,
            },
        },
    )
    .unwrap();
    // One event at 99 (its leaf hash its bytes', its chain hash the head's): a record whole in
    // itself, of another log.
    let time = carelog::codec::StoredTime {
        unix_seconds: 1_700_000_000,
        nanos: 0,
        offset_seconds: 0,
    };
    let mut event = carelog::codec::StoredEventV1 {
        position: 99,
        event_id: [7; 16],
        stream: "elsewhere".into(),
        stream_version: 1,
        event_type: "test.other".into(),
        schema_version: 1,
        occurred_at: time,
        recorded_at: time,
        recorded_by: "someone".into(),
        correlation_id: None,
        causation_id: None,
        payload: Vec::new(),
        leaf_hash: [0; 32],
        chain_hash: [9; 32],
    };
    event.leaf_hash = carelog::log::hash::leaf(&event.canonical_bytes().unwrap());
    let segment = carelog::codec::encode(
        "segment",
        &carelog::codec::SegmentV1 {
            events: vec![event],
        },
    )
    .unwrap();
    let segment_key = carelog::log::keys::segment(99);
    let writes: [(&[u8], &[u8]); 2] = [(&segment_key, &segment), (b"M", &head_99)];
    let generation = carelog::log::journal::parse_header(&bytes).unwrap();
    let mut record = Vec::new();
    carelog::log::journal::encode_record(
        &mut record,
        generation,
        &carelog::log::journal::encode_payload(&writes),
    );
    let offset = carelog::log::journal::HEADER_BYTES as usize;
    if bytes.len() < offset + record.len() {
        bytes.resize(offset + record.len(), 0);
    }
    bytes[offset..offset + record.len()].copy_from_slice(&record);
    std::fs::write(&journal, &bytes).unwrap();

    let o = run(&data, &["verify", "--json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("positions 99..=99 that does not continue the head at 10"),
        "the open's warning says why: {}",
        stderr(&o)
    );
    let verdict = json_of(&stdout(&o));
    assert_eq!(verdict["log_intact"], true, "the log itself was checked");
    assert_eq!(
        verdict["intact"], false,
        "the verdict fails while a journal is set aside: {verdict}"
    );
    assert_eq!(verdict["store_problems"][0]["kind"], "journal_set_aside");
    assert!(stderr(&o).contains("journal.unapplied-"), "{}", stderr(&o));
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("journal.unapplied-")
        })
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        std::fs::read(kept[0].path()).unwrap(),
        bytes,
        "kept as found"
    );
    // Every later open warns, and appends wait for a person.
    let (_, more) = tiny.contact(&at("2023-09-01"));
    let o = run(&data, &["append"], Some(&more));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("WARNING"), "{}", stderr(&o));
    assert!(stderr(&o).contains("appends are refused"), "{}", stderr(&o));
    // Once the file is moved out, verify passes and appends go on.
    std::fs::rename(kept[0].path(), tmp.path().join("looked-at")).unwrap();
    let o = run(&data, &["verify"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    ok(&data, &["append"], Some(&more));
}
