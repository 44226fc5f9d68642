//! OTLP driver: `otlp://host:port` (OTLP/HTTP, as upstream's
//! `osprofiler.drivers.otlp`) and `otlp+grpc://host:port` (OTLP/gRPC, not in
//! upstream; feature `otlp-grpc`).
//!
//! Each start notification and its stop become one OpenTelemetry span,
//! built exactly as upstream's driver builds it with the OpenTelemetry
//! Python SDK (checked against it by `tests/otlp_driver.rs`):
//!
//! - resource `service.name` = `<project>-<service>`, or
//!   `<prefix>-<project>-<service>` with `[profiler_otlp]
//!   service_name_prefix`; instrumentation scope `osprofiler.drivers.otlp`;
//! - trace id = the 128-bit integer of `base_id`, span id = the low 64 bits
//!   of the element's `trace_id`, parent span id = the low 64 bits of
//!   `parent_id` unless `parent_id == base_id` (a root span), span flags
//!   `0x100` (parent known to be local); see [`crate::web::traceparent`]
//!   for ids that are not uuids;
//! - kind `SERVER` when the notification name contains `wsgi`, `CLIENT`
//!   when it contains `db`, `http` or `api`, else `INTERNAL`;
//! - name `WSGI_<method>_<path>`, `SQL_<FIRST WORD OF STATEMENT>`,
//!   `REQUESTS_<method>_<hostname>`, else the notification name with
//!   upstream's `rstrip("-start")` (which strips characters, so `driver`
//!   becomes `drive`: kept, so both languages name spans alike);
//! - attributes `db.statement`, `db.params` (Python's `json.dumps`),
//!   `http.path`/`query`/`method`/`scheme` (+ `hostname`, `port` for
//!   client requests), `args`/`kwargs`/`name` for functions; from the
//!   stop, `result`, `status_code`, and for an error stop `error = true`
//!   plus an event `log` with `error.kind` and `message`.
//!
//! Differences from upstream, all where upstream is wrong or cannot work
//! here:
//!
//! - Times are the notifications' own timestamps (upstream reads the clock
//!   when its synchronous `notify` runs, which is the same moment there).
//! - A stop is paired with the start of the same element (`base_id`,
//!   `trace_id`); upstream pops the most recent start of the whole process,
//!   which mixes concurrent requests up.
//! - A stop whose start this driver never saw is dropped and counted
//!   ([`OtlpStats::orphan_stops`]); upstream ends an unrelated span.
//! - An incoming `traceparent` kept in a `wsgi` element's info by the
//!   server layer's opt-in policy
//!   ([`TraceparentPolicy`](crate::web::TraceparentPolicy)) becomes the
//!   span's parent when it names the same trace (flags `0x300`: remote).
//! - A refused export is not retried (see below); upstream's exporter
//!   gives up after its own retries too.
//!
//! # Starts waiting for their stop
//!
//! The notifier hands notifications over in batches, so a start often
//! arrives long before its stop. Open starts are held in memory, at most
//! [`OtlpDriver::with_max_open_spans`] (default 10,000) of them, each for
//! at most [`OtlpDriver::with_open_span_timeout`] (default 10 minutes). A
//! start that times out, or the oldest one when a new start finds the
//! table full, is exported *unfinished*: its end time is its start time
//! and it has the attribute `osprofiler.unfinished = true`, so its children
//! still hang under it in the trace view. Its stop, if it comes later, is
//! dropped as an orphan. Both are counted in [`OtlpDriver::stats`].
//! Starts still open when the driver is dropped are lost (counted, and
//! logged).
//!
//! # Export, failures and retries
//!
//! Each [`Driver::notify`] call sends the spans it completed as one
//! request. When the collector cannot be reached or asks to retry later
//! (HTTP 429/502/503/504, gRPC `UNAVAILABLE` and the other retryable
//! codes), `notify` returns an error and undoes its work on the open-span
//! table, so the notifier's retry of the same batch builds the same spans
//! again: nothing is lost or exported twice. Any other refusal is final:
//! the spans are dropped, counted in [`OtlpStats::rejected`] and logged
//! (retrying a request the collector calls invalid would block the
//! pipeline forever). Requests time out after 10 s
//! ([`OtlpDriver::with_export_timeout`]).
//!
//! Only plain `http://` is spoken, as upstream (whose code notes https as
//! a to-do). Reading traces back (`list_traces`, `get_events`) is not
//! possible: the collector owns them.

