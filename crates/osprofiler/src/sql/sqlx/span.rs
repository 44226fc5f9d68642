//! The future and stream wrappers that carry a statement's element, and
//! the stop `info` they record.
//!
//! Both run on the caller's task: the element is opened when the query is
//! handed to the executor and closed when the future completes or the
//! stream ends (or when either is dropped), in its own forked context (see
//! [`StatementSpan`]).

use std::cell::Cell;
use std::fmt::Write as _;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use ::sqlx::{
    Column as _, ColumnIndex, Database, Decode, Either, Row, Type, TypeInfo as _, ValueRef as _,
};
use futures_core::Stream;
use pin_project_lite::pin_project;
use serde_json::Value;

use crate::sql::{self, StatementSpan};

thread_local! {
    /// Set while code that already traces a statement runs: an executor
    /// wrapper reached from inside (our `query` on a `Traced` pool) must
    /// not open a second element.
    static IN_STATEMENT: Cell<bool> = const { Cell::new(false) };
}

/// Whether a statement run now should get an element of its own: tracing
/// is enabled, a trace is active, and no enclosing wrapper traces it.
#[inline]
pub(super) fn should_trace() -> bool {
    sql::is_enabled()
        && crate::profiler::is_active()
        && !IN_STATEMENT.try_with(Cell::get).unwrap_or(true)
}

/// Runs `f` marked as inside a traced statement (restored on unwind).
pub(super) fn inside_statement<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = IN_STATEMENT.try_with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(IN_STATEMENT.try_with(|c| c.replace(true)).unwrap_or(false));
    f()
}

/// The error type recorded as `etype`: the `sqlx::Error` variant.
pub(super) fn etype(error: &::sqlx::Error) -> &'static str {
    use ::sqlx::Error as E;
    match error {
        E::Configuration(_) => "sqlx::Error::Configuration",
        E::InvalidArgument(_) => "sqlx::Error::InvalidArgument",
        E::Database(_) => "sqlx::Error::Database",
        E::Io(_) => "sqlx::Error::Io",
        E::Tls(_) => "sqlx::Error::Tls",
        E::Protocol(_) => "sqlx::Error::Protocol",
        E::RowNotFound => "sqlx::Error::RowNotFound",
        E::TypeNotFound { .. } => "sqlx::Error::TypeNotFound",
        E::ColumnIndexOutOfBounds { .. } => "sqlx::Error::ColumnIndexOutOfBounds",
        E::ColumnNotFound(_) => "sqlx::Error::ColumnNotFound",
        E::ColumnDecode { .. } => "sqlx::Error::ColumnDecode",
        E::Encode(_) => "sqlx::Error::Encode",
        E::Decode(_) => "sqlx::Error::Decode",
        E::AnyDriverError(_) => "sqlx::Error::AnyDriverError",
        E::PoolTimedOut => "sqlx::Error::PoolTimedOut",
        E::PoolClosed => "sqlx::Error::PoolClosed",
        E::WorkerCrashed => "sqlx::Error::WorkerCrashed",
        E::InvalidSavePointStatement => "sqlx::Error::InvalidSavePointStatement",
        E::BeginFailed => "sqlx::Error::BeginFailed",
        _ => "sqlx::Error",
    }
}

/// Closes `span` for a statement that ended with `error`. "No row" is what
/// `fetch_one` makes of an empty result after the statement succeeded, not
/// a failure of the statement (upstream records only driver errors).
fn fail(span: StatementSpan, error: &::sqlx::Error, recorded: Option<Value>) {
    match error {
        ::sqlx::Error::RowNotFound => span.finish(recorded),
        _ => span.fail(etype(error), error),
    }
}

/// What a traced statement records of its results.
pub(super) trait Recorder<T>: Send {
    /// Sees one output (a row, a query result, a whole collection).
    fn record(&mut self, item: &T);
    /// The stop `info`, once the statement is done.
    fn finish(self) -> Option<Value>;
}

/// Records nothing: `hide_result`, upstream's default.
#[derive(Debug)]
pub(super) struct Hidden;

impl<T> Recorder<T> for Hidden {
    fn record(&mut self, _item: &T) {}

    fn finish(self) -> Option<Value> {
        None
    }
}

impl<T, R: Recorder<T>> Recorder<T> for Option<R> {
    fn record(&mut self, item: &T) {
        if let Some(r) = self {
            r.record(item);
        }
    }

    fn finish(self) -> Option<Value> {
        self.and_then(R::finish)
    }
}

