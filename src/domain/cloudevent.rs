//! The CloudEvents 1.0 JSON form of an event: the input of `append` and `import`, the output of
//! `export`, the body of the HTTP API.
//!
//! ```json
//! {"specversion":"1.0","id":"018bd200-…","type":"carelog.contact.recorded",
//!  "source":"/carelog","time":"2023-05-01T09:30:00+08:00","data":{…}}
//! ```
//! `id` is optional on input (a UUIDv7 is generated). The log's own fields come back as
//! extension attributes on output: `subject` (the stream), `position`, `streamversion`,
//! `schemaversion`, `recordedat`, `recordedby`, `leafhash`, `chainhash`, and `correlationid` /
//! `causationid` when set. On input they are accepted (so an export can be appended again) and
//! ignored, except `recordedby` and `recordedat`, which the caller may choose to keep.
//! Two extensions are read on input only. `lateentryreason`: why an event is recorded past the
//! late-entry window (the app writes it as a `carelog.late_entry.noted` event right after it).
//! `expectedversion` (`"any"`, `"none"`, or the stream's
//! version n, as a number or a string of digits), the version the event's stream must be at
//! just before it (optimistic concurrency); a stream at another version refuses it.
//! A correction's `data` is `{"target_event_id", "reason", "corrected_type", "corrected"}` where
//! `corrected` is the corrected event's own `data`.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::events::{EventDecodeError, RecordCorrectedV1};
use super::{DomainEvent, stream_of};
use crate::codec::PayloadType;
use crate::expected::ExpectedVersion;
use crate::time::{self, Instant};

/// The attributes accepted at the top level of an input event.
const KNOWN_ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "type",
    "source",
    "time",
    "data",
    "datacontenttype",
    "subject",
    "position",
    "streamversion",
    "schemaversion",
    "recordedat",
    "recordedby",
    "leafhash",
    "chainhash",
    "leaf",
    "correlationid",
    "causationid",
    "expectedversion",
    "lateentryreason",
];

/// The event id shown in documented examples (a valid UUIDv7).
pub const EXAMPLE_EVENT_ID: Uuid = Uuid::from_u128(0x018b_d200_0000_7000_8000_0000_0000_00ff);

/// The longest late-entry reason (the domain's bound on any text).
pub const LATE_ENTRY_REASON_MAX_BYTES: usize = 4096;

/// The most bytes one JSON line may hold.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// A malformed event: the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {rule}")]
pub struct FormatError {
    pub field: String,
    pub rule: String,
}

fn bad<T>(field: impl Into<String>, rule: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError {
        field: field.into(),
        rule: rule.into(),
    })
}

/// An event as a caller sent it, parsed but not yet checked against the records.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    pub id: Option<Uuid>,
    pub event: DomainEvent,
    pub occurred_at: Instant,
    pub recorded_by: Option<String>,
    pub recorded_at: Option<Instant>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// The version the event's stream must be at just before it (None: any).
    pub expected_version: Option<ExpectedVersion>,
    /// Why it is recorded late (the `lateentryreason` extension).
    pub late_entry_reason: Option<String>,
}

impl IncomingEvent {
    /// An event the application makes itself: no id yet (one is generated), none of the
    /// envelope's optional attributes.
    pub fn new(event: DomainEvent, occurred_at: Instant) -> Self {
        Self {
            id: None,
            event,
            occurred_at,
            recorded_by: None,
            recorded_at: None,
            correlation_id: None,
            causation_id: None,
            expected_version: None,
            late_entry_reason: None,
        }
    }
}

/// The `expectedversion` extension: `"any"`, `"none"`, or a version as a number or digits.
fn expected_version_field(
    obj: &Map<String, Value>,
) -> Result<Option<ExpectedVersion>, FormatError> {
    const FIELD: &str = "expectedversion";
    const RULE: &str = "\"any\", \"none\", or the stream's version (a whole number, 0 for none)";
    let version = |n: u64| {
        if n == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(n)
        }
    };
    match obj.get(FIELD) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "any" => Ok(Some(ExpectedVersion::Any)),
            "none" => Ok(Some(ExpectedVersion::NoStream)),
            digits => match digits.parse::<u64>() {
                Ok(n) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(version(n))),
                _ => bad(FIELD, RULE),
            },
        },
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) => Ok(Some(version(n))),
            None => bad(FIELD, RULE),
        },
        Some(_) => bad(FIELD, RULE),
    }
}

fn string_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, FormatError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => bad(name, "must be a string"),
    }
}

fn uuid_field(obj: &Map<String, Value>, name: &str) -> Result<Option<Uuid>, FormatError> {
    match string_field(obj, name)? {
        None => Ok(None),
        Some(s) => Uuid::parse_str(s)
            .map(Some)
            .or_else(|e| bad(name, format!("not a UUID: {e}"))),
    }
}

