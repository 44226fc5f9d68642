//! Cross-service profiling, wire-compatible with OpenStack's
//! [OSProfiler](https://docs.openstack.org/osprofiler/) 4.4.0.
//!
//! One signed request enters a cloud; every service it touches records
//! start/stop notifications under one trace id; a driver stores them; the
//! `osprofiler` CLI rebuilds the call tree. Python and Rust services share
//! the same headers, payloads and storage layouts, so they share traces.
//!
//! # In applications
//!
//! Install a driver once, keep the flush guard alive in `main`, and start a
//! trace per request (the server middleware does this for you when the
//! request carries signed trace headers):
//!
//! ```
//! use osprofiler::{drivers::MemoryDriver, notifier, profiler, web};
//! use serde_json::json;
//!
//! let store = MemoryDriver::new();
//! let guard = notifier::install(store.clone());
//!
//! profiler::init("SECRET_KEY", None, None);
//! {
//!     let _wsgi = profiler::Trace::new("wsgi", Some(json!({"request": {"path": "/servers"}})));
//!     // Headers that continue this trace in the next service:
//!     let headers = web::get_trace_id_headers();
//!     assert!(headers.contains_key(web::X_TRACE_HMAC));
//! }
//! profiler::clean();
//!
//! drop(guard); // flushes, waiting at most 5 s
//! let names: Vec<_> = store.payloads().iter().map(|p| p["name"].clone()).collect();
//! assert_eq!(names, ["wsgi-start", "wsgi-stop"]);
//! ```
//!
//! # In libraries
//!
//! Use [`profiler::Trace`] guards or the `#[trace]` attribute; they cost a
//! thread-local check when no trace is active. In async code, spans follow
//! the task: wrap spawned futures with
//! [`FutureExt::in_current_profiler`](profiler::FutureExt::in_current_profiler).
//!
//! # Feature flags
//!
//! - `macros` (default): `#[trace]` and `#[trace_impl]`.
//! - `tsc` (default): events timed with the CPU's cycle counter
//!   (minstant), a few ns a reading, at the cost of ~20 ms of calibration
//!   when the program starts; without it, the OS monotonic clock.
//! - `tokio`: [`profiler::spawn`].
//! - `tower`: [`web::TraceLayer`], the server middleware.
//! - `sqlite`, `redis`, `postgres`, `mysql`, `messaging` (all: `drivers`):
//!   storage drivers (`messaging`: oslo.messaging notifications on RabbitMQ).
//! - `otlp` (and `otlp-grpc`; both in `drivers`): the OTLP driver, spans
//!   to an OpenTelemetry collector over `otlp://` (HTTP, as upstream) or
//!   `otlp+grpc://`. The HTTP client always sends a W3C `traceparent` that
//!   names its span in that export ([`web::traceparent`]).
//! - `http-client`: [`http_client::inject_headers`], trace headers for any
//!   HTTP client.
//! - `reqwest`: `http_client::TracingMiddleware`, a reqwest-middleware
//!   that records each request as an `http`/`https` element (Python's
//!   `trace_requests`).
//! - `tracing`: `tracing_layer::OsprofilerLayer`, which records `tracing`
//!   spans opened inside a trace as its elements.
//! - `sql`: the SQL tracing switch (`sql::enable`/`sql::disable`, Python's
//!   `trace_sqlalchemy`) and the `db` element info, for any database library.
//! - `sqlx` (backends: `sqlx-postgres`, `sqlx-mysql`, `sqlx-sqlite`):
//!   `sql::sqlx::Traced`, an executor that records each statement as a `db`
//!   element, and `sql::sqlx::query`, which also records bound values.
//! - `diesel` (backends: `diesel-postgres`, `diesel-mysql`, `diesel-sqlite`):
//!   `sql::diesel::DieselInstrumentation`, diesel's connection
//!   instrumentation recording each statement as a `db` element.
//!
//! Without a feature, [`rpc`] carries traces through RPC message contexts
//! (`trace_info`, as nova and oslo.messaging do).
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![forbid(unsafe_code)]

mod clock;
pub mod config;
pub mod drivers;
pub mod error;
#[cfg(feature = "http-client")]
pub mod http_client;
pub mod initializer;
mod limits;
mod local;
pub mod notification;
pub mod notifier;
pub mod profiler;
mod pyjson;
pub mod report;
pub mod rpc;
#[cfg(feature = "sql")]
pub mod sql;
#[cfg(feature = "tracing")]
pub mod tracing_layer;
pub mod web;

pub use error::{Error, Result};
pub use initializer::init_from_conf;
pub use notification::Notification;
#[cfg(feature = "macros")]
pub use osprofiler_macros::{trace, trace_impl};

#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __macro_support;

/// The most used items.
pub mod prelude {
    pub use crate::profiler::{FutureExt as _, Trace};
    pub use crate::{notifier, profiler, web};
}
