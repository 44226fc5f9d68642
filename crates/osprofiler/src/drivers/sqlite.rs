//! SQLite driver (`sqlite://PATH`): an embedded store in one file, with the
//! table layout of upstream's SQL driver (see `sql_layout`).
//!
//! The connection string's part after `sqlite://` is the file path as is:
//! `sqlite://traces.db` is relative to the working directory,
//! `sqlite:///var/lib/osprofiler/traces.db` is absolute, and
//! `sqlite://:memory:` is a private in-memory database. An empty path
//! means the default store, [`default_connection_string`](super::default_connection_string).
//! Missing parent directories are created.
//!
//! The database runs in WAL mode with a busy timeout, so several processes
//! (every service of a host, and the CLI reading) can use one file at
//! once. Each [`notify`](Driver::notify) batch is one transaction.
//!
//! Reading back: [`get_events`](Driver::get_events) rebuilds the payloads,
//! and [`get_report`](Driver::get_report) builds upstream's SQL report
//! (node `host` from the `host` column, `meta.raw_payload.*` = the `data`
//! object). With `filter_error_trace`, error stops are also recorded in the
//! table `error_traces` (`base_id` primary key, `timestamp` of the latest
//! error stop), which [`list_error_traces`](Driver::list_error_traces)
//! reads; upstream's SQL driver has no error index.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection, OpenFlags, TransactionBehavior};
use serde_json::{Map, Value};

use super::sql_layout::{self, Dialect, Identity, Row, COLUMNS, ERROR_TABLE, TABLE};
use super::Driver;
use crate::config::ProfilerConfig;
use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::report::Report;

const NAME: &str = "sqlite";

/// How long a writer waits for another process's transaction before
/// giving up (the collector then retries the batch).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Stores notifications in a SQLite file.
#[derive(Debug)]
pub struct SqliteDriver {
    path: PathBuf,
    identity: Identity,
    filter_error_trace: bool,
    conn: Mutex<Connection>,
}

impl SqliteDriver {
    /// Opens (creating if needed) the store of a `sqlite://PATH` connection
    /// string, for a service identified by `project`, `service` and `host`.
    pub fn new(
        connection_string: &str,
        project: Option<&str>,
        service: Option<&str>,
        host: Option<&str>,
        conf: &ProfilerConfig,
    ) -> Result<SqliteDriver> {
        let path = path_of(connection_string)?;
        let mut driver = SqliteDriver::open(&path)?;
        driver.identity = Identity {
            project: project.map(String::from),
            service: service.map(String::from),
            host: host.map(String::from),
        };
        driver.filter_error_trace = conf.filter_error_trace;
        Ok(driver)
    }

    /// Opens (creating if needed) the store at `path`, with no project,
    /// service or host, and `filter_error_trace` off.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteDriver> {
        let path = path.as_ref().to_path_buf();
        let in_memory = path.as_os_str() == ":memory:";
        if !in_memory {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::backend(NAME, format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::backend(NAME, format!("cannot open {}: {e}", path.display())))?;
        setup_with_retries(&conn)
            .map_err(|e| Error::backend(NAME, format!("cannot set up {}: {e}", path.display())))?;
        Ok(SqliteDriver {
            path,
            identity: Identity::default(),
            filter_error_trace: false,
            conn: Mutex::new(conn),
        })
    }

