//! `carelog-audit`: checks an export against a signed checkpoint without a store, without sled
//! and without trusting any hash the export states (the checks: `carelog::audit`).
//!
//! Exit codes: 0 verified, 1 not verified (the first bad position is named), 2 bad usage or
//! unreadable input.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use carelog::audit::{AuditError, audit};
use carelog::merkle::note::{NOTE_BYTES_MAX, NoteVerifier};

/// Check a carelog export against a signed checkpoint, with nothing but the store's public key.
#[derive(Debug, Parser)]
#[command(name = "carelog-audit", version)]
struct Args {
    /// The export: `carelog export --format jsonl` (every line carries its leaf).
    export: PathBuf,
    /// The signed checkpoint (`carelog checkpoint`, or `GET /v1/checkpoint`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The store's verifier key (`carelog checkpoint --verifier-key`), or a file holding it.
    #[arg(long)]
    key: String,
    /// An older signed checkpoint of the same log: checks that the log only grew since.
    #[arg(long)]
    previous: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn read_note(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > NOTE_BYTES_MAX as u64 {
        return Err(format!(
            "{} is {} bytes: a checkpoint is at most {NOTE_BYTES_MAX}",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn run(args: &Args) -> Result<ExitCode, (u8, String)> {
    let usage = |m: String| (2u8, m);
    let key_text = if Path::new(&args.key).is_file() {
        read_note(Path::new(&args.key)).map_err(usage)?
    } else {
        args.key.clone()
    };
    let key = NoteVerifier::parse(&key_text).map_err(|e| {
        usage(format!(
            "--key: {e} (give `carelog checkpoint --verifier-key`)"
        ))
    })?;
    let checkpoint = read_note(&args.checkpoint).map_err(usage)?;
    let previous = args
        .previous
        .as_deref()
        .map(read_note)
        .transpose()
        .map_err(usage)?;
    let file = std::fs::File::open(&args.export)
        .map_err(|e| usage(format!("cannot read {}: {e}", args.export.display())))?;
    let mut input = BufReader::new(file);
    match audit(&mut input, &checkpoint, &key, previous.as_deref()) {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                println!(
                    "verified: {} events of {} ({}), root {}{}{}",
                    report.tree_size,
                    report.origin,
                    report.hash_algorithm,
                    report.root,
                    report
                        .previous_size
                        .map(|n| format!("; the log only grew since size {n}"))
                        .unwrap_or_default(),
                    if report.events_past_checkpoint > 0 {
                        format!(
                            "; {} later events are not covered by the checkpoint",
                            report.events_past_checkpoint
                        )
                    } else {
                        String::new()
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ AuditError::Io(_)) => Err((2, e.to_string())),
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"verified": false, "problem": e.to_string()})
                );
            }
            Err((1, format!("NOT VERIFIED: {e}")))
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err((code, message)) => {
            eprintln!("carelog-audit: {message}");
            ExitCode::from(code)
        }
    }
}
