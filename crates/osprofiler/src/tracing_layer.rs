//! `tracing` spans as osprofiler trace elements.
//!
//! [`OsprofilerLayer`] is a [`tracing_subscriber::Layer`]: while a trace is
//! active, each `tracing` span becomes one element of it, with `<name>-start`
//! when the span is first entered and `<name>-stop` when it is closed.
//! Elements started while the span is entered (osprofiler's own, or other
//! spans) are its children, so `#[instrument]`ed code shows up in the
//! osprofiler report without any osprofiler call in it.
//!
//! ```
//! use osprofiler::tracing_layer::OsprofilerLayer;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(OsprofilerLayer::new());
//! tracing::subscriber::with_default(subscriber, || {
//!     osprofiler::profiler::init("SECRET_KEY", None, None);
//!     let _span = tracing::info_span!("load_flavor", id = 42).entered();
//!     // ... recorded as `load_flavor-start`, `load_flavor-stop` ...
//! #   drop(_span);
//! #   osprofiler::profiler::clean();
//! });
//! ```
//!
//! # What is recorded
//!
//! - Name: the span's name, or one fixed name for every span with
//!   [`OsprofilerLayer::with_fixed_name`] (e.g. `"tracing"`, to keep the
//!   report's list of names short); the span name is in `info` either way.
//! - Start info: `{"tracing": {"name", "target", "level", "fields": {...}}}`
//!   with the fields given when the span was created (numbers and booleans
//!   as JSON, other values as their `Debug`/`Display` text).
//! - Stop info: `{"tracing": {"fields": {...}}}` with the values
//!   [`record`](tracing::Span::record)ed after the start, if any; and
//!   `{"etype": "Error", "message": <error>}` when an ERROR event with an
//!   `error` field was emitted inside the span (what `#[instrument(err)]`
//!   does), so failed spans count as errors in reports.
//!
//! # Which spans, and when
//!
//! - Only spans *created* while a profiler is active are candidates; a
//!   span created outside a trace costs one thread-local check per
//!   callback and is never recorded.
//! - A span starts at its first enter that happens inside a trace (its
//!   parent is the current element then); enters outside a trace are
//!   ignored.
//! - An async span is entered and exited once per poll: it has one
//!   start and one stop, and is the current element only while entered.
//! - A span may be closed on any thread: its stop is recorded from the
//!   ids kept with the span, whatever that thread is doing.
//! - osprofiler's stack is last-in-first-out, `tracing` spans are not.
//!   A span's element is marked as owned by the span: a `profiler::stop()`
//!   (or a [`Trace`](crate::profiler::Trace) guard dropping) while the span
//!   is entered closes the innermost element *it* started, never the span's;
//!   a span exited while elements it contains are still open (a guard held
//!   across an `.await`) stays their parent until they close, then leaves.
//!
//! Use per-layer filters to choose spans, e.g.
//! `OsprofilerLayer::new().with_filter(LevelFilter::INFO)`.

use std::fmt;

use serde_json::{json, Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::local::{self, ForeignElement, Name};
use crate::notifier::collector;

/// A [`Layer`] that records `tracing` spans opened inside an osprofiler
/// trace as elements of it. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct OsprofilerLayer {
    fixed_name: Option<&'static str>,
}

impl OsprofilerLayer {
    /// A layer that names elements after their spans.
    pub fn new() -> Self {
        OsprofilerLayer::default()
    }

    /// Names every element `name` (the span's own name stays in `info`).
    pub fn with_fixed_name(self, name: &'static str) -> Self {
        OsprofilerLayer {
            fixed_name: Some(name),
        }
    }
}

/// What the layer keeps in a span's extensions.
struct SpanState {
    /// Fields given at creation; taken by the start.
    fields: Map<String, Value>,
    /// Values recorded after the start, for the stop.
    late_fields: Map<String, Value>,
    /// Set once the element is opened.
    element: Option<ForeignElement>,
    /// Message of an ERROR event with an `error` field inside the span.
    error: Option<String>,
}

impl<S> Layer<S> for OsprofilerLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !local::is_active() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Map::new();
        if collector::is_recording() {
            attrs.record(&mut JsonVisitor(&mut fields));
        }
        span.extensions_mut().insert(SpanState {
            fields,
            late_fields: Map::new(),
            element: None,
            error: None,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !collector::is_recording() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        if span.extensions().get::<SpanState>().is_none() {
            return;
        }
        // Formatting runs user `Debug` code, which may itself use
        // `tracing`: never under the extensions lock.
        let mut recorded = Map::new();
        values.record(&mut JsonVisitor(&mut recorded));
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions.get_mut::<SpanState>() {
            let fields = match state.element {
                None => &mut state.fields,
                Some(_) => &mut state.late_fields,
            };
            fields.extend(recorded);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !local::is_active() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        // The extensions lock is never held while recording: recording
        // may log, and a log bridged into `tracing` comes back here.
        let pending = {
            let mut extensions = span.extensions_mut();
            let Some(state) = extensions.get_mut::<SpanState>() else {
                return;
            };
            match &state.element {
                Some(element) => {
                    local::enter_foreign(element);
                    return;
                }
                None => std::mem::take(&mut state.fields),
            }
        };
        let metadata = span.metadata();
        let name: Name = self.fixed_name.unwrap_or(metadata.name()).into();
        let info = collector::is_recording().then(|| {
            json!({"tracing": {
                "name": metadata.name(),
                "target": metadata.target(),
                "level": metadata.level().as_str(),
                "fields": pending,
            }})
        });
        let Some(element) = local::start_foreign(name, info) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions.get_mut::<SpanState>() {
            state.element = Some(element);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if !local::is_active() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let trace_id = match span.extensions().get::<SpanState>() {
            Some(SpanState {
                element: Some(element),
                ..
            }) => element.trace_id,
            _ => return,
        };
        local::exit_foreign(trace_id);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR || !local::is_active() {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut error = ErrorVisitor(None);
        event.record(&mut error);
        let Some(message) = error.0 else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions.get_mut::<SpanState>() {
            if state.element.is_some() {
                state.error = Some(message);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(state) = span.extensions_mut().remove::<SpanState>() else {
            return;
        };
        let Some(element) = state.element else {
            return;
        };
        let mut info = Map::new();
        if let Some(message) = state.error {
            info.insert("etype".into(), Value::from("Error"));
            info.insert("message".into(), Value::from(message));
        }
        if !state.late_fields.is_empty() {
            info.insert("tracing".into(), json!({"fields": state.late_fields}));
        }
        local::record_stop(&element, (!info.is_empty()).then_some(Value::Object(info)));
    }
}

/// Collects span fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let value =
            i64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::from);
        self.0.insert(field.name().into(), value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let value =
            u64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::from);
        self.0.insert(field.name().into(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

/// Finds the `error` field of an event.
struct ErrorVisitor(Option<String>);

impl Visit for ErrorVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "error" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if field.name() == "error" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "error" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}
