//! SQL statement tracing: Python's `osprofiler.sqlalchemy` for Rust database
//! libraries.
//!
//! Each statement run while a trace is active becomes an element named `db`
//! (a child of the current element) with the same `info` as upstream:
//!
//! - start: `{"db": {"statement": "<SQL>", "params": [...]}}`;
//! - stop: nothing, or `{"db": {"result": "<rows>"}}` when results are
//!   shown (`hide_result = false`, off by default as upstream);
//! - error stop: `{"etype": "<error type>", "message": "<error text>",
//!   "db": {"original_exception": "<error text>", "chained_exception":
//!   "<text of its source, or empty>"}}`.
//!
//! Integrations:
//! - `sqlx` feature: [`sqlx::Traced`] wraps a pool or connection and traces
//!   every statement run through it; [`sqlx::query`] also records the
//!   bound values.
//! - `diesel` feature: [`diesel::DieselInstrumentation`] traces every
//!   statement of the connections it is set on.
//!
//! Other libraries can use [`StatementSpan`] with [`start_info`].
//!
//! # The global switch
//!
//! [`disable`] turns SQL tracing off everywhere, [`enable`] back on; it is
//! on by default, as upstream's module flag. Upstream consults the flag only
//! when `add_tracing` installs its listeners; here it is read at every
//! statement (one atomic load), so [`disable`] also silences integrations
//! that are already installed. [`configure`] applies a configuration the
//! way oslo.db does: tracing on only when both `enabled` and
//! `trace_sqlalchemy` are set.
//!
//! # Parameters
//!
//! `params` is a JSON array of the bound values, rendered as Python's
//! notifier shows them (numbers, strings, `null`, other values as text; see
//! [`param`]). When an integration cannot see the values (a plain sqlx
//! query), each one is recorded as `"?"`.
//!
//! # Cost
//!
//! With no trace active, or tracing disabled, a statement costs one atomic
//! load and one thread-local check; nothing is formatted.

mod params;

#[cfg(feature = "diesel")]
pub mod diesel;
#[cfg(feature = "sqlx")]
pub mod sqlx;

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};

use crate::config::ProfilerConfig;
use crate::local::{self, Context};
use crate::profiler::Name;

pub use params::{param, params};

/// The element name upstream uses for statements.
pub const DEFAULT_NAME: &str = "db";