/// The longest `result` text recorded; longer results end with `...`.
const MAX_RESULT: usize = 64 * 1024;

/// Records the rows as Python shows a cursor's rows: a tuple of tuples,
/// `((1, 'a'), (2, None))`.
pub(super) struct Rows<DB> {
    text: String,
    rows: usize,
    truncated: bool,
    _db: PhantomData<fn() -> DB>,
}

impl<DB: super::TracedDatabase> Rows<DB> {
    pub(super) fn new() -> Rows<DB> {
        Rows {
            text: String::new(),
            rows: 0,
            truncated: false,
            _db: PhantomData,
        }
    }

    fn add(&mut self, row: &DB::Row) {
        self.rows += 1;
        if self.truncated {
            return;
        }
        if self.rows > 1 {
            self.text.push_str(", ");
        }
        DB::render_row(row, &mut self.text);
        if self.text.len() > MAX_RESULT {
            let mut end = MAX_RESULT;
            while !self.text.is_char_boundary(end) {
                end -= 1;
            }
            self.text.truncate(end);
            self.truncated = true;
        }
    }
}

impl<DB: super::TracedDatabase> Recorder<Either<DB::QueryResult, DB::Row>> for Rows<DB> {
    fn record(&mut self, item: &Either<DB::QueryResult, DB::Row>) {
        if let Either::Right(row) = item {
            self.add(row);
        }
    }

    fn finish(self) -> Option<Value> {
        Some(sql::result_info(self.render()))
    }
}

impl<DB: super::TracedDatabase> Recorder<Option<DB::Row>> for Rows<DB> {
    fn record(&mut self, item: &Option<DB::Row>) {
        if let Some(row) = item {
            self.add(row);
        }
    }

    fn finish(self) -> Option<Value> {
        Some(sql::result_info(self.render()))
    }
}

impl<DB> Rows<DB> {
    fn render(self) -> String {
        match (self.rows, self.truncated) {
            (_, true) => format!("({}...)", self.text),
            (0, _) => "()".to_owned(),
            (1, _) => format!("({},)", self.text),
            _ => format!("({})", self.text),
        }
    }
}

/// One row as a Python tuple, for any database whose values decode into
/// the common types.
pub(super) fn render_row<DB>(row: &DB::Row, out: &mut String)
where
    DB: Database,
    usize: ColumnIndex<DB::Row>,
    bool: Type<DB> + for<'r> Decode<'r, DB>,
    i16: Type<DB> + for<'r> Decode<'r, DB>,
    i32: Type<DB> + for<'r> Decode<'r, DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
    f32: Type<DB> + for<'r> Decode<'r, DB>,
    f64: Type<DB> + for<'r> Decode<'r, DB>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    Vec<u8>: Type<DB> + for<'r> Decode<'r, DB>,
{
    let len = row.columns().len();
    out.push('(');
    for i in 0..len {
        if i > 0 {
            out.push_str(", ");
        }
        render_value::<DB>(row, i, out);
    }
    if len == 1 {
        out.push(',');
    }
    out.push(')');
}

fn render_value<DB>(row: &DB::Row, i: usize, out: &mut String)
where
    DB: Database,
    usize: ColumnIndex<DB::Row>,
    bool: Type<DB> + for<'r> Decode<'r, DB>,
    i16: Type<DB> + for<'r> Decode<'r, DB>,
    i32: Type<DB> + for<'r> Decode<'r, DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
    f32: Type<DB> + for<'r> Decode<'r, DB>,
    f64: Type<DB> + for<'r> Decode<'r, DB>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    Vec<u8>: Type<DB> + for<'r> Decode<'r, DB>,
{
    match row.try_get_raw(i) {
        Ok(raw) if raw.is_null() => {
            out.push_str("None");
            return;
        }
        Ok(_) => {}
        Err(_) => {
            out.push_str("<?>");
            return;
        }
    }
    if let Ok(v) = row.try_get::<i64, _>(i) {
        let _ = write!(out, "{v}");
    } else if let Ok(v) = row.try_get::<i32, _>(i) {
        let _ = write!(out, "{v}");
    } else if let Ok(v) = row.try_get::<i16, _>(i) {
        let _ = write!(out, "{v}");
    } else if let Ok(v) = row.try_get::<f64, _>(i) {
        py_float(v, out);
    } else if let Ok(v) = row.try_get::<f32, _>(i) {
        py_float(f64::from(v), out);
    } else if let Ok(v) = row.try_get::<bool, _>(i) {
        out.push_str(if v { "True" } else { "False" });
    } else if let Ok(v) = row.try_get::<String, _>(i) {
        crate::pyjson::repr_str(&v, out);
    } else if let Ok(v) = row.try_get::<Vec<u8>, _>(i) {
        py_bytes(&v, out);
    } else {
        // A type none of the above decodes (dates, decimals, uuids...).
        let name = row
            .columns()
            .get(i)
            .map(|c| c.type_info().name().to_owned())
            .unwrap_or_default();
        let _ = write!(out, "<{name}>");
    }
}

