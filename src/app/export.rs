//! The export line: an event's CloudEvents JSON (what `append` takes back) with `leaf`, the
//! base64 of exactly the bytes its leaf hash covers (`docs/leaf.md`), so that anyone can
//! recompute every leaf hash and root without carelog. `carelog export`, `GET /v1/export` and
//! `carelog-audit` all make it here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::domain::DomainEvent;
use crate::domain::cloudevent;
use crate::log::{LogError, RecordedEvent};

/// The export line of a recorded event.
pub fn export_line(recorded: &RecordedEvent, event: &DomainEvent) -> Result<Value, LogError> {
    let mut line = cloudevent::to_cloudevent(recorded, event);
    line["leaf"] = Value::String(BASE64.encode(recorded.canonical_bytes()?));
    Ok(line)
}
