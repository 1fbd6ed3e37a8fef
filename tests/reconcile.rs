//! The claims check reconciles: `difference` = claimed − recorded_then (as of the end of the
//! reported-on day), `explained + unexplained = |difference|`, reasons by kind only where they
//! move the figure toward the claim, scopes that count only their unit, holds/differs per
//! comparison. Through the library, with kept recording times; the text output and a scoped
//! supervisor over HTTP through the binary.

mod http_support;

use carelog::app::report::ClaimCheck;
use carelog::app::{App, Keep};
use carelog::domain::cloudevent::{IncomingEvent, parse_value};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

/// One event happened on `day` (10:00 Shanghai) and recorded at `recorded` (RFC 3339).
fn ev(event_type: &str, day: &str, recorded: &str, data: Value) -> IncomingEvent {
    let v = json!({
        "specversion": "1.0",
        "id": Uuid::now_v7().to_string(),
        "source": "/tests/reconcile",
        "type": format!("carelog.{event_type}"),
        "time": format!("{day}T10:00:00+08:00"),
        "recordedat": recorded,
        "data": data,
    });
    parse_value(v.clone()).unwrap_or_else(|e| panic!("test event does not parse: {e}\n{v}"))
}

/// City → county A (→ township A1) and county B; a cadre and a person paired in each county.
struct Store {
    _dir: TempDir,
    app: App,
    county_a: Uuid,
    pairing_a: Uuid,
    pairing_b: Uuid,
}

const REGISTERED: &str = "2023-01-05T12:00:00+08:00";

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(dir.path(), true).unwrap();
        let [
            city,
            county_a,
            township_a,
            county_b,
            cadre_a,
            cadre_b,
            person_a,
            person_b,
            pairing_a,
            pairing_b,
        ] = std::array::from_fn(|_| Uuid::now_v7());
        let r = REGISTERED;
        let unit = |id: Uuid, name: &str, kind: &str, parent: Option<Uuid>| {
            ev(
                "unit.registered",
                "2023-01-01",
                r,
                json!({"unit_id": id, "name": name, "kind": kind, "parent_id": parent, "official_code": null}),
            )
        };
        let cadre = |id: Uuid, unit: Uuid| {
            ev(
                "staff.registered",
                "2023-01-01",
                r,
                json!({"person_id": id, "name": "张明", "role": "cadre", "unit_id": unit, "since": "2023-01-01"}),
            )
        };
        let person = |id: Uuid, unit: Uuid| {
            ev(
                "recipient.registered",
                "2023-01-02",
                r,
                json!({"recipient_id": id, "kind": "person", "name": "某某", "unit_id": unit, "birth_date": "1950-05-05"}),
            )
        };
        let certify = |id: Uuid| {
            ev(
                "category.certified",
                "2023-01-02",
                r,
                json!({"recipient_id": id, "category": "severely_disabled", "certified_by": "县民政局", "from": "2022-01-01", "to": null}),
            )
        };
        let pair = |id: Uuid, cadre: Uuid, person: Uuid| {
            ev(
                "pairing.established",
                "2023-01-03",
                r,
                json!({"pairing_id": id, "cadre_id": cadre, "recipient_id": person, "on": "2023-01-03"}),
            )
        };
        let store = Store {
            _dir: dir,
            app,
            county_a,
            pairing_a,
            pairing_b,
        };
        store.append(vec![
            unit(city, "庆阳市教育局", "city_bureau", None),
            unit(county_a, "环县", "county", Some(city)),
            unit(township_a, "毛井乡", "township", Some(county_a)),
            unit(county_b, "华池县", "county", Some(city)),
            cadre(cadre_a, county_a),
            cadre(cadre_b, county_b),
            person(person_a, township_a),
            certify(person_a),
            person(person_b, county_b),
            certify(person_b),
            pair(pairing_a, cadre_a, person_a),
            pair(pairing_b, cadre_b, person_b),
        ]);
        store
    }

    fn append(&self, events: Vec<IncomingEvent>) -> Vec<Uuid> {
        let ids = events.iter().map(|e| e.id.unwrap()).collect();
        let keep = Keep {
            recorded_at: true,
            ..Keep::default()
        };
        self.app
            .append(events, "tester", keep, &|_, _| Ok(()))
            .unwrap_or_else(|e| panic!("test events should be accepted: {e}"));
        ids
    }

    /// `n` home visits of a pairing, one a day from `first` (a 2023 day of the year), recorded
    /// at `recorded`.
    fn visits(&self, pairing: Uuid, first: u32, n: u32, recorded: &str) -> Vec<Uuid> {
        let events = (0..n)
            .map(|i| {
                let day = chrono::NaiveDate::from_yo_opt(2023, first + i).unwrap();
                ev(
                    "visit.recorded",
                    &day.to_string(),
                    recorded,
                    json!({"pairing_id": pairing, "trip": "own", "group_trip_id": null, "companions": [], "observations": format!("visit {i}")}),
                )
            })
            .collect();
        self.append(events)
    }

    /// A home-visit claim for 2023-01-01..2023-06-30, reported on 2023-07-05 (recorded then).
    fn claim(&self, value: i64, comparison: &str, scope: Option<Uuid>) -> Uuid {
        let claim_id = Uuid::now_v7();
        self.append(vec![ev(
            "claim.filed",
            "2023-07-05",
            "2023-07-05T15:00:00+08:00",
            json!({"claim_id": claim_id, "metric": "home_visits", "scope_unit_id": scope,
                   "period_from": "2023-01-01", "period_to": "2023-06-30", "value": value,
                   "comparison": comparison, "source_document": "半年报", "reported_on": "2023-07-05"}),
        )]);
        claim_id
    }

    fn check(&self, claim_id: Uuid) -> ClaimCheck {
        self.app
            .claims_check(&mut |_, _| {})
            .unwrap()
            .into_iter()
            .find(|c| c.claim_id == claim_id)
            .expect("the claim is checked")
    }
}

