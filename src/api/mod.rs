//! The HTTP service (`carelog serve`): a thin shell over the application layer on tokio + axum.
//! It parses requests, asks [`crate::app::access`] who the caller is and whether they may, calls
//! the same [`App`] methods the CLI calls (on blocking threads: the log and sled block), and
//! formats the answer. No business rule lives here.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /healthz` | anyone | 200 while appends are taken; 503 `disk full: appends refused` (or `appends refused`) while not |
//! | `GET /v1/openapi.json` | anyone | the OpenAPI 3.0 document of these routes ([`openapi`]) |
//! | `POST /v1/events` | recorder, admin | one CloudEvent or an array, all or nothing; `{"acks":[…]}` once durable |
//! | `GET /v1/events?from=N&limit=M` | auditor, admin | events in order |
//! | `GET /v1/streams/{stream}?from=V&limit=M` | supervisor, auditor, admin | one stream |
//! | `GET /v1/subscribe?from=N` | auditor, admin | Server-Sent Events from N, then live; `id:` is the position |
//! | `GET /v1/report` | supervisor, auditor, admin | the programme report (`as_of`, `at_position`, `period`, `lang`) |
//! | `GET /v1/projections`, `/v1/projections/{name}` | supervisor, auditor, admin | as the CLI |
//! | `GET /v1/explain/{metric}` | supervisor, auditor, admin | a figure and the events behind it |
//! | `GET /v1/claims` | supervisor, auditor, admin | the claims check |
//! | `POST /v1/claims` | supervisor (scoped: its unit), admin | file claims, all or none |
//! | `GET /v1/verify`, `/v1/digest` | auditor, admin | as the CLI |
//! | `GET /v1/export` | auditor, admin | every event as JSON lines, streamed |
//! | `GET /v1/checkpoint?size=N` | supervisor, auditor, admin | the signed checkpoint (text/plain), as `carelog checkpoint` |
//! | `GET /v1/proof/inclusion?position=P&size=N` | supervisor, auditor, admin | as `carelog prove inclusion --json` |
//! | `GET /v1/proof/consistency?old_size=M&size=N` | supervisor, auditor, admin | as `carelog prove consistency --json` |
//! | `GET /metrics` | admin | Prometheus text |
//! | `POST /v1/tokens`, `POST /v1/tokens/{id}/revoke` | admin | grant and revoke tokens (events) |
//!
//! `POST /v1/events` answers 201 when it wrote something and 200 when every event was already in
//! the log (a resend, acked with its original position and `"duplicate": true`). The recording
//! actor of what it writes is the token's holder ([`crate::app::access::Principal::actor`]),
//! never a field of the request.
//!
//! A route that takes a body (`POST`) checks the bearer token before it reads a byte of it: a
//! client without a usable token is answered 401 at once, whatever it claims to send.
//!
//! Every refusal is a JSON body ([`ApiError`]). Bounds: a body is at most [`MAX_BODY_BYTES`] and
//! [`MAX_EVENTS_PER_POST`] events (413 beyond), read within the body timeout (408 beyond), and
//! bodies being read hold at most [`MAX_BODY_BUDGET_BYTES`] together (503 beyond); connections
//! are bounded in number, time and buffer ([`server`], [`Limits`]); at most
//! [`Limits::max_requests`] requests are served at once and one more is shed with 503; a
//! request that takes longer than
//! [`REQUEST_TIMEOUT_SECONDS`] gets 503 (an append it started still completes: resend with the
//! same ids to learn its positions); at most [`MAX_SUBSCRIBERS`] subscribers,
//! [`MAX_EXPORTS`] exports and [`MAX_HEAVY_QUERIES`] replays (report, projections, explain,
//! claims, verify) run at once, and one more gets 503. Streams (subscribe, export) are fed by a
//! thread through a channel of [`STREAM_CHANNEL_CAPACITY`] items: a slow client slows its thread,
//! never grows memory. A stream asks the app whether its token is still valid before each item
//! it sends: revocation or expiry ends it at once.
//!
//! Logs: one line per response (method, path, the caller's token holder as `actor`, status,
//! latency, and a refusal's rule and message): at INFO, at WARN for a 503 (a shed request, a
//! bound reached), at ERROR for other 5xx (a fault of the store or of this build). `RUST_LOG`
//! filters (e.g. `RUST_LOG=warn`).
//!
//! Shutdown (SIGINT, SIGTERM): the listener closes, streams end, open requests finish, for at
//! most [`SHUTDOWN_GRACE_SECONDS`]; what was acknowledged is durable already.

