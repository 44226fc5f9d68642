//! PostgreSQL and MySQL/MariaDB drivers (Python's `sqlalchemy` driver):
//! `postgresql://`, `postgresql+psycopg2://` (feature `postgres`) and
//! `mysql://`, `mysql+pymysql://`, `mysql+mysqldb://` (feature `mysql`).
//!
//! The table `data` is upstream's, created if missing with the types and
//! `ix_data_<column>` indexes SQLAlchemy gives it, and rows hold the same
//! bytes (see `sql_layout`), so a database can be shared with Python
//! services. Unlike upstream (whose writes are never committed under
//! SQLAlchemy 2, and whose reads fail there), each
//! [`notify`](Driver::notify) batch is one multi-row `INSERT` in one
//! committed transaction, and the reads work.
//!
//! With `filter_error_trace`, error stops are also recorded in the table
//! `error_traces` (`base_id` primary key, timestamp of the latest error
//! stop), which [`list_error_traces`](Driver::list_error_traces) reads, as
//! the SQLite driver does; upstream's SQL driver has no error index.
//!
//! The connection is opened lazily, with a connect timeout, and dropped
//! after any failure: a database that is down makes `notify` return an
//! error (the collector retries the batch later) and the next call
//! reconnects. TLS is not supported.

use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::sql_layout::{self, Dialect, Identity, Row, COLUMNS, ERROR_TABLE, TABLE};
use super::{redact_secrets, Driver};
use crate::config::ProfilerConfig;
use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::report::{Report, ReportBuilder};

/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a reply (MySQL), or for sent data to be acknowledged
/// (PostgreSQL's TCP user timeout).
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows per `INSERT` statement (9 parameters each; both servers allow
/// 65,535 parameters per statement).
const ROWS_PER_INSERT: usize = 500;

/// Stores notifications in PostgreSQL or MySQL/MariaDB, in upstream's
/// `data` table.
pub struct SqlDriver {
    connection_string: String,
    target: Target,
    identity: Identity,
    filter_error_trace: bool,
    connection: super::reconnect::Reconnecting<Connection>,
}

enum Target {
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::Config>),
    #[cfg(feature = "mysql")]
    Mysql(Box<mysql::Opts>),
}

enum Connection {
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::Client>),
    #[cfg(feature = "mysql")]
    Mysql(Box<mysql::Conn>),
}

impl fmt::Debug for SqlDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlDriver")
            .field(
                "connection_string",
                &redact_secrets(&self.connection_string),
            )
            .field("identity", &self.identity)
            .field("filter_error_trace", &self.filter_error_trace)
            .finish_non_exhaustive()
    }
}

/// The parts of a SQLAlchemy-style URL both backends need.
struct UrlParts {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
    query: Vec<(String, String)>,
}

fn parse_url(connection_string: &str) -> Result<UrlParts, String> {
    let url = url::Url::parse(connection_string).map_err(|e| redact_secrets(&e.to_string()))?;
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let host = url.host_str().filter(|h| !h.is_empty()).map(|h| {
        // IPv6 literals come back bracketed.
        h.trim_start_matches('[').trim_end_matches(']').to_string()
    });
    let database = url.path().trim_start_matches('/');
    Ok(UrlParts {
        host,
        port: url.port(),
        user: Some(url.username()).filter(|u| !u.is_empty()).map(decode),
        password: url.password().map(decode),
        database: Some(database).filter(|d| !d.is_empty()).map(decode),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    })
}