    /// Turns on recording of error traces (`filter_error_trace`).
    pub fn with_filter_error_trace(mut self, on: bool) -> SqliteDriver {
        self.filter_error_trace = on;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Rows of one trace in insertion order, and how many were unreadable.
    fn rows_of(&self, base_id: &str) -> Result<(Vec<Row>, usize)> {
        let conn = self.lock();
        let sql = format!(
            "SELECT {} FROM {TABLE} WHERE base_id = ?1 ORDER BY id",
            COLUMNS.join(", ")
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let mut rows = stmt.query([base_id]).map_err(backend)?;
        let (mut out, mut bad) = (Vec::new(), 0);
        while let Some(row) = rows.next().map_err(backend)? {
            match read_row(row) {
                Some(r) => out.push(r),
                None => bad += 1,
            }
        }
        Ok((out, bad))
    }
}

fn backend(e: rusqlite::Error) -> Error {
    Error::backend(NAME, e)
}

/// The file path of a `sqlite://` connection string (empty: the default
/// store).
fn path_of(connection_string: &str) -> Result<PathBuf> {
    let Some(path) = connection_string.strip_prefix("sqlite://") else {
        return Err(Error::InvalidConnectionString {
            connection_string: super::redact_secrets(connection_string),
            reason: "expected sqlite://PATH".into(),
        });
    };
    if !path.is_empty() {
        return Ok(PathBuf::from(path));
    }
    let default =
        super::default_connection_string().ok_or_else(|| Error::InvalidConnectionString {
            connection_string: connection_string.into(),
            reason: "no path given, and neither XDG_DATA_HOME nor HOME is set".into(),
        })?;
    Ok(PathBuf::from(default.trim_start_matches("sqlite://")))
}

/// [`setup`], retried a few times: switching a new file to WAL needs a
/// moment alone with it, which processes opening it together may contend
/// for beyond the busy handler's reach.
fn setup_with_retries(conn: &Connection) -> rusqlite::Result<()> {
    let mut attempt = 0;
    loop {
        match setup(conn) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if attempt < 20
                    && matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(10 * attempt));
            }
            other => return other,
        }
    }
}

