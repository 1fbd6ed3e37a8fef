//! The OpenAPI 3.0 document of the HTTP service, served without a token at
//! `GET /v1/openapi.json`. It is built here, once, from the same constants the handlers check
//! (the read limit, the events per POST, the name bound) and from the domain's and the app's
//! own lists (event types, projections, metrics), so a bound or a name changes in one place.
//! `tests/http_openapi.rs` holds it to [`super::ROUTES`]; `tests/schemathesis.sh` holds the
//! server to it.
//!
//! Every refusal is the `Error` schema (`super::error`). A status listed for an operation is
//! one its handler or the middleware can answer; 503 (a bound reached) and 500 (a fault) can
//! come from any authenticated route.

use std::sync::OnceLock;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{MAX_BODY_BYTES, MAX_EVENTS_PER_POST, MAX_READ_LIMIT};
use crate::app::claims::{MAX_CLAIM_VALUE, MAX_CLAIMS_PER_BATCH};
use crate::app::report::{METRICS, projection_list};
use crate::domain::EVENT_TYPES;
use crate::domain::cloudevent::EXAMPLE_EVENT_ID;
use crate::log::MAX_NAME_BYTES;

/// `GET /v1/openapi.json`.
pub(super) async fn serve() -> Response {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    Json(DOCUMENT.get_or_init(document)).into_response()
}

/// `{"$ref": "#/components/<kind>/<name>"}`.
fn reference(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/components/{kind}/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// A success response with a JSON body of `schema`.
fn ok_json(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": json_content(schema) })
}

fn ok_text(description: &str, media_type: &str) -> Value {
    json!({ "description": description, "content": { media_type: { "schema": { "type": "string" } } } })
}

/// What an operation may be answered: its successes, then the named refusals.
fn responses(successes: &[(&str, Value)], refusals: &[&str]) -> Value {
    let mut out = Map::new();
    for (status, response) in successes {
        out.insert((*status).to_string(), response.clone());
    }
    for status in refusals {
        out.insert((*status).to_string(), reference("responses", status));
    }
    Value::Object(out)
}

/// The refusals of a route behind the token: a bad token, a role that may not, a bound reached,
/// a fault.
const GUARDED: &[&str] = &["401", "403", "500", "503"];
/// [`GUARDED`] and a bad query parameter.
const GUARDED_QUERY: &[&str] = &["400", "401", "403", "500", "503"];

fn concat(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    let mut out = a.to_vec();
    out.extend_from_slice(b);
    out.sort_unstable();
    out
}

fn query(name: &str, description: &str, schema: Value, required: bool) -> Value {
    json!({ "name": name, "in": "query", "required": required, "description": description, "schema": schema })
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

/// A position, size or version: an unsigned 64-bit whole number.
fn position_schema() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX })
}

/// The three parameters that fix what a figure is computed as of, and over which period.
fn as_of_params() -> Vec<Value> {
    vec![
        reference("parameters", "as_of"),
        reference("parameters", "at_position"),
        reference("parameters", "period"),
    ]
}

fn operation(
    summary: &str,
    description: &str,
    parameters: Vec<Value>,
    responses: Value,
    public: bool,
) -> Value {
    let mut op = json!({ "summary": summary, "description": description, "responses": responses });
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    if public {
        op["security"] = json!([]);
    }
    op
}