impl SqlDriver {
    /// A driver for a SQLAlchemy-style URL:
    /// `postgresql[+psycopg2]://[user[:password]@]host[:port]/database` or
    /// `mysql[+pymysql]://[user[:password]@]host[:port]/database`.
    ///
    /// Query parameters understood: PostgreSQL `host` (a socket
    /// directory), `port`, `connect_timeout`, `application_name`,
    /// `options`, `sslmode` (`disable`/`prefer` only); MySQL
    /// `unix_socket`. Others (e.g. `charset`) are ignored.
    ///
    /// `project`, `service` and `host` fill the columns of the same name;
    /// `filter_error_trace` comes from `conf`. Does not connect: the first
    /// use does, and every use after a failure.
    pub fn new(
        connection_string: &str,
        project: Option<&str>,
        service: Option<&str>,
        host: Option<&str>,
        conf: &ProfilerConfig,
    ) -> Result<SqlDriver> {
        let invalid = |reason: String| Error::InvalidConnectionString {
            connection_string: redact_secrets(connection_string),
            reason,
        };
        let scheme = connection_string.split_once("://").map_or("", |(s, _)| s);
        let backend = scheme.split('+').next().unwrap_or_default();
        let parts = parse_url(connection_string).map_err(invalid)?;
        let target = match backend {
            #[cfg(feature = "postgres")]
            "postgresql" => Target::Postgres(Box::new(postgres_config(parts).map_err(invalid)?)),
            #[cfg(feature = "mysql")]
            "mysql" => Target::Mysql(Box::new(mysql_opts(parts))),
            _ => {
                return Err(invalid(format!(
                    "no SQL backend for scheme {scheme:?} in this build"
                )))
            }
        };
        Ok(SqlDriver {
            connection_string: connection_string.to_string(),
            target,
            identity: Identity {
                project: project.map(String::from),
                service: service.map(String::from),
                host: host.map(String::from),
            },
            filter_error_trace: conf.filter_error_trace,
            connection: super::reconnect::Reconnecting::new(),
        })
    }

    fn name_of(&self) -> &'static str {
        match &self.target {
            #[cfg(feature = "postgres")]
            Target::Postgres(_) => "postgresql",
            #[cfg(feature = "mysql")]
            Target::Mysql(_) => "mysql",
        }
    }

    fn error(&self, what: &str, e: impl fmt::Display) -> Error {
        Error::backend(
            self.name_of(),
            format!("{what} ({}): {e}", redact_secrets(&self.connection_string)),
        )
    }

    /// Opens a connection and creates the tables if missing.
    fn connect(&self) -> Result<Connection> {
        match &self.target {
            #[cfg(feature = "postgres")]
            Target::Postgres(config) => {
                let mut client = config
                    .connect(postgres::NoTls)
                    .map_err(|e| self.error("cannot connect", e))?;
                for statement in schema(Dialect::Postgres) {
                    if let Err(e) = client.batch_execute(&statement) {
                        // Another process creating the same table or index
                        // at the same moment: it exists now.
                        let racing = e
                            .code()
                            .is_some_and(|c| matches!(c.code(), "23505" | "42P07" | "42710"));
                        if !racing {
                            return Err(self.error("cannot create the tables", e));
                        }
                    }
                }
                Ok(Connection::Postgres(Box::new(client)))
            }
            #[cfg(feature = "mysql")]
            Target::Mysql(opts) => {
                use mysql::prelude::Queryable;
                let mut conn = mysql::Conn::new((**opts).clone())
                    .map_err(|e| self.error("cannot connect", e))?;
                for statement in schema(Dialect::Mysql) {
                    conn.query_drop(&statement)
                        .map_err(|e| self.error("cannot create the tables", e))?;
                }
                Ok(Connection::Mysql(Box::new(conn)))
            }
        }
    }

    /// Runs `work` on the connection, opening it first if needed; drops the
    /// connection when `work` fails, so the next call reconnects.
    fn with_connection<T>(&self, work: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        self.connection.with(|| self.connect(), work)
    }

    /// Rows of `SELECT <COLUMNS> FROM data <tail>` with one text parameter
    /// (or none), and how many rows could not be read.
    fn select_rows(&self, tail: &str, param: Option<&str>) -> Result<(Vec<Row>, usize)> {
        let columns = select_list(self.dialect());
        let sql = format!("SELECT {columns} FROM {TABLE} {tail}");
        self.with_connection(|connection| match connection {
            #[cfg(feature = "postgres")]
            Connection::Postgres(client) => {
                let sql = sql.replace('?', "$1");
                let rows = match param {
                    Some(p) => client.query(&sql, &[&p]),
                    None => client.query(&sql, &[]),
                }
                .map_err(|e| self.error("query failed", e))?;
                let mut out = (Vec::with_capacity(rows.len()), 0);
                for row in &rows {
                    let mut values: [Option<String>; 9] = Default::default();
                    let mut ok = true;
                    for (i, slot) in values.iter_mut().enumerate() {
                        match row.try_get::<_, Option<String>>(i) {
                            Ok(v) => *slot = v,
                            Err(_) => ok = false,
                        }
                    }
                    if ok {
                        out.0.push(Row::from_values(values));
                    } else {
                        out.1 += 1;
                    }
                }
                Ok(out)
            }
            #[cfg(feature = "mysql")]
            Connection::Mysql(conn) => {
                use mysql::prelude::Queryable;
                let params = match param {
                    Some(p) => mysql::Params::Positional(vec![mysql::Value::from(p)]),
                    None => mysql::Params::Empty,
                };
                let rows: Vec<mysql::Row> = conn
                    .exec(&sql, params)
                    .map_err(|e| self.error("query failed", e))?;
                let mut out = (Vec::with_capacity(rows.len()), 0);
                for row in rows {
                    match mysql_row(row) {
                        Some(r) => out.0.push(r),
                        None => out.1 += 1,
                    }
                }
                Ok(out)
            }
        })
    }

    fn dialect(&self) -> Dialect {
        match &self.target {
            #[cfg(feature = "postgres")]
            Target::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            Target::Mysql(_) => Dialect::Mysql,
        }
    }

    fn rows_of(&self, base_id: &str) -> Result<(Vec<Row>, usize)> {
        self.select_rows("WHERE base_id = ? ORDER BY id", Some(base_id))
    }
}

