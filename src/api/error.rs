//! [`ApiError`]: every refusal of the HTTP service, as a status code and one JSON body
//! `{"error": {"field": …, "rule": …, "message": …}}` (plus `"index"`, the event's place in a
//! posted array, when the error is about one event; `"stream"`, `"expected"` and `"actual"`
//! for a version conflict).
//!
//! The mapping from the application's errors to status codes lives here and only here:
//! 400 malformed input, 401 no usable token, 403 not allowed, 404 no such thing, 409 an id
//! conflict, 413 too large, 422 well formed but a rule failed, 503 overloaded or unavailable,
//! 507 the disk holding the store is full (nothing written; retry once space is freed),
//! 500 a fault of the store or of this build.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppError;
use crate::app::access::{self, AccessError};
use crate::domain::cloudevent::FormatError;
use crate::log::LogError;

/// A refusal: what the client gets back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// The field of the request at fault, when there is one (`time`, `data.pairing_id`, `from`).
    pub field: Option<String>,
    /// A short machine-readable name of the rule broken (`unknown_id`, `missing_token`).
    pub rule: String,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// The index of the event in a posted array, when the error is about one event.
    pub index: Option<usize>,
    /// Further members of the error object, for a client to act on (a version conflict's
    /// stream and versions).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            field: None,
            rule: rule.into(),
            message: message.into(),
            index: None,
            details: serde_json::Map::new(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The same refusal under a more precise rule name.
    pub fn with_rule(mut self, rule: &str) -> Self {
        self.rule = rule.to_string();
        self
    }

    /// 403 under the rule that refused. The app's reason names people and ids (the person a
    /// pairing is recorded for tells a stranger that the pairing exists and who holds it): the
    /// answer says only which rule refused and what the rule is, the same for another's pairing
    /// as for none.
    pub fn forbidden(index: Option<usize>, rule: &'static str) -> Self {
        let place = index.map_or(String::new(), |i| format!("event {i}: "));
        let what = match rule {
            access::OWN_RECORDS_ONLY => {
                "a recorder records only for the pairings it holds and the care plans it teaches, on the event's day (the registry, pairings, claims, voids, corrections and tokens are an admin's); this event is not one of them: check its ids and date, or ask an admin to record it; nothing was written"
            }
            access::OWN_SCHOOL_ONLY => {
                "a teacher records only for pupils enrolled, on the event's day, at the teacher's own school; this event is for another school's pupil: check its ids and date, or ask an admin to record it; nothing was written"
            }
            access::UNIT_SCOPE => {
                "this token is scoped to a unit, and what was asked for is not attributable to that unit or a unit under it"
            }
            _ => "this token's role may not do this",
        };
        Self::new(StatusCode::FORBIDDEN, rule, format!("{place}{what}")).with_index(index)
    }

    fn with_index(mut self, index: Option<usize>) -> Self {
        self.index = index;
        self
    }

    /// 400 for a request parameter or body part that is not what the route takes.
    pub fn bad_request(field: &str, rule: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, rule, message).with_field(field)
    }

    pub fn not_found(rule: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, rule, message)
    }

    /// 503: the service is at one of its bounds; the client should retry later.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 400 for one malformed event of a posted body.
    pub fn format(index: usize, e: &FormatError) -> Self {
        let rule = if e.field == "type" && e.rule.starts_with("unknown event type") {
            "unknown_type"
        } else {
            "format"
        };
        Self::bad_request(
            &e.field,
            rule,
            format!("event {index}: {e}; nothing was written"),
        )
        .with_index(Some(index))
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({"field": self.field, "rule": self.rule, "message": self.message});
        if let Some(i) = self.index {
            error["index"] = json!(i);
        }
        for (k, v) in &self.details {
            error[k] = v.clone();
        }
        json!({ "error": error })
    }
}

/// The rule of a 503 that waiting will not end: it carries no `Retry-After`.
const NEEDS_OPERATOR: &str = "needs_operator";

