//! `db` elements for [sqlx](https://docs.rs/sqlx) 0.8 statements.
//!
//! sqlx has no statement hooks, so tracing goes through the executor:
//! [`Traced`] wraps a pool (or a connection, a transaction) and is itself
//! an [`Executor`]. Keep the `Traced` pool where you kept
//! the pool; queries run on `&pool` as before and each statement becomes a
//! `db` element, child of the element current where the query is awaited:
//!
//! ```no_run
//! # #[cfg(feature = "sqlx-postgres")]
//! # async fn demo() -> Result<(), sqlx::Error> {
//! use osprofiler::sql::sqlx::Traced;
//! use sqlx::postgres::PgPool;
//!
//! let pool = Traced::new(PgPool::connect("postgres://postgres@127.0.0.1/test").await?);
//! // Unchanged call sites: `&pool` is an executor.
//! let row: (i32,) = sqlx::query_as("SELECT $1").bind(7).fetch_one(&pool).await?;
//! // Transactions stay traced: execute on `&mut tx`.
//! let mut tx = pool.begin().await?;
//! sqlx::query("SELECT 1").execute(&mut tx).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! # Parameters
//!
//! A sqlx `Query` does not expose its bound values (they are already
//! encoded in the database's wire format), so through `Traced` alone
//! `params` shows one `"?"` per bound value. To record the values, build
//! the query with this module's [`query`] / [`query_as`] instead of
//! sqlx's: the same builder, whose `bind` also keeps each value's `Debug`
//! text (only while a trace is active). Those queries are traced on any
//! executor, traced or not, and never twice.
//!
//! # Results
//!
//! With [`Traced::hide_result`]`(false)` the stop records the rows as
//! Python shows a cursor's rows (`((1, 'a'), (2, None))`); values of types
//! other than integers, floats, booleans, text and bytes show as
//! `<TYPE>`, and the text stops at 64 KiB.
//!
//! # Errors
//!
//! A failed statement stops with `etype` = the `sqlx::Error` variant
//! (`sqlx::Error::Database`, ...), `message` = the error's text, and
//! `db.chained_exception` = the text of its source (for a database error,
//! the server's message). `fetch_one` finding no row is not a failure of
//! the statement and is not recorded as one.
//!
//! # Context
//!
//! The element is opened when the query is handed to the executor, in the
//! caller's context, and closed when its future completes or its stream
//! ends or is dropped, in a context of its own: statements run
//! concurrently in one task (`join!`) each close their own element. Run
//! spawned work with [`FutureExt::in_current_profiler`] as usual.
//!
//! [`FutureExt::in_current_profiler`]: crate::profiler::FutureExt::in_current_profiler

mod query;
mod span;

use std::fmt;
use std::ops::{Deref, DerefMut};

use ::sqlx::database::Database;

use ::sqlx::error::BoxDynError;
use ::sqlx::pool::{Pool, PoolConnection};
use ::sqlx::{ColumnIndex, Decode, Describe, Either, Error, Execute, Executor, Transaction, Type};
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;

pub use query::{query, query_as, Query, QueryAs};

use self::span::{inside_statement, should_trace, Rows, SpanFuture, SpanStream};
use crate::profiler::Name;
use crate::sql::{self, StatementSpan};

/// A sqlx database the tracer can show results of: every database whose
/// values decode into the common Rust types (all of sqlx's: PostgreSQL,
/// MySQL/MariaDB, SQLite, `Any`). Implemented for all of them; not meant
/// to be implemented elsewhere.
pub trait TracedDatabase: Database {
    /// Appends `row` as a Python tuple, `(1, 'a', None)`.
    #[doc(hidden)]
    fn render_row(row: &Self::Row, out: &mut String);
}

impl<DB> TracedDatabase for DB
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
    fn render_row(row: &DB::Row, out: &mut String) {
        span::render_row::<DB>(row, out);
    }
}

/// How statements are recorded.
#[derive(Clone, Debug)]
struct Options {
    name: Name,
    hide_result: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: Name::from(sql::DEFAULT_NAME),
            hide_result: true,
        }
    }
}

