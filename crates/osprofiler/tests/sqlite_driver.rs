//! The SQLite driver: several OS processes writing one file at once, and
//! the table shared with Python's `SQLAlchemyDriver` in both directions.
#![cfg(feature = "sqlite")]

mod common {
    pub mod python;
}

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::python;
use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{get_driver, Driver, SqliteDriver};
use osprofiler::notification::format_timestamp;
use osprofiler::Notification;
use serde_json::{json, Value};

const CHILD_DB: &str = "OSPROFILER_TEST_SQLITE_CHILD_DB";
const CHILD_WRITER: &str = "OSPROFILER_TEST_SQLITE_CHILD_WRITER";
const EVENTS_PER_WRITER: usize = 10_000;
const BATCH: usize = 50;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("osprofiler-sqlite-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn notification(base: &str, trace: &str, name: &str, micros: i64) -> Notification {
    Notification {
        name: name.into(),
        base_id: base.into(),
        trace_id: trace.into(),
        parent_id: base.into(),
        timestamp: format_timestamp(micros),
        info: json!({"host": "h"}).as_object().cloned(),
    }
}

/// Not a test on its own: the body of the writer processes spawned by
/// `two_processes_write_concurrently_without_loss`.
#[test]
fn child_writer() {
    let (Some(db), Some(writer)) = (std::env::var_os(CHILD_DB), std::env::var_os(CHILD_WRITER))
    else {
        return;
    };
    let writer = writer.to_string_lossy().into_owned();
    let driver = SqliteDriver::open(PathBuf::from(db)).unwrap();
    let events: Vec<_> = (0..EVENTS_PER_WRITER)
        .map(|i| {
            notification(
                "shared",
                &format!("{writer}-{i}"),
                "w-start",
                1_700_000_000_000_000 + i as i64,
            )
        })
        .collect();
    for batch in events.chunks(BATCH) {
        driver.notify(batch).unwrap();
    }
}

#[test]
fn two_processes_write_concurrently_without_loss() {
    let dir = temp_dir("procs");
    let db = dir.join("traces.db");
    let exe = std::env::current_exe().unwrap();
    let spawn = |writer: &str| {
        Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_DB, &db)
            .env(CHILD_WRITER, writer)
            .spawn()
            .unwrap()
    };
    let children = [spawn("a"), spawn("b")];
    // Read while they write: readers never block writers in WAL mode.
    let mut reads = 0;
    for mut child in children {
        loop {
            if let Ok(reader) = SqliteDriver::open(&db) {
                let _ = reader.list_traces(&[]);
                reads += 1;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(child.wait().unwrap().success(), "a writer process failed");
    }
    assert!(reads > 0);
    let driver = SqliteDriver::open(&db).unwrap();
    let events = driver.get_events("shared").unwrap();
    assert_eq!(events.len(), 2 * EVENTS_PER_WRITER);
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2 * EVENTS_PER_WRITER, "duplicate rows");
    for writer in ["a", "b"] {
        assert!((0..EVENTS_PER_WRITER).all(|i| ids.contains(format!("{writer}-{i}").as_str())));
    }
    let report = driver.get_report("shared").unwrap();
    assert_eq!(report.len(), 2 * EVENTS_PER_WRITER);
    assert_eq!(report.skipped(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

fn python_sql_report(path: &Path, base_id: &str) -> Value {
    let answers = python::run_json_lines(
        "report_referee.py",
        &["sql-report"],
        &[json!({"path": path.to_str().unwrap(), "base_id": base_id})],
    );
    answers[0]["report"].clone()
}

fn recorded_by_python(scenario: &str) -> Vec<Value> {
    python::run("report_referee.py", &["generate"], "")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|s| s["name"] == scenario)
        .and_then(|s| s["events"].as_array().cloned())
        .unwrap()
}

#[test]
fn reads_what_python_sqlalchemy_driver_wrote() {
    let dir = temp_dir("from-python");
    let db = dir.join("traces.db");
    let payloads = recorded_by_python("nested");
    let base_id = payloads[0]["base_id"].as_str().unwrap().to_owned();
    let written = python::run_json_lines(
        "report_referee.py",
        &["sqlalchemy-write", db.to_str().unwrap()],
        &[
            json!({"payloads": payloads, "project": "ignored", "service": "ignored", "host": "node-7"}),
        ],
    );
    assert_eq!(written[0]["written"], payloads.len());

    let driver = get_driver(
        &format!("sqlite://{}", db.display()),
        Some("nova"),
        Some("api"),
        Some("me"),
        &ProfilerConfig::default(),
    )
    .unwrap();
    // Payloads come back as they were handed to notify, in the same order
    // and key order (project/service were popped into their columns).
    let events = driver.get_events(&base_id).unwrap();
    assert_eq!(
        serde_json::to_string(&events).unwrap(),
        serde_json::to_string(&payloads).unwrap()
    );

    let ours = driver.get_report(&base_id).unwrap();
    assert_eq!(ours.skipped(), 0);
    let ours = ours.to_value();
    assert_eq!(ours["children"][0]["info"]["host"], "node-7");
    assert_eq!(
        serde_json::to_string(&ours).unwrap(),
        serde_json::to_string(&python_sql_report(&db, &base_id)).unwrap()
    );
    let traces = driver.list_traces(&["base_id", "name"]).unwrap();
    assert_eq!(
        Value::Object(traces[0].clone()),
        json!({"base_id": base_id, "name": "wsgi-start"})
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_reads_the_same_report_from_what_we_wrote() {
    let dir = temp_dir("to-python");
    let db = dir.join("traces.db");
    let conf = ProfilerConfig::default().with_filter_error_trace(true);
    let url = format!("sqlite://{}", db.display());
    let driver = get_driver(&url, Some("nova"), Some("api"), Some("node-1"), &conf).unwrap();
    let mut batch = Vec::new();
    for (i, name) in ["wsgi", "db", "ünï-code"].iter().enumerate() {
        let t = 1_700_000_000_000_000 + 1_500 * i as i64;
        batch.push(notification(
            "B",
            &format!("t{i}"),
            &format!("{name}-start"),
            t,
        ));
        let mut stop = notification("B", &format!("t{i}"), &format!("{name}-stop"), t + 2_345);
        if i == 1 {
            let info = stop.info.as_mut().unwrap();
            info.insert("etype".into(), "IOError".into());
            info.insert("message".into(), "disk ✗".into());
        }
        batch.push(stop);
    }
    driver.notify(&batch).unwrap();
    let ours = driver.get_report("B").unwrap().to_value();
    assert_eq!(ours["children"][1]["info"]["exception"], "IOError");
    assert_eq!(
        serde_json::to_string(&ours).unwrap(),
        serde_json::to_string(&python_sql_report(&db, "B")).unwrap()
    );
    let errors: Vec<Value> = driver
        .list_error_traces()
        .unwrap()
        .into_iter()
        .map(Value::Object)
        .collect();
    assert_eq!(
        errors,
        [json!({"base_id": "B", "timestamp": format_timestamp(1_700_000_000_001_500 + 2_345)})]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
