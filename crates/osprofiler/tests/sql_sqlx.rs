//! sqlx statements as `db` elements, against the real PostgreSQL
//! (127.0.0.1:5432), MariaDB (127.0.0.1:3306) and a SQLite file. A server
//! that does not answer fails the tests, naming it.
#![cfg(all(
    feature = "sqlx-postgres",
    feature = "sqlx-mysql",
    feature = "sqlx-sqlite"
))]

mod servers;
mod sql_common;

use std::future::Future;

use osprofiler::profiler::{self, Trace};
use osprofiler::sql::{self, sqlx::query, sqlx::query_as, sqlx::Traced};
use serde_json::{json, Value};
use serial_test::serial;
use sql_common::{assert_error_stop, find, flushed, install_store, only_trace_id, statements};
use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn postgres() -> PgPool {
    servers::require("PostgreSQL", "127.0.0.1:5432");
    PgPool::connect(sql_common::POSTGRES_URL)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {}: {e}", sql_common::POSTGRES_URL))
}

async fn mariadb() -> MySqlPool {
    servers::require("MariaDB", "127.0.0.1:3306");
    MySqlPool::connect(sql_common::MYSQL_URL)
        .await
        .unwrap_or_else(|e| panic!("MariaDB at {}: {e}", sql_common::MYSQL_URL))
}

async fn sqlite() -> SqlitePool {
    let path = servers::temp_dir("osp_sqlx_").join("test.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    SqlitePool::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("SQLite at {}: {e}", path.display()))
}

/// Runs `body` as one traced request on a task of the runtime: a fresh
/// trace with a `wsgi` element around `body`.
async fn traced_request<T: Send + 'static>(body: impl Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(profiler::scope(async move {
        profiler::init("SECRET_KEY", None, None);
        let wsgi = Trace::new("wsgi", None);
        let out = body.await;
        drop(wsgi);
        profiler::clean();
        out
    }))
    .await
    .expect("request task")
}

/// Re-enables SQL tracing when a test that disabled it ends, even failing.
struct ReEnable;

impl Drop for ReEnable {
    fn drop(&mut self) {
        sql::enable();
    }
}