/// A sqlx executor whose statements are traced as `db` elements (Python's
/// `osprofiler.sqlalchemy.add_tracing` on an engine).
///
/// - `Traced<Pool<DB>>`: keep it instead of the pool; `&traced` is an
///   executor, and [`begin`](Traced::begin) / [`acquire`](Traced::acquire)
///   hand out traced transactions and connections.
/// - `Traced<Transaction>`, `Traced<PoolConnection>`: `&mut traced` is an
///   executor.
/// - `Traced<E>` for any executor `E` (`&pool`, `&mut conn`, `&mut *tx`):
///   an executor by value, for one call:
///   `query.execute(Traced::new(&mut conn))`.
///
/// It dereferences to the wrapped value, so the rest of its API stays at
/// hand.
#[derive(Clone, Debug)]
pub struct Traced<T> {
    inner: T,
    options: Options,
}

impl<T> Traced<T> {
    /// Traces the statements run through `inner`, results hidden.
    pub fn new(inner: T) -> Traced<T> {
        Traced {
            inner,
            options: Options::default(),
        }
    }

    /// Whether to leave results out of the stop notification (default
    /// `true`, as upstream). With `false`, the rows are recorded as
    /// `{"db": {"result": "((1, 'a'),)"}}`.
    pub fn hide_result(mut self, hide_result: bool) -> Self {
        self.options.hide_result = hide_result;
        self
    }

    /// The element name (default `db`; upstream's `add_tracing(name=...)`).
    pub fn name(mut self, name: impl Into<Name>) -> Self {
        self.options.name = name.into();
        self
    }

    /// Wraps `other` with the same settings (for a connection or
    /// transaction obtained from the wrapped value).
    pub fn wrap<U>(&self, other: U) -> Traced<U> {
        Traced {
            inner: other,
            options: self.options.clone(),
        }
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped value, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> Deref for Traced<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for Traced<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T> From<T> for Traced<T> {
    fn from(inner: T) -> Self {
        Traced::new(inner)
    }
}

impl<DB: Database> Traced<Pool<DB>> {
    /// Starts a transaction whose statements are traced
    /// ([`Pool::begin`]); run them on `&mut tx`.
    pub async fn begin(&self) -> Result<Traced<Transaction<'static, DB>>, Error> {
        Ok(self.wrap(self.inner.begin().await?))
    }

    /// A pooled connection whose statements are traced
    /// ([`Pool::acquire`]); run them on `&mut conn`.
    pub async fn acquire(&self) -> Result<Traced<PoolConnection<DB>>, Error> {
        Ok(self.wrap(self.inner.acquire().await?))
    }
}

impl<DB: Database> Traced<Transaction<'_, DB>> {
    /// Commits the transaction ([`Transaction::commit`]).
    pub async fn commit(self) -> Result<(), Error> {
        self.inner.commit().await
    }

    /// Rolls the transaction back ([`Transaction::rollback`]).
    pub async fn rollback(self) -> Result<(), Error> {
        self.inner.rollback().await
    }
}

/// A query whose arguments were taken out early (to count them) and are
/// handed back to the executor unchanged.
struct Taken<'q, DB: Database, Q> {
    query: Q,
    arguments: Option<Result<Option<DB::Arguments<'q>>, BoxDynError>>,
}

impl<'q, DB: Database, Q: Execute<'q, DB>> Execute<'q, DB> for Taken<'q, DB, Q> {
    fn sql(&self) -> &'q str {
        self.query.sql()
    }

    fn statement(&self) -> Option<&DB::Statement<'q>> {
        self.query.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments<'q>>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.query.persistent()
    }
}

impl<DB: Database, Q> fmt::Debug for Taken<'_, DB, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Taken").finish_non_exhaustive()
    }
}

/// Opens the element of `query` (if it is to be traced), returning the
/// query to hand to the executor.
fn open<'q, DB, Q>(options: &Options, mut query: Q) -> (Taken<'q, DB, Q>, Option<StatementSpan>)
where
    DB: Database,
    Q: Execute<'q, DB>,
{
    let arguments = query.take_arguments();
    let count = match &arguments {
        Ok(Some(arguments)) => ::sqlx::Arguments::len(arguments),
        _ => 0,
    };
    let statement = query.sql();
    let span = StatementSpan::start(options.name.clone(), || {
        sql::start_info(statement, sql::hidden_params(count))
    });
    let query = Taken {
        query,
        arguments: Some(arguments),
    };
    (query, span)
}

