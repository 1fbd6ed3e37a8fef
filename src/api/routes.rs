//! The request handlers: each authorizes, parses, calls one application method on a blocking
//! thread, and formats. Subscribe and export, which stream, are in `streams`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    ApiError, ApiState, MAX_BODY_BUDGET_BYTES, MAX_BODY_BYTES, MAX_EVENTS_PER_POST, MAX_READ_LIMIT,
};
use crate::app::access::{self, Action};
use crate::app::claims::{ClaimInput, MAX_CLAIMS_PER_BATCH};
use crate::app::report::{check_metric_name, check_projection_name, projection_list};
use crate::app::{AppError, LoggedEvent};
use crate::domain::cloudevent::{self, IncomingEvent};
use crate::log::MAX_NAME_BYTES;
use crate::projection::{AsOf, Period, Query as ProjectionQuery};
use crate::time;

/// The events a read returns when the caller names no limit.
const DEFAULT_READ_LIMIT: usize = 100;

/// A request's query parameters, with typed access that names the parameter in its errors.
pub(super) struct Params(BTreeMap<String, String>);

impl Params {
    /// Refuses parameters the route does not take (a typo should not silently mean the default).
    pub(super) fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(ApiError::bad_request(
                k,
                "unknown_parameter",
                format!(
                    "this route takes no parameter {k:?}; it takes: {}",
                    allowed.join(", ")
                ),
            )),
        }
    }

    pub(super) fn u64(&self, name: &str, default: u64) -> Result<u64, ApiError> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                ApiError::bad_request(
                    name,
                    "not_a_number",
                    format!("{name}={v:?} is not a whole number"),
                )
            }),
        }
    }

    /// A whole-number parameter the caller may leave out.
    pub(super) fn optional_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.0.contains_key(name) {
            false => Ok(None),
            true => self.u64(name, 0).map(Some),
        }
    }

    /// A whole-number parameter the route needs.
    pub(super) fn required_u64(&self, name: &str) -> Result<u64, ApiError> {
        self.optional_u64(name)?.ok_or_else(|| {
            ApiError::bad_request(
                name,
                "missing_parameter",
                format!("this route needs {name}=N (a whole number)"),
            )
        })
    }

    fn limit(&self) -> Result<usize, ApiError> {
        let limit = self.u64("limit", DEFAULT_READ_LIMIT as u64)?;
        if limit == 0 || limit > MAX_READ_LIMIT as u64 {
            return Err(ApiError::bad_request(
                "limit",
                "out_of_range",
                format!("limit is 1..={MAX_READ_LIMIT}: page with `from`"),
            ));
        }
        Ok(usize::try_from(limit).unwrap_or(MAX_READ_LIMIT))
    }

    fn as_of(&self) -> Result<AsOf, ApiError> {
        match (self.0.get("as_of"), self.0.get("at_position")) {
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "as_of",
                "conflict",
                "give as_of or at_position, not both",
            )),
            (Some(t), None) => time::parse_as_of(t).map(AsOf::Time).map_err(|e| {
                ApiError::bad_request("as_of", "not_a_time", format!("as_of={t:?}: {e}"))
            }),
            (None, Some(_)) => Ok(AsOf::Position(self.u64("at_position", 0)?)),
            (None, None) => Ok(AsOf::Now),
        }
    }

    fn period(&self) -> Result<Option<Period>, ApiError> {
        match self.0.get("period") {
            None => Ok(None),
            Some(text) => Period::parse(text).map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    "period",
                    "not_a_period",
                    format!(
                        "period={text:?}: use FROM..TO with dates YYYY-MM-DD, FROM not after TO"
                    ),
                )
            }),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let Query(map) = Query::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("query", "bad_query", e.body_text()))?;
        Ok(Params(map))
    }
}