/// Parses one JSON line.
pub fn parse_line(line: &str) -> Result<IncomingEvent, FormatError> {
    if line.len() > MAX_LINE_BYTES {
        return bad("line", format!("a line is at most {MAX_LINE_BYTES} bytes"));
    }
    let value: Value =
        serde_json::from_str(line).or_else(|e| bad("line", format!("not JSON: {e}")))?;
    parse_value(value)
}

/// Parses one event given as a JSON value.
pub fn parse_value(value: Value) -> Result<IncomingEvent, FormatError> {
    let Value::Object(mut obj) = value else {
        return bad("line", "an event is a JSON object");
    };
    for key in obj.keys() {
        if !KNOWN_ATTRIBUTES.contains(&key.as_str()) {
            return bad(
                key.clone(),
                "unknown attribute (CloudEvents 1.0 attributes and carelog's extensions only)",
            );
        }
    }
    match string_field(&obj, "specversion")? {
        Some("1.0") => {}
        Some(other) => {
            return bad(
                "specversion",
                format!("{other:?} is not supported: use \"1.0\""),
            );
        }
        None => {
            return bad(
                "specversion",
                "missing: CloudEvents needs \"specversion\": \"1.0\"",
            );
        }
    }
    let event_type = string_field(&obj, "type")?
        .ok_or_else(|| FormatError {
            field: "type".into(),
            rule: "missing".into(),
        })?
        .to_string();
    let time_text = string_field(&obj, "time")?.ok_or_else(|| FormatError {
        field: "time".into(),
        rule: "missing: when it happened, RFC 3339 with an offset".into(),
    })?;
    let occurred_at = time::parse_instant(time_text).or_else(|e| bad("time", e.to_string()))?;
    let id = uuid_field(&obj, "id")?;
    if id.is_some_and(|u| u.is_nil()) {
        return bad("id", "the nil UUID is not an event id");
    }
    if let Some(v) = obj.get("schemaversion")
        && !v.is_null()
    {
        let current = super::EVENT_TYPES
            .iter()
            .find(|(n, _, _)| *n == event_type)
            .map(|(_, v, _)| *v);
        if v.as_u64() != current.map(u64::from) {
            return bad(
                "schemaversion",
                format!(
                    "{event_type} is written at its current version {current:?}; send data of that version"
                ),
            );
        }
    }
    let recorded_by = string_field(&obj, "recordedby")?.map(str::to_string);
    let recorded_at = match string_field(&obj, "recordedat")? {
        None => None,
        Some(t) => Some(time::parse_instant(t).or_else(|e| bad("recordedat", e.to_string()))?),
    };
    let correlation_id = uuid_field(&obj, "correlationid")?;
    let causation_id = uuid_field(&obj, "causationid")?;
    let expected_version = expected_version_field(&obj)?;
    let late_entry_reason = string_field(&obj, "lateentryreason")?.map(str::to_string);
    if let Some(reason) = &late_entry_reason
        && (reason.trim().is_empty() || reason.len() > LATE_ENTRY_REASON_MAX_BYTES)
    {
        return bad(
            "lateentryreason",
            format!("why the event is recorded late, 1 to {LATE_ENTRY_REASON_MAX_BYTES} bytes"),
        );
    }
    string_field(&obj, "source")?;
    let data = obj.remove("data").ok_or_else(|| FormatError {
        field: "data".into(),
        rule: "missing: the event's fields".into(),
    })?;
    let event = data_to_event(&event_type, data)?;
    Ok(IncomingEvent {
        id,
        event,
        occurred_at,
        recorded_by,
        recorded_at,
        correlation_id,
        causation_id,
        expected_version,
        late_entry_reason,
    })
}

fn decode_error(e: EventDecodeError, event_type: &str) -> FormatError {
    match e {
        EventDecodeError::UnknownType(t) => FormatError {
            field: "type".into(),
            rule: format!("unknown event type {t:?}: `carelog events` lists them"),
        },
        EventDecodeError::BadData { field, reason, .. } => {
            // A missing field is named only in serde's message (`missing field `x``).
            let field = if field.is_empty() {
                data_field(&reason)
            } else {
                format!("data.{field}")
            };
            FormatError {
                field,
                rule: format!("{event_type}: {reason}"),
            }
        }
        other => FormatError {
            field: "data".into(),
            rule: other.to_string(),
        },
    }
}

/// serde_json names the field in its message (`missing field `x``); name it in the error's field.
fn data_field(reason: &str) -> String {
    let named = reason
        .split('`')
        .nth(1)
        .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    match named {
        Some(f) => format!("data.{f}"),
        None => "data".into(),
    }
}

