//! `trace show` and `trace list` against real Redis holding traces written
//! by Python osprofiler 4.4.0: same JSON, same ids, same messages as
//! Python's own CLI.

#[path = "../../osprofiler/tests/common/python.rs"]
mod python;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::Value;

/// A Redis database of its own, so other tests' keys don't show up.
const REDIS: &str = "redis://127.0.0.1:6379/9";

fn ours(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args(args)
        .env_remove("OSPROFILER_CONNECTION_STRING")
        .output()
        .expect("osprofiler runs")
}

fn upstream(args: &[&str]) -> Output {
    let cli = python::python().with_file_name("osprofiler");
    Command::new(cli)
        .args(args)
        .output()
        .expect("Python's osprofiler runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fresh_traces() -> (String, String) {
    let redis = Command::new("redis-cli")
        .args(["-n", "9", "FLUSHDB"])
        .output();
    match redis {
        Ok(out) if out.status.success() => {}
        _ => panic!("Redis is not reachable on 127.0.0.1:6379 (redis-cli -n 9 FLUSHDB failed): run scripts/services"),
    }
    let line = python::run("cli_traces.py", &[REDIS], "");
    let ids: Value = serde_json::from_str(line.trim()).unwrap();
    (
        ids["ok"].as_str().unwrap().to_string(),
        ids["error"].as_str().unwrap().to_string(),
    )
}

fn ids_in_table(table: &str) -> BTreeSet<String> {
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| base_id"))
        .map(|l| l.split('|').nth(1).unwrap().trim().to_string())
        .collect()
}

#[test]
fn show_list_and_errors_match_python() {
    let (ok, failed) = fresh_traces();

    // --json: the same report, as JSON values, as Python's CLI prints.
    for id in [&ok, &failed] {
        let mine: Value = serde_json::from_str(&stdout(&ours(&[
            "trace",
            "show",
            "--connection-string",
            REDIS,
            "--json",
            id,
        ])))
        .unwrap();
        let theirs: Value = serde_json::from_str(&stdout(&upstream(&[
            "trace",
            "show",
            "--connection-string",
            REDIS,
            "--json",
            id,
        ])))
        .unwrap();
        assert_eq!(mine, theirs, "report of {id}");
        assert_eq!(
            mine["stats"]["rpc"]["count"],
            if id == &failed { 3 } else { 2 }
        );
    }

    // list and --error-trace: the same ids as Python's CLI.
    let mine = stdout(&ours(&["trace", "list", "--connection-string", REDIS]));
    let theirs = stdout(&upstream(&["trace", "list", "--connection-string", REDIS]));
    assert_eq!(ids_in_table(&mine), ids_in_table(&theirs));
    assert_eq!(
        ids_in_table(&mine),
        BTreeSet::from([ok.clone(), failed.clone()])
    );
    let mine = stdout(&ours(&[
        "trace",
        "list",
        "--connection-string",
        REDIS,
        "--error-trace",
    ]));
    let theirs = stdout(&upstream(&[
        "trace",
        "list",
        "--connection-string",
        REDIS,
        "--error-trace",
        "True",
    ]));
    assert_eq!(ids_in_table(&mine), ids_in_table(&theirs));
    assert_eq!(ids_in_table(&mine), BTreeSet::from([failed.clone()]));
    // Upstream's spelling with a value works too.
    let mine = stdout(&ours(&[
        "trace",
        "list",
        "--connection-string",
        REDIS,
        "--error-trace",
        "True",
    ]));
    assert_eq!(ids_in_table(&mine), BTreeSet::from([failed.clone()]));
    // --service keeps the traces whose first event came from it.
    let mine = stdout(&ours(&[
        "trace",
        "list",
        "--connection-string",
        REDIS,
        "--service",
        "compute",
    ]));
    assert_eq!(ids_in_table(&mine), BTreeSet::from([failed.clone()]));

    // A missing trace: upstream's message, exit code 1.
    let missing = "6a1b2c3d-0000-4000-8000-000000000000";
    let out = ours(&[
        "trace",
        "show",
        "--connection-string",
        REDIS,
        "--json",
        missing,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "Trace with UUID {missing} not found. Please check the HMAC key used in the command."
        )
    );
    let theirs = upstream(&[
        "trace",
        "show",
        "--connection-string",
        REDIS,
        "--json",
        missing,
    ]);
    assert_eq!(theirs.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&theirs.stdout)
        .contains(&format!("Trace with UUID {missing} not found")));

    // A saved JSON report works as input, for every format.
    let dir = std::env::temp_dir().join(format!("osprofiler-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.json");
    let file_arg = file.to_str().unwrap();
    let out = ours(&[
        "trace",
        "show",
        "--connection-string",
        REDIS,
        "--json",
        &failed,
        "--out",
        file_arg,
    ]);
    assert!(out.status.success());
    let from_file: Value =
        serde_json::from_str(&stdout(&ours(&["trace", "show", "--json", file_arg]))).unwrap();
    let from_store: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(from_file, from_store);

    // The terminal tree names every span and the key details.
    let tree = stdout(&ours(&["trace", "show", file_arg]));
    for expected in [
        "wsgi",
        "POST /servers",
        "__main__.Compute.build",
        "__main__.Compute.schedule",
        "INSERT INTO servers",
        "ValueError",
    ] {
        assert!(tree.contains(expected), "tree lacks {expected}:\n{tree}");
    }
    assert!(
        !tree.contains("\u{1b}["),
        "no colour when not on a terminal"
    );

    // --dot is accepted by Graphviz.
    let dot_source = stdout(&ours(&["trace", "show", "--dot", file_arg]));
    let mut graphviz = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` is not installed: apt-get install graphviz (scripts/test's .ci/run does)");
    use std::io::Write;
    graphviz
        .stdin
        .take()
        .unwrap()
        .write_all(dot_source.as_bytes())
        .unwrap();
    let svg = graphviz.wait_with_output().unwrap();
    assert!(svg.status.success(), "dot rejected:\n{dot_source}");
    assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));

    // --render-dot writes a PDF.
    let pdf = dir.join("graph");
    let out = ours(&[
        "trace",
        "show",
        "--dot",
        file_arg,
        "--render-dot",
        pdf.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(dir.join("graph.pdf"))
        .unwrap()
        .starts_with(b"%PDF"));

    // --chrome: valid trace-event JSON, one complete event per span.
    let chrome: Value =
        serde_json::from_str(&stdout(&ours(&["trace", "show", "--chrome", file_arg]))).unwrap();
    let complete = chrome["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .count();
    let spans: i64 = from_store["stats"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["count"].as_i64().unwrap())
        .sum();
    assert_eq!(complete as i64, spans);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unreachable_or_unknown_stores_are_one_line_errors_without_secrets() {
    for (cs, expected) in [
        (
            "foo://user:hunter2@host",
            "Driver not found for connection string: foo://user:***@host",
        ),
        ("redis://:hunter2@127.0.0.1:1", "127.0.0.1:1"),
    ] {
        let out = ours(&[
            "trace",
            "show",
            "--connection-string",
            cs,
            "6a1b2c3d-0000-4000-8000-000000000000",
        ]);
        assert_eq!(out.status.code(), Some(1), "{cs}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("hunter2"), "secret leaked: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
}