/// A page of events in their CloudEvents form.
fn page(events: &[LoggedEvent], from: u64, head_position: u64) -> Value {
    let next = events.last().map_or(from, |e| e.recorded.position + 1);
    let list: Vec<Value> = events
        .iter()
        .map(|e| crate::app::export::to_cloudevent(&e.recorded, &e.event))
        .collect();
    json!({"events": list, "next_from": next, "head_position": head_position})
}

/// A request body read whole, with its share of [`MAX_BODY_BUDGET_BYTES`] (given back when
/// this is dropped).
pub(super) struct ReadBody {
    pub bytes: axum::body::Bytes,
    _budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than {MAX_BODY_BYTES} bytes: send fewer events per request"),
    )
    .with_field("body")
}

/// Reads a request body whole: up to [`MAX_BODY_BYTES`] (413 beyond), within the body timeout
/// (408 beyond), each chunk taken from the budget of all bodies being read (503 when it is
/// spent). Memory follows the bytes that came, never the length a client announced.
pub(super) async fn read_body(state: &ApiState, body: Body) -> Result<ReadBody, ApiError> {
    let budget = state.shared.body_budget.clone();
    let timeout = state.shared.limits.body_timeout;
    let read = async move {
        let mut stream = body.into_data_stream();
        let mut bytes: Vec<u8> = Vec::new();
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| {
                let limited =
                    std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |err| {
                        err.source()
                    })
                    .any(|err| err.is::<http_body_util::LengthLimitError>());
                if limited {
                    too_large()
                } else {
                    ApiError::bad_request(
                        "body",
                        "unreadable",
                        format!("could not read the body: {e}"),
                    )
                }
            })?;
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            let more = u32::try_from(chunk.len())
                .ok()
                .and_then(|n| budget.clone().try_acquire_many_owned(n).ok())
                .ok_or_else(|| {
                    ApiError::overloaded(format!(
                        "the bodies being received hold {} MiB, the service's bound: retry shortly",
                        MAX_BODY_BUDGET_BYTES >> 20
                    ))
                })?;
            match held.as_mut() {
                Some(permit) => permit.merge(more),
                None => held = Some(more),
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(ReadBody {
            bytes: bytes.into(),
            _budget: held,
        })
    };
    tokio::time::timeout(timeout, read).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive whole within {} s: send it at once, or in smaller requests",
                timeout.as_secs()
            ),
        )
        .with_field("body"))
    })
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            "body",
            "json",
            format!("the body is not JSON ({e}); nothing was written"),
        )
    })
}

pub(super) async fn healthz(State(state): State<ApiState>) -> Response {
    let log = state.app().log();
    let head = log.head_position();
    // 503 while appends are refused: a probe must not call a store that cannot write healthy.
    let (status, refused) = match log.write_health() {
        crate::log::WriteHealth::Ok => {
            return Json(json!({"status": "ok", "head_position": head})).into_response();
        }
        crate::log::WriteHealth::DiskFull { path, detail } => (
            "disk full: appends refused",
            format!(
                "the disk holding {} is full ({detail}); free space: the next append recovers without a restart",
                path.display()
            ),
        ),
        crate::log::WriteHealth::Poisoned(reason) => (
            "appends refused",
            format!("a commit failed ({reason}); restart carelog, then run `carelog verify`"),
        ),
    };
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": status, "head_position": head, "message": refused})),
    )
        .into_response()
}

/// A posted body of one `thing` (an object) or an array of at most `max` (`things`, in the
/// 413's rule `too_many_{things}`).
fn one_or_many(
    bytes: &[u8],
    thing: &str,
    things: &str,
    max: usize,
) -> Result<Vec<Value>, ApiError> {
    let values = match parse_json(bytes)? {
        Value::Array(list) => list,
        one @ Value::Object(_) => vec![one],
        _ => {
            return Err(ApiError::bad_request(
                "body",
                "format",
                format!("the body is one {thing} (an object) or an array of them"),
            ));
        }
    };
    if values.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("too_many_{things}"),
            format!(
                "{} {things} in one request; at most {max}: split them",
                values.len()
            ),
        )
        .with_field("body"));
    }
    Ok(values)
}

