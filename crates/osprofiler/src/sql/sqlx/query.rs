//! Query builders that record their bound values as `params`.

use std::fmt::{self, Debug};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use ::sqlx::database::{Database, HasStatementCache};
use ::sqlx::error::BoxDynError;
use ::sqlx::{Encode, Error, Execute, Executor, FromRow, IntoArguments, Type};
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_core::Stream;
use pin_project_lite::pin_project;
use serde_json::Value;

use super::span::{inside_statement, should_trace, Hidden, SpanFuture, SpanStream};
use crate::sql::{self, StatementSpan};

type SqlxQuery<'q, DB> = ::sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// The bound values seen so far.
#[derive(Default)]
struct Params {
    /// JSON of each value bound while a trace was active.
    values: Vec<Value>,
    /// Every value bound.
    count: usize,
}

impl Params {
    fn record<T: Debug + ?Sized>(&mut self, value: &T) {
        self.count += 1;
        if should_trace() {
            self.values.push(sql::param(value));
        }
    }

    /// The values' JSON when all of them were seen (the query was built
    /// while a trace was active), else one `"?"` per value.
    fn into_json(self) -> Value {
        if self.values.len() == self.count {
            Value::Array(self.values)
        } else {
            sql::hidden_params(self.count)
        }
    }

    fn open(self, statement: &str) -> Option<StatementSpan> {
        if !should_trace() {
            return None;
        }
        StatementSpan::start(sql::DEFAULT_NAME, || {
            sql::start_info(statement, self.into_json())
        })
    }
}

/// [`sqlx::query`](::sqlx::query()) that also records its bound values: the
/// statement becomes a `db` element whose `params` are the values' JSON
/// (see [`sql::param`](crate::sql::param)).
///
/// Works on any executor; on a [`Traced`](super::Traced) one the statement
/// is still traced once.
///
/// ```no_run
/// # #[cfg(feature = "sqlx-postgres")]
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// use osprofiler::sql::sqlx::query;
///
/// query("UPDATE servers SET name = $1 WHERE id = $2")
///     .bind("web-1")
///     .bind(42_i64)
///     .execute(&pool)
///     .await?; // params: ["web-1", 42]
/// # Ok(()) }
/// ```
pub fn query<DB: Database>(sql: &str) -> Query<'_, DB> {
    Query {
        inner: ::sqlx::query(sql),
        sql,
        params: Params::default(),
    }
}

/// [`sqlx::query_as`](::sqlx::query_as()) that also records its bound
/// values (see [`query`]). Rows are turned into `O` with its
/// [`FromRow`] implementation.
pub fn query_as<'q, DB, O>(sql: &'q str) -> QueryAs<'q, DB, O>
where
    DB: Database,
    O: for<'r> FromRow<'r, DB::Row>,
{
    QueryAs {
        query: query(sql),
        output: PhantomData,
    }
}

/// A query built by [`query`]: sqlx's `Query` plus the recorded values.
#[must_use = "query must be executed to affect database"]
pub struct Query<'q, DB: Database> {
    inner: SqlxQuery<'q, DB>,
    sql: &'q str,
    params: Params,
}

impl<DB: Database> Debug for Query<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("sql", &self.sql)
            .field("params", &self.params.count)
            .finish_non_exhaustive()
    }
}

impl<'q, DB: Database> Query<'q, DB> {
    /// Binds the next value (sqlx's `bind`); while a trace is active its
    /// `Debug` text is kept for `params`.
    pub fn bind<T>(mut self, value: T) -> Self
    where
        T: 'q + Encode<'q, DB> + Type<DB> + Debug,
    {
        self.params.record(&value);
        self.inner = self.inner.bind(value);
        self
    }

    /// Whether the prepared statement is cached (sqlx's `persistent`).
    pub fn persistent(mut self, value: bool) -> Self
    where
        DB: HasStatementCache,
    {
        self.inner = self.inner.persistent(value);
        self
    }
}

