//! Money sums never wrap: fed events whose sum overflows an i64 of fen (which the per-event cap
//! keeps a log from reaching short of ~92 billion events, so the projections are fed directly),
//! every projection that adds money says the sum overflowed instead of giving a number.

use carelog::domain::events::{AidForm, AidGivenV1, AidProgramme, StudentAidPaidV1};
use carelog::domain::{DomainEvent, Money};
use carelog::projection::{AnyProjection, EventView, Figure, PairingBook, Query};
use carelog::projections::registry;
use carelog::time::parse_instant;
use uuid::Uuid;

const HALF_AND_ONE: i64 = i64::MAX / 2 + 1;

fn projection(name: &str) -> Box<dyn AnyProjection> {
    registry()
        .into_iter()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no projection {name}"))
}

/// Folds `events` into a fresh state of `name`; returns its view and figures.
fn fold(name: &str, events: &[DomainEvent]) -> (serde_json::Value, Vec<Figure>) {
    let p = projection(name);
    let mut state = p.new_state();
    let book = PairingBook::default();
    let at = parse_instant("2023-05-08T10:00:00+08:00").expect("a time");
    for (i, event) in events.iter().enumerate() {
        let view = EventView {
            position: i as u64 + 1,
            event_id: Uuid::now_v7(),
            occurred_at: &at,
            occurred_on: carelog::domain::Date::parse("2023-05-08").expect("a date"),
            recorded_at: &at,
            recorded_by: "tester",
            event,
            book: &book,
        };
        p.apply(state.as_mut(), &view);
    }
    let q = Query::default();
    (
        p.query(state.as_ref(), &book, &q),
        p.figures(state.as_ref(), &book, &q),
    )
}

fn cash(fen: i64) -> DomainEvent {
    DomainEvent::AidGiven(AidGivenV1 {
        pairing_id: Uuid::now_v7(),
        form: AidForm::Cash,
        value_fen: Money(fen),
        fund_source: "one source".into(),
        item: None,
        quantity: None,
        unit_value_fen: None,
        receipt_ref: "R".into(),
    })
}

fn paid(fen: i64) -> DomainEvent {
    DomainEvent::StudentAidPaid(StudentAidPaidV1 {
        pupil_id: Uuid::now_v7(),
        programme: AidProgramme::ForOrphans,
        term: "2023-spring".into(),
        amount_fen: Money(fen),
    })
}

fn figure<'a>(figures: &'a [Figure], metric: &str) -> &'a Figure {
    figures
        .iter()
        .find(|f| f.metric == metric)
        .unwrap_or_else(|| panic!("no figure {metric}"))
}

#[test]
fn funds_and_activity_totals_say_an_overflowed_sum_overflowed() {
    let (view, _) = fold("funds", &[cash(HALF_AND_ONE)]);
    assert_eq!(view["total_fen"], HALF_AND_ONE);
    assert!(view.get("overflowed").is_none(), "{view}");

    let (view, _) = fold("funds", &[cash(HALF_AND_ONE), cash(HALF_AND_ONE)]);
    assert!(
        view["total_fen"].is_null(),
        "never a wrapped number: {view}"
    );
    assert!(view["cash_fen"].is_null(), "{view}");
    assert!(view["by_fund_source_fen"]["one source"].is_null(), "{view}");
    assert_eq!(view["conservation_holds"], false);
    let named: Vec<&str> = view["overflowed"]
        .as_array()
        .expect("the overflowed sums are named")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        named.contains(&"total_fen") && named.contains(&"cash_fen"),
        "{named:?}"
    );

    let (view, figures) = fold("activity_totals", &[cash(HALF_AND_ONE), cash(HALF_AND_ONE)]);
    let aid = figure(&figures, "aid_given_fen");
    assert!(aid.overflowed, "{aid:?}");
    assert_eq!(aid.events.len(), 2, "the events behind it are still listed");
    assert!(view["totals"]["aid_given_fen"].is_null(), "{view}");
    assert!(!figure(&figures, "contacts").overflowed);
}

#[test]
fn student_aid_says_an_overflowed_sum_overflowed() {
    let (_, figures) = fold("student_aid", &[paid(HALF_AND_ONE)]);
    let money = figure(&figures, "student_aid_paid_fen");
    assert_eq!((money.overflowed, money.value), (false, HALF_AND_ONE));

    let (view, figures) = fold("student_aid", &[paid(HALF_AND_ONE), paid(HALF_AND_ONE)]);
    let money = figure(&figures, "student_aid_paid_fen");
    assert!(money.overflowed, "{money:?}");
    let people = figure(&figures, "student_aid_orphans_person_times");
    assert_eq!((people.overflowed, people.value), (false, 2));
    assert!(view["paid_fen"].is_null(), "{view}");
    assert!(
        view["by_programme_and_term"]["for_orphans"]["2023-spring"]["paid_fen"].is_null(),
        "{view}"
    );
    assert_eq!(view["person_times"], 2);
}
