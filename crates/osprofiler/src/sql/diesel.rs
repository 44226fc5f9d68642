//! `db` elements for [diesel](https://diesel.rs) 2.2+ statements, through
//! diesel's connection instrumentation.
//!
//! Set [`DieselInstrumentation`] on a connection, or make it the default of
//! every new connection, and each statement run while a trace is active
//! becomes a `db` element, child of the current element:
//!
//! ```no_run
//! use diesel::prelude::*;
//! use osprofiler::sql::diesel::DieselInstrumentation;
//!
//! # #[cfg(feature = "diesel-postgres")]
//! # fn demo() -> QueryResult<()> {
//! // Every connection established from now on (Python's `add_tracing`):
//! DieselInstrumentation::install_default()?;
//! // Or one connection:
//! let mut conn = PgConnection::establish("postgres://postgres@127.0.0.1/test")
//!     .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?;
//! conn.set_instrumentation(DieselInstrumentation::default());
//! diesel::sql_query("SELECT 1").execute(&mut conn)?;
//! # Ok(()) }
//! ```
//!
//! # What is recorded
//!
//! - `statement`: the SQL diesel sends, placeholders included
//!   (`SELECT ... WHERE id = $1`);
//! - `params`: the bound values, read from the `Debug` text diesel gives
//!   the instrumentation (see [`sql::param`]): numbers,
//!   strings and `null` as such, other values as text. Statements diesel
//!   runs from plain SQL text (`batch_execute`, `BEGIN`, `COMMIT`) have
//!   `[]`;
//! - on failure: `etype` = the `diesel::result::Error` variant
//!   (`diesel::result::Error::DatabaseError`, ...), `message` and
//!   `db.original_exception` = the error's text, `db.chained_exception` =
//!   the text of its cause, if any.
//!
//! Diesel's instrumentation does not see rows, so results are never
//! recorded (upstream's default, `hide_result`).
//!
//! # Context
//!
//! The element is opened at diesel's `StartQuery` event and closed at its
//! `FinishQuery` in a context of its own, so it stays correct with
//! diesel-async connections whose futures move between threads.

use ::diesel::connection::{
    set_default_instrumentation, DebugQuery, Instrumentation, InstrumentationEvent,
};
use ::diesel::result::{Error, QueryResult};
use serde_json::Value;

use super::params::{debug_struct_fields, from_debug};
use crate::profiler::{self, Name};
use crate::sql::{self, StatementSpan};

/// A diesel [`Instrumentation`] that traces every statement of its
/// connection as a `db` element.
#[derive(Debug)]
pub struct DieselInstrumentation {
    name: Name,
    /// The element of the statement running now. A connection runs one
    /// statement at a time, so one slot is enough.
    open: Option<StatementSpan>,
}

impl Default for DieselInstrumentation {
    fn default() -> Self {
        DieselInstrumentation::new()
    }
}

impl DieselInstrumentation {
    /// Traces statements as elements named `db`.
    pub fn new() -> DieselInstrumentation {
        DieselInstrumentation {
            name: Name::from(sql::DEFAULT_NAME),
            open: None,
        }
    }

    /// The element name (default `db`; upstream's `add_tracing(name=...)`).
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Makes a `DieselInstrumentation` the instrumentation of every
    /// connection established from now on (diesel's
    /// [`set_default_instrumentation`]). Connections that already exist
    /// are not changed.
    pub fn install_default() -> QueryResult<()> {
        set_default_instrumentation(|| Some(Box::new(DieselInstrumentation::new())))
    }
}

impl Instrumentation for DieselInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                // A statement whose finish never came: close it first.
                self.open = None;
                if sql::is_enabled() && profiler::is_active() {
                    self.open = StatementSpan::start(self.name.clone(), || start_info(query));
                }
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(span) = self.open.take() {
                    span.finish(error.map(error_info));
                }
            }
            _ => {}
        }
    }
}

