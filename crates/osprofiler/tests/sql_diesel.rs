//! diesel statements as `db` elements, against the real PostgreSQL
//! (127.0.0.1:5432), MariaDB (127.0.0.1:3306) and a SQLite file. A server
//! that does not answer fails the tests, naming it.
#![cfg(all(
    feature = "diesel-postgres",
    feature = "diesel-mysql",
    feature = "diesel-sqlite"
))]

mod servers;
mod sql_common;

use diesel::connection::set_default_instrumentation;
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::sqlite::SqliteConnection;
use osprofiler::profiler::{self, Trace};
use osprofiler::sql::{self, diesel::DieselInstrumentation};
use serde_json::json;
use serial_test::serial;
use sql_common::{assert_error_stop, find, flushed, install_store, only_trace_id, statements};

fn postgres() -> PgConnection {
    servers::require("PostgreSQL", "127.0.0.1:5432");
    PgConnection::establish(sql_common::POSTGRES_URL)
        .unwrap_or_else(|e| panic!("PostgreSQL at {}: {e}", sql_common::POSTGRES_URL))
}

fn mariadb() -> MysqlConnection {
    servers::require("MariaDB", "127.0.0.1:3306");
    MysqlConnection::establish(sql_common::MYSQL_URL)
        .unwrap_or_else(|e| panic!("MariaDB at {}: {e}", sql_common::MYSQL_URL))
}

fn sqlite_path() -> String {
    let path = servers::temp_dir("osp_diesel_").join("test.db");
    path.to_str().expect("UTF-8 temp path").to_owned()
}

fn sqlite() -> SqliteConnection {
    let path = sqlite_path();
    SqliteConnection::establish(&path).unwrap_or_else(|e| panic!("SQLite at {path}: {e}"))
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Item {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
}

/// Runs `body` inside a fresh trace, within a `wsgi` element.
fn traced_request<T>(body: impl FnOnce() -> T) -> T {
    profiler::init("SECRET_KEY", None, None);
    let wsgi = Trace::new("wsgi", None);
    let out = body();
    drop(wsgi);
    profiler::clean();
    out
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

            #[test]
            #[serial]
            fn statements_are_children_of_the_enclosing_element() {
                let store = install_store();
                let table = servers::unique("osp_diesel_");
                let mut conn = $connect();
                sql_query(format!(
                    "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(64))"
                ))
                .execute(&mut conn)
                .unwrap();
                conn.set_instrumentation(DieselInstrumentation::default());
                let insert = format!("INSERT INTO {table} (id, name) VALUES ({}, {})", $p1, $p2);
                let select = format!(
                    "SELECT id, name FROM {table} WHERE id <= {} ORDER BY id",
                    $p1
                );

                let items = traced_request(|| {
                    sql_query(&insert)
                        .bind::<BigInt, _>(1_i64)
                        .bind::<Text, _>("alpha")
                        .execute(&mut conn)
                        .unwrap();
                    sql_query(&insert)
                        .bind::<BigInt, _>(2_i64)
                        .bind::<Nullable<Text>, _>(None::<String>)
                        .execute(&mut conn)
                        .unwrap();
                    conn.transaction(|conn| {
                        sql_query(&insert)
                            .bind::<BigInt, _>(3_i64)
                            .bind::<Text, _>("it's \"quoted\"")
                            .execute(conn)
                    })
                    .unwrap();
                    sql_query(&select)
                        .bind::<BigInt, _>(2_i64)
                        .load::<Item>(&mut conn)
                        .unwrap()
                });
                assert_eq!(
                    items,
                    [
                        Item {
                            id: 1,
                            name: Some("alpha".into())
                        },
                        Item { id: 2, name: None }
                    ]
                );
                // Outside the trace: not recorded.
                sql_query(format!("DROP TABLE {table}"))
                    .execute(&mut conn)
                    .unwrap();

                let events = flushed(&store);
                let wsgi = only_trace_id(&events, "wsgi");
                let db = statements(&events, "db");
                let sqls: Vec<&str> = db.iter().map(|s| s.sql()).collect();
                assert_eq!(
                    sqls,
                    [&*insert, &*insert, "BEGIN", &*insert, "COMMIT", &*select]
                );
                for s in &db {
                    assert_eq!(
                        s.parent_id(),
                        wsgi,
                        "db elements are children of wsgi: {:#}",
                        s.start
                    );
                    assert!(s.start["info"]["host"].is_string());
                    assert_eq!(s.stop_info().get("etype"), None, "{:#}", s.stop);
                    assert_eq!(s.stop_info().get("db"), None, "{:#}", s.stop);
                }
                assert_eq!(db[0].params(), &json!([1, "alpha"]));
                assert_eq!(db[1].params(), &json!([2, null]));
                assert_eq!(db[2].params(), &json!([]));
                assert_eq!(db[3].params(), &json!([3, "it's \"quoted\""]));
                assert_eq!(db[4].params(), &json!([]));
                assert_eq!(db[5].params(), &json!([2]));
            }

            #[test]
            #[serial]
            fn failing_statements_record_the_error() {
                let store = install_store();
                let missing = servers::unique("osp_missing_");
                let mut conn = $connect();
                conn.set_instrumentation(DieselInstrumentation::default());
                traced_request(|| {
                    let err = sql_query(format!("SELECT * FROM {missing}"))
                        .execute(&mut conn)
                        .unwrap_err();
                    assert!(
                        matches!(err, diesel::result::Error::DatabaseError(..)),
                        "{err:?}"
                    );
                    let err = sql_query("SELEC 1").execute(&mut conn).unwrap_err();
                    assert!(
                        matches!(err, diesel::result::Error::DatabaseError(..)),
                        "{err:?}"
                    );
                });

                let events = flushed(&store);
                let db = statements(&events, "db");
                assert_eq!(db.len(), 2, "{events:#?}");
                let etype = "diesel::result::Error::DatabaseError";
                let missing_table = find(&db, &missing);
                assert_error_stop(missing_table, etype, &missing);
                assert_eq!(missing_table.stop_info()["db"]["chained_exception"], "");
                assert_error_stop(find(&db, "SELEC 1"), etype, "syntax");
            }

            #[test]
            #[serial]
            fn disabled_records_no_statement() {
                let store = install_store();
                let mut conn = $connect();
                conn.set_instrumentation(DieselInstrumentation::default());
                sql::disable();
                let _enable = ReEnable;
                traced_request(|| {
                    sql_query("SELECT 1").execute(&mut conn).unwrap();
                    sql_query("SELEC 1").execute(&mut conn).unwrap_err();
                });
                let events = flushed(&store);
                only_trace_id(&events, "wsgi");
                assert_eq!(events.len(), 2, "only wsgi: {events:#?}");
            }

            #[test]
            #[serial]
            fn no_trace_records_nothing() {
                let store = install_store();
                let mut conn = $connect();
                conn.set_instrumentation(DieselInstrumentation::default());
                profiler::clean();
                sql_query("SELECT 1").execute(&mut conn).unwrap();
                sql_query("SELEC 1").execute(&mut conn).unwrap_err();
                let events = flushed(&store);
                assert!(events.is_empty(), "{events:#?}");
            }
        }
    };
}

