//! The whole demo through the binary: every figure of the source report, every claim holding,
//! then a late void, a late contact and a late correction that make exactly three claims differ,
//! each explained by exactly the event that changed it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::{Value, json};
use uuid::Uuid;

fn run(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_carelog"))
        .arg("--data")
        .arg(data)
        .arg("--actor")
        .arg("demo-e2e")
        .args(args)
        .env_remove("CARELOG_DATA")
        .env_remove("CARELOG_ACTOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// A reason of the claims check: (kind, what it explains, count, [(id, position)]).
type Reason = (String, String, u64, Vec<(String, u64)>);

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let o = run(data, args, stdin);
    assert_eq!(
        o.status.code(),
        Some(0),
        "carelog {args:?}\nstdout: {}\nstderr: {}",
        out(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    out(&o)
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

const EXPECTED: &[(&str, i64)] = &[
    ("cadres_paired", 37),
    ("paired_orphans", 9),
    ("paired_severely_disabled", 24),
    ("paired_poor_households", 20),
    ("contacts", 374),
    ("home_visits", 212),
    ("policy_followups", 172),
    ("difficulties_resolved", 42),
    ("errands_done", 31),
    ("aid_given_fen", 7_040_400),
    ("escalations", 29),
    ("placements_regular_class", 326),
    ("placements_special_school", 33),
    ("placements_home_teaching", 125),
    ("placements_total", 484),
    ("poverty_dropouts", 0),
    ("student_aid_orphans_person_times", 532),
    ("student_aid_unsupported_person_times", 1864),
    ("student_aid_disabled_person_times", 5318),
    ("student_aid_paid_fen", 411_820_000),
    ("pupils_orphans", 808),
    ("pupils_single_parent", 19_523),
    ("pupils_left_behind", 45_132),
    ("pupils_disabled", 2_478),
    ("welfare_home_orphans_with_plan", 18),
    ("welfare_home_plan_schools", 6),
];

#[test]
fn demo_reproduces_the_report_and_late_changes_make_exactly_their_claims_differ() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    ok(&data, &["demo"], None);
    let after_demo = started.elapsed();

    let report = json_of(&ok(&data, &["report", "--json"], None));
    let figures: Vec<(String, i64)> = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["metric"].as_str().unwrap().to_string(),
                f["value"].as_i64().unwrap(),
            )
        })
        .collect();
    let value = |m: &str| {
        figures
            .iter()
            .find(|(n, _)| n == m)
            .unwrap_or_else(|| panic!("no figure {m}"))
            .1
    };
    for (metric, expected) in EXPECTED {
        assert_eq!(value(metric), *expected, "{metric}");
    }
    assert!(value("one_to_one_plans") > 2000);

    let claims = run(&data, &["claims", "check"], None);
    assert_eq!(claims.status.code(), Some(0), "{}", out(&claims));
    let after_claims = started.elapsed();

    // A late void of one home visit, and a late contact.
    let visits = json_of(&ok(&data, &["explain", "home_visits", "--json"], None));
    assert_eq!(visits["events"].as_array().unwrap().len(), 212);
    let visit_id = visits["events"][0]["id"].as_str().unwrap().to_string();
    let contacts = json_of(&ok(&data, &["explain", "contacts", "--json"], None));
    assert_eq!(contacts["events"].as_array().unwrap().len(), 374);
    let contact_position = contacts["events"][0]["position"].as_u64().unwrap();
    let old_contact = json_of(&ok(
        &data,
        &[
            "log",
            "--from",
            &contact_position.to_string(),
            "--limit",
            "1",
            "--json",
        ],
        None,
    ));
    assert_eq!(old_contact["type"], "carelog.contact.recorded");

    // A late correction of one cash gift: 100 元 more than first recorded.
    let gifts = json_of(&ok(&data, &["explain", "aid_given_fen", "--json"], None));
    let cash = gifts["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let p = e["position"].as_u64().unwrap().to_string();
            json_of(&ok(
                &data,
                &["log", "--from", &p, "--limit", "1", "--json"],
                None,
            ))
        })
        .find(|e| e["data"]["form"] == "cash")
        .expect("the demo has cash gifts");
    let mut corrected = cash["data"].clone();
    corrected["value_fen"] = json!(corrected["value_fen"].as_i64().unwrap() + 10_000);
    let correction_id = Uuid::now_v7();
    let correction = json!({"specversion": "1.0", "id": correction_id, "source": "/tests/demo_e2e", "type": "carelog.record.corrected",
                            "time": chrono::Utc::now().to_rfc3339(), "data": {"target_event_id": cash["id"], "reason": "receipt re-read",
                            "corrected_type": "carelog.aid.given", "corrected": corrected}});

    let void_id = Uuid::now_v7();
    let contact_id = Uuid::now_v7();
    let void = json!({"specversion": "1.0", "id": void_id, "source": "/tests/demo_e2e", "type": "carelog.record.voided",
                      "time": chrono::Utc::now().to_rfc3339(), "data": {"target_event_id": visit_id, "reason": "recorded twice"}});
    let contact = json!({"specversion": "1.0", "id": contact_id, "source": "/tests/demo_e2e", "type": "carelog.contact.recorded",
                         "time": old_contact["time"], "data": {"pairing_id": old_contact["data"]["pairing_id"], "channel": "phone",
                         "summary": "a call found in the paper log", "duration_minutes": 5}});
    let acks = ok(
        &data,
        &["append"],
        Some(&format!("{void}\n{contact}\n{correction}\n")),
    );
    let acks: Vec<Value> = acks.lines().map(json_of).collect();
    let (void_position, contact_position, correction_position) = (
        acks[0]["position"].as_u64().unwrap(),
        acks[1]["position"].as_u64().unwrap(),
        acks[2]["position"].as_u64().unwrap(),
    );

    let checked = run(&data, &["claims", "check", "--json"], None);
    assert_eq!(checked.status.code(), Some(1), "{}", out(&checked));
    let checked = json_of(&out(&checked));
    assert_eq!(checked["all_hold"], false);
    let claims = checked["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 27);
    for c in claims {
        let metric = c["metric"].as_str().unwrap();
        // (kind, what it explains, count, [(id, position)])
        let reasons: Vec<Reason> = c["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().to_string(),
                    r["explains"].as_str().unwrap().to_string(),
                    r["count"].as_u64().unwrap(),
                    r["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| {
                            (
                                e["id"].as_str().unwrap().to_string(),
                                e["position"].as_u64().unwrap(),
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        // The late changes came after the report: the unit reported what was on record.
        if c["verdict"] == "differs" {
            assert_eq!(c["difference"], 0, "{metric}: {c}");
            assert_eq!((&c["explained"], &c["unexplained"]), (&json!(0), &json!(0)));
        }
        match metric {
            "home_visits" => {
                assert_eq!(c["verdict"], "differs");
                assert_eq!(
                    (c["claimed"].as_i64(), c["recorded_now"].as_i64()),
                    (Some(212), Some(211))
                );
                assert_eq!(c["recorded_then"], 212);
                assert_eq!(
                    reasons,
                    [(
                        "voided".to_string(),
                        "since_report".to_string(),
                        1,
                        vec![(void_id.to_string(), void_position)]
                    )]
                );
            }
            "contacts" => {
                assert_eq!(c["verdict"], "differs");
                assert_eq!(
                    (c["claimed"].as_i64(), c["recorded_now"].as_i64()),
                    (Some(374), Some(375))
                );
                assert_eq!(c["recorded_then"], 374);
                assert_eq!(
                    reasons,
                    [(
                        "recorded_after_report".to_string(),
                        "since_report".to_string(),
                        1,
                        vec![(contact_id.to_string(), contact_position)]
                    )]
                );
            }
            "aid_given_fen" => {
                assert_eq!(c["verdict"], "differs");
                assert_eq!(
                    (c["claimed"].as_i64(), c["recorded_now"].as_i64()),
                    (Some(7_040_400), Some(7_050_400))
                );
                assert_eq!(c["recorded_then"], 7_040_400);
                assert_eq!(
                    reasons,
                    [(
                        "corrected".to_string(),
                        "since_report".to_string(),
                        1,
                        vec![(correction_id.to_string(), correction_position)]
                    )]
                );
            }
            _ => {
                assert_eq!(c["verdict"], "holds", "{metric}: {c}");
                assert!(reasons.is_empty(), "{metric}: {c}");
            }
        }
    }
    eprintln!(
        "demo e2e: demo {:.1} s, report and claims {:.1} s, total {:.1} s",
        after_demo.as_secs_f64(),
        (after_claims - after_demo).as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
