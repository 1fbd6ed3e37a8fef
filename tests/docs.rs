//! docs/events.md is generated from the event type table: it must match the code.

#[test]
fn events_reference_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.md");
    let generated = carelog::domain::cloudevent::events_reference_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/events.md is stale: run `UPDATE_DOCS=1 cargo test --test docs` (or `carelog events --markdown > docs/events.md`)"
    );
}

#[test]
fn every_documented_example_is_accepted_by_the_parser() {
    for example in carelog::domain::DomainEvent::examples() {
        let at = carelog::time::parse_instant("2023-05-08T10:00:00+08:00").unwrap();
        let mut line =
            carelog::domain::cloudevent::to_input_cloudevent(uuid::Uuid::now_v7(), &example, &at);
        line["id"] = serde_json::json!(uuid::Uuid::now_v7());
        let parsed = carelog::domain::cloudevent::parse_value(line)
            .unwrap_or_else(|e| panic!("{}: {e}", example.event_type()));
        assert_eq!(parsed.event, example);
    }
}