mod mapping;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{Map, Value};

use self::transport::{HttpTransport, Outcome, Transport};
use super::{redact_secrets, Driver};
use crate::config::ProfilerConfig;
use crate::error::{Error, Result};
use crate::notification::{parse_timestamp, Notification};
use crate::web::{otel_span_id, otel_trace_id, TraceParent};

const NAME: &str = "otlp";
/// Upstream's tracer is `get_tracer(__name__)`.
const SCOPE_NAME: &str = "osprofiler.drivers.otlp";
/// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`, set on every span by the SDK.
const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
/// `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`: the parent is in another process.
const FLAGS_IS_REMOTE: u32 = 0x200;
/// Attribute marking a span exported without its stop.
pub const UNFINISHED_ATTRIBUTE: &str = "osprofiler.unfinished";
const DEFAULT_MAX_OPEN_SPANS: usize = 10_000;
const DEFAULT_OPEN_SPAN_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
#[cfg(feature = "otlp-grpc")]
const DEFAULT_GRPC_PORT: u16 = 4317;
/// Most timed-out starts exported by one `notify`, so one request stays
/// of a reasonable size; the rest go with the next calls.
const MAX_EXPIRED_PER_CALL: usize = 1_000;

/// Exports notifications as OpenTelemetry spans to an OTLP collector.
///
/// Create it with [`OtlpDriver::new`] or through
/// [`get_driver`](super::get_driver) with an `otlp://` or `otlp+grpc://`
/// connection string.
pub struct OtlpDriver {
    connection_string: String,
    service_name: String,
    max_open_spans: usize,
    open_span_timeout: Duration,
    inner: Mutex<Inner>,
    counters: Counters,
}

/// Counters of an [`OtlpDriver`], since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpStats {
    /// Starts waiting for their stop right now.
    pub open: u64,
    /// Spans the collector accepted.
    pub exported: u64,
    /// Spans exported without their stop (timed out, or pushed out of a
    /// full table); included in `exported` once accepted.
    pub unfinished: u64,
    /// Stops dropped because their start was never seen (or was already
    /// exported unfinished).
    pub orphan_stops: u64,
    /// Starts dropped because the same element was already open.
    pub duplicate_starts: u64,
    /// Spans the collector refused for good (or reported rejected).
    pub rejected: u64,
    /// Exports that failed in a retryable way (their batch was retried).
    pub failed_exports: u64,
}

#[derive(Debug, Default)]
struct Counters {
    open: AtomicU64,
    exported: AtomicU64,
    unfinished: AtomicU64,
    orphan_stops: AtomicU64,
    duplicate_starts: AtomicU64,
    rejected: AtomicU64,
    failed_exports: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    open: OpenSpans,
    transport: Transport,
}

impl fmt::Debug for OtlpDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpDriver")
            .field(
                "connection_string",
                &redact_secrets(&self.connection_string),
            )
            .field("service_name", &self.service_name)
            .field("max_open_spans", &self.max_open_spans)
            .field("open_span_timeout", &self.open_span_timeout)
            .finish_non_exhaustive()
    }
}