/// Upstream's `_DISABLED`: false, i.e. tracing on, until [`disable`].
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Turns SQL tracing back on everywhere (Python's
/// `osprofiler.sqlalchemy.enable`).
pub fn enable() {
    DISABLED.store(false, Ordering::Relaxed);
}

/// Turns SQL tracing off everywhere, for smaller traces (Python's
/// `osprofiler.sqlalchemy.disable`). Statements still run, untraced.
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Whether statements are traced (when a trace is active).
#[inline]
pub fn is_enabled() -> bool {
    !DISABLED.load(Ordering::Relaxed)
}

/// Enables SQL tracing when `conf` has both `enabled` and
/// `trace_sqlalchemy` set, disables it otherwise (Python's
/// `opts.is_db_trace_enabled`, which oslo.db checks before installing the
/// SQLAlchemy listeners).
pub fn configure(conf: &ProfilerConfig) {
    if conf.enabled && conf.trace_sqlalchemy {
        enable();
    } else {
        disable();
    }
}

/// The start `info` of a statement: `{"db": {"statement", "params"}}`.
pub fn start_info(statement: &str, params: Value) -> Value {
    json!({"db": {"statement": statement, "params": params}})
}

/// The stop `info` that shows a statement's result:
/// `{"db": {"result": "..."}}`.
pub fn result_info(result: impl Into<String>) -> Value {
    json!({"db": {"result": result.into()}})
}

/// The stop `info` of a failed statement (Python's `handle_error`).
///
/// `message` is the error's text (also `db.original_exception`);
/// `chained` the text of the error that caused it, empty if none.
pub fn error_info(etype: &str, message: &str, chained: &str) -> Value {
    json!({
        "etype": etype,
        "message": message,
        "db": {"original_exception": message, "chained_exception": chained},
    })
}

/// [`error_info`] for an error value: its text, and the text of its
/// [`source`](StdError::source) as the chained exception.
pub fn error_info_from(etype: &str, error: &(dyn StdError + 'static)) -> Value {
    let chained = error.source().map(|s| s.to_string()).unwrap_or_default();
    error_info(etype, &error.to_string(), &chained)
}

/// `["?", "?", ...]`: `params` for `count` values that cannot be seen.
pub fn hidden_params(count: usize) -> Value {
    Value::Array(vec![Value::String("?".to_owned()); count])
}

/// One traced statement: an element opened in a context of its own.
///
/// The element is a child of the element current where it was started, and
/// it is closed by [`finish`](StatementSpan::finish),
/// [`fail`](StatementSpan::fail) or drop, on any thread and whatever else
/// was started or stopped meanwhile. So statements that run concurrently
/// in one task (`join!`) or whose future moves between threads each close
/// their own element.
///
/// ```
/// use osprofiler::{profiler, sql};
/// use serde_json::json;
///
/// profiler::init("SECRET_KEY", None, None);
/// let span = sql::StatementSpan::start(sql::DEFAULT_NAME, || {
///     sql::start_info("SELECT * FROM t WHERE id = ?", json!([1]))
/// });
/// assert!(span.is_some());
/// // ... run the statement ...
/// drop(span); // or span.finish(None) / span.fail("MyError", &error)
/// # profiler::clean();
/// ```
#[must_use = "the element is stopped when the span is dropped"]
pub struct StatementSpan {
    /// The forked context holding the open element; `None` once stopped.
    context: Option<Context>,
}

impl StatementSpan {
    /// Opens an element named `name` with the start `info` made by `info`,
    /// if SQL tracing is enabled and a trace is active; otherwise returns
    /// `None` without calling `info`.
    #[inline]
    pub fn start(name: impl Into<Name>, info: impl FnOnce() -> Value) -> Option<StatementSpan> {
        if !is_enabled() {
            return None;
        }
        let fork = local::with_context(Context::fork)?;
        Some(Self::open(fork, name.into(), info()))
    }

    #[cold]
    fn open(fork: Context, name: Name, info: Value) -> StatementSpan {
        let outer = local::swap_context(Some(fork));
        local::start(name, Some(local::Info::shared(info)));
        let context = local::swap_context(outer);
        StatementSpan { context }
    }

    /// Stops the element with `info` (for example [`result_info`]).
    pub fn finish(mut self, info: Option<Value>) {
        self.stop(info);
    }

    /// Stops the element as failed with `error` (see [`error_info_from`]).
    pub fn fail(mut self, etype: &str, error: &(dyn StdError + 'static)) {
        self.stop(Some(error_info_from(etype, error)));
    }

    fn stop(&mut self, info: Option<Value>) {
        if let Some(context) = self.context.take() {
            let outer = local::swap_context(Some(context));
            local::stop(info);
            local::swap_context(outer);
        }
    }
}

impl Drop for StatementSpan {
    fn drop(&mut self) {
        self.stop(None);
    }
}

impl fmt::Debug for StatementSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatementSpan")
            .field("open", &self.context.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_shapes() {
        assert_eq!(
            start_info("SELECT ?", json!([1])),
            json!({"db": {"statement": "SELECT ?", "params": [1]}})
        );
        assert_eq!(result_info("((1,),)"), json!({"db": {"result": "((1,),)"}}));
        assert_eq!(
            error_info("E", "boom", ""),
            json!({"etype": "E", "message": "boom",
                   "db": {"original_exception": "boom", "chained_exception": ""}})
        );
        assert_eq!(hidden_params(2), json!(["?", "?"]));
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "outer failed")
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chained_error() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(
            error_info_from("Outer", &e),
            json!({"etype": "Outer", "message": "outer failed",
                   "db": {"original_exception": "outer failed", "chained_exception": "inner"}})
        );
    }

    #[test]
    fn no_span_without_a_trace() {
        crate::profiler::clean();
        let mut called = false;
        let span = StatementSpan::start(DEFAULT_NAME, || {
            called = true;
            Value::Null
        });
        assert!(span.is_none());
        assert!(!called, "info must not be built when nothing is traced");
    }
}