/// A refusal's rule and message, carried in its response's extensions to the one log line of
/// the response (`super::log_response`), so that nothing else logs it again.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub rule: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        response.extensions_mut().insert(Refusal {
            rule: self.rule.clone(),
            message: self.message.clone(),
        });
        if self.status == StatusCode::SERVICE_UNAVAILABLE && self.rule != NEEDS_OPERATOR {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        let status = match e {
            AccessError::Forbidden(_) => StatusCode::FORBIDDEN,
            AccessError::Missing
            | AccessError::Unknown
            | AccessError::Revoked(_)
            | AccessError::Expired { .. }
            | AccessError::StaffLeft { .. } => StatusCode::UNAUTHORIZED,
        };
        let field = match e {
            AccessError::Forbidden(_) => None,
            _ => Some("authorization".to_string()),
        };
        Self {
            status,
            field,
            rule: e.rule().to_string(),
            message: e.to_string(),
            index: None,
            details: serde_json::Map::new(),
        }
    }
}

fn from_log(e: LogError, index: Option<usize>) -> ApiError {
    let message = e.to_string();
    match e {
        LogError::VersionConflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "version_conflict", message)
        }
        LogError::IdConflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "id_conflict", message).with_field("id")
        }
        LogError::PartialDuplicate { .. } => {
            ApiError::new(StatusCode::CONFLICT, "partial_duplicate", message)
        }
        LogError::DuplicateInBatch { .. } => {
            ApiError::bad_request("id", "duplicate_in_batch", message)
        }
        LogError::InvalidEvent { index, field, .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
                .with_field(field)
                .with_index(Some(index))
        }
        LogError::WriterGone => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
        // Retrying does not help: an operator must look (the message says at what).
        LogError::Poisoned(_)
        | LogError::HeadWithoutEvents { .. }
        | LogError::JournalSetAside { .. } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NEEDS_OPERATOR, message)
        }
        // 507: the server cannot store what it was sent; the same request can succeed once
        // space is freed (the writer recovers by itself).
        LogError::DiskFull { .. }
        | LogError::Storage(crate::log::StorageError::DiskFull { .. }) => {
            ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "disk_full", message)
        }
        LogError::Tree(_) => ApiError::new(StatusCode::BAD_REQUEST, "tree", message),
        LogError::Storage(_) | LogError::Codec(_) | LogError::Time(_) => {
            ApiError::internal(message)
        }
    }
    .with_index(index)
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let index = e.event_index();
        let message = e.to_string();
        match e {
            AppError::Log(l) => from_log(l, index),
            AppError::Format { index, error } => ApiError::format(index, &error),
            AppError::Rejected { error, .. } => {
                let rule = serde_json::to_value(error.rule)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "invalid".into());
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, rule, message)
                    .with_field(error.field)
                    .with_index(index)
            }
            AppError::IdConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "id_conflict", message)
                    .with_field("id")
                    .with_index(index)
            }
            AppError::VersionConflict {
                stream,
                expected,
                actual,
                ..
            } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "version_conflict", message)
                    .with_field("expectedversion")
                    .with_index(index);
                let expected = match expected {
                    crate::log::ExpectedVersion::Any => json!("any"),
                    crate::log::ExpectedVersion::NoStream => json!("none"),
                    crate::log::ExpectedVersion::Exact(v) => json!(v),
                };
                e.details.insert("stream".into(), json!(stream));
                e.details.insert("expected".into(), expected);
                e.details.insert("actual".into(), json!(actual));
                e
            }
            AppError::InFlight { .. } => ApiError::new(StatusCode::CONFLICT, "in_flight", message)
                .with_field("id")
                .with_index(index),
            AppError::PartialDuplicate { .. } => {
                ApiError::new(StatusCode::CONFLICT, "partial_duplicate", message)
            }
            AppError::Undecodable { .. } => ApiError::internal(message),
            AppError::UnknownMetric { .. } => ApiError::not_found("unknown_metric", message),
            AppError::UnknownProjection { .. } => {
                ApiError::not_found("unknown_projection", message)
            }
            AppError::Usage(_) => ApiError::new(StatusCode::BAD_REQUEST, "usage", message),
            AppError::Forbidden { index, refusal } => ApiError::forbidden(index, refusal.rule),
            // The records hold amounts no i64 sums: an operator must look, not the caller.
            AppError::SumOverflow { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "sum_overflow", message)
            }
        }
    }
}