fn data_to_event(event_type: &str, data: Value) -> Result<DomainEvent, FormatError> {
    if event_type != RecordCorrectedV1::EVENT_TYPE {
        return DomainEvent::from_json(event_type, data).map_err(|e| decode_error(e, event_type));
    }
    let Value::Object(mut obj) = data else {
        return bad("data", "an object");
    };
    for key in obj.keys() {
        if !["target_event_id", "reason", "corrected_type", "corrected"].contains(&key.as_str()) {
            return bad(format!("data.{key}"), "unknown field of a correction");
        }
    }
    let target_event_id = uuid_field(&obj, "target_event_id")?.ok_or_else(|| FormatError {
        field: "data.target_event_id".into(),
        rule: "missing".into(),
    })?;
    let reason = string_field(&obj, "reason")?
        .ok_or_else(|| FormatError {
            field: "data.reason".into(),
            rule: "missing".into(),
        })?
        .to_string();
    let corrected_type = string_field(&obj, "corrected_type")?
        .ok_or_else(|| FormatError {
            field: "data.corrected_type".into(),
            rule: "missing: the type of the corrected event".into(),
        })?
        .to_string();
    if corrected_type == RecordCorrectedV1::EVENT_TYPE
        || corrected_type == super::events::RecordVoidedV1::EVENT_TYPE
    {
        return bad(
            "data.corrected_type",
            "a correction corrects an event, not a void or a correction",
        );
    }
    let corrected = obj.remove("corrected").ok_or_else(|| FormatError {
        field: "data.corrected".into(),
        rule: "missing: the corrected event's data".into(),
    })?;
    let inner = DomainEvent::from_json(&corrected_type, corrected).map_err(|e| {
        let f = decode_error(e, &corrected_type);
        FormatError {
            field: f.field.replacen("data", "data.corrected", 1),
            rule: f.rule,
        }
    })?;
    let payload = inner
        .encode()
        .or_else(|e| bad("data.corrected", e.to_string()))?;
    Ok(DomainEvent::RecordCorrected(RecordCorrectedV1 {
        target_event_id,
        reason,
        event_type: inner.event_type().to_string(),
        schema_version: inner.schema_version(),
        payload,
    }))
}

/// The JSON `data` of an event (a correction shows its corrected event's data).
pub fn event_data(event: &DomainEvent) -> Value {
    match event {
        DomainEvent::RecordCorrected(c) => {
            let corrected = DomainEvent::decode(&c.event_type, c.schema_version, &c.payload)
                .map(|e| e.to_json())
                .unwrap_or(Value::Null);
            json!({
                "target_event_id": c.target_event_id,
                "reason": c.reason,
                "corrected_type": c.event_type,
                "corrected": corrected,
            })
        }
        other => other.to_json(),
    }
}

/// The CloudEvents form of an event to send (an example, or a new event before it is logged).
pub fn to_input_cloudevent(id: Uuid, event: &DomainEvent, occurred_at: &Instant) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "/carelog",
        "type": event.event_type(),
        "time": occurred_at.to_rfc3339(),
        "data": event_data(event),
    })
}

/// The stream an incoming event will go to.
pub fn stream_of_incoming(e: &IncomingEvent) -> String {
    stream_of(&e.event)
}

/// The reference of every event type, in Markdown, generated from the type table and its
/// examples (so it cannot drift from the code): `docs/events.md`.
pub fn events_reference_markdown() -> String {
    let mut out = String::from(
        "# Event types\n\nGenerated from `src/domain/events.rs` by `carelog events --markdown`; \
         `tests/docs.rs` fails when this file and the code disagree.\n\n\
         Every event is a CloudEvents 1.0 JSON object, one per line for `carelog append`/`import`, \
         the body of `POST /v1/events`, and the output of `carelog export`. `id` is optional on \
         input (a UUIDv7 is generated); `time` is when it happened, with its UTC offset. \
         Money is integer fen (`*_fen`), dates are `YYYY-MM-DD`.\n\n",
    );
    // A fixed time: the reference is generated, and is the same on every run.
    let at = crate::time::parse_instant("2023-05-08T10:00:00+08:00")
        .unwrap_or_else(|_| chrono::DateTime::<chrono::Utc>::UNIX_EPOCH.fixed_offset());
    for ((name, version, doc), example) in super::EVENT_TYPES.iter().zip(DomainEvent::examples()) {
        let line = to_input_cloudevent(EXAMPLE_EVENT_ID, &example, &at);
        out.push_str(&format!(
            "## `{name}` (v{version})\n\n{doc}\n\n```json\n{}\n```\n\n",
            serde_json::to_string_pretty(&line).unwrap_or_default()
        ));
    }
    out
}