/// The statements creating `data`, its indexes and `error_traces`.
fn schema(dialect: Dialect) -> Vec<String> {
    let mut statements = sql_layout::create_statements(dialect);
    statements.push(sql_layout::create_error_table_statement());
    statements
}

/// The [`COLUMNS`] as a select list; PostgreSQL's `json` comes back as text.
fn select_list(dialect: Dialect) -> String {
    COLUMNS
        .iter()
        .map(|c| match (dialect, *c) {
            (Dialect::Postgres, "data") => "data::text".to_string(),
            _ => (*c).to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO data (...) VALUES (...), (...)` for `rows` rows, with
/// `?` or `$n` placeholders; PostgreSQL's `data` is cast to `json`.
fn insert_statement(dialect: Dialect, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {TABLE} ({}) VALUES ", COLUMNS.join(", "));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, column) in COLUMNS.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match dialect {
                Dialect::Postgres if *column == "data" => {
                    sql.push_str(&format!("${n}::text::json"))
                }
                Dialect::Postgres => sql.push_str(&format!("${n}")),
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// Upsert of the error index for `rows` (base_id, timestamp) pairs.
fn error_upsert_statement(dialect: Dialect, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {ERROR_TABLE} (base_id, timestamp) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        match dialect {
            Dialect::Postgres => sql.push_str(&format!("(${}, ${})", 2 * r + 1, 2 * r + 2)),
            _ => sql.push_str("(?, ?)"),
        }
    }
    match dialect {
        Dialect::Postgres => {
            sql.push_str(" ON CONFLICT (base_id) DO UPDATE SET timestamp = EXCLUDED.timestamp")
        }
        _ => sql.push_str(" ON DUPLICATE KEY UPDATE timestamp = VALUES(timestamp)"),
    }
    sql
}

/// The error stops of a batch: (base_id, timestamp of its last error stop),
/// one per trace.
fn error_entries(batch: &[Notification]) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for n in batch.iter().filter(|n| n.is_error()) {
        match out.iter_mut().find(|(id, _)| *id == n.base_id) {
            Some(entry) => entry.1 = &n.timestamp,
            None => out.push((&n.base_id, &n.timestamp)),
        }
    }
    out
}

#[cfg(feature = "postgres")]
fn postgres_config(parts: UrlParts) -> Result<postgres::Config, String> {
    let mut config = postgres::Config::new();
    config.connect_timeout(CONNECT_TIMEOUT);
    config.tcp_user_timeout(IO_TIMEOUT);
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    // One host and port: the `host`/`port` parameters (libpq's way to give
    // a socket directory) win over the URL's.
    let param = |name: &str| {
        parts
            .query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let host = param("host")
        .or(parts.host.as_deref())
        .unwrap_or("localhost");
    config.host(host);
    let port = match param("port") {
        Some(p) => p.parse().map_err(|_| format!("invalid port {p:?}"))?,
        None => parts.port.unwrap_or(5432),
    };
    config.port(port);
    // libpq's defaults: PGUSER, else the login name.
    let user = parts
        .user
        .or_else(|| std::env::var("PGUSER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "postgres".into());
    config.user(&user);
    if let Some(password) = &parts.password {
        config.password(password);
    }
    if let Some(database) = &parts.database {
        config.dbname(database);
    }
    for (key, value) in &parts.query {
        match key.as_str() {
            "host" | "port" => {}
            "connect_timeout" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("invalid connect_timeout {value:?}"))?;
                config.connect_timeout(Duration::from_secs(secs.max(1)));
            }
            "application_name" => {
                config.application_name(value);
            }
            "options" => {
                config.options(value);
            }
            "sslmode" => match value.as_str() {
                "disable" => {
                    config.ssl_mode(postgres::config::SslMode::Disable);
                }
                "allow" | "prefer" => {
                    config.ssl_mode(postgres::config::SslMode::Prefer);
                }
                other => {
                    return Err(format!(
                        "sslmode={other} needs TLS, which this build does not support"
                    ))
                }
            },
            other => log::debug!("osprofiler: ignoring PostgreSQL URL parameter {other:?}"),
        }
    }
    Ok(config)
}

#[cfg(feature = "mysql")]
fn mysql_opts(parts: UrlParts) -> mysql::Opts {
    let mut builder = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(parts.host.unwrap_or_else(|| "localhost".into())))
        .tcp_port(parts.port.unwrap_or(3306))
        .user(parts.user)
        .pass(parts.password)
        .db_name(parts.database)
        .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
        .read_timeout(Some(IO_TIMEOUT))
        .write_timeout(Some(IO_TIMEOUT))
        .prefer_socket(false);
    for (key, value) in parts.query {
        match key.as_str() {
            "unix_socket" => builder = builder.socket(Some(value)),
            other => log::debug!("osprofiler: ignoring MySQL URL parameter {other:?}"),
        }
    }
    mysql::Opts::from(builder)
}

/// The [`COLUMNS`] of a MySQL result row; `None` if one is not text.
#[cfg(feature = "mysql")]
fn mysql_row(row: mysql::Row) -> Option<Row> {
    let mut values: [Option<String>; 9] = Default::default();
    let raw = row.unwrap_raw();
    if raw.len() != values.len() {
        return None;
    }
    for (slot, value) in values.iter_mut().zip(raw) {
        *slot = match value? {
            mysql::Value::NULL => None,
            mysql::Value::Bytes(bytes) => Some(String::from_utf8(bytes).ok()?),
            other => Some(other.as_sql(true)),
        };
    }
    Some(Row::from_values(values))
}

impl Driver for SqlDriver {
    fn name(&self) -> &'static str {
        self.name_of()
    }

    fn notify(&self, batch: &[Notification]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let rows: Vec<Row> = batch
            .iter()
            .map(|n| Row::from_notification(n, &self.identity))
            .collect();
        let errors = if self.filter_error_trace {
            error_entries(batch)
        } else {
            Vec::new()
        };
        let dialect = self.dialect();
        self.with_connection(|connection| match connection {
            #[cfg(feature = "postgres")]
            Connection::Postgres(client) => {
                // Dropping an uncommitted transaction rolls it back: a
                // failure leaves nothing half-written for the retry.
                let mut tx = client
                    .transaction()
                    .map_err(|e| self.error("cannot begin", e))?;
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let params: Vec<Option<&str>> = chunk.iter().flat_map(|r| r.values()).collect();
                    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                        .iter()
                        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                        .collect();
                    tx.execute(&insert_statement(dialect, chunk.len()), &params)
                        .map_err(|e| self.error("insert failed", e))?;
                }
                for chunk in errors.chunks(ROWS_PER_INSERT) {
                    let params: Vec<&str> = chunk.iter().flat_map(|(b, t)| [*b, *t]).collect();
                    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                        .iter()
                        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                        .collect();
                    tx.execute(&error_upsert_statement(dialect, chunk.len()), &params)
                        .map_err(|e| self.error("error index update failed", e))?;
                }
                tx.commit().map_err(|e| self.error("commit failed", e))
            }
            #[cfg(feature = "mysql")]
            Connection::Mysql(conn) => {
                use mysql::prelude::Queryable;
                let mut tx = conn
                    .start_transaction(mysql::TxOpts::default())
                    .map_err(|e| self.error("cannot begin", e))?;
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let params: Vec<mysql::Value> = chunk
                        .iter()
                        .flat_map(|r| r.values())
                        .map(mysql::Value::from)
                        .collect();
                    tx.exec_drop(
                        insert_statement(dialect, chunk.len()),
                        mysql::Params::Positional(params),
                    )
                    .map_err(|e| self.error("insert failed", e))?;
                }
                for chunk in errors.chunks(ROWS_PER_INSERT) {
                    let params: Vec<mysql::Value> = chunk
                        .iter()
                        .flat_map(|(b, t)| [*b, *t])
                        .map(mysql::Value::from)
                        .collect();
                    tx.exec_drop(
                        error_upsert_statement(dialect, chunk.len()),
                        mysql::Params::Positional(params),
                    )
                    .map_err(|e| self.error("error index update failed", e))?;
                }
                tx.commit().map_err(|e| self.error("commit failed", e))
            }
        })
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
                "osprofiler {}: skipped {bad} unreadable rows of trace {base_id}",
                self.name_of()
            );
        }
        Ok(out)
    }

    fn get_report(&self, base_id: &str) -> Result<Report> {
        let (rows, bad) = self.rows_of(base_id)?;
        let mut builder = ReportBuilder::new();
        for _ in 0..bad {
            builder.count_malformed();
        }
        for row in rows {
            row.append_to_report(&mut builder);
        }
        Ok(builder.finish())
    }

    fn list_traces(&self, fields: &[&str]) -> Result<Vec<Map<String, Value>>> {
        // The first row of every base_id, in insertion order, as upstream
        // (which reads the whole table) returns them. MySQL cannot select
        // from the table it filters on in one `IN`, hence the derived table.
        let tail = format!(
            "WHERE id IN (SELECT first_id FROM (SELECT MIN(id) AS first_id FROM {TABLE} GROUP BY base_id) AS firsts) ORDER BY id"
        );
        let (rows, _) = self.select_rows(&tail, None)?;
        Ok(rows
            .iter()
            .map(|row| sql_layout::trace_entry(row, fields))
            .collect())
    }

    fn list_error_traces(&self) -> Result<Vec<Map<String, Value>>> {
        let sql =
            format!("SELECT base_id, timestamp FROM {ERROR_TABLE} ORDER BY timestamp, base_id");
        let pairs: Vec<(Option<String>, Option<String>)> =
            self.with_connection(|connection| match connection {
                #[cfg(feature = "postgres")]
                Connection::Postgres(client) => {
                    let rows = client
                        .query(&sql, &[])
                        .map_err(|e| self.error("query failed", e))?;
                    Ok(rows
                        .iter()
                        .map(|r| (r.try_get(0).ok().flatten(), r.try_get(1).ok().flatten()))
                        .collect())
                }
                #[cfg(feature = "mysql")]
                Connection::Mysql(conn) => {
                    use mysql::prelude::Queryable;
                    type Bytes = Option<Vec<u8>>;
                    let rows: Vec<(Bytes, Bytes)> = conn
                        .query(&sql)
                        .map_err(|e| self.error("query failed", e))?;
                    let text = |v: Option<Vec<u8>>| v.and_then(|b| String::from_utf8(b).ok());
                    Ok(rows.into_iter().map(|(b, t)| (text(b), text(t))).collect())
                }
            })?;
        Ok(pairs
            .into_iter()
            .map(|(base_id, timestamp)| {
                let mut entry = Map::new();
                entry.insert("base_id".into(), base_id.map_or(Value::Null, Value::from));
                entry.insert(
                    "timestamp".into(),
                    timestamp.map_or(Value::Null, Value::from),
                );
                entry
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_sqlalchemy_form() {
        let parts =
            parse_url("mysql+pymysql://us%40er:p%3Ass@[::1]:3307/osp%2Fdb?charset=utf8").unwrap();
        assert_eq!(parts.host.as_deref(), Some("::1"));
        assert_eq!(parts.port, Some(3307));
        assert_eq!(parts.user.as_deref(), Some("us@er"));
        assert_eq!(parts.password.as_deref(), Some("p:ss"));
        assert_eq!(parts.database.as_deref(), Some("osp/db"));
        assert_eq!(parts.query, [("charset".to_string(), "utf8".to_string())]);
        let parts = parse_url("postgresql:///traces?host=/run/postgresql").unwrap();
        assert_eq!(parts.host, None);
        assert_eq!(parts.database.as_deref(), Some("traces"));
        #[cfg(feature = "postgres")]
        {
            let config = postgres_config(parts).unwrap();
            assert_eq!(config.get_hosts().len(), 1);
            assert_eq!(config.get_ports(), [5432]);
            let config =
                postgres_config(parse_url("postgresql://u@h:6000/d?port=7000").unwrap()).unwrap();
            assert_eq!(config.get_ports(), [7000]);
            assert!(
                postgres_config(parse_url("postgresql://h/d?sslmode=require").unwrap()).is_err()
            );
        }
    }

    #[test]
    fn statements() {
        assert_eq!(
            insert_statement(Dialect::Postgres, 2),
            "INSERT INTO data (timestamp, base_id, parent_id, trace_id, project, host, service, name, data) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::json), ($10, $11, $12, $13, $14, $15, $16, $17, $18::text::json)"
        );
        assert!(insert_statement(Dialect::Mysql, 1).ends_with("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        assert_eq!(
            error_upsert_statement(Dialect::Postgres, 2),
            "INSERT INTO error_traces (base_id, timestamp) VALUES ($1, $2), ($3, $4) \
             ON CONFLICT (base_id) DO UPDATE SET timestamp = EXCLUDED.timestamp"
        );
        assert!(error_upsert_statement(Dialect::Mysql, 1).contains("(?, ?) ON DUPLICATE KEY"));
        assert!(select_list(Dialect::Postgres).ends_with("name, data::text"));
    }

    #[test]
    fn one_error_entry_per_trace_with_the_last_timestamp() {
        let n = |b: &str, ts: &str, error: bool| Notification {
            name: "x-stop".into(),
            base_id: b.into(),
            trace_id: "t".into(),
            parent_id: "p".into(),
            timestamp: ts.into(),
            info: Some(if error {
                Map::from_iter([("etype".to_string(), Value::from("E"))])
            } else {
                Map::new()
            }),
        };
        let batch = [
            n("a", "1", true),
            n("b", "2", false),
            n("a", "3", true),
            n("c", "4", true),
        ];
        assert_eq!(error_entries(&batch), [("a", "3"), ("c", "4")]);
    }

    #[test]
    fn bad_urls_are_errors_without_passwords() {
        let conf = ProfilerConfig::default();
        for url in [
            "postgresql://u:secret@h:notaport/db",
            "mysql://u:secret@h:99999/db",
        ] {
            let err = SqlDriver::new(url, None, None, None, &conf)
                .unwrap_err()
                .to_string();
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