/// Python's `repr(float)`, close enough: `1.0`, `nan`, `inf`.
fn py_float(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("nan");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "inf" } else { "-inf" });
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// Python's `repr(bytes)`.
pub(super) fn py_bytes(b: &[u8], out: &mut String) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    out.push('b');
    out.push(quote);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if char::from(b) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(quote);
}

pin_project! {
    /// A statement's future, closing its element when it completes.
    pub(super) struct SpanFuture<F, R> {
        #[pin]
        inner: F,
        span: Option<StatementSpan>,
        recorder: Option<R>,
    }
}

impl<F, R> SpanFuture<F, R> {
    pub(super) fn new(inner: F, span: Option<StatementSpan>, recorder: R) -> Self {
        SpanFuture {
            inner,
            span,
            recorder: Some(recorder),
        }
    }
}

impl<F, T, R> Future for SpanFuture<F, R>
where
    F: Future<Output = Result<T, ::sqlx::Error>>,
    R: Recorder<T>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.span.is_none() {
            return this.inner.poll(cx);
        }
        let result = inside_statement(|| this.inner.poll(cx));
        if let Poll::Ready(outcome) = &result {
            if let Some(span) = this.span.take() {
                let mut recorder = this.recorder.take();
                match outcome {
                    Ok(value) => {
                        recorder.record(value);
                        span.finish(recorder.finish());
                    }
                    Err(error) => fail(span, error, None),
                }
            }
        }
        result
    }
}

pin_project! {
    /// A statement's stream of results, closing its element at the end of
    /// the stream, at the first error, or when dropped (the caller stopped
    /// reading).
    pub(super) struct SpanStream<S, R> {
        #[pin]
        inner: S,
        span: Option<StatementSpan>,
        recorder: Option<R>,
    }
}

impl<S, R> SpanStream<S, R> {
    pub(super) fn new(inner: S, span: Option<StatementSpan>, recorder: R) -> Self {
        SpanStream {
            inner,
            span,
            recorder: Some(recorder),
        }
    }
}

impl<S, T, R> Stream for SpanStream<S, R>
where
    S: Stream<Item = Result<T, ::sqlx::Error>>,
    R: Recorder<T>,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if this.span.is_none() {
            return this.inner.poll_next(cx);
        }
        let result = inside_statement(|| this.inner.poll_next(cx));
        match &result {
            Poll::Ready(Some(Ok(item))) => this.recorder.record(item),
            Poll::Ready(Some(Err(error))) => {
                if let Some(span) = this.span.take() {
                    fail(span, error, this.recorder.take().finish());
                }
            }
            Poll::Ready(None) => {
                if let Some(span) = this.span.take() {
                    span.finish(this.recorder.take().finish());
                }
            }
            Poll::Pending => {}
        }
        result
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn python_reprs() {
        assert_eq!(s(|o| crate::pyjson::repr_str("a'b", o)), "\"a'b\"");
        assert_eq!(s(|o| crate::pyjson::repr_str("a'b\"", o)), "'a\\'b\"'");
        assert_eq!(
            s(|o| crate::pyjson::repr_str("x\n\u{1}é", o)),
            "'x\\n\\x01é'"
        );
        assert_eq!(s(|o| py_bytes(b"a\x00'", o)), "b\"a\\x00'\"");
        assert_eq!(s(|o| py_float(1.0, o)), "1.0");
        assert_eq!(s(|o| py_float(f64::NAN, o)), "nan");
    }

    #[test]
    fn flag_is_restored() {
        assert!(!IN_STATEMENT.with(Cell::get));
        let inner = inside_statement(|| IN_STATEMENT.with(Cell::get));
        assert!(inner);
        assert!(!IN_STATEMENT.with(Cell::get));
        let _ = std::panic::catch_unwind(|| inside_statement(|| panic!("boom")));
        assert!(!IN_STATEMENT.with(Cell::get));
    }
}
