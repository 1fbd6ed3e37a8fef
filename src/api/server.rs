//! The accept loop of `carelog serve`: hyper's HTTP/1 server on each connection, with the
//! bounds a client must not be able to lift ([`Limits`]).
//!
//! - **Connections**: at most [`Limits::max_connections`] are open at once; one more is
//!   answered 503 at once and closed, without reading it (the listener keeps accepting, so the
//!   kernel's backlog never fills with connections nobody serves).
//! - **Header timeout**: a request head must be whole within [`Limits::header_timeout`] of its
//!   first byte (of the connection's opening, for its first request); a client that sends half a
//!   request line is closed then.
//! - **Idle timeout**: a keep-alive connection with no request in progress is closed after
//!   [`Limits::idle_timeout`]; so is one whose client stops reading what it is sent for as long.
//! - **Body timeout**: the handlers read a body within [`Limits::body_timeout`] (408 beyond;
//!   `routes::read_body`).
//! - **Memory**: each connection's read buffer is at most [`MAX_CONNECTION_BUFFER_BYTES`] (a
//!   longer head is 431); bodies being read hold at most `MAX_BODY_BUDGET_BYTES` together.
//!
//! The timeouts live in [`TimedStream`], which wraps the socket and knows from [`Phase`] whether
//! a request is being served: hyper's own `header_read_timeout` also runs while a keep-alive
//! connection waits for its next request, so it cannot give a short header timeout and a longer
//! idle one.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::{Service, ServiceExt};

/// The largest read buffer of one connection (hyper's minimum is 8 KiB): a request head must fit.
pub const MAX_CONNECTION_BUFFER_BYTES: usize = 64 * 1024;
/// How long the accept loop pauses after the operating system refused an accept (out of file
/// descriptors, say) before it tries again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// The most often a refused connection, or a failed accept, is logged.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The timeouts and bounds of the service's connections (`carelog serve --header-timeout …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request head must be whole within this of its first byte.
    pub header_timeout: Duration,
    /// A request body must be whole within this of the handler's first read.
    pub body_timeout: Duration,
    /// A connection with nothing in progress (or whose client reads nothing) is closed after it.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Requests served at once; one more is shed with 503.
    pub max_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2_048,
            max_requests: super::MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// Where a connection is between requests, for its read deadline.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No byte of a request yet, since `since`; `first`: the connection's first request.
    Waiting { since: Instant, first: bool },
    /// A request head is arriving; it must be whole by `deadline`.
    Head { deadline: Instant },
    /// Requests being served (each until its response is sent whole): the handlers' own
    /// timeouts apply, not the connection's.
    Busy { requests: usize },
}

/// A connection's phase, shared by its socket and its requests.
struct ConnectionState {
    phase: Mutex<Phase>,
    limits: Limits,
    /// The task of a read left waiting without a deadline (while busy): woken when the
    /// connection goes idle, so the idle deadline is armed.
    reader: Mutex<Option<std::task::Waker>>,
}

impl ConnectionState {
    fn new(limits: Limits) -> Self {
        Self {
            phase: Mutex::new(Phase::Waiting {
                since: Instant::now(),
                first: true,
            }),
            limits,
            reader: Mutex::new(None),
        }
    }

    fn park_reader(&self, waker: &std::task::Waker) {
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        *reader = Some(waker.clone());
    }

    fn with_phase<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        // The phase is a plain value: one left by a panicking holder is still usable.
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut phase)
    }

    /// When a read that finds nothing must give up, if ever.
    fn read_deadline(&self) -> Option<Instant> {
        let limits = self.limits;
        self.with_phase(|phase| match *phase {
            Phase::Waiting { since, first: true } => Some(since + limits.header_timeout),
            Phase::Waiting {
                since,
                first: false,
            } => Some(since + limits.idle_timeout),
            Phase::Head { deadline } => Some(deadline),
            Phase::Busy { .. } => None,
        })
    }

    fn bytes_arrived(&self) {
        let header_timeout = self.limits.header_timeout;
        self.with_phase(|phase| {
            if let Phase::Waiting { since, first } = *phase {
                let start = if first { since } else { Instant::now() };
                *phase = Phase::Head {
                    deadline: start + header_timeout,
                };
            }
        });
    }

    fn request_began(&self) {
        self.with_phase(|phase| {
            *phase = match *phase {
                Phase::Busy { requests } => Phase::Busy {
                    requests: requests + 1,
                },
                _ => Phase::Busy { requests: 1 },
            }
        });
    }

    fn response_ended(&self) {
        let idle = self.with_phase(|phase| {
            if let Phase::Busy { requests } = *phase {
                if requests > 1 {
                    *phase = Phase::Busy {
                        requests: requests - 1,
                    };
                } else {
                    *phase = Phase::Waiting {
                        since: Instant::now(),
                        first: false,
                    };
                    return true;
                }
            }
            false
        });
        if idle {
            let parked = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(waker) = parked {
                waker.wake();
            }
        }
    }
}

