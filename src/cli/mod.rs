//! The command line: parse, call the application layer, format. No business rule lives here.
//!
//! Exit codes: 0 success, 1 a check failed (verify, claims check), 2 bad input or usage.
//! Errors go to stderr and name the line, the field and the rule.

mod claims;
mod figures;
mod guard;
mod output;
mod proofs;
mod records_io;
mod report_out;
mod serve;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{App, AppError};
use crate::log::{Digest, LogError, StorageError};

/// carelog: event-sourced records of a paired-care programme (结对关爱), on an embedded sled store.
#[derive(Debug, Parser)]
#[command(name = "carelog", version, about, long_about = None)]
pub struct Cli {
    /// The store's directory.
    #[arg(
        long,
        global = true,
        env = "CARELOG_DATA",
        default_value = "carelog-data"
    )]
    pub data: PathBuf,
    /// Who is recording (for write commands); an event line's `recordedby` is kept over it.
    #[arg(long, global = true, env = "CARELOG_ACTOR")]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the Qingyang programme's records (every figure of the source report) into an empty store.
    Demo {
        /// Another seed gives another, equally valid, spread of the same figures.
        #[arg(long, default_value_t = crate::app::demo::DEFAULT_SEED)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Append events, one CloudEvents JSON object per line; one ack line each once durable.
    Append {
        /// A file of JSON lines, or - (the default) for standard input.
        file: Option<PathBuf>,
        /// Keep each line's `recordedat` (restoring an export into a new store).
        #[arg(long)]
        keep_recorded_at: bool,
        /// Refuse a line whose event is recorded more than DAYS after the day it happened
        /// unless it carries `lateentryreason` (0, the default: no window for a local operator).
        #[arg(long, default_value_t = 0, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=36_500))]
        late_entry_days: u32,
    },
    /// Append a whole file of JSON lines as one all-or-nothing batch.
    Import {
        file: PathBuf,
        /// Keep each line's `recordedat` (restoring an export into a new store).
        #[arg(long)]
        keep_recorded_at: bool,
        /// Refuse a line whose event is recorded more than DAYS after the day it happened
        /// unless it carries `lateentryreason` (0, the default: no window for a local operator).
        #[arg(long, default_value_t = 0, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=36_500))]
        late_entry_days: u32,
    },
    /// Print the events a commit journal file holds (e.g. one an open set aside), as the JSON
    /// lines `export` prints; the file is not changed. A summary goes to stderr.
    JournalEvents { file: PathBuf },
    /// Print every event in order: jsonl is exactly what `append` accepts (same ids).
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
    /// Show events readably.
    Log {
        /// Only this stream (e.g. pairing-<uuid>).
        #[arg(long)]
        stream: Option<String>,
        /// From this position (or stream version, with --stream).
        #[arg(long, default_value_t = 1)]
        from: u64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Recompute every hash and check every position; exit 1 naming the first bad position.
    Verify {
        #[arg(long)]
        json: bool,
        /// Also prove the log still holds this digest's head (from `carelog digest --json`).
        #[arg(long)]
        digest: Option<PathBuf>,
        /// Skip the check of the id and stream indexes (faster).
        #[arg(long)]
        skip_indexes: bool,
    },
    /// Print the head: position and chain hash. Keep it to prove later the log was only appended to.
    Digest {
        #[arg(long)]
        json: bool,
    },
    /// List the event types with their versions and an example of each.
    Events {
        #[arg(long)]
        json: bool,
        /// The reference as Markdown (docs/events.md).
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
    },
    /// The programme report: every figure of the source report, from the records.
    Report {
        /// The same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
        #[arg(long, value_enum, default_value = "en")]
        lang: Lang,
        #[arg(long, value_enum, default_value = "text")]
        format: report_out::ReportFormat,
        /// Write the workbook or the CSV to this file (xlsx needs it; CSV goes to stdout without).
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        at: figures::AsOfArgs,
    },
    /// One projection's view (JSON).
    Project {
        name: String,
        /// Accepted for symmetry; the output is always JSON.
        #[arg(long)]
        json: bool,
        /// A query parameter NAME=VALUE (on=YYYY-MM-DD, days=30, deadline_days=30).
        #[arg(long = "param")]
        params: Vec<String>,
        #[command(flatten)]
        at: figures::AsOfArgs,
    },
    /// List the projections with their versions.
    Projections {
        #[arg(long)]
        json: bool,
    },
    /// A figure and exactly the events behind it.
    Explain {
        metric: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: figures::AsOfArgs,
    },
    /// RFC 9162 proofs from the log's Merkle tree (leaf index = position − 1).
    Prove {
        #[command(subcommand)]
        command: ProveCommand,
    },
    /// Print a signed checkpoint (C2SP tlog-checkpoint in a signed note) of the log's tree.
    /// The store's signing key is made on first use (`<store>/signing-key`, mode 0600).
    Checkpoint {
        /// Sign with this key file (`PRIVATE+KEY+…`) instead of the store's.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The tree size to sign (default: the head).
        #[arg(long)]
        size: Option<u64>,
        /// Print the verifier key (`name+keyid+key`) instead, for `carelog-audit --key`.
        #[arg(long)]
        verifier_key: bool,
    },
    /// Reported figures (claims) against the records.
    Claims {
        #[command(subcommand)]
        command: ClaimsCommand,
    },
    /// Serve the HTTP API; prints `listening on http://ADDR` once bound. SIGINT/SIGTERM stop it.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Answer figures "as of" a point by loading checkpoints and replaying each time,
        /// instead of holding a timeline of the states in memory (less memory: on a long log
        /// the timeline holds the states and what changed between its snapshots; slower: each
        /// such question then loads whole states).
        #[arg(long)]
        no_timeline: bool,
        /// The most memory (MiB, estimated) the timeline's snapshots may hold beside the
        /// states; past it they thin out, and figures as of a point replay more events.
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
        timeline_mib: u64,
        /// An event recorded more than DAYS after the day it happened needs a
        /// `lateentryreason` (a period's figures may already be filed); 0 turns the window off.
        #[arg(long, value_name = "DAYS", default_value_t = crate::app::LATE_ENTRY_WINDOW_DAYS_DEFAULT, value_parser = clap::value_parser!(u32).range(0..=36_500))]
        late_entry_days: u32,
        #[command(flatten)]
        limits: serve::ServeLimits,
    },
    /// Grant or revoke an HTTP API token (both are events).
    Token {
        #[command(subcommand)]
        command: serve::TokenCommand,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Lang {
    En,
    Zh,
}

#[derive(Debug, Subcommand)]
pub enum ProveCommand {
    /// The proof that the event at POSITION is in the tree of --size events.
    Inclusion {
        position: u64,
        /// The tree size (default: the head).
        #[arg(long)]
        size: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// The proof that the tree of OLD_SIZE events is a prefix of the tree of --size events.
    Consistency {
        old_size: u64,
        /// The tree size (default: the head).
        #[arg(long)]
        size: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClaimsCommand {
    /// Compare every claim with the records, now and as of the claim; exit 1 when any differs.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// File one reported figure (a claim) to be checked against the records.
    File {
        /// A report metric (`carelog report --json` lists them).
        #[arg(long)]
        metric: String,
        /// The period the figure covers, FROM..TO (dates, e.g. 2023-01-01..2023-06-30).
        #[arg(long)]
        period: String,
        /// The figure: a whole number (fen for amounts).
        #[arg(long, allow_hyphen_values = true)]
        value: String,
        /// How the records must compare with the figure: exactly, at_least, more_than, at_most.
        #[arg(long)]
        comparison: Option<String>,
        /// The unit the figure is for (with its sub-units); the whole programme when left out.
        #[arg(long)]
        scope: Option<String>,
        /// The day the figure was reported (YYYY-MM-DD).
        #[arg(long)]
        reported_on: String,
        /// The document the figure comes from.
        #[arg(long)]
        source: String,
        #[arg(long)]
        json: bool,
    },
    /// File the claims of a CSV (header: metric,period_from,period_to,value,comparison,scope,
    /// reported_on,source), one a row: all of them, or none when a row is refused.
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// A command's failure: its exit code and message.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

impl From<LogError> for Failure {
    fn from(e: LogError) -> Self {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure {
            code: 2,
            message: format!("i/o error: {e}"),
        }
    }
}

pub(crate) fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// Runs the command line; returns the process's exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // `verify`'s answer about a store sled cannot even read is "not intact" (1).
    let damage_code = if matches!(cli.command, Command::Verify { .. }) {
        1
    } else {
        2
    };
    let outcome = guard::check_data_location(&cli.data)
        .and_then(|()| guard::run_guarded(&cli.data, damage_code, || dispatch(&cli)));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if f.message.contains("Broken pipe") {
                return ExitCode::SUCCESS;
            }
            eprintln!("carelog: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn actor(cli: &Cli) -> String {
    cli.actor.clone().unwrap_or_else(|| {
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        format!("cli:{user}")
    })
}

pub(crate) fn open_existing(dir: &Path) -> Result<App, Failure> {
    open_app(dir, false)
}

/// Opens the application (creating the store when `create`), telling the user on stderr when
/// the open set aside keys past the stored head.
pub(crate) fn open_app(dir: &Path, create: bool) -> Result<App, Failure> {
    let app = App::open(dir, create)?;
    note_open(app.log());
    Ok(app)
}

/// Says what an open set aside past the stored head, and what the store's layout warns of, if
/// anything: never silent.
pub(crate) fn note_open(log: &crate::log::Log) {
    let report = log.open_report();
    for warning in &report.warnings {
        eprintln!("carelog: WARNING: {warning}");
    }
    let journals = log.journals_set_aside();
    if let Some(replay) = report.replayed {
        let restored = if replay.keys_restored > 0 {
            format!(
                ", and wrote back {} key(s) of earlier commits that sled had lost",
                replay.keys_restored
            )
        } else {
            String::new()
        };
        eprintln!(
            "carelog: note: the store was not closed cleanly; replayed {} commit(s) (positions \
             {}..={}) from its commit journal into the log{restored}{}",
            replay.commits,
            replay.from_position,
            replay.to_position,
            if journals.is_empty() {
                ": nothing acknowledged was lost"
            } else {
                ""
            }
        );
    }
    if !journals.is_empty() {
        let names: Vec<String> = journals.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "carelog: WARNING: the store holds commit journal(s) an open could not apply: {}. \
             They may hold acknowledged events missing from the log; appends are refused until \
             they are looked at (`carelog journal-events FILE` lists what one holds; compare the \
             log with a digest you kept, then move the file(s) out of the store directory)",
            names.join(", ")
        );
    }
    if let Some(tail) = report.tail_set_aside {
        if tail.continues_head && !journals.is_empty() {
            // With a journal set aside, those keys may be an acknowledged commit's.
            eprintln!(
                "carelog: note: set aside keys past the head (from position {}: {} segment(s), \
                 {} index chunk(s), kept in the store under key prefix Q); see the WARNING about \
                 the commit journal",
                tail.from_position, tail.segments, tail.index_chunks
            );
        } else if tail.continues_head {
            eprintln!(
                "carelog: note: set aside what a crash left of a commit that was never \
                 acknowledged (from position {}: {} segment(s), {} index chunk(s), kept in the \
                 store under key prefix Q); nothing acknowledged was lost",
                tail.from_position, tail.segments, tail.index_chunks
            );
        } else {
            eprintln!(
                "carelog: WARNING: the store held {} segment(s) and {} index chunk(s) past its \
                 head (from position {}) that do not continue it: damage or tampering, not a \
                 crash. They are set aside (kept under key prefix Q); compare the log with a \
                 digest you kept (`carelog verify --digest FILE`) or restore from a backup",
                tail.segments, tail.index_chunks, tail.from_position
            );
        }
    }
}

pub(crate) fn progress_wanted() -> bool {
    std::io::stderr().is_terminal()
}

fn dispatch(cli: &Cli) -> Result<u8, Failure> {
    match &cli.command {
        Command::Demo { seed, json } => demo(&cli.data, *seed, *json),
        Command::Append {
            file,
            keep_recorded_at,
            late_entry_days,
        } => {
            let app = open_app(&cli.data, true)?;
            app.set_late_entry_window_days(*late_entry_days);
            records_io::append(&app, file.as_deref(), &actor(cli), *keep_recorded_at)
        }
        Command::Import {
            file,
            keep_recorded_at,
            late_entry_days,
        } => {
            let app = open_app(&cli.data, true)?;
            app.set_late_entry_window_days(*late_entry_days);
            records_io::import(&app, file, &actor(cli), *keep_recorded_at)
        }
        Command::Export { format } => {
            let app = open_existing(&cli.data)?;
            records_io::export(&app, *format)
        }
        Command::JournalEvents { file } => records_io::journal_events(file),
        Command::Log {
            stream,
            from,
            limit,
            json,
        } => {
            let app = open_existing(&cli.data)?;
            records_io::show_log(&app, stream.as_deref(), *from, *limit, *json)
        }
        Command::Verify {
            json,
            digest,
            skip_indexes,
        } => verify(&cli.data, *json, digest.as_deref(), *skip_indexes),
        Command::Digest { json } => {
            let log = crate::log::Log::open(&cli.data, crate::log::OpenOptions::existing())?;
            note_open(&log);
            let d = log.digest();
            if *json {
                output::print_json(&d)?;
            } else {
                println!(
                    "head position {}\nchain hash    {}\nalgorithm     {}",
                    d.position, d.chain_hash, d.algorithm
                );
            }
            Ok(0)
        }
        Command::Events { json, markdown } => records_io::list_event_types(*json, *markdown),
        Command::Report {
            json,
            lang,
            format,
            output,
            at,
        } => report_out::report(
            &open_existing(&cli.data)?,
            at,
            if *json {
                report_out::ReportFormat::Json
            } else {
                *format
            },
            matches!(lang, Lang::Zh),
            output.as_deref(),
        ),
        Command::Project {
            name,
            json: _,
            params,
            at,
        } => figures::project(&open_existing(&cli.data)?, name, at, params),
        Command::Projections { json } => figures::projections(*json),
        Command::Explain { metric, json, at } => {
            figures::explain(&open_existing(&cli.data)?, metric, at, *json)
        }
        Command::Prove {
            command:
                ProveCommand::Inclusion {
                    position,
                    size,
                    json,
                },
        } => proofs::inclusion(&cli.data, *position, *size, *json),
        Command::Prove {
            command:
                ProveCommand::Consistency {
                    old_size,
                    size,
                    json,
                },
        } => proofs::consistency(&cli.data, *old_size, *size, *json),
        Command::Checkpoint {
            key,
            size,
            verifier_key,
        } => proofs::checkpoint(&cli.data, key.as_deref(), *size, *verifier_key),
        Command::Claims {
            command: ClaimsCommand::Check { json },
        } => figures::claims_check(&open_existing(&cli.data)?, *json),
        Command::Claims {
            command:
                ClaimsCommand::File {
                    metric,
                    period,
                    value,
                    comparison,
                    scope,
                    reported_on,
                    source,
                    json,
                },
        } => claims::file(
            &open_existing(&cli.data)?,
            &claims::ClaimOptions {
                metric,
                period,
                value,
                comparison: comparison.as_deref(),
                scope: scope.as_deref(),
                reported_on,
                source,
            },
            &actor(cli),
            *json,
        ),
        Command::Claims {
            command: ClaimsCommand::Import { file, json },
        } => claims::import(&open_existing(&cli.data)?, file, &actor(cli), *json),
        Command::Serve {
            addr,
            no_timeline,
            timeline_mib,
            late_entry_days,
            limits,
        } => serve::serve(
            &cli.data,
            addr,
            (!no_timeline).then_some(timeline_mib.saturating_mul(1 << 20)),
            *late_entry_days,
            limits.limits(),
        ),
        Command::Token { command } => serve::token(&cli.data, command, &actor(cli)),
    }
}

fn demo(dir: &Path, seed: u64, json_out: bool) -> Result<u8, Failure> {
    let app = open_app(dir, true)?;
    let show = progress_wanted();
    let summary = crate::app::demo::run(&app, seed, &mut |stage, done, total| {
        if show {
            eprint!("\rdemo: {stage} {done}/{total} events\x1b[K");
        }
    })?;
    if show {
        eprintln!();
    }
    if json_out {
        output::print_json(&summary)?;
    } else {
        println!(
            "Built the Qingyang paired-care programme's records: {} events (positions 1..{}) in {:.1} s, in {}.\n\
             {} pairings, {} pupils, {} claims from the source report.\n\
             Next: `carelog --data {} report` (or `report --lang zh`), `claims check`, `explain home_visits`, `verify`.",
            summary.events,
            summary.head_position,
            summary.seconds,
            dir.display(),
            summary.pairings,
            summary.pupils,
            summary.claims,
            dir.display()
        );
    }
    Ok(0)
}

fn verify(
    dir: &Path,
    json: bool,
    digest_file: Option<&Path>,
    skip_indexes: bool,
) -> Result<u8, Failure> {
    let digest: Option<Digest> = match digest_file {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| usage(format!("cannot read digest {}: {e}", p.display())))?;
            Some(serde_json::from_str(&text).map_err(|e| {
                usage(format!(
                    "{} is not a digest from `carelog digest --json`: {e}",
                    p.display()
                ))
            })?)
        }
    };
    let log = match crate::log::Log::open(dir, crate::log::OpenOptions::existing()) {
        Ok(log) => log,
        // A store that does not even open is a failed check, not bad usage.
        Err(LogError::Storage(
            e @ (StorageError::Corrupt { .. } | StorageError::Damaged { .. }),
        )) => {
            return Err(Failure {
                code: 1,
                message: format!("verify failed: {e}"),
            });
        }
        Err(e) => return Err(e.into()),
    };
    note_open(&log);
    let show = progress_wanted();
    let mut progress = |n: u64| {
        if show {
            eprint!("\rverified {n} events");
        }
    };
    let verdict =
        crate::app::verify::verify_store(&log, !skip_indexes, digest.as_ref(), &mut progress)?;
    if show {
        eprint!("\r");
    }
    if json {
        output::print_json(&verdict)?;
    } else if let Some(p) = &verdict.problem {
        println!(
            "NOT INTACT at position {}: {:?}: {}",
            p.position, p.kind, p.detail
        );
    } else {
        println!(
            "{}: {} events, head {} chain {}{}",
            if verdict.intact {
                "intact"
            } else {
                "log intact"
            },
            verdict.events_checked,
            verdict.head.position,
            verdict.head.chain_hash,
            if digest.is_some() {
                "; the digest's head is unchanged"
            } else {
                ""
            }
        );
    }
    std::io::stdout().flush()?;
    if let Some(first) = verdict.store_problems.first() {
        let rest: Vec<&str> = verdict.store_problems[1..]
            .iter()
            .map(|p| p.detail.as_str())
            .collect();
        let also = if rest.is_empty() {
            String::new()
        } else {
            format!("; also: {}", rest.join("; "))
        };
        let lead = if verdict.log_intact {
            "the log is intact, but "
        } else {
            ""
        };
        return Err(Failure {
            code: 1,
            message: format!("verify failed: {lead}{}{also}", first.detail),
        });
    }
    Ok(if verdict.intact { 0 } else { 1 })
}