fn setup(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers and one writer at a time work side by side across
    // processes; `synchronous = NORMAL` is durable enough in WAL mode.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL")?;
    let exists: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1) \
         AND EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?2)",
        [TABLE, ERROR_TABLE],
        |r| r.get(0),
    )?;
    if !exists {
        let mut statements = sql_layout::create_statements(Dialect::Sqlite);
        statements.push(sql_layout::create_error_table_statement());
        let mut batch = String::from("BEGIN IMMEDIATE;\n");
        for s in statements {
            batch.push_str(&s);
            batch.push_str(";\n");
        }
        batch.push_str("COMMIT;");
        if let Err(e) = conn.execute_batch(&batch) {
            // Leave no transaction open on the connection.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(())
}

/// Reads the [`COLUMNS`] of a result row. Text is taken as is; numbers
/// (SQLite columns are loosely typed) as their decimal text; a blob only if
/// it is UTF-8. `None` if some column can't be read.
fn read_row(row: &rusqlite::Row<'_>) -> Option<Row> {
    let mut values: [Option<String>; 9] = Default::default();
    for (i, slot) in values.iter_mut().enumerate() {
        *slot = match row.get_ref(i).ok()? {
            ValueRef::Null => None,
            ValueRef::Text(t) | ValueRef::Blob(t) => Some(std::str::from_utf8(t).ok()?.to_owned()),
            ValueRef::Integer(n) => Some(n.to_string()),
            ValueRef::Real(f) => Some(f.to_string()),
        };
    }
    Some(Row::from_values(values))
}

impl Driver for SqliteDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn notify(&self, batch: &[Notification]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        {
            let placeholders = vec!["?"; COLUMNS.len()].join(", ");
            let insert = format!(
                "INSERT INTO {TABLE} ({}) VALUES ({placeholders})",
                COLUMNS.join(", ")
            );
            let mut stmt = tx.prepare_cached(&insert).map_err(backend)?;
            let mut error_stmt = if self.filter_error_trace {
                Some(
                    tx.prepare_cached(&format!(
                        "INSERT INTO {ERROR_TABLE} (base_id, timestamp) VALUES (?1, ?2) \
                         ON CONFLICT(base_id) DO UPDATE SET timestamp = excluded.timestamp"
                    ))
                    .map_err(backend)?,
                )
            } else {
                None
            };
            for n in batch {
                let row = Row::from_notification(n, &self.identity);
                stmt.execute(params_from_iter(row.values()))
                    .map_err(backend)?;
                if let Some(error_stmt) = error_stmt.as_mut().filter(|_| n.is_error()) {
                    error_stmt
                        .execute([&n.base_id, &n.timestamp])
                        .map_err(backend)?;
                }
            }
        }
        // Dropping an uncommitted transaction rolls it back, so an error
        // above leaves nothing half-written for the retry to duplicate.
        tx.commit().map_err(backend)
    }

    fn get_events(&self, base_id: &str) -> Result<Vec<Value>> {
        let (rows, mut bad) = self.rows_of(base_id)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            match row.to_payload() {
                Ok(payload) => out.push(payload),
                Err(_) => bad += 1,
            }
        }
        if bad > 0 {
            log::warn!(
                "sqlite {}: skipped {bad} unreadable rows of trace {base_id}",
                self.path.display()
            );
        }
        Ok(out)
    }

    fn get_report(&self, base_id: &str) -> Result<Report> {
        let (rows, bad) = self.rows_of(base_id)?;
        let mut builder = crate::report::ReportBuilder::new();
        for _ in 0..bad {
            builder.count_malformed();
        }
        for row in rows {
            row.append_to_report(&mut builder);
        }
        Ok(builder.finish())
    }

    fn list_traces(&self, fields: &[&str]) -> Result<Vec<Map<String, Value>>> {
        let conn = self.lock();
        // The first row of every base_id, in insertion order, as upstream
        // (which scans the whole table) returns them.
        let sql = format!(
            "SELECT {} FROM {TABLE} WHERE id IN (SELECT MIN(id) FROM {TABLE} GROUP BY base_id) ORDER BY id",
            COLUMNS.join(", ")
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            if let Some(row) = read_row(row) {
                out.push(sql_layout::trace_entry(&row, fields));
            }
        }
        Ok(out)
    }

    fn list_error_traces(&self) -> Result<Vec<Map<String, Value>>> {
        let conn = self.lock();
        let sql =
            format!("SELECT base_id, timestamp FROM {ERROR_TABLE} ORDER BY timestamp, base_id");
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            let text = |i: usize| match row.get_ref(i) {
                Ok(ValueRef::Text(t)) => std::str::from_utf8(t).map_or(Value::Null, Value::from),
                _ => Value::Null,
            };
            let mut entry = Map::new();
            entry.insert("base_id".into(), text(0));
            entry.insert("timestamp".into(), text(1));
            out.push(entry);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(name: &str, base: &str, trace: &str, parent: &str, ts: &str, info: Value) -> Notification {
        Notification {
            name: name.into(),
            base_id: base.into(),
            trace_id: trace.into(),
            parent_id: parent.into(),
            timestamp: ts.into(),
            info: info.as_object().cloned(),
        }
    }

    fn temp_db(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "osprofiler-sqlite-unit-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("nested").join("traces.db")
    }

    #[test]
    fn connection_strings() {
        assert_eq!(
            path_of("sqlite:///abs/t.db").unwrap(),
            PathBuf::from("/abs/t.db")
        );
        assert_eq!(
            path_of("sqlite://rel/t.db").unwrap(),
            PathBuf::from("rel/t.db")
        );
        assert!(path_of("redis://x").is_err());
    }

    #[test]
    fn round_trip_and_report() {
        let path = temp_db("round");
        let conf = ProfilerConfig {
            filter_error_trace: true,
            ..ProfilerConfig::default()
        };
        let url = format!("sqlite://{}", path.display());
        let d = SqliteDriver::new(&url, Some("nova"), Some("api"), Some("node1"), &conf).unwrap();
        let batch = [
            n(
                "wsgi-start",
                "B",
                "t1",
                "B",
                "2024-01-01T00:00:00.000000",
                json!({"host": "h", "q": "é"}),
            ),
            n(
                "db-start",
                "B",
                "t2",
                "t1",
                "2024-01-01T00:00:00.001000",
                json!({"host": "h"}),
            ),
            n(
                "db-stop",
                "B",
                "t2",
                "t1",
                "2024-01-01T00:00:00.003000",
                json!({"host": "h", "etype": "E"}),
            ),
            n(
                "wsgi-stop",
                "B",
                "t1",
                "B",
                "2024-01-01T00:00:00.004000",
                json!({"host": "h"}),
            ),
            n(
                "x-start",
                "C",
                "t3",
                "C",
                "2023-01-01T00:00:00.000000",
                json!({"host": "h"}),
            ),
        ];
        d.notify(&batch).unwrap();
        let events = d.get_events("B").unwrap();
        let want: Vec<Value> = batch[..4]
            .iter()
            .map(|n| n.to_value(Some("nova"), Some("api")))
            .collect();
        assert_eq!(
            serde_json::to_string(&events).unwrap(),
            serde_json::to_string(&want).unwrap()
        );

        let report = d.get_report("B").unwrap().to_value();
        let wsgi = &report["children"][0];
        assert_eq!(wsgi["info"]["host"], "node1");
        assert_eq!(
            wsgi["info"]["meta.raw_payload.wsgi-start"],
            json!({"info": {"host": "h", "q": "é"}})
        );
        assert_eq!(wsgi["children"][0]["info"]["exception"], "E");
        assert_eq!(report["info"]["finished"], 4);

        assert_eq!(
            Value::from(
                d.list_traces(&[])
                    .unwrap()
                    .into_iter()
                    .map(Value::Object)
                    .collect::<Vec<_>>()
            ),
            json!([{"timestamp": "2024-01-01T00:00:00.000000", "base_id": "B"},
                   {"timestamp": "2023-01-01T00:00:00.000000", "base_id": "C"}])
        );
        assert_eq!(
            Value::from(
                d.list_error_traces()
                    .unwrap()
                    .into_iter()
                    .map(Value::Object)
                    .collect::<Vec<_>>()
            ),
            json!([{"base_id": "B", "timestamp": "2024-01-01T00:00:00.003000"}])
        );

        // A second handle on the same file sees everything.
        let again = SqliteDriver::open(&path).unwrap();
        assert_eq!(again.get_events("B").unwrap().len(), 4);
        drop((d, again));
        let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn corrupt_rows_are_skipped() {
        let d = SqliteDriver::open(":memory:").unwrap();
        d.notify(&[n(
            "a-start",
            "B",
            "t",
            "B",
            "2024-01-01T00:00:00.000000",
            json!({"host": "h"}),
        )])
        .unwrap();
        {
            let conn = d.lock();
            let insert = "INSERT INTO data (timestamp, base_id, parent_id, trace_id, name, data) VALUES (?1, 'B', ?2, ?3, ?4, ?5)";
            for (ts, parent, trace, name, data) in [
                (
                    json!("2024-01-01T00:00:00.1"),
                    json!("B"),
                    json!("u"),
                    json!("a-stop"),
                    json!("not json"),
                ),
                (
                    json!("garbage"),
                    json!("B"),
                    json!("v"),
                    json!("a-stop"),
                    json!("{}"),
                ),
                (
                    json!(7),
                    json!(null),
                    json!("w"),
                    json!("a-stop"),
                    json!("{}"),
                ),
                (
                    json!("2024-01-01T00:00:00.2"),
                    json!("B"),
                    json!("t"),
                    json!("a-stop"),
                    json!("\"[1]\""),
                ),
            ] {
                let as_sql = |v: &Value| match v {
                    Value::String(s) => rusqlite::types::Value::Text(s.clone()),
                    Value::Number(n) => rusqlite::types::Value::Integer(n.as_i64().unwrap()),
                    _ => rusqlite::types::Value::Null,
                };
                conn.execute(
                    insert,
                    [
                        as_sql(&ts),
                        as_sql(&parent),
                        as_sql(&trace),
                        as_sql(&name),
                        as_sql(&data),
                    ],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO data (timestamp, base_id, parent_id, trace_id, name, data) VALUES ('x', 'B', 'B', X'FF', 'a-stop', '{}')",
                [],
            )
            .unwrap();
        }
        let events = d.get_events("B").unwrap();
        // Readable rows with object data come back, even with bad timestamps.
        assert_eq!(events.len(), 3);
        let report = d.get_report("B").unwrap();
        assert_eq!(report.len(), 1);
        assert_eq!(report.skipped(), 5);
    }
}