/// Held from a request's start until its response body is sent whole (or dropped).
struct RequestGuard(Arc<ConnectionState>);

impl RequestGuard {
    fn new(state: Arc<ConnectionState>) -> Self {
        state.request_began();
        Self(state)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.response_ended();
    }
}

/// A response body that holds its request's [`RequestGuard`] until it is dropped; everything
/// else (frames, size hint, so `content-length`) is the inner body's.
struct TrackedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A socket with the connection's read deadline and a bound on how long a write may stall.
struct TimedStream {
    inner: TcpStream,
    state: Arc<ConnectionState>,
    read_timer: Pin<Box<Sleep>>,
    read_armed_for: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_stalled: bool,
}

impl TimedStream {
    fn new(inner: TcpStream, state: Arc<ConnectionState>) -> Self {
        let now = Instant::now();
        Self {
            inner,
            state,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            read_armed_for: None,
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_stalled: false,
        }
    }

    /// A write that could not go on: an error once it has stalled for the idle timeout.
    fn write_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.write_stalled {
            self.write_stalled = true;
            let deadline = Instant::now() + self.state.limits.idle_timeout;
            self.write_timer.as_mut().reset(deadline);
        }
        match self.write_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the idle timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn written<T>(&mut self, result: io::Result<T>) -> Poll<io::Result<T>> {
        self.write_stalled = false;
        Poll::Ready(result)
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = match this.state.read_deadline() {
                    Some(deadline) => deadline,
                    None => {
                        this.state.park_reader(cx.waker());
                        // The connection may have gone idle between the two looks.
                        match this.state.read_deadline() {
                            Some(deadline) => deadline,
                            None => return Poll::Pending,
                        }
                    }
                };
                if this.read_armed_for != Some(deadline) {
                    this.read_timer.as_mut().reset(deadline);
                    this.read_armed_for = Some(deadline);
                }
                match this.read_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no whole request head within the header timeout, or no request within the idle timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(r) => this.written(r),
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => this.written(r),
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What a connection past [`Limits::max_connections`] is told before it is closed.
fn refusal(limits: &Limits) -> Vec<u8> {
    let body = super::ApiError::overloaded(format!(
        "the service has {} connections open, its limit: retry shortly",
        limits.max_connections
    ))
    .body()
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Logs at most once per [`REFUSAL_LOG_INTERVAL`], with how many happened since the last line.
struct RateLimitedWarning {
    last: Option<Instant>,
    unlogged: u64,
}

impl RateLimitedWarning {
    fn new() -> Self {
        Self {
            last: None,
            unlogged: 0,
        }
    }

    fn warn(&mut self, what: &str, detail: &dyn std::fmt::Display) {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(count = self.unlogged, "{what}: {detail}");
        self.last = Some(now);
        self.unlogged = 0;
    }
}

/// Accepts connections on `listener` and serves each with `service` until `stop` turns true;
/// then stops accepting, asks each open connection to finish its request and close, and waits
/// for them at most `grace`.
pub async fn run<S>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    stop: watch::Receiver<bool>,
    grace: Duration,
) -> io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let max_connections = u32::try_from(limits.max_connections)
        .unwrap_or(u32::MAX)
        .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
    let connections = Arc::new(Semaphore::new(max_connections as usize));
    let refused = refusal(&limits);
    let mut refusals = RateLimitedWarning::new();
    let mut accept_errors = RateLimitedWarning::new();
    let stopping = stopped(stop.clone());
    tokio::pin!(stopping);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopping => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                accept_errors.warn("could not accept a connection", &e);
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            // Best effort: a client whose buffer is full does not get it, and is closed all the same.
            let _ = stream.try_write(&refused);
            refusals.warn(
                "refused a connection",
                &format_args!("{max_connections} connections are open, the limit"),
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            service.clone(),
            limits,
            stop.clone(),
            permit,
        ));
    }
    drop(listener);
    if tokio::time::timeout(grace, connections.acquire_many(max_connections))
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {} s: closing them",
            grace.as_secs()
        );
    }
    Ok(())
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn serve_connection<S>(
    stream: TcpStream,
    service: S,
    limits: Limits,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let state = Arc::new(ConnectionState::new(limits));
    let io = TokioIo::new(TimedStream::new(stream, state.clone()));
    let handler = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = RequestGuard::new(state.clone());
        let service = service.clone();
        async move {
            let Ok(response) = service.oneshot(request.map(Body::new)).await;
            // The guard lives as long as the response body: until the response is sent whole.
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(TrackedBody {
                    inner: body,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .max_buf_size(MAX_CONNECTION_BUFFER_BYTES)
        .header_read_timeout(None);
    let connection = builder.serve_connection(io, handler);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
        }
        () = stopped(stop) => {
            connection.as_mut().graceful_shutdown();
            if let Err(e) = connection.await {
                tracing::debug!("connection ended at shutdown: {e}");
            }
        }
    }
}