impl OtlpDriver {
    /// A driver for `otlp://host[:port][/path]` (spans POSTed to
    /// `http://host:port[/path]/v1/traces`; the port defaults to 80 as in
    /// upstream) or, with feature `otlp-grpc`, `otlp+grpc://host[:port]`
    /// (the port defaults to 4317).
    ///
    /// Uses `service_name_prefix` from `conf`. Does not connect: the first
    /// export does.
    pub fn new(
        connection_string: &str,
        project: Option<&str>,
        service: Option<&str>,
        conf: &ProfilerConfig,
    ) -> Result<OtlpDriver> {
        let transport = parse_endpoint(connection_string, DEFAULT_EXPORT_TIMEOUT)?;
        // Python's f-string writes a missing project or service as `None`.
        let project = project.unwrap_or("None");
        let service = service.unwrap_or("None");
        let service_name = match conf.service_name_prefix.as_deref() {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}-{project}-{service}"),
            _ => format!("{project}-{service}"),
        };
        Ok(OtlpDriver {
            connection_string: connection_string.to_string(),
            service_name,
            max_open_spans: DEFAULT_MAX_OPEN_SPANS,
            open_span_timeout: DEFAULT_OPEN_SPAN_TIMEOUT,
            inner: Mutex::new(Inner {
                open: OpenSpans::default(),
                transport,
            }),
            counters: Counters::default(),
        })
    }

    /// Sets how many starts may wait for their stop (at least 1); beyond,
    /// the oldest is exported unfinished.
    #[must_use]
    pub fn with_max_open_spans(mut self, max: usize) -> OtlpDriver {
        self.max_open_spans = max.max(1);
        self
    }

    /// Sets how long a start waits for its stop before it is exported
    /// unfinished.
    #[must_use]
    pub fn with_open_span_timeout(mut self, timeout: Duration) -> OtlpDriver {
        self.open_span_timeout = timeout;
        self
    }

    /// Sets the time allowed for one export request (connection included).
    #[must_use]
    pub fn with_export_timeout(self, timeout: Duration) -> OtlpDriver {
        self.lock().transport.set_timeout(timeout);
        self
    }

    /// The resource's `service.name`.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The driver's counters.
    pub fn stats(&self) -> OtlpStats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        OtlpStats {
            open: get(&c.open),
            exported: get(&c.exported),
            unfinished: get(&c.unfinished),
            orphan_stops: get(&c.orphan_stops),
            duplicate_starts: get(&c.duplicate_starts),
            rejected: get(&c.rejected),
            failed_exports: get(&c.failed_exports),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn request(&self, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                        key: "service.name".into(),
                        value: Some(mapping::string_value(self.service_name.clone())),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    /// Adds one notification to the transaction.
    fn ingest(&self, open: &mut OpenSpans, txn: &mut Txn, n: &Notification, now: Instant) {
        let empty = Map::new();
        let info = n.info.as_ref().unwrap_or(&empty);
        let key = (n.base_id.clone(), n.trace_id.clone());
        // Upstream: anything whose name does not end with "start" is a stop.
        if n.name.ends_with("start") {
            if open.spans.contains_key(&key) {
                txn.delta.duplicate_starts += 1;
                return;
            }
            if open.spans.len() >= self.max_open_spans {
                open.evict_oldest(txn);
            }
            open.insert(key, start_span(n, info), now, txn);
        } else {
            match open.remove(&key, txn) {
                Some(mut span) => {
                    let end = unix_nanos(&n.timestamp);
                    mapping::apply_stop(&mut span.attributes, &mut span.events, info, end);
                    span.end_time_unix_nano = end;
                    txn.spans.push(span);
                }
                None => txn.delta.orphan_stops += 1,
            }
        }
    }

    fn commit(&self, txn: &Txn, open: &OpenSpans, outcome: Option<(usize, Outcome)>) {
        let c = &self.counters;
        c.orphan_stops
            .fetch_add(txn.delta.orphan_stops, Ordering::Relaxed);
        c.duplicate_starts
            .fetch_add(txn.delta.duplicate_starts, Ordering::Relaxed);
        c.open.store(open.spans.len() as u64, Ordering::Relaxed);
        let Some((sent, outcome)) = outcome else {
            return;
        };
        let sent = sent as u64;
        match outcome {
            Outcome::Accepted {
                rejected_spans,
                message,
            } => {
                let rejected = rejected_spans.min(sent);
                if rejected > 0 {
                    log::warn!(
                        "osprofiler: OTLP collector rejected {rejected} of {sent} spans: {message}"
                    );
                }
                c.exported.fetch_add(sent - rejected, Ordering::Relaxed);
                c.rejected.fetch_add(rejected, Ordering::Relaxed);
                c.unfinished
                    .fetch_add(txn.delta.unfinished, Ordering::Relaxed);
            }
            Outcome::Refused(reason) => {
                log::warn!(
                    "osprofiler: OTLP collector refused {sent} spans ({}); dropped",
                    redact_secrets(&reason)
                );
                c.rejected.fetch_add(sent, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for OtlpDriver {
    fn drop(&mut self) {
        let open = self.lock().open.spans.len();
        if open > 0 {
            log::warn!("osprofiler: OTLP driver dropped with {open} spans still waiting for their stop; they are lost");
        }
    }
}

impl Driver for OtlpDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn notify(&self, batch: &[Notification]) -> Result<()> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Inner { open, transport } = &mut *inner;
        let mut txn = open.begin();
        for n in batch {
            self.ingest(open, &mut txn, n, now);
        }
        open.expire(&mut txn, now, self.open_span_timeout);
        if txn.spans.is_empty() {
            self.commit(&txn, open, None);
            return Ok(());
        }
        let spans = std::mem::take(&mut txn.spans);
        let count = spans.len();
        let body = self.request(spans).encode_to_vec();
        match transport.export(body) {
            Ok(outcome) => {
                self.commit(&txn, open, Some((count, outcome)));
                Ok(())
            }
            Err(reason) => {
                open.rollback(txn);
                self.counters.failed_exports.fetch_add(1, Ordering::Relaxed);
                Err(Error::backend(NAME, reason))
            }
        }
    }
}

/// The span of a start notification, without its end.
fn start_span(n: &Notification, info: &Map<String, Value>) -> Span {
    let trace_id = otel_trace_id(&n.base_id);
    let mut flags = FLAGS_HAS_IS_REMOTE;
    let mut parent = (n.base_id != n.parent_id).then(|| otel_span_id(&n.parent_id));
    // Opt-in W3C parent recorded by the server layer; only within the trace.
    if let Some(tp) = info
        .get("traceparent")
        .and_then(Value::as_str)
        .and_then(TraceParent::parse)
        .filter(|tp| tp.trace_id == trace_id)
    {
        parent = Some(tp.parent_id);
        flags |= FLAGS_IS_REMOTE;
    }
    let start = unix_nanos(&n.timestamp);
    Span {
        trace_id: trace_id.to_be_bytes().to_vec(),
        span_id: otel_span_id(&n.trace_id).to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        flags,
        name: mapping::span_name(&n.name, info),
        kind: mapping::span_kind(&n.name) as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start,
        attributes: mapping::start_attributes(info),
        status: Some(Status::default()),
        ..Default::default()
    }
}

/// Nanoseconds since the epoch of a payload timestamp; now when it does
/// not parse.
fn unix_nanos(timestamp: &str) -> u64 {
    match parse_timestamp(timestamp) {
        Some(micros) => u64::try_from(micros).unwrap_or(0).saturating_mul(1_000),
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
    }
}

/// The end of a start exported without its stop.
fn mark_unfinished(mut span: Span) -> Span {
    span.end_time_unix_nano = span.start_time_unix_nano;
    mapping::set_attribute(
        &mut span.attributes,
        UNFINISHED_ATTRIBUTE,
        AnyValue {
            value: Some(any_value::Value::BoolValue(true)),
        },
    );
    span
}

/// `(base_id, trace_id)` of an element.
type Key = (String, String);

#[derive(Debug, Clone)]
struct OpenSpan {
    seq: u64,
    received: Instant,
    span: Span,
}

/// Starts waiting for their stop, oldest first by arrival.
#[derive(Debug, Default)]
struct OpenSpans {
    spans: HashMap<Key, OpenSpan>,
    order: BTreeMap<u64, Key>,
    next_seq: u64,
}

/// The changes one `notify` makes, to undo them if its export must be
/// retried.
#[derive(Debug)]
struct Txn {
    first_seq: u64,
    undo: Vec<Undo>,
    spans: Vec<Span>,
    delta: Delta,
}

#[derive(Debug, Default)]
struct Delta {
    orphan_stops: u64,
    duplicate_starts: u64,
    unfinished: u64,
}

#[derive(Debug)]
enum Undo {
    Inserted(Key),
    Removed(Key, Box<OpenSpan>),
}

impl OpenSpans {
    fn begin(&self) -> Txn {
        Txn {
            first_seq: self.next_seq,
            undo: Vec::new(),
            spans: Vec::new(),
            delta: Delta::default(),
        }
    }

    fn insert(&mut self, key: Key, span: Span, now: Instant, txn: &mut Txn) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        txn.undo.push(Undo::Inserted(key.clone()));
        self.spans.insert(
            key,
            OpenSpan {
                seq,
                received: now,
                span,
            },
        );
    }

    /// Takes an open span out. One opened before this transaction is
    /// remembered (a copy) so a rollback can put it back.
    fn remove(&mut self, key: &Key, txn: &mut Txn) -> Option<Span> {
        let open = self.spans.remove(key)?;
        self.order.remove(&open.seq);
        if open.seq < txn.first_seq {
            let span = open.span.clone();
            txn.undo.push(Undo::Removed(key.clone(), Box::new(open)));
            Some(span)
        } else {
            Some(open.span)
        }
    }

    fn evict_oldest(&mut self, txn: &mut Txn) {
        let Some(key) = self.order.values().next().cloned() else {
            return;
        };
        if let Some(span) = self.remove(&key, txn) {
            txn.spans.push(mark_unfinished(span));
            txn.delta.unfinished += 1;
        }
    }

    fn expire(&mut self, txn: &mut Txn, now: Instant, timeout: Duration) {
        for _ in 0..MAX_EXPIRED_PER_CALL {
            let Some(key) = self.order.values().next() else {
                return;
            };
            let expired = self
                .spans
                .get(key)
                .is_some_and(|open| now.saturating_duration_since(open.received) >= timeout);
            if !expired {
                return;
            }
            self.evict_oldest(txn);
        }
    }

    /// Puts the table back as it was before `txn`.
    fn rollback(&mut self, txn: Txn) {
        for undo in txn.undo.into_iter().rev() {
            match undo {
                Undo::Inserted(key) => {
                    if let Some(open) = self.spans.remove(&key) {
                        self.order.remove(&open.seq);
                    }
                }
                Undo::Removed(key, open) => {
                    self.order.insert(open.seq, key.clone());
                    self.spans.insert(key, *open);
                }
            }
        }
        self.next_seq = txn.first_seq;
    }
}

/// The transport for a connection string.
fn parse_endpoint(connection_string: &str, timeout: Duration) -> Result<Transport> {
    let invalid = |reason: String| Error::InvalidConnectionString {
        connection_string: redact_secrets(connection_string),
        reason,
    };
    let (scheme, rest) = connection_string
        .split_once("://")
        .ok_or_else(|| invalid("expected otlp://host:port".into()))?;
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return Err(invalid("no host".into()));
    }
    let url = url::Url::parse(&format!("http://{rest}")).map_err(|e| invalid(e.to_string()))?;
    if url.host_str().map_or(true, str::is_empty) {
        return Err(invalid("no host".into()));
    }
    match scheme {
        "otlp" => {
            // Upstream appends `/v1/traces` to the URL as written (a
            // trailing `/` is dropped first, not doubled).
            let mut endpoint = url.clone();
            let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
            endpoint.set_path(&path);
            Ok(Transport::Http(HttpTransport::new(
                endpoint.to_string(),
                timeout,
            )))
        }
        #[cfg(feature = "otlp-grpc")]
        "otlp+grpc" => {
            use self::transport::grpc::{GrpcTransport, Target};
            if !matches!(url.path(), "" | "/") || url.query().is_some() {
                return Err(invalid("a gRPC endpoint has no path or query".into()));
            }
            let host = url.host_str().unwrap_or_default();
            let port = url.port().unwrap_or(DEFAULT_GRPC_PORT);
            let target = match url.host() {
                Some(url::Host::Ipv4(ip)) => Target::Addr((ip, port).into()),
                Some(url::Host::Ipv6(ip)) => Target::Addr((ip, port).into()),
                _ => Target::Name(host.to_string(), port),
            };
            let authority = format!("{host}:{port}");
            Ok(Transport::Grpc(GrpcTransport::new(
                target, &authority, timeout,
            )))
        }
        #[cfg(not(feature = "otlp-grpc"))]
        "otlp+grpc" => Err(invalid(
            "OTLP/gRPC needs the `otlp-grpc` feature of the osprofiler crate".into(),
        )),
        other => Err(invalid(format!(
            "unsupported scheme {other:?} for the OTLP driver"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c";

    fn driver(cs: &str) -> OtlpDriver {
        OtlpDriver::new(cs, Some("nova"), Some("api"), &ProfilerConfig::default()).unwrap()
    }

    fn event(name: &str, trace: &str, parent: &str, info: Value) -> Notification {
        Notification {
            name: name.into(),
            base_id: BASE.into(),
            trace_id: trace.into(),
            parent_id: parent.into(),
            timestamp: "2026-01-01T00:00:00.000001".into(),
            info: info.as_object().cloned(),
        }
    }

    #[test]
    fn endpoints() {
        let url = |cs: &str| match parse_endpoint(cs, DEFAULT_EXPORT_TIMEOUT).unwrap() {
            Transport::Http(t) => format!("{t:?}"),
            #[allow(unreachable_patterns)]
            other => format!("{other:?}"),
        };
        assert!(url("otlp://h:4318").contains("\"http://h:4318/v1/traces\""));
        assert!(url("otlp://h:4318/").contains("\"http://h:4318/v1/traces\""));
        assert!(url("otlp://h/p").contains("\"http://h/p/v1/traces\""));
        for bad in ["otlp://", "otlp:///x", "nope", "otlpx://h:1"] {
            assert!(
                parse_endpoint(bad, DEFAULT_EXPORT_TIMEOUT).is_err(),
                "{bad}"
            );
        }
        #[cfg(feature = "otlp-grpc")]
        {
            assert!(parse_endpoint("otlp+grpc://h:1/x", DEFAULT_EXPORT_TIMEOUT).is_err());
            let t = parse_endpoint("otlp+grpc://[::1]", DEFAULT_EXPORT_TIMEOUT).unwrap();
            assert!(format!("{t:?}").contains("http://[::1]:4317/opentelemetry"));
        }
    }

    #[test]
    fn service_names() {
        assert_eq!(driver("otlp://h:1").service_name(), "nova-api");
        let conf = ProfilerConfig::default().with_service_name_prefix("r1");
        let d = OtlpDriver::new("otlp://h:1", Some("nova"), None, &conf).unwrap();
        assert_eq!(d.service_name(), "r1-nova-None");
        let conf = ProfilerConfig::default().with_service_name_prefix("");
        let d = OtlpDriver::new("otlp://h:1", Some("a"), Some("b"), &conf).unwrap();
        assert_eq!(d.service_name(), "a-b");
    }

    #[test]
    fn failed_exports_leave_the_table_as_it_was() {
        // Nothing listens on port 9 of 127.0.0.1 (discard, never run here).
        let d = driver("otlp://127.0.0.1:9").with_export_timeout(Duration::from_secs(2));
        let a = "11111111-1111-4111-8111-111111111111";
        let b = "22222222-2222-4222-8222-222222222222";
        // A start alone is held, nothing to send.
        d.notify(&[event("wsgi-start", a, BASE, json!({}))])
            .unwrap();
        assert_eq!(d.stats().open, 1);
        // Its stop and a new start: the export fails, both are undone.
        let batch = [
            event("db-start", b, a, json!({})),
            event("wsgi-stop", a, BASE, json!({})),
        ];
        assert!(d.notify(&batch).is_err());
        {
            let inner = d.lock();
            assert_eq!(inner.open.spans.len(), 1);
            assert!(inner
                .open
                .spans
                .contains_key(&(BASE.to_string(), a.to_string())));
            assert_eq!(inner.open.order.len(), 1);
        }
        assert!(d.notify(&batch).is_err());
        let stats = d.stats();
        assert_eq!((stats.failed_exports, stats.exported), (2, 0));
    }

    #[test]
    fn full_table_and_timeouts_export_unfinished_spans() {
        let mut open = OpenSpans::default();
        let now = Instant::now();
        let mut txn = open.begin();
        for i in 0..3 {
            let n = event("x-start", &format!("{i}"), BASE, json!({}));
            open.insert(
                (BASE.into(), format!("{i}")),
                start_span(&n, &Map::new()),
                now,
                &mut txn,
            );
        }
        open.evict_oldest(&mut txn);
        assert_eq!(txn.spans.len(), 1);
        assert_eq!(txn.delta.unfinished, 1);
        open.expire(
            &mut txn,
            now + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        assert_eq!(txn.spans.len(), 3);
        let unfinished = &txn.spans[0];
        assert_eq!(
            unfinished.end_time_unix_nano,
            unfinished.start_time_unix_nano
        );
        assert_eq!(
            unfinished.attributes.last().unwrap().key,
            UNFINISHED_ATTRIBUTE
        );
        assert!(open.spans.is_empty() && open.order.is_empty());
        open.rollback(txn);
        assert!(open.spans.is_empty() && open.order.is_empty());
    }

    #[test]
    fn root_and_child_ids() {
        let a = "11111111-1111-4111-8111-111111111111";
        let root = start_span(&event("wsgi-start", a, BASE, json!({})), &Map::new());
        assert!(root.parent_span_id.is_empty());
        assert_eq!(
            root.trace_id,
            0x0f2b6a3c1d4e4f5a8b6c7d8e9f0a1b2c_u128.to_be_bytes()
        );
        assert_eq!(root.span_id, 0x8111111111111111_u64.to_be_bytes());
        assert_eq!(root.flags, 0x100);
        let child = start_span(&event("db-start", BASE, a, json!({})), &Map::new());
        assert_eq!(child.parent_span_id, 0x8111111111111111_u64.to_be_bytes());
        let info =
            json!({"traceparent": "00-0f2b6a3c1d4e4f5a8b6c7d8e9f0a1b2c-00f067aa0ba902b7-01"});
        let n = event("wsgi-start", a, BASE, info.clone());
        let remote = start_span(&n, info.as_object().unwrap());
        assert_eq!(remote.parent_span_id, 0x00f067aa0ba902b7_u64.to_be_bytes());
        assert_eq!(remote.flags, 0x300);
        let other_trace =
            json!({"traceparent": "00-1f2b6a3c1d4e4f5a8b6c7d8e9f0a1b2c-00f067aa0ba902b7-01"});
        let n = event("wsgi-start", a, BASE, other_trace.clone());
        assert!(start_span(&n, other_trace.as_object().unwrap())
            .parent_span_id
            .is_empty());
    }
}