/// (kind, explains, count) of each reason.
fn kinds(c: &ClaimCheck) -> Vec<(&'static str, &'static str, usize)> {
    c.reasons
        .iter()
        .map(|r| (r.kind, r.explains, r.count))
        .collect()
}

fn closes(c: &ClaimCheck) {
    let d = c.difference.expect("a difference").abs();
    assert_eq!(c.explained + c.unexplained, d, "{c:?}");
    assert!(c.explained <= d, "{c:?}");
}

#[test]
fn a_claim_above_the_records_states_what_no_record_supports() {
    let s = Store::new();
    s.visits(s.pairing_a, 10, 60, "2023-06-30T20:00:00+08:00");
    s.visits(s.pairing_b, 20, 38, "2023-06-30T20:00:00+08:00");
    let claim = s.claim(150, "exactly", None);
    let c = s.check(claim);
    assert_eq!(
        (c.claimed, c.recorded_then, c.recorded_now, c.difference),
        (150, Some(98), Some(98), Some(52))
    );
    assert_eq!(c.verdict, "differs");
    assert_eq!((c.explained, c.unexplained), (0, 52));
    assert!(c.reasons.is_empty(), "{:?}", c.reasons);
    assert_eq!(
        c.unexplained_text.as_deref(),
        Some("52 of the 150 claimed home visits are in no record")
    );
    closes(&c);
}

