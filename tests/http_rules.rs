//! The rules of issue 18 through a real client against the real binary: tokens expire, a token
//! of staff who left is refused (and its open stream ends), no token is granted to them, and a
//! teacher records only for their own school's pupils.

mod http_support;

use std::process::Command;
use std::time::Duration;

use carelog::app::access::token_hash;
use chrono::{FixedOffset, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use http_support::*;

/// Now, at +08:00, as RFC 3339.
fn now_text(plus_days: i64) -> String {
    let offset = FixedOffset::east_opt(8 * 3600).expect("+08:00");
    (Utc::now().with_timezone(&offset) + chrono::Duration::days(plus_days)).to_rfc3339()
}

/// A bearer string of this build's shape and the grant event that admits it.
fn grant(
    role: &str,
    person: Option<Uuid>,
    time: &str,
    expires_at: Option<&str>,
) -> (String, Value) {
    let id = Uuid::now_v7();
    let bearer = format!("clg1_{}_{}", id.simple(), "5a".repeat(32));
    let granted = event(
        "carelog.token.granted",
        time,
        json!({"token_id": id, "secret_sha256": token_hash(&bearer), "role": role,
               "person_id": person, "unit_id": null, "expires_at": expires_at}),
    );
    (bearer, granted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_naming_its_expiry_and_a_fresh_one_shows_when_it_expires() {
    let store = Store::new();
    // `--expires-in 1`: the JSON says when, a day from now.
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&store.data)
        .args([
            "token",
            "create",
            "--role",
            "auditor",
            "--expires-in",
            "1",
            "--json",
        ])
        .output()
        .expect("token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("json");
    let expires =
        chrono::DateTime::parse_from_rfc3339(created["expires_at"].as_str().expect("expires_at"))
            .expect("an RFC 3339 expiry");
    let left = expires.with_timezone(&Utc) - Utc::now();
    assert!(
        left > chrono::Duration::hours(23) && left <= chrono::Duration::hours(24),
        "expires in {left}"
    );
    let fresh = created["secret"].as_str().expect("secret").to_string();
    // Out of bounds: refused before anything is written.
    for days in ["0", "3651"] {
        let out = Command::new(BIN)
            .arg("--data")
            .arg(&store.data)
            .args(["token", "create", "--role", "auditor", "--expires-in", days])
            .output()
            .expect("token create");
        assert!(!out.status.success(), "--expires-in {days} accepted");
    }

    let server = store.start();
    let (status, _) = server.get("/v1/digest", Some(&fresh)).await;
    assert_eq!(status, StatusCode::OK);
    // A grant that ran out a day after it was made, long ago.
    let (expired, granted) = grant(
        "auditor",
        None,
        "2024-01-10T10:00:00+08:00",
        Some("2024-01-11T10:00:00+08:00"),
    );
    let (status, body) = server.post("/v1/events", &store.admin, &granted).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server.get("/v1/digest", Some(&expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (field, rule) = error_of(&body);
    assert_eq!(
        (field.as_deref(), rule.as_str()),
        (Some("authorization"), "expired_token")
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("expired at 2024-01-11"), "{message}");
    // A grant without an expiry (as every v1 grant reads) lives 90 days from the grant.
    let (old, granted) = grant("auditor", None, "2024-01-10T10:00:00+08:00", None);
    let (status, body) = server.post("/v1/events", &store.admin, &granted).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server.get("/v1/digest", Some(&old)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("expired at 2024-04-09"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_who_left_get_no_token_their_tokens_are_refused_and_their_streams_end() {
    let store = Store::new();
    let server = store.start();
    let p = &store.p;
    // An auditor's token that belongs to cadre A, following the log.
    let (follower, granted) = grant(
        "auditor",
        Some(p.cadre_a),
        &now_text(0),
        Some(&now_text(30)),
    );
    let (status, body) = server.post("/v1/events", &store.admin, &granted).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let head = server.head(&store.admin).await;
    let resp = server
        .client
        .get(server.url(&format!("/v1/subscribe?from={}", head + 1)))
        .bearer_auth(&follower)
        .send()
        .await
        .expect("subscribe");
    assert_eq!(resp.status(), StatusCode::OK);
    let reader = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut stream = resp.bytes_stream();
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(_) => return (text, true),
                Err(_) => return (text, false),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Recorder B's token works until cadre B leaves (a recorder may not read the digest: 403).
    let (status, _) = server.get("/v1/digest", Some(&store.recorder_b)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let today = &now_text(0)[..10];
    for cadre in [p.cadre_a, p.cadre_b] {
        let left = event(
            "carelog.staff.left",
            &now_text(0),
            json!({"person_id": cadre, "on": today, "reason": "transferred out of the programme"}),
        );
        let (status, body) = server.post("/v1/events", &store.admin, &left).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = server
        .post("/v1/events", &store.recorder_b, &contact(p.pairing_b))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_of(&body).1, "staff_left");
    let (status, body) = server.get("/v1/digest", Some(&follower)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_of(&body).1, "staff_left");

    // The open stream of cadre A's token ended, saying why, before it sent a thing.
    let (text, ended) = reader.await.expect("reader");
    assert!(ended, "the stream did not end: {text}");
    assert!(
        text.contains("staff_left"),
        "the stream says why it ended: {text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("id:")), "{text}");

    // A new recorder token for one who left: refused by the domain, naming the field and rule.
    let head = server.head(&store.admin).await;
    let (status, body) = server
        .post(
            "/v1/tokens",
            &store.admin,
            &json!({"role": "recorder", "person_id": p.cadre_b}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (field, rule) = error_of(&body);
    assert_eq!(
        (field.as_deref(), rule.as_str()),
        (Some("data.person_id"), "staff_left")
    );
    assert_eq!(server.head(&store.admin).await, head, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_records_care_plans_only_for_pupils_of_their_own_school() {
    let store = Store::new();
    let server = store.start();
    let p = &store.p;
    let [school_a, school_b, teacher, pupil_a, pupil_b] = std::array::from_fn(|_| Uuid::now_v7());
    let mut setup = vec![
        event(
            "carelog.unit.registered",
            SETUP_TIME,
            json!({"unit_id": school_a, "name": "庆城县第一小学", "kind": "school", "parent_id": p.county_a, "official_code": null}),
        ),
        event(
            "carelog.unit.registered",
            SETUP_TIME,
            json!({"unit_id": school_b, "name": "镇原县第二小学", "kind": "school", "parent_id": p.county_b, "official_code": null}),
        ),
        event(
            "carelog.staff.registered",
            SETUP_TIME,
            json!({"person_id": teacher, "name": "赵老师", "role": "teacher", "unit_id": school_a, "since": "2024-01-01"}),
        ),
    ];
    for (pupil, school) in [(pupil_a, school_a), (pupil_b, school_b)] {
        setup.push(event(
            "carelog.recipient.registered",
            SETUP_TIME,
            json!({"recipient_id": pupil, "kind": "person", "name": "小明", "unit_id": school, "birth_date": "2015-06-01"}),
        ));
        setup.push(event(
            "carelog.pupil.enrolled",
            SETUP_TIME,
            json!({"pupil_id": pupil, "school_id": school, "on": "2024-01-10"}),
        ));
    }
    let (status, body) = server.post("/v1/events", &store.admin, &json!(setup)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, created) = server
        .post(
            "/v1/tokens",
            &store.admin,
            &json!({"role": "recorder", "person_id": teacher}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let teacher_token = created["secret"].as_str().expect("secret").to_string();
    let plan = |pupil: Uuid| {
        event(
            "carelog.care_plan.opened",
            CONTACT_TIME,
            json!({"plan_id": Uuid::now_v7(), "pupil_id": pupil, "teacher_id": teacher, "scheme": "one_to_one",
                   "goals": "reading at grade level", "measures": "weekly tutoring", "next_review": "2024-03-01"}),
        )
    };
    let head = server.head(&store.admin).await;
    // Another county's pupil: 403 under the rule, naming nobody, nothing written.
    let (status, body) = server
        .post("/v1/events", &teacher_token, &plan(pupil_b))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_of(&body).1, "own_school_only", "{body}");
    let text = body.to_string();
    for id in [pupil_b, school_b, teacher, school_a] {
        assert!(!text.contains(&id.to_string()), "{text}");
    }
    assert_eq!(server.head(&store.admin).await, head, "nothing written");
    // Their own school's pupil: recorded.
    let (status, body) = server
        .post("/v1/events", &teacher_token, &plan(pupil_a))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(server.head(&store.admin).await, head + 1);
}
