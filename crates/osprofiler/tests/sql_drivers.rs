//! The PostgreSQL and MySQL/MariaDB drivers against the real local servers
//! (127.0.0.1:5432 user postgres, 127.0.0.1:3306 user root), each test in
//! a database of its own, and against Python osprofiler 4.4.0's
//! SQLAlchemy driver on the same databases.
#![cfg(any(feature = "postgres", feature = "mysql"))]

mod servers;

use std::time::{Duration, Instant};

use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{get_driver, Driver};
use osprofiler::notification::Notification;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    #[cfg(feature = "postgres")]
    Postgres,
    #[cfg(feature = "mysql")]
    Mysql,
}

type TextRows = Vec<Vec<Option<String>>>;

impl Backend {
    fn require(self) {
        match self {
            #[cfg(feature = "postgres")]
            Backend::Postgres => servers::require("PostgreSQL", "127.0.0.1:5432"),
            #[cfg(feature = "mysql")]
            Backend::Mysql => servers::require("MariaDB/MySQL", "127.0.0.1:3306"),
        }
    }

    /// Our connection string for `db`, in the plain or the `+driver` form.
    fn url(self, db: &str, with_driver: bool) -> String {
        match (self, with_driver) {
            #[cfg(feature = "postgres")]
            (Backend::Postgres, false) => format!("postgresql://postgres@127.0.0.1:5432/{db}"),
            #[cfg(feature = "postgres")]
            (Backend::Postgres, true) => {
                format!("postgresql+psycopg2://postgres@127.0.0.1:5432/{db}")
            }
            #[cfg(feature = "mysql")]
            (Backend::Mysql, false) => format!("mysql://root@127.0.0.1:3306/{db}"),
            #[cfg(feature = "mysql")]
            (Backend::Mysql, true) => format!("mysql+pymysql://root@127.0.0.1:3306/{db}"),
        }
    }