backend_tests!(postgresql, postgres, "$1", "$2");
backend_tests!(mariadb_server, mariadb, "?", "?");
backend_tests!(sqlite_file, sqlite, "?", "?");

diesel::table! {
    osp_items (id) {
        id -> BigInt,
        name -> Text,
    }
}

/// Queries built with diesel's DSL: the SQL diesel generates, and its
/// binds, as `params`.
#[test]
#[serial]
fn dsl_queries_show_generated_sql_and_binds() {
    let store = install_store();
    let mut conn = sqlite();
    sql_query("CREATE TABLE osp_items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&mut conn)
        .unwrap();
    conn.set_instrumentation(DieselInstrumentation::new().name("sqlite"));
    let name = traced_request(|| {
        diesel::insert_into(osp_items::table)
            .values((osp_items::id.eq(7_i64), osp_items::name.eq("seven")))
            .execute(&mut conn)
            .unwrap();
        osp_items::table
            .filter(osp_items::id.eq(7_i64))
            .select(osp_items::name)
            .first::<String>(&mut conn)
            .unwrap()
    });
    assert_eq!(name, "seven");

    let events = flushed(&store);
    let db = statements(&events, "sqlite");
    assert_eq!(db.len(), 2, "{events:#?}");
    assert_eq!(
        db[0].sql(),
        "INSERT INTO `osp_items` (`id`, `name`) VALUES (?, ?)"
    );
    assert_eq!(db[0].params(), &json!([7, "seven"]));
    assert_eq!(
        db[1].sql(),
        "SELECT `osp_items`.`name` FROM `osp_items` WHERE (`osp_items`.`id` = ?) LIMIT ?"
    );
    assert_eq!(db[1].params(), &json!([7, 1]));
}

/// `install_default` traces the connections established afterwards.
#[test]
#[serial]
fn install_default_traces_new_connections() {
    let store = install_store();
    let path = sqlite_path();
    let mut before = SqliteConnection::establish(&path).unwrap();
    DieselInstrumentation::install_default().unwrap();
    let mut after = SqliteConnection::establish(&path).unwrap();
    set_default_instrumentation(|| None).unwrap();
    traced_request(|| {
        sql_query("SELECT 'before'").execute(&mut before).unwrap();
        sql_query("SELECT 'after'").execute(&mut after).unwrap();
    });
    let events = flushed(&store);
    let db = statements(&events, "db");
    let sqls: Vec<&str> = db.iter().map(|s| s.sql()).collect();
    assert_eq!(sqls, ["SELECT 'after'"]);
}
