//! `carelog serve` (the HTTP service, [`crate::api`]) and `carelog token create|revoke` (the
//! tokens it takes, granted and revoked as events by [`crate::app::access`]).
//!
//! `token create` works without any token: whoever can open the store is the local operator,
//! which is how the first admin token comes to be. The store is locked while a server runs on
//! it, so while it runs an admin creates tokens with `POST /v1/tokens` instead.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use uuid::Uuid;

use super::output::print_json;
use super::{Failure, usage};
use crate::api::Limits;
use crate::app::access::{self, DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, Role};

/// How long, after the server has stopped, blocking work still running may take to finish.
const RUNTIME_SHUTDOWN_SECONDS: u64 = 5;

/// The bounds of `carelog serve`'s connections ([`crate::api::server`]).
#[derive(Debug, Clone, Args)]
pub struct ServeLimits {
    /// Seconds a client has to send a whole request head, from its first byte (from the
    /// connection's opening, for its first request); the connection is closed then.
    #[arg(long, default_value_t = Limits::default().header_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a whole request body (408 beyond).
    #[arg(long, default_value_t = Limits::default().body_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_seconds: u64,
    /// Seconds a keep-alive connection may wait for its next request, or a client leave what
    /// it is sent unread, before it is closed.
    #[arg(long, default_value_t = Limits::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_seconds: u64,
    /// Connections open at once; one more is answered 503 and closed.
    #[arg(long, default_value_t = Limits::default().max_connections as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Requests served at once; one more is shed with 503.
    #[arg(long, default_value_t = Limits::default().max_requests as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_requests: u64,
}

impl ServeLimits {
    pub fn limits(&self) -> Limits {
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Limits {
            header_timeout: Duration::from_secs(self.header_timeout_seconds),
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            max_connections: count(self.max_connections),
            max_requests: count(self.max_requests),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Grant an HTTP API token and print it once (only its SHA-256 is kept).
    Create {
        /// recorder, supervisor, auditor or admin.
        #[arg(long, value_parser = access::parse_role)]
        role: Role,
        /// The cadre or teacher a recorder's token belongs to (required for recorders).
        #[arg(long)]
        cadre: Option<Uuid>,
        /// Scope a supervisor's token to this org unit and the units under it.
        #[arg(long)]
        unit: Option<Uuid>,
        /// Days until the token expires (1 to 3650); from then on the service refuses it.
        #[arg(long = "expires-in", value_name = "DAYS", default_value_t = DEFAULT_TOKEN_DAYS,
              value_parser = clap::value_parser!(i64).range(1..=MAX_TOKEN_DAYS))]
        expires_in_days: i64,
        /// Print the token with its id, role, expiry and position as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: from then on the service refuses it (401).
    Revoke {
        token_id: Uuid,
        #[arg(long, default_value = "revoked by the operator")]
        reason: String,
    },
}

/// `carelog token …`.
pub fn token(dir: &Path, command: &TokenCommand, actor: &str) -> Result<u8, Failure> {
    let app = super::open_app(dir, true)?;
    match command {
        TokenCommand::Create {
            role,
            cadre,
            unit,
            expires_in_days,
            json,
        } => {
            let token = app.create_token(*role, *cadre, *unit, *expires_in_days, actor)?;
            if *json {
                print_json(&token)?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", token.secret)?;
                out.flush()?;
                eprintln!(
                    "created {} token {} (position {}), expiring at {}. The token above is shown once: only its SHA-256 is kept. Send it as `Authorization: Bearer <token>`.",
                    access::role_name(token.role),
                    token.token_id,
                    token.position,
                    token.expires_at
                );
            }
        }
        TokenCommand::Revoke { token_id, reason } => {
            let ack = app.revoke_token(*token_id, reason, actor)?;
            println!("revoked token {token_id} (position {})", ack.position);
        }
    }
    Ok(0)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second initialisation (never in the binary) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Completes on SIGINT or SIGTERM. A signal that cannot be listened for never completes.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// `carelog serve --addr HOST:PORT`.
/// `timeline_bytes`: hold a timeline for figures as of a point, its snapshots within that many
/// bytes (estimated); None: load checkpoints and replay for each. `late_entry_days`: the
/// late-entry window (0: none). `limits`: the connections'.
pub fn serve(
    dir: &Path,
    addr: &str,
    timeline_bytes: Option<u64>,
    late_entry_days: u32,
    limits: Limits,
) -> Result<u8, Failure> {
    init_tracing();
    let addr: SocketAddr = addr.parse().map_err(|e| {
        usage(format!(
            "--addr {addr:?}: {e}; give HOST:PORT, e.g. 127.0.0.1:8080 (port 0 picks a free one)"
        ))
    })?;
    let app = Arc::new(super::open_app(dir, true)?);
    app.set_late_entry_window_days(late_entry_days);
    // Fold the records now (the first request should not wait for it) and warn when no token
    // can get in.
    let live_tokens = app.live_tokens()?;
    if live_tokens == 0 {
        tracing::warn!(
            "the store holds no live token: stop the server and run `carelog token create --role admin`"
        );
    }
    if let Some(bytes) = timeline_bytes {
        app.set_timeline_snapshot_bytes_max(bytes);
        app.set_hold_timeline(true);
        // Built in the background (one pass over the log): a question that comes first waits
        // for it, the others find it ready.
        let warming = Arc::clone(&app);
        std::thread::Builder::new()
            .name("carelog-timeline".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                match warming.warm_timeline() {
                    Ok(events) => tracing::info!(
                        events,
                        seconds = started.elapsed().as_secs_f64(),
                        "timeline of the states ready for figures as of any point"
                    ),
                    Err(e) => {
                        warming.set_hold_timeline(false);
                        tracing::warn!(
                            error = %e,
                            "the timeline could not be built; figures as of a point will load checkpoints and replay instead"
                        );
                    }
                }
            })?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("carelog-http")
        .build()?;
    let served: Result<u8, Failure> = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| usage(format!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on http://{local}")?;
            out.flush()?;
        }
        tracing::info!(addr = %local, store = %dir.display(), live_tokens, ?limits, "serving");
        crate::api::serve(app, listener, limits, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(0)
    });
    runtime.shutdown_timeout(Duration::from_secs(RUNTIME_SHUTDOWN_SECONDS));
    served
}