mod error;
mod metrics;
mod openapi;
mod proofs;
mod routes;
pub mod server;
mod streams;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tokio::sync::{Semaphore, watch};
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use server::Limits;

use crate::app::access::{self, Action, Principal};
use crate::app::{App, AppError};

/// The largest request body taken.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The most events one POST may carry (one all-or-nothing batch).
pub const MAX_EVENTS_PER_POST: usize = 1_000;
/// Requests served at once by default; one more is answered 503 at once (load shedding).
pub const MAX_CONCURRENT_REQUESTS: usize = 512;
/// The bytes of request bodies being read at once, together; a body that would pass it is 503.
pub const MAX_BODY_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// The longest a request may take to produce its response head.
pub const REQUEST_TIMEOUT_SECONDS: u64 = 60;
/// Live Server-Sent Events subscribers.
pub const MAX_SUBSCRIBERS: usize = 64;
/// Exports streaming at once.
pub const MAX_EXPORTS: usize = 4;
/// Replays (report, projections, explain, claims, verify) running at once.
pub const MAX_HEAVY_QUERIES: usize = 4;
/// Items (events, or chunks of an export) buffered between a stream's thread and its client.
pub const STREAM_CHANNEL_CAPACITY: usize = 256;
/// The most events one `GET /v1/events` or `/v1/streams/…` returns.
pub const MAX_READ_LIMIT: usize = 10_000;
/// How long shutdown waits for open connections before closing them.
pub const SHUTDOWN_GRACE_SECONDS: u64 = 10;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    shared: Arc<Shared>,
}

struct Shared {
    app: Arc<App>,
    metrics: metrics::Metrics,
    subscribers: Arc<metrics::Subscribers>,
    exports: Arc<Semaphore>,
    heavy: Arc<Semaphore>,
    /// Set once shutdown begins: stream threads stop at their next check.
    stopping: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
    /// Stream threads still running.
    threads: Arc<AtomicUsize>,
    limits: Limits,
    /// Bytes of request bodies being read, against [`MAX_BODY_BUDGET_BYTES`].
    body_budget: Arc<Semaphore>,
    /// The store's checkpoint signer, loaded (or made) at the first checkpoint asked for.
    signer: std::sync::Mutex<Option<crate::merkle::note::NoteSigner>>,
}

impl ApiState {
    fn new(
        app: Arc<App>,
        limits: Limits,
        stop: watch::Receiver<bool>,
        stopping: Arc<AtomicBool>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                app,
                limits,
                body_budget: Arc::new(Semaphore::new(MAX_BODY_BUDGET_BYTES)),
                signer: std::sync::Mutex::new(None),
                metrics: metrics::Metrics::default(),
                subscribers: Arc::new(metrics::Subscribers::default()),
                exports: Arc::new(Semaphore::new(MAX_EXPORTS)),
                heavy: Arc::new(Semaphore::new(MAX_HEAVY_QUERIES)),
                stopping,
                stop,
                threads: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    fn app(&self) -> &Arc<App> {
        &self.shared.app
    }

    /// Runs a blocking application call on tokio's blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&App) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_api(move |app| f(app).map_err(ApiError::from))
            .await
    }

    /// [`ApiState::run`] for work that refuses with an [`ApiError`] of its own.
    async fn run_api<T: Send + 'static>(
        &self,
        f: impl FnOnce(&App) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let app = self.shared.app.clone();
        match tokio::task::spawn_blocking(move || f(&app)).await {
            Ok(result) => result,
            Err(e) => Err(ApiError::internal(format!(
                "a worker failed while serving the request ({e}): retry; if it persists, see the server's log"
            ))),
        }
    }

    /// Who the caller is (from `Authorization: Bearer …`) and whether their role may `action`.
    async fn authorize(&self, headers: &HeaderMap, action: Action) -> Result<Principal, ApiError> {
        let bearer = bearer_of(headers);
        let span = tracing::Span::current();
        self.run_api(move |app| authorize_in(app, bearer.as_deref(), action, &span))
            .await
    }

    /// A permit for a replay, or 503 when [`MAX_HEAVY_QUERIES`] are running.
    fn heavy_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.shared.heavy.clone().try_acquire_owned().map_err(|_| {
            ApiError::overloaded(format!(
                "{MAX_HEAVY_QUERIES} reports or replays are running: retry shortly"
            ))
        })
    }
}

