//! Filing claims (issue 19 item 1): `claims file` and `claims import` through the binary, and
//! `POST /v1/claims` through a real client. Each refusal names its field (and a CSV's line), and
//! the store's head is the same after it.

mod http_support;

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use http_support::*;

/// Runs the binary: (exit code, stdout, stderr).
fn run(data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run carelog");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn head(data: &Path) -> u64 {
    let d: Value = serde_json::from_str(&cli(data, &["digest", "--json"])).expect("digest JSON");
    d["position"].as_u64().expect("position")
}

fn checks(data: &Path) -> Vec<Value> {
    let (_, out, err) = run(data, &["claims", "check", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    v["claims"].as_array().expect("claims").clone()
}

/// Files one claim of `contacts` in 2024 (the programme records none) with `comparison`.
fn file_contacts(data: &Path, value: &str, comparison: &str) -> Value {
    let out = cli(
        data,
        &[
            "claims",
            "file",
            "--metric",
            "contacts",
            "--period",
            "2024-01-01..2024-12-31",
            "--value",
            value,
            "--comparison",
            comparison,
            "--reported-on",
            "2024-06-30",
            "--source",
            "county report",
            "--json",
        ],
    );
    serde_json::from_str(&out).expect("filed claim JSON")
}

#[test]
fn a_filed_claim_is_checked_and_at_most_is_honoured() {
    let store = Store::new();
    let before = head(&store.data);
    let at_most = file_contacts(&store.data, "5", "at_most");
    let exactly = file_contacts(&store.data, "5", "exactly");
    assert_eq!(head(&store.data), before + 2, "one event a claim");
    assert_eq!(at_most["position"].as_u64(), Some(before + 1), "{at_most}");
    assert_eq!(at_most["comparison"], "at_most");
    let checks = checks(&store.data);
    let verdict = |filed: &Value| {
        let c = checks
            .iter()
            .find(|c| c["claim_id"] == filed["claim_id"])
            .unwrap_or_else(|| panic!("claim {filed} not in the check"));
        assert_eq!(c["claimed"], 5);
        assert_eq!(c["metric"], "contacts");
        c["verdict"].as_str().expect("verdict").to_string()
    };
    // The records hold no contacts: 0 is at most 5, and not exactly 5.
    assert_eq!(verdict(&at_most), "holds");
    assert_eq!(verdict(&exactly), "differs");

    let (code, out, err) = run(
        &store.data,
        &[
            "claims",
            "file",
            "--metric",
            "home_visits",
            "--period",
            "2024-01-01..2024-06-30",
            "--value",
            "3",
            "--scope",
            &store.p.county_a.to_string(),
            "--reported-on",
            "2024-07-01",
            "--source",
            "half-year report",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("filed claim")
            && out.contains("home_visits")
            && out.contains(&store.p.county_a.to_string()),
        "the text says what was filed: {out}"
    );
}

#[test]
fn each_bad_field_is_named_and_nothing_is_written() {
    let store = Store::new();
    let before = head(&store.data);
    let unknown_unit = uuid::Uuid::now_v7().to_string();
    let base = [
        ("--metric", "contacts"),
        ("--period", "2024-01-01..2024-12-31"),
        ("--value", "5"),
        ("--reported-on", "2024-06-30"),
        ("--source", "county report"),
    ];
    let cases: &[(&str, &str, &str)] = &[
        ("--metric", "home_visitz", "field metric"),
        ("--period", "2024-12-31..2024-01-01", "field period_to"),
        ("--period", "2024-01-01", "field period"),
        ("--period", "2024-01-01..2024-13-01", "field period_to"),
        ("--value", "-1", "field value"),
        ("--value", "2.5", "field value"),
        ("--value", "1000000000001", "field value"),
        ("--reported-on", "2999-01-01", "field reported_on"),
        ("--source", " ", "field source"),
        ("--comparison", "about", "field comparison"),
        ("--scope", "not-a-uuid", "field scope"),
        ("--scope", &unknown_unit, "field scope"),
    ];
    for (flag, bad, named) in cases {
        let mut args: Vec<&str> = vec!["claims", "file"];
        let mut replaced = false;
        for (f, v) in base {
            args.push(f);
            if f == *flag {
                args.push(bad);
                replaced = true;
            } else {
                args.push(v);
            }
        }
        if !replaced {
            args.push(flag);
            args.push(bad);
        }
        let (code, _, err) = run(&store.data, &args);
        assert_eq!(code, 2, "{flag} {bad}: {err}");
        assert!(
            err.contains(named),
            "{flag} {bad}: expected {named:?} in {err}"
        );
        assert!(err.contains("nothing was written"), "{err}");
    }
    let (_, _, err) = run(
        &store.data,
        &[
            "claims",
            "file",
            "--metric",
            "nope",
            "--period",
            "2024-01-01..2024-12-31",
            "--value",
            "1",
            "--reported-on",
            "2024-06-30",
            "--source",
            "x",
        ],
    );
    assert!(
        err.contains("home_visits") && err.contains("contacts"),
        "an unknown metric lists the known ones: {err}"
    );
    assert_eq!(head(&store.data), before, "the head after the refusals");
}

#[test]
fn a_csv_is_filed_whole_or_not_at_all() {
    let store = Store::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let county = store.p.county_a;
    let good = format!(
        "metric,period_from,period_to,value,comparison,scope,reported_on,source\n\
         contacts,2024-01-01,2024-12-31,5,at_most,,2024-06-30,\"report, page 3\"\n\
         home_visits,2024-01-01,2024-06-30,2,exactly,{county},2024-07-01,\"the \"\"B\"\" table\"\n"
    );
    let bad = "metric,period_from,period_to,value,reported_on,source\n\
               contacts,2024-01-01,2024-12-31,5,2024-06-30,report\n\
               contacts,2024-01-01,2024-12-31,-7,2024-06-30,report\n\
               contacts,2024-01-01,2024-12-31,9,2024-06-30,report\n";
    let bad_path = dir.path().join("bad.csv");
    std::fs::write(&bad_path, bad).expect("write");
    let before = head(&store.data);
    let (code, out, err) = run(
        &store.data,
        &["claims", "import", bad_path.to_str().expect("utf-8")],
    );
    assert_eq!(code, 2, "{out} {err}");
    assert!(err.contains("line 3: field value"), "{err}");
    assert!(err.contains("nothing of the file was written"), "{err}");
    assert_eq!(
        head(&store.data),
        before,
        "the good row before it is not written"
    );

    // A rule only the domain knows (the scope must be a unit) is named with its line too.
    let unknown = uuid::Uuid::now_v7();
    let bad_scope = format!(
        "metric,period_from,period_to,value,scope,reported_on,source\n\
         contacts,2024-01-01,2024-12-31,5,,2024-06-30,report\n\
         contacts,2024-01-01,2024-12-31,5,,2024-06-30,report\n\
         contacts,2024-01-01,2024-12-31,5,{unknown},2024-06-30,report\n"
    );
    std::fs::write(&bad_path, bad_scope).expect("write");
    let (code, _, err) = run(
        &store.data,
        &["claims", "import", bad_path.to_str().expect("utf-8")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 4: field scope"), "{err}");
    assert_eq!(head(&store.data), before);

    let good_path = dir.path().join("good.csv");
    std::fs::write(&good_path, good).expect("write");
    let out = cli(
        &store.data,
        &[
            "claims",
            "import",
            good_path.to_str().expect("utf-8"),
            "--json",
        ],
    );
    let filed: Value = serde_json::from_str(&out).expect("JSON");
    let filed = filed.as_array().expect("an array");
    assert_eq!(filed.len(), 2);
    assert_eq!(filed[0]["source"], "report, page 3");
    assert_eq!(filed[1]["source"], "the \"B\" table");
    assert_eq!(filed[1]["scope"], county.to_string());
    assert_eq!(head(&store.data), before + 2);
    let checks = checks(&store.data);
    for f in filed {
        assert!(
            checks.iter().any(|c| c["claim_id"] == f["claim_id"]),
            "{f} is in the claims check"
        );
    }
}

fn claim(scope: Option<uuid::Uuid>) -> Value {
    json!({"metric": "contacts", "period_from": "2024-01-01", "period_to": "2024-12-31",
           "value": 4, "comparison": "at_least", "scope": scope,
           "reported_on": "2024-06-30", "source": "county report"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_filed_over_http_by_admins_and_supervisors_within_their_scope() {
    let store = Store::new();
    let server = store.start();
    let before = server.head(&store.admin).await;

    let (status, body) = server
        .post(
            "/v1/claims",
            &store.admin,
            &json!([claim(None), claim(Some(store.p.county_b))]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let filed = body["claims"].as_array().expect("claims");
    assert_eq!(filed.len(), 2);
    assert_eq!(filed[0]["position"].as_u64(), Some(before + 1));
    assert_eq!(filed[1]["position"].as_u64(), Some(before + 2));
    assert!(filed[1]["claim_id"].as_str().is_some());
    let (_, check) = server.get("/v1/claims", Some(&store.auditor)).await;
    assert!(
        check["claims"]
            .as_array()
            .expect("claims")
            .iter()
            .any(|c| c["claim_id"] == filed[0]["claim_id"]),
        "{check}"
    );
    let head = server.head(&store.admin).await;

    let (status, body) = server
        .post("/v1/claims", &store.auditor, &claim(None))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = server
        .post("/v1/claims", &store.recorder_a, &claim(None))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A supervisor scoped to county A: its county, yes; county B or the whole programme, no.
    let (status, body) = server
        .post(
            "/v1/claims",
            &store.scoped_supervisor,
            &claim(Some(store.p.county_b)),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_of(&body).1, "unit_scope");
    let (status, _) = server
        .post("/v1/claims", &store.scoped_supervisor, &claim(None))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        server.head(&store.admin).await,
        head,
        "nothing written on a 403"
    );
    let (status, body) = server
        .post(
            "/v1/claims",
            &store.scoped_supervisor,
            &claim(Some(store.p.county_a)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // 422 names the field and the claim's index; nothing of the array is written.
    let head = server.head(&store.admin).await;
    let mut bad = claim(None);
    bad["metric"] = json!("visits_galore");
    let (status, body) = server
        .post("/v1/claims", &store.admin, &json!([claim(None), bad]))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body).0.as_deref(), Some("metric"));
    assert_eq!(body["error"]["index"], 1);
    let mut late = claim(None);
    late["reported_on"] = json!("2999-01-01");
    let (status, body) = server.post("/v1/claims", &store.admin, &late).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body).0.as_deref(), Some("reported_on"));
    let mut negative = claim(None);
    negative["value"] = json!(-3);
    let (status, body) = server.post("/v1/claims", &store.admin, &negative).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body).0.as_deref(), Some("value"));
    let mut typo = claim(None);
    typo["value"] = json!("many");
    let (status, body) = server.post("/v1/claims", &store.admin, &typo).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body).0.as_deref(), Some("value"));
    assert_eq!(
        server.head(&store.admin).await,
        head,
        "nothing written on a refusal"
    );
}
