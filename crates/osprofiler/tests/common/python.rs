//! The Python referee of the interop tests: the `.venv` made by
//! `scripts/python-env`, with the real osprofiler 4.4.0.
//!
//! Use it from a test file with `mod common { pub mod python; }` (or
//! `#[path = ".../tests/common/python.rs"] mod python;` from another crate).
//! A missing interpreter FAILS the test: interop is never skipped silently.
#![allow(dead_code)] // each test binary uses a different part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The referee interpreter: `$OSPROFILER_PYTHON` when set, else
/// `<workspace>/.venv/bin/python`. Panics, saying how to create it, when
/// there is none.
pub fn python() -> PathBuf {
    let path = match std::env::var_os("OSPROFILER_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join(".venv/bin/python"),
    };
    assert!(
        path.exists(),
        "Python referee not found at {}: run scripts/python-env (or set OSPROFILER_PYTHON \
         to a python with osprofiler==4.4.0 installed)",
        path.display()
    );
    path
}

/// A helper script in `crates/osprofiler/tests/python/`.
pub fn script(name: &str) -> PathBuf {
    workspace_root()
        .join("crates/osprofiler/tests/python")
        .join(name)
}

/// Runs `python <script> <args...>` with `stdin` as input and returns its
/// stdout. Panics with the script's stderr when it fails.
pub fn run(script_name: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(python())
        .arg(script(script_name))
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_owned();
    // Write from another thread so a large input cannot deadlock against a
    // full stdout pipe.
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let output = child.wait_with_output().expect("python did not run");
    writer
        .join()
        .expect("stdin writer")
        .expect("writing to python stdin");
    assert!(
        output.status.success(),
        "{script_name} {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("python wrote UTF-8")
}

/// [`run`] for JSON-lines scripts: one JSON value per input line in, one
/// per output line back.
pub fn run_json_lines(
    script_name: &str,
    args: &[&str],
    requests: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    let mut input = String::new();
    for r in requests {
        input.push_str(&serde_json::to_string(r).expect("serializable request"));
        input.push('\n');
    }
    let out = run(script_name, args, &input);
    let answers: Vec<serde_json::Value> = out
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad JSON line from python ({e}): {l}"))
        })
        .collect();
    assert_eq!(
        answers.len(),
        requests.len(),
        "python answered {} of {} requests",
        answers.len(),
        requests.len()
    );
    answers
}