/// The events of a posted body: one CloudEvent or an array of at most [`MAX_EVENTS_PER_POST`].
fn parse_events(bytes: &[u8]) -> Result<Vec<IncomingEvent>, ApiError> {
    let values = one_or_many(bytes, "CloudEvent", "events", MAX_EVENTS_PER_POST)?;
    if values.is_empty() {
        return Err(ApiError::bad_request(
            "body",
            "format",
            "the array holds no events",
        ));
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| cloudevent::parse_value(v).map_err(|e| ApiError::format(i, &e)))
        .collect()
}

/// `POST /v1/events`: one CloudEvent or an array of them, appended all or none.
pub(super) async fn post_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The token is checked before a byte of the body is read (a stranger gets 401 at once,
    // whatever length it announced), and again when the events are appended (it may have been
    // revoked while the body came).
    let bearer = super::bearer_of(&headers);
    state.authorize(&headers, Action::Record).await?;
    let body = read_body(&state, body).await?;
    let span = tracing::Span::current();
    let started = Instant::now();
    let acks = state
        .run_api(move |app| {
            let who = super::authorize_in(app, bearer.as_deref(), Action::Record, &span)?;
            let incoming = parse_events(&body.bytes)?;
            app.append_as(&who, incoming).map_err(ApiError::from)
        })
        .await?;
    let metrics = &state.shared.metrics;
    metrics.append_latency.observe(started.elapsed());
    metrics.append_requests.fetch_add(1, Ordering::Relaxed);
    let duplicates = acks.iter().filter(|a| a.duplicate).count() as u64;
    metrics
        .duplicate_events
        .fetch_add(duplicates, Ordering::Relaxed);
    metrics
        .appended_events
        .fetch_add(acks.len() as u64 - duplicates, Ordering::Relaxed);
    let status = if acks.iter().all(|a| a.duplicate) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let list: Vec<Value> = acks
        .iter()
        .map(|a| {
            json!({"id": a.event_id, "position": a.position, "stream_version": a.stream_version, "duplicate": a.duplicate})
        })
        .collect();
    Ok((status, Json(json!({ "acks": list }))).into_response())
}

/// `GET /v1/events?from=N&limit=M`.
pub(super) async fn get_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::ReadLog).await?;
    params.only(&["from", "limit"])?;
    let from = params.u64("from", 1)?.max(1);
    let limit = params.limit()?;
    let (events, head) = state
        .run(move |app| Ok((app.read_from(from, limit)?, app.log().head_position())))
        .await?;
    Ok(Json(page(&events, from, head)).into_response())
}

/// `GET /v1/streams/{stream}?from=V&limit=M`.
pub(super) async fn get_stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(stream): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let who = state.authorize(&headers, Action::ReadStream).await?;
    params.only(&["from", "limit"])?;
    if stream.is_empty() || stream.len() > MAX_NAME_BYTES {
        return Err(ApiError::bad_request(
            "stream",
            "invalid",
            format!("a stream name is 1..={MAX_NAME_BYTES} bytes, e.g. pairing-<uuid>"),
        ));
    }
    let from = params.u64("from", 1)?.max(1);
    let limit = params.limit()?;
    let name = stream.clone();
    let (events, version) = state
        .run_api(move |app| {
            let events = app
                .read_stream_for(&who, &name, from, limit)
                .map_err(ApiError::from)?;
            Ok((
                events,
                app.log().stream_version(&name).map_err(AppError::from)?,
            ))
        })
        .await?;
    let list: Vec<Value> = events
        .iter()
        .map(|e| crate::app::export::to_cloudevent(&e.recorded, &e.event))
        .collect();
    let next = events
        .last()
        .map_or(from, |e| e.recorded.stream_version + 1);
    Ok(Json(
        json!({"stream": stream, "events": list, "next_from": next, "stream_version": version}),
    )
    .into_response())
}