impl<'q, DB> Query<'q, DB>
where
    DB: Database,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    /// Runs the statement; the number of rows affected and such.
    pub fn execute<'e, 'c: 'e, E>(
        self,
        executor: E,
    ) -> BoxFuture<'e, Result<DB::QueryResult, Error>>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        let Query { inner, sql, params } = self;
        match params.open(sql) {
            None => executor.execute(inner),
            Some(span) => {
                let future = inside_statement(|| executor.execute(inner));
                Box::pin(SpanFuture::new(future, Some(span), Hidden))
            }
        }
    }

    /// The rows, as a stream.
    pub fn fetch<'e, 'c: 'e, E>(self, executor: E) -> BoxStream<'e, Result<DB::Row, Error>>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        let Query { inner, sql, params } = self;
        match params.open(sql) {
            None => executor.fetch(inner),
            Some(span) => {
                let stream = inside_statement(|| executor.fetch(inner));
                Box::pin(SpanStream::new(stream, Some(span), Hidden))
            }
        }
    }

    /// All the rows.
    pub fn fetch_all<'e, 'c: 'e, E>(self, executor: E) -> BoxFuture<'e, Result<Vec<DB::Row>, Error>>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        let Query { inner, sql, params } = self;
        match params.open(sql) {
            None => executor.fetch_all(inner),
            Some(span) => {
                let future = inside_statement(|| executor.fetch_all(inner));
                Box::pin(SpanFuture::new(future, Some(span), Hidden))
            }
        }
    }

    /// The first row; [`Error::RowNotFound`] if there is none.
    pub fn fetch_one<'e, 'c: 'e, E>(self, executor: E) -> BoxFuture<'e, Result<DB::Row, Error>>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        let Query { inner, sql, params } = self;
        match params.open(sql) {
            None => executor.fetch_one(inner),
            Some(span) => {
                let future = inside_statement(|| executor.fetch_one(inner));
                Box::pin(SpanFuture::new(future, Some(span), Hidden))
            }
        }
    }

    /// The first row, if any.
    pub fn fetch_optional<'e, 'c: 'e, E>(
        self,
        executor: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'q: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        let Query { inner, sql, params } = self;
        match params.open(sql) {
            None => executor.fetch_optional(inner),
            Some(span) => {
                let future = inside_statement(|| executor.fetch_optional(inner));
                Box::pin(SpanFuture::new(future, Some(span), Hidden))
            }
        }
    }
}

/// Passed straight to an executor (`pool.execute(query)`), the query is
/// not traced by itself: only a [`Traced`](super::Traced) executor traces
/// it, without the values.
impl<'q, DB> Execute<'q, DB> for Query<'q, DB>
where
    DB: Database,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    fn sql(&self) -> &'q str {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement<'q>> {
        self.inner.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments<'q>>, BoxDynError> {
        self.inner.take_arguments()
    }

    fn persistent(&self) -> bool {
        Execute::persistent(&self.inner)
    }
}

/// A query built by [`query_as`]: rows become `O`.
#[must_use = "query must be executed to affect database"]
pub struct QueryAs<'q, DB: Database, O> {
    query: Query<'q, DB>,
    output: PhantomData<fn() -> O>,
}

impl<DB: Database, O> Debug for QueryAs<'_, DB, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("QueryAs").field(&self.query).finish()
    }
}

impl<'q, DB: Database, O> QueryAs<'q, DB, O> {
    /// Binds the next value (see [`Query::bind`]).
    pub fn bind<T>(mut self, value: T) -> Self
    where
        T: 'q + Encode<'q, DB> + Type<DB> + Debug,
    {
        self.query = self.query.bind(value);
        self
    }

    /// Whether the prepared statement is cached (sqlx's `persistent`).
    pub fn persistent(mut self, value: bool) -> Self
    where
        DB: HasStatementCache,
    {
        self.query = self.query.persistent(value);
        self
    }
}

impl<'q, DB, O> QueryAs<'q, DB, O>
where
    DB: Database,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
    O: Send + Unpin + for<'r> FromRow<'r, DB::Row>,
{
    /// The rows as `O`, as a stream.
    pub fn fetch<'e, 'c: 'e, E>(self, executor: E) -> BoxStream<'e, Result<O, Error>>
    where
        'q: 'e,
        O: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        Box::pin(MapRows {
            rows: self.query.fetch(executor),
            output: PhantomData,
        })
    }

    /// All the rows as `O`.
    pub fn fetch_all<'e, 'c: 'e, E>(self, executor: E) -> BoxFuture<'e, Result<Vec<O>, Error>>
    where
        'q: 'e,
        O: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        let rows = self.query.fetch_all(executor);
        Box::pin(async move { rows.await?.iter().map(O::from_row).collect() })
    }

    /// The first row as `O`; [`Error::RowNotFound`] if there is none.
    pub fn fetch_one<'e, 'c: 'e, E>(self, executor: E) -> BoxFuture<'e, Result<O, Error>>
    where
        'q: 'e,
        O: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        let row = self.query.fetch_one(executor);
        Box::pin(async move { O::from_row(&row.await?) })
    }

    /// The first row as `O`, if any.
    pub fn fetch_optional<'e, 'c: 'e, E>(
        self,
        executor: E,
    ) -> BoxFuture<'e, Result<Option<O>, Error>>
    where
        'q: 'e,
        O: 'e,
        E: 'e + Executor<'c, Database = DB>,
    {
        let row = self.query.fetch_optional(executor);
        Box::pin(async move { row.await?.as_ref().map(O::from_row).transpose() })
    }
}

pin_project! {
    /// Rows turned into `O` as they arrive.
    struct MapRows<S, O> {
        #[pin]
        rows: S,
        output: PhantomData<fn() -> O>,
    }
}

impl<S, R, O> Stream for MapRows<S, O>
where
    S: Stream<Item = Result<R, Error>>,
    R: ::sqlx::Row,
    O: for<'r> FromRow<'r, R>,
{
    type Item = Result<O, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.project()
            .rows
            .poll_next(cx)
            .map(|item| item.map(|row| row.and_then(|row| O::from_row(&row))))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rows.size_hint()
    }
}