macro_rules! backend_tests {
    ($module:ident, $connect:path, $p1:literal, $p2:literal) => {
        mod $module {
            use super::*;

            fn insert_sql(table: &str) -> String {
                format!("INSERT INTO {table} (id, name) VALUES ({}, {})", $p1, $p2)
            }

            #[test]
            #[serial]
            fn statements_are_children_of_the_enclosing_element() {
                let rt = rt();
                let store = install_store();
                let table = servers::unique("osp_sqlx_");
                rt.block_on(async {
                    let pool = Traced::new($connect().await);
                    let create = format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(64))");
                    sqlx::query(&create).execute(pool.get_ref()).await.unwrap();

                    let (pool2, t) = (pool.clone(), table.clone());
                    let name = traced_request(async move {
                        let (pool, insert) = (pool2, insert_sql(&t));
                        // sqlx's own query through the traced pool: values unseen.
                        sqlx::query(&insert).bind(1_i64).bind("alpha").execute(&pool).await.unwrap();
                        // This crate's builder on the traced pool: traced once, with values.
                        query(&insert).bind(2_i64).bind("beta").execute(&pool).await.unwrap();
                        // ... and on the plain pool.
                        let select_name = format!("SELECT name FROM {t} WHERE id = {}", $p1);
                        let (name,): (String,) = query_as(&select_name)
                            .bind(2_i64)
                            .fetch_one(pool.get_ref())
                            .await
                            .unwrap();
                        // A traced transaction.
                        let mut tx = pool.begin().await.unwrap();
                        sqlx::query(&insert).bind(3_i64).bind("gamma").execute(&mut tx).await.unwrap();
                        tx.commit().await.unwrap();
                        // Two statements at once in one task.
                        let count = format!("SELECT COUNT(*) FROM {t}");
                        let max = format!("SELECT MAX(id) FROM {t}");
                        let (c, m) = tokio::join!(
                            sqlx::query_as::<_, (i64,)>(&count).fetch_one(&pool),
                            sqlx::query_as::<_, (i64,)>(&max).fetch_one(&pool),
                        );
                        assert_eq!((c.unwrap().0, m.unwrap().0), (3, 3));
                        // Results shown.
                        let shown = pool.wrap(pool.get_ref().clone()).hide_result(false);
                        let select = format!("SELECT id, name FROM {t} WHERE id <= {} ORDER BY id", $p1);
                        let rows = sqlx::query(&select).bind(2_i64).fetch_all(&shown).await.unwrap();
                        assert_eq!(rows.len(), 2);
                        name
                    })
                    .await;
                    assert_eq!(name, "beta");
                    sqlx::query(&format!("DROP TABLE {table}")).execute(pool.get_ref()).await.unwrap();
                });

                let events = flushed(&store);
                let wsgi = only_trace_id(&events, "wsgi");
                let db = statements(&events, "db");
                assert_eq!(db.len(), 7, "{events:#?}");
                for s in &db {
                    assert_eq!(s.parent_id(), wsgi, "db elements are children of wsgi: {:#}", s.start);
                    assert_eq!(s.start["base_id"], events[0]["base_id"]);
                    assert!(s.start["info"]["host"].is_string());
                }
                let inserts: Vec<&Value> = db
                    .iter()
                    .filter(|s| s.sql() == insert_sql(&table))
                    .map(|s| s.params())
                    .collect();
                assert_eq!(inserts.len(), 3);
                assert_eq!(inserts.iter().filter(|p| **p == &json!(["?", "?"])).count(), 2);
                assert!(inserts.contains(&&json!([2, "beta"])), "{inserts:?}");
                assert_eq!(find(&db, "SELECT name").params(), &json!([2]));
                assert_eq!(find(&db, "COUNT(*)").params(), &json!([]));
                assert_eq!(find(&db, "MAX(id)").params(), &json!([]));
                for s in &db {
                    if !s.sql().starts_with("SELECT id, name") {
                        assert_eq!(s.stop_info().get("db"), None, "results hidden: {:#}", s.stop);
                        assert_eq!(s.stop_info().get("etype"), None, "{:#}", s.stop);
                    }
                }
                let shown = find(&db, "SELECT id, name");
                assert_eq!(shown.params(), &json!(["?"]));
                assert_eq!(
                    shown.stop_info()["db"],
                    json!({"result": "((1, 'alpha'), (2, 'beta'))"})
                );
            }

            #[test]
            #[serial]
            fn failing_statements_record_the_error() {
                let rt = rt();
                let store = install_store();
                let missing = servers::unique("osp_missing_");
                rt.block_on(async {
                    let pool = Traced::new($connect().await);
                    let m = missing.clone();
                    traced_request(async move {
                        let err = sqlx::query(&format!("SELECT * FROM {m}"))
                            .fetch_one(&pool)
                            .await
                            .err()
                            .expect("missing table");
                        assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
                        let err = query("SELEC 1").execute(&pool).await.unwrap_err();
                        assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
                        // No row is not a failure of the statement.
                        let err = query_as::<_, (i64,)>("SELECT 1 WHERE 1 = 0")
                            .fetch_one(&pool)
                            .await
                            .unwrap_err();
                        assert!(matches!(err, sqlx::Error::RowNotFound), "{err:?}");
                    })
                    .await;
                });

                let events = flushed(&store);
                let db = statements(&events, "db");
                assert_eq!(db.len(), 3, "{events:#?}");
                let missing_table = find(&db, &missing);
                assert_error_stop(missing_table, "sqlx::Error::Database", &missing);
                let chained = missing_table.stop_info()["db"]["chained_exception"].as_str().unwrap();
                assert!(chained.contains(&missing), "the server's message: {chained:?}");
                assert_error_stop(find(&db, "SELEC 1"), "sqlx::Error::Database", "syntax");
                let empty = find(&db, "WHERE 1 = 0");
                assert_eq!(empty.stop_info().get("etype"), None, "{:#}", empty.stop);
            }

            #[test]
            #[serial]
            fn disabled_records_no_statement() {
                let rt = rt();
                let store = install_store();
                sql::disable();
                let _enable = ReEnable;
                rt.block_on(async {
                    let pool = Traced::new($connect().await);
                    traced_request(async move {
                        sqlx::query("SELECT 1").execute(&pool).await.unwrap();
                        query("SELECT 2").execute(&pool).await.unwrap();
                        query("SELECT 3").execute(pool.get_ref()).await.unwrap();
                    })
                    .await;
                });
                let events = flushed(&store);
                only_trace_id(&events, "wsgi");
                assert!(statements(&events, "db").is_empty(), "{events:#?}");
                assert_eq!(events.len(), 2, "{events:#?}");
            }

            #[test]
            #[serial]
            fn no_trace_records_nothing() {
                let rt = rt();
                let store = install_store();
                rt.block_on(async {
                    let pool = Traced::new($connect().await).hide_result(false);
                    tokio::spawn(profiler::scope(async move {
                        assert!(!profiler::is_active());
                        let row: (i32,) = sqlx::query_as("SELECT 5").fetch_one(&pool).await.unwrap();
                        assert_eq!(row.0, 5);
                        let row: (i32,) = query_as("SELECT 6").fetch_one(&pool).await.unwrap();
                        assert_eq!(row.0, 6);
                        sqlx::query("SELEC 1").execute(&pool).await.unwrap_err();
                    }))
                    .await
                    .unwrap();
                });
                let events = flushed(&store);
                assert!(events.is_empty(), "{events:#?}");
            }
        }
    };
}

backend_tests!(postgresql, postgres, "$1", "$2");
backend_tests!(mariadb_server, mariadb, "?", "?");
backend_tests!(sqlite_file, sqlite, "?", "?");