/// The start `info` of a statement, from the `Debug` form diesel passes:
/// `Query { sql: "...", binds: [...] }` for built queries, the quoted SQL
/// for plain text.
fn start_info(query: &dyn DebugQuery) -> Value {
    let text = format!("{query:?}");
    if let Some(fields) = debug_struct_fields(&text, "Query") {
        let sql = fields
            .iter()
            .find(|(k, _)| *k == "sql")
            .map(|(_, v)| from_debug(v));
        let binds = fields
            .iter()
            .find(|(k, _)| *k == "binds")
            .map(|(_, v)| from_debug(v));
        if let (Some(Value::String(statement)), Some(params @ Value::Array(_))) = (sql, binds) {
            return sql::start_info(&statement, params);
        }
    }
    if let Value::String(statement) = from_debug(&text) {
        if text.starts_with('"') {
            return sql::start_info(&statement, Value::Array(Vec::new()));
        }
    }
    // Some other form: what `Display` shows, as the statement.
    sql::start_info(&query.to_string(), Value::Array(Vec::new()))
}

/// The error type recorded as `etype`: the `diesel::result::Error` variant.
fn etype(error: &Error) -> &'static str {
    match error {
        Error::InvalidCString(_) => "diesel::result::Error::InvalidCString",
        Error::DatabaseError(..) => "diesel::result::Error::DatabaseError",
        Error::NotFound => "diesel::result::Error::NotFound",
        Error::QueryBuilderError(_) => "diesel::result::Error::QueryBuilderError",
        Error::DeserializationError(_) => "diesel::result::Error::DeserializationError",
        Error::SerializationError(_) => "diesel::result::Error::SerializationError",
        Error::RollbackErrorOnCommit { .. } => "diesel::result::Error::RollbackErrorOnCommit",
        Error::RollbackTransaction => "diesel::result::Error::RollbackTransaction",
        Error::AlreadyInTransaction => "diesel::result::Error::AlreadyInTransaction",
        Error::NotInTransaction => "diesel::result::Error::NotInTransaction",
        Error::BrokenTransactionManager => "diesel::result::Error::BrokenTransactionManager",
        _ => "diesel::result::Error",
    }
}

fn error_info(error: &Error) -> Value {
    // diesel reports causes through the older `cause`, not `source`.
    #[allow(deprecated)]
    let chained = std::error::Error::cause(error)
        .map(|c| c.to_string())
        .unwrap_or_default();
    sql::error_info(etype(error), &error.to_string(), &chained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fmt;

    /// Stands in for diesel's query types: shows the given texts.
    struct Fake(&'static str, &'static str);

    impl fmt::Debug for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl fmt::Display for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }
    }

    impl DebugQuery for Fake {}

    #[test]
    fn statement_and_params_from_debug() {
        let q = Fake(
            r#"Query { sql: "SELECT \"a\" FROM t WHERE id = $1 AND n = $2", binds: [1, "x, y", None] }"#,
            "unused",
        );
        assert_eq!(
            start_info(&q),
            json!({"db": {"statement": "SELECT \"a\" FROM t WHERE id = $1 AND n = $2",
                          "params": [1, "x, y", null]}})
        );
        let plain = Fake(r#""BEGIN""#, "BEGIN");
        assert_eq!(
            start_info(&plain),
            json!({"db": {"statement": "BEGIN", "params": []}})
        );
        let other = Fake("Something { else: 1 }", "SELECT 2");
        assert_eq!(
            start_info(&other),
            json!({"db": {"statement": "SELECT 2", "params": []}})
        );
    }

    #[test]
    fn error_shapes() {
        assert_eq!(
            error_info(&Error::NotFound),
            json!({"etype": "diesel::result::Error::NotFound", "message": "Record not found",
                   "db": {"original_exception": "Record not found", "chained_exception": ""}})
        );
        let e = Error::DeserializationError("bad int".into());
        let info = error_info(&e);
        assert_eq!(info["etype"], "diesel::result::Error::DeserializationError");
        assert_eq!(info["db"]["chained_exception"], "bad int");
    }
}