/// One item of `fetch_many`: a statement's summary or a row.
type Step<DB> = Either<<DB as Database>::QueryResult, <DB as Database>::Row>;

fn fetch_many<'c, 'e, 'q, E, Q>(
    inner: E,
    options: &Options,
    query: Q,
) -> BoxStream<'e, Result<Step<E::Database>, Error>>
where
    'c: 'e,
    'q: 'e,
    E: Executor<'c>,
    E::Database: TracedDatabase,
    Q: 'q + Execute<'q, E::Database>,
{
    if !should_trace() {
        return inner.fetch_many(query);
    }
    let (query, span) = open(options, query);
    let Some(span) = span else {
        return inner.fetch_many(query);
    };
    let stream = inside_statement(|| inner.fetch_many(query));
    let recorder = (!options.hide_result).then(Rows::<E::Database>::new);
    Box::pin(SpanStream::new(stream, Some(span), recorder))
}

fn fetch_optional<'c, 'e, 'q, E, Q>(
    inner: E,
    options: &Options,
    query: Q,
) -> BoxFuture<'e, Result<Option<<E::Database as Database>::Row>, Error>>
where
    'c: 'e,
    'q: 'e,
    E: Executor<'c>,
    E::Database: TracedDatabase,
    Q: 'q + Execute<'q, E::Database>,
{
    if !should_trace() {
        return inner.fetch_optional(query);
    }
    let (query, span) = open(options, query);
    let Some(span) = span else {
        return inner.fetch_optional(query);
    };
    let future = inside_statement(|| inner.fetch_optional(query));
    let recorder = (!options.hide_result).then(Rows::<E::Database>::new);
    Box::pin(SpanFuture::new(future, Some(span), recorder))
}

/// The `Executor` methods, each delegating to the functions above with
/// the inner executor `$inner` (an expression of `$self`).
macro_rules! traced_executor_methods {
    ($self:ident => $inner:expr, $options:expr) => {
        fn fetch_many<'e, 'q: 'e, Q>(
            $self,
            query: Q,
        ) -> BoxStream<'e, Result<Step<DB>, Error>>
        where
            'c: 'e,
            Q: 'q + Execute<'q, DB>,
        {
            fetch_many($inner, $options, query)
        }

        fn fetch_optional<'e, 'q: 'e, Q>(
            $self,
            query: Q,
        ) -> BoxFuture<'e, Result<Option<<DB as Database>::Row>, Error>>
        where
            'c: 'e,
            Q: 'q + Execute<'q, DB>,
        {
            fetch_optional($inner, $options, query)
        }

        fn prepare_with<'e, 'q: 'e>(
            $self,
            sql: &'q str,
            parameters: &'e [<DB as Database>::TypeInfo],
        ) -> BoxFuture<'e, Result<<DB as Database>::Statement<'q>, Error>>
        where
            'c: 'e,
        {
            ($inner).prepare_with(sql, parameters)
        }

        fn describe<'e, 'q: 'e>(
            $self,
            sql: &'q str,
        ) -> BoxFuture<'e, Result<Describe<DB>, Error>>
        where
            'c: 'e,
        {
            ($inner).describe(sql)
        }
    };
}

impl<'c, E, DB> Executor<'c> for Traced<E>
where
    E: Executor<'c, Database = DB>,
    DB: TracedDatabase,
{
    type Database = DB;

    traced_executor_methods!(self => self.inner, &self.options);
}

impl<'c, T, DB> Executor<'c> for &'c Traced<T>
where
    T: fmt::Debug + Sync,
    &'c T: Executor<'c, Database = DB>,
    DB: TracedDatabase,
{
    type Database = DB;

    traced_executor_methods!(self => &self.inner, &self.options);
}

impl<'c, T, DB> Executor<'c> for &'c mut Traced<T>
where
    T: DerefMut + fmt::Debug + Send,
    &'c mut T::Target: Executor<'c, Database = DB>,
    DB: TracedDatabase,
{
    type Database = DB;

    traced_executor_methods!(self => &mut *self.inner, &self.options);
}