/// [`ApiState::authorize`] on the calling (blocking) thread; records the actor in `span`.
pub(super) fn authorize_in(
    app: &App,
    bearer: Option<&str>,
    action: Action,
    span: &tracing::Span,
) -> Result<Principal, ApiError> {
    let who = app.authenticate(bearer)??;
    access::permit(&who, action).map_err(|e| {
        // Which rule refused: the role, or (when the same role unscoped would pass) the scope.
        let unscoped = Principal {
            unit_id: None,
            ..who.clone()
        };
        let rule = if access::permit(&unscoped, action).is_ok() {
            "unit_scope"
        } else {
            "role"
        };
        ApiError::from(e).with_rule(rule)
    })?;
    span.record("actor", who.actor());
    Ok(who)
}

/// The bearer string of a request, if it sent one.
pub(super) fn bearer_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Every route the service answers, as (method, path template): the router is built from this
/// list and the OpenAPI document ([`openapi`]) must describe each entry (`tests/http_openapi.rs`).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/events"),
    ("GET", "/v1/events"),
    ("GET", "/v1/streams/{stream}"),
    ("GET", "/v1/subscribe"),
    ("GET", "/v1/report"),
    ("GET", "/v1/projections"),
    ("GET", "/v1/projections/{name}"),
    ("GET", "/v1/explain/{metric}"),
    ("GET", "/v1/claims"),
    ("POST", "/v1/claims"),
    ("GET", "/v1/verify"),
    ("GET", "/v1/digest"),
    ("GET", "/v1/export"),
    ("GET", "/v1/checkpoint"),
    ("GET", "/v1/proof/inclusion"),
    ("GET", "/v1/proof/consistency"),
    ("POST", "/v1/tokens"),
    ("POST", "/v1/tokens/{token_id}/revoke"),
    ("GET", "/metrics"),
];

/// The handler of one entry of [`ROUTES`]; `None` for a pair no handler serves (an entry
/// without one is answered 404, which the route test catches).
fn handler_of(method: &str, path: &str) -> Option<MethodRouter<ApiState>> {
    Some(match (method, path) {
        ("GET", "/healthz") => get(routes::healthz),
        ("GET", "/v1/openapi.json") => get(openapi::serve),
        ("POST", "/v1/events") => post(routes::post_events),
        ("GET", "/v1/events") => get(routes::get_events),
        ("GET", "/v1/streams/{stream}") => get(routes::get_stream),
        ("GET", "/v1/subscribe") => get(streams::subscribe),
        ("GET", "/v1/report") => get(routes::report),
        ("GET", "/v1/projections") => get(routes::projections),
        ("GET", "/v1/projections/{name}") => get(routes::project),
        ("GET", "/v1/explain/{metric}") => get(routes::explain),
        ("GET", "/v1/claims") => get(routes::claims),
        ("POST", "/v1/claims") => post(routes::post_claims),
        ("GET", "/v1/verify") => get(routes::verify),
        ("GET", "/v1/digest") => get(routes::digest),
        ("GET", "/v1/export") => get(streams::export),
        ("GET", "/v1/checkpoint") => get(proofs::checkpoint),
        ("GET", "/v1/proof/inclusion") => get(proofs::inclusion),
        ("GET", "/v1/proof/consistency") => get(proofs::consistency),
        ("POST", "/v1/tokens") => post(routes::create_token),
        ("POST", "/v1/tokens/{token_id}/revoke") => post(routes::revoke_token),
        ("GET", "/metrics") => get(routes::metrics),
        _ => return None,
    })
}

