//! What stands between the command line and a store it must not touch or trust: a `--data`
//! value that names another kind of store (a URL), and sled panicking on damaged files.
//!
//! sled 0.34 panics, rather than returning an error, on some damaged files (a `db` cut short, a
//! flipped byte in a page). A panic there is damage to the store, never a crash of the
//! command: [`run_guarded`] catches it, says which store and file, and exits 2 (1 for `verify`,
//! whose answer it is). Panics anywhere else are bugs and unwind as they would.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;

use super::{Failure, usage};

/// The schemes a `--data` URL may name (none yet: stores are directories).
const SERVED_SCHEMES: [&str; 0] = [];

/// Refuses a `--data` value that looks like a URL of a scheme carelog does not serve, rather
/// than making a directory of that name.
pub fn check_data_location(data: &Path) -> Result<(), Failure> {
    let text = data.to_string_lossy();
    let Some((scheme, _)) = text.split_once("://") else {
        return Ok(());
    };
    let looks_like_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !looks_like_scheme || SERVED_SCHEMES.contains(&scheme) {
        return Ok(());
    }
    Err(usage(format!(
        "--data {text}: `{scheme}://` is not a kind of store carelog serves; give the directory \
         of a sled store (a path, e.g. --data ./carelog-data)"
    )))
}

/// A panic raised inside sled, as the hook saw it: message and place.
static SLED_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Runs `command`; a panic inside sled becomes a [`Failure`] naming the store's files (exit
/// `damage_code`), told once, without sled's backtrace.
pub fn run_guarded(
    data: &Path,
    damage_code: u8,
    command: impl FnOnce() -> Result<u8, Failure>,
) -> Result<u8, Failure> {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        // Only the command's own thread is answered by `run_guarded`; a sled panic on another
        // thread (a server's worker) keeps its message.
        let in_sled = info
            .location()
            .is_some_and(|l| l.file().contains("/sled-0.34"));
        if in_sled && std::thread::current().name() == Some("main") {
            let place = info
                .location()
                .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                .unwrap_or_default();
            let message = crate::log::panic_message(info.payload());
            if let Ok(mut seen) = SLED_PANIC.lock() {
                seen.get_or_insert(format!("{message}{place}"));
            }
        } else {
            default_hook(info);
        }
    }));
    let outcome = panic::catch_unwind(AssertUnwindSafe(command));
    let _ = panic::take_hook();
    match outcome {
        Ok(result) => result,
        Err(payload) => {
            let seen = SLED_PANIC.lock().ok().and_then(|mut s| s.take());
            match seen {
                Some(what) => Err(Failure {
                    code: damage_code,
                    message: format!(
                        "the store at {} is damaged: sled failed reading its files ({}): \
                         {what}. Nothing was written. Restore the store from a backup (keep \
                         this directory as evidence)",
                        data.display(),
                        data.join("db").display()
                    ),
                }),
                None => panic::resume_unwind(payload),
            }
        }
    }
}
