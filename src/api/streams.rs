//! The two streaming routes: `GET /v1/subscribe` (Server-Sent Events) and `GET /v1/export`
//! (JSON lines). Each is fed by its own thread, which does the blocking reads (the log's
//! [`crate::log::Subscription`] waits on a condition variable; an export walks every segment),
//! through a bounded channel to the response body: a slow client makes its thread wait, and
//! memory stays flat however long the log is. A thread ends when its client goes away (the
//! channel closes), at the end of the log (export), when the server shuts down, or when its
//! token stops being valid: before each item it sends, a thread asks the app whether the token
//! it was opened with is still valid ([`TokenCheck`]), so a revocation or an expiry ends the
//! stream at once and nothing recorded after the revocation reaches it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{self, Stream};
use tokio::sync::{mpsc, watch};

use super::metrics::SubscriberGuard;
use super::routes::Params;
use super::{ApiError, ApiState, MAX_SUBSCRIBERS, STREAM_CHANNEL_CAPACITY};
use crate::app::access::Action;
use crate::app::{App, AppError, decode_recorded};

/// Events read from the log per wake-up of a subscriber's thread.
const SUBSCRIBE_BATCH_EVENTS: usize = 256;
/// How long a caught-up subscriber's thread waits for new events before it looks again at
/// whether its client or the server is still there.
const SUBSCRIBE_POLL: Duration = Duration::from_millis(500);
/// An export sends its lines in chunks of about this many bytes.
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;
/// The response header naming the head position an export runs to.
const HEAD_HEADER: &str = "x-carelog-head-position";

/// The token a stream was opened with, asked about before each item the stream sends.
struct TokenCheck {
    app: Arc<App>,
    bearer: Option<String>,
}

impl TokenCheck {
    fn new(app: &Arc<App>, headers: &HeaderMap) -> Self {
        Self {
            app: app.clone(),
            bearer: super::bearer_of(headers),
        }
    }

    /// Why the stream must end now, if it must: the app's answer on the token (revoked,
    /// expired, unknown), or the store's failure to answer.
    fn refusal(&self) -> Option<ApiError> {
        match self.app.authenticate(self.bearer.as_deref()) {
            Ok(Ok(_)) => None,
            Ok(Err(refused)) => Some(refused.into()),
            Err(e) => Some(e.into()),
        }
    }
}

/// The items of a channel, as a stream.
fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Completes when shutdown begins.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Keeps the count of running stream threads.
struct ThreadCount(Arc<AtomicUsize>);

impl Drop for ThreadCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn spawn_stream_thread(
    name: &str,
    threads: &Arc<AtomicUsize>,
    work: impl FnOnce() + Send + 'static,
) -> Result<(), ApiError> {
    threads.fetch_add(1, Ordering::SeqCst);
    let count = ThreadCount(threads.clone());
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _count = count;
            work();
        })
        .map(|_| ())
        .map_err(|e| ApiError::overloaded(format!("could not start a stream thread ({e}): retry")))
}

/// `GET /v1/subscribe?from=N`: every event from position N (default 1), then live ones, each
/// only once durable. `Last-Event-ID: P` (sent by a reconnecting EventSource) resumes after P
/// and wins over `from`.
pub(super) async fn subscribe(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::Subscribe).await?;
    params.only(&["from"])?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Last-Event-ID",
                    "not_a_number",
                    "Last-Event-ID is the position of the last event received",
                )
            })?,
        None => params.u64("from", 1)?.saturating_sub(1),
    };
    let shared = &state.shared;
    let guard = shared.subscribers.register(after, MAX_SUBSCRIBERS)?;
    let (tx, rx) = mpsc::channel::<Event>(STREAM_CHANNEL_CAPACITY);
    let token = TokenCheck::new(state.app(), &headers);
    let stopping = shared.stopping.clone();
    spawn_stream_thread("carelog-subscriber", &shared.threads, move || {
        follow(&token, after, &tx, &guard, &stopping);
    })?;
    let events = receiver_stream(rx)
        .map(Ok::<_, Infallible>)
        .take_until(stopped(shared.stop.clone()));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn error_event(e: &ApiError) -> Event {
    Event::default().event("error").data(e.body().to_string())
}

/// A subscriber's thread: reads durable events after `after` and sends them until the client
/// goes away, the server stops or the token is no longer valid (asked before each event, and
/// at each wake-up with none, so an expiry ends an idle stream too).
fn follow(
    token: &TokenCheck,
    after: u64,
    tx: &mpsc::Sender<Event>,
    guard: &SubscriberGuard,
    stopping: &AtomicBool,
) {
    let mut subscription = token.app.log().subscribe(after);
    while !stopping.load(Ordering::SeqCst) && !tx.is_closed() {
        let batch = match subscription.next_batch(SUBSCRIBE_BATCH_EVENTS, SUBSCRIBE_POLL) {
            Ok(batch) => batch,
            Err(e) => {
                let _ = tx.blocking_send(error_event(&AppError::from(e).into()));
                return;
            }
        };
        if batch.is_empty()
            && let Some(refused) = token.refusal()
        {
            let _ = tx.blocking_send(error_event(&refused));
            return;
        }
        for recorded in batch {
            // The revocation is folded into the records before it is durable, so by the time
            // this thread reads it (or anything after it), the token is refused here.
            if let Some(refused) = token.refusal() {
                let _ = tx.blocking_send(error_event(&refused));
                return;
            }
            let position = recorded.position;
            let event = match decode_recorded(recorded) {
                Ok(e) => Event::default()
                    .id(position.to_string())
                    .data(crate::app::export::to_cloudevent(&e.recorded, &e.event).to_string()),
                Err(e) => {
                    let _ = tx.blocking_send(error_event(&e.into()));
                    return;
                }
            };
            if tx.blocking_send(event).is_err() {
                return;
            }
            guard.sent(position);
        }
    }
}