fn schemas() -> Value {
    let event_types: Vec<&str> = EVENT_TYPES.iter().map(|(name, _, _)| *name).collect();
    let uuid = json!({ "type": "string", "format": "uuid" });
    let hash = json!({ "type": "string", "pattern": "^[0-9a-f]{64}$" });
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["field", "rule", "message"],
                    "properties": {
                        "field": { "type": "string", "nullable": true, "description": "the request's field at fault (`time`, `data.pairing_id`, `from`), or null" },
                        "rule": { "type": "string", "description": "the rule broken, machine-readable (`unknown_id`, `missing_token`)" },
                        "message": { "type": "string", "description": "what went wrong and what to do" },
                        "index": { "type": "integer", "minimum": 0, "description": "the event's place in a posted array" }
                    }
                }
            }
        },
        "CloudEvent": {
            "type": "object",
            "description": "One event in the CloudEvents 1.0 JSON form; what `data` holds for each type is in docs/events.md. The log's own attributes (`subject`, `position`, …) an export carries are accepted and ignored, except `recordedby` and `recordedat`.",
            "required": ["specversion", "type", "time", "data"],
            "additionalProperties": false,
            "properties": {
                "specversion": { "type": "string", "enum": ["1.0"] },
                "id": { "type": "string", "format": "uuid", "description": "optional: a UUIDv7 is generated; resending the same id is answered with its first position" },
                "type": { "type": "string", "enum": event_types },
                "source": { "type": "string" },
                "time": { "type": "string", "format": "date-time", "description": "when it happened, RFC 3339 with its UTC offset" },
                "data": { "type": "object", "description": "the fields of the type (docs/events.md)" },
                "datacontenttype": { "type": "string" },
                "subject": { "type": "string" },
                "position": { "type": "integer", "minimum": 1 },
                "streamversion": { "type": "integer", "minimum": 1 },
                "schemaversion": { "type": "integer", "minimum": 1, "nullable": true },
                "recordedat": { "type": "string", "format": "date-time" },
                "recordedby": { "type": "string" },
                "leafhash": { "type": "string" },
                "chainhash": { "type": "string" },
                "leaf": { "type": "string" },
                "correlationid": { "type": "string", "format": "uuid" },
                "causationid": { "type": "string", "format": "uuid" },
                "expectedversion": {
                    "description": "optimistic concurrency: the version the event's stream must be at just before it: \"any\", \"none\", or a version (a number, or a string of digits); another answers 409 version_conflict naming the stream, expected and actual",
                    "oneOf": [
                        { "type": "string", "pattern": "^(any|none|[0-9]+)$" },
                        { "type": "integer", "minimum": 0 }
                    ]
                },
                "lateentryreason": { "type": "string", "minLength": 1, "maxLength": 4096, "description": "why the event is recorded only now: needed past the late-entry window (`serve --late-entry-days`, 31 by default); written as a carelog.late_entry.noted event after it, shown by explain and the claims check" }
            }
        },
        "RecordedEvent": {
            "type": "object",
            "description": "An event as the log holds it: the CloudEvent with the log's attributes.",
            "required": ["specversion", "id", "type", "source", "time", "data", "subject", "position", "streamversion", "schemaversion", "recordedat", "leafhash", "chainhash"],
            "properties": {
                "specversion": { "type": "string" },
                "id": uuid,
                "type": { "type": "string" },
                "source": { "type": "string" },
                "time": { "type": "string", "format": "date-time" },
                "data": { "type": "object" },
                "subject": { "type": "string", "description": "the stream" },
                "position": { "type": "integer", "minimum": 1 },
                "streamversion": { "type": "integer", "minimum": 1 },
                "schemaversion": { "type": "integer", "minimum": 1 },
                "recordedat": { "type": "string", "format": "date-time" },
                "recordedby": { "type": "string" },
                "leafhash": hash,
                "chainhash": hash,
                "correlationid": uuid,
                "causationid": uuid
            }
        },
        "Acks": {
            "type": "object",
            "required": ["acks"],
            "properties": {
                "acks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "position", "stream_version", "duplicate"],
                        "properties": {
                            "id": uuid,
                            "position": { "type": "integer", "minimum": 1 },
                            "stream_version": { "type": "integer", "minimum": 1 },
                            "duplicate": { "type": "boolean" }
                        }
                    }
                }
            }
        },
        "AsOf": {
            "type": "object",
            "required": ["position"],
            "properties": {
                "position": position_schema(),
                "recorded_at": { "type": "string", "nullable": true }
            }
        },
        "Digest": {
            "type": "object",
            "required": ["position", "chain_hash", "algorithm"],
            "properties": {
                "position": position_schema(),
                "chain_hash": hash,
                "algorithm": { "type": "string", "enum": ["sha256", "sm3"] }
            }
        },
        "Proof": {
            "type": "object",
            "required": ["tree_size", "hashes"],
            "properties": {
                "leaf_index": position_schema(),
                "old_size": position_schema(),
                "tree_size": position_schema(),
                "hashes": { "type": "array", "items": hash }
            }
        }
    })
}

