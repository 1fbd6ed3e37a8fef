//! The export line: an event's CloudEvents JSON (what `append` takes back) with `leaf`, the
//! base64 of exactly the bytes its leaf hash covers (`docs/leaf.md`), so that anyone can
//! recompute every leaf hash and root without carelog. `carelog export`, `GET /v1/export` and
//! `carelog-audit` all make it here, and every other printed event (`log --json`, the API's
//! reads, subscriptions) is [`to_cloudevent`]: the domain parses events, this layer prints them
//! with the log's attributes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::domain::DomainEvent;
use crate::domain::cloudevent;
use crate::log::{LogError, RecordedEvent};

/// The export line of a recorded event.
pub fn export_line(recorded: &RecordedEvent, event: &DomainEvent) -> Result<Value, LogError> {
    let mut line = to_cloudevent(recorded, event);
    line["leaf"] = Value::String(BASE64.encode(recorded.canonical_bytes()?));
    Ok(line)
}

/// The CloudEvents form of a recorded event with its decoded domain event.
pub fn to_cloudevent(recorded: &RecordedEvent, event: &DomainEvent) -> Value {
    let mut obj = Map::new();
    obj.insert("specversion".into(), json!("1.0"));
    obj.insert("id".into(), json!(recorded.event_id));
    obj.insert("source".into(), json!("/carelog"));
    obj.insert("type".into(), json!(event.event_type()));
    obj.insert("subject".into(), json!(recorded.stream));
    obj.insert("time".into(), json!(recorded.occurred_at.to_rfc3339()));
    obj.insert("datacontenttype".into(), json!("application/json"));
    obj.insert("schemaversion".into(), json!(event.schema_version()));
    obj.insert("position".into(), json!(recorded.position));
    obj.insert("streamversion".into(), json!(recorded.stream_version));
    obj.insert(
        "recordedat".into(),
        json!(recorded.recorded_at.to_rfc3339()),
    );
    obj.insert("recordedby".into(), json!(recorded.recorded_by));
    if let Some(c) = recorded.correlation_id {
        obj.insert("correlationid".into(), json!(c));
    }
    if let Some(c) = recorded.causation_id {
        obj.insert("causationid".into(), json!(c));
    }
    obj.insert("leafhash".into(), json!(hex::encode(recorded.leaf_hash)));
    obj.insert("chainhash".into(), json!(hex::encode(recorded.chain_hash)));
    obj.insert("data".into(), cloudevent::event_data(event));
    Value::Object(obj)
}
