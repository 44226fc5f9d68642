//! `osprofiler trace show --connection-string messaging://` against the
//! real RabbitMQ (127.0.0.1:5672, a fresh vhost per test) and traces
//! published by Python osprofiler 4.4.0's oslo.messaging notifier: our CLI
//! shows exactly the report Python's own code builds, and reading one trace
//! leaves the others in the queue for the next reader, ours or Python's.

#[path = "../../osprofiler/tests/common/python.rs"]
mod python;
#[path = "../../osprofiler/tests/common/rabbitmq.rs"]
mod rabbitmq;

use std::process::{Command, Output};

use rabbitmq::Vhost;
use serde_json::Value;

/// Publishes `count` traces with Python's messaging:// driver; returns
/// `{"base_id", "payloads", "report"}` for each, "report" being what
/// Python's `trace show --json` prints for those payloads.
fn python_publish(transport_url: &str, count: usize) -> Vec<Value> {
    python::run(
        "messaging_interop.py",
        &["publish", transport_url, &count.to_string()],
        "",
    )
    .lines()
    .map(|line| serde_json::from_str(line).expect("JSON line"))
    .collect()
}

fn show(program: &str, transport_url: &str, base_id: &str, json: bool) -> Output {
    let mut command = Command::new(program);
    command.args([
        "trace",
        "show",
        "--connection-string",
        "messaging://",
        "--transport-url",
        transport_url,
        "--idle-timeout",
        "1",
    ]);
    if json {
        command.arg("--json");
    }
    command
        .arg(base_id)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("run osprofiler")
}

fn ours(transport_url: &str, base_id: &str) -> Value {
    let out = show(
        env!("CARGO_BIN_EXE_osprofiler"),
        transport_url,
        base_id,
        true,
    );
    assert!(
        out.status.success(),
        "our trace show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from our trace show")
}

fn pythons(transport_url: &str, base_id: &str) -> Value {
    let program = python::workspace_root().join(".venv/bin/osprofiler");
    let out = show(program.to_str().unwrap(), transport_url, base_id, true);
    assert!(
        out.status.success(),
        "Python's trace show failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from Python's trace show")
}

/// (b) A trace published by Python's notifier (kombu type tags, non-ASCII
/// text, an error stop) is shown by our CLI exactly as Python's CLI shows
/// it.
#[test]
fn shows_python_traces_as_python_does() {
    let vhost = Vhost::new("cli_show");
    let url = vhost.transport_url();
    let trace = &python_publish(&url, 1)[0];
    let shown = ours(&url, trace["base_id"].as_str().unwrap());
    assert_eq!(shown, trace["report"]);
    let db = &shown["children"][0]["children"][0]["info"];
    assert_eq!(db["name"], "db");
    assert_eq!(
        db["meta.raw_payload.db-start"]["info"]["when"],
        "2024-01-02T03:04:05.000006"
    );
    assert_eq!(vhost.queue_length().unwrap_or(0), 0);
}

/// (c) With three traces queued, our CLI reads one, then another; each time
/// the rest stays queued, and Python's CLI still finds the last one.
/// An unknown id takes nothing away.
#[test]
fn reading_one_trace_leaves_the_others() {
    let vhost = Vhost::new("cli_two");
    let url = vhost.transport_url();
    let traces = python_publish(&url, 3);
    let id = |i: usize| traces[i]["base_id"].as_str().unwrap().to_string();
    assert_eq!(vhost.queue_length().unwrap_or(18), 18);

    let missing = show(
        env!("CARGO_BIN_EXE_osprofiler"),
        &url,
        "00000000-0000-4000-8000-000000000000",
        false,
    );
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("not found"),
        "{missing:?}"
    );
    assert_eq!(vhost.queue_length().unwrap_or(18), 18);

    assert_eq!(ours(&url, &id(1)), traces[1]["report"]);
    assert_eq!(vhost.queue_length().unwrap_or(12), 12);
    assert_eq!(ours(&url, &id(0)), traces[0]["report"]);
    assert_eq!(vhost.queue_length().unwrap_or(6), 6);

    let shown = pythons(&url, &id(2));
    assert_eq!(shown, traces[2]["report"]);
    let wsgi = &shown["children"][0];
    assert_eq!(wsgi["info"]["name"], "wsgi");
    let children: Vec<&str> = wsgi["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["info"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["db", "compute"]);
    assert_eq!(wsgi["children"][1]["info"]["exception"], "ValueError");
    assert_eq!(shown["stats"]["db"]["count"], 1);
    assert_eq!(vhost.queue_length().unwrap_or(0), 0);
}