fn components() -> Value {
    let error = reference("schemas", "Error");
    let refusal = |description: &str| ok_json(description, error.clone());
    json!({
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from `carelog token create --role ROLE` or `POST /v1/tokens`; roles: recorder, supervisor, auditor, admin."
            }
        },
        "schemas": schemas(),
        "parameters": {
            "as_of": query("as_of", "as the log stood at this time: RFC 3339 with an offset, or a date YYYY-MM-DD (its end, Asia/Shanghai); not with at_position", json!({ "type": "string", "minLength": 1 }), false),
            "at_position": query("at_position", "as the log stood at this position; not with as_of", position_schema(), false),
            "period": query("period", "FROM..TO, dates YYYY-MM-DD, FROM not after TO (Asia/Shanghai days)", json!({ "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}\\.\\.[0-9]{4}-[0-9]{2}-[0-9]{2}$" }), false),
            "from": query("from", "the first position (or stream version) to return; 0 is taken as 1", json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX, "default": 1 }), false),
            "limit": query("limit", "the most events to return", json!({ "type": "integer", "minimum": 1, "maximum": MAX_READ_LIMIT, "default": 100 }), false),
            "size": query("size", "the tree size (default the head)", position_schema(), false)
        },
        "responses": {
            "400": refusal("malformed input: the field and the rule are named; nothing was written"),
            "401": refusal("no usable bearer token (missing, unknown, revoked or expired)"),
            "403": refusal("the token's role or unit scope may not do this"),
            "404": refusal("no such thing (metric, projection, token)"),
            "408": refusal("the body did not arrive whole in time"),
            "409": refusal("a conflict: the id was used for a different event or is in flight, or the stream is not at the event's expectedversion (the error then carries stream, expected and actual)"),
            "413": refusal(&format!("the body is over {MAX_BODY_BYTES} bytes or {MAX_EVENTS_PER_POST} events")),
            "422": refusal("well formed, but a rule of the records refused it; nothing was written"),
            "500": refusal("a fault of the store or of this build"),
            "503": refusal("a bound of the service was reached (retry after Retry-After), or the store needs an operator")
        }
    })
}