    /// Runs `sql` on `db` over an admin connection and returns the rows as
    /// text.
    fn query(self, db: &str, sql: &str) -> TextRows {
        match self {
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let mut client = postgres::Client::connect(
                    &format!(
                        "host=127.0.0.1 port=5432 user=postgres dbname={db} connect_timeout=5"
                    ),
                    postgres::NoTls,
                )
                .unwrap_or_else(|e| panic!("PostgreSQL at 127.0.0.1:5432 (database {db}): {e}"));
                let mut out = Vec::new();
                for message in client
                    .simple_query(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                {
                    if let postgres::SimpleQueryMessage::Row(row) = message {
                        out.push(
                            (0..row.len())
                                .map(|i| row.get(i).map(String::from))
                                .collect(),
                        );
                    }
                }
                out
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql => {
                use mysql::prelude::Queryable;
                let opts = mysql::OptsBuilder::new()
                    .ip_or_hostname(Some("127.0.0.1"))
                    .tcp_port(3306)
                    .user(Some("root"))
                    .db_name(Some(db))
                    .prefer_socket(false);
                let mut conn = mysql::Conn::new(opts)
                    .unwrap_or_else(|e| panic!("MariaDB at 127.0.0.1:3306 (database {db}): {e}"));
                let rows: Vec<mysql::Row> =
                    conn.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.into_iter()
                    .map(|row| {
                        row.unwrap()
                            .into_iter()
                            .map(|v| match v {
                                mysql::Value::NULL => None,
                                mysql::Value::Bytes(b) => {
                                    Some(String::from_utf8_lossy(&b).into_owned())
                                }
                                other => Some(other.as_sql(true).trim_matches('\'').to_string()),
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    fn admin_db(self) -> &'static str {
        match self {
            #[cfg(feature = "postgres")]
            Backend::Postgres => "postgres",
            #[cfg(feature = "mysql")]
            Backend::Mysql => "test",
        }
    }

    /// Ends every other session on `db` (to force the driver to reconnect).
    fn kill_sessions(self, db: &str) -> usize {
        match self {
            #[cfg(feature = "postgres")]
            Backend::Postgres => self
                .query(
                    self.admin_db(),
                    &format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = '{db}' AND pid <> pg_backend_pid()"
                    ),
                )
                .len(),
            #[cfg(feature = "mysql")]
            Backend::Mysql => {
                let ids = self.query(
                    self.admin_db(),
                    &format!(
                        "SELECT id FROM information_schema.processlist \
                         WHERE db = '{db}' AND id <> CONNECTION_ID()"
                    ),
                );
                for id in &ids {
                    self.query(
                        self.admin_db(),
                        &format!("KILL {}", id[0].as_deref().unwrap()),
                    );
                }
                ids.len()
            }
        }
    }

    /// Columns and indexes of `data` in `db`, comparable across databases.
    fn table_shape(self, db: &str) -> (TextRows, TextRows) {
        match self {
            #[cfg(feature = "postgres")]
            Backend::Postgres => (
                self.query(
                    db,
                    "SELECT column_name, data_type, character_maximum_length::text, is_nullable, column_default \
                     FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'data' \
                     ORDER BY ordinal_position",
                ),
                self.query(
                    db,
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'data' ORDER BY indexname",
                ),
            ),
            #[cfg(feature = "mysql")]
            Backend::Mysql => (
                self.query(
                    db,
                    &format!(
                        "SELECT column_name, column_type, is_nullable, column_default, extra \
                         FROM information_schema.columns WHERE table_schema = '{db}' AND table_name = 'data' \
                         ORDER BY ordinal_position"
                    ),
                ),
                self.query(
                    db,
                    &format!(
                        "SELECT index_name, column_name, non_unique, seq_in_index FROM information_schema.statistics \
                         WHERE table_schema = '{db}' AND table_name = 'data' ORDER BY index_name, seq_in_index"
                    ),
                ),
            ),
        }
    }
}

/// A database created for one test and dropped after it.
struct TempDb {
    backend: Backend,
    name: String,
}

impl TempDb {
    fn new(backend: Backend) -> TempDb {
        backend.require();
        let name = servers::unique("osprofiler_t_");
        backend.query(backend.admin_db(), &format!("CREATE DATABASE {name}"));
        TempDb { backend, name }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let sql = match self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            #[cfg(feature = "mysql")]
            Backend::Mysql => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        self.backend.query(self.backend.admin_db(), &sql);
    }
}

fn event(name: &str, base: &str, trace: &str, parent: &str, ts: &str, info: Value) -> Notification {
    Notification {
        name: name.into(),
        base_id: base.into(),
        trace_id: trace.into(),
        parent_id: parent.into(),
        timestamp: ts.into(),
        info: info.as_object().cloned(),
    }
}

fn values(entries: Vec<Map<String, Value>>) -> Value {
    Value::Array(entries.into_iter().map(Value::Object).collect())
}

fn filter_error_trace() -> ProfilerConfig {
    let mut conf = ProfilerConfig::default();
    conf.filter_error_trace = true;
    conf
}

fn round_trip(backend: Backend) {
    let db = TempDb::new(backend);
    let driver = get_driver(
        &backend.url(&db.name, true),
        Some("nova"),
        Some("api"),
        Some("node1"),
        &filter_error_trace(),
    )
    .unwrap();
    let (a, b, c) = ("trace-a", "trace-b", "trace-c");
    let mut batch = vec![
        event(
            "wsgi-start",
            a,
            "ta",
            a,
            "2024-01-01T00:00:00.000000",
            json!({"host": "h", "q": "ünï ✓"}),
        ),
        event(
            "db-start",
            a,
            "tb",
            "ta",
            "2024-01-01T00:00:00.001000",
            json!({"host": "h", "db": {"statement": "SELECT 1"}}),
        ),
        event(
            "x-start",
            b,
            "tx",
            b,
            "2023-06-01T00:00:00.000000",
            json!({"host": "h"}),
        ),
        event(
            "db-stop",
            a,
            "tb",
            "ta",
            "2024-01-01T00:00:00.003500",
            json!({"host": "h", "etype": "E1", "message": "m"}),
        ),
        event(
            "wsgi-stop",
            a,
            "ta",
            a,
            "2024-01-01T00:00:00.004000",
            json!({"host": "h", "etype": "E2", "message": "m"}),
        ),
    ];
    // Enough rows for several INSERT statements in one transaction.
    for i in 0..1200 {
        let ts = format!("2024-02-01T00:00:{:02}.{:06}", i / 1000, i % 1000);
        batch.push(event(
            "loop-start",
            c,
            &format!("c{i}"),
            c,
            &ts,
            json!({"host": "h", "i": i}),
        ));
    }
    driver.notify(&batch).unwrap();

    let want: Vec<Value> = [0, 1, 3, 4]
        .iter()
        .map(|&i| batch[i].to_value(Some("nova"), Some("api")))
        .collect();
    assert_eq!(driver.get_events(a).unwrap(), want);
    assert_eq!(driver.get_events(c).unwrap().len(), 1200);
    assert_eq!(driver.get_events("nope").unwrap(), Vec::<Value>::new());

    let report = driver.get_report(a).unwrap().to_value();
    let wsgi = &report["children"][0];
    assert_eq!(wsgi["info"]["host"], "node1");
    assert_eq!(
        wsgi["info"]["meta.raw_payload.wsgi-start"],
        json!({"info": {"host": "h", "q": "ünï ✓"}})
    );
    assert_eq!(wsgi["info"]["exception"], "E2");
    assert_eq!(wsgi["children"][0]["info"]["finished"], 3);
    assert_eq!(report["stats"]["db"], json!({"count": 1, "duration": 2}));

    assert_eq!(
        values(driver.list_traces(&[]).unwrap()),
        json!([{"timestamp": "2024-01-01T00:00:00.000000", "base_id": a},
               {"timestamp": "2023-06-01T00:00:00.000000", "base_id": b},
               {"timestamp": "2024-02-01T00:00:00.000000", "base_id": c}])
    );
    assert_eq!(
        values(driver.list_traces(&["name", "base_id", "host"]).unwrap())[1],
        json!({"base_id": b, "host": "node1", "name": "x-start"})
    );
    assert_eq!(
        values(driver.list_error_traces().unwrap()),
        json!([{"base_id": a, "timestamp": "2024-01-01T00:00:00.004000"}])
    );

    // A later error of the same trace moves its entry; a second driver on
    // the existing tables reads and writes the same.
    let again = get_driver(
        &backend.url(&db.name, false),
        None,
        None,
        None,
        &filter_error_trace(),
    )
    .unwrap();
    again
        .notify(&[event(
            "late-stop",
            a,
            "tl",
            a,
            "2024-01-01T00:00:09.000000",
            json!({"host": "h", "etype": "E3"}),
        )])
        .unwrap();
    assert_eq!(
        values(again.list_error_traces().unwrap()),
        json!([{"base_id": a, "timestamp": "2024-01-01T00:00:09.000000"}])
    );
    assert_eq!(driver.get_events(a).unwrap().len(), 5);
    assert_eq!(again.get_events(a).unwrap()[4]["project"], Value::Null);
    drop((driver, again));
}

/// Python's SQLAlchemy driver and ours on the same databases: same table
/// layout, and each reads what the other wrote with the same result.
fn python_interop(backend: Backend) {
    let py_db = TempDb::new(backend);
    let rs_db = TempDb::new(backend);

    // Python writes (its driver creates the table).
    let out: Value = serde_json::from_str(&servers::run_python(
        "sql_interop.py",
        &["write", &backend.url(&py_db.name, true)],
    ))
    .unwrap();
    let ours = get_driver(
        &backend.url(&py_db.name, false),
        Some("rustproj"),
        Some("rustsvc"),
        None,
        &ProfilerConfig::default(),
    )
    .unwrap();
    let traces = out["traces"].as_object().unwrap();
    for (label, base_id) in traces {
        let base_id = base_id.as_str().unwrap();
        assert_eq!(
            Value::Array(ours.get_events(base_id).unwrap()),
            out["payloads"][base_id],
            "{label}: get_events differs from the payloads Python stored"
        );
        let mut report = ours.get_report(base_id).unwrap().to_value();
        let mut theirs = out["reports"][base_id].clone();
        servers::normalize_report(&mut report);
        servers::normalize_report(&mut theirs);
        assert_eq!(report, theirs, "{label}: report differs from upstream's");
    }
    assert_eq!(values(ours.list_traces(&[]).unwrap()), out["list_traces"]);

    // We write a trace (our driver creates the table); Python reads it.
    let writer = get_driver(
        &backend.url(&rs_db.name, false),
        Some("rustproj"),
        Some("rustsvc"),
        Some("rusthost"),
        &ProfilerConfig::default(),
    )
    .unwrap();
    let base = servers::unique_uuid();
    let (t1, t2) = (servers::unique_uuid(), servers::unique_uuid());
    let batch = [
        event(
            "wsgi-start",
            &base,
            &t1,
            &base,
            "2024-03-01T10:00:00.000100",
            json!({"host": "h", "request": {"path": "/ü"}}),
        ),
        event(
            "rpc-start",
            &base,
            &t2,
            &t1,
            "2024-03-01T10:00:00.002000",
            json!({"host": "h"}),
        ),
        event(
            "rpc-stop",
            &base,
            &t2,
            &t1,
            "2024-03-01T10:00:00.005999",
            json!({"host": "h", "etype": "Boom", "message": "✓"}),
        ),
        event(
            "wsgi-stop",
            &base,
            &t1,
            &base,
            "2024-03-01T10:00:00.010000",
            json!({"host": "h"}),
        ),
    ];
    writer.notify(&batch).unwrap();
    let mut theirs: Value = serde_json::from_str(&servers::run_python(
        "sql_interop.py",
        &["report", &backend.url(&rs_db.name, true), &base],
    ))
    .unwrap();
    let mut report = writer.get_report(&base).unwrap().to_value();
    servers::normalize_report(&mut report);
    servers::normalize_report(&mut theirs);
    assert_eq!(report, theirs);
    assert_eq!(
        theirs["children"][0]["children"][0]["info"]["exception"],
        "Boom"
    );

    // Both tables look the same to the server.
    let (columns, indexes) = backend.table_shape(&rs_db.name);
    assert_eq!(
        (columns.len(), indexes.len()),
        (10, 9),
        "{columns:?} {indexes:?}"
    );
    assert_eq!((columns, indexes), backend.table_shape(&py_db.name));
    drop((ours, writer));
}

fn reconnects(backend: Backend) {
    let db = TempDb::new(backend);
    let driver = get_driver(
        &backend.url(&db.name, false),
        None,
        None,
        None,
        &ProfilerConfig::default(),
    )
    .unwrap();
    let base = servers::unique_uuid();
    let e = |i: usize| {
        event(
            "x-start",
            &base,
            &format!("t{i}"),
            &base,
            "2024-01-01T00:00:00.000000",
            json!({"i": i}),
        )
    };
    driver.notify(&[e(0)]).unwrap();
    assert!(
        backend.kill_sessions(&db.name) >= 1,
        "the driver's session was not found"
    );
    // The first call may find the connection dead (the collector would
    // retry); the next one reconnects.
    let mut errors = 0;
    while driver.notify(&[e(1)]).is_err() {
        errors += 1;
        assert!(errors < 2, "did not reconnect");
    }
    assert_eq!(driver.get_events(&base).unwrap().len(), 2);
}

fn unreachable_fails_fast(backend: Backend) {
    let port = servers::free_port();
    let url = backend
        .url("x", false)
        .replace("root@", "root:hunter2@")
        .replace("postgres@", "postgres:hunter2@");
    let url = url
        .replace(":5432/", &format!(":{port}/"))
        .replace(":3306/", &format!(":{port}/"));
    let driver = get_driver(&url, None, None, None, &ProfilerConfig::default()).unwrap();
    let started = Instant::now();
    let err = driver
        .notify(&[event(
            "x-start",
            "b",
            "t",
            "b",
            "2024-01-01T00:00:00.000000",
            json!({}),
        )])
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    let err = err.to_string();
    assert!(
        err.contains(&port.to_string()) && !err.contains("hunter2"),
        "{err}"
    );
    assert!(driver.list_traces(&[]).is_err());
}

macro_rules! backend_tests {
    ($module:ident, $feature:literal, $backend:expr) => {
        #[cfg(feature = $feature)]
        mod $module {
            #[test]
            fn round_trip() {
                super::round_trip($backend);
            }
            #[test]
            fn python_interop() {
                super::python_interop($backend);
            }
            #[test]
            fn reconnects() {
                super::reconnects($backend);
            }
            #[test]
            fn unreachable_fails_fast() {
                super::unreachable_fails_fast($backend);
            }
        }
    };
}

backend_tests!(on_postgresql, "postgres", super::Backend::Postgres);
backend_tests!(on_mariadb, "mysql", super::Backend::Mysql);