#[test]
fn voided_and_near_period_events_explain_a_claim_above_capped_at_the_difference() {
    let s = Store::new();
    let ids = s.visits(s.pairing_a, 10, 10, "2023-06-30T20:00:00+08:00");
    // Three visits in July (within 31 days of the period), one in September (too far).
    s.visits(s.pairing_a, 182, 3, "2023-07-04T20:00:00+08:00");
    s.visits(s.pairing_a, 250, 1, "2023-07-04T20:00:00+08:00");
    s.append(vec![ev(
        "record.voided",
        "2023-07-01",
        "2023-07-04T21:00:00+08:00",
        json!({"target_event_id": ids[0], "reason": "recorded twice"}),
    )]);
    // Records 9; claimed 12: the void (1) and the near-period visits (3) could explain 4, capped at 3.
    let claim = s.claim(12, "exactly", None);
    let c = s.check(claim);
    assert_eq!((c.recorded_then, c.difference), (Some(9), Some(3)));
    assert_eq!(
        kinds(&c),
        [
            ("voided", "difference", 1),
            ("near_period", "difference", 3)
        ]
    );
    assert!(
        c.reasons[0].events[0].detail.contains(&ids[0].to_string()),
        "{:?}",
        c.reasons[0]
    );
    assert_eq!((c.explained, c.unexplained), (3, 0));
    assert_eq!(c.unexplained_text, None);
    closes(&c);

    // A claim below the records: voids and near-period events cannot bring it closer.
    let below = s.claim(5, "exactly", None);
    let c = s.check(below);
    assert_eq!(c.difference, Some(-4));
    assert_eq!(kinds(&c), []);
    assert_eq!((c.explained, c.unexplained), (0, 4));
    assert_eq!(
        c.unexplained_text.as_deref(),
        Some("4 of the 9 recorded home visits are not in the claim")
    );
    closes(&c);
}

#[test]
fn corrections_and_events_recorded_after_the_report_explain_their_side() {
    let s = Store::new();
    let ids = s.visits(s.pairing_a, 10, 5, "2023-06-30T20:00:00+08:00");
    s.append(vec![ev(
        "record.corrected",
        "2023-07-01",
        "2023-07-02T09:00:00+08:00",
        json!({"target_event_id": ids[1], "reason": "observations re-read",
               "corrected_type": "carelog.visit.recorded",
               "corrected": {"pairing_id": s.pairing_a, "trip": "own", "group_trip_id": null, "companions": [], "observations": "roof leaks"}}),
    )]);
    let claim = s.claim(7, "exactly", None);
    // Recorded after the reported-on day: now 6, then 5.
    let late = s.visits(s.pairing_a, 100, 1, "2023-07-08T09:00:00+08:00");
    let c = s.check(claim);
    assert_eq!(
        (c.recorded_then, c.recorded_now, c.difference),
        (Some(5), Some(6), Some(2))
    );
    assert_eq!(
        kinds(&c),
        [
            ("corrected", "difference", 1),
            ("recorded_after_report", "since_report", 1)
        ]
    );
    let after = &c.reasons[1].events[0];
    assert_eq!(after.id, late[0]);
    assert!(
        after
            .recorded_at
            .as_deref()
            .unwrap()
            .starts_with("2023-07-08")
    );
    assert!(after.time.as_deref().unwrap().starts_with("2023-04-10"));
    // Only the correction bears on the difference.
    assert_eq!((c.explained, c.unexplained), (1, 1));
    closes(&c);
}

#[test]
fn a_county_claim_counts_only_that_county_and_explains_the_rest_as_out_of_scope() {
    let s = Store::new();
    s.visits(s.pairing_a, 10, 4, "2023-06-30T20:00:00+08:00");
    s.visits(s.pairing_b, 10, 30, "2023-06-30T20:00:00+08:00");
    let for_a = s.claim(4, "exactly", Some(s.county_a));
    let c = s.check(for_a);
    assert_eq!(c.scope_unit_id, Some(s.county_a));
    assert_eq!((c.recorded_then, c.recorded_now), (Some(4), Some(4)));
    assert_eq!(c.verdict, "holds");

    // County A reporting the whole programme's visits as its own.
    let inflated = s.claim(34, "exactly", Some(s.county_a));
    let c = s.check(inflated);
    assert_eq!((c.recorded_then, c.difference), (Some(4), Some(30)));
    assert_eq!(kinds(&c), [("out_of_scope", "difference", 30)]);
    assert_eq!(
        c.reasons[0].events.len(),
        20,
        "the list is capped, the count is not"
    );
    assert_eq!((c.explained, c.unexplained), (30, 0));
    closes(&c);

    // The same figure unscoped is the whole programme's.
    let whole = s.claim(34, "exactly", None);
    assert_eq!(s.check(whole).verdict, "holds");
}