/// `GET /v1/report?as_of=…&at_position=…&period=…&lang=en|zh`.
pub(super) async fn report(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::ReadFigures).await?;
    params.only(&["as_of", "at_position", "period", "lang"])?;
    let as_of = params.as_of()?;
    let period = params.period()?;
    let zh = match params.0.get("lang").map(String::as_str) {
        None | Some("en") => false,
        Some("zh") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "lang",
                "unknown_language",
                format!("lang={other:?}: use en or zh"),
            ));
        }
    };
    let permit = state.heavy_permit()?;
    let report = state
        .run(move |app| {
            let _permit = permit;
            app.report(as_of, period, zh, &mut |_, _| {})
        })
        .await?;
    Ok(Json(report).into_response())
}

/// `GET /v1/projections`: the registry, with versions.
pub(super) async fn projections(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::ReadFigures).await?;
    Ok(Json(projection_list()).into_response())
}

/// `GET /v1/projections/{name}?as_of=…&at_position=…&period=…&on=…&<param>=…`.
pub(super) async fn project(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::ReadFigures).await?;
    check_projection_name(&name)?;
    let mut query = ProjectionQuery {
        period: params.period()?,
        ..ProjectionQuery::default()
    };
    for (k, v) in &params.0 {
        match k.as_str() {
            "as_of" | "at_position" | "period" => {}
            "on" => {
                query.on = Some(crate::domain::Date::parse(v).ok_or_else(|| {
                    ApiError::bad_request("on", "not_a_date", format!("on={v:?}: use YYYY-MM-DD"))
                })?);
            }
            _ => {
                query.params.insert(k.clone(), v.clone());
            }
        }
    }
    let as_of = params.as_of()?;
    let permit = state.heavy_permit()?;
    let view = state
        .run(move |app| {
            let _permit = permit;
            app.project(&name, as_of, query, &mut |_, _| {})
        })
        .await?;
    Ok(Json(view).into_response())
}

/// `GET /v1/explain/{metric}?as_of=…&at_position=…&period=…`.
pub(super) async fn explain(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(metric): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::ReadFigures).await?;
    params.only(&["as_of", "at_position", "period"])?;
    check_metric_name(&metric)?;
    let as_of = params.as_of()?;
    let period = params.period()?;
    let permit = state.heavy_permit()?;
    let e = state
        .run(move |app| {
            let _permit = permit;
            app.explain(&metric, as_of, period, &mut |_, _| {})
        })
        .await?;
    Ok(Json(e).into_response())
}

/// `GET /v1/claims`: every claim against the records (a scoped supervisor: its unit's claims).
pub(super) async fn claims(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = state.authorize(&headers, Action::ReadClaims).await?;
    let permit = state.heavy_permit()?;
    let report = state
        .run(move |app| {
            let _permit = permit;
            app.claims_check_for(&who, &mut |_, _| {})
        })
        .await?;
    Ok(Json(report).into_response())
}

/// `POST /v1/claims`: one claim object or an array of them, filed all or none (admin, supervisor;
/// a scoped supervisor only within its unit); 201 with each claim's id and position.
pub(super) async fn post_claims(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bearer = super::bearer_of(&headers);
    state.authorize(&headers, Action::FileClaims).await?;
    let body = read_body(&state, body).await?;
    let span = tracing::Span::current();
    let filed = state
        .run_api(move |app| {
            let who = super::authorize_in(app, bearer.as_deref(), Action::FileClaims, &span)?;
            let claims = parse_claims(&body.bytes)?;
            app.file_claims_as(&who, claims).map_err(ApiError::from)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "claims": filed }))).into_response())
}

