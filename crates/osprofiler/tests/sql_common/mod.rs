//! What the SQL integration tests (`sql_sqlx.rs`, `sql_diesel.rs`) check
//! in the recorded notifications.
#![allow(dead_code)] // each test binary uses some of these

use std::time::Duration;

use osprofiler::drivers::MemoryDriver;
use osprofiler::notifier;
use serde_json::Value;

/// PostgreSQL, trust auth, database `test`.
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// MariaDB, root without password, database `test`.
pub const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// A fresh store installed as the notifier's driver.
pub fn install_store() -> MemoryDriver {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    store
}

/// Every payload stored once the notifier has flushed.
pub fn flushed(store: &MemoryDriver) -> Vec<Value> {
    notifier::flush(Duration::from_secs(10)).expect("notifier flush");
    store.payloads()
}

/// One traced statement: its start and stop payloads.
#[derive(Debug, Clone)]
pub struct Statement {
    pub start: Value,
    pub stop: Value,
}

impl Statement {
    pub fn sql(&self) -> &str {
        self.start["info"]["db"]["statement"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn params(&self) -> &Value {
        &self.start["info"]["db"]["params"]
    }

    pub fn parent_id(&self) -> &str {
        self.start["parent_id"].as_str().unwrap_or_default()
    }

    pub fn stop_info(&self) -> &Value {
        &self.stop["info"]
    }
}

/// The `<name>-start`/`<name>-stop` pairs (matched by trace id, in start
/// order). Fails on a start without its stop or the reverse, or on a stop
/// whose ids differ from its start's.
pub fn statements(events: &[Value], name: &str) -> Vec<Statement> {
    let start_name = format!("{name}-start");
    let stop_name = format!("{name}-stop");
    let starts: Vec<&Value> = events.iter().filter(|e| e["name"] == start_name).collect();
    let stops: Vec<&Value> = events.iter().filter(|e| e["name"] == stop_name).collect();
    assert_eq!(
        starts.len(),
        stops.len(),
        "every {name} element must start and stop once: {events:#?}"
    );
    starts
        .into_iter()
        .map(|start| {
            let stop = stops
                .iter()
                .find(|s| s["trace_id"] == start["trace_id"])
                .unwrap_or_else(|| panic!("no stop for {start:#}"));
            assert_eq!(
                stop["parent_id"], start["parent_id"],
                "{start:#} / {stop:#}"
            );
            assert_eq!(stop["base_id"], start["base_id"], "{start:#} / {stop:#}");
            Statement {
                start: start.clone(),
                stop: (*stop).clone(),
            }
        })
        .collect()
}

/// The trace id of the only `<name>-start` event.
pub fn only_trace_id(events: &[Value], name: &str) -> String {
    let starts: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == format!("{name}-start"))
        .collect();
    assert_eq!(starts.len(), 1, "one {name} element expected: {events:#?}");
    starts[0]["trace_id"].as_str().unwrap().to_owned()
}

/// The statement whose SQL contains `needle` (exactly one).
pub fn find<'a>(statements: &'a [Statement], needle: &str) -> &'a Statement {
    let found: Vec<&Statement> = statements
        .iter()
        .filter(|s| s.sql().contains(needle))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one statement containing {needle:?} expected, got {:#?}",
        statements.iter().map(Statement::sql).collect::<Vec<_>>()
    );
    found[0]
}

/// Checks the error stop of a failed statement: `etype`, `message` equal
/// to `db.original_exception`, mentioning `needle`; `chained_exception`
/// present.
pub fn assert_error_stop(statement: &Statement, etype: &str, needle: &str) {
    let info = statement.stop_info();
    assert_eq!(info["etype"], etype, "{info:#}");
    let message = info["message"].as_str().expect("message");
    assert!(
        message.to_lowercase().contains(&needle.to_lowercase()),
        "message {message:?} should mention {needle:?}"
    );
    assert_eq!(
        info["db"]["original_exception"], info["message"],
        "{info:#}"
    );
    assert!(info["db"]["chained_exception"].is_string(), "{info:#}");
    assert!(info["host"].is_string(), "{info:#}");
}
