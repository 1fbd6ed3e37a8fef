//! The architecture's invariants (ARCHITECTURE.md, "Invariants"), checked on the source text
//! under `cargo test`: each test names the rule, and a failure names the file and line that
//! breaks it. Text checks are blunt on purpose: they cannot be argued with, and a rule that
//! needs an exception should be changed in ARCHITECTURE.md first.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The longest a source file under `src/` or `projections/` may be.
const SOURCE_LINES_MAX: usize = 1_000;

/// The most words ARCHITECTURE.md may have: it is a map, not a changelog.
const ARCHITECTURE_WORDS_MAX: usize = 1_500;

/// The `.rs` files under `dir` (or `dir` itself when it names a file).
fn rust_files(dir: &str) -> Vec<PathBuf> {
    let top = Path::new(ROOT).join(dir);
    if top.is_file() {
        return vec![top];
    }
    let mut out = Vec::new();
    let mut stack = vec![top];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn relative(p: &Path) -> String {
    p.strip_prefix(ROOT)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The lines of a file before its first `#[cfg(test)]`: the production code. A file that is a
/// test module of its own (`tests.rs`, included under `#[cfg(test)]`) has none.
fn production_lines(p: &Path) -> Vec<(usize, String)> {
    if p.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let text = std::fs::read_to_string(p).unwrap_or_default();
    text.lines()
        .enumerate()
        .take_while(|(_, l)| !l.trim_start().starts_with("#[cfg(test)]"))
        .filter(|(_, l)| {
            let t = l.trim_start();
            !(t.starts_with("//") || t.starts_with("* "))
        })
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

/// Every production line of the files under `dirs` (minus `allowed`) that contains one of
/// `needles`.
fn offenders(dirs: &[&str], allowed: &[&str], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        for f in rust_files(dir) {
            let rel = relative(&f);
            if allowed.iter().any(|a| rel.starts_with(a)) {
                continue;
            }
            for (n, line) in production_lines(&f) {
                if let Some(needle) = needles.iter().find(|x| line.contains(*x)) {
                    found.push(format!("{rel}:{n}: `{needle}` in: {}", line.trim()));
                }
            }
        }
    }
    found
}

fn assert_none(rule: &str, found: Vec<String>) {
    assert!(found.is_empty(), "{rule}; broken at:\n{}", found.join("\n"));
}

#[test]
fn only_the_sled_backend_names_sled() {
    assert_none(
        "only src/log/sled/ names sled, and src/log/mod.rs where the engine is chosen \
         (swapping the storage engine touches one folder)",
        offenders(
            &["src", "projections"],
            &["src/log/sled/", "src/log/mod.rs"],
            &["sled::", "use sled", "SledStorage", "sled_config"],
        ),
    );
}

#[test]
fn only_the_codec_names_bincode() {
    assert_none(
        "only src/codec.rs calls bincode",
        offenders(&["src", "projections"], &["src/codec.rs"], &["bincode"]),
    );
}

#[test]
fn projections_do_no_io_read_no_clock_draw_no_randomness() {
    assert_none(
        "projections are pure folds: no IO, no clock, no randomness",
        offenders(
            &[
                "projections",
                "src/projection/mod.rs",
                "src/projection/book.rs",
            ],
            &[],
            &[
                "std::fs",
                "std::io",
                "std::net",
                "std::env",
                "std::thread",
                "SystemTime",
                "Instant::now",
                "Utc::now",
                "Local::now",
                "getrandom",
                "SplitMix64",
                "println!",
                "eprintln!",
                "crate::log",
                "crate::app",
            ],
        ),
    );
}

#[test]
fn the_domain_knows_nothing_of_storage_http_or_the_terminal() {
    assert_none(
        "src/domain knows nothing of storage, HTTP or the terminal",
        offenders(
            &["src/domain"],
            &[],
            &[
                "crate::log",
                "crate::projection",
                "crate::app",
                "crate::cli",
                "crate::api",
                "axum",
                "tokio",
                "std::fs",
                "std::net",
                "println!",
                "eprintln!",
                "SystemTime",
                "Utc::now",
            ],
        ),
    );
}

#[test]
fn layers_import_only_downwards() {
    // log + codec at the bottom, then domain, projection (+ projections/), app, the shells.
    let rules: &[(&str, &[&str])] = &[
        (
            "src/log",
            &[
                "crate::domain",
                "crate::projection",
                "crate::app",
                "crate::cli",
                "crate::api",
            ],
        ),
        (
            "src/projection",
            &["crate::app", "crate::cli", "crate::api"],
        ),
        ("projections", &["crate::app", "crate::cli", "crate::api"]),
        ("src/app", &["crate::cli", "crate::api"]),
    ];
    let mut found = Vec::new();
    for (dir, forbidden) in rules {
        found.extend(offenders(&[dir], &[], forbidden));
    }
    // The shells are side by side: the command line starts the HTTP service, nothing more.
    found.extend(offenders(
        &["src/cli"],
        &["src/cli/serve.rs"],
        &["crate::api"],
    ));
    assert_none("no module imports a layer above its own", found);
}

#[test]
fn the_shells_hold_no_business_rules() {
    // The shells parse, call the app and format; the domain's records and its checks are the
    // app's to ask.
    assert_none(
        "src/cli and src/api never reach into the domain's records or checks",
        offenders(
            &["src/cli", "src/api"],
            &[],
            &["domain::records", "Records::", ".check(&"],
        ),
    );
}

#[test]
fn no_unwrap_or_expect_in_production_code() {
    assert_none(
        "no unwrap()/expect() outside tests: input and disk errors are errors",
        offenders(&["src", "projections"], &[], &[".unwrap()", ".expect("]),
    );
}

#[test]
fn every_module_opens_with_an_overview() {
    let mut missing = Vec::new();
    for dir in ["src", "projections"] {
        for f in rust_files(dir) {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            if !text.starts_with("//!") {
                missing.push(relative(&f));
            }
        }
    }
    assert_none("every source file starts with a `//!` overview", missing);
}

#[test]
fn no_source_file_is_over_a_thousand_lines() {
    let mut long = Vec::new();
    for dir in ["src", "projections"] {
        for f in rust_files(dir) {
            let n = std::fs::read_to_string(&f)
                .unwrap_or_default()
                .lines()
                .count();
            if n > SOURCE_LINES_MAX {
                long.push(format!("{}: {n} lines", relative(&f)));
            }
        }
    }
    assert_none(
        &format!("no source file over {SOURCE_LINES_MAX} lines: split it by idea"),
        long,
    );
}

#[test]
fn architecture_md_is_a_short_map_that_names_real_files() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md at the root");
    let words = text.split_whitespace().count();
    assert!(
        words <= ARCHITECTURE_WORDS_MAX,
        "ARCHITECTURE.md has {words} words, at most {ARCHITECTURE_WORDS_MAX}: it is a map; \
         measurements go to benches/README.md, mechanisms to the modules' //! docs"
    );
    for section in ["## Bird's-eye view", "## Code map", "## Invariants"] {
        assert!(text.contains(section), "ARCHITECTURE.md lacks {section:?}");
    }
    // Every path it names in backticks exists.
    let mut missing = Vec::new();
    for part in text.split('`').skip(1).step_by(2) {
        let looks_like_path = (part.starts_with("src/")
            || part.starts_with("projections/")
            || part.starts_with("tests/")
            || part.starts_with("benches/")
            || part.starts_with("docs/"))
            && !part.contains(' ')
            && !part.contains('*');
        if looks_like_path && !Path::new(ROOT).join(part.trim_end_matches('/')).exists() {
            missing.push(part.to_string());
        }
    }
    assert_none("every path ARCHITECTURE.md names exists", missing);
    // Every module directory of src/ is on the map.
    let mut unmapped = Vec::new();
    if let Ok(entries) = std::fs::read_dir(Path::new(ROOT).join("src")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let shown = if e.path().is_dir() {
                format!("src/{name}/")
            } else {
                format!("src/{name}")
            };
            if name != "main.rs" && name != "lib.rs" && !text.contains(&shown) {
                unmapped.push(shown);
            }
        }
    }
    assert_none(
        "every module of src/ is on ARCHITECTURE.md's code map",
        unmapped,
    );
}

/// The checks above must be able to fail: each needle is found where it is allowed.
#[test]
fn the_checks_see_what_they_look_for() {
    assert!(
        !offenders(&["src/codec.rs"], &[], &["bincode"]).is_empty(),
        "the bincode check reads src/codec.rs"
    );
    assert!(
        !offenders(&["src/log"], &[], &["sled::"]).is_empty(),
        "the sled check reads src/log"
    );
    assert!(
        !offenders(&["src/projection/mod.rs"], &[], &["pub trait Projection"]).is_empty(),
        "the purity check reads the files it names"
    );
}