#[test]
fn holds_and_differs_honour_the_comparison() {
    let s = Store::new();
    s.visits(s.pairing_a, 10, 10, "2023-06-30T20:00:00+08:00");
    let cases = [
        (10, "exactly", "holds"),
        (9, "exactly", "differs"),
        (11, "exactly", "differs"),
        (10, "at_least", "holds"),
        (9, "at_least", "holds"),
        (11, "at_least", "differs"),
        (9, "more_than", "holds"),
        (10, "more_than", "differs"),
    ];
    let ids: Vec<Uuid> = cases
        .iter()
        .map(|(v, comparison, _)| s.claim(*v, comparison, None))
        .collect();
    for ((value, comparison, verdict), id) in cases.iter().zip(ids) {
        let c = s.check(id);
        assert_eq!(c.verdict, *verdict, "{value} {comparison}");
        closes(&c);
    }
}

#[test]
fn the_text_output_states_the_unexplained_remainder() {
    let s = Store::new();
    s.visits(s.pairing_a, 10, 60, "2023-06-30T20:00:00+08:00");
    s.visits(s.pairing_b, 20, 38, "2023-06-30T20:00:00+08:00");
    s.claim(150, "exactly", None);
    let data = s._dir.path().to_path_buf();
    drop(s.app);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carelog"))
        .arg("--data")
        .arg(&data)
        .args(["claims", "check"])
        .env_remove("CARELOG_DATA")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("52 of the 150 claimed home visits are in no record"),
        "{text}"
    );
    assert!(
        text.contains("difference 52: 0 explained, 52 unexplained"),
        "{text}"
    );
}

/// Over HTTP: a supervisor scoped to county A sees only county A's claim, and its figure counts
/// only county A's contacts; an unscoped supervisor sees county B's claim counting B's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_supervisor_sees_and_checks_only_its_scope() {
    use http_support::{Store as HttpStore, contact};
    let store = HttpStore::new();
    let p = &store.p;
    let server = store.start();
    for (pairing, n) in [(p.pairing_a, 2), (p.pairing_b, 3)] {
        for _ in 0..n {
            let (status, body) = server
                .post("/v1/events", &store.admin, &contact(pairing))
                .await;
            assert!(status.is_success(), "{body}");
        }
    }
    let recorded = |claims: &Value, id: Uuid| {
        claims["claims"]
            .as_array()
            .expect("claims")
            .iter()
            .find(|c| c["claim_id"] == json!(id))
            .map(|c| c["recorded_now"].clone())
    };
    let (status, scoped) = server
        .get("/v1/claims", Some(&store.scoped_supervisor))
        .await;
    assert_eq!(status.as_u16(), 200, "{scoped}");
    assert_eq!(scoped["scope_unit_id"], json!(p.county_a));
    assert_eq!(
        scoped["claims"].as_array().map(Vec::len),
        Some(1),
        "{scoped}"
    );
    assert_eq!(recorded(&scoped, p.claim_a), Some(json!(2)), "{scoped}");

    let (status, all) = server.get("/v1/claims", Some(&store.supervisor)).await;
    assert_eq!(status.as_u16(), 200, "{all}");
    assert_eq!(recorded(&all, p.claim_a), Some(json!(2)), "{all}");
    assert_eq!(recorded(&all, p.claim_b), Some(json!(3)), "{all}");
}