/// `GET /v1/export`: every event as JSON lines, exactly what `carelog append` and
/// `POST /v1/events` accept (same ids), up to the head when the export began (named in the
/// `x-carelog-head-position` header). A failure midway aborts the body, so a client never
/// mistakes a partial export for a whole one.
pub(super) async fn export(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Action::Export).await?;
    let shared = &state.shared;
    let permit = shared.exports.clone().try_acquire_owned().map_err(|_| {
        ApiError::overloaded(format!(
            "{} exports are running: retry when one ends",
            super::MAX_EXPORTS
        ))
    })?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(STREAM_CHANNEL_CAPACITY);
    let token = TokenCheck::new(state.app(), &headers);
    let head = state.app().log().head_position();
    let stopping = shared.stopping.clone();
    spawn_stream_thread("carelog-export", &shared.threads, move || {
        let _permit = permit;
        write_export(&token, head, &tx, &stopping);
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::HeaderName::from_static(HEAD_HEADER),
                head.to_string(),
            ),
        ],
        Body::from_stream(receiver_stream(rx)),
    )
        .into_response())
}

/// Why an export's walk stopped early.
enum Stop {
    AtHead,
    ClientGone,
    /// A fault: the walk could not go on.
    Failed(String),
    /// Ended on purpose: the token is no longer valid, or the server stops.
    Ended(String),
}

/// Sends one chunk of an export once the token is still valid: Err(why not) when the export
/// must end.
fn send_chunk(
    token: &TokenCheck,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    chunk: Vec<u8>,
) -> Result<(), Stop> {
    if let Some(refused) = token.refusal() {
        return Err(Stop::Ended(refused.message));
    }
    tx.blocking_send(Ok(Bytes::from(chunk)))
        .map_err(|_| Stop::ClientGone)
}

fn write_export(
    token: &TokenCheck,
    head: u64,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    stopping: &AtomicBool,
) {
    let mut chunk: Vec<u8> = Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096);
    let mut stop: Option<Stop> = None;
    let walked = token.app.for_each_event(1, |e| {
        if e.recorded.position > head {
            stop = Some(Stop::AtHead);
            return Err(AppError::Usage("the export reached its head".into()));
        }
        if stopping.load(Ordering::Relaxed) {
            stop = Some(Stop::Ended(
                "the server is shutting down: export again once it is back".into(),
            ));
            return Err(AppError::Usage("shutting down".into()));
        }
        let line = crate::app::export::export_line(&e.recorded, &e.event)?;
        if let Err(err) = serde_json::to_writer(&mut chunk, &line) {
            stop = Some(Stop::Failed(format!(
                "event at position {} could not be written as JSON: {err}",
                e.recorded.position
            )));
            return Err(AppError::Usage("unwritable".into()));
        }
        chunk.push(b'\n');
        if chunk.len() >= EXPORT_CHUNK_BYTES {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096));
            if let Err(why) = send_chunk(token, tx, full) {
                stop = Some(why);
                return Err(AppError::Usage("the export ended early".into()));
            }
        }
        Ok(())
    });
    let failure = match (walked, stop) {
        (Ok(()), _) | (Err(_), Some(Stop::AtHead)) => None,
        (Err(_), Some(Stop::ClientGone)) => return,
        (Err(_), Some(Stop::Failed(message))) => Some((true, message)),
        (Err(_), Some(Stop::Ended(message))) => Some((false, message)),
        (Err(e), None) => Some((true, e.to_string())),
    };
    let failure = match failure {
        None if chunk.is_empty() => None,
        None => match send_chunk(token, tx, chunk) {
            Ok(()) | Err(Stop::ClientGone) => None,
            Err(Stop::Failed(message)) => Some((true, message)),
            Err(Stop::Ended(message)) => Some((false, message)),
            Err(Stop::AtHead) => None,
        },
        failed => failed,
    };
    if let Some((fault, message)) = failure {
        // A fault of the store is an operator's matter; a token that stopped being valid, or a
        // shutdown, is the stream ending as it should.
        if fault {
            tracing::error!("export failed: {message}");
        } else {
            tracing::warn!("export ended early: {message}");
        }
        let _ = tx.blocking_send(Err(std::io::Error::other(message)));
    }
}