fn paths() -> Value {
    let schema = |name: &str| reference("schemas", name);
    let events_page = json!({
        "type": "object",
        "required": ["events", "next_from", "head_position"],
        "properties": {
            "events": { "type": "array", "items": schema("RecordedEvent") },
            "next_from": { "type": "integer", "minimum": 1 },
            "head_position": position_schema()
        }
    });
    let stream_page = json!({
        "type": "object",
        "required": ["stream", "events", "next_from", "stream_version"],
        "properties": {
            "stream": { "type": "string" },
            "events": { "type": "array", "items": schema("RecordedEvent") },
            "next_from": { "type": "integer", "minimum": 1 },
            "stream_version": position_schema()
        }
    });
    // A city bureau with fixed ids: the first send writes it (201), a resend is a duplicate (200).
    let example_event = json!({
        "specversion": "1.0",
        "id": EXAMPLE_EVENT_ID,
        "type": "carelog.unit.registered",
        "source": "/carelog",
        "time": "2023-05-08T10:00:00+08:00",
        "data": { "unit_id": "018bd200-0000-7000-8000-000000000001", "name": "示例市教育局", "kind": "city_bureau", "parent_id": null, "official_code": null }
    });
    let post_body = json!({
        "required": true,
        "content": { "application/json": {
            "schema": {
                "oneOf": [
                    schema("CloudEvent"),
                    { "type": "array", "minItems": 1, "maxItems": MAX_EVENTS_PER_POST, "items": schema("CloudEvent") }
                ]
            },
            "example": example_event
        } }
    });
    let projection_names: Vec<&str> = projection_list().iter().map(|p| p.name).collect();
    let metric_names: Vec<&str> = METRICS.iter().map(|m| m.metric).collect();
    let nullable_uuid = json!({ "type": "string", "format": "uuid", "nullable": true });
    let roles = json!({ "type": "string", "enum": ["recorder", "supervisor", "auditor", "admin"] });
    let date = json!({ "type": "string", "format": "date" });
    let claim_input = json!({ "type": "object", "additionalProperties": false,
        "required": ["metric", "period_from", "period_to", "value", "reported_on", "source"],
        "properties": {
            "metric": { "type": "string", "enum": metric_names.clone(), "description": "a metric of the report" },
            "period_from": date.clone(), "period_to": date.clone(),
            "value": { "type": "integer", "minimum": 0, "maximum": MAX_CLAIM_VALUE, "description": "the figure reported (fen for amounts)" },
            "comparison": { "type": "string", "enum": ["exactly", "at_least", "more_than", "at_most"], "default": "exactly" },
            "scope": nullable_uuid.clone(),
            "reported_on": { "type": "string", "format": "date", "description": "the day it was reported; not in the future" },
            "source": { "type": "string", "minLength": 1, "maxLength": 4096 }
        } });
    let report_params = {
        let mut p = as_of_params();
        p.push(query(
            "lang",
            "the language of the labels and the periods",
            json!({ "type": "string", "enum": ["en", "zh"], "default": "en" }),
            false,
        ));
        p
    };
    let project_params = {
        let mut p = vec![path_param(
            "name",
            "a projection's name (GET /v1/projections lists them)",
            json!({ "type": "string", "enum": projection_names }),
        )];
        p.extend(as_of_params());
        p.push(query(
            "on",
            "the day a state is read on, YYYY-MM-DD",
            json!({ "type": "string", "format": "date" }),
            false,
        ));
        p
    };
    let explain_params = {
        let mut p = vec![path_param(
            "metric",
            "a figure of the report (GET /v1/report lists them)",
            json!({ "type": "string", "enum": metric_names }),
        )];
        p.extend(as_of_params());
        p
    };
    json!({
        "/healthz": { "get": operation("Liveness", "200 while the store is open, with the durable head.", vec![],
            responses(&[("200", ok_json("the store is open", json!({ "type": "object", "required": ["status", "head_position"], "properties": { "status": { "type": "string", "enum": ["ok"] }, "head_position": position_schema() } })))], &[]), true) },
        "/v1/openapi.json": { "get": operation("This document", "The OpenAPI document of the service.", vec![],
            responses(&[("200", ok_json("the document", json!({ "type": "object" })))], &[]), true) },
        "/v1/events": {
            "post": {
                "summary": "Append events",
                "description": "One CloudEvent or an array, all or nothing (recorder, admin). 201 once durable; 200 when every event was already in the log (a resend). The recording actor is the token's holder.",
                "requestBody": post_body,
                "responses": responses(&[("200", ok_json("every event was already in the log", schema("Acks"))), ("201", ok_json("written and durable", schema("Acks")))],
                    &concat(GUARDED, &["400", "408", "409", "413", "422"]))
            },
            "get": operation("Read events in order", "Events from a position (auditor, admin).",
                vec![reference("parameters", "from"), reference("parameters", "limit")],
                responses(&[("200", ok_json("a page of events", events_page))], GUARDED_QUERY), false)
        },
        "/v1/streams/{stream}": { "get": operation("Read one stream", "One stream's events from a stream version (supervisor, auditor, admin; a scoped supervisor only its unit's).",
            vec![path_param("stream", "the stream, e.g. pairing-<uuid>", json!({ "type": "string", "minLength": 1, "maxLength": MAX_NAME_BYTES })), reference("parameters", "from"), reference("parameters", "limit")],
            responses(&[("200", ok_json("a page of the stream", stream_page))], GUARDED_QUERY), false) },
        "/v1/subscribe": { "get": operation("Subscribe", "Server-Sent Events from a position, then live ones, each once durable; `id:` is the position (auditor, admin). `Last-Event-ID` resumes after it and wins over `from`.",
            vec![reference("parameters", "from"), json!({ "name": "Last-Event-ID", "in": "header", "required": false, "schema": position_schema() })],
            responses(&[("200", ok_text("the event stream, until the client leaves or the token stops being valid", "text/event-stream"))], GUARDED_QUERY), false) },
        "/v1/report": { "get": operation("The programme report", "Every figure of the source report (supervisor, auditor, admin).", report_params,
            responses(&[("200", ok_json("the report", json!({ "type": "object", "required": ["as_of", "figures"], "properties": { "as_of": schema("AsOf"), "figures": { "type": "array", "items": { "type": "object", "required": ["metric", "value"], "properties": { "metric": { "type": "string" } } } } } })))], GUARDED_QUERY), false) },
        "/v1/projections": { "get": operation("The projections", "Every projection with its version (supervisor, auditor, admin).", vec![],
            responses(&[("200", ok_json("the registry", json!({ "type": "array", "items": { "type": "object", "required": ["name", "version", "about"], "properties": { "name": { "type": "string" }, "version": { "type": "integer", "minimum": 0 }, "about": { "type": "string" } } } })))], GUARDED), false) },
        "/v1/projections/{name}": { "get": operation("One projection's view", "As `carelog project NAME`; further query parameters are the projection's own (e.g. `days` for coverage). Supervisor, auditor, admin.", project_params,
            responses(&[("200", ok_json("the projection's view", json!({ "type": "object" })))], &concat(GUARDED_QUERY, &["404"])), false) },
        "/v1/explain/{metric}": { "get": operation("A figure and the events behind it", "As `carelog explain METRIC` (supervisor, auditor, admin).", explain_params,
            responses(&[("200", ok_json("the figure", json!({ "type": "object", "required": ["metric", "value", "as_of", "events"], "properties": { "metric": { "type": "string" }, "as_of": schema("AsOf"), "events": { "type": "array", "items": { "type": "object", "required": ["id", "position"], "properties": { "id": { "type": "string", "format": "uuid" }, "position": { "type": "integer", "minimum": 1 } } } } } })))], &concat(GUARDED_QUERY, &["404"])), false) },
        "/v1/claims": { "get": operation("The claims check", "Every reported figure (claim) against the records; a scoped supervisor gets its unit's (supervisor, auditor, admin).", vec![],
            responses(&[("200", ok_json("the claims", json!({ "type": "object", "required": ["all_hold", "claims"], "properties": { "all_hold": { "type": "boolean" }, "scope_unit_id": nullable_uuid, "claims": { "type": "array", "items": { "type": "object", "required": ["claim_id", "metric", "claimed", "comparison", "recorded_now", "recorded_then", "difference", "verdict", "explained", "unexplained", "reasons", "late_entries"], "properties": { "difference": { "type": ["integer", "null"], "description": "claimed − recorded_then (the records at the end of the reported-on day)" }, "explained": { "type": "integer" }, "unexplained": { "type": "integer", "description": "|difference| − explained" }, "reasons": { "type": "array", "items": { "type": "object", "required": ["kind", "explains", "count", "events"] } } } } } } })))], GUARDED), false),
            "post": {
                "summary": "File claims",
                "description": "One reported figure (a claim) or an array of them, filed all or none as carelog.claim.filed events (admin, supervisor; a scoped supervisor only for its unit or one under it). A refusal names the field and, for an array, the claim's index; nothing is written.",
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "oneOf": [claim_input.clone(), { "type": "array", "minItems": 1, "maxItems": MAX_CLAIMS_PER_BATCH, "items": claim_input }] },
                    "example": { "metric": "home_visits", "period_from": "2023-01-01", "period_to": "2023-06-30", "value": 150, "comparison": "at_most", "reported_on": "2023-07-05", "source": "county half-year report" }
                } } },
                "responses": responses(&[("201", ok_json("the claims filed, in the order sent", json!({ "type": "object", "required": ["claims"], "properties": { "claims": { "type": "array", "items": { "type": "object", "required": ["index", "claim_id", "position"], "properties": { "index": { "type": "integer", "minimum": 0 }, "claim_id": { "type": "string", "format": "uuid" }, "position": { "type": "integer", "minimum": 1 } } } } } })))],
                    &concat(GUARDED, &["400", "408", "409", "413", "422"]))
            } },
        "/v1/verify": { "get": operation("Verify the store", "Every hash, position and index rechecked, as `carelog verify --json`; 200 with `intact` either way (auditor, admin).",
            vec![query("skip_indexes", "skip the index check", json!({ "type": "boolean", "default": false }), false)],
            responses(&[("200", ok_json("the verdict", json!({ "type": "object", "required": ["intact", "log_intact", "events_checked", "head"], "properties": { "intact": { "type": "boolean" }, "log_intact": { "type": "boolean" }, "events_checked": position_schema(), "head": schema("Digest"), "store_problems": { "type": "array" } } })))], GUARDED_QUERY), false) },
        "/v1/digest": { "get": operation("The head", "The durable head's position and chain hash, to keep and check later (auditor, admin).", vec![],
            responses(&[("200", ok_json("the digest", schema("Digest")))], GUARDED), false) },
        "/v1/export": { "get": operation("Export", "Every event as JSON lines, streamed, exactly what `carelog append` accepts; the header `x-carelog-head-position` names the head it runs to (auditor, admin).", vec![],
            responses(&[("200", ok_text("JSON lines", "application/x-ndjson"))], GUARDED), false) },
        "/v1/checkpoint": { "get": operation("A signed checkpoint", "The C2SP signed note of the tree at `size` (supervisor, auditor, admin).", vec![reference("parameters", "size")],
            responses(&[("200", ok_text("the signed note", "text/plain"))], GUARDED_QUERY), false) },
        "/v1/proof/inclusion": { "get": operation("An inclusion proof", "RFC 9162 inclusion of the event at `position` (leaf position − 1) in the tree of `size` (supervisor, auditor, admin).",
            vec![query("position", "the event's position", json!({ "type": "integer", "minimum": 1, "maximum": u64::MAX }), true), reference("parameters", "size")],
            responses(&[("200", ok_json("the proof", schema("Proof")))], GUARDED_QUERY), false) },
        "/v1/proof/consistency": { "get": operation("A consistency proof", "RFC 9162 consistency of the tree of `old_size` with the tree of `size` (supervisor, auditor, admin).",
            vec![query("old_size", "the older tree's size", position_schema(), true), reference("parameters", "size")],
            responses(&[("200", ok_json("the proof", schema("Proof")))], GUARDED_QUERY), false) },
        "/v1/tokens": { "post": {
            "summary": "Grant a token",
            "description": "A new bearer token (admin); the secret is shown once. Recorded as an event.",
            "requestBody": { "required": true, "content": { "application/json": {
                "schema": { "type": "object", "required": ["role"], "additionalProperties": false, "properties": { "role": roles, "person_id": nullable_uuid, "unit_id": nullable_uuid, "expires_in_days": { "type": "integer", "minimum": 1, "maximum": 3650, "description": "days until the token expires (default 90)" } } },
                "example": { "role": "auditor" }
            } } },
            "responses": responses(&[("201", ok_json("the token", json!({ "type": "object", "required": ["token_id", "secret", "role", "position"], "properties": { "token_id": { "type": "string", "format": "uuid" }, "secret": { "type": "string" }, "role": { "type": "string" }, "person_id": nullable_uuid, "unit_id": nullable_uuid, "expires_at": { "type": "string", "format": "date-time" }, "position": { "type": "integer", "minimum": 1 } } })))],
                &concat(GUARDED, &["400", "408", "409", "413", "422"]))
        } },
        "/v1/tokens/{token_id}/revoke": { "post": {
            "summary": "Revoke a token",
            "description": "Revokes a token at once (admin); its open streams end. The body may be empty. Recorded as an event.",
            "parameters": [path_param("token_id", "the token's id", json!({ "type": "string", "format": "uuid" }))],
            "requestBody": { "required": false, "content": json_content(json!({ "type": "object", "additionalProperties": false, "properties": { "reason": { "type": "string" } } })) },
            "responses": responses(&[("200", ok_json("revoked", json!({ "type": "object", "required": ["token_id", "position"], "properties": { "token_id": { "type": "string", "format": "uuid" }, "position": { "type": "integer", "minimum": 1 } } })))],
                &concat(GUARDED, &["400", "404", "408", "409", "413", "422"]))
        } },
        "/metrics": { "get": operation("Metrics", "Prometheus text: the writer's counters, responses by status, append latency, subscribers' lag (admin).", vec![],
            responses(&[("200", ok_text("Prometheus text format 0.0.4", "text/plain"))], GUARDED), false) }
    })
}

/// The whole document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "carelog",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP service of carelog (`carelog serve`): an append-only, hash-chained log of a paired-care programme's records, the figures derived from it, and proofs. Every refusal is `{\"error\": {\"field\", \"rule\", \"message\"}}`."
        },
        "security": [{ "bearerAuth": [] }],
        "paths": paths(),
        "components": components()
    })
}