/// The routes of [`ROUTES`], each handler with the shared state (no middleware: see [`serve`]).
fn router(state: ApiState) -> Router {
    // One `MethodRouter` per path: axum refuses the same path routed twice.
    let mut by_path: Vec<(&str, MethodRouter<ApiState>)> = Vec::new();
    for (method, path) in ROUTES {
        let Some(handler) = handler_of(method, path) else {
            continue;
        };
        match by_path.iter_mut().find(|(p, _)| p == path) {
            Some((_, routed)) => *routed = std::mem::take(routed).merge(handler),
            None => by_path.push((path, handler)),
        }
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
        .with_state(state)
}

fn shed(max_requests: usize, e: &tower::BoxError) -> ApiError {
    ApiError::overloaded(format!(
        "the service is at its limit of {max_requests} requests at once ({e}): retry shortly"
    ))
}

/// The one log line of a response: its level follows the status (a 503 is a bound reached,
/// WARN; another 5xx a fault, ERROR); a refusal's rule and message come from the [`ApiError`]
/// that made it.
fn log_response<B>(response: &axum::http::Response<B>, latency: Duration) {
    let status = response.status();
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    let (rule, message) = response
        .extensions()
        .get::<error::Refusal>()
        .map_or(("", ""), |r| (r.rule.as_str(), r.message.as_str()));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(status = status.as_u16(), latency_us, rule, "{message}");
    } else if status.is_server_error() {
        tracing::error!(status = status.as_u16(), latency_us, rule, "{message}");
    } else if rule.is_empty() {
        tracing::info!(status = status.as_u16(), latency_us, "answered");
    } else {
        tracing::info!(status = status.as_u16(), latency_us, rule, "{message}");
    }
}

/// The answer to a path no route has: the routes there are, from [`ROUTES`].
fn no_route_message() -> String {
    let mut paths: Vec<&str> = ROUTES.iter().map(|(_, path)| *path).collect();
    paths.dedup();
    format!(
        "no such route: the service has {} (GET /v1/openapi.json describes them)",
        paths.join(", ")
    )
}

/// Counts every response, and gives the ones the framework or a layer made (404, 405, 413, a
/// timeout's 503) the same JSON error body as the handlers'.
async fn json_errors(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    state.shared.metrics.count_response(status.as_u16());
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::not_found("no_route", no_route_message()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this route does not take that method (see the Allow header)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "body_too_large",
            format!(
                "the body is larger than {MAX_BODY_BYTES} bytes: send fewer events per request"
            ),
        )
        .with_field("body"),
        StatusCode::SERVICE_UNAVAILABLE => ApiError::overloaded(format!(
            "the request took longer than {REQUEST_TIMEOUT_SECONDS} s: retry (an append resent with the same ids is answered with its positions)"
        )),
        _ => ApiError::new(
            status,
            "bad_request",
            if text.is_empty() {
                status.to_string()
            } else {
                text
            },
        ),
    };
    let mut out = error.into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Serves the application on a bound listener until `signal` completes, then shuts down:
/// streams end, open requests get [`SHUTDOWN_GRACE_SECONDS`] to finish.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    limits: Limits,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopping = Arc::new(AtomicBool::new(false));
    let state = ApiState::new(app, limits, stop_rx.clone(), stopping.clone());
    let threads = state.shared.threads.clone();
    let max_requests = limits.max_requests;
    // The middleware wraps the whole router, not each route (as `Router::layer` would), so the
    // concurrency limit is one limit for the service. Outermost first.
    let service = ServiceBuilder::new()
        // Sees every response, the layers' own included.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            json_errors,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        actor = tracing::field::Empty,
                    )
                })
                .on_response(
                    |response: &axum::http::Response<_>, latency, _: &tracing::Span| {
                        log_response(response, latency);
                    },
                )
                // `log_response` logs every response once, the failures included.
                .on_failure(()),
        )
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(HandleErrorLayer::new(
            move |e: tower::BoxError| async move { shed(max_requests, &e) },
        ))
        .load_shed()
        .concurrency_limit(max_requests)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(REQUEST_TIMEOUT_SECONDS),
        ))
        .service(router(state));
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutting down: closing streams, finishing open requests");
        stopping.store(true, Ordering::SeqCst);
        let _ = stop_tx.send(true);
    });
    let result = server::run(
        listener,
        service,
        limits,
        stop_rx,
        Duration::from_secs(SHUTDOWN_GRACE_SECONDS),
    )
    .await;
    // Stream threads see the stop flag within a second; let them finish before the store closes.
    for _ in 0..40 {
        if threads.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    result
}