/// The claims of a `POST /v1/claims` body: a type error names the field and the claim's index.
fn parse_claims(bytes: &[u8]) -> Result<Vec<ClaimInput>, ApiError> {
    let values = one_or_many(bytes, "claim", "claims", MAX_CLAIMS_PER_BATCH)?;
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            serde_path_to_error::deserialize::<_, ClaimInput>(value).map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." {
                    "body".to_string()
                } else {
                    field
                };
                let mut refusal = ApiError::bad_request(
                    &field,
                    "format",
                    format!("claim {index}: {}; nothing was written", e.inner()),
                );
                refusal.index = Some(index);
                refusal
            })
        })
        .collect()
}

/// `GET /v1/verify?skip_indexes=true`: the store's verdict (`app::verify`, as `carelog verify
/// --json` gives it); 200 with `intact` either way.
pub(super) async fn verify(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::Verify).await?;
    params.only(&["skip_indexes"])?;
    let skip_indexes = match params.0.get("skip_indexes").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "skip_indexes",
                "not_a_bool",
                format!("skip_indexes={other:?}: use true or false"),
            ));
        }
    };
    let permit = state.heavy_permit()?;
    let report = state
        .run(move |app| {
            let _permit = permit;
            crate::app::verify::verify_store(app.log(), !skip_indexes, None, &mut |_| {})
        })
        .await?;
    Ok(Json(report).into_response())
}

/// `GET /v1/digest`: the head, to keep and check later.
pub(super) async fn digest(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::Verify).await?;
    Ok(Json(state.app().log().digest()).into_response())
}

/// `GET /metrics`: Prometheus text.
pub(super) async fn metrics(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::Metrics).await?;
    let log = state.app().log();
    let head = log.head_position();
    let lags = state.shared.subscribers.lags(head);
    let records = state.app().records_stats();
    let text = state
        .shared
        .metrics
        .render(&log.writer_stats(), head, &records, &lags);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    role: String,
    person_id: Option<Uuid>,
    unit_id: Option<Uuid>,
    /// Days until it expires (default 90).
    expires_in_days: Option<i64>,
}

/// `POST /v1/tokens` `{"role", "person_id"?, "unit_id"?, "expires_in_days"?}`: the new bearer
/// string, shown once.
pub(super) async fn create_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let who = state.authorize(&headers, Action::ManageTokens).await?;
    let body = read_body(&state, body).await?;
    let request: TokenRequest = serde_json::from_value(parse_json(&body.bytes)?)
        .map_err(|e| ApiError::bad_request("body", "format", format!("{e}")))?;
    let role = access::parse_role(&request.role)
        .map_err(|e| ApiError::bad_request("role", "unknown_role", e))?;
    let token = state
        .run(move |app| {
            app.create_token(
                role,
                request.person_id,
                request.unit_id,
                request
                    .expires_in_days
                    .unwrap_or(access::DEFAULT_TOKEN_DAYS),
                &who.actor(),
            )
        })
        .await?;
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    reason: Option<String>,
}

/// `POST /v1/tokens/{token_id}/revoke` `{"reason"?}`.
pub(super) async fn revoke_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(token_id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let who = state.authorize(&headers, Action::ManageTokens).await?;
    let token_id = Uuid::try_parse(&token_id).map_err(|e| {
        ApiError::bad_request("token_id", "not_a_uuid", format!("{token_id:?}: {e}"))
    })?;
    let body = read_body(&state, body).await?;
    let request: RevokeRequest = if body.bytes.iter().all(u8::is_ascii_whitespace) {
        RevokeRequest::default()
    } else {
        serde_json::from_value(parse_json(&body.bytes)?)
            .map_err(|e| ApiError::bad_request("body", "format", format!("{e}")))?
    };
    let reason = request
        .reason
        .unwrap_or_else(|| "revoked over HTTP by an admin".into());
    let ack = state
        .run(move |app| app.revoke_token(token_id, &reason, &who.actor()))
        .await?;
    Ok(Json(json!({"token_id": token_id, "position": ack.position})).into_response())
}
